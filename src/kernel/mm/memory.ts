// SPDX-License-Identifier: GPL-2.0-only
/**
 * The page fault handler (mm/memory.c): handle_mm_fault() and the handlers
 * it dispatches to: do_anonymous_page, do_fault (read / cow / shared),
 * do_wp_page (reuse or copy), do_swap_page (migration entries, device-private
 * entries -> pgmap->ops->migrate_to_ram, device-exclusive entries, hwpoison)
 * and the PMD-level cases in huge_memory.ts.
 *
 * Every handler is entered with mmap_lock held for read by the caller and
 * returns with it still held (the model has no VM_FAULT_RETRY lock drop; a
 * RETRY return just asks the caller to fault again). Entries are rechecked
 * under the PTL before they are changed (pte_same), so a racing thread under
 * the scheduler sees the kernel's outcomes.
 */
import { vmaAllocFolio } from './mpol_alloc.js';
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../printk.js';
import {
  type PteTable, T_DEVICE_EXCLUSIVE, T_HWPOISON, T_NONE, T_PRESENT, T_SWAP, T_TABLE, _PAGE_ACCESSED, _PAGE_DIRTY,
  _PAGE_RW, _PAGE_SPECIAL, _PAGE_PROTNONE, _PAGE_SOFT_DIRTY, _PAGE_UFFD_WP, isDevicePrivateType, isMigrationType,
  pmdIndex, pmdTableOf, pteIndex, pteTableAlloc, pteTableOf, ptePresent, pteNone, isDeviceExclusiveEntry, pteType,
} from './pgtable.js';
import { setPte, setPteFlags, mkPresent, carryBits } from './pte_ops.js';
import { pmdAllocFails, pteAllocFails } from './pgtable.js';
import { anonVmaPrepareFails } from './rmap.js';
import { AnonVma, type Vma, type VmFault, VM_ACCESS_FLAGS, VM_SHARED, VM_SOFTDIRTY, VM_WRITE, VM_HUGETLB } from './mm_types.js';
import { __GFP_ZERO } from './page_alloc.js';
import {
  folioGet, folioLock, folioPut, folioRefAdd, folioTryGet, folioTrylock, folioUnlock, folioTestAnon, folioTestLocked, kasanCheck,
} from './folio.js';
import { EBUSY } from '../errno.js';
import {
  folioAddNewAnonRmap, folioAddFileRmapPte, folioRemoveRmapPte, pageAnonExclusive, anonVmaPrepare,
} from './rmap.js';
import { PAGE_SIZE, PG_anon, PG_anon_exclusive, PG_dirty, PG_locked, PG_lru } from './page.js';
import { _PAGE_SWP_EXCLUSIVE } from './swap.js';
import { type K, waitUntil } from '../sched/sched.js';
import { lockdepAssertHeld, spinLock } from '../sched/locks.js';
import {
  doHugePmdAnonymousPage, doHugePmdWpPage, doHugePmdDevicePrivate, thpVmaAllowable, thpAnonMthpOrders, hugePmdSetAccessed,
} from './huge_memory.js';
import { migrationEntryWait, pmdMigrationEntryWait } from './migrate.js';
import { shmemGetFolio } from './shmem.js';
import { hugetlbFault } from './hugetlb.js';
import { pagePgmap } from './memremap.js';
import { MMU_NOTIFY_CLEAR, MMU_NOTIFY_EXCLUSIVE, mmuNotifierRangeInit, mmuNotifierInvalidateRangeStart, mmuNotifierInvalidateRangeEnd } from './mmu_notifier.js';
import { mmapAssertLocked, mmapAssertWriteLocked } from './mmap_lock.js';

/* The fault flags and VM_FAULT_* codes live in fault_types.ts (a header); re-exported for existing importers. */
export {
  FAULT_FLAG_WRITE, FAULT_FLAG_MKWRITE, FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_RETRY_NOWAIT, FAULT_FLAG_KILLABLE, FAULT_FLAG_TRIED, FAULT_FLAG_USER, FAULT_FLAG_REMOTE, FAULT_FLAG_INSTRUCTION, FAULT_FLAG_INTERRUPTIBLE, FAULT_FLAG_UNSHARE, FAULT_FLAG_ORIG_PTE_VALID, FAULT_FLAG_VMA_LOCK, VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_FAULT_MAJOR, VM_FAULT_HWPOISON, VM_FAULT_HWPOISON_LARGE, VM_FAULT_SIGSEGV, VM_FAULT_NOPAGE, VM_FAULT_LOCKED, VM_FAULT_RETRY, VM_FAULT_FALLBACK, VM_FAULT_DONE_COW, VM_FAULT_NEEDDSYNC, VM_FAULT_COMPLETED, VM_FAULT_ERROR,
} from './fault_types.js';
import {
  FAULT_FLAG_WRITE, FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_RETRY_NOWAIT, FAULT_FLAG_UNSHARE, VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_FAULT_HWPOISON, VM_FAULT_NOPAGE, VM_FAULT_RETRY, VM_FAULT_FALLBACK, VM_FAULT_ERROR,
} from './fault_types.js';

