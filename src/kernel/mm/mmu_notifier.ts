// SPDX-License-Identifier: GPL-2.0-only
/**
 * MMU notifiers (mm/mmu_notifier.c, include/linux/mmu_notifier.h):
 * mmu_interval_notifier with the invalidate_seq scheme, and whole-mm
 * mmu_notifier subscriptions with invalidate_range_start/end and release.
 *
 * Sequence scheme (as the kernel): subscriptions.invalidateSeq is odd while
 * any invalidation is running. An interval callback records the current odd
 * value with mmu_interval_set_seq(). mmu_interval_read_begin() waits while
 * the interval's seq equals the (odd) global one, then returns it;
 * mmu_interval_read_retry(sub, seq) is true if the interval was invalidated
 * since. invalidate_range_end() of the last active range makes the global
 * seq even again and wakes the waiters.
 *
 * Locks: callbacks run with mmap_lock held by the invalidating path (read or
 * write), or, from an rmap walk (try_to_migrate(), try_to_unmap(): e.g.
 * migrate_device_range()'s eviction, which has no mmap_lock), with the folio
 * lock and the rmap lock instead; never under a page-table lock. They may
 * take driver locks (a blocking callback is a generator). The interval tree
 * is protected by subscriptions->lock (implicit here). Checked mode holds
 * the lockdep map __mmu_notifier_invalidate_range_start_map across them.
 */
import type { MmStruct } from './mm_types.js';
import { type K, waitUntil } from '../sched/sched.js';
import { KernelBug } from '../printk.js';
import {
  describeEntry, T_PRESENT, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_DEVICE_EXCLUSIVE, T_TABLE, _PAGE_RW,
  _PAGE_PROTNONE, pteType,
} from './pgtable.js';
import { type Lockdep, MMU_NOTIFIER_MAP } from '../sched/lockdep.js';
import { ENOMEM } from '../errno.js';

export const MMU_NOTIFY_UNMAP = 0;
export const MMU_NOTIFY_CLEAR = 1;
export const MMU_NOTIFY_PROTECTION_VMA = 2;
export const MMU_NOTIFY_PROTECTION_PAGE = 3;
export const MMU_NOTIFY_SOFT_DIRTY = 4;
export const MMU_NOTIFY_RELEASE = 5;
export const MMU_NOTIFY_MIGRATE = 6;
export const MMU_NOTIFY_EXCLUSIVE = 7;
export const MMU_NOTIFY_EVENT_NAMES = ['UNMAP', 'CLEAR', 'PROTECTION_VMA', 'PROTECTION_PAGE', 'SOFT_DIRTY', 'RELEASE', 'MIGRATE', 'EXCLUSIVE'];

export const MMU_NOTIFIER_RANGE_BLOCKABLE = 1 << 0;

/** struct mmu_notifier_range */
export interface MmuNotifierRange {
  mm: MmStruct;
  start: number;
  end: number;
  event: number;
  flags: number;
  /** range->owner: set for MIGRATE and EXCLUSIVE so a driver can skip its own. */
  owner: unknown;
}

/** mmu_notifier_range_init() / mmu_notifier_range_init_owner() */
export function mmuNotifierRangeInit(mm: MmStruct, event: number, start: number, end: number, owner: unknown = null, flags = MMU_NOTIFIER_RANGE_BLOCKABLE): MmuNotifierRange {
  return { mm, start, end, event, flags, owner };
}

/** mmu_notifier_range_blockable() */
export function mmuNotifierRangeBlockable(r: MmuNotifierRange): boolean {
  return (r.flags & MMU_NOTIFIER_RANGE_BLOCKABLE) !== 0;
}

/** struct mmu_interval_notifier_ops */
export interface MmuIntervalNotifierOps {
  /**
   * ->invalidate(sub, range, cur_seq): must call mmuIntervalSetSeq(sub,
   * curSeq) under the driver lock it uses with read_retry. Returns false only
   * for a non-blockable range it could not handle.
   */
  invalidate: (sub: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number) => K<boolean>;
}

/** struct mmu_interval_notifier */
export class MmuIntervalNotifier {
  invalidateSeq = 0;
  inserted = false;
  constructor(
    public mm: MmStruct,
    public start: number,
    /** Last byte covered (inclusive), as the kernel's interval tree. */
    public last: number,
    public readonly ops: MmuIntervalNotifierOps,
    public readonly name = 'interval',
  ) {}
}

