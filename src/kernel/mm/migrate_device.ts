// SPDX-License-Identifier: GPL-2.0-only
/**
 * Device memory migration (mm/migrate_device.c, include/linux/migrate.h).
 *
 * The three-step API a driver uses to move the pages behind a virtual range
 * between system memory and device memory:
 *
 *   migrate_vma_setup()    collect the pages, lock them, replace their
 *                          mappings by migration entries, check refcounts
 *   (driver)               allocate + lock destination pages, copy data,
 *                          fill dst[]
 *   migrate_vma_pages()    move struct page metadata; insert pages for holes
 *   (driver)               update its own page tables
 *   migrate_vma_finalize() map dst (or restore src), unlock, drop references
 *
 * and the vma-less variant for evicting device memory:
 * migrate_device_range() / migrate_device_pfns() / migrate_device_pages() /
 * migrate_device_finalize(); plus migrate_device_coherent_folio() for GUP.
 *
 * src/dst entries are numbers `pfn * 64 + flags` (the kernel's
 * `pfn << MIGRATE_PFN_SHIFT | flags`) kept in Float64Arrays; they are built,
 * tested and changed only through migrate_pfn.ts (migratePfn, mpfnMake,
 * mpfnHas, mpfnSet, mpfnClear), never with arithmetic or 32-bit bit
 * operations on the whole value here.
 *
 * Reference ledger of a migrating source page (see the spec, section 2):
 * collect takes a reference (folio_get), installs a migration entry and
 * drops the mapping's mapcount and reference; unmap swaps the collect
 * reference for the LRU isolation reference (system pages); the refcount
 * checks expect exactly that one reference (+1 for a locked fault page);
 * finalize maps dst (a reference per mapping), puts src and drops the
 * driver's allocation reference on dst.
 *
 * Misuse by a driver raises KernelBug('BUG', rule, dump_page()).
 */
import { chargeCopyFenceWait, chargeMigrateVmaSetup } from '../cost/charges.js';
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../printk.js';
import { pageBug } from './debug.js';
import { EAGAIN, EBUSY, EINVAL, ENOENT } from '../errno.js';
import {
  type PmdTable, type PteTable, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_MIGRATION_READ,
  T_MIGRATION_READ_EXCLUSIVE, T_MIGRATION_WRITE, T_NONE, T_PRESENT, T_TABLE, _PAGE_DIRTY, _PAGE_RW, _PAGE_SPECIAL,
  isDevicePrivateType, pmdIndex, pudIndex, pgdIndex, pteIndex, pteTableAlloc, pmdTableOf, pmdNone, pmdIsTable, pteType, pmdAligned, pgdAddrEnd, pudAddrEnd, pmdAddrEnd,
} from './pgtable.js';
import { clearPte, setPmdLeaf, setPte } from './pte_ops.js';
import {
  HPAGE_PMD_NR, HPAGE_PMD_ORDER, HPAGE_PMD_SIZE, PAGE_SIZE, PG_anon, PG_anon_exclusive, PG_buddy, PG_dirty, PG_locked, PG_lru,
  PG_shadow_free, PG_swapcache, PG_tail, PG_uptodate, PG_writeback,
} from './page.js';
import {
  folioGet, folioLock, folioPut, folioTestLocked, folioTrylock, folioTryGet, folioUnlock,
} from './folio.js';
import {
  MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_PRIVATE, isDeviceCoherentPage, isDevicePrivatePage,
} from './memremap.js';
import {
  anonVmaPrepare, folioAddNewAnonRmap, folioRemoveRmapPte, folioTryShareAnonRmapPte,
} from './rmap.js';
import { anonVmaPrepareFails } from './rmap.js';
import { pmdAllocFails, pteAllocFails } from './pgtable.js';
import {
  MMU_NOTIFY_MIGRATE, mmuNotifierInvalidateRangeEnd, mmuNotifierInvalidateRangeStart, mmuNotifierRangeInit,
  type MmuNotifierRange,
} from './mmu_notifier.js';
import { VM_DONTEXPAND, VM_HUGETLB, VM_IO, VM_MIXEDMAP, VM_PFNMAP, VM_WRITE, type Vma } from './mm_types.js';
import type { K } from '../sched/sched.js';
import { __GFP_NOWARN } from './page_alloc.js';
import { vmNormalPage } from './memory.js';
import { splitFolio, splitHugePmdNotify } from './huge_memory.js';
import {
  folioCopy, folioMigrateFlags, folioMigrateMapping, folioSplitUnmapped, migrationEntryBits, removeMigrationPtes,
  splitPmdMigrationEntry,
} from './migrate.js';
import { setPmdMigrationEntry, tryToMigrate } from './rmap_migrate.js';
import { mmapAssertLocked } from './mmap_lock.js';

/* The MIGRATE_PFN_* encoding lives in migrate_pfn.ts (include/linux/migrate.h); re-exported for existing importers. */
export {
  MIGRATE_PFN_VALID, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_WRITE, MIGRATE_PFN_COMPOUND, MIGRATE_PFN_SHIFT,
  migratePfn, migratePfnToPage, mpfnFlags, mpfnHas, mpfnSet, mpfnClear, mpfnOrder, mpfnPfn, mpfnMake,
} from './migrate_pfn.js';
import {
  MIGRATE_PFN_VALID, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_WRITE, MIGRATE_PFN_COMPOUND, MIGRATE_PFN_SHIFT,
  migratePfn, migratePfnToPage, mpfnFlags, mpfnHas, mpfnSet, mpfnClear, mpfnPfn, mpfnMake,
} from './migrate_pfn.js';
import { spinLock } from '../sched/locks.js';

/* enum migrate_vma_direction */
/** Collect system (RAM) pages, holes and the zero page. */
export const MIGRATE_VMA_SELECT_SYSTEM = 1 << 0;
/** Collect device-private pages whose pgmap owner is migrate_vma.pgmap_owner. */
export const MIGRATE_VMA_SELECT_DEVICE_PRIVATE = 1 << 1;
/** Collect device-coherent pages whose pgmap owner is migrate_vma.pgmap_owner. */
export const MIGRATE_VMA_SELECT_DEVICE_COHERENT = 1 << 2;
/** Collect PMD-sized folios (and 2 MiB holes) as one COMPOUND entry instead of splitting them. */
export const MIGRATE_VMA_SELECT_COMPOUND = 1 << 3;

/**
 * Model-only state of a struct migrate_vma, to catch driver misuse: NEW
 * until migrate_vma_setup() succeeds, then SETUP, PAGES after
 * migrate_vma_pages(), FINALIZED after migrate_vma_finalize(). The kernel
 * keeps no such state; it trusts the driver to call the three steps in
 * order.
 */
export const MigrateVmaState = {
  NEW: 0,
  SETUP: 1,
  PAGES: 2,
  FINALIZED: 3,
} as const;
/** One of the {@link MigrateVmaState} values. */
export type MigrateVmaState = typeof MigrateVmaState[keyof typeof MigrateVmaState];

/**
 * What a driver fills in of a struct migrate_vma before
 * migrate_vma_setup(): vma, start, end (page aligned inside the vma), src
 * and dst (each at least (end - start) / PAGE_SIZE entries) and flags
 * (MIGRATE_VMA_SELECT_*) are required; pgmapOwner (needed to select device
 * pages) defaults to null, faultPage (vmf.page from a migrate_to_ram()
 * callback, locked and referenced by the fault handler) to -1.
 *
 * The kernel checks `!args->vma`, `!args->src || !args->dst` at run time
 * and returns -EINVAL; so does the model for JavaScript callers that pass
 * null despite the types.
 */
export interface MigrateVmaArgs {
  vma: Vma;
  start: number;
  end: number;
  src: Float64Array;
  dst: Float64Array;
  flags: number;
  pgmapOwner?: unknown;
  faultPage?: number;
}

