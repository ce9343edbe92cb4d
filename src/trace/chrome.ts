// SPDX-License-Identifier: GPL-2.0-only
/**
 * Chrome Trace Event JSON (the format Perfetto's UI and chrome://tracing
 * open) from a Tracer's events, serialised with the chrome-trace-event
 * package (the Trace Event writer webpack uses).
 *
 * Layout of the trace:
 *   process 1 "hmmsim: <label>"; one thread track per simulated thread
 *   (explorer tasks by task id; outside a scheduled run, 1000 + pid of
 *   the user task the kernel runs for), named with `thread_name` metadata;
 *   B/E   kernel functions (migrate_vma_setup, hmm_range_fault,
 *         handle_mm_fault, do_swap_page, try_to_migrate,
 *         mmu_notifier_invalidate_range_start, ...), args.arg = the
 *         address / pfn the function was called with;
 *   i     (thread-scoped instants) scheduler hook points, lock
 *         acquire/release, WARN and BUG (args.detail: the dump);
 *   C     counters "pages by state" and "free device pages";
 *   X     with simulated time (a SimClock and its `jobs`): one track per
 *         device engine (DMA channel N, copy engine N), each job a complete
 *         event at its simulated start with its simulated duration.
 * Time: `ts` is in microseconds. With the explorer's StepClock one step is
 * 1000 us (1 ms in the viewer: step N starts at N ms) and the events of one
 * step are 1 us apart in the order they happened; with an EventClock one
 * event is 1 us; a clock of simulated time in ns is written as is (ns / 1000).
 * Spans still open at the end (a thread that never finished:
 * DEADLOCK, or a run stopped by a violation) are closed at the last
 * timestamp, with args.unfinished = true.
 *
 * Usage by a command that runs a machine (run, fuzz, ...):
 *     const tr = attachTracer(k);                 // kernel/trace.ts
 *     ... run ...
 *     writeTrace(file, tr, { label: 'run foo' }); // this file
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Tracer as KTracer } from '../kernel/trace.js';

const require = createRequire(import.meta.url);
interface CteFields {
  [k: string]: unknown;
}
interface CteTracer {
  mkEventFunc(ph: string): (fields: CteFields) => void;
  flush(): void;
  read(): string | null;
}
const { Tracer: CteTracerCtor } = require('chrome-trace-event') as { Tracer: new (opts: { noStream: boolean }) => CteTracer };

export const TRACE_PID = 1;

export interface TraceEventJson {
  name: string;
  ph: string;
  ts: number;
  pid: number;
  tid: number;
  cat?: string;
  s?: string;
  args?: Record<string, unknown>;
}

export interface WriteTraceOptions {
  /** Process name shown in the viewer. */
  label?: string;
}

/** A job a device engine ran (SimClock.jobs), in the tracer's ticks. */
export interface EngineJob {
  engine: string;
  start: number;
  end: number;
  what: string;
}

/** Thread ids of engine tracks: ENGINE_TID_BASE + the engine's rank in name order. */
export const ENGINE_TID_BASE = 2000;

/** One machine's tracer, shown as one process of the trace. */
export interface TracePart {
  tracer: KTracer;
  label: string;
  /**
   * Engine jobs (DMA channels "dmaN", copy engines "ceN") drawn as one
   * track each, complete events ('X') at their simulated start and length.
   */
  engines?: readonly EngineJob[];
  /** Engine jobs not logged (SimClock.jobsLimit): the trace says how many. */
  enginesDropped?: number;
}

/** The trace as Chrome Trace Event JSON text (a JSON array of events). */
export function traceJson(tr: KTracer, opts: WriteTraceOptions = {}): string {
  return tracesJson([{ tracer: tr, label: opts.label ?? 'hmmsim' }]);
}

/**
 * Several machines' tracers (e.g. one per selftest case) as one trace: part
 * i is process i + 1. Give them one shared clock to see them one after the other.
 */
export function tracesJson(parts: readonly TracePart[]): string {
  const out = new CteTracerCtor({ noStream: true });
  const emit = (ph: string, f: CteFields): void => out.mkEventFunc(ph)(f);
  parts.forEach((p, i) => {
    emitPart(emit, p.tracer, p.label, TRACE_PID + i);
    if (p.engines !== undefined) emitEngines(emit, p.tracer, p.engines, p.enginesDropped ?? 0, TRACE_PID + i);
  });
  out.flush();
  let text = '';
  for (let c = out.read(); c !== null; c = out.read()) text += c;
  return text;
}

