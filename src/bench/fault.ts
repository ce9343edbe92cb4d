// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fault benchmark:
 *  - device-private CPU faults: the buffer is migrated to device-private
 *    memory (untimed), then the process reads one byte of every page; each
 *    read takes the do_swap_page() -> pgmap->ops->migrate_to_ram() path and
 *    migrates that page back (pages/s, median of reps);
 *  - hmm_range_fault() snapshots: the driver's read_begin / hmm_range_fault
 *    / read_retry loop over the whole (system-resident) buffer with
 *    HMM_PFN_REQ_FAULT (pages/s, median of reps).
 */
import { PAGE_SIZE } from '../kernel/mm/page.js';
import { HMM_PFN_REQ_FAULT, HMM_PFN_VALID, hmmPfnTest } from '../kernel/mm/hmm.js';
import { BenchMachine } from './machine.js';
import { median, round } from './stats.js';

export interface FaultResult {
  pages: number;
  devicePrivateFaultsPerSecond: number;
  hmmRangeFaultPagesPerSecond: number;
}

export function runFault(pages: number, reps: number): FaultResult {
  const m = new BenchMachine({ pages, thp: false });
  const mm = m.proc.mm!;
  const faults: number[] = [];
  for (let r = 0; r <= reps; r++) {
    if (m.toDevice() !== pages) throw new Error('bench fault: migration to the device failed');
    const before = m.dev.stat.migrateToRam;
    const t0 = performance.now();
    for (let a = m.start; a < m.end; a += PAGE_SIZE) m.proc.load8(a);
    const ms = performance.now() - t0;
    if (m.dev.stat.migrateToRam - before !== pages) throw new Error(`bench fault: ${m.dev.stat.migrateToRam - before} migrate_to_ram calls for ${pages} pages`);
    if (r > 0) faults.push((pages / ms) * 1000);
  }
  m.verify();
  const out = new Float64Array(pages);
  const snaps: number[] = [];
  // A snapshot of a resident buffer takes well under a millisecond: many
  // more repetitions, or the median is the JIT's warm-up and timer noise.
  const snapReps = Math.max(reps, 10 * reps);
  for (let r = 0; r <= snapReps; r++) {
    out.fill(0);
    const t0 = performance.now();
    const ret = m.run(m.dev.snapshot(mm, m.start, m.end, out, HMM_PFN_REQ_FAULT));
    const ms = performance.now() - t0;
    if (ret !== 0) throw new Error(`bench fault: hmm_range_fault returned ${ret}`);
    for (let i = 0; i < pages; i++) if (!hmmPfnTest(out[i], HMM_PFN_VALID)) throw new Error(`bench fault: snapshot entry ${i} not valid`);
    if (r > 0) snaps.push((pages / ms) * 1000);
  }
  return {
    pages,
    devicePrivateFaultsPerSecond: round(median(faults), 0),
    hmmRangeFaultPagesPerSecond: round(median(snaps), 0),
  };
}