/**
 * struct migrate_vma. The driver fills the {@link MigrateVmaArgs} fields
 * (through the constructor). Setup writes npages, cpages, src and dst; the
 * driver must not modify src after setup nor dst after migrate_vma_pages().
 */
export class MigrateVma {
  vma: Vma;
  start: number;
  end: number;
  src: Float64Array;
  dst: Float64Array;
  npages = 0;
  cpages = 0;
  flags: number;
  pgmapOwner: unknown;
  faultPage: number;
  /** Model-only: where in the three-step protocol this descriptor is. */
  state: MigrateVmaState = MigrateVmaState.NEW;

  constructor(args: MigrateVmaArgs) {
    this.vma = args.vma;
    this.start = args.start;
    this.end = args.end;
    this.src = args.src;
    this.dst = args.dst;
    this.flags = args.flags;
    this.pgmapOwner = args.pgmapOwner ?? null;
    this.faultPage = args.faultPage ?? -1;
  }
}

/* ------------------------------------------------------------------------ */
/* collect                                                                   */

/** The walk state: the descriptor plus the fault folio and the kernel. */
interface Walk {
  k: Kernel;
  mv: MigrateVma;
  src: Float64Array;
  dst: Float64Array;
  /** page_folio(fault_page), or -1. */
  faultFolio: number;
}

function emit(w: Walk, mpfn: number): void {
  const n = w.mv.npages++;
  w.dst[n] = 0;
  w.src[n] = mpfn;
}

/** migrate_vma_collect_skip(): zero entries for [start, end). */
function collectSkip(w: Walk, start: number, end: number): number {
  const n = Math.round((end - start) / PAGE_SIZE);
  const at = w.mv.npages;
  w.src.fill(0, at, at + n);
  w.dst.fill(0, at, at + n);
  w.mv.npages = at + n;
  return 0;
}

/**
 * migrate_vma_collect_hole(): empty page table range. Anonymous VMAs get
 * MIGRATE entries without a page (the driver may populate them); with
 * SELECT_COMPOUND and a 2 MiB aligned span one COMPOUND entry is emitted
 * followed by zeros — for the whole span, even when an upper-level hole
 * covers more than one PMD (mainline behaviour, see the spec's open
 * question 9).
 */
