// SPDX-License-Identifier: GPL-2.0-only
/**
 * mmap(2) and munmap(2) (mm/mmap.c do_mmap / mmap_region /
 * get_unmapped_area, mm/vma.c __split_vma / do_vmi_munmap / remove_vma,
 * mm/util.c vm_mmap_pgoff, mm/gup.c populate), plus the VMA bookkeeping
 * the other syscalls share: anon_vma chains, VMA split, VMA removal.
 *
 * anon_vma chains: a VMA is linked to its own anon_vma (vma.anonVma) and,
 * after fork, to every anon_vma of the parent VMA (anon_vma_clone). The
 * model records the extra links in a WeakMap here instead of a field of
 * Vma, so rmap walks (AnonVma.vmas) stay the only structure rmap.ts reads.
 *
 * Differences from the kernel: no VMA merging (adjacent compatible VMAs
 * stay separate; /proc/self/maps would show more lines), no
 * RLIMIT/map_count/overcommit accounting, no personality flags, no pkeys.
 */
import type { K } from '../sched/sched.js';
import { EINVAL, ENOMEM, EEXIST, EACCES, ENODEV, EOPNOTSUPP, EOVERFLOW, EPERM } from '../errno.js';
import {
  type AnonVma, type MmStruct, Vma, VM_READ, VM_WRITE, VM_EXEC, VM_SHARED, VM_MAYREAD, VM_MAYWRITE, VM_MAYEXEC,
  VM_MAYSHARE, VM_GROWSDOWN, VM_LOCKED, VM_NORESERVE, VM_HUGETLB, VM_DONTEXPAND, VM_ACCOUNT, VM_SOFTDIRTY,
} from './mm_types.js';
import { PAGE_SIZE, PMD_SIZE } from './page.js';
import { T_NONE, T_TABLE, pmdIndex, pmdTableOf, pteType, pmdAligned, pmdAlignUp } from './pgtable.js';
import { MMU_NOTIFY_UNMAP, mmuNotifierRangeInit, mmuNotifierInvalidateRangeStart, mmuNotifierInvalidateRangeEnd } from './mmu_notifier.js';
import { unmapPageRange, ZAP_UNMAP } from './zap.js';
import { splitHugePmdNotify } from './huge_memory.js';
import { handleMmFault, FAULT_FLAG_WRITE, VM_FAULT_RETRY } from './memory.js';
import { FMODE_READ, FMODE_WRITE, type File, fput } from '../fs/chardev.js';
import { shmemZeroSetup, mappingGet, mappingPut } from './shmem.js';
import { hugetlbFileSetup, hugetlbVmaClose, hugetlbFileOperations, HPAGE_SIZE } from './hugetlb.js';
import { mmapAssertWriteLocked, mmapReadLock, mmapWriteLock } from './mmap_lock.js';

/* mmap prot (include/uapi/asm-generic/mman-common.h) */
export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
export const PROT_SEM = 0x8;
export const PROT_GROWSDOWN = 0x01000000;
export const PROT_GROWSUP = 0x02000000;

/* mmap flags (x86-64 values) */
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_DROPPABLE = 0x08;
export const MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_GROWSDOWN = 0x0100;
export const MAP_DENYWRITE = 0x0800;
export const MAP_EXECUTABLE = 0x1000;
export const MAP_LOCKED = 0x2000;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_NONBLOCK = 0x10000;
export const MAP_STACK = 0x20000;
export const MAP_HUGETLB = 0x40000;
export const MAP_SYNC = 0x80000;
export const MAP_FIXED_NOREPLACE = 0x100000;
export const MAP_UNINITIALIZED = 0x4000000;
export const MAP_HUGE_SHIFT = 26;
export const MAP_HUGE_MASK = 0x3f;
export const MAP_HUGE_2MB = 21 << MAP_HUGE_SHIFT;
export const MAP_HUGE_1GB = 30 << MAP_HUGE_SHIFT;

/** LEGACY_MAP_MASK: the flags MAP_SHARED_VALIDATE accepts for ordinary files. */
export const LEGACY_MAP_MASK = MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE | MAP_EXECUTABLE |
  MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB;

