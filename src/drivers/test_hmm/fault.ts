// SPDX-License-Identifier: GPL-2.0-only
/**
 * Device access to system memory through the mirror: HMM_DMIRROR_READ and
 * HMM_DMIRROR_WRITE, the device page-fault path dmirror_fault() built on
 * hmm_range_fault(), and the bounce buffer helpers shared with the other
 * commands.
 */
import type { Kernel } from '../../kernel/kernel.js';
import type { K } from '../../kernel/sched/sched.js';
import { KernelBug } from '../../kernel/printk.js';
import { EBUSY, EFAULT, EINVAL, ENOENT, ENOMEM } from '../../kernel/errno.js';
import { PAGE_SIZE } from '../../kernel/mm/page.js';
import { kasanCheck } from '../../kernel/mm/folio.js';
import {
  HMM_PFN_ERROR, HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, HMM_PFN_VALID, HMM_PFN_WRITE, HMM_RANGE_DEFAULT_TIMEOUT,
  HmmRange, hmmPfnTest, hmmPfnToPfn, hmmRangeFault,
} from '../../kernel/mm/hmm.js';
import { mmuIntervalReadBegin, mmuIntervalReadRetry } from '../../kernel/mm/mmu_notifier.js';
import { copyFromUser, copyToUser } from '../../kernel/uaccess.js';
import { DPT_XA_TAG_WRITE, backingPage, dmirrorPageToDevice, testHmmModule } from './device.js';
import { isDevicePrivatePage } from '../../kernel/mm/memremap.js';
import { pageBug } from '../../kernel/mm/debug.js';
import { type Dmirror, mmgetNotZero, mmput, ptEntry, ptEntryPage, ptEntryTag } from './mirror.js';
import type { HmmDmirrorCmd } from './uapi.js';
import { lockdepAssertHeld, mutexLock } from '../../kernel/sched/locks.js';
import { mmapReadLock } from '../../kernel/mm/mmap_lock.js';

/**
 * The jiffies timeout of dmirror_range_fault() / dmirror_range_snapshot()
 * (HMM_RANGE_DEFAULT_TIMEOUT ms), modelled as a bound on read_begin/retry
 * rounds: time only passes in the model when some other thread invalidates
 * the range, so one round stands for one millisecond.
 */
export const DMIRROR_RANGE_MAX_ROUNDS = HMM_RANGE_DEFAULT_TIMEOUT;

/** Batch size of dmirror_fault() and dmirror_snapshot(): `unsigned long pfns[32]`. */
export const DMIRROR_PFN_BATCH = 32;

/** struct dmirror_bounce: a vmalloc'ed kernel buffer mirroring [addr, addr + size). */
export interface DmirrorBounce {
  buf: Uint8Array;
  size: number;
  addr: number;
  cpages: number;
}

/** The u64 range arithmetic every command starts with: start, end = start + (npages << PAGE_SHIFT) mod 2^64. */
export function cmdRange(cmd: HmmDmirrorCmd): { start: number; end: number; size: number } | null {
  const m = (1n << 64n) - 1n;
  const size = (cmd.npages << 12n) & m;
  const end = (cmd.addr + size) & m;
  if (end < cmd.addr) return null;
  return { start: Number(cmd.addr), end: Number(end), size: Number(size) };
}

/**
 * dmirror_bounce_init(): vmalloc(size). Sizes beyond system RAM fail with
 * -ENOMEM (vmalloc cannot back them).
 */
export function dmirrorBounceInit(k: Kernel, addr: number, size: number): DmirrorBounce | number {
  if (size > k.config.ramBytes) return -ENOMEM;
  if (k.shouldFail('dmirror_bounce_init')) return -ENOMEM; /* vmalloc() returned NULL */
  // vmalloc memory is not zeroed: a buffer freed by dmirror_bounce_fini()
  // is handed out again (the model's vmalloc cache; a fresh 256 MiB typed
  // array per ioctl would cost the host more than the copy itself).
  const mod = testHmmModule(k);
  const cached = mod !== null ? mod.bounceCache : null;
  let buf: Uint8Array;
  if (cached !== null && cached.length >= size) {
    mod!.bounceCache = null;
    buf = cached.subarray(0, size);
  } else buf = new Uint8Array(size);
  return { buf, size, addr, cpages: 0 };
}

