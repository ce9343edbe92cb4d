// SPDX-License-Identifier: GPL-2.0-only
/**
 * Sleeping and spinning locks, and the rw-semaphore used for mmap_lock.
 *
 * Owners are Task ids (Sched.cur; 0 outside a scheduled run). Acquire is a
 * scheduler hook point when exploring; contention blocks the task. Lock
 * misuse (unlock by a non-owner, recursive acquire, unlock of a free lock)
 * raises a LOCKDEP KernelBug naming the lock.
 *
 * Fast path: `if (!m.tryFast(s)) yield* m.lock(s)` takes an uncontended
 * lock without creating a generator when not exploring.
 */
import { KernelBug } from '../printk.js';
import { type K, type Sched, waitUntil } from './sched.js';

export class Mutex {
  /** Owning task id + 1 (0 = unlocked). */
  owner = 0;
  constructor(readonly name: string) {}

  isLocked(): boolean {
    return this.owner !== 0;
  }

  /** Acquire without yielding if possible; false means: call lock(). */
  tryFast(s: Sched): boolean {
    if (s.exploring || this.owner !== 0) return false;
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
    this.owner = s.cur + 1;
    if (s.tracer !== null) s.tracer.lock(this.name, true);
    return true;
  }

  /** mutex_lock() / spin_lock(): a hook point, then block until free. */
  *lock(s: Sched): K<void> {
    if (this.owner === s.cur + 1) throw new KernelBug('LOCKDEP', `recursive locking of ${this.name}`, `already held by task ${s.cur}`);
    if (s.exploring) yield s.point(`lock ${this.name}`);
    yield* waitUntil(s, `lock ${this.name}`, () => this.owner === 0);
    this.owner = s.cur + 1;
    if (s.tracer !== null) s.tracer.lock(this.name, true);
  }

  /** mutex_unlock() / spin_unlock(). Callers in generator code may follow with a hook point. */
  unlock(s: Sched): void {
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

/** A spinlock behaves as a Mutex in the model; the name documents intent. */
export class Spinlock extends Mutex {}

/**
 * struct rw_semaphore (mmap_lock): many readers or one writer. Readers are
 * counted, not identified, except for lockdep checks on the writer.
 */
export class RwSem {
  readers = 0;
  /** Writer task id + 1, 0 when no writer. */
  writer = 0;
  constructor(readonly name: string) {}

  tryReadFast(s: Sched): boolean {
    if (s.exploring || this.writer !== 0) return false;
    this.readers++;
    if (s.tracer !== null) s.tracer.lock(`${this.name} (read)`, true);
    return true;
  }

  tryWriteFast(s: Sched): boolean {
    if (s.exploring || this.writer !== 0 || this.readers !== 0) return false;
    this.writer = s.cur + 1;
    if (s.tracer !== null) s.tracer.lock(`${this.name} (write)`, true);
    return true;
  }

  *readLock(s: Sched): K<void> {
    if (this.writer === s.cur + 1) throw new KernelBug('LOCKDEP', `read-locking ${this.name} while holding it for write`);
    if (s.exploring) yield s.point(`down_read ${this.name}`);
    yield* waitUntil(s, `down_read ${this.name}`, () => this.writer === 0);
    this.readers++;
    if (s.tracer !== null) s.tracer.lock(`${this.name} (read)`, true);
  }

  readUnlock(s: Sched): void {
    if (this.readers <= 0) throw new KernelBug('LOCKDEP', `up_read of ${this.name} with no readers`, `task ${s.cur}`);
    this.readers--;
    if (s.tracer !== null) s.tracer.lock(`${this.name} (read)`, false);
  }

  *writeLock(s: Sched): K<void> {
    if (this.writer === s.cur + 1) throw new KernelBug('LOCKDEP', `recursive down_write of ${this.name}`);
    if (s.exploring) yield s.point(`down_write ${this.name}`);
    yield* waitUntil(s, `down_write ${this.name}`, () => this.writer === 0 && this.readers === 0);
    this.writer = s.cur + 1;
    if (s.tracer !== null) s.tracer.lock(`${this.name} (write)`, true);
  }

  writeUnlock(s: Sched): void {
    if (this.writer !== s.cur + 1) throw new KernelBug('LOCKDEP', `up_write of ${this.name} not held for write by task ${s.cur}`);
    this.writer = 0;
    if (s.tracer !== null) s.tracer.lock(`${this.name} (write)`, false);
  }

  /** Held in any mode (mmap_assert_locked). Readers are not identified. */
  isLocked(): boolean {
    return this.writer !== 0 || this.readers > 0;
  }
}

/** spin_lock() / mutex_lock() from a K: the fast path never creates a generator. */
export function* spinLock(s: Sched, l: Mutex): K<void> {
  if (!l.tryFast(s)) yield* l.lock(s);
}
