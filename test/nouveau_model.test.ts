// SPDX-License-Identifier: GPL-2.0-only
/**
 * nouveau under simulated time (issue 14, item 5): the charges the driver
 * makes (copy engine, fence wait, hmm_range_fault, GPU page-table updates)
 * and `hmmsim model nouveau-fault`: per-fault latency by phase, 4 KiB vs
 * 2 MiB, deterministic; no clock, no change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SimClock } from '../src/kernel/cost/clock.js';
import { loadProfile } from '../src/model/profiles.js';
import { NOUVEAU_PHASES, nouveauPhaseOf, runNouveauFault, type NouveauFaultRow } from '../src/model/nouveau_fault.js';
import { GPU_ACCESS_READ, GPU_ACCESS_WRITE } from '../src/drivers/nouveau/index.js';
import { bootGpu, cpu, gpuAccess, mkVma, pattern, svmBind, svmInit, uread, uwrite, PAGE, RW } from './nouveau_helpers.js';

const BIN = fileURLToPath(new URL('../../bin/hmmsim.js', import.meta.url));
const gpu = loadProfile('pcie5-gpu');
const dev = gpu.device!;
const link = gpu.link!;
const kc = gpu.kernel;

function row(rows: NouveauFaultRow[], scenario: string, folios: string): NouveauFaultRow {
  const r = rows.find((x) => x.scenario === scenario && x.folios === folios);
  assert.ok(r, `${scenario} (${folios})`);
  return r;
}

test('nouveau-fault: every row splits into its path\'s phases, positive, summing to the total', () => {
  const rows = runNouveauFault(gpu);
  assert.deepEqual(rows.map((r) => `${r.scenario} (${r.folios})`), [
    'GPU read fault, system memory (1 x 4K)', 'SVM_BIND to VRAM (1 x 4K)', 'SVM_BIND to VRAM (1 x 2M)', 'SVM_BIND to VRAM (512 x 4K)',
    'CPU fault from VRAM (1 x 4K)', 'CPU fault from VRAM (1 x 2M)',
  ]);
  // Which phases each kernel path takes (the others are exactly 0).
  const taken: Record<string, string[]> = {
    'GPU read fault, system memory': ['fault', 'get pages', 'bind'],
    'SVM_BIND to VRAM': ['migrate', 'copy', 'bind'],
    'CPU fault from VRAM': ['fault', 'migrate', 'copy', 'bind'],
  };
  for (const r of rows) {
    for (const ph of NOUVEAU_PHASES) {
      if (taken[r.scenario].includes(ph)) assert.ok(r.phases[ph] > 0, `${r.scenario} ${r.folios}: ${ph} = ${r.phases[ph]}`);
      else assert.equal(r.phases[ph], 0, `${r.scenario} ${r.folios}: ${ph}`);
    }
    const sum = NOUVEAU_PHASES.reduce((s, ph) => s + r.phases[ph], 0);
    assert.ok(Math.abs(sum - r.ns) < 1e-6, `${r.scenario} ${r.folios}: phases ${sum} vs total ${r.ns}`);
    const acctSum = Object.values(r.acct).reduce((s, v) => s + v, 0);
    assert.ok(Math.abs(acctSum - r.ns) < 1e-6, 'every charge is classified');
  }
});

test('nouveau-fault: the charges are the profile\'s numbers along the kernel path', () => {
  const rows = runNouveauFault(gpu);
  const pt = (ptes: number): number => dev.ptUpdateNs! + ptes * dev.ptePageNs! + dev.tlbInvalidateNs!;
  const wire = (pages: number): number => link.latencyNs + (pages * PAGE) / link.GBps;
  // nouveau_svm_fault -> nouveau_range_fault: hmm_range_fault of one page, one PFNMAP + TLB invalidate.
  const gf = row(rows, 'GPU read fault, system memory', '1 x 4K');
  assert.equal(gf.phases.fault, dev.faultNs);
  assert.equal(gf.phases['get pages'], kc.hmmRangeFaultNs! + kc.hmmPageNs!);
  assert.ok(Math.abs(gf.phases.bind - pt(1)) < 1e-9);
  // nouveau_dmem_migrate_vma of a THP: one copy of 512 pages, one 2 MiB GPU PTE.
  const b2 = row(rows, 'SVM_BIND to VRAM', '1 x 2M');
  assert.ok(Math.abs(b2.phases.copy - (dev.copySetupNs + wire(512))) < 1e-6);
  assert.ok(Math.abs(b2.phases.bind - pt(1)) < 1e-9);
  assert.ok(Math.abs(b2.phases.migrate - (kc.migrateBatchNs + kc.migrateFolioNs + kc.migratePmdNs)) < 1e-9);
  // 512 small folios: 512 copy commands, a PFNMAP of 512 PTEs.
  const b512 = row(rows, 'SVM_BIND to VRAM', '512 x 4K');
  assert.ok(Math.abs(b512.acct['nouveau copy: submit'] - 512 * dev.copySetupNs) < 1e-6);
  assert.ok(Math.abs(b512.phases.bind - pt(512)) < 1e-9);
  // migrate_to_ram of the 2 MiB folio: one CPU fault, PFNCLR of one 2 MiB PTE, one copy back.
  const c2 = row(rows, 'CPU fault from VRAM', '1 x 2M');
  assert.equal(c2.phases.fault, kc.faultEntryExitNs);
  assert.ok(Math.abs(c2.phases.bind - pt(1)) < 1e-9);
  assert.ok(Math.abs(c2.phases.copy - (dev.copySetupNs + wire(512))) < 1e-6);
  assert.ok(c2.acct['copy fence wait'] > wire(512) / 2, 'the CPU waited for the copy fence');
});

test('nouveau-fault: 2 MiB costs less per byte than 4 KiB, both ways; one 2 MiB folio beats 512 x 4 KiB', () => {
  const rows = runNouveauFault(gpu);
  const perKiB = (r: NouveauFaultRow): number => r.ns / (r.bytes / 1024);
  for (const sc of ['SVM_BIND to VRAM', 'CPU fault from VRAM']) {
    const small = row(rows, sc, '1 x 4K');
    const big = row(rows, sc, '1 x 2M');
    assert.ok(perKiB(big) * 10 < perKiB(small), `${sc}: ${perKiB(big)} vs ${perKiB(small)} ns/KiB`);
    assert.ok(big.ns > small.ns, `${sc}: a 2 MiB fault takes longer in total`);
  }
  assert.ok(row(rows, 'SVM_BIND to VRAM', '1 x 2M').ns * 10 < row(rows, 'SVM_BIND to VRAM', '512 x 4K').ns);
});

test('nouveau-fault: deterministic (same figures twice), and the phase map rejects an unknown charge', () => {
  assert.deepEqual(runNouveauFault(gpu), runNouveauFault(gpu));
  assert.throws(() => nouveauPhaseOf('something new'), /belongs to no phase/);
});

test('nouveau without a clock behaves as with one: same pages, same data, same driver counters', () => {
  const run = (withClock: boolean): unknown => {
    const g = bootGpu();
    if (withClock) g.k.clock = new SimClock(gpu);
    assert.equal(svmInit(g), 0);
    const a = mkVma(g.p, 8, RW);
    uwrite(g.p, a, pattern(8, 3));
    assert.equal(svmBind(g, a, a + 4 * PAGE), 0);
    const r = gpuAccess(g, a, 8, GPU_ACCESS_READ);
    assert.equal(r.ret, 0);
    assert.equal(gpuAccess(g, a + 6 * PAGE, 1, GPU_ACCESS_WRITE, new Uint8Array(PAGE).fill(9)).ret, 0);
    assert.ok(cpu(g.p.mm, a, true) >= 0);
    const data = uread(g.p, a, 8 * PAGE);
    const out = { data: Buffer.from(data).toString('base64'), gpuRead: Buffer.from(r.data).toString('base64'), faults: r.faults,
      dmem: { ...g.drm.dmem.stat }, chan: { ...g.drm.dmem.chan.stat }, svm: { ...g.drm.svm.stat }, allocated: g.drm.dmem.allocated() };
    if (withClock) assert.ok(g.k.clock!.now() > 0, 'time was charged');
    return out;
  };
  assert.deepEqual(run(true), run(false));
});

test('hmmsim model nouveau-fault: table, --json, --sweep; bad input exits 2 with a specific message', () => {
  const r = spawnSync(process.execPath, [BIN, 'model', 'nouveau-fault', '--profile', 'pcie5-gpu'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /nouveau fault latency by phase, profile pcie5-gpu/);
  for (const h of ['migrate', 'copy', 'get pages', 'bind']) assert.ok(r.stdout.includes(h), h);
  assert.match(r.stdout, /SVM_BIND to VRAM\s+1 x 2M/);
  const j = spawnSync(process.execPath, [BIN, 'model', 'nouveau-fault', '--profile', 'pcie5-gpu', '--json', '--sweep', 'device.copySetupNs=1000,5000'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(j.status, 0, j.stderr);
  const docs = j.stdout.trim().split(/\n(?=\{)/).map((s) => JSON.parse(s) as { variant: string; rows: NouveauFaultRow[] });
  assert.deepEqual(docs.map((d) => d.variant), ['device.copySetupNs=1000', 'device.copySetupNs=5000']);
  const c = (d: { rows: NouveauFaultRow[] }): number => row(d.rows, 'SVM_BIND to VRAM', '512 x 4K').acct['nouveau copy: submit'];
  assert.ok(Math.abs(c(docs[1]) - c(docs[0]) - 512 * 4000) < 1e-6, 'each of the 512 copy commands pays the swept setup');
  // At 1 us per submit the link (1 us latency + 65 ns per page) is the bottleneck: the CPU waits for the fence.
  assert.ok(row(docs[0].rows, 'SVM_BIND to VRAM', '512 x 4K').acct['copy fence wait'] > 0);
  const help = spawnSync(process.execPath, [BIN, 'model', '--help'], { encoding: 'utf8', timeout: 60_000 });
  assert.match(help.stdout, /nouveau-fault/);
  for (const [args, msg] of [
    [['model', 'nouveau-fault', '--profile', 'zen3-2s'], /nouveau-fault: profile 'zen3-2s' has no device and link/],
    [['model', 'nouveau-fault', '--profile', 'pcie5-gpu', '--sweep', 'device.nothing=1'], /no numeric value 'device.nothing'/],
    [['model', 'nouveau-fault', '--profile', 'nope'], /unknown profile 'nope'/],
  ] as Array<[string[], RegExp]>) {
    const b = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(b.status, 2, args.join(' '));
    assert.match(b.stderr, msg);
  }
});
