// SPDX-License-Identifier: GPL-2.0-only
/**
 * Page contents: what a page holds, kept apart from struct page.
 *
 * Two interchangeable stores behind one interface, chosen by
 * `config.contentMode`:
 *
 * **bytes** (default): real 4 KiB of bytes per page. Storage is cut into
 * 2 MiB slabs (up to 4 GiB in all), held in ArrayBuffer segments of up
 * to 2 GiB (the power of two covering every pfn of the machine) allocated
 * as needed (reserved address space; the host commits only what is
 * written); slab s backs the naturally aligned block of 512 pfns it was
 * given to, page pfn living at offset `(pfn % 512) * 4 KiB` of it. So a
 * PMD-sized folio is 2 MiB of contiguous storage and a folio copy is one
 * memcpy (`copyWithin` inside a segment, `set` across two, which only a
 * machine with over 2 GiB of data needs); the hot path allocates no
 * storage. (Plain buffers, not one resizable buffer: V8 copies out of
 * resizable buffers several times slower.) A per-pfn `has` byte says
 * whether the page holds data;
 * a page without it reads as zeroes (stale bytes behind it are never
 * visible), which makes clear_highpage() and freeing O(1). A slab is
 * assigned on the first store into its block and returned to a free stack
 * when the last page of the block is discarded.
 *
 * **fingerprint**: no bytes at all; each page carries a 64-bit fingerprint
 * (two 32-bit halves), 0 meaning "all zeroes". A store mixes the written
 * bytes into the fingerprint, a copy copies it, clear_highpage() zeroes it.
 * Every integrity check the model makes compares fingerprints (checksum()),
 * so data loss and misdirected copies are still detected while a 64 GiB
 * machine fits in memory. Two pages written independently with the same
 * bytes do not get the same fingerprint unless both were written whole in
 * one store (or are zero): equality means "same data history". Reading
 * bytes back is impossible; read() of a non-zero page raises a structured
 * KernelBug naming the mode (never made-up data).
 *
 * Callers never touch the storage directly.
 */
import { KernelBug } from '../printk.js';
import { PAGE_SIZE } from './page.js';

const SLAB_PAGES = 512;
const SLAB_SHIFT = 9;
const SLAB_BYTES = SLAB_PAGES * PAGE_SIZE;
/**
 * Slabs per storage segment, at most: 2 GiB segments, so that all the
 * contents of a machine with up to 2 GiB of data live in one ArrayBuffer
 * and every page copy is a copyWithin inside it. A copy between two
 * buffers needs a view (`subarray`) per copy and runs 10 to 15% slower for
 * 4 KiB pages; offsets past 2^31 slow copyWithin down too, hence 2 GiB
 * rather than 4. A smaller machine gets segments of the power of two that
 * covers all its pfns (the explorer's snapshots copy whole buffers). The
 * buffer is reserved, not committed: the host backs only what is written.
 */
const MAX_SEG_SHIFT = 10;
const MAX_BYTES = 2 ** 32;

/**
 * Segments of discarded machines (ByteContents.release()), reused by new
 * ones in this thread: a selftest run builds a machine per case, and fresh
 * segments would make the host fault in and zero their memory each time.
 * At most POOL_MAX segments are kept; a new machine takes one of its own segment size.
 * module-state-ok: host memory of discarded machines, not simulated state
 * (a page's bytes are valid only once the `has` bitmap says it was stored).
 */
const segmentPool: Uint8Array[] = [];
const POOL_MAX = 2;

/** Who reports an access to a pfn without a direct map (the Kernel: Kernel.oopsNoDirectMap). */
export interface NoDirectMapHandler {
  oopsNoDirectMap(pfn: number, op: string, caller: string): never;
}