/** stack_guard_gap (256 pages), only around VM_GROWSDOWN VMAs. */
const STACK_GUARD_GAP = 256 * PAGE_SIZE;

function pageAlign(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

/* ------------------------------------------------------------------ */
/* anon_vma chains                                                     */
/* ------------------------------------------------------------------ */

/* A VMA's links are vma.anonVmaChain (vma->anon_vma_chain), so the explorer's snapshot restores them. */

/** Every anon_vma the VMA is linked to (its anon_vma_chain). */
export function anonVmaChainOf(vma: Vma): AnonVma[] {
  const out: AnonVma[] = [];
  const c = vma.anonVmaChain;
  if (c) for (const av of c) out.push(av);
  if (vma.anonVma !== null && !(c && c.has(vma.anonVma))) out.push(vma.anonVma);
  return out;
}

/** anon_vma_chain_link(): link vma into av (rmap walks of av visit it). */
export function anonVmaLink(vma: Vma, av: AnonVma): void {
  let c = vma.anonVmaChain;
  if (c === null) {
    c = new Set();
    vma.anonVmaChain = c;
  }
  c.add(av);
  av.vmas.add(vma);
}

/** anon_vma_clone(dst, src): dst joins every anon_vma src is linked to; dst.anonVma = src's. */
export function anonVmaClone(dst: Vma, src: Vma): void {
  for (const av of anonVmaChainOf(src)) anonVmaLink(dst, av);
  dst.anonVma = src.anonVma;
}

/** unlink_anon_vmas(): the VMA leaves every anon_vma; vma.anonVma becomes null. */
export function unlinkAnonVmas(vma: Vma): void {
  for (const av of anonVmaChainOf(vma)) av.vmas.delete(vma);
  vma.anonVmaChain = null;
  vma.anonVma = null;
}

/* ------------------------------------------------------------------ */
/* VMA lifecycle                                                       */
/* ------------------------------------------------------------------ */

/**
 * vm_area_dup(): a copy of vma's fields for `mm` (not inserted, no anon_vma
 * links, no i_mmap link, no file reference): the caller links it. The
 * memory policy is shared (vma_dup_policy; policies are immutable here).
 */
export function vmaDup(vma: Vma, mm: MmStruct): Vma {
  const n = new Vma(mm, vma.start, vma.end, vma.flags, vma.pgoff);
  n.file = vma.file;
  n.ops = vma.ops;
  n.privateData = vma.privateData;
  n.policy = vma.policy; /* vma_dup_policy() */
  return n;
}

/**
 * Link a new (or duplicated) VMA to its file: i_mmap insertion and an inode
 * reference (get_file in the kernel), then vm_ops->open.
 */
export function vmaLinkFile(vma: Vma, callOpen: boolean): void {
  if (vma.file !== null) {
    vma.file.iMmap.add(vma);
    mappingGet(vma.file);
  }
  if (callOpen) vma.ops?.open?.(vma);
}

/**
 * The splitting half of vma_modify(): split vma at start and at end where
 * they fall inside it, so that [start, end) is one VMA of its own, and
 * return that VMA (or -errno from splitVma). Caller holds mmap_lock for
 * write and changes the returned VMA's flags.
 */
export function* vmaIsolateRange(vma: Vma, start: number, end: number): K<Vma | number> {
  mmapAssertWriteLocked(vma.mm, 'vma_modify');
  if (start > vma.start) {
    const r = yield* splitVma(vma, start);
    if (typeof r === 'number') return r;
    vma = r;
  }
  if (end < vma.end) {
    const r = yield* splitVma(vma, end);
    if (typeof r === 'number') return r;
  }
  return vma;
}

/**
 * __split_vma(vma, addr, new_below=0): vma keeps [start, addr) and a new VMA
 * [addr, end) is inserted after it, linked to the same anon_vmas and file.
 * A THP PMD straddling addr is split first (vma_adjust_trans_huge).
 * Returns the new VMA or -errno (-EINVAL: hugetlb VMA split at an address
 * that is not huge-page aligned, as hugetlb_vm_op_split). Caller holds
 * mmap_lock for write.
 */
export function* splitVma(vma: Vma, addr: number): K<Vma | number> {
  mmapAssertWriteLocked(vma.mm, 'split_vma');
  if (addr <= vma.start || addr >= vma.end) return vma;
  if ((vma.flags & VM_HUGETLB) && addr % HPAGE_SIZE !== 0) return -EINVAL;
  if (vma.mm.kernel.shouldFail('vm_area_dup')) return -ENOMEM; /* new = vm_area_dup(vma) */
  if (!pmdAligned(addr) && !(vma.flags & VM_HUGETLB)) {
    const pmd = pmdTableOf(vma.mm.pgd, addr, false);
    if (pmd !== null) {
      const i = pmdIndex(addr);
      const t = pteType(pmd.f[i]);
      if (t !== T_NONE && t !== T_TABLE) yield* splitHugePmdNotify(vma, pmd, i, addr);
    }
  }
  const n = vmaDup(vma, vma.mm);
  n.start = addr;
  n.pgoff = vma.pgoff + (addr - vma.start) / PAGE_SIZE;
  anonVmaClone(n, vma);
  vmaLinkFile(n, true);
  vma.end = addr;
  vma.mm.insertVma(n);
  return n;
}

/**
 * remove_vma(): the VMA is gone (already detached from mm.vmas and its
 * pages zapped): vm_ops->close, i_mmap removal and the file (inode)
 * reference, hugetlb reservations, anon_vma unlink.
 */
export function removeVmaObjects(vma: Vma): void {
  vma.ops?.close?.(vma);
  if (vma.flags & VM_HUGETLB) hugetlbVmaClose(vma);
  if (vma.file !== null) {
    vma.file.iMmap.delete(vma);
    mappingPut(vma.mm.kernel, vma.file);
  }
  unlinkAnonVmas(vma);
}

/** find_vma_intersection() */
export function findVmaIntersection(mm: MmStruct, start: number, end: number): Vma | null {
  const v = mm.findVma(start);
  return v !== null && v.start < end ? v : null;
}

/* ------------------------------------------------------------------ */
/* get_unmapped_area                                                   */
/* ------------------------------------------------------------------ */

function vmStartGap(v: Vma): number {
  return v.flags & VM_GROWSDOWN ? Math.max(0, v.start - STACK_GUARD_GAP) : v.start;
}

/**
 * vm_unmapped_area() top-down: the highest address a with low <= a,
 * a + len <= high, a % align == 0 (align a power of two >= PAGE_SIZE), such
 * that [a, a+len) is free. -ENOMEM if none.
 */
export function unmappedAreaTopdown(mm: MmStruct, len: number, low: number, high: number, align = PAGE_SIZE): number {
  const v = mm.vmas;
  // Gaps from the top: [prevEnd, nextStart) for consecutive VMAs.
  for (let idx = v.length; idx >= 0; idx--) {
    const gapEnd = Math.min(high, idx < v.length ? vmStartGap(v[idx]) : high);
    const gapStart = Math.max(low, idx > 0 ? v[idx - 1].end : low);
    if (gapEnd <= gapStart || gapEnd - gapStart < len) continue;
    let a = gapEnd - len;
    a -= a % align;
    if (a >= gapStart) return a;
  }
  return -ENOMEM;
}

/**
 * get_unmapped_area() / arch_get_unmapped_area_topdown(): with MAP_FIXED,
 * addr itself; else the hint if page-aligned-up it is free; else the highest
 * gap below mm.mmapBase that fits (so munmap + mmap of the same size returns
 * the same address). Private anonymous mappings whose length is a multiple
 * of 2 MiB are THP-aligned (thp_get_unmapped_area_vmflags, padded search as
 * the kernel); hugetlb mappings are 2 MiB aligned (hugetlb_get_unmapped_area).
 * Returns the address or -errno (-ENOMEM: no room or out of range,
 * -EINVAL: result or fixed address not page aligned).
 */
export function getUnmappedArea(mm: MmStruct, hugetlb: boolean, addr: number, len: number, flags: number, anonPrivate = false): number {
  if (len > mm.taskSize - mm.mmapMin) return -ENOMEM;
  let res: number;
  if (flags & MAP_FIXED) {
    if (hugetlb && (addr % HPAGE_SIZE !== 0 || len % HPAGE_SIZE !== 0)) return -EINVAL;
    if (addr < 0) return -ENOMEM; /* an unsigned address above TASK_SIZE */
    res = addr;
  } else {
    res = -1;
    if (addr) {
      let a = pageAlign(addr);
      if (hugetlb) a = Math.ceil(a / HPAGE_SIZE) * HPAGE_SIZE;
      if (mm.taskSize - len >= a && a >= mm.mmapMin && findVmaIntersection(mm, a, a + len) === null) res = a;
    }
    if (res < 0) {
      const low = Math.max(PAGE_SIZE, mm.mmapMin);
      if (hugetlb) {
        res = unmappedAreaTopdown(mm, len, low, mm.mmapBase, HPAGE_SIZE);
      } else if (!addr && anonPrivate && pmdAligned(len)) {
        // thp_get_unmapped_area_vmflags(): search len + PMD_SIZE, then align.
        const r = unmappedAreaTopdown(mm, len + PMD_SIZE, low, mm.mmapBase);
        if (r < 0) res = unmappedAreaTopdown(mm, len, low, mm.mmapBase);
        else {
          const offSub = pmdAlignUp(r) - r; /* (off - ret) & (size - 1), off = 0 */
          res = offSub === 0 ? r + PMD_SIZE : r + offSub;
        }
      } else {
        res = unmappedAreaTopdown(mm, len, low, mm.mmapBase);
      }
      if (res < 0) return res;
    }
  }
  if (res > mm.taskSize - len) return -ENOMEM;
  if (res % PAGE_SIZE !== 0) return -EINVAL;
  return res;
}

/* ------------------------------------------------------------------ */
/* munmap                                                              */
/* ------------------------------------------------------------------ */

/**
 * do_vmi_align_munmap() for a page-aligned, non-empty [start, end): split
 * the VMAs at the edges, detach every VMA in range, fire MMU_NOTIFY_UNMAP
 * over the range, zap, free empty page tables, remove the VMAs. Returns 0
 * or -errno from a split (-EINVAL for unaligned hugetlb). Caller holds
 * mmap_lock for write.
 */
export function* munmapRange(mm: MmStruct, start: number, end: number): K<number> {
  mmapAssertWriteLocked(mm, 'do_vmi_align_munmap');
  let vma = findVmaIntersection(mm, start, end);
  if (vma === null) return 0;
  // Check hugetlb alignment of both ends before changing anything.
  const last = mm.findVma(end - 1);
  if ((vma.flags & VM_HUGETLB) && vma.start < start && start % HPAGE_SIZE !== 0) return -EINVAL;
  if (last !== null && last.start < end && (last.flags & VM_HUGETLB) && last.end > end && end % HPAGE_SIZE !== 0) return -EINVAL;
  if (vma.start < start) {
    const r = yield* splitVma(vma, start);
    if (typeof r === 'number') return r;
    vma = r;
  }
  const last2 = mm.findVma(end - 1);
  if (last2 !== null && last2.start < end && last2.end > end) {
    const r = yield* splitVma(last2, end);
    if (typeof r === 'number') return r;
  }
  const victims: Vma[] = [];
  for (const v of mm.vmas) if (v.start >= start && v.end <= end) victims.push(v);
  for (const v of victims) mm.removeVma(v);
  const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_UNMAP, start, end);
  yield* mmuNotifierInvalidateRangeStart(range);
  try {
    for (const v of victims) yield* unmapPageRange(v, v.start, v.end, ZAP_UNMAP);
  } finally {
    mmuNotifierInvalidateRangeEnd(range);
  }
  for (const v of victims) removeVmaObjects(v);
  return 0;
}

