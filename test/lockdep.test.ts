// SPDX-License-Identifier: GPL-2.0-only
/**
 * lockdep in checked mode (src/kernel/sched/lockdep.ts): the learned
 * dependency graph reports an AB-BA order without a deadlock, the
 * documented order, might_sleep() under a spinlock, recursion, unlock
 * balance, locks held at return to user space, and the mmap_lock
 * assertions of migrate_vma_setup() / hmm_range_fault() for a driver that
 * forgets the lock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kernel } from '../src/kernel/kernel.js';
import { KernelBug } from '../src/kernel/printk.js';
import { Mutex, Spinlock, spinLock, spinLockNested } from '../src/kernel/sched/locks.js';
import { LOCK_CLASSES, SINGLE_DEPTH_NESTING, defineLockClass } from '../src/kernel/sched/lockdep.js';
import { type K, type Strategy, runSync, waitUntil } from '../src/kernel/sched/sched.js';
import { folioLock, folioLockFast, folioTrylock, folioUnlock } from '../src/kernel/mm/folio.js';
import { pteTableOf } from '../src/kernel/mm/pgtable.js';
import { MigrateVma, migrateVmaSetup, MIGRATE_VMA_SELECT_SYSTEM } from '../src/kernel/mm/migrate_device.js';
import { HmmRange, hmmRangeFault } from '../src/kernel/mm/hmm.js';
import {
  MMU_NOTIFY_CLEAR, MmuIntervalNotifier, mmuIntervalNotifierInsert, mmuIntervalReadBegin, mmuIntervalSetSeq,
  mmuNotifierInvalidateRangeStart, mmuNotifierRangeInit,
} from '../src/kernel/mm/mmu_notifier.js';
import { PAGE, cpu, mkEnv, run, runMmapRead, storePage } from './migrate_helpers.js';

const CHECKED = { cfg: { checked: true } };

/** Two sleeping locks of classes outside the documented order (only the learned graph applies). */
function twoLocks(): { a: Mutex; b: Mutex } {
  return { a: new Mutex('lock_a', defineLockClass(100, 'class_A', null, 'sleep')), b: new Mutex('lock_b', defineLockClass(101, 'class_B', null, 'sleep')) };
}

function isLockdep(rule: RegExp) {
  return (x: unknown): boolean => {
    assert.ok(x instanceof KernelBug, `not a KernelBug: ${String(x)}`);
    assert.match(x.rule, rule);
    return true;
  };
}

/** Run every task to completion, always the first runnable one (no preemption: no deadlock possible). */
const inOrder: Strategy = { pick: () => 0 };