export interface PageContents {
  /** 'bytes' or 'fingerprint'. */
  readonly mode: 'bytes' | 'fingerprint';
  /** Grow per-pfn state to cover n pfns. */
  ensureCapacity(n: number): void;
  /*
   * The kernel's CPU accesses (clear_highpage, copy_highpage, folio_copy,
   * memcpy_from_page, memcpy_to_page, memset_page, the swap I/O copy) go
   * through the kernel direct map: a pfn without one (a device-private
   * page: see setNoDirectMap) is a kernel oops, reported through the
   * oops handler (setOopsHandler) and never returning. `site` names the kernel function
   * making the access (dmirror_do_read, ...) for the oops report; without
   * it the report names the model's calling function.
   */
  /** clear_highpage(): the page reads as zeroes. */
  zero(pfn: number, site?: string): void;
  /** copy_highpage(dst, src) */
  copy(dst: number, src: number, site?: string): void;
  /** Copy nr consecutive pages (a folio copy: folio_copy()). */
  copyRange(dst: number, src: number, nr: number, site?: string): void;
  /** Copy page src of this store to page dst of another store of the same mode (swap-out / swap-in I/O). */
  copyTo(other: PageContents, dst: number, src: number, site?: string): void;
  /** Contents are discarded (page freed). */
  discard(pfn: number): void;
  /** discard() of nr consecutive pages (a folio freed). */
  discardRange(pfn: number, nr: number): void;
  /** Read len bytes at offset off of the page into out[outOff..] (memcpy_from_page). */
  read(pfn: number, off: number, out: Uint8Array, outOff: number, len: number, site?: string): void;
  /** Write len bytes from inp[inOff..] to offset off of the page (memcpy_to_page). */
  write(pfn: number, off: number, inp: Uint8Array, inOff: number, len: number, site?: string): void;
  /** read() of n whole consecutive pages into out[outOff..] (one copy per contiguous run of storage). */
  readPages(pfn: number, n: number, out: Uint8Array, outOff: number, site?: string): void;
  /** write() of n whole consecutive pages from inp[inOff..]. */
  writePages(pfn: number, n: number, inp: Uint8Array, inOff: number, site?: string): void;
  /** Fill len bytes at off with byte value v (memset_page). */
  fill(pfn: number, off: number, len: number, v: number, site?: string): void;
  /**
   * The device's own copy engine (hardware, no kernel function): copy nr
   * pages between device memory and system memory (or within device
   * memory) without the kernel direct map. Only a driver, for the device
   * memory it owns, uses it (testdrv, whose device-private pages hold
   * their data themselves); test_hmm fakes its device memory with backing
   * system pages and never needs it.
   */
  deviceCopy(dst: number, src: number, nr: number): void;
  /** The device's copy engine clears nr pages of its memory. */
  deviceZero(pfn: number, nr: number): void;
  /** The device writes byte v over a whole page of its memory. */
  deviceFill(pfn: number, v: number): void;
  /**
   * memremap_pages() of MEMORY_DEVICE_PRIVATE memory: pfns [first, first +
   * nr) have no kernel direct map (on = true; pagemap_range() calls
   * add_pages(), not arch_add_memory(), for device-private ranges). A
   * range given again (the same first pfn) replaces the old one; on =
   * false drops it. memunmap_pages() leaves it: the pfns still have no
   * direct map.
   */
  setNoDirectMap(first: number, nr: number, on: boolean): void;
  /** The pfn has no kernel direct map (a device-private page). */
  noDirectMap(pfn: number): boolean;
  /**
   * Check a kernel CPU access of pfn the way the accessors do (the oops if
   * it has no direct map): for a driver that must fault before doing
   * anything else with the page (dmirror_do_read checks this before its
   * KASAN check, as the real access faults first).
   */
  checkMapped(pfn: number, op: string, site?: string): void;
  /**
   * Install the oops handler (the Kernel): its oopsNoDirectMap() is called
   * with the pfn, the accessor (memcpy_from_page, ...) and the caller when
   * a kernel CPU access reaches a pfn without a direct map, and throws.
   * Held strongly and dropped by release(). Not a WeakRef: V8 keeps the
   * target of every WeakRef created or deref()'d in a synchronous job
   * alive until that job ends (ECMA-262 AddToKeptObjects / ClearKeptObjects),
   * so a synchronous loop over machines (the allocation-failure sweep, the
   * selftest runner) kept every Kernel it ever built until it returned
   * (tens of GB). The store and its Kernel reference each other: a cycle
   * the collector frees once both are unreachable.
   */
  setOopsHandler(h: NoDirectMapHandler): void;
  /**
   * Model introspection, not a kernel access (checked mode, the
   * benchmark's verify, tests): isZero() and checksum() read any pfn.
   */
  /** True if the page reads as all zeroes. */
  isZero(pfn: number): boolean;
  /** A content fingerprint (up to 53 bits in a number; 0 = all zeroes), for integrity checks. */
  checksum(pfn: number): number;
  /** Bytes of content storage in use (for the memory benchmark). */
  bytesInUse(): number;
  /** Bytes of content storage allocated, in use or not (for the memory benchmark). */
  storageBytes(): number;
  /** Bytes of per-pfn bookkeeping of the store itself (not contents). */
  metadataBytes(): number;
  /**
   * Model statistic, not kernel state: bytes of page contents copied,
   * read, written or filled since boot (copy/copyRange/copyTo count the
   * bytes copied, read/write/readPages/writePages/fill the bytes moved).
   * Fingerprint mode counts the same logical bytes although it copies
   * none. The memory traffic a workload costs the model in bytes mode.
   */
  readonly bytesMoved: number;
  /**
   * Model-only: the machine is being discarded. Bytes mode hands its
   * storage segments to a pool that later machines of this thread take
   * their segments from (their memory is already committed by the host,
   * and stale bytes in them are never visible: see `has`). The store must
   * not be used afterwards.
   */
  release(): void;
}