/**
 * vm_normal_page(): the struct page behind a present PTE, or -1 for special
 * mappings (the zero pfn, VM_PFNMAP pfns, _PAGE_SPECIAL entries).
 */
export function vmNormalPage(k: Kernel, _vma: Vma, _addr: number, v: number, f: number): number {
  if (!ptePresent(f)) return -1;
  if (f & _PAGE_SPECIAL) return -1;
  if (v === k.zeroPfn) return -1;
  return v;
}

/** is_zero_pfn() */
export function isZeroPfn(k: Kernel, pfn: number): boolean {
  return pfn === k.zeroPfn;
}

/**
 * handle_mm_fault(vma, address, flags): resolve a fault at address.
 * Caller holds mmap_lock for read (and has checked the access against the
 * VMA's permissions, as arch fault code and GUP do). Returns 0 on success,
 * or VM_FAULT_* bits (OOM, SIGBUS, HWPOISON, RETRY...).
 */
export function* handleMmFault(vma: Vma, address: number, flags: number): K<number> {
  if (vma.mm.kernel.tracer !== null && vma.mm.kernel.tracer.enter('handle_mm_fault')) return yield* vma.mm.kernel.tracer.span('handle_mm_fault', address, handleMmFault(vma, address, flags));
  mmapAssertLocked(vma.mm, 'handle_mm_fault');
  const mm = vma.mm;
  const k = mm.kernel;
  k.vmstat.pgfault++;
  if (address < vma.start || address >= vma.end) throw new KernelBug('BUG', 'handle_mm_fault: address outside the VMA', `${vma} address 0x${address.toString(16)}`);
  const addr = address - (address % 4096);
  if (vma.flags & VM_HUGETLB) return yield* hugetlbFault(vma, addr, flags);
  if (pmdAllocFails(k, mm.pgd, addr)) return VM_FAULT_OOM; /* pud_alloc / pmd_alloc */
  const pmd = pmdTableOf(mm.pgd, addr, true)!;
  const pi = pmdIndex(addr);
  const pt = pteType(pmd.f[pi]);
  if (pt === T_NONE) {
    if (thpVmaAllowable(vma, addr)) {
      const r = yield* doHugePmdAnonymousPage(vma, pmd, pi, addr, flags);
      if (!(r & VM_FAULT_FALLBACK)) return r;
    }
  } else if (pt !== T_TABLE) {
    if (pt === T_PRESENT) {
      if ((flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE)) && !(pmd.f[pi] & _PAGE_RW)) {
        const r = yield* doHugePmdWpPage(vma, pmd, pi, addr, flags);
        if (!(r & VM_FAULT_FALLBACK)) return r;
      } else {
        hugePmdSetAccessed(pmd, pi, (flags & FAULT_FLAG_WRITE) !== 0);
        return 0;
      }
    } else if (isMigrationType(pt)) {
      yield* pmdMigrationEntryWait(mm, pmd, pi);
      return 0;
    } else if (isDevicePrivateType(pt)) {
      return yield* doHugePmdDevicePrivate(vma, pmd, pi, addr, address, flags);
    } else {
      throw new KernelBug('BUG', `handle_mm_fault: bad pmd type ${pt}`, `${vma} address 0x${address.toString(16)}`);
    }
  }
  if (pteAllocFails(k, pmd, pi)) return VM_FAULT_OOM; /* do_anonymous_page / do_fault: pte_alloc() */
  const table = pteTableAlloc(mm.pgd, pmd, pi, addr);
  if (table === null) return 0; /* the PMD changed under us (a racing THP fault): retry */
  return yield* handlePteFault(vma, table, pteIndex(addr), addr, address, flags);
}

function* handlePteFault(vma: Vma, pt: PteTable, i: number, addr: number, real: number, flags: number): K<number> {
  const f = pt.f[i];
  const t = pteType(f);
  if (t === T_NONE) {
    if (vma.isAnon()) return yield* doAnonymousPage(vma, pt, i, addr, flags);
    return yield* doFault(vma, pt, i, addr, real, flags);
  }
  if (t !== T_PRESENT) return yield* doSwapPage(vma, pt, i, addr, real, flags);
  const k = vma.mm.kernel;
  if (f & _PAGE_PROTNONE) return 0; /* NUMA hinting is not modelled; access was allowed by the VMA */
  if (flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE)) {
    if (!(f & _PAGE_RW)) return yield* doWpPage(vma, pt, i, addr, flags);
    yield* spinLock(k.sched, pt.ptl);
    if (pt.f[i] === f) setPteFlags(pt, i, f | _PAGE_DIRTY | _PAGE_ACCESSED, 'handle_pte_fault');
    pt.ptl.unlock(k.sched);
    return 0;
  }
  setPteFlags(pt, i, f | _PAGE_ACCESSED, 'handle_pte_fault');
  return 0;
}

