// SPDX-License-Identifier: GPL-2.0-only
/**
 * testdrv: the smallest useful device-memory driver, for migration tests and
 * as a template for new drivers. It is not test_hmm (dmirror): no mirror
 * page table, no ioctls, no interval notifier. A "device" here is:
 *
 *  - one MEMORY_DEVICE_PRIVATE pagemap (device memory the CPU cannot
 *    address: mapped by device-private swap entries) and optionally one
 *    MEMORY_DEVICE_COHERENT pagemap (CPU-addressable, mapped by normal PTEs);
 *  - a free map per pagemap (next fit; order 0 or PMD order), filled by
 *    the ->folio_free() callback when the last reference to a device folio
 *    is dropped;
 *  - ->migrate_to_ram(): the CPU touched a device-private page; migrate it
 *    (the whole 2 MiB folio for a PMD-level fault) back to system memory,
 *    passing the faulting page as migrate_vma.fault_page (the fault handler
 *    holds its lock and a reference);
 *  - migrateToDevice(): the driver-side use of migrate_vma_* to move a range
 *    of a process into device memory (holes are populated with zeroed
 *    device pages);
 *  - evict() / release(): migrate_device_range() eviction of every
 *    allocated device page, then memunmap_pages() (which would wait forever
 *    with pages still allocated).
 *
 * Copying to and from device memory is the device's own copy engine
 * (k.contents.deviceCopy / deviceZero): the model keeps the bytes of a
 * device page in its own content slot, and a device-private page has no
 * kernel direct map, so the kernel's CPU accessors (copy_highpage,
 * memcpy_from_page) would oops on it, as they would on real hardware.
 *
 * Locking, as a real driver must do it: migrate_vma_* run with mmap_lock
 * held for read by the caller (migrateToDevice takes it; migrate_to_ram is
 * called with it held); destination pages are locked before
 * migrate_vma_pages() (zone_device_folio_init() returns them locked; system
 * pages are trylocked right after allocation, which cannot fail).
 */
import type { Kernel } from '../../kernel/kernel.js';
import { KernelBug } from '../../kernel/printk.js';
import { pageBug } from '../../kernel/mm/debug.js';
import type { K } from '../../kernel/sched/sched.js';
import {
  DevPagemap, MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_PRIVATE, memremapPages, memunmapPages, requestFreeMemRegion,
  zoneDeviceFolioInit,
} from '../../kernel/mm/memremap.js';
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE } from '../../kernel/mm/page.js';
import { pmdAlignDown } from '../../kernel/mm/pgtable.js';
import { __GFP_NOFAIL } from '../../kernel/mm/page_alloc.js';
import { folioAssertLocked, folioTrylock } from '../../kernel/mm/folio.js';
import { mmapAssertLocked, mmapReadLock } from '../../kernel/mm/mmap_lock.js';
import type { MmStruct, Vma, VmFault } from '../../kernel/mm/mm_types.js';
import { EBUSY, EINVAL } from '../../kernel/errno.js';
import { HmmRange, hmmRangeFault } from '../../kernel/mm/hmm.js';
import {
  MmuIntervalNotifier, mmuIntervalNotifierInsert, mmuIntervalNotifierRemove, mmuIntervalReadBegin,
  mmuIntervalReadRetry, mmuIntervalSetSeq,
} from '../../kernel/mm/mmu_notifier.js';
import { Mutex, mutexLock } from '../../kernel/sched/locks.js';
import { LOCK_CLASSES } from '../../kernel/sched/lockdep.js';
import {
  MIGRATE_PFN_COMPOUND, MIGRATE_PFN_MIGRATE, MIGRATE_VMA_SELECT_COMPOUND, MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_SYSTEM, MigrateVma, migrateDeviceFinalize,
  migrateDevicePages, migrateDeviceRange, migratePfn, migratePfnToPage, migrateVmaFinalize, migrateVmaPages,
  migrateVmaSetup, mpfnHas, mpfnSet,
} from '../../kernel/mm/migrate_device.js';

/* VM_FAULT_* values used by ->migrate_to_ram (mm_types.h). */
const VM_FAULT_OOM = 0x000001;
const VM_FAULT_SIGBUS = 0x000002;

export type MemKind = 'private' | 'coherent';

/** One pagemap and its free map. */
class DevMem {
  /** used[i]: page firstPfn + i is allocated (part of a live folio). */
  readonly used: Uint8Array;
  allocated = 0;
  /** Next-fit cursor: where the last allocation ended. */
  cursor = 0;
  constructor(readonly pgmap: DevPagemap) {
    this.used = new Uint8Array(pgmap.nrPages);
  }
}