/** FNV-1a-like mixing over 32-bit words; good enough to catch lost data. */
function hashWords(u32: Uint32Array, start: number, n: number): number {
  let h1 = 0x811c9dc5 | 0;
  let h2 = 0x01000193 | 0;
  for (let i = 0; i < n; i++) {
    const w = u32[start + i];
    h1 = Math.imul(h1 ^ w, 0x01000193);
    h2 = Math.imul(h2 ^ (w + i), 0x5bd1e995);
  }
  return (h1 >>> 0) * 0x200000 + ((h2 >>> 11) & 0x1fffff);
}

/**
 * What the two stores share: the pfn ranges without a kernel direct map
 * (device-private memory) and the oops path of an access to them. The hot
 * path costs one compare per pfn accessed: `pfn >= noMapLo`, the lowest
 * such pfn (+Infinity while there is none); device-private ranges lie
 * above RAM, so a RAM page never takes the slow path, and a coherent page
 * only when it lies above a device-private range.
 */
abstract class ContentsBase {
  /** Lowest pfn without a direct map (+Infinity: none). */
  protected noMapLo = Infinity;
  /** [first, end) pairs of pfns without a direct map. */
  private readonly noMapRanges: number[] = [];
  private oopsHandler: NoDirectMapHandler | null = null;

  setOopsHandler(h: NoDirectMapHandler): void {
    this.oopsHandler = h;
  }

  /** release(): drop the oops handler (the machine is discarded). */
  protected releaseBase(): void {
    this.oopsHandler = null;
  }

  setNoDirectMap(first: number, nr: number, on: boolean): void {
    const r = this.noMapRanges;
    for (let i = 0; i < r.length; i += 2) {
      if (r[i] === first) {
        r.splice(i, 2);
        break;
      }
    }
    if (on) r.push(first, first + nr);
    let lo = Infinity;
    for (let i = 0; i < r.length; i += 2) if (r[i] < lo) lo = r[i];
    this.noMapLo = lo;
  }

  noDirectMap(pfn: number): boolean {
    if (pfn < this.noMapLo) return false;
    const r = this.noMapRanges;
    for (let i = 0; i < r.length; i += 2) if (pfn >= r[i] && pfn < r[i + 1]) return true;
    return false;
  }

  checkMapped(pfn: number, op: string, site?: string): void {
    if (pfn >= this.noMapLo) this.slowCheck(pfn, 1, op, site);
  }

  /** Out of line: some pfn of [pfn, pfn + nr) may lack a direct map; oops at the first that does. */
  protected slowCheck(pfn: number, nr: number, op: string, site: string | undefined): void {
    for (let i = 0; i < nr; i++) {
      if (!this.noDirectMap(pfn + i)) continue;
      const caller = site ?? callerFromStack();
      const h = this.oopsHandler;
      if (h !== null) h.oopsNoDirectMap(pfn + i, op, caller);
      throw new KernelBug('OOPS', 'BUG: unable to handle page fault', `${op} of pfn 0x${(pfn + i).toString(16)} (no direct map) in ${caller}`);
    }
  }

  /** Run fn as the device's copy engine: no direct-map checks (deviceCopy, deviceFill). */
  protected asDevice(fn: () => void): void {
    const lo = this.noMapLo;
    this.noMapLo = Infinity;
    try {
      fn();
    } finally {
      this.noMapLo = lo;
    }
  }
}

/**
 * The kernel function that made an access, when the caller did not name
 * it: the first JS frame outside this file, its camelCase name turned into
 * the kernel's snake_case (dmirrorDoRead -> dmirror_do_read). Only on the
 * oops path.
 */
