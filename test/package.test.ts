// SPDX-License-Identifier: GPL-2.0-only
/**
 * The package as a user gets it: `npm pack` of this tree (the built dist/),
 * installed into a throwaway project in a temp dir with `npm ci --offline`
 * (a lockfile for the consumer is written from this repository's lockfile,
 * so the tarball's runtime dependencies come from the local npm cache that
 * `npm ci` filled: no network). Then, from that project, through the
 * public entry points only:
 *  - every example runs (`hmmsim run`, `hmmsim explore` with the user's
 *    scenario, `hmmsim selftest --driver` with the user's driver);
 *  - examples/typed-api.ts (boots a machine, registers its own
 *    device-private driver, migrates pages both ways) type-checks with
 *    `tsc --strict` against the installed declaration files, and runs;
 *  - `hmmsim model` finds its shipped hardware profiles (profiles/*.json)
 *    and the calibration runs;
 *  - a deep import into dist/ is refused (ERR_PACKAGE_PATH_NOT_EXPORTED).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function run(cmd: string, args: string[], cwd: string, timeout = 120_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, HMMSIM_CHECKED: '1' } });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} exited ${r.status} (signal ${r.signal})\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r.stdout;
}

test('the packed tarball installs offline into a fresh project and every example runs through the public entry points', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'hmmsim-pack-'));
  try {
    const packed = ok(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT), 'npm pack');
    const info = JSON.parse(packed) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = info[0].files.map((f) => f.path);
    assert.ok(files.includes('dist/src/index.d.ts') && files.includes('dist/src/kernel/index.d.ts'), 'declaration files are packed');
    assert.ok(files.includes('CHANGELOG.md') && files.includes('examples/minimal-driver.mjs'));
    for (const p of ['zen3-2s', 'pcie5-gpu', 'coherent-apu', 'profile.schema']) assert.ok(files.includes(`profiles/${p}.json`), `profiles/${p}.json is packed`);
    assert.equal(files.filter((f) => f.startsWith('dist/test/')).length, 0, 'no test files in the package');
    const tgz = join(dir, info[0].filename);

    // The consumer project and its lockfile: hmmsim from the tarball, its dependencies as this repository locks them.
    const proj = join(dir, 'proj');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; engines: Record<string, string> };
    const repoLock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dependencies?: Record<string, string> }> };
    const deps: Record<string, unknown> = {};
    const todo = Object.keys(pkg.dependencies);
    while (todo.length) {
      const n = todo.pop()!;
      if (deps[`node_modules/${n}`]) continue;
      const e = repoLock.packages[`node_modules/${n}`];
      assert.ok(e, `${n} is in the lockfile`);
      deps[`node_modules/${n}`] = e;
      todo.push(...Object.keys(e.dependencies ?? {}));
    }
    const integrity = 'sha512-' + createHash('sha512').update(readFileSync(tgz)).digest('base64');
    const spec = `file:../${info[0].filename}`;
    spawnSync('mkdir', [proj]);
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'module', private: true, dependencies: { hmmsim: spec } }, null, 2));
    writeFileSync(join(proj, 'package-lock.json'), JSON.stringify({
      name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true,
      packages: {
        '': { name: 'consumer', version: '1.0.0', dependencies: { hmmsim: spec } },
        'node_modules/hmmsim': {
          version: pkg.version, resolved: spec, integrity, license: 'GPL-2.0-only', dependencies: pkg.dependencies,
          bin: { hmmsim: 'bin/hmmsim.js' }, engines: pkg.engines,
        },
        ...deps,
      },
    }, null, 2));
    ok(run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], proj), 'npm ci --offline');

    for (const f of readdirSync(join(ROOT, 'examples'))) copyFileSync(join(ROOT, 'examples', f), join(proj, f));
    const bin = join(proj, 'node_modules', '.bin', 'hmmsim');
    assert.equal(ok(run(bin, ['--version'], proj), 'hmmsim --version').trim(), pkg.version);

    const prog = ok(run(bin, ['run', './port-malloc.mjs'], proj), 'hmmsim run port-malloc');
    assert.match(prog, /^heap: 8 of 8 buffers reused their address, first at 0x5555555592a0; /m);
    assert.match(prog, /^PASS: 0 bad ints, 8 buffers reused, 16 pages migrated$/m);

    const ex = ok(run(bin, ['explore', './race-scenario.mjs', '--schedules', '40'], proj), 'hmmsim explore race-scenario');
    assert.match(ex, /^my-migrate-vs-store: no violation in 40 schedules/m);

    const st = ok(run(bin, ['selftest', '--driver', './minimal-driver.mjs', '--filter', 'hmm.hmm_device_private.open_close', '--filter', 'hmm.hmm_device_private.anon_read', '--jobs', '2'], proj), 'selftest --driver');
    assert.match(st, /# Totals: pass:2 fail:0 /);

    // The simulated-time experiments with the shipped profiles.
    const mp = JSON.parse(ok(run(bin, ['model', 'move-pages', '--size', '4', '--folios', '4,2048', '--channels', '0,1', '--json'], proj), 'hmmsim model move-pages')) as { profile: string; results: Array<{ points: Array<{ folioKiB: number; GBps: number; failed: number }> }> };
    assert.equal(mp.profile, 'zen3-2s');
    assert.deepEqual(mp.results[0].points.map((p) => [p.folioKiB, p.failed]), [[4, 0], [4, 0], [2048, 0], [2048, 0]]);
    assert.ok(mp.results[0].points.every((p) => p.GBps > 1 && p.GBps < 30));
    assert.match(ok(run(bin, ['model', 'profiles'], proj), 'hmmsim model profiles'), /pcie5-gpu/);
    const cal = JSON.parse(ok(run(bin, ['model', 'calibrate', '--json'], proj), 'hmmsim model calibrate')) as { fit: string; worst: number; optimum: number };
    assert.equal(cal.fit, 'minimax');
    assert.ok(Math.abs(cal.worst - cal.optimum) < 1e-5 && cal.worst > 0.1 && cal.worst < 0.12, `calibrate from the tarball: worst ${cal.worst}, optimum ${cal.optimum}`);

    // The typed example: tsc --strict against the installed .d.ts files, then run.
    writeFileSync(join(proj, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', outDir: 'out', skipLibCheck: false,
        types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')],
      },
      files: ['typed-api.ts'],
    }, null, 2));
    ok(run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], proj), 'tsc --strict typed-api.ts');
    assert.match(ok(run(process.execPath, ['out/typed-api.js'], proj), 'typed-api'), /to device 8, by fault 1, back by driver 7, device pages free 64: PASS/);

    // Internals stay internal.
    const deep = run(process.execPath, ['--input-type=module', '-e', "await import('hmmsim/dist/src/kernel/kernel.js')"], proj);
    assert.notEqual(deep.status, 0);
    assert.match(deep.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
