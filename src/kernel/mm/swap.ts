// SPDX-License-Identifier: GPL-2.0-only
/**
 * The swap device (mm/swapfile.c, mm/swap_state.c, mm/page_io.c), reduced
 * to what anonymous reclaim and swap-in need: one swap area of
 * `config.swapMiB`, slots with a swap_map count, and the slots' contents.
 *
 * A swap PTE (T_SWAP) holds the slot in `v`; its `f` keeps soft-dirty,
 * uffd-wp and _PAGE_SWP_EXCLUSIVE (pte_swp_exclusive(): the page was
 * exclusive to this mapping when it was swapped out).
 *
 * Deliberate simplification: there is no swap cache. Swap-out writes the
 * page to its slot and frees it at once; each swap-in reads a fresh copy,
 * so two mms sharing a slot after fork() get two pages with the same data
 * where the kernel's swap cache would map one folio in both. Data, counts,
 * exclusivity and every entry transition are the kernel's.
 *
 * Locking: swap_map counts change under the PTL of the entry that takes or
 * drops the reference (the kernel's swap_info lock is implicit: the model's
 * swap operations never yield).
 */
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../printk.js';
import { type PageContents, createContents } from './contents.js';
import { PAGE_SIZE } from './page.js';

export { _PAGE_SWP_EXCLUSIVE } from './pgtable.js';

export class SwapDevice {
  /** Slot contents, indexed by slot (a store of the machine's content mode). */
  readonly contents: PageContents;
  /** swap_map: references to each slot (0 = free). */
  readonly count: Int32Array;
  private readonly freeSlots: number[] = [];
  private nextSlot = 1; /* slot 0 is the swap header, never handed out */
  /** Slots in use (nr_swap_pages accounting). */
  used = 0;

  constructor(readonly k: Kernel, readonly nrSlots: number) {
    this.contents = createContents(k.config.contentMode);
    this.contents.ensureCapacity(nrSlots);
    this.count = new Int32Array(nrSlots);
  }

  /**
   * folio_alloc_swap(): a free slot with count 1, or -1 when the device is
   * full or the allocation fails (fault injection at 'folio_alloc_swap');
   * shrink_folio_list() then keeps the folio (activate_locked).
   */
  allocSlot(): number {
    if (this.k.shouldFail('folio_alloc_swap')) return -1;
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      if (this.nextSlot >= this.nrSlots) return -1;
      slot = this.nextSlot++;
    }
    this.count[slot] = 1;
    this.used++;
    return slot;
  }

  private check(slot: number, op: string): void {
    if (!(slot > 0 && slot < this.nrSlots) || this.count[slot] <= 0) {
      throw new KernelBug('BUG', `${op}: bad swap entry (slot ${slot}, count ${this.count[slot] ?? 'none'})`, `swap_info_get: ${op}`);
    }
  }

  /** swap_duplicate(): one more swap PTE refers to the slot (fork). */
  dup(slot: number): void {
    this.check(slot, 'swap_duplicate');
    this.count[slot]++;
  }

  /** swap_free() / free_swap_and_cache(): one reference fewer; the last frees the slot and its contents. */
  free(slot: number): void {
    this.check(slot, 'swap_free');
    if (--this.count[slot] === 0) {
      this.contents.discard(slot);
      this.freeSlots.push(slot);
      this.used--;
    }
  }

  /** __swap_count() */
  swapCount(slot: number): number {
    return slot > 0 && slot < this.nrSlots ? this.count[slot] : 0;
  }

  /** swap_writepage(): write page pfn's contents to the slot. */
  writePage(slot: number, pfn: number): void {
    this.k.contents.copyTo(this.contents, slot, pfn);
  }

  /** swap_read_folio(): read the slot's contents into page pfn. */
  readPage(slot: number, pfn: number): void {
    this.contents.copyTo(this.k.contents, pfn, slot);
  }
}

/**
 * The machine's swap device (swapon at first use, so machines that never
 * swap carry none), or null when it has none (swapMiB = 0).
 */
export function swapDevice(k: Kernel): SwapDevice | null {
  if (k.swap === null) {
    const slots = Math.floor((k.config.swapMiB * 1024 * 1024) / PAGE_SIZE);
    if (slots > 1) k.swap = new SwapDevice(k, slots);
  }
  return k.swap;
}
