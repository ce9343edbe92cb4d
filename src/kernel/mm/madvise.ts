// SPDX-License-Identifier: GPL-2.0-only
/**
 * madvise(2) (mm/madvise.c) and MADV_COLLAPSE (mm/khugepaged.c
 * madvise_collapse / collapse_huge_page for anonymous memory).
 *
 * Implemented: MADV_DONTNEED (zap_page_range_single, MMU_NOTIFY_CLEAR),
 * MADV_FREE (lazyfree: exclusive anon pages become clean and
 * !swapbacked; the model has no reclaim so their contents stay), MADV_DONTFORK
 * / DOFORK, WIPEONFORK / KEEPONFORK, HUGEPAGE / NOHUGEPAGE, DONTDUMP / DODUMP,
 * COLLAPSE, PAGEOUT (anonymous order-0 pages to the swap device). NORMAL,
 * RANDOM, SEQUENTIAL, WILLNEED, COLD,
 * POPULATE_READ/WRITE, DONTNEED_LOCKED, MERGEABLE, UNMERGEABLE, REMOVE and the
 * guard advices are accepted as no-ops where the model has nothing to do
 * (no LRU aging, no KSM, no readahead); HWPOISON / SOFT_OFFLINE need
 * CAP_SYS_ADMIN: -EPERM.
 *
 * Locking: mmap_lock for read for DONTNEED/FREE/COLLAPSE scanning (as
 * madvise_need_mmap_write()), for write when VMA flags change. The model
 * takes it for write for MADV_COLLAPSE as collapse_huge_page() does for its
 * critical section.
 */
import type { K } from '../sched/sched.js';
import { EINVAL, ENOMEM, EPERM, EAGAIN } from '../errno.js';
import {
  type MmStruct, type Vma, VM_LOCKED, VM_PFNMAP, VM_HUGETLB, VM_HUGEPAGE, VM_NOHUGEPAGE, VM_DONTCOPY,
  VM_WIPEONFORK, VM_DONTDUMP, VM_SHARED, VM_IO, VM_WRITE,
} from './mm_types.js';
import {
  T_NONE, T_PRESENT, T_SWAP, T_TABLE, _PAGE_DIRTY, _PAGE_RW, _PAGE_ACCESSED, _PAGE_SOFT_DIRTY, _PAGE_SPECIAL,
  _PAGE_UFFD_WP, pmdIndex, pmdTableOf, pteIndex, pteTableOf, pmdAddrEnd, pudAddrEnd, ptePresent, pmdTransHuge, pteType, pmdAlignUp, pmdAlignDown,
} from './pgtable.js';
import { clearPmd, clearPte, setPmdFlags, setPmdLeaf, setPte, setPteFlags } from './pte_ops.js';
import { _PAGE_SWP_EXCLUSIVE, swapDevice } from './swap.js';
import {
  HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE, PG_anon, PG_anon_exclusive, PG_dirty, PG_swapbacked,
} from './page.js';
import { folioRemoveRmapPte, folioAddNewAnonRmap, anonVmaPrepare } from './rmap.js';
import { folioGet, folioPut, folioMaybeDmaPinned, folioTrylock, folioUnlock } from './folio.js';
import { MMU_NOTIFY_CLEAR, mmuNotifierRangeInit, mmuNotifierInvalidateRangeStart, mmuNotifierInvalidateRangeEnd } from './mmu_notifier.js';
import { zapPageRange, spinLock } from './zap.js';
import { vmaIsolateRange } from './mmap.js';
import { splitFolio, splitHugePmdNotify } from './huge_memory.js';
import { HPAGE_SIZE } from './hugetlb.js';
import { mmapAssertLocked, mmapAssertWriteLocked, mmapReadLock, mmapWriteLock } from './mmap_lock.js';