test('AB-BA across two code paths: the second path is a possible circular locking dependency, though nothing deadlocks', () => {
  const e = mkEnv(1, CHECKED);
  const s = e.k.sched;
  const { a, b } = twoLocks();
  const path = (x: Mutex, y: Mutex) => function* (): K<void> {
    yield* spinLock(s, x);
    yield* spinLock(s, y);
    y.unlock(s);
    x.unlock(s);
  };
  s.spawn('ab', path(a, b)());
  s.spawn('ba', path(b, a)());
  let err: unknown = null;
  try {
    s.run(inOrder);
  } catch (x) {
    err = x;
  }
  assert.ok(err instanceof KernelBug, 'reported');
  assert.equal(err.kind, 'LOCKDEP');
  assert.match(err.rule, /^possible circular locking dependency detected: class_A while holding class_B/);
  // The kernel's text: who, what it holds, the chain, the scenario, the held locks.
  assert.match(err.state, /ba\/\d+ is trying to acquire lock:\n \(lock_a\)/);
  assert.match(err.state, /which lock already depends on the new lock/);
  assert.match(err.state, /-> #\d+ \(class_A\):\n {2}lock_a then lock_b by ab\/\d+/);
  assert.match(err.state, /\*\*\* DEADLOCK \*\*\*/);
  assert.match(err.state, /1 lock held by ba\/\d+:\n #0: \(lock_b\)\{class_B\}/);
  // The ab path ran alone first: the graph it taught is A -> B.
  assert.deepEqual(s.lockdep!.dependencies(), ['class_A -> class_B']);
});

test('the same AB-BA in run-to-completion code (one thread, two calls) is reported too; without checked mode nothing is', () => {
  for (const checked of [true, false]) {
    const k = new Kernel({ ramBytes: 64 << 20, nrHugepages: 0, checked });
    const s = k.sched;
    const { a, b } = twoLocks();
    assert.ok(a.tryFast(s) && b.tryFast(s));
    b.unlock(s);
    a.unlock(s);
    assert.ok(b.tryFast(s));
    if (checked) {
      assert.throws(() => a.tryFast(s), isLockdep(/^possible circular locking dependency detected/));
    } else {
      assert.equal(s.lockdep, null, 'lockdep is off outside checked mode');
      assert.ok(a.tryFast(s));
      a.unlock(s);
      b.unlock(s);
    }
  }
});

test('documented order: the pmd lock under a PTL, mmap_lock under a folio lock are lock order inversions (lockdep.ts LOCK_CLASSES)', () => {
  const e = mkEnv(1, CHECKED);
  storePage(e.mm, e.vma.start, 1);
  const s = e.k.sched;
  const pt = pteTableOf(e.mm.pgd, e.vma.start)!;
  const pmdT = e.mm.pgd.pud.find((x) => x !== null)!.pmd.find((x) => x !== null)!;
  assert.ok(pt.ptl.tryFast(s));
  assert.throws(() => pmdT.lock.tryFast(s), isLockdep(/^lock order inversion: pmd_lock \(split PMD ptlock\) taken while holding ptlock \(pte_lockptr\)$/));
  pt.ptl.unlock(s);
  // mmap_lock after the folio lock (mm/rmap.c: mmap_lock, then folio_lock).
  const pfn = pt.v[(e.vma.start / PAGE) % 512];
  assert.ok(folioLockFast(e.k, pfn));
  assert.throws(() => e.mm.mmapLock.tryReadFast(s), isLockdep(/^lock order inversion: &mm->mmap_lock taken while holding folio_lock \(PG_locked\)$/));
  folioUnlock(e.k, pfn);
  assert.equal(e.mm.mmapLock.isLocked(), false);
  // A CPU fault took mmap_lock then the PTL: learned as such.
  assert.ok(s.lockdep!.dependencies().includes('&mm->mmap_lock -> ptlock (pte_lockptr)'));
});

test('sleeping under a spinlock: mutex_lock, folio_lock, a wait and mmu_notifier_invalidate_range_start are "BUG: sleeping function called from invalid context"', () => {
  const e = mkEnv(1, CHECKED);
  storePage(e.mm, e.vma.start, 1);
  const k = e.k;
  const s = k.sched;
  const pt = pteTableOf(e.mm.pgd, e.vma.start)!;
  const pfn = pt.v[(e.vma.start / PAGE) % 512];
  const m = new Mutex('some_mutex', LOCK_CLASSES.testdrv_mutex);
  const sleeping = (x: unknown): boolean => {
    assert.ok(x instanceof KernelBug);
    assert.equal(x.kind, 'BUG');
    assert.match(x.rule, /^sleeping function called from invalid context/);
    assert.match(x.state, /in_atomic\(\): 1[\s\S]*preempt_count: 1, expected: 0[\s\S]*1 lock held by swapper\/0:\n #0: \(ptl@/);
    return true;
  };
  const cases: Array<() => unknown> = [
    () => m.tryFast(s),
    () => folioLockFast(k, pfn),
    () => runSync(s, waitUntil(s, 'wait_event(x)', () => true)),
    () => runSync(s, mmuNotifierInvalidateRangeStart(mmuNotifierRangeInit(e.mm, MMU_NOTIFY_CLEAR, e.vma.start, e.vma.end))),
  ];
  for (const c of cases) {
    assert.ok(pt.ptl.tryFast(s));
    assert.throws(c, sleeping);
    // Still locked: by this thread, or (runSync saw the path die) by the dead task; the unlock is fine either way.
    pt.ptl.unlock(s);
  }
  assert.equal(m.isLocked(), false);
  assert.equal(folioTrylock(k, pfn), true, 'the folio was not locked by the failed folio_lock()');
  folioUnlock(k, pfn);
  // A trylock does not sleep: allowed (migrate_vma_collect trylocks folios under the PTL).
  assert.ok(pt.ptl.tryFast(s));
  assert.ok(folioTrylock(k, pfn));
  folioUnlock(k, pfn);
  pt.ptl.unlock(s);
  // Not under a spinlock: fine.
  assert.ok(m.tryFast(s));
  m.unlock(s);
  assert.equal(s.lockdep!.heldCount(), 0);
});

test('recursive locking: the same lock twice, a second lock of the same class unless nested (spin_lock_nested)', () => {
  const e = mkEnv(1024, CHECKED);
  storePage(e.mm, e.vma.start, 1);
  storePage(e.mm, e.vma.start + 512 * PAGE, 2);
  const k = e.k;
  const s = k.sched;
  const m = new Mutex('m', LOCK_CLASSES.testdrv_mutex);
  assert.ok(m.tryFast(s));
  assert.throws(() => runSync(s, m.lock(s)), isLockdep(/^possible recursive locking detected: m \(testdrv->mutex\)$/));
  m.unlock(s);
  const pt1 = pteTableOf(e.mm.pgd, e.vma.start)!;
  const pt2 = pteTableOf(e.mm.pgd, e.vma.start + 512 * PAGE)!;
  assert.notEqual(pt1, pt2);
  runSync(s, spinLock(s, pt1.ptl));
  assert.throws(() => runSync(s, spinLock(s, pt2.ptl)), (x: unknown) => {
    assert.ok(x instanceof KernelBug);
    assert.match(x.rule, /^possible recursive locking detected: ptl@\S+ \(ptlock \(pte_lockptr\)\) while holding ptl@\S+ of the same class/);
    assert.match(x.state, /missing lock nesting notation/);
    return true;
  });
  // The annotated form (copy_pte_range, move_ptes) is accepted.
  runSync(s, spinLockNested(s, pt2.ptl, SINGLE_DEPTH_NESTING));
  pt2.ptl.unlock(s);
  pt1.ptl.unlock(s);
  // The same folio twice is a self-deadlock; two different folios are fine (no lockdep map for PG_locked nesting).
  const f1 = pt1.v[(e.vma.start / PAGE) % 512];
  const f2 = pt2.v[(e.vma.start / PAGE) % 512];
  assert.ok(folioLockFast(k, f1));
  assert.throws(() => runSync(s, folioLock(k, f1)), isLockdep(/^possible recursive locking detected: folio pfn/));
  assert.ok(folioLockFast(k, f2));
  folioUnlock(k, f2);
  folioUnlock(k, f1);
  assert.equal(s.lockdep!.heldCount(), 0);
});

test('unlock balance: unlock of a lock not held, and by a thread that does not hold it', () => {
  const e = mkEnv(1, CHECKED);
  const s = e.k.sched;
  const m = new Spinlock('lonely', LOCK_CLASSES.mdevice_lock);
  assert.throws(() => m.unlock(s), isLockdep(/^bad unlock balance detected: lonely released by swapper\/0, which does not hold it$/));
  assert.throws(() => e.mm.mmapLock.readUnlock(s), isLockdep(/^bad unlock balance detected: mmap_lock#\d+ released/));
  // Held by one simulated thread, released by another.
  const owner = function* (): K<void> {
    yield* spinLock(s, m);
    yield s.point('holding');
    yield s.point('still holding');
  };
  const thief = function* (): K<void> {
    yield s.point('start');
    m.unlock(s);
  };
  s.spawn('owner', owner());
  s.spawn('thief', thief());
  let turn = 0;
  assert.throws(() => s.run({ pick: (r) => (turn++ < 2 ? 0 : r.length - 1) }), isLockdep(/^bad unlock balance detected: lonely released by thief\/\d+, which does not hold it \(it is held by owner\/\d+\)$/));
});

test('a lock held at return to user space (the checkpoint), and at the exit of a simulated thread', () => {
  const e = mkEnv(1, CHECKED);
  const s = e.k.sched;
  const m = new Mutex('forgotten', LOCK_CLASSES.dmirror_mutex);
  assert.ok(m.tryFast(s));
  assert.throws(() => e.k.checkpoint('ioctl'), (x: unknown) => {
    assert.ok(x instanceof KernelBug);
    assert.equal(x.kind, 'LOCKDEP');
    assert.equal(x.rule, 'lock held when returning to user space!: after ioctl');
    assert.match(x.state, /is leaving the kernel with locks still held!\n1 lock held by swapper\/0:\n #0: \(forgotten\)\{&dmirror->mutex\}/);
    return true;
  });
  const m2 = new Mutex('kept', LOCK_CLASSES.dmirror_mutex);
  s.spawn('leaker', (function* (): K<void> {
    yield* spinLock(s, m2);
  })());
  assert.throws(() => s.run(inOrder), isLockdep(/^leaker\/\d+ still has locks held!$/));
});

test('a driver calling migrate_vma_setup() without mmap_lock gets the structured BUG naming mmap_assert_locked', () => {
  const e = mkEnv(2, CHECKED);
  storePage(e.mm, e.vma.start, 1);
  const m = new MigrateVma({ vma: e.vma, start: e.vma.start, end: e.vma.end, src: new Float64Array(2), dst: new Float64Array(2), flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: e.dev.owner });
  assert.throws(() => run(e.k, migrateVmaSetup(m)), (x: unknown) => {
    assert.ok(x instanceof KernelBug);
    assert.equal(x.kind, 'LOCKDEP');
    assert.match(x.rule, /^migrate_vma_setup: mmap_assert_locked\(mm\) failed: mmap_lock#\d+ not held by swapper\/0$/);
    assert.match(x.state, /no locks held by swapper\/0/);
    return true;
  });
  // Nothing was collected: the PTE is untouched; with the lock the same call works.
  assert.equal(cpu(e.mm, e.vma.start, false) > 0, true);
  assert.equal(runMmapRead(e.mm, migrateVmaSetup(m)), 0);
  assert.equal(m.cpages, 2);
});

test('hmm_range_fault() with mmap_lock held by ANOTHER thread, not the caller: reported (rwsem_is_locked() alone would pass)', () => {
  const e = mkEnv(1, CHECKED);
  storePage(e.mm, e.vma.start, 1);
  const s = e.k.sched;
  const sub = new MmuIntervalNotifier(e.mm, e.vma.start, e.vma.end - 1, {
    *invalidate(n, _r, cur) {
      mmuIntervalSetSeq(n, cur);
      return true;
    },
  }, 'test');
  mmuIntervalNotifierInsert(sub);
  const range = new HmmRange(sub, e.vma.start, e.vma.end);
  let result: unknown = 'not run';
  s.spawn('reader', (function* (): K<void> {
    yield* e.mm.mmapLock.readLock(s);
    yield s.point('holding mmap_lock');
    yield s.point('still holding');
    e.mm.mmapLock.readUnlock(s);
  })());
  s.spawn('driver', (function* (): K<void> {
    yield s.point('start');
    range.notifierSeq = yield* mmuIntervalReadBegin(sub);
    result = yield* hmmRangeFault(range);
  })());
  let turn = 0;
  assert.throws(() => s.run({ pick: (r) => (turn++ < 2 ? 0 : r.length - 1) }), (x: unknown) => {
    assert.ok(x instanceof KernelBug);
    assert.match(x.rule, /^hmm_range_fault: mmap_assert_locked\(mm\) failed: mmap_lock#\d+ not held by driver\/\d+ \(held by reader\/\d+\)$/);
    return true;
  });
  assert.equal(result, 'not run');
});

test('a migration round trip and a munmap under a mirror report nothing and teach the documented order', () => {
  const e = mkEnv(4, CHECKED);
  for (let i = 0; i < 4; i++) storePage(e.mm, e.vma.start + i * PAGE, i + 1);
  const sub = new MmuIntervalNotifier(e.mm, e.vma.start, e.vma.end - 1, {
    *invalidate(n, _r, cur) {
      mmuIntervalSetSeq(n, cur);
      return true;
    },
  }, 'test');
  mmuIntervalNotifierInsert(sub);
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private')), 4);
  for (let i = 0; i < 4; i++) cpu(e.mm, e.vma.start + i * PAGE, true);
  e.k.checkpoint('round trip');
  const ld = e.k.sched.lockdep!;
  assert.equal(ld.reports, 0);
  const deps = ld.dependencies();
  for (const d of [
    '&mm->mmap_lock -> ptlock (pte_lockptr)',
    '&mm->mmap_lock -> __mmu_notifier_invalidate_range_start_map',
    'folio_lock (PG_locked) -> ptlock (pte_lockptr)',
  ]) assert.ok(deps.includes(d), `${d} in ${deps.join(', ')}`);
  // Every learned dependency agrees with the documented order.
  const rank = new Map(Object.values(LOCK_CLASSES).map((c) => [c.name, c.rank]));
  for (const d of deps) {
    const [from, to] = d.split(' -> ').map((x) => rank.get(x.replace(/\/\d+$/, '')));
    if (from !== null && from !== undefined && to !== null && to !== undefined) assert.ok(from <= to, d);
  }
});