/** dmirror_bounce_fini(): vfree(bounce->ptr). */
export function dmirrorBounceFini(k: Kernel, bounce: DmirrorBounce): void {
  const whole = new Uint8Array(bounce.buf.buffer);
  const mod = testHmmModule(k);
  if (mod !== null && (mod.bounceCache === null || mod.bounceCache.length < whole.length)) mod.bounceCache = whole; /* TestHmm.bounceCache */
}

/**
 * The common end of the reading commands: if `ret` is 0, copy the bounce
 * buffer to cmd.ptr (-EFAULT if copy_to_user fails); cmd.cpages = pages
 * read; free the bounce buffer. Returns the final ret.
 */
function* dmirrorBounceOut(k: Kernel, cmd: HmmDmirrorCmd, bounce: DmirrorBounce, ret: number): K<number> {
  if (ret === 0) {
    const left = yield* copyToUser(k.current.mm!, Number(cmd.ptr), bounce.buf, bounce.size);
    if (left) ret = -EFAULT;
  }
  cmd.cpages = BigInt(bounce.cpages);
  dmirrorBounceFini(k, bounce);
  return ret;
}

/**
 * The end of MIGRATE_TO_DEV / MIGRATE_TO_SYS / EXCLUSIVE: "return the
 * migrated data for verification": read [start, end) through the device
 * page table into a bounce buffer (under dmirror->mutex) and copy it to
 * cmd.ptr. cmd.cpages = pages read. 0, -ENOENT (a page not in the mirror),
 * -EFAULT (copy_to_user), -ENOMEM (bounce).
 */
export function* dmirrorReturnMigrated(dmirror: Dmirror, cmd: HmmDmirrorCmd, start: number, end: number, size: number): K<number> {
  const k = dmirror.k;
  const s = k.sched;
  const bounce = dmirrorBounceInit(k, start, size);
  if (typeof bounce === 'number') return bounce;
  yield* mutexLock(s, dmirror.mutex);
  const ret = dmirrorDoRead(dmirror, start, end, bounce);
  dmirror.mutex.unlock(s);
  return yield* dmirrorBounceOut(k, cmd, bounce, ret);
}

/**
 * dmirror_do_read(dmirror, start, end, bounce): copy every page of [start,
 * end) from the page the device page table maps into the bounce buffer
 * (memcpy_from_page), counting bounce.cpages. -ENOENT at the first missing
 * entry. Caller holds dmirror->mutex.
 *
 * The table holds what the driver stored: the backing page of a page it
 * migrated (dmirror_migrate_finalize_and_map), or whatever
 * hmm_range_fault() reported (dmirror_do_fault), which for the device's
 * own device-private pages is the device-private page itself. As in
 * mainline, that page is copied as is: memcpy_from_page() of a
 * device-private page has no direct map to go through and oopses
 * ("BUG: unable to handle page fault", docs/FINDINGS.md); the access
 * faults before KASAN could look at it. With config.fixes.dmirror_devmem_fix
 * the copy goes through BACKING_PAGE(page) instead.
 */
export function dmirrorDoRead(dmirror: Dmirror, start: number, end: number, bounce: DmirrorBounce): number {
  lockdepAssertHeld(dmirror.k.sched, dmirror.mutex, 'dmirror_do_read');
  const k = dmirror.k;
  const fix = k.config.fixes.dmirror_devmem_fix;
  let off = Math.floor((start - bounce.addr) / PAGE_SIZE) * PAGE_SIZE;
  // Pages that follow one another physically are copied as one run (a
  // device THP's backing folio): the same bytes as page by page.
  let runPage = 0;
  let runN = 0;
  let runOff = 0;
  let ret = 0;
  for (let pfn = Math.floor(start / PAGE_SIZE); pfn < Math.floor(end / PAGE_SIZE); pfn++) {
    let page = ptEntryPage(dmirror.pt.get(pfn));
    if (!page) {
      ret = -ENOENT;
      break;
    }
    if (fix) page = dmirrorDataPage(dmirror, page, 'dmirror_do_read');
    else k.contents.checkMapped(page, 'memcpy_from_page', 'dmirror_do_read');
    kasanCheck(k, page, 'dmirror_do_read: memcpy_from_page');
    if (runN !== 0 && page === runPage + runN) runN++;
    else {
      if (runN !== 0) k.contents.readPages(runPage, runN, bounce.buf, runOff, 'dmirror_do_read');
      runPage = page;
      runN = 1;
      runOff = off;
    }
    off += PAGE_SIZE;
    bounce.cpages++;
  }
  if (runN !== 0) k.contents.readPages(runPage, runN, bounce.buf, runOff, 'dmirror_do_read');
  return ret;
}

