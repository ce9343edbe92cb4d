// SPDX-License-Identifier: GPL-2.0-only
/**
 * get_user_pages / pin_user_pages and GUP-fast (mm/gup.c).
 *
 * `pages` arrays are Float64Array of pfns ("struct page *"); 0 is NULL (pfn
 * 0 is never a valid page in the model). Each array call takes an element
 * offset where the kernel would pass `pages + i`, so no subarrays are made.
 *
 * Reference and pin accounting (try_grab_folio / gup_put_folio):
 *  - FOLL_GET: folio refcount += refs.
 *  - FOLL_PIN: the shared zero page takes nothing and is not counted; a
 *    large folio gets refcount += refs and _pincount += refs; a small one
 *    refcount += refs * GUP_PIN_COUNTING_BIAS (1024). vmstat
 *    nr_foll_pin_acquired += refs; unpinning adds to nr_foll_pin_released,
 *    so the two are equal at rest.
 *  - The first FOLL_PIN on an mm sets MMF_HAS_PINNED for good.
 *
 * FOLL_PIN may only pin PageAnonExclusive anon pages: a read-only PTE of a
 * shared anon page (or, for FOLL_LONGTERM, a page-cache/zero page in a COW
 * mapping) makes follow_page return -EMLINK and GUP takes an unshare fault
 * (FAULT_FLAG_UNSHARE) first.
 *
 * Device pages: GUP never returns a device-private page (the PTE is not
 * present: the fault path migrates it back to RAM through
 * pgmap->ops->migrate_to_ram). Device-coherent pages are ordinary present
 * pages and can be pinned, but not long-term: FOLL_LONGTERM collects them,
 * converts each pin to a plain reference, migrates the page to system RAM
 * (migrate_device_coherent_folio) and re-runs the whole GUP (mainline since
 * 517f496e1e61, which reverted the 2025 change that left them pinned).
 *
 * Model simplifications, each documented where it matters:
 *  - mmap_lock is never dropped inside GUP: FOLL_UNLOCKABLE is not turned
 *    into FAULT_FLAG_ALLOW_RETRY, so VM_FAULT_RETRY/COMPLETED with a dropped
 *    lock cannot happen. The GUP-fast fallback takes mmap_lock for read
 *    around the slow path itself.
 *  - No CMA / ZONE_MOVABLE: only device-coherent (and fsdax) folios are
 *    "not longterm pinnable".
 *  - No fatal signals (-EINTR paths), no pkeys, no secretmem, no gate VMA.
 */
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../printk.js';
import { pageBug } from './debug.js';
import { EAGAIN, EBUSY, EEXIST, EFAULT, EHWPOISON, EINVAL, ENOMEM, EOPNOTSUPP, EOVERFLOW } from '../errno.js';
import type { K } from '../sched/sched.js';
import {
  type MmStruct, type Vma, MMF_HAS_PINNED, VM_ACCESS_FLAGS, VM_HUGETLB, VM_IO, VM_MAYREAD, VM_MAYWRITE, VM_PFNMAP, VM_READ,
  VM_SHARED, VM_SOFTDIRTY, VM_WRITE,
} from './mm_types.js';
import {
  type PmdTable, type PteTable, T_PRESENT, T_TABLE, _PAGE_DIRTY, _PAGE_PROTNONE, _PAGE_RW, _PAGE_SOFT_DIRTY,
  _PAGE_SPECIAL, _PAGE_UFFD_WP, pmdIndex, pmdTableOf, pteIndex, pmdAddrEnd, ptePresent, pmdTransHuge, pteType,
} from './pgtable.js';
import {
  GUP_PIN_COUNTING_BIAS, HPAGE_PMD_NR, PAGE_SIZE, PG_anon, PG_anon_exclusive, PG_dirty, PG_hugetlb,
  PG_lru,
} from './page.js';
import { folioGet, folioPut, folioPutRefs, kasanCheck } from './folio.js';
import { MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_FS_DAX } from './memremap.js';
import {
  FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_REMOTE, FAULT_FLAG_RETRY_NOWAIT, FAULT_FLAG_TRIED, FAULT_FLAG_UNSHARE,
  FAULT_FLAG_WRITE, VM_FAULT_COMPLETED, VM_FAULT_ERROR, VM_FAULT_HWPOISON, VM_FAULT_HWPOISON_LARGE, VM_FAULT_OOM,
  VM_FAULT_RETRY, VM_FAULT_SIGBUS, VM_FAULT_SIGSEGV,
} from './fault_types.js';
import { handleMmFault, vmNormalPage } from './memory.js';
import { splitHugePmdNotify } from './huge_memory.js';
import { migrateDeviceCoherentFolio } from './migrate_device.js';
import { mmapAssertLocked, mmapReadLock } from './mmap_lock.js';
import { lockdepAssertHeld, spinLock } from '../sched/locks.js';

/* FOLL_* (include/linux/mm_types.h; the internal ones from mm/internal.h), kernel values. */
export const FOLL_WRITE = 1 << 0;
export const FOLL_GET = 1 << 1;
export const FOLL_DUMP = 1 << 2;
export const FOLL_FORCE = 1 << 3;
export const FOLL_NOWAIT = 1 << 4;
export const FOLL_NOFAULT = 1 << 5;
export const FOLL_HWPOISON = 1 << 6;
export const FOLL_ANON = 1 << 7;
export const FOLL_LONGTERM = 1 << 8;
export const FOLL_SPLIT_PMD = 1 << 9;
export const FOLL_PCI_P2PDMA = 1 << 10;
export const FOLL_INTERRUPTIBLE = 1 << 11;
export const FOLL_HONOR_NUMA_FAULT = 1 << 12;
export const FOLL_TOUCH = 1 << 16;
export const FOLL_TRIED = 1 << 17;
export const FOLL_REMOTE = 1 << 18;
export const FOLL_PIN = 1 << 19;
export const FOLL_FAST_ONLY = 1 << 20;
export const FOLL_UNLOCKABLE = 1 << 21;
export const FOLL_MADV_POPULATE = 1 << 22;

