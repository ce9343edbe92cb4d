// SPDX-License-Identifier: GPL-2.0-only
/**
 * hugetlb mappings (mm/hugetlb.c, fs/hugetlbfs/inode.c): MAP_HUGETLB
 * memory backed by the default 2 MiB pool (k.hugetlb, hugetlb_pool.ts).
 *
 * An anonymous MAP_HUGETLB mapping is an unlinked hugetlbfs file
 * (hugetlb_file_setup) whose AddressSpace has kind 'hugetlbfs'. Pages are
 * reserved when the mapping is created (hugetlb_reserve_pages), so mmap
 * fails with -ENOMEM when the pool cannot back it, instead of a SIGBUS at
 * fault time. A fault consumes the reservation of its huge-page index.
 * Private mappings map anonymous hugetlb folios (PG_anon|PG_hugetlb, COW on
 * write after fork); shared mappings map the inode's page cache.
 *
 * Entries: a hugetlb page is a PMD-level T_PRESENT leaf whose v is the head
 * pfn; its mapping counts in entireMapcount and holds one folio reference.
 * Hugetlb pages are not counted in RSS (the kernel's hugetlb_usage).
 *
 * Differences: reservations are tracked per inode by huge-page index
 * (private mappings in the kernel keep a per-VMA resv_map; a private
 * anonymous mapping has its own inode, so the effect is the same); no
 * subpools, no surplus pages, no PMD sharing, no hugetlb cgroup.
 */
import type { Kernel } from '../kernel.js';
import type { K } from '../sched/sched.js';
import { EINVAL, ENOMEM } from '../errno.js';
import { type AddressSpace, type Vma, VM_MAYSHARE, VM_WRITE, VM_HUGETLB, VM_DONTEXPAND } from './mm_types.js';
import { HPAGE_PMD_NR, HPAGE_PMD_SIZE, PAGE_SIZE, PG_anon, PG_anon_exclusive, PG_dirty } from './page.js';
import { T_NONE, T_PRESENT, _PAGE_RW, _PAGE_DIRTY, _PAGE_ACCESSED, pmdIndex, pmdTableOf, pteType } from './pgtable.js';
import { setPmdLeaf, setPmdFlags } from './pte_ops.js';
import { pmdAllocFails } from './pgtable.js';
import { folioGet, folioPut } from './folio.js';
import { folioAddNewAnonRmap, folioAddFileRmapPmd, folioRemoveRmapPmd } from './rmap.js';
import { FAULT_FLAG_WRITE, FAULT_FLAG_UNSHARE, VM_FAULT_OOM, VM_FAULT_SIGBUS } from './fault_types.js';
import { MMU_NOTIFY_CLEAR, mmuNotifierRangeInit, mmuNotifierInvalidateRangeStart, mmuNotifierInvalidateRangeEnd } from './mmu_notifier.js';
import { File, type FileOperations, O_RDWR } from '../fs/chardev.js';
import { mappingGet, mappingPut } from '../fs/inode.js';
import { mmapAssertLocked } from './mmap_lock.js';
import { spinLock } from '../sched/locks.js';

/** huge_page_size(default_hstate) */
export const HPAGE_SIZE = HPAGE_PMD_SIZE;

/*
 * Reserved, not yet faulted huge-page indexes of a hugetlbfs inode (resv_map)
 * are `as.hugetlbResv`; the mm whose private mapping owns them
 * (HPAGE_RESV_OWNER; a forked child does not) is `as.hugetlbResvOwner`.
 */

function freeUnreserved(k: Kernel): number {
  return k.hugetlb.nrFree() - k.hugetlb.resv;
}

/**
 * hugetlb_file_setup() + hugetlb_reserve_pages(): an unlinked hugetlbfs
 * file of `size` bytes (a multiple of 2 MiB) with every page reserved,
 * unless `noreserve` (VM_NORESERVE, MAP_NORESERVE): then nothing is
 * reserved and a fault that finds the pool empty gets SIGBUS.
 * Returns the File, or -ENOMEM when the pool has fewer free unreserved
 * pages than needed, -EINVAL for a size that is not huge-page aligned.
 */
export function hugetlbFileSetup(k: Kernel, size: number, noreserve = false): File | number {
  if (size <= 0 || size % HPAGE_SIZE !== 0) return -EINVAL;
  const n = size / HPAGE_SIZE;
  if (!noreserve && freeUnreserved(k) < n) return -ENOMEM;
  const as = k.newAddressSpace('hugetlbfs');
  as.size = size;
  const resv = new Set<number>();
  if (!noreserve) for (let i = 0; i < n; i++) resv.add(i);
  as.hugetlbResv = resv;
  as.evictInode = hugetlbEvict;
  k.hugetlb.resv += resv.size;
  const f = new File(k, hugetlbFileOperations, 'anon_hugepage (deleted)', O_RDWR);
  f.mapping = as;
  mappingGet(as);
  return f;
}