/**
 * do_munmap(mm, start, len): munmap(2) without the lock. -EINVAL for an
 * unaligned start, a zero (after page alignment) length or a range beyond
 * TASK_SIZE; 0 when nothing is mapped there. Caller holds mmap_lock (write).
 */
export function* doMunmap(mm: MmStruct, start: number, len: number): K<number> {
  mmapAssertWriteLocked(mm, 'do_munmap');
  if (start % PAGE_SIZE !== 0 || !(start >= 0 && start <= mm.taskSize) || len > mm.taskSize - start || len < 0) return -EINVAL;
  len = pageAlign(len);
  if (len === 0) return -EINVAL;
  return yield* munmapRange(mm, start, start + len);
}

/** vm_munmap(): munmap(2). Takes and releases mmap_lock for write. */
export function* vmMunmap(mm: MmStruct, start: number, len: number): K<number> {
  const s = mm.kernel.sched;
  yield* mmapWriteLock(mm);
  try {
    return yield* doMunmap(mm, start, len);
  } finally {
    mm.mmapLock.writeUnlock(s);
  }
}

/* ------------------------------------------------------------------ */
/* mmap                                                                */
/* ------------------------------------------------------------------ */

/** calc_vm_prot_bits() */
export function calcVmProtBits(prot: number): number {
  return (prot & PROT_READ ? VM_READ : 0) | (prot & PROT_WRITE ? VM_WRITE : 0) | (prot & PROT_EXEC ? VM_EXEC : 0);
}

