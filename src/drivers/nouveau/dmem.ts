// SPDX-License-Identifier: GPL-2.0-only
/**
 * drivers/gpu/drm/nouveau/nouveau_dmem.c: nouveau's device memory (VRAM
 * exposed as MEMORY_DEVICE_PRIVATE pages) on the model's kernel API.
 *
 *  - VRAM is handed to the kernel in 2 MiB chunks (DMEM_CHUNK_SIZE) created
 *    on demand by nouveau_dmem_chunk_alloc(): a pinned buffer object in
 *    VRAM, a free physical range (request_free_mem_region()) and one
 *    dev_pagemap per chunk (memremap_pages()). The chunk's pages go to one
 *    free list shared by all chunks (drm->dmem->free_pages, linked through
 *    page->zone_device_data in the kernel; an array here).
 *  - nouveau_dmem_page_alloc_locked() pops a free page (allocating a chunk
 *    when the list is empty) and hands it to zone_device_page_init();
 *    ->folio_free (nouveau_dmem_folio_free()) pushes it back.
 *  - Copies go through the copy channel (chan.ts) and are ordered by
 *    fences, never done by the CPU: device pages are not CPU addressable
 *    and their data lives in the device's VRAM store, addressed by
 *    nouveau_dmem_page_addr() (the chunk's buffer object offset + index).
 *  - nouveau_dmem_migrate_vma(): system memory -> VRAM (NOUVEAU_SVM_BIND);
 *    ->migrate_to_ram (nouveau_dmem_migrate_to_ram()): a CPU fault brings
 *    one page back; nouveau_dmem_evict_chunk(): device removal migrates
 *    every allocated page of a chunk back with migrate_device_range().
 *
 * Mainline (v6.1 and later, the seed series applied) is the default. Two
 * historical switches give the older shapes:
 *  - nouveau_dmem_fault_copy_one: migrate_to_ram through the old
 *    nouveau_dmem_fault_copy_one(), before "nouveau/dmem: Refactor
 *    nouveau_dmem_fault_copy_one()" ("nouveau/dmem: Refactor nouveau_dmem_fault_copy_one()" (Alistair Popple, series "Fix several device private page reference counting issues" v2 6/8, 2022-09-28)).
 *  - release_without_eviction: nouveau_dmem_fini() without
 *    nouveau_dmem_evict_chunk(), before "nouveau/dmem: Evict device private
 *    memory during release" ("nouveau/dmem: Evict device private memory during release" (Alistair Popple, series "Fix several device private page reference counting issues" v2 7/8, 2022-09-28)).
 *
 * Large folios (mainline since "drm/nouveau: add THP migration support",
 * after the seeds): a whole chunk can be one 2 MiB device folio
 * (drm->dmem->free_folios); a PMD-mapped THP migrates to one
 * (MIGRATE_VMA_SELECT_COMPOUND) and a PMD-level CPU fault brings the whole
 * folio back. Model choices where the details were not checked against
 * mainline source: migrateVma() works in windows of 512 pages (not
 * SG_MAX_SINGLE_ALLOC) so that a PMD can be collected whole; no fallback
 * to small pages when a large destination cannot be allocated (the entry
 * does not migrate; a CPU fault returns 0 and retries).
 *
 * Left out (see docs/DRIVERS.md): suspend/resume (bo unpin/pin); DMA mapping errors (dma_map_page() is the
 * identity and cannot fail); the chunk reclaim list the kernel's FIXME
 * mentions (mainline does not have it either).
 *
 * Locking (as the kernel): dmem->mutex protects the chunk list;
 * dmem->lock (a spinlock) the free list and chunk->callocated;
 * svmm->mutex is held around nouveau_svmm_invalidate() + the copy in
 * migrate_to_ram. migrate_vma_* run under mmap_lock held for read by the
 * caller.
 */
