// SPDX-License-Identifier: GPL-2.0-only
/**
 * This machine's memcpy bandwidth as the model sees it: typed-array
 * `copyWithin` inside one ArrayBuffer (what ByteContents does for every
 * page copy), in blocks of the given size, over `bytes` bytes. The buffer is
 * written once before timing so page faults of the host do not count.
 * The core benchmark interleaves probe runs with its round trips, so both
 * medians see the same machine conditions.
 */
export class MemcpyProbe {
  private readonly buf: Uint8Array;
  constructor(readonly bytes: number, readonly block: number) {
    this.buf = new Uint8Array(2 * bytes);
    for (let o = 0; o < this.buf.length; o += 4096) this.buf[o] = (o >>> 12) & 0xff;
  }

  /** One pass; returns milliseconds. */
  run(): number {
    const { buf, bytes, block } = this;
    const t0 = performance.now();
    for (let o = 0; o < bytes; o += block) buf.copyWithin(bytes + o, o, o + block);
    return performance.now() - t0;
  }
}
