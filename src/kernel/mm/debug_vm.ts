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
 *  6. at rest no mmap_lock is held and no mapped page is left locked.
 *
 * A violation raises KernelBug('INVARIANT', rule, state).
 */
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../printk.js';
import {
  TYPE_MASK, T_DEVICE_EXCLUSIVE, T_PRESENT, T_TABLE, _PAGE_SPECIAL, isDevicePrivateType, PTRS_PER_TABLE,
} from './pgtable.js';
import { PG_buddy, PG_locked, PG_lru, PG_lru_pending, PG_shadow_free, GUP_PIN_COUNTING_BIAS } from './page.js';

function fail(k: Kernel, op: string, rule: string, pfn: number): never {
  throw new KernelBug('INVARIANT', `after ${op}: ${rule}`, pfn >= 0 ? k.dumpPage(pfn, rule) : '');
}

/** Run every invariant; throws KernelBug('INVARIANT') on the first violation. */
export function checkInvariants(k: Kernel, op: string): void {
  const p = k.pages;
  const pteMaps = new Map<number, number>();
  const pmdMaps = new Map<number, number>();
  const noteLive = (pfn: number, what: string): void => {
    const head = p.folioPfn(pfn);
    if (p.flags[head] & (PG_buddy | PG_shadow_free)) fail(k, op, `free page mapped by a ${what}`, pfn);
    const g = p.pgmap[pfn];
    if (g !== 0 && (k.pgmaps[g] === null || k.pgmaps[g]!.dead)) fail(k, op, `page of a removed pgmap mapped by a ${what}`, pfn);
  };
  for (const mm of k.mms) {
    if (mm.mmUsers <= 0) continue;
    if (mm.mmapLock.isLocked()) fail(k, op, `mmap_lock of mm #${mm.id} held at rest`, -1);
    for (const pud of mm.pgd.pud) {
      if (pud === null) continue;
      for (const pmd of pud.pmd) {
        if (pmd === null) continue;
        for (let i = 0; i < PTRS_PER_TABLE; i++) {
          const t = pmd.f[i] & TYPE_MASK;
          if (t === T_TABLE) {
            const pt = pmd.pte[i]!;
            if (pt.used === 0) continue;
            for (let j = 0; j < PTRS_PER_TABLE; j++) {
              const f = pt.f[j];
              const tt = f & TYPE_MASK;
              if (tt === T_PRESENT) {
                if (f & _PAGE_SPECIAL || pt.v[j] === k.zeroPfn) continue;
                const pfn = pt.v[j];
                if (pfn >= k.buddy.end && p.pgmap[pfn] === 0) continue; /* VM_PFNMAP / MIXEDMAP of device memory */
                noteLive(pfn, 'PTE');
                pteMaps.set(pfn, (pteMaps.get(pfn) ?? 0) + 1);
              } else if (isDevicePrivateType(tt) || tt === T_DEVICE_EXCLUSIVE) {
                noteLive(pt.v[j], tt === T_DEVICE_EXCLUSIVE ? 'device-exclusive entry' : 'device-private entry');
                pteMaps.set(pt.v[j], (pteMaps.get(pt.v[j]) ?? 0) + 1);
              }
            }
          } else if (t === T_PRESENT) {
            const v = pmd.v[i];
            if (v === k.hugeZeroPfn || (pmd.f[i] & _PAGE_SPECIAL)) continue;
            noteLive(v, 'PMD');
            pmdMaps.set(v, (pmdMaps.get(v) ?? 0) + 1);
          } else if (isDevicePrivateType(t)) {
            noteLive(pmd.v[i], 'device-private PMD');
            pmdMaps.set(pmd.v[i], (pmdMaps.get(pmd.v[i]) ?? 0) + 1);
          }
        }
      }
    }
  }
  const folioMaps = new Map<number, number>();
  for (const [pfn, n] of pteMaps) {
    if (p.mapcount[pfn] !== n) fail(k, op, `mapcount ${p.mapcount[pfn]} but ${n} PTE mapping(s) found`, pfn);
    const head = p.folioPfn(pfn);
    folioMaps.set(head, (folioMaps.get(head) ?? 0) + n);
  }
  for (const [head, n] of pmdMaps) {
    if (p.entireMapcount[head] !== n) fail(k, op, `entire mapcount ${p.entireMapcount[head]} but ${n} PMD mapping(s) found`, head);
    folioMaps.set(head, (folioMaps.get(head) ?? 0) + n);
  }
  for (const [head, n] of folioMaps) {
    const pins = p.pincount[head] * (p.order[head] === 0 ? GUP_PIN_COUNTING_BIAS : 1);
    const batch = (p.flags[head] & PG_lru_pending) ? 1 : 0;
    if (p.refcount[head] < n + pins + batch) fail(k, op, `refcount ${p.refcount[head]} < ${n} mapping(s) + ${pins} pin reference(s) + ${batch} LRU batch`, head);
    if (p.flags[head] & PG_locked) fail(k, op, 'mapped folio left locked at rest', head);
  }
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
  }
}

/** Install checked mode on a machine. */
export function enableCheckedMode(k: Kernel): void {
  k.checkHook = checkInvariants;
}