export interface TestDevOptions {
  /** Device-private pages (multiple of 512). */
  privatePages?: number;
  /** Device-coherent pages (multiple of 512; 0: no coherent memory). */
  coherentPages?: number;
  name?: string;
}

/*
 * Loops over src[] live in plain functions, not in the generators that
 * call them: V8 optimizes a generator's loops poorly (and deoptimizes the
 * generator on every new call site it reaches).
 */

/*
 * A COMPOUND entry stands for HPAGE_PMD_NR pages and the entries after it
 * are zero (migrate_vma_nr_pages()): the loops step over them at once.
 */
function entryNr(v: number): number {
  return mpfnHas(v, MIGRATE_PFN_COMPOUND) ? HPAGE_PMD_NR : 1;
}

/** Entries still MIGRATE after migrate_vma_pages(): what actually moves. */
function countMigrating(src: Float64Array, n: number): number {
  let moved = 0;
  for (let i = 0; i < n; i += entryNr(src[i])) if (mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) moved++;
  return moved;
}

/** Holes (MIGRATE without a page) are not populated: clear them. */
function dropHoles(src: Float64Array, n: number): void {
  for (let i = 0; i < n;) {
    const nr = entryNr(src[i]);
    if (migratePfnToPage(src[i]) < 0) src[i] = 0;
    i += nr;
  }
}

export class TestDev {
  /** pgmap->owner: what migrate_vma.pgmap_owner must match. */
  readonly owner: object;
  readonly priv: DevMem;
  readonly coh: DevMem | null;
  /** Statistics for tests. */
  readonly stat = { migrateToRam: 0, toRamFailed: 0, freed: 0 };

  constructor(readonly k: Kernel, opts: TestDevOptions = {}) {
    const name = opts.name ?? 'testdrv';
    this.owner = { name };
    const ops = {
      folioFree: (head: number) => this.folioFree(head),
      migrateToRam: (vmf: VmFault) => this.migrateToRam(vmf),
    };
    const np = opts.privatePages ?? 4 * HPAGE_PMD_NR;
    const pp = new DevPagemap(MEMORY_DEVICE_PRIVATE, requestFreeMemRegion(k, np * PAGE_SIZE), ops, this.owner);
    if (memremapPages(k, pp) < 0) throw new KernelBug('BUG', `${name}: memremap_pages (private) failed`);
    this.priv = new DevMem(pp);
    const nc = opts.coherentPages ?? 4 * HPAGE_PMD_NR;
    if (nc > 0) {
      const cp = new DevPagemap(MEMORY_DEVICE_COHERENT, requestFreeMemRegion(k, nc * PAGE_SIZE), { folioFree: ops.folioFree }, this.owner);
      if (memremapPages(k, cp) < 0) throw new KernelBug('BUG', `${name}: memremap_pages (coherent) failed`);
      this.coh = new DevMem(cp);
    } else this.coh = null;
  }

  private mem(kind: MemKind): DevMem {
    if (kind === 'private') return this.priv;
    if (this.coh === null) throw new KernelBug('BUG', 'testdrv: no coherent memory configured');
    return this.coh;
  }

  private memOf(pfn: number): DevMem {
    return this.priv.pgmap.id === this.k.pages.pgmap[pfn] ? this.priv : this.coh!;
  }

  /**
   * Allocate a device folio of `order` (0 or 9): next fit in the free map,
   * then zone_device_folio_init() (refcount 1, locked, pgmap references).
   * Contents are zeroed. Returns the head pfn or -1.
   */
  allocDevicePage(kind: MemKind, order = 0): number {
    const m = this.mem(kind);
    const nr = 1 << order;
    const len = m.used.length;
    if (m.allocated + nr > len) return -1;
    // Next fit from the cursor, wrapping once; naturally aligned for order 9.
    const start = m.cursor - (m.cursor % nr);
    for (let n = 0; n < len; n += nr) {
      const i = (start + n) % len;
      if (i + nr > len) continue;
      if (nr === 1 ? m.used[i] !== 0 : m.used.subarray(i, i + nr).indexOf(1) !== -1) continue;
      if (nr === 1) m.used[i] = 1;
      else m.used.fill(1, i, i + nr);
      m.allocated += nr;
      m.cursor = (i + nr) % len;
      const pfn = m.pgmap.firstPfn + i;
      zoneDeviceFolioInit(this.k, pfn, order);
      this.k.contents.deviceZero(pfn, nr);
      return pfn;
    }
    return -1;
  }