import type { Kernel } from '../../kernel/kernel.js';
import { KernelBug } from '../../kernel/printk.js';
import { pageBug } from '../../kernel/mm/debug.js';
import { type K } from '../../kernel/sched/sched.js';
import { Mutex, Spinlock, spinLock } from '../../kernel/sched/locks.js';
import { LOCK_CLASSES } from '../../kernel/sched/lockdep.js';
import { createContents, type PageContents } from '../../kernel/mm/contents.js';
import {
  DevPagemap, MEMORY_DEVICE_PRIVATE, memremapPages, memunmapPages, requestFreeMemRegion, zoneDeviceFolioInit,
} from '../../kernel/mm/memremap.js';
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE } from '../../kernel/mm/page.js';
import { GFP_HIGHUSER_MOVABLE, __GFP_NOFAIL, __GFP_ZERO } from '../../kernel/mm/page_alloc.js';
import { folioPut, folioTrylock, folioUnlock } from '../../kernel/mm/folio.js';
import type { Vma, VmFault } from '../../kernel/mm/mm_types.js';
import { EINVAL, ENOMEM } from '../../kernel/errno.js';
import {
  MIGRATE_PFN_COMPOUND, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_WRITE, MIGRATE_VMA_SELECT_COMPOUND, MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM, MigrateVma,
  migrateDeviceFinalize, migrateDevicePages, migrateDeviceRange, migratePfn, migratePfnToPage, migrateVmaFinalize,
  migrateVmaPages, migrateVmaSetup, mpfnHas, mpfnSet,
} from '../../kernel/mm/migrate_device.js';
import { NOUVEAU_APER_HOST, NOUVEAU_APER_VRAM, NouveauChannel, NouveauFence } from './chan.js';
import type { NouveauSvmm } from './svm.js';

/** DMEM_CHUNK_SIZE: 2 MiB of VRAM per chunk / pagemap. */
export const DMEM_CHUNK_SIZE = 2 << 20;
export const DMEM_CHUNK_NPAGES = DMEM_CHUNK_SIZE / PAGE_SIZE;

/**
 * Pages per migrate_vma_setup() in nouveau_dmem_migrate_vma(). The
 * pre-THP driver used SG_MAX_SINGLE_ALLOC (128 on x86-64); a window must
 * cover a whole PMD for a THP to migrate as one folio (model choice, see
 * the file comment).
 */
export const MIGRATE_WINDOW = HPAGE_PMD_NR;

/* A COMPOUND entry stands for HPAGE_PMD_NR pages; the entries after it are zero. */
function entryNr(v: number): number {
  return mpfnHas(v, MIGRATE_PFN_COMPOUND) ? HPAGE_PMD_NR : 1;
}

/* VM_FAULT_* (mm_types.h) */
const VM_FAULT_SIGBUS = 0x000002;
/** VM_FAULT_OOM (include/linux/mm_types.h) */
const VM_FAULT_OOM = 0x000001;

/** NVIF_VMM_PFNMAP_V0_* bits of the GPU PTE words nouveau_dmem_migrate_copy_one() produces (if000c.h). */
export const NVIF_VMM_PFNMAP_V0_V = 0x1;
export const NVIF_VMM_PFNMAP_V0_W = 0x2;
export const NVIF_VMM_PFNMAP_V0_VRAM = 0x4;
export const NVIF_VMM_PFNMAP_V0_NONE = 0x0;

/** struct nouveau_dmem_chunk */
export class NouveauDmemChunk {
  /** callocated: pages of this chunk allocated (not on the free list). */
  callocated = 0;
  /** chunk->bo is set (nouveau_bo_ref(NULL, &chunk->bo) in nouveau_dmem_fini() clears it). */
  bo = true;
  /**
   * page->zone_device_data of the chunk's allocated pages: the svmm the
   * page was migrated for (nouveau_dmem_migrate_copy_one() sets it;
   * migrate_to_ram reads it). Index: pfn - first pfn.
   */
  readonly zoneDeviceData: Array<NouveauSvmm | null> = new Array(DMEM_CHUNK_NPAGES).fill(null);
  constructor(
    readonly pagemap: DevPagemap,
    /** chunk->bo->offset in VRAM pages. */
    readonly boOffset: number,
  ) {}
  get pfnFirst(): number {
    return this.pagemap.firstPfn;
  }
}

export interface NouveauDmemOptions {
  /** VRAM available to device memory, in 2 MiB chunks (ram_user). */
  vramChunks?: number;
}

