// SPDX-License-Identifier: GPL-2.0-only
/**
 * test_hmm.c device memory: the four dmirror devices, their 256 MiB
 * ZONE_DEVICE chunks, the free-page / free-folio lists, the page allocator
 * (dmirror_devmem_alloc_page), the dev_pagemap_ops (folio_free,
 * migrate_to_ram, folio_split) and chunk eviction / removal.
 *
 * Model of the kernel's data:
 *  - struct dmirror_chunk embeds its dev_pagemap first, so here it *is* a
 *    DevPagemap subclass; container_of(page_pgmap(page)) is a cast.
 *  - The free lists are threaded through page->zone_device_data (LIFO),
 *    as in the kernel: a free device page's zone_device_data (k.pages.zdd)
 *    is the next free pfn (0 ends the list). An allocated page's is:
 *      private device page  -> pfn of its backing system page (BACKING_PAGE)
 *      backing system page  -> id of the owning mirror (dmirror pointer)
 *      coherent device page -> id of the owning mirror (it is its own backing page)
 *    0 is NULL (pfn 0 is never a page; mirror ids start at 1).
 *  - Coherent devices use "special purpose memory": two fixed physical
 *    ranges reserved above RAM at module load when k.config.spm is true (the
 *    spm_addr_dev0 / spm_addr_dev1 module parameters).
 *
 * Locks: devmemLock (mutex) protects the chunk array; lock (spinlock)
 * protects the free lists and the calloc/cfree counters. Spinlock sections
 * never yield in the model, so sync callers (folio_free from folio_put) take
 * it with a trylock that cannot fail.
 */
import type { Kernel } from '../../kernel/kernel.js';
import { KernelBug } from '../../kernel/printk.js';
import { pageBug } from '../../kernel/mm/debug.js';
import { EINVAL, ENOMEM } from '../../kernel/errno.js';
import type { K } from '../../kernel/sched/sched.js';
import type { VmFault } from '../../kernel/mm/mm_types.js';
import { Mutex, Spinlock, mutexLock } from '../../kernel/sched/locks.js';
import { LOCK_CLASSES } from '../../kernel/sched/lockdep.js';
import {
  DevPagemap, type DevPagemapOps, MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_PRIVATE, type PhysRange,
  isDeviceCoherentPage, isDevicePrivatePage, memremapPages, memunmapPages, pagePgmap, requestFreeMemRegion,
  zoneDeviceFolioInit,
} from '../../kernel/mm/memremap.js';
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PG_head, PG_tail } from '../../kernel/mm/page.js';
import { GFP_HIGHUSER_MOVABLE, __GFP_NOFAIL } from '../../kernel/mm/page_alloc.js';
import { folioLockQuick, folioPut } from '../../kernel/mm/folio.js';
import {
  MIGRATE_PFN_COMPOUND, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_WRITE, migrateDeviceFinalize, migrateDevicePages,
  migrateDeviceRange, migratePfn, migratePfnToPage, mpfnHas, mpfnSet,
} from '../../kernel/mm/migrate_device.js';
import { HMM_DMIRROR_MEMORY_DEVICE_COHERENT, HMM_DMIRROR_MEMORY_DEVICE_PRIVATE } from './uapi.js';
import type { Dmirror } from './mirror.js';

export const DMIRROR_NDEVICES = 4;
/** DMIRROR_RANGE_FAULT_TIMEOUT (ms), unused by the kernel source too (it uses HMM_RANGE_DEFAULT_TIMEOUT). */
export const DMIRROR_RANGE_FAULT_TIMEOUT = 1000;
export const DEVMEM_CHUNK_SIZE = 256 * 1024 * 1024;
export const DEVMEM_CHUNKS_RESERVE = 16;
/** Device page-table tags (xa_tag_pointer values). */
export const DPT_XA_TAG_ATOMIC = 1;
export const DPT_XA_TAG_WRITE = 3;

/** struct dmirror_chunk: the pagemap, its device, and the "being removed" flag. */
export class DmirrorChunk extends DevPagemap {
  mdevice!: DmirrorDevice;
  remove = false;
}

