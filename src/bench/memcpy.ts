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

/**
 * The machine's memcpy bandwidth with `threads` threads copying at once
 * (each its own `bytes`, in `block`-sized copies, median of `reps`
 * passes), summed over the threads: what `hmmsim selftest --jobs N` can
 * get from the memory system at best. On a VM the threads share the host's
 * memory bandwidth, so the sum is less than threads x the one-thread rate.
 */
export async function parallelMemcpyGBps(threads: number, bytes: number, block: number, reps = 7): Promise<number> {
  const { Worker } = await import('node:worker_threads');
  // Each worker runs this module's MemcpyProbe (loaded by URL from an
  // eval'd body: no separate worker file to locate from dist/).
  const body = `
    const { parentPort, workerData: { url, bytes, block, reps } } = require('node:worker_threads');
    import(url).then(({ MemcpyProbe }) => {
      const probe = new MemcpyProbe(bytes, block);
      const t = [];
      for (let r = 0; r < reps; r++) t.push(probe.run());
      t.sort((a, b) => a - b);
      parentPort.postMessage(bytes / (t[t.length >> 1] / 1e3) / 1e9);
    });`;
  const url = import.meta.url;
  const rates = await Promise.all(Array.from({ length: threads }, () => new Promise<number>((resolve, reject) => {
    const w = new Worker(body, { eval: true, workerData: { url, bytes, block, reps } });
    w.once('message', (v: number) => { resolve(v); void w.terminate(); });
    w.once('error', reject);
  })));
  return rates.reduce((s, x) => s + x, 0);
}
