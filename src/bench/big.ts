// SPDX-License-Identifier: GPL-2.0-only
/**
 * The big-machine run (`hmmsim bench --only big`, not in the default set:
 * it takes a minute or two): a machine with 64 GiB of RAM and 16 GiB of
 * device-private memory in fingerprint content mode, 16M populated pages
 * (all the RAM's worth of a 64 GiB mapping), a quarter of them (4M pages,
 * 16 GiB) migrated to the device and back with the minimal driver, then
 * every page verified. Reports the host memory the model used.
 */
import { fullGc } from './memory.js';
import { BenchMachine } from './machine.js';
import { round } from './stats.js';

export interface BigResult {
  ramGiB: number;
  deviceGiB: number;
  populatedPages: number;
  migratedPages: number;
  verifiedPages: number;
  /** Host resident memory after the run (process RSS). */
  rssGiB: number;
  /** Model memory: heap + ArrayBuffers after a full GC. */
  modelGiB: number;
  seconds: number;
}

export function runBig(log: (l: string) => void): BigResult {
  const t0 = performance.now();
  const GiB = 2 ** 30;
  const populated = 16 * 2 ** 20; /* 64 GiB of 4 KiB pages */
  const m = new BenchMachine({
    pages: populated, thp: false, contentMode: 'fingerprint', fullPages: false,
    devicePages: 4 * 2 ** 20, /* 16 GiB of device-private memory */
  });
  log(`big: ${populated} pages populated in ${round((performance.now() - t0) / 1000, 1)} s`);
  const quarter = populated / 4;
  const n1 = m.toDeviceRange(0, quarter);
  const n2 = m.toSystemRange(0, quarter);
  if (n1 !== quarter || n2 !== quarter) throw new Error(`bench big: migrated ${n1} / ${n2} of ${quarter} pages`);
  const verified = m.verify();
  fullGc();
  const u = process.memoryUsage();
  return {
    ramGiB: round(m.sys.kernel.config.ramBytes / GiB, 1),
    deviceGiB: 16,
    populatedPages: populated,
    migratedPages: quarter,
    verifiedPages: verified,
    rssGiB: round(u.rss / GiB, 2),
    modelGiB: round((u.heapUsed + u.arrayBuffers) / GiB, 2),
    seconds: round((performance.now() - t0) / 1000, 1),
  };
}
