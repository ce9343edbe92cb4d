// SPDX-License-Identifier: GPL-2.0-only
/**
 * The explorer on the CVE-2022-3523 scenario, both ways, with a fixed seed
 * and budget: the historical behaviour is broken (KASAN use-after-free with a
 * short replayable trace); mainline is not broken within the budget.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explore, runOnce } from '../src/explore/engine.js';
import { cve20223523 } from '../scenarios/cve_2022_3523.js';
import { defaultHistorical } from '../src/kernel/config.js';

test('cve-2022-3523 with fault_no_page_ref=on: KASAN use-after-free, minimal trace replays', () => {
  const cfg = { historical: { ...defaultHistorical(), fault_no_page_ref: true } };
  const r = explore(cve20223523, { schedules: 2000, seed: 1, strategy: 'random', config: cfg });
  assert.ok(r.found, 'a violation is found');
  assert.equal(r.found.violation!.detector, 'KASAN');
  assert.match(r.found.violation!.rule, /use-after-free in do_swap_page/);
  assert.ok(r.found.steps <= 8, `minimal trace, got ${r.found.steps} steps`);
  const again = runOnce(cve20223523, cfg, r.schedule!);
  assert.deepEqual(again.violation, r.found.violation, 'the printed schedule replays the violation');
});

test('cve-2022-3523 on mainline: no violation, data intact, whatever the schedule', () => {
  const r = explore(cve20223523, { schedules: 150, seed: 1, strategy: 'random', config: {} });
  assert.equal(r.found, null);
  // The interleaving that breaks the old kernel is harmless on mainline.
  const replay = runOnce(cve20223523, {}, [0, 0, 0, 1, 1, 0]);
  assert.equal(replay.violation, null);
});