export const MADV_NORMAL = 0;
export const MADV_RANDOM = 1;
export const MADV_SEQUENTIAL = 2;
export const MADV_WILLNEED = 3;
export const MADV_DONTNEED = 4;
export const MADV_FREE = 8;
export const MADV_REMOVE = 9;
export const MADV_DONTFORK = 10;
export const MADV_DOFORK = 11;
export const MADV_MERGEABLE = 12;
export const MADV_UNMERGEABLE = 13;
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;
export const MADV_DONTDUMP = 16;
export const MADV_DODUMP = 17;
export const MADV_WIPEONFORK = 18;
export const MADV_KEEPONFORK = 19;
export const MADV_COLD = 20;
export const MADV_PAGEOUT = 21;
export const MADV_POPULATE_READ = 22;
export const MADV_POPULATE_WRITE = 23;
export const MADV_DONTNEED_LOCKED = 24;
export const MADV_COLLAPSE = 25;
export const MADV_HWPOISON = 100;
export const MADV_SOFT_OFFLINE = 101;
export const MADV_GUARD_INSTALL = 102;
export const MADV_GUARD_REMOVE = 103;

/** madvise_behavior_valid() */
export function madviseBehaviorValid(b: number): boolean {
  return (b >= 0 && b <= 4) || (b >= 8 && b <= 25) || (b >= 100 && b <= 103);
}

/** madvise_need_mmap_write() */
function needsWrite(b: number): boolean {
  switch (b) {
    case MADV_REMOVE: case MADV_WILLNEED: case MADV_DONTNEED: case MADV_DONTNEED_LOCKED: case MADV_COLD:
    case MADV_PAGEOUT: case MADV_FREE: case MADV_POPULATE_READ: case MADV_POPULATE_WRITE: case MADV_COLLAPSE:
    case MADV_GUARD_INSTALL: case MADV_GUARD_REMOVE:
      return false;
    default:
      return true;
  }
}

/** madvise_update_vma(): split vma to [start, end) and set its flags. */
function* updateVmaFlags(vma: Vma, start: number, end: number, newFlags: number): K<number> {
  if (newFlags === vma.flags) return 0;
  const r = yield* vmaIsolateRange(vma, start, end);
  if (typeof r === 'number') return r;
  r.flags = newFlags;
  return 0;
}

/**
 * MADV_FREE on [start, end) of an anonymous private VMA
 * (madvise_free_pte_range): exclusive, singly-mapped anon pages are marked
 * clean and lazyfree (PG_swapbacked cleared); a THP only partly covered is
 * split first. Caller holds mmap_lock for read.
 */
function* madviseFree(vma: Vma, start: number, end: number): K<void> {
  mmapAssertLocked(vma.mm, 'madvise_free_single_vma');
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  const p = k.pages;
  const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_CLEAR, start, end);
  yield* mmuNotifierInvalidateRangeStart(range);
  let addr = start;
  while (addr < end) {
    const pmd = pmdTableOf(mm.pgd, addr, false);
    if (pmd === null) {
      addr = pudAddrEnd(addr, end);
      continue;
    }
    const next = pmdAddrEnd(addr, end);
    const i = pmdIndex(addr);
    let t = pteType(pmd.f[i]);
    if (t === T_PRESENT && pmd.v[i] !== k.hugeZeroPfn) {
      if (next - addr === PMD_SIZE) {
        yield* spinLock(s, pmd.lock);
        const head = pmd.v[i];
        if (p.entireMapcount[head] === 1 && (p.flags[head] & PG_anon)) {
          setPmdFlags(pmd, i, pmd.f[i] & ~(_PAGE_DIRTY | _PAGE_ACCESSED), 'madvise_free_huge_pmd');
          p.flags[head] &= ~(PG_dirty | PG_swapbacked);
        }
        pmd.lock.unlock(s);
        addr = next;
        continue;
      }
      // A THP only partly covered: the kernel splits it (split_folio() ->
      // unmap_folio(), whose try_to_migrate() splits the PMD inside a range
      // covering the whole folio); this range covers only [start, end).
      yield* splitHugePmdNotify(vma, pmd, i, addr);
      t = pteType(pmd.f[i]);
    }
    if (t === T_TABLE) {
      const pt = pmd.pte[i]!;
      yield* spinLock(s, pt.ptl);
      const j0 = pteIndex(addr);
      const j1 = j0 + (next - addr) / PAGE_SIZE;
      for (let j = j0; j < j1; j++) {
        const f = pt.f[j];
        if (!ptePresent(f) || (f & _PAGE_SPECIAL)) continue;
        const pfn = pt.v[j];
        if (pfn === k.zeroPfn) continue;
        const head = p.folioPfn(pfn);
        if (!(p.flags[head] & PG_anon) || p.mapcount[pfn] !== 1 || p.order[head] !== 0) continue;
        setPteFlags(pt, j, f & ~(_PAGE_DIRTY | _PAGE_ACCESSED), 'madvise_free_pte_range');
        p.flags[head] &= ~(PG_dirty | PG_swapbacked);
      }
      pt.ptl.unlock(s);
    }
    addr = next;
  }
  mmuNotifierInvalidateRangeEnd(range);
}

