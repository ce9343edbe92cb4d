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
  // With --fail-on-warn the coherent migrate_anon_huge_err fails (mainline
  // WARNs "Conflicting mapping in same section" there: a second coherent
  // chunk at the same SPM address): a failure with its log lines must come
  // through the workers unchanged.
  const filters = ['--filter', '*.open_close', '--filter', '*.anon_read', '--filter', 'hmm.hmm_device_coherent.migrate_anon_huge_err', '--fail-on-warn'];
  const serial = selftest(...filters, '--jobs', '1');
  const parallel = selftest(...filters, '--jobs', '2');
  assert.equal(serial.status, 1, 'the failing case makes the run fail');
  assert.equal(parallel.status, serial.status);
  assert.match(serial.out, /^not ok \d+ hmm\.hmm_device_coherent\.migrate_anon_huge_err$/m);
  assert.match(serial.out, /^# migrate_anon_huge_err: kernel WARNING during the test \(1; --fail-on-warn\)$/m);
  assert.match(serial.out, /# Totals: pass:4 fail:1 /);
  assert.equal(parallel.out, serial.out);
  // Without --fail-on-warn it passes, serial and parallel alike.
  const xs = selftest(...filters.slice(0, -1), '--jobs', '1');
  const xp = selftest(...filters.slice(0, -1), '--jobs', '2');
  assert.equal(xs.status, 0);
  assert.match(xs.out, /^ok \d+ hmm\.hmm_device_coherent\.migrate_anon_huge_err$/m);
  assert.equal(xp.out, xs.out);
});

test('selftest --jobs rejects a bad count with exit 2', () => {
  const r = spawnSync(process.execPath, [BIN, 'selftest', '--jobs', '0'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--jobs: '0' is not an integer in 1\.\.64/);
});