/** struct nouveau_dmem */
export class NouveauDmem {
  /** drm->dmem->chunks (under mutex). */
  readonly chunks: NouveauDmemChunk[] = [];
  /** drm->dmem->free_pages (under lock). */
  readonly freePages: number[] = [];
  /** drm->dmem->free_folios: free whole-chunk 2 MiB folios, by head pfn (under lock). */
  readonly freeFolios: number[] = [];
  readonly mutex = new Mutex('nouveau_dmem->mutex', LOCK_CLASSES.nouveau_dmem_mutex);
  readonly lock = new Spinlock('nouveau_dmem->lock', LOCK_CLASSES.nouveau_dmem_lock);
  /** The device's VRAM: page contents by VRAM page index (never the device pfns' slots). */
  readonly vram: PageContents;
  /** VRAM pages in use by buffer objects: boUsed[c] for the chunk-sized slot c. */
  readonly boUsed: Uint8Array;
  /** drm->dmem->migrate.chan */
  readonly chan: NouveauChannel;
  /** Statistics (model). */
  readonly stat = { toDevice: 0, toRam: 0, toRamFailed: 0, evicted: 0, chunksAllocated: 0, pagesFreed: 0 };
  /** nouveau_dmem_fini() has run: no more allocation. */
  finished = false;

  constructor(
    readonly k: Kernel,
    /** pagemap->owner: drm->dev. */
    readonly owner: object,
    opts: NouveauDmemOptions = {},
  ) {
    const n = opts.vramChunks ?? 4;
    this.vram = createContents(k.config.contentMode);
    this.vram.ensureCapacity(n * DMEM_CHUNK_NPAGES);
    this.boUsed = new Uint8Array(n);
    this.chan = new NouveauChannel(k, this.vram, 'nouveau-ce');
  }

  /** nouveau_page_to_chunk(page): container_of(page->pgmap) — the chunk owning pfn, or null. */
  pageToChunk(pfn: number): NouveauDmemChunk | null {
    const id = this.k.pages.pgmap[pfn];
    if (id === 0) return null;
    for (const c of this.chunks) if (c.pagemap.id === id) return c;
    return null;
  }

  private chunkOf(pfn: number, what: string): NouveauDmemChunk {
    const c = this.pageToChunk(pfn);
    if (c === null) pageBug(this.k, 'BUG', `${what}: not a nouveau device page`, pfn, 'page_to_chunk');
    return c;
  }

  /** nouveau_dmem_page_addr(page): the page's VRAM address (in pages). */
  pageAddr(pfn: number): number {
    const c = this.chunkOf(pfn, 'nouveau_dmem_page_addr');
    // chunk->bo->offset with chunk->bo NULL (nouveau_dmem_fini() dropped it): an oops.
    if (!c.bo) throw new KernelBug('BUG', 'kernel NULL pointer dereference: chunk->bo in nouveau_dmem_page_addr (nouveau_dmem_fini() already dropped the chunk\'s buffer object)', this.k.dumpPage(pfn, 'nouveau_dmem_page_addr'));
    return c.boOffset + (pfn - c.pfnFirst);
  }

  /** page->zone_device_data of an allocated device page. */
  zoneDeviceData(pfn: number): NouveauSvmm | null {
    const c = this.chunkOf(pfn, 'zone_device_data');
    return c.zoneDeviceData[pfn - c.pfnFirst];
  }

  private setZoneDeviceData(pfn: number, svmm: NouveauSvmm | null): void {
    const c = this.chunkOf(pfn, 'zone_device_data');
    c.zoneDeviceData[pfn - c.pfnFirst] = svmm;
  }

  /**
   * ->folio_free (nouveau_dmem_folio_free()): the page's last reference is
   * gone. Back on the free list, chunk->callocated-- (under dmem->lock; the
   * callback runs from folio_put() in atomic context, and no path of this
   * driver holds the lock across a scheduling point, so it is never seen
   * held here).
   */
  folioFree(head: number): void {
    if (this.lock.isLocked()) throw new KernelBug('LOCKDEP', 'nouveau_dmem_folio_free: nouveau_dmem->lock already held (spinlock recursion or a holder that scheduled)');
    const c = this.chunkOf(head, 'nouveau_dmem_folio_free');
    const nr = 1 << this.k.pages.order[head];
    if (c.callocated < nr) this.k.warnOnPage(true, head, 'nouveau_dmem_folio_free: WARN_ON(!chunk->callocated)');
    c.callocated -= nr;
    const i = head - c.pfnFirst;
    if (nr === 1) {
      c.zoneDeviceData[i] = null;
      this.freePages.push(head);
    } else {
      c.zoneDeviceData.fill(null, i, i + nr);
      this.freeFolios.push(head);
    }
    this.stat.pagesFreed += nr;
  }