function collectHole(w: Walk, start: number, end: number): number {
  const mv = w.mv;
  if (!mv.vma.isAnon()) return collectSkip(w, start, end);
  if ((mv.flags & MIGRATE_VMA_SELECT_COMPOUND) && pmdAligned(start) && pmdAligned(end)) {
    emit(w, MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
    mv.cpages++;
    return collectSkip(w, start + PAGE_SIZE, end);
  }
  for (let a = start; a < end; a += PAGE_SIZE) {
    emit(w, MIGRATE_PFN_MIGRATE);
    mv.cpages++;
  }
  return 0;
}

/**
 * migrate_vma_split_folio(folio, fault_page): split a PTE-mapped large folio
 * found by collect so its pages can be collected one by one. Sleeps on the
 * folio lock (unless it is the fault folio, already locked by the caller).
 * Afterwards the folio containing the fault page is locked (and referenced
 * for the fault handler), every other page unlocked. Returns 0 or -errno.
 */
function* migrateVmaSplitFolio(k: Kernel, folio: number, faultPage: number): K<number> {
  const faultFolio = faultPage >= 0 ? k.pages.folioPfn(faultPage) : -1;
  if (folio !== faultFolio) {
    folioGet(k, folio);
    yield* folioLock(k, folio);
  }
  const ret = yield* splitFolio(k, folio);
  if (ret !== 0) {
    if (folio !== faultFolio) {
      folioUnlock(k, folio);
      folioPut(k, folio);
    }
    return ret;
  }
  const newFaultFolio = faultPage >= 0 ? k.pages.folioPfn(faultPage) : -1;
  if (newFaultFolio < 0) {
    folioUnlock(k, folio);
    folioPut(k, folio);
  } else if (folio !== newFaultFolio) {
    if (newFaultFolio !== faultFolio) {
      folioGet(k, newFaultFolio);
      yield* folioLock(k, newFaultFolio);
    }
    folioUnlock(k, folio);
    folioPut(k, folio);
  }
  return 0;
}

/**
 * migrate_vma_collect_huge_pmd(): a PMD leaf (THP, huge zero page,
 * device-private PMD entry, PMD migration entry) or a none PMD. Returns 0
 * (span handled), -EAGAIN (the PMD changed: retry) or -ENOENT (now a PTE
 * table: walk the PTEs).
 *
 * As mainline, a present PMD is selected by MIGRATE_VMA_SELECT_SYSTEM alone,
 * even when it maps a device-coherent folio: unlike the PTE path there is no
 * SELECT_DEVICE_COHERENT / pgmap owner check here (docs/FINDINGS.md
 * #migrate-coherent-thp-selected-as-system; dmirror WARNs "page already in
 * device").
 */
function* collectHugePmd(w: Walk, pmd: PmdTable, i: number, start: number, end: number): K<number> {
  const { k, mv } = w;
  const s = k.sched;
  yield* spinLock(s, pmd.lock);
  const f = pmd.f[i];
  const t = pteType(f);
  let write = 0;
  let folio: number;
  if (t === T_NONE) {
    pmd.lock.unlock(s);
    return collectHole(w, start, end);
  }
  if (t === T_PRESENT) {
    if (!(mv.flags & MIGRATE_VMA_SELECT_SYSTEM)) {
      pmd.lock.unlock(s);
      return collectSkip(w, start, end);
    }
    folio = pmd.v[i];
    if (folio === k.hugeZeroPfn || (f & _PAGE_SPECIAL)) {
      pmd.lock.unlock(s);
      return collectHole(w, start, end);
    }
    if (f & _PAGE_RW) write = MIGRATE_PFN_WRITE;
  } else if (t !== T_TABLE) {
    if (!isDevicePrivateType(t) || !(mv.flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE)) {
      pmd.lock.unlock(s);
      return collectSkip(w, start, end);
    }
    folio = pmd.v[i];
    if (k.pgmaps[k.pages.pgmap[folio]]!.owner !== mv.pgmapOwner) {
      pmd.lock.unlock(s);
      return collectSkip(w, start, end);
    }
    if (t === T_DEVICE_PRIVATE_WRITE) write = MIGRATE_PFN_WRITE;
  } else {
    pmd.lock.unlock(s);
    return -EAGAIN;
  }
  folioGet(k, folio);
  if (folio !== w.faultFolio && !folioTrylock(k, folio)) {
    pmd.lock.unlock(s);
    folioPut(k, folio);
    return collectSkip(w, start, end);
  }
  if ((mv.flags & MIGRATE_VMA_SELECT_COMPOUND) && pmdAligned(start) && pmdAligned(end)) {
    emit(w, mpfnMake(folio, MIGRATE_PFN_VALID | write | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND));
    mv.cpages++;
    if (setPmdMigrationEntry(k, pmd, i, folio) === 0) {
      collectSkip(w, start + PAGE_SIZE, end);
      pmd.lock.unlock(s);
      return 0;
    }
    mv.npages--;
    mv.cpages--;
    w.src[mv.npages] = 0;
    w.dst[mv.npages] = 0;
  }
  /* fallback: */
  pmd.lock.unlock(s);
  if (k.pages.order[folio] === 0) return -ENOENT; /* unreachable: a PMD maps a large folio */
  // split_folio() of the PMD-mapped folio: its reference check first (a
  // pinned or otherwise referenced THP, the fault folio among them, stays
  // PMD-mapped: -EAGAIN), then unmap_folio() splits this PMD and every other
  // mm's PMD mapping of it (TTU_SPLIT_HUGE_PMD), then the folio is split.
  const ret = yield* splitFolio(k, folio);
  if (w.faultFolio !== folio) folioUnlock(k, folio);
  folioPut(k, folio);
  if (ret !== 0) return collectSkip(w, start, end);
  if (pmdNone(pmd.f[i])) return collectHole(w, start, end);
  return -ENOENT;
}

/**
 * migrate_vma_collect_pmd(): one PMD span [start, end). PMD leaves go to
 * collectHugePmd(); then, under the PTL, each PTE is examined (mm/migrate_device.c:migrate_vma_collect_pmd()).
 */
function* collectPmd(w: Walk, pmd: PmdTable, i: number, start: number, end: number): K<void> {
  const { k, mv } = w;
  const s = k.sched;
  const p = k.pages;
  const vma = mv.vma;
  const anonVma = vma.isAnon();
  const hist = k.config.historical;
  let addr = start;
  again: for (;;) {
    if (!pmdIsTable(pmd.f[i])) {
      const ret = yield* collectHugePmd(w, pmd, i, start, end);
      if (ret === -EAGAIN) continue again;
      if (ret === 0) return;
    }
    const pt: PteTable | null = pmdIsTable(pmd.f[i]) ? pmd.pte[i] : null;
    if (pt === null) continue again;
    yield* spinLock(k.sched, pt.ptl);
    for (; addr < end; addr += PAGE_SIZE) {
      const j = pteIndex(addr);
      const f = pt.f[j];
      const v = pt.v[j];
      const t = pteType(f);
      let mpfn = 0;
      let page = -1;
      if (t === T_NONE) {
        if (anonVma) {
          mpfn = MIGRATE_PFN_MIGRATE;
          mv.cpages++;
        }
        emit(w, mpfn);
        continue;
      }
      if (t !== T_PRESENT) {
        // Only device-private entries: swap, migration, device-exclusive,
        // hwpoison entries are not migratable here.
        if (!isDevicePrivateType(t)) {
          emit(w, 0);
          continue;
        }
        page = v;
        const pgmap = k.pgmaps[p.pgmap[page]]!;
        if (!(mv.flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) || pgmap.owner !== mv.pgmapOwner) {
          emit(w, 0);
          continue;
        }
        if (p.order[page] !== 0) {
          pt.ptl.unlock(s);
          const r = yield* migrateVmaSplitFolio(k, p.folioPfn(page), mv.faultPage);
          if (r !== 0) {
            collectSkip(w, addr, end);
            return;
          }
          continue again;
        }
        mpfn = mpfnMake(page, MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE | (t === T_DEVICE_PRIVATE_WRITE ? MIGRATE_PFN_WRITE : 0));
      } else {
        const pfn = v;
        if (pfn === k.zeroPfn && ((mv.flags & MIGRATE_VMA_SELECT_SYSTEM) || hist.zero_pfn_without_select_system)) {
          // zero_pfn_without_select_system: before the fix in the device
          // coherent series, the zero pfn was selected even when only
          // SELECT_DEVICE_COHERENT was asked for (review of "mm: add device coherent vma selection for memory migration", v4/v5, 2022; mm/migrate_device.c:migrate_vma_collect_pmd()).
          emit(w, MIGRATE_PFN_MIGRATE);
          mv.cpages++;
          continue;
        }
        page = vmNormalPage(k, vma, addr, v, f);
        if (page >= 0 && p.pgmap[page] === 0 && !(mv.flags & MIGRATE_VMA_SELECT_SYSTEM)) {
          emit(w, 0);
          continue;
        } else if (page >= 0 && isDeviceCoherentPage(k, page)) {
          if (!(mv.flags & MIGRATE_VMA_SELECT_DEVICE_COHERENT) || k.pgmaps[p.pgmap[page]]!.owner !== mv.pgmapOwner) {
            emit(w, 0);
            continue;
          }
        }
        if (page >= 0 && p.order[page] !== 0) {
          pt.ptl.unlock(s);
          const r = yield* migrateVmaSplitFolio(k, p.folioPfn(page), mv.faultPage);
          if (r !== 0) {
            collectSkip(w, addr, end);
            return;
          }
          continue again;
        }
        mpfn = mpfnMake(pfn, MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE | (f & _PAGE_RW ? MIGRATE_PFN_WRITE : 0));
      }
      if (page < 0 || p.mapping[page] === 0) {
        emit(w, 0);
        continue;
      }
      const folio = p.folioPfn(page);
      folioGet(k, folio);
      if (folio === w.faultFolio || folioTrylock(k, folio)) {
        const anonExclusive = (p.flags[folio] & PG_anon) !== 0 && (p.flags[page] & PG_anon_exclusive) !== 0;
        clearPte(pt, j, 'migrate_vma_collect_pmd'); /* ptep_clear_flush() / ptep_get_and_clear() */
        if (anonExclusive && folioTryShareAnonRmapPte(k, page) !== 0) {
          setPte(pt, j, v, f, 'migrate_vma_collect_pmd');
          if (folio !== w.faultFolio) folioUnlock(k, folio);
          folioPut(k, folio);
          emit(w, 0);
          continue;
        }
        mv.cpages++;
        if (t === T_PRESENT && (f & _PAGE_DIRTY)) p.flags[folio] |= PG_dirty;
        const type = mpfnHas(mpfn, MIGRATE_PFN_WRITE) ? T_MIGRATION_WRITE : anonExclusive ? T_MIGRATION_READ_EXCLUSIVE : T_MIGRATION_READ;
        setPte(pt, j, page, type | migrationEntryBits(f), 'migrate_vma_collect_pmd');
        // Like a regular unmap: drop the rmap and the mapping's reference;
        // the collect reference keeps the folio alive.
        folioRemoveRmapPte(k, page);
        folioPut(k, folio);
      } else {
        folioPut(k, folio);
        mpfn = 0;
      }
      emit(w, mpfn);
    }
    pt.ptl.unlock(s);
    return;
  }
}

/**
 * migrate_vma_collect(): one MMU_NOTIFY_MIGRATE invalidation (owner =
 * pgmap_owner, so the owning driver can skip its own device-private
 * mappings) around a page walk of [start, end); then end is recomputed from
 * npages.
 */
function* migrateVmaCollect(w: Walk): K<void> {
  const mv = w.mv;
  const vma = mv.vma;
  const mm = vma.mm;
  const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_MIGRATE, mv.start, mv.end, mv.pgmapOwner);
  yield* mmuNotifierInvalidateRangeStart(range);
  const pgd = mm.pgd;
  let addr = mv.start;
  const end = mv.end;
  while (addr < end) {
    const pud = pgd.pud[pgdIndex(addr)];
    if (pud === null) {
      const next = pgdAddrEnd(addr, end);
      collectHole(w, addr, next);
      addr = next;
      continue;
    }
    const pmd = pud.pmd[pudIndex(addr)];
    if (pmd === null) {
      const next = pudAddrEnd(addr, end);
      collectHole(w, addr, next);
      addr = next;
      continue;
    }
    const next = pmdAddrEnd(addr, end);
    const i = pmdIndex(addr);
    if (pmdNone(pmd.f[i])) collectHole(w, addr, next);
    else yield* collectPmd(w, pmd, i, addr, next);
    addr = next;
  }
  mmuNotifierInvalidateRangeEnd(range);
  mv.end = mv.start + mv.npages * PAGE_SIZE;
}

/* ------------------------------------------------------------------------ */
/* unmap                                                                     */

/**
 * migrate_vma_check_page(page, fault_page): may this unmapped page migrate?
 * Expected extra references: the isolation (system) or collect (device)
 * reference, +1 for the fault page's handler, +1 for ZONE_DEVICE (a
 * historical leftover that makes the check one reference lenient for device
 * pages; folio_migrate_mapping() is exact), +1 for a page / swap cache.
 */
