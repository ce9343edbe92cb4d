// SPDX-License-Identifier: GPL-2.0-only
/**
 * The interleaving explorer: run a scenario's simulated threads under many
 * schedules, stop at the first violation, shrink it to a minimal schedule
 * and print a numbered trace with the command that replays it.
 *
 * A schedule is a sequence of choices, one per scheduling step: the index
 * (modulo the number of runnable threads) of the thread to resume. fast-check
 * generates the sequences and shrinks a failing one (shorter, smaller
 * choices: fewer preemptions), so the reported interleaving is minimal in
 * fast-check's sense. Strategies shape the generated sequences:
 *   random   uniform choices at every step;
 *   pct      probabilistic concurrency testing: a random priority per thread
 *            and d priority-change points (Burckhardt et al., ASPLOS 2010);
 *   bounded  preemption bounding: run the current thread until it blocks or
 *            ends, except at up to `bound` chosen steps.
 * All three reduce to an explicit choice sequence, which is what replays.
 *
 * Detectors: every KernelBug a thread raises (KASAN use-after-free of a page
 * or pgmap, REFCOUNT underflow, BUG, LOCKDEP, HANG: a wait that can never
 * finish, DEADLOCK: every thread blocked), WARNs in dmesg, checked-mode
 * invariants after the run, and the scenario's own end check (e.g. shadow
 * memory: data lost).
 */
import fc from 'fast-check';
import { Kernel } from '../kernel/kernel.js';
import { type KernelConfig } from '../kernel/config.js';
import { KernelBug } from '../kernel/printk.js';
import type { K, Strategy, Task, TraceStep } from '../kernel/sched/sched.js';
import { checkInvariants } from '../kernel/mm/debug_vm.js';

export interface ScenarioThread {
  name: string;
  body: () => K<unknown>;
}

export interface ScenarioRun {
  k: Kernel;
  threads: ScenarioThread[];
  /** Called after all threads finished: a violation description, or null. */
  check?: () => string | null;
}

export interface Scenario {
  name: string;
  description: string;
  /** Seed reference of the historical bug (seed inventory section 3). */
  seedRef: string;
  /** The historical switch that reintroduces the bug. */
  bugSwitch: string;
  /** Build a fresh machine and the threads to interleave. */
  setup(cfg: Partial<KernelConfig>): ScenarioRun;
}

export interface Violation {
  detector: string;
  rule: string;
  state: string;
}

export interface RunResult {
  violation: Violation | null;
  trace: TraceStep[];
  /** The choices actually used, normalised to runnable indexes (replayable). */
  schedule: number[];
  steps: number;
}

/** Plays an explicit choice sequence; beyond its end, keeps the current thread if it can. */
export class ChoiceStrategy implements Strategy {
  private i = 0;
  private lastTask = -1;
  readonly taken: number[] = [];
  constructor(private readonly choices: readonly number[]) {}
  pick(runnable: readonly Task[]): number {
    let idx: number;
    if (this.i < this.choices.length) idx = this.choices[this.i] % runnable.length;
    else {
      idx = runnable.findIndex((t) => t.id === this.lastTask);
      if (idx < 0) idx = 0;
    }
    this.i++;
    this.taken.push(idx);
    this.lastTask = runnable[idx].id;
    return idx;
  }
}

/** Run one schedule of a scenario. */
export function runOnce(scenario: Scenario, cfg: Partial<KernelConfig>, choices: readonly number[], opts: { invariants?: boolean } = {}): RunResult {
  const run = scenario.setup(cfg);
  const k = run.k;
  for (const t of run.threads) k.sched.spawn(t.name, t.body());
  const strat = new ChoiceStrategy(choices);
  let violation: Violation | null = null;
  try {
    k.sched.run(strat);
  } catch (e) {
    if (!(e instanceof KernelBug)) throw e;
    violation = { detector: e.kind, rule: e.rule, state: e.state };
  }
  if (violation === null && k.printk.warnings.length > 0) {
    const w = k.printk.warnings[0];
    violation = { detector: 'WARN', rule: w.rule, state: w.state };
  }
  if (violation === null && opts.invariants !== false) {
    try {
      checkInvariants(k, `scenario ${scenario.name}`);
    } catch (e) {
      if (!(e instanceof KernelBug)) throw e;
      violation = { detector: e.kind, rule: e.rule, state: e.state };
    }
  }
  if (violation === null && run.check) {
    const msg = run.check();
    if (msg !== null) violation = { detector: 'DATA', rule: msg, state: '' };
  }
  return { violation, trace: k.sched.trace, schedule: strat.taken, steps: strat.taken.length };
}

