// SPDX-License-Identifier: GPL-2.0-only
/**
 * struct mm_struct, struct vm_area_struct, struct anon_vma, struct
 * address_space (include/linux/mm_types.h, rmap.h, fs.h), reduced to what
 * the subsystem uses.
 *
 * Lock order: written once, in src/kernel/sched/lockdep.ts (LOCK_CLASSES,
 * from mm/rmap.c "Lock ordering in mm"), and checked by lockdep in checked
 * mode. (This comment used to place dmirror->mutex above the folio lock,
 * "taken around hmm_range_fault": lib/test_hmm.c takes it after
 * hmm_range_fault() and inside its invalidate callback, i.e. below the
 * folio lock and the rmap locks.)
 *
 * Field ownership is documented per field below.
 */
import { RwSem } from '../sched/locks.js';
import { LOCK_CLASSES } from '../sched/lockdep.js';
import { Pgd } from './pgtable.js';
import type { K } from '../sched/sched.js';
import type { Kernel } from '../kernel.js';

/* vm_flags (include/linux/mm.h), the kernel's values. */
export const VM_NONE = 0;
export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;
export const VM_MAYREAD = 0x10;
export const VM_MAYWRITE = 0x20;
export const VM_MAYEXEC = 0x40;
export const VM_MAYSHARE = 0x80;
export const VM_GROWSDOWN = 0x100;
export const VM_PFNMAP = 0x400;
export const VM_LOCKED = 0x2000;
export const VM_IO = 0x4000;
export const VM_DONTCOPY = 0x20000;
export const VM_DONTEXPAND = 0x40000;
export const VM_ACCOUNT = 0x100000;
export const VM_NORESERVE = 0x200000;
export const VM_HUGETLB = 0x400000;
export const VM_WIPEONFORK = 0x2000000;
export const VM_DONTDUMP = 0x4000000;
export const VM_SOFTDIRTY = 0x8000000;
export const VM_MIXEDMAP = 0x10000000;
export const VM_HUGEPAGE = 0x20000000;
export const VM_NOHUGEPAGE = 0x40000000;

export const VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC;

/**
 * struct anon_vma. A folio's anon mapping points here; rmap walks visit
 * every VMA chained to it (anon_vma_chain). A child VMA after fork() chains
 * to every anon_vma of the parent VMA plus its own new one.
 * Protected by the anon_vma rwsem in the kernel; model rmap walks never
 * yield, so the lock is implicit.
 */
/**
 * The VMAs of an anon_vma or an address_space's i_mmap: a set that also
 * keeps an array of its members, so the rmap walks (once per migrated page)
 * index an array instead of allocating an iterator. Changes (VMA creation,
 * split, removal) are rare.
 */
export class VmaSet {
  private readonly set = new Set<Vma>();
  /** The members, in insertion order; do not modify. */
  list: Vma[] = [];
  get size(): number {
    return this.list.length;
  }
  has(v: Vma): boolean {
    return this.set.has(v);
  }
  add(v: Vma): this {
    if (!this.set.has(v)) {
      this.set.add(v);
      this.list.push(v);
    }
    return this;
  }
  delete(v: Vma): boolean {
    if (!this.set.delete(v)) return false;
    this.list = this.list.filter((x) => x !== v);
    return true;
  }
  [Symbol.iterator](): Iterator<Vma> {
    return this.list[Symbol.iterator]();
  }
}

export class AnonVma {
  readonly vmas = new VmaSet();
  /** Folios whose mapping points here (kept for debug_vm and rmap). */
  constructor(readonly id: number, readonly root: AnonVma | null) {}
}

/**
 * struct address_space of a tmpfs/shmem inode or a hugetlbfs file: the page
 * cache (index -> folio head pfn) and i_mmap (the VMAs mapping it).
 * pages: protected by the i_pages lock; i_mmap by i_mmap_rwsem (implicit).
 */
export class AddressSpace {
  readonly pages = new Map<number, number>();
  readonly iMmap = new VmaSet();
  /** i_size in bytes. */
  size = 0;
  /** inode->i_count: open files and VMAs (ihold/iput in fs/inode.ts). */
  iCount = 0;
  /** sb->s_op->evict_inode, called by the last iput() (shmem / hugetlbfs set it at creation). */
  evictInode: ((k: Kernel, as: AddressSpace) => void) | null = null;
  /** hugetlbfs: the inode's resv_map (indices with a reserved huge page), else null. */
  hugetlbResv: Set<number> | null = null;
  /** hugetlbfs: the mm that owns the reservations of a private mapping (HPAGE_RESV_OWNER), else null. */
  hugetlbResvOwner: MmStruct | null = null;
  constructor(readonly id: number, readonly kind: 'shmem' | 'hugetlbfs' | 'device') {}
}

/** struct vm_fault: what the fault handler passes to ->fault and ->migrate_to_ram. */
export interface VmFault {
  vma: Vma;
  /** Faulting address, page aligned (vmf->address). */
  address: number;
  /** The real faulting address (vmf->real_address). */
  realAddress: number;
  /** FAULT_FLAG_* */
  flags: number;
  /** vmf->page: the device-private page for migrate_to_ram. */
  page: number;
  /** The PTE (or PMD) value seen when the fault started (orig_pte). */
  origV: number;
  origF: number;
  /** True when the fault came through a PMD-level entry. */
  pmdLevel: boolean;
}

/** struct vm_operations_struct (the parts the model uses). */
export interface VmOps {
  name: string;
  /** ->fault(): fill vmf.page; returns VM_FAULT_* bits. */
  fault?: (vmf: VmFault) => K<number>;
  /** ->close() */
  close?: (vma: Vma) => void;
  /** ->open() on fork / split */
  open?: (vma: Vma) => void;
}