  /** ->folio_free(folio): the folio's last reference is gone. */
  private folioFree(head: number): void {
    const m = this.memOf(head);
    const nr = 1 << this.k.pages.order[head];
    const i = head - m.pgmap.firstPfn;
    for (let j = 0; j < nr; j++) {
      if (!m.used[i + j]) pageBug(this.k, 'BUG', 'testdrv: folio_free of a free device page', head + j, 'testdrv double free');
      m.used[i + j] = 0;
    }
    m.allocated -= nr;
    this.stat.freed += nr;
  }

  /** Device pages in use. */
  allocated(kind: MemKind): number {
    return this.mem(kind).allocated;
  }

  /** Allocate a locked system page (or PMD-sized folio) for a destination. */
  private allocSystem(order: number, nofail: boolean): number {
    const d = this.k.buddy.alloc(order, nofail ? __GFP_NOFAIL : 0, 'testdrv');
    if (d >= 0) folioTrylock(this.k, d);
    return d;
  }

  /**
   * Fill dst for every migrating src entry of a migrate_vma (or
   * migrate_device) operation and copy the data: `alloc(order)` returns a
   * locked destination folio or -1. A COMPOUND source gets a PMD-sized
   * destination if one can be allocated, else 512 small ones (the core then
   * splits the source). Holes get zeroed destinations.
   */
  private fillDst(src: Float64Array, dst: Float64Array, npages: number, alloc: (order: number) => number): number {
    let n = 0;
    for (let i = 0; i < npages; i++) {
      const v = src[i];
      if (!mpfnHas(v, MIGRATE_PFN_MIGRATE)) continue;
      const spfn = migratePfnToPage(v);
      if (mpfnHas(v, MIGRATE_PFN_COMPOUND)) {
        const d = alloc(HPAGE_PMD_ORDER);
        if (d >= 0) {
          if (spfn >= 0) this.k.contents.deviceCopy(d, spfn, HPAGE_PMD_NR);
          else this.k.contents.deviceZero(d, HPAGE_PMD_NR);
          dst[i] = mpfnSet(migratePfn(d), MIGRATE_PFN_COMPOUND);
          n++;
          i += HPAGE_PMD_NR - 1; /* the entries after a COMPOUND one are zero */
          continue;
        }
        for (let j = 0; j < HPAGE_PMD_NR && i + j < npages; j++) {
          const dj = alloc(0);
          if (dj < 0) return -1;
          if (spfn >= 0) this.k.contents.deviceCopy(dj, spfn + j, 1);
          else this.k.contents.deviceZero(dj, 1);
          dst[i + j] = migratePfn(dj);
        }
        n++;
        i += HPAGE_PMD_NR - 1;
        continue;
      }
      const d = alloc(0);
      if (d < 0) return -1;
      if (spfn >= 0) this.k.contents.deviceCopy(d, spfn, 1);
      else this.k.contents.deviceZero(d, 1);
      dst[i] = migratePfn(d);
      n++;
    }
    return n;
  }

  /**
   * ->migrate_to_ram(vmf): called by do_swap_page() / the PMD device-private
   * fault with mmap_lock held for read and vmf.page locked and referenced.
   * Migrates the faulting page (its whole 2 MiB folio for a PMD fault) to
   * system memory with fault_page = vmf.page. Returns 0, VM_FAULT_OOM or
   * VM_FAULT_SIGBUS.
   */
  *migrateToRam(vmf: VmFault): K<number> {
    mmapAssertLocked(vmf.vma.mm, 'testdrv_migrate_to_ram');
    /* Before 16ce101db85d (fault_no_page_ref) the fault path locked nothing. */
    if (!this.k.config.historical.fault_no_page_ref) folioAssertLocked(this.k, vmf.page, 'testdrv_migrate_to_ram');
    this.stat.migrateToRam++;
    const k = this.k;
    const pmd = vmf.pmdLevel;
    const start = pmd ? pmdAlignDown(vmf.address) : vmf.address - (vmf.address % PAGE_SIZE);
    const npages = pmd ? HPAGE_PMD_NR : 1;
    const mv = new MigrateVma({
      vma: vmf.vma, start, end: start + npages * PAGE_SIZE,
      src: new Float64Array(npages), dst: new Float64Array(npages),
      flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE | (pmd ? MIGRATE_VMA_SELECT_COMPOUND : 0),
      pgmapOwner: this.owner, faultPage: vmf.page,
    });
    if ((yield* migrateVmaSetup(mv)) !== 0) return VM_FAULT_SIGBUS;
    let ret = 0;
    if (mv.cpages > 0 && this.fillDst(mv.src, mv.dst, mv.npages, (o) => this.allocSystem(o, false)) < 0) ret = VM_FAULT_OOM;
    yield* migrateVmaPages(mv);
    yield* migrateVmaFinalize(mv);
    if (ret !== 0) this.stat.toRamFailed++;
    void k;
    return ret;
  }