/**
 * do_anonymous_page(): a read maps the shared zero page (special, read-only);
 * a write allocates a zeroed folio (alloc_anon_folio(): an mTHP folio when a
 * size is enabled for the VMA, else order 0), makes it an exclusive anon
 * folio, adds it to the LRU and maps every page of it writable and dirty if
 * VM_WRITE (set_ptes()). Caller holds mmap_lock (read); the PTE lock is
 * taken and dropped here. Returns 0, or VM_FAULT_OOM if no page can be
 * allocated.
 */
function* doAnonymousPage(vma: Vma, pt: PteTable, i: number, addr: number, flags: number): K<number> {
  const k = vma.mm.kernel;
  const s = k.sched;
  if (!(flags & FAULT_FLAG_WRITE)) {
    yield* spinLock(k.sched, pt.ptl);
    if (pteNone(pt.f[i])) setPte(pt, i, k.zeroPfn, T_PRESENT | _PAGE_SPECIAL | _PAGE_ACCESSED, 'do_anonymous_page');
    pt.ptl.unlock(s);
    return 0;
  }
  if (anonVmaPrepareFails(k, vma)) return VM_FAULT_OOM;
  anonVmaPrepare(k, vma);
  const orders = thpAnonMthpOrders(vma, addr);
  const pfn = orders === 0 ? vmaAllocFolio(k, vma, addr, 0, __GFP_ZERO, 'anon_fault') : allocAnonFolio(vma, pt, i, addr, orders);
  if (pfn < 0) return VM_FAULT_OOM;
  const nr = k.pages.folioNr(pfn);
  const first = i & ~(nr - 1);
  yield* spinLock(k.sched, pt.ptl);
  if (!pteRangeNone(pt, first, nr)) {
    pt.ptl.unlock(s);
    folioPut(k, pfn);
    return 0;
  }
  const start = addr - (i - first) * PAGE_SIZE;
  if (nr > 1) {
    folioRefAdd(k, pfn, nr - 1);
    k.mthpStats.anon_fault_alloc[k.pages.folioOrder(pfn)]++;
  }
  folioAddNewAnonRmap(k, pfn, vma, start, false);
  k.lru.add(pfn);
  const w = (vma.flags & VM_WRITE) !== 0;
  for (let j = 0; j < nr; j++) setPte(pt, first + j, pfn + j, mkPresent(w, w), 'do_anonymous_page');
  vma.mm.rss.anon += nr;
  pt.ptl.unlock(s);
  return 0;
}

/** pte_range_none(): are the nr PTEs from index `first` all none? */
function pteRangeNone(pt: PteTable, first: number, nr: number): boolean {
  for (let j = 0; j < nr; j++) if (!pteNone(pt.f[first + j])) return false;
  return true;
}

/**
 * alloc_anon_folio() (mm/memory.c, mainline since 19eaf44954df "mm: thp:
 * support allocation of anonymous multi-size THP"): of the enabled mTHP
 * `orders` (thpAnonMthpOrders()), the highest whose naturally aligned range
 * around addr is all pte_none() (read without the PTE lock, as the kernel;
 * do_anonymous_page() checks again under it), then that order and each
 * smaller enabled one in turn until an allocation succeeds (a failure counts
 * anon_fault_fallback for the order); order 0 when none does. Caller holds
 * mmap_lock (read). Returns the folio's head pfn (refcount 1) or -1.
 * Not modelled: the userfaultfd fallback (no uffd in the model) and
 * mem_cgroup_charge() (no memcg).
 */
function allocAnonFolio(vma: Vma, pt: PteTable, i: number, addr: number, orders: number): number {
  const k = vma.mm.kernel;
  // highest_order() / next_order(): the orders are taken highest first.
  let order = 0;
  for (; orders !== 0; orders &= ~(1 << order)) {
    order = 31 - Math.clz32(orders);
    if (pteRangeNone(pt, i & ~((1 << order) - 1), 1 << order)) break;
  }
  for (; orders !== 0; orders &= ~(1 << order)) {
    order = 31 - Math.clz32(orders);
    const size = PAGE_SIZE << order;
    const pfn = vmaAllocFolio(k, vma, addr - (addr % size), order, __GFP_ZERO, 'mthp_fault');
    if (pfn >= 0) return pfn;
    k.mthpStats.anon_fault_fallback[order]++;
  }
  return vmaAllocFolio(k, vma, addr, 0, __GFP_ZERO, 'anon_fault');
}