/** Result of do_mmap: the address, and whether the caller should populate. */
export interface MmapResult {
  addr: number;
  populate: boolean;
}

/**
 * do_mmap(file, addr, len, prot, flags, pgoff): create a mapping. Caller
 * holds mmap_lock for write. `file` is the struct file (null for
 * MAP_ANONYMOUS; for anonymous MAP_HUGETLB the caller passes the hugetlbfs
 * file from hugetlbFileSetup, as ksys_mmap_pgoff does). Returns the address,
 * or -errno:
 *   -EINVAL  len 0; MAP_FIXED addr not page aligned; neither MAP_SHARED
 *            nor MAP_PRIVATE (any other MAP_TYPE, and MAP_SHARED_VALIDATE
 *            for anonymous memory); VM_GROWSDOWN on a shared/file mapping
 *   -ENOMEM  len overflows when page aligned; no room; beyond TASK_SIZE
 *   -EOVERFLOW pgoff + len overflows, or ends beyond MAX_LFS_FILESIZE for a
 *            tmpfs / hugetlbfs file (file_mmap_ok)
 *   -EEXIST  MAP_FIXED_NOREPLACE and something is mapped in range
 *   -EPERM   MAP_FIXED below mmap_min_addr
 *   -EOPNOTSUPP MAP_SHARED_VALIDATE with flags outside LEGACY_MAP_MASK
 *   -EACCES  file not open for reading; MAP_SHARED + PROT_WRITE on a file
 *            not open for writing
 *   -ENODEV  the file has no ->mmap
 * Unknown flag bits are ignored otherwise, as Linux does. MAP_FIXED
 * replaces what was mapped (munmap of the range first).
 */