function migrateVmaCheckPage(k: Kernel, page: number, faultPage: number): boolean {
  const p = k.pages;
  const folio = p.folioPfn(page);
  let extra = 1 + (page === faultPage ? 1 : 0);
  if (p.pgmap[folio] !== 0) extra++;
  const anon = (p.flags[folio] & PG_anon) !== 0;
  if ((anon && (p.flags[folio] & PG_swapcache)) || (!anon && p.mapping[folio] !== 0)) extra += 1;
  return p.refcount[folio] - extra <= p.folioMapcount(folio);
}

/**
 * migrate_device_unmap(src, npages, fault_page): every VALID src page is
 * locked and referenced by the caller. System pages are isolated from the
 * LRU (draining the per-CPU batches once if needed), still-mapped pages go
 * through try_to_migrate(), then the refcount check. Pages that fail get
 * MIGRATE cleared and are restored (remapped, unlocked — except the fault
 * page — and put). Returns the number of entries still MIGRATE (holes
 * included, a compound entry counting once).
 */
function* migrateDeviceUnmap(k: Kernel, src: Float64Array, npages: number, faultPage: number): K<number> {
  const p = k.pages;
  const faultFolio = faultPage >= 0 ? p.folioPfn(faultPage) : -1;
  let restore = 0;
  let allowDrain = true;
  let unmapped = 0;
  k.lru.drain(); /* lru_add_drain() */
  for (let i = 0; i < npages;) {
    const page = migratePfnToPage(src[i]);
    let nr = 1;
    if (page < 0) {
      if (mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) unmapped++;
      i += nr;
      continue;
    }
    const folio = p.folioPfn(page);
    nr = p.folioNr(folio);
    if (nr > 1) src[i] = mpfnSet(src[i], MIGRATE_PFN_COMPOUND);
    if (p.pgmap[folio] === 0) {
      if (!(p.flags[folio] & PG_lru) && allowDrain) {
        k.lru.drain(); /* lru_add_drain_all() */
        allowDrain = false;
      }
      if (!k.lru.isolate(folio)) {
        src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
        restore++;
        i += nr;
        continue;
      }
      folioPut(k, folio); /* drop the collect reference; the isolation one remains */
    }
    if (p.folioMapped(folio)) yield* tryToMigrate(k, folio, 0);
    if (p.folioMapped(folio) || !migrateVmaCheckPage(k, page, faultPage)) {
      if (p.pgmap[folio] === 0) {
        folioGet(k, folio);
        k.lru.putback(folio);
      }
      src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
      restore++;
      i += nr;
      continue;
    }
    unmapped++;
    i += nr;
  }
  for (let i = 0; i < npages && restore; i++) {
    const page = migratePfnToPage(src[i]);
    if (page < 0 || mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) continue;
    const folio = p.folioPfn(page);
    removeMigrationPtes(k, folio, folio, false);
    src[i] = 0;
    if (folio !== faultFolio) folioUnlock(k, folio);
    folioPut(k, folio);
    restore--;
  }
  return unmapped;
}

/* ------------------------------------------------------------------------ */
/* setup                                                                     */

const VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP;

/**
 * migrate_vma_setup() - prepare to migrate a range of memory
 * @args: the vma, the [start, end) range, the src and dst arrays, the
 *        MIGRATE_VMA_SELECT_* flags, pgmap_owner and (from migrate_to_ram())
 *        fault_page
 *
 * Returns -EINVAL for bad arguments (no vma, hugetlb / VM_SPECIAL vma, an
 * empty range — computed before start and end are page aligned —, a range
 * outside the vma, no src or dst array, a fault page that is not
 * device-private or not locked), else 0 even when nothing was collected:
 * check cpages.
 *
 * Walks the CPU page table of [start, end) under one MMU_NOTIFY_MIGRATE
 * invalidation carrying pgmap_owner, and writes one src entry per page:
 * holes of anonymous VMAs (none PTEs, the zero page, the huge zero page)
 * get MIGRATE without a page (COMPOUND for a whole 2 MiB hole with
 * SELECT_COMPOUND); pages matching the SELECT flags (system pages with
 * SYSTEM, device-private / device-coherent pages of this owner with
 * DEVICE_PRIVATE / DEVICE_COHERENT) are referenced, locked with a trylock
 * (the fault page is already locked by do_swap_page()) and their PTE
 * replaced by a migration entry that remembers write, exclusivity, young,
 * dirty, soft-dirty and uffd-wp. A THP is collected as one COMPOUND entry
 * with SELECT_COMPOUND (head carries the pfn, the next 511 entries are 0),
 * else split. Everything else gets 0. dst entries are zeroed.
 *
 * Then the collected pages are isolated from the LRU, unmapped everywhere
 * else (try_to_migrate()) and their refcount checked; pages that cannot
 * migrate (pinned, on no LRU, still mapped) are restored and their entry
 * cleared. On return every src entry with VALID|MIGRATE is a page that is
 * locked, unmapped (migration entries everywhere) and held by one reference
 * of the migration (plus the fault handler's for the fault page); cpages
 * counts the entries with MIGRATE.
 *
 * The caller then allocates destination pages for the VALID|MIGRATE entries
 * it wants to migrate (and for holes, if it wants to populate them), locks
 * them (zone_device_page_init() does), copies the data and sets
 * dst[i] = migrate_pfn(pfn) (| MIGRATE_PFN_COMPOUND for a PMD-sized folio),
 * then calls migrate_vma_pages() and migrate_vma_finalize(). The caller
 * holds mmap_lock for read across all three calls.
 */
