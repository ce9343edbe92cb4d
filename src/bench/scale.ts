// SPDX-License-Identifier: GPL-2.0-only
/**
 * The scale benchmark: per-page cost of the core round trip (4 KiB pages)
 * at growing buffer sizes, all in fingerprint content mode so that the
 * largest (1M pages: 4 GiB of RAM and 4 GiB of device memory) fits, and so
 * that every row measures the same work: the bookkeeping, not memcpy.
 * flatness = max / min of the per-page costs; 1.0 means perfectly linear.
 */
import { runCore } from './core.js';
import { round } from './stats.js';

export interface ScaleRow {
  pages: number;
  nsPerPage: number;
}

export interface ScaleResult {
  rows: ScaleRow[];
  flatness: number;
}

export function runScale(sizes: readonly number[], onRow?: (r: ScaleRow) => void): ScaleResult {
  const rows: ScaleRow[] = [];
  // Warm the fingerprint-mode code paths before the first (smallest) row.
  runCore({ pages: 16384, thp: false, reps: 3, contentMode: 'fingerprint' });
  for (const pages of sizes) {
    // About 4M page round trips per row at the small sizes, at least 3 round trips at the large ones.
    const reps = Math.max(3, Math.min(200, Math.round((1 << 22) / pages)));
    const r = runCore({ pages, thp: false, reps, contentMode: 'fingerprint' });
    const row = { pages, nsPerPage: r.nsPerPage };
    rows.push(row);
    onRow?.(row);
  }
  const costs = rows.map((r) => r.nsPerPage);
  return { rows, flatness: round(Math.max(...costs) / Math.min(...costs)) };
}