/**
 * do_fault(): a fault on a none PTE of a file (tmpfs/shmem) or driver VMA.
 * ->fault of the VMA's ops is used when present; tmpfs pages come from the
 * page cache (allocated on first touch). Beyond EOF: VM_FAULT_SIGBUS.
 * Read: map the cache page (writable for a shared writable mapping).
 * Write to a private mapping: do_cow_fault (copy into a new anon page).
 * Write to a shared mapping: do_shared_fault (map writable and dirty).
 */
function* doFault(vma: Vma, pt: PteTable, i: number, addr: number, real: number, flags: number): K<number> {
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  let page = -1;
  if (vma.ops?.fault) {
    const vmf: VmFault = { vma, address: addr, realAddress: real, flags, page: -1, origV: 0, origF: 0, pmdLevel: false };
    const r = yield* vma.ops.fault(vmf);
    if (r & VM_FAULT_ERROR) return r;
    page = vmf.page;
    if (page < 0) return r & VM_FAULT_NOPAGE ? 0 : VM_FAULT_SIGBUS;
  } else if (vma.file !== null) {
    const idx = vma.linearPageIndex(addr);
    if (idx * 4096 >= vma.file.size) return VM_FAULT_SIGBUS;
    page = shmemGetFolio(k, vma.file, idx, true);
    if (page < 0) return VM_FAULT_OOM;
    folioGet(k, page); /* filemap_fault returns the folio with a reference */
  } else {
    return VM_FAULT_SIGBUS;
  }
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  const shared = (vma.flags & VM_SHARED) !== 0;
  if (write && !shared) {
    /* do_cow_fault */
    if (anonVmaPrepareFails(k, vma)) {
      folioPut(k, page);
      return VM_FAULT_OOM;
    }
    anonVmaPrepare(k, vma);
    const np = vmaAllocFolio(k, vma, addr, 0, 0, 'cow_fault');
    if (np < 0) {
      folioPut(k, page);
      return VM_FAULT_OOM;
    }
    k.contents.copy(np, page);
    folioPut(k, page);
    yield* spinLock(k.sched, pt.ptl);
    if (!pteNone(pt.f[i])) {
      pt.ptl.unlock(s);
      folioPut(k, np);
      return 0;
    }
    folioAddNewAnonRmap(k, np, vma, addr, false);
    k.lru.add(np);
    setPte(pt, i, np, mkPresent((vma.flags & VM_WRITE) !== 0, true), 'do_cow_fault');
    mm.rss.anon++;
    pt.ptl.unlock(s);
    return 0;
  }
  yield* spinLock(k.sched, pt.ptl);
  if (!pteNone(pt.f[i])) {
    pt.ptl.unlock(s);
    folioPut(k, page);
    return 0;
  }
  /* The reference from the lookup becomes the mapping's reference. */
  folioAddFileRmapPte(k, page);
  const wr = shared && (vma.flags & VM_WRITE) !== 0;
  setPte(pt, i, page, mkPresent(wr, write && wr), 'finish_fault');
  if (vma.file?.kind === 'shmem') mm.rss.shmem++;
  else mm.rss.file++;
  pt.ptl.unlock(s);
  return 0;
}

/**
 * wp_can_reuse_anon_folio(): a small anon folio not marked exclusive may be
 * reused by the writer if, after draining the LRU batch, the only reference
 * is this mapping's and the folio can be locked. A large (PTE-mapped) folio:
 * __wp_can_reuse_large_anon_folio() of 1da190f4d0a6 "mm: Copy-on-Write
 * (COW) reuse support for PTE-mapped THP" (mm/memory.c): not when at most
 * one page is mapped (copy, so the large folio can be freed), else reuse
 * when every reference is a mapping (folio_large_mapcount() ==
 * folio_ref_count()) and every mapping is in this mm (not
 * folio_test_large_maybe_mapped_shared()). Caller holds mmap_lock (read),
 * not the PTE lock.
 *
 * Deliberate difference: mainline tracks the (at most two) mms mapping a
 * large folio in folio->_mm_id (CONFIG_MM_ID); the model asks the rmap
 * (largeFolioMappedByOtherMm()), which gives the same answer.
 */
