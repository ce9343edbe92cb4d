// SPDX-License-Identifier: GPL-2.0-only
/**
 * The explorer on every scenario, both ways, with a fixed seed and budget:
 * with its historical switch on the scenario breaks (the expected detector,
 * a short trace whose printed schedule replays the violation on a fresh
 * machine); with the default (mainline) configuration it does not break
 * within the budget, whatever the strategy. The CLI default is 10,000
 * schedules; the suite keeps to a few hundred per direction.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareWithFresh, explore, runOnce, type Scenario } from '../src/explore/engine.js';
import { SCENARIOS, findScenario } from '../scenarios/index.js';
import { defaultHistorical, HISTORICAL_SWITCH_NAMES, type KernelConfig } from '../src/kernel/config.js';

const BUDGET_ON = 300;
const BUDGET_OFF = 300;

/** Scenario -> the detector and rule the switch must produce. */
const EXPECT: Record<string, { detector: string; rule: RegExp; maxSteps: number }> = {
  'cve-2022-3523': { detector: 'KASAN', rule: /use-after-free in do_swap_page/, maxSteps: 8 },
  'cve-2022-3523-migrate': { detector: 'KASAN', rule: /use-after-free in do_swap_page/, maxSteps: 8 },
  'devpage-free-refcount-one': { detector: 'KASAN', rule: /use-after-free in folio_try_get/, maxSteps: 8 },
  'pgmap-bulk-ref': { detector: 'INVARIANT', rule: /memunmap_pages\(pgmap #\d+\) finished with 1 device page\(s\) still in use/, maxSteps: 8 },
  'release-without-eviction': { detector: 'HANG', rule: /memunmap_pages\(pgmap #\d+\)/, maxSteps: 8 },
  'ttm-coherent-as-private': { detector: 'BUG', rule: /try_to_migrate_one: BUG_ON\(page_try_share_anon_rmap/, maxSteps: 8 },
  'zero-pfn-select-system': { detector: 'WARN', rule: /SELECT_DEVICE_COHERENT\) collected entry 1/, maxSteps: 6 },
  'gup-fast-longterm-coherent': { detector: 'HANG', rule: /memunmap_pages\(pgmap #\d+\)/, maxSteps: 12 },
  'nouveau-release-without-eviction': { detector: 'HANG', rule: /memunmap_pages\(pgmap #\d+\)/, maxSteps: 48 },
  'nouveau-fault-copy-one': { detector: 'DATA', rule: /got signal 7/, maxSteps: 48 },
};

function switchOn(sc: Scenario): Partial<KernelConfig> {
  return { historical: { ...defaultHistorical(), [sc.bugSwitch]: true } };
}

test('every historical switch has a scenario, and every scenario an expectation', () => {
  const covered = new Set(SCENARIOS.map((s) => s.bugSwitch));
  for (const sw of HISTORICAL_SWITCH_NAMES) assert.ok(covered.has(sw), `a scenario for ${sw}`);
  for (const s of SCENARIOS) {
    assert.ok(EXPECT[s.name], `expectation for ${s.name}`);
    assert.match(s.seedRef, /\b(mm|drivers\/gpu\/drm\/nouveau)\/\w+\.c:\w+\(\)/, `${s.name} names the kernel function of its bug (file:function)`);
    assert.equal(findScenario(s.name), s);
  }
  // CVE-2022-3523 races with device removal and with migration.
  assert.deepEqual(SCENARIOS.filter((s) => s.bugSwitch === 'fault_no_page_ref').map((s) => s.name), ['cve-2022-3523', 'cve-2022-3523-migrate']);
});

for (const sc of SCENARIOS) {
  const want = EXPECT[sc.name];

  test(`${sc.name} with ${sc.bugSwitch}=on: ${want.detector}, minimal trace replays`, () => {
    const cfg = switchOn(sc);
    const r = explore(sc, { schedules: BUDGET_ON, seed: 1, strategy: 'random', config: cfg });
    assert.ok(r.found, `a violation within ${BUDGET_ON} schedules`);
    const v = r.found.violation!;
    assert.equal(v.detector, want.detector, `${v.detector}: ${v.rule}`);
    assert.match(v.rule, want.rule);
    assert.ok(r.found.steps <= want.maxSteps, `short trace, got ${r.found.steps} steps`);
    // The printed schedule replays the violation on a freshly built machine.
    const again = runOnce(sc, cfg, r.schedule!);
    assert.deepEqual(again.violation, v, 'the printed schedule replays the violation');
    assert.deepEqual(again.trace.map((t) => [t.task, t.what]), r.found.trace.map((t) => [t.task, t.what]));
    // Deterministic: the same seed finds the same schedule.
    const r2 = explore(sc, { schedules: BUDGET_ON, seed: 1, strategy: 'random', config: cfg });
    assert.equal(r2.schedulesRun, r.schedulesRun);
    assert.deepEqual(r2.schedule, r.schedule);
  });

  test(`${sc.name} on mainline: no violation in ${BUDGET_OFF} schedules (random, pct, bounded)`, () => {
    const r = explore(sc, { schedules: BUDGET_OFF, seed: 1, strategy: 'random', config: {} });
    assert.equal(r.found, null, r.found ? `${r.found.violation!.detector}: ${r.found.violation!.rule}` : '');
    assert.equal(r.schedulesRun, BUDGET_OFF);
    for (const strategy of ['pct', 'bounded'] as const) {
      const q = explore(sc, { schedules: 60, seed: 7, strategy, config: {} });
      assert.equal(q.found, null, q.found ? `${strategy}: ${q.found.violation!.detector}: ${q.found.violation!.rule}` : '');
    }
    // The interleaving that breaks the old kernel is harmless on mainline.
    const bad = explore(sc, { schedules: BUDGET_ON, seed: 1, strategy: 'random', config: switchOn(sc) });
    assert.equal(runOnce(sc, {}, bad.schedule!).violation, null);
  });

  test(`${sc.name}: a restored machine runs exactly as a fresh one`, () => {
    for (const cfg of [{}, switchOn(sc)]) {
      const d = compareWithFresh(sc, cfg, 25, 3);
      assert.equal(d, null, d ? `schedule ${d.schedule.join(',')}: restored ${JSON.stringify(d.restored.violation)} / fresh ${JSON.stringify(d.fresh.violation)}` : '');
    }
  });
}

test('pct and bounded strategies find CVE-2022-3523 too, and shrink to a replayable schedule', () => {
  const sc = findScenario('cve-2022-3523')!;
  const cfg = switchOn(sc);
  for (const strategy of ['pct', 'bounded'] as const) {
    const r = explore(sc, { schedules: 500, seed: 3, strategy, config: cfg });
    assert.ok(r.found, `${strategy} finds it`);
    assert.equal(r.found.violation!.detector, 'KASAN');
    assert.deepEqual(runOnce(sc, cfg, r.schedule!).violation, r.found.violation);
  }
});
