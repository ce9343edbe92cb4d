// SPDX-License-Identifier: GPL-2.0-only
/**
 * hmmsim fuzz (src/fuzz): the campaign finds nothing where the model is
 * known good, catches and shrinks a planted bug, its reproducers replay,
 * its shards partition the runs, and the known COW finding is there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import fc from 'fast-check';
import {
  type Op, type RunConfig, DEFAULT_RUN_CONFIG, MachinePool, replay, runCampaign, runSequence, sequenceArbitrary, shardRange, matchFinding,
} from '../src/fuzz/index.js';
import { parseShard, FuzzUsageError } from '../src/cli/fuzz.js';

const NO_SHARD = { index: 0, count: 1 };

/*
 * The default configuration: both device types, every operation kind.
 * Kernel-faithful findings (docs/FINDINGS.md) end a sequence and are
 * counted, never a violation.
 */
const CLEAN: RunConfig = DEFAULT_RUN_CONFIG;

test('fuzz: a fixed-seed budget on the default configuration reports no violation', () => {
  const r = runCampaign({ rc: CLEAN, seed: 1, runs: 30, length: 50, shard: NO_SHARD, exclude: new Set(), shrinkSeconds: 10 });
  const first = r.violationReports[0];
  assert.equal(r.violations, 0, first ? `${first.message}\n${first.replayCommand}\n${first.reproducer}` : '');
  assert.equal(r.sequences, 30);
  assert.ok(r.ops >= 30 * 45, `ops ${r.ops}`);
  assert.equal(r.bytesLost, 0);
  assert.equal(r.jsExceptions, 0);
});