/** struct mmu_notifier_ops for whole-mm subscribers. */
export interface MmuNotifierOps {
  invalidateRangeStart?: (range: MmuNotifierRange) => K<number>;
  invalidateRangeEnd?: (range: MmuNotifierRange) => void;
  release?: (mm: MmStruct) => void;
}

/** struct mmu_notifier_subscriptions */
export class MmuNotifierSubscriptions {
  invalidateSeq = 2;
  activeInvalidateRanges = 0;
  readonly intervals: MmuIntervalNotifier[] = [];
  readonly notifiers: MmuNotifierOps[] = [];
  /** Counters for tests and traces. */
  nrInvalidations = 0;
}

function subs(mm: MmStruct): MmuNotifierSubscriptions {
  if (mm.notifierSubs === null) mm.notifierSubs = new MmuNotifierSubscriptions();
  return mm.notifierSubs as MmuNotifierSubscriptions;
}

/** True if any notifier is registered (mm_has_notifiers()). */
export function mmHasNotifiers(mm: MmStruct): boolean {
  const s = mm.notifierSubs as MmuNotifierSubscriptions | null;
  return s !== null && (s.intervals.length > 0 || s.notifiers.length > 0);
}

/**
 * mmu_interval_notifier_insert(sub, mm, start, length, ops): start tracking
 * [start, start+length). The caller holds a reference on mm (mm_users).
 * Returns 0; the new interval's seq is set so that a read_begin right after
 * insertion succeeds.
 */
export function mmuIntervalNotifierInsert(sub: MmuIntervalNotifier): number {
  // The first notifier of an mm allocates mm->notifier_subscriptions
  // (__mmu_notifier_register(): kzalloc -> -ENOMEM).
  if (sub.mm.notifierSubs === null && sub.mm.kernel.shouldFail('__mmu_notifier_register')) return -ENOMEM;
  const s = subs(sub.mm);
  if (sub.inserted) throw new KernelBug('BUG', 'mmu_interval_notifier_insert: already inserted');
  // As the kernel: inserted during an invalidation, the interval takes the
  // (odd) global seq so the first read_begin waits for the end; otherwise
  // global - 1, which differs from the even global seq.
  sub.invalidateSeq = s.activeInvalidateRanges > 0 ? s.invalidateSeq : s.invalidateSeq - 1;
  s.intervals.push(sub);
  sub.inserted = true;
  return 0;
}

/** mmu_interval_notifier_remove(): waits for running invalidations of it in the kernel. */
export function mmuIntervalNotifierRemove(sub: MmuIntervalNotifier): void {
  const s = subs(sub.mm);
  const i = s.intervals.indexOf(sub);
  if (i < 0) throw new KernelBug('BUG', 'mmu_interval_notifier_remove: not inserted');
  s.intervals.splice(i, 1);
  sub.inserted = false;
}

/** mmu_notifier_register() for whole-mm subscribers. */
export function mmuNotifierRegister(mm: MmStruct, ops: MmuNotifierOps): void {
  subs(mm).notifiers.push(ops);
}

export function mmuNotifierUnregister(mm: MmStruct, ops: MmuNotifierOps): void {
  const s = subs(mm);
  const i = s.notifiers.indexOf(ops);
  if (i >= 0) s.notifiers.splice(i, 1);
}

/**
 * mmu_interval_read_begin(): wait out a running invalidation of this
 * interval, then return the sequence to pass to read_retry.
 */
export function* mmuIntervalReadBegin(sub: MmuIntervalNotifier): K<number> {
  const s = subs(sub.mm);
  const seq = sub.invalidateSeq;
  if (seq === s.invalidateSeq) {
    const sched = sub.mm.kernel.sched;
    yield* waitUntil(sched, `mmu_interval_read_begin(${sub.name})`, () => s.invalidateSeq !== seq);
  }
  return seq;
}

/** mmu_interval_read_retry(): true if the interval was invalidated after read_begin. */
export function mmuIntervalReadRetry(sub: MmuIntervalNotifier, seq: number): boolean {
  return sub.invalidateSeq !== seq;
}

/** mmu_interval_check_retry(): same test, racy by design (no lock required). */
export function mmuIntervalCheckRetry(sub: MmuIntervalNotifier, seq: number): boolean {
  return sub.invalidateSeq !== seq;
}

/** mmu_interval_set_seq(): called by ->invalidate under the driver lock. */
export function mmuIntervalSetSeq(sub: MmuIntervalNotifier, curSeq: number): void {
  sub.invalidateSeq = curSeq;
}

