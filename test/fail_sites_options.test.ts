// SPDX-License-Identifier: GPL-2.0-only
/**
 * The options of the allocation-failure sweep (src/fuzz/fail_sites.ts,
 * `hmmsim fail-sites`): --every-occurrence, --context-above T (one
 * occurrence per distinct kernel call context above T), --shard i/n
 * (the shards partition the plan), --exclude, --dry-run (the plan without
 * injected runs), runs explained by a known finding, and the CLI's errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { System } from '../src/user/system.js';
import { PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS } from '../src/kernel/mm/mmap.js';
import { testHmmInit, encodeCmd, HMM_DMIRROR_CMD_SIZE } from '../src/drivers/test_hmm/index.js';
import { HMM_DMIRROR_READ } from '../src/drivers/test_hmm/uapi.js';
import { O_RDWR } from '../src/kernel/fs/chardev.js';
import { runFailSiteSweep, type FailScenario } from '../src/fuzz/fail_sites.js';
import { parseFailSitesOptions } from '../src/cli/fail_sites.js';
import { matchFinding } from '../src/fuzz/findings.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'hmmsim.js');
const PG = 4096;
const N = 24;

/**
 * N pages written by the CPU (anon_fault from the user page fault), then
 * N other pages read through the device (anon_fault from hmm_range_fault):
 * 2N occurrences of anon_fault over two kernel call paths.
 */
