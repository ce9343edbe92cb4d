// SPDX-License-Identifier: GPL-2.0-only
/**
 * Checked mode (CONFIG_DEBUG_VM and friends, as a model-wide audit):
 * invariants verified after each user-visible operation (k.checkpoint()).
 * The cost is proportional to what is mapped, on the LRU and allocated on
 * devices, never a scan of all memory:
 *
 *  1. every page mapped by a PTE, PMD, device-private or device-exclusive
 *     entry is allocated (not free in the buddy allocator, not freed through
 *     pgmap->ops->folio_free, pgmap alive);
 *  2. page mapcounts equal the number of mapping entries found by walking
 *     every page table of every live mm (PTE mappings per page, PMD mappings
 *     per folio);
 *  3. a folio's refcount accounts for its mappings, pins and LRU batch;
 *  4. no ZONE_DEVICE page is on an LRU; every LRU page has PG_lru and a
 *     reference;
 *  5. each live pgmap's reference count equals 1 + allocated pages +
 *     get_dev_pagemap() holders (0 + ... once dying);
 *  6. at rest no mmap_lock is held and no mapped page is left locked;
 *  7. each swap slot's count equals the swap entries referring to it;
 *  8. the loaded drivers' own invariants (k.checkers: test_hmm registers
 *     the coherence of its mirrors with the CPU page tables).
 * Checked mode also turns on lockdep (src/kernel/sched/lockdep.ts), which
 * checks every lock operation as it happens and, at each checkpoint, that
 * the thread returning to user space holds no lock.
 *
 * A violation raises KernelBug('INVARIANT', rule, state).
 */
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../printk.js';
import {
  type PmdTable, type PteTable, T_DEVICE_EXCLUSIVE, T_PRESENT, T_SWAP, T_TABLE, _PAGE_SPECIAL, isDevicePrivateType,
  PTRS_PER_TABLE, pmdAddrEnd, pmdIndex, pmdTableOf, pteIndex, pteType,
} from './pgtable.js';
import type { MmStruct } from './mm_types.js';
import { Lockdep } from '../sched/lockdep.js';
import { PAGE_SIZE, PMD_SIZE, PG_buddy, PG_locked, PG_lru, PG_lru_pending, PG_shadow_free, GUP_PIN_COUNTING_BIAS } from './page.js';

function fail(k: Kernel, op: string, rule: string, pfn: number): never {
  throw new KernelBug('INVARIANT', `after ${op}: ${rule}`, pfn >= 0 ? k.dumpPage(pfn, rule) : '');
}

/**
 * Per-pfn scratch counters of the walk, reused between checks (no Map, no
 * per-page allocation): pte[pfn] PTE-level mappings found, pmd[head]
 * PMD-level ones; `touched` lists the pfns to look at and reset.
 */
class Scratch {
  pte = new Int32Array(0);
  pmd = new Int32Array(0);
  touched: number[] = [];
  ensure(n: number): void {
    if (this.pte.length >= n) return;
    this.pte = new Int32Array(n);
    this.pmd = new Int32Array(n);
  }
}
/*
 * module-state-ok: scratch of checked mode, one per machine, zeroed after
 * every check (it carries nothing between calls); kept off the Kernel so the
 * explorer's snapshot does not copy pfn-sized arrays at every restore.
 */
const scratchOf = new WeakMap<Kernel, Scratch>();

/** Run every invariant; throws KernelBug('INVARIANT') on the first violation. */
export function checkInvariants(k: Kernel, op: string): void {
  const p = k.pages;
  let sc = scratchOf.get(k);
  if (sc === undefined) {
    sc = new Scratch();
    scratchOf.set(k, sc);
  }
  sc.ensure(p.capacity);
  const { pte: pteMaps, pmd: pmdMaps, touched } = sc;
  touched.length = 0;
  try {
    const swapRefs = new Map<number, number>();
    walkMappings(k, op, pteMaps, pmdMaps, touched, swapRefs);
    checkCounts(k, op, pteMaps, pmdMaps, touched);
    checkSwap(k, op, swapRefs);
  } finally {
    for (const pfn of touched) {
      pteMaps[pfn] = 0;
      pmdMaps[pfn] = 0;
    }
  }
  checkLruAndPgmaps(k, op);
  /* Loaded drivers' own invariants (k.checkers), after the kernel's. */
  for (let i = 0; i < k.checkers.length; i++) k.checkers[i].check(k, op);
}

