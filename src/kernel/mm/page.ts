// SPDX-License-Identifier: GPL-2.0-only
/**
 * struct page / struct folio, as typed arrays indexed by pfn.
 *
 * One array per field; no object per page. The pfn space grows when
 * memremap_pages() adds a device range; growth reallocates the arrays, so
 * code must always index through `pages.<field>[pfn]` and never keep a
 * reference to an array across a call that may add memory.
 *
 * Folios are naturally aligned power-of-two runs of pfns. Every pfn of a
 * folio stores the folio's order, the head has PG_head and the others
 * PG_tail, so folio_pfn(pfn) is `pfn & ~(nr - 1)`: no per-tail pointer.
 *
 * Field                 protected by                       invariant
 * flags: PG_locked      the bit itself (lock_page)          held by at most one thread
 * flags: PG_lru         lruvec lock                         set iff on an LRU list; never for ZONE_DEVICE
 * flags: PG_buddy       zone lock (page_alloc.ts)           set iff free in the buddy allocator
 * flags: others         atomic bit ops / page lock
 * refcount (head)       atomic                              0 for free pages (device pages too, mainline)
 * mapcount (per page)   PTL of each mapping PTE             number of PTEs mapping this page
 * entireMapcount (head) pmd lock                            number of PMDs mapping this folio
 * pincount (head)       atomic                              FOLL_PIN pins held (accounting; refcount also carries them)
 * mapping, index        page lock (file) / anon rmap lock   anon_vma or address_space id, and page offset
 * pgmap                 set at memremap_pages()             nonzero iff ZONE_DEVICE
 * zdd                   the owning driver                   zone_device_data: a driver-defined 32-bit number (a pfn, an id)
 * lruPrev / lruNext     lruvec lock or zone lock            list links for the LRU or the buddy free lists
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
export const HPAGE_PMD_ORDER = 9;
export const HPAGE_PMD_NR = 512;
export const HPAGE_PMD_SIZE = PAGE_SIZE * HPAGE_PMD_NR;
export const PMD_SIZE = HPAGE_PMD_SIZE;
export const PUD_SIZE = PMD_SIZE * 512;

/* Page flags (bit numbers are the model's own; names are the kernel's). */
export const PG_locked = 1 << 0;
export const PG_lru = 1 << 1;
export const PG_anon = 1 << 2; /* PageAnon(): the kernel encodes this in mapping's low bit */
export const PG_anon_exclusive = 1 << 3;
export const PG_uptodate = 1 << 4;
export const PG_dirty = 1 << 5;
export const PG_head = 1 << 6;
export const PG_tail = 1 << 7;
export const PG_reserved = 1 << 8;
export const PG_buddy = 1 << 9;
export const PG_hwpoison = 1 << 10;
export const PG_swapbacked = 1 << 11;
export const PG_hugetlb = 1 << 12;
export const PG_lru_pending = 1 << 13; /* in a per-CPU folio_batch, not yet on the LRU */
export const PG_swapcache = 1 << 14;
export const PG_writeback = 1 << 15;
/**
 * Not a kernel flag: KASAN-like shadow state. Set when a page is freed (to
 * the buddy allocator or through pgmap->ops->folio_free) and cleared when it
 * is allocated. The simulated kernel never reads it; the detectors do.
 */
export const PG_shadow_free = 1 << 30;

export const FLAG_NAMES: Array<[number, string]> = [
  [PG_locked, 'locked'], [PG_lru, 'lru'], [PG_anon, 'anon'], [PG_anon_exclusive, 'anon_exclusive'],
  [PG_uptodate, 'uptodate'], [PG_dirty, 'dirty'], [PG_head, 'head'], [PG_tail, 'tail'],
  [PG_reserved, 'reserved'], [PG_buddy, 'buddy'], [PG_hwpoison, 'hwpoison'], [PG_swapbacked, 'swapbacked'],
  [PG_hugetlb, 'hugetlb'], [PG_lru_pending, 'lru_batch'], [PG_swapcache, 'swapcache'],
  [PG_writeback, 'writeback'], [PG_shadow_free, 'kasan:freed'],
];

/** GUP_PIN_COUNTING_BIAS: what one FOLL_PIN adds to a small folio's refcount. */
export const GUP_PIN_COUNTING_BIAS = 1024;

