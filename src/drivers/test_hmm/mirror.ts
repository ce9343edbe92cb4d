// SPDX-License-Identifier: GPL-2.0-only
/**
 * struct dmirror: the per-open mirror of a process address space.
 *
 *  - pt: the device page table (the kernel's xarray indexed by virtual pfn).
 *    An entry is `pfn * 4 + tag`, the model of xa_tag_pointer(page, tag):
 *    tag 0 read-only, DPT_XA_TAG_WRITE (3) writable, DPT_XA_TAG_ATOMIC (1)
 *    device-exclusive. The table holds no page references: it relies on the
 *    mmu notifier to erase entries before pages go away.
 *  - mutex: protects pt against the notifier (read_retry is checked under it).
 *  - flags: HMM_DMIRROR_FLAGS value (u64).
 *  - notifier: an mmu_interval_notifier over the whole address space of the
 *    opener's mm (the mirror may be shared with a child after fork()).
 */
import type { Kernel } from '../../kernel/kernel.js';
import type { K } from '../../kernel/sched/sched.js';
import { Mutex, mutexLock } from '../../kernel/sched/locks.js';
import { LOCK_CLASSES } from '../../kernel/sched/lockdep.js';
import { PAGE_SHIFT } from '../../kernel/mm/page.js';
import {
  MMU_NOTIFY_MIGRATE, MmuIntervalNotifier, type MmuNotifierRange, mmuIntervalSetSeq, mmuNotifierRangeBlockable,
} from '../../kernel/mm/mmu_notifier.js';
import type { MmStruct } from '../../kernel/mm/mm_types.js';
import { DPT_XA_TAG_WRITE, type DmirrorDevice } from './device.js';
import { lockdepAssertHeld } from '../../kernel/sched/locks.js';

/** ULONG_MAX & PAGE_MASK as a model address (beyond any user address). */
export const DMIRROR_NOTIFIER_END = 2 ** 64 - 4096;

/**
 * The device page table: the kernel's xarray indexed by virtual pfn, holding
 * tagged page pointers (ptEntry()). Two levels like a radix tree: a Map from
 * the 512-pfn block to a leaf of 512 slots (entry + 1; 0 = empty), so
 * get / set / erase are a Map lookup and a typed-array access, and an empty
 * leaf is dropped. Protected by dmirror->mutex.
 */
export class DevicePageTable {
  private readonly leaves = new Map<number, Float64Array>();
  private readonly counts = new Map<number, number>();
  /** Number of entries present. */
  size = 0;
  /**
   * Checked mode only (null otherwise), model-only bookkeeping: the virtual
   * pfns whose entry this mirror kept when it skipped an MMU_NOTIFY_MIGRATE
   * invalidation of its device that another mirror was running (mainline's
   * skip, see dmirrorIntervalInvalidate). A store or erase of the entry
   * forgets it. The coherence check names the skip for such an entry.
   */
  skipped: Set<number> | null = null;

  /** xa_load() */
  get(pfn: number): number | undefined {
    const leaf = this.leaves.get(Math.floor(pfn / 512));
    if (leaf === undefined) return undefined;
    const v = leaf[pfn % 512];
    return v === 0 ? undefined : v - 1;
  }

  /** xa_store() */
  set(pfn: number, entry: number): void {
    const b = Math.floor(pfn / 512);
    let leaf = this.leaves.get(b);
    if (leaf === undefined) {
      leaf = new Float64Array(512);
      this.leaves.set(b, leaf);
      this.counts.set(b, 0);
    }
    const i = pfn % 512;
    if (this.skipped !== null) this.skipped.delete(pfn);
    if (leaf[i] === 0) {
      this.size++;
      this.counts.set(b, this.counts.get(b)! + 1);
    }
    leaf[i] = entry + 1;
  }

