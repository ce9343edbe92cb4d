// SPDX-License-Identifier: GPL-2.0-only
/**
 * ZONE_DEVICE: struct dev_pagemap, memremap_pages(), memunmap_pages(),
 * zone_device_page_init() / zone_device_folio_init(), free_zone_device_folio()
 * (mm/memremap.c, include/linux/memremap.h).
 *
 * Reference rules (mainline, after the 2022 fixes: 0dc45ca1ce18
 * "mm/memremap.c: take a pgmap reference on page allocation" and "mm: free
 * device private pages have zero refcount"):
 *  - a free device page has refcount 0 (memmap init sets 0);
 *  - zone_device_folio_init() takes one pgmap reference per page
 *    (percpu_ref_tryget_many; WARN if the pgmap is dying), sets the folio's
 *    refcount to 1 and locks it;
 *  - the last folio_put() calls free_zone_device_folio(): clears mapping and
 *    anon-exclusive, calls pgmap->ops->folio_free(), drops the references;
 *  - memunmap_pages() kills the reference and waits for it to reach zero.
 *    With pages still allocated that wait never ends in the kernel; here it
 *    is a scheduler wait, reported as a HANG when nothing can release them.
 *
 * Historical switches: devpage_free_refcount_one (free pages have count 1),
 * pgmap_bulk_ref (one bulk reference for the whole range, dropped by
 * memunmap_pages itself, so it finishes with pages in use).
 *
 * pgmap fields are set at memremap_pages() and read-only afterwards; the
 * reference count is atomic (percpu_ref).
 */
import { KernelBug } from '../printk.js';
import { pageBug } from './debug.js';
import type { Kernel } from '../kernel.js';
import { EINVAL, EBUSY, ENOMEM, ENXIO } from '../errno.js';
import {
  HPAGE_PMD_ORDER, PAGE_SIZE, PG_anon, PG_anon_exclusive, PG_head, PG_locked, PG_shadow_free, PG_tail,
} from './page.js';
import type { VmFault } from './mm_types.js';
import { type K, waitUntil } from '../sched/sched.js';

/**
 * enum memory_type (include/linux/memremap.h); 0 is invalid.
 * MEMORY_DEVICE_PRIVATE: device memory the CPU cannot address, mapped by
 * device-private swap entries; needs ->folio_free, ->migrate_to_ram, owner.
 */
export const MEMORY_DEVICE_PRIVATE = 1;
/** MEMORY_DEVICE_COHERENT: CPU-addressable device memory, mapped by present PTEs; needs ->folio_free and owner; never longterm-pinned. */
export const MEMORY_DEVICE_COHERENT = 2;
/** MEMORY_DEVICE_FS_DAX: persistent memory behind a DAX filesystem (not used by HMM). */
export const MEMORY_DEVICE_FS_DAX = 3;
/** MEMORY_DEVICE_GENERIC: memory with struct pages but no special handling; refused as a migration destination. */
export const MEMORY_DEVICE_GENERIC = 4;
/** MEMORY_DEVICE_PCI_P2PDMA: PCI BAR memory for peer-to-peer DMA. */
export const MEMORY_DEVICE_PCI_P2PDMA = 5;
export type MemoryType = 1 | 2 | 3 | 4 | 5;

const TYPE_NAMES = ['invalid', 'MEMORY_DEVICE_PRIVATE', 'MEMORY_DEVICE_COHERENT', 'MEMORY_DEVICE_FS_DAX', 'MEMORY_DEVICE_GENERIC', 'MEMORY_DEVICE_PCI_P2PDMA'];

/** struct dev_pagemap_ops */
export interface DevPagemapOps {
  /** ->folio_free(folio): the folio's last reference is gone (the page is free again). */
  folioFree?: (head: number) => void;
  /**
   * ->migrate_to_ram(vmf): the CPU faulted on a device-private entry.
   * vmf.page is the faulting page, referenced and locked by do_swap_page
   * (mainline). Returns VM_FAULT_* bits.
   */
  migrateToRam?: (vmf: VmFault) => K<number>;
  /** ->folio_split(head, tail): a device folio is being split (THP migration). */
  folioSplit?: (head: number, tail: number) => void;
}

/** struct range: [start, end] in bytes, end inclusive (as the kernel). */
export interface PhysRange {
  start: number;
  end: number;
}