export type StrategyName = 'random' | 'pct' | 'bounded';

/** The fast-check arbitrary producing choice sequences for a strategy. */
export function scheduleArbitrary(strategy: StrategyName, maxSteps = 256, threads = 4, bound = 3): fc.Arbitrary<number[]> {
  switch (strategy) {
    case 'random':
      return fc.array(fc.nat({ max: threads - 1 }), { maxLength: maxSteps });
    case 'pct':
      // Priorities per thread plus d change points; materialised as choices
      // by pctChoices() once the run's width is known. Encoded as a prefix:
      // [d, prio0..prio(threads-1), change points...].
      return fc
        .tuple(fc.array(fc.nat({ max: 1000 }), { minLength: threads, maxLength: threads }), fc.array(fc.nat({ max: maxSteps }), { maxLength: bound }))
        .map(([prio, changes]) => pctChoices(prio, changes, maxSteps));
    case 'bounded':
      return fc
        .array(fc.tuple(fc.nat({ max: maxSteps - 1 }), fc.nat({ max: threads - 1 })), { maxLength: bound })
        .map((pre) => boundedChoices(pre, maxSteps));
  }
}

/**
 * PCT as choices: at each step run the highest-priority thread; at a change
 * point the running thread's priority drops below all others. Choices are
 * expressed over thread slots, which ChoiceStrategy maps modulo the
 * runnable count (an approximation when threads block).
 */
export function pctChoices(prio: number[], changes: number[], maxSteps: number): number[] {
  const p = prio.slice();
  const out: number[] = [];
  let low = -1;
  const cp = new Set(changes);
  for (let s = 0; s < maxSteps; s++) {
    let best = 0;
    for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
    out.push(best);
    if (cp.has(s)) p[best] = low--;
  }
  return out;
}

/** Preemption bounding as choices: stay on thread 0's slot except at chosen steps. */
export function boundedChoices(pre: Array<[number, number]>, maxSteps: number): number[] {
  const out: number[] = [];
  const at = new Map(pre);
  let cur = 0;
  for (let s = 0; s < maxSteps; s++) {
    const to = at.get(s);
    if (to !== undefined) cur = to;
    out.push(cur);
  }
  return out;
}

export interface ExploreOptions {
  schedules: number;
  seed: number;
  strategy: StrategyName;
  config: Partial<KernelConfig>;
  onProgress?: (done: number) => void;
}

export interface ExploreResult {
  scenario: string;
  schedulesRun: number;
  found: RunResult | null;
  /** The shrunk choice sequence that reproduces the violation. */
  schedule: number[] | null;
  seconds: number;
}

/** Explore a scenario: fast-check generates schedules and shrinks the first failing one. */
export function explore(scenario: Scenario, opts: ExploreOptions): ExploreResult {
  const t0 = performance.now();
  let runs = 0;
  const prop = fc.property(scheduleArbitrary(opts.strategy), (choices) => {
    runs++;
    if (opts.onProgress && runs % 100 === 0) opts.onProgress(runs);
    return runOnce(scenario, opts.config, choices).violation === null;
  });
  const details = fc.check(prop, { numRuns: opts.schedules, seed: opts.seed, endOnFailure: false, verbose: 0 });
  let found: RunResult | null = null;
  let schedule: number[] | null = null;
  if (details.failed && details.counterexample) {
    const r = runOnce(scenario, opts.config, details.counterexample[0]);
    found = r;
    schedule = r.schedule;
  }
  return { scenario: scenario.name, schedulesRun: Math.min(runs, opts.schedules), found, schedule, seconds: (performance.now() - t0) / 1000 };
}

/** The numbered trace of a run, as the explorer prints it. */
export function formatTrace(r: RunResult): string {
  const lines: string[] = [];
  for (const s of r.trace) {
    lines.push(`${String(s.step).padStart(4)}  [${s.task}:${s.taskName}]  ${s.what}${s.arg >= 0 ? ` (0x${s.arg.toString(16)})` : ''}`);
  }
  if (r.violation) {
    lines.push(`  !!  ${r.violation.detector}: ${r.violation.rule}`);
    if (r.violation.state) lines.push(...r.violation.state.split('\n').map((l) => `      ${l}`));
  }
  return lines.join('\n');
}