export function* doMmap(mm: MmStruct, addr: number, len: number, prot: number, flags: number, file: File | null, pgoff: number): K<number> {
  const r = yield* doMmapInner(mm, addr, len, prot, flags, file, pgoff);
  return typeof r === 'number' ? r : r.addr;
}

function* doMmapInner(mm: MmStruct, addr: number, len: number, prot: number, flags: number, file: File | null, pgoff: number): K<number | MmapResult> {
  if (len === 0) return -EINVAL;
  if (flags & MAP_FIXED_NOREPLACE) flags |= MAP_FIXED;
  if (!(flags & MAP_FIXED) && addr < mm.mmapMin && addr > 0) addr = pageAlign(mm.mmapMin); // round_hint_to_min (a negative hint is a huge unsigned one)
  const alen = pageAlign(len);
  if (alen === 0 || alen > Number.MAX_SAFE_INTEGER / 2) return -ENOMEM;
  len = alen;
  if (pgoff + len / PAGE_SIZE > 2 ** 52) return -EOVERFLOW;
  const hugetlb = file !== null && file.mapping !== null && file.mapping.kind === 'hugetlbfs';
  let a = getUnmappedArea(mm, hugetlb, addr, len, flags, file === null && (flags & MAP_TYPE) === MAP_PRIVATE);
  if (a < 0) return a;
  if ((flags & MAP_FIXED) && a < mm.mmapMin) return -EPERM; // security_mmap_addr()
  if (flags & MAP_FIXED_NOREPLACE) {
    if (findVmaIntersection(mm, a, a + len) !== null) return -EEXIST;
  }
  let vmFlags = calcVmProtBits(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_SOFTDIRTY;
  if (flags & MAP_GROWSDOWN) vmFlags |= VM_GROWSDOWN;
  if (flags & MAP_LOCKED) vmFlags |= VM_LOCKED;
  if (flags & MAP_NORESERVE) vmFlags |= VM_NORESERVE;
  if (file !== null) {
    // file_mmap_ok(): a regular file (tmpfs, hugetlbfs) ends at the kernel's
    // MAX_LFS_FILESIZE (2^63 - 1), a device at ULONG_MAX.
    if (pgoff + len / PAGE_SIZE >= (file.mapping !== null ? 2 ** 51 : 2 ** 52)) return -EOVERFLOW;
    const type = flags & MAP_TYPE;
    if (type !== MAP_SHARED && type !== MAP_SHARED_VALIDATE && type !== MAP_PRIVATE) return -EINVAL;
    if (type !== MAP_PRIVATE) {
      if (type === MAP_SHARED) flags &= LEGACY_MAP_MASK | MAP_FIXED_NOREPLACE;
      else if (flags & ~(LEGACY_MAP_MASK | MAP_SHARED_VALIDATE)) return -EOPNOTSUPP;
      if ((prot & PROT_WRITE) && !(file.fMode & FMODE_WRITE)) return -EACCES;
      vmFlags |= VM_SHARED | VM_MAYSHARE;
      if (!(file.fMode & FMODE_WRITE)) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
    }
    if (!(file.fMode & FMODE_READ)) return -EACCES;
    if (!file.fops.mmap) return -ENODEV;
    if (vmFlags & VM_GROWSDOWN) return -EINVAL;
  } else {
    switch (flags & MAP_TYPE) {
      case MAP_SHARED:
        if (vmFlags & VM_GROWSDOWN) return -EINVAL;
        pgoff = 0;
        vmFlags |= VM_SHARED | VM_MAYSHARE;
        break;
      case MAP_PRIVATE:
        pgoff = a / PAGE_SIZE;
        break;
      default:
        return -EINVAL;
    }
  }
  if (hugetlb) vmFlags |= VM_HUGETLB | VM_DONTEXPAND;
  if ((vmFlags & (VM_SHARED | VM_WRITE)) === VM_WRITE && !(vmFlags & VM_NORESERVE)) vmFlags |= VM_ACCOUNT;
  a = yield* mmapRegion(mm, file, a, len, vmFlags, pgoff);
  if (a < 0) return a;
  const populate = (flags & (MAP_POPULATE | MAP_NONBLOCK)) === MAP_POPULATE || (flags & MAP_LOCKED) !== 0;
  return { addr: a, populate };
}

/**
 * mmap_region(): replace whatever is mapped in [addr, addr+len) (MAP_FIXED)
 * and insert the new VMA; ->mmap of the file (tmpfs, hugetlbfs, drivers) or
 * shmem_zero_setup() for shared anonymous memory. Returns addr or -errno.
 */
function* mmapRegion(mm: MmStruct, file: File | null, addr: number, len: number, vmFlags: number, pgoff: number): K<number> {
  // vm_area_alloc() failing: -ENOMEM with the old mappings of a MAP_FIXED
  // range intact (since v6.12 __mmap_region() gathers them first and
  // vms_abort_munmap_vmas() puts them back on error).
  if (mm.kernel.shouldFail('vm_area_alloc')) return -ENOMEM;
  if (findVmaIntersection(mm, addr, addr + len) !== null) {
    const r = yield* munmapRange(mm, addr, addr + len);
    if (r < 0) return r;
  }
  const vma = new Vma(mm, addr, addr + len, vmFlags, pgoff);
  if (file !== null) {
    vma.file = file.mapping;
    const r = file.fops.mmap!(file, vma);
    if (r < 0) return r;
  } else if (vmFlags & VM_SHARED) {
    const r = shmemZeroSetup(mm.kernel, vma);
    if (r < 0) return r;
  }
  mm.insertVma(vma);
  vmaLinkFile(vma, false);
  return addr;
}

/**
 * mm_populate() / populate_vma_page_range(): fault in [start, start+len)
 * (write faults for private writable mappings, to break COW). Errors are
 * ignored, as mmap(MAP_POPULATE) does. Takes mmap_lock for read.
 */
export function* mmPopulate(mm: MmStruct, start: number, len: number): K<void> {
  const s = mm.kernel.sched;
  yield* mmapReadLock(mm);
  try {
    for (let a = start; a < start + len; a += PAGE_SIZE) {
      const vma = mm.vmaLookup(a);
      if (vma === null) continue;
      if (!(vma.flags & (VM_READ | VM_WRITE | VM_EXEC))) continue;
      const write = (vma.flags & (VM_WRITE | VM_SHARED)) === VM_WRITE;
      for (let tries = 0; tries < 3; tries++) {
        const r = yield* handleMmFault(vma, a, write ? FAULT_FLAG_WRITE : 0);
        if (!(r & VM_FAULT_RETRY)) break;
      }
      if (vma.flags & VM_HUGETLB) a += HPAGE_SIZE - (a % HPAGE_SIZE) - PAGE_SIZE;
    }
  } finally {
    mm.mmapLock.readUnlock(s);
  }
}

/**
 * vm_mmap_pgoff() (+ the anonymous MAP_HUGETLB part of ksys_mmap_pgoff):
 * take mmap_lock for write, do_mmap(), drop it, then populate for
 * MAP_POPULATE / MAP_LOCKED. MAP_HUGETLB for anonymous memory creates a
 * hugetlbfs file of len rounded up to 2 MiB (-EINVAL for a size other than
 * 2 MiB in the MAP_HUGE_* bits, -ENOMEM when the pool cannot reserve).
 * Returns the address or -errno.
 */
export function* vmMmapPgoff(mm: MmStruct, addr: number, len: number, prot: number, flags: number, file: File | null, pgoff: number): K<number> {
  const k = mm.kernel;
  const s = k.sched;
  if (file === null && (flags & MAP_HUGETLB) && (flags & MAP_ANONYMOUS)) {
    const shift = (flags >>> MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
    if (shift !== 0 && shift !== 21) return -EINVAL;
    if (len === 0) return -EINVAL;
    len = Math.ceil(len / HPAGE_SIZE) * HPAGE_SIZE;
    const f = hugetlbFileSetup(k, len, (flags & MAP_NORESERVE) !== 0);
    if (typeof f === 'number') return f;
    file = f;
    pgoff = 0;
  }
  const ownFile = file !== null && file.fops === hugetlbFileOperations && (flags & MAP_ANONYMOUS) !== 0 ? file : null;
  yield* mmapWriteLock(mm);
  let r: number | MmapResult;
  try {
    r = yield* doMmapInner(mm, addr, len, prot, flags, file, pgoff);
  } finally {
    mm.mmapLock.writeUnlock(s);
  }
  // ksys_mmap_pgoff(): fput() of the hugetlbfs file it created; the VMA keeps the inode.
  if (ownFile !== null) yield* fput(ownFile);
  if (typeof r === 'number') return r;
  if (r.populate) yield* mmPopulate(mm, r.addr, pageAlign(len));
  return r.addr;
}
