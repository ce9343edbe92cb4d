// SPDX-License-Identifier: GPL-2.0-only
/**
 * The core benchmark: round trips system -> device-private -> system of a
 * whole buffer through migrate_vma_setup / pages / finalize with the
 * minimal driver, which copies each page once per direction. Each
 * direction's figure is the median of `reps` timed round trips after one
 * untimed warm-up; the machine's memcpy bandwidth is measured in the same
 * run for the same bytes in the same block size (4 KiB or 2 MiB), and
 *   ratio = (2 x bytes / round-trip time) / memcpy GB/s.
 * Each repetition pairs a round trip with the memcpy pass that follows it,
 * so `ratio` is the median of the per-repetition ratios: both halves of a
 * pair see the same machine, and the VM's minute-to-minute speed drift
 * cancels out (`ratioOfMedians`, the same formula on the two medians, is
 * reported alongside).
 * The run ends with the data-integrity check of every page moved.
 */
import { HPAGE_PMD_SIZE, PAGE_SIZE } from '../kernel/mm/page.js';
import type { ContentMode } from '../kernel/config.js';
import { BenchMachine } from './machine.js';
import { MemcpyProbe } from './memcpy.js';
import { fullGc } from './memory.js';
import { gbps, median, round } from './stats.js';

export interface CoreRow {
  pages: number;
  thp: boolean;
  s2dGBps: number;
  d2sGBps: number;
  /** Median round trip, ms. */
  roundTripMs: number;
  /** Per-page cost of a round trip, ns. */
  nsPerPage: number;
  memcpyGBps: number;
  /** Median over the repetitions of (2 x bytes / round trip) / memcpy GB/s of the same repetition. */
  ratio: number;
  /** (2 x bytes / median round trip) / median memcpy GB/s. */
  ratioOfMedians: number;
  /** Pages whose contents were verified at the end (of every machine used). */
  verifiedPages: number;
}

export interface CoreOptions {
  pages: number;
  thp: boolean;
  reps: number;
  contentMode?: ContentMode;
  /** Skip the memcpy measurement (fingerprint mode copies no bytes). */
  noMemcpy?: boolean;
  /** Spread the repetitions over this many fresh machines (default 1). */
  machines?: number;
}

export function runCore(o: CoreOptions): CoreRow {
  const fp = o.contentMode === 'fingerprint';
  const expect = o.thp ? o.pages / 512 : o.pages;
  const bytes = o.pages * PAGE_SIZE;
  const s2d: number[] = [];
  const d2s: number[] = [];
  const rt: number[] = [];
  const mc: number[] = [];
  let verifiedPages = 0;
  // The repetitions are spread over several machines (and memcpy probe
  // buffers): where the host places a machine's memory moves its speed by
  // up to a third, and one machine's luck should not decide the row.
  const machines = Math.max(1, Math.min(o.machines ?? 1, o.reps));
  for (let mi = 0; mi < machines; mi++) {
    const reps = Math.ceil(o.reps / machines);
    const m = new BenchMachine({ pages: o.pages, thp: o.thp, contentMode: o.contentMode, fullPages: !fp });
    const probe = o.noMemcpy || fp ? null : new MemcpyProbe(bytes, o.thp ? HPAGE_PMD_SIZE : PAGE_SIZE);
    fullGc(); /* the previous machine is garbage: collect it before timing */
    for (let r = 0; r <= reps; r++) {
      const t0 = performance.now();
      const n1 = m.toDevice();
      const t1 = performance.now();
      const n2 = m.toSystem();
      const t2 = performance.now();
      if (n1 !== expect || n2 !== expect) throw new Error(`bench core: migrated ${n1} / ${n2} entries, expected ${expect}`);
      const pm = probe?.run() ?? 0;
      if (r === 0) continue; /* warm-up */
      s2d.push(t1 - t0);
      d2s.push(t2 - t1);
      rt.push(t2 - t0);
      mc.push(pm);
    }
    verifiedPages += m.verify();
  }
  const memcpy = mc.length && !(o.noMemcpy || fp) ? gbps(bytes, median(mc)) : 0;
  const rtMs = median(rt);
  return {
    pages: o.pages,
    thp: o.thp,
    s2dGBps: round(gbps(bytes, median(s2d))),
    d2sGBps: round(gbps(bytes, median(d2s))),
    roundTripMs: round(rtMs),
    nsPerPage: round((rtMs * 1e6) / o.pages, 1),
    memcpyGBps: round(memcpy),
    ratio: memcpy > 0 ? round(median(rt.map((t, i) => (2 * mc[i]) / t))) : 0,
    ratioOfMedians: memcpy > 0 ? round(gbps(2 * bytes, rtMs) / memcpy) : 0,
    verifiedPages,
  };
}
