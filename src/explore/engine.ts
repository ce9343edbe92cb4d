// SPDX-License-Identifier: GPL-2.0-only
/**
 * The interleaving explorer: run a scenario's simulated threads under many
 * schedules, check the detectors after every scheduling step, stop at the
 * first violation, shrink it to a minimal schedule and print a numbered
 * trace with the command that replays it.
 *
 * Schedules. A schedule is a sequence of choices, one per scheduling step,
 * each *relative to the thread that ran last*: 0 = keep running it (or,
 * when it blocked or ended, the first runnable thread), c = switch to the
 * c-th runnable thread after it (modulo the runnable count). Past the end
 * of the sequence every choice is 0, so a schedule of all zeros runs the
 * threads one after the other without preemption, and every non-zero
 * choice is one context switch. fast-check generates the plans and shrinks
 * a failing one (shorter sequences, smaller choices: fewer and earlier
 * context switches). Strategies shape the plans:
 *   random   uniform relative choices for the first `maxSteps` steps;
 *   pct      probabilistic concurrency testing (Burckhardt et al., ASPLOS
 *            2010): a random priority per thread, the highest-priority
 *            runnable thread runs, and at up to `depth` random steps the
 *            running thread drops below all others;
 *   bounded  preemption bounding: non-preemptive except at up to `bound`
 *            chosen steps.
 * Whatever the strategy, the run records the relative choices it actually
 * took; that sequence (trailing zeros trimmed) replays the run exactly and
 * is what `--schedule` takes. For pct and bounded the recorded sequence of
 * a failing run is shrunk once more as an explicit schedule.
 *
 * Files: scenario.ts (what a scenario and a run are), strategies.ts,
 * detectors.ts, machine.ts (one schedule on a restored machine),
 * format.ts (the trace); this file drives the exploration and re-exports
 * them.
 *
 * Machines. A scenario builds its machine once (`setup`); the explorer
 * snapshots it and restores it in place before every schedule
 * (src/explore/snapshot.ts) instead of constructing a new Kernel.
 *
 * Detectors, after every step (cheap, always valid mid-run):
 *   - any KernelBug a thread raises: KASAN (use-after-free of a page or a
 *     pgmap), REFCOUNT (underflow), BUG (incl. "Bad page state: freeing a
 *     mapped page"), LOCKDEP, HANG (a wait that can never finish: the only
 *     blocked thread waits for something no thread can do), DEADLOCK (every
 *     live thread blocked);
 *   - WARN: a new warning in dmesg;
 *   - INVARIANT: a page free in the buddy allocator or returned to its
 *     driver while a page table still maps it (page freed while mapped); a
 *     pgmap that memunmap_pages() finished while device pages are still
 *     allocated from it; the scenario's own per-step invariant;
 *   - OOPS: any other exception thrown by the model (a NULL dereference in
 *     the kernel model: an oops, or a bug in the model itself).
 * After the last step: the checked-mode invariants of
 * src/kernel/mm/debug_vm.ts (INVARIANT) and the scenario's end check, e.g.
 * the shadow compare of page contents (DATA: data lost).
 */
import fc from 'fast-check';
import type { KernelConfig } from '../kernel/config.js';
import type { Kernel } from '../kernel/kernel.js';
import type { RunResult, Scenario } from './scenario.js';
import { type StrategyName, planArbitrary, strategyOf, ChoiceStrategy } from './strategies.js';
import { Machine } from './machine.js';

export * from './scenario.js';
export * from './strategies.js';
export { pageState, freedWhileMapped } from './detectors.js';
export * from './machine.js';
export * from './format.js';

export interface ExploreOptions {
  schedules: number;
  seed: number;
  strategy: StrategyName;
  config: Partial<KernelConfig>;
  /** PCT depth / preemption bound (default 3). */
  bound?: number;
  /** false: build a fresh machine per schedule instead of restoring a snapshot. */
  snapshot?: boolean;
  onProgress?: (done: number) => void;
  /** Called on the machine before the verbose replay of the minimal failing schedule (attach a tracer there). */
  instrument?: (k: Kernel) => void;
}

