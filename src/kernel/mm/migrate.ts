// SPDX-License-Identifier: GPL-2.0-only
/**
 * Migration entries and folio migration helpers (mm/migrate.c, the parts
 * device migration uses).
 *
 * A migration entry replaces every mapping of a folio while it moves. It
 * names the source pfn and remembers what the mapping was:
 *   T_MIGRATION_WRITE            the PTE was writable (anon: exclusive too)
 *   T_MIGRATION_READ_EXCLUSIVE   read-only, anon page was PG_anon_exclusive
 *   T_MIGRATION_READ             read-only, possibly shared
 * plus _PAGE_ACCESSED / _PAGE_DIRTY (SWP_MIG_YOUNG / SWP_MIG_DIRTY) and the
 * soft-dirty / uffd-wp swap bits. A migration entry holds no mapcount and no
 * folio reference: try_to_migrate() / migrate_vma_collect dropped both when
 * they installed it; remove_migration_pte() takes them again for the folio it
 * maps (the destination on success, the source on failure).
 *
 * A CPU fault on a migration entry sleeps until the entry is gone
 * (migration_entry_wait(): the kernel sleeps on the folio lock, which the
 * migrating thread holds until remove_migration_ptes() ran).
 *
 * Locks: the folio being migrated is locked by the migrating thread for the
 * whole time its migration entries exist. Entry updates happen with the PTL
 * (pmd lock) held in the kernel; the model's rmap walks never yield, so the
 * table locks are implicit here.
 */
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../printk.js';
import { pageBug } from './debug.js';
import { EAGAIN, EBUSY } from '../errno.js';
import {
  type PmdTable, type PteTable, TYPE_MASK, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_MIGRATION_READ, T_MIGRATION_WRITE,
  T_PRESENT, T_TABLE, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PROTNONE, _PAGE_RW, _PAGE_SOFT_DIRTY, _PAGE_UFFD_WP, isMigrationType,
  pmdIndex, pmdTableOf, pteIndex, pteTableAlloc, pteTableOf,
} from './pgtable.js';
import { clearPmd, setPte, setPmdLeaf } from './pte_ops.js';
import {
  PG_anon, PG_dirty, PG_head, PG_locked, PG_swapbacked, PG_swapcache, PG_tail, PG_uptodate, PG_writeback, HPAGE_PMD_NR,
} from './page.js';
import { folioGet, folioRefAdd, kasanCheck } from './folio.js';
import { isDevicePrivatePage, MEMORY_DEVICE_PRIVATE } from './memremap.js';
import { folioAddAnonRmapPmd, folioAddAnonRmapPte, folioAddFileRmapPmd, folioAddFileRmapPte } from './rmap.js';
import { type AddressSpace, type AnonVma, type MmStruct, type Vma, VM_ACCESS_FLAGS } from './mm_types.js';
import { type K, waitUntil } from '../sched/sched.js';
import { mmapAssertLocked } from './mmap_lock.js';
import { folioAssertLocked } from './folio.js';

/* ttu_flags / rmp_flags (include/linux/rmap.h), kernel values. */
export const TTU_SPLIT_HUGE_PMD = 0x4;
export const TTU_IGNORE_MLOCK = 0x8;
export const TTU_SYNC = 0x10;
export const TTU_HWPOISON = 0x20;
export const TTU_BATCH_FLUSH = 0x40;
export const TTU_RMAP_LOCKED = 0x80;
export const TTU_USE_SHARED_ZEROPAGE = 0x100;

/**
 * The bits a migration entry keeps from the entry it replaces: young/dirty
 * of a present entry (make_migration_entry_young/dirty) and soft-dirty /
 * uffd-wp (pte_swp_mksoft_dirty / pte_swp_mkuffd_wp, same positions for a
 * non-present entry).
 */
export function migrationEntryBits(oldF: number): number {
  const present = (oldF & TYPE_MASK) === T_PRESENT;
  return (oldF & (_PAGE_SOFT_DIRTY | _PAGE_UFFD_WP)) | (present ? oldF & (_PAGE_ACCESSED | _PAGE_DIRTY) : 0);
}