/** SCAN_* results of khugepaged, as errno (madvise_collapse_errno). */
const SCAN_SUCCEED = 0;
const SCAN_FAIL = -EINVAL;
const SCAN_ALLOC_FAIL = -ENOMEM;
const SCAN_PAGE_COUNT = -EAGAIN;

/**
 * collapse_huge_page() for one PMD-aligned 2 MiB range of an anonymous VMA
 * that is mapped by a PTE table: allocate an order-9 folio, copy the 512
 * pages (none / zero-page entries read as zeroes), replace the PTE table by
 * a PMD leaf (writable and dirty if VM_WRITE, exclusive), drop the old
 * pages' mappings and references and free the table. Fails with -EINVAL for
 * non-present entries (swap, migration, device-private, device-exclusive),
 * ZONE_DEVICE or non-anon pages and uffd-wp; -EAGAIN if a page has
 * references beyond its mappings (pinned, GUP) — is_refcount_suitable();
 * -ENOMEM if no huge page can be allocated. Returns 0 when the range
 * already is a PMD-mapped THP. Caller holds mmap_lock for write.
 */
export function* collapseHugePage(vma: Vma, haddr: number): K<number> {
  mmapAssertWriteLocked(vma.mm, 'collapse_huge_page');
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  const p = k.pages;
  const pmd = pmdTableOf(mm.pgd, haddr, false);
  if (pmd === null) return SCAN_FAIL;
  const i = pmdIndex(haddr);
  const t = pteType(pmd.f[i]);
  if (t === T_PRESENT && pmd.v[i] !== k.hugeZeroPfn) return SCAN_SUCCEED; /* SCAN_PMD_MAPPED */
  if (t !== T_TABLE) return SCAN_FAIL; /* SCAN_PMD_NULL / non-present PMD */
  const pt = pmd.pte[i]!;
  // hpage_collapse_scan_pmd(): check every entry first.
  let present = 0;
  for (let j = 0; j < HPAGE_PMD_NR; j++) {
    const f = pt.f[j];
    const tt = pteType(f);
    if (tt === T_NONE) continue;
    if (tt !== T_PRESENT) return SCAN_FAIL; /* SCAN_PTE_NON_PRESENT */
    if (f & _PAGE_UFFD_WP) return SCAN_FAIL; /* SCAN_PTE_UFFD_WP */
    const pfn = pt.v[j];
    if (pfn === k.zeroPfn) continue;
    if (f & _PAGE_SPECIAL) return SCAN_FAIL;
    if (p.pgmap[pfn] !== 0) return SCAN_FAIL; /* SCAN_PAGE_NULL: zone device */
    const head = p.folioPfn(pfn);
    if (!(p.flags[head] & PG_anon)) return SCAN_FAIL; /* SCAN_PAGE_ANON */
    if (p.order[head] === 0) {
      if (folioMaybeDmaPinned(k, head) || p.refcount[head] !== p.mapcount[head]) return SCAN_PAGE_COUNT;
    } else if (p.pincount[head] > 0) return SCAN_PAGE_COUNT;
    present++;
  }
  if (present === 0) return SCAN_FAIL; /* nothing mapped: khugepaged reports SCAN_EXCEED_NONE_PTE-like failure */
  const np = k.buddy.alloc(HPAGE_PMD_ORDER, 0, 'khugepaged');
  if (np < 0) return SCAN_ALLOC_FAIL;
  k.vmstat.thp_collapse_alloc = (k.vmstat.thp_collapse_alloc ?? 0) + 1;
  const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_CLEAR, haddr, haddr + HPAGE_SIZE);
  yield* mmuNotifierInvalidateRangeStart(range);
  yield* spinLock(s, pmd.lock);
  yield* spinLock(s, pt.ptl);
  let added = 0;
  for (let j = 0; j < HPAGE_PMD_NR; j++) {
    const f = pt.f[j];
    const tt = pteType(f);
    if (tt === T_NONE || pt.v[j] === k.zeroPfn) {
      k.contents.zero(np + j);
      added++;
      continue;
    }
    const pfn = pt.v[j];
    k.contents.copy(np + j, pfn);
    clearPte(pt, j, '__collapse_huge_page_copy');
    folioRemoveRmapPte(k, pfn);
    folioPut(k, pfn);
  }
  pt.ptl.unlock(s);
  // The PTE table goes away (pmd_populate of the deposited table is not modelled).
  clearPmd(pmd, i, 'collapse_huge_page');
  mm.pgd.nrTables--;
  anonVmaPrepare(k, vma);
  folioAddNewAnonRmap(k, np, vma, haddr, true);
  const wr = (vma.flags & VM_WRITE) !== 0;
  setPmdLeaf(pmd, i, np, T_PRESENT | _PAGE_ACCESSED | _PAGE_DIRTY | (wr ? _PAGE_RW : 0), 'collapse_huge_page');
  mm.rss.anon += added;
  k.lru.add(np);
  pmd.lock.unlock(s);
  mmuNotifierInvalidateRangeEnd(range);
  void PG_anon_exclusive;
  return SCAN_SUCCEED;
}