test('fuzz: a planted bug (devpage_free_refcount_one) is caught, shrunk, and its reproducer replays', () => {
  const rc: RunConfig = { settings: ['devpage_free_refcount_one=on'], devices: ['coherent'], thp: 'madvise' };
  const r = runCampaign({ rc, seed: 1, runs: 20, length: 50, shard: NO_SHARD, exclude: new Set(['fork']), shrinkSeconds: 20 });
  assert.equal(r.violations, 1);
  const v = r.violationReports[0];
  assert.equal(v.cls, 'kernel');
  assert.match(v.message, /KASAN/);
  assert.ok(v.ops.length <= 5, `shrunk to ${v.ops.length} operations`);
  assert.ok(v.ops.length < v.originalLength);
  assert.match(v.replayCommand, /^hmmsim fuzz --seed \d+ --runs 1 --config devpage_free_refcount_one=on /);
  // The reproducer's operations (one JSON object per line) replay to the same violation.
  const lines = v.reproducer.split('\n').filter((l) => /^ {4}\{"o":/.test(l));
  const ops = lines.map((l) => JSON.parse(l.trim().replace(/,$/, '')) as Op);
  assert.deepEqual(ops, JSON.parse(JSON.stringify(v.ops)));
  assert.match(v.reproducer, /import \{ replay \} from '\.\.\/src\/fuzz\/index\.js';/);
  const again = replay(rc, ops);
  assert.ok(again.violation);
  assert.equal(again.violation.cls, 'kernel');
  assert.equal(again.violation.message.split('\n')[0], v.message.split('\n')[0]);
  // Without the planted bug the same sequence is clean.
  assert.equal(replay({ ...rc, settings: [] }, ops).violation, null);
  // The reproducer text itself runs under node:test and fails with the violation
  // (written outside dist/test, with the import pointed at this build).
  const index = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/fuzz/index.js')).href;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hmmsim-fuzz-'));
  const file = path.join(dir, 'repro.test.mjs');
  try {
    fs.writeFileSync(file, v.reproducer.replace("'../src/fuzz/index.js'", `'${index}'`));
    const env: NodeJS.ProcessEnv = { ...process.env, HMMSIM_CHECKED: '1' };
    delete env.NODE_TEST_CONTEXT; /* a separate test run, not a child of this one */
    const run = spawnSync(process.execPath, ['--test', file], { encoding: 'utf8', env });
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /KASAN/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/*
 * fuzz-findings/02: a CPU COW after fork leaves the device mirror on the
 * child's page. TRUE NOW on this branch; AFTER THE COW-NOTIFIER FIX, flip
 * to `assert.equal(r.violation, null)`.
 */
test('fuzz: the fork-COW sequence (issue 11 root cause 1) reads the parent\'s new bytes through the device', () => {
  const R = { r: 'A' as const, a: 0, n: 1, s: true };
  const W = (v: number): Op => ({ o: 'write', p: 0, r: 'A', a: 0, s: true, off: 0, len: 4096, v });
  const D: Op = { o: 'dm', p: 0, f: 0, c: 'READ', v: 1, ...R };
  const ops: Op[] = [{ o: 'mmap', p: 0, kind: 'anon', prot: 3, ...R, s: false }, { o: 'open', p: 0, d: 0 }, W(1), { o: 'fork', p: 0 }, D, W(2), D];
  const r = replay({ settings: [], devices: ['private'], thp: 'madvise' }, ops);
  assert.equal(r.violation, null, r.violation?.message);
  assert.equal(r.ops, ops.length);
  assert.equal(r.bytesLost, 0);
});

test('fuzz: a device WRITE to an untouched page migrated to device-private memory is the known oops, and correct with the fix', () => {
  const R = { r: 'A' as const, a: 0, n: 1, s: true };
  const ops: Op[] = [
    { o: 'open', p: 0, d: 0 },
    { o: 'mmap', p: 0, kind: 'anon', prot: 3, ...R },
    { o: 'dm', p: 0, f: 0, c: 'MIGRATE_TO_DEV', v: 1, ...R },
    { o: 'dm', p: 0, f: 0, c: 'WRITE', v: 1, ...R },
    { o: 'read', p: 0, r: 'A', a: 0, s: true, off: 0, len: 4096 },
  ];
  const mainline = replay({ settings: [], devices: ['private'], thp: 'madvise' }, ops);
  assert.equal(mainline.violation, null, mainline.violation?.message);
  assert.deepEqual(mainline.findings.map((f) => [f.id, f.opIndex]), [['dmirror-devpriv-copy-oops', 3]]);
  const fixed = replay({ settings: ['dmirror_devmem_fix=on'], devices: ['private'], thp: 'madvise' }, ops);
  assert.equal(fixed.violation, null, fixed.violation?.message);
  assert.deepEqual(fixed.findings, []);
  assert.equal(fixed.ops, ops.length);
});

test('fuzz: a second fd on the same device keeps a stale entry across the other fd\'s migration (known test_hmm finding)', () => {
  const A = { r: 'A' as const, a: 2, n: 1, s: true };
  const ops: Op[] = [
    { o: 'open', p: 0, d: 1 },
    { o: 'open', p: 0, d: 1 },
    { o: 'mmap', p: 0, kind: 'anon', prot: 3, r: 'A', a: 0, n: 43, s: true },
    { o: 'dm', p: 0, f: 1, c: 'WRITE', v: 1, ...A },
    { o: 'dm', p: 0, f: 0, c: 'MIGRATE_TO_DEV', v: 1, ...A },
  ];
  const mainline = replay({ settings: [], devices: ['private'], thp: 'madvise' }, ops);
  assert.equal(mainline.violation, null, mainline.violation?.message);
  assert.deepEqual(mainline.findings.map((f) => f.id), ['dmirror-second-mirror-skips-migrate']);
  const fixed = replay({ settings: ['dmirror_devmem_fix=on'], devices: ['private'], thp: 'madvise' }, ops);
  assert.equal(fixed.violation, null, fixed.violation?.message);
  assert.deepEqual(fixed.findings, []);
});

test('fuzz: user-visible errors are expected, not violations (SIGSEGV, -EINVAL)', () => {
  const rc: RunConfig = { settings: [], devices: ['private'], thp: 'never' };
  // A store to an unmapped page kills the process with SIGSEGV; FLAGS 0 fails the range check.
  const ops: Op[] = [
    { o: 'open', p: 0, d: 0 },
    { o: 'mmap', p: 0, kind: 'anon', prot: 1, r: 'A', a: 0, n: 2, s: false },
    { o: 'dm', p: 0, f: 0, c: 'WRITE', v: 3, r: 'A', a: 0, n: 2, s: true },
    { o: 'dm', p: 0, f: 0, c: 'SNAPSHOT', v: 3, r: 'A', a: 0, n: 4, s: false },
    { o: 'write', p: 0, r: 'A', a: 1, s: true, off: 0, len: 8, v: 9 },
    { o: 'read', p: 0, r: 'A', a: 0, s: false, off: 0, len: 1 },
  ];
  const r = replay(rc, ops);
  assert.equal(r.violation, null, r.violation?.message);
  assert.equal(r.ops, ops.length);
});

test('fuzz: --shard i/n partitions the runs into contiguous ranges', () => {
  for (const [runs, n] of [[10, 3], [7, 7], [100, 8], [3, 5]] as const) {
    const seen: number[] = [];
    let prevEnd = 0;
    for (let i = 0; i < n; i++) {
      const { first, end } = shardRange(runs, i, n);
      assert.equal(first, prevEnd);
      prevEnd = end;
      for (let r = first; r < end; r++) seen.push(r);
    }
    assert.deepEqual(seen, [...Array(runs).keys()]);
  }
  assert.deepEqual(parseShard('2/5'), { index: 2, count: 5 });
  assert.throws(() => parseShard('5/5'), FuzzUsageError);
  assert.throws(() => parseShard('x'), FuzzUsageError);
  // Each shard runs exactly its runs.
  const a = runCampaign({ rc: CLEAN, seed: 3, runs: 4, length: 5, shard: { index: 1, count: 2 }, exclude: new Set(), shrinkSeconds: 5 });
  assert.deepEqual(a.runs, { first: 2, end: 4 });
  assert.equal(a.sequences, 2);
});

test('fuzz: the known-findings registry matches kernel-faithful reports only', () => {
  assert.equal(matchFinding('HANG', "dmirror_read: dmirror_fault() returns 0 for the mirror's exited mm #3; ...")?.id, 'dmirror-fault-livelock-exited-mm');
  assert.equal(matchFinding('OOPS', 'BUG: unable to handle page fault in dmirror_do_read')?.id, 'dmirror-devpriv-copy-oops');
  assert.equal(matchFinding('OOPS', 'BUG: unable to handle page fault in migrate_vma_pages'), null);
  assert.equal(matchFinding('INVARIANT', 'after ioctl: stale secondary mapping'), null);
  assert.equal(matchFinding('INVARIANT', 'after ioctl: stale secondary mapping: a second mirror of the device skipped its MMU_NOTIFY_MIGRATE invalidation (dmirror_interval_invalidate)')?.id, 'dmirror-second-mirror-skips-migrate');
  assert.equal(matchFinding('INVARIANT', 'dmirror_do_read'), null);
  assert.equal(matchFinding('KASAN', 'use-after-free in folio_try_get'), null);
});

test('fuzz: a machine rolled back by the pool gives the same results as a new one', () => {
  const pool = new MachinePool(DEFAULT_RUN_CONFIG);
  for (let seed = 0; seed < 12; seed++) {
    const [ops] = fc.sample(sequenceArbitrary(DEFAULT_RUN_CONFIG, 60, new Set()), { seed: 4200 + seed, numRuns: 1 });
    const fresh = runSequence(ops, DEFAULT_RUN_CONFIG);
    const pooled = runSequence(ops, DEFAULT_RUN_CONFIG, { pool });
    assert.deepEqual(pooled, fresh, `seed ${4200 + seed}`);
  }
  assert.ok(pool.reuses >= 6, `reuses ${pool.reuses}`);
});

test('fuzz --replay --trace writes the sequence\'s run as schema-valid Trace Event JSON with its migration spans', async () => {
  const { Ajv } = await import('ajv');
  const { TRACE_EVENT_SCHEMA } = await import('./trace_event_schema.js');
  const here = path.dirname(fileURLToPath(import.meta.url));
  const bin = path.resolve(here, '../../bin/hmmsim.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hmmsim-fuzz-trace-'));
  const seq = path.join(dir, 'seq.json');
  const R = { r: 'A' as const, a: 0, n: 1, s: true };
  const ops: Op[] = [{ o: 'open', p: 0, d: 0 }, { o: 'mmap', p: 0, kind: 'anon', prot: 3, ...R }, { o: 'write', p: 0, r: 'A', a: 0, s: true, off: 0, len: 64, v: 3 }, { o: 'dm', p: 0, f: 0, c: 'MIGRATE_TO_DEV', v: 1, ...R }];
  fs.writeFileSync(seq, JSON.stringify(ops));
  const out = path.join(dir, 'trace.json');
  const r = spawnSync(process.execPath, [bin, 'fuzz', '--replay', seq, '--devices', 'private', '--trace', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const trace = JSON.parse(fs.readFileSync(out, 'utf8')) as Array<{ ph: string; name: string }>;
  const validate = new Ajv({ allErrors: true }).compile(TRACE_EVENT_SCHEMA);
  assert.ok(validate(trace), JSON.stringify(validate.errors?.slice(0, 3)));
  const spans = new Set(trace.filter((e) => e.ph === 'B').map((e) => e.name));
  for (const fn of ['migrate_vma_setup', 'migrate_vma_pages', 'migrate_vma_finalize']) assert.ok(spans.has(fn), `a ${fn} span`);
  const bad = spawnSync(process.execPath, [bin, 'fuzz', '--trace', out], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--trace needs --replay/);
});