/**
 * config.fixes.dmirror_devmem_fix: the page holding the data of a device
 * page table entry: BACKING_PAGE(page) (the entry itself for a system or
 * coherent page). A device-private page in the table is always one of
 * this device's (hmm_range_fault reports another owner's pages only after
 * faulting them to system memory), so its zone_device_data is its backing
 * page.
 */
function dmirrorDataPage(dmirror: Dmirror, page: number, what: string): number {
  const k = dmirror.k;
  if (!isDevicePrivatePage(k, page)) return page;
  kasanCheck(k, page, `${what}: BACKING_PAGE`);
  if (dmirrorPageToDevice(k, page) !== dmirror.mdevice) pageBug(k, 'BUG', `${what}: device-private page of another device in the device page table`, page, 'BACKING_PAGE() of a foreign page');
  return backingPage(k, page);
}

/**
 * dmirror_do_write(): copy the bounce buffer into the pages of [start,
 * end); an entry must be tagged exactly WRITE (read-only and ATOMIC count
 * as missing: -ENOENT). Caller holds dmirror->mutex. A device-private
 * page in the table is written as is (memcpy_to_page): the oops of
 * dmirror_do_read; with config.fixes.dmirror_devmem_fix its backing page.
 */
export function dmirrorDoWrite(dmirror: Dmirror, start: number, end: number, bounce: DmirrorBounce): number {
  lockdepAssertHeld(dmirror.k.sched, dmirror.mutex, 'dmirror_do_write');
  const k = dmirror.k;
  const fix = k.config.fixes.dmirror_devmem_fix;
  let off = Math.floor((start - bounce.addr) / PAGE_SIZE) * PAGE_SIZE;
  for (let pfn = Math.floor(start / PAGE_SIZE); pfn < Math.floor(end / PAGE_SIZE); pfn++) {
    const e = dmirror.pt.get(pfn);
    let page = ptEntryPage(e);
    if (!page || ptEntryTag(e) !== DPT_XA_TAG_WRITE) return -ENOENT;
    if (fix) page = dmirrorDataPage(dmirror, page, 'dmirror_do_write');
    else k.contents.checkMapped(page, 'memcpy_to_page', 'dmirror_do_write');
    kasanCheck(k, page, 'dmirror_do_write: memcpy_to_page');
    k.contents.write(page, 0, bounce.buf, off, PAGE_SIZE, 'dmirror_do_write');
    off += PAGE_SIZE;
    bounce.cpages++;
  }
  return 0;
}

/**
 * dmirror_do_fault(dmirror, range): store hmm_range_fault()'s output in
 * the device page table, tagged WRITE when HMM_PFN_WRITE. WARNs on ERROR
 * or !VALID entries (a successful faulting range has none); -EFAULT (with a
 * WARN) if a write was requested but the page is not writable. Caller
 * holds dmirror->mutex (after a successful read_retry check).
 */
export function dmirrorDoFault(dmirror: Dmirror, range: HmmRange): number {
  lockdepAssertHeld(dmirror.k.sched, dmirror.mutex, 'dmirror_do_fault');
  const k = dmirror.k;
  const first = Math.floor(range.start / PAGE_SIZE);
  const n = Math.floor(range.end / PAGE_SIZE) - first;
  for (let i = 0; i < n; i++) {
    const w = range.hmmPfns[i];
    if (hmmPfnTest(w, HMM_PFN_ERROR)) k.printk.warn('dmirror_do_fault: WARN_ON(*pfns & HMM_PFN_ERROR)');
    if (!hmmPfnTest(w, HMM_PFN_VALID)) k.printk.warn('dmirror_do_fault: WARN_ON(!(*pfns & HMM_PFN_VALID))');
    const page = hmmPfnToPfn(w);
    if (!page) k.printk.warn('dmirror_do_fault: WARN_ON(!page)');
    let tag = 0;
    if (hmmPfnTest(w, HMM_PFN_WRITE)) tag = DPT_XA_TAG_WRITE;
    else if (hmmPfnTest(range.defaultFlags, HMM_PFN_WRITE)) {
      k.printk.warn('dmirror_do_fault: WARN_ON(range->default_flags & HMM_PFN_WRITE)');
      return -EFAULT;
    }
    // xa_store(GFP_ATOMIC) failing to allocate a node: xa_err() = -ENOMEM.
    // Only a store into an empty index may need a node (the model has no
    // nodes: any empty index may; replacing an entry never allocates).
    if (k.failInject.armed && dmirror.pt.get(first + i) === undefined && k.shouldFail('xa_store')) return -ENOMEM;
    dmirror.pt.set(first + i, ptEntry(page, tag));
  }
  return 0;
}