/**
 * mmu_notifier_invalidate_range_start(range): mark an invalidation running
 * (odd seq) and call every overlapping interval's ->invalidate and every
 * subscriber's invalidate_range_start. The caller must pair it with
 * mmuNotifierInvalidateRangeEnd(). Runs with mmap_lock held (read or write)
 * or, from an rmap walk, the folio lock (see the file comment); a
 * might_sleep() point for a blockable range. Returns 0, or -EAGAIN if a non-blockable range could not be handled.
 */
export function* mmuNotifierInvalidateRangeStart(range: MmuNotifierRange): K<number> {
  if (range.mm.kernel.tracer !== null && range.mm.kernel.tracer.enter('mmu_notifier_invalidate_range_start')) return yield* range.mm.kernel.tracer.span('mmu_notifier_invalidate_range_start', range.start, mmuNotifierInvalidateRangeStart(range));
  const mm = range.mm;
  if (mm.invalidateRanges !== null) mm.invalidateRanges.push(range);
  const ld = mm.kernel.sched.lockdep;
  if (ld !== null) mmuNotifierStartLockdep(ld, range);
  const s = mm.notifierSubs as MmuNotifierSubscriptions | null;
  if (s === null) {
    if (ld !== null) ld.lockMapRelease(MMU_NOTIFIER_MAP);
    return 0;
  }
  s.activeInvalidateRanges++;
  if (s.invalidateSeq % 2 === 0) s.invalidateSeq++;
  s.nrInvalidations++;
  const cur = s.invalidateSeq;
  const sched = mm.kernel.sched;
  if (sched.exploring) yield sched.point('mmu_notifier_invalidate_range_start', range.start);
  let ret = 0;
  for (const sub of [...s.intervals]) {
    if (!sub.inserted || sub.start > range.end - 1 || sub.last < range.start) continue;
    const ok = yield* sub.ops.invalidate(sub, range, cur);
    if (!ok) ret = -11; /* -EAGAIN */
  }
  // exit_mmap()'s MMU_NOTIFY_RELEASE range is mn_itree_release(): interval
  // notifiers only; whole-mm notifiers get ->release (mmuNotifierRelease).
  if (range.event !== MMU_NOTIFY_RELEASE) for (const n of [...s.notifiers]) {
    if (n.invalidateRangeStart) {
      const r = yield* n.invalidateRangeStart(range);
      if (r !== 0) ret = r;
    }
  }
  if (ld !== null) ld.lockMapRelease(MMU_NOTIFIER_MAP);
  return ret;
}

/**
 * Checked mode: mmu_notifier_invalidate_range_start() is a might_sleep()
 * point for a blockable range, and holds the lockdep map
 * __mmu_notifier_invalidate_range_start_map across the callbacks
 * (include/linux/mmu_notifier.h).
 */
function mmuNotifierStartLockdep(ld: Lockdep, range: MmuNotifierRange): void {
  if (range.flags & MMU_NOTIFIER_RANGE_BLOCKABLE) ld.mightSleep('mmu_notifier_invalidate_range_start');
  ld.lockMapAcquire(MMU_NOTIFIER_MAP);
}

/** mmu_notifier_invalidate_range_end(): the last active range makes the seq even. */
export function mmuNotifierInvalidateRangeEnd(range: MmuNotifierRange): void {
  if (range.mm.kernel.tracer !== null) range.mm.kernel.tracer.instant('mmu_notifier_invalidate_range_end', 'kernel', range.start);
  const active = range.mm.invalidateRanges;
  if (active !== null) {
    const n = active.lastIndexOf(range);
    if (n < 0) throw new KernelBug('BUG', 'mmu_notifier_invalidate_range_end without start', `range [0x${range.start.toString(16)}, 0x${range.end.toString(16)}) ${MMU_NOTIFY_EVENT_NAMES[range.event]}`);
    active.splice(n, 1);
  }
  const ld = range.mm.kernel.sched.lockdep;
  if (ld !== null && range.flags & MMU_NOTIFIER_RANGE_BLOCKABLE) ld.mightSleep('mmu_notifier_invalidate_range_end');
  const s = range.mm.notifierSubs as MmuNotifierSubscriptions | null;
  if (s === null) return;
  for (const n of s.notifiers) n.invalidateRangeEnd?.(range);
  if (s.activeInvalidateRanges <= 0) throw new KernelBug('BUG', 'mmu_notifier_invalidate_range_end without start');
  if (--s.activeInvalidateRanges === 0) s.invalidateSeq++;
}

