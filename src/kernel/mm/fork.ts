// SPDX-License-Identifier: GPL-2.0-only
/**
 * fork() and exit() of an address space (kernel/fork.c dup_mmap, mm/rmap.c
 * anon_vma_fork, mm/memory.c copy_page_range / copy_pte_range /
 * copy_present_ptes / copy_nonpresent_pte, mm/huge_memory.c copy_huge_pmd,
 * mm/hugetlb.c copy_hugetlb_page_range, mm/mmap.c exit_mmap).
 *
 * COW at fork, per entry of a private writable (is_cow_mapping) VMA:
 *  - present anon page: write-protected in parent and child and shared,
 *    PG_anon_exclusive cleared (folio_try_dup_anon_rmap_pte). If the page is
 *    exclusive and may be DMA-pinned (MMF_HAS_PINNED && folio_maybe_dma_pinned)
 *    the child gets a copy at once and the parent keeps its writable PTE;
 *  - device-private: the child shares it (folio get + dup rmap, which never
 *    fails for device-private); a writable entry becomes readable in both;
 *  - device-exclusive: restored to a present PTE in the parent first
 *    (try_restore_exclusive_pte; -EBUSY if a driver holds the folio lock,
 *    and fork fails with -ENOMEM), then copied as present;
 *  - migration: a writable / read-exclusive entry becomes readable in the
 *    parent, the child gets the same entry (no rmap: the page is unmapped);
 *  - swap, hwpoison: copied;
 *  - THP PMD (anon VMAs only; file THPs are refaulted): write-protected and
 *    shared, or split and copied PTE by PTE when pinned; PMD migration and
 *    device-private entries as above (a writable device-private PMD becomes
 *    readable without the is_cow_mapping check, as copy_huge_non_present_pmd).
 * Shared mappings copy entries as they are (clean in the child). VMAs with
 * no anon_vma and no PFNMAP are not copied at all (vma_needs_copy): the
 * child refaults them. MMU_NOTIFY_PROTECTION_PAGE covers every COW VMA and
 * mm->write_protect_seq is odd meanwhile (GUP-fast pins back off).
 */
import type { K } from '../sched/sched.js';
import { EBUSY, EAGAIN, ENOMEM } from '../errno.js';
import {
  type MmStruct, type Vma, VM_SHARED, VM_MAYWRITE, VM_DONTCOPY, VM_WIPEONFORK, VM_PFNMAP, VM_MIXEDMAP, VM_HUGETLB,
  VM_WRITE, MMF_HAS_PINNED,
} from './mm_types.js';
import { _PAGE_SWP_EXCLUSIVE } from './swap.js';
import {
  type PmdTable, type PteTable, T_NONE, T_PRESENT, T_TABLE, T_SWAP, T_MIGRATION_READ, T_DEVICE_PRIVATE_READ,
  T_DEVICE_PRIVATE_WRITE, T_DEVICE_EXCLUSIVE, _PAGE_RW, _PAGE_DIRTY, _PAGE_ACCESSED, _PAGE_SPECIAL, _PAGE_SOFT_DIRTY,
  _PAGE_UFFD_WP, isMigrationType, pmdIndex, pmdTableOf, pteIndex, pteTableAlloc, pudAddrEnd, ptePresent, pteNone,
  pteType, pteMkType, pmdAddrEnd,
} from './pgtable.js';
import { setPte, setPteFlags, setPmdLeaf, setPmdFlags, mkPresent } from './pte_ops.js';
import { pmdAllocFails, pteAllocFails } from './pgtable.js';
import { HPAGE_PMD_NR, PAGE_SIZE, PG_anon, PG_anon_exclusive } from './page.js';
import { folioGet, folioPut, folioMaybeDmaPinned } from './folio.js';
import { folioAddNewAnonRmap, folioDupFileRmapPte, folioTryDupAnonRmapPte } from './rmap.js';
import {
  MMU_NOTIFY_CLEAR, MMU_NOTIFY_PROTECTION_PAGE, MMU_NOTIFY_RELEASE, MMU_NOTIFY_UNMAP, mmuNotifierRangeInit,
  mmuNotifierInvalidateRangeStart, mmuNotifierInvalidateRangeEnd, mmuNotifierRelease, mmHasNotifiers,
} from './mmu_notifier.js';
import { splitHugePmd } from './huge_memory.js';
import { tryRestoreExclusivePte } from './device_exclusive.js';
import { addMmCounter, spinLock, unmapPageRange, ZAP_UNMAP } from './zap.js';
import { spinLockNested } from '../sched/locks.js';
import { SINGLE_DEPTH_NESTING } from '../sched/lockdep.js';
import { vmaDup, anonVmaClone, anonVmaLink, vmaLinkFile, removeVmaObjects } from './mmap.js';
import { mmapAssertWriteLocked, mmapWriteLock, mmapWriteLockNested } from './mmap_lock.js';
import { lockdepAssertHeld } from '../sched/locks.js';

