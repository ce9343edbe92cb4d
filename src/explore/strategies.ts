// SPDX-License-Identifier: GPL-2.0-only
/**
 * Schedule generation: the strategies (random relative choices, PCT,
 * preemption bounding) that pick the next thread at every scheduling step
 * and record the relative choices they took (see engine.ts for what a
 * choice means), and the fast-check plans that generate and shrink them.
 */
import fc from 'fast-check';
import type { Strategy, Task } from '../kernel/sched/sched.js';

/** Records the relative choice of every pick (see the top of the file). */
export abstract class RecordingStrategy implements Strategy {
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