  /**
   * nouveau_dmem_chunk_alloc(drm, &ppage): a new 2 MiB chunk: a VRAM
   * buffer object (nouveau_bo_new + pin: -ENOMEM when VRAM is exhausted),
   * a free physical range and memremap_pages() of its pagemap; all pages
   * but the first go to the free list, the first is returned (counted in
   * callocated); with `isLarge` the whole chunk is returned as one folio.
   * Returns its pfn or -errno. Takes dmem->mutex for the chunk list and
   * dmem->lock for the free list.
   */
  *chunkAlloc(isLarge = false): K<number> {
    const k = this.k;
    const s = k.sched;
    if (this.finished) return -EINVAL;
    const slot = this.boUsed.indexOf(0);
    if (slot < 0) return -ENOMEM;
    this.boUsed[slot] = 1;
    const pagemap = new DevPagemap(MEMORY_DEVICE_PRIVATE, requestFreeMemRegion(k, DMEM_CHUNK_SIZE), {
      folioFree: (head: number) => this.folioFree(head),
      migrateToRam: (vmf: VmFault) => this.migrateToRam(vmf),
    }, this.owner);
    const r = memremapPages(k, pagemap);
    if (r < 0) {
      this.boUsed[slot] = 0;
      return r;
    }
    const chunk = new NouveauDmemChunk(pagemap, slot * DMEM_CHUNK_NPAGES);
    yield* spinLock(s, this.mutex);
    this.chunks.push(chunk);
    this.mutex.unlock(s);
    this.stat.chunksAllocated++;
    yield* spinLock(s, this.lock);
    const first = pagemap.firstPfn;
    if (isLarge) chunk.callocated += DMEM_CHUNK_NPAGES;
    else {
      // Pushed high to low so that pops hand out ascending pfns (the kernel's
      // list order differs; nothing depends on it).
      for (let i = DMEM_CHUNK_NPAGES - 1; i >= 1; i--) this.freePages.push(first + i);
      chunk.callocated++;
    }
    this.lock.unlock(s);
    return first;
  }

  /**
   * nouveau_dmem_page_alloc_locked(drm, is_large): a free device page from
   * the free list, or with `isLarge` a free 2 MiB folio from the free-folio
   * list (a new chunk when the list is empty), initialised by
   * zone_device_folio_init(): refcount 1, locked, a pgmap reference per
   * page. Returns the (head) pfn or -1 (no VRAM left).
   */
  *pageAllocLocked(isLarge = false): K<number> {
    const s = this.k.sched;
    yield* spinLock(s, this.lock);
    let pfn: number;
    const list = isLarge ? this.freeFolios : this.freePages;
    if (list.length > 0) {
      pfn = list.pop()!;
      this.chunkOf(pfn, 'nouveau_dmem_page_alloc_locked').callocated += isLarge ? DMEM_CHUNK_NPAGES : 1;
      this.lock.unlock(s);
    } else {
      this.lock.unlock(s);
      pfn = yield* this.chunkAlloc(isLarge);
      if (pfn < 0) return -1;
    }
    zoneDeviceFolioInit(this.k, pfn, isLarge ? HPAGE_PMD_ORDER : 0);
    return pfn;
  }

  /** nouveau_dmem_page_free_locked(drm, page): unlock_page() + put_page() of a page not used after all. */
  pageFreeLocked(pfn: number): void {
    folioUnlock(this.k, pfn);
    folioPut(this.k, pfn);
  }

  /** nouveau_dmem_fence_done(&fence): wait for the copies before the fence (nouveau_fence_wait), drop it. */
  *fenceDone(fence: NouveauFence | number): K<void> {
    if (typeof fence === 'number') return; /* no fence: the kernel's FIXME, nothing to wait for */
    yield* this.chan.fenceWait(fence);
  }

  /**
   * nouveau_dmem_copy_one(drm, spage, dpage, &dma_addr): lock dpage,
   * dma_map_page() it and push a VRAM -> host copy of one page. 0 or -EIO
   * (copy_func failed; the mapping is undone). The copy is in flight on
   * return: the caller fences it.
   */
  copyOne(spage: number, dpage: number, npages = 1): number {
    if (!folioTrylock(this.k, dpage)) pageBug(this.k, 'BUG', 'nouveau_dmem_copy_one: lock_page of a fresh page blocked', dpage, 'lock_page');
    if (this.chan.copy(npages, NOUVEAU_APER_HOST, dpage, NOUVEAU_APER_VRAM, this.pageAddr(spage)) !== 0) return -5; /* -EIO */
    return 0;
  }

  /** alloc_page_vma() / vma_alloc_folio(GFP_HIGHUSER [| __GFP_ZERO], order, vma, addr): a system folio, or -1. */
  private allocSystem(gfp: number, site: string, order = 0): number {
    return this.k.buddy.alloc(order, gfp, site);
  }

