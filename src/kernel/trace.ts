// SPDX-License-Identifier: GPL-2.0-only
/**
 * Tracing: what the simulated kernel did, on which simulated thread, when.
 *
 * The model's counterpart of ftrace's function_graph tracer plus a few
 * tracepoints. A Tracer is attached to one machine (`attachTracer(k)`), not
 * to the process: the state lives on the Kernel (`k.tracer`) and, for the
 * lock primitives, which only see the scheduler, on `k.sched.tracer` (the
 * same object). Unattached, every instrumented site costs one branch:
 *
 *     if (k.tracer !== null && k.tracer.enter('migrate_vma_setup'))
 *       return yield* k.tracer.span('migrate_vma_setup', arg, migrateVmaSetup(args));
 *
 * `span()` re-calls the function inside a begin/end pair (`enter()` returns
 * false for that one re-entry, so the body runs once); the end is emitted in
 * a `finally`, so every return and every KernelBug closes the span, and a
 * KernelBug passing through the innermost span is recorded there as a BUG
 * instant. Synchronous functions use `begin()` / `end()` directly.
 *
 * What is recorded (raw, format-free; src/trace/chrome.ts writes Chrome
 * Trace Event JSON for Perfetto):
 *   span     kernel functions (migrate_vma_setup, hmm_range_fault, ...);
 *   instant  scheduler hook points of the explorer (lock, get_page,
 *            pte unlock, ...), lock acquire/release, WARN (a new dmesg
 *            warning) and BUG (a KernelBug);
 *   counter  sampled by `sampler` (set by the tools layer): free device
 *            pages, mapped pages per entry state.
 *
 * Threads: inside a scheduled run the thread is the Task (`sched.cur`);
 * outside one (selftests, run-to-completion) it is the user task the
 * kernel runs for (`k.current`, pid + comm).
 *
 * Clock: a TraceClock gives the time of an event in ticks. StepClock: the
 * explorer's scheduling step (the step being executed), so a trace lines up
 * with the numbered text trace; EventClock: one tick per recorded event
 * (run-to-completion has no steps). A clock of simulated time (nanoseconds
 * of a modelled device or CPU) implements the same interface. Events within
 * one tick keep their order (`seq`).
 */
import type { Sched, SchedTracer } from './sched/sched.js';
import { KernelBug } from './printk.js';

/** The time base of a trace. */
export interface TraceClock {
  /** Current time in ticks (monotonic, non-decreasing). */
  now(): number;
  /** What a tick is: 'step' (explorer scheduling step), 'event', or 'ns' (simulated time). */
  readonly unit: 'step' | 'event' | 'ns';
}

/** Explorer steps: the step in progress while a scheduled run executes, else the last one. */
export class StepClock implements TraceClock {
  readonly unit = 'step';
  constructor(private readonly s: Sched) {}
  now(): number {
    return this.s.exploring ? this.s.trace.length + 1 : this.s.trace.length;
  }
}

/** One tick per event (run-to-completion mode, where there are no steps). */
export class EventClock implements TraceClock {
  readonly unit = 'event';
  n = 0;
  now(): number {
    return this.n++;
  }
}

export type TraceKind = 'B' | 'E' | 'i' | 'C';

/** One recorded event (raw; the writer maps it to the Chrome format). */
export interface TraceEvent {
  kind: TraceKind;
  /** Clock ticks. */
  t: number;
  /** Order of recording (total order of all events). */
  seq: number;
  /** Thread id (task id, or 1000 + pid outside a scheduled run). */
  tid: number;
  name: string;
  /** Category: 'kernel' (spans), 'sched', 'lock', 'page', 'warn', 'bug', 'counter'. */
  cat: string;
  /** A pfn, address or other number, or -1. */
  arg: number;
  /** Counter values (kind 'C'). */
  values?: Record<string, number>;
  /** Free text (a BUG's rule, a WARN's rule). */
  detail?: string;
}

/** Thread ids outside a scheduled run: 1000 + pid of `current`. */
export const CURRENT_TID_BASE = 1000;

/** What the tracer needs from the machine (kept structural: no import of Kernel, which imports this file). */
export interface TracedMachine {
  readonly sched: Sched;
  readonly printk: { readonly warnings: ReadonlyArray<{ rule: string; state: string }> };
  readonly current: { pid: number; comm: string };
  tracer: Tracer | null;
}

export class Tracer implements SchedTracer {
  readonly events: TraceEvent[] = [];
  /** Thread id -> name, as first seen. */
  readonly threads = new Map<number, string>();
  /** Stop recording past this many events (a run-to-completion trace of a big test can be huge). */
  limit = 2_000_000;
  /** Events not recorded because of `limit`. */
  dropped = 0;
  /** Called at each explorer step and at the end of each outermost span: records counters. */
  sampler: ((t: Tracer, at: number | undefined) => void) | null = null;
  private seq = 0;
  private reentry = '';
  private depth = 0;
  private warnSeen = 0;
  private readonly raisedErrors = new WeakSet<object>();
  private m: TracedMachine | null = null;

  constructor(readonly clock: TraceClock) {}

  /** The machine this tracer is attached to (set by attachTracer). */
  get machine(): TracedMachine | null {
    return this.m;
  }