function wpCanReuseAnonFolio(k: Kernel, vma: Vma, pfn: number): boolean {
  const p = k.pages;
  if (p.order[pfn] !== 0) {
    const head = p.folioPfn(pfn);
    const mapcount = p.folioMapcount(head);
    if (mapcount <= 1 || p.entireMapcount[head] > 0) return false;
    if (p.refcount[head] !== mapcount) return false;
    return !largeFolioMappedByOtherMm(k, head, vma.mm);
  }
  if (p.refcount[pfn] > 3) return false;
  if (!(p.flags[pfn] & PG_lru)) k.lru.drain();
  if (p.refcount[pfn] > 1) return false;
  if (!folioTrylock(k, pfn)) return false;
  const ok = p.refcount[pfn] === 1;
  if (ok) {
    /* folio_move_anon_rmap(): the folio now belongs to this VMA's anon_vma */
    const av = anonVmaPrepare(k, vma);
    p.mapping[pfn] = av.id;
  }
  folioUnlock(k, pfn);
  return ok;
}

/**
 * Does a present PTE of an mm other than `mm` map a page of the large folio
 * `head`? (folio_test_large_maybe_mapped_shared(), answered exactly through
 * the rmap: every VMA of the folio's anon_vma, each of its pages.)
 */
function largeFolioMappedByOtherMm(k: Kernel, head: number, mm: Vma['mm']): boolean {
  const p = k.pages;
  const nr = p.folioNr(head);
  const av = k.mappings[p.mapping[head]];
  if (!(av instanceof AnonVma)) return false;
  for (const v of av.vmas) {
    if (v.mm === mm) continue;
    for (let j = 0; j < nr; j++) {
      const a = v.addressOf(p.index[head + j]);
      if (a < 0) continue;
      const pt = pteTableOf(v.mm.pgd, a);
      if (pt === null) continue;
      const x = pteIndex(a);
      if (pteType(pt.f[x]) === T_PRESENT && pt.v[x] === head + j) return true;
    }
  }
  return false;
}

/**
 * do_wp_page(): write fault on a present read-only PTE. Shared mappings
 * become writable (wp_page_shared); an anon page that is exclusive, or can
 * be reused, is made writable in place (wp_page_reuse, PG_anon_exclusive
 * set); otherwise wp_page_copy allocates a new exclusive anon page (zeroed
 * for the zero pfn, else a copy — a device-coherent source is copied to
 * system memory) and drops the old mapping.
 */
function* doWpPage(vma: Vma, pt: PteTable, i: number, addr: number, flags: number): K<number> {
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  const v = pt.v[i];
  const f = pt.f[i];
  const page = vmNormalPage(k, vma, addr, v, f);
  const unshare = (flags & FAULT_FLAG_UNSHARE) !== 0 && !(flags & FAULT_FLAG_WRITE);
  if (page >= 0 && (vma.flags & VM_SHARED)) {
    if (unshare) return 0;
    yield* spinLock(k.sched, pt.ptl);
    if (pt.v[i] === v && pt.f[i] === f) setPteFlags(pt, i, f | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, 'wp_page_reuse');
    pt.ptl.unlock(s);
    return 0;
  }
  if (page >= 0 && folioTestAnon(k, page)) {
    if (pageAnonExclusive(k, page) || wpCanReuseAnonFolio(k, vma, page)) {
      yield* spinLock(k.sched, pt.ptl);
      if (pt.v[i] === v && pt.f[i] === f) {
        k.pages.flags[page] |= PG_anon_exclusive;
        if (!unshare) setPteFlags(pt, i, f | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, 'wp_page_reuse');
      }
      pt.ptl.unlock(s);
      return 0;
    }
  }
  return yield* wpPageCopy(vma, pt, i, addr, v, f, page, unshare);
}

/**
 * wp_page_copy(): break COW (or unshare, FAULT_FLAG_UNSHARE) of the present
 * read-only PTE (v, f) at addr. Copies `old` (or zero-fills for the zero
 * page, old < 0) into a new anon page, then inside an MMU_NOTIFY_CLEAR range
 * of [addr, addr + PAGE_SIZE) and under the PTL, if the PTE is unchanged
 * (pte_same), maps the new page (writable unless unsharing) and drops the old
 * mapping's rmap and reference. Caller holds mmap_lock for read; returns 0
 * (also when the PTE changed: the fault is simply retried) or VM_FAULT_OOM.
 */
