// SPDX-License-Identifier: GPL-2.0-only
/**
 * Folio references and the folio lock (include/linux/mm.h, page_ref.h,
 * pagemap.h, mm/swap.c __folio_put, mm/filemap.c folio_lock).
 *
 * All functions take a pfn of any page of the folio, except where a head is
 * named. Refcounts live on the head (page_folio()).
 */
import { KernelBug } from '../printk.js';
import { pageBug } from './debug.js';
import type { Kernel } from '../kernel.js';
import {
  PG_anon, PG_anon_exclusive, PG_buddy, PG_dirty, PG_head, PG_hugetlb, PG_locked, PG_lru, PG_lru_pending,
  PG_reserved, PG_shadow_free, PG_swapbacked, PG_tail, PG_uptodate, HPAGE_PMD_ORDER,
} from './page.js';
import { freeZoneDeviceFolio } from './memremap.js';
import { freeHugetlbFolio } from './hugetlb_pool.js';
import { type K, waitUntil } from '../sched/sched.js';
import { ACQUIRED } from '../sched/locks.js';

/**
 * KASAN-style check: the page must not be free. A page freed to the buddy
 * allocator or through pgmap->ops->folio_free, or whose pgmap has been
 * memunmap'ed, is poisoned; touching it is a use-after-free.
 *
 * The checks run on every reference operation, so the test is kept small
 * (V8 inlines it into the hot loops) and the report is built out of line.
 */
export function kasanCheck(k: Kernel, pfn: number, op: string): void {
  const p = k.pages;
  if (pfn <= 0 || pfn >= p.capacity || (p.flags[p.folioPfn(pfn)] & PG_shadow_free) !== 0 || (p.pgmap[pfn] !== 0 && pgmapDead(k, pfn))) kasanReport(k, pfn, op);
}

/** Has the dev_pagemap of this ZONE_DEVICE pfn been freed by memunmap_pages()? */
function pgmapDead(k: Kernel, pfn: number): boolean {
  const pgmap = k.pgmaps[k.pages.pgmap[pfn]];
  return pgmap === null || pgmap.dead;
}

/** The KASAN report of kasanCheck(): which rule the access broke. */
function kasanReport(k: Kernel, pfn: number, op: string): never {
  const p = k.pages;
  if (pfn <= 0 || pfn >= p.capacity) throw new KernelBug('KASAN', `${op}: wild pfn ${pfn}`);
  if (p.flags[p.folioPfn(pfn)] & PG_shadow_free) {
    pageBug(k, 'KASAN', `use-after-free in ${op}`, pfn, `KASAN: use-after-free in ${op}`);
  }
  pageBug(k, 'KASAN', `use-after-free of struct dev_pagemap in ${op}`, pfn, `KASAN: pgmap #${p.pgmap[pfn]} freed by memunmap_pages()`);
}

/** folio_get() / get_page(): the caller already holds a reference (VM_BUG_ON on zero). */
export function folioGet(k: Kernel, pfn: number): void {
  const p = k.pages;
  const head = p.folioPfn(pfn);
  kasanCheck(k, head, 'folio_get');
  if (p.refcount[head] <= 0) pageBug(k, 'REFCOUNT', 'folio_get on a folio with refcount 0', head, 'VM_BUG_ON_FOLIO(folio_ref_zero_or_close_to_overflow(folio))');
  p.refcount[head]++;
}

/** folio_ref_add() */
export function folioRefAdd(k: Kernel, pfn: number, n: number): void {
  const head = k.pages.folioPfn(pfn);
  kasanCheck(k, head, 'folio_ref_add');
  k.pages.refcount[head] += n;
}

/**
 * get_page_unless_zero() / folio_try_get(): take a reference unless the
 * count is zero (the page is free). The basis of migrate_device_range()
 * skipping free device pages.
 */
export function folioTryGet(k: Kernel, pfn: number): boolean {
  const head = k.pages.folioPfn(pfn);
  if (k.pages.refcount[head] === 0) return false;
  kasanCheck(k, head, 'folio_try_get');
  k.pages.refcount[head]++;
  return true;
}

/** folio_ref_count() */
export function folioRefCount(k: Kernel, pfn: number): number {
  return k.pages.refcount[k.pages.folioPfn(pfn)];
}

/**
 * folio_put() / put_page(): drop a reference; the last one frees the folio:
 * ZONE_DEVICE -> free_zone_device_folio() (pgmap->ops->folio_free and the
 * pgmap reference), hugetlb -> back to the pool, else off the LRU and back
 * to the buddy allocator. Freeing a mapped folio is "Bad page state" (BUG).
 */