  bind(m: TracedMachine | null): void {
    this.m = m;
    this.warnSeen = m !== null ? m.printk.warnings.length : 0;
  }

  /** The current simulated thread. */
  tid(): number {
    const m = this.m;
    if (m === null) return 0;
    const s = m.sched;
    if (s.cur !== 0) {
      if (!this.threads.has(s.cur)) {
        const t = s.tasks.find((x) => x.id === s.cur);
        this.threads.set(s.cur, t ? t.name : `task ${s.cur}`);
      }
      return s.cur;
    }
    const tid = CURRENT_TID_BASE + m.current.pid;
    if (!this.threads.has(tid)) this.threads.set(tid, m.current.pid === 0 ? 'kernel (boot / no task)' : `${m.current.comm} (pid ${m.current.pid})`);
    return tid;
  }

  private push(kind: TraceKind, name: string, cat: string, arg: number, tid: number, detail?: string, values?: Record<string, number>, at?: number): void {
    if (this.events.length >= this.limit) {
      this.dropped++;
      return;
    }
    const ev: TraceEvent = { kind, t: at ?? this.clock.now(), seq: this.seq++, tid, name, cat, arg };
    if (detail !== undefined) ev.detail = detail;
    if (values !== undefined) ev.values = values;
    this.events.push(ev);
    this.checkWarnings(tid);
  }

  /** A new dmesg warning since the last event becomes a WARN instant on the current thread. */
  private checkWarnings(tid: number): void {
    const m = this.m;
    if (m === null) return;
    const w = m.printk.warnings;
    while (this.warnSeen < w.length) {
      const x = w[this.warnSeen++];
      this.events.push({ kind: 'i', t: this.clock.now(), seq: this.seq++, tid, name: `WARN: ${x.rule}`, cat: 'warn', arg: -1, detail: x.state });
    }
  }

  /** True unless this is the re-entry of a function that span() is running (see the top of the file). */
  enter(name: string): boolean {
    if (this.reentry === name) {
      this.reentry = '';
      return false;
    }
    return true;
  }

  /** Run the generator `g` (a fresh call of the instrumented function) inside a span `name`. */
  *span<T, E>(name: string, arg: number, g: Generator<E, T, void>): Generator<E, T, void> {
    this.begin(name, arg);
    this.reentry = name;
    try {
      return yield* g;
    } catch (e) {
      this.raised(e);
      throw e;
    } finally {
      this.reentry = '';
      this.end(name);
    }
  }

  /** Start of a synchronous or generator kernel function. */
  begin(name: string, arg = -1): void {
    this.depth++;
    this.push('B', name, 'kernel', arg, this.tid());
  }

  /** Its end (every begin has exactly one end). */
  end(name: string): void {
    this.push('E', name, 'kernel', -1, this.tid());
    if (--this.depth === 0 && this.sampler !== null) this.sampler(this, undefined);
  }

  /** An instant event on the current thread. */
  instant(name: string, cat: string, arg = -1, detail?: string): void {
    this.push('i', name, cat, arg, this.tid(), detail);
  }

  /** A lock acquired (`true`) or released (`false`) by the current thread. */
  lock(name: string, acquired: boolean): void {
    this.push('i', `${acquired ? 'acquire' : 'release'} ${name}`, 'lock', -1, this.tid());
  }

  /** A KernelBug (or any exception) raised on the current thread, recorded once. */
  raised(e: unknown): void {
    if (typeof e !== 'object' || e === null || this.raisedErrors.has(e)) return;
    this.raisedErrors.add(e);
    const name = e instanceof KernelBug ? `${e.kind}: ${e.rule}` : `OOPS: ${(e as Error).message ?? String(e)}`;
    this.push('i', name, 'bug', -1, this.tid(), e instanceof KernelBug ? e.state : undefined);
  }

  /** Counter values (one counter track per key) at the current time (or at tick `at`). */
  counter(name: string, values: Record<string, number>, at?: number): void {
    this.push('C', name, 'counter', -1, 0, undefined, values, at);
  }

  /**
   * The end of explorer step `step`: the hook point the task reached (or
   * 'exit'), recorded at that step's time; then the counters are sampled.
   */
  step(step: number, task: number, taskName: string, what: string, arg: number): void {
    if (!this.threads.has(task)) this.threads.set(task, taskName);
    const cat = /^(lock |down_read|down_write|.*unlock)/.test(what) ? 'lock' : /get|put|\bref\b/.test(what) ? 'page' : 'sched';
    this.push('i', what, cat, arg, task, undefined, undefined, step);
    if (this.sampler !== null) this.sampler(this, step);
  }
}

/**
 * Attach a tracer to a machine (replacing any); returns it. A tracer of its
 * own clock may be passed; by default a StepClock.
 */
export function attachTracer(k: TracedMachine, tracer: Tracer = new Tracer(new StepClock(k.sched))): Tracer {
  k.tracer = tracer;
  k.sched.tracer = tracer;
  tracer.bind(k);
  return tracer;
}

/** Detach the machine's tracer (its events stay in the Tracer). */
export function detachTracer(k: TracedMachine): Tracer | null {
  const t = k.tracer;
  k.tracer = null;
  k.sched.tracer = null;
  if (t !== null) t.bind(null);
  return t;
}