/**
 * remove_migration_pte() at PTE level: (pt, i) holds a migration entry for a
 * page of `src`; map the corresponding page of `dst` instead, with the
 * permissions the entry recorded, over the VMA's vm_page_prot
 * (mk_pte(new, READ_ONCE(vma->vm_page_prot)): PROT_NONE in a VMA that
 * mprotect() made inaccessible while the entry existed). Takes the mapping's
 * reference on dst and the rmap (exclusive unless the entry was READ). A
 * device-private dst page
 * gets a device-private entry (writable iff the entry was writable) with the
 * soft-dirty / uffd-wp bits; young and dirty are lost, as in the kernel.
 */
function removeMigrationPte(k: Kernel, vma: Vma, addr: number, pt: PteTable, i: number, src: number, dst: number): void {
  const p = k.pages;
  const old = pt.f[i];
  const t = old & TYPE_MASK;
  const idx = pt.v[i] - src;
  const npfn = dst + idx;
  folioGet(k, dst);
  const write = t === T_MIGRATION_WRITE;
  let f = T_PRESENT;
  if (!(vma.flags & VM_ACCESS_FLAGS)) f |= _PAGE_PROTNONE; /* vm_page_prot == PAGE_NONE */
  if (old & _PAGE_ACCESSED) f |= _PAGE_ACCESSED;
  if ((p.flags[dst] & PG_dirty) && (old & _PAGE_DIRTY)) f |= _PAGE_DIRTY;
  if (old & _PAGE_SOFT_DIRTY) f |= _PAGE_SOFT_DIRTY;
  if (write) f |= _PAGE_RW;
  else if (old & _PAGE_UFFD_WP) f |= _PAGE_UFFD_WP;
  const anon = (p.flags[dst] & PG_anon) !== 0;
  const exclusive = anon && t !== T_MIGRATION_READ;
  if (isDevicePrivatePage(k, npfn)) {
    f = (write ? T_DEVICE_PRIVATE_WRITE : T_DEVICE_PRIVATE_READ) | (old & (_PAGE_SOFT_DIRTY | _PAGE_UFFD_WP));
  }
  if (anon) folioAddAnonRmapPte(k, npfn, vma, addr, exclusive);
  else folioAddFileRmapPte(k, npfn);
  setPte(pt, i, npfn, f, 'remove_migration_pte');
}

/**
 * remove_migration_pmd(): the PMD at (pmd, i) is a migration entry for the
 * (PMD-sized) folio src; map dst with one PMD entry (a device-private PMD
 * entry if dst is device-private) over the VMA's vm_page_prot
 * (folio_mk_pmd(folio, READ_ONCE(vma->vm_page_prot)) in mm/huge_memory.c:
 * PROT_NONE in an inaccessible VMA).
 */
function removeMigrationPmd(k: Kernel, vma: Vma, haddr: number, pmd: PmdTable, i: number, dst: number): void {
  const p = k.pages;
  const old = pmd.f[i];
  const t = old & TYPE_MASK;
  folioGet(k, dst);
  const write = t === T_MIGRATION_WRITE;
  let f = T_PRESENT;
  if (!(vma.flags & VM_ACCESS_FLAGS)) f |= _PAGE_PROTNONE; /* vm_page_prot == PAGE_NONE */
  if (old & _PAGE_SOFT_DIRTY) f |= _PAGE_SOFT_DIRTY;
  if (write) f |= _PAGE_RW;
  if (old & _PAGE_UFFD_WP) f |= _PAGE_UFFD_WP;
  if (old & _PAGE_ACCESSED) f |= _PAGE_ACCESSED;
  if ((p.flags[dst] & PG_dirty) && (old & _PAGE_DIRTY)) f |= _PAGE_DIRTY;
  if (isDevicePrivatePage(k, dst)) f = (write ? T_DEVICE_PRIVATE_WRITE : T_DEVICE_PRIVATE_READ) | (old & (_PAGE_SOFT_DIRTY | _PAGE_UFFD_WP));
  if (p.flags[dst] & PG_anon) folioAddAnonRmapPmd(k, dst, vma, haddr, t !== T_MIGRATION_READ);
  else folioAddFileRmapPmd(k, dst);
  setPmdLeaf(pmd, i, dst, f, 'remove_migration_pmd');
}

