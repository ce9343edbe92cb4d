// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fuzz driving the nouveau model (src/fuzz, docs/FUZZ.md "nouveau"):
 * a fixed-seed campaign with both drivers, each nouveau operation's
 * behaviour against the shadow, each nouveau known finding from its
 * shortest sequence, the checked-mode GPU page-table checker catching an
 * injected stale entry, and reproducers that replay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { System } from '../src/user/system.js';
import type { Kernel } from '../src/kernel/kernel.js';
import { KernelBug } from '../src/kernel/printk.js';
import {
  type Op, type RunConfig, DRIVER_NAMES, KNOWN_FINDINGS, MachinePool, replay, reproducerText, runCampaign, runSequence,
} from '../src/fuzz/index.js';
import { FuzzUsageError, parseFuzzOptions } from '../src/cli/fuzz.js';
import { GPU_ACCESS_READ, type NouveauDrm, nouveauDevice } from '../src/drivers/nouveau/index.js';
import { NOUVEAU_APER_HOST } from '../src/drivers/nouveau/chan.js';
import { PAGE, bootGpu, gpuAccess, svmInit, uwrite } from './nouveau_helpers.js';
import { RW, mkVma } from './dmirror_helpers.js';

const BOTH: RunConfig = { settings: [], devices: ['private', 'coherent'], thp: 'madvise', drivers: ['dmirror', 'nouveau'] };
const NV: RunConfig = { ...BOTH, drivers: ['nouveau'] };

/** Replay ops and keep the machine's kernel and its first nouveau device. */
function run(ops: Op[], rc: RunConfig = NV): { r: ReturnType<typeof replay>; k: Kernel; drm0: NouveauDrm } {
  let k: Kernel | null = null;
  let drm0: NouveauDrm | null = null;
  const r = replay(rc, ops, { onMachine: (sys: System) => { k = sys.kernel; drm0 = nouveauDevice(sys.kernel); } });
  return { r, k: k!, drm0: drm0! };
}

const anon = (n = 1, a = 0): Op => ({ o: 'mmap', p: 0, kind: 'anon', prot: 3, r: 'A', a, n, s: false });
const cpuWrite = (v: number, len = PAGE, p = 0): Op => ({ o: 'write', p, r: 'A', a: 0, s: true, off: 0, len, v });
const nv = (c: 'INIT' | 'BIND' | 'READ' | 'WRITE' | 'ATOMIC', n = 1, f = 0, p = 0, extra: Partial<Extract<Op, { o: 'nv' }>> = {}): Op =>
  ({ o: 'nv', p, f, c, v: 7, r: 'A', a: 0, n, s: true, ...extra });
const open = (i = true, p = 0): Op => ({ o: 'nvopen', p, i });

test('fixed-seed campaign with dmirror and nouveau: no violation, nouveau operations reach the driver', () => {
  const r = runCampaign({ rc: BOTH, seed: 14100, runs: 25, length: 40, shard: { index: 0, count: 1 }, exclude: new Set(), shrinkSeconds: 5, stopOnViolation: false });
  assert.equal(r.violations, 0, r.violationReports.map((v) => v.message).join('\n'));
  assert.equal(r.jsExceptions, 0);
  assert.equal(r.bytesLost, 0);
  assert.ok(r.opsByDriver.nouveau > 150, `nouveau operations: ${r.opsByDriver.nouveau}`);
  assert.ok(r.opsByDriver.dmirror > 100, `dmirror operations: ${r.opsByDriver.dmirror}`);
  assert.ok(r.nouveauCalls > 100, `calls reaching nouveau: ${r.nouveauCalls}`);
});

