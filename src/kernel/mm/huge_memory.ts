// SPDX-License-Identifier: GPL-2.0-only
/**
 * Transparent huge pages (mm/huge_memory.c): the THP fault and the huge zero
 * page, the write-protect fault on a huge PMD, the device-private PMD fault,
 * PMD splitting and folio splitting.
 *
 * A PMD-mapped THP holds one folio reference and one entire mapcount per
 * PMD. Splitting the PMD turns it into 512 PTEs: one mapcount and one
 * reference per PTE (folio_ref_add(folio, HPAGE_PMD_NR - 1)), with the
 * write, dirty, young, soft-dirty and uffd-wp bits and PG_anon_exclusive
 * carried to every PTE.
 */
import { vmaAllocFolio } from './mpol_alloc.js';
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../printk.js';
import { pageBug } from './debug.js';
import { EAGAIN } from '../errno.js';
import {
  type PmdTable, PteTable, T_NONE, T_PRESENT, T_TABLE, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_RW, _PAGE_SPECIAL,
  _PAGE_PROTNONE, isDevicePrivateType, isMigrationType, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, pmdNone,
  pmdIsTable, pteType, pmdAlignDown, pmdAligned, pmdIndex, pmdTableOf,
} from './pgtable.js';
import { setPte, setPmdLeaf, setPmdFlags, pmdPopulate, mkPresent, carryBits } from './pte_ops.js';
import { type Vma, type VmFault, VM_WRITE, VM_HUGEPAGE, VM_NOHUGEPAGE, VM_HUGETLB } from './mm_types.js';
import { __GFP_ZERO } from './page_alloc.js';
import { folioGet, folioPut, folioTrylock, folioUnlock, folioTestAnon } from './folio.js';
import { folioAddNewAnonRmap, anonVmaPrepare, pageAnonExclusive, rmapWalk } from './rmap.js';
import { anonVmaPrepareFails } from './rmap.js';
import {
  HPAGE_PMD_NR, HPAGE_PMD_ORDER, HPAGE_PMD_SIZE, PAGE_SIZE, PG_anon, PG_anon_exclusive, PG_swapcache, PG_head, PG_tail, PG_lru,
} from './page.js';
import type { K } from '../sched/sched.js';
import { spinLock } from '../sched/locks.js';
import { VM_FAULT_FALLBACK, VM_FAULT_OOM, VM_FAULT_RETRY } from './fault_types.js';
import { pagePgmap } from './memremap.js';
import {
  mmuNotifierInvalidateRangeEnd, mmuNotifierInvalidateRangeStart, mmuNotifierRangeInit, MMU_NOTIFY_CLEAR,
} from './mmu_notifier.js';
import { folioAssertLocked } from './folio.js';
import { mthpSize, type MthpMode } from '../config.js';

/**
 * thp_vma_allowable_order() for PMD order on an anonymous VMA: THP is
 * enabled for it (hugepages-2048kB/enabled 'always', 'madvise' with
 * VM_HUGEPAGE, or 'inherit' (the default) of the global 'always', or of
 * 'madvise' with VM_HUGEPAGE; never with VM_NOHUGEPAGE) and the aligned
 * 2 MiB around addr lies inside the VMA (thp_vma_suitable_order()).
 */
export function thpVmaAllowable(vma: Vma, addr: number): boolean {
  if (!vma.isAnon() || (vma.flags & (VM_NOHUGEPAGE | VM_HUGETLB))) return false;
  if (!anonOrderEnabled(vma, vma.mm.kernel.config.mthp['2048kB'] ?? 'inherit')) return false;
  const haddr = pmdAlignDown(addr);
  return haddr >= vma.start && haddr + HPAGE_PMD_SIZE <= vma.end;
}

/**
 * The per-size test of thp_vma_allowable_orders() (include/linux/huge_mm.h)
 * for an anonymous VMA: a size is enabled by 'always', by 'madvise' on a
 * VM_HUGEPAGE VMA, and by 'inherit' when the global setting
 * (transparent_hugepage/enabled) is 'always', or 'madvise' on a VM_HUGEPAGE
 * VMA.
 */
