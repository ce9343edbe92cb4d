// SPDX-License-Identifier: GPL-2.0-only
/**
 * drivers/gpu/drm/nouveau/nouveau_svm.c: a GPU address space mirroring a
 * process (SVMM), GPU page faults served with hmm_range_fault(), and
 * invalidation from MMU notifiers.
 *
 *  - NouveauSvmm (struct nouveau_svmm): the mirror of one mm. Its GPU page
 *    table (`pt`, the VMM's PFNMAP entries) maps page addresses to a VRAM
 *    page or a host pfn, writable or not. A whole-mm mmu_notifier
 *    (nouveau_svmm_invalidate_range_start()) drops entries when the CPU
 *    page tables change; svmm->mutex serializes it with the fault path.
 *  - NouveauSvm (struct nouveau_svm): the GPU's replayable fault buffer
 *    and its handler nouveau_svm_fault(), which runs as a simulated thread
 *    (svmFaultThread) when a test or scenario spawns one, otherwise inline
 *    when the GPU access faults.
 *  - gpuAccess(): the GPU itself executing a read or write of a range
 *    through its page table, faulting into the buffer on a missing or
 *    read-only entry and replaying after the handler ran (model: what a
 *    shader does; the kernel has no such function).
 *
 * Atomic faults go through nouveau_atomic_range_fault():
 * make_device_exclusive() takes the page away from the CPU (a
 * device-exclusive entry) and the GPU maps it atomic-capable; a CPU access
 * restores the PTE and invalidates the GPU's entry (MMU_NOTIFY_CLEAR).
 *
 * Left out: the prefetch access type, fault-window batching over several
 * pages, and the nvif object layer (the PFNMAP method is a direct
 * page-table update).
 */
import type { Kernel } from '../../kernel/kernel.js';
import { KernelBug } from '../../kernel/printk.js';
import { pageBug } from '../../kernel/mm/debug.js';
import { type K, waitUntil } from '../../kernel/sched/sched.js';
import { Mutex, spinLock } from '../../kernel/sched/locks.js';
import { LOCK_CLASSES } from '../../kernel/sched/lockdep.js';
import type { MmStruct } from '../../kernel/mm/mm_types.js';
import { HPAGE_PMD_NR, PAGE_SIZE } from '../../kernel/mm/page.js';
import { EBUSY, EFAULT, EINVAL } from '../../kernel/errno.js';
import { isDevicePrivatePage } from '../../kernel/mm/memremap.js';
import { makeDeviceExclusive } from '../../kernel/mm/device_exclusive.js';
import { folioPut, folioUnlock } from '../../kernel/mm/folio.js';
import {
  HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, HMM_PFN_VALID, HMM_PFN_WRITE, HmmRange, hmmPfnTest, hmmPfnToPfn, hmmRangeFault,
} from '../../kernel/mm/hmm.js';
import {
  MMU_NOTIFY_EXCLUSIVE, MMU_NOTIFY_MIGRATE, MmuIntervalNotifier, type MmuNotifierOps, type MmuNotifierRange,
  mmuIntervalNotifierInsert, mmuIntervalNotifierRemove, mmuIntervalReadBegin, mmuIntervalReadRetry, mmuIntervalSetSeq,
  mmuNotifierRangeBlockable, mmuNotifierRegister, mmuNotifierUnregister,
} from '../../kernel/mm/mmu_notifier.js';
import { MIGRATE_PFN_COMPOUND, migratePfnToPage, mpfnHas } from '../../kernel/mm/migrate_device.js';
import { NOUVEAU_APER_HOST, NOUVEAU_APER_VRAM } from './chan.js';
import { NVIF_VMM_PFNMAP_V0_V, NVIF_VMM_PFNMAP_V0_W, type NouveauDmem } from './dmem.js';
import { mmapReadLock, mmapWriteLock } from '../../kernel/mm/mmap_lock.js';
import { chargeGpuPtUpdate } from '../../kernel/cost/charges.js';

