// SPDX-License-Identifier: GPL-2.0-only
/**
 * Reverse mapping (mm/rmap.c): mapcounts, PG_anon_exclusive, anon_vma
 * preparation and rmap walks.
 *
 * Every function is called with the PTL (or pmd lock) of the entry being
 * changed held by the caller; anon rmap additions for a folio that is already
 * mapped elsewhere also require the folio lock in the kernel (the model
 * checks it where the kernel has VM_BUG_ON).
 *
 * PG_anon_exclusive rules (6c287605fd "mm: remember exclusively mapped
 * anonymous pages with PG_anon_exclusive"; include/linux/rmap.h): new anon folios start exclusive;
 * a writable PTE implies exclusive; dup (fork) and share (migration to a
 * readable entry) clear it, and fail with -EBUSY if the folio may be pinned.
 */
import { pageBug } from './debug.js';
import type { Kernel } from '../kernel.js';
import { EBUSY } from '../errno.js';
import { PG_anon, PG_anon_exclusive, PG_swapbacked, PG_uptodate } from './page.js';
import type { AddressSpace, AnonVma, Vma } from './mm_types.js';
import { folioMaybeDmaPinned } from './folio.js';

/** __anon_vma_prepare(): give an anon VMA its anon_vma before the first anon folio. */
export function anonVmaPrepare(k: Kernel, vma: Vma): AnonVma {
  if (vma.anonVma === null) {
    const av = k.newAnonVma(null);
    av.vmas.add(vma);
    vma.anonVma = av;
  }
  return vma.anonVma;
}

function setAnonMapping(k: Kernel, head: number, vma: Vma, addr: number): void {
  const av = anonVmaPrepare(k, vma);
  const p = k.pages;
  const nr = p.folioNr(head);
  const idx = vma.linearPageIndex(addr);
  for (let i = 0; i < nr; i++) {
    p.mapping[head + i] = av.id;
    p.index[head + i] = idx + i;
    p.flags[head + i] |= PG_anon;
  }
  p.flags[head] |= PG_swapbacked | PG_uptodate;
}

/**
 * folio_add_new_anon_rmap(folio, vma, address, RMAP_EXCLUSIVE): a freshly
 * allocated folio (refcount held by the caller, not yet mapped) becomes
 * anonymous and exclusive. `pmd` maps the whole (PMD-sized) folio with one
 * PMD entry; otherwise every page of it is PTE-mapped once (an order-0
 * folio, or an mTHP folio mapped by set_ptes()), `addr` being the address
 * of its first page. Caller holds the PTE (or PMD) lock of the mapping.
 */
export function folioAddNewAnonRmap(k: Kernel, head: number, vma: Vma, addr: number, pmd: boolean): void {
  const p = k.pages;
  if (p.folioMapped(head)) pageBug(k, 'BUG', 'folio_add_new_anon_rmap: folio already mapped', head, 'VM_BUG_ON_FOLIO(folio_mapped)');
  const nr = p.folioNr(head);
  setAnonMapping(k, head, vma, addr);
  for (let i = 0; i < nr; i++) p.flags[head + i] |= PG_anon_exclusive;
  if (pmd) p.entireMapcount[head]++;
  else for (let i = 0; i < nr; i++) p.mapcount[head + i]++; /* a PTE-mapped large folio: every page mapped once */
}

/**
 * folio_add_anon_rmap_pte(folio, page, vma, address, flags): map one more
 * page of an already-anonymous folio (restoring a migration entry, COW
 * reuse, device-exclusive restore). `exclusive` (RMAP_EXCLUSIVE) sets
 * PG_anon_exclusive on the page.
 */
export function folioAddAnonRmapPte(k: Kernel, pfn: number, vma: Vma, addr: number, exclusive: boolean): void {
  const p = k.pages;
  const head = p.folioPfn(pfn);
  if (!(p.flags[head] & PG_anon)) setAnonMapping(k, head, vma, addr - (pfn - head) * 4096);
  p.mapcount[pfn]++;
  if (exclusive) p.flags[pfn] |= PG_anon_exclusive;
}

/** folio_add_anon_rmap_pmd() */
export function folioAddAnonRmapPmd(k: Kernel, head: number, vma: Vma, addr: number, exclusive: boolean): void {
  const p = k.pages;
  if (!(p.flags[head] & PG_anon)) setAnonMapping(k, head, vma, addr);
  p.entireMapcount[head]++;
  if (exclusive) {
    const nr = p.folioNr(head);
    for (let i = 0; i < nr; i++) p.flags[head + i] |= PG_anon_exclusive;
  }
}

/** folio_add_file_rmap_pte(): a page-cache page gets one more PTE mapping. */
export function folioAddFileRmapPte(k: Kernel, pfn: number): void {
  k.pages.mapcount[pfn]++;
}