  /**
   * Move [start, end) of vma into device memory of `kind`. The caller holds
   * mmap_lock for read. With `compound`, 2 MiB aligned THPs and holes move
   * as PMD-sized device folios. Returns the number of src entries that
   * migrated (holes included), or -errno from migrate_vma_setup().
   */
  *migrateToDevice(vma: Vma, start: number, end: number, kind: MemKind, compound = false): K<number> {
    const flags = MIGRATE_VMA_SELECT_SYSTEM | (compound ? MIGRATE_VMA_SELECT_COMPOUND : 0);
    return yield* this.migrateVmaRange(vma, start, end, flags, (o) => this.allocDevicePage(kind, o), false);
  }

  /**
   * The driver's migrate_vma_* sequence over [start, end): setup with
   * `flags`, destinations from `alloc` (holes left alone when
   * `skipHoles`), pages, finalize. Returns the entries that migrated, or
   * -errno from migrate_vma_setup().
   */
  private *migrateVmaRange(vma: Vma, start: number, end: number, flags: number, alloc: (order: number) => number, skipHoles: boolean): K<number> {
    const npages = (end - start) / PAGE_SIZE;
    const a = this.takeArrays(npages);
    try {
      const mv = new MigrateVma({ vma, start, end, src: a.src, dst: a.dst, flags, pgmapOwner: this.owner });
      const r = yield* migrateVmaSetup(mv);
      if (r !== 0) return r;
      if (skipHoles) dropHoles(mv.src, mv.npages);
      if (mv.cpages > 0) this.fillDst(mv.src, mv.dst, mv.npages, alloc);
      yield* migrateVmaPages(mv);
      const n = countMigrating(mv.src, mv.npages);
      yield* migrateVmaFinalize(mv);
      return n;
    } finally {
      this.giveBackArrays(a);
    }
  }

  /**
   * The driver's src/dst arrays (kvcalloc in a kernel driver), kept for
   * reuse: large ranges would otherwise allocate megabytes per call. A
   * second user while the spare is taken (a CPU fault during a migration)
   * gets fresh arrays. migrate_vma_setup() initialises both.
   */
  private spare: { src: Float64Array; dst: Float64Array } | null = null;

  private takeArrays(n: number): { src: Float64Array; dst: Float64Array; whole: { src: Float64Array; dst: Float64Array } } {
    const sp = this.spare;
    if (sp !== null && sp.src.length >= n) {
      this.spare = null;
      return { src: sp.src.subarray(0, n), dst: sp.dst.subarray(0, n), whole: sp };
    }
    const whole = { src: new Float64Array(n), dst: new Float64Array(n) };
    return { ...whole, whole };
  }

  private giveBackArrays(a: { whole: { src: Float64Array; dst: Float64Array } }): void {
    if (this.spare === null || this.spare.src.length < a.whole.src.length) this.spare = a.whole;
  }

  /**
   * Move this device's pages in [start, end) back to system memory through
   * migrate_vma_* (what a driver does for device-coherent memory, which has
   * no CPU fault to trigger migrate_to_ram). Returns the migrated count.
   */
  *migrateToSystem(vma: Vma, start: number, end: number, compound = false): K<number> {
    const flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_DEVICE_COHERENT | (compound ? MIGRATE_VMA_SELECT_COMPOUND : 0);
    // Holes stay holes: only real pages get a destination.
    return yield* this.migrateVmaRange(vma, start, end, flags, (o) => this.allocSystem(o, false), true);
  }