export interface ExploreResult {
  scenario: string;
  strategy: StrategyName;
  seed: number;
  /** Schedules run until the first violation (inclusive), or all of them. */
  schedulesRun: number;
  /** Runs spent shrinking the failing schedule. */
  shrinkRuns: number;
  /** The minimal failing run, traced, or null. */
  found: RunResult | null;
  /** Its schedule (relative choices), replayable with --schedule. */
  schedule: number[] | null;
  /** Seconds until the first violation was seen (null when none). */
  secondsToFind: number | null;
  seconds: number;
}

/** Explore a scenario: fast-check generates schedules and shrinks the first failing one. */
export function explore(scenario: Scenario, opts: ExploreOptions): ExploreResult {
  const t0 = performance.now();
  const m = new Machine(scenario, opts.config, { snapshot: opts.snapshot });
  const maxSteps = scenario.maxSteps ?? 16;
  const arb = planArbitrary(opts.strategy, m.threads, maxSteps, opts.bound ?? 3);
  let runs = 0;
  let firstFail = 0;
  let tFirst: number | null = null;
  let want: string | null = null;
  const fails = (r: RunResult): boolean => {
    if (r.violation === null) return false;
    if (want === null) {
      want = r.violation.detector;
      return true;
    }
    return r.violation.detector === want; /* shrink towards the same kind of violation */
  };
  const prop = fc.property(arb, (plan) => {
    runs++;
    if (firstFail === 0 && opts.onProgress && runs % 100 === 0) opts.onProgress(runs);
    const r = m.runSchedule(strategyOf(plan));
    const failed = fails(r);
    if (failed && firstFail === 0) {
      firstFail = runs;
      tFirst = (performance.now() - t0) / 1000;
    }
    return !failed;
  });
  const details = fc.check(prop, { numRuns: opts.schedules, seed: opts.seed, endOnFailure: false, verbose: 0 });
  if (opts.onProgress && firstFail === 0) opts.onProgress(Math.min(runs, opts.schedules));
  let found: RunResult | null = null;
  let schedule: number[] | null = null;
  if (details.failed && details.counterexample) {
    let r = m.runSchedule(strategyOf(details.counterexample[0]));
    if (opts.strategy !== 'random' && m.threads > 1) {
      // Shrink the recorded choices as an explicit schedule too.
      const explicit = fc.array(fc.nat({ max: m.threads - 1 }), { maxLength: Math.max(maxSteps, r.schedule.length) });
      const d2 = fc.check(fc.property(explicit, (c) => {
        runs++;
        return !fails(m.runSchedule(new ChoiceStrategy(c)));
      }), { examples: [[r.schedule]], numRuns: 1, seed: opts.seed, endOnFailure: false, verbose: 0 });
      if (d2.failed && d2.counterexample) r = m.runSchedule(new ChoiceStrategy(d2.counterexample[0]));
    }
    schedule = r.schedule;
    // The printed trace comes from a verbose replay on the same machine.
    found = m.runSchedule(new ChoiceStrategy(schedule), true, opts.instrument ?? null);
  }
  const schedulesRun = firstFail > 0 ? firstFail : Math.min(runs, opts.schedules);
  return {
    scenario: scenario.name, strategy: opts.strategy, seed: opts.seed, schedulesRun,
    shrinkRuns: firstFail > 0 ? runs - firstFail : 0, found, schedule, secondsToFind: tFirst,
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * Determinism check of the snapshot machinery: `n` schedules of the random
 * strategy, each run on a restored machine and on a freshly built one.
 * Returns the first schedule whose results differ (violation or trace), or
 * null.
 */
export function compareWithFresh(scenario: Scenario, cfg: Partial<KernelConfig>, n: number, seed: number): { schedule: number[]; restored: RunResult; fresh: RunResult } | null {
  const restored = new Machine(scenario, cfg);
  const plans = fc.sample(planArbitrary('random', restored.threads, scenario.maxSteps ?? 16), { numRuns: n, seed });
  for (const plan of plans) {
    const a = restored.runSchedule(strategyOf(plan));
    const b = new Machine(scenario, cfg, { snapshot: false }).runSchedule(strategyOf(plan));
    const key = (r: RunResult) => JSON.stringify([r.violation, r.trace.map((t) => [t.task, t.what, t.arg])]);
    if (key(a) !== key(b)) return { schedule: a.schedule, restored: a, fresh: b };
  }
  return null;
}