function callerFromStack(): string {
  const stack = new Error().stack?.split('\n') ?? [];
  for (const line of stack.slice(1)) {
    if (line.includes('contents.js') || line.includes('contents.ts') || line.includes('node:')) continue;
    const m = /at (?:\S+\.)?(?:\*)?([A-Za-z_$][\w$]*) /.exec(line.trim() + ' ');
    if (m) return m[1].replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
  }
  return 'unknown';
}

export class ByteContents extends ContentsBase implements PageContents {
  readonly mode = 'bytes' as const;
  /*
   * Storage segments of 2^segShift slabs each, allocated as needed. Plain
   * (non-resizable) ArrayBuffers: V8 copies between them and into user
   * buffers at memcpy speed, which it does not for resizable ones.
   */
  private readonly segs: Uint8Array[] = [];
  private readonly segs32: Uint32Array[] = [];
  /** log2 of the slabs per segment, fixed at the first segment (-1: none yet). */
  private segShift = -1;
  /** has[pfn]: 1 if the page holds data (else it reads as zeroes). */
  private has = new Uint8Array(0);
  /** slabOf[block]: slab number + 1 backing pfns [block * 512, +512); 0 = none. */
  private slabOf = new Int32Array(0);
  /** Pages with data in each block (the slab is released at 0). */
  private used = new Uint16Array(0);
  private readonly freeSlabs: number[] = [];
  private nextSlab = 0;
  private pagesInUse = 0;
  bytesMoved = 0;

  ensureCapacity(n: number): void {
    if (n <= this.has.length) return;
    const has = new Uint8Array(n);
    has.set(this.has);
    this.has = has;
    const nb = (n + SLAB_PAGES - 1) >>> SLAB_SHIFT;
    const slabOf = new Int32Array(nb);
    slabOf.set(this.slabOf);
    this.slabOf = slabOf;
    const used = new Uint16Array(nb);
    used.set(this.used);
    this.used = used;
  }

  /** The slab (number) of pfn's block, assigning one if needed. */
  private slab(pfn: number): number {
    const b = pfn >>> SLAB_SHIFT;
    const s = this.slabOf[b];
    if (s !== 0) return s - 1;
    let sl = this.freeSlabs.pop();
    if (sl === undefined) {
      sl = this.nextSlab;
      if ((sl + 1) * SLAB_BYTES > MAX_BYTES) {
        throw new KernelBug('BUG', 'page contents exceed 4 GiB in bytes mode', `more than ${MAX_BYTES / SLAB_BYTES} 2 MiB blocks of pfns hold data; use --config contentMode=fingerprint`);
      }
      this.nextSlab++;
      if (this.segShift < 0) {
        // Sized at the first store: the power of two of slabs covering every pfn, at most 2 GiB.
        const slabs = Math.max(1, Math.ceil(this.has.length / SLAB_PAGES));
        this.segShift = Math.min(MAX_SEG_SHIFT, Math.ceil(Math.log2(slabs)));
      }
      if (sl >>> this.segShift >= this.segs.length) {
        const bytes = (1 << this.segShift) * SLAB_BYTES;
        const at = segmentPool.findIndex((x) => x.byteLength === bytes);
        const seg = at >= 0 ? segmentPool.splice(at, 1)[0] : new Uint8Array(bytes);
        this.segs.push(seg);
        this.segs32.push(new Uint32Array(seg.buffer));
      }
    }
    this.slabOf[b] = sl + 1;
    return sl;
  }

  /** Segment of a slab. */
  private seg(slab: number): Uint8Array {
    return this.segs[slab >>> this.segShift];
  }

  /** Byte offset of pfn inside its slab's segment. */
  private off(slab: number, pfn: number): number {
    return (slab & ((1 << this.segShift) - 1)) * SLAB_BYTES + (pfn & (SLAB_PAGES - 1)) * PAGE_SIZE;
  }

  private markHas(pfn: number): void {
    if (this.has[pfn] === 0) {
      this.has[pfn] = 1;
      this.used[pfn >>> SLAB_SHIFT]++;
      this.pagesInUse++;
    }
  }

  /** Slab of pfn for a store that may not cover the whole page: zeroes the page first if it held nothing. */
  private slabForPartial(pfn: number): number {
    const sl = this.slab(pfn);
    if (this.has[pfn] === 0) {
      const o = this.off(sl, pfn);
      this.seg(sl).fill(0, o, o + PAGE_SIZE);
      this.markHas(pfn);
    }
    return sl;
  }