/* ------------------------------------------------------------------------ */
/* the mapping walk                                                          */

/** Kinds of entry walkMappedEntries() reports (index into MAPPING_ENTRY_NAMES). */
export const MAP_PTE = 0;
export const MAP_DEVICE_PRIVATE = 1;
export const MAP_DEVICE_EXCLUSIVE = 2;
export const MAP_PMD = 3;
export const MAP_DEVICE_PRIVATE_PMD = 4;
export const MAP_SWAP = 5;
/** How the invariants name each kind of entry. */
export const MAPPING_ENTRY_NAMES: readonly string[] = Object.freeze([
  'PTE', 'device-private entry', 'device-exclusive entry', 'PMD', 'device-private PMD', 'swap entry',
]);

/**
 * visit(kind, v, addr): one entry of walkMappedEntries(); v is the pfn
 * mapped (the PMD's pfn for the PMD kinds) or the swap slot (MAP_SWAP),
 * addr the virtual address of the entry. Returning true stops the walk.
 */
export type MappingVisitor = (kind: number, v: number, addr: number) => boolean;

/** PTE entries [j, last] of the table under pmd entry i; true if visit stopped the walk. */
function visitPteRange(k: Kernel, pt: PteTable, base: number, j: number, last: number, visit: MappingVisitor): boolean {
  const p = k.pages;
  const f = pt.f;
  const v = pt.v;
  const zeroPfn = k.zeroPfn;
  const ramEnd = k.buddy.end;
  for (; j <= last; j++) {
    const ff = f[j];
    if (ff === 0) continue;
    const tt = pteType(ff);
    const pfn = v[j];
    let kind: number;
    if (tt === T_PRESENT) {
      if (ff & _PAGE_SPECIAL || pfn === zeroPfn) continue;
      if (pfn >= ramEnd && p.pgmap[pfn] === 0) continue; /* VM_PFNMAP / MIXEDMAP of device memory */
      kind = MAP_PTE;
    } else if (isDevicePrivateType(tt)) kind = MAP_DEVICE_PRIVATE;
    else if (tt === T_DEVICE_EXCLUSIVE) kind = MAP_DEVICE_EXCLUSIVE;
    else if (tt === T_SWAP) kind = MAP_SWAP;
    else continue;
    if (visit(kind, pfn, base + j * PAGE_SIZE)) return true;
  }
  return false;
}

/** PMD entry i (a leaf, or the PTE entries [j, last] of its table); true if visit stopped the walk. */
function visitPmdEntry(k: Kernel, pmd: PmdTable, i: number, j: number, last: number, visit: MappingVisitor): boolean {
  const t = pteType(pmd.f[i]);
  const base = pmd.base + i * PMD_SIZE;
  if (t === T_TABLE) {
    const pt = pmd.pte[i]!;
    return pt.used !== 0 && visitPteRange(k, pt, base, j, last, visit);
  }
  if (t === T_PRESENT) {
    const v = pmd.v[i];
    if (v === k.hugeZeroPfn || (pmd.f[i] & _PAGE_SPECIAL)) return false;
    return visit(MAP_PMD, v, base);
  }
  if (isDevicePrivateType(t)) return visit(MAP_DEVICE_PRIVATE_PMD, pmd.v[i], base);
  return false;
}

/**
 * Visit, in address order, every entry of mm's page tables that maps a page
 * or holds a swap slot: present PTEs and PMDs (not the zero pages, not
 * special or VM_PFNMAP mappings of memory without a struct page),
 * device-private and device-exclusive entries, swap entries. Migration
 * and other non-present entries are skipped. With [start, end) only the
 * entries of that range (walked by PMD span, as walk_page_range() does for
 * one vma); without, every table of the mm. Returns true if visit stopped
 * the walk. The one walk of checked mode and the explorer's detector.
 */
