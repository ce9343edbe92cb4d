// SPDX-License-Identifier: GPL-2.0-only
/**
 * The command line has no surprises: each item spawns `node bin/hmmsim.js`
 * and checks the exit status and what is printed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hostBoundsError, machineBytes } from '../src/cli/config_check.js';
import { defaultConfig } from '../src/kernel/config.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'hmmsim.js');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function hmmsim(...args: string[]): { out: string; err: string; status: number | null } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { out: r.stdout, err: r.stderr, status: r.status };
}

const TMP = mkdtempSync(join(tmpdir(), 'hmmsim-cli-'));
function file(name: string, text: string): string {
  const p = join(TMP, name);
  writeFileSync(p, text);
  return p;
}

test('--version and -V print the package version and exit 0', () => {
  for (const flag of ['--version', '-V']) {
    const r = hmmsim(flag);
    assert.equal(r.status, 0);
    assert.equal(r.out.trim(), VERSION);
  }
  assert.match(VERSION, /^\d+\.\d+\.\d+$/);
});

test('bare hmmsim prints the help (commands listed) and exits 2', () => {
  const r = hmmsim();
  assert.equal(r.status, 2);
  assert.match(r.err, /^Usage: hmmsim \[options\] \[command\]/m);
  for (const c of ['selftest', 'explore', 'bench', 'run']) assert.match(r.err, new RegExp(`^  ${c} `, 'm'));
  assert.equal(hmmsim('--help').status, 0, '--help asked for is not an error');
});

test('selftest --filter that matches no case is a usage error (exit 2) naming the filter', () => {
  const r = hmmsim('selftest', '--filter', 'hmm.*.anon_raed', '--jobs', '1');
  assert.equal(r.status, 2);
  assert.equal(r.out, '', 'no TAP started');
  assert.match(r.err, /--filter 'hmm\.\*\.anon_raed': no case matches/);
  // One good and one bad filter: still an error (a typo hides cases).
  assert.equal(hmmsim('selftest', '--filter', '*.open_close', '--filter', 'nope', '--jobs', '1').status, 2);
});

test('--config values are checked up front; the message names the bound', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--config', 'ramMiB=3'], /ramMiB=3: below the minimum of 4 MiB/],
    [['--config', 'ramMiB=7'], /ramMiB=7: not a multiple of 2 MiB/],
    [['--config', 'ramMiB=99999998'], /ramMiB=99999998: above the maximum of 4194304 MiB/],
    [['--config', 'ramMiB=1e3'], /ramMiB: '1e3' is not a non-negative integer/],
    [['--config', 'ramBytes=1000'], /ramBytes=1000: below the minimum of 4 MiB \(4194304 bytes\)/],
    [['--config', 'ramBytes=6291457'], /ramBytes=6291457: not a multiple of 2 MiB \(2097152 bytes\)/],
    [['--config', 'swapMiB=-1'], /swapMiB: '-1' is not a non-negative integer/],
    [['--config', 'swapMiB=9999999'], /swapMiB=9999999: above the maximum of 4194304 MiB/],
    [['--config', 'nrHugepages=33', '--config', 'ramMiB=64'], /nrHugepages=33: above the maximum of 32 for 64 MiB of RAM/],
    [['--config', 'ramMiB=4194304', '--jobs', '64'], /above the bound of half this host's memory/],
    [['--config', 'contentMode=fingerprint'], /'selftest' cannot run in fingerprint mode/],
    [['--config', 'thp=sometimes'], /config thp: 'sometimes' is not always\|madvise\|never/],
    [['--config', 'bogus=1'], /unknown config name 'bogus'/],
  ];
  for (const [args, re] of cases) {
    const r = hmmsim('selftest', '--filter', '*.open_close', ...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.err}`);
    assert.equal(r.out, '', `${args.join(' ')}: nothing runs`);
    assert.match(r.err, re);
  }
  // The order of settings does not matter for the cross-field bound.
  assert.equal(hmmsim('selftest', '--list', '--config', 'ramMiB=64', '--config', 'nrHugepages=32').status, 0);
});

test('explore checks a RAM size it is given against the host bound too', () => {
  const r = hmmsim('explore', 'cve-2022-3523', '--config', 'ramMiB=4194304', '--schedules', '1');
  assert.equal(r.status, 2);
  assert.match(r.err, /above the bound of half this host's memory/);
});

test('the host bound: one machine per worker must fit in half the host memory', () => {
  const cfg = defaultConfig({ ramBytes: 1024 * 2 ** 20, swapMiB: 0 });
  const need = machineBytes(cfg);
  assert.equal(hostBoundsError(cfg, 2, need * 4), null);
  assert.match(hostBoundsError(cfg, 4, need * 4) ?? '', /4 machine\(s\) need .* above the bound of half this host's memory .* or fewer --jobs/);
});

test('ramBytes, as --json prints the config, is accepted back', () => {
  const r = hmmsim('selftest', '--json', '--jobs', '1', '--filter', 'hmm.hmm_device_private.open_close', '--config', 'ramBytes=1073741824');
  assert.equal(r.status, 0, r.err);
  const j = JSON.parse(r.out) as { config: { ramBytes: number }; totals: { pass: number } };
  assert.equal(j.config.ramBytes, 1073741824);
  assert.equal(j.totals.pass, 1);
  const again = hmmsim('selftest', '--json', '--jobs', '1', '--filter', 'hmm.hmm_device_private.open_close', '--config', `ramBytes=${j.config.ramBytes}`);
  assert.equal((JSON.parse(again.out) as { config: { ramBytes: number } }).config.ramBytes, j.config.ramBytes);
});

test('selftest: migrate_anon_huge_err on the coherent device passes, also with --strict (no known failure)', () => {
  const f = ['--filter', 'hmm.hmm_device_coherent.migrate_anon_huge_err', '--jobs', '1'];
  const d = hmmsim('selftest', ...f);
  assert.equal(d.status, 0, d.out);
  assert.match(d.out, /^ok 1 hmm\.hmm_device_coherent\.migrate_anon_huge_err$/m);
  assert.match(d.out, /^# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0$/m);
  const s = hmmsim('selftest', ...f, '--strict');
  assert.equal(s.status, 0, s.out);
  const j = JSON.parse(hmmsim('selftest', ...f, '--json').out) as { cases: Array<{ result: string; reason: string }> };
  assert.equal(j.cases[0].result, 'pass');
});

test('run: a program prints, gets its argv and sets the exit status; --json captures', () => {
  const prog = file('args.mjs', "export default function main({ libc, argv }) { libc.printf('args=%s pid=%d\\n', argv.slice(1).join(','), libc.getpid()); return 7; }\n");
  const r = hmmsim('run', prog, 'a', 'b');
  assert.equal(r.status, 7);
  assert.equal(r.out, 'args=a,b pid=1\n');
  const j = hmmsim('run', '--json', prog, 'x');
  assert.equal(j.status, 7);
  const o = JSON.parse(j.out) as { exitCode: number; signal: number | null; stdout: string };
  assert.deepEqual([o.exitCode, o.signal, o.stdout], [7, null, 'args=x pid=1\n']);
  const ex = hmmsim('run', 'examples/port-malloc.mjs');
  assert.equal(ex.status, 0, ex.err);
  assert.match(ex.out, /^PASS: 0 bad ints, 8 buffers reused, 16 pages migrated$/m);
});

test('run: a fatal signal gives 128 + signal; a throwing program exit 1; bad files are usage errors', () => {
  const segv = hmmsim('run', file('segv.mjs', 'export default ({ libc }) => { libc.load32(0); };\n'));
  assert.equal(segv.status, 128 + 11);
  assert.match(segv.err, /killed by signal 11/);
  const abrt = hmmsim('run', file('dfree.mjs', 'export default ({ libc }) => { const p = libc.malloc(8); libc.free(p); libc.free(p); };\n'));
  assert.equal(abrt.status, 128 + 6);
  assert.match(abrt.err, /free\(\): double free detected in tcache 2/);
  const thr = hmmsim('run', file('throws.mjs', "export default () => { throw new TypeError('oops'); };\n"));
  assert.equal(thr.status, 1);
  assert.match(thr.err, /the program threw TypeError: oops/);
  const missing = hmmsim('run', './no-such-program.mjs');
  assert.equal(missing.status, 2);
  assert.match(missing.err, /no-such-program\.mjs: no such file/);
  const nomain = hmmsim('run', file('nomain.mjs', 'export const x = 1;\n'));
  assert.equal(nomain.status, 2);
  assert.match(nomain.err, /expected a default export \(or 'main' export\) main/);
  const fp = hmmsim('run', '--config', 'contentMode=fingerprint', 'examples/port-malloc.mjs');
  assert.equal(fp.status, 2);
  assert.match(fp.err, /'run' cannot run in fingerprint mode/);
});

test('explore loads a scenario file; a file without the Scenario shape is a usage error', () => {
  const r = hmmsim('explore', 'examples/race-scenario.mjs', '--schedules', '20');
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /^my-migrate-vs-store: no violation in 20 schedules/m);
  const bad = hmmsim('explore', file('bad-scenario.mjs', 'export default { name: 1 };\n'));
  assert.equal(bad.status, 2);
  assert.match(bad.err, /expected a default export \(or 'scenario' export\) \{ name, description, setup\(cfg\) \}/);
  assert.equal(hmmsim('explore', './nope.mjs').status, 2);
});

test('explore of a scenario file that finds a violation prints a replay command naming the file, and the replay reproduces it', () => {
  // The example scenario with an end check that fails when the writer thread runs first.
  const buggy = file('buggy-scenario.mjs', `import sc from ${JSON.stringify(join(ROOT, 'examples', 'race-scenario.mjs'))};
export default { ...sc, name: 'buggy', setup(cfg) {
  const r = sc.setup(cfg);
  const order = [];
  const threads = r.threads.map((t) => ({ name: t.name, *body() { order.push(t.name); return yield* t.body(); } }));
  return { ...r, roots: [...r.roots, order], threads, check: () => (order[0] === 'writer' ? 'the writer ran first' : null) };
} };
`);
  const r = hmmsim('explore', buggy, '--schedules', '50');
  assert.equal(r.status, 1, r.err);
  assert.match(r.out, /DATA: the writer ran first/);
  const m = /^replay: hmmsim explore (\S+) --schedule (\S+)$/m.exec(r.out);
  assert.ok(m, r.out);
  assert.equal(m[1], buggy);
  const again = hmmsim('explore', m[1], '--schedule', m[2]);
  assert.equal(again.status, 1);
  assert.match(again.out, /^VIOLATION: DATA/m);
});

test('selftest --driver loads the user driver into every case machine; a driver that fails init is exit 2', () => {
  const okRun = hmmsim('selftest', '--driver', 'examples/minimal-driver.mjs', '--filter', 'hmm.hmm_device_private.open_close', '--jobs', '1');
  assert.equal(okRun.status, 0, okRun.err);
  // The driver is really there: a program can open its device (run --driver).
  const probe = file('probe.mjs', "export default ({ libc }) => (libc.open('/dev/mydev', 2) >= 0 ? 0 : 3);\n");
  assert.equal(hmmsim('run', '--driver', 'examples/minimal-driver.mjs', probe).status, 0);
  assert.equal(hmmsim('run', probe).status, 3, 'without --driver there is no /dev/mydev');
  const enomem = hmmsim('selftest', '--driver', file('enomem.mjs', 'export function init() { return -12; }\n'), '--filter', '*.open_close');
  assert.equal(enomem.status, 2);
  assert.match(enomem.err, /--driver: loading module enomem failed: -12 \(ENOMEM\)/);
  const noinit = hmmsim('selftest', '--driver', file('noinit.mjs', 'export const exit = () => {};\n'), '--filter', '*.open_close');
  assert.equal(noinit.status, 2);
  assert.match(noinit.err, /expected a module exporting init\(k\)/);
});

test('run --trace writes the program\'s run as Trace Event JSON (schema-valid, its process thread and kernel spans)', async () => {
  const { Ajv } = await import('ajv');
  const { TRACE_EVENT_SCHEMA } = await import('./trace_event_schema.js');
  const out = join(TMP, 'run-trace.json');
  const r = hmmsim('run', '--trace', out, 'examples/port-malloc.mjs');
  assert.equal(r.status, 0, r.err);
  const trace = JSON.parse(readFileSync(out, 'utf8')) as Array<{ ph: string; name: string; tid: number; args?: { name?: string } }>;
  const validate = new Ajv({ allErrors: true }).compile(TRACE_EVENT_SCHEMA);
  assert.ok(validate(trace), JSON.stringify(validate.errors?.slice(0, 3)));
  const threads = trace.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => e.args?.name ?? '');
  assert.ok(threads.some((n) => /port-malloc/.test(n)), `a thread for the program's process: ${threads.join(', ')}`);
  const spans = new Set(trace.filter((e) => e.ph === 'B').map((e) => e.name));
  for (const fn of ['handle_mm_fault', 'migrate_vma_setup', 'migrate_vma_pages', 'migrate_vma_finalize']) assert.ok(spans.has(fn), `a ${fn} span`);
});