  zero(pfn: number, site?: string): void {
    if (pfn >= this.noMapLo) this.slowCheck(pfn, 1, 'clear_highpage', site);
    this.discard(pfn);
  }

  deviceCopy(dst: number, src: number, nr: number): void {
    this.asDevice(() => this.copyRange(dst, src, nr));
  }

  deviceZero(pfn: number, nr: number): void {
    this.discardRange(pfn, nr);
  }

  deviceFill(pfn: number, v: number): void {
    this.asDevice(() => this.fill(pfn, 0, PAGE_SIZE, v));
  }

  discard(pfn: number): void {
    if (this.has[pfn] === 0) return;
    this.has[pfn] = 0;
    this.pagesInUse--;
    const b = pfn >>> SLAB_SHIFT;
    if (--this.used[b] === 0) {
      this.freeSlabs.push(this.slabOf[b] - 1);
      this.slabOf[b] = 0;
    }
  }

  discardRange(pfn: number, nr: number): void {
    const has = this.has;
    for (let i = 0; i < nr; i++) if (has[pfn + i] !== 0) this.discard(pfn + i);
  }

  release(): void {
    this.releaseBase();
    for (const seg of this.segs) if (segmentPool.length < POOL_MAX) segmentPool.push(seg);
    this.segs.length = 0;
    this.segs32.length = 0;
    this.has = new Uint8Array(0);
    this.slabOf = new Int32Array(0);
    this.used = new Uint16Array(0);
    this.freeSlabs.length = 0;
    this.nextSlab = 0;
    this.pagesInUse = 0;
    this.segShift = -1;
  }

  /** Copy len bytes between (slab, offset) places: copyWithin inside a segment, set() across. */
  private move(ds: number, doff: number, ss: number, soff: number, len: number): void {
    this.bytesMoved += len;
    const dseg = this.seg(ds);
    const sseg = this.seg(ss);
    if (dseg === sseg) dseg.copyWithin(doff, soff, soff + len);
    else dseg.set(sseg.subarray(soff, soff + len), doff);
  }

  copy(dst: number, src: number, site?: string): void {
    if (dst >= this.noMapLo || src >= this.noMapLo) {
      this.slowCheck(src, 1, 'copy_highpage', site);
      this.slowCheck(dst, 1, 'copy_highpage', site);
    }
    if (dst === src) return;
    if (this.has[src] === 0) {
      this.discard(dst);
      return;
    }
    const ds = this.slab(dst);
    const ss = this.slabOf[src >>> SLAB_SHIFT] - 1;
    this.move(ds, this.off(ds, dst), ss, this.off(ss, src), PAGE_SIZE);
    this.markHas(dst);
  }

  copyRange(dst: number, src: number, nr: number, site?: string): void {
    if (dst + nr > this.noMapLo || src + nr > this.noMapLo) {
      this.slowCheck(src, nr, 'folio_copy', site);
      this.slowCheck(dst, nr, 'folio_copy', site);
    }
    if (dst === src) return;
    // A whole aligned block (a PMD-sized folio): one 2 MiB copy.
    if (nr === SLAB_PAGES && (dst & (SLAB_PAGES - 1)) === 0 && (src & (SLAB_PAGES - 1)) === 0) {
      if (this.used[src >>> SLAB_SHIFT] === 0) {
        for (let i = 0; i < nr; i++) this.discard(dst + i);
        return;
      }
      const ds = this.slab(dst);
      const ss = this.slabOf[src >>> SLAB_SHIFT] - 1;
      this.move(ds, this.off(ds, dst), ss, this.off(ss, src), SLAB_BYTES);
      // Mark first, discard second: the block's count never passes through
      // zero, so the slab just written stays assigned.
      for (let i = 0; i < nr; i++) if (this.has[src + i] !== 0) this.markHas(dst + i);
      for (let i = 0; i < nr; i++) if (this.has[src + i] === 0) this.discard(dst + i);
      return;
    }
    for (let i = 0; i < nr; i++) this.copy(dst + i, src + i);
  }