/** struct dmirror_device */
export class DmirrorDevice {
  readonly devmemLock: Mutex;
  readonly lock: Spinlock;
  devmemCapacity = 0;
  devmemCount = 0;
  devmemChunks: DmirrorChunk[] = [];
  /** Pages handed out / returned (internal counters, as the kernel's). */
  calloc = 0;
  cfree = 0;
  /**
   * free_pages / free_folios: as in the kernel, singly linked LIFO lists of
   * free device pages (order 0) and free PMD-sized device folios (heads),
   * threaded through zone_device_data (the next pfn; 0 = NULL). Protected
   * by `lock`. The counts are the model's, for tests and accounting.
   */
  freePagesHead = 0;
  freeFoliosHead = 0;
  nrFreePages = 0;
  nrFreeFolios = 0;
  /** /dev path, registered while the module is loaded. */
  readonly path: string;
  constructor(
    readonly mod: TestHmm,
    /** MINOR(cdevice.dev) */
    readonly minor: number,
    /** HMM_DMIRROR_MEMORY_DEVICE_PRIVATE or _COHERENT */
    readonly zoneDeviceType: number,
  ) {
    this.devmemLock = new Mutex(`hmm_dmirror${minor}->devmem_lock`, LOCK_CLASSES.devmem_lock);
    this.lock = new Spinlock(`hmm_dmirror${minor}->lock`, LOCK_CLASSES.mdevice_lock);
    this.path = `/dev/hmm_dmirror${minor}`;
  }

  toString(): string {
    return `hmm_dmirror${this.minor}`;
  }

  /** The free_pages list as an array, top first (for tests and debugging: O(n)). */
  get freePages(): number[] {
    return this.walk(this.freePagesHead);
  }

  /** The free_folios list as an array, top first (for tests and debugging: O(n)). */
  get freeFolios(): number[] {
    return this.walk(this.freeFoliosHead);
  }

  private walk(head: number): number[] {
    const out: number[] = [];
    const zdd = this.mod.k.pages.zdd;
    for (let pfn = head; pfn !== 0; pfn = zdd[pfn]) out.push(pfn);
    return out;
  }
}

/** Push a free device page (large: a folio head) on its list: page->zone_device_data = list; list = page. Lock held. */
function pushFree(mdevice: DmirrorDevice, pfn: number, large: boolean): void {
  const zdd = mdevice.mod.k.pages.zdd;
  if (large) {
    zdd[pfn] = mdevice.freeFoliosHead;
    mdevice.freeFoliosHead = pfn;
    mdevice.nrFreeFolios++;
  } else {
    zdd[pfn] = mdevice.freePagesHead;
    mdevice.freePagesHead = pfn;
    mdevice.nrFreePages++;
  }
}

/** Pop the top of a free list, or 0 (NULL) if it is empty. Lock held. */
function popFree(mdevice: DmirrorDevice, large: boolean): number {
  const zdd = mdevice.mod.k.pages.zdd;
  const pfn = large ? mdevice.freeFoliosHead : mdevice.freePagesHead;
  if (pfn === 0) return 0;
  if (large) {
    mdevice.freeFoliosHead = zdd[pfn];
    mdevice.nrFreeFolios--;
  } else {
    mdevice.freePagesHead = zdd[pfn];
    mdevice.nrFreePages--;
  }
  return pfn;
}

/** The k.driverData key of test_hmm's static data (the TestHmm of a machine). */
export const TEST_HMM_DATA = 'test_hmm';

/** The loaded test_hmm module of a machine (its static data), or null. */
export function testHmmModule(k: Kernel): TestHmm | null {
  return (k.driverData.get(TEST_HMM_DATA) as TestHmm | undefined) ?? null;
}