test('--drivers: dmirror only generates no nouveau operation; unknown names are a usage error', () => {
  const dm = runCampaign({ rc: { ...BOTH, drivers: ['dmirror'] }, seed: 5, runs: 10, length: 40, shard: { index: 0, count: 1 }, exclude: new Set(), shrinkSeconds: 5, stopOnViolation: false });
  assert.equal(dm.opsByDriver.nouveau, 0);
  assert.equal(dm.nouveauCalls, 0);
  const nvOnly = runCampaign({ rc: NV, seed: 5, runs: 10, length: 40, shard: { index: 0, count: 1 }, exclude: new Set(), shrinkSeconds: 5, stopOnViolation: false });
  assert.equal(nvOnly.opsByDriver.dmirror, 0);
  assert.equal(nvOnly.violations, 0);
  const base = { seed: '1', length: '40', devices: 'private,coherent', thp: 'madvise', shard: '0/1', shrinkSeconds: '5' };
  assert.throws(() => parseFuzzOptions({ ...base, drivers: 'dmirror,amdgpu' }, () => {}), (e: unknown) => e instanceof FuzzUsageError && /--drivers: 'amdgpu' is not a driver the fuzz drives \(dmirror, nouveau\)/.test(e.message));
  assert.throws(() => parseFuzzOptions({ ...base, drivers: ',' }, () => {}), FuzzUsageError);
  assert.deepEqual(parseFuzzOptions({ ...base, drivers: DRIVER_NAMES.join(',') }, () => {}).rc.drivers, ['dmirror', 'nouveau']);
});

test('SVM_INIT, SVM_BIND to VRAM, GPU read/write, CPU faults back: the shadow agrees and data moves', () => {
  const { r, drm0 } = run([
    anon(4), cpuWrite(3, 4 * PAGE), open(false),
    nv('READ', 4), /* no SVMM yet: -EINVAL */
    nv('BIND', 4), /* no SVMM: -EINVAL */
    nv('INIT'), nv('INIT'), /* 0, then -EBUSY */
    nv('BIND', 4), nv('READ', 4), nv('WRITE', 2),
    { o: 'read', p: 0, r: 'A', a: 0, s: true, off: 0, len: 4 * PAGE },
  ]);
  assert.equal(r.violation, null, r.violation?.message);
  assert.ok(drm0.dmem.stat.toDevice >= 4, `to VRAM: ${drm0.dmem.stat.toDevice}`);
  assert.ok(drm0.dmem.stat.toRam >= 1, `back to RAM: ${drm0.dmem.stat.toRam}`);
  assert.ok(drm0.svm.stat.replayed >= 1, 'GPU faults were served and replayed');
  assert.equal(r.nouveauCalls, 8 + 1 /* final GPU read-back of the one mapping */);
});

test('SVM_BIND argument variants: -EINVAL for each invalid one, 0 for a priority or unaligned bounds (mainline)', () => {
  for (const b of ['reserved', 'hibits', 'empty', 'cmd', 'target', 'stride', 'prio', 'unaligned'] as const) {
    const { r, drm0 } = run([anon(2), cpuWrite(9, 2 * PAGE), open(true), nv('BIND', 2, 0, 0, { b })]);
    assert.equal(r.violation, null, `${b}: ${r.violation?.message}`);
    const moved = drm0.dmem.stat.toDevice;
    if (b === 'prio' || b === 'unaligned') assert.equal(moved, 2, `${b} migrates`);
    else assert.equal(moved, 0, `${b} migrates nothing`);
  }
});

test('GPU access outside a mapping is cancelled (-EFAULT); a failed GPU write leaves {old, new}; the GPU atomic takes the page', () => {
  const { r, k } = run([anon(2), cpuWrite(5, 2 * PAGE), open(true), nv('READ', 3), nv('WRITE', 3), nv('ATOMIC', 1), { o: 'read', p: 0, r: 'A', a: 0, s: true, off: 0, len: 8 }]);
  assert.equal(r.violation, null, r.violation?.message);
  assert.ok(nouveauDevice(k)!.svm.stat.cancelled >= 2);
});

test('device removal (nvkill) with pages in VRAM evicts them: every byte survives; the old file gets -ENODEV, a new one works', () => {
  const { r, k, drm0 } = run([
    anon(8), cpuWrite(11, 8 * PAGE), open(true), nv('BIND', 8), { o: 'nvkill' },
    nv('READ', 8), /* the old file: -ENODEV */
    open(true), nv('READ', 8, 1), nv('BIND', 8, 1),
  ]);
  assert.equal(r.violation, null, r.violation?.message);
  assert.equal(drm0.dmem.stat.evicted, 8);
  assert.notEqual(nouveauDevice(k), drm0, 'a new device was probed');
});