function anonOrderEnabled(vma: Vma, mode: MthpMode): boolean {
  if (mode === 'always') return true;
  if (mode === 'never') return false;
  const madvised = (vma.flags & VM_HUGEPAGE) !== 0;
  if (mode === 'madvise') return madvised;
  const global = vma.mm.kernel.config.thp;
  return global === 'always' || (global === 'madvise' && madvised);
}

/**
 * thp_vma_allowable_orders(vma, vm_flags, TVA_PAGEFAULT, BIT(PMD_ORDER) - 1)
 * then thp_vma_suitable_orders(vma, addr, orders), as alloc_anon_folio()
 * (mm/memory.c) asks for them: the mTHP orders (2 to 8) enabled for this
 * anonymous VMA whose naturally aligned range around addr lies inside it.
 * A bit mask by order; 0 when no mTHP size is enabled (mainline's default).
 */
export function thpAnonMthpOrders(vma: Vma, addr: number): number {
  const sizes = vma.mm.kernel.config.mthp;
  if (!vma.isAnon() || (vma.flags & (VM_NOHUGEPAGE | VM_HUGETLB))) return 0;
  let orders = 0;
  for (let order = 2; order < HPAGE_PMD_ORDER; order++) {
    const mode = sizes[mthpSize(order)];
    if (mode === undefined || mode === 'never' || !anonOrderEnabled(vma, mode)) continue;
    const size = PAGE_SIZE << order;
    const start = addr - (addr % size);
    if (start >= vma.start && start + size <= vma.end) orders |= 1 << order;
  }
  return orders;
}

/** huge_pmd_set_accessed() */
export function hugePmdSetAccessed(pmd: PmdTable, i: number, write: boolean): void {
  setPmdFlags(pmd, i, pmd.f[i] | _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0), 'huge_pmd_set_accessed');
}

/**
 * do_huge_pmd_anonymous_page(): a read fault maps the huge zero page (if
 * use_zero_page); a write allocates a zeroed THP, makes it an exclusive anon
 * folio and maps it with one PMD. Allocation failure returns
 * VM_FAULT_FALLBACK (the PTE path handles the fault).
 */
export function* doHugePmdAnonymousPage(vma: Vma, pmd: PmdTable, i: number, addr: number, flags: number): K<number> {
  const mm = vma.mm;
  const k = mm.kernel;
  const haddr = pmdAlignDown(addr);
  const write = (flags & 1) !== 0; /* FAULT_FLAG_WRITE */
  if (anonVmaPrepareFails(k, vma)) return VM_FAULT_OOM;
  anonVmaPrepare(k, vma);
  if (!write && k.config.thpUseZeroPage) {
    yield* spinLock(k.sched, pmd.lock);
    if (pmdNone(pmd.f[i])) {
      setPmdLeaf(pmd, i, k.hugeZeroPfn, T_PRESENT | _PAGE_SPECIAL | _PAGE_ACCESSED, 'do_huge_pmd_anonymous_page');
      k.vmstat.thp_zero_page_alloc++;
    }
    pmd.lock.unlock(k.sched);
    return 0;
  }
  const folio = vmaAllocFolio(k, vma, haddr, HPAGE_PMD_ORDER, __GFP_ZERO, 'thp');
  if (folio < 0) {
    k.vmstat.thp_fault_fallback++;
    return VM_FAULT_FALLBACK;
  }
  yield* spinLock(k.sched, pmd.lock);
  if (!pmdNone(pmd.f[i])) {
    pmd.lock.unlock(k.sched);
    folioPut(k, folio);
    return pmdIsTable(pmd.f[i]) ? VM_FAULT_FALLBACK : 0;
  }
  folioAddNewAnonRmap(k, folio, vma, haddr, true);
  k.lru.add(folio);
  const w = (vma.flags & VM_WRITE) !== 0;
  setPmdLeaf(pmd, i, folio, mkPresent(w, w), '__do_huge_pmd_anonymous_page');
  mm.rss.anon += HPAGE_PMD_NR;
  k.vmstat.thp_fault_alloc++;
  pmd.lock.unlock(k.sched);
  return 0;
}

