// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim model <experiment> --trace FILE`: simulated-time runs as Chrome
 * Trace Event JSON. Parsed back and checked as test/trace.test.ts checks
 * traces (ajv against test/trace_event_schema.ts, B/E pairing and time
 * order per thread), then for what the model's trace must show: one
 * process per configuration, the CPU thread with the migrate_pages batch
 * spans, one track per DMA channel / copy engine with complete events,
 * and timestamps in simulated microseconds (the CPU-copy move_pages span
 * lasts exactly the closed-form time).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TraceEventJson } from '../src/trace/chrome.js';
import { loadProfile } from '../src/model/profiles.js';
import { predictMovePages } from '../src/model/move_pages.js';
import { parseTrace } from './trace_event_schema.js';

const BIN = fileURLToPath(new URL('../../bin/hmmsim.js', import.meta.url));

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
}

test('model move-pages --trace: one process per configuration, CPU spans and DMA channel tracks in simulated time', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hmmsim-model-trace-'));
  try {
    const file = join(dir, 'mp.json');
    const r = run(['model', 'move-pages', '--size', '4', '--folios', '4,2048', '--channels', '0,2', '--trace', file]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /trace: 4 simulated runs written/);
    const ev = parseTrace(readFileSync(file, 'utf8')) as Array<TraceEventJson & { dur?: number }>;
    const procs = new Map(ev.filter((e) => e.ph === 'M' && e.name === 'process_name').map((e) => [e.pid, String(e.args!.name)]));
    assert.deepEqual([...procs.values()], [
      'hmmsim: move_pages 4K folios, CPU copy', 'hmmsim: move_pages 4K folios, DMA 2ch',
      'hmmsim: move_pages 2M folios, CPU copy', 'hmmsim: move_pages 2M folios, DMA 2ch',
    ]);
    const pidOf = (label: string): number => [...procs].find(([, n]) => n.endsWith(label))![0];
    const tracks = (pid: number): string[] => ev.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.pid === pid).map((e) => String(e.args!.name));
    // 4K with 2 channels: both channels busy (16 segments each per batch); 2M: one segment per batch, one channel.
    assert.ok(tracks(pidOf('4K folios, DMA 2ch')).includes('DMA channel 0') && tracks(pidOf('4K folios, DMA 2ch')).includes('DMA channel 1'));
    assert.ok(tracks(pidOf('2M folios, DMA 2ch')).includes('DMA channel 0'));
    assert.ok(!tracks(pidOf('2M folios, DMA 2ch')).includes('DMA channel 1'));
    assert.ok(!tracks(pidOf('4K folios, CPU copy')).some((t) => t.startsWith('DMA')));
    // Two batches of 512 pages: two DMA jobs per channel, no overlap on a channel, each inside its migrate_dma span.
    const p4 = pidOf('4K folios, DMA 2ch');
    const jobs = ev.filter((e) => e.ph === 'X' && e.pid === p4);
    assert.equal(jobs.length, 4);
    for (const tid of new Set(jobs.map((j) => j.tid))) {
      const own = jobs.filter((j) => j.tid === tid);
      for (let i = 1; i < own.length; i++) assert.ok(own[i].ts >= own[i - 1].ts + own[i - 1].dur! - 1e-9, 'a channel runs one job at a time');
    }
    const dmaB = ev.filter((e) => e.pid === p4 && e.name === 'migrate_dma' && e.ph === 'B').map((e) => e.ts);
    const dmaE = ev.filter((e) => e.pid === p4 && e.name === 'migrate_dma' && e.ph === 'E').map((e) => e.ts);
    assert.equal(dmaB.length, 2);
    for (const j of jobs) assert.ok(dmaB.some((b, i) => j.ts >= b - 1e-9 && j.ts + j.dur! <= dmaE[i] + 1e-6), 'the CPU waits for the channel inside migrate_dma');
    // Simulated microseconds: the CPU-copy move_pages span lasts the closed-form time.
    const pc = pidOf('4K folios, CPU copy');
    const b = ev.find((e) => e.pid === pc && e.name === 'kernel_move_pages' && e.ph === 'B')!;
    const e = ev.find((x) => x.pid === pc && x.name === 'kernel_move_pages' && x.ph === 'E')!;
    const want = predictMovePages(loadProfile('zen3-2s'), 4, 0, 4 << 20) / 1000;
    assert.ok(Math.abs(e.ts - b.ts - want) / want < 1e-6, `span ${e.ts - b.ts} us vs ${want} us`);
    assert.ok(ev.filter((x) => x.pid === pc && x.name === 'migrate_pages_batch' && x.ph === 'B').length === 2);
    // Same run, same trace (determinism).
    const file2 = join(dir, 'mp2.json');
    assert.equal(run(['model', 'move-pages', '--size', '4', '--folios', '4,2048', '--channels', '0,2', '--trace', file2]).status, 0);
    assert.equal(readFileSync(file2, 'utf8'), readFileSync(file, 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('model device-fault --trace: copy engine track and fault spans; --trace on an experiment without a simulation exits 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hmmsim-model-trace-'));
  try {
    const file = join(dir, 'df.json');
    const r = run(['model', 'device-fault', '--profile', 'pcie5-gpu', '--trace', file]);
    assert.equal(r.status, 0, r.stderr);
    const ev = parseTrace(readFileSync(file, 'utf8')) as Array<TraceEventJson & { dur?: number }>;
    const procs = new Map(ev.filter((e) => e.ph === 'M' && e.name === 'process_name').map((e) => [e.pid, String(e.args!.name)]));
    assert.equal(procs.size, 4);
    const thp = [...procs].find(([, n]) => n.includes('CPU fault on device THP'))![0];
    const ce = ev.filter((e) => e.pid === thp && e.ph === 'X');
    assert.equal(ce.length, 1, 'one 2 MiB copy on the copy engine');
    const gpu = loadProfile('pcie5-gpu');
    assert.ok(Math.abs(ce[0].dur! - (gpu.link!.latencyNs + (2 << 20) / gpu.link!.GBps) / 1000) < 1e-6);
    assert.ok(ev.some((e) => e.pid === thp && e.ph === 'M' && e.name === 'thread_name' && e.args!.name === 'copy engine 0'));
    for (const f of ['handle_mm_fault', 'migrate_vma_setup', 'migrate_vma_pages', 'migrate_vma_finalize']) assert.ok(ev.some((e) => e.pid === thp && e.ph === 'B' && e.name === f), f);
    const bad = run(['model', 'calibrate', '--trace', join(dir, 'x.json')]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /runs no simulation/);
    const bad2 = run(['model', 'move-pages', '--predict', '--trace', join(dir, 'x.json')]);
    assert.equal(bad2.status, 2);
    assert.match(bad2.stderr, /drop --predict/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('model nouveau-fault --trace: one process per scenario, nouveau spans, copy engine jobs before the GPU bind', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hmmsim-model-trace-'));
  try {
    const file = join(dir, 'nv.json');
    const r = run(['model', 'nouveau-fault', '--profile', 'pcie5-gpu', '--trace', file]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /trace: 6 simulated runs written/);
    const ev = parseTrace(readFileSync(file, 'utf8')) as Array<TraceEventJson & { dur?: number }>;
    const procs = new Map(ev.filter((e) => e.ph === 'M' && e.name === 'process_name').map((e) => [e.pid, String(e.args!.name)]));
    assert.equal(procs.size, 6);
    const pidOf = (label: string): number => [...procs].find(([, n]) => n.endsWith(label))![0];
    const spans = (pid: number): Set<string> => new Set(ev.filter((e) => e.pid === pid && e.ph === 'B').map((e) => e.name));
    // GPU fault on system memory: the fault handler and hmm_range_fault, no copy.
    const gf = pidOf('GPU read fault, system memory (1 x 4K)');
    for (const f of ['nouveau_svm_fault', 'hmm_range_fault']) assert.ok(spans(gf).has(f), f);
    assert.equal(ev.filter((e) => e.pid === gf && e.ph === 'X').length, 0);
    // SVM_BIND of a THP: one 2 MiB copy on copy engine 0, finished before nouveau_pfns_map (the fence wait).
    const b2 = pidOf('SVM_BIND to VRAM (1 x 2M)');
    for (const f of ['nouveau_dmem_migrate_vma', 'migrate_vma_setup', 'migrate_vma_pages', 'nouveau_pfns_map', 'migrate_vma_finalize']) assert.ok(spans(b2).has(f), f);
    const ce = ev.filter((e) => e.pid === b2 && e.ph === 'X');
    assert.equal(ce.length, 1);
    const gpu = loadProfile('pcie5-gpu');
    assert.ok(Math.abs(ce[0].dur! - (gpu.link!.latencyNs + (2 << 20) / gpu.link!.GBps) / 1000) < 1e-6);
    assert.ok(ev.some((e) => e.pid === b2 && e.ph === 'M' && e.name === 'thread_name' && e.args!.name === 'copy engine 0'));
    const map = ev.find((e) => e.pid === b2 && e.ph === 'B' && e.name === 'nouveau_pfns_map')!;
    assert.ok(map.ts >= ce[0].ts + ce[0].dur! - 1e-6, 'the GPU PTEs are written after the copy fence');
    // 512 small folios: 512 copy commands; the CPU fault on the 2 MiB folio: one.
    assert.equal(ev.filter((e) => e.pid === pidOf('SVM_BIND to VRAM (512 x 4K)') && e.ph === 'X').length, 512);
    const c2 = pidOf('CPU fault from VRAM (1 x 2M)');
    assert.ok(spans(c2).has('nouveau_dmem_migrate_to_ram'));
    assert.equal(ev.filter((e) => e.pid === c2 && e.ph === 'X').length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
