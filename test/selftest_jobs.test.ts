// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim selftest --jobs N` runs cases on worker threads; its TAP must be
 * the serial run's, line for line (case order, numbering, logs, totals).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/hmmsim.js', import.meta.url));

function selftest(...args: string[]): { out: string; status: number | null } {
  const r = spawnSync(process.execPath, [BIN, 'selftest', ...args], { encoding: 'utf8' });
  return { out: r.stdout, status: r.status };
}

test('selftest --jobs 2 prints the same TAP as --jobs 1, including a failing case and its log', () => {
  // migrate_anon_huge_err fails on the coherent variant (as on mainline): a
  // failure with assertion output must come through the workers unchanged.
  const filters = ['--filter', '*.open_close', '--filter', '*.anon_read', '--filter', 'hmm.hmm_device_coherent.migrate_anon_huge_err'];
  // --strict: the expected failure (XFAIL by default) is a failure.
  const serial = selftest(...filters, '--jobs', '1', '--strict');
  const parallel = selftest(...filters, '--jobs', '2', '--strict');
  assert.equal(serial.status, 1, 'the failing case makes the run fail');
  assert.equal(parallel.status, serial.status);
  assert.match(serial.out, /^not ok \d+ hmm\.hmm_device_coherent\.migrate_anon_huge_err$/m);
  assert.match(serial.out, /# Totals: pass:4 fail:1 /);
  assert.equal(parallel.out, serial.out);
  // Without --strict the workers report it as XFAIL too.
  const xs = selftest(...filters, '--jobs', '1');
  const xp = selftest(...filters, '--jobs', '2');
  assert.equal(xs.status, 0);
  assert.match(xs.out, /^ok \d+ hmm\.hmm_device_coherent\.migrate_anon_huge_err # XFAIL /m);
  assert.equal(xp.out, xs.out);
});

test('selftest --jobs rejects a bad count with exit 2', () => {
  const r = spawnSync(process.execPath, [BIN, 'selftest', '--jobs', '0'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--jobs: '0' is not an integer in 1\.\.64/);
});