/**
 * struct dev_pagemap. The driver fills type, range, ops and owner, then
 * calls memremapPages(), which sets id, firstPfn, nrPages and the reference
 * (1 for the pgmap itself, +1 per allocated page). The fields are read-only
 * afterwards; refCount is the percpu_ref (atomic in the kernel: no lock).
 * memunmapPages() kills it (dying) and waits for it to drop to zero (dead).
 */
export class DevPagemap {
  id = 0;
  /** Reference count (percpu_ref). */
  refCount = 0;
  /** percpu_ref_kill() done: new trygets fail. */
  dying = false;
  /** memunmap_pages() finished: the struct pages are gone. */
  dead = false;
  firstPfn = 0;
  nrPages = 0;
  /** Pages allocated by zone_device_folio_init() and not yet freed (debug_vm accounting). */
  allocated = 0;
  /** References held through get_dev_pagemap() (debug_vm accounting). */
  extraRefs = 0;
  constructor(
    public type: number,
    public range: PhysRange,
    public ops: DevPagemapOps,
    /** pgmap->owner: compared with migrate_vma.pgmap_owner and hmm_range.dev_private_owner. */
    public owner: unknown,
  ) {}

  typeName(): string {
    return TYPE_NAMES[this.type] ?? `type ${this.type}`;
  }

  endPfn(): number {
    return this.firstPfn + this.nrPages;
  }
}

/**
 * request_free_mem_region(): a free physical range of `size` bytes above
 * everything used so far, for device-private memory (which has no real
 * physical backing). Returns the range (end inclusive).
 */
export function requestFreeMemRegion(k: Kernel, size: number): PhysRange {
  const start = k.physTopPfn * PAGE_SIZE;
  k.physTopPfn += Math.ceil(size / PAGE_SIZE);
  return { start, end: start + size - 1 };
}

/**
 * memremap_pages(pgmap, nid): create struct pages for pgmap->range.
 * Checks (each -EINVAL, with a WARN as the kernel): type 0; PRIVATE without
 * ops->folio_free or ops->migrate_to_ram or owner; COHERENT without
 * ops->folio_free or owner; a range overlapping RAM or another pgmap
 * (-EBUSY); misaligned range. Pages start with refcount 0 (1 with
 * devpage_free_refcount_one). Returns the pgmap id (> 0) or -errno.
 */