  copyTo(other: PageContents, dst: number, src: number, site?: string): void {
    if (src >= this.noMapLo) this.slowCheck(src, 1, 'copy_highpage', site);
    this.bytesMoved += PAGE_SIZE;
    if (this.has[src] === 0) {
      other.zero(dst);
      return;
    }
    const sl = this.slabOf[src >>> SLAB_SHIFT] - 1;
    const o = this.off(sl, src);
    other.write(dst, 0, this.seg(sl), o, PAGE_SIZE);
  }

  read(pfn: number, off: number, out: Uint8Array, outOff: number, len: number, site?: string): void {
    if (pfn >= this.noMapLo) this.slowCheck(pfn, 1, 'memcpy_from_page', site);
    this.bytesMoved += len;
    if (this.has[pfn] === 0) {
      out.fill(0, outOff, outOff + len);
      return;
    }
    const sl = this.slabOf[pfn >>> SLAB_SHIFT] - 1;
    const o = this.off(sl, pfn) + off;
    out.set(this.seg(sl).subarray(o, o + len), outOff);
  }

  write(pfn: number, off: number, inp: Uint8Array, inOff: number, len: number, site?: string): void {
    if (pfn >= this.noMapLo) this.slowCheck(pfn, 1, 'memcpy_to_page', site);
    this.bytesMoved += len;
    let sl: number;
    if (off === 0 && len === PAGE_SIZE) {
      sl = this.slab(pfn);
      this.markHas(pfn);
    } else sl = this.slabForPartial(pfn);
    this.seg(sl).set(inp.subarray(inOff, inOff + len), this.off(sl, pfn) + off);
  }

  readPages(pfn: number, n: number, out: Uint8Array, outOff: number, site?: string): void {
    if (pfn + n > this.noMapLo) this.slowCheck(pfn, n, 'memcpy_from_page', site);
    this.bytesMoved += n * PAGE_SIZE;
    let i = 0;
    while (i < n) {
      const p0 = pfn + i;
      if (this.has[p0] === 0) {
        out.fill(0, outOff + i * PAGE_SIZE, outOff + (i + 1) * PAGE_SIZE);
        i++;
        continue;
      }
      // A run of pages with data in one block is contiguous in its slab.
      const b = p0 >>> SLAB_SHIFT;
      let j = i + 1;
      while (j < n && this.has[pfn + j] !== 0 && (pfn + j) >>> SLAB_SHIFT === b) j++;
      const sl = this.slabOf[b] - 1;
      const o = this.off(sl, p0);
      out.set(this.seg(sl).subarray(o, o + (j - i) * PAGE_SIZE), outOff + i * PAGE_SIZE);
      i = j;
    }
  }

  writePages(pfn: number, n: number, inp: Uint8Array, inOff: number, site?: string): void {
    if (pfn + n > this.noMapLo) this.slowCheck(pfn, n, 'memcpy_to_page', site);
    this.bytesMoved += n * PAGE_SIZE;
    let i = 0;
    while (i < n) {
      const p0 = pfn + i;
      const b = p0 >>> SLAB_SHIFT;
      let j = i + 1;
      while (j < n && (pfn + j) >>> SLAB_SHIFT === b) j++;
      const sl = this.slab(p0);
      for (let q = i; q < j; q++) this.markHas(pfn + q);
      this.seg(sl).set(inp.subarray(inOff + i * PAGE_SIZE, inOff + j * PAGE_SIZE), this.off(sl, p0));
      i = j;
    }
  }

  fill(pfn: number, off: number, len: number, v: number, site?: string): void {
    if (pfn >= this.noMapLo) this.slowCheck(pfn, 1, 'memset_page', site);
    this.bytesMoved += len;
    if (this.has[pfn] === 0 && (v & 0xff) === 0) return;
    if ((v & 0xff) === 0 && off === 0 && len === PAGE_SIZE) {
      this.discard(pfn);
      return;
    }
    let sl: number;
    if (off === 0 && len === PAGE_SIZE) {
      sl = this.slab(pfn);
      this.markHas(pfn);
    } else sl = this.slabForPartial(pfn);
    const o = this.off(sl, pfn) + off;
    this.seg(sl).fill(v, o, o + len);
  }

  isZero(pfn: number): boolean {
    if (this.has[pfn] === 0) return true;
    const sl = this.slabOf[pfn >>> SLAB_SHIFT] - 1;
    const w = this.off(sl, pfn) >>> 2;
    const u32 = this.segs32[sl >>> this.segShift];
    for (let i = 0; i < PAGE_SIZE / 4; i++) if (u32[w + i] !== 0) return false;
    return true;
  }

