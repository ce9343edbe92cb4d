// SPDX-License-Identifier: GPL-2.0-only
/**
 * Sleeping and spinning locks, and the rw-semaphore used for mmap_lock.
 *
 * Owners are Task ids (Sched.cur; 0 outside a scheduled run). Acquire is a
 * scheduler hook point when exploring; contention blocks the task. Lock
 * misuse (unlock by a non-owner, recursive acquire, unlock of a free lock)
 * raises a LOCKDEP KernelBug naming the lock.
 *
 * Every lock belongs to a lock class (lockdep.ts LOCK_CLASSES, where the
 * lock order is written). In checked mode `s.lockdep` validates each
 * acquire and release (order, learned dependencies, recursion, unlock
 * balance, sleeping under a spinlock); otherwise the cost is the one
 * `s.lockdep !== null` test.
 *
 * One idiom for an acquire that may sleep or spin: `yield* spinLock(s, l)`,
 * `yield* mutexLock(s, m)`, `yield* mmapReadLock(mm)` (mm/mmap_lock.ts).
 * Each helper is a plain function, not a generator: when not exploring and
 * the lock is free it takes it on the spot (tryFast()) and returns
 * ACQUIRED, a finished K that `yield*` completes without allocating; else
 * it returns the lock's generator (lock(), readLock(), writeLock()), which
 * is a scheduler hook point and blocks on contention. tryFast() and the
 * generators are the helpers' building blocks; code outside the lock
 * modules calls the helpers. (trylock() is mutex_trylock()/spin_trylock(),
 * a different operation: it never waits.)
 */
import { KernelBug } from '../printk.js';
import { type K, type Sched, type SchedEvent } from './sched.js';
import type { LockClass, LockInstance } from './lockdep.js';

/**
 * The wait of a lock acquire: waitUntil() without its might_sleep() (the
 * caller did the lockdep checks; spinning on a spinlock does not sleep).
 */
function* lockWait(s: Sched, what: string, cond: () => boolean): K<void> {
  while (!cond()) {
    if (!s.exploring) throw new KernelBug('HANG', `wait that can never finish: ${what}`, 'no other simulated thread can make progress (run-to-completion mode)');
    const ev: SchedEvent = { kind: 'block', what, arg: -1, cond };
    yield ev;
  }
}

export class Mutex implements LockInstance {
  /** Owning task id + 1 (0 = unlocked). */
  owner = 0;
  constructor(
    readonly name: string,
    readonly cls: LockClass,
  ) {}

  isLocked(): boolean {
    return this.owner !== 0;
  }

  /**
   * Acquire without yielding if possible; false means: call lock().
   * `subclass`: the nesting level of spin_lock_nested() (SINGLE_DEPTH_NESTING).
   */
  tryFast(s: Sched, subclass = 0): boolean {
    if (s.exploring || this.owner !== 0) return false;
    if (s.lockdep !== null) s.lockdep.acquire(this, this.cls, subclass, false, false);
    this.owner = s.cur + 1;
    if (s.tracer !== null) s.tracer.lock(this.name, true);
    return true;
  }

  /** mutex_trylock() / spin_trylock(): never blocks. */
  trylock(s: Sched): boolean {
    if (this.owner !== 0) {
      if (this.owner === s.cur + 1) throw new KernelBug('LOCKDEP', `recursive trylock of ${this.name}`, `held by task ${s.cur}`);
      return false;
    }
    if (s.lockdep !== null) s.lockdep.acquire(this, this.cls, 0, false, true);
    this.owner = s.cur + 1;
    if (s.tracer !== null) s.tracer.lock(this.name, true);
    return true;
  }

  /** mutex_lock() / spin_lock(): a hook point, then block until free. */
  *lock(s: Sched, subclass = 0): K<void> {
    if (s.lockdep !== null) s.lockdep.acquire(this, this.cls, subclass, false, false);
    if (this.owner === s.cur + 1) throw new KernelBug('LOCKDEP', `recursive locking of ${this.name}`, `already held by task ${s.cur}`);
    if (s.exploring) yield s.point(`lock ${this.name}`);
    yield* lockWait(s, `lock ${this.name}`, () => this.owner === 0);
    this.owner = s.cur + 1;
    if (s.tracer !== null) s.tracer.lock(this.name, true);
  }

  /** mutex_unlock() / spin_unlock(). Callers in generator code may follow with a hook point. */
  unlock(s: Sched): void {
    if (s.lockdep !== null) s.lockdep.release(this, false);
    if (this.owner === 0) throw new KernelBug('LOCKDEP', `unlock of unlocked ${this.name}`);
    if (this.owner !== s.cur + 1) throw new KernelBug('LOCKDEP', `unlock of ${this.name} by task ${s.cur}, held by task ${this.owner - 1}`);
    this.owner = 0;
    if (s.tracer !== null) s.tracer.lock(this.name, false);
  }

  /** lockdep_assert_held() */
  assertHeld(s: Sched): void {
    if (this.owner !== s.cur + 1) throw new KernelBug('LOCKDEP', `${this.name} not held by task ${s.cur}`);
  }
}

/** A spinlock behaves as a Mutex in the model; its class says it does not sleep. */
export class Spinlock extends Mutex {}