/** folio_add_file_rmap_pmd() */
export function folioAddFileRmapPmd(k: Kernel, head: number): void {
  k.pages.entireMapcount[head]++;
}

/**
 * folio_remove_rmap_pte(): one PTE mapping of the page is gone. Underflow is
 * a BUG (the kernel's "Bad page map").
 */
export function folioRemoveRmapPte(k: Kernel, pfn: number): void {
  const p = k.pages;
  if (p.mapcount[pfn] <= 0) pageBug(k, 'BUG', 'folio_remove_rmap_pte: mapcount underflow (Bad page map)', pfn, 'page_mapcount < 0');
  p.mapcount[pfn]--;
}

/** folio_remove_rmap_pmd() */
export function folioRemoveRmapPmd(k: Kernel, head: number): void {
  const p = k.pages;
  if (p.entireMapcount[head] <= 0) pageBug(k, 'BUG', 'folio_remove_rmap_pmd: entire mapcount underflow', head, 'entire_mapcount < 0');
  p.entireMapcount[head]--;
}

/**
 * folio_try_dup_anon_rmap_pte() (fork): the child maps the page too. If the
 * page is PG_anon_exclusive and the folio may be pinned, fail with -EBUSY:
 * the caller must copy the page for the child (a pinned page stays exclusive
 * to the parent). Otherwise clear PG_anon_exclusive and count the mapping.
 */
export function folioTryDupAnonRmapPte(k: Kernel, pfn: number): number {
  const p = k.pages;
  if (p.flags[pfn] & PG_anon_exclusive) {
    if (folioMaybeDmaPinned(k, pfn)) return -EBUSY;
    p.flags[pfn] &= ~PG_anon_exclusive;
  }
  p.mapcount[pfn]++;
  return 0;
}

/** folio_try_dup_anon_rmap_pmd() */
export function folioTryDupAnonRmapPmd(k: Kernel, head: number): number {
  const p = k.pages;
  const nr = p.folioNr(head);
  if (p.flags[head] & PG_anon_exclusive) {
    if (folioMaybeDmaPinned(k, head)) return -EBUSY;
    for (let i = 0; i < nr; i++) p.flags[head + i] &= ~PG_anon_exclusive;
  }
  p.entireMapcount[head]++;
  return 0;
}

/** folio_dup_file_rmap_pte() (fork of a file mapping). */
export function folioDupFileRmapPte(k: Kernel, pfn: number): void {
  k.pages.mapcount[pfn]++;
}

/**
 * folio_try_share_anon_rmap_pte(): before replacing an exclusive PTE by a
 * non-exclusive (readable) migration entry, or for GUP-fast. -EBUSY if the
 * folio may be pinned (the page must stay exclusive); else clears
 * PG_anon_exclusive.
 */
export function folioTryShareAnonRmapPte(k: Kernel, pfn: number): number {
  const p = k.pages;
  if (!(p.flags[pfn] & PG_anon_exclusive)) return 0;
  if (folioMaybeDmaPinned(k, pfn)) return -EBUSY;
  p.flags[pfn] &= ~PG_anon_exclusive;
  return 0;
}

/** PageAnonExclusive() */
export function pageAnonExclusive(k: Kernel, pfn: number): boolean {
  return (k.pages.flags[pfn] & PG_anon_exclusive) !== 0;
}

/**
 * rmap_walk(): call `visit(vma, address)` for every VMA that may map the
 * page `pfn` (anon: every VMA chained to the folio's anon_vma; file: the
 * mapping's i_mmap), at the address the page would have there. Stops early
 * when visit returns false. The visitor checks the page table itself.
 */
export function rmapWalk(k: Kernel, pfn: number, visit: (vma: Vma, addr: number) => boolean): void {
  const p = k.pages;
  const id = p.mapping[pfn];
  if (id === 0) return;
  const m = k.mappings[id];
  if (m === null || m === undefined) return;
  const idx = p.index[pfn];
  const vmas: Iterable<Vma> = (p.flags[p.folioPfn(pfn)] & PG_anon) ? (m as AnonVma).vmas : (m as AddressSpace).iMmap;
  for (const vma of [...vmas]) {
    const a = vma.addressOf(idx);
    if (a < 0) continue;
    if (!visit(vma, a)) return;
  }
}

/**
 * The failure half of anon_vma_prepare() (__anon_vma_prepare(): anon_vma_alloc()
 * or anon_vma_chain_alloc() returns NULL -> -ENOMEM): true when the VMA has no
 * anon_vma yet and the allocation fails (fault injection at 'anon_vma_prepare').
 * A VMA that has one allocates nothing and cannot fail. Callers ask before
 * anonVmaPrepare(), which then cannot fail.
 */
export function anonVmaPrepareFails(k: Kernel, vma: Vma): boolean {
  return vma.anonVma === null && k.shouldFail('anon_vma_prepare');
}