export function* migrateVmaSetup(args: MigrateVma): K<number> {
  const tr = args.vma !== null ? args.vma.mm.kernel.tracer : null; if (tr !== null && tr.enter('migrate_vma_setup')) return yield* tr.span('migrate_vma_setup', args.start, migrateVmaSetup(args));
  const vma = args.vma;
  args.state = MigrateVmaState.NEW;
  const nrPages = Math.floor((args.end - args.start) / PAGE_SIZE);
  args.start -= args.start % PAGE_SIZE;
  args.end -= args.end % PAGE_SIZE;
  if (vma === null || (vma.flags & VM_HUGETLB) || (vma.flags & VM_SPECIAL) || vma.file?.kind === 'hugetlbfs') return -EINVAL;
  if (nrPages <= 0) return -EINVAL;
  if (args.start < vma.start || args.start >= vma.end) return -EINVAL;
  if (args.end <= vma.start || args.end > vma.end) return -EINVAL;
  if (args.src === null || args.dst === null) return -EINVAL;
  const k = vma.mm.kernel;
  // fault_no_page_ref: the kernel before 16ce101db85d had no fault_page;
  // the fault handler held neither a reference nor the page lock.
  const faultPage = k.config.historical.fault_no_page_ref ? -1 : args.faultPage;
  if (faultPage >= 0 && !isDevicePrivatePage(k, faultPage)) return -EINVAL;
  if (faultPage >= 0 && !folioTestLocked(k, faultPage)) return -EINVAL;
  if (args.src.length < nrPages || args.dst.length < nrPages) {
    throw new KernelBug('BUG', 'migrate_vma_setup: src/dst arrays shorter than (end - start) >> PAGE_SHIFT', `src ${args.src.length} dst ${args.dst.length} entries, range needs ${nrPages}`);
  }
  args.src.fill(0, 0, nrPages);
  args.cpages = 0;
  args.npages = 0;
  const w: Walk = { k, mv: args, src: args.src, dst: args.dst, faultFolio: faultPage >= 0 ? k.pages.folioPfn(faultPage) : -1 };
  mmapAssertLocked(vma.mm, 'migrate_vma_setup'); /* migrate_vma_collect(): walk_page_range() asserts it */
  yield* migrateVmaCollect(w);
  if (args.cpages) args.cpages = yield* migrateDeviceUnmap(k, args.src, args.npages, faultPage);
  if (k.clock !== null) chargeMigrateVmaSetup(k.clock, args.src, args.npages, mpfnHas, { migrate: MIGRATE_PFN_MIGRATE, compound: MIGRATE_PFN_COMPOUND }, HPAGE_PMD_NR);
  args.state = MigrateVmaState.SETUP;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* pages                                                                     */

/** Driver misuse checks on a dst pfn before migrate_vma_pages() uses it. */
function checkDstPage(k: Kernel, dpfn: number, i: number): void {
  const p = k.pages;
  if (dpfn <= 0 || dpfn >= p.capacity || dpfn === k.zeroPfn || dpfn === k.hugeZeroPfn) dstPageBug(k, dpfn, i);
  const head = p.folioPfn(dpfn);
  const isRam = dpfn >= k.buddy.start && dpfn < k.buddy.end;
  if ((!isRam && p.pgmap[dpfn] === 0) || p.refcount[head] <= 0 || (p.flags[head] & (PG_buddy | PG_shadow_free | PG_locked)) !== PG_locked) dstPageBug(k, dpfn, i);
}

/** The BUG checkDstPage() found, named (out of line). */
function dstPageBug(k: Kernel, dpfn: number, i: number): never {
  const p = k.pages;
  if (dpfn === k.zeroPfn || dpfn === k.hugeZeroPfn) {
    pageBug(k, 'BUG', 'migrate_vma_pages: dst page is the zero page', dpfn, `dst[${i}]`);
  }
  const isRam = dpfn >= k.buddy.start && dpfn < k.buddy.end;
  if (dpfn <= 0 || dpfn >= p.capacity || (!isRam && p.pgmap[dpfn] === 0)) {
    throw new KernelBug('BUG', 'migrate_vma_pages: dst pfn has no struct page', `dst[${i}] pfn 0x${dpfn.toString(16)}`);
  }
  const head = p.folioPfn(dpfn);
  if (p.refcount[head] <= 0 || (p.flags[head] & (PG_buddy | PG_shadow_free))) {
    pageBug(k, 'BUG', 'migrate_vma_pages: dst page is free', dpfn, `dst[${i}] is a free page`);
  }
  if (!folioTestLocked(k, dpfn)) {
    pageBug(k, 'BUG', 'migrate_vma_pages: dst page not locked', dpfn, `dst[${i}]: destination pages must be locked (lock_page / zone_device_page_init)`);
  }
  throw new KernelBug('BUG', 'migrate_vma_pages: dst page check failed', k.dumpPage(dpfn, `dst[${i}]`));
}

/**
 * migrate_vma_insert_page(): populate the hole at addr with the dst page
 * (do_anonymous_page with a device page): anonymous VMAs only; a huge zero
 * PMD is split first; the PTE must still be none or the zero pfn. A
 * device-private page gets a device-private entry (writable iff VM_WRITE),
 * a system or coherent page a present PTE (write+dirty iff VM_WRITE, not
 * young). On success src = MIGRATE exactly; on failure MIGRATE is cleared.
 */
function* migrateVmaInsertPage(k: Kernel, mv: MigrateVma, addr: number, idx: number): K<void> {
  const src = mv.src;
  const dst = mv.dst;
  const vma = mv.vma;
  const mm = vma.mm;
  const s = k.sched;
  const p = k.pages;
  const page = migratePfnToPage(dst[idx]);
  const folio = p.folioPfn(page);
  abort: {
    if (!vma.isAnon()) break abort;
    if (pmdAllocFails(k, mm.pgd, addr)) break abort; /* pud_alloc / pmd_alloc */
    const pmd = pmdTableOf(mm.pgd, addr, true)!;
    const i = pmdIndex(addr);
    if (mpfnHas(dst[idx], MIGRATE_PFN_COMPOUND)) {
      if ((yield* migrateVmaInsertHugePmdPage(k, mv, addr, folio, idx, pmd, i)) !== 0) break abort;
      return;
    }
    const t = pteType(pmd.f[i]);
    if (t === T_PRESENT) {
      if (pmd.v[i] !== k.hugeZeroPfn) break abort;
      yield* splitHugePmdNotify(vma, pmd, i, addr);
    } else if (t !== T_NONE && t !== T_TABLE) break abort;
    if (pteAllocFails(k, pmd, i)) break abort;
    const pt = pteTableAlloc(mm.pgd, pmd, i, addr);
    if (pt === null) break abort;
    if (anonVmaPrepareFails(k, vma)) break abort;
    anonVmaPrepare(k, vma);
    p.flags[folio] |= PG_uptodate;
    const write = (vma.flags & VM_WRITE) !== 0;
    let ef: number;
    if (isDevicePrivatePage(k, folio)) {
      ef = write ? T_DEVICE_PRIVATE_WRITE : T_DEVICE_PRIVATE_READ;
    } else {
      if (p.pgmap[folio] !== 0 && !isDeviceCoherentPage(k, folio)) {
        k.printk.infoOnce('Unsupported ZONE_DEVICE page type.'); /* pr_warn_once() */
        break abort;
      }
      ef = T_PRESENT | (write ? _PAGE_RW | _PAGE_DIRTY : 0);
    }
    yield* spinLock(k.sched, pt.ptl);
    const j = pteIndex(addr);
    const ot = pteType(pt.f[j]);
    if (ot === T_PRESENT) {
      if (pt.v[j] !== k.zeroPfn) {
        pt.ptl.unlock(s);
        break abort;
      }
    } else if (ot !== T_NONE) {
      pt.ptl.unlock(s);
      break abort;
    }
    mm.rss.anon++;
    folioAddNewAnonRmap(k, folio, vma, addr, false);
    if (p.pgmap[folio] === 0) k.lru.add(folio);
    folioGet(k, folio);
    setPte(pt, j, page, ef, 'migrate_vma_insert_page');
    pt.ptl.unlock(s);
    src[idx] = MIGRATE_PFN_MIGRATE;
    return;
  }
  src[idx] = mpfnClear(src[idx], MIGRATE_PFN_MIGRATE);
}

/**
 * migrate_vma_insert_huge_pmd_page(): populate a 2 MiB hole with a
 * PMD-sized dst folio (a device-private PMD entry or a present THP PMD).
 * The PMD must be none or the huge zero page (a PTE table, even an empty
 * one, aborts). Returns -EINVAL if the VMA cannot hold a PMD there (the
 * caller then clears MIGRATE on this entry only); every other failure
 * clears MIGRATE on the 512 entries and returns 0. On success src is left
 * as MIGRATE|COMPOUND.
 */
function* migrateVmaInsertHugePmdPage(k: Kernel, mv: MigrateVma, addr: number, folio: number, idx: number, pmd: PmdTable, i: number): K<number> {
  const src = mv.src;
  const vma = mv.vma;
  const mm = vma.mm;
  const p = k.pages;
  const s = k.sched;
  if (!pmdAligned(addr) || addr < vma.start || addr + HPAGE_PMD_SIZE > vma.end) return -EINVAL;
  anonVmaPrepare(k, vma);
  if (p.order[folio] !== HPAGE_PMD_ORDER) {
    pageBug(k, 'BUG', 'migrate_vma_pages: MIGRATE_PFN_COMPOUND dst is not a PMD-sized folio', folio, `dst[${idx}] has order ${p.order[folio]}`);
  }
  p.flags[folio] |= PG_uptodate;
  const write = (vma.flags & VM_WRITE) !== 0;
  let ef = 0;
  abort: {
    if (isDevicePrivatePage(k, folio)) ef = write ? T_DEVICE_PRIVATE_WRITE : T_DEVICE_PRIVATE_READ;
    else {
      if (p.pgmap[folio] !== 0 && !isDeviceCoherentPage(k, folio)) break abort;
      ef = T_PRESENT | (write ? _PAGE_RW | _PAGE_DIRTY : 0);
    }
    yield* spinLock(k.sched, pmd.lock);
    const t = pteType(pmd.f[i]);
    if (!(t === T_PRESENT && pmd.v[i] === k.hugeZeroPfn) && t !== T_NONE) {
      pmd.lock.unlock(s);
      break abort;
    }
    mm.rss.anon += HPAGE_PMD_NR;
    folioAddNewAnonRmap(k, folio, vma, addr, true);
    if (p.pgmap[folio] === 0) k.lru.add(folio);
    folioGet(k, folio);
    setPmdLeaf(pmd, i, folio, ef, 'migrate_vma_insert_huge_pmd_page');
    pmd.lock.unlock(s);
    k.vmstat.thp_fault_alloc++;
    return 0;
  }
  for (let j = 0; j < HPAGE_PMD_NR && idx + j < src.length; j++) src[idx + j] = mpfnClear(src[idx + j], MIGRATE_PFN_MIGRATE);
  return 0;
}

/**
 * migrate_vma_split_unmapped_folio(): the source THP was collected as one
 * COMPOUND entry but the driver supplied small dst pages: split its PMD
 * migration entry into 512 PTE migration entries and the (unmapped, locked)
 * folio into 512 locked order-0 folios, and expand src[idx] into 512
 * entries. Returns 0 or -errno.
 */
function migrateVmaSplitUnmappedFolio(k: Kernel, mv: MigrateVma, idx: number, addr: number, folio: number): number {
  const src = mv.src;
  splitPmdMigrationEntry(k, mv.vma, addr);
  const ret = folioSplitUnmapped(k, folio);
  if (ret !== 0) return ret;
  src[idx] = mpfnClear(src[idx], MIGRATE_PFN_COMPOUND);
  const flags = mpfnFlags(src[idx]);
  const pfn = mpfnPfn(src[idx]);
  for (let j = 1; j < HPAGE_PMD_NR; j++) src[idx + j] = mpfnMake(pfn + j, flags);
  k.vmstat.thp_migration_split++;
  return 0;
}

/**
 * __migrate_device_pages(): the body of migrate_vma_pages() (mv set) and
 * migrate_device_pages() (mv null). See the spec, section 6: entries without
 * a dst lose MIGRATE; holes get the dst inserted (vma only); a COMPOUND src
 * with small dst pages is split; small src with a COMPOUND dst is refused;
 * device dst pages take only anonymous sources (a swap-cache source must
 * leave the swap cache first); other ZONE_DEVICE dst types are refused;
 * then folio_migrate_mapping() checks the references and moves the
 * metadata. A hole notifier (MMU_NOTIFY_MIGRATE) spans the first inserted
 * hole to the end.
 */
function* migrateDevicePagesInner(k: Kernel, src: Float64Array, dst: Float64Array, npages: number, mv: MigrateVma | null): K<void> {
  const p = k.pages;
  let range: MmuNotifierRange | null = null;
  for (let i = 0; i < npages;) {
    if (src[i] === 0 && dst[i] === 0) {
      i++;
      continue;
    }
    const newpage = migratePfnToPage(dst[i]);
    const page = migratePfnToPage(src[i]);
    let nr = 1;
    let extraCnt = 0;
    next: {
      if (newpage < 0) {
        src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
        break next;
      }
      checkDstPage(k, newpage, i);
      if (page < 0) {
        if (!mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) break next;
        if (mv === null) throw new KernelBug('BUG', 'migrate_device_pages: a hole (no source page) needs a vma: VM_BUG_ON(!migrate)', `src[${i}] = ${src[i]}`);
        const addr = mv.start + i * PAGE_SIZE;
        if (range === null) {
          range = mmuNotifierRangeInit(mv.vma.mm, MMU_NOTIFY_MIGRATE, addr, mv.end, mv.pgmapOwner);
          yield* mmuNotifierInvalidateRangeStart(range);
        }
        if (mpfnHas(src[i], MIGRATE_PFN_COMPOUND) && !mpfnHas(dst[i], MIGRATE_PFN_COMPOUND)) {
          nr = HPAGE_PMD_NR; /* migrate_vma_nr_pages() */
          src[i] = mpfnClear(src[i], MIGRATE_PFN_COMPOUND);
        } else nr = 1;
        for (let j = 0; j < nr && i + j < npages; j++) {
          src[i + j] = mpfnSet(src[i + j], MIGRATE_PFN_MIGRATE);
          if (j > 0) {
            const np = migratePfnToPage(dst[i + j]);
            if (np < 0) throw new KernelBug('BUG', 'migrate_vma_pages: compound hole split without a dst page (page_folio(NULL))', `dst[${i + j}] = ${dst[i + j]}`);
            checkDstPage(k, np, i + j);
          }
          yield* migrateVmaInsertPage(k, mv, addr + j * PAGE_SIZE, i + j);
        }
        break next;
      }
      let newfolio = p.folioPfn(newpage);
      let folio = p.folioPfn(page);
      const anon = (p.flags[folio] & PG_anon) !== 0;
      const hasMapping = (anon && (p.flags[folio] & PG_swapcache) !== 0) || (!anon && p.mapping[folio] !== 0);
      if (mpfnHas(src[i], MIGRATE_PFN_MIGRATE) && mpfnHas(src[i], MIGRATE_PFN_COMPOUND) && !mpfnHas(dst[i], MIGRATE_PFN_COMPOUND)) {
        if (mv === null) {
          src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
          break next;
        }
        nr = 1 << p.order[folio];
        const addr = mv.start + i * PAGE_SIZE;
        if (migrateVmaSplitUnmappedFolio(k, mv, i, addr, folio) !== 0) {
          src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
          break next;
        }
      } else if (mpfnHas(src[i], MIGRATE_PFN_MIGRATE) && mpfnHas(dst[i], MIGRATE_PFN_COMPOUND) && !mpfnHas(src[i], MIGRATE_PFN_COMPOUND)) {
        src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE); /* no "goto next": metadata still copied */
      }
      const ng = p.pgmap[newfolio];
      const ntype = ng !== 0 ? k.pgmaps[ng]!.type : 0;
      if (ntype === MEMORY_DEVICE_PRIVATE || ntype === MEMORY_DEVICE_COHERENT) {
        if (hasMapping) {
          // Only anonymous memory can move to device memory; a swap-cache
          // folio would first leave the swap cache (folio_free_swap), which
          // the model (no swap cache) never needs.
          if (!anon) {
            src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
            break next;
          }
          p.flags[folio] &= ~PG_swapcache;
        }
      } else if (ng !== 0) {
        src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
        break next;
      }
      if (p.flags[folio] & PG_writeback) pageBug(k, 'BUG', 'migrate_vma_pages: source folio under writeback', folio, 'BUG_ON(folio_test_writeback(folio))');
      if (mv !== null && mv.faultPage === page && !k.config.historical.fault_no_page_ref) extraCnt = 1;
      for (let j = 0; j < nr && i + j < npages; j++) {
        const sp = migratePfnToPage(src[i + j]);
        const dp = migratePfnToPage(dst[i + j]);
        if (dp < 0 || sp < 0) throw new KernelBug('BUG', 'migrate_vma_pages: split THP entry without a dst page (page_folio(NULL))', `src[${i + j}] = ${src[i + j]} dst[${i + j}] = ${dst[i + j]}`);
        if (j > 0) checkDstPage(k, dp, i + j);
        folio = p.folioPfn(sp);
        newfolio = p.folioPfn(dp);
        const r = folioMigrateMapping(k, newfolio, folio, extraCnt);
        if (r !== 0) src[i + j] = mpfnClear(src[i + j], MIGRATE_PFN_MIGRATE);
        else folioMigrateFlags(k, newfolio, folio);
      }
    }
    i += nr;
  }
  if (range !== null) mmuNotifierInvalidateRangeEnd(range);
}