export function memremapPages(k: Kernel, pgmap: DevPagemap): number {
  const ops = pgmap.ops;
  switch (pgmap.type) {
    case MEMORY_DEVICE_PRIVATE:
      if (!ops.folioFree) return k.printk.warn('memremap_pages: Missing folio_free method'), -EINVAL;
      if (!ops.migrateToRam) return k.printk.warn('memremap_pages: Missing migrate_to_ram method'), -EINVAL;
      if (!pgmap.owner) return k.printk.warn('memremap_pages: Missing owner'), -EINVAL;
      break;
    case MEMORY_DEVICE_COHERENT:
      if (!ops.folioFree) return k.printk.warn('memremap_pages: Missing folio_free method'), -EINVAL;
      if (!pgmap.owner) return k.printk.warn('memremap_pages: Missing owner'), -EINVAL;
      break;
    case MEMORY_DEVICE_FS_DAX:
    case MEMORY_DEVICE_GENERIC:
    case MEMORY_DEVICE_PCI_P2PDMA:
      break;
    default:
      k.printk.warn(`memremap_pages: Invalid pgmap type ${pgmap.type}`);
      return -EINVAL;
  }
  const { start, end } = pgmap.range;
  if (start % PAGE_SIZE !== 0 || (end + 1) % PAGE_SIZE !== 0 || end < start) return -EINVAL;
  const first = start / PAGE_SIZE;
  const nr = (end + 1 - start) / PAGE_SIZE;
  // pagemap_range(): a live pgmap at the range's first or last pfn is
  // "Conflicting mapping in same section" (WARN, -ENOMEM); a range over
  // System RAM is refused with -ENXIO (WARN_ONCE). A range that only
  // swallows another pgmap whole would fail later in the kernel
  // (the resource / xarray insert); the model refuses it with -EBUSY.
  const covers = (g: DevPagemap, pfn: number): boolean => !g.dead && pfn >= g.firstPfn && pfn < g.endPfn();
  for (const other of k.pgmaps) {
    if (other && (covers(other, first) || covers(other, first + nr - 1))) {
      k.printk.warn('Conflicting mapping in same section');
      return -ENOMEM;
    }
  }
  if (first < k.buddy.end) {
    k.printk.warn(`memremap_pages: attempted on System RAM region 0x${start.toString(16)}-0x${end.toString(16)}`);
    return -ENXIO;
  }
  for (const other of k.pgmaps) {
    if (other && !other.dead && first < other.endPfn() && other.firstPfn < first + nr) return -EBUSY;
  }
  if (first + nr > 0x7fffffff) return -ENOMEM;
  const p = k.pages;
  p.ensureCapacity(first + nr);
  k.contents.ensureCapacity(p.capacity);
  if (first + nr > k.physTopPfn) k.physTopPfn = first + nr;
  pgmap.id = k.pgmaps.length;
  if (pgmap.id > 0xffff) return -ENOMEM;
  k.pgmaps.push(pgmap);
  pgmap.firstPfn = first;
  pgmap.nrPages = nr;
  pgmap.dying = false;
  pgmap.dead = false;
  const initRef = k.config.historical.devpage_free_refcount_one ? 1 : 0;
  const end1 = first + nr;
  p.pgmap.fill(pgmap.id, first, end1);
  p.refcount.fill(initRef, first, end1);
  p.flags.fill(PG_shadow_free, first, end1);
  p.order.fill(0, first, end1);
  p.mapping.fill(0, first, end1);
  p.mapcount.fill(0, first, end1);
  p.entireMapcount.fill(0, first, end1);
  p.pincount.fill(0, first, end1);
  p.zdd.fill(0, first, end1);
  k.contents.discardRange(first, nr);
  // pagemap_range(): device-private memory gets struct pages only
  // (add_pages()), no direct map (arch_add_memory() is for the other
  // types): a kernel CPU access to its pages oopses (contents.ts).
  if (pgmap.type === MEMORY_DEVICE_PRIVATE) k.contents.setNoDirectMap(first, nr, true);
  // The kernel's percpu_ref starts at 1 (the initial reference that
  // memunmap_pages drops through percpu_ref_kill).
  pgmap.refCount = 1;
  if (k.config.historical.pgmap_bulk_ref) pgmap.refCount += nr;
  k.printk.info(`memremap_pages: ${pgmap.typeName()} pfns [0x${first.toString(16)}-0x${(first + nr).toString(16)}) pgmap #${pgmap.id}`);
  return pgmap.id;
}

/**
 * memunmap_pages(pgmap): kill the reference, wait for every page to be
 * freed (for the reference to drop to zero), then remove the struct pages.
 * Blocks forever in the kernel if pages are still allocated: here that wait
 * is a scheduler wait (a HANG when nothing can free them). With
 * pgmap_bulk_ref the bulk reference is dropped here and the wait succeeds
 * even with pages in use (the historical bug). Caller: the driver, in
 * process context, holding no page locks.
 */
export function* memunmapPages(k: Kernel, pgmap: DevPagemap): K<void> {
  if (k.tracer !== null && k.tracer.enter('memunmap_pages')) return yield* k.tracer.span('memunmap_pages', pgmap.id, memunmapPages(k, pgmap));
  if (pgmap.dead) throw new KernelBug('KASAN', 'memunmap_pages of a pgmap already unmapped', `pgmap #${pgmap.id}`);
  if (pgmap.dying) throw new KernelBug('BUG', 'memunmap_pages called twice', `pgmap #${pgmap.id}`);
  pgmap.dying = true;
  if (k.config.historical.pgmap_bulk_ref) pgmap.refCount -= pgmap.nrPages;
  pgmap.refCount--; // percpu_ref_kill drops the initial reference
  const s = k.sched;
  if (s.exploring) yield s.point('memunmap_pages wait', pgmap.id);
  yield* waitUntil(s, `memunmap_pages(pgmap #${pgmap.id}): wait_for_completion(&pgmap->done) with ${pgmap.refCount} page reference(s) outstanding`, () => pgmap.refCount <= 0, pgmap.id);
  pgmap.dead = true;
  k.printk.info(`memunmap_pages: pgmap #${pgmap.id} removed`);
}