  /**
   * ->migrate_to_ram (nouveau_dmem_migrate_to_ram(vmf)): called by
   * do_swap_page() with mmap_lock held for read and vmf.page locked and
   * referenced. Migrates the one faulting page back to system memory:
   * migrate_vma_setup(SELECT_DEVICE_PRIVATE, fault_page); a destination
   * page (none: VM_FAULT_OOM, as mainline since "drm/nouveau: add THP
   * migration support"; the user fault path then retries, see
   * docs/FINDINGS.md "Not a finding: VM_FAULT_OOM"); under svmm->mutex
   * nouveau_svmm_invalidate() the GPU's mapping and queue the copy; fence;
   * migrate_vma_pages(); wait for the fence; migrate_vma_finalize().
   * Returns 0, VM_FAULT_OOM, or VM_FAULT_SIGBUS (setup failed, or the
   * copy could not be queued).
   *
   * With the copy failing the kernel still calls migrate_vma_finalize()
   * with dst set and the entry MIGRATE but without migrate_vma_pages():
   * remove_migration_ptes(src, dst) walks the rmap of dst, which never got
   * src's mapping, finds nothing, and the migration entry stays, naming a
   * device page that is then freed (docs/FINDINGS.md). The allocation site
   * of the destination is 'nouveau_dmem_migrate_to_ram' in both shapes
   * (for failure injection).
   *
   * Simulated time: migrate_vma_setup() charges the bookkeeping,
   * nouveau_svmm_invalidate() the PFNCLR and TLB invalidate, the copy
   * command its submit and copy-engine job, the fence wait the rest.
   */
  *migrateToRam(vmf: VmFault): K<number> {
    const k = this.k;
    if (k.tracer !== null && k.tracer.enter('nouveau_dmem_migrate_to_ram')) return yield* k.tracer.span('nouveau_dmem_migrate_to_ram', vmf.address, this.migrateToRam(vmf));
    if (k.config.historical.nouveau_dmem_fault_copy_one) return yield* this.migrateToRamOld(vmf);
    const s = k.sched;
    this.stat.toRam++;
    // A large device folio (a PMD-level fault) comes back whole.
    const large = vmf.pmdLevel && k.pages.order[vmf.page] === HPAGE_PMD_ORDER;
    const nr = large ? HPAGE_PMD_NR : 1;
    const start = vmf.address - (vmf.address % (nr * PAGE_SIZE));
    const args = new MigrateVma({
      vma: vmf.vma, start, end: start + nr * PAGE_SIZE,
      src: new Float64Array(nr), dst: new Float64Array(nr),
      pgmapOwner: this.owner, flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE | (large ? MIGRATE_VMA_SELECT_COMPOUND : 0), faultPage: vmf.page,
    });
    if ((yield* migrateVmaSetup(args)) < 0) return VM_FAULT_SIGBUS;
    if (!args.cpages) return 0;
    let ret = 0;
    const src = args.src;
    const dst = args.dst;
    const spage = migratePfnToPage(src[0]);
    done: {
      if (spage < 0 || !mpfnHas(src[0], MIGRATE_PFN_MIGRATE)) break done;
      const compound = mpfnHas(src[0], MIGRATE_PFN_COMPOUND);
      const dpage = this.allocSystem(GFP_HIGHUSER_MOVABLE | __GFP_ZERO, 'nouveau_dmem_migrate_to_ram', compound ? HPAGE_PMD_ORDER : 0);
      // Mainline (since "drm/nouveau: add THP migration support"): VM_FAULT_OOM, not a silent retry.
      if (dpage < 0) {
        ret = VM_FAULT_OOM;
        break done;
      }
      dst[0] = (compound ? mpfnSet(migratePfn(dpage), MIGRATE_PFN_COMPOUND) : migratePfn(dpage));
      const svmm = this.zoneDeviceData(spage);
      if (svmm !== null) {
        svmm.checkAlive('nouveau_dmem_migrate_to_ram', spage);
        yield* spinLock(s, svmm.mutex);
        svmm.invalidate(args.start, args.end);
      }
      const r = this.copyOne(spage, dpage, compound ? HPAGE_PMD_NR : 1);
      if (svmm !== null) svmm.mutex.unlock(s);
      if (r) {
        ret = VM_FAULT_SIGBUS;
        this.stat.toRamFailed++;
        break done;
      }
      const fence = this.chan.fenceNew();
      yield* migrateVmaPages(args);
      yield* this.fenceDone(fence);
    }
    yield* migrateVmaFinalize(args);
    return ret;
  }