/**
 * do_huge_pmd_wp_page(): write (or unshare) fault on a read-only huge PMD.
 * The huge zero page and shared THPs fall back: the PMD is split (firing
 * MMU_NOTIFY_CLEAR) and the PTE-level handler does the COW. An exclusive
 * folio, or one whose only reference is this mapping, is reused in place.
 */
export function* doHugePmdWpPage(vma: Vma, pmd: PmdTable, i: number, addr: number, flags: number): K<number> {
  const k = vma.mm.kernel;
  const v = pmd.v[i];
  const f = pmd.f[i];
  const unshare = (flags & (1 << 10)) !== 0 && !(flags & 1);
  if (v !== k.hugeZeroPfn && !(f & _PAGE_SPECIAL) && folioTestAnon(k, v)) {
    const p = k.pages;
    let reuse = pageAnonExclusive(k, v);
    if (!reuse && folioTrylock(k, v)) {
      if (p.refcount[v] === 1 && p.entireMapcount[v] === 1) {
        const av = anonVmaPrepare(k, vma);
        for (let j = 0; j < HPAGE_PMD_NR; j++) {
          p.mapping[v + j] = av.id;
          p.flags[v + j] |= PG_anon_exclusive;
        }
        reuse = true;
      }
      folioUnlock(k, v);
    }
    if (reuse) {
      yield* spinLock(k.sched, pmd.lock);
      if (pmd.v[i] === v && pmd.f[i] === f && !unshare) setPmdFlags(pmd, i, f | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, 'do_huge_pmd_wp_page');
      pmd.lock.unlock(k.sched);
      return 0;
    }
  }
  yield* splitHugePmdNotify(vma, pmd, i, addr);
  return VM_FAULT_FALLBACK;
}

/**
 * do_huge_pmd_device_private(): a CPU fault on a PMD-level device-private
 * entry. As do_swap_page: under the pmd lock, trylock the folio and take a
 * reference, drop the lock, call pgmap->ops->migrate_to_ram(vmf) with
 * vmf.page = the head page and vmf.pmdLevel set (the driver migrates the
 * whole folio), unlock and put.
 */
export function* doHugePmdDevicePrivate(vma: Vma, pmd: PmdTable, i: number, addr: number, real: number, flags: number): K<number> {
  const k = vma.mm.kernel;
  const s = k.sched;
  const haddr = pmdAlignDown(addr);
  const v = pmd.v[i];
  const f = pmd.f[i];
  yield* spinLock(k.sched, pmd.lock);
  if (pmd.v[i] !== v || pmd.f[i] !== f) {
    pmd.lock.unlock(s);
    return 0;
  }
  /* vmf->page is the head page (pmd_page()): the whole folio migrates. */
  const page = v;
  if (!folioTrylock(k, v)) {
    pmd.lock.unlock(s);
    return VM_FAULT_RETRY;
  }
  folioGet(k, v);
  pmd.lock.unlock(s);
  if (s.exploring) yield s.point('do_huge_pmd_device_private: unlock (folio ref held)', v);
  const vmf: VmFault = { vma, address: haddr, realAddress: real, flags, page, origV: v, origF: f, pmdLevel: true };
  const r = yield* pagePgmap(k, v)!.ops.migrateToRam!(vmf);
  folioUnlock(k, v);
  folioPut(k, v);
  return r;
}