/** percpu_ref_tryget_live() on the pgmap reference, n times. */
function pgmapTrygetMany(pgmap: DevPagemap, n: number): boolean {
  if (pgmap.dying || pgmap.dead) return false;
  pgmap.refCount += n;
  return true;
}

/**
 * zone_device_folio_init(folio, order) / zone_device_page_init(page): make a
 * free device page (refcount 0) into an allocated, locked folio with
 * refcount 1, taking one pgmap reference per page. Called by the driver's
 * allocator. WARNs if the pgmap is dying (the driver allocates after
 * memunmap_pages started) and if order is neither 0 nor HPAGE_PMD_ORDER.
 */
export function zoneDeviceFolioInit(k: Kernel, pfn: number, order = 0): void {
  const p = k.pages;
  const pgmap = k.pgmaps[p.pgmap[pfn]];
  if (pgmap === null || pgmap === undefined) pageBug(k, 'BUG', 'zone_device_page_init on a page that is not ZONE_DEVICE', pfn, 'zone_device_page_init');
  if (pgmap.dead) pageBug(k, 'KASAN', 'zone_device_page_init after memunmap_pages', pfn, 'use-after-free of pgmap');
  if (order !== 0 && order !== HPAGE_PMD_ORDER) k.printk.warn(`zone_device_folio_init: order ${order} (only PMD order is supported)`);
  const nr = 1 << order;
  if (pfn % nr !== 0) pageBug(k, 'BUG', 'zone_device_folio_init: folio not naturally aligned', pfn, 'alignment');
  const expect = k.config.historical.devpage_free_refcount_one ? 1 : 0;
  for (let i = 0; i < nr; i++) {
    if (p.refcount[pfn + i] !== expect || (p.flags[pfn + i] & PG_locked)) {
      pageBug(k, 'BUG', 'zone_device_page_init of a page that is not free', pfn + i, `VM_BUG_ON_PAGE(page_ref_count(page) != ${expect})`);
    }
  }
  pgmap.allocated += nr;
  if (!k.config.historical.pgmap_bulk_ref) {
    if (!pgmapTrygetMany(pgmap, nr)) k.warnOnPage(true, pfn, 'zone_device_page_init: percpu_ref_tryget_live(&pgmap->ref) failed (pgmap dying)');
  }
  if (nr === 1) {
    p.flags[pfn] = 0;
    p.order[pfn] = 0;
    p.mapcount[pfn] = 0;
    p.mapping[pfn] = 0;
  } else {
    // Typed-array fills for a large folio (a builtin call costs more than
    // four stores for one page).
    p.flags.fill(PG_tail, pfn, pfn + nr);
    p.flags[pfn] = PG_head;
    p.order.fill(order, pfn, pfn + nr);
    p.refcount.fill(0, pfn, pfn + nr);
    p.mapcount.fill(0, pfn, pfn + nr);
    p.mapping.fill(0, pfn, pfn + nr);
  }
  // Historically the free count was 1 and allocation took it to 2 (get_page()).
  p.refcount[pfn] = 1 + expect;
  p.entireMapcount[pfn] = 0;
  p.pincount[pfn] = 0;
  if (k.sched.lockdep !== null) k.sched.lockdep.folioAcquire(pfn, false, true); /* lock_page() of a new page */
  p.flags[pfn] |= PG_locked;
}

/**
 * zone_device_page_init(page): zoneDeviceFolioInit() of order 0. Called by
 * the driver's allocator on a free device page (refcount 0); returns with
 * the page locked, refcount 1 and one pgmap reference taken. The driver
 * unlocks it (or hands it, locked, to migrate_vma_pages() as a dst).
 */
export function zoneDevicePageInit(k: Kernel, pfn: number): void {
  zoneDeviceFolioInit(k, pfn, 0);
}

/**
 * free_zone_device_folio(): the last reference to a device folio is gone.
 * Clears anon-exclusive and mapping, calls pgmap->ops->folio_free() (PRIVATE
 * and COHERENT), and drops the folio's pgmap references. The folio's pages
 * are free again (refcount 0; 1 with devpage_free_refcount_one).
 * Called from folio_put() when the refcount reaches zero (never directly by
 * a driver); the folio must be unmapped (BUG otherwise) and unlocked; no
 * lock is held by the caller, and ->folio_free() runs without any.
 */