export function walkMappedEntries(k: Kernel, mm: MmStruct, visit: MappingVisitor, start = -1, end = -1): boolean {
  if (start < 0) {
    for (const pud of mm.pgd.pud) {
      if (pud === null) continue;
      for (const pmd of pud.pmd) {
        if (pmd === null) continue;
        for (let i = 0; i < PTRS_PER_TABLE; i++) {
          if (visitPmdEntry(k, pmd, i, 0, PTRS_PER_TABLE - 1, visit)) return true;
        }
      }
    }
    return false;
  }
  for (let addr = start; addr < end;) {
    const next = pmdAddrEnd(addr, end);
    const pmd = pmdTableOf(mm.pgd, addr, false);
    if (pmd !== null && visitPmdEntry(k, pmd, pmdIndex(addr), pteIndex(addr), pteIndex(next - 1), visit)) return true;
    addr = next;
  }
  return false;
}

/** A page mapped although it is free or its pgmap is gone: what findFreedWhileMapped() reports. */
export interface FreedWhileMapped {
  /** The mm whose page tables map it. */
  mm: MmStruct;
  /** Virtual address of the entry. */
  addr: number;
  pfn: number;
  /** The entry, as MAPPING_ENTRY_NAMES names it ('PTE', 'device-private entry', 'PMD', ...). */
  entry: string;
  /** The entry is a PMD (maps a whole folio). */
  huge: boolean;
  /** true: the page is free (buddy, or returned to its driver); false: its pgmap is removed. */
  free: boolean;
}

/** The page is free (PG_buddy, or returned to its driver: PG_shadow_free). */
function pageFree(k: Kernel, pfn: number): boolean {
  const p = k.pages;
  return (p.flags[p.folioPfn(pfn)] & (PG_buddy | PG_shadow_free)) !== 0;
}

/** The page belongs to a pgmap that memunmap_pages() removed. */
function pagePgmapRemoved(k: Kernel, pfn: number): boolean {
  const g = k.pages.pgmap[pfn];
  return g !== 0 && (k.pgmaps[g] === null || k.pgmaps[g]!.dead);
}

/**
 * Invariant 1: the first mapping (mm by mm, in address order) of a page
 * that is free or whose pgmap is gone, or null. underVmas: only entries
 * under a vma (the explorer's per-step detector; entries outside every vma
 * are covered by the checkpoint's full walk); else every page table.
 */
export function findFreedWhileMapped(k: Kernel, underVmas = false): FreedWhileMapped | null {
  let found: FreedWhileMapped | null = null;
  let cur: MmStruct | null = null;
  const visit: MappingVisitor = (kind, pfn, addr) => {
    if (kind === MAP_SWAP) return false;
    found = freedEntry(k, cur!, kind, pfn, addr);
    return found !== null;
  };
  for (const mm of k.mms) {
    if (mm.mmUsers <= 0) continue;
    cur = mm;
    if (underVmas) {
      const vmas = mm.vmas;
      for (let n = 0; n < vmas.length; n++) if (walkMappedEntries(k, mm, visit, vmas[n].start, vmas[n].end)) return found;
    } else if (walkMappedEntries(k, mm, visit)) return found;
  }
  return null;
}

/**
 * The test of findFreedWhileMapped() on one entry: the record if the page
 * it maps (kind other than MAP_SWAP) is free or of a removed pgmap, else
 * null (nothing allocated).
 */
function freedEntry(k: Kernel, mm: MmStruct, kind: number, pfn: number, addr: number): FreedWhileMapped | null {
  const free = pageFree(k, pfn);
  if (!free && !pagePgmapRemoved(k, pfn)) return null;
  return { mm, addr, pfn, entry: MAPPING_ENTRY_NAMES[kind], huge: kind === MAP_PMD || kind === MAP_DEVICE_PRIVATE_PMD, free };
}

/**
 * Invariant 6's mmap_lock half, invariant 1 (findFreedWhileMapped()'s test,
 * on the same walk) and the counting half of 2: one walk of every live
 * mm's page tables.
 */