  /**
   * nouveau_dmem_migrate_to_ram() with nouveau_dmem_fault_copy_one() as it
   * was before "nouveau/dmem: Refactor nouveau_dmem_fault_copy_one()" (seed
   * "nouveau/dmem: Refactor nouveau_dmem_fault_copy_one()" (Alistair Popple, series "Fix several device private page reference counting issues" v2 6/8, 2022-09-28)): the helper allocates the destination (none: SIGBUS),
   * locks it, takes svmm->mutex, invalidates, queues the copy and only then
   * sets dst; when the copy cannot be queued it puts the destination page
   * while it is still locked ("__free_page(dpage)" on the error path):
   * Bad page state.
   */
  private *migrateToRamOld(vmf: VmFault): K<number> {
    const k = this.k;
    const s = k.sched;
    this.stat.toRam++;
    const args = new MigrateVma({
      vma: vmf.vma, start: vmf.address, end: vmf.address + PAGE_SIZE,
      src: new Float64Array(1), dst: new Float64Array(1),
      pgmapOwner: this.owner, flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE, faultPage: vmf.page,
    });
    if ((yield* migrateVmaSetup(args)) < 0) return VM_FAULT_SIGBUS;
    if (!args.cpages) return 0;
    const ret = yield* this.faultCopyOne(args);
    if (ret === 0 && args.dst[0] !== 0) {
      const fence = this.chan.fenceNew();
      yield* migrateVmaPages(args);
      yield* this.fenceDone(fence);
    } else if (ret !== 0) this.stat.toRamFailed++;
    yield* migrateVmaFinalize(args);
    return ret;
  }

  /** The pre-refactor nouveau_dmem_fault_copy_one(drm, vmf, args, &dma_addr): 0 or VM_FAULT_SIGBUS. */
  private *faultCopyOne(args: MigrateVma): K<number> {
    const k = this.k;
    const s = k.sched;
    const src = args.src;
    const spage = migratePfnToPage(src[0]);
    if (spage < 0 || !mpfnHas(src[0], MIGRATE_PFN_MIGRATE)) return 0;
    const dpage = this.allocSystem(GFP_HIGHUSER_MOVABLE, 'nouveau_dmem_migrate_to_ram');
    if (dpage < 0) return VM_FAULT_SIGBUS;
    folioTrylock(k, dpage); /* lock_page(dpage): a fresh page */
    const svmm = this.zoneDeviceData(spage);
    if (svmm !== null) {
      svmm.checkAlive('nouveau_dmem_fault_copy_one', spage);
      yield* spinLock(s, svmm.mutex);
      svmm.invalidate(args.start, args.end);
    }
    if (this.chan.copy(1, NOUVEAU_APER_HOST, dpage, NOUVEAU_APER_VRAM, this.pageAddr(spage)) !== 0) {
      /* error_dma_unmap: mutex_unlock; dma_unmap_page; error_free_page: __free_page(dpage) — still locked */
      if (svmm !== null) svmm.mutex.unlock(s);
      folioPut(k, dpage);
      return VM_FAULT_SIGBUS;
    }
    if (svmm !== null) svmm.mutex.unlock(s);
    args.dst[0] = migratePfn(dpage);
    return 0;
  }

  /**
   * nouveau_dmem_migrate_copy_one(drm, svmm, src, &dma_addr, &pfn): for a
   * MIGRATE entry, a locked device page, the copy of the source (or a
   * clear for a hole) queued, zone_device_data = svmm, and the GPU PTE word
   * for it in pfns[i] (VRAM | V [| W]). Returns the dst entry, or 0 (no
   * VRAM, the copy could not be queued, or not migrating).
   */
  private *migrateCopyOne(svmm: NouveauSvmm | null, src: number, pfns: Float64Array, i: number): K<number> {
    pfns[i] = NVIF_VMM_PFNMAP_V0_NONE;
    if (!mpfnHas(src, MIGRATE_PFN_MIGRATE)) return 0;
    const spage = migratePfnToPage(src);
    const compound = mpfnHas(src, MIGRATE_PFN_COMPOUND);
    const nr = compound ? HPAGE_PMD_NR : 1;
    const dpage = yield* this.pageAllocLocked(compound);
    if (dpage < 0) return 0;
    const addr = this.pageAddr(dpage);
    const r = spage >= 0 ? this.chan.copy(nr, NOUVEAU_APER_VRAM, addr, NOUVEAU_APER_HOST, spage) : this.chan.clear(nr, NOUVEAU_APER_VRAM, addr);
    if (r !== 0) {
      this.pageFreeLocked(dpage);
      return 0;
    }
    for (let j = 0; j < nr; j++) this.setZoneDeviceData(dpage + j, svmm);
    const w = NVIF_VMM_PFNMAP_V0_V | NVIF_VMM_PFNMAP_V0_VRAM | (mpfnHas(src, MIGRATE_PFN_WRITE) ? NVIF_VMM_PFNMAP_V0_W : 0);
    for (let j = 0; j < nr; j++) pfns[i + j] = w;
    return (compound ? mpfnSet(migratePfn(dpage), MIGRATE_PFN_COMPOUND) : migratePfn(dpage));
  }