  checksum(pfn: number): number {
    if (this.isZero(pfn)) return 0;
    const sl = this.slabOf[pfn >>> SLAB_SHIFT] - 1;
    return hashWords(this.segs32[sl >>> this.segShift], this.off(sl, pfn) >>> 2, PAGE_SIZE / 4) || 1;
  }

  bytesInUse(): number {
    return this.pagesInUse * PAGE_SIZE;
  }

  storageBytes(): number {
    return this.segs.length * (1 << Math.max(0, this.segShift)) * SLAB_BYTES;
  }

  metadataBytes(): number {
    return this.has.byteLength + this.slabOf.byteLength + this.used.byteLength;
  }
}

/** Mix 32-bit value x into state h (murmur3 fmix-style). */
function mix32(h: number, x: number): number {
  h = Math.imul(h ^ x, 0xcc9e2d51);
  h = (h << 15) | (h >>> 17);
  h = Math.imul(h, 0x1b873593);
  return h ^ (h >>> 13);
}

export class FingerprintContents extends ContentsBase implements PageContents {
  readonly mode = 'fingerprint' as const;
  /** The two halves of each page's fingerprint; both 0 = all zeroes. */
  private hi = new Int32Array(0);
  private lo = new Int32Array(0);
  private pagesInUse = 0;
  /** A counter mixed into partial stores, so two different histories never collide by construction. */
  private serial = 1;
  bytesMoved = 0;

  ensureCapacity(n: number): void {
    if (n <= this.hi.length) return;
    const hi = new Int32Array(n);
    hi.set(this.hi);
    this.hi = hi;
    const lo = new Int32Array(n);
    lo.set(this.lo);
    this.lo = lo;
  }

  /** Give pfn the fingerprint (h, l). */
  set(pfn: number, h: number, l: number): void {
    if ((h | l) === 0) l = 1; /* data that is not known to be zero never reads as zero */
    if ((this.hi[pfn] | this.lo[pfn]) === 0) this.pagesInUse++;
    this.hi[pfn] = h;
    this.lo[pfn] = l;
  }

  zero(pfn: number, site?: string): void {
    if (pfn >= this.noMapLo) this.slowCheck(pfn, 1, 'clear_highpage', site);
    this.discard(pfn);
  }

  deviceCopy(dst: number, src: number, nr: number): void {
    this.asDevice(() => this.copyRange(dst, src, nr));
  }

  deviceZero(pfn: number, nr: number): void {
    this.discardRange(pfn, nr);
  }

  deviceFill(pfn: number, v: number): void {
    this.asDevice(() => this.fill(pfn, 0, PAGE_SIZE, v));
  }

  discard(pfn: number): void {
    if ((this.hi[pfn] | this.lo[pfn]) === 0) return;
    this.hi[pfn] = 0;
    this.lo[pfn] = 0;
    this.pagesInUse--;
  }

  discardRange(pfn: number, nr: number): void {
    for (let i = 0; i < nr; i++) this.discard(pfn + i);
  }

  copy(dst: number, src: number, site?: string): void {
    if (dst >= this.noMapLo || src >= this.noMapLo) {
      this.slowCheck(src, 1, 'copy_highpage', site);
      this.slowCheck(dst, 1, 'copy_highpage', site);
    }
    if (dst === src) return;
    this.bytesMoved += PAGE_SIZE;
    if ((this.hi[src] | this.lo[src]) === 0) this.discard(dst);
    else this.set(dst, this.hi[src], this.lo[src]);
  }

  copyRange(dst: number, src: number, nr: number, site?: string): void {
    if (dst + nr > this.noMapLo || src + nr > this.noMapLo) {
      this.slowCheck(src, nr, 'folio_copy', site);
      this.slowCheck(dst, nr, 'folio_copy', site);
    }
    for (let i = 0; i < nr; i++) this.copy(dst + i, src + i, site);
  }

  copyTo(other: PageContents, dst: number, src: number, site?: string): void {
    if (src >= this.noMapLo) this.slowCheck(src, 1, 'copy_highpage', site);
    this.bytesMoved += PAGE_SIZE;
    if (!(other instanceof FingerprintContents)) throw new KernelBug('BUG', 'contents: copy between stores of different modes');
    if ((this.hi[src] | this.lo[src]) === 0) other.discard(dst);
    else other.set(dst, this.hi[src], this.lo[src]);
  }