  /** xa_erase() */
  delete(pfn: number): void {
    const b = Math.floor(pfn / 512);
    const leaf = this.leaves.get(b);
    if (leaf === undefined) return;
    const i = pfn % 512;
    if (this.skipped !== null) this.skipped.delete(pfn);
    if (leaf[i] === 0) return;
    leaf[i] = 0;
    this.size--;
    const n = this.counts.get(b)! - 1;
    if (n === 0) {
      this.leaves.delete(b);
      this.counts.delete(b);
    } else this.counts.set(b, n);
  }

  /** xa_destroy() */
  clear(): void {
    this.leaves.clear();
    this.counts.clear();
    this.size = 0;
  }

  /**
   * Visit every leaf (512 consecutive virtual pfns from block * 512, the
   * span of one PMD; slot value = entry + 1, 0 = empty), in no particular
   * order. For checked mode (dmirrorCheckCoherence).
   */
  forEachLeaf(fn: (block: number, leaf: Float64Array) => void): void {
    for (const [b, leaf] of this.leaves) fn(b, leaf);
  }

  /**
   * xa_for_each_range(): visit the entries with pfn in [first, last] in
   * index order. fn may erase the entry it is given.
   */
  forEachRange(first: number, last: number, fn: (pfn: number, entry: number) => void): void {
    const b0 = Math.floor(first / 512);
    const b1 = Math.floor(last / 512);
    const blocks = b1 - b0 + 1 <= this.leaves.size
      ? Array.from({ length: b1 - b0 + 1 }, (_, j) => b0 + j)
      : [...this.leaves.keys()].filter((b) => b >= b0 && b <= b1).sort((x, y) => x - y);
    for (const b of blocks) {
      const leaf = this.leaves.get(b);
      if (leaf === undefined) continue;
      const lo = Math.max(first, b * 512) - b * 512;
      const hi = Math.min(last, b * 512 + 511) - b * 512;
      for (let i = lo; i <= hi; i++) {
        const v = leaf[i];
        if (v !== 0) fn(b * 512 + i, v - 1);
      }
    }
  }
}

export class Dmirror {
  readonly pt = new DevicePageTable();
  readonly mutex: Mutex;
  flags = 0n;
  /**
   * Model of the fix's bookkeeping (config.fixes.dmirror_devmem_fix, no
   * mainline counterpart): migrations this mirror is running (MIGRATE_TO_DEV,
   * MIGRATE_TO_SYS, a CPU fault it serves), counted around
   * migrate_vma_setup()..migrate_vma_finalize() by the task running them
   * and read by dmirror_interval_invalidate().
   */
  migrating = 0;
  readonly notifier: MmuIntervalNotifier;
  constructor(
    /** Registry id: what zone_device_data holds for "pointer to this mirror". */
    readonly id: number,
    readonly mdevice: DmirrorDevice,
    mm: MmStruct,
  ) {
    this.mutex = new Mutex(`dmirror#${id}->mutex`, LOCK_CLASSES.dmirror_mutex);
    this.notifier = new MmuIntervalNotifier(mm, 0, DMIRROR_NOTIFIER_END - 1, { invalidate: (sub, range, cur) => dmirrorIntervalInvalidate(this, sub, range, cur) }, `dmirror#${id}`);
  }

  get k(): Kernel {
    return this.mdevice.mod.k;
  }
}

/** xa_tag_pointer(page, tag) */
export function ptEntry(pfn: number, tag: number): number {
  return pfn * 4 + tag;
}

/** xa_untag_pointer(entry): the page pfn, 0 for no entry. */
export function ptEntryPage(entry: number | undefined): number {
  return entry === undefined ? 0 : Math.floor(entry / 4);
}

/** xa_pointer_tag(entry) */
export function ptEntryTag(entry: number | undefined): number {
  return entry === undefined ? 0 : entry % 4;
}

/** The entry is a writable mapping (tag exactly WRITE). */
export function ptEntryWritable(entry: number | undefined): boolean {
  return ptEntryTag(entry) === DPT_XA_TAG_WRITE;
}