/** split_huge_pmd() with its MMU_NOTIFY_CLEAR range, taking the pmd lock. */
export function* splitHugePmdNotify(vma: Vma, pmd: PmdTable, i: number, addr: number): K<void> {
  const k = vma.mm.kernel;
  const haddr = pmdAlignDown(addr);
  const range = mmuNotifierRangeInit(vma.mm, MMU_NOTIFY_CLEAR, haddr, haddr + HPAGE_PMD_SIZE);
  yield* mmuNotifierInvalidateRangeStart(range);
  yield* spinLock(k.sched, pmd.lock);
  const t = pteType(pmd.f[i]);
  if (t !== T_NONE && t !== T_TABLE) splitHugePmd(vma, pmd, i, addr);
  pmd.lock.unlock(k.sched);
  mmuNotifierInvalidateRangeEnd(range);
}

/**
 * __split_huge_pmd_locked(): replace the PMD leaf at pmd[i] by a PTE table
 * mapping the same 512 pages with the same permissions: a THP (mapcounts
 * move from entire to per-page, references from 1 to 512), the huge zero
 * page (512 zero-pfn PTEs), a PMD migration entry (512 migration entries)
 * or a PMD device-private entry (512 device-private entries). The caller
 * holds mmap_lock and the pmd lock, and has fired the MMU notifier covering
 * the range (zap, mprotect, migration collect) — splitHugePmdNotify() does
 * both for callers that have not. hugetlb PMDs are never split (BUG).
 */
export function splitHugePmd(vma: Vma, pmd: PmdTable, i: number, addr: number): void {
  const k = vma.mm.kernel;
  const p = k.pages;
  const f = pmd.f[i];
  const t = pteType(f);
  const v = pmd.v[i];
  if (t === T_NONE || t === T_TABLE) return;
  if (vma.flags & VM_HUGETLB) throw new KernelBug('BUG', 'split_huge_pmd on a hugetlb VMA', `${vma}`);
  const haddr = pmdAlignDown(addr);
  const pt = new PteTable(`ptl@${haddr.toString(16)}`, vma.mm.pgd, haddr);
  k.vmstat.thp_split_pmd++;
  if (t === T_PRESENT && (v === k.hugeZeroPfn || (f & _PAGE_SPECIAL))) {
    for (let j = 0; j < HPAGE_PMD_NR; j++) {
      setPte(pt, j, k.zeroPfn, T_PRESENT | _PAGE_SPECIAL | (f & (_PAGE_ACCESSED | _PAGE_PROTNONE)) | carryBits(f), '__split_huge_zero_page_pmd');
    }
  } else if (t === T_PRESENT) {
    const bits = f & (_PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_PROTNONE) | carryBits(f);
    for (let j = 0; j < HPAGE_PMD_NR; j++) {
      setPte(pt, j, v + j, T_PRESENT | bits, '__split_huge_pmd_locked');
      p.mapcount[v + j]++;
    }
    p.entireMapcount[v]--;
    p.refcount[v] += HPAGE_PMD_NR - 1;
  } else if (isMigrationType(t)) {
    for (let j = 0; j < HPAGE_PMD_NR; j++) {
      setPte(pt, j, v + j, f, '__split_huge_pmd_locked');
    }
  } else if (isDevicePrivateType(t)) {
    for (let j = 0; j < HPAGE_PMD_NR; j++) {
      setPte(pt, j, v + j, (t === T_DEVICE_PRIVATE_WRITE ? T_DEVICE_PRIVATE_WRITE : T_DEVICE_PRIVATE_READ) | carryBits(f), '__split_huge_pmd_locked');
      p.mapcount[v + j]++;
    }
    p.entireMapcount[v]--;
    p.refcount[v] += HPAGE_PMD_NR - 1;
  } else {
    throw new KernelBug('BUG', `split_huge_pmd: cannot split a PMD of type ${t}`, `${vma} addr 0x${addr.toString(16)}`);
  }
  pmdPopulate(pmd, i, pt, '__split_huge_pmd_locked');
  vma.mm.pgd.nrTables++;
}

/**
 * can_split_folio(folio, caller_pins): does the folio hold no references
 * beyond its mappings (PTE and PMD), its page-cache / swap-cache slots and
 * the caller's one? The first check of __folio_split(), made before
 * unmap_folio() splits any PMD: a pinned or otherwise referenced THP is
 * left as it is. Caller holds the folio lock and one reference.
 */
