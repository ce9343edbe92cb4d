// SPDX-License-Identifier: GPL-2.0-only
/**
 * The mmap_lock assertions (include/linux/mmap_lock.h): what a function
 * whose contract says "caller holds mmap_lock" calls first.
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