/** Simulated-time phase of a GPU page-table map (NVIF_VMM_V0_PFNMAP). */
export const PHASE_PFNMAP = 'nouveau GPU PTE update (PFNMAP)';
/** Simulated-time phase of a GPU page-table unmap (NVIF_VMM_V0_PFNCLR). */
export const PHASE_PFNCLR = 'nouveau GPU PTE clear (PFNCLR)';
/** Simulated-time phase of a GPU fault's entry: interrupt, fault buffer, handler. */
export const PHASE_GPU_FAULT = 'nouveau_svm_fault: interrupt + fault buffer';

/** GPU fault access types (the fault buffer's access field, as nouveau_svm_fault() decodes it). */
export const GPU_ACCESS_READ = 0;
export const GPU_ACCESS_WRITE = 1;
export const GPU_ACCESS_ATOMIC = 2;

/** Rounds of the nouveau_range_fault() loop before -EBUSY (the kernel's HMM_RANGE_DEFAULT_TIMEOUT). */
const RANGE_FAULT_ROUNDS = 100;

/** One GPU page-table entry (a PFNMAP word decoded). */
export interface GpuPte {
  aper: number;
  /** VRAM page index or host pfn. */
  addr: number;
  write: boolean;
  /** NVIF_VMM_PFNMAP_V0_A: mapped for atomics (the page is device-exclusive). */
  atomic?: boolean;
  /**
   * Part of one 2 MiB GPU mapping: nouveau_pfns_map() of a large VRAM
   * folio maps it at the folio's page size (args->p.page), one PTE for the
   * 512 pages the model keeps entries for (simulated time counts it once).
   */
  large?: boolean;
}

/** struct nouveau_svmm */
export class NouveauSvmm {
  readonly mutex = new Mutex('nouveau_svmm->mutex', LOCK_CLASSES.nouveau_svmm_mutex);
  /** The GPU page table of this address space (svmm->vmm's PFNMAP entries), by page address. */
  readonly pt = new Map<number, GpuPte>();
  /** svmm->vmm: cleared by nouveau_svmm_fini(). */
  vmmAlive = true;
  /** kfree()d (after mmu_notifier_put): any use is a use-after-free. */
  freed = false;
  /** svmm->unmanaged: [start, limit) the GPU manages itself (not mirrored). */
  readonly unmanagedStart: number;
  readonly unmanagedLimit: number;
  readonly notifier: MmuNotifierOps;
  readonly stat = { invalidations: 0, skippedOwnMigrate: 0, faults: 0, retries: 0 };
  /**
   * Checked mode only (model bookkeeping for check.ts, no kernel
   * counterpart): GPU entries this SVMM kept when it skipped an
   * MMU_NOTIFY_MIGRATE of its device, and entries nouveau_pfns_map()
   * programmed for pages of another mm (SVM_BIND through an inherited
   * file), by page address. An entry left stale by one of those is a
   * known finding, not a missing invalidation.
   */
  skippedMigrate: Set<number> | null = null;
  foreignBind: Set<number> | null = null;

  constructor(readonly svm: NouveauSvm, readonly mm: MmStruct, unmanagedAddr: number, unmanagedSize: number) {
    this.unmanagedStart = unmanagedAddr;
    this.unmanagedLimit = unmanagedAddr + unmanagedSize;
    this.notifier = { invalidateRangeStart: (r) => this.invalidateRangeStart(r) };
  }

  /** KASAN: the svmm (reached through page->zone_device_data) was freed. */
  checkAlive(fn: string, pfn: number): void {
    if (this.freed) pageBug(this.svm.k, 'KASAN', `use-after-free of struct nouveau_svmm (page->zone_device_data) in ${fn}`, pfn, 'svmm freed by nouveau_svmm_fini()');
  }

