// SPDX-License-Identifier: GPL-2.0-only
/**
 * Simulated time: a virtual clock per simulated CPU and per device engine
 * (DMA channel, copy engine, link), advanced by the operations the model
 * performs, with costs from a hardware profile (profile.ts).
 *
 * The clock lives on the machine (`k.clock`, null without a profile).
 * Charging sites are coarse (per folio, per batch, per fault) and test
 * `k.clock !== null` once; nothing is charged per byte or per page in a
 * loop. With no clock the model does exactly what it did before.
 *
 * Time is plain arithmetic on the profile's numbers: the same run gives the
 * same times (no wall clock, no randomness).
 *
 * CPUs: work is charged to the current CPU (`cpu`, 0 unless a tool moves
 * it). Engines: an engine runs a job from max(its own time, the submitting
 * CPU's time) and the CPU may wait for it (`waitFor`), which advances the
 * CPU to the engine's end: time the CPU spent waiting is accounted as such.
 *
 * It implements the trace TraceClock (unit 'ns'), so a trace can be drawn
 * in simulated nanoseconds (`attachTracer(k, new Tracer(k.clock))`).
 */
import type { TraceClock } from '../trace.js';
import { type HwProfile, cpuCopyGBps } from './profile.js';

export class SimClock implements TraceClock {
  readonly unit = 'ns';
  /** Per-CPU time in ns. */
  readonly cpuNs: Float64Array;
  /** The CPU work is charged to. */
  cpu = 0;
  /** Per-engine time ("dma0", "ce1", "link"): the time the engine becomes free. */
  readonly engineNs = new Map<string, number>();
  /** ns charged per phase (kernel function or activity), all CPUs together. */
  readonly acct = new Map<string, number>();
  /** Busy ns per engine. */
  readonly engineBusy = new Map<string, number>();
  /**
   * When not null (a tool that draws engine tracks sets it to []), every
   * engine job is logged here: engine, start, end (ns) and what it was.
   */
  jobs: Array<{ engine: string; start: number; end: number; what: string }> | null = null;
  /** At most this many jobs are logged; the others are counted in jobsDropped. */
  jobsLimit = 100_000;
  jobsDropped = 0;
  /** CPU copy ns per 4 KiB page (folio_copy copies page by page), cached from the profile. */
  readonly cpuCopyPageNs: number;

  constructor(readonly profile: HwProfile) {
    this.cpuNs = new Float64Array(profile.cpu.count);
    this.cpuCopyPageNs = 4096 / cpuCopyGBps(profile, 4096);
  }

  /** TraceClock: the current CPU's time. */
  now(): number {
    return this.cpuNs[this.cpu];
  }

  /** Charge `ns` of CPU work to `phase` on the current CPU. */
  charge(phase: string, ns: number): void {
    this.cpuNs[this.cpu] += ns;
    this.acct.set(phase, (this.acct.get(phase) ?? 0) + ns);
  }

  /**
   * Run a job of `ns` on `engine`, submitted now by the current CPU: it
   * starts when both are ready. Returns its end time; the CPU does not wait.
   * `what` names the job in the engine's trace track (`jobs`).
   */
  engineRun(engine: string, ns: number, notBefore = this.now(), what = 'job'): number {
    const start = Math.max(this.engineNs.get(engine) ?? 0, notBefore);
    const end = start + ns;
    if (this.jobs !== null) {
      if (this.jobs.length < this.jobsLimit) this.jobs.push({ engine, start, end, what });
      else this.jobsDropped++;
    }
    this.engineNs.set(engine, end);
    this.engineBusy.set(engine, (this.engineBusy.get(engine) ?? 0) + ns);
    return end;
  }

  /** The current CPU waits until time t (a completion): the gap is charged to `phase`. */
  waitFor(t: number, phase: string): void {
    const c = this.cpuNs[this.cpu];
    if (t > c) this.charge(phase, t - c);
  }

  /** A snapshot of the accounting, sorted by phase name (for tables and determinism tests). */
  snapshot(): { cpuNs: number[]; engines: Record<string, number>; acct: Record<string, number> } {
    const acct: Record<string, number> = {};
    for (const k of [...this.acct.keys()].sort()) acct[k] = this.acct.get(k)!;
    const engines: Record<string, number> = {};
    for (const k of [...this.engineNs.keys()].sort()) engines[k] = this.engineNs.get(k)!;
    return { cpuNs: [...this.cpuNs], engines, acct };
  }
}
