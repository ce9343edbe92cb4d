// SPDX-License-Identifier: GPL-2.0-only
/**
 * LRU lists and the per-CPU folio batch (mm/swap.c, mm/vmscan.c).
 *
 * folio_add_lru() takes a folio reference and parks the folio in a batch
 * (PG_lru_pending); the batch moves to the LRU (PG_lru set, reference
 * dropped) when it fills (FOLIO_BATCH_SIZE) or on lru_add_drain(). Until
 * then folio_isolate_lru() fails and the batch's reference makes the
 * migration refcount check fail: exactly why migrate_device_unmap() drains.
 *
 * ZONE_DEVICE folios are never added (VM_BUG_ON): page->pgmap aliases the
 * LRU list head in the kernel (include/linux/mm_types.h struct page:
 * pgmap and zone_device_data overlay lru).
 *
 * Lock: lruvec lock, implicit (nothing here yields).
 */
import { pageBug } from './debug.js';
import { PG_lru, PG_lru_pending } from './page.js';
import type { Kernel } from '../kernel.js';
import { folioPut } from './folio.js';

export const FOLIO_BATCH_SIZE = 31;
const NIL = -1;

export class Lru {
  /** First folio on the list (-1: empty); read by debug_vm. */
  head = NIL;
  nr = 0;
  readonly batch: number[] = [];
  constructor(private readonly k: Kernel) {}

  /** folio_add_lru(): takes a reference; the folio reaches the LRU at the next drain. */
  add(folio: number): void {
    const p = this.k.pages;
    const f = p.flags[folio];
    if (p.pgmap[folio] !== 0 || (f & (PG_lru | PG_lru_pending)) !== 0) this.addBug(folio);
    p.refcount[folio]++;
    p.flags[folio] = f | PG_lru_pending;
    this.batch.push(folio);
    /* folio_may_be_lru_cached(): large folios go to the LRU at once. */
    if (this.batch.length >= FOLIO_BATCH_SIZE || p.order[folio] > 0) this.drain();
  }

  /** The VM_BUG_ON of folio_add_lru() (out of line). */
  private addBug(folio: number): never {
    if (this.k.pages.pgmap[folio] !== 0) pageBug(this.k, 'BUG', 'folio_add_lru: ZONE_DEVICE folio on an LRU', folio, 'VM_BUG_ON_FOLIO(folio_is_zone_device(folio))');
    pageBug(this.k, 'BUG', 'folio_add_lru: folio already on an LRU', folio, 'VM_BUG_ON_FOLIO(folio_test_lru(folio))');
  }

  /** lru_add_drain() / lru_add_drain_all(): move the batch to the LRU. */
  drain(): void {
    const p = this.k.pages;
    const b = this.batch;
    const n = b.length;
    for (let i = 0; i < n; i++) {
      const f = b[i];
      p.flags[f] &= ~PG_lru_pending;
      if (p.refcount[f] > 1) {
        this.link(f);
        p.flags[f] |= PG_lru;
      }
      folioPut(this.k, f);
    }
    // No array per drain; a folio added while draining (by a free path) stays queued.
    if (b.length === n) b.length = 0;
    else b.splice(0, n);
  }

  private link(f: number): void {
    const p = this.k.pages;
    p.lruPrev[f] = NIL;
    p.lruNext[f] = this.head;
    if (this.head !== NIL) p.lruPrev[this.head] = f;
    this.head = f;
    this.nr++;
  }

  /** lru_add_split_folio(): link a just-split page directly (no batch, no reference). */
  addSplit(f: number): void {
    this.link(f);
    this.k.pages.flags[f] |= PG_lru;
  }

  /** Remove from the list (lruvec_del_folio); PG_lru is the caller's business. */
  unlink(f: number): void {
    const p = this.k.pages;
    const prev = p.lruPrev[f];
    const next = p.lruNext[f];
    if (prev !== NIL) p.lruNext[prev] = next;
    else this.head = next;
    if (next !== NIL) p.lruPrev[next] = prev;
    p.lruPrev[f] = NIL;
    p.lruNext[f] = NIL;
    this.nr--;
  }

  /**
   * folio_isolate_lru(): if the folio is on an LRU, take it off, take a
   * reference and return true. The caller must already hold a reference.
   */
  isolate(f: number): boolean {
    const p = this.k.pages;
    if (!(p.flags[f] & PG_lru)) return false;
    if (p.refcount[f] <= 0) pageBug(this.k, 'BUG', 'folio_isolate_lru: no reference held', f, 'VM_BUG_ON_FOLIO(!folio_ref_count(folio))');
    p.flags[f] &= ~PG_lru;
    this.unlink(f);
    p.refcount[f]++;
    return true;
  }

  /** folio_putback_lru(): back on the LRU, dropping the isolation reference. */
  putback(f: number): void {
    this.add(f);
    folioPut(this.k, f);
  }

  /** Called by the free path for a folio still on the LRU (page_cache_release). */
  removeOnFree(f: number): void {
    const p = this.k.pages;
    if (p.flags[f] & PG_lru) {
      p.flags[f] &= ~PG_lru;
      this.unlink(f);
    }
  }
}