/**
 * migrate_vma_pages() - migrate meta-data from src page to dst page
 * @mv: the descriptor migrate_vma_setup() filled in, with dst[] set by the
 *      driver (locked pages; COMPOUND for PMD-sized folios)
 *
 * Moves struct page metadata (mapping, index, flags) from each migrating
 * source page to its destination after the exact refcount check, and
 * inserts the destination pages of holes into the page table (they are
 * mapped from here on, holding one reference for the mapping). Entries
 * that cannot migrate lose MIGRATE in src; after the call the driver may
 * inspect src to learn which pages moved and update its own page tables:
 * source and destination pages are still locked and mmap_lock is held for
 * read. Calling it without a successful migrate_vma_setup() is a BUG.
 */
export function* migrateVmaPages(mv: MigrateVma): K<void> {
  const tr = mv.vma !== null ? mv.vma.mm.kernel.tracer : null; if (tr !== null && tr.enter('migrate_vma_pages')) return yield* tr.span('migrate_vma_pages', mv.start, migrateVmaPages(mv));
  if (mv.state !== MigrateVmaState.SETUP) {
    const rule = mv.state === MigrateVmaState.NEW ? 'migrate_vma_pages() without a successful migrate_vma_setup()'
      : mv.state === MigrateVmaState.PAGES ? 'migrate_vma_pages() called twice' : 'migrate_vma_pages() after migrate_vma_finalize()';
    throw new KernelBug('BUG', rule, `migrate_vma state ${mv.state}`);
  }
  const k = mv.vma.mm.kernel;
  mv.state = MigrateVmaState.PAGES;
  yield* migrateDevicePagesInner(k, mv.src, mv.dst, mv.npages, mv);
}