function* wpPageCopy(vma: Vma, pt: PteTable, i: number, addr: number, v: number, f: number, old: number, unshare: boolean): K<number> {
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  if (anonVmaPrepareFails(k, vma)) return VM_FAULT_OOM;
  anonVmaPrepare(k, vma);
  const np = vmaAllocFolio(k, vma, addr, 0, old < 0 ? __GFP_ZERO : 0, 'wp_page_copy');
  if (np < 0) return VM_FAULT_OOM;
  if (old >= 0) k.contents.copy(np, old);
  // As mm/memory.c:wp_page_copy(): the PTE of this one page changes to the
  // new page under an MMU_NOTIFY_CLEAR range, so a device mirroring the old
  // page (the zero page, or the page shared with the parent) drops it.
  const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_CLEAR, addr, addr + PAGE_SIZE);
  yield* mmuNotifierInvalidateRangeStart(range);
  yield* spinLock(k.sched, pt.ptl);
  if (pt.v[i] !== v || pt.f[i] !== f) {
    pt.ptl.unlock(s);
    mmuNotifierInvalidateRangeEnd(range);
    folioPut(k, np);
    return 0;
  }
  folioAddNewAnonRmap(k, np, vma, addr, false);
  k.lru.add(np);
  const write = !unshare && (vma.flags & VM_WRITE) !== 0;
  setPte(pt, i, np, mkPresent(write, write) | carryBits(f), 'wp_page_copy');
  if (old >= 0) {
    if (!folioTestAnon(k, old)) {
      if (vma.file?.kind === 'shmem') mm.rss.shmem--;
      else mm.rss.file--;
      mm.rss.anon++;
    }
    folioRemoveRmapPte(k, old);
    folioPut(k, old);
  } else {
    mm.rss.anon++;
  }
  k.vmstat.cow++;
  pt.ptl.unlock(s);
  mmuNotifierInvalidateRangeEnd(range);
  return 0;
}

/**
 * do_swap_page() for a real swap entry (slot in pt.v[i]): allocate a page,
 * read the slot (swap_read_folio), and under the PTL — the entry must be
 * unchanged, else the fault is retried — map it: anonymous, exclusive if
 * the entry was pte_swp_exclusive() or this was the slot's only reference
 * (the kernel's reuse of a folio only we hold), writable and dirty only for
 * a write fault on an exclusive page in a VM_WRITE VMA (otherwise read-only:
 * a later write takes do_wp_page()); soft-dirty and uffd-wp carried over.
 * The entry's slot reference is dropped (swap_free). The model has no swap
 * cache (mm/swap.ts): every swap-in reads its own copy. Caller holds
 * mmap_lock for read. Returns 0, VM_FAULT_OOM or VM_FAULT_SIGBUS.
 */
function* doSwapIn(vma: Vma, pt: PteTable, i: number, addr: number, flags: number): K<number> {
  mmapAssertLocked(vma.mm, 'do_swap_page');
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  const p = k.pages;
  const slot = pt.v[i];
  const f = pt.f[i];
  const swap = k.swap;
  if (swap === null || swap.swapCount(slot) <= 0) {
    k.printk.warn(`do_swap_page: bad swap entry (slot ${slot})`);
    return VM_FAULT_SIGBUS;
  }
  anonVmaPrepare(k, vma);
  const pfn = vmaAllocFolio(k, vma, addr, 0, 0, 'swapin');
  if (pfn < 0) return VM_FAULT_OOM;
  swap.readPage(slot, pfn);
  yield* spinLock(s, pt.ptl);
  if (pt.v[i] !== slot || pt.f[i] !== f) {
    pt.ptl.unlock(s);
    folioPut(k, pfn);
    return 0;
  }
  const exclusive = (f & _PAGE_SWP_EXCLUSIVE) !== 0 || swap.swapCount(slot) === 1;
  const write = (flags & FAULT_FLAG_WRITE) !== 0 && exclusive && (vma.flags & VM_WRITE) !== 0 && !(f & _PAGE_UFFD_WP);
  folioAddNewAnonRmap(k, pfn, vma, addr, false);
  if (!exclusive) p.flags[pfn] &= ~PG_anon_exclusive;
  p.flags[pfn] |= PG_dirty; /* the copy in memory is the only one once the slot goes */
  k.lru.add(pfn);
  setPte(pt, i, pfn, T_PRESENT | _PAGE_ACCESSED | (write ? _PAGE_RW | _PAGE_DIRTY : 0) | (f & (_PAGE_SOFT_DIRTY | _PAGE_UFFD_WP)), 'do_swap_page');
  mm.rss.swap--;
  mm.rss.anon++;
  swap.free(slot);
  pt.ptl.unlock(s);
  return 0;
}

/**
 * do_swap_page(): a fault on a non-present, non-none PTE.
 *  - migration entry: wait for the migration to finish, then retry (0);
 *  - device-exclusive entry: remove_device_exclusive_entry() restores the
 *    PTE after notifying the device (MMU_NOTIFY_EXCLUSIVE);
 *  - device-private entry: under the PTL, trylock the page and take a
 *    reference (the CVE-2022-3523 fix), drop the PTL and call
 *    pgmap->ops->migrate_to_ram(vmf) with vmf.page set; then unlock and put.
 *    If the trylock fails, drop the PTL and return 0: the fault is retried.
 *    With config.historical.fault_no_page_ref the old kernel's path is
 *    taken: no lock, no reference, migrate_to_ram() called on a page that a
 *    racing migration may already have freed;
 *  - hwpoison: VM_FAULT_HWPOISON; a real swap entry: swap-in from the
 *    model's swap store.
 */
