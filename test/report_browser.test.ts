// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim report` end to end, in a real browser: the CLI writes the report
 * of the CVE-2022-3523 counterexample (fault_no_page_ref=on) with a
 * selftest summary and bench charts; headless Chromium (Debian's
 * /usr/bin/chromium driven by playwright-core, no network) opens the file
 * and the test checks that it renders without console errors or page
 * errors, makes no network request, shows the page map's states (the page
 * is device-private before the race and system RAM after the eviction),
 * scrubs, draws the swim lanes of both racing threads and the Chart.js
 * charts. Skipped, with the reason, where /usr/bin/chromium is absent
 * (.ci/run installs it).
 *
 * The CLI also writes `--trace` of the same run: parsed back, it has the
 * two racing threads' tracks (the acceptance command of issue 15).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchResult } from '../src/bench/index.js';

const CHROMIUM = '/usr/bin/chromium';
const BIN = fileURLToPath(new URL('../../bin/hmmsim.js', import.meta.url));
const LAUNCH_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A bench result as `hmmsim bench --json` writes it (core rows of a quick run). */
const BENCH: Pick<BenchResult, 'machine' | 'core' | 'targets'> = {
  machine: { cpus: 2, cpuModel: 'test', node: 'v20', totalMemGiB: 8, quick: true },
  core: [
    { pages: 1024, thp: false, s2dGBps: 3.4, d2sGBps: 4.0, roundTripMs: 8.8, nsPerPage: 8568, memcpyGBps: 9.9, ratio: 0.35, ratioOfMedians: 0.1, verifiedPages: 3072 },
    { pages: 16384, thp: false, s2dGBps: 2.1, d2sGBps: 2.5, roundTripMs: 60, nsPerPage: 3600, memcpyGBps: 6.4, ratio: 0.36, ratioOfMedians: 0.3, verifiedPages: 49152 },
    { pages: 16384, thp: true, s2dGBps: 5.2, d2sGBps: 5.0, roundTripMs: 25, nsPerPage: 1500, memcpyGBps: 6.4, ratio: 0.8, ratioOfMedians: 0.8, verifiedPages: 49152 },
  ],
  targets: {},
} as unknown as Pick<BenchResult, 'machine' | 'core' | 'targets'>;

function hmmsim(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
}