export const INTERNAL_GUP_FLAGS = FOLL_TOUCH | FOLL_TRIED | FOLL_REMOTE | FOLL_PIN | FOLL_FAST_ONLY | FOLL_UNLOCKABLE | FOLL_MADV_POPULATE;
const GUP_FAST_ALLOWED = FOLL_WRITE | FOLL_LONGTERM | FOLL_FORCE | FOLL_PIN | FOLL_GET | FOLL_FAST_ONLY | FOLL_NOFAULT | FOLL_PCI_P2PDMA | FOLL_HONOR_NUMA_FAULT;

export { GUP_PIN_COUNTING_BIAS };

/** EMLINK (31): follow_page's "unshare first" (not in errno.ts: internal to GUP). */
const EMLINK = 31;

/** Restarts of one address (fault, follow, fault...) before the model reports a livelock. */
const GUP_LIVELOCK_SPINS = 10000;
/** __gup_longterm_locked() -EAGAIN rounds before the model reports a livelock (the kernel loops). */
const GUP_LONGTERM_MAX_ROUNDS = 1000;

/* ---------------------------------------------------------------------- */
/* folio predicates                                                        */

/** is_cow_mapping(): private and may become writable. */
export function isCowMapping(vmFlags: number): boolean {
  return (vmFlags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
}

function pgmapType(k: Kernel, pfn: number): number {
  const g = k.pages.pgmap[pfn];
  return g === 0 ? 0 : k.pgmaps[g]?.type ?? 0;
}

/**
 * folio_is_longterm_pinnable(): the zero page yes; device-coherent and
 * fsdax folios no; everything else yes (the model has no CMA or
 * ZONE_MOVABLE).
 */
export function folioIsLongtermPinnable(k: Kernel, head: number): boolean {
  if (head === k.zeroPfn) return true;
  const t = pgmapType(k, head);
  if (t === MEMORY_DEVICE_COHERENT || t === MEMORY_DEVICE_FS_DAX) return false;
  return true;
}

/** vma_soft_dirty_enabled(): soft-dirty tracking is armed (VM_SOFTDIRTY clear). */
function vmaSoftDirtyEnabled(vma: Vma): boolean {
  return (vma.flags & VM_SOFTDIRTY) === 0;
}

/**
 * gup_must_unshare(vma, flags, page): a read-only R/O FOLL_PIN of this page
 * must first unshare it. vma === null is the GUP-fast caller. The caller
 * looks at the page under the PTL (slow path) or with the mapping's
 * reference grabbed (GUP-fast); takes no reference or lock itself.
 */
export function gupMustUnshare(k: Kernel, vma: Vma | null, flags: number, page: number): boolean {
  if ((flags & (FOLL_WRITE | FOLL_PIN)) !== FOLL_PIN) return false;
  const p = k.pages;
  if (!(p.flags[p.folioPfn(page)] & PG_anon)) {
    if (!(flags & FOLL_LONGTERM)) return false;
    if (vma === null) return true;
    return isCowMapping(vma.flags);
  }
  return !(p.flags[page] & PG_anon_exclusive);
}

/** can_follow_write_pte() / can_follow_write_pmd(): may a FOLL_WRITE use this entry as is? */
function canFollowWrite(k: Kernel, vma: Vma, f: number, page: number, flags: number): boolean {
  if (f & _PAGE_RW) return true;
  if (!(flags & FOLL_FORCE)) return false;
  if (vma.flags & VM_SHARED) return false;
  if (!(vma.flags & VM_MAYWRITE)) return false;
  if (vma.flags & VM_WRITE) return false;
  if (page < 0) return false;
  const p = k.pages;
  if (!(p.flags[p.folioPfn(page)] & PG_anon) || !(p.flags[page] & PG_anon_exclusive)) return false;
  if (vmaSoftDirtyEnabled(vma) && !(f & _PAGE_SOFT_DIRTY)) return false;
  return !(f & _PAGE_UFFD_WP);
}

/** gup_can_follow_protnone(): NUMA-hinting entries are followed unless FOLL_HONOR_NUMA_FAULT on an accessible VMA. */
function gupCanFollowProtnone(vma: Vma, flags: number): boolean {
  if (!(flags & FOLL_HONOR_NUMA_FAULT)) return true;
  return (vma.flags & VM_ACCESS_FLAGS) === 0; /* !vma_is_accessible() */
}

/* ---------------------------------------------------------------------- */
/* grab / put                                                              */

/**
 * try_grab_folio(folio, refs, flags) (slow path: the caller holds the PTL
 * or pmd lock, so the mapped folio is stable). Adds `refs` FOLL_GET
 * references or FOLL_PIN pins (see the accounting rules at the top of the
 * file), which the caller owns after the lock is dropped and releases with
 * gupPutFolio() / unpinUserPage(s) / putPage(). Returns 0, or -ENOMEM when
 * the refcount is already zero (WARN, nothing taken).
 */
export function tryGrabFolio(k: Kernel, head: number, refs: number, flags: number): number {
  const p = k.pages;
  if (k.warnOnPage(p.refcount[head] <= 0, head, 'try_grab_folio: folio_ref_count(folio) <= 0')) return -ENOMEM;
  if (flags & FOLL_GET) {
    kasanCheck(k, head, 'try_grab_folio');
    p.refcount[head] += refs;
  } else if (flags & FOLL_PIN) {
    if (head === k.zeroPfn) return 0;
    kasanCheck(k, head, 'try_grab_folio');
    if (p.order[head] !== 0) {
      p.refcount[head] += refs;
      p.pincount[head] += refs;
    } else {
      p.refcount[head] += refs * GUP_PIN_COUNTING_BIAS;
    }
    k.vmstat.nr_foll_pin_acquired += refs;
  }
  return 0;
}

/**
 * try_grab_folio_fast(page, refs, flags) (GUP-fast: nothing holds the page;
 * fails on a zero refcount). Returns the folio head or -1. FOLL_LONGTERM on
 * a folio that is not longterm pinnable fails (fall back to the slow path)
 * unless config.historical.gup_fast_longterm_coherent, where a
 * device-coherent folio is pinned (raised in the review of "mm: add zone device coherent type memory support" v6;
 * mainline: mm/gup.c:try_grab_folio_fast() refuses !folio_is_longterm_pinnable() with FOLL_LONGTERM; GUP-fast
 * bypassed check_and_migrate_movable_pages).
 */
function tryGrabFolioFast(k: Kernel, page: number, refs: number, flags: number): number {
  const p = k.pages;
  const head = p.folioPfn(page);
  if (k.warnOnPage(!(flags & (FOLL_GET | FOLL_PIN)), page, 'try_grab_folio_fast: neither FOLL_GET nor FOLL_PIN')) return -1;
  if ((flags & FOLL_PIN) && head === k.zeroPfn) return head;
  if (p.refcount[head] === 0) return -1;
  kasanCheck(k, head, 'try_grab_folio_fast');
  p.refcount[head] += refs;
  if (flags & FOLL_GET) return head;
  if ((flags & FOLL_LONGTERM) && !folioIsLongtermPinnable(k, head)) {
    const coherentBug = k.config.historical.gup_fast_longterm_coherent && pgmapType(k, head) === MEMORY_DEVICE_COHERENT;
    if (!coherentBug) {
      folioPutRefs(k, head, refs);
      return -1;
    }
  }
  if (p.order[head] !== 0) p.pincount[head] += refs;
  else p.refcount[head] += refs * (GUP_PIN_COUNTING_BIAS - 1);
  k.vmstat.nr_foll_pin_acquired += refs;
  return head;
}

/**
 * gup_put_folio(folio, refs, flags): undo try_grab_folio(): drop `refs`
 * FOLL_GET references or FOLL_PIN pins (counting nr_foll_pin_released).
 * No lock required. The last reference frees the folio (device folios go
 * back to their driver through ->folio_free). Pincount underflow is a
 * REFCOUNT bug.
 */
export function gupPutFolio(k: Kernel, head: number, refs: number, flags: number): void {
  const p = k.pages;
  if (flags & FOLL_PIN) {
    if (head === k.zeroPfn) return;
    kasanCheck(k, head, 'gup_put_folio');
    k.vmstat.nr_foll_pin_released += refs;
    if (p.order[head] !== 0) {
      if (p.pincount[head] < refs) pageBug(k, 'REFCOUNT', 'unpin_user_page: _pincount underflow', head, 'gup_put_folio');
      p.pincount[head] -= refs;
    } else {
      refs *= GUP_PIN_COUNTING_BIAS;
    }
  }
  folioPutRefs(k, head, refs);
}

/**
 * sanity_check_pinned_pages(): a pinned anon page must stay
 * PageAnonExclusive (else a COW could leave the DMA target stale). VM_BUG_ON.
 */
function sanityCheckPinnedPage(k: Kernel, pfn: number): void {
  const p = k.pages;
  const head = p.folioPfn(pfn);
  if (!(p.flags[head] & PG_anon)) return;
  const ok = p.order[head] === 0 || (p.flags[head] & PG_hugetlb)
    ? (p.flags[head] & PG_anon_exclusive) !== 0
    : (p.flags[head] & PG_anon_exclusive) !== 0 || (p.flags[pfn] & PG_anon_exclusive) !== 0;
  if (!ok) pageBug(k, 'BUG', 'sanity_check_pinned_pages: pinned anon page is not PageAnonExclusive', pfn, 'VM_BUG_ON_PAGE(!PageAnonExclusive(page))');
}

/**
 * unpin_user_page(page): drop one FOLL_PIN taken by pin_user_pages*().
 * No locks required. The zero page is ignored.
 */
export function unpinUserPage(k: Kernel, pfn: number): void {
  sanityCheckPinnedPage(k, pfn);
  gupPutFolio(k, k.pages.folioPfn(pfn), 1, FOLL_PIN);
}

/** unpin_folio(folio): drop one FOLL_PIN taken on the folio (gupPutFolio(folio, 1, FOLL_PIN)). No lock required. */
export function unpinFolio(k: Kernel, head: number): void {
  gupPutFolio(k, head, 1, FOLL_PIN);
}

/**
 * unpin_user_pages(pages, npages): unpin every non-NULL entry, batching
 * consecutive entries of one folio into one gup_put_folio(). Each entry
 * must hold a pin from pin_user_pages*(); no lock required; may free pages.
 */
export function unpinUserPages(k: Kernel, pages: Float64Array, npages: number, off = 0): void {
  const p = k.pages;
  for (let i = 0; i < npages; i++) if (pages[off + i] !== 0) sanityCheckPinnedPage(k, pages[off + i]);
  let i = 0;
  while (i < npages) {
    const pfn = pages[off + i];
    if (pfn === 0) {
      i++;
      continue;
    }
    const head = p.folioPfn(pfn);
    let nr = 1;
    while (i + nr < npages && pages[off + i + nr] !== 0 && p.folioPfn(pages[off + i + nr]) === head) nr++;
    gupPutFolio(k, head, nr, FOLL_PIN);
    i += nr;
  }
}

/**
 * unpin_user_pages_dirty_lock(pages, npages, make_dirty): as
 * unpin_user_pages(), marking each folio dirty first when asked (the
 * completion of a DMA write to the pages).
 */
export function unpinUserPagesDirtyLock(k: Kernel, pages: Float64Array, npages: number, makeDirty: boolean, off = 0): void {
  if (makeDirty) {
    for (let i = 0; i < npages; i++) {
      const pfn = pages[off + i];
      if (pfn !== 0 && pfn !== k.zeroPfn) k.pages.flags[k.pages.folioPfn(pfn)] |= PG_dirty;
    }
  }
  unpinUserPages(k, pages, npages, off);
}

/** put_page(): drop a FOLL_GET reference (get_user_pages*). No lock required; the last reference frees the page. */
export function putPage(k: Kernel, pfn: number): void {
  folioPut(k, pfn);
}

/* ---------------------------------------------------------------------- */
/* the slow path                                                           */

/**
 * check_vma_flags(vma, gup_flags): may GUP use this VMA? 0, -EFAULT
 * (VM_IO / VM_PFNMAP, FOLL_ANON on a file VMA, an access the VMA does not
 * allow even with FOLL_FORCE) or -EOPNOTSUPP (FOLL_LONGTERM on fsdax).
 * Caller holds mmap_lock (read); a pure check, nothing taken.
 */
export function checkVmaFlags(vma: Vma, flags: number): number {
  mmapAssertLocked(vma.mm, 'check_vma_flags');
  const vf = vma.flags;
  if (vf & (VM_IO | VM_PFNMAP)) return -EFAULT;
  if ((flags & FOLL_ANON) && !vma.isAnon()) return -EFAULT;
  if ((flags & FOLL_LONGTERM) && vma.file?.kind === 'device') return -EOPNOTSUPP; /* vma_is_fsdax() */
  if (flags & FOLL_WRITE) {
    // writable_file_mapping_allowed(): shmem/hugetlbfs need no dirty tracking, so always allowed.
    if (!(vf & VM_WRITE)) {
      if (!(flags & FOLL_FORCE)) return -EFAULT;
      if (vf & VM_HUGETLB) return -EFAULT;
      if (!isCowMapping(vf)) return -EFAULT;
    }
  } else if (!(vf & VM_READ)) {
    if (!(flags & FOLL_FORCE)) return -EFAULT;
    if (!(vf & VM_MAYREAD)) return -EFAULT;
  }
  return 0;
}

/** vm_fault_to_errno() */
function vmFaultToErrno(r: number, flags: number): number {
  if (r & VM_FAULT_OOM) return -ENOMEM;
  if (r & (VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE)) return flags & FOLL_HWPOISON ? -EHWPOISON : -EFAULT;
  if (r & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV)) return -EFAULT;
  return 0;
}