function* doSwapPage(vma: Vma, pt: PteTable, i: number, addr: number, real: number, flags: number): K<number> {
  if (vma.mm.kernel.tracer !== null && vma.mm.kernel.tracer.enter('do_swap_page')) return yield* vma.mm.kernel.tracer.span('do_swap_page', addr, doSwapPage(vma, pt, i, addr, real, flags));
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  const v = pt.v[i];
  const f = pt.f[i];
  const t = pteType(f);
  if (isMigrationType(t)) {
    yield* migrationEntryWait(mm, pt, i);
    return 0;
  }
  const vmf: VmFault = { vma, address: addr, realAddress: real, flags, page: v, origV: v, origF: f, pmdLevel: false };
  if (t === T_DEVICE_EXCLUSIVE) return yield* removeDeviceExclusiveEntry(vmf);
  if (isDevicePrivateType(t)) {
    yield* spinLock(k.sched, pt.ptl);
    if (pt.v[i] !== v || pt.f[i] !== f) {
      pt.ptl.unlock(s);
      return 0;
    }
    if (k.config.historical.fault_no_page_ref) {
      /* Before 16ce101db85d: no reference is taken under the PTL. */
      pt.ptl.unlock(s);
      if (s.exploring) yield s.point('do_swap_page: pte_unmap_unlock (no page ref)', v);
      kasanCheck(k, v, 'do_swap_page: vmf->page->pgmap->ops->migrate_to_ram()');
      const pgmap = pagePgmap(k, v)!;
      return yield* pgmap.ops.migrateToRam!(vmf);
    }
    if (folioTrylock(k, v)) {
      folioGet(k, v);
      pt.ptl.unlock(s);
      if (s.exploring) yield s.point('do_swap_page: pte_unmap_unlock (page ref held)', v);
      const pgmap = pagePgmap(k, v)!;
      const r = yield* pgmap.ops.migrateToRam!(vmf);
      folioUnlock(k, v);
      folioPut(k, v);
      return r;
    }
    pt.ptl.unlock(s);
    if (s.exploring) {
      // The kernel returns and the access faults again until the page is
      // unlocked: a spin with no other effect. Under the explorer it is a
      // wait for that moment, so a schedule cannot starve the lock holder
      // while this thread spins (schedules are not fair).
      yield* waitUntil(s, `do_swap_page: device page 0x${v.toString(16)} locked, fault retried when unlocked`,
        () => (k.pages.flags[k.pages.folioPfn(v)] & PG_locked) === 0 || pt.v[i] !== v || pt.f[i] !== f, v);
    }
    return VM_FAULT_RETRY;
  }
  if (t === T_HWPOISON) return VM_FAULT_HWPOISON;
  if (t === T_SWAP) return yield* doSwapIn(vma, pt, i, addr, flags);
  throw new KernelBug('BUG', `do_swap_page: unknown entry type ${t}`, `${vma} address 0x${addr.toString(16)}`);
}

/* Device-exclusive entries on the fault path (mm/memory.c; make_device_exclusive() is in device_exclusive.ts). */

/**
 * can_change_pte_writable(vma, addr, pte) for the restore: may a restored
 * PTE be writable right away (no write fault needed)?
 */
function canChangePteWritable(k: Kernel, vma: Vma, addr: number, pfn: number, f: number): boolean {
  if (k.warnOnPage(!(vma.flags & VM_WRITE), pfn, 'can_change_pte_writable: !VM_WRITE')) return false;
  if (f & _PAGE_PROTNONE) return false;
  if (!(vma.flags & VM_SOFTDIRTY) && !(f & _PAGE_SOFT_DIRTY)) return false; /* soft-dirty tracking wants the write fault */
  if (f & _PAGE_UFFD_WP) return false;
  if (!(vma.flags & VM_SHARED)) {
    const page = vmNormalPage(k, vma, addr, pfn, T_PRESENT);
    const p = k.pages;
    return page >= 0 && (p.flags[p.folioPfn(page)] & PG_anon) !== 0 && (p.flags[page] & PG_anon_exclusive) !== 0;
  }
  return (f & _PAGE_DIRTY) !== 0;
}

/**
 * restore_exclusive_pte(vma, folio, page, address, ptep, orig_pte): turn the
 * DEVICE_EXCLUSIVE entry at pt[i] back into a present PTE for `pfn`: old
 * (not young), soft-dirty and uffd-wp carried from the entry, PROT_NONE if
 * the VMA is inaccessible, writable (and dirty if the folio is) only when
 * VM_WRITE and can_change_pte_writable(). No rmap or refcount change (the
 * mapcount was kept). Caller holds the folio lock (WARN otherwise) and the
 * PTL, and has fired the MMU notifier. Used by the CPU fault path and by
 * fork.
 */