/**
 * The read_begin / mmap_read_lock / hmm_range_fault / read_retry loop of
 * dmirror_range_fault() and dmirror_range_snapshot(): -EBUSY from
 * hmm_range_fault or a failed read_retry start over, until the timeout
 * (DMIRROR_RANGE_MAX_ROUNDS) gives -EBUSY. On 0 return dmirror->mutex is
 * held (the caller consumes the output and unlocks); on error it is not.
 */
export function* dmirrorRangeFaultLocked(dmirror: Dmirror, range: HmmRange): K<number> {
  const mm = dmirror.notifier.mm;
  const s = dmirror.k.sched;
  const clock = dmirror.k.clock;
  if (clock !== null && clock.profile.device !== undefined) clock.charge('device fault: interrupt + driver', clock.profile.device.faultNs);
  for (let round = 0; ; round++) {
    if (round >= DMIRROR_RANGE_MAX_ROUNDS) return -EBUSY;
    range.notifierSeq = yield* mmuIntervalReadBegin(range.notifier);
    yield* mmapReadLock(mm);
    const ret = yield* hmmRangeFault(range);
    mm.mmapLock.readUnlock(s);
    if (ret) {
      if (ret === -EBUSY) continue;
      return ret;
    }
    yield* mutexLock(s, dmirror.mutex);
    if (mmuIntervalReadRetry(range.notifier, range.notifierSeq)) {
      dmirror.mutex.unlock(s);
      continue;
    }
    return 0;
  }
}

/**
 * dmirror_range_fault(dmirror, range): fault the range in through
 * hmm_range_fault() (see dmirrorRangeFaultLocked for the retry loop), then
 * store it in the device page table under dmirror->mutex. Takes mmap_lock
 * for read around hmm_range_fault; 0 or -errno (-EBUSY after the timeout,
 * -EFAULT / -EPERM from hmm_range_fault).
 */
export function* dmirrorRangeFault(dmirror: Dmirror, range: HmmRange): K<number> {
  const ret = yield* dmirrorRangeFaultLocked(dmirror, range);
  if (ret) return ret;
  const r = dmirrorDoFault(dmirror, range);
  dmirror.mutex.unlock(dmirror.k.sched);
  return r;
}

/**
 * dmirror_read() / dmirror_write() loop while dmirror_do_read/write() says
 * -ENOENT and dmirror_fault() returns 0. When the mirrored mm has exited,
 * dmirror_fault() returns 0 without faulting anything (`if
 * (!mmget_not_zero(mm)) return 0;`) and nothing can fill the device page
 * table again (every path that does takes an mm reference first), so the
 * kernel's ioctl spins forever, e.g. when a fork child that inherited the
 * fd issues READ after the parent exited. The model reports that livelock
 * as a HANG instead of spinning. (linux-mm's ae6cb930 variant returns
 * -EFAULT there.)
 */
function dmirrorFaultLivelock(dmirror: Dmirror, what: string, start: number): void {
  const mm = dmirror.notifier.mm;
  if (mm.mmUsers > 0) return;
  throw new KernelBug('HANG', `${what}: dmirror_fault() returns 0 for the mirror's exited mm #${mm.id}; dmirror_do_${what === 'dmirror_read' ? 'read' : 'write'}() keeps returning -ENOENT at 0x${start.toString(16)}: the ioctl loops forever`);
}

/**
 * dmirror_fault(dmirror, start, end, write): a device page fault over
 * [start, end): hmm_range_fault with HMM_PFN_REQ_FAULT (| REQ_WRITE),
 * dev_private_owner = the device, in batches of 32 pages. Takes an mm
 * reference first (0 if the mm is already gone, as mainline: READ and
 * WRITE then never end, see dmirrorFaultLivelock). Returns 0 or the first
 * batch's error.
 */