/** hugetlbfs_file_operations: ->mmap checks alignment (hugetlbfs_file_mmap). */
export const hugetlbFileOperations: FileOperations = {
  owner: 'hugetlbfs',
  mmap(file: File, vma: Vma): number {
    if (vma.pgoff % HPAGE_PMD_NR !== 0 || vma.start % HPAGE_SIZE !== 0 || vma.end % HPAGE_SIZE !== 0) return -EINVAL;
    vma.file = file.mapping;
    if (file.mapping && file.mapping.hugetlbResvOwner === null) file.mapping.hugetlbResvOwner = vma.mm;
    vma.flags |= VM_HUGETLB | VM_DONTEXPAND;
    vma.ops = null;
    return 0;
  },
  *release(file: File): K<void> {
    if (file.mapping) mappingPut(file.kernel, file.mapping);
  },
};

function unreserve(k: Kernel, as: AddressSpace, idx: number): void {
  const r = as.hugetlbResv;
  if (r && r.delete(idx)) k.hugetlb.resv--;
}

/** Consume the reservation of idx if there is one; else need an unreserved free page. */
function allocHugetlbFolio(k: Kernel, as: AddressSpace | null, idx: number): number {
  const r = as ? as.hugetlbResv : null;
  const reserved = r !== null && r.has(idx);
  if (!reserved && freeUnreserved(k) <= 0) return -1;
  // alloc_hugetlb_folio() failing (injected) keeps the reservation.
  const pfn = k.hugetlb.alloc(k);
  if (pfn >= 0 && reserved) {
    r!.delete(idx);
    k.hugetlb.resv--;
  }
  return pfn;
}

/**
 * hugetlb_vm_op_close(): a private mapping gives back the reservations of
 * the pages it never faulted in its range.
 */
export function hugetlbVmaClose(vma: Vma): void {
  const as = vma.file;
  if (as === null || as.kind !== 'hugetlbfs' || (vma.flags & VM_MAYSHARE)) return;
  if (as.hugetlbResvOwner !== vma.mm) return;
  const k = vma.mm.kernel;
  const first = vma.pgoff / HPAGE_PMD_NR;
  const last = first + (vma.end - vma.start) / HPAGE_SIZE;
  for (let i = first; i < last; i++) unreserve(k, as, i);
}

/** hugetlbfs_evict_inode(): drop the cache and the remaining reservations. */
export function hugetlbEvict(k: Kernel, as: AddressSpace): void {
  const r = as.hugetlbResv;
  if (r) {
    k.hugetlb.resv -= r.size;
    r.clear();
  }
  for (const [idx, pfn] of [...as.pages]) {
    as.pages.delete(idx);
    k.pages.mapping[pfn] = 0;
    folioPut(k, pfn);
  }
  if (k.mappings[as.id] === as) k.mappings[as.id] = null;
}

/**
 * hugetlb_fault(mm, vma, address, flags): the fault handler for VM_HUGETLB
 * VMAs (called by handleMmFault with mmap_lock held for read).
 *  - none: hugetlb_no_page(): a shared mapping maps the inode's cached page
 *    (allocated and added on first touch); a private one a new anonymous
 *    exclusive folio. The reservation of the index is consumed; without one
 *    and with no unreserved free page: VM_FAULT_SIGBUS. Beyond i_size:
 *    VM_FAULT_SIGBUS. Writable only on a write fault (or shared VM_WRITE).
 *  - present, write to a read-only leaf: hugetlb_wp(): shared -> make
 *    writable; private exclusive (or sole user) -> reuse; else copy into a
 *    new huge page (MMU_NOTIFY_CLEAR), VM_FAULT_SIGBUS if none is free.
 *  - FAULT_FLAG_UNSHARE (mm/hugetlb.c hugetlb_wp() with unshare, since
 *    a7f226604170 "mm/gup: trigger FAULT_FLAG_UNSHARE when R/O-pinning a
 *    possibly shared anonymous page"): the same reuse-or-copy, but the
 *    result is mapped read-only and VM_WRITE is not required.
 * Returns 0 or VM_FAULT_* bits.
 */