/**
 * madvise_collapse(): collapse every PMD-aligned 2 MiB range inside
 * [start, end) of an anonymous VMA. -EINVAL if THP is not allowed for the
 * VMA (VM_NOHUGEPAGE, not anonymous private, hugetlb, the aligned range not
 * inside the VMA); otherwise 0 if every range is (now) a THP, else the errno
 * of the last failure (-ENOMEM, -EAGAIN, -EINVAL).
 */
function* madviseCollapse(vma: Vma, start: number, end: number): K<number> {
  const k = vma.mm.kernel;
  if (!vma.isAnon() || (vma.flags & (VM_NOHUGEPAGE | VM_HUGETLB | VM_SHARED | VM_PFNMAP | VM_IO))) return -EINVAL;
  const hstart = pmdAlignUp(start);
  const hend = pmdAlignDown(end);
  if (hstart >= hend || hstart < vma.start || hend > vma.end) return -EINVAL;
  k.lru.drain();
  let thps = 0;
  let last = 0;
  for (let a = hstart; a < hend; a += PMD_SIZE) {
    const r = yield* collapseHugePage(vma, a);
    if (r === SCAN_SUCCEED) thps++;
    else last = r;
  }
  return thps === (hend - hstart) / PMD_SIZE ? 0 : last;
}