/**
 * migrate_device_pages() - migrate meta-data from src page to dst page
 * @src: the entries migrate_device_range() / migrate_device_pfns() filled in
 * @dst: the destination pages the driver allocated, locked and copied to
 * @npages: number of entries
 *
 * Equivalent to migrate_vma_pages() without a vma: there are no holes to
 * fill (a hole with a dst is a BUG) and a compound source with small
 * destination pages is not split but refused.
 *
 * Locks and references: no mmap_lock is needed. Every src page with
 * MIGRATE is locked and holds the migration's reference (taken by
 * migrate_device_range() / migrate_device_pfns()); every dst page is locked
 * and holds the driver's allocation reference. Both stay so until
 * migrate_device_finalize().
 */
export function* migrateDevicePages(k: Kernel, src: Float64Array, dst: Float64Array, npages: number): K<void> {
  if (k.tracer !== null && k.tracer.enter('migrate_device_pages')) return yield* k.tracer.span('migrate_device_pages', npages, migrateDevicePages(k, src, dst, npages));
  yield* migrateDevicePagesInner(k, src, dst, npages, null);
}

/* ------------------------------------------------------------------------ */
/* finalize                                                                  */

/**
 * Checked mode only (a model check, not kernel behaviour): the page
 * contents must be preserved by a migration. When both the source and the
 * destination are CPU-addressable (system or device-coherent memory) their
 * contents must match page by page at finalize, before the destination is
 * mapped; a driver that forgot (or botched) its copy would otherwise lose
 * user data silently. Device-private memory is opaque to the CPU — its
 * data is wherever the driver keeps it — so those entries are not compared.
 */
function checkContentsPreserved(k: Kernel, src: number, dst: number): void {
  if (isDevicePrivatePage(k, src) || isDevicePrivatePage(k, dst)) return;
  const nr = Math.min(k.pages.folioNr(src), k.pages.folioNr(dst));
  for (let j = 0; j < nr; j++) {
    if (k.contents.checksum(src + j) !== k.contents.checksum(dst + j)) {
      pageBug(k, 'INVARIANT', 'migration lost data: the destination page differs from the source at finalize', dst + j, `dst ${dst + j} != src ${src + j} (the driver must copy before migrate_vma_pages / finalize)`);
    }
  }
}

/**
 * __migrate_device_finalize() for entries [from, to): per entry, map dst
 * in place of src's migration entries (src MIGRATE and a dst present) or
 * restore src; put system pages back on the LRU; unlock (never the fault
 * folio) and put src and dst. A dst that is not used is unlocked and put
 * before src is restored, as in the kernel.
 *
 * The loop and its body are one function so that V8 spends its inlining
 * budget on the reference, lock and rmap helpers the body calls.
 */
function migrateDeviceFinalizeRange(k: Kernel, src: Float64Array, dst: Float64Array, from: number, to: number, faultFolio: number): void {
  const p = k.pages;
  for (let i = from; i < to; i++) {
    if (src[i] === 0 && dst[i] === 0) continue; /* the tail entries of a compound entry, skipped entries */
    const newpage = migratePfnToPage(dst[i]);
    const page = migratePfnToPage(src[i]);
    let d = newpage >= 0 ? p.folioPfn(newpage) : -1;
    let sf = -1;
    if (page >= 0) {
      sf = p.folioPfn(page);
      if (!mpfnHas(src[i], MIGRATE_PFN_MIGRATE) || d < 0) {
        if (d >= 0) finalizeReleaseDst(k, d, faultFolio);
        d = sf;
      }
      if (d !== sf && k.checkHook !== null) checkContentsPreserved(k, sf, d);
      if (p.pgmap[d] === 0) k.lru.add(d);
      removeMigrationPtes(k, sf, d, false);
      if (faultFolio !== sf) folioUnlock(k, sf);
      folioPut(k, sf);
    }
    if (d >= 0 && d !== sf) finalizeReleaseDst(k, d, faultFolio);
  }
}

/** Unlock and put a destination folio (never the fault folio: WARN). */
function finalizeReleaseDst(k: Kernel, d: number, faultFolio: number): void {
  if (faultFolio === d) k.warnOnPage(true, d, 'migrate_device_finalize: dst is the fault folio');
  folioUnlock(k, d);
  folioPut(k, d);
}

/**
 * The same loop for a scheduler that is exploring: a hook point after each
 * entry, where the source (often a device page) and destination references
 * have just been put and the locks dropped.
 */
function* migrateDeviceFinalizeExploring(k: Kernel, src: Float64Array, dst: Float64Array, npages: number, faultFolio: number): K<void> {
  const s = k.sched;
  for (let i = 0; i < npages; i++) {
    if (src[i] === 0 && dst[i] === 0) continue;
    const page = migratePfnToPage(src[i]);
    migrateDeviceFinalizeRange(k, src, dst, i, i + 1, faultFolio);
    yield s.point('migrate_device_finalize: unlock + put', page);
  }
}

/** Finalize from generator code: per-entry hook points only while exploring. */
function* finalizeAll(k: Kernel, src: Float64Array, dst: Float64Array, npages: number, faultPage: number): K<void> {
  const faultFolio = faultPage >= 0 ? k.pages.folioPfn(faultPage) : -1;
  if (k.sched.exploring) yield* migrateDeviceFinalizeExploring(k, src, dst, npages, faultFolio);
  else migrateDeviceFinalizeRange(k, src, dst, 0, npages, faultFolio);
}

/**
 * migrate_vma_finalize() - restore CPU page table entry
 * @mv: the descriptor after migrate_vma_setup() (and usually
 *      migrate_vma_pages())
 *
 * Replaces each migration entry by a mapping of the new page where the
 * migration succeeded, or of the original page otherwise; puts system pages
 * back on the LRU; unlocks every source page (except the fault page, which
 * its fault handler unlocks) and every destination page; drops the
 * migration's reference on sources (usually freeing them) and the driver's
 * allocation reference on destinations (mapped pages keep the mapping's).
 * Afterwards no migration entry of the range remains. Calling it twice, or
 * without a successful setup, is a BUG.
 */
