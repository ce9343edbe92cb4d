// SPDX-License-Identifier: GPL-2.0-only
/**
 * Simulated threads and the deterministic scheduler hook points.
 *
 * The mechanism: every kernel path that can block or race (faults, migration,
 * munmap, fork, ioctls, GUP, device release) is a generator function of type
 * `K<T>`. It runs on a Task. At the places where the kernel can be preempted
 * or can sleep (lock acquire/release, get/put of device pages and pgmap
 * references, dropped locks, waits) it does
 *
 *     if (s.exploring) yield s.point('ptl unlock', pfn);
 *
 * or calls a blocking primitive (`yield* waitUntil(...)`, `yield* mutexLock(...)`).
 *
 * Run to completion (selftests, benchmarks): `s.exploring` is false, no yield
 * happens at a hook point, and runSync() just drives the generator. The cost
 * is one branch per hook point and one generator object per call of a
 * blocking path; hook points sit at lock boundaries, never per byte.
 *
 * Exploring (the explorer, multi-threaded tests): several Tasks exist;
 * `Sched.run()` resumes one Task at a time, chosen by a strategy, at each
 * yielded point. A wait that is not satisfied yields a `block` event and the
 * task is not runnable until its condition holds. When no task is runnable
 * the run ends in a DEADLOCK (or HANG when the wait can never finish).
 *
 * In run-to-completion mode a wait whose condition is false can never become
 * true (there is nobody else to run), so it is reported as a HANG KernelBug
 * naming the wait: this is how memunmap_pages() with pages still allocated is
 * detected instead of hanging the test run.
 */
import { KernelBug } from '../printk.js';
import type { Lockdep } from './lockdep.js';

/** What a kernel generator yields to the scheduler. */
export interface SchedEvent {
  /**
   * 'point': the thread may be switched out here; 'block': it cannot go on
   * until `cond` holds; 'yield': it is retrying something another thread
   * must change first (a fault that found its page locked): the next
   * scheduling step runs some other runnable thread if there is one
   * (sched_yield), so a schedule cannot starve the thread it waits for.
   */
  kind: 'point' | 'block' | 'yield';
  /** What happens here: 'ptl lock', 'get_page', 'migrate_to_ram', ... */
  what: string;
  /** A pfn, address or other number describing the state, or -1. */
  arg: number;
  /** For 'block': the condition that makes the task runnable again. */
  cond: (() => boolean) | null;
}

/** A kernel path that may be preempted or block, returning T. */
export type K<T = void> = Generator<SchedEvent, T, void>;

export type TaskState = 'runnable' | 'blocked' | 'done' | 'failed';

export class Task {
  state: TaskState = 'runnable';
  result: unknown = undefined;
  error: unknown = undefined;
  waitCond: (() => boolean) | null = null;
  waitWhat = '';
  /** Kernel function / event last reached (for traces). */
  last = '';
  /** The last event was a 'yield': skip this thread at the next pick if another can run. */
  yielded = false;
  constructor(
    readonly id: number,
    readonly name: string,
    readonly gen: K<unknown>,
  ) {}
}

/** One step of a schedule, as recorded for traces and replays. */
export interface TraceStep {
  step: number;
  task: number;
  taskName: string;
  what: string;
  arg: number;
}

/**
 * What the scheduler and the lock primitives report to an attached tracer
 * (src/kernel/trace.ts Tracer; declared here so this file imports nothing of it).
 */
export interface SchedTracer {
  /** Step `step` ended with task `task` at hook point `what`. */
  step(step: number, task: number, taskName: string, what: string, arg: number): void;
  /** A lock acquired or released by the current thread. */
  lock(name: string, acquired: boolean): void;
}

/** Chooses the next task among the runnable ones. */
export interface Strategy {
  /** Return an index into `runnable`. */
  pick(runnable: readonly Task[], step: number): number;
}

export class Sched {
  /** True while a multi-task run is in progress: hook points yield. */
  exploring = false;
  /** The task now running; 0 when running outside any task (boot, sync calls). */
  cur = 0;
  tasks: Task[] = [];
  private nextId = 1;
  /** Recorded steps of the current run (only while exploring). */
  trace: TraceStep[] = [];
  /** Called after each step while exploring (the explorer's detectors). */
  onStep: ((s: Sched) => void) | null = null;
  /** Bound on steps per run before reporting a livelock. */
  maxSteps = 200000;
  /** The machine's tracer (the same object as Kernel.tracer), or null: see src/kernel/trace.ts. */
  tracer: SchedTracer | null = null;
  /** Checked mode: the lock validator (lockdep.ts); null otherwise. */
  lockdep: Lockdep | null = null;

  /** A hook-point event. Only called when `exploring` is true. */
  point(what: string, arg = -1): SchedEvent {
    return { kind: 'point', what, arg, cond: null };
  }

  /** A retry point: as point(), and the next step goes to another runnable thread if any. */
  yieldPoint(what: string, arg = -1): SchedEvent {
    return { kind: 'yield', what, arg, cond: null };
  }

  /** Create a task for a kernel path; it runs when run() is called. */
  spawn(name: string, gen: K<unknown>): Task {
    const t = new Task(this.nextId++, name, gen);
    this.tasks.push(t);
    return t;
  }