/**
 * struct rw_semaphore (mmap_lock): many readers or one writer. Readers are
 * counted, not identified, except by lockdep (checked mode), which keeps
 * each thread's read holds.
 */
export class RwSem implements LockInstance {
  readers = 0;
  /** Writer task id + 1, 0 when no writer. */
  writer = 0;
  constructor(
    readonly name: string,
    readonly cls: LockClass,
  ) {}

  tryReadFast(s: Sched): boolean {
    if (s.exploring || this.writer !== 0) return false;
    if (s.lockdep !== null) s.lockdep.acquire(this, this.cls, 0, true, false);
    this.readers++;
    if (s.tracer !== null) s.tracer.lock(`${this.name} (read)`, true);
    return true;
  }

  /** `subclass`: mmap_write_lock_nested()'s nesting level. */
  tryWriteFast(s: Sched, subclass = 0): boolean {
    if (s.exploring || this.writer !== 0 || this.readers !== 0) return false;
    if (s.lockdep !== null) s.lockdep.acquire(this, this.cls, subclass, false, false);
    this.writer = s.cur + 1;
    if (s.tracer !== null) s.tracer.lock(`${this.name} (write)`, true);
    return true;
  }

  *readLock(s: Sched): K<void> {
    if (s.lockdep !== null) s.lockdep.acquire(this, this.cls, 0, true, false);
    if (this.writer === s.cur + 1) throw new KernelBug('LOCKDEP', `read-locking ${this.name} while holding it for write`);
    if (s.exploring) yield s.point(`down_read ${this.name}`);
    yield* lockWait(s, `down_read ${this.name}`, () => this.writer === 0);
    this.readers++;
    if (s.tracer !== null) s.tracer.lock(`${this.name} (read)`, true);
  }

  readUnlock(s: Sched): void {
    if (s.lockdep !== null) s.lockdep.release(this, true);
    if (this.readers <= 0) throw new KernelBug('LOCKDEP', `up_read of ${this.name} with no readers`, `task ${s.cur}`);
    this.readers--;
    if (s.tracer !== null) s.tracer.lock(`${this.name} (read)`, false);
  }

  *writeLock(s: Sched, subclass = 0): K<void> {
    if (s.lockdep !== null) s.lockdep.acquire(this, this.cls, subclass, false, false);
    if (this.writer === s.cur + 1) throw new KernelBug('LOCKDEP', `recursive down_write of ${this.name}`);
    if (s.exploring) yield s.point(`down_write ${this.name}`);
    yield* lockWait(s, `down_write ${this.name}`, () => this.writer === 0 && this.readers === 0);
    this.writer = s.cur + 1;
    if (s.tracer !== null) s.tracer.lock(`${this.name} (write)`, true);
  }

  writeUnlock(s: Sched): void {
    if (s.lockdep !== null) s.lockdep.release(this, false);
    if (this.writer !== s.cur + 1) throw new KernelBug('LOCKDEP', `up_write of ${this.name} not held for write by task ${s.cur}`);
    this.writer = 0;
    if (s.tracer !== null) s.tracer.lock(`${this.name} (write)`, false);
  }

  /** Held in any mode (mmap_assert_locked). Readers are not identified. */
  isLocked(): boolean {
    return this.writer !== 0 || this.readers > 0;
  }
}

/** The IteratorResult of a finished K<void> (frozen: shared by every machine). */
const DONE: IteratorReturnResult<void> = Object.freeze({ done: true, value: undefined });

/**
 * A K<void> that is already finished: `yield* ACQUIRED` returns at once.
 * What the acquire helpers return when the fast path took the lock, so an
 * uncontended acquire creates no generator object.
 */
export const ACQUIRED: K<void> = Object.freeze({
  next: (): IteratorReturnResult<void> => DONE,
  return: (): IteratorReturnResult<void> => DONE,
  throw: (e: unknown): never => { throw e; },
  [Symbol.iterator](): K<void> { return ACQUIRED; },
}) as unknown as K<void>;

/**
 * spin_lock(l): `yield* spinLock(s, l)`. Takes an uncontended lock at once
 * (no generator when not exploring), else the scheduler hook point and the
 * spin of Mutex.lock(). The lock is held when the yield* returns.
 */
export function spinLock(s: Sched, l: Mutex): K<void> {
  return l.tryFast(s) ? ACQUIRED : l.lock(s);
}

/** spin_lock_nested(l, subclass): a second lock of a class already held, annotated. */
export function spinLockNested(s: Sched, l: Mutex, subclass: number): K<void> {
  return l.tryFast(s, subclass) ? ACQUIRED : l.lock(s, subclass);
}

/**
 * mutex_lock(m): `yield* mutexLock(s, m)`. As spinLock(); the lock class
 * says the holder may sleep (lockdep checks it in checked mode).
 */
export function mutexLock(s: Sched, m: Mutex): K<void> {
  return m.tryFast(s) ? ACQUIRED : m.lock(s);
}

/**
 * lockdep_assert_held(l): checked mode only (a no-op without lockdep, as in
 * the kernel). `what` names the function whose contract requires it.
 */
export function lockdepAssertHeld(s: Sched, l: Mutex, what: string): void {
  if (s.lockdep !== null) s.lockdep.assertHeld(l, what);
}