/**
 * do_madvise(mm, start, len_in, behavior): madvise(2). Returns 0 or -errno:
 *   -EINVAL  unknown advice; start not page aligned; len overflows; advice
 *            not applicable to a VMA (DONTNEED on VM_LOCKED/VM_PFNMAP,
 *            FREE on non-anonymous memory, WIPEONFORK on shared/file
 *            memory, COLLAPSE without THP eligibility)
 *   -ENOMEM  part of the range is unmapped (the advice is still applied to
 *            the mapped parts, as Linux does)
 *   -EPERM   HWPOISON / SOFT_OFFLINE (no CAP_SYS_ADMIN)
 *   -EAGAIN / -ENOMEM from MADV_COLLAPSE
 * len 0: 0. Takes mmap_lock (read or write, see madvise_need_mmap_write()).
 */
export function* doMadvise(mm: MmStruct, start: number, lenIn: number, behavior: number): K<number> {
  if (!madviseBehaviorValid(behavior)) return -EINVAL;
  if (start % PAGE_SIZE !== 0) return -EINVAL;
  if (lenIn < 0) return -EINVAL;
  const len = Math.ceil(lenIn / PAGE_SIZE) * PAGE_SIZE;
  if (lenIn && !len) return -EINVAL;
  const end = start + len;
  if (end < start || end > 2 ** 64 || (start < 0 && end >= 0)) return -EINVAL; /* a negative start is 2^64 + start: end wraps */
  if (behavior === MADV_HWPOISON || behavior === MADV_SOFT_OFFLINE) return -EPERM;
  if (end === start) return 0;
  const s = mm.kernel.sched;
  const write = needsWrite(behavior) || behavior === MADV_COLLAPSE;
  if (write) yield* mmapWriteLock(mm);
  else yield* mmapReadLock(mm);
  try {
    let unmappedError = 0;
    let addr = start;
    let vma = mm.findVma(start);
    while (addr < end) {
      if (vma === null || vma.start >= end) {
        unmappedError = -ENOMEM;
        break;
      }
      if (vma.start > addr) {
        unmappedError = -ENOMEM;
        addr = vma.start;
      }
      const tmp = Math.min(vma.end, end);
      const r = yield* madviseVma(vma, addr, tmp, behavior);
      if (r < 0) return r;
      addr = tmp;
      if (addr >= end) break;
      vma = mm.findVma(addr);
    }
    return unmappedError;
  } finally {
    if (write) mm.mmapLock.writeUnlock(s);
    else mm.mmapLock.readUnlock(s);
  }
}

/**
 * MADV_PAGEOUT (madvise_pageout -> madvise_cold_or_pageout_pte_range ->
 * reclaim_pages -> shrink_folio_list, anonymous memory): every order-0
 * anonymous page of the range that this mapping alone maps (not
 * folio_likely_mapped_shared) is isolated from the LRU and reclaimed: a
 * swap slot is allocated (add_to_swap), the page is unmapped, its PTE
 * becoming a swap entry that keeps soft-dirty / uffd-wp and records
 * exclusivity (pte_swp_exclusive) (try_to_unmap, one MMU_NOTIFY_CLEAR per
 * page), its contents are written to the slot (pageout) and it is freed.
 * Pages that cannot go are put back: locked, pinned or otherwise
 * referenced (the refcount must be the mapping's and the isolation's
 * only: the model has no swap cache to leave a referenced page in), on no
 * LRU, or the swap device is full or absent. A PMD-mapped THP mapped only
 * here is split first; file and shmem pages are left alone (the kernel
 * would write file pages back). Caller holds mmap_lock for read.
 */