export function restoreExclusivePte(vma: Vma, pfn: number, addr: number, pt: PteTable, i: number, origF: number): void {
  lockdepAssertHeld(vma.mm.kernel.sched, pt.ptl, 'restore_exclusive_pte');
  const k = vma.mm.kernel;
  k.warnOnPage(!folioTestLocked(k, pfn), pfn, 'restore_exclusive_pte: folio not locked');
  let f = T_PRESENT;
  if (!(vma.flags & VM_ACCESS_FLAGS)) f |= _PAGE_PROTNONE; /* vm_page_prot == PAGE_NONE */
  if (origF & _PAGE_SOFT_DIRTY) f |= _PAGE_SOFT_DIRTY;
  if (origF & _PAGE_UFFD_WP) f |= _PAGE_UFFD_WP;
  if ((vma.flags & VM_WRITE) && canChangePteWritable(k, vma, addr, pfn, f)) {
    if (k.pages.flags[k.pages.folioPfn(pfn)] & PG_dirty) f |= _PAGE_DIRTY;
    f |= _PAGE_RW;
  }
  setPte(pt, i, pfn, f, 'restore_exclusive_pte');
}

/**
 * try_restore_exclusive_pte(vma, addr, ptep, orig_pte) (fork): trylock the
 * folio and restore the PTE in place. Returns 0, or -EBUSY when the folio is
 * locked (a driver holds it from make_device_exclusive): fork then fails.
 * Caller holds the PTL of pt and mmap_lock for write.
 */
export function tryRestoreExclusivePte(vma: Vma, addr: number, pt: PteTable, i: number): number {
  lockdepAssertHeld(vma.mm.kernel.sched, pt.ptl, 'try_restore_exclusive_pte');
  mmapAssertWriteLocked(vma.mm, 'try_restore_exclusive_pte');
  const k = vma.mm.kernel;
  const pfn = pt.v[i];
  const f = pt.f[i];
  if (!isDeviceExclusiveEntry(f)) throw new KernelBug('BUG', 'try_restore_exclusive_pte: not a device-exclusive entry', `${vma} addr 0x${addr.toString(16)}`);
  if (!folioTrylock(k, pfn)) return -EBUSY;
  restoreExclusivePte(vma, pfn, addr, pt, i, f);
  folioUnlock(k, pfn);
  return 0;
}

/**
 * remove_device_exclusive_entry(vmf): the CPU faulted on a DEVICE_EXCLUSIVE
 * entry (do_swap_page). vmf.page / vmf.origV is its pfn, vmf.origF the
 * entry. Takes a folio reference (0 if the folio is already free: the fault
 * is retried), locks the folio (folio_lock_or_retry: with
 * FAULT_FLAG_ALLOW_RETRY|RETRY_NOWAIT a busy folio gives VM_FAULT_RETRY;
 * otherwise it sleeps, which is how a driver still holding the lock from
 * make_device_exclusive keeps the CPU off until it is done), fires
 * MMU_NOTIFY_EXCLUSIVE with owner NULL, restores the PTE if it is
 * unchanged, unlocks and drops the reference. Returns 0 (the access is
 * retried) or VM_FAULT_RETRY. Caller holds mmap_lock for read, no PTL.
 */
export function* removeDeviceExclusiveEntry(vmf: VmFault): K<number> {
  mmapAssertLocked(vmf.vma.mm, 'remove_device_exclusive_entry');
  const vma = vmf.vma;
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  const pfn = vmf.page >= 0 ? vmf.page : vmf.origV;
  const head = k.pages.folioPfn(pfn);
  if (!folioTryGet(k, head)) return 0;
  if (!folioTrylock(k, head)) {
    if ((vmf.flags & FAULT_FLAG_ALLOW_RETRY) && (vmf.flags & FAULT_FLAG_RETRY_NOWAIT)) {
      folioPut(k, head);
      return VM_FAULT_RETRY;
    }
    yield* folioLock(k, head);
  }
  const addr = vmf.address - (vmf.address % PAGE_SIZE);
  const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_EXCLUSIVE, addr, addr + PAGE_SIZE, null);
  yield* mmuNotifierInvalidateRangeStart(range);
  const pt = pteTableOf(mm.pgd, addr);
  if (pt !== null) {
    yield* spinLock(k.sched, pt.ptl);
    const i = pteIndex(addr);
    if (pt.v[i] === vmf.origV && pt.f[i] === vmf.origF) restoreExclusivePte(vma, pfn, addr, pt, i, vmf.origF);
    pt.ptl.unlock(s);
  }
  folioUnlock(k, head);
  folioPut(k, head);
  mmuNotifierInvalidateRangeEnd(range);
  return 0;
}