function walkMappings(k: Kernel, op: string, pteMaps: Int32Array, pmdMaps: Int32Array, touched: number[], swapRefs: Map<number, number>): void {
  let cur: MmStruct | null = null;
  const count: MappingVisitor = (kind, v, addr) => {
    if (kind === MAP_SWAP) {
      swapRefs.set(v, (swapRefs.get(v) ?? 0) + 1);
      return false;
    }
    const bad = freedEntry(k, cur!, kind, v, addr);
    if (bad !== null) fail(k, op, `${bad.free ? 'free page' : 'page of a removed pgmap'} mapped by a ${bad.entry}`, bad.pfn);
    if (kind === MAP_PMD || kind === MAP_DEVICE_PRIVATE_PMD) {
      if (pmdMaps[v]++ === 0 && pteMaps[v] === 0) touched.push(v);
    } else if (pteMaps[v]++ === 0 && pmdMaps[v] === 0) touched.push(v);
    return false;
  };
  for (const mm of k.mms) {
    if (mm.mmUsers <= 0) continue;
    if (mm.mmapLock.isLocked()) fail(k, op, `mmap_lock of mm #${mm.id} held at rest`, -1);
    cur = mm;
    walkMappedEntries(k, mm, count);
  }
}

/** The comparing half of invariant 2, and invariant 3. */
function checkCounts(k: Kernel, op: string, pteMaps: Int32Array, pmdMaps: Int32Array, touched: number[]): void {
  const p = k.pages;
  for (const pfn of touched) {
    const n = pteMaps[pfn];
    if (n !== 0 && p.mapcount[pfn] !== n) fail(k, op, `mapcount ${p.mapcount[pfn]} but ${n} PTE mapping(s) found`, pfn);
    const m = pmdMaps[pfn];
    if (m !== 0 && p.entireMapcount[pfn] !== m) fail(k, op, `entire mapcount ${p.entireMapcount[pfn]} but ${m} PMD mapping(s) found`, pfn);
  }
  // Per folio: sum the mappings of its pages (heads visited once).
  let lastHead = -1;
  for (const pfn of touched) {
    const head = p.folioPfn(pfn);
    if (head === lastHead) continue;
    lastHead = head;
    const nr = p.folioNr(head);
    let n = pmdMaps[head];
    if (nr === 1) n += pteMaps[head];
    else for (let i = 0; i < nr; i++) n += pteMaps[head + i];
    if (n === 0) continue;
    const pins = p.pincount[head] * (p.order[head] === 0 ? GUP_PIN_COUNTING_BIAS : 1);
    const batch = (p.flags[head] & PG_lru_pending) ? 1 : 0;
    if (p.refcount[head] < n + pins + batch) fail(k, op, `refcount ${p.refcount[head]} < ${n} mapping(s) + ${pins} pin reference(s) + ${batch} LRU batch`, head);
    if (p.flags[head] & PG_locked) fail(k, op, 'mapped folio left locked at rest', head);
  }
}

/**
 * Invariant 7: every swap slot's swap_map count equals the swap entries that
 * refer to it, and no slot is in use without one. Proportional to the swap
 * entries found, not to the size of the swap device: the referenced slots'
 * counts must match, and their number must be the device's slots in use.
 */
function checkSwap(k: Kernel, op: string, swapRefs: Map<number, number>): void {
  const swap = k.swap;
  if (swap === null) {
    if (swapRefs.size) fail(k, op, `swap entries (slot ${[...swapRefs.keys()][0]}) without a swap device`, -1);
    return;
  }
  for (const [slot, refs] of swapRefs) {
    const c = swap.swapCount(slot);
    if (c === 0) fail(k, op, `a swap entry refers to free swap slot ${slot}`, -1);
    if (c !== refs) fail(k, op, `swap slot ${slot}: swap_map count ${c} but ${refs} swap entr${refs === 1 ? 'y' : 'ies'} refer to it`, -1);
  }
  if (swapRefs.size !== swap.used) fail(k, op, `swap device: ${swap.used} slot(s) in use, ${swapRefs.size} referred to by swap entries (a leaked slot)`, -1);
}

/** Invariants 4 and 5. */
function checkLruAndPgmaps(k: Kernel, op: string): void {
  const p = k.pages;
  /* LRU */
  let n = 0;
  for (let f = k.lru.head; f !== -1; f = p.lruNext[f]) {
    if (++n > k.lru.nr + 1) fail(k, op, 'LRU list is corrupt (cycle)', f);
    if (p.pgmap[f] !== 0) fail(k, op, 'ZONE_DEVICE page on an LRU', f);
    if (!(p.flags[f] & PG_lru)) fail(k, op, 'page on the LRU list without PG_lru', f);
    if (p.refcount[f] <= 0) fail(k, op, 'page on the LRU with refcount 0', f);
  }
  /* pgmaps */
  if (!k.config.historical.pgmap_bulk_ref) {
    for (const g of k.pgmaps) {
      if (g === null || g.dead) continue;
      const want = (g.dying ? 0 : 1) + g.allocated + g.extraRefs;
      if (g.refCount !== want) fail(k, op, `pgmap #${g.id} reference count ${g.refCount} != ${g.dying ? 0 : 1} + ${g.allocated} allocated page(s) + ${g.extraRefs} get_dev_pagemap holder(s)`, -1);
    }
  }}