/** The loaded module: devices, the mirror registry (ids stored in zone_device_data), SPM ranges. */
export class TestHmm {
  readonly devices: DmirrorDevice[] = [];
  readonly mirrors = new Map<number, Dmirror>();
  nextMirrorId = 1;
  /** spm_addr_dev0 / spm_addr_dev1 (physical byte addresses), 0 when unset. */
  spmAddrDev0 = 0;
  spmAddrDev1 = 0;
  /** Private-memory regions given back by release_mem_region(), reused by request_free_mem_region(). */
  readonly releasedRegions: PhysRange[] = [];
  /**
   * One freed bounce buffer kept for reuse by dmirror_bounce_init() (the
   * model's vmalloc cache: vmalloc memory is not zeroed), or null.
   */
  bounceCache: Uint8Array | null = null;
  /**
   * dmirror_devmem_ops. migrate_to_ram (dmirror_devmem_fault, migrate.ts) is
   * passed in by module init (index.ts), so this file does not import the
   * migration code that imports it.
   */
  readonly ops: DevPagemapOps;
  constructor(readonly k: Kernel, migrateToRam: (mod: TestHmm, vmf: VmFault) => K<number>) {
    this.ops = {
      folioFree: (head: number) => dmirrorDevmemFree(this, head),
      migrateToRam: (vmf) => migrateToRam(this, vmf),
      folioSplit: (head: number, tail: number) => dmirrorDevmemFolioSplit(this, head, tail),
    };
  }

  /** The mirror behind a zone_device_data value; a stale one is a use-after-free. */
  mirrorOf(id: number, what: string): Dmirror {
    const m = this.mirrors.get(id);
    if (m === undefined) throw new KernelBug('KASAN', `use-after-free of struct dmirror in ${what}`, `zone_device_data = dmirror #${id} (freed or never allocated)`);
    return m;
  }
}

/** Take a spinlock from a section that cannot yield (never contended in the model). */
function spinLockSync(k: Kernel, l: Spinlock): void {
  if (!l.trylock(k.sched)) throw new KernelBug('LOCKDEP', `${l.name} contended in a non-yielding section`);
}

/** dmirror_is_private_zone() */
export function dmirrorIsPrivateZone(mdevice: DmirrorDevice): boolean {
  return mdevice.zoneDeviceType === HMM_DMIRROR_MEMORY_DEVICE_PRIVATE;
}

/** dmirror_page_to_chunk(): container_of(page_pgmap(page), struct dmirror_chunk, pagemap). */
export function dmirrorPageToChunk(k: Kernel, pfn: number): DmirrorChunk {
  const pg = pagePgmap(k, pfn);
  if (!(pg instanceof DmirrorChunk)) pageBug(k, 'BUG', 'dmirror_page_to_chunk: page is not dmirror device memory', pfn, 'container_of(page_pgmap(page))');
  return pg;
}

/** dmirror_page_to_device() */
export function dmirrorPageToDevice(k: Kernel, pfn: number): DmirrorDevice {
  return dmirrorPageToChunk(k, pfn).mdevice;
}

/**
 * BACKING_PAGE(page): for a device-private page the system page that holds
 * its data (zone_device_data); a coherent page is its own backing page.
 * Returns 0 (NULL) if a private page has none.
 */
export function backingPage(k: Kernel, pfn: number): number {
  return isDevicePrivatePage(k, pfn) ? k.pages.zdd[pfn] : pfn;
}

/** Release a private chunk's physical range (release_mem_region) for reuse. */
function releaseMemRegion(mod: TestHmm, range: PhysRange): void {
  mod.releasedRegions.push({ start: range.start, end: range.end });
}

/** request_free_mem_region(&iomem_resource, DEVMEM_CHUNK_SIZE, "hmm_dmirror") */
function requestRegion(mod: TestHmm): PhysRange {
  const r = mod.releasedRegions.pop();
  return r ?? requestFreeMemRegion(mod.k, DEVMEM_CHUNK_SIZE);
}