/**
 * struct follow_page_context: what a follow reports beyond the page.
 * `pageMask` is ctx->page_mask: 0 for a PTE-mapped page, HPAGE_PMD_NR - 1
 * for a PMD leaf (the caller then advances to the end of the huge page).
 * One per __get_user_pages() call, so concurrent callers never share it.
 */
interface FollowPageContext {
  pageMask: number;
}

/**
 * follow_page_pte() with the PTL held by the caller: the page, 0 (NULL: the
 * caller must fault), or -EMLINK (unshare fault), -EEXIST (no struct page),
 * -EFAULT (FOLL_DUMP), -ENOMEM (grab failed).
 */
function followPagePteLocked(k: Kernel, vma: Vma, addr: number, pt: PteTable, ti: number, flags: number, ctx: FollowPageContext): number {
  lockdepAssertHeld(k.sched, pt.ptl, 'follow_page_pte');
  const v = pt.v[ti];
  const f = pt.f[ti];
  if (!ptePresent(f)) return 0;
  if ((f & _PAGE_PROTNONE) && !gupCanFollowProtnone(vma, flags)) return 0;
  let page = vmNormalPage(k, vma, addr, v, f);
  if ((flags & FOLL_WRITE) && !canFollowWrite(k, vma, f, page, flags)) return 0;
  if (page < 0) {
    if (flags & FOLL_DUMP) return -EFAULT;
    if (v !== k.zeroPfn) return -EEXIST; /* follow_pfn_pte() */
    page = v;
  }
  if (!(f & _PAGE_RW) && gupMustUnshare(k, vma, flags, page)) return -EMLINK;
  const p = k.pages;
  const head = p.folioPfn(page);
  if ((flags & FOLL_PIN) && (p.flags[head] & PG_anon) && !(p.flags[page] & PG_anon_exclusive)) {
    pageBug(k, 'BUG', 'follow_page_pte: FOLL_PIN of a non-exclusive anon page', page, 'VM_BUG_ON_PAGE((flags & FOLL_PIN) && PageAnon(page) && !PageAnonExclusive(page))');
  }
  const r = tryGrabFolio(k, head, 1, flags);
  if (r) return r;
  if ((flags & FOLL_TOUCH) && (flags & FOLL_WRITE) && !(f & _PAGE_DIRTY) && page !== k.zeroPfn) p.flags[head] |= PG_dirty;
  ctx.pageMask = 0;
  return page;
}