  /**
   * nouveau_svmm_invalidate(svmm, start, limit): drop the GPU's mappings of
   * [start, limit) (the PFNMAP method with nothing mapped, plus the TLB
   * flush). Caller holds svmm->mutex. A dead vmm has nothing to drop.
   * Simulated time: one PFNCLR method with a TLB invalidate, and a PTE
   * per GPU mapping dropped (chargeGpuPtUpdate(); nvkm skips what is
   * unmapped; a 2 MiB mapping is one PTE).
   */
  invalidate(start: number, limit: number): void {
    const k = this.svm.k;
    if (k.config.checked) this.mutex.assertHeld(k.sched);
    if (!this.vmmAlive || limit <= start) return;
    this.stat.invalidations++;
    const marks = [this.skippedMigrate, this.foreignBind];
    let dropped = 0;
    // A page of a 2 MiB mapping counts 1/512 (exact in binary floating point).
    if ((limit - start) / PAGE_SIZE < this.pt.size) {
      for (let a = start; a < limit; a += PAGE_SIZE) {
        const e = this.pt.get(a);
        if (e !== undefined) {
          this.pt.delete(a);
          dropped += e.large === true ? 1 / HPAGE_PMD_NR : 1;
        }
        for (const m of marks) m?.delete(a);
      }
    } else {
      for (const [a, e] of [...this.pt.entries()]) {
        if (a >= start && a < limit) {
          this.pt.delete(a);
          dropped += e.large === true ? 1 / HPAGE_PMD_NR : 1;
          for (const m of marks) m?.delete(a);
        }
      }
    }
    if (k.clock !== null) chargeGpuPtUpdate(k.clock, PHASE_PFNCLR, dropped);
  }

  /**
   * nouveau_svmm_invalidate_range_start(mn, update): the whole-mm notifier.
   * Non-blockable: -EAGAIN. Under svmm->mutex: nothing with a dead vmm;
   * MMU_NOTIFY_MIGRATE owned by this device is skipped ("handled as part
   * of the migration process"); the unmanaged window is carved out; the
   * rest is invalidated. Returns 0.
   */
  private *invalidateRangeStart(update: MmuNotifierRange): K<number> {
    if (!mmuNotifierRangeBlockable(update)) return -11; /* -EAGAIN */
    const s = this.svm.k.sched;
    let start = update.start;
    const limit = update.end;
    yield* spinLock(s, this.mutex);
    try {
      if (!this.vmmAlive) return 0;
      if (update.event === MMU_NOTIFY_MIGRATE && update.owner === this.svm.dmem.owner) {
        this.stat.skippedOwnMigrate++;
        if (this.svm.k.config.checked) {
          const kept = this.skippedMigrate ?? (this.skippedMigrate = new Set<number>());
          for (const a of this.pt.keys()) if (a >= start && a < limit) kept.add(a);
        }
        return 0;
      }
      if (limit > this.unmanagedStart && start < this.unmanagedLimit) {
        if (start < this.unmanagedStart) this.invalidate(start, this.unmanagedLimit);
        start = this.unmanagedLimit;
      }
      this.invalidate(start, limit);
      return 0;
    } finally {
      this.mutex.unlock(s);
    }
  }