  /**
   * Evict every allocated page of one pagemap to system memory with
   * migrate_device_range() (free pages are skipped). System pages are
   * allocated with __GFP_NOFAIL: data still mapped cannot be dropped.
   * Returns the number of entries migrated.
   */
  *evict(kind: MemKind): K<number> {
    const m = this.mem(kind);
    const n = m.pgmap.nrPages;
    const src = new Float64Array(n);
    const dst = new Float64Array(n);
    yield* migrateDeviceRange(this.k, src, m.pgmap.firstPfn, n);
    this.fillDst(src, dst, n, (o) => this.allocSystem(o, true));
    // migrate_device_pages() cannot split: a compound source needs a compound dst.
    yield* migrateDevicePages(this.k, src, dst, n);
    const moved = countMigrating(src, n);
    yield* migrateDeviceFinalize(this.k, src, dst, n);
    return moved;
  }

  /**
   * What a driver's "migrate this range" entry point (an ioctl) does: take
   * mmap_lock for read, find the VMA, migrate [start, end) to device memory
   * of `to` or back to system memory, drop the lock. The range must lie in
   * one VMA. Returns the migrated count or -errno (-EINVAL: no such VMA).
   */
  *migrateRange(mm: MmStruct, start: number, end: number, to: MemKind | 'system', compound = false): K<number> {
    const s = this.k.sched;
    yield* mmapReadLock(mm);
    try {
      const vma = mm.findVma(start);
      if (vma === null || vma.start > start || vma.end < end) return -EINVAL;
      return to === 'system' ? yield* this.migrateToSystem(vma, start, end, compound) : yield* this.migrateToDevice(vma, start, end, to, compound);
    } finally {
      mm.mmapLock.readUnlock(s);
    }
  }

  /** The driver lock its notifier callback and snapshot() serialize on. */
  private readonly mutex = new Mutex('testdrv->mutex', LOCK_CLASSES.testdrv_mutex);

  /**
   * A device page-table fill through hmm_range_fault(): insert an interval
   * notifier over [start, end), then the documented loop — read_begin,
   * hmm_range_fault() under mmap_lock (read), take the driver lock,
   * read_retry — until the snapshot is stable; remove the notifier.
   * `fault` requests every page (HMM_PFN_REQ_FAULT); otherwise a pure
   * snapshot. `out` receives the hmm_pfns. Returns 0 or -errno (-EBUSY
   * after 100 invalidated rounds, -EFAULT / -EPERM from hmm_range_fault).
   */
  *snapshot(mm: MmStruct, start: number, end: number, out: Float64Array, defaultFlags = 0): K<number> {
    const s = this.k.sched;
    const notifier = new MmuIntervalNotifier(mm, start, end - 1, {
      invalidate: (sub, _r, cur) => this.invalidateSnapshot(sub, cur),
    }, 'testdrv snapshot');
    const r = mmuIntervalNotifierInsert(notifier);
    if (r) return r;
    const range = new HmmRange(notifier, start, end, defaultFlags, 0, this.owner, out);
    let ret = -EBUSY;
    for (let round = 0; round < 100; round++) {
      range.notifierSeq = yield* mmuIntervalReadBegin(notifier);
      yield* mmapReadLock(mm);
      ret = yield* hmmRangeFault(range);
      mm.mmapLock.readUnlock(s);
      if (ret === -EBUSY) continue;
      if (ret !== 0) break;
      yield* mutexLock(s, this.mutex);
      const stale = mmuIntervalReadRetry(notifier, range.notifierSeq);
      this.mutex.unlock(s);
      if (!stale) break;
      ret = -EBUSY;
    }
    mmuIntervalNotifierRemove(notifier);
    return ret;
  }

  private *invalidateSnapshot(sub: MmuIntervalNotifier, curSeq: number): K<boolean> {
    const s = this.k.sched;
    yield* mutexLock(s, this.mutex);
    mmuIntervalSetSeq(sub, curSeq);
    this.mutex.unlock(s);
    return true;
  }

  /**
   * Driver removal: evict both pagemaps, then memunmap_pages(). With the
   * historical switch release_without_eviction the eviction is skipped, as
   * drivers did before "nouveau/dmem: Evict device private memory during
   * release" (mm/memremap.c:memunmap_pages()): memunmap_pages() then waits forever for
   * pages still mapped by processes.
   */
  *release(): K<void> {
    const evict = !this.k.config.historical.release_without_eviction;
    if (evict) yield* this.evict('private');
    yield* memunmapPages(this.k, this.priv.pgmap);
    if (this.coh !== null) {
      if (evict) yield* this.evict('coherent');
      yield* memunmapPages(this.k, this.coh.pgmap);
    }
  }
}