/** follow_huge_pmd() with the pmd lock held: as followPagePteLocked for a PMD leaf. */
function followHugePmdLocked(k: Kernel, vma: Vma, addr: number, pmdT: PmdTable, pi: number, flags: number, ctx: FollowPageContext): number {
  lockdepAssertHeld(k.sched, pmdT.lock, 'follow_huge_pmd');
  const v = pmdT.v[pi];
  const f = pmdT.f[pi];
  if ((f & _PAGE_PROTNONE) && !gupCanFollowProtnone(vma, flags)) return 0;
  if ((flags & FOLL_WRITE) && !canFollowWrite(k, vma, f, v, flags)) return 0;
  if ((flags & FOLL_DUMP) && v === k.hugeZeroPfn) return -EFAULT;
  if (!(f & _PAGE_RW) && gupMustUnshare(k, vma, flags, v)) return -EMLINK;
  const p = k.pages;
  if ((flags & FOLL_PIN) && (p.flags[v] & PG_anon) && !(p.flags[v] & PG_anon_exclusive)) {
    pageBug(k, 'BUG', 'follow_huge_pmd: FOLL_PIN of a non-exclusive anon folio', v, 'VM_BUG_ON_PAGE(!PageAnonExclusive(page))');
  }
  const r = tryGrabFolio(k, v, 1, flags);
  if (r) return r;
  if ((flags & FOLL_TOUCH) && (flags & FOLL_WRITE) && v !== k.hugeZeroPfn) p.flags[v] |= PG_dirty;
  ctx.pageMask = HPAGE_PMD_NR - 1;
  return v + pteIndex(addr);
}

