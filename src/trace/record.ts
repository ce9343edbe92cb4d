// SPDX-License-Identifier: GPL-2.0-only
/**
 * Recorded runs: what `hmmsim explore --record FILE` writes and `hmmsim
 * report --from-record FILE` reads (format documented in docs/REPORT.md).
 *
 * A recording is one traced, verbose run of an explorer scenario under one
 * schedule: the numbered steps (thread, hook point, watched page state), the
 * violation, and a page map of every live address space after every step
 * (frame 0 is the machine before the first step), read from the page
 * tables (src/trace/pagemap.ts). The same run's Tracer is returned so the
 * caller can also write a Chrome trace of it.
 */
import type { Kernel } from '../kernel/kernel.js';
import type { KernelConfig } from '../kernel/config.js';
import { Tracer, StepClock, attachTracer } from '../kernel/trace.js';
import { type RunResult, type Scenario, type Violation, runOnce } from '../explore/engine.js';
import { type SpaceLayout, layoutOf, pageCodes, sampleCounters, stateName } from './pagemap.js';

export const RECORD_FORMAT = 'hmmsim-run';
export const RECORD_VERSION = 1;

export interface RecordedStep {
  step: number;
  task: number;
  thread: string;
  what: string;
  arg: number | null;
  /** The watched pages' state after the step when it changed (the text trace's "|" line). */
  note: string | null;
}

export interface RecordedFrame {
  /** The step after which the map was read (0: before the first step). */
  step: number;
  /** Per space (same order as `spaces`), one character per page: the state code in base 36. */
  maps: string[];
}

export interface RecordedRun {
  format: typeof RECORD_FORMAT;
  version: number;
  kind: 'explore';
  scenario: string;
  description: string;
  expect: string;
  config: string[];
  schedule: number[];
  replay: string;
  violation: Violation | null;
  threads: Array<{ id: number; name: string }>;
  steps: RecordedStep[];
  spaces: SpaceLayout[];
  frames: RecordedFrame[];
  /** State code -> name, for every code that occurs. */
  states: Record<string, string>;
}

/** Encode page codes as a string (one base-36 digit per page; codes are < 36). */
export function encodeCodes(codes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < codes.length; i++) s += codes[i].toString(36);
  return s;
}

/** A recorder: attach it with `instrument` (engine runSchedule / runOnce / explore), read `tracer` and `finish()` after. */
export class RunRecorder {
  tracer: Tracer | null = null;
  readonly spaces: SpaceLayout[] = [];
  readonly frames: RecordedFrame[] = [];
  private readonly codesSeen = new Set<number>();
  private k: Kernel | null = null;

  /** Attach a tracer (StepClock, counters) and the page-map sampler to `k`. */
  readonly instrument = (k: Kernel): void => {
    const tr = attachTracer(k, new Tracer(new StepClock(k.sched)));
    this.tracer = tr;
    this.k = k;
    sampleCounters(tr, k);
    const counters = tr.sampler!;
    this.frame(k, 0);
    tr.sampler = (t, at) => {
      counters(t, at);
      if (at !== undefined) this.frame(k, at);
    };
  };

  private frame(k: Kernel, step: number): void {
    for (const l of layoutOf(k)) {
      if (!this.spaces.some((s) => s.mm === l.mm)) this.spaces.push(l);
    }
    const maps = this.spaces.map((l) => {
      const codes = pageCodes(k, l);
      for (const c of codes) this.codesSeen.add(c);
      return encodeCodes(codes);
    });
    // One frame per step: a later sample of the same step replaces the earlier one.
    if (this.frames.length > 0 && this.frames[this.frames.length - 1].step === step) this.frames.pop();
    this.frames.push({ step, maps });
  }

  /** The recording of run `r` of scenario `sc`. */
  finish(sc: Scenario, flat: string[], r: RunResult): RecordedRun {
    // The step where a thread raised the violation is added to the trace
    // after the run (engine.ts): its page map is the machine as it was left.
    const lastStep = r.trace.length > 0 ? r.trace[r.trace.length - 1].step : 0;
    if (this.k !== null && (this.frames.length === 0 || this.frames[this.frames.length - 1].step < lastStep)) this.frame(this.k, lastStep);
    const threads = new Map<number, string>();
    for (const s of r.trace) threads.set(s.task, s.taskName);
    const cfgArgs = flat.map((c) => ` --config ${c}`).join('');
    const states: Record<string, string> = {};
    for (const c of [...this.codesSeen].sort((a, b) => a - b)) states[String(c)] = stateName(c);
    // Frames that have fewer maps (a space appeared later) are padded with 'none'.
    const frames = this.frames.map((f) => ({ step: f.step, maps: this.spaces.map((l, i) => f.maps[i] ?? '0'.repeat(l.pages)) }));
    return {
      format: RECORD_FORMAT, version: RECORD_VERSION, kind: 'explore', scenario: sc.name, description: sc.description, expect: sc.expect,
      config: flat, schedule: r.schedule, replay: `hmmsim explore ${sc.name}${cfgArgs} --schedule ${r.schedule.join(',') || '0'}`,
      violation: r.violation,
      threads: [...threads].map(([id, name]) => ({ id, name })),
      steps: r.trace.map((s, i) => ({ step: s.step, task: s.task, thread: s.taskName, what: s.what, arg: s.arg >= 0 ? s.arg : null, note: r.notes[i] || null })),
      spaces: this.spaces, frames, states,
    };
  }
}

/** Check that `x` is a recording this version reads; returns it or throws a message naming the problem. */
export function parseRecord(x: unknown, file: string): RecordedRun {
  const r = x as Partial<RecordedRun> | null;
  if (r === null || typeof r !== 'object' || r.format !== RECORD_FORMAT) throw new Error(`${file}: not an hmmsim recording (no "format": "${RECORD_FORMAT}"); write one with: hmmsim explore <scenario> --record ${file}`);
  if (r.version !== RECORD_VERSION) throw new Error(`${file}: recording version ${String(r.version)}, this hmmsim reads version ${RECORD_VERSION}`);
  if (!Array.isArray(r.steps) || !Array.isArray(r.frames) || !Array.isArray(r.spaces)) throw new Error(`${file}: recording without steps, frames or spaces`);
  return r as RecordedRun;
}

/** Record one schedule of a scenario on a fresh machine (tracer + page maps). */
export function recordSchedule(sc: Scenario, cfg: Partial<KernelConfig>, flat: string[], choices: readonly number[]): { rec: RecordedRun; tracer: Tracer; run: RunResult } {
  const rr = new RunRecorder();
  const run = runOnce(sc, cfg, choices, { instrument: rr.instrument });
  return { rec: rr.finish(sc, flat, run), tracer: rr.tracer!, run };
}

