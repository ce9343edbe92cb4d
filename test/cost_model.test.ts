// SPDX-License-Identifier: GPL-2.0-only
/** Simulated time: the clock, profiles, the DMA migrator and the calibration (src/kernel/cost, src/model). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { System, pagemapEntry } from '../src/user/system.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { MPOL_MF_MOVE, pageToNid, sysMovePages } from '../src/kernel/mm/migrate_numa.js';
import { SimClock } from '../src/kernel/cost/clock.js';
import { validateProfile } from '../src/kernel/cost/profile.js';
import { startOffloading, stopOffloading, getActiveMigratorName, type Migrator } from '../src/kernel/mm/migrate_offload.js';
import { createDmaMigrator } from '../src/drivers/dma_migrator/index.js';
import { loadProfile, listProfiles, profilesDir } from '../src/model/profiles.js';
import { runMovePages, predictMovePages, FOLIO_KIB } from '../src/model/move_pages.js';
import { type CalibrationData, parseCalibrationData, calibrate, calibrateLeastSquares, minimaxFit, worstRelErr, fittedParams, residuals, modelGBps, boundFromConvexity, RFC_V6_ZEN3 } from '../src/model/calibrate.js';
import { KernelBug } from '../src/kernel/printk.js';
import type { Process } from '../src/user/process.js';

const PAGE = 4096;
const zen3 = loadProfile('zen3-2s');

function pfnOf(p: Process, a: number): number {
  return Number(pagemapEntry(p.mm!, a) & ((1n << 55n) - 1n));
}

test('cost: every shipped profile validates against profiles/profile.schema.json and names a source per value', () => {
  const schema = JSON.parse(readFileSync(join(profilesDir(), 'profile.schema.json'), 'utf8'));
  const ajv = new Ajv.default({ allErrors: true });
  const validate = ajv.compile(schema);
  const names = listProfiles();
  assert.deepEqual(names, ['coherent-apu', 'pcie5-gpu', 'zen3-2s']);
  for (const n of names) {
    const p = loadProfile(n);
    assert.ok(validate(p), `${n}: ${ajv.errorsText(validate.errors)}`);
    assert.deepEqual(validateProfile(p), []);
  }
  assert.ok(validateProfile({ name: 'x' }).length > 0);
  assert.throws(() => loadProfile('no-such-profile'), /unknown profile 'no-such-profile'/);
});

test('cost: the clock implements TraceClock in ns; engines start when both are ready', () => {
  const c = new SimClock(zen3);
  assert.equal(c.unit, 'ns');
  assert.equal(c.now(), 0);
  c.charge('a', 100);
  const end = c.engineRun('dma0', 50);
  assert.equal(end, 150);
  assert.equal(c.engineRun('dma0', 10, 0), 160, 'the engine is busy until 150');
  c.waitFor(160, 'wait');
  assert.equal(c.now(), 160);
  assert.deepEqual(c.snapshot().acct, { a: 100, wait: 60 });
});

test('cost: same run, same simulated times (determinism)', () => {
  const a = runMovePages(zen3, 4, [0, 2], 4 << 20);
  const b = runMovePages(zen3, 4, [0, 2], 4 << 20);
  assert.deepEqual(a, b);
  assert.ok(a[0].ns > 0 && a[1].ns > 0);
});

test('cost: the simulation charges exactly what the closed form predicts', () => {
  for (const f of [4, 64, 2048]) {
    const pts = runMovePages(zen3, f, [0, 1, 4], 8 << 20);
    for (const pt of pts) {
      assert.equal(pt.failed, 0);
      const ns = predictMovePages(zen3, f, pt.channels, 8 << 20);
      assert.ok(Math.abs(pt.ns - ns) / ns < 1e-9, `folio ${f}K ch ${pt.channels}: sim ${pt.ns} vs closed form ${ns}`);
    }
  }
});

function moveSome(withClock: boolean, dma: boolean): { pfns: number[]; bytes: Uint8Array; k: System['kernel'] } {
  const sys = new System({ ramBytes: 128 << 20, numaNodes: 2, swapMiB: 0, nrHugepages: 0 });
  const k = sys.kernel;
  if (withClock) k.clock = new SimClock(zen3);
  const p = sys.spawn('t');
  const a = p.mmap(0, 40 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  for (let i = 0; i < 40; i++) p.fill(a + i * PAGE, PAGE, (i * 13) & 0xff);
  p.store8(a + 3, 0x42);
  if (dma) startOffloading(k, createDmaMigrator(k, { channels: 3 }));
  const pages = Array.from({ length: 40 }, (_, i) => a + i * PAGE);
  const st = new Int32Array(40);
  assert.equal(sysMovePages(k, p.mm!, pages, new Array(40).fill(1), st, MPOL_MF_MOVE), 0);
  if (dma) stopOffloading(k);
  return { pfns: pages.map((x) => pfnOf(p, x)), bytes: p.readBytes(a, 40 * PAGE), k };
}

test('cost: without a profile the model behaves as with one (same pages, same bytes); no clock = null', () => {
  const a = moveSome(false, false);
  const b = moveSome(true, false);
  assert.equal(a.k.clock, null);
  assert.deepEqual(a.pfns, b.pfns);
  assert.deepEqual(a.bytes, b.bytes);
  assert.ok(b.k.clock!.now() > 0);
});

test('cost: DMA migrator moves the data for real; CPU and DMA give the same bytes', () => {
  const cpu = moveSome(false, false);
  const dma = moveSome(true, true);
  assert.deepEqual(dma.bytes, cpu.bytes);
  assert.equal(dma.bytes[3], 0x42);
  for (const pfn of dma.pfns) assert.equal(pageToNid(dma.k, pfn), 1);
  assert.ok((dma.k.clock!.acct.get('dma_migrate: wait') ?? 0) > 0, 'time waited for the channels');
  assert.equal(dma.k.clock!.acct.get('folio_copy'), undefined, 'no CPU copy when the migrator took every folio');
  assert.equal(getActiveMigratorName(dma.k), 'kernel', 'stop_offloading switched back');
});

test('cost: can_migrate_dma() says no -> the CPU copies that folio (RFC v6 fallback), data intact', () => {
  const sys = new System({ ramBytes: 128 << 20, numaNodes: 2, swapMiB: 0, nrHugepages: 0 });
  const k = sys.kernel;
  k.clock = new SimClock(zen3);
  const p = sys.spawn('t');
  const a = p.mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  for (let i = 0; i < 4; i++) p.fill(a + i * PAGE, PAGE, 0x30 + i);
  const mig = createDmaMigrator(k, { channels: 1, minFolioPages: 2 });
  startOffloading(k, mig);
  const st = new Int32Array(4);
  assert.equal(sysMovePages(k, p.mm!, [a, a + PAGE, a + 2 * PAGE, a + 3 * PAGE], [1, 1, 1, 1], st, MPOL_MF_MOVE), 0);
  stopOffloading(k);
  assert.deepEqual([...st], [1, 1, 1, 1]);
  assert.equal(mig.stat.foliosRefused, 4);
  assert.equal(mig.stat.foliosMigrated, 0);
  assert.ok(k.clock.acct.get('folio_copy')! > 0);
  for (let i = 0; i < 4; i++) assert.equal(p.load8(a + i * PAGE + 7), 0x30 + i);
});

test('cost: a migrator switch from inside a batch copy never finishes (srcu_barrier in the read section): HANG', () => {
  const sys = new System({ ramBytes: 128 << 20, numaNodes: 2, swapMiB: 0, nrHugepages: 0 });
  const k = sys.kernel;
  const p = sys.spawn('t');
  const a = p.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  p.fill(a, PAGE, 1);
  const evil: Migrator = {
    name: 'evil',
    canMigrateDma: () => true,
    migrateDma: (kk) => {
      stopOffloading(kk);
      return [];
    },
  };
  startOffloading(k, evil);
  assert.throws(() => sysMovePages(k, p.mm!, [a], [1], new Int32Array(1), MPOL_MF_MOVE), (e: unknown) => e instanceof KernelBug && e.kind === 'HANG');
});

test('cost: bad migrator options get a clear error', () => {
  const k = new System({ ramBytes: 64 << 20, numaNodes: 2 }).kernel;
  k.clock = new SimClock(zen3);
  assert.throws(() => createDmaMigrator(k, { channels: 0 }), /positive integer/);
  assert.throws(() => createDmaMigrator(k, { channels: 17 }), /engine has 16/);
  k.clock = new SimClock(loadProfile('pcie5-gpu'));
  assert.throws(() => createDmaMigrator(k, { channels: 1 }), /no DMA engine/);
});

test('cost: calibration: the 1-channel crossover where the data has it (DMA slower than the CPU below 1 MiB folios, faster at 1 MiB and 2 MiB)', () => {
  for (const f of FOLIO_KIB) {
    const cpu = modelGBps(zen3, f, 0);
    const dma = modelGBps(zen3, f, 1);
    if (f < 1024) assert.ok(dma < cpu, `${f}K: DMA ${dma} should be below CPU ${cpu}`);
    else assert.ok(dma > cpu, `${f}K: DMA ${dma} should beat CPU ${cpu}`);
    const i = FOLIO_KIB.indexOf(f);
    assert.equal(dma > cpu, RFC_V6_ZEN3.dma[1][i] > RFC_V6_ZEN3.cpu[i], `${f}K: the model and the data disagree on which copy is faster`);
  }
});

// The target (every point within 10%) is NOT met, and cannot be
// with this structure: the minimax fit is the exact optimum (linear
// programs), 11.15%; boundFromConvexity() shows from three published
// 1-channel points alone that 10.2% is the least any values can do there
// (docs/COST_MODEL.md, "Calibration").
test('cost: calibration: the minimax fit puts every point within the structure\'s optimum (11.15%), which no parameter values beat; 10% is provably out of reach', async () => {
  const { profile, optimum } = await minimaxFit(zen3);
  const res = residuals(profile);
  assert.equal(res.length, 18);
  assert.ok(Math.abs(optimum - 0.11145) < 1e-4, `optimum ${optimum}`);
  for (const r of res) assert.ok(Math.abs(r.relErr) <= optimum * (1 + 1e-5), `${r.row} ${r.folioKiB}K: ${(r.relErr * 100).toFixed(3)}% > ${(optimum * 100).toFixed(3)}%`);
  assert.ok(Math.abs(worstRelErr(profile) - optimum) < 1e-5, 'the fit is at the optimum');
  // The LP optimum is a real optimum: a small step of any parameter from the fit does not lower the worst point.
  for (const [sec, key] of [['kernel', 'migrateFolioNs'], ['kernel', 'migratePteNs'], ['dma', 'segmentNs'], ['dma', 'channelGBps'], ['dma', 'iommuPageNs']] as const) {
    for (const k of [0.99, 1.01]) {
      const q = JSON.parse(JSON.stringify(profile)) as typeof zen3;
      (q as unknown as Record<string, Record<string, number>>)[sec][key] *= k;
      if (key === 'migratePteNs') q.kernel.migratePmdNs = q.kernel.migratePteNs;
      assert.ok(worstRelErr(q) >= optimum * (1 - 1e-6), `${sec}.${key} x${k}: ${worstRelErr(q)} < ${optimum}`);
    }
  }
  const b = boundFromConvexity(profile)!;
  assert.ok(b !== null);
  assert.deepEqual(b.segments, [32, 8, 2]);
  assert.ok(Math.abs(b.minMaxRelErr - 0.1016) < 5e-4, `bound ${b.minMaxRelErr}`);
  assert.ok(optimum >= b.minMaxRelErr, 'the three-point bound is below the whole-data optimum');
  const three = res.filter((r) => r.row === 'DMA 1ch' && [64, 256, 1024].includes(r.folioKiB));
  assert.ok(Math.max(...three.map((r) => Math.abs(r.relErr))) >= b.minMaxRelErr);
});

test('cost: calibration: the shipped zen3-2s profile is the minimax fit, and the fit does not depend on the starting values', async () => {
  const fitted = await calibrate(zen3);
  const far = JSON.parse(JSON.stringify(zen3)) as typeof zen3;
  Object.assign(far.kernel, { migrateFolioNs: 100, migratePteNs: 1000, migratePmdNs: 1000 });
  Object.assign(far.dma!, { batchNs: 0, descriptorNs: 300, iommuPageNs: 10, segmentNs: 1000, channelGBps: 5 });
  far.cpu.copy = [{ blockBytes: 4096, GBps: 3 }];
  const again = await calibrate(far);
  assert.deepEqual(fittedParams(again), fittedParams(fitted));
  const a = residuals(fitted);
  const shipped = residuals(zen3);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i].relErr - shipped[i].relErr) < 2e-4, `shipped profile differs from the fit at ${a[i].row} ${a[i].folioKiB}K`);
});

test('cost: calibration --fit lsq: Nelder-Mead least squares, lower rms and a worse worst point (13.6%, rms 6.1%), the same from a far start', async () => {
  const fitted = await calibrate(zen3, 'lsq');
  const res = residuals(fitted);
  const worst = worstRelErr(fitted);
  const rms = Math.sqrt(res.reduce((s, r) => s + r.relErr * r.relErr, 0) / res.length);
  assert.ok(Math.abs(worst - 0.136) < 0.002, `worst ${worst}`);
  assert.ok(rms < 0.062, `rms ${rms}`);
  const minimax = residuals(zen3);
  assert.ok(rms < Math.sqrt(minimax.reduce((s, r) => s + r.relErr * r.relErr, 0) / 18), 'least squares has the lower rms');
  const far = JSON.parse(JSON.stringify(zen3)) as typeof zen3;
  Object.assign(far.kernel, { migrateFolioNs: 100, migratePteNs: 1000, migratePmdNs: 1000 });
  Object.assign(far.dma!, { batchNs: 0, descriptorNs: 300, iommuPageNs: 10, segmentNs: 1000, channelGBps: 5 });
  far.cpu.copy = [{ blockBytes: 4096, GBps: 3 }];
  const b = residuals(calibrateLeastSquares(far));
  for (let i = 0; i < res.length; i++) assert.ok(Math.abs(res[i].relErr - b[i].relErr) < 2e-3, `${res[i].row} ${res[i].folioKiB}K: ${res[i].relErr} vs ${b[i].relErr}`);
});

test('cost: calibration on data the model generated recovers the parameters exactly (CPU row only; all rows)', async () => {
  const truth = JSON.parse(JSON.stringify(zen3)) as typeof zen3;
  Object.assign(truth.kernel, { migrateFolioNs: 600, migratePteNs: 150, migratePmdNs: 150 });
  truth.cpu.copy = [{ blockBytes: 4096, GBps: 8 }];
  Object.assign(truth.dma!, { batchNs: 5000, descriptorNs: 700, iommuPageNs: 30, segmentNs: 8000, channelGBps: 12 });
  const cpuOnly: CalibrationData = { cpu: FOLIO_KIB.map((f) => modelGBps(truth, f, 0)) };
  const a = await minimaxFit(zen3, cpuOnly);
  assert.ok(a.optimum < 1e-8, `optimum ${a.optimum}`);
  assert.ok(Math.abs(a.profile.kernel.migrateFolioNs - 600) < 1e-3 && Math.abs(a.profile.kernel.migratePteNs - 150) < 1e-3, JSON.stringify(a.profile.kernel));
  assert.ok(Math.abs(a.profile.cpu.copy[0].GBps - 8) < 1e-6);
  assert.deepEqual(a.profile.dma, zen3.dma, 'a CPU-only fit leaves the DMA parameters alone');
  assert.deepEqual(Object.keys(fittedParams(a.profile, cpuOnly)), ['kernel.migrateFolioNs', 'kernel.migratePteNs', 'cpu.copy[4096].GBps']);
  const all: CalibrationData = { cpu: cpuOnly.cpu, dma: Object.fromEntries([1, 2].map((c) => [String(c), FOLIO_KIB.map((f) => modelGBps(truth, f, c))])) };
  const b = await minimaxFit(zen3, all);
  assert.ok(b.optimum < 1e-8 && worstRelErr(b.profile, all) < 1e-6, `optimum ${b.optimum}, worst ${worstRelErr(b.profile, all)}`);
  for (const [k, v] of Object.entries(fittedParams(truth, all))) assert.ok(Math.abs(fittedParams(b.profile, all)[k] - v) < 1e-4 * v, `${k}: ${fittedParams(b.profile, all)[k]} vs ${v}`);
  // A null is a point not measured: the fit ignores it.
  const gap: CalibrationData = { cpu: [null, ...cpuOnly.cpu!.slice(1)] };
  assert.equal(residuals(a.profile, gap).length, 5);
});

test('cost: parseCalibrationData() rejects bad data with the specific problem', () => {
  const good = parseCalibrationData({ source: 'my box', cpu: [1, 2, 3, 4, 5, null], dma: { 1: [1, 1, 1, 1, 1, 1] } }, zen3);
  assert.equal(residuals(zen3, good).length, 11);
  for (const [raw, msg] of [
    [[1, 2], /not a JSON object/],
    [{ cpu: [1, 2, 3] }, /cpu must be an array of 6 GB\/s values/],
    [{ cpu: [1, 2, 3, 4, 5, -1] }, /cpu\[5\] \(2048K\) is -1, not a positive GB\/s or null/],
    [{ cpu: [1, 2, 3, 4, 5, '6'] }, /cpu\[5\] \(2048K\) is "6"/],
    [{ dma: { x: [1, 1, 1, 1, 1, 1] } }, /dma key 'x' is not a channel count/],
    [{ dma: { 32: [1, 1, 1, 1, 1, 1] } }, /dma row for 32 channels, but profile 'zen3-2s' has 16/],
    [{ gpu: [] }, /unknown key 'gpu'/],
    [{ cpu: [null, null, null, null, null, null] }, /no measured point/],
  ] as Array<[unknown, RegExp]>) assert.throws(() => parseCalibrationData(raw, zen3), msg);
  assert.throws(() => parseCalibrationData({ dma: { 1: [1, 1, 1, 1, 1, 1] } }, loadProfile('pcie5-gpu')), /profile 'pcie5-gpu' has no DMA engine/);
});

test('cost: hmmsim model calibrate --data --write: fits your measurements and writes a profile that loads and predicts them', async () => {
  const { spawnSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const BIN = fileURLToPath(new URL('../../bin/hmmsim.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'hmmsim-cal-'));
  try {
    const truth = JSON.parse(JSON.stringify(zen3)) as typeof zen3;
    Object.assign(truth.kernel, { migrateFolioNs: 800, migratePteNs: 100, migratePmdNs: 100 });
    truth.cpu.copy = [{ blockBytes: 4096, GBps: 20 }];
    const cpu = FOLIO_KIB.map((f) => Number(modelGBps(truth, f, 0).toFixed(4)));
    writeFileSync(join(dir, 'data.json'), JSON.stringify({ source: 'test box', cpu }));
    const out = join(dir, 'fitted.json');
    const r = spawnSync(process.execPath, [BIN, 'model', 'calibrate', '--profile', 'pcie5-gpu', '--data', join(dir, 'data.json'), '--write', out, '--json'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { source: string; worst: number; bound: unknown; predictions: unknown[]; params: Record<string, number> };
    assert.equal(j.source, 'test box');
    assert.ok(j.worst < 1e-4, `worst ${j.worst}`);
    assert.equal(j.bound, null);
    assert.deepEqual(j.predictions, []);
    assert.match(r.stderr, /fitted profile written to/);
    const written = loadProfile(out);
    assert.match(written.sources['kernel.migrateFolioNs'], /fitted: minimax .* on 6 point\(s\) of test box/);
    const mp = spawnSync(process.execPath, [BIN, 'model', 'move-pages', '--predict', '--profile', out, '--channels', '0', '--json'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(mp.status, 0, mp.stderr);
    const pts = (JSON.parse(mp.stdout) as { results: Array<{ points: Array<{ GBps: number }> }> }).results[0].points;
    pts.forEach((p, i) => assert.ok(Math.abs(p.GBps - cpu[i]) / cpu[i] < 1e-4, `${FOLIO_KIB[i]}K: ${p.GBps} vs ${cpu[i]}`));
    // move-pages --data compares the table with your measurements ('-' where you measured nothing).
    writeFileSync(join(dir, 'gap.json'), JSON.stringify({ source: 'test box', cpu: [null, ...cpu.slice(1)] }));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ cpu: [1] }));
    const cmp = spawnSync(process.execPath, [BIN, 'model', 'move-pages', '--predict', '--profile', out, '--channels', '0', '--data', join(dir, 'gap.json')], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(cmp.status, 0, cmp.stderr);
    assert.match(cmp.stdout, /measured \(test box\):\nCPU\s+-\s+\d/);
    assert.match(cmp.stdout, /model vs measured \(%\):\nCPU\s+-(\s+-?0\.0){5}\n/);
    for (const [args, msg] of [
      [['model', 'calibrate', '--data', join(dir, 'nope.json')], /--data: cannot read/],
      [['model', 'device-fault', '--data', join(dir, 'data.json')], /--data applies to calibrate and move-pages/],
      [['model', 'move-pages', '--predict', '--data', join(dir, 'bad.json')], /cpu must be an array of 6/],
      [['model', 'calibrate', '--profile', 'pcie5-gpu'], /has no DMA engine/],
    ] as Array<[string[], RegExp]>) {
      const e = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(e.status, 2, args.join(' '));
      assert.match(e.stderr, msg);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cost: predictions for 4, 8, 16 channels stay what docs/COST_MODEL.md says (minimax fit)', () => {
  const want: Record<number, number[]> = { 4: [4.01, 5.66, 6.30, 9.09, 8.95, 12.85], 8: [4.48, 6.64, 7.55, 9.09, 8.95, 12.85], 16: [4.48, 6.64, 7.55, 9.09, 8.95, 12.85] };
  for (const [ch, row] of Object.entries(want)) FOLIO_KIB.forEach((f, i) => assert.ok(Math.abs(modelGBps(zen3, f, Number(ch)) - row[i]) < 0.006, `${ch}ch ${f}K: ${modelGBps(zen3, f, Number(ch))}`));
});

test('cost: device-fault experiment: phases charged, a THP CPU fault moves 2 MiB in one fault, deterministic', async () => {
  const { runDeviceFault } = await import('../src/model/device_fault.js');
  const gpu = loadProfile('pcie5-gpu');
  const a = runDeviceFault(gpu);
  assert.deepEqual(a, runDeviceFault(gpu));
  const thp = a.find((r) => r.scenario === 'CPU fault on device THP')!;
  const small = a.find((r) => r.scenario === 'CPU fault on device 4K page')!;
  assert.equal(thp.phases['fault entry/exit'], gpu.kernel.faultEntryExitNs, 'one CPU fault');
  const wire = (2 << 20) / gpu.link!.GBps;
  // The copy is queued on ce0 after the submit; the CPU's fence wait covers the wire time.
  assert.ok(Math.abs(thp.ns - (gpu.kernel.faultEntryExitNs + thp.phases['migrate_vma_setup+finalize'] + gpu.device!.copySetupNs + gpu.link!.latencyNs + wire)) < 1e-6);
  assert.ok(thp.phases['copy fence wait'] > wire / 2, 'the CPU waited for the 2 MiB copy');
  assert.ok(thp.ns > small.ns);
  const dev = a.find((r) => r.scenario === 'device read fault' && r.pages === 1)!;
  assert.equal(dev.phases['device fault: interrupt + driver'], gpu.device!.faultNs);
});

test('cost: a trace can use the simulated clock: try_to_migrate spans in ns, non-decreasing', async () => {
  const { Tracer, attachTracer } = await import('../src/kernel/trace.js');
  const sys = new System({ ramBytes: 128 << 20, numaNodes: 2, swapMiB: 0, nrHugepages: 0 });
  const k = sys.kernel;
  k.clock = new SimClock(zen3);
  const tr = attachTracer(k, new Tracer(k.clock));
  const p = sys.spawn('t');
  const a = p.mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  p.fill(a, 4 * PAGE, 3);
  assert.equal(sysMovePages(k, p.mm!, [a, a + PAGE, a + 2 * PAGE, a + 3 * PAGE], [1, 1, 1, 1], new Int32Array(4), MPOL_MF_MOVE), 0);
  const spans = tr.events.filter((e) => e.name === 'try_to_migrate' && e.kind === 'B');
  assert.equal(spans.length, 4);
  assert.equal(tr.clock.unit, 'ns');
  for (let i = 1; i < tr.events.length; i++) assert.ok(tr.events[i].t >= tr.events[i - 1].t);
  assert.ok(spans[3].t > spans[0].t, 'simulated time advanced between folios');
});

test('cost: hmmsim model: --predict --json prints the table; bad input exits 2 with a specific message', async () => {
  const { spawnSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const BIN = fileURLToPath(new URL('../../bin/hmmsim.js', import.meta.url));
  const ok = spawnSync(process.execPath, [BIN, 'model', 'move-pages', '--predict', '--json', '--channels', '0,1'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(ok.status, 0, ok.stderr);
  const j = JSON.parse(ok.stdout);
  assert.equal(j.results[0].points.length, 12);
  assert.ok(Math.abs(j.results[0].points[0].GBps - modelGBps(zen3, 4, 0)) < 1e-9);
  for (const [args, msg] of [
    [['model', 'nope'], /unknown experiment 'nope'/],
    [['model', 'move-pages', '--size', '3'], /--size/],
    [['model', 'move-pages', '--profile', 'x'], /unknown profile 'x'/],
    [['model', 'move-pages', '--predict', '--sweep', 'dma.nothing=1'], /no numeric value 'dma.nothing'/],
    [['model', 'move-pages', '--channels', '32'], /16 DMA channels/],
    [['model', 'calibrate', '--fit', 'l2'], /--fit: 'l2' is not minimax or lsq/],
    [['model', 'move-pages', '--fit', 'lsq'], /--fit applies to calibrate, not to 'move-pages'/],
    [['model', 'calibrate', '--profile', 'pcie5-gpu'], /has no DMA engine/],
  ] as Array<[string[], RegExp]>) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, msg);
  }
  // calibrate --json: the minimax fit is the shipped profile; --fit lsq is worse at its worst point.
  const cal = (fit: string): { fit: string; worst: number; optimum: number | null; params: Record<string, number> } => {
    const r = spawnSync(process.execPath, [BIN, 'model', 'calibrate', '--fit', fit, '--json'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const mm = cal('minimax');
  const ls = cal('lsq');
  assert.equal(mm.fit, 'minimax');
  assert.ok(Math.abs(mm.params['kernel.migrateFolioNs'] - zen3.kernel.migrateFolioNs) < 0.1);
  assert.ok(mm.optimum !== null && Math.abs(mm.worst - mm.optimum) < 1e-5);
  assert.equal(ls.optimum, null);
  assert.ok(ls.worst > mm.worst + 0.02, `lsq ${ls.worst} vs minimax ${mm.worst}`);
});