/** remove_migration_pte() for one VMA: the PMD or the PTEs of src's pages at addr. */
function removeMigrationPtesVma(k: Kernel, vma: Vma, addr: number, src: number, dst: number, nr: number): number {
  const mm = vma.mm;
  // PMD-level migration entry for the whole folio (page_vma_mapped_walk, PVMW_MIGRATION).
  if (nr === HPAGE_PMD_NR && addr % (HPAGE_PMD_NR * 4096) === 0) {
    const pmd = pmdTableOf(mm.pgd, addr, false);
    if (pmd !== null) {
      const i = pmdIndex(addr);
      if (isMigrationType(pmd.f[i] & TYPE_MASK) && pmd.v[i] === src) {
        removeMigrationPmd(k, vma, addr, pmd, i, dst);
        return 1;
      }
    }
  }
  let restored = 0;
  for (let j = 0; j < nr; j++) {
    const a = addr + j * 4096;
    if (a < vma.start || a >= vma.end) continue;
    const pt = pteTableOf(mm.pgd, a);
    if (pt === null) continue;
    const i = pteIndex(a);
    const t = pt.f[i] & TYPE_MASK;
    if (!isMigrationType(t)) continue;
    const v = pt.v[i];
    if (v < src || v >= src + nr) continue;
    removeMigrationPte(k, vma, a, pt, i, src, dst);
    restored++;
  }
  return restored;
}

/**
 * remove_migration_ptes(src, dst, flags): replace every migration entry that
 * points into folio `src` by a mapping of the same page of folio `dst`
 * (dst === src restores the original mapping after a failed migration).
 * The walk is an rmap walk of dst: dst must already carry src's mapping and
 * index (folio_migrate_mapping() copied them). Both folios are locked by the
 * caller; `locked` is TTU_RMAP_LOCKED (the caller holds the rmap lock; the
 * model's walk never yields, so it changes nothing). Takes one dst reference
 * per entry restored; returns the number of entries restored.
 */
export function removeMigrationPtes(k: Kernel, src: number, dst: number, locked = false): number {
  folioAssertLocked(k, src, 'remove_migration_ptes');
  folioAssertLocked(k, dst, 'remove_migration_ptes');
  void locked;
  const p = k.pages;
  src = p.folioPfn(src);
  dst = p.folioPfn(dst);
  kasanCheck(k, dst, 'remove_migration_ptes');
  const nr = p.folioNr(src);
  let restored = 0;
  // rmap_walk(dst): inline (no closure, no copy of the VMA set) since this
  // runs once per migrated page; nothing here changes the VMA sets.
  const id = p.mapping[dst];
  const m = id === 0 ? null : k.mappings[id];
  if (m === null || m === undefined) return 0;
  const idx = p.index[dst];
  const vmas = ((p.flags[dst] & PG_anon) ? (m as AnonVma).vmas : (m as AddressSpace).iMmap).list;
  for (let v = 0; v < vmas.length; v++) {
    const vma = vmas[v];
    const addr = vma.addressOf(idx);
    if (addr < 0) continue;
    restored += nr === 1 ? removeMigrationPteSmall(k, vma, addr, src, dst) : removeMigrationPtesVma(k, vma, addr, src, dst, nr);
  }
  return restored;
}

/**
 * page_vma_mapped_walk(PVMW_MIGRATION) matches a PMD migration entry by
 * range (check_pmd(): the entry's 512 pfns overlap the walked folio), not by
 * folio size: a small `src` that was one page of a THP whose other mappings
 * still hold a PMD migration entry (folio_split_unmapped() splits the folio
 * and split_huge_pmd_address() only the migrating VMA's PMD) is found at PMD
 * level, and remove_migration_pte() takes its PMD branch:
 * VM_BUG_ON_FOLIO(!folio_test_pmd_mappable(folio)) on the order-0 dst
 * (mm/migrate.c remove_migration_pte; without CONFIG_DEBUG_VM,
 * remove_migration_pmd() would map the order-0 dst with a PMD). The model
 * reports the BUG (docs/FINDINGS.md).
 */