function* madvisePageout(vma: Vma, start: number, end: number): K<void> {
  mmapAssertLocked(vma.mm, 'madvise_pageout');
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  const p = k.pages;
  const swap = swapDevice(k);
  if (swap === null || !vma.isAnon()) return;
  k.lru.drain(); /* lru_add_drain() */
  // A PMD-mapped THP that only this mapping maps is split first (its PMD,
  // then the folio: what madvise_cold_or_pageout_pte_range() does for a
  // partial range and reclaim does for a whole one without THP_SWAP); its
  // pages are then reclaimed one by one below. A shared or pinned THP stays.
  for (let a = pmdAlignDown(start); a < end; a += PMD_SIZE) {
    const pmd = pmdTableOf(mm.pgd, a, false);
    if (pmd === null) continue;
    const i = pmdIndex(a);
    if (!pmdTransHuge(pmd.f[i]) || pmd.v[i] === k.hugeZeroPfn) continue;
    const head = pmd.v[i];
    if (!(p.flags[head] & PG_anon) || p.folioMapcount(head) !== 1) continue; /* folio_maybe_mapped_shared() */
    folioGet(k, head);
    if (!folioTrylock(k, head)) {
      folioPut(k, head);
      continue;
    }
    // split_folio(): its reference check, then unmap_folio() splits the PMD
    // (TTU_SPLIT_HUGE_PMD, inside an MMU_NOTIFY_CLEAR range over the folio),
    // then the folio. A pinned THP stays (-EAGAIN).
    yield* splitFolio(k, head);
    folioUnlock(k, head);
    folioPut(k, head);
  }
  // madvise_cold_or_pageout_pte_range(): isolate the candidates under the PTL.
  const isolated: Array<{ addr: number; pfn: number }> = [];
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    const pt = pteTableOf(mm.pgd, addr);
    if (pt === null) {
      addr = pmdAddrEnd(addr, end) - PAGE_SIZE;
      continue;
    }
    const j = pteIndex(addr);
    yield* spinLock(s, pt.ptl);
    const f = pt.f[j];
    const pfn = pt.v[j];
    let ok = false;
    if (ptePresent(f) && !(f & _PAGE_SPECIAL) && pfn !== k.zeroPfn && p.pgmap[pfn] === 0) {
      const head = p.folioPfn(pfn);
      if ((p.flags[head] & PG_anon) && p.order[head] === 0 && p.mapcount[pfn] === 1) {
        setPteFlags(pt, j, f & ~_PAGE_ACCESSED, 'madvise_cold_or_pageout_pte_range'); /* ptep_clear_flush_young_notify() */
        ok = k.lru.isolate(head);
      }
    }
    pt.ptl.unlock(s);
    if (ok) isolated.push({ addr, pfn });
  }
  // reclaim_pages() -> shrink_folio_list()
  for (const { addr, pfn } of isolated) {
    if (!folioTrylock(k, pfn)) {
      k.lru.putback(pfn);
      continue;
    }
    const pt = pteTableOf(mm.pgd, addr);
    const j = pteIndex(addr);
    const mapped = pt !== null && ptePresent(pt.f[j]) && pt.v[j] === pfn;
    // Only the mapping and the isolation may hold it (no GUP pin, no other
    // reference): __remove_mapping()'s refcount freeze, checked up front.
    const slot = mapped && p.refcount[pfn] === 2 && !folioMaybeDmaPinned(k, pfn) ? swap.allocSlot() : -1;
    if (slot < 0) {
      folioUnlock(k, pfn);
      k.lru.putback(pfn);
      continue;
    }
    const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_CLEAR, addr, addr + PAGE_SIZE);
    yield* mmuNotifierInvalidateRangeStart(range);
    yield* spinLock(s, pt!.ptl);
    const f = pt!.f[j];
    if (!ptePresent(f) || pt!.v[j] !== pfn || p.refcount[pfn] !== 2) {
      // Changed while the locks were dropped: keep the page.
      pt!.ptl.unlock(s);
      mmuNotifierInvalidateRangeEnd(range);
      swap.free(slot);
      folioUnlock(k, pfn);
      k.lru.putback(pfn);
      continue;
    }
    const exclusive = (p.flags[pfn] & PG_anon_exclusive) !== 0;
    const sf = T_SWAP | (f & (_PAGE_SOFT_DIRTY | _PAGE_UFFD_WP)) | (exclusive ? _PAGE_SWP_EXCLUSIVE : 0);
    if ((f & _PAGE_DIRTY) !== 0) p.flags[pfn] |= PG_dirty;
    swap.dup(slot); /* the swap PTE's reference */
    setPte(pt!, j, slot, sf, 'try_to_unmap_one');
    p.flags[pfn] &= ~PG_anon_exclusive;
    folioRemoveRmapPte(k, pfn);
    mm.rss.anon--;
    mm.rss.swap++;
    folioPut(k, pfn); /* the mapping's reference */
    pt!.ptl.unlock(s);
    mmuNotifierInvalidateRangeEnd(range);
    swap.writePage(slot, pfn); /* pageout() */
    swap.free(slot); /* the folio leaves the swap cache: its reference goes */
    folioUnlock(k, pfn);
    folioPut(k, pfn); /* the isolation reference: the page is freed */
  }
}