export function* dmirrorFault(dmirror: Dmirror, start: number, end: number, write: boolean): K<number> {
  const mm = dmirror.notifier.mm;
  const range = new HmmRange(dmirror.notifier, start, start, HMM_PFN_REQ_FAULT + (write ? HMM_PFN_REQ_WRITE : 0), 0, dmirror.mdevice, new Float64Array(DMIRROR_PFN_BATCH));
  if (!mmgetNotZero(mm)) return 0;
  let ret = 0;
  for (let addr = start; addr < end; addr = range.end) {
    range.start = addr;
    range.end = Math.min(addr + DMIRROR_PFN_BATCH * PAGE_SIZE, end);
    ret = yield* dmirrorRangeFault(dmirror, range);
    if (ret) break;
  }
  mmput(mm);
  return ret;
}

/**
 * The loop of dmirror_read() / dmirror_write(): under dmirror->mutex copy
 * what the device page table maps between the bounce buffer and the pages
 * (dmirror_do_read / dmirror_do_write, which count bounce.cpages); at the
 * first missing (or, for a write, not writable) entry fault the rest of the
 * range in (a write fault for a write), count cmd.faults and go on from
 * there. Returns 0 or the -errno that ended it.
 */
function* dmirrorCopyLoop(dmirror: Dmirror, cmd: HmmDmirrorCmd, first: number, end: number, bounce: DmirrorBounce, write: boolean): K<number> {
  const s = dmirror.k.sched;
  let start = first;
  for (;;) {
    yield* mutexLock(s, dmirror.mutex);
    let ret = write ? dmirrorDoWrite(dmirror, start, end, bounce) : dmirrorDoRead(dmirror, start, end, bounce);
    dmirror.mutex.unlock(s);
    if (ret !== -ENOENT) return ret;
    start = first + bounce.cpages * PAGE_SIZE;
    ret = yield* dmirrorFault(dmirror, start, end, write);
    if (ret) return ret;
    dmirrorFaultLivelock(dmirror, write ? 'dmirror_write' : 'dmirror_read', start);
    cmd.faults++;
  }
}

/**
 * dmirror_read(dmirror, cmd) (HMM_DMIRROR_READ): read npages from the
 * mirror into cmd.ptr. Loop: read what the device page table maps (under
 * the mutex); at the first missing page fault from there to the end
 * (faults++) and retry. On success copy the bounce buffer to user space
 * (-EFAULT if that fails). cmd.cpages = pages read. Errors: -EINVAL (range
 * wraps), -ENOMEM (bounce), dmirror_fault's -EFAULT / -EPERM / -EBUSY.
 */
export function* dmirrorRead(dmirror: Dmirror, cmd: HmmDmirrorCmd): K<number> {
  const k = dmirror.k;
  const r = cmdRange(cmd);
  if (r === null) return -EINVAL;
  const bounce = dmirrorBounceInit(k, r.start, r.size);
  if (typeof bounce === 'number') return bounce;
  const ret = yield* dmirrorCopyLoop(dmirror, cmd, r.start, r.end, bounce, false);
  return yield* dmirrorBounceOut(k, cmd, bounce, ret);
}

/**
 * dmirror_write(dmirror, cmd) (HMM_DMIRROR_WRITE): copy cmd.ptr into the
 * bounce buffer (-EFAULT if that fails), then write it through the mirror:
 * entries must be tagged WRITE, otherwise a write fault (REQ_WRITE) from the
 * first missing page, faults++. cmd.cpages = pages written. Errors as
 * dmirror_read (-EPERM for a read-only VMA).
 */
export function* dmirrorWrite(dmirror: Dmirror, cmd: HmmDmirrorCmd): K<number> {
  const k = dmirror.k;
  const r = cmdRange(cmd);
  if (r === null) return -EINVAL;
  const bounce = dmirrorBounceInit(k, r.start, r.size);
  if (typeof bounce === 'number') return bounce;
  const left = yield* copyFromUser(k.current.mm!, bounce.buf, Number(cmd.ptr), bounce.size);
  if (left) {
    cmd.cpages = BigInt(bounce.cpages);
    dmirrorBounceFini(k, bounce);
    return -EFAULT;
  }
  const ret = yield* dmirrorCopyLoop(dmirror, cmd, r.start, r.end, bounce, true);
  cmd.cpages = BigInt(bounce.cpages);
  dmirrorBounceFini(k, bounce);
  return ret;
}
