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
import type { Kernel } from '../kernel/kernel.js';
import { type KernelConfig } from '../kernel/config.js';
import { KernelBug } from '../kernel/printk.js';
import type { K, Sched, Strategy, Task, TraceStep } from '../kernel/sched/sched.js';
import { checkInvariants, findFreedWhileMapped } from '../kernel/mm/debug_vm.js';
import { detachTracer } from '../kernel/trace.js';
import { FLAG_NAMES } from '../kernel/mm/page.js';
import { Snapshot } from './snapshot.js';

export interface ScenarioThread {
  name: string;
  body: () => K<unknown>;
}

export interface ScenarioRun {
  k: Kernel;
  threads: ScenarioThread[];
  /**
   * Objects whose state the threads change and the Kernel does not reach
   * (the driver: pgmap ops reach it only through closures; scenario state).
   * They are snapshotted and restored with the machine.
   */
  roots?: object[];
  /** pfns whose state the trace shows when it changes (the pages the race is about). */
  watch?: number[];
  /** A cheap invariant checked after every step: a violation description, or null. */
  invariant?: () => string | null;
  /** Called after all threads finished: a violation description (DATA), or null. */
  check?: () => string | null;
}

export interface Scenario {
  name: string;
  description: string;
  /** Upstream reference of the historical bug: the fixing commit or review thread (subject, id where known) and kernel file:function. */
  seedRef: string;
  /** The historical switch that reintroduces the bug. */
  bugSwitch: string;
  /** The detector expected to fire with the switch on (documentation, --list). */
  expect: string;
  /** Choices generated per schedule (default 16: the scenarios run 4 to 12 steps). */
  maxSteps?: number;
  /** Build a machine and the threads to interleave. Called once per exploration. */
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
  /** Per trace step: the changed state of watched pages (only when traced verbosely). */
  notes: string[];
  /** The relative choices taken, trailing zeros trimmed: replays the run. */
  schedule: number[];
  steps: number;
}

/* ------------------------------------------------------------------------ */
/* strategies                                                                */

/** Records the relative choice of every pick (see the top of the file). */
abstract class RecordingStrategy implements Strategy {
  readonly taken: number[] = [];
  protected last = -1;
  protected tasks: readonly Task[] = [];
  /** The tasks of the run, in spawn order (their slots). */
  init(tasks: readonly Task[]): void {
    this.tasks = tasks;
  }
  pick(runnable: readonly Task[], step: number): number {
    const len = runnable.length;
    let cur = -1;
    for (let i = 0; i < len; i++) if (runnable[i].id === this.last) cur = i;
    const idx = this.choose(runnable, cur, step);
    this.taken.push(len === 1 ? 0 : cur < 0 ? idx : (idx - cur + len) % len);
    this.last = runnable[idx].id;
    return idx;
  }
  protected abstract choose(runnable: readonly Task[], cur: number, step: number): number;
}

/** Plays an explicit relative choice sequence; 0 past its end. */
export class ChoiceStrategy extends RecordingStrategy {
  private i = 0;
  constructor(private readonly choices: readonly number[]) {
    super();
  }
  protected choose(runnable: readonly Task[], cur: number): number {
    const c = this.i < this.choices.length ? this.choices[this.i] : 0;
    this.i++;
    const len = runnable.length;
    return cur < 0 ? c % len : (cur + c) % len;
  }
}

/** PCT: run the highest-priority runnable thread; at each change point the running thread drops below all. */
export class PctStrategy extends RecordingStrategy {
  private readonly prio: number[];
  private readonly changes: Set<number>;
  private low = -1;
  constructor(prio: readonly number[], changes: readonly number[]) {
    super();
    this.prio = prio.slice();
    this.changes = new Set(changes);
  }
  protected choose(runnable: readonly Task[], cur: number, step: number): number {
    if (this.changes.has(step - 1) && cur >= 0) this.prio[this.slot(runnable[cur])] = this.low--;
    let best = 0;
    let bp = -Infinity;
    for (let i = 0; i < runnable.length; i++) {
      const pr = this.prio[this.slot(runnable[i])] ?? 0;
      if (pr > bp) {
        bp = pr;
        best = i;
      }
    }
    return best;
  }
  private slot(t: Task): number {
    return this.tasks.indexOf(t);
  }
}