/**
 * dmirror_allocate_chunk(mdevice, ppage, is_large): create one 256 MiB
 * chunk (request_free_mem_region for PRIVATE, the SPM address for COHERENT:
 * minor 2 uses spm_addr_dev1 and minor 3 spm_addr_dev0, as written),
 * memremap_pages() it, log "added new 256 MB chunk ...", and put its pages
 * on the free lists (PMD-aligned folios on free_folios if is_large, else
 * every page on free_pages). With `want` set, pops one page (or folio) for
 * the caller and returns its pfn.
 *
 * Locks: takes devmem_lock (mutex) then the device spinlock; may sleep.
 * Returns the page (want), 0 (!want), or -errno: -ENOMEM (no free folio /
 * page after all), memremap_pages' error (-EBUSY for an SPM range in use).
 */
export function* dmirrorAllocateChunk(mdevice: DmirrorDevice, want: boolean, isLarge: boolean): K<number> {
  const mod = mdevice.mod;
  const k = mod.k;
  const s = k.sched;
  let range: PhysRange;
  let type: number;
  switch (mdevice.zoneDeviceType) {
    case HMM_DMIRROR_MEMORY_DEVICE_PRIVATE:
      range = requestRegion(mod);
      type = MEMORY_DEVICE_PRIVATE;
      break;
    case HMM_DMIRROR_MEMORY_DEVICE_COHERENT: {
      const start = mdevice.minor - 2 ? mod.spmAddrDev0 : mod.spmAddrDev1;
      range = { start, end: start + DEVMEM_CHUNK_SIZE - 1 };
      type = MEMORY_DEVICE_COHERENT;
      break;
    }
    default:
      return -EINVAL;
  }
  if (k.shouldFail('dmirror_allocate_chunk')) {
    // kzalloc(sizeof(*devmem)) returned NULL: err_release.
    if (type === MEMORY_DEVICE_PRIVATE) releaseMemRegion(mod, range);
    return -ENOMEM;
  }
  const devmem = new DmirrorChunk(type, range, mod.ops, mdevice);
  yield* mutexLock(s, mdevice.devmemLock);
  if (mdevice.devmemCount === mdevice.devmemCapacity) mdevice.devmemCapacity += DEVMEM_CHUNKS_RESERVE;
  const r = memremapPages(k, devmem);
  if (r < 0) {
    mdevice.devmemLock.unlock(s);
    if (type === MEMORY_DEVICE_PRIVATE) releaseMemRegion(mod, range);
    return r;
  }
  devmem.mdevice = mdevice;
  const pfnFirst = range.start / PAGE_SIZE;
  const pfnLast = pfnFirst + (range.end + 1 - range.start) / PAGE_SIZE;
  mdevice.devmemChunks[mdevice.devmemCount++] = devmem;
  mdevice.devmemLock.unlock(s);
  const mb = DEVMEM_CHUNK_SIZE / (1024 * 1024);
  k.printk.info(`added new ${mb} MB chunk (total ${mdevice.devmemCount} chunks, ${mdevice.devmemCount * mb} MB) PFNs [0x${pfnFirst.toString(16)} 0x${pfnLast.toString(16)})`);

  spinLockSync(k, mdevice.lock);
  for (let pfn = pfnFirst; pfn < pfnLast;) {
    if (isLarge && pfn % HPAGE_PMD_NR === 0 && pfn + HPAGE_PMD_NR <= pfnLast) {
      pushFree(mdevice, pfn, true);
      pfn += HPAGE_PMD_NR;
      continue;
    }
    pushFree(mdevice, pfn, false);
    pfn++;
  }
  let ret = 0;
  if (want) {
    ret = popFree(mdevice, isLarge);
    if (ret === 0) ret = -ENOMEM;
    else mdevice.calloc += isLarge ? HPAGE_PMD_NR : 1;
  }
  mdevice.lock.unlock(s);
  return ret;
}

/**
 * dmirror_devmem_alloc_page(dmirror, is_large): allocate one device page
 * (or a PMD-sized device folio). For PRIVATE, first a backing system folio
 * of the same order (GFP_HIGHUSER; failure -> NULL); then pop the free list,
 * growing the device by a chunk if it is empty. zone_device_folio_init()
 * makes it a locked folio with refcount 1 and pgmap references;
 * zone_device_data = the backing page (NULL for COHERENT).
 * Returns the device pfn, or -1 (NULL); the backing page is freed on failure.
 * May sleep (chunk allocation takes devmem_lock).
 */