test('each nouveau known finding comes from its sequence', () => {
  const cases: Array<{ id: string; ops: Op[] }> = [
    { id: 'nouveau-bind-inherited-file', ops: [anon(1), open(true), { o: 'fork', p: 0 }, nv('BIND', 1, 0, 1)] },
    { id: 'nouveau-second-svmm-skips-migrate', ops: [anon(1), cpuWrite(4), open(true), open(true), nv('READ', 1, 1), nv('BIND', 1, 0)] },
    { id: 'nouveau-gpu-write-readonly-vram-livelock', ops: [anon(1), cpuWrite(4), open(true), nv('BIND'), { o: 'fork', p: 0 }, nv('WRITE')] },
    { id: 'nouveau-gpu-atomic-retry-livelock', ops: [anon(1), open(true), { o: 'read', p: 0, r: 'A', a: 0, s: true, off: 0, len: 8 }, nv('ATOMIC')] },
    { id: 'nouveau-close-frees-svmm', ops: [anon(1), cpuWrite(4), open(true), nv('BIND'), { o: 'nvclose', p: 0, f: 0 }, { o: 'read', p: 0, r: 'A', a: 0, s: true, off: 0, len: 8 }] },
    {
      id: 'nouveau-exit-keeps-gpu-entries',
      // fork write-protects (and so invalidates) the parent's entry: the GPU reads after it.
      ops: [anon(1), cpuWrite(4), open(true), { o: 'fork', p: 0 }, nv('READ'), { o: 'read', p: 0, r: 'A', a: 40, s: false, off: 0, len: 1 }, nv('READ')],
    },
    {
      id: 'nouveau-bind-prot-none',
      ops: [anon(2), cpuWrite(9, 2 * PAGE), { o: 'mprotect', p: 0, prot: 0, r: 'A', a: 0, n: 2, s: true }, open(true), nv('BIND', 2), nv('READ', 2)],
    },
  ];
  for (const c of cases) {
    assert.ok(KNOWN_FINDINGS.some((f) => f.id === c.id), `${c.id} is registered`);
    const { r } = run(c.ops);
    assert.equal(r.violation, null, `${c.id}: ${r.violation?.message}`);
    assert.ok(r.findings.some((f) => f.id === c.id), `${c.id}: got ${JSON.stringify(r.findings)}`);
  }
});

test('checked mode: the GPU page-table checker catches an injected stale GPU entry', () => {
  const g = bootGpu();
  const addr = mkVma(g.p, 2, RW);
  uwrite(g.p, addr, new Uint8Array(2 * PAGE).fill(3));
  assert.equal(svmInit(g), 0);
  assert.equal(gpuAccess(g, addr, 2, GPU_ACCESS_READ).ret, 0);
  const svmm = [...g.drm.svmms()][0];
  const e0 = svmm.pt.get(addr)!;
  assert.equal(e0.aper, NOUVEAU_APER_HOST);
  g.k.checkpoint('clean');
  // Page 1's entry now names page 0's frame: what a missed invalidation leaves.
  svmm.pt.set(addr + PAGE, { ...e0 });
  assert.throws(() => g.k.checkpoint('injected'), (e: unknown) => e instanceof KernelBug && e.kind === 'INVARIANT' && /^after injected: stale GPU mapping$/.test(e.rule) && /the CPU maps host pfn/.test(e.state ?? ''));
  // An atomic entry over a present (not device-exclusive) CPU entry is caught too.
  svmm.pt.delete(addr + PAGE);
  g.k.checkpoint('clean again');
  svmm.pt.set(addr, { ...e0, atomic: true });
  assert.throws(() => g.k.checkpoint('atomic'), (e: unknown) => e instanceof KernelBug && /the GPU entry is atomic/.test(e.state ?? ''));
});