  /**
   * nouveau_dmem_migrate_chunk(drm, svmm, args, dma_addrs, pfns): a
   * destination per entry with copies queued, a fence,
   * migrate_vma_pages(), wait for the fence, nouveau_pfns_map() of the
   * migrated pages into the GPU page table, migrate_vma_finalize().
   * Returns the entries that migrated.
   */
  private *migrateChunk(svmm: NouveauSvmm | null, args: MigrateVma): K<number> {
    const src = args.src;
    const dst = args.dst;
    const pfns = new Float64Array(args.npages);
    for (let i = 0; i < args.npages; i += entryNr(src[i])) dst[i] = yield* this.migrateCopyOne(svmm, src[i], pfns, i);
    const fence = this.chan.fenceNew();
    yield* migrateVmaPages(args);
    yield* this.fenceDone(fence);
    let moved = 0;
    for (let i = 0; i < args.npages;) {
      const nr = entryNr(src[i]);
      if (!mpfnHas(src[i], MIGRATE_PFN_MIGRATE) || dst[i] === 0) pfns.fill(NVIF_VMM_PFNMAP_V0_NONE, i, i + nr);
      else moved += nr;
      i += nr;
    }
    if (svmm !== null) yield* svmm.pfnsMap(args.vma!.mm, args.start, pfns, dst, args.npages);
    yield* migrateVmaFinalize(args);
    return moved;
  }

  /**
   * nouveau_dmem_migrate_vma(drm, svmm, vma, start, end): migrate
   * [start, end) of vma to VRAM, SG_MAX_SINGLE_ALLOC pages per
   * migrate_vma_setup() (MIGRATE_VMA_SELECT_SYSTEM, pgmap_owner drm->dev).
   * The caller holds mmap_lock for read. Returns the number of pages
   * migrated (the kernel returns 0 or -errno and does not count), or the
   * setup's -errno.
   *
   * Simulated time (docs/COST_MODEL.md, "nouveau"): migrate_vma_setup()
   * charges the bookkeeping, each copy command its submit and its job on
   * the copy engine, the fence wait the rest of the copy, nouveau_pfns_map()
   * the GPU page-table update.
   */
  *migrateVma(svmm: NouveauSvmm | null, vma: Vma, start: number, end: number): K<number> {
    const tr = this.k.tracer;
    if (tr !== null && tr.enter('nouveau_dmem_migrate_vma')) return yield* tr.span('nouveau_dmem_migrate_vma', start, this.migrateVma(svmm, vma, start, end));
    const npages = (end - start) / PAGE_SIZE;
    const max = Math.min(MIGRATE_WINDOW, npages);
    const src = new Float64Array(max);
    const dst = new Float64Array(max);
    let moved = 0;
    // Windows end on 2 MiB boundaries so that a PMD-mapped THP is collected whole.
    for (let s0 = start; s0 < end;) {
      const e0 = Math.min(end, s0 - (s0 % (MIGRATE_WINDOW * PAGE_SIZE)) + MIGRATE_WINDOW * PAGE_SIZE);
      const args = new MigrateVma({ vma, start: s0, end: e0, src, dst, pgmapOwner: this.owner, flags: MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND });
      const r = yield* migrateVmaSetup(args);
      if (r) return r;
      if (args.cpages) moved += yield* this.migrateChunk(svmm, args);
      else yield* migrateVmaFinalize(args);
      s0 = e0;
    }
    this.stat.toDevice += moved;
    return moved;
  }