export type StrategyName = 'random' | 'pct' | 'bounded';
export const STRATEGIES: readonly StrategyName[] = ['random', 'pct', 'bounded'];

/** A generated plan: what fast-check produces and shrinks. */
export type Plan =
  | { kind: 'choices'; choices: number[] }
  | { kind: 'pct'; prio: number[]; changes: number[] };

export function strategyOf(plan: Plan): RecordingStrategy {
  return plan.kind === 'choices' ? new ChoiceStrategy(plan.choices) : new PctStrategy(plan.prio, plan.changes);
}

/**
 * The fast-check arbitrary of plans for a strategy, for `threads` threads
 * and `maxSteps` generated steps; `bound` is the PCT depth or the
 * preemption bound.
 */
export function planArbitrary(strategy: StrategyName, threads: number, maxSteps = 64, bound = 3): fc.Arbitrary<Plan> {
  const t = Math.max(1, threads);
  switch (strategy) {
    case 'random':
      return fc.array(fc.nat({ max: t - 1 }), { maxLength: maxSteps, size: 'max' }).map((choices): Plan => ({ kind: 'choices', choices }));
    case 'pct':
      return fc
        .tuple(fc.array(fc.nat({ max: 1000 }), { minLength: t, maxLength: t }), fc.array(fc.nat({ max: maxSteps - 1 }), { maxLength: bound }))
        .map(([prio, changes]): Plan => ({ kind: 'pct', prio, changes }));
    case 'bounded':
      if (t === 1) return fc.constant<Plan>({ kind: 'choices', choices: [] });
      return fc
        .array(fc.tuple(fc.nat({ max: maxSteps - 1 }), fc.integer({ min: 1, max: t - 1 })), { maxLength: bound, size: 'max' })
        .map((pre): Plan => ({ kind: 'choices', choices: boundedChoices(pre) }));
  }
}

/** Preemption bounding as choices: 0 everywhere except the chosen (step, switch) pairs. */
export function boundedChoices(pre: ReadonlyArray<readonly [number, number]>): number[] {
  let n = 0;
  for (const [s] of pre) n = Math.max(n, s + 1);
  const out = new Array<number>(n).fill(0);
  for (const [s, c] of pre) out[s] = c;
  return out;
}

/* ------------------------------------------------------------------------ */
/* detectors                                                                 */

/** A violation found by a per-step detector: stops the run. */
class DetectorStop extends Error {
  constructor(readonly violation: Violation) {
    super(`${violation.detector}: ${violation.rule}`);
  }
}

/** Compact page state for traces. */
export function pageState(k: Kernel, pfn: number): string {
  const p = k.pages;
  if (pfn <= 0 || pfn >= p.capacity) return `pfn 0x${pfn.toString(16)}: no struct page`;
  const head = p.folioPfn(pfn);
  const flags = FLAG_NAMES.filter(([b]) => (p.flags[pfn] & b) !== 0).map(([, n]) => n);
  let s = `pfn 0x${pfn.toString(16)} ref:${p.refcount[head]} map:${p.mapcount[pfn]}${p.pincount[head] ? ` pin:${p.pincount[head]}` : ''} ${flags.join('|') || '-'}`;
  const g = p.pgmap[pfn];
  if (g !== 0) {
    const pg = k.pgmaps[g];
    if (pg) s += ` pgmap#${g}:ref ${pg.refCount}${pg.dead ? ' DEAD' : pg.dying ? ' dying' : ''}`;
  }
  return s;
}

/**
 * Per-step: a page that is free (buddy or returned to its driver) or whose
 * pgmap is gone must not be mapped by any page table entry under a VMA of a
 * live mm (entries outside every VMA are covered by the end-of-run
 * invariants). The walk is checked mode's findFreedWhileMapped(); this
 * formats what it finds as a violation, or returns null.
 */