/** is_cow_mapping(): private and may be written. */
export function isCowMapping(flags: number): boolean {
  return (flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
}

/** vma_needs_copy(): only VMAs with anon pages (or PFN maps) have page tables copied. */
function vmaNeedsCopy(dst: Vma, src: Vma): boolean {
  void dst;
  return (src.flags & (VM_PFNMAP | VM_MIXEDMAP)) !== 0 || src.anonVma !== null;
}

/** folio_needs_cow_for_dma(): the src mm has pinned pages and this folio may be one. */
function needsCowForDma(src: Vma, pfn: number): boolean {
  return (src.mm.flags & MMF_HAS_PINNED) !== 0 && folioMaybeDmaPinned(src.mm.kernel, pfn);
}

/**
 * copy_present_ptes() for one PTE. Returns 0 or -ENOMEM (the copy of a
 * pinned page could not be allocated). Caller holds both PTLs.
 */
function copyPresentPte(dst: Vma, src: Vma, spt: PteTable, dpt: PteTable, j: number, addr: number, cow: boolean): number {
  lockdepAssertHeld(src.mm.kernel.sched, spt.ptl, 'copy_present_ptes');
  lockdepAssertHeld(src.mm.kernel.sched, dpt.ptl, 'copy_present_ptes');
  const k = src.mm.kernel;
  const p = k.pages;
  const f = spt.f[j];
  const pfn = spt.v[j];
  let cf = f;
  if (!((f & _PAGE_SPECIAL) || pfn === k.zeroPfn || (src.flags & VM_PFNMAP))) {
    const head = p.folioPfn(pfn);
    if (p.flags[head] & PG_anon) {
      folioGet(k, pfn);
      let r = 0;
      if (needsCowForDma(src, pfn)) r = folioTryDupAnonRmapPte(k, pfn);
      else {
        p.flags[pfn] &= ~PG_anon_exclusive;
        p.mapcount[pfn]++;
      }
      if (r === -EBUSY) {
        // copy_present_page(): the child gets its own copy now.
        folioPut(k, pfn);
        const np = k.buddy.alloc(0, 0, 'fork');
        if (np < 0) return -ENOMEM;
        k.contents.copy(np, pfn);
        folioAddNewAnonRmap(k, np, dst, addr, false);
        k.lru.add(np);
        setPte(dpt, j, np, mkPresent((dst.flags & VM_WRITE) !== 0, true) | (f & _PAGE_SOFT_DIRTY), 'copy_present_page');
        dst.mm.rss.anon++;
        return 0;
      }
      dst.mm.rss.anon++;
    } else {
      folioGet(k, pfn);
      folioDupFileRmapPte(k, pfn);
      addMmCounter(dst.mm, k, head, 1);
    }
  }
  if (cow && (f & _PAGE_RW)) {
    setPteFlags(spt, j, f & ~_PAGE_RW, 'copy_present_ptes');
    cf &= ~_PAGE_RW;
  }
  if (src.flags & VM_SHARED) cf &= ~_PAGE_DIRTY;
  cf &= ~(_PAGE_ACCESSED | _PAGE_UFFD_WP);
  setPte(dpt, j, pfn, cf, 'copy_present_ptes');
  return 0;
}

/**
 * copy_pte_range() for [addr, end) inside one PMD. Returns 0, or -ENOMEM
 * (allocation failure, or -EBUSY from a locked device-exclusive folio,
 * which copy_pmd_range turns into -ENOMEM).
 */
function* copyPteRange(dst: Vma, src: Vma, spt: PteTable, addr: number, end: number, cow: boolean): K<number> {
  const k = src.mm.kernel;
  const s = k.sched;
  const p = k.pages;
  const dmm = dst.mm;
  if (pmdAllocFails(k, dmm.pgd, addr)) return -ENOMEM; /* copy_pmd_range: pmd_alloc */
  const dpmd = pmdTableOf(dmm.pgd, addr, true)!;
  if (pteAllocFails(k, dpmd, pmdIndex(addr))) return -ENOMEM; /* pte_alloc_map_lock */
  const dpt = pteTableAlloc(dmm.pgd, dpmd, pmdIndex(addr), addr);
  if (dpt === null) return -ENOMEM;
  yield* spinLock(s, dpt.ptl);
  yield* spinLockNested(s, spt.ptl, SINGLE_DEPTH_NESTING);
  let ret = 0;
  const j0 = pteIndex(addr);
  const j1 = j0 + (end - addr) / PAGE_SIZE;
  for (let j = j0; j < j1; j++) {
    let f = spt.f[j];
    let t = pteType(f);
    if (t === T_NONE) continue;
    const a = addr + (j - j0) * PAGE_SIZE;
    const v = spt.v[j];
    if (t === T_DEVICE_EXCLUSIVE) {
      // copy_nonpresent_pte(): restore in the parent, then copy as present (-ENOENT).
      if (tryRestoreExclusivePte(src, a, spt, j) < 0) {
        ret = -EBUSY;
        break;
      }
      f = spt.f[j];
      t = pteType(f);
    }
    if (t === T_PRESENT) {
      ret = copyPresentPte(dst, src, spt, dpt, j, a, cow);
      if (ret < 0) break;
      continue;
    }
    const head = p.folioPfn(v);
    if (t === T_DEVICE_PRIVATE_READ || t === T_DEVICE_PRIVATE_WRITE) {
      folioGet(k, v);
      addMmCounter(dmm, k, head, 1);
      // __folio_try_dup_anon_rmap(): maybe_pinned is false for device-private.
      p.flags[v] &= ~PG_anon_exclusive;
      p.mapcount[v]++;
      if (t === T_DEVICE_PRIVATE_WRITE && cow) {
        f = pteMkType(f & ~_PAGE_SOFT_DIRTY, T_DEVICE_PRIVATE_READ);
        setPteFlags(spt, j, f, 'copy_nonpresent_pte');
      }
      setPte(dpt, j, v, f & ~_PAGE_UFFD_WP, 'copy_nonpresent_pte');
    } else if (isMigrationType(t)) {
      addMmCounter(dmm, k, head, 1);
      if (t !== T_MIGRATION_READ && cow) {
        f = pteMkType(f, T_MIGRATION_READ);
        setPteFlags(spt, j, f, 'copy_nonpresent_pte');
      }
      setPte(dpt, j, v, f & ~_PAGE_UFFD_WP, 'copy_nonpresent_pte');
    } else if (t === T_SWAP) {
      // copy_nonpresent_pte(): swap_duplicate(); the page is no longer
      // exclusive to either mm (pte_swp_clear_exclusive() in both).
      k.swap?.dup(v);
      dmm.rss.swap++;
      if (f & _PAGE_SWP_EXCLUSIVE) setPteFlags(spt, j, f & ~_PAGE_SWP_EXCLUSIVE, 'copy_nonpresent_pte');
      setPte(dpt, j, v, f & ~(_PAGE_UFFD_WP | _PAGE_SWP_EXCLUSIVE), 'copy_nonpresent_pte');
    } else {
      setPte(dpt, j, v, f, 'copy_nonpresent_pte');
    }
  }
  spt.ptl.unlock(s);
  dpt.ptl.unlock(s);
  return ret;
}

/**
 * copy_huge_pmd() for an anonymous VMA. Returns 0, -EAGAIN (the pinned THP
 * was split in the parent: copy its PTEs instead) or -ENOMEM.
 */
function* copyHugePmd(dst: Vma, src: Vma, spmd: PmdTable, i: number, addr: number): K<number> {
  const k = src.mm.kernel;
  const s = k.sched;
  const p = k.pages;
  const dmm = dst.mm;
  if (pmdAllocFails(k, dmm.pgd, addr)) return -ENOMEM; /* copy_pmd_range: pmd_alloc */
  const dpmd = pmdTableOf(dmm.pgd, addr, true)!;
  yield* spinLock(s, spmd.lock);
  if (dpmd !== spmd) yield* spinLockNested(s, dpmd.lock, SINGLE_DEPTH_NESTING);
  const unlock = (): void => {
    if (dpmd !== spmd) dpmd.lock.unlock(s);
    spmd.lock.unlock(s);
  };
  let f = spmd.f[i];
  const t = pteType(f);
  const v = spmd.v[i];
  const head = p.folioPfn(v);
  if (t === T_PRESENT) {
    if (v === k.hugeZeroPfn || (f & _PAGE_SPECIAL)) {
      setPmdLeaf(dpmd, i, v, f & ~(_PAGE_RW | _PAGE_ACCESSED | _PAGE_UFFD_WP), 'copy_huge_pmd');
      unlock();
      return 0;
    }
    if ((p.flags[head] & PG_anon_exclusive) && needsCowForDma(src, head)) {
      splitHugePmd(src, spmd, i, addr);
      unlock();
      return -EAGAIN;
    }
    folioGet(k, head);
    for (let n = 0; n < HPAGE_PMD_NR; n++) p.flags[head + n] &= ~PG_anon_exclusive;
    p.entireMapcount[head]++;
    addMmCounter(dmm, k, head, HPAGE_PMD_NR);
    setPmdFlags(spmd, i, f & ~_PAGE_RW, 'copy_huge_pmd');
    setPmdLeaf(dpmd, i, head, f & ~(_PAGE_RW | _PAGE_ACCESSED | _PAGE_UFFD_WP), 'copy_huge_pmd');
  } else if (isMigrationType(t)) {
    addMmCounter(dmm, k, head, HPAGE_PMD_NR);
    if (t !== T_MIGRATION_READ) {
      f = pteMkType(f, T_MIGRATION_READ);
      setPmdFlags(spmd, i, f, 'copy_huge_pmd');
    }
    setPmdLeaf(dpmd, i, v, f & ~_PAGE_UFFD_WP, 'copy_huge_pmd');
  } else if (t === T_DEVICE_PRIVATE_READ || t === T_DEVICE_PRIVATE_WRITE) {
    if (t === T_DEVICE_PRIVATE_WRITE) {
      f = pteMkType(f, T_DEVICE_PRIVATE_READ);
      setPmdFlags(spmd, i, f, 'copy_huge_non_present_pmd');
    }
    k.warnOnPage(p.order[head] === 0, head, 'copy_huge_non_present_pmd: device-private PMD of a small folio');
    folioGet(k, head);
    for (let n = 0; n < HPAGE_PMD_NR; n++) p.flags[head + n] &= ~PG_anon_exclusive;
    p.entireMapcount[head]++;
    addMmCounter(dmm, k, head, HPAGE_PMD_NR);
    setPmdLeaf(dpmd, i, v, f & ~_PAGE_UFFD_WP, 'copy_huge_non_present_pmd');
  } else {
    setPmdLeaf(dpmd, i, v, f, 'copy_huge_pmd');
  }
  unlock();
  return 0;
}

/**
 * copy_hugetlb_page_range() for one PMD leaf of a private hugetlb VMA (a
 * shared one has no anon_vma and is not copied). Returns 0 or -ENOMEM.
 */
function* copyHugetlbPmd(dst: Vma, src: Vma, spmd: PmdTable, i: number, addr: number, cow: boolean): K<number> {
  const k = src.mm.kernel;
  const s = k.sched;
  const p = k.pages;
  if (pmdAllocFails(k, dst.mm.pgd, addr)) return -ENOMEM; /* huge_pte_alloc */
  const dpmd = pmdTableOf(dst.mm.pgd, addr, true)!;
  yield* spinLock(s, spmd.lock);
  const f = spmd.f[i];
  const head = spmd.v[i];
  let ret = 0;
  if (ptePresent(f)) {
    if ((p.flags[head] & PG_anon) && cow && (p.flags[head] & PG_anon_exclusive) && needsCowForDma(src, head)) {
      const np = k.hugetlb.nrFree() - k.hugetlb.resv > 0 ? k.hugetlb.alloc(k) : -1;
      if (np < 0) ret = -ENOMEM;
      else {
        k.contents.copyRange(np, head, HPAGE_PMD_NR);
        folioAddNewAnonRmap(k, np, dst, addr, true);
        setPmdLeaf(dpmd, i, np, T_PRESENT | _PAGE_ACCESSED | _PAGE_DIRTY | ((dst.flags & VM_WRITE) ? _PAGE_RW : 0), 'copy_hugetlb_page_range');
      }
    } else {
      folioGet(k, head);
      if (p.flags[head] & PG_anon) for (let n = 0; n < HPAGE_PMD_NR; n++) p.flags[head + n] &= ~PG_anon_exclusive;
      p.entireMapcount[head]++;
      let cf = f;
      if (cow && (f & _PAGE_RW)) {
        setPmdFlags(spmd, i, f & ~_PAGE_RW, 'copy_hugetlb_page_range');
        cf &= ~_PAGE_RW;
      }
      setPmdLeaf(dpmd, i, head, cf & ~_PAGE_UFFD_WP, 'copy_hugetlb_page_range');
    }
  } else if (!pteNone(f)) {
    setPmdLeaf(dpmd, i, head, f, 'copy_hugetlb_page_range');
  }
  spmd.lock.unlock(s);
  return ret;
}

/**
 * copy_page_range(dst_vma, src_vma): copy the page tables of src into the
 * child's dst (same addresses). Returns 0 or -ENOMEM. Caller holds both
 * mmap_locks for write.
 */
export function* copyPageRange(dst: Vma, src: Vma): K<number> {
  mmapAssertWriteLocked(src.mm, 'copy_page_range');
  mmapAssertWriteLocked(dst.mm, 'copy_page_range');
  if (!vmaNeedsCopy(dst, src)) return 0;
  const smm = src.mm;
  const cow = isCowMapping(src.flags);
  const hugetlb = (src.flags & VM_HUGETLB) !== 0;
  let range = null;
  if (cow) {
    // copy_page_range() uses MMU_NOTIFY_PROTECTION_PAGE; hugetlb VMAs go to
    // copy_hugetlb_page_range() first, whose range is MMU_NOTIFY_CLEAR over
    // the same [vm_start, vm_end) (mm/hugetlb.c).
    range = mmuNotifierRangeInit(smm, hugetlb ? MMU_NOTIFY_CLEAR : MMU_NOTIFY_PROTECTION_PAGE, src.start, src.end);
    yield* mmuNotifierInvalidateRangeStart(range);
    smm.writeProtectSeq++; /* raw_write_seqcount_begin */
  }
  let ret = 0;
  try {
    let addr = src.start;
    while (addr < src.end) {
      const spmd = pmdTableOf(smm.pgd, addr, false);
      if (spmd === null) {
        addr = pudAddrEnd(addr, src.end);
        continue;
      }
      const next = pmdAddrEnd(addr, src.end);
      const i = pmdIndex(addr);
      let t = pteType(spmd.f[i]);
      if (t !== T_NONE && t !== T_TABLE) {
        if (hugetlb) {
          ret = yield* copyHugetlbPmd(dst, src, spmd, i, addr, cow);
          if (ret < 0) break;
          addr = next;
          continue;
        }
        if (!dst.isAnon()) {
          addr = next; /* file THP: the child refaults */
          continue;
        }
        const r = yield* copyHugePmd(dst, src, spmd, i, addr);
        if (r < 0 && r !== -EAGAIN) {
          ret = -ENOMEM;
          break;
        }
        t = pteType(spmd.f[i]);
        if (r === 0) {
          addr = next;
          continue;
        }
      }
      if (t === T_TABLE) {
        const r = yield* copyPteRange(dst, src, spmd.pte[i]!, addr, next, cow);
        if (r < 0) {
          ret = -ENOMEM;
          break;
        }
      }
      addr = next;
    }
  } finally {
    if (range !== null) {
      smm.writeProtectSeq++; /* raw_write_seqcount_end */
      mmuNotifierInvalidateRangeEnd(range);
    }
  }
  return ret;
}

/**
 * dup_mmap(mm, oldmm): give the child mm a copy of every VMA of the parent
 * except VM_DONTCOPY ones. Anon VMAs are linked to all of the parent VMA's
 * anon_vmas plus a new one of their own (anon_vma_fork); VM_WIPEONFORK VMAs
 * start empty with no anon_vma. Page tables are copied by
 * copy_page_range(). Takes both mmap_locks for write. Returns 0 or -ENOMEM
 * (the caller then tears the child mm down with mmput()).
 */
export function* dupMmap(parent: MmStruct, child: MmStruct): K<number> {
  const k = parent.kernel;
  const s = k.sched;
  yield* mmapWriteLock(parent);
  yield* mmapWriteLockNested(child, SINGLE_DEPTH_NESTING);
  let ret = 0;
  try {
    child.mmapBase = parent.mmapBase;
    child.mmapMin = parent.mmapMin;
    child.taskSize = parent.taskSize;
    child.startBrk = parent.startBrk; /* dup_mm(): the whole mm_struct is copied */
    child.brk = parent.brk;
    for (const vma of [...parent.vmas]) {
      if (vma.flags & VM_DONTCOPY) continue;
      if (k.shouldFail('vm_area_dup')) {
        ret = -ENOMEM; /* fail_nomem */
        break;
      }
      const tmp = vmaDup(vma, child);
      if (!(vma.flags & VM_WIPEONFORK) && vma.anonVma !== null) {
        if (k.shouldFail('anon_vma_fork')) {
          ret = -ENOMEM; /* fail_nomem_anon_vma_fork: tmp is freed, never linked */
          break;
        }
        // anon_vma_fork()
        anonVmaClone(tmp, vma);
        const root = vma.anonVma.root ?? vma.anonVma;
        const av = k.newAnonVma(root);
        anonVmaLink(tmp, av);
        tmp.anonVma = av;
      }
      vmaLinkFile(tmp, true);
      child.insertVma(tmp);
      if (!(vma.flags & VM_WIPEONFORK)) {
        ret = yield* copyPageRange(tmp, vma);
        if (ret < 0) break;
      }
    }
  } finally {
    child.mmapLock.writeUnlock(s);
    parent.mmapLock.writeUnlock(s);
  }
  return ret;
}

/**
 * exit_mmap(mm): the last user is gone. mmu_notifier_release (interval
 * notifiers get an MMU_NOTIFY_RELEASE invalidation over the whole address
 * space, then the ->release callbacks run), then every VMA is unmapped
 * (MMU_NOTIFY_UNMAP), its pages zapped and page tables freed, and the VMAs
 * removed. Takes mmap_lock for write.
 */
export function* exitMmap(mm: MmStruct): K<void> {
  const s = mm.kernel.sched;
  if (mmHasNotifiers(mm)) {
    const rel = mmuNotifierRangeInit(mm, MMU_NOTIFY_RELEASE, 0, mm.taskSize);
    yield* mmuNotifierInvalidateRangeStart(rel);
    mmuNotifierInvalidateRangeEnd(rel);
  }
  mmuNotifierRelease(mm);
  yield* mmapWriteLock(mm);
  try {
    const vmas = mm.vmas;
    mm.vmas = [];
    if (vmas.length > 0) {
      const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_UNMAP, 0, mm.taskSize);
      yield* mmuNotifierInvalidateRangeStart(range);
      try {
        for (const v of vmas) yield* unmapPageRange(v, v.start, v.end, ZAP_UNMAP);
      } finally {
        mmuNotifierInvalidateRangeEnd(range);
      }
    }
    for (const v of vmas) removeVmaObjects(v);
  } finally {
    mm.mmapLock.writeUnlock(s);
  }
}

/**
 * mmput(): drop an mm_users reference; the last one runs exit_mmap() and
 * drops the mm_count reference the users held (mmdrop).
 */
export function* mmput(mm: MmStruct): K<void> {
  if (--mm.mmUsers > 0) return;
  yield* exitMmap(mm);
  mmdrop(mm);
}

/** mmdrop(): the last mm_count reference frees the mm_struct. */
export function mmdrop(mm: MmStruct): void {
  if (--mm.mmCount === 0) mm.kernel.mms.delete(mm);
}