function emitPart(emit: (ph: string, f: CteFields) => void, tr: KTracer, label: string, pid: number): void {
  // Microseconds per tick: a step is 1 ms, an event 1 us, simulated time is in ns.
  const perTick = tr.clock.unit === 'step' ? 1000 : tr.clock.unit === 'ns' ? 0.001 : 1;
  emit('M', { name: 'process_name', ts: 0, pid, tid: 0, args: { name: `hmmsim: ${label}` } });
  emit('M', { name: 'process_sort_index', ts: 0, pid, tid: 0, args: { sort_index: pid } });
  emit('M', { name: 'thread_name', ts: 0, pid, tid: 0, args: { name: 'counters' } });
  const tids = [...tr.threads.keys()].sort((a, b) => a - b);
  for (const tid of tids) {
    emit('M', { name: 'thread_name', ts: 0, pid, tid, args: { name: tr.threads.get(tid) } });
    emit('M', { name: 'thread_sort_index', ts: 0, pid, tid, args: { sort_index: tid } });
  }
  // Timestamps: tick * perTick + the event's rank within its tick, kept strictly monotonic.
  let lastTick = -1;
  let rank = 0;
  let lastTs = 0;
  const open = new Map<number, string[]>();
  for (const e of tr.events) {
    if (e.t !== lastTick) {
      lastTick = e.t;
      rank = 0;
    }
    let ts = perTick >= 1 ? e.t * perTick + Math.min(rank++, perTick - 1) : e.t * perTick;
    if (ts < lastTs) ts = lastTs;
    lastTs = ts;
    const base = { name: e.name, cat: [e.cat], ts, pid, tid: e.tid };
    switch (e.kind) {
      case 'B': {
        let st = open.get(e.tid);
        if (st === undefined) open.set(e.tid, (st = []));
        st.push(e.name);
        emit('B', { ...base, args: e.arg >= 0 ? { arg: `0x${e.arg.toString(16)}` } : {} });
        break;
      }
      case 'E':
        open.get(e.tid)?.pop();
        emit('E', { ...base, args: {} });
        break;
      case 'i': {
        const args: Record<string, unknown> = {};
        if (e.arg >= 0) args.arg = `0x${e.arg.toString(16)}`;
        if (e.detail) args.detail = e.detail;
        emit('i', { ...base, s: 't', args });
        break;
      }
      case 'C':
        emit('C', { ...base, tid: 0, args: { ...e.values } });
        break;
    }
  }
  for (const [tid, st] of open) {
    while (st.length > 0) emit('E', { name: st.pop(), cat: ['kernel'], ts: lastTs, pid, tid, args: { unfinished: true } });
  }
  if (tr.dropped > 0) emit('i', { name: `trace limit reached: ${tr.dropped} events dropped`, cat: ['trace'], ts: lastTs, pid, tid: 0, s: 'p', args: {} });
}

/** The name of an engine's track: "DMA channel 3" for dma3, "copy engine 0" for ce0. */
function engineTrackName(engine: string): string {
  const m = /^(dma|ce)(\d+)$/.exec(engine);
  if (m === null) return engine;
  return `${m[1] === 'dma' ? 'DMA channel' : 'copy engine'} ${m[2]}`;
}

/** Engine tracks: thread metadata, then each engine's jobs in start order as 'X' events. */
function emitEngines(emit: (ph: string, f: CteFields) => void, tr: KTracer, jobs: readonly EngineJob[], enginesDropped: number, pid: number): void {
  const perTick = tr.clock.unit === 'step' ? 1000 : tr.clock.unit === 'ns' ? 0.001 : 1;
  const names = [...new Set(jobs.map((j) => j.engine))].sort((a, b) => {
    const ka = /^(\D*)(\d*)$/.exec(a)!;
    const kb = /^(\D*)(\d*)$/.exec(b)!;
    return ka[1] !== kb[1] ? (ka[1] < kb[1] ? 1 : -1) : Number(ka[2] || 0) - Number(kb[2] || 0); /* dma before ce, by number */
  });
  names.forEach((n, i) => {
    emit('M', { name: 'thread_name', ts: 0, pid, tid: ENGINE_TID_BASE + i, args: { name: engineTrackName(n) } });
    emit('M', { name: 'thread_sort_index', ts: 0, pid, tid: ENGINE_TID_BASE + i, args: { sort_index: ENGINE_TID_BASE + i } });
  });
  names.forEach((n, i) => {
    const own = jobs.filter((j) => j.engine === n).sort((a, b) => a.start - b.start);
    for (const j of own) emit('X', { name: j.what, cat: ['engine'], ts: j.start * perTick, dur: (j.end - j.start) * perTick, pid, tid: ENGINE_TID_BASE + i, args: { engine: n } });
  });
  if (enginesDropped > 0) {
    const last = jobs.reduce((m, j) => Math.max(m, j.end), 0) * perTick;
    emit('i', { name: `engine job limit reached: ${enginesDropped} jobs not drawn`, cat: ['trace'], ts: last, pid, tid: 0, s: 'p', args: {} });
  }
}

/** Write the trace to `file` (Chrome Trace Event JSON). */
export function writeTrace(file: string, tr: KTracer, opts: WriteTraceOptions = {}): void {
  writeFileSync(file, traceJson(tr, opts));
}

/** Write several machines' traces to `file` as one trace (one process each). */
export function writeTraces(file: string, parts: readonly TracePart[]): void {
  writeFileSync(file, tracesJson(parts));
}