export function folioPut(k: Kernel, pfn: number): void {
  folioPutRefs(k, pfn, 1);
}

/** folio_put_refs() */
export function folioPutRefs(k: Kernel, pfn: number, n: number): void {
  const p = k.pages;
  const head = p.folioPfn(pfn);
  kasanCheck(k, head, 'folio_put');
  const r = p.refcount[head] - n;
  if (r < 0) putUnderflowBug(k, head, n);
  p.refcount[head] = r;
  if (r === 0) freeFolio(k, head);
  // devpage_free_refcount_one: a device page was free at refcount 1
  // (put_devmap_managed_page() called page_free on the 2 -> 1 transition).
  else if (r === 1 && p.pgmap[head] !== 0 && k.config.historical.devpage_free_refcount_one) freeFolio(k, head);
}

function putUnderflowBug(k: Kernel, head: number, n: number): never {
  pageBug(k, 'REFCOUNT', `folio_put: refcount underflow (${k.pages.refcount[head]} - ${n})`, head, 'VM_BUG_ON_FOLIO(folio_ref_count(folio) < 0)');
}

/**
 * __folio_put(): the refcount has reached zero. The common cases (a
 * ZONE_DEVICE folio, a clean unmapped system folio) are tested first; any
 * flag that calls for a check or another free path goes to
 * freeFolioChecked(), which runs every check in the kernel's order.
 */
function freeFolio(k: Kernel, head: number): void {
  const p = k.pages;
  const f = p.flags[head];
  if ((f & PG_reserved) === 0 && p.pgmap[head] !== 0) {
    freeZoneDeviceFolio(k, head);
    return;
  }
  if ((f & (PG_reserved | PG_locked | PG_lru_pending | PG_hugetlb)) !== 0 || p.pincount[head] !== 0 || p.folioMapped(head)) {
    freeFolioChecked(k, head);
    return;
  }
  if (f & PG_lru) k.lru.removeOnFree(head);
  k.buddy.free(head, p.order[head]);
}

/** __folio_put() with every check, in the kernel's order. */
function freeFolioChecked(k: Kernel, head: number): void {
  const p = k.pages;
  if (p.flags[head] & PG_reserved) pageBug(k, 'BUG', 'freeing a reserved page (zero page?)', head, 'Bad page state');
  if (p.pgmap[head] !== 0) {
    freeZoneDeviceFolio(k, head);
    return;
  }
  if (p.folioMapped(head)) pageBug(k, 'BUG', 'Bad page state: freeing a mapped page', head, 'nonzero mapcount');
  if (p.flags[head] & PG_locked) pageBug(k, 'BUG', 'Bad page state: freeing a locked page', head, 'PAGE_FLAGS_CHECK_AT_FREE');
  if (p.flags[head] & PG_lru_pending) pageBug(k, 'BUG', 'freeing a folio held by an LRU batch', head, 'refcount accounting');
  if (p.flags[head] & PG_hugetlb) {
    freeHugetlbFolio(k, head);
    return;
  }
  if (p.flags[head] & PG_lru) k.lru.removeOnFree(head);
  if (p.pincount[head] !== 0) pageBug(k, 'BUG', 'Bad page state: freeing a pinned folio', head, 'pincount != 0');
  // free_pages_prepare(): the buddy allocator resets every page's flags
  // (anon, anon_exclusive, dirty, uptodate, swapbacked, head/tail) to
  // PG_buddy as it takes the folio back.
  k.buddy.free(head, p.order[head]);
}

/** Is the pfn free in the buddy allocator (PageBuddy)? */
export function pageBuddy(k: Kernel, pfn: number): boolean {
  return (k.pages.flags[pfn] & PG_buddy) !== 0;
}

/**
 * folio_trylock(): take PG_locked if free; never blocks. Checked mode:
 * lockdep records the hold (a trylock adds no dependency).
 */
export function folioTrylock(k: Kernel, pfn: number): boolean {
  const p = k.pages;
  const head = p.folioPfn(pfn);
  const f = p.flags[head];
  if (f & PG_locked) return false;
  p.flags[head] = f | PG_locked;
  if (k.sched.lockdep !== null) k.sched.lockdep.folioAcquire(head, true);
  return true;
}

/**
 * folio_lock() fast path, as the spinlocks have one: take the lock of an
 * unlocked folio without creating a generator when the scheduler is not
 * exploring. False means: call folioLock(). Callers use it through
 * folioLockQuick(), the acquire idiom of sched/locks.ts.
 * A folio_lock(), so a might_sleep() point and a lockdep acquire in checked mode.
 */
