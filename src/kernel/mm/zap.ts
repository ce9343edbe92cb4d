// SPDX-License-Identifier: GPL-2.0-only
/**
 * Tearing down user page tables (mm/memory.c: unmap_page_range,
 * zap_pmd_range, zap_pte_range, zap_nonpresent_ptes, zap_page_range_single,
 * unmap_mapping_range; mm/huge_memory.c: zap_huge_pmd;
 * mm/hugetlb.c: __unmap_hugepage_range).
 *
 * For every entry kind the model does what the kernel does:
 *   present            rmap remove, MM_*PAGES--, folio put (dirty -> folio
 *                      dirty for file pages); the zero page and special
 *                      (pfnmap) entries are only cleared
 *   device-private     rmap remove, MM_ANONPAGES--, folio put
 *   device-exclusive   same as device-private (the mapcount was kept)
 *   migration          MM_*PAGES-- only (the rmap was removed by
 *                      try_to_migrate; remove_migration_ptes will find none)
 *   swap               MM_SWAPENTS--, swap_free() of the slot
 *   hwpoison           cleared
 * PMD leaves: a THP, the huge zero page, a PMD migration entry, a
 * device-private PMD and a hugetlb page. A leaf only partly inside the range
 * is split first (splitHugePmd), then its PTEs are zapped.
 *
 * Differences from the kernel: no mmu_gather batching (rmap removal and
 * folio_put happen entry by entry, which is what tlb_finish_mmu ends up
 * doing); empty PTE tables are freed at once when `freeTables` is set and no
 * VMA covers the table any more (free_pgtables); PMD/PUD tables are kept.
 */
import type { Kernel } from '../kernel.js';
import type { K } from '../sched/sched.js';
import { type AddressSpace, type MmStruct, type Vma, VM_PFNMAP, VM_HUGETLB } from './mm_types.js';
import {
  type PmdTable, type PteTable, T_NONE, T_PRESENT, T_SWAP, T_MIGRATION_READ, T_MIGRATION_READ_EXCLUSIVE,
  T_MIGRATION_WRITE, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_DEVICE_EXCLUSIVE, T_HWPOISON, T_TABLE,
  _PAGE_SPECIAL, _PAGE_DIRTY, pmdIndex, pmdTableOf, pteIndex, pudAddrEnd, pmdIsTable, pteType, pmdAddrEnd, pmdAlignDown, pmdSpanEnd,
} from './pgtable.js';
import { clearPte, clearPmd } from './pte_ops.js';
import { HPAGE_PMD_NR, PAGE_SIZE, PMD_SIZE, PG_anon, PG_dirty, PG_hugetlb, PG_swapbacked } from './page.js';
import { folioRemoveRmapPte, folioRemoveRmapPmd } from './rmap.js';
import { folioPut } from './folio.js';
import { MMU_NOTIFY_CLEAR, mmuNotifierRangeInit, mmuNotifierInvalidateRangeStart, mmuNotifierInvalidateRangeEnd } from './mmu_notifier.js';
import { splitHugePmdNotify } from './huge_memory.js';

/** struct zap_details */
export interface ZapDetails {
  /**
   * even_cows: when false (hole punch), anonymous (COW) folios in a file
   * mapping are left alone (should_zap_folio()); true for munmap, exit,
   * MADV_DONTNEED and truncate.
   */
  evenCows: boolean;
  /** free_pgtables(): free PTE tables that became empty and that no VMA covers. */
  freeTables: boolean;
}

export const ZAP_ALL: ZapDetails = { evenCows: true, freeTables: false };
export const ZAP_UNMAP: ZapDetails = { evenCows: true, freeTables: true };

import { spinLock } from '../sched/locks.js';
export { spinLock };

/**
 * mm_counter(folio) decrement/increment: MM_ANONPAGES for anon folios
 * (device-private ones included), MM_SHMEMPAGES for shmem, else
 * MM_FILEPAGES. Hugetlb folios are not counted in RSS (hugetlb_usage).
 */
export function addMmCounter(mm: MmStruct, k: Kernel, head: number, n: number): void {
  const fl = k.pages.flags[head];
  if (fl & PG_hugetlb) return;
  if (fl & PG_anon) mm.rss.anon += n;
  else if (fl & PG_swapbacked) mm.rss.shmem += n;
  else mm.rss.file += n;
}

/**
 * zap_pte_range() for [start, end) inside one PTE table; the caller holds
 * no PTL (taken here). Returns nothing: every entry in range is cleared
 * except anon folios skipped by !evenCows.
 */