  /**
   * nouveau_dmem_evict_chunk(chunk) (the seed's patch, "nouveau/dmem: Evict device private memory during release" (Alistair Popple, series "Fix several device private page reference counting issues" v2 7/8, 2022-09-28), with
   * migrate_device_range()): every allocated page of the chunk is
   * unmapped from every process, given a system page (GFP_HIGHUSER |
   * __GFP_NOFAIL: "the GPU is going away"), copied back through the copy
   * engine, and mapped again by migrate_device_finalize() after the fence.
   * Pages locked by someone else (a fault migrating them right now) are
   * skipped by migrate_device_range(); their migration frees them.
   * Returns the number of pages evicted.
   */
  *evictChunk(chunk: NouveauDmemChunk): K<number> {
    const k = this.k;
    const n = DMEM_CHUNK_NPAGES;
    const src = new Float64Array(n);
    const dst = new Float64Array(n);
    yield* migrateDeviceRange(k, src, chunk.pfnFirst, n);
    let moved = 0;
    for (let i = 0; i < n; i += entryNr(src[i])) {
      if (!mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) continue;
      // migrate_device_pages() cannot split: a large folio needs a large destination.
      const compound = mpfnHas(src[i], MIGRATE_PFN_COMPOUND);
      const dpage = this.allocSystem(GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL, 'nouveau_dmem_evict_chunk', compound ? HPAGE_PMD_ORDER : 0);
      if (dpage < 0) throw new KernelBug('BUG', 'nouveau_dmem_evict_chunk: __GFP_NOFAIL allocation failed (the model has no reclaim to wait for)');
      dst[i] = (compound ? mpfnSet(migratePfn(dpage), MIGRATE_PFN_COMPOUND) : migratePfn(dpage));
      /* The kernel ignores a failed copy here (the GPU is going away). */
      this.copyOne(migratePfnToPage(src[i]), dpage, compound ? HPAGE_PMD_NR : 1);
      moved += compound ? HPAGE_PMD_NR : 1;
    }
    const fence = this.chan.fenceNew();
    yield* migrateDevicePages(k, src, dst, n);
    yield* this.fenceDone(fence);
    yield* migrateDeviceFinalize(k, src, dst, n);
    this.stat.evicted += moved;
    return moved;
  }

  /**
   * nouveau_dmem_fini(drm): device removal. Under dmem->mutex, for each
   * chunk: evict it (mainline), unpin and free its buffer object
   * (chunk->bo = NULL), WARN_ON(chunk->callocated), memunmap_pages()
   * (which waits for every page to be freed: without eviction, pages still
   * mapped by a process make it wait forever), release the region.
   *
   * As in the kernel, a page a CPU fault holds locked while the chunk is
   * evicted is skipped by migrate_device_range(): the WARN fires, and the
   * fault's own copy then reads chunk->bo after it was dropped
   * (docs/FINDINGS.md; scenario nouveau-fini-vs-fault).
   */
  *fini(): K<void> {
    const k = this.k;
    const s = k.sched;
    yield* spinLock(s, this.mutex);
    this.finished = true;
    try {
      for (const chunk of this.chunks) {
        if (!k.config.historical.release_without_eviction) yield* this.evictChunk(chunk);
        /* nouveau_bo_unpin(chunk->bo); nouveau_bo_ref(NULL, &chunk->bo) */
        chunk.bo = false;
        this.boUsed[chunk.boOffset / DMEM_CHUNK_NPAGES] = 0;
        // The WARN came with the eviction patch ("nouveau/dmem: Evict device private memory during release" (Alistair Popple, series "Fix several device private page reference counting issues" v2 7/8, 2022-09-28)).
        if (chunk.callocated !== 0 && !k.config.historical.release_without_eviction) k.printk.warn(`nouveau_dmem_fini: WARN_ON(chunk->callocated) (${chunk.callocated} pages)`);
        yield* memunmapPages(k, chunk.pagemap);
        for (const list of [this.freePages, this.freeFolios]) {
          for (let i = list.length - 1; i >= 0; i--) {
            const f = list[i];
            if (f >= chunk.pfnFirst && f < chunk.pfnFirst + DMEM_CHUNK_NPAGES) list.splice(i, 1);
          }
        }
      }
      this.chunks.length = 0;
    } finally {
      this.mutex.unlock(s);
    }
  }

  /** Device pages allocated, over all chunks. */
  allocated(): number {
    let n = 0;
    for (const c of this.chunks) n += c.callocated;
    return n;
  }
}