  /**
   * nouveau_pfns_map(svmm, mm, addr, pfns, npages): after a migration to
   * VRAM, point the GPU's entries at the new pages (under svmm->mutex).
   * pfns[i] are NVIF PFNMAP words from nouveau_dmem_migrate_copy_one();
   * dst[i] the migrate pfns of the destination pages. `mm` (the migrated
   * VMA's) is not used by the kernel either: the entries go into this
   * SVMM's address space whatever mm the pages belong to.
   * Simulated time: one PFNMAP method (chargeGpuPtUpdate()) of one PTE
   * per entry (the kernel sends every entry, NONE for those that did not
   * migrate), a large folio's entries as one PTE: mainline maps it at its
   * page size (nouveau_pfns_map()'s page_shift argument, added with the
   * THP migration series, "gpu/drm/nouveau: enable THP support for GPU
   * memory migration"), and its TLB invalidate.
   */
  *pfnsMap(mm: MmStruct, addr: number, pfns: Float64Array, dst: Float64Array, npages: number): K<void> {
    const k = this.svm.k;
    if (k.tracer !== null && k.tracer.enter('nouveau_pfns_map')) return yield* k.tracer.span('nouveau_pfns_map', addr, this.pfnsMap(mm, addr, pfns, dst, npages));
    const s = k.sched;
    yield* spinLock(s, this.mutex);
    if (this.vmmAlive) {
      if (k.clock !== null) {
        let ptes = 0;
        for (let i = 0; i < npages; i += dst[i] !== 0 && mpfnHas(dst[i], MIGRATE_PFN_COMPOUND) ? HPAGE_PMD_NR : 1) ptes++;
        chargeGpuPtUpdate(k.clock, PHASE_PFNMAP, ptes);
      }
      // A COMPOUND dst entry is followed by zeros: page i is head + (i - index of the head entry).
      let head = -1;
      let at = 0;
      let large = false;
      for (let i = 0; i < npages; i++) {
        if (dst[i] !== 0) {
          head = migratePfnToPage(dst[i]);
          at = i;
          large = mpfnHas(dst[i], MIGRATE_PFN_COMPOUND);
        }
        const w = pfns[i];
        if (!(w & NVIF_VMM_PFNMAP_V0_V) || head < 0) continue;
        const a = addr + i * PAGE_SIZE;
        this.pt.set(a, large
          ? { aper: NOUVEAU_APER_VRAM, addr: this.svm.dmem.pageAddr(head + (i - at)), write: (w & NVIF_VMM_PFNMAP_V0_W) !== 0, large: true }
          : { aper: NOUVEAU_APER_VRAM, addr: this.svm.dmem.pageAddr(head + (i - at)), write: (w & NVIF_VMM_PFNMAP_V0_W) !== 0 });
        this.skippedMigrate?.delete(a);
        if (this.svm.k.config.checked) {
          if (mm !== this.mm) (this.foreignBind ?? (this.foreignBind = new Set<number>())).add(a);
          else this.foreignBind?.delete(a);
        }
      }
    }
    this.mutex.unlock(s);
  }
}

/** One entry of the GPU's replayable fault buffer. */
export interface GpuFault {
  svmm: NouveauSvmm;
  addr: number;
  access: number;
  /** Serviced (replay) or cancelled. */
  done: boolean;
  cancelled: boolean;
}

/** struct nouveau_svm: the fault buffer and its handler. */
export class NouveauSvm {
  /** Pending faults (the hardware buffer between GET and PUT). */
  readonly buffer: GpuFault[] = [];
  /** A fault-handler thread runs in the current scheduled run. */
  threadRunning = false;
  /**
   * timeouts: nouveau_range_fault() that hit HMM_RANGE_DEFAULT_TIMEOUT
   * (-EBUSY); atomicTimeouts: nouveau_atomic_range_fault() that did
   * (docs/FINDINGS.md, nouveau-gpu-atomic-retry-livelock).
   */
  readonly stat = { faults: 0, replayed: 0, cancelled: 0, timeouts: 0, atomicTimeouts: 0 };

  constructor(readonly k: Kernel, readonly dmem: NouveauDmem) {}

  /**
   * nouveau_svmm_init() (DRM_NOUVEAU_SVM_INIT): a new SVMM for `mm` with
   * its notifier registered (__mmu_notifier_register under mmap_lock for
   * write in the kernel).
   */
  *svmmInit(mm: MmStruct, unmanagedAddr: number, unmanagedSize: number): K<NouveauSvmm> {
    const svmm = new NouveauSvmm(this, mm, unmanagedAddr, unmanagedSize);
    const s = this.k.sched;
    yield* mmapWriteLock(mm);
    mmuNotifierRegister(mm, svmm.notifier);
    mm.mmapLock.writeUnlock(s);
    return svmm;
  }