export function* dmirrorDevmemAllocPage(dmirror: Dmirror, isLarge: boolean): K<number> {
  const r = dmirrorDevmemAllocPageNoWait(dmirror, isLarge);
  if (r !== ALLOC_MUST_SLEEP) return r;
  return yield* dmirrorDevmemAllocPageSlow(dmirror, isLarge);
}

/** dmirrorDevmemAllocPageNoWait(): the free list is empty; the allocation needs a new chunk (it sleeps). */
export const ALLOC_MUST_SLEEP = -2;

/**
 * dmirror_devmem_alloc_page() when it need not sleep: with a page (or
 * folio) on the free list it runs to the end, in the kernel's order
 * (backing page, then the free list) and returns what the kernel would;
 * with an empty free list it does nothing and returns ALLOC_MUST_SLEEP, and
 * the caller runs dmirrorDevmemAllocPage(). Per-page callers use it to skip
 * a generator per page: `let d = dmirrorDevmemAllocPageNoWait(dm, large);
 * if (d === ALLOC_MUST_SLEEP) d = yield* dmirrorDevmemAllocPage(dm, large)`.
 */
export function dmirrorDevmemAllocPageNoWait(dmirror: Dmirror, isLarge: boolean): number {
  const mdevice = dmirror.mdevice;
  if ((isLarge ? mdevice.freeFoliosHead : mdevice.freePagesHead) === 0) return ALLOC_MUST_SLEEP;
  const k = mdevice.mod.k;
  const order = isLarge ? HPAGE_PMD_ORDER : 0;
  const rpage = dmirrorAllocBacking(mdevice, order);
  if (rpage < 0) return -1;
  spinLockSync(k, mdevice.lock);
  const dpage = popFree(mdevice, isLarge);
  mdevice.calloc += 1 << order;
  mdevice.lock.unlock(k.sched);
  dmirrorInitDevicePage(k, dpage, order, rpage);
  return dpage;
}

/** dmirror_devmem_alloc_page() with an empty free list: the backing page, then a new chunk (sleeps on devmem_lock). */
function* dmirrorDevmemAllocPageSlow(dmirror: Dmirror, isLarge: boolean): K<number> {
  const mdevice = dmirror.mdevice;
  const k = mdevice.mod.k;
  const order = isLarge ? HPAGE_PMD_ORDER : 0;
  const rpage = dmirrorAllocBacking(mdevice, order);
  if (rpage < 0) return -1;
  const dpage = yield* dmirrorAllocateChunk(mdevice, true, isLarge);
  if (dpage <= 0) {
    if (rpage) folioPut(k, rpage);
    return -1;
  }
  dmirrorInitDevicePage(k, dpage, order, rpage);
  return dpage;
}

/** The backing system folio of a private device allocation (GFP_HIGHUSER): its pfn, 0 for coherent memory (none), -1 on failure. */
function dmirrorAllocBacking(mdevice: DmirrorDevice, order: number): number {
  if (!dmirrorIsPrivateZone(mdevice)) return 0;
  return mdevice.mod.k.buddy.alloc(order, GFP_HIGHUSER_MOVABLE, 'dmirror_devmem_alloc_page');
}

/** zone_device_folio_init() of a device page just taken, and its zone_device_data = the backing page. */
function dmirrorInitDevicePage(k: Kernel, dpage: number, order: number, rpage: number): void {
  zoneDeviceFolioInit(k, dpage, order);
  k.pages.zdd[dpage] = rpage;
}

/**
 * dmirror_devmem_free(folio) = pgmap->ops->folio_free: the last reference
 * to a device folio is gone. Frees the backing system folio (PRIVATE) and,
 * unless the chunk is being removed, pushes the page (order 0) or folio
 * back on the device's free list. Called from folio_put(): must not sleep.
 */