export function freedWhileMapped(k: Kernel): Violation | null {
  const bad = findFreedWhileMapped(k, true);
  if (bad === null) return null;
  const rule = bad.huge
    ? `page freed while mapped: folio 0x${bad.pfn.toString(16)} is free but mm #${bad.mm.id} still maps it with a PMD`
    : `page freed while mapped: pfn 0x${bad.pfn.toString(16)} is free but mm #${bad.mm.id} still maps it at 0x${bad.addr.toString(16)}`;
  return { detector: 'INVARIANT', rule, state: k.dumpPage(bad.pfn, 'page freed while mapped') };
}

/** Per-step: memunmap_pages() must not have finished while pages of the pgmap are allocated. */
function pgmapLifetime(k: Kernel): Violation | null {
  for (const g of k.pgmaps) {
    if (g === null || !g.dead || g.allocated <= 0) continue;
    return {
      detector: 'INVARIANT',
      rule: `memunmap_pages(pgmap #${g.id}) finished with ${g.allocated} device page(s) still in use: their struct pages and pgmap are freed under their users`,
      state: `pgmap #${g.id} type:${g.typeName()} ref:${g.refCount} allocated:${g.allocated} DEAD`,
    };
  }
  return null;
}

/** A number that changes whenever a page is freed (buddy frees, device pages returned to their driver). */
function freeCount(k: Kernel): number {
  let n = (Math.imul(k.buddy.stat.free0, 7) + k.buddy.stat.free9) | 0;
  for (const g of k.pgmaps) if (g !== null) n = (Math.imul(n, 1000003) + g.allocated * 2 + (g.dead ? 1 : 0)) | 0;
  return n;
}

function violationOf(e: unknown): Violation {
  if (e instanceof DetectorStop) return e.violation;
  if (e instanceof KernelBug) return { detector: e.kind, rule: e.rule, state: e.state };
  const err = e instanceof Error ? e : new Error(String(e));
  const where = (err.stack ?? '').split('\n').slice(1, 4).map((l) => l.trim()).join('\n');
  return { detector: 'OOPS', rule: `${err.name}: ${err.message}`, state: where };
}

/* ------------------------------------------------------------------------ */
/* machines                                                                  */

export interface MachineOptions {
  /** Build once and restore a snapshot per schedule (default); false: a fresh setup per schedule. */
  snapshot?: boolean;
}

/** A scenario's machine, reusable across schedules. */
export class Machine {
  private run: ScenarioRun;
  private readonly snap: Snapshot | null;
  private used = false;
  private warn0 = 0;

  constructor(readonly scenario: Scenario, readonly cfg: Partial<KernelConfig>, opts: MachineOptions = {}) {
    this.run = scenario.setup(cfg);
    this.warn0 = this.run.k.printk.warnings.length;
    this.snap = opts.snapshot === false ? null : new Snapshot([this.run.k, ...(this.run.roots ?? [])]);
  }

  get threads(): number {
    return this.run.threads.length;
  }

  get kernel(): Kernel {
    return this.run.k;
  }