  /**
   * nouveau_svmm_fini(&svmm): under svmm->mutex clear svmm->vmm, then
   * mmu_notifier_put(): the notifier goes away and the svmm is freed
   * (after an SRCU grace period in the kernel; at once here). Faults of it
   * still in the buffer are cancelled.
   */
  *svmmFini(svmm: NouveauSvmm): K<void> {
    const s = this.k.sched;
    yield* spinLock(s, svmm.mutex);
    svmm.vmmAlive = false;
    svmm.pt.clear();
    svmm.mutex.unlock(s);
    mmuNotifierUnregister(svmm.mm, svmm.notifier);
    for (const f of this.buffer) if (f.svmm === svmm) f.cancelled = f.done = true;
    svmm.freed = true;
  }

  /**
   * nouveau_svm_range_invalidate(mni, range, cur_seq): the per-fault
   * interval notifier. Skips this device's own MMU_NOTIFY_EXCLUSIVE; takes
   * svmm->mutex (trylock when not blockable: false on contention) and sets
   * the sequence, so the fault path's read_retry under the same mutex sees
   * it.
   */
  private *rangeInvalidate(svmm: NouveauSvmm, mni: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): K<boolean> {
    if (range.event === MMU_NOTIFY_EXCLUSIVE && range.owner === this.dmem.owner) return true;
    const s = this.k.sched;
    if (mmuNotifierRangeBlockable(range)) yield* spinLock(s, svmm.mutex);
    else if (!svmm.mutex.trylock(s)) return false;
    mmuIntervalSetSeq(mni, curSeq);
    svmm.mutex.unlock(s);
    return true;
  }

  /**
   * nouveau_range_fault(svmm, drm, args, size, hmm_flags, notifier): insert
   * an interval notifier over [start, limit); loop: read_begin,
   * hmm_range_fault() under mmap_lock for read (-EBUSY: again), take
   * svmm->mutex, read_retry (changed: drop it, again); convert the pfns
   * (nouveau_hmm_convert_pfn(): device-private pages of this device become
   * VRAM entries) and program the GPU page table, still under the mutex.
   * Returns 0, -EBUSY after too many rounds, or hmm_range_fault's -errno.
   * Simulated time: hmm_range_fault() charges its walk ('get pages'); the
   * PFNMAP method of the range and its TLB invalidate are charged here.
   */
  *rangeFault(svmm: NouveauSvmm, start: number, limit: number, hmmFlags: number): K<number> {
    const k = this.k;
    const s = k.sched;
    const mm = svmm.mm;
    const mni = new MmuIntervalNotifier(mm, start, limit - 1, {
      invalidate: (sub, r, cur) => this.rangeInvalidate(svmm, sub, r, cur),
    }, 'nouveau svm_notifier');
    const r0 = mmuIntervalNotifierInsert(mni);
    if (r0) return r0;
    const range = new HmmRange(mni, start, limit, hmmFlags, 0, this.dmem.owner);
    let ret = -EBUSY;
    try {
      for (let round = 0; ; round++) {
        if (round >= RANGE_FAULT_ROUNDS) {
          this.stat.timeouts++;
          return -EBUSY;
        }
        range.notifierSeq = yield* mmuIntervalReadBegin(mni);
        yield* mmapReadLock(mm);
        ret = yield* hmmRangeFault(range);
        mm.mmapLock.readUnlock(s);
        if (ret) {
          if (ret === -EBUSY) continue;
          return ret;
        }
        yield* spinLock(s, svmm.mutex);
        if (mmuIntervalReadRetry(mni, range.notifierSeq)) {
          svmm.mutex.unlock(s);
          svmm.stat.retries++;
          continue;
        }
        break;
      }
      /*
       * nouveau_hmm_convert_pfn() + the PFNMAP method, under svmm->mutex.
       * Deliberate difference: a pfn reported with a map order (a
       * device-private PMD) is mapped for this one page, not as the whole
       * compound range nouveau_hmm_convert_pfn() programs (page -= offset,
       * addr aligned down); with mm/hmm.c's hmm_vma_handle_absent_pmd()
       * reporting the PMD's first pfn for any start inside it, both map the
       * wrong VRAM page (docs/FINDINGS.md, hmm-absent-pmd-first-pfn).
       */
      if (svmm.vmmAlive) {
        if (k.clock !== null) chargeGpuPtUpdate(k.clock, PHASE_PFNMAP, range.hmmPfns.length);
        for (let i = 0; i < range.hmmPfns.length; i++) {
          const w = range.hmmPfns[i];
          const a = start + i * PAGE_SIZE;
          svmm.skippedMigrate?.delete(a);
          svmm.foreignBind?.delete(a);
          if (!hmmPfnTest(w, HMM_PFN_VALID)) {
            svmm.pt.delete(a);
            continue;
          }
          const pfn = hmmPfnToPfn(w);
          const write = hmmPfnTest(w, HMM_PFN_WRITE);
          if (isDevicePrivatePage(k, pfn)) svmm.pt.set(a, { aper: NOUVEAU_APER_VRAM, addr: this.dmem.pageAddr(pfn), write });
          else svmm.pt.set(a, { aper: NOUVEAU_APER_HOST, addr: pfn, write });
        }
      }
      svmm.mutex.unlock(s);
      return 0;
    } finally {
      mmuIntervalNotifierRemove(mni);
    }
  }