  /**
   * Run all spawned tasks to completion under `strategy`, one at a time,
   * switching at every yielded point. Throws the first KernelBug a task
   * raises (with the trace so far available in `this.trace`), or a DEADLOCK /
   * HANG KernelBug when no task can run.
   */
  run(strategy: Strategy): void {
    this.exploring = true;
    this.trace = [];
    let step = 0;
    const runnable: Task[] = [];
    try {
      for (;;) {
        runnable.length = 0;
        let live = 0;
        for (const t of this.tasks) {
          if (t.state === 'blocked' && t.waitCond !== null && t.waitCond()) {
            t.state = 'runnable';
            t.waitCond = null;
          }
          if (t.state === 'runnable') runnable.push(t);
          if (t.state === 'runnable' || t.state === 'blocked') live++;
        }
        if (live === 0) break;
        if (runnable.length === 0) {
          const waits = this.tasks.filter((t) => t.state === 'blocked').map((t) => `task ${t.id} (${t.name}) waits in ${t.waitWhat}`);
          const kind = this.tasks.filter((t) => t.state === 'blocked').length === 1 ? 'HANG' : 'DEADLOCK';
          throw new KernelBug(kind, kind === 'HANG' ? `wait that can never finish: ${waits[0]}` : 'every simulated thread is blocked', waits.join('\n'));
        }
        if (++step > this.maxSteps) throw new KernelBug('HANG', `no progress after ${this.maxSteps} scheduling steps (livelock)`);
        // A thread that yielded sits out one pick while another can run.
        let pool = runnable;
        if (runnable.length > 1 && runnable.some((x) => x.yielded) && runnable.some((x) => !x.yielded)) pool = runnable.filter((x) => !x.yielded);
        for (const x of runnable) x.yielded = false;
        const t = pool[strategy.pick(pool, step)];
        this.cur = t.id;
        let r: IteratorResult<SchedEvent, unknown>;
        try {
          r = t.gen.next();
        } catch (e) {
          t.state = 'failed';
          t.error = e;
          throw e;
        }
        if (r.done) {
          t.state = 'done';
          t.result = r.value;
          this.trace.push({ step, task: t.id, taskName: t.name, what: 'exit', arg: -1 });
          if (this.tracer !== null) this.tracer.step(step, t.id, t.name, 'exit', -1);
          if (this.lockdep !== null) this.lockdep.taskExit(t.id);
        } else {
          const ev = r.value;
          t.last = ev.what;
          this.trace.push({ step, task: t.id, taskName: t.name, what: ev.what, arg: ev.arg });
          if (this.tracer !== null) this.tracer.step(step, t.id, t.name, ev.what, ev.arg);
          if (ev.kind === 'block') {
            t.state = 'blocked';
            t.waitCond = ev.cond;
            t.waitWhat = ev.what;
          } else if (ev.kind === 'yield') t.yielded = true;
        }
        if (this.onStep) this.onStep(this);
      }
    } finally {
      if (this.lockdep !== null) this.lockdep.forgetTasks();
      this.exploring = false;
      this.cur = 0;
      this.tasks = [];
    }
  }
}

/**
 * Drive a kernel path to completion outside the scheduler (the fast path).
 * A yielded point is ignored; a block means the wait can never finish.
 * When the path throws (a KernelBug: the task oopsed or hung) the locks it
 * holds stay held, by a task that is gone: lockdep moves them off the
 * running thread's stack (Lockdep.oops()).
 */
export function runSync<T>(s: Sched, g: K<T>): T {
  if (s.exploring) throw new KernelBug('BUG', 'runSync() called while the scheduler is exploring: use yield* inside a task');
  try {
    for (;;) {
      const r = g.next();
      if (r.done) return r.value;
      if (r.value.kind === 'block') {
        throw new KernelBug('HANG', `wait that can never finish: ${r.value.what}`, 'no other simulated thread can make progress (run-to-completion mode)');
      }
    }
  } catch (e) {
    // The path died (oops, HANG): the locks it holds stay held, by a dead task (lockdep).
    if (s.lockdep !== null) s.lockdep.oops();
    throw e;
  }
}

/**
 * Block until `cond()` holds (wait_event(), wait_on_page_locked(), ...).
 * A might_sleep() point: checked mode reports a wait under a spinlock.
 * Outside a scheduled run nobody else can make the condition true, so an
 * unsatisfied wait is a HANG.
 */
export function* waitUntil(s: Sched, what: string, cond: () => boolean, arg = -1): K<void> {
  if (s.lockdep !== null) s.lockdep.mightSleep(what);
  while (!cond()) {
    if (!s.exploring) throw new KernelBug('HANG', `wait that can never finish: ${what}`, 'no other simulated thread can make progress (run-to-completion mode)');
    yield { kind: 'block', what, arg, cond };
  }
}

/** Round-robin / seeded-random strategies used outside the explorer. */
export class RandomStrategy implements Strategy {
  private x: number;
  constructor(seed: number) {
    this.x = (seed >>> 0) || 0x9e3779b9;
  }
  next(): number {
    // xorshift32
    let x = this.x;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.x = x;
    return x;
  }
  pick(runnable: readonly Task[]): number {
    return this.next() % runnable.length;
  }
}