  read(pfn: number, _off: number, out: Uint8Array, outOff: number, len: number, site?: string): void {
    if (pfn >= this.noMapLo) this.slowCheck(pfn, 1, 'memcpy_from_page', site);
    this.bytesMoved += len;
    if ((this.hi[pfn] | this.lo[pfn]) === 0) {
      out.fill(0, outOff, outOff + len);
      return;
    }
    throw new KernelBug('BUG', 'contents: byte read of a written page in fingerprint mode', `pfn ${pfn} carries fingerprint ${this.checksum(pfn)}; fingerprint mode keeps no bytes (use contentMode=bytes to read data back)`);
  }

  write(pfn: number, off: number, inp: Uint8Array, inOff: number, len: number, site?: string): void {
    if (pfn >= this.noMapLo) this.slowCheck(pfn, 1, 'memcpy_to_page', site);
    this.bytesMoved += len;
    const wasZero = (this.hi[pfn] | this.lo[pfn]) === 0;
    let allZero = true;
    for (let i = 0; i < len; i++) if (inp[inOff + i] !== 0) { allZero = false; break; }
    if (allZero && (wasZero || (off === 0 && len === PAGE_SIZE))) {
      this.discard(pfn);
      return;
    }
    const whole = off === 0 && len === PAGE_SIZE;
    // A whole-page store is a function of the bytes only; a partial store
    // also depends on the previous fingerprint and the offset.
    let h = whole ? 0x2545f491 : mix32(this.hi[pfn] ^ off, this.serial);
    let l = whole ? 0x9e3779b9 | 0 : mix32(this.lo[pfn], len ^ (this.serial++ << 12));
    let i = 0;
    for (; i + 4 <= len; i += 4) {
      const w = inp[inOff + i] | (inp[inOff + i + 1] << 8) | (inp[inOff + i + 2] << 16) | (inp[inOff + i + 3] << 24);
      h = mix32(h, w);
      l = mix32(l, w + i);
    }
    for (; i < len; i++) {
      h = mix32(h, inp[inOff + i]);
      l = mix32(l, inp[inOff + i] + i);
    }
    this.set(pfn, h, l);
  }

  readPages(pfn: number, n: number, out: Uint8Array, outOff: number, site?: string): void {
    for (let i = 0; i < n; i++) this.read(pfn + i, 0, out, outOff + i * PAGE_SIZE, PAGE_SIZE, site);
  }

  writePages(pfn: number, n: number, inp: Uint8Array, inOff: number, site?: string): void {
    for (let i = 0; i < n; i++) this.write(pfn + i, 0, inp, inOff + i * PAGE_SIZE, PAGE_SIZE, site);
  }

  fill(pfn: number, off: number, len: number, v: number, site?: string): void {
    if (pfn >= this.noMapLo) this.slowCheck(pfn, 1, 'memset_page', site);
    this.bytesMoved += len;
    v &= 0xff;
    const wasZero = (this.hi[pfn] | this.lo[pfn]) === 0;
    const whole = off === 0 && len === PAGE_SIZE;
    if (v === 0 && (wasZero || whole)) {
      this.discard(pfn);
      return;
    }
    if (whole) this.set(pfn, mix32(0x3c6ef372, v), mix32(0x7f4a7c15, v));
    else this.set(pfn, mix32(this.hi[pfn] ^ off, v), mix32(this.lo[pfn], len ^ (this.serial++ << 12) ^ (v << 4)));
  }

  isZero(pfn: number): boolean {
    return (this.hi[pfn] | this.lo[pfn]) === 0;
  }

  checksum(pfn: number): number {
    if ((this.hi[pfn] | this.lo[pfn]) === 0) return 0;
    return ((this.hi[pfn] >>> 0) * 0x200000 + ((this.lo[pfn] >>> 11) & 0x1fffff)) || 1;
  }

  bytesInUse(): number {
    return this.pagesInUse * 8;
  }

  storageBytes(): number {
    return this.hi.byteLength + this.lo.byteLength;
  }

  metadataBytes(): number {
    return 0;
  }

  release(): void {
    this.releaseBase();
    this.hi = new Int32Array(0);
    this.lo = new Int32Array(0);
    this.pagesInUse = 0;
  }
}

export function createContents(mode: 'bytes' | 'fingerprint'): PageContents {
  return mode === 'fingerprint' ? new FingerprintContents() : new ByteContents();
}