export function dmirrorDevmemFree(mod: TestHmm, head: number): void {
  const k = mod.k;
  const rpage = backingPage(k, head);
  const order = rpage ? k.pages.order[k.pages.folioPfn(rpage)] : k.pages.order[head];
  if (rpage !== head && rpage !== 0) {
    folioPut(k, rpage); /* __free_pages(rpage, order): the driver holds its only reference */
  }
  const chunk = dmirrorPageToChunk(k, head);
  const mdevice = chunk.mdevice;
  spinLockSync(k, mdevice.lock);
  if (!chunk.remove) {
    mdevice.cfree += 1 << order;
    pushFree(mdevice, head, order !== 0);
  }
  mdevice.lock.unlock(k.sched);
}

/**
 * dmirror_devmem_folio_split(head, tail) = pgmap->ops->folio_split: a
 * device folio is being split into order-0 folios. Each tail gets the
 * matching page of the backing folio as its zone_device_data, and that
 * backing page gets the mirror. The kernel's final call with tail == NULL
 * resets the backing folio's order (folio_reset_order + folio_init_count);
 * the model's core calls the op only for tails, so the backing folio is
 * split on the first tail: every backing page becomes an order-0 folio
 * with refcount 1 (the driver's reference), mapping cleared.
 */
export function dmirrorDevmemFolioSplit(mod: TestHmm, head: number, tail: number): void {
  const k = mod.k;
  const p = k.pages;
  const rpage = backingPage(k, head);
  if (!rpage) {
    p.zdd[tail] = 0;
    return;
  }
  const offset = tail - head;
  if (rpage !== head) {
    const rhead = p.folioPfn(rpage);
    const nr = 1 << p.order[rhead];
    if (nr > 1) {
      for (let i = 0; i < nr; i++) {
        p.order[rhead + i] = 0;
        p.flags[rhead + i] &= ~(PG_head | PG_tail);
        p.mapping[rhead + i] = 0;
        if (i > 0) p.refcount[rhead + i] = 1;
      }
    }
  }
  const rtail = rpage + offset;
  if (rpage !== head) p.zdd[tail] = rtail;
  p.zdd[rtail] = p.zdd[rpage];
  p.mapping[tail] = p.mapping[head];
}

/**
 * dmirror_device_evict_chunk(chunk): migrate every allocated page of the
 * chunk back to system memory with migrate_device_range(): for each
 * migratable entry allocate a system page (folio of the same order when
 * MIGRATE_PFN_COMPOUND, else one page with __GFP_NOFAIL), lock it, copy
 * the backing data, then migrate_device_pages() and
 * migrate_device_finalize(). Pages pinned or otherwise not migratable stay
 * (memunmap_pages will then wait for them). May sleep.
 */
export function* dmirrorDeviceEvictChunk(chunk: DmirrorChunk): K<void> {
  const k = chunk.mdevice.mod.k;
  const startPfn = chunk.range.start / PAGE_SIZE;
  const endPfn = Math.floor(chunk.range.end / PAGE_SIZE);
  const npages = endPfn - startPfn + 1;
  const src = new Float64Array(npages);
  const dst = new Float64Array(npages);
  yield* migrateDeviceRange(k, src, startPfn, npages);
  for (let i = 0; i < npages; i++) {
    let spage = migratePfnToPage(src[i]);
    if (spage < 0 || !mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) continue;
    if (k.warnOnPage(!isDevicePrivatePage(k, spage) && !isDeviceCoherentPage(k, spage), spage, 'dmirror_device_evict_chunk: WARN_ON(!is_device_private_page(spage) && !is_device_coherent_page(spage))')) continue;
    let order = k.pages.order[spage];
    spage = backingPage(k, spage);
    let dpage: number;
    if (mpfnHas(src[i], MIGRATE_PFN_COMPOUND)) {
      dpage = k.buddy.alloc(order, GFP_HIGHUSER_MOVABLE, 'dmirror_device_evict_chunk');
      if (dpage < 0) throw new KernelBug('BUG', 'dmirror_device_evict_chunk: folio_alloc failed: NULL pointer dereference in folio_page()', `order ${order}`);
    } else {
      dpage = k.buddy.alloc(0, GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL, 'dmirror_device_evict_chunk');
      order = 0;
    }
    yield* folioLockQuick(k, dpage);
    let d = migratePfn(dpage);
    if (mpfnHas(src[i], MIGRATE_PFN_WRITE)) d = mpfnSet(d, MIGRATE_PFN_WRITE);
    if (order) d = mpfnSet(d, MIGRATE_PFN_COMPOUND);
    dst[i] = d;
    k.contents.copyRange(dpage, spage, 1 << order); /* folio_copy() */
  }
  yield* migrateDevicePages(k, src, dst, npages);
  yield* migrateDeviceFinalize(k, src, dst, npages);
}

