// SPDX-License-Identifier: GPL-2.0-only
/**
 * This machine's memcpy bandwidth as the model sees it: typed-array
 * `copyWithin` inside one ArrayBuffer (what ByteContents does for every
 * page copy), in blocks of the given size, over `bytes` bytes. The buffer is
 * touched once before timing so page faults of the host do not count.
 */
import { gbps, median } from './stats.js';

export function memcpyGBps(bytes: number, block: number, reps: number): number {
  const buf = new Uint8Array(2 * bytes);
  for (let o = 0; o < buf.length; o += 4096) buf[o] = o & 0xff;
  const runs: number[] = [];
  for (let r = 0; r < reps + 1; r++) {
    const t0 = performance.now();
    for (let o = 0; o < bytes; o += block) buf.copyWithin(bytes + o, o, o + block);
    const ms = performance.now() - t0;
    if (r > 0) runs.push(gbps(bytes, ms)); /* the first run warms up */
  }
  return median(runs);
}