function checkPmdMigrationOverSmall(k: Kernel, vma: Vma, addr: number, src: number, dst: number): void {
  const pmd = pmdTableOf(vma.mm.pgd, addr, false);
  if (pmd === null) return;
  const i = pmdIndex(addr);
  if (!isMigrationType(pmd.f[i] & TYPE_MASK)) return;
  const head = pmd.v[i];
  if (src < head || src >= head + HPAGE_PMD_NR) return;
  pageBug(k, 'BUG', 'remove_migration_pte: PMD migration entry over an order-0 folio', dst,
    `VM_BUG_ON_FOLIO(folio_test_hugetlb(folio) || !folio_test_pmd_mappable(folio)): the PMD migration entry of pfn 0x${head.toString(16)} at 0x${(addr - (addr % (HPAGE_PMD_NR * 4096))).toString(16)} in mm #${vma.mm.id} covers src pfn 0x${src.toString(16)}, a folio split by folio_split_unmapped() while this mapping stayed a PMD`);
}

/**
 * page_vma_mapped_walk() for a small folio: the one PTE at addr that may
 * hold its migration entry (a table walk without allocation), restored if
 * it does. Returns the entries restored (0 or 1).
 */
function removeMigrationPteSmall(k: Kernel, vma: Vma, addr: number, src: number, dst: number): number {
  const pt = pteTableOf(vma.mm.pgd, addr);
  if (pt === null) {
    checkPmdMigrationOverSmall(k, vma, addr, src, dst);
    return 0;
  }
  const i = pteIndex(addr);
  if (!isMigrationType(pt.f[i] & TYPE_MASK) || pt.v[i] !== src) return 0;
  removeMigrationPte(k, vma, addr, pt, i, src, dst);
  return 1;
}

/**
 * migration_entry_wait(mm, pmd, address): a CPU fault found a migration
 * entry at (pt, i). Sleep until the entry is gone (the migrating thread ran
 * remove_migration_ptes() and unlocked the folio); the caller then returns 0
 * and the fault is retried. Called with mmap_lock held for read, no PTL.
 * In run-to-completion mode a migration entry that nobody will remove is a
 * HANG (a leaked migration entry hangs the faulting task in the kernel too).
 */
export function* migrationEntryWait(mm: MmStruct, pt: PteTable, i: number): K<void> {
  mmapAssertLocked(mm, 'migration_entry_wait');
  const v = pt.v[i];
  const t = pt.f[i] & TYPE_MASK;
  if (!isMigrationType(t)) return;
  const s = mm.kernel.sched;
  if (s.exploring) yield s.point('migration_entry_wait', v);
  yield* waitUntil(s, `migration_entry_wait(pfn ${v})`, () => !isMigrationType(pt.f[i] & TYPE_MASK) || pt.v[i] !== v, v);
}

/** pmd_migration_entry_wait(): the PMD-level migration entry variant. */
export function* pmdMigrationEntryWait(mm: MmStruct, pmd: PmdTable, i: number): K<void> {
  const v = pmd.v[i];
  if (!isMigrationType(pmd.f[i] & TYPE_MASK)) return;
  const s = mm.kernel.sched;
  if (s.exploring) yield s.point('pmd_migration_entry_wait', v);
  yield* waitUntil(s, `pmd_migration_entry_wait(pfn ${v})`, () => !isMigrationType(pmd.f[i] & TYPE_MASK) || pmd.v[i] !== v, v);
}

/**
 * folio_expected_ref_count(): the references a folio's mappings and caches
 * account for: mapcount, plus the page cache (file) or swap cache (anon).
 */
export function folioExpectedRefCount(k: Kernel, head: number): number {
  const p = k.pages;
  const nr = p.folioNr(head);
  let ref = 0;
  if (p.flags[head] & PG_anon) {
    if (p.flags[head] & PG_swapcache) ref += nr;
  } else if (p.mapping[head] !== 0) ref += nr;
  return ref + p.folioMapcount(head);
}

/** folio_mapping(): the address_space of a file (or swap-cache) folio, else null. */
export function folioMapping(k: Kernel, head: number): AddressSpace | null {
  const p = k.pages;
  if (p.flags[head] & PG_anon) return null;
  const id = p.mapping[head];
  if (id === 0) return null;
  return (k.mappings[id] as AddressSpace | null) ?? null;
}

