// SPDX-License-Identifier: GPL-2.0-only
/**
 * Tracing (src/kernel/trace.ts) and its Chrome Trace Event export
 * (src/trace/chrome.ts): the trace of the CVE-2022-3523 counterexample is
 * valid Trace Event JSON (ajv against test/trace_event_schema.ts, and B/E
 * pairing per thread as Perfetto's importer needs), shows the racing
 * threads with the kernel functions each ran, the KASAN report on the
 * faulting thread and the counters; attaching a tracer does not change a
 * run; a run-to-completion trace (a selftest case) has the migrate_vma_*
 * spans on the process's thread; the recorded run has the page maps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explore, runOnce } from '../src/explore/engine.js';
import { findScenario } from '../scenarios/index.js';
import { defaultHistorical, type KernelConfig } from '../src/kernel/config.js';
import { EventClock, Tracer, attachTracer, CURRENT_TID_BASE } from '../src/kernel/trace.js';
import { traceJson, tracesJson, type TraceEventJson } from '../src/trace/chrome.js';
import { RunRecorder, parseRecord, recordSchedule } from '../src/trace/record.js';
import { DEVICE_PRIVATE_BASE, PS_PRESENT } from '../src/trace/pagemap.js';
import { buildHmmSuite } from '../src/selftests/hmm_tests.js';
import { parseTrace } from './trace_event_schema.js';

const cve = findScenario('cve-2022-3523')!;
const bugOn: Partial<KernelConfig> = { historical: { ...defaultHistorical(), fault_no_page_ref: true } };
function threadIds(events: TraceEventJson[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const e of events) if (e.ph === 'M' && e.name === 'thread_name') m.set(String(e.args!.name), e.tid);
  return m;
}

test('trace of the CVE-2022-3523 counterexample: valid, one track per racing thread, spans, KASAN and counters', () => {
  const rr = new RunRecorder();
  const res = explore(cve, { schedules: 300, seed: 1, strategy: 'random', config: bugOn, instrument: rr.instrument });
  assert.equal(res.found?.violation?.detector, 'KASAN');
  const events = parseTrace(traceJson(rr.tracer!, { label: 'cve' }));
  const tids = threadIds(events);
  const fault = tids.get('cpu-fault');
  const removal = tids.get('device-removal');
  assert.ok(fault !== undefined && removal !== undefined, `thread tracks: ${[...tids.keys()].join(', ')}`);
  const spans = (tid: number) => new Set(events.filter((e) => e.ph === 'B' && e.tid === tid).map((e) => e.name));
  for (const f of ['do_user_addr_fault', 'handle_mm_fault', 'do_swap_page']) assert.ok(spans(fault).has(f), `cpu-fault runs ${f}`);
  for (const f of ['migrate_device_range', 'try_to_migrate', 'mmu_notifier_invalidate_range_start', 'migrate_device_finalize', 'memunmap_pages']) assert.ok(spans(removal).has(f), `device-removal runs ${f}`);
  // The threads interleave: the removal's eviction starts while the fault's do_swap_page is open.
  const swapBegin = events.find((e) => e.ph === 'B' && e.name === 'do_swap_page')!.ts;
  const swapEnd = events.find((e) => e.ph === 'E' && e.name === 'do_swap_page')!.ts;
  const evict = events.find((e) => e.ph === 'B' && e.name === 'migrate_device_range')!.ts;
  assert.ok(swapBegin < evict && evict < swapEnd, 'migrate_device_range runs inside the fault\'s do_swap_page');
  const kasan = events.filter((e) => e.ph === 'i' && e.cat === 'bug');
  assert.equal(kasan.length, 1);
  assert.match(kasan[0].name, /^KASAN: use-after-free in do_swap_page/);
  assert.equal(kasan[0].tid, fault);
  // Instants of lock acquire and release on the faulting thread.
  const locks = events.filter((e) => e.ph === 'i' && e.cat === 'lock' && e.tid === fault).map((e) => e.name);
  assert.ok(locks.includes('acquire ptl@40000000') && locks.includes('release ptl@40000000'), locks.join(', '));
  // Counters: the device page is freed by the eviction and the pgmap is gone at the end.
  const free = events.filter((e) => e.ph === 'C' && e.name === 'free device pages').map((e) => e.args!['pgmap #1 free']);
  assert.equal(free[0], 15);
  assert.ok(free.includes(16));
  assert.equal(free[free.length - 1], 0);
  // Step clock: step n starts at n ms; the KASAN is in the last step of the text trace.
  assert.equal(Math.floor(kasan[0].ts / 1000), res.found!.trace[res.found!.trace.length - 1].step);
});

test('a tracer does not change the run, and is detached after it', () => {
  const plain = runOnce(cve, bugOn, [0, 0, 1, 1, 1]);
  const rr = new RunRecorder();
  const traced = runOnce(cve, bugOn, [0, 0, 1, 1, 1], { instrument: rr.instrument });
  assert.deepEqual(traced.trace, plain.trace);
  assert.deepEqual(traced.violation, plain.violation);
  assert.ok(rr.tracer!.events.length > 20);
  assert.equal(rr.tracer!.machine, null, 'detached');
});

test('run-to-completion trace of a selftest case: migrate_vma_* spans on the process thread, EventClock', () => {
  const clock = new EventClock();
  const tracers: Tracer[] = [];
  const suite = buildHmmSuite({ onMachine: (k) => tracers.push(attachTracer(k, new Tracer(clock))) });
  const r = suite.run({ filter: ['hmm.hmm_device_private.migrate_fault'], out: null });
  assert.equal(r.totals.pass, 1);
  assert.equal(tracers.length, 1);
  const events = parseTrace(tracesJson([{ tracer: tracers[0], label: 'migrate_fault' }]));
  const names = new Map<string, number>();
  for (const e of events) if (e.ph === 'B') names.set(e.name, e.tid);
  for (const f of ['migrate_vma_setup', 'migrate_vma_pages', 'migrate_vma_finalize', 'do_swap_page']) {
    assert.ok(names.has(f), `span ${f}`);
    assert.ok(names.get(f)! > CURRENT_TID_BASE, `${f} on the user task's thread`);
  }
  const proc = events.find((e) => e.ph === 'M' && e.name === 'thread_name' && e.tid === names.get('migrate_vma_setup'));
  assert.match(String(proc!.args!.name), /hmm-tests \(pid \d+\)/);
});

test('recorded run: page map frames per step from the page tables, and the format check', () => {
  const { rec } = recordSchedule(cve, bugOn, ['fault_no_page_ref=on'], [0, 0, 1, 1, 1]);
  assert.equal(rec.violation?.detector, 'KASAN');
  assert.equal(rec.spaces.length, 1);
  assert.equal(rec.spaces[0].pages, 1);
  assert.equal(rec.frames[0].step, 0);
  assert.equal(rec.frames[0].maps[0], (DEVICE_PRIVATE_BASE + 1).toString(36), 'before the run the page is device-private (pgmap 1)');
  assert.equal(rec.frames[rec.frames.length - 1].maps[0], PS_PRESENT.toString(36), 'the eviction migrated it to RAM');
  assert.equal(rec.frames[rec.frames.length - 1].step, rec.steps[rec.steps.length - 1].step);
  assert.deepEqual(rec.threads.map((t) => t.name), ['cpu-fault', 'device-removal']);
  assert.equal(rec.replay, 'hmmsim explore cve-2022-3523 --config fault_no_page_ref=on --schedule 0,0,1,1,1');
  assert.equal(parseRecord(JSON.parse(JSON.stringify(rec)), 'x.json').scenario, 'cve-2022-3523');
  assert.throws(() => parseRecord({ format: 'other' }, 'x.json'), /not an hmmsim recording/);
  assert.throws(() => parseRecord({ ...rec, version: 99 }, 'x.json'), /version 99/);
});

test('the trace event limit drops events and says so in the trace', () => {
  const rr = new RunRecorder();
  runOnce(cve, bugOn, [0, 0, 1, 1, 1], {
    instrument: (k) => {
      rr.instrument(k);
      rr.tracer!.limit = 10;
    },
  });
  assert.equal(rr.tracer!.events.length, 10);
  assert.ok(rr.tracer!.dropped > 0);
  const events = parseTrace(traceJson(rr.tracer!));
  assert.ok(events.some((e) => e.ph === 'i' && /trace limit reached: \d+ events dropped/.test(e.name)));
});
