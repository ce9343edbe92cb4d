// SPDX-License-Identifier: GPL-2.0-only
/**
 * A scenario's machine: built once, snapshotted, restored in place before
 * every schedule (src/explore/snapshot.ts); one schedule run with the
 * detectors after every step and the end-of-run checks.
 */
import type { Kernel } from '../kernel/kernel.js';
import type { KernelConfig } from '../kernel/config.js';
import type { Sched } from '../kernel/sched/sched.js';
import { checkInvariants } from '../kernel/mm/debug_vm.js';
import { detachTracer } from '../kernel/trace.js';
import { Snapshot } from './snapshot.js';
import type { RunResult, Scenario, ScenarioRun, Violation } from './scenario.js';
import { ChoiceStrategy, type RecordingStrategy } from './strategies.js';
import { DetectorStop, freeCount, freedWhileMapped, pageState, pgmapLifetime, violationOf } from './detectors.js';

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