/**
 * struct mempolicy (include/linux/mempolicy.h) as far as the model places
 * pages with it: the mode (MPOL_PREFERRED / MPOL_BIND / MPOL_INTERLEAVE /
 * MPOL_LOCAL, mm/mempolicy.ts), the mode flags and the node set in
 * ascending order. Immutable once made, so VMAs share it where the kernel
 * would mpol_dup() a copy (vma_dup_policy).
 */
export interface Mempolicy {
  readonly mode: number;
  readonly flags: number;
  readonly nodes: readonly number[];
}

/**
 * struct vm_area_struct. [start, end) page aligned; pgoff is the page offset
 * in the file, or for anon VMAs the linear page index (start >> PAGE_SHIFT at
 * creation, preserved by mremap so rmap can compute addresses).
 * Fields are protected by mmap_lock (write to change, read to use).
 */
export class Vma {
  anonVma: AnonVma | null = null;
  /**
   * vma->anon_vma_chain: the anon_vmas this VMA is linked to besides its own
   * (anonVmaLink / anonVmaClone in mmap.ts), or null before the first link.
   */
  anonVmaChain: Set<AnonVma> | null = null;
  file: AddressSpace | null = null;
  ops: VmOps | null = null;
  /** vm_private_data */
  privateData: unknown = null;
  /** vma->vm_policy (mbind(2)); null: MPOL_DEFAULT, the task's policy applies. */
  policy: Mempolicy | null = null;
  constructor(
    public mm: MmStruct,
    public start: number,
    public end: number,
    public flags: number,
    public pgoff: number,
  ) {}

  isAnon(): boolean {
    return this.file === null && this.ops === null;
  }

  /** linear_page_index(): the page offset of addr within the object. */
  linearPageIndex(addr: number): number {
    return this.pgoff + (addr - this.start) / 4096;
  }

  /** vma_address(): the address of page offset idx in this VMA, or -1. */
  addressOf(idx: number): number {
    const a = this.start + (idx - this.pgoff) * 4096;
    return a >= this.start && a < this.end ? a : -1;
  }

  toString(): string {
    return `vma [${this.start.toString(16)}-${this.end.toString(16)}) flags ${(this.flags >>> 0).toString(16)}${this.file ? ` file#${this.file.id}` : ''}`;
  }
}

/** mm->flags bits (MMF_*). */
export const MMF_HAS_PINNED = 1 << 0;

/**
 * struct mm_struct.
 *   vmas            mmap_lock; sorted by start, non-overlapping (the maple tree)
 *   pgd             page-table pages: mmap_lock + PTL / pmd lock per table
 *   mmUsers         atomic: address-space users (mmget/mmput); 0 = torn down
 *   mmCount         atomic: struct references (mmgrab/mmdrop)
 *   notifiers       see mmu_notifier.ts
 */
export class MmStruct {
  readonly pgd = new Pgd();
  readonly mmapLock: RwSem;
  vmas: Vma[] = [];
  mmUsers = 1;
  mmCount = 1;
  flags = 0;
  /**
   * mm->write_protect_seq (a seqcount): odd while fork's copy_page_range()
   * write-protects a COW mapping; GUP-fast FOLL_PIN gives up (returns 0
   * pages pinned) when it is odd or changed during its walk.
   */
  writeProtectSeq = 0;
  /** Top of the mmap area (mm->mmap_base), below the stack gap. */
  mmapBase = 0x7f0000000000;
  /** Lowest address mmap may use. */
  mmapMin = 0x10000;
  /**
   * mm->start_brk and mm->brk: the program break (mm/mmap.c brk(2),
   * src/kernel/mm/brk.ts). execve() puts start_brk just above the program's
   * data; the model has no ELF loader and uses the address a small PIE gets
   * on x86-64 with ASLR off (setarch -R): 0x555555559000.
   */
  startBrk = 0x555555559000;
  brk = 0x555555559000;
  /** TASK_SIZE */
  taskSize = 0x7ffffffff000;
  /** RSS counters (MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS). */
  readonly rss = { anon: 0, file: 0, shmem: 0, swap: 0 };
  /** Anything the mmu_notifier layer attaches (struct mmu_notifier_subscriptions). */
  notifierSubs: unknown = null;
  /**
   * Checked mode only (null otherwise): the mmu_notifier ranges between
   * invalidate_range_start and _end in this mm, registered subscribers or
   * not (the kernel keeps only their count, active_invalidate_ranges, and
   * only with subscribers). mmu_notifier.ts maintains it and checks every
   * entry change against it.
   */
  invalidateRanges: Array<{ start: number; end: number }> | null = null;
  /** The machine this mm lives on. */
  kernel!: Kernel;
  constructor(readonly id: number) {
    this.mmapLock = new RwSem(`mmap_lock#${id}`, LOCK_CLASSES.mmap_lock);
  }

  /** find_vma(): first VMA with end > addr, or null. */
  findVma(addr: number): Vma | null {
    const v = this.vmas;
    let lo = 0;
    let hi = v.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (v[mid].end <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo < v.length ? v[lo] : null;
  }

  /** vma_lookup(): the VMA containing addr, or null. */
  vmaLookup(addr: number): Vma | null {
    const vma = this.findVma(addr);
    return vma !== null && vma.start <= addr ? vma : null;
  }

  /** Insert a VMA keeping the array sorted (vma_link). Caller checked for overlap. */
  insertVma(vma: Vma): void {
    const v = this.vmas;
    let lo = 0;
    let hi = v.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (v[mid].start < vma.start) lo = mid + 1;
      else hi = mid;
    }
    v.splice(lo, 0, vma);
  }

  removeVma(vma: Vma): void {
    const i = this.vmas.indexOf(vma);
    if (i >= 0) this.vmas.splice(i, 1);
  }
}
