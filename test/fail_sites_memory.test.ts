// SPDX-License-Identifier: GPL-2.0-only
/**
 * The allocation-failure sweep runs thousands of machines in one
 * synchronous loop: a machine it released must be collectable before the
 * loop returns. (A WeakRef from the page-content store to its Kernel kept
 * every machine alive until the end of the synchronous job: the full sweep
 * grew to ~20 GB and was OOM-killed.) Measured in a child process started
 * with --expose-gc: the external memory (typed arrays of each machine)
 * after gc() must stay flat over the runs of one synchronous loop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const SWEEP = new URL('../src/fuzz/fail_sites.js', import.meta.url).href;
const SCEN = new URL('../src/fuzz/fail_scenarios.js', import.meta.url).href;

/** The child: N runs of one scenario in one synchronous loop, gc() and the external+arrayBuffers bytes after each. */
const CHILD = `
import { runScenarioOnce } from ${JSON.stringify(SWEEP)};
import { dmirrorScenarios } from ${JSON.stringify(SCEN)};
const sc = dmirrorScenarios({ checked: true }).find((s) => s.name === 'dmirror/migrate_roundtrip');
const kernels = new FinalizationRegistry(() => {});
const mem = [];
for (let i = 0; i < 10; i++) {
  runScenarioOnce(sc, (k) => kernels.register(k, i));
  globalThis.gc();
  const m = process.memoryUsage();
  mem.push(m.external + m.arrayBuffers);
}
process.stdout.write(JSON.stringify(mem));
`;

test('fail-sites: machines released in one synchronous loop are collected (external memory stays flat)', () => {
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHILD], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, HMMSIM_CHECKED: '1' } });
  assert.equal(r.status, 0, r.stderr);
  const mem = JSON.parse(r.stdout) as number[];
  assert.equal(mem.length, 10);
  // After the first runs (the segment pool fills), each further machine
  // must cost nothing that survives gc(): allow 8 MiB of noise over 7 runs.
  const growth = mem[9] - mem[2];
  assert.ok(growth < 8 << 20, `external memory grew by ${(growth / 2 ** 20).toFixed(1)} MiB over 7 released machines: ${mem.map((b) => (b / 2 ** 20).toFixed(0)).join(', ')} MiB`);
});