/**
 * mmu_notifier_release() -> mn_hlist_release(): the address space is going
 * away (exit_mmap). Each whole-mm notifier's ->release runs ("the only way
 * for the driver to flush all existing sptes ... before all the pages in
 * the mm are freed"), then every one is unhooked (hlist_del_init_rcu): the
 * unmap that follows reaches none of them, so a notifier without
 * ->release keeps whatever it maps (nouveau's SVMM: docs/FINDINGS.md,
 * nouveau-exit-keeps-gpu-entries). A later mmu_notifier_unregister() /
 * mmu_notifier_put() finds it unhooked. (The interval notifiers were
 * invalidated by exit_mmap()'s MMU_NOTIFY_RELEASE range: mn_itree_release().)
 */
export function mmuNotifierRelease(mm: MmStruct): void {
  const s = mm.notifierSubs as MmuNotifierSubscriptions | null;
  if (s === null) return;
  for (const n of [...s.notifiers]) n.release?.(mm);
  s.notifiers.length = 0;
}

/*
 * Checked mode: the secondary-MMU coherence rule.
 *
 * A secondary MMU (a device mirroring the mm through an interval notifier,
 * a KVM-like whole-mm subscriber) may hold any translation the CPU page
 * tables give, until mmu_notifier_invalidate_range_start() tells it to drop
 * it. So every change of an entry that makes such a translation wrong must
 * happen between range_start and range_end of a range covering the entry:
 * the old entry is present (the zero page included), device-private or
 * device-exclusive (the device maps its own page, or holds exclusive
 * access), or a PMD pointing to a PTE table that maps something; and the
 * new entry maps a different page, maps none (cleared, swap, migration,
 * hwpoison, a PTE table replacing a leaf), drops write permission, makes
 * the page inaccessible (PROT_NONE), or ends device exclusivity.
 *
 * Not reported, as in the kernel which has no notifier for them:
 *  - old entry none, swap or hwpoison: nothing a secondary MMU can map;
 *  - old entry a migration entry (remove_migration_ptes() installing the new
 *    page, fork/mprotect making it read-only, zap): the invalidation was
 *    done by whoever installed it (try_to_migrate(), migrate_vma_collect()),
 *    and hmm_range_fault() waits on such an entry instead of mapping it;
 *  - the same page made more permissive, or only accessed/dirty/soft-dirty
 *    bits changed (the kernel's ptep_set_access_flags(), pte_mkclean()).
 * The report names the kernel function (fn) that made the change.
 */

function needsInvalidation(ov: number, of: number, v: number, f: number): boolean {
  const ot = pteType(of);
  const nt = pteType(f);
  switch (ot) {
    case T_PRESENT:
      if (nt !== T_PRESENT || v !== ov) return true;
      if ((of & _PAGE_RW) && !(f & _PAGE_RW)) return true;
      return (f & _PAGE_PROTNONE) !== 0 && (of & _PAGE_PROTNONE) === 0;
    case T_DEVICE_PRIVATE_READ:
    case T_DEVICE_PRIVATE_WRITE: /* write -> read drops write */
    case T_DEVICE_EXCLUSIVE:
      return nt !== ot || v !== ov;
    case T_TABLE:
      return nt !== T_TABLE;
    default:
      return false;
  }
}

/**
 * The check installed on an mm's page tables in checked mode (Pgd.check):
 * raise a KernelBug naming fn when the change needs an invalidation and no
 * active range of mm covers [addr, addr + size).
 */
export function mmuNotifierCheckEntry(mm: MmStruct, addr: number, size: number, ov: number, of: number, v: number, f: number, fn: string): void {
  if (!needsInvalidation(ov, of, v, f)) return;
  const active = mm.invalidateRanges!;
  for (let n = 0; n < active.length; n++) {
    if (active[n].start <= addr && active[n].end >= addr + size) return;
  }
  throw new KernelBug('INVARIANT', `${fn}: page-table entry changed without mmu_notifier_invalidate_range_start()`,
    `mm #${mm.id} address 0x${addr.toString(16)} (${size === 4096 ? 'pte' : 'pmd'}): ${describeEntry(ov, of)} -> ${describeEntry(v, f)}; ` +
    `active ranges: ${active.length === 0 ? 'none' : active.map((r) => `[0x${r.start.toString(16)}, 0x${r.end.toString(16)})`).join(' ')}. ` +
    'A secondary MMU mirroring this mm keeps the old translation.');
}

/** Checked mode: track this mm's invalidate ranges and check its entry changes. */
export function mmuNotifierEnableChecks(mm: MmStruct): void {
  mm.invalidateRanges = [];
  mm.pgd.check = (addr, size, ov, of, v, f, fn) => mmuNotifierCheckEntry(mm, addr, size, ov, of, v, f, fn);
}
