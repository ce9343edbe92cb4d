// SPDX-License-Identifier: GPL-2.0-only
/**
 * mmap_lock (include/linux/mmap_lock.h): the acquire helpers every caller
 * uses, `yield* mmapReadLock(mm)` / `yield* mmapWriteLock(mm)` (the one
 * acquire idiom of sched/locks.ts: no generator when uncontended and not
 * exploring), and the assertions a function whose contract says "caller
 * holds mmap_lock" calls first.
 *
 * mmap_assert_locked(mm) is lockdep_assert_held(&mm->mmap_lock) (plus a
 * VM_BUG_ON_MM on rwsem_is_locked()). In checked mode lockdep requires that
 * the calling simulated thread holds it (read or write) and reports a
 * KernelBug('LOCKDEP') naming the function and the assertion; otherwise the
 * call is one branch. (hmm_range_fault(), get_user_pages() and
 * make_device_exclusive() also keep an always-on "someone holds it" test,
 * for a misbehaving driver outside checked mode.)
 */
import type { MmStruct } from './mm_types.js';
import { ACQUIRED } from '../sched/locks.js';
import type { K } from '../sched/sched.js';

/** mmap_read_lock(mm): down_read(&mm->mmap_lock). Held for read when the yield* returns. */
export function mmapReadLock(mm: MmStruct): K<void> {
  const s = mm.kernel.sched;
  return mm.mmapLock.tryReadFast(s) ? ACQUIRED : mm.mmapLock.readLock(s);
}

/** mmap_write_lock(mm): down_write(&mm->mmap_lock). Held for write when the yield* returns. */
export function mmapWriteLock(mm: MmStruct): K<void> {
  const s = mm.kernel.sched;
  return mm.mmapLock.tryWriteFast(s) ? ACQUIRED : mm.mmapLock.writeLock(s);
}

/**
 * mmap_write_lock_nested(mm, subclass): the second mm of dup_mmap() (the
 * child's, SINGLE_DEPTH_NESTING) while the parent's is held for write.
 */
export function mmapWriteLockNested(mm: MmStruct, subclass: number): K<void> {
  const s = mm.kernel.sched;
  return mm.mmapLock.tryWriteFast(s, subclass) ? ACQUIRED : mm.mmapLock.writeLock(s, subclass);
}

/** mmap_assert_locked(mm) at the top of `what`(). */
export function mmapAssertLocked(mm: MmStruct, what: string): void {
  const ld = mm.kernel.sched.lockdep;
  if (ld !== null) ld.assertHeld(mm.mmapLock, what, 'mmap_assert_locked(mm)');
}

/** mmap_assert_write_locked(mm) at the top of `what`(). */
export function mmapAssertWriteLocked(mm: MmStruct, what: string): void {
  const ld = mm.kernel.sched.lockdep;
  if (ld !== null) ld.assertHeld(mm.mmapLock, what, 'mmap_assert_write_locked(mm)', false);
}
