// SPDX-License-Identifier: GPL-2.0-only
/**
 * The default hugetlb pool (mm/hugetlb.c): vm.nr_hugepages 2 MiB pages set
 * aside at boot, handed out for MAP_HUGETLB mappings and returned when the
 * last reference goes (free_huge_folio()).
 */
import type { Kernel } from '../kernel.js';
import { pageBug } from './debug.js';
import { HPAGE_PMD_ORDER, PG_hugetlb, PG_anon, PG_anon_exclusive, PG_dirty } from './page.js';
import { __GFP_ZERO } from './page_alloc.js';

export class HugetlbPool {
  readonly free: number[] = [];
  nrHugepages = 0;
  /** Reserved for mappings but not yet faulted (resv_huge_pages). */
  resv = 0;

  /** Fill the pool at boot; returns how many pages it got. */
  init(k: Kernel, n: number): number {
    for (let i = 0; i < n; i++) {
      const pfn = k.buddy.alloc(HPAGE_PMD_ORDER, 0, 'hugetlb');
      if (pfn < 0) break;
      this.markFree(k, pfn);
      this.nrHugepages++;
    }
    return this.nrHugepages;
  }

  private markFree(k: Kernel, pfn: number): void {
    const p = k.pages;
    p.refcount[pfn] = 0;
    for (let i = 0; i < 512; i++) p.flags[pfn + i] = (p.flags[pfn + i] & ~(PG_anon | PG_anon_exclusive | PG_dirty)) | PG_hugetlb;
    this.free.push(pfn);
  }

  /** HugePages_Free */
  nrFree(): number {
    return this.free.length;
  }

  /**
   * alloc_hugetlb_folio(): a zeroed huge folio with refcount 1, or -1 (the
   * pool is empty, or the allocation fails: fault injection at
   * 'alloc_hugetlb_folio', standing for its subpool / cgroup charge failing,
   * which the kernel reports as -ENOSPC).
   */
  alloc(k: Kernel): number {
    if (this.free.length > 0 && k.shouldFail('alloc_hugetlb_folio')) return -1;
    const pfn = this.free.pop();
    if (pfn === undefined) return -1;
    k.pages.refcount[pfn] = 1;
    for (let i = 0; i < 512; i++) k.contents.zero(pfn + i);
    return pfn;
  }

  put(k: Kernel, pfn: number): void {
    if (k.pages.refcount[pfn] !== 0) pageBug(k, 'BUG', 'free_huge_folio with references', pfn, 'free_huge_folio');
    k.pages.mapping[pfn] = 0;
    this.markFree(k, pfn);
  }
}

/** free_huge_folio(): called by folio_put's free path for PG_hugetlb folios. */
export function freeHugetlbFolio(k: Kernel, head: number): void {
  k.hugetlb.put(k, head);
}

export { __GFP_ZERO };