  /**
   * nouveau_atomic_range_fault(svmm, drm, args, size, notifier): insert an
   * interval notifier over the page; loop: read_begin,
   * make_device_exclusive(mm, start, drm->dev) under mmap_lock for read
   * (an error: -EINVAL), take svmm->mutex, read_retry (changed: drop the
   * mutex and the folio, again); map the page V | W | A | HOST under the
   * mutex, then unlock and put the folio. 0, -EBUSY or -EINVAL.
   *
   * As in the kernel, a round that retries leaves the page
   * device-exclusive, and the next round's make_device_exclusive() GUPs it
   * for write, which restores it (remove_device_exclusive_entry():
   * MMU_NOTIFY_CLEAR, owner NULL, not the event this notifier skips) and
   * moves the sequence again: once the first round retries (the GUP broke
   * COW of the zero page or a fork-shared page, or split a THP), every
   * round does, until the timeout (-EBUSY: the fault is cancelled).
   * docs/FINDINGS.md, nouveau-gpu-atomic-retry-livelock.
   */
  *atomicRangeFault(svmm: NouveauSvmm, start: number): K<number> {
    const k = this.k;
    const s = k.sched;
    const mm = svmm.mm;
    const mni = new MmuIntervalNotifier(mm, start, start + PAGE_SIZE - 1, {
      invalidate: (sub, r, cur) => this.rangeInvalidate(svmm, sub, r, cur),
    }, 'nouveau svm_notifier (atomic)');
    const r0 = mmuIntervalNotifierInsert(mni);
    if (r0) return r0;
    try {
      for (let round = 0; ; round++) {
        if (round >= RANGE_FAULT_ROUNDS) {
          this.stat.atomicTimeouts++;
          return -EBUSY;
        }
        const seq = yield* mmuIntervalReadBegin(mni);
        yield* mmapReadLock(mm);
        const r = yield* makeDeviceExclusive(mm, start, this.dmem.owner);
        mm.mmapLock.readUnlock(s);
        if ('err' in r) return -EINVAL;
        const page = r.page;
        yield* spinLock(s, svmm.mutex);
        if (mmuIntervalReadRetry(mni, seq)) {
          svmm.mutex.unlock(s);
          folioUnlock(k, page);
          folioPut(k, page);
          svmm.stat.retries++;
          continue;
        }
        if (svmm.vmmAlive) {
          if (k.clock !== null) chargeGpuPtUpdate(k.clock, PHASE_PFNMAP, 1);
          svmm.pt.set(start, { aper: NOUVEAU_APER_HOST, addr: page, write: true, atomic: true });
          svmm.skippedMigrate?.delete(start);
          svmm.foreignBind?.delete(start);
        }
        svmm.mutex.unlock(s);
        folioUnlock(k, page);
        folioPut(k, page);
        return 0;
      }
    } finally {
      mmuIntervalNotifierRemove(mni);
    }
  }