/**
 * faultin_page(vma, address, flags, unshare): handle_mm_fault for GUP.
 * Returns 0 (retry the follow), -EBUSY (FOLL_NOWAIT: would block), or the
 * fault's errno. mmap_lock stays held (see the top of the file).
 */
function* faultinPage(vma: Vma, addr: number, flags: number, unshare: boolean): K<number> {
  if (flags & FOLL_NOFAULT) return -EFAULT;
  let ff = 0;
  if (flags & FOLL_WRITE) ff |= FAULT_FLAG_WRITE;
  if (flags & FOLL_REMOTE) ff |= FAULT_FLAG_REMOTE;
  if (flags & FOLL_NOWAIT) ff |= FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_RETRY_NOWAIT;
  if (flags & FOLL_TRIED) ff |= FAULT_FLAG_TRIED;
  if (unshare) {
    ff |= FAULT_FLAG_UNSHARE;
    if (ff & FAULT_FLAG_WRITE) throw new KernelBug('BUG', 'faultin_page: unshare with FOLL_WRITE', `${vma}`);
  }
  const r = yield* handleMmFault(vma, addr, ff);
  if (r & VM_FAULT_COMPLETED) {
    vma.mm.kernel.printk.warn('faultin_page: VM_FAULT_COMPLETED without FAULT_FLAG_ALLOW_RETRY');
    return 0;
  }
  if (r & VM_FAULT_ERROR) {
    const e = vmFaultToErrno(r, flags);
    if (e) return e;
    throw new KernelBug('BUG', `faultin_page: VM_FAULT_ERROR 0x${r.toString(16)} without an errno`, `${vma}`);
  }
  if (r & VM_FAULT_RETRY) {
    // FOLL_NOWAIT: the fault would have had to wait. Otherwise the model's
    // fault path returned RETRY without dropping mmap_lock (a busy device
    // page): the kernel returns 0 there and GUP retries the follow.
    if (flags & FOLL_NOWAIT) return -EBUSY;
    return 0;
  }
  return 0;
}

/**
 * __get_user_pages(): follow (and fault in) each page of [start, start +
 * nr pages). Caller holds mmap_lock for read. Returns the number of pages
 * done (> 0, possibly short) or, when none, 0 / -errno.
 */
function* __getUserPages(mm: MmStruct, start: number, nr: number, flags: number, pages: Float64Array | null, off: number): K<number> {
  mmapAssertLocked(mm, '__get_user_pages');
  const k = mm.kernel;
  const s = k.sched;
  if (nr === 0) return 0;
  start -= start % PAGE_SIZE;
  let vma: Vma | null = null;
  let i = 0;
  let ret = 0;
  let spins = 0;
  const ctx: FollowPageContext = { pageMask: 0 };
  outer: while (nr > 0) {
    if (vma === null || start >= vma.end) {
      vma = mm.vmaLookup(start); /* gup_vma_lookup(): no stack expansion */
      if (vma === null) {
        ret = -EFAULT;
        break;
      }
      ret = checkVmaFlags(vma, flags);
      if (ret) break;
    }
    if (s.exploring) yield s.point('gup: cond_resched', start);
    let page: number;
    for (;;) {
      page = 0;
      const pmdT = pmdTableOf(mm.pgd, start, false);
      if (pmdT !== null) {
        const pi = pmdIndex(start);
        const t = pteType(pmdT.f[pi]);
        if (t === T_TABLE) {
          const pt = pmdT.pte[pi]!;
          yield* spinLock(s, pt.ptl);
          if (pmdT.pte[pi] !== pt) {
            pt.ptl.unlock(s);
            continue; /* pte_offset_map_lock() raced with a table change */
          }
          page = followPagePteLocked(k, vma, start, pt, pteIndex(start), flags, ctx);
          pt.ptl.unlock(s);
        } else if (t === T_PRESENT) {
          if ((flags & FOLL_SPLIT_PMD) && !(vma.flags & VM_HUGETLB)) {
            yield* splitHugePmdNotify(vma, pmdT, pi, start);
            continue;
          }
          yield* spinLock(s, pmdT.lock);
          if (!pmdTransHuge(pmdT.f[pi])) {
            pmdT.lock.unlock(s);
            continue;
          }
          page = followHugePmdLocked(k, vma, start, pmdT, pi, flags, ctx);
          pmdT.lock.unlock(s);
        }
        /* none, migration, device-private, device-exclusive...: NULL -> fault */
      }
      if (page !== 0 && page !== -EMLINK) break;
      if (++spins > GUP_LIVELOCK_SPINS) throw new KernelBug('HANG', `__get_user_pages: no progress at 0x${start.toString(16)} after ${spins} faults (livelock)`, `${vma}`);
      const r = yield* faultinPage(vma, start, flags, page === -EMLINK);
      if (r === 0) continue;
      if (r === -EBUSY || r === -EAGAIN) ret = 0;
      else ret = r;
      break outer;
    }
    if (page === -EEXIST) {
      if (pages !== null) {
        ret = -EEXIST;
        break;
      }
      ctx.pageMask = 0; /* no page: skip it */
    } else if (page < 0) {
      ret = page;
      break;
    }
    spins = 0;
    let increm = 1 + (~Math.floor(start / PAGE_SIZE) & ctx.pageMask);
    if (increm > nr) increm = nr;
    if (pages !== null && page > 0) {
      if (increm > 1) {
        const head = k.pages.folioPfn(page);
        if (tryGrabFolio(k, head, increm - 1, flags)) {
          gupPutFolio(k, head, 1, flags);
          k.printk.warn('__get_user_pages: try_grab_folio of the tail pages failed');
          ret = -EFAULT;
          break;
        }
      }
      for (let j = 0; j < increm; j++) pages[off + i + j] = page + j;
    }
    i += increm;
    start += increm * PAGE_SIZE;
    nr -= increm;
  }
  return i ? i : ret;
}