  /**
   * Run one schedule; `verbose` records the watched pages' state per step.
   * `instrument`, if given, is called with the machine after it is restored
   * and before the first step (to attach a tracer: src/kernel/trace.ts); the
   * machine's tracer is detached after the run.
   */
  runSchedule(strategy: RecordingStrategy, verbose = false, instrument: ((k: Kernel) => void) | null = null): RunResult {
    if (this.used) {
      if (this.snap !== null) this.snap.restore();
      else {
        this.run = this.scenario.setup(this.cfg);
        this.warn0 = this.run.k.printk.warnings.length;
      }
    }
    this.used = true;
    const run = this.run;
    const k = run.k;
    const s = k.sched;
    const tasks = run.threads.map((t) => s.spawn(t.name, t.body()));
    strategy.init(tasks);
    const notes: string[] = [];
    const watch = run.watch ?? [];
    let lastNote = '';
    const warn0 = this.warn0;
    let lastFrees = freeCount(k);
    if (instrument !== null) instrument(k);
    s.onStep = (sc: Sched) => {
      if (verbose) {
        const note = watch.map((pfn) => pageState(k, pfn)).join('; ');
        notes[sc.trace.length - 1] = note !== lastNote ? note : '';
        lastNote = note;
      }
      if (k.printk.warnings.length > warn0) {
        const w = k.printk.warnings[warn0];
        throw new DetectorStop({ detector: 'WARN', rule: w.rule, state: w.state });
      }
      // Pages are freed to the buddy allocator or back to their driver: scan
      // the page tables for a freed page still mapped only after a free
      // (a mapping of an already free page is caught by the KASAN checks of
      // the mapping paths and by the end-of-run invariants).
      const frees = freeCount(k);
      if (frees !== lastFrees) {
        lastFrees = frees;
        const v = pgmapLifetime(k) ?? freedWhileMapped(k);
        if (v !== null) throw new DetectorStop(v);
      }
      if (run.invariant) {
        const msg = run.invariant();
        if (msg !== null) throw new DetectorStop({ detector: 'INVARIANT', rule: msg, state: '' });
      }
    };
    let violation: Violation | null = null;
    try {
      s.run(strategy);
    } catch (e) {
      violation = violationOf(e);
      if (k.tracer !== null && !(e instanceof DetectorStop)) k.tracer.raised(e);
      else if (k.tracer !== null && violation !== null) k.tracer.instant(`${violation.detector}: ${violation.rule}`, violation.detector === 'WARN' ? 'warn' : 'bug', -1, violation.state);
    } finally {
      s.onStep = null;
    }
    const trace = s.trace;
    // The step during which a thread raised the violation never reached a
    // hook point: record it, so the trace ends where the violation happened.
    for (const t of tasks) {
      if (t.state === 'failed' && violation !== null) {
        trace.push({ step: trace.length + 1, task: t.id, taskName: t.name, what: `${violation.detector} raised here (after ${t.last || 'start'})`, arg: -1 });
        if (verbose) notes[trace.length - 1] = watch.map((pfn) => pageState(k, pfn)).join('; ');
      }
    }
    if (violation === null) {
      try {
        checkInvariants(k, `scenario ${this.scenario.name}`);
      } catch (e) {
        violation = violationOf(e);
      }
    }
    if (violation === null && run.check) {
      try {
        const msg = run.check();
        if (msg !== null) violation = { detector: 'DATA', rule: msg, state: '' };
      } catch (e) {
        violation = violationOf(e);
      }
    }
    if (instrument !== null) {
      if (violation !== null && k.tracer !== null && !k.tracer.events.some((e) => e.cat === 'bug' || e.cat === 'warn')) k.tracer.instant(`${violation.detector}: ${violation.rule}`, 'bug', -1, violation.state);
      detachTracer(k);
    }
    const schedule = strategy.taken.slice();
    while (schedule.length > 0 && schedule[schedule.length - 1] === 0) schedule.pop();
    return { violation, trace, notes, schedule, steps: trace.length };
  }
}

/** Run one explicit schedule of a scenario on a freshly built machine. */
export function runOnce(scenario: Scenario, cfg: Partial<KernelConfig>, choices: readonly number[], opts: { verbose?: boolean; instrument?: (k: Kernel) => void } = {}): RunResult {
  const m = new Machine(scenario, cfg, { snapshot: false });
  return m.runSchedule(new ChoiceStrategy(choices), opts.verbose ?? true, opts.instrument ?? null);
}

/* ------------------------------------------------------------------------ */
/* exploration                                                               */

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

/** The numbered trace of a run, as the explorer prints it. */
export function formatTrace(r: RunResult): string {
  const lines: string[] = [];
  const w = Math.max(8, ...r.trace.map((s) => `[${s.task}:${s.taskName}]`.length));
  for (let i = 0; i < r.trace.length; i++) {
    const s = r.trace[i];
    const who = `[${s.task}:${s.taskName}]`.padEnd(w);
    const arg = s.arg >= 0 ? ` (0x${s.arg.toString(16)})` : '';
    const note = r.notes[i] ? `\n${' '.repeat(6 + w + 2)}| ${r.notes[i]}` : '';
    lines.push(`${String(s.step).padStart(4)}  ${who}  ${s.what}${arg}${note}`);
  }
  if (r.violation) {
    lines.push(`  !!  ${r.violation.detector}: ${r.violation.rule}`);
    if (r.violation.state) lines.push(...r.violation.state.split('\n').map((l) => `      ${l}`));
  }
  return lines.join('\n');
}