  /**
   * nouveau_svm_fault(): drain the fault buffer. Per fault: a dead svmm
   * (no SVM channel) cancels it; the access type picks the hmm flags
   * (read: REQ_FAULT; write: REQ_FAULT | REQ_WRITE; atomic:
   * nouveau_atomic_range_fault()); an mm that is gone (mmget_not_zero()
   * fails: the process exited) cancels it; otherwise one page is faulted
   * with nouveau_range_fault() and the mm put again. An error cancels the
   * fault (the GPU channel then sees an MMU fault error); success replays
   * it, whatever the page's entry ended up as: mainline does not check
   * the result's V/W/A bits for the faulting entry itself (only to skip
   * the window's later duplicates), so a GPU write to a page
   * hmm_range_fault() reports read-only without faulting (this device's
   * own device-private page made read-only by fork) is replayed, faults
   * again, and so on forever (docs/FINDINGS.md,
   * nouveau-gpu-write-readonly-vram-livelock).
   *
   * Simulated time: device.faultNs per fault taken from the buffer (the
   * interrupt, nouveau_svm_fault_cache()'s read of the entry, and the
   * replay, nouveau_svm_fault_replay(), which the profile does not charge
   * separately).
   */
  *fault(): K<void> {
    const k = this.k;
    if (k.tracer !== null && k.tracer.enter('nouveau_svm_fault')) return yield* k.tracer.span('nouveau_svm_fault', this.buffer.length, this.fault());
    while (this.buffer.length > 0) {
      const f = this.buffer.shift()!;
      if (f.done) continue;
      if (k.clock !== null && k.clock.profile.device !== undefined) k.clock.charge(PHASE_GPU_FAULT, k.clock.profile.device.faultNs);
      const svmm = f.svmm;
      this.stat.faults++;
      svmm.stat.faults++;
      const start = f.addr - (f.addr % PAGE_SIZE);
      if (!svmm.vmmAlive || (start >= svmm.unmanagedStart && start < svmm.unmanagedLimit)) {
        f.cancelled = f.done = true;
        this.stat.cancelled++;
        continue;
      }
      /* mmget_not_zero(svmm->notifier.mm) */
      if (svmm.mm.mmUsers === 0) {
        f.cancelled = f.done = true;
        this.stat.cancelled++;
        continue;
      }
      svmm.mm.mmUsers++;
      let ret: number;
      try {
        // hmm_pfn flags live above bit 31: combined by addition, never with `|` (which truncates to 32 bits).
        const hmmFlags = f.access === GPU_ACCESS_READ ? HMM_PFN_REQ_FAULT : HMM_PFN_REQ_FAULT + HMM_PFN_REQ_WRITE;
        ret = f.access === GPU_ACCESS_ATOMIC ? yield* this.atomicRangeFault(svmm, start) : yield* this.rangeFault(svmm, start, start + PAGE_SIZE, hmmFlags);
      } finally {
        svmm.mm.mmUsers--; /* mmput(): never the last reference here (the process holds one) */
      }
      f.done = true;
      if (ret) {
        f.cancelled = true;
        this.stat.cancelled++;
      } else this.stat.replayed++;
    }
  }