/**
 * __get_user_pages_locked() with the caller holding mmap_lock (locked=1,
 * no FOLL_UNLOCKABLE). Adds FOLL_GET when pages are wanted without
 * FOLL_PIN; FOLL_PIN sets MMF_HAS_PINNED. Returns pages done or -errno;
 * nothing done without FOLL_NOWAIT is a WARN and -EFAULT.
 */
function* __getUserPagesLocked(mm: MmStruct, start: number, nr: number, pages: Float64Array | null, off: number, flags: number): K<number> {
  if (nr === 0) return 0;
  mmapAssertLocked(mm, 'get_user_pages');
  if (!mm.mmapLock.isLocked()) throw new KernelBug('LOCKDEP', 'get_user_pages: mmap_assert_locked(mm) failed', `mm #${mm.id}`);
  if (flags & FOLL_PIN) mm.flags |= MMF_HAS_PINNED;
  if (pages !== null && !(flags & FOLL_PIN)) flags |= FOLL_GET;
  const done = yield* __getUserPages(mm, start, nr, flags, pages, off);
  if (done === 0 && !(flags & FOLL_NOWAIT)) {
    mm.kernel.printk.warn('__get_user_pages_locked: WARN_ON_ONCE(pages_done == 0 && !(flags & FOLL_NOWAIT))');
    return -EFAULT;
  }
  return done;
}

/**
 * collect_longterm_unpinnable_folios() + migrate_longterm_unpinnable_folios()
 * (check_and_migrate_movable_pages_or_folios): 0 if every folio of
 * pages[off, off+n) may stay pinned; else every pin is dropped, the
 * unpinnable folios are migrated (device-coherent ones through
 * migrate_device_coherent_folio) and -EAGAIN asks the caller to GUP again;
 * -EBUSY / -ENOMEM if migration failed (everything unpinned).
 */
function* checkAndMigrateMovablePages(k: Kernel, pages: Float64Array, off: number, n: number): K<number> {
  const p = k.pages;
  const movable: number[] = [];
  let collected = 0;
  let prev = -1;
  let drainAllow = true;
  for (let i = 0; i < n; i++) {
    const head = p.folioPfn(pages[off + i]);
    if (head === prev) continue;
    prev = head;
    if (folioIsLongtermPinnable(k, head)) continue;
    collected++;
    if (pgmapType(k, head) === MEMORY_DEVICE_COHERENT) continue;
    if (!(p.flags[head] & PG_lru) && drainAllow) {
      k.lru.drain();
      drainAllow = false;
    }
    if (k.lru.isolate(head)) movable.push(head);
  }
  if (collected === 0) return 0;
  let ret = 0;
  let i = 0;
  for (; i < n; i++) {
    const pfn = pages[off + i];
    if (pfn === 0) continue;
    const head = p.folioPfn(pfn);
    if (pgmapType(k, head) === MEMORY_DEVICE_COHERENT) {
      pages[off + i] = 0;
      // Migration fails on a pinned page: turn the pin into a plain reference.
      folioGet(k, head);
      gupPutFolio(k, head, 1, FOLL_PIN);
      const r = yield* migrateDeviceCoherentFolio(k, head);
      if (r) {
        ret = -EBUSY;
        break;
      }
      continue;
    }
    unpinFolio(k, head);
    pages[off + i] = 0;
  }
  if (ret === 0 && movable.length > 0) {
    // migrate_pages(MR_LONGTERM_PIN): the model has no movable zone, so the
    // only candidates are non-LRU folios that were never isolated.
    ret = -ENOMEM;
  }
  if (ret) {
    for (let j = 0; j < n; j++) {
      if (pages[off + j] !== 0) {
        unpinFolio(k, p.folioPfn(pages[off + j]));
        pages[off + j] = 0;
      }
    }
  }
  for (const f of movable) k.lru.putback(f);
  return ret ? ret : -EAGAIN;
}

/**
 * __gup_longterm_locked(): without FOLL_LONGTERM just
 * __get_user_pages_locked(); with it, GUP, then check/migrate, again until
 * every pinned folio may stay pinned. Caller holds mmap_lock for read.
 */
function* __gupLongtermLocked(mm: MmStruct, start: number, nr: number, pages: Float64Array | null, off: number, flags: number): K<number> {
  mmapAssertLocked(mm, '__gup_longterm_locked');
  if (!(flags & FOLL_LONGTERM)) return yield* __getUserPagesLocked(mm, start, nr, pages, off, flags);
  let n: number;
  let rc: number;
  let rounds = 0;
  do {
    n = yield* __getUserPagesLocked(mm, start, nr, pages, off, flags);
    if (n <= 0) {
      rc = n;
      break;
    }
    rc = yield* checkAndMigrateMovablePages(mm.kernel, pages!, off, n);
    if (rc === -EAGAIN && ++rounds > GUP_LONGTERM_MAX_ROUNDS) throw new KernelBug('HANG', `__gup_longterm_locked: unpinnable folios still present after ${rounds} migrate rounds (the kernel loops forever)`);
  } while (rc === -EAGAIN);
  return rc ? rc : n;
}

