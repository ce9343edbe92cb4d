// SPDX-License-Identifier: GPL-2.0-only
/** Small statistics and timing helpers for `hmmsim bench`. */

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

/** Milliseconds of wall time taken by fn. */
export function timeMs(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

/** bytes per millisecond -> GB/s (10^9 bytes per second). */
export function gbps(bytes: number, ms: number): number {
  return bytes / ms / 1e6;
}

/** Round to n significant decimals for reports. */
export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