export function* hugetlbFault(vma: Vma, addr: number, flags: number): K<number> {
  mmapAssertLocked(vma.mm, 'hugetlb_fault');
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  const p = k.pages;
  const haddr = addr - (addr % HPAGE_SIZE);
  const as = vma.file;
  const idx = (vma.pgoff + (haddr - vma.start) / PAGE_SIZE) / HPAGE_PMD_NR;
  /* FAULT_FLAG_UNSHARE (a R/O FOLL_PIN of a maybe-shared anon page, GUP's
     gup_must_unshare()) breaks COW like a write but maps read-only. */
  const wfault = (flags & FAULT_FLAG_WRITE) !== 0;
  const unshare = !wfault && (flags & FAULT_FLAG_UNSHARE) !== 0;
  const write = wfault || unshare;
  const shared = (vma.flags & VM_MAYSHARE) !== 0;
  if (pmdAllocFails(k, mm.pgd, haddr)) return VM_FAULT_OOM; /* huge_pte_alloc() */
  const pmd = pmdTableOf(mm.pgd, haddr, true)!;
  const i = pmdIndex(haddr);
  yield* spinLock(s, pmd.lock);
  const t = pteType(pmd.f[i]);
  if (t === T_NONE) {
    if (as !== null && idx * HPAGE_SIZE >= as.size) {
      pmd.lock.unlock(s);
      return VM_FAULT_SIGBUS;
    }
    let head: number;
    if (shared && as !== null) {
      head = as.pages.get(idx) ?? -1;
      if (head < 0) {
        head = allocHugetlbFolio(k, as, idx);
        if (head < 0) {
          pmd.lock.unlock(s);
          return VM_FAULT_SIGBUS;
        }
        for (let j = 0; j < HPAGE_PMD_NR; j++) {
          p.mapping[head + j] = as.id;
          p.index[head + j] = idx * HPAGE_PMD_NR + j;
        }
        as.pages.set(idx, head); /* the allocation reference becomes the cache's */
      }
      folioGet(k, head);
      folioAddFileRmapPmd(k, head);
      const wr = (vma.flags & VM_WRITE) !== 0;
      setPmdLeaf(pmd, i, head, T_PRESENT | _PAGE_ACCESSED | (wr ? _PAGE_RW : 0) | (wr && wfault ? _PAGE_DIRTY : 0), 'hugetlb_no_page');
    } else {
      head = allocHugetlbFolio(k, as, idx);
      if (head < 0) {
        pmd.lock.unlock(s);
        return VM_FAULT_SIGBUS;
      }
      folioAddNewAnonRmap(k, head, vma, haddr, true);
      const wr = wfault && (vma.flags & VM_WRITE) !== 0;
      setPmdLeaf(pmd, i, head, T_PRESENT | _PAGE_ACCESSED | (wr ? _PAGE_RW | _PAGE_DIRTY : 0), 'hugetlb_no_page');
    }
    pmd.lock.unlock(s);
    return 0;
  }
  if (t !== T_PRESENT) {
    pmd.lock.unlock(s);
    return VM_FAULT_SIGBUS;
  }
  const f = pmd.f[i];
  const head = p.folioPfn(pmd.v[i]);
  if (!write || (f & _PAGE_RW)) {
    setPmdFlags(pmd, i, f | _PAGE_ACCESSED | (wfault ? _PAGE_DIRTY : 0), 'hugetlb_fault');
    pmd.lock.unlock(s);
    return 0;
  }
  // hugetlb_wp(): an unshare may run in a VMA without VM_WRITE (a R/O pin
  // of a private read-only mapping after fork); a write fault may not.
  if (!unshare && !(vma.flags & VM_WRITE)) {
    pmd.lock.unlock(s);
    return VM_FAULT_SIGBUS;
  }
  if (shared || ((p.flags[head] & PG_anon) && ((p.flags[head] & PG_anon_exclusive) || (p.entireMapcount[head] === 1 && p.refcount[head] === 1)))) {
    // Reuse: MAP_SHARED, or the exclusive owner (the sole mapper); an
    // unshare only marks the folio exclusive and leaves the PMD read-only.
    if (!shared) for (let j = 0; j < HPAGE_PMD_NR; j++) p.flags[head + j] |= PG_anon_exclusive;
    if (!unshare) setPmdFlags(pmd, i, f | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, 'hugetlb_wp');
    pmd.lock.unlock(s);
    return 0;
  }
  // hugetlb_wp(): copy.
  folioGet(k, head);
  pmd.lock.unlock(s);
  const np = allocHugetlbFolio(k, null, -1);
  if (np < 0) {
    folioPut(k, head);
    return VM_FAULT_SIGBUS;
  }
  k.contents.copyRange(np, head, HPAGE_PMD_NR);
  const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_CLEAR, haddr, haddr + HPAGE_SIZE);
  yield* mmuNotifierInvalidateRangeStart(range);
  yield* spinLock(s, pmd.lock);
  if (pmd.f[i] === f && pmd.v[i] === head) {
    folioAddNewAnonRmap(k, np, vma, haddr, true);
    /* make_huge_pte(vma, page, !unshare): "Break COW or unshare" */
    setPmdLeaf(pmd, i, np, T_PRESENT | _PAGE_ACCESSED | (unshare ? 0 : _PAGE_RW | _PAGE_DIRTY), 'hugetlb_wp');
    folioRemoveRmapPmd(k, head);
    folioPut(k, head); /* the mapping's reference */
  } else {
    folioPut(k, np);
  }
  pmd.lock.unlock(s);
  mmuNotifierInvalidateRangeEnd(range);
  folioPut(k, head);
  void PG_dirty;
  return 0;
}

/** /proc/meminfo hugetlb lines (hugetlb_report_meminfo). */
export function hugetlbReportMeminfo(k: Kernel): string {
  const h = k.hugetlb;
  return [
    `HugePages_Total:   ${h.nrHugepages}`,
    `HugePages_Free:    ${h.nrFree()}`,
    `HugePages_Rsvd:    ${h.resv}`,
    `HugePages_Surp:        0`,
    `Hugepagesize:       2048 kB`,
    `Hugetlb:        ${h.nrHugepages * 2048} kB`,
  ].join('\n') + '\n';
}