/** madvise_vma_behavior() for [start, end) inside vma. */
function* madviseVma(vma: Vma, start: number, end: number, behavior: number): K<number> {
  switch (behavior) {
    case MADV_DONTNEED:
    case MADV_DONTNEED_LOCKED: {
      if (vma.flags & VM_HUGETLB) {
        // madvise_dontneed_free_valid_vma(): the range is rounded to huge pages.
        start = Math.ceil(start / HPAGE_SIZE) * HPAGE_SIZE;
        end = Math.floor(end / HPAGE_SIZE) * HPAGE_SIZE;
        if (start >= end) return -EINVAL;
      } else if (vma.flags & (VM_PFNMAP | (behavior === MADV_DONTNEED ? VM_LOCKED : 0))) return -EINVAL;
      yield* zapPageRange(vma, start, end, MMU_NOTIFY_CLEAR);
      return 0;
    }
    case MADV_FREE:
      if (!vma.isAnon() || (vma.flags & (VM_PFNMAP | VM_LOCKED | VM_HUGETLB))) return -EINVAL;
      yield* madviseFree(vma, start, end);
      return 0;
    case MADV_COLLAPSE:
      return yield* madviseCollapse(vma, start, end);
    case MADV_DONTFORK:
      if (vma.flags & VM_IO) return -EINVAL;
      return yield* updateVmaFlags(vma, start, end, vma.flags | VM_DONTCOPY);
    case MADV_DOFORK:
      if (vma.flags & VM_IO) return -EINVAL;
      return yield* updateVmaFlags(vma, start, end, vma.flags & ~VM_DONTCOPY);
    case MADV_WIPEONFORK:
      if (!vma.isAnon() || (vma.flags & VM_SHARED)) return -EINVAL;
      return yield* updateVmaFlags(vma, start, end, vma.flags | VM_WIPEONFORK);
    case MADV_KEEPONFORK:
      return yield* updateVmaFlags(vma, start, end, vma.flags & ~VM_WIPEONFORK);
    case MADV_DONTDUMP:
      return yield* updateVmaFlags(vma, start, end, vma.flags | VM_DONTDUMP);
    case MADV_DODUMP:
      return yield* updateVmaFlags(vma, start, end, vma.flags & ~VM_DONTDUMP);
    case MADV_HUGEPAGE:
      return yield* updateVmaFlags(vma, start, end, (vma.flags | VM_HUGEPAGE) & ~VM_NOHUGEPAGE);
    case MADV_NOHUGEPAGE:
      return yield* updateVmaFlags(vma, start, end, (vma.flags | VM_NOHUGEPAGE) & ~VM_HUGEPAGE);
    case MADV_REMOVE:
      if (!(vma.flags & VM_SHARED)) return -EINVAL;
      return 0;
    case MADV_PAGEOUT:
      // can_madv_lru_vma(): locked, PFN-mapped and hugetlb VMAs are skipped.
      if (vma.flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB)) return -EINVAL;
      yield* madvisePageout(vma, start, end);
      return 0;
    default:
      return 0;
  }
}