function* zapPteRange(vma: Vma, pt: PteTable, start: number, end: number, d: ZapDetails): K<void> {
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  const p = k.pages;
  const zero = k.zeroPfn;
  const pfnmap = (vma.flags & VM_PFNMAP) !== 0;
  yield* spinLock(s, pt.ptl);
  const j0 = pteIndex(start);
  const j1 = j0 + (end - start) / PAGE_SIZE;
  for (let j = j0; j < j1; j++) {
    const f = pt.f[j];
    const t = pteType(f);
    if (t === T_NONE) continue;
    const v = pt.v[j];
    switch (t) {
      case T_PRESENT: {
        if ((f & _PAGE_SPECIAL) || v === zero || pfnmap) {
          clearPte(pt, j, 'zap_pte_range');
          break;
        }
        const head = p.folioPfn(v);
        if (!d.evenCows && (p.flags[head] & PG_anon) && !vma.isAnon()) break;
        if ((f & _PAGE_DIRTY) && !(p.flags[head] & PG_anon)) p.flags[head] |= PG_dirty;
        clearPte(pt, j, 'zap_pte_range');
        addMmCounter(mm, k, head, -1);
        folioRemoveRmapPte(k, v);
        folioPut(k, v);
        break;
      }
      case T_DEVICE_PRIVATE_READ:
      case T_DEVICE_PRIVATE_WRITE:
      case T_DEVICE_EXCLUSIVE: {
        const head = p.folioPfn(v);
        if (!d.evenCows && (p.flags[head] & PG_anon) && !vma.isAnon()) break;
        clearPte(pt, j, 'zap_pte_range');
        addMmCounter(mm, k, head, -1);
        folioRemoveRmapPte(k, v);
        folioPut(k, v);
        break;
      }
      case T_MIGRATION_READ:
      case T_MIGRATION_READ_EXCLUSIVE:
      case T_MIGRATION_WRITE: {
        const head = p.folioPfn(v);
        if (!d.evenCows && (p.flags[head] & PG_anon) && !vma.isAnon()) break;
        clearPte(pt, j, 'zap_pte_range');
        addMmCounter(mm, k, head, -1);
        break;
      }
      case T_SWAP:
        if (!d.evenCows) break;
        clearPte(pt, j, 'zap_pte_range');
        mm.rss.swap--;
        k.swap?.free(v); /* free_swap_and_cache() */
        break;
      case T_HWPOISON:
      default:
        if (!d.evenCows) break;
        clearPte(pt, j, 'zap_pte_range');
        break;
    }
  }
  pt.ptl.unlock(s);
  if (s.exploring) yield s.point('pte unlock', start);
}

/**
 * zap_huge_pmd() / the hugetlb case of __unmap_hugepage_range(): clear a
 * whole PMD leaf. Called with the pmd lock NOT held (taken here).
 */
function* zapHugePmd(vma: Vma, pmd: PmdTable, i: number, addr: number, d: ZapDetails): K<void> {
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  const p = k.pages;
  yield* spinLock(s, pmd.lock);
  const f = pmd.f[i];
  const t = pteType(f);
  const v = pmd.v[i];
  const head = t === T_NONE || t === T_SWAP ? -1 : p.folioPfn(v);
  if (head >= 0 && !d.evenCows && (p.flags[head] & PG_anon) && !vma.isAnon()) {
    pmd.lock.unlock(s);
    return;
  }
  switch (t) {
    case T_NONE:
      break;
    case T_PRESENT:
      clearPmd(pmd, i, 'zap_huge_pmd');
      if (head === k.hugeZeroPfn || (f & _PAGE_SPECIAL)) break;
      if ((f & _PAGE_DIRTY) && !(p.flags[head] & PG_anon)) p.flags[head] |= PG_dirty;
      addMmCounter(mm, k, head, -HPAGE_PMD_NR);
      folioRemoveRmapPmd(k, head);
      folioPut(k, head);
      break;
    case T_DEVICE_PRIVATE_READ:
    case T_DEVICE_PRIVATE_WRITE:
    case T_DEVICE_EXCLUSIVE:
      clearPmd(pmd, i, 'zap_huge_pmd');
      addMmCounter(mm, k, head, -HPAGE_PMD_NR);
      folioRemoveRmapPmd(k, head);
      folioPut(k, head);
      break;
    case T_MIGRATION_READ:
    case T_MIGRATION_READ_EXCLUSIVE:
    case T_MIGRATION_WRITE:
      clearPmd(pmd, i, 'zap_huge_pmd');
      addMmCounter(mm, k, head, -HPAGE_PMD_NR);
      break;
    default:
      clearPmd(pmd, i, 'zap_huge_pmd');
      break;
  }
  pmd.lock.unlock(s);
  if (s.exploring) yield s.point('pmd unlock', addr);
}

