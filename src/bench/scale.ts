// SPDX-License-Identifier: GPL-2.0-only
/**
 * The scale benchmark: per-page cost of the core round trip (4 KiB pages)
 * at growing buffer sizes, all in fingerprint content mode so that the
 * largest (1M pages: 4 GiB of RAM and 4 GiB of device memory) fits, and so
 * that every row measures the same work: the bookkeeping, not memcpy.
 *
 * The machines of every size are built first and then measured in rounds,
 * each round giving every size the same amount of work (2^20 page round
 * trips): the speed of a shared machine drifts over minutes, and measuring
 * the sizes one after the other would turn that drift into a fake trend.
 * Each size's figure is the median over the rounds; every page is verified
 * at the end. flatness = max / min of the per-page costs; 1.0 means
 * perfectly linear.
 */
import { BenchMachine } from './machine.js';
import { fullGc } from './memory.js';
import { median, round } from './stats.js';

export interface ScaleRow {
  pages: number;
  nsPerPage: number;
}

export interface ScaleResult {
  rows: ScaleRow[];
  flatness: number;
}

/** Page round trips per size per round. */
const WORK = 1 << 20;

export function runScale(sizes: readonly number[], rounds = 3, onRow?: (r: ScaleRow) => void): ScaleResult {
  const machines = sizes.map((pages) => new BenchMachine({ pages, thp: false, contentMode: 'fingerprint', fullPages: false }));
  const samples: number[][] = sizes.map(() => []);
  // Warm-up: one round trip on every machine (and the JIT).
  for (const m of machines) {
    if (m.toDevice() !== m.opts.pages || m.toSystem() !== m.opts.pages) throw new Error('bench scale: warm-up migration incomplete');
  }
  fullGc();
  for (let r = 0; r < rounds; r++) {
    machines.forEach((m, i) => {
      const pages = sizes[i];
      const trips = Math.max(1, Math.round(WORK / pages));
      const t0 = performance.now();
      for (let t = 0; t < trips; t++) {
        const n1 = m.toDevice();
        const n2 = m.toSystem();
        if (n1 !== pages || n2 !== pages) throw new Error(`bench scale: migrated ${n1} / ${n2} of ${pages} pages`);
      }
      samples[i].push(((performance.now() - t0) * 1e6) / (trips * pages));
    });
  }
  const rows: ScaleRow[] = sizes.map((pages, i) => {
    machines[i].verify();
    const row = { pages, nsPerPage: round(median(samples[i]), 1) };
    onRow?.(row);
    return row;
  });
  const costs = rows.map((r) => r.nsPerPage);
  return { rows, flatness: round(Math.max(...costs) / Math.min(...costs)) };
}
