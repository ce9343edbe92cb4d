// SPDX-License-Identifier: GPL-2.0-only
/**
 * One acquire idiom: code takes a lock that may wait with `yield*` on the
 * helper of the module that owns the lock (spinLock, spinLockNested,
 * mutexLock in src/kernel/sched/locks.ts; mmapReadLock, mmapWriteLock,
 * mmapWriteLockNested in src/kernel/mm/mmap_lock.ts; folioLockQuick in
 * src/kernel/mm/folio.ts). The fast-path building blocks (tryFast,
 * tryReadFast, tryWriteFast, folioLockFast) and the lock generators are
 * called only there. An uncontended acquire outside the explorer returns
 * ACQUIRED (no generator); a contended one returns the lock's generator.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sourceFiles } from './source_files.js';
import { join, relative } from 'node:path';
import { ACQUIRED, Mutex, mutexLock, spinLock } from '../src/kernel/sched/locks.js';
import { mmapReadLock, mmapWriteLock } from '../src/kernel/mm/mmap_lock.js';
import { runSync } from '../src/kernel/sched/sched.js';
import { KernelBug } from '../src/kernel/printk.js';
import { LOCK_CLASSES } from '../src/kernel/sched/lockdep.js';
import { mkEnv } from './migrate_helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');
const OWNERS = new Set([
  'src/kernel/sched/locks.ts', 'src/kernel/mm/mmap_lock.ts', 'src/kernel/mm/folio.ts',
  /* withMmapRead(): a setup-time check that nothing holds mmap_lock (a BUG if contended), not an acquire that may wait. */
  'scenarios/lib.ts',
]);
const INLINE: ReadonlyArray<RegExp> = Object.freeze([
  /\.(tryFast|tryReadFast|tryWriteFast)\(/, /* if (!l.tryFast(s)) ... */
  /\bfolioLockFast\(/,
  /yield\*\s*[\w.]+\.(lock|readLock|writeLock)\(/, /* yield* l.lock(s) by hand */
]);

function sources(dir: string): string[] {
  return sourceFiles(dir, 'ts');
}

test('lock acquires go through the owning module\'s helper (no inline try-fast-then-lock)', () => {
  const bad: string[] = [];
  for (const dir of ['src', 'scenarios']) {
    for (const f of sources(join(ROOT, dir))) {
      const rel = relative(ROOT, f);
      if (OWNERS.has(rel)) continue;
      readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
        if (/^\s*(\*|\/\/)/.test(line)) return;
        for (const re of INLINE) if (re.test(line)) bad.push(`${rel}:${i + 1}: ${line.trim()}`);
      });
    }
  }
  assert.deepEqual(bad, [], 'use yield* spinLock/mutexLock/mmapReadLock/mmapWriteLock/folioLockQuick');
});

test('an uncontended acquire returns ACQUIRED; a contended one the blocking generator', () => {
  const e = mkEnv(1);
  const s = e.k.sched;
  const m = new Mutex('test_mutex', LOCK_CLASSES.testdrv_mutex);
  const g = mutexLock(s, m);
  assert.equal(g, ACQUIRED, 'the fast path creates no generator');
  assert.deepEqual(g.next(), { done: true, value: undefined });
  assert.ok(m.isLocked());
  m.unlock(s);
  assert.equal(spinLock(s, m), ACQUIRED);
  m.unlock(s);

  assert.equal(mmapReadLock(e.mm), ACQUIRED);
  assert.equal(e.mm.mmapLock.readers, 1);
  const w = mmapWriteLock(e.mm);
  assert.notEqual(w, ACQUIRED, 'held for read: the writer must wait');
  assert.throws(() => runSync(s, w), (x: unknown) => x instanceof KernelBug && (x.kind === 'HANG' || x.kind === 'LOCKDEP'));
});