export class PageArrays {
  /** Number of pfns the arrays cover. */
  capacity = 0;
  flags = new Uint32Array(0);
  refcount = new Int32Array(0);
  mapcount = new Int32Array(0);
  entireMapcount = new Int32Array(0);
  pincount = new Int32Array(0);
  mapping = new Int32Array(0);
  index = new Float64Array(0);
  pgmap = new Uint16Array(0);
  order = new Uint8Array(0);
  zdd = new Int32Array(0);
  lruPrev = new Int32Array(0);
  lruNext = new Int32Array(0);

  /** Grow the arrays to cover at least `n` pfns (memremap_pages, boot). */
  ensureCapacity(n: number): void {
    if (n <= this.capacity) return;
    // Exact at boot (RAM), then by half again: memremap_pages() adds device
    // ranges one chunk at a time, and each growth copies every array.
    const cap = this.capacity === 0 ? n : Math.max(n, Math.ceil(this.capacity * 1.5));
    const grow = <T extends Uint32Array | Int32Array | Float64Array | Uint16Array | Uint8Array>(a: T, mk: (n: number) => T): T => {
      const b = mk(cap);
      b.set(a as never);
      return b;
    };
    this.flags = grow(this.flags, (m) => new Uint32Array(m));
    this.refcount = grow(this.refcount, (m) => new Int32Array(m));
    this.mapcount = grow(this.mapcount, (m) => new Int32Array(m));
    this.entireMapcount = grow(this.entireMapcount, (m) => new Int32Array(m));
    this.pincount = grow(this.pincount, (m) => new Int32Array(m));
    this.mapping = grow(this.mapping, (m) => new Int32Array(m));
    this.index = grow(this.index, (m) => new Float64Array(m));
    this.pgmap = grow(this.pgmap, (m) => new Uint16Array(m));
    this.order = grow(this.order, (m) => new Uint8Array(m));
    this.zdd = grow(this.zdd, (m) => new Int32Array(m));
    this.lruPrev = grow(this.lruPrev, (m) => new Int32Array(m));
    this.lruNext = grow(this.lruNext, (m) => new Int32Array(m));
    this.capacity = cap;
  }

  /** Bytes of metadata per pfn (for the memory benchmark). */
  static bytesPerPfn(): number {
    return 4 + 4 + 4 + 4 + 4 + 4 + 8 + 2 + 1 + 4 + 4 + 4;
  }

  /** folio_pfn(page_folio(pfn_to_page(pfn))): the head pfn of the folio containing pfn. */
  folioPfn(pfn: number): number {
    return pfn - (pfn & ((1 << this.order[pfn]) - 1));
  }

  /** folio_nr_pages() of the folio containing pfn. */
  folioNr(pfn: number): number {
    return 1 << this.order[pfn];
  }

  /** folio_order() of the folio containing pfn. */
  folioOrder(pfn: number): number {
    return this.order[pfn];
  }

  isZoneDevice(pfn: number): boolean {
    return this.pgmap[pfn] !== 0;
  }

  test(pfn: number, bit: number): boolean {
    return (this.flags[pfn] & bit) !== 0;
  }

  set(pfn: number, bit: number): void {
    this.flags[pfn] |= bit;
  }

  clear(pfn: number, bit: number): void {
    this.flags[pfn] &= ~bit;
  }

  /** page_mapcount(): PTE mappings of this page plus PMD mappings of its folio. */
  pageMapcount(pfn: number): number {
    return this.mapcount[pfn] + this.entireMapcount[this.folioPfn(pfn)];
  }

  /** folio_mapped() */
  folioMapped(head: number): boolean {
    if (this.entireMapcount[head] > 0) return true;
    const nr = this.folioNr(head);
    for (let i = 0; i < nr; i++) if (this.mapcount[head + i] > 0) return true;
    return false;
  }

  /** folio_mapcount(): total mappings of the folio. */
  folioMapcount(head: number): number {
    const nr = this.folioNr(head);
    let n = this.entireMapcount[head] * (nr > 1 ? 1 : 0);
    for (let i = 0; i < nr; i++) n += this.mapcount[head + i];
    return n;
  }
}