export function freeZoneDeviceFolio(k: Kernel, head: number): void {
  const p = k.pages;
  const pgmap = k.pgmaps[p.pgmap[head]];
  if (!pgmap) {
    k.warnOnPage(true, head, 'free_zone_device_folio: no pgmap');
    return;
  }
  if (p.folioMapped(head)) pageBug(k, 'BUG', 'Bad page state: freeing a mapped device page', head, 'free_zone_device_folio');
  const nr = 1 << p.order[head];
  if (nr === 1) p.mapping[head] = 0;
  else p.mapping.fill(0, head, head + nr);
  switch (pgmap.type) {
    case MEMORY_DEVICE_PRIVATE:
    case MEMORY_DEVICE_COHERENT: {
      if (!pgmap.ops.folioFree) {
        k.warnOnPage(true, head, 'free_zone_device_folio: no folio_free op');
        break;
      }
      // Clear anon state and mark free (KASAN shadow) before calling the
      // driver, which may reuse the pages.
      for (let i = 0; i < nr; i++) p.flags[head + i] = (p.flags[head + i] & ~(PG_anon | PG_anon_exclusive)) | PG_shadow_free;
      if (k.config.historical.devpage_free_refcount_one) p.refcount[head] = 1;
      pgmap.allocated -= nr;
      pgmap.ops.folioFree(head);
      if (!k.config.historical.pgmap_bulk_ref) pgmap.refCount -= nr;
      break;
    }
    case MEMORY_DEVICE_GENERIC:
      for (let i = 0; i < nr; i++) p.flags[head + i] &= ~(PG_anon | PG_anon_exclusive);
      p.refcount[head] = 1; /* folio_set_count(folio, 1): generic pages are never really freed */
      break;
    default:
      for (let i = 0; i < nr; i++) p.flags[head + i] = (p.flags[head + i] & ~(PG_anon | PG_anon_exclusive)) | PG_shadow_free;
      break;
  }
}

/** is_device_private_page(page): pfn's pgmap is MEMORY_DEVICE_PRIVATE. Needs no lock or reference (pgmap is stable while the page is). */
export function isDevicePrivatePage(k: Kernel, pfn: number): boolean {
  const g = k.pages.pgmap[pfn];
  return g !== 0 && k.pgmaps[g]!.type === MEMORY_DEVICE_PRIVATE;
}

/** is_device_coherent_page(page): pfn's pgmap is MEMORY_DEVICE_COHERENT. Needs no lock or reference. */
export function isDeviceCoherentPage(k: Kernel, pfn: number): boolean {
  const g = k.pages.pgmap[pfn];
  return g !== 0 && k.pgmaps[g]!.type === MEMORY_DEVICE_COHERENT;
}

/**
 * page_pgmap(page): the dev_pagemap of a ZONE_DEVICE pfn, or null for a
 * normal page. Takes no reference: the caller keeps the page (and so the
 * pgmap) alive, e.g. with a page reference or under the PTL.
 */
export function pagePgmap(k: Kernel, pfn: number): DevPagemap | null {
  const g = k.pages.pgmap[pfn];
  return g === 0 ? null : k.pgmaps[g];
}

/**
 * get_dev_pagemap(pfn): a reference on the live pgmap covering pfn, or null
 * (no pgmap, or it is dying: percpu_ref_tryget_live). The reference keeps
 * memunmap_pages() waiting until putDevPagemap(). No lock needed.
 */
export function getDevPagemap(k: Kernel, pfn: number): DevPagemap | null {
  const pgmap = pagePgmap(k, pfn);
  if (pgmap === null || !pgmapTrygetMany(pgmap, 1)) return null;
  pgmap.extraRefs++;
  return pgmap;
}

/** put_dev_pagemap(pgmap): drop a getDevPagemap() reference; the last one lets memunmap_pages() finish. Underflow is a REFCOUNT bug. */
export function putDevPagemap(k: Kernel, pgmap: DevPagemap): void {
  if (pgmap.refCount <= 0) throw new KernelBug('REFCOUNT', `put_dev_pagemap: pgmap #${pgmap.id} reference underflow`);
  pgmap.refCount--;
  pgmap.extraRefs--;
}