/** is_valid_gup_args(): the checked flags with to_set OR-ed in, or -1 (with a WARN). */
function isValidGupArgs(k: Kernel, pages: Float64Array | null, flags: number, toSet: number): number {
  const w = (c: boolean, what: string): boolean => (c ? (k.printk.warn(`is_valid_gup_args: ${what}`), true) : false);
  if (w((flags & INTERNAL_GUP_FLAGS) !== 0, 'internal FOLL_ flags from the caller')) return -1;
  flags |= toSet;
  if (w((flags & (FOLL_PIN | FOLL_GET)) === (FOLL_PIN | FOLL_GET), 'FOLL_GET and FOLL_PIN')) return -1;
  if (w(!(flags & FOLL_PIN) && (flags & FOLL_LONGTERM) !== 0, 'FOLL_LONGTERM without FOLL_PIN')) return -1;
  if (w((flags & (FOLL_GET | FOLL_PIN)) !== 0 && pages === null, 'FOLL_GET/FOLL_PIN without pages')) return -1;
  if (w((flags & FOLL_LONGTERM) !== 0 && (flags & FOLL_PCI_P2PDMA) !== 0, 'FOLL_LONGTERM with FOLL_PCI_P2PDMA')) return -1;
  return flags;
}

/**
 * get_user_pages(start, nr_pages, gup_flags, pages) on `mm` (the kernel
 * uses current->mm). Caller holds mmap_lock for read, before and after.
 * Each returned page holds one reference (FOLL_GET): release with
 * putPage(). Returns the number of pages (maybe short), or -errno
 * (-EINVAL for invalid flags, -EFAULT, -ENOMEM, -EHWPOISON, -EEXIST).
 */
export function* getUserPages(mm: MmStruct, start: number, nr: number, gupFlags: number, pages: Float64Array | null, off = 0): K<number> {
  mmapAssertLocked(mm, 'get_user_pages');
  const flags = isValidGupArgs(mm.kernel, pages, gupFlags, FOLL_TOUCH);
  if (flags < 0) return -EINVAL;
  return yield* __getUserPagesLocked(mm, start, nr, pages, off, flags);
}

/**
 * get_user_pages_remote(mm, start, nr_pages, gup_flags, pages, NULL): as
 * getUserPages on another process's mm (FOLL_REMOTE). Caller holds
 * mm's mmap_lock for read.
 */
export function* getUserPagesRemote(mm: MmStruct, start: number, nr: number, gupFlags: number, pages: Float64Array | null, off = 0): K<number> {
  mmapAssertLocked(mm, 'get_user_pages_remote');
  const flags = isValidGupArgs(mm.kernel, pages, gupFlags, FOLL_TOUCH | FOLL_REMOTE);
  if (flags < 0) return -EINVAL;
  return yield* __getUserPagesLocked(mm, start, nr, pages, off, flags);
}

/**
 * get_user_page_vma_remote(mm, addr, gup_flags, &vma): one page with a
 * reference (FOLL_GET), or -errno. The VMA is mm.vmaLookup(addr) after the
 * call (the model returns only the pfn). Caller holds mmap_lock for read.
 */
export function* getUserPageVmaRemote(mm: MmStruct, addr: number, gupFlags: number): K<number> {
  mmapAssertLocked(mm, 'get_user_page_vma_remote');
  if (mm.kernel.warnOnPage((gupFlags & FOLL_NOWAIT) !== 0, -1, 'get_user_page_vma_remote: FOLL_NOWAIT')) return -EINVAL;
  const one = new Float64Array(1);
  const got = yield* getUserPagesRemote(mm, addr, 1, gupFlags, one);
  if (got < 0) return got;
  if (got === 0) return -EFAULT;
  if (mm.kernel.warnOnPage(mm.vmaLookup(addr) === null, one[0], 'get_user_page_vma_remote: no vma')) {
    putPage(mm.kernel, one[0]);
    return -EINVAL;
  }
  return one[0];
}

/**
 * pin_user_pages(start, nr_pages, gup_flags, pages) on `mm`. Caller holds
 * mmap_lock for read, before and after. Each page is FOLL_PIN-ned: release
 * with unpinUserPage(s). FOLL_LONGTERM migrates device-coherent pages to
 * system RAM first. Invalid flags: WARN and 0 (not -EINVAL, as the kernel).
 */
export function* pinUserPages(mm: MmStruct, start: number, nr: number, gupFlags: number, pages: Float64Array, off = 0): K<number> {
  mmapAssertLocked(mm, 'pin_user_pages');
  const flags = isValidGupArgs(mm.kernel, pages, gupFlags, FOLL_PIN);
  if (flags < 0) return 0;
  return yield* __gupLongtermLocked(mm, start, nr, pages, off, flags);
}

/** pin_user_pages_remote(mm, ...): pinUserPages with FOLL_TOUCH | FOLL_REMOTE. Same locking. */
export function* pinUserPagesRemote(mm: MmStruct, start: number, nr: number, gupFlags: number, pages: Float64Array, off = 0): K<number> {
  const flags = isValidGupArgs(mm.kernel, pages, gupFlags, FOLL_PIN | FOLL_TOUCH | FOLL_REMOTE);
  if (flags < 0) return 0;
  return yield* __gupLongtermLocked(mm, start, nr, pages, off, flags);
}

/* ---------------------------------------------------------------------- */
/* GUP-fast                                                                */

/** Drop what GUP-fast took for pages[off, off+nr) (undo_dev_pagemap / gup_fast_undo). */
function gupFastUndo(k: Kernel, pages: Float64Array, off: number, nr: number, flags: number): void {
  for (let i = 0; i < nr; i++) {
    gupPutFolio(k, k.pages.folioPfn(pages[off + i]), 1, flags);
    pages[off + i] = 0;
  }
}

/**
 * gup_fast(): the lockless walk (IRQs off in the kernel; the model walk
 * never yields). Only present, accessible, non-special entries; stops at
 * the first other one. Returns the number of pages grabbed into
 * pages[off...].
 */