/**
 * folio_migrate_mapping(mapping, newfolio, folio, extra_count): the
 * refcount check and the transfer of the mapping. The folio's references
 * must be exactly expected_ref_count + extra_count + 1 (the caller's
 * isolation or collect reference); anything else (a GUP pin, an LRU batch,
 * a racing reference) is -EAGAIN and the folio does not migrate.
 * On success newfolio takes folio's mapping and index (every page) and, for
 * a page-cache folio, its page-cache slot and references. Both folios are
 * locked by the caller. Returns 0 or -EAGAIN.
 */
export function folioMigrateMapping(k: Kernel, newfolio: number, folio: number, extraCount: number): number {
  const p = k.pages;
  const mapping = folioMapping(k, folio);
  const expected = folioExpectedRefCount(k, folio) + extraCount + 1;
  if (p.refcount[folio] !== expected) return -EAGAIN;
  const nr = p.folioNr(folio);
  const nnr = p.folioNr(newfolio);
  const index = p.index[folio];
  if (nnr === 1) {
    p.mapping[newfolio] = p.mapping[folio];
    p.index[newfolio] = index;
    if (p.flags[folio] & PG_anon) p.flags[newfolio] |= PG_anon;
  } else {
    if (nnr === nr) p.mapping.copyWithin(newfolio, folio, folio + nr);
    else for (let i = 0; i < nnr; i++) p.mapping[newfolio + i] = p.mapping[folio + Math.min(i, nr - 1)];
    for (let i = 0; i < nnr; i++) p.index[newfolio + i] = index + i;
    if (p.flags[folio] & PG_anon) for (let i = 0; i < nnr; i++) p.flags[newfolio + i] |= PG_anon;
  }
  if (p.flags[folio] & PG_swapbacked) p.flags[newfolio] |= PG_swapbacked;
  else p.flags[newfolio] &= ~PG_swapbacked;
  if (mapping !== null) {
    // The page cache now points at newfolio and its references move with it.
    folioRefAdd(k, newfolio, nr);
    p.refcount[folio] -= nr;
    const idx = p.index[folio];
    if (mapping.pages.get(idx) === folio) mapping.pages.set(idx, newfolio);
    if (p.flags[folio] & PG_dirty) {
      p.flags[folio] &= ~PG_dirty;
      p.flags[newfolio] |= PG_dirty;
    }
  }
  return 0;
}

/**
 * folio_migrate_flags(newfolio, folio): copy the page state that migration
 * preserves (uptodate, dirty). PG_anon_exclusive is not copied: the
 * migration entries carry it and remove_migration_pte() restores it.
 */
export function folioMigrateFlags(k: Kernel, newfolio: number, folio: number): void {
  const p = k.pages;
  if (p.flags[folio] & PG_uptodate) p.flags[newfolio] |= PG_uptodate;
  if (p.flags[folio] & PG_dirty) p.flags[newfolio] |= PG_dirty;
}

/** folio_copy(dst, src): copy the contents of every page (copy_highpage per page). */
export function folioCopy(k: Kernel, dst: number, src: number): void {
  const p = k.pages;
  kasanCheck(k, dst, 'folio_copy (dst)');
  kasanCheck(k, src, 'folio_copy (src)');
  k.contents.copyRange(dst, src, p.folioNr(src));
}

/**
 * split_huge_pmd_address(vma, address, freeze=true) for a PMD that holds a
 * migration entry: replace it by a PTE table of 512 PTE migration entries of
 * the same kind (exclusive and write state per page as recorded), keeping
 * the soft-dirty / uffd-wp / young / dirty bits. Nothing else changes: the
 * folio holds no mapcount or reference for migration entries. Returns false
 * if the PMD is not a migration entry.
 */