/** Install checked mode on a machine. */
export function enableCheckedMode(k: Kernel): void {
  k.checkHook = checkInvariants;
  if (k.sched.lockdep === null) k.sched.lockdep = new Lockdep(k.sched, () => `${k.current.comm}/${k.current.pid}`);
}

/** What the end-of-run leak check compares with: taken once the machine is up, before the workload. */
export interface LeakBaseline {
  nrFree: number;
  hugetlbFree: number;
  hugetlbResv: number;
  swapUsed: number;
  /** The mm_structs alive at the baseline (a later one must be gone at the end). */
  mms: Set<number>;
  /** pgmap id -> [refCount, allocated, extraRefs]. */
  pgmaps: Map<number, [number, number, number]>;
}

export function leakBaseline(k: Kernel): LeakBaseline {
  k.lru.drain();
  const pgmaps = new Map<number, [number, number, number]>();
  for (const g of k.pgmaps) if (g !== null && !g.dead) pgmaps.set(g.id, [g.refCount, g.allocated, g.extraRefs]);
  return {
    nrFree: k.buddy.nrFree, hugetlbFree: k.hugetlb.nrFree(), hugetlbResv: k.hugetlb.resv,
    swapUsed: k.swap?.used ?? 0, mms: new Set([...k.mms].map((m) => m.id)), pgmaps,
  };
}

/**
 * The end-of-run leak check (model-only; the kernel's nearest are
 * kmemleak and the "BUG: Bad page state" / percpu_ref checks at unload):
 * after every process of the workload exited and every device file was
 * closed, everything the workload allocated is free again: the buddy
 * allocator has as many free pages as at `base` (after lru_add_drain()),
 * the hugetlb pool its free pages and reservations, the swap device no
 * more used slots, no mm_struct created since is left, and every pgmap has its baseline
 * reference count (a pgmap created during the run: its initial reference,
 * plus its pages in pgmap_bulk_ref mode) with no allocated page and no
 * get_dev_pagemap() holder. Returns what differs (empty: no leak).
 */
export function checkNoLeaks(k: Kernel, base: LeakBaseline): string[] {
  const out: string[] = [];
  k.lru.drain();
  if (k.buddy.nrFree !== base.nrFree) out.push(`buddy: ${base.nrFree - k.buddy.nrFree} page(s) not freed (nr_free ${k.buddy.nrFree}, was ${base.nrFree})`);
  if (k.hugetlb.nrFree() !== base.hugetlbFree) out.push(`hugetlb: HugePages_Free ${k.hugetlb.nrFree()}, was ${base.hugetlbFree}`);
  if (k.hugetlb.resv !== base.hugetlbResv) out.push(`hugetlb: HugePages_Rsvd ${k.hugetlb.resv}, was ${base.hugetlbResv}`);
  const swapUsed = k.swap?.used ?? 0;
  if (swapUsed !== base.swapUsed) out.push(`swap: ${swapUsed} slot(s) in use, was ${base.swapUsed}`);
  for (const mm of k.mms) if (!base.mms.has(mm.id)) out.push(`mm_struct #${mm.id}: not freed (mm_users ${mm.mmUsers}, mm_count ${mm.mmCount})`);
  for (const g of k.pgmaps) {
    if (g === null || g.dead) continue;
    const b = base.pgmaps.get(g.id) ?? [1 + (k.config.historical.pgmap_bulk_ref ? g.nrPages : 0), 0, 0];
    if (g.refCount !== b[0] || g.allocated !== b[1] || g.extraRefs !== b[2]) {
      out.push(`pgmap #${g.id} (${g.typeName()}): ref ${g.refCount}, allocated ${g.allocated}, get_dev_pagemap holders ${g.extraRefs}; was ${b[0]}, ${b[1]}, ${b[2]}`);
    }
  }
  return out;
}