/** Is any VMA of mm intersecting [start, end)? */
function rangeHasVma(mm: MmStruct, start: number, end: number): boolean {
  const vma = mm.findVma(start);
  return vma !== null && vma.start < end;
}

/**
 * unmap_page_range(): zap [start, end) of vma (inside the VMA, page
 * aligned). The caller holds mmap_lock (write for munmap/exit, read for
 * MADV_DONTNEED), or, from unmap_mapping_range(), the file's i_mmap_rwsem
 * instead (implicit in the model: not asserted), and has started the mmu
 * notifier range. Page-table
 * pages that became empty are freed when d.freeTables and no VMA of the mm
 * covers them (the caller detached the VMA first).
 */
export function* unmapPageRange(vma: Vma, start: number, end: number, d: ZapDetails = ZAP_ALL): K<void> {
  const mm = vma.mm;
  const pgd = mm.pgd;
  let addr = start;
  while (addr < end) {
    const pmd = pmdTableOf(pgd, addr, false);
    if (pmd === null) {
      addr = pudAddrEnd(addr, end);
      continue;
    }
    const next = pmdAddrEnd(addr, end);
    const i = pmdIndex(addr);
    let t = pteType(pmd.f[i]);
    if (t !== T_NONE && t !== T_TABLE) {
      if (next - addr === PMD_SIZE || (vma.flags & VM_HUGETLB)) {
        yield* zapHugePmd(vma, pmd, i, addr, d);
        addr = next;
        continue;
      }
      // __split_huge_pmd() of a leaf only partly in range, with its own
      // MMU_NOTIFY_CLEAR range over the whole PMD (the caller's covers only
      // [start, end)).
      yield* splitHugePmdNotify(vma, pmd, i, addr);
      t = pteType(pmd.f[i]);
    }
    if (t === T_TABLE) {
      const pt = pmd.pte[i]!;
      yield* zapPteRange(vma, pt, addr, next, d);
      if (d.freeTables && pt.used === 0 && pmd.pte[i] === pt && !rangeHasVma(mm, pmdAlignDown(addr), pmdSpanEnd(addr))) {
        freePteTable(mm, pmd, i);
      }
    }
    addr = next;
  }
}

/** free_pte_range(): drop an empty PTE table from its PMD slot. */
export function freePteTable(mm: MmStruct, pmd: PmdTable, i: number): void {
  if (!pmdIsTable(pmd.f[i])) return;
  clearPmd(pmd, i, 'free_pte_range');
  mm.pgd.nrTables--;
}

/**
 * zap_page_range_single() / zap_vma_range: notifier `event` (MMU_NOTIFY_CLEAR
 * for MADV_DONTNEED and unmap_mapping_range, MMU_NOTIFY_UNMAP for munmap and
 * exit) around unmapPageRange(). [start, end) is clamped to the VMA.
 * Caller holds mmap_lock (read suffices for MADV_DONTNEED), or, from
 * unmap_mapping_range(), the i_mmap_rwsem instead (mm/memory.c
 * unmap_mapping_range_tree(); implicit in the model, so not asserted).
 */
export function* zapPageRange(vma: Vma, start: number, end: number, event: number = MMU_NOTIFY_CLEAR, d: ZapDetails = ZAP_ALL): K<void> {
  const s = Math.max(start, vma.start);
  const e = Math.min(end, vma.end);
  if (s >= e) return;
  const range = mmuNotifierRangeInit(vma.mm, event, s, e);
  yield* mmuNotifierInvalidateRangeStart(range);
  try {
    yield* unmapPageRange(vma, s, e, d);
  } finally {
    mmuNotifierInvalidateRangeEnd(range);
  }
}

/**
 * unmap_mapping_range(mapping, holebegin, holelen, even_cows) in page
 * units: zap every mapping of file pages [first, first+nr) (nr 0: to the
 * end) in every VMA of as->i_mmap. even_cows also drops private COW copies
 * (truncate); without it only the file's own pages go (hole punch).
 * Caller holds no mmap_lock of those mms (the kernel needs none: i_mmap lock).
 */
export function* unmapMappingRange(as: AddressSpace, first: number, nr: number, evenCows: boolean): K<void> {
  const last = nr === 0 ? Infinity : first + nr;
  for (const vma of [...as.iMmap]) {
    const vfirst = vma.pgoff;
    const vlast = vma.pgoff + (vma.end - vma.start) / PAGE_SIZE;
    const a = Math.max(first, vfirst);
    const b = Math.min(last, vlast);
    if (a >= b) continue;
    const s = vma.start + (a - vfirst) * PAGE_SIZE;
    const e = vma.start + (b - vfirst) * PAGE_SIZE;
    yield* zapPageRange(vma, s, e, MMU_NOTIFY_CLEAR, { evenCows, freeTables: false });
  }
}