function gupFast(mm: MmStruct, start: number, end: number, flags: number, pages: Float64Array, off: number): number {
  const k = mm.kernel;
  const write = (flags & FOLL_WRITE) !== 0;
  let seq = 0;
  if (flags & FOLL_PIN) {
    seq = mm.writeProtectSeq;
    if (seq & 1) return 0; /* fork is write-protecting: raw_seqcount_try_begin failed */
  }
  let nr = 0;
  let addr = start;
  walk: while (addr < end) {
    const pmdT = pmdTableOf(mm.pgd, addr, false);
    if (pmdT === null) break;
    const pi = pmdIndex(addr);
    const pf = pmdT.f[pi];
    const pt = pteType(pf);
    const next = pmdAddrEnd(addr, end);
    if (pt === T_TABLE) {
      const tbl = pmdT.pte[pi]!;
      for (; addr < next; addr += PAGE_SIZE) {
        const ti = pteIndex(addr);
        const f = tbl.f[ti];
        if (!ptePresent(f)) break walk; /* !pte_access_permitted: not present */
        if (f & _PAGE_PROTNONE) break walk;
        if (write && !(f & _PAGE_RW)) break walk;
        if (f & _PAGE_SPECIAL) break walk;
        const page = tbl.v[ti];
        const head = tryGrabFolioFast(k, page, 1, flags);
        if (head < 0) break walk;
        if (!(f & _PAGE_RW) && gupMustUnshare(k, null, flags, page)) {
          gupPutFolio(k, head, 1, flags);
          break walk;
        }
        pages[off + nr++] = page;
      }
    } else if (pt === T_PRESENT) {
      /* gup_fast_pmd_leaf() */
      if (pf & _PAGE_PROTNONE) break;
      if (write && !(pf & _PAGE_RW)) break;
      if (pf & _PAGE_SPECIAL) break;
      const head = pmdT.v[pi];
      const first = head + pteIndex(addr);
      const refs = (next - addr) / PAGE_SIZE;
      const got = tryGrabFolioFast(k, head, refs, flags);
      if (got < 0) break;
      if (!(pf & _PAGE_RW) && gupMustUnshare(k, null, flags, head)) {
        gupPutFolio(k, got, refs, flags);
        break;
      }
      for (let j = 0; j < refs; j++) pages[off + nr++] = first + j;
      addr = next;
    } else {
      break;
    }
  }
  if ((flags & FOLL_PIN) && mm.writeProtectSeq !== seq) {
    gupFastUndo(k, pages, off, nr, flags); /* fork ran: unpin everything */
    return 0;
  }
  return nr;
}

/**
 * gup_fast_fallback(): GUP-fast, then the slow path for the rest (taking
 * mmap_lock for read itself) unless FOLL_FAST_ONLY. Never an error after a
 * partial success.
 */
function* gupFastFallback(mm: MmStruct, start: number, nr: number, flags: number, pages: Float64Array, off: number): K<number> {
  const k = mm.kernel;
  if (flags & ~GUP_FAST_ALLOWED) {
    k.printk.warn(`gup_fast_fallback: unsupported gup_flags 0x${flags.toString(16)}`);
    return -EINVAL;
  }
  if (flags & FOLL_PIN) mm.flags |= MMF_HAS_PINNED;
  start -= start % PAGE_SIZE;
  const end = start + nr * PAGE_SIZE;
  if (end > 2 ** 64) return -EOVERFLOW;
  if (end > mm.taskSize) return -EFAULT; /* access_ok() */
  const nrPinned = gupFast(mm, start, end, flags, pages, off);
  if (nrPinned === nr || (flags & FOLL_FAST_ONLY)) return nrPinned;
  const s = k.sched;
  yield* mmapReadLock(mm);
  let ret: number;
  try {
    ret = yield* __gupLongtermLocked(mm, start + nrPinned * PAGE_SIZE, nr - nrPinned, pages, off + nrPinned, flags | FOLL_TOUCH);
  } finally {
    mm.mmapLock.readUnlock(s);
  }
  if (ret < 0) return nrPinned ? nrPinned : ret;
  return ret + nrPinned;
}

/**
 * get_user_pages_fast(start, nr_pages, gup_flags, pages) on `mm`: no lock
 * held on entry or return (mmap_lock is taken for read for the slow-path
 * fallback). Returns pages (each with a FOLL_GET reference) or -errno.
 */
export function* getUserPagesFast(mm: MmStruct, start: number, nr: number, gupFlags: number, pages: Float64Array, off = 0): K<number> {
  const flags = isValidGupArgs(mm.kernel, pages, gupFlags, FOLL_GET);
  if (flags < 0) return -EINVAL;
  return yield* gupFastFallback(mm, start, nr, flags, pages, off);
}

/**
 * pin_user_pages_fast(start, nr_pages, gup_flags, pages): as
 * getUserPagesFast with FOLL_PIN. With FOLL_LONGTERM a device-coherent page
 * makes GUP-fast stop and the slow path migrates it (unless
 * config.historical.gup_fast_longterm_coherent). Invalid flags: -EINVAL.
 */
export function* pinUserPagesFast(mm: MmStruct, start: number, nr: number, gupFlags: number, pages: Float64Array, off = 0): K<number> {
  const flags = isValidGupArgs(mm.kernel, pages, gupFlags, FOLL_PIN);
  if (flags < 0) return -EINVAL;
  return yield* gupFastFallback(mm, start, nr, flags, pages, off);
}

/**
 * get_user_pages_fast_only(): the lockless walk only, never sleeps, never
 * faults; a plain function. Returns the pages grabbed (0..nr) or -EINVAL.
 */
export function getUserPagesFastOnly(mm: MmStruct, start: number, nr: number, gupFlags: number, pages: Float64Array, off = 0): number {
  const flags = isValidGupArgs(mm.kernel, pages, gupFlags, FOLL_GET | FOLL_FAST_ONLY);
  if (flags < 0) return -EINVAL;
  start -= start % PAGE_SIZE;
  const end = start + nr * PAGE_SIZE;
  if (end > mm.taskSize) return -EFAULT;
  return gupFast(mm, start, end, flags, pages, off);
}