export function splitPmdMigrationEntry(k: Kernel, vma: Vma, haddr: number): boolean {
  const mm = vma.mm;
  const pmd = pmdTableOf(mm.pgd, haddr, false);
  if (pmd === null) return false;
  const i = pmdIndex(haddr);
  const f = pmd.f[i];
  if (!isMigrationType(f & TYPE_MASK)) return false;
  const head = pmd.v[i];
  // pmd_populate() with the deposited table: the PMD becomes a table pointer.
  clearPmd(pmd, i, '__split_huge_pmd_locked');
  const pt = pteTableAllocFor(mm, pmd, i, haddr);
  for (let j = 0; j < HPAGE_PMD_NR; j++) setPte(pt, j, head + j, f, '__split_huge_pmd_locked');
  k.vmstat.thp_split_pmd++;
  return true;
}

function pteTableAllocFor(mm: MmStruct, pmd: PmdTable, i: number, addr: number): PteTable {
  const pt = pteTableAlloc(mm.pgd, pmd, i, addr);
  if (pt === null) throw new KernelBug('BUG', 'split of a PMD migration entry: no PTE table');
  return pt;
}

/**
 * folio_split_unmapped(folio, 0): split a locked, fully unmapped large
 * folio (every mapping is a migration entry) into order-0 folios. The head
 * keeps its references and its lock; every other page becomes a folio with
 * one reference (the equivalent of the isolation / collect reference of the
 * head) and is locked too, so finalize treats each as a collected page.
 * PG_anon_exclusive, mapping and index stay per page. For a device-private
 * folio the driver's ->folio_split(head, tail) is called per new folio (or
 * the pgmap and mapping are copied, zone_device_private_split_cb()).
 *
 * can_split_folio(folio, 1, &extra_pins) first (mainline now writes it as
 * folio_expected_ref_count(folio) != folio_ref_count(folio) - 1, the same
 * count): the folio must hold exactly the caller's reference plus its
 * swap-cache pins (mapcount is 0: migration entries hold none). In
 * mainline migrate_vma_split_unmapped_folio() takes a reference
 * (folio_get) that split_huge_pmd_address(freeze=true) drops again
 * (put_page of the frozen PMD), so what remains must be the collect /
 * isolation reference alone. A CPU fault's migrate_to_ram() has one more,
 * do_swap_page's / do_huge_pmd_device_private()'s get_page() on the fault
 * folio: there the split always fails with -EAGAIN (the model does not take
 * and drop the transient reference; it checks the count it would leave).
 * Returns 0, -EBUSY if the folio is still mapped or under writeback, or
 * -EAGAIN (can_split_folio()).
 */
export function folioSplitUnmapped(k: Kernel, head: number): number {
  const p = k.pages;
  const nr = p.folioNr(head);
  if (nr === 1) return 0;
  if (p.folioMapped(head) || (p.flags[head] & PG_writeback)) return -EBUSY;
  const extraPins = (p.flags[head] & PG_anon) && (p.flags[head] & PG_swapcache) ? nr : 0;
  if (p.refcount[head] !== 1 + extraPins) return -EAGAIN;
  if (!(p.flags[head] & PG_locked)) pageBug(k, 'BUG', 'folio_split_unmapped: folio not locked', head, 'VM_BUG_ON_FOLIO(!folio_test_locked(folio))');
  const keep = p.flags[head] & (PG_anon | PG_swapbacked | PG_uptodate | PG_dirty);
  const pg = p.pgmap[head] !== 0 ? k.pgmaps[p.pgmap[head]] : null;
  const devPrivate = pg !== null && pg !== undefined && pg.type === MEMORY_DEVICE_PRIVATE;
  for (let i = 0; i < nr; i++) {
    const pfn = head + i;
    p.order[pfn] = 0;
    p.flags[pfn] = (p.flags[pfn] & ~(PG_head | PG_tail)) | keep | PG_locked;
    if (i > 0) {
      p.refcount[pfn] = 1;
      p.entireMapcount[pfn] = 0;
      p.pincount[pfn] = 0;
      if (k.sched.lockdep !== null) k.sched.lockdep.folioInheritLock(pfn);
    }
  }
  p.entireMapcount[head] = 0;
  if (devPrivate && pg) {
    for (let i = 1; i < nr; i++) {
      if (pg.ops.folioSplit) pg.ops.folioSplit(head, head + i);
    }
  }
  k.vmstat.thp_split_page++;
  return 0;
}