export function folioLockFast(k: Kernel, pfn: number): boolean {
  if (k.sched.exploring) return false;
  const p = k.pages;
  const head = p.folioPfn(pfn);
  const f = p.flags[head];
  if (f & PG_locked) return false;
  if (k.sched.lockdep !== null) k.sched.lockdep.folioAcquire(head, false, folioFresh(k, head));
  p.flags[head] = f | PG_locked;
  return true;
}

/**
 * folio_lock() with its fast path: `yield* folioLockQuick(k, pfn)` takes an
 * unlocked folio at once (folioLockFast(): no generator when not
 * exploring), else sleeps in folioLock(). The acquire idiom of the lock
 * helpers in sched/locks.ts. PG_locked is held when the yield* returns.
 */
export function folioLockQuick(k: Kernel, pfn: number): K<void> {
  return folioLockFast(k, pfn) ? ACQUIRED : folioLock(k, pfn);
}

/** Lockdep: only the caller can reach this folio (its one reference, unmapped, no mapping). */
function folioFresh(k: Kernel, head: number): boolean {
  const p = k.pages;
  return p.refcount[head] === 1 && p.mapping[head] === 0 && !p.folioMapped(head);
}

/** folio_lock(): sleep until PG_locked can be taken. A scheduler hook point. */
export function* folioLock(k: Kernel, pfn: number): K<void> {
  const head = k.pages.folioPfn(pfn);
  const s = k.sched;
  if (s.lockdep !== null) s.lockdep.folioWillLock(head);
  if (s.exploring) yield s.point('folio_lock', head);
  yield* waitUntil(s, `folio_lock(pfn ${head})`, () => (k.pages.flags[head] & PG_locked) === 0, head);
  if (s.lockdep !== null) s.lockdep.folioAcquire(head, false, folioFresh(k, head));
  k.pages.flags[head] |= PG_locked;
}

/** folio_unlock(): VM_BUG_ON if not locked. */
export function folioUnlock(k: Kernel, pfn: number): void {
  const p = k.pages;
  const head = p.folioPfn(pfn);
  const f = p.flags[head];
  if (!(f & PG_locked)) pageBug(k, 'BUG', 'folio_unlock of an unlocked folio', head, 'VM_BUG_ON_FOLIO(!folio_test_locked(folio))');
  if (k.sched.lockdep !== null) k.sched.lockdep.folioRelease(head);
  p.flags[head] = f & ~PG_locked;
}

/**
 * VM_BUG_ON_FOLIO(!folio_test_locked(folio), folio) at the top of a
 * function whose caller must hold the folio lock (`what` names it).
 * Checked mode only (CONFIG_DEBUG_VM); lockdep also reports a folio lock
 * that another simulated thread holds.
 */
export function folioAssertLocked(k: Kernel, pfn: number, what: string): void {
  if (k.sched.lockdep === null) return;
  const head = k.pages.folioPfn(pfn);
  if (!(k.pages.flags[head] & PG_locked)) pageBug(k, 'BUG', `${what}: folio not locked`, head, 'VM_BUG_ON_FOLIO(!folio_test_locked(folio))');
  k.sched.lockdep.assertFolioHeld(head, what);
}

export function folioTestLocked(k: Kernel, pfn: number): boolean {
  return (k.pages.flags[k.pages.folioPfn(pfn)] & PG_locked) !== 0;
}

/** folio_test_anon() */
export function folioTestAnon(k: Kernel, pfn: number): boolean {
  return (k.pages.flags[k.pages.folioPfn(pfn)] & PG_anon) !== 0;
}

/** folio_test_large() */
export function folioTestLarge(k: Kernel, pfn: number): boolean {
  return k.pages.order[pfn] !== 0;
}

/** folio_test_pmd_mappable() */
export function folioTestPmdMappable(k: Kernel, pfn: number): boolean {
  return k.pages.order[pfn] >= HPAGE_PMD_ORDER;
}

/**
 * folio_maybe_dma_pinned(): large folios count pins in _pincount; small
 * folios by the refcount reaching GUP_PIN_COUNTING_BIAS.
 */
export function folioMaybeDmaPinned(k: Kernel, pfn: number): boolean {
  const head = k.pages.folioPfn(pfn);
  if (k.pages.order[head] !== 0) return k.pages.pincount[head] > 0;
  return k.pages.refcount[head] >= 1024;
}