/** Visit the pt entries with pfn in [first, last] (xa_for_each_range), in index order. */
export function ptForEachRange(pt: DevicePageTable, first: number, last: number, fn: (pfn: number, entry: number) => void): void {
  pt.forEachRange(first, last, fn);
}

/**
 * dmirror_do_update(dmirror, start, end): erase pt[start >> PAGE_SHIFT ..
 * end >> PAGE_SHIFT] - an inclusive bound, so one pfn past the range is
 * erased too, exactly as the kernel. Caller holds dmirror->mutex.
 */
export function dmirrorDoUpdate(dmirror: Dmirror, start: number, end: number): void {
  lockdepAssertHeld(dmirror.k.sched, dmirror.mutex, 'dmirror_do_update');
  const pt = dmirror.pt;
  ptForEachRange(pt, Math.floor(start / 2 ** PAGE_SHIFT), Math.floor(end / 2 ** PAGE_SHIFT), (pfn) => pt.delete(pfn));
}

/**
 * dmirror_interval_invalidate() (mmu_interval_notifier_ops.invalidate):
 * ignore MMU_NOTIFY_MIGRATE ranges whose owner is this mirror's device
 * (its own migrations keep or replace the entries themselves); otherwise
 * take dmirror->mutex (trylock when the range is not blockable: return
 * false if contended), set the interval sequence and erase the range.
 *
 * The skip covers every mirror of the device, but only the migrating
 * mirror's entries are erased by the driver (dmirror_devmem_fault_alloc_and_copy
 * erases those of the mirror in the backing page's zone_device_data): a
 * second mirror of the device (another fd, a fork child's) keeps entries
 * to pages that migrate back to system memory and are freed
 * (docs/FINDINGS.md). With config.fixes.dmirror_devmem_fix only the
 * mirror running the migration skips (dmirror.migrating): it stores or
 * erases its own entries; every other mirror of the device erases the
 * range like for any other invalidation.
 */
export function* dmirrorIntervalInvalidate(dmirror: Dmirror, mni: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): K<boolean> {
  if (range.event === MMU_NOTIFY_MIGRATE && range.owner === dmirror.mdevice && (dmirror.migrating > 0 || !dmirror.k.config.fixes.dmirror_devmem_fix)) {
    // Checked mode: remember the entries a mirror that is not migrating keeps here (docs/FINDINGS.md).
    if (dmirror.migrating === 0 && dmirror.k.config.checked) dmirrorNoteSkipped(dmirror, range);
    return true;
  }
  const s = dmirror.k.sched;
  if (mmuNotifierRangeBlockable(range)) {
    yield* mutexLock(s, dmirror.mutex);
  } else if (!dmirror.mutex.trylock(s)) return false;
  mmuIntervalSetSeq(mni, curSeq);
  dmirrorDoUpdate(dmirror, range.start, range.end);
  dmirror.mutex.unlock(s);
  return true;
}

/** Checked mode: the entries of [range.start, range.end) a skipped migration invalidation left (DevicePageTable.skipped). */
function dmirrorNoteSkipped(dmirror: Dmirror, range: MmuNotifierRange): void {
  const pt = dmirror.pt;
  const skipped = pt.skipped ?? (pt.skipped = new Set<number>());
  ptForEachRange(pt, Math.floor(range.start / 2 ** PAGE_SHIFT), Math.floor(range.end / 2 ** PAGE_SHIFT), (pfn) => skipped.add(pfn));
}

/** mmget_not_zero(mm) */
export function mmgetNotZero(mm: MmStruct): boolean {
  if (mm.mmUsers <= 0) return false;
  mm.mmUsers++;
  return true;
}

/**
 * mmput(mm). The driver's reference is never the last one while the
 * process lives; if it is (the process exited during the ioctl), the
 * teardown belongs to the exit path, which the model runs when the task
 * exits, so here the count only drops.
 */
export function mmput(mm: MmStruct): void {
  mm.mmUsers--;
}