/** dmirror_remove_free_pages(devmem): take the chunk's pages off the free lists (spinlock held). */
function dmirrorRemoveFreePages(devmem: DmirrorChunk): void {
  const mdevice = devmem.mdevice;
  const first = devmem.firstPfn;
  const end = devmem.endPfn();
  const zdd = mdevice.mod.k.pages.zdd;
  // Unlink every page of the chunk from both lists, keeping the others' order.
  for (const large of [false, true]) {
    let head = 0;
    let tail = 0;
    let n = 0;
    for (let pfn = large ? mdevice.freeFoliosHead : mdevice.freePagesHead; pfn !== 0;) {
      const next = zdd[pfn];
      if (pfn < first || pfn >= end) {
        if (tail === 0) head = pfn;
        else zdd[tail] = pfn;
        tail = pfn;
        n++;
      }
      pfn = next;
    }
    if (tail !== 0) zdd[tail] = 0;
    if (large) {
      mdevice.freeFoliosHead = head;
      mdevice.nrFreeFolios = n;
    } else {
      mdevice.freePagesHead = head;
      mdevice.nrFreePages = n;
    }
  }
}

/**
 * dmirror_device_remove_chunks(mdevice) (HMM_DMIRROR_RELEASE and device
 * release): under devmem_lock, for every chunk: mark it removed and take
 * its pages off the free lists (spinlock), evict it, memunmap_pages() (waits
 * for every page reference: a HANG if pages remain), release the region
 * (PRIVATE). Then reset the chunk array and free lists; the next
 * allocation creates a new chunk. With the historical switch
 * release_without_eviction the eviction step is skipped (as before "nouveau/dmem: evict device
 * private memory during release"; mm/memremap.c:memunmap_pages()).
 */
export function* dmirrorDeviceRemoveChunks(mdevice: DmirrorDevice): K<void> {
  const k = mdevice.mod.k;
  const s = k.sched;
  yield* mutexLock(s, mdevice.devmemLock);
  for (let i = 0; i < mdevice.devmemCount; i++) {
    const devmem = mdevice.devmemChunks[i];
    spinLockSync(k, mdevice.lock);
    devmem.remove = true;
    dmirrorRemoveFreePages(devmem);
    mdevice.lock.unlock(s);
    if (!k.config.historical.release_without_eviction) yield* dmirrorDeviceEvictChunk(devmem);
    yield* memunmapPages(k, devmem);
    if (devmem.type === MEMORY_DEVICE_PRIVATE) releaseMemRegion(mdevice.mod, devmem.range);
  }
  mdevice.devmemCount = 0;
  mdevice.devmemCapacity = 0;
  mdevice.freePagesHead = 0;
  mdevice.freeFoliosHead = 0;
  mdevice.nrFreePages = 0;
  mdevice.nrFreeFolios = 0;
  mdevice.devmemChunks = [];
  mdevice.devmemLock.unlock(s);
}

/** Pages of a device currently allocated (calloc - cfree is the kernel's view; this counts chunk pages in use). */
export function dmirrorDevicePagesInUse(mdevice: DmirrorDevice): number {
  let total = 0;
  for (let i = 0; i < mdevice.devmemCount; i++) total += mdevice.devmemChunks[i].nrPages;
  const free = mdevice.nrFreePages + mdevice.nrFreeFolios * HPAGE_PMD_NR;
  return total - free;
}