test('a reproducer of a nouveau sequence names the drivers and replays to the same result; pooled machines agree', () => {
  const ops: Op[] = [anon(2), cpuWrite(6, 2 * PAGE), open(true), nv('BIND', 2), nv('WRITE', 1), { o: 'nvkill' }, nv('READ', 2)];
  const text = reproducerText(BOTH, ops, 'nouveau reproducer', 'none');
  assert.match(text, /"drivers":\["dmirror","nouveau"\]/);
  const a = replay(BOTH, ops);
  const b = runSequence(ops, BOTH);
  assert.equal(a.violation, null, a.violation?.message);
  assert.deepEqual({ ...a }, { ...b });
  const pool = new MachinePool(BOTH);
  for (let i = 0; i < 3; i++) {
    const p = runSequence(ops, BOTH, { pool });
    assert.deepEqual(p, a, `pooled run ${i}`);
  }
});

test('campaign regressions (seeds 32005602, 31004695, 34005175): SNAPSHOT of a page in another owner\'s device-private THP is PROT_ERROR, not a write permission; a R/O pin of a PROT_READ hugetlb page after fork succeeds; a R/O longterm pin unshares a private file page', () => {
  // nouveau SVM_BIND of a 2 MiB hole in a PROT_READ mapping makes a device-private
  // PMD; dmirror's snapshot (another owner) gets HMM_PFN_ERROR from
  // hmm_vma_handle_absent_pmd(): byte 0xff, which the shadow once read as
  // "has HMM_DMIRROR_PROT_WRITE".
  const snap: Op[] = [
    { o: 'mmap', p: 0, kind: 'anon', prot: 3, r: 'H', a: 0, n: 1, s: true },
    { o: 'mmap', p: 0, kind: 'anon', prot: 1, r: 'A', a: 0, n: 1, s: true },
    { o: 'open', p: 0, d: 1 },
    { o: 'nv', p: 0, f: 0, c: 'BIND', v: 1, r: 'A', a: 0, n: 1, s: true },
    { o: 'dm', p: 0, f: 0, c: 'SNAPSHOT', v: 1, r: 'A', a: 0, n: 1, s: true },
  ];
  const a = replay({ ...BOTH, thp: 'never' }, snap);
  assert.equal(a.violation, null, a.violation?.message);
  assert.equal(a.ops, snap.length);
  assert.deepEqual(a.findings, [], "no finding ends it");
  const pin: Op[] = [
    { o: 'mmap', p: 0, kind: 'huge', prot: 1, r: 'A', a: 0, n: 1, s: true },
    { o: 'read', p: 0, r: 'A', a: 0, s: true, off: 0, len: 1 },
    { o: 'fork', p: 0 },
    { o: 'pin', p: 0, w: false, fast: false, r: 'H', a: 0, n: 1, s: true },
  ];
  const b = replay({ ...BOTH, thp: 'always' }, pin);
  assert.equal(b.violation, null, b.violation?.message);
  assert.equal(b.ops, pin.length);
  // Fuzz run 34005175 (--seed=34000000, run 5175): a R/O longterm pin of a MAP_PRIVATE file page unshares it
  // (gup_must_unshare(), 84209e87c696): a later write to the file through
  // the fork child's shared mapping is no longer seen there (the shadow
  // once expected it; the GPU read got the private copy).
  const filep: Op[] = [
    { o: 'nv', p: 0, f: 0, c: 'WRITE', v: 1, r: 'A', a: 0, n: 3, s: true },
    { o: 'mmap', p: 0, kind: 'file', prot: 3, r: 'A', a: 3, n: 1, s: false },
    { o: 'fork', p: 0 },
    { o: 'mmap', p: 1, kind: 'file', prot: 3, r: 'T', a: 0, n: 1, s: true },
    { o: 'mmap', p: 0, kind: 'fileP', prot: 3, r: 'A', a: 0, n: 1, s: true },
    { o: 'pin', p: 0, w: false, fast: true, r: 'H', a: 0, n: 1, s: true },
    { o: 'write', p: 1, r: 'A', a: 0, s: true, off: 0, len: 1, v: 1 },
  ];
  const c = replay({ ...BOTH, thp: 'mixed' }, filep);
  assert.equal(c.violation, null, c.violation?.message);
  assert.equal(c.bytesLost, 0);
  assert.equal(c.ops, filep.length);
});