test('hmmsim explore --trace of the CVE-2022-3523 counterexample parses and shows the racing threads', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hmmsim-trace-'));
  try {
    const file = path.join(dir, 't.json');
    const r = hmmsim(['explore', 'cve-2022-3523', '--config', 'fault_no_page_ref=on', '--trace', file]);
    assert.equal(r.status, 1, r.stderr);
    const events = JSON.parse(readFileSync(file, 'utf8')) as Array<{ ph: string; name: string; tid: number; args?: { name?: string } }>;
    const threads = events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => e.args!.name);
    assert.ok(threads.includes('cpu-fault') && threads.includes('device-removal'), threads.join(', '));
    assert.ok(events.some((e) => e.ph === 'i' && /^KASAN: use-after-free in do_swap_page/.test(e.name)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hmmsim report of the CVE-2022-3523 counterexample renders in headless Chromium', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)` }, async () => {
  const { chromium } = await import('playwright-core');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hmmsim-report-'));
  const profile = mkdtempSync(path.join(os.tmpdir(), 'hmmsim-chromium-'));
  try {
    const benchFile = path.join(dir, 'bench.json');
    writeFileSync(benchFile, JSON.stringify(BENCH));
    const html = path.join(dir, 'report.html');
    const r = hmmsim(['report', '--from-explore', 'cve-2022-3523', '--config', 'fault_no_page_ref=on', '--from-selftest', '--filter', 'hmm.hmm_device_private.open_close', '--from-bench', benchFile, '-o', html, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as { runs: Array<{ scenario: string; violation: string }>; selftest: { pass: number } };
    assert.deepEqual(summary.runs.map((x) => [x.scenario, x.violation]), [['cve-2022-3523', 'KASAN']]);
    assert.equal(summary.selftest.pass, 1);

    const ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: LAUNCH_ARGS });
    try {
      const page = await ctx.newPage();
      const problems: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('request', (q) => {
        if (!q.url().startsWith('file:')) requests.push(q.url());
      });
      await page.goto(pathToFileURL(html).href);
      await page.waitForSelector('body[data-ready="1"]', { timeout: 30_000 });

      // The violation and the replay command.
      assert.equal(await page.getAttribute('.violation', 'data-detector'), 'KASAN');
      assert.match(await page.textContent('.run') ?? '', /--schedule 0,0,1,1,1/);
      // Page map: before the first step the page is device-private (pgmap #1)...
      const cell = '.pagemap[data-mm] div';
      assert.equal(await page.getAttribute('.maps', 'data-step'), '0');
      assert.equal(await page.getAttribute(cell, 'data-state'), 'device-private #1');
      // ... and after the eviction (step 5 of the counterexample) it is system RAM.
      await page.click('table.lanes tr[data-step="5"]');
      assert.equal(await page.getAttribute('.maps', 'data-step'), '5');
      assert.equal(await page.getAttribute(cell, 'data-state'), 'present');
      // Scrubbing back with the range input shows the device page again.
      await page.$eval('.scrub input[type=range]', (el) => {
        const input = el as unknown as { value: string; dispatchEvent(e: unknown): boolean };
        input.value = '1';
        input.dispatchEvent(new Event('input'));
      });
      assert.equal(await page.getAttribute('.maps', 'data-step'), '1');
      assert.equal(await page.getAttribute(cell, 'data-state'), 'device-private #1');
      // Swim lanes: one column per racing thread; the last row is the KASAN.
      const heads = await page.$$eval('table.lanes th', (ths) => ths.map((t) => t.textContent));
      assert.deepEqual(heads, ['step', '[1] cpu-fault', '[2] device-removal', 'pages after the step']);
      assert.match(await page.textContent('table.lanes tr.bad') ?? '', /KASAN raised here/);
      // Selftest summary and the Chart.js charts (drawn: a Chart instance with the bench rows).
      assert.match(await page.textContent('.selftest') ?? '', /hmm\.hmm_device_private\.open_close\s*PASS/);
      const charts = await page.evaluate(() => {
        const g = globalThis as unknown as { Chart: { getChart(id: string): { data: { labels: string[]; datasets: unknown[] } } | undefined } };
        const c4k = g.Chart.getChart('core-4k');
        const states = g.Chart.getChart('states-0');
        return { k4: c4k?.data.labels, thpSets: g.Chart.getChart('core-thp')?.data.datasets.length, states: states?.data.datasets.length };
      });
      assert.deepEqual(charts.k4, ['4 MiB', '64 MiB']);
      assert.equal(charts.thpSets, 3);
      assert.equal(charts.states, 2, 'device-private and present lines');
      assert.deepEqual(problems, []);
      assert.deepEqual(requests, [], 'the report works offline');
      if (process.env.HMMSIM_SCREENSHOT) {
        await page.click('table.lanes tr[data-step="5"]');
        await page.setViewportSize({ width: 1280, height: 900 });
        await page.screenshot({ path: process.env.HMMSIM_SCREENSHOT, fullPage: false });
      }
    } finally {
      await ctx.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(profile, { recursive: true, force: true });
  }
});

test('hmmsim report: bad input gets a specific error and exit 2', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hmmsim-report-bad-'));
  try {
    const notBench = path.join(dir, 'x.json');
    writeFileSync(notBench, '{"a": 1}');
    const notJson = path.join(dir, 'y.json');
    writeFileSync(notJson, 'hello');
    const out = path.join(dir, 'r.html');
    const cases: Array<[string[], RegExp]> = [
      [['report', '-o', out], /nothing to report: give --from-explore, --from-record, --from-selftest and\/or --from-bench/],
      [['report', '--from-explore', 'no-such-scenario', '-o', out], /unknown scenario 'no-such-scenario' \(known: .*cve-2022-3523/],
      [['report', '--from-bench', path.join(dir, 'missing.json'), '-o', out], /--from-bench .*missing\.json: no such file/],
      [['report', '--from-bench', notBench, '-o', out], /not the output of hmmsim bench --json/],
      [['report', '--from-record', notJson, '-o', out], /--from-record .*y\.json: not JSON/],
      [['report', '--from-record', notBench, '-o', out], /not an hmmsim recording/],
      [['report', '--from-explore', 'cve-2022-3523', '--config', 'no_such_switch=on', '-o', out], /no_such_switch/],
      [['report', '--from-bench', notBench, '--trace', path.join(dir, 't.json'), '-o', out], /--trace needs --from-explore/],
    ];
    for (const [args, msg] of cases) {
      const r = hmmsim(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg, args.join(' '));
      assert.equal(existsSync(out), false, 'nothing written');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hmmsim explore --record writes a recording that hmmsim report --from-record reads', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hmmsim-record-'));
  try {
    const rec = path.join(dir, 'run.json');
    const r = hmmsim(['explore', 'cve-2022-3523-migrate', '--config', 'fault_no_page_ref=on', '--record', rec]);
    assert.equal(r.status, 1, r.stderr);
    const run = JSON.parse(readFileSync(rec, 'utf8')) as { format: string; violation: { detector: string }; threads: Array<{ name: string }>; steps: unknown[] };
    assert.equal(run.format, 'hmmsim-run');
    assert.equal(run.violation.detector, 'KASAN');
    assert.deepEqual(run.threads.map((t) => t.name).sort(), ['cpu-fault', 'driver-migrate']);
    const out = path.join(dir, 'r.html');
    const rep = hmmsim(['report', '--from-record', rec, '-o', out, '--json']);
    assert.equal(rep.status, 0, rep.stderr);
    assert.deepEqual((JSON.parse(rep.stdout) as { runs: unknown[] }).runs, [{ scenario: 'cve-2022-3523-migrate', violation: 'KASAN', steps: run.steps.length }]);
    const html = readFileSync(out, 'utf8');
    assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=["']?https?:/i, 'no external resources');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