const twoPaths: FailScenario = {
  name: 'test/two-paths',
  run(ctx) {
    const s = new System({ ramBytes: 256 << 20, nrHugepages: 0, checked: true });
    try {
      assert.equal(testHmmInit(s.kernel), 0);
      const p = s.spawn('t');
      ctx.ready(s.kernel);
      const a = p.mmap(0, 2 * N * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      if (a > 0) {
        try {
          p.writeBytes(a, new Uint8Array(N * PG).fill(7));
        } catch {
          /* a failed fault may end the access: allowed */
        }
        const fd = p.open('/dev/hmm_dmirror0', O_RDWR);
        if (fd >= 0) {
          const c = p.malloc(HMM_DMIRROR_CMD_SIZE);
          const mirror = p.malloc(N * PG);
          if (c > 0 && mirror > 0) {
            p.writeBytes(c, encodeCmd({ addr: BigInt(a + N * PG), ptr: BigInt(mirror), npages: BigInt(N), cpages: 0n, faults: 0n }));
            p.ioctl(fd, HMM_DMIRROR_READ, c);
          }
          p.close(fd);
        }
      }
      p.exit(0);
      ctx.exited(s.kernel);
      return { status: 'pass', reason: '', warnings: s.kernel.printk.warnings.map((w) => w.rule) };
    } finally {
      s.kernel.release();
    }
  },
};

test('--every-occurrence plans every occurrence; the default samples at most maxOccurrences', () => {
  const every = runFailSiteSweep({ scenarios: [twoPaths], sites: ['anon_fault'], everyOccurrence: true, dryRun: true });
  const n = every.scenarios[0].occurrences.anon_fault;
  assert.ok(n >= 2 * N, `anon_fault occurrences ${n}`);
  assert.equal(every.plan.planned, n);
  assert.equal(every.totals.runs, 1, 'a dry run only counts');
  assert.equal(every.dryRun, true);
  const sampled = runFailSiteSweep({ scenarios: [twoPaths], sites: ['anon_fault'], maxOccurrences: 5, dryRun: true });
  assert.equal(sampled.plan.planned, 5);
});

test('--context-above T: above T one occurrence per distinct kernel call context (the CPU fault and hmm_range_fault paths), at most T every occurrence', () => {
  const r = runFailSiteSweep({ scenarios: [twoPaths], sites: ['anon_fault'], contextAbove: 8, dryRun: true });
  const row = r.scenarios[0];
  const n = row.occurrences.anon_fault;
  const ctx = row.contexts.anon_fault;
  assert.ok(ctx >= 2 && ctx < n, `contexts ${ctx} of ${n} occurrences`);
  assert.equal(r.plan.planned, ctx);
  assert.equal(r.plan.contexts, ctx);
  const occ = row.contextOccurrences.anon_fault;
  assert.equal(occ[0], 1, 'the first occurrence starts the first context');
  assert.ok(occ.some((i) => i > N), `an occurrence of the device path is failed: ${occ.join(',')}`);
  assert.equal(r.totals.runs, 2, 'the counting run and the context run');
  // At or under the threshold: every occurrence.
  const all = runFailSiteSweep({ scenarios: [twoPaths], sites: ['anon_fault'], contextAbove: n, dryRun: true });
  assert.equal(all.plan.planned, n);
  assert.deepEqual(all.scenarios[0].contexts, {});
  // The real runs: every context's first occurrence fails, nothing leaks.
  const run = runFailSiteSweep({ scenarios: [twoPaths], sites: ['anon_fault'], contextAbove: 8 });
  assert.equal(run.totals.runs, 2 + ctx);
  assert.equal(run.sites[0].tested, ctx);
  assert.deepEqual(run.sites[0].failures, []);
});

test('--shard i/n: the shards partition the plan (round-robin), each counts every scenario', () => {
  const whole = runFailSiteSweep({ scenarios: [twoPaths], everyOccurrence: true, dryRun: true });
  let sum = 0;
  for (let i = 0; i < 3; i++) {
    const r = runFailSiteSweep({ scenarios: [twoPaths], everyOccurrence: true, dryRun: true, shard: { index: i, count: 3 } });
    assert.equal(r.plan.planned, whole.plan.planned);
    assert.ok(Math.abs(r.plan.shardRuns - whole.plan.planned / 3) <= 1, `shard ${i}: ${r.plan.shardRuns} of ${whole.plan.planned}`);
    sum += r.plan.shardRuns;
  }
  assert.equal(sum, whole.plan.planned);
  // Real runs: shard 1/2 runs its half, and the injected runs of both halves add up.
  const h0 = runFailSiteSweep({ scenarios: [twoPaths], sites: ['__pte_alloc', 'vm_area_alloc', 'dmirror_bounce_init'], everyOccurrence: true, shard: { index: 0, count: 2 } });
  const h1 = runFailSiteSweep({ scenarios: [twoPaths], sites: ['__pte_alloc', 'vm_area_alloc', 'dmirror_bounce_init'], everyOccurrence: true, shard: { index: 1, count: 2 } });
  assert.equal(h0.totals.runs - 1 + h1.totals.runs - 1, h0.plan.planned);
  assert.deepEqual(h1.baselineFailures, [], 'baseline problems are shard 0\'s to report');
  assert.throws(() => runFailSiteSweep({ scenarios: [twoPaths], shard: { index: 2, count: 2 } }), RangeError);
});

test('--exclude drops scenarios after --filter', () => {
  const r = runFailSiteSweep({ filter: ['dmirror/*'], exclude: ['*fork*', 'dmirror/thp_*'], sites: ['dup_mm'], dryRun: true });
  assert.deepEqual(r.scenarios.map((s) => s.name), ['dmirror/migrate_roundtrip', 'dmirror/pageout_swap', 'dmirror/mprotect_mremap', 'dmirror/exclusive', 'dmirror/partial_read_then_migrate']);
});

test('a run that hits a known failSites finding counts for it, not as a failure; the fuzz does not match failSites entries', () => {
  const r = runFailSiteSweep({ filter: ['dmirror/partial_read_then_migrate'], sites: ['xa_store'], everyOccurrence: true });
  assert.ok((r.totals.findings['dmirror-xa-store-stale-entries'] ?? 0) >= 1, JSON.stringify(r.totals));
  assert.equal(r.totals.failures, 0, JSON.stringify(r.sites.flatMap((s) => s.failures)));
  assert.equal(matchFinding('INVARIANT', 'after ioctl: stale secondary mapping'), null, 'not a fuzz finding');
  assert.equal(matchFinding('INVARIANT', 'after ioctl: stale secondary mapping', { failSite: 'anon_fault' }), null, 'only when xa_store failed');
  assert.equal(matchFinding('INVARIANT', 'after ioctl: stale secondary mapping', { failSite: 'xa_store' })?.id, 'dmirror-xa-store-stale-entries');
});

test('CLI: bad values are usage errors (exit 2) with a clear message; --dry-run --json prints the plan', () => {
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ shard: '2/2' }, /--shard '2\/2' needs 0 <= i < n/],
    [{ shard: 'x' }, /--shard 'x' is not i\/n/],
    [{ contextAbove: '0' }, /--context-above '0' is not a positive integer/],
    [{ contextAbove: '1.5' }, /--context-above '1.5' is not a positive integer/],
    [{ everyOccurrence: true, maxOccurrences: '3' }, /--max-occurrences and --every-occurrence/],
    [{ contextAbove: '4', occurrence: '2' }, /--context-above and --occurrence/],
  ];
  for (const [o, re] of bad) {
    const p = parseFailSitesOptions(o);
    assert.equal(typeof p, 'string', JSON.stringify(o));
    assert.match(p as string, re);
  }
  const ok = parseFailSitesOptions({ shard: '3/64', contextAbove: '256' });
  assert.ok(typeof ok !== 'string');
  assert.deepEqual(ok.shard, { index: 3, count: 64 });
  assert.equal(ok.contextAbove, 256);

  const e = spawnSync(process.execPath, [BIN, 'fail-sites', '--shard', '5/4'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(e.status, 2);
  assert.match(e.stderr, /--shard '5\/4' needs 0 <= i < n/);
  const h = spawnSync(process.execPath, [BIN, 'fail-sites', '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  for (const o of ['--every-occurrence', '--context-above', '--shard', '--exclude', '--dry-run', '--json']) assert.ok(h.stdout.includes(o), o);
  const d = spawnSync(process.execPath, [BIN, 'fail-sites', '--filter', 'dmirror/hugetlb_fork', '--every-occurrence', '--dry-run', '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(d.status, 0, d.stderr);
  const j = JSON.parse(d.stdout) as { dryRun: boolean; totals: { occurrences: number; runs: number }; plan: { planned: number; estimatedCpuSeconds: number } };
  assert.equal(j.dryRun, true);
  assert.equal(j.totals.runs, 1);
  assert.equal(j.plan.planned, j.totals.occurrences);
  assert.ok(j.plan.estimatedCpuSeconds >= 0);
  const t = spawnSync(process.execPath, [BIN, 'fail-sites', '--filter', 'dmirror/hugetlb_fork', '--context-above', '4', '--dry-run'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /^plan: scenarios 1, sites \d+, occurrences \d+, contexts \d+, planned runs \d+$/m);
  assert.match(t.stdout, /^shard 0\/1: \d+ runs, estimated CPU /m);
});