export function* migrateVmaFinalize(mv: MigrateVma): K<void> {
  const tr = mv.vma !== null ? mv.vma.mm.kernel.tracer : null; if (tr !== null && tr.enter('migrate_vma_finalize')) return yield* tr.span('migrate_vma_finalize', mv.start, migrateVmaFinalize(mv));
  if (mv.state !== MigrateVmaState.SETUP && mv.state !== MigrateVmaState.PAGES) {
    const rule = mv.state === MigrateVmaState.FINALIZED ? 'migrate_vma_finalize() called twice' : 'migrate_vma_finalize() without a successful migrate_vma_setup()';
    throw new KernelBug('BUG', rule, `migrate_vma state ${mv.state}`);
  }
  const k = mv.vma.mm.kernel;
  if (k.clock !== null) chargeCopyFenceWait(k.clock);
  mv.state = MigrateVmaState.FINALIZED;
  const fp = k.config.historical.fault_no_page_ref ? -1 : mv.faultPage;
  yield* finalizeAll(k, mv.src, mv.dst, mv.npages, fp);
}

/**
 * migrate_device_finalize() - complete page migration
 * @src: src entries from migrate_device_range() / migrate_device_pfns()
 * @dst: the driver's destination pages
 * @npages: number of entries
 *
 * As migrate_vma_finalize(), without a fault page. The driver's copy to
 * the destination pages must be complete before the call: the pages are
 * mapped to the CPU here.
 *
 * Locks and references: no mmap_lock is needed. On return every src and
 * dst page is unlocked; the migration's reference on each src page and the
 * driver's allocation reference on each dst page are dropped (a dst page
 * that was mapped keeps one reference per mapping; a src page that
 * migrated usually reaches refcount 0 and is freed to its allocator).
 */
export function* migrateDeviceFinalize(k: Kernel, src: Float64Array, dst: Float64Array, npages: number): K<void> {
  if (k.tracer !== null && k.tracer.enter('migrate_device_finalize')) return yield* k.tracer.span('migrate_device_finalize', npages, migrateDeviceFinalize(k, src, dst, npages));
  if (k.clock !== null) chargeCopyFenceWait(k.clock);
  yield* finalizeAll(k, src, dst, npages, -1);
}

/* ------------------------------------------------------------------------ */
/* device-range API                                                          */

/**
 * migrate_device_pfn_lock(): reference and trylock the folio starting at
 * pfn. A free page (refcount 0: get_page_unless_zero fails), a tail page or
 * a locked folio gives 0.
 */
function migrateDevicePfnLock(k: Kernel, pfn: number): number {
  const p = k.pages;
  if (p.flags[pfn] & PG_tail) return 0; /* folio_get_nontail_page() */
  if (!folioTryGet(k, pfn)) return 0;
  if (!folioTrylock(k, pfn)) {
    folioPut(k, pfn);
    return 0;
  }
  return mpfnMake(pfn, MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE);
}

/**
 * migrate_device_range() - migrate device private pfns to normal memory.
 * @src: array of at least npages entries, filled in here
 * @startPfn: first device pfn of the range
 * @npages: number of pfns
 *
 * Like migrate_vma_setup(), but by physical range instead of virtual
 * address: every allocated (refcount > 0) folio of the range is
 * referenced and locked (free pages are skipped: get_page_unless_zero()),
 * a large folio gets one COMPOUND entry followed by zeros, then all are
 * unmapped from every mm (try_to_migrate()) and checked. The driver then
 * allocates system pages, copies, and calls migrate_device_pages() and
 * migrate_device_finalize(). Used to evict device memory before
 * memunmap_pages(). Returns 0.
 *
 * Locks and references: no mmap_lock is needed (the rmap walk finds every
 * mapping); pages locked by someone else are skipped (trylock). On return
 * each src entry with MIGRATE is a device folio that is locked, unmapped
 * (migration entries in every mm) and referenced by the migration until
 * migrate_device_finalize().
 */
export function* migrateDeviceRange(k: Kernel, src: Float64Array, startPfn: number, npages: number): K<number> {
  if (k.tracer !== null && k.tracer.enter('migrate_device_range')) return yield* k.tracer.span('migrate_device_range', startPfn, migrateDeviceRange(k, src, startPfn, npages));
  const p = k.pages;
  const s = k.sched;
  for (let pfn = startPfn, i = 0; i < npages; pfn++, i++) {
    const folio = p.folioPfn(pfn);
    src[i] = migrateDevicePfnLock(k, pfn);
    if (s.exploring && src[i] !== 0) yield s.point('migrate_device_range: folio_get + trylock', pfn);
    const nr = p.folioNr(folio);
    if (nr > 1) {
      src[i] = mpfnSet(src[i], MIGRATE_PFN_COMPOUND);
      let j = 1;
      for (; j < nr; j++) src[i + j] = 0;
      i += j - 1;
      pfn += j - 1;
    }
  }
  yield* migrateDeviceUnmap(k, src, npages, -1);
  return 0;
}

/**
 * migrate_device_pfns() - as migrate_device_range() for a list of pfns
 * @src: on entry npages raw pfns (not mpfn values); on return the entries
 * @npages: number of entries
 * Returns 0. Locks and references as migrate_device_range().
 */
export function* migrateDevicePfns(k: Kernel, src: Float64Array, npages: number): K<number> {
  const p = k.pages;
  for (let i = 0; i < npages; i++) {
    const pfn = src[i];
    const folio = p.folioPfn(pfn);
    src[i] = migrateDevicePfnLock(k, pfn);
    const nr = p.folioNr(folio);
    if (nr > 1) {
      src[i] = mpfnSet(src[i], MIGRATE_PFN_COMPOUND);
      let j = 1;
      for (; j < nr; j++) src[i + j] = 0;
      i += j - 1;
    }
  }
  yield* migrateDeviceUnmap(k, src, npages, -1);
  return 0;
}

/**
 * migrate_device_coherent_folio() - move a device-coherent folio to system
 * memory (GUP FOLL_LONGTERM pins must not land in device memory).
 * @head: an order-0 device-coherent folio; the caller holds a reference,
 *        which is consumed on every path
 *
 * Locks the folio (sleeping), unmaps it, allocates and locks a system page,
 * migrates metadata, copies, and finalizes. Returns 0 when the folio moved,
 * -EBUSY when it could not be unmapped, was pinned, or no system page was
 * available.
 */
export function* migrateDeviceCoherentFolio(k: Kernel, head: number): K<number> {
  const p = k.pages;
  k.warnOnPage(p.order[head] !== 0, head, 'migrate_device_coherent_folio: large folio');
  yield* folioLock(k, head);
  const src = new Float64Array(1);
  const dst = new Float64Array(1);
  src[0] = mpfnMake(head, MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE);
  yield* migrateDeviceUnmap(k, src, 1, -1);
  if (!mpfnHas(src[0], MIGRATE_PFN_MIGRATE)) return -EBUSY;
  const d = k.buddy.alloc(0, __GFP_NOWARN, 'migrate_device_coherent_folio');
  if (d >= 0) {
    folioTrylock(k, d);
    dst[0] = migratePfn(d);
  }
  yield* migrateDevicePagesInner(k, src, dst, 1, null);
  if (mpfnHas(src[0], MIGRATE_PFN_MIGRATE)) folioCopy(k, d, head);
  yield* finalizeAll(k, src, dst, 1, -1);
  return mpfnHas(src[0], MIGRATE_PFN_MIGRATE) ? 0 : -EBUSY;
}

