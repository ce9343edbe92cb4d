// SPDX-License-Identifier: GPL-2.0-only
/**
 * HMM_DMIRROR_EXCLUSIVE and HMM_DMIRROR_CHECK_EXCLUSIVE: device atomic
 * access through make_device_exclusive().
 */
import type { K } from '../../kernel/sched/sched.js';
import { EFAULT, EINVAL, ENOMEM, EPERM } from '../../kernel/errno.js';
import { PAGE_SIZE } from '../../kernel/mm/page.js';
import { folioPut, folioUnlock } from '../../kernel/mm/folio.js';
import { makeDeviceExclusive } from '../../kernel/mm/device_exclusive.js';
import { copyToUser } from '../../kernel/uaccess.js';
import { DPT_XA_TAG_ATOMIC } from './device.js';
import { type Dmirror, mmgetNotZero, mmput, ptEntry, ptEntryTag, ptForEachRange } from './mirror.js';
import { cmdRange, dmirrorReturnMigrated } from './fault.js';
import type { HmmDmirrorCmd } from './uapi.js';
import { mmapReadLock } from '../../kernel/mm/mmap_lock.js';
import { mutexLock } from '../../kernel/sched/locks.js';

/**
 * dmirror_check_atomic(dmirror, start, end) (HMM_DMIRROR_CHECK_EXCLUSIVE):
 * -EPERM if any pt entry of [start, end) is tagged ATOMIC, else 0. No lock,
 * as the kernel (an xarray load is RCU-safe).
 */
export function dmirrorCheckAtomic(dmirror: Dmirror, start: number, end: number): number {
  let ret = 0;
  const last = Math.floor(end / PAGE_SIZE) - 1;
  if (last < Math.floor(start / PAGE_SIZE)) return 0;
  ptForEachRange(dmirror.pt, Math.floor(start / PAGE_SIZE), last, (_pfn, e) => {
    if (ptEntryTag(e) === DPT_XA_TAG_ATOMIC) ret = -EPERM;
  });
  return ret;
}

/** dmirror_atomic_map(addr, page, dmirror): store the page tagged ATOMIC under dmirror->mutex. 0. */
export function* dmirrorAtomicMap(addr: number, page: number, dmirror: Dmirror): K<number> {
  const s = dmirror.k.sched;
  yield* mutexLock(s, dmirror.mutex);
  if (dmirror.k.failInject.armed && dmirror.pt.get(Math.floor(addr / PAGE_SIZE)) === undefined && dmirror.k.shouldFail('xa_store')) {
    dmirror.mutex.unlock(s);
    return -ENOMEM; /* xa_is_err(entry): xa_err(entry) */
  }
  dmirror.pt.set(Math.floor(addr / PAGE_SIZE), ptEntry(page, DPT_XA_TAG_ATOMIC));
  dmirror.mutex.unlock(s);
  return 0;
}

/**
 * dmirror_exclusive(dmirror, cmd) (HMM_DMIRROR_EXCLUSIVE): under
 * mmap_read_lock, for each page make_device_exclusive(mm, addr, NULL)
 * (owner NULL as the kernel driver passes: its own notifier erases the
 * entry, then it is stored again) and map it ATOMIC; unlock and put the
 * folio. The first error ends the loop and is returned. Then read the range
 * through the mirror to cmd.ptr; cmd.cpages = pages read. -EINVAL if the
 * range wraps or the mm is gone.
 */
export function* dmirrorExclusive(dmirror: Dmirror, cmd: HmmDmirrorCmd): K<number> {
  const k = dmirror.k;
  const s = k.sched;
  const r = cmdRange(cmd);
  if (r === null) return -EINVAL;
  const { start, end } = r;
  const mm = dmirror.notifier.mm;
  if (!mmgetNotZero(mm)) return -EINVAL;
  let ret = 0;
  yield* mmapReadLock(mm);
  for (let addr = start; !ret && addr < end; addr += PAGE_SIZE) {
    const res = yield* makeDeviceExclusive(mm, addr, null);
    if ('err' in res) {
      ret = res.err;
      break;
    }
    ret = yield* dmirrorAtomicMap(addr, res.page, dmirror);
    folioUnlock(k, res.page);
    folioPut(k, res.page);
  }
  mm.mmapLock.readUnlock(s);
  mmput(mm);
  if (ret) return ret;

  return yield* dmirrorReturnMigrated(dmirror, cmd, start, end, r.size);
}