export function canSplitFolio(k: Kernel, head: number): boolean {
  folioAssertLocked(k, head, 'can_split_folio');
  const p = k.pages;
  const anon = (p.flags[head] & PG_anon) !== 0;
  const extraPins = (anon ? (p.flags[head] & PG_swapcache) !== 0 : p.mapping[head] !== 0) ? p.folioNr(head) : 0;
  return p.folioMapcount(head) === p.refcount[head] - extraPins - 1;
}

/**
 * The TTU_SPLIT_HUGE_PMD half of mm/huge_memory.c:unmap_folio(): every PMD
 * that maps the locked folio `head`, in every mm (the rmap walk reaches the
 * VMAs of a fork child through the shared anon_vma), is split into 512 PTEs,
 * each inside its own MMU_NOTIFY_CLEAR range. In the kernel
 * try_to_migrate_one() calls split_huge_pmd_locked(freeze=true) and restarts
 * its page_vma_mapped_walk() (939080834fef "mm/huge_memory: fix early failure
 * try_to_migrate() when split huge pmd for shared THP", which fixed
 * 60fbb14396d5 "mm/huge_memory: adjust try_to_migrate_one() and
 * split_huge_pmd_locked()": the walk used to stop after the first PMD, so a
 * THP PMD-mapped by several processes could not be split). Present THP PMDs
 * and device-private PMD entries are split; PMD migration entries belong to a
 * migration in progress (page_vma_mapped_walk() without PVMW_MIGRATION does
 * not return them). Caller: folio locked, a reference held; mmap_lock of the
 * other mms is not needed (the kernel holds the anon_vma lock; the model's
 * walk collects its targets first, like try_to_migrate()).
 */
function* splitFolioPmdMappings(k: Kernel, head: number): K<void> {
  const p = k.pages;
  const s = k.sched;
  const targets: Array<[Vma, number]> = [];
  rmapWalk(k, head, (vma, addr) => {
    targets.push([vma, addr]);
    return true;
  });
  for (const [vma, addr] of targets) {
    if (p.entireMapcount[head] === 0) break;
    if (!pmdAligned(addr) || addr < vma.start || addr + HPAGE_PMD_SIZE > vma.end) continue;
    const pmd = pmdTableOf(vma.mm.pgd, addr, false);
    if (pmd === null) continue;
    const i = pmdIndex(addr);
    if (!pmdMapsFolio(pmd, i, head)) continue;
    const range = mmuNotifierRangeInit(vma.mm, MMU_NOTIFY_CLEAR, addr, addr + HPAGE_PMD_SIZE);
    yield* mmuNotifierInvalidateRangeStart(range);
    yield* spinLock(s, pmd.lock);
    if (pmdMapsFolio(pmd, i, head)) splitHugePmd(vma, pmd, i, addr);
    pmd.lock.unlock(s);
    mmuNotifierInvalidateRangeEnd(range);
  }
}

/** Is pmd[i] a present THP PMD or a device-private PMD entry of folio `head`? */
function pmdMapsFolio(pmd: PmdTable, i: number, head: number): boolean {
  const t = pteType(pmd.f[i]);
  return pmd.v[i] === head && (t === T_PRESENT || isDevicePrivateType(t));
}

