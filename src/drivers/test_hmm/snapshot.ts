// SPDX-License-Identifier: GPL-2.0-only
/**
 * HMM_DMIRROR_SNAPSHOT: one byte per page describing what the CPU page
 * table maps, from hmm_range_fault() without fault flags (nothing is
 * faulted in), with this device as dev_private_owner.
 */
import type { K } from '../../kernel/sched/sched.js';
import { EFAULT, EINVAL } from '../../kernel/errno.js';
import { PAGE_SHIFT, PAGE_SIZE } from '../../kernel/mm/page.js';
import { isDeviceCoherentPage, isDevicePrivatePage, pagePgmap } from '../../kernel/mm/memremap.js';
import {
  HMM_PFN_ERROR, HMM_PFN_VALID, HMM_PFN_WRITE, HmmRange, hmmPfnTest, hmmPfnToMapOrder, hmmPfnToPfn,
} from '../../kernel/mm/hmm.js';
import {
  MmuIntervalNotifier, type MmuNotifierRange, mmuIntervalNotifierInsert, mmuIntervalNotifierRemove,
  mmuIntervalSetSeq, mmuNotifierRangeBlockable,
} from '../../kernel/mm/mmu_notifier.js';
import { copyToUser } from '../../kernel/uaccess.js';
import { type Dmirror, mmgetNotZero, mmput } from './mirror.js';
import { DMIRROR_PFN_BATCH, cmdRange, dmirrorRangeFaultLocked } from './fault.js';
import {
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL, HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE, HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE, HMM_DMIRROR_PROT_ERROR, HMM_DMIRROR_PROT_NONE, HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_PUD, HMM_DMIRROR_PROT_READ, HMM_DMIRROR_PROT_WRITE, HMM_DMIRROR_PROT_ZERO, type HmmDmirrorCmd,
} from './uapi.js';
import { mutexLock } from '../../kernel/sched/locks.js';

const PMD_SHIFT = 21;
const PUD_SHIFT = 30;

/**
 * dmirror_mkentry(dmirror, range, perm, entry): the snapshot byte of one
 * hmm_pfn. ERROR -> 0xFF; not VALID -> 0x00; else the page kind
 * (device-private LOCAL 0x20 / REMOTE 0x30 by owning device, coherent 0x40 /
 * 0x50, the zero pfn 0x10, else 0) | WRITE or READ | PMD or PUD by the map
 * order. (The huge zero page is not is_zero_pfn(): it reads READ|PMD.)
 */
export function dmirrorMkentry(dmirror: Dmirror, entry: number): number {
  const k = dmirror.k;
  if (hmmPfnTest(entry, HMM_PFN_ERROR)) return HMM_DMIRROR_PROT_ERROR;
  if (!hmmPfnTest(entry, HMM_PFN_VALID)) return HMM_DMIRROR_PROT_NONE;
  const page = hmmPfnToPfn(entry);
  let perm: number;
  if (isDevicePrivatePage(k, page)) {
    perm = pagePgmap(k, page)!.owner === dmirror.mdevice ? HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL : HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
  } else if (isDeviceCoherentPage(k, page)) {
    perm = pagePgmap(k, page)!.owner === dmirror.mdevice ? HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL : HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE;
  } else if (page === k.zeroPfn) perm = HMM_DMIRROR_PROT_ZERO;
  else perm = HMM_DMIRROR_PROT_NONE;
  perm |= hmmPfnTest(entry, HMM_PFN_WRITE) ? HMM_DMIRROR_PROT_WRITE : HMM_DMIRROR_PROT_READ;
  const order = hmmPfnToMapOrder(entry);
  if (order + PAGE_SHIFT === PMD_SHIFT) perm |= HMM_DMIRROR_PROT_PMD;
  else if (order + PAGE_SHIFT === PUD_SHIFT) perm |= HMM_DMIRROR_PROT_PUD;
  return perm;
}

/**
 * dmirror_snapshot_invalidate(): the temporary per-batch notifier only
 * bumps its sequence (any invalidation spoils the whole snapshot), under
 * dmirror->mutex (trylock when not blockable).
 */
export function* dmirrorSnapshotInvalidate(dmirror: Dmirror, mni: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): K<boolean> {
  const s = dmirror.k.sched;
  if (mmuNotifierRangeBlockable(range)) {
    yield* mutexLock(s, dmirror.mutex);
  } else if (!dmirror.mutex.trylock(s)) return false;
  mmuIntervalSetSeq(mni, curSeq);
  dmirror.mutex.unlock(s);
  return true;
}

/**
 * dmirror_range_snapshot(dmirror, range, perm): insert a temporary interval
 * notifier over the batch, run the read_begin / hmm_range_fault /
 * read_retry loop (-EBUSY after the timeout), encode each entry under
 * dmirror->mutex, remove the notifier. 0 or -errno.
 */
export function* dmirrorRangeSnapshot(dmirror: Dmirror, range: HmmRange, perm: Uint8Array): K<number> {
  const mm = dmirror.notifier.mm;
  const notifier = new MmuIntervalNotifier(mm, range.start, range.end - 1, { invalidate: (sub, r, cur) => dmirrorSnapshotInvalidate(dmirror, sub, r, cur) }, `dmirror#${dmirror.id} snapshot`);
  range.notifier = notifier;
  const r = mmuIntervalNotifierInsert(notifier);
  if (r) return r;
  const ret = yield* dmirrorRangeFaultLocked(dmirror, range);
  if (ret === 0) {
    const n = Math.floor((range.end - range.start) / PAGE_SIZE);
    for (let i = 0; i < n; i++) perm[i] = dmirrorMkentry(dmirror, range.hmmPfns[i]);
    dmirror.mutex.unlock(dmirror.k.sched);
  }
  mmuIntervalNotifierRemove(notifier);
  return ret;
}

/**
 * dmirror_snapshot(dmirror, cmd) (HMM_DMIRROR_SNAPSHOT): in batches of 32
 * pages, snapshot and copy the bytes to cmd.ptr (-EFAULT if that fails);
 * cmd.cpages += bytes written. -EINVAL if the range wraps or the mm is gone.
 */
export function* dmirrorSnapshot(dmirror: Dmirror, cmd: HmmDmirrorCmd): K<number> {
  const k = dmirror.k;
  const r = cmdRange(cmd);
  if (r === null) return -EINVAL;
  const mm = dmirror.notifier.mm;
  if (!mmgetNotZero(mm)) return -EINVAL;
  const perm = new Uint8Array(DMIRROR_PFN_BATCH);
  const range = new HmmRange(dmirror.notifier, r.start, r.start, 0, 0, dmirror.mdevice, new Float64Array(DMIRROR_PFN_BATCH));
  let uptr = Number(cmd.ptr);
  let ret = 0;
  for (let addr = r.start, next = 0; addr < r.end; addr = next) {
    next = Math.min(addr + DMIRROR_PFN_BATCH * PAGE_SIZE, r.end);
    range.start = addr;
    range.end = next;
    range.hmmPfns.fill(0);
    ret = yield* dmirrorRangeSnapshot(dmirror, range, perm);
    if (ret) break;
    const n = Math.floor((range.end - range.start) / PAGE_SIZE);
    const left = yield* copyToUser(k.current.mm!, uptr, perm, n);
    if (left) {
      ret = -EFAULT;
      break;
    }
    cmd.cpages += BigInt(n);
    uptr += n;
  }
  mmput(mm);
  return ret;
}