  /**
   * The GPU executing an access of [addr, addr + npages pages) for svmm
   * (model only): per page, the GPU MMU walk of svmm's page table; a
   * missing or read-only entry (for an atomic: one not mapped for atomics,
   * i.e. not device-exclusive) raises a fault into the buffer, served by
   * the fault thread (or inline without one), and the access is replayed.
   * `data` (npages pages) is written or receives what is read; with data
   * null a write fills every page with `fill` (a GPU memset) and a read
   * transfers nothing (the form that works in fingerprint content mode,
   * which keeps no bytes). Returns the number of faults taken, or -EFAULT
   * when a fault was cancelled.
   */
  *gpuAccess(svmm: NouveauSvmm, addr: number, npages: number, access: number, data: Uint8Array | null, fill = 0): K<number> {
    const k = this.k;
    const s = k.sched;
    const write = access !== GPU_ACCESS_READ;
    let faults = 0;
    for (let i = 0; i < npages; i++) {
      const a = addr + i * PAGE_SIZE;
      for (let tries = 0; ; tries++) {
        if (svmm.freed) throw new KernelBug('BUG', 'nouveau: GPU access through a freed svmm');
        const pte = svmm.pt.get(a);
        if (pte !== undefined && (!write || pte.write) && (access !== GPU_ACCESS_ATOMIC || pte.atomic === true)) {
          this.touch(pte, write, data, i * PAGE_SIZE, fill, svmm.mm.mmUsers <= 0);
          break;
        }
        if (tries >= 1000) {
          const why = pte !== undefined && write && !pte.write && pte.aper === NOUVEAU_APER_VRAM
            ? ': the entry is this device\'s read-only VRAM page, which hmm_range_fault() reports without faulting it for write'
            : '';
          throw new KernelBug('HANG', `nouveau: GPU fault at 0x${a.toString(16)} replayed 1000 times (livelock)${why}`);
        }
        const f: GpuFault = { svmm, addr: a, access, done: false, cancelled: false };
        this.buffer.push(f);
        faults++;
        if (s.exploring && this.threadRunning) yield* waitUntil(s, 'GPU fault replay', () => f.done, a);
        else yield* this.fault();
        if (f.cancelled) return -EFAULT;
      }
      if (s.exploring) yield s.point('GPU access', a);
    }
    return faults;
  }

  /** The memory access of one page through a GPU PTE. */
  private touch(pte: GpuPte, write: boolean, data: Uint8Array | null, off: number, fill: number, mmGone: boolean): void {
    const k = this.k;
    if (pte.aper === NOUVEAU_APER_HOST && k.pages.refcount[k.pages.folioPfn(pte.addr)] === 0) {
      if (mmGone) pageBug(k, 'KASAN', 'nouveau: GPU access through an entry of an exited mm to a freed page (the SVMM\'s mmu_notifier has no ->release)', pte.addr, 'exit_mmap -> mn_hlist_release');
      pageBug(k, 'KASAN', 'nouveau: GPU access through a stale GPU PTE to a freed page (missed invalidation)', pte.addr, 'secondary MMU coherence');
    }
    const store = pte.aper === NOUVEAU_APER_HOST ? k.contents : this.dmem.vram;
    if (data === null) {
      if (write) store.fill(pte.addr, 0, PAGE_SIZE, fill);
    } else if (write) store.write(pte.addr, 0, data, off, PAGE_SIZE);
    else store.read(pte.addr, 0, data, off, PAGE_SIZE);
  }
}

/**
 * The fault handler as a simulated thread (the kernel's nvif notify
 * work): serve the buffer until it is empty and `quiesced()` says no
 * other thread will fault again.
 */
export function* svmFaultThread(svm: NouveauSvm, quiesced: () => boolean): K<void> {
  const s = svm.k.sched;
  svm.threadRunning = true;
  try {
    for (;;) {
      yield* waitUntil(s, 'nouveau_svm_fault idle', () => svm.buffer.length > 0 || quiesced());
      if (svm.buffer.length === 0) return;
      if (s.exploring) yield s.point('nouveau_svm_fault', svm.buffer[0].addr);
      yield* svm.fault();
    }
  } finally {
    svm.threadRunning = false;
  }
}