/**
 * split_folio() / split_huge_page() (mm/huge_memory.c:__folio_split()):
 * split a large folio into order-0 folios. The caller holds the folio lock
 * and one reference. As the kernel:
 * - first the racy check before unmap_folio(): folio_expected_ref_count(folio)
 *   (its mappings, PTE and PMD, plus page-cache / swap-cache references)
 *   must be folio_ref_count(folio) - 1, else -EAGAIN and nothing changes (a
 *   GUP pin is such an extra reference);
 * - then unmap_folio() with TTU_SPLIT_HUGE_PMD: every PMD mapping in every
 *   mm is split (splitFolioPmdMappings()), so a THP that a fork child still
 *   maps by PMD is split too;
 * - then the freeze (folio_ref_freeze()) and the split itself; a reference
 *   that appeared meanwhile gives -EAGAIN, with the PMDs already split (as
 *   in the kernel, where remap_page() restores PTE mappings only).
 * After the split every page is its own folio: refcount = its mapcount,
 * plus the caller's reference on the head page; the head keeps the lock;
 * tails that are on no LRU follow the head onto it. Device folios call
 * pgmap->ops->folio_split(head, tail) for each tail.
 *
 * Deliberate difference: the kernel's unmap_folio() turns every PTE mapping
 * into a migration entry (MMU_NOTIFY_CLEAR per VMA) and remap_page() restores
 * them after the split, mapping zero-filled subpages of an anon folio to the
 * shared zero page instead (TTU_USE_SHARED_ZEROPAGE; b1f202060afe "mm: remap
 * unused subpages to shared zeropage when splitting isolated thp"). The model
 * keeps the PTE mappings in place: the same pages stay mapped with the same
 * bits, a secondary MMU mirroring them is not invalidated and zero-filled
 * subpages stay allocated.
 */
export function* splitFolio(k: Kernel, head: number): K<number> {
  folioAssertLocked(k, head, 'split_folio');
  const p = k.pages;
  if (p.folioPfn(head) !== head) pageBug(k, 'BUG', 'split_folio: not a folio head', head, 'split_folio');
  const nr = p.folioNr(head);
  if (nr === 1) return 0;
  if (!(p.flags[head] & 1 /* PG_locked */)) pageBug(k, 'BUG', 'split_folio: folio not locked', head, 'VM_BUG_ON_FOLIO(!folio_test_locked(folio))');
  if (!canSplitFolio(k, head)) return -EAGAIN;
  if (p.entireMapcount[head] > 0) yield* splitFolioPmdMappings(k, head);
  if (p.entireMapcount[head] > 0) return -EAGAIN;
  let mapped = 0;
  for (let j = 0; j < nr; j++) mapped += p.mapcount[head + j];
  const lru = (p.flags[head] & PG_lru) !== 0 ? 1 : 0;
  if (p.refcount[head] !== mapped + 1) return -EAGAIN;
  const pgmap = pagePgmap(k, head);
  if (lru) k.lru.removeOnFree(head);
  for (let j = 0; j < nr; j++) {
    const pfn = head + j;
    p.order[pfn] = 0;
    p.flags[pfn] &= ~(PG_head | PG_tail);
    if (j > 0) {
      p.flags[pfn] |= p.flags[head] & ~(1 | PG_anon_exclusive | PG_lru | PG_head | PG_tail);
      p.refcount[pfn] = p.mapcount[pfn];
      p.mapping[pfn] = p.mapping[head];
      p.pincount[pfn] = 0;
      p.entireMapcount[pfn] = 0;
    }
  }
  p.refcount[head] = p.mapcount[head] + 1;
  k.vmstat.thp_split_page++;
  for (let j = 0; j < nr; j++) {
    const pfn = head + j;
    if (pgmap !== null) {
      if (j > 0) {
        pgmap.ops.folioSplit?.(head, pfn);
        // __folio_split(): every new folio is unfrozen with one extra
        // reference and then put (free_folio_and_swap_cache), so a device
        // page that nothing maps any more goes back to its driver.
        if (p.refcount[pfn] === 0) folioFreeUnmappedTail(k, pfn);
      }
      continue;
    }
    if (j > 0 && p.refcount[pfn] === 0) {
      folioFreeUnmappedTail(k, pfn);
      continue;
    }
    /* lru_add_split_folio(): every page of a folio that was on the LRU goes back on it */
    if (lru) k.lru.addSplit(pfn);
  }
  return 0;
}

/** A tail page that nothing maps after a split is freed (as __split_huge_page does). */
function folioFreeUnmappedTail(k: Kernel, pfn: number): void {
  k.pages.refcount[pfn] = 1;
  folioPut(k, pfn);
}

export { VM_FAULT_OOM };
