// SPDX-License-Identifier: GPL-2.0-only
/**
 * Page contents.
 *
 * Bytes mode: every page that has ever been written owns a 4 KiB slot in one
 * resizable ArrayBuffer (up to 4 GiB, i.e. 1M populated pages); a page with
 * no slot reads as zeroes. Copies are `copyWithin` inside that one buffer, so
 * the hot path allocates nothing. Slots return to a free stack when the page
 * is freed or zeroed.
 *
 * The interface is the same for the fingerprint mode of the performance work
 * (a 64-bit content fingerprint per page instead of bytes), so callers never
 * touch the storage directly.
 */
import { KernelBug } from '../printk.js';
import { PAGE_SIZE } from './page.js';

const INITIAL_BYTES = 256 * 1024;
const MAX_BYTES = 2 ** 32;

export interface PageContents {
  /** Grow per-pfn state to cover n pfns. */
  ensureCapacity(n: number): void;
  /** clear_highpage(): the page reads as zeroes. */
  zero(pfn: number): void;
  /** copy_highpage(dst, src) */
  copy(dst: number, src: number): void;
  /** Copy nr consecutive pages (a folio copy). */
  copyRange(dst: number, src: number, nr: number): void;
  /** Contents are discarded (page freed). */
  discard(pfn: number): void;
  /** Read len bytes at offset off of the page into out[outOff..]. */
  read(pfn: number, off: number, out: Uint8Array, outOff: number, len: number): void;
  /** Write len bytes from inp[inOff..] to offset off of the page. */
  write(pfn: number, off: number, inp: Uint8Array, inOff: number, len: number): void;
  /** Fill len bytes at off with byte value v. */
  fill(pfn: number, off: number, len: number, v: number): void;
  /** True if the page reads as all zeroes. */
  isZero(pfn: number): boolean;
  /** A 64-bit-ish content hash (two 32-bit halves in a number), for integrity checks. */
  checksum(pfn: number): number;
  /** Bytes of content storage in use (for the memory benchmark). */
  bytesInUse(): number;
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

export class ByteContents implements PageContents {
  private buf = new ArrayBuffer(INITIAL_BYTES, { maxByteLength: MAX_BYTES });
  private u8 = new Uint8Array(this.buf);
  private u32 = new Uint32Array(this.buf);
  /** slot[pfn]: slot number + 1, 0 = no slot (zero page content). */
  private slot = new Int32Array(0);
  private freeSlots: number[] = [];
  private nextSlot = 0;

  ensureCapacity(n: number): void {
    if (n <= this.slot.length) return;
    const s = new Int32Array(n);
    s.set(this.slot);
    this.slot = s;
  }

  private allocSlot(pfn: number): number {
    let sl = this.freeSlots.pop();
    if (sl === undefined) {
      sl = this.nextSlot++;
      const need = (sl + 1) * PAGE_SIZE;
      if (need > this.buf.byteLength) {
        if (need > MAX_BYTES) {
          throw new KernelBug('BUG', 'page contents exceed 4 GiB in bytes mode', `populated pages > ${MAX_BYTES / PAGE_SIZE}; use --config contentMode=fingerprint`);
        }
        let nb = this.buf.byteLength;
        while (nb < need) nb = Math.min(nb * 2, MAX_BYTES);
        this.buf.resize(nb);
      }
    } else {
      this.u8.fill(0, sl * PAGE_SIZE, sl * PAGE_SIZE + PAGE_SIZE);
    }
    this.slot[pfn] = sl + 1;
    return sl;
  }

  zero(pfn: number): void {
    this.discard(pfn);
  }

  discard(pfn: number): void {
    const sl = this.slot[pfn];
    if (sl !== 0) {
      this.freeSlots.push(sl - 1);
      this.slot[pfn] = 0;
    }
  }

  copy(dst: number, src: number): void {
    if (dst === src) return;
    const ss = this.slot[src];
    if (ss === 0) {
      this.discard(dst);
      return;
    }
    let ds = this.slot[dst];
    if (ds === 0) ds = this.allocSlot(dst) + 1;
    const so = (ss - 1) * PAGE_SIZE;
    this.u8.copyWithin((ds - 1) * PAGE_SIZE, so, so + PAGE_SIZE);
  }

  copyRange(dst: number, src: number, nr: number): void {
    for (let i = 0; i < nr; i++) this.copy(dst + i, src + i);
  }

  read(pfn: number, off: number, out: Uint8Array, outOff: number, len: number): void {
    const sl = this.slot[pfn];
    if (sl === 0) {
      out.fill(0, outOff, outOff + len);
      return;
    }
    const o = (sl - 1) * PAGE_SIZE + off;
    out.set(this.u8.subarray(o, o + len), outOff);
  }

  write(pfn: number, off: number, inp: Uint8Array, inOff: number, len: number): void {
    let sl = this.slot[pfn];
    if (sl === 0) sl = this.allocSlot(pfn) + 1;
    this.u8.set(inp.subarray(inOff, inOff + len), (sl - 1) * PAGE_SIZE + off);
  }

  fill(pfn: number, off: number, len: number, v: number): void {
    let sl = this.slot[pfn];
    if (sl === 0) {
      if ((v & 0xff) === 0) return;
      sl = this.allocSlot(pfn) + 1;
    }
    const o = (sl - 1) * PAGE_SIZE + off;
    this.u8.fill(v, o, o + len);
  }

  isZero(pfn: number): boolean {
    const sl = this.slot[pfn];
    if (sl === 0) return true;
    const w = ((sl - 1) * PAGE_SIZE) >>> 2;
    for (let i = 0; i < PAGE_SIZE / 4; i++) if (this.u32[w + i] !== 0) return false;
    return true;
  }

  checksum(pfn: number): number {
    const sl = this.slot[pfn];
    if (sl === 0) return 0;
    const h = hashWords(this.u32, ((sl - 1) * PAGE_SIZE) >>> 2, PAGE_SIZE / 4);
    return this.isZero(pfn) ? 0 : h;
  }

  bytesInUse(): number {
    return (this.nextSlot - this.freeSlots.length) * PAGE_SIZE;
  }
}

export function createContents(mode: 'bytes' | 'fingerprint'): PageContents {
  if (mode === 'fingerprint') {
    throw new KernelBug('BUG', 'fingerprint content mode is not implemented yet (performance issue)');
  }
  return new ByteContents();
}
