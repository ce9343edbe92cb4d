// SPDX-License-Identifier: GPL-2.0-only
/**
 * try_to_migrate() / try_to_unmap() (mm/rmap.c) and the PMD-level
 * set_pmd_migration_entry() (mm/huge_memory.c).
 *
 * try_to_migrate() replaces every mapping of a locked folio, in every mm,
 * by a migration entry: present PTEs, device-private entries (a page that
 * IS device-private gets a migration entry naming its own device pfn) and
 * device-exclusive entries (which hold a mapcount since 6.15). Each
 * replacement drops the mapping's mapcount and reference, and records
 * write / exclusive / young / dirty / soft-dirty / uffd-wp in the entry so
 * remove_migration_ptes() can restore the mapping exactly.
 *
 * Each mapping is invalidated with MMU_NOTIFY_CLEAR and no owner: a device
 * mirror sees a plain invalidation for pages reached this way (a page shared
 * after fork, or mapped outside the range being migrated).
 *
 * The caller holds the folio lock. The rmap walk never yields; the notifier
 * calls (which may block in a driver) happen between per-VMA steps.
 */
import type { Kernel } from '../kernel.js';
import { EBUSY } from '../errno.js';
import { pageBug } from './debug.js';
import {
  type PmdTable, T_DEVICE_EXCLUSIVE, T_DEVICE_PRIVATE_WRITE, T_MIGRATION_READ, T_MIGRATION_READ_EXCLUSIVE,
  T_MIGRATION_WRITE, T_PRESENT, _PAGE_DIRTY, _PAGE_RW, isDevicePrivateType, pmdIndex, pmdTableOf, pteIndex, pteTableOf,
  pmdTransHuge, ptePresent, pteType, pmdAligned,
} from './pgtable.js';
import { clearPte, setPmdLeaf, setPte } from './pte_ops.js';
import { HPAGE_PMD_NR, PG_anon, PG_anon_exclusive, PG_dirty } from './page.js';
import { folioMaybeDmaPinned, folioPut } from './folio.js';
import { folioRemoveRmapPmd, folioRemoveRmapPte, folioTryShareAnonRmapPte, rmapWalk } from './rmap.js';
import { MEMORY_DEVICE_COHERENT, MEMORY_DEVICE_PRIVATE, isDeviceCoherentPage } from './memremap.js';
import {
  MMU_NOTIFY_CLEAR, mmuNotifierInvalidateRangeEnd, mmuNotifierInvalidateRangeStart, mmuNotifierRangeInit,
} from './mmu_notifier.js';
import type { Vma } from './mm_types.js';
import type { K } from '../sched/sched.js';
import {
  TTU_BATCH_FLUSH, TTU_RMAP_LOCKED, TTU_SPLIT_HUGE_PMD, TTU_SYNC, migrationEntryBits, splitPmdMigrationEntry,
} from './migrate.js';
import { folioAssertLocked } from './folio.js';
import { lockdepAssertHeld, spinLock } from '../sched/locks.js';

/**
 * set_pmd_migration_entry(pvmw, page): replace the PMD mapping (pmd, i) of
 * the PMD-sized folio `head` (a present THP PMD or a device-private PMD
 * entry) by a PMD migration entry. Drops the PMD's rmap and reference.
 * Returns 0, or -EBUSY when the folio is anon-exclusive and may be pinned
 * (folio_try_share_anon_rmap_pmd() failed); the PMD is then unchanged.
 * Caller: folio locked, pmd lock held.
 */
export function setPmdMigrationEntry(k: Kernel, pmd: PmdTable, i: number, head: number): number {
  folioAssertLocked(k, head, 'set_pmd_migration_entry');
  lockdepAssertHeld(k.sched, pmd.lock, 'set_pmd_migration_entry');
  const p = k.pages;
  const old = pmd.f[i];
  const t = pteType(old);
  const present = t === T_PRESENT;
  const writable = present ? (old & _PAGE_RW) !== 0 : t === T_DEVICE_PRIVATE_WRITE;
  const anonExclusive = (p.flags[head] & PG_anon) !== 0 && (p.flags[head] & PG_anon_exclusive) !== 0;
  if (anonExclusive) {
    // folio_try_share_anon_rmap_pmd()
    if (folioMaybeDmaPinned(k, head)) return -EBUSY;
    const nr = p.folioNr(head);
    for (let j = 0; j < nr; j++) p.flags[head + j] &= ~PG_anon_exclusive;
  }
  if (present && (old & _PAGE_DIRTY)) p.flags[head] |= PG_dirty;
  const type = writable ? T_MIGRATION_WRITE : anonExclusive ? T_MIGRATION_READ_EXCLUSIVE : T_MIGRATION_READ;
  setPmdLeaf(pmd, i, head, type | migrationEntryBits(old), 'set_pmd_migration_entry');
  folioRemoveRmapPmd(k, head);
  folioPut(k, head);
  return 0;
}

/**
 * try_to_migrate_one() for one VMA: every PTE (or the PMD) in vma that maps a
 * page of `head` becomes a migration entry. Returns false when a mapping
 * could not be converted (anon-exclusive page that may be pinned): the walk
 * stops and the folio stays (partly) mapped, which the caller detects.
 */
function* tryToMigrateOne(k: Kernel, head: number, vma: Vma, addr: number, flags: number): K<boolean> {
  const p = k.pages;
  const mm = vma.mm;
  const nr = p.folioNr(head);
  const end = Math.min(addr + nr * 4096, vma.end);
  const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_CLEAR, Math.max(addr, vma.start), end, null);
  yield* mmuNotifierInvalidateRangeStart(range);
  let ret = true;
  const anon = (p.flags[head] & PG_anon) !== 0;
  // PMD-level mapping of a PMD-sized folio.
  if (nr === HPAGE_PMD_NR && pmdAligned(addr)) {
    const pmd = pmdTableOf(mm.pgd, addr, false);
    if (pmd !== null) {
      const i = pmdIndex(addr);
      // page_vma_mapped_walk() returns a PMD mapping with the pmd lock held
      // (pvmw.ptl = pmd_lock()): set_pmd_migration_entry() and
      // split_huge_pmd_locked() run under it.
      yield* spinLock(k.sched, pmd.lock);
      const t = pteType(pmd.f[i]);
      if ((t === T_PRESENT || isDevicePrivateType(t)) && pmd.v[i] === head) {
        if (setPmdMigrationEntry(k, pmd, i, head) !== 0) ret = false;
        // TTU_SPLIT_HUGE_PMD: split_huge_pmd_locked(freeze=true) gives the
        // same result as a PMD migration entry split into PTE entries.
        else if (flags & TTU_SPLIT_HUGE_PMD) splitPmdMigrationEntry(k, vma, addr);
        pmd.lock.unlock(k.sched);
        mmuNotifierInvalidateRangeEnd(range);
        return ret;
      }
      pmd.lock.unlock(k.sched);
    }
  }
  for (let j = 0; j < nr && ret; j++) {
    const a = addr + j * 4096;
    if (a < vma.start || a >= vma.end) continue;
    const pt = pteTableOf(mm.pgd, a);
    if (pt === null) continue;
    const i = pteIndex(a);
    const old = pt.f[i];
    const t = pteType(old);
    const sub = head + j;
    if (pt.v[i] !== sub) continue;
    const present = t === T_PRESENT;
    if (!present && !isDevicePrivateType(t) && t !== T_DEVICE_EXCLUSIVE) continue;
    const anonExclusive = anon && (p.flags[sub] & PG_anon_exclusive) !== 0;
    let writable: boolean;
    if (present) {
      clearPte(pt, i, 'try_to_migrate_one'); /* ptep_clear_flush() */
      if (old & _PAGE_DIRTY) p.flags[head] |= PG_dirty;
      writable = (old & _PAGE_RW) !== 0;
    } else {
      clearPte(pt, i, 'try_to_migrate_one'); /* pte_clear(): nothing cached for a non-present entry */
      writable = t === T_DEVICE_PRIVATE_WRITE;
    }
    let type: number;
    if (k.config.historical.ttm_coherent_as_private && isDeviceCoherentPage(k, sub)) {
      // The device-coherent series before review (review of "mm: add device
      // coherent checker to remove migration pte", 2022; mm/rmap.c:try_to_migrate_one()): try_to_migrate() let coherent folios through
      // but try_to_migrate_one() still took its folio_is_zone_device()
      // branch, written for device-private pages, which cannot be pinned:
      //   if (anon_exclusive) BUG_ON(page_try_share_anon_rmap(subpage));
      // and decodes the PRESENT pte of a coherent page as a swap entry, so
      // is_writable_device_private_entry() is false: a readable(-exclusive)
      // migration entry is made and write permission is lost.
      if (anonExclusive && folioTryShareAnonRmapPte(k, sub) !== 0) {
        pageBug(k, 'BUG', 'try_to_migrate_one: BUG_ON(page_try_share_anon_rmap(subpage)): a pinned device-coherent page in the device-private branch', sub, 'kernel BUG at mm/rmap.c: try_to_migrate_one');
      }
      type = anonExclusive ? T_MIGRATION_READ_EXCLUSIVE : T_MIGRATION_READ;
    } else {
      if (anonExclusive && folioTryShareAnonRmapPte(k, sub) !== 0) {
        setPte(pt, i, sub, old, 'try_to_migrate_one');
        ret = false;
        break;
      }
      type = writable ? T_MIGRATION_WRITE : anonExclusive ? T_MIGRATION_READ_EXCLUSIVE : T_MIGRATION_READ;
    }
    setPte(pt, i, sub, type | migrationEntryBits(old), 'try_to_migrate_one');
    folioRemoveRmapPte(k, sub);
    folioPut(k, head);
  }
  mmuNotifierInvalidateRangeEnd(range);
  return ret;
}

/**
 * try_to_migrate(folio, flags): replace every mapping of the locked folio
 * `head` by a migration entry (rmap walk over all VMAs that may map it;
 * stops early once the folio is unmapped). Device pages other than private
 * and coherent are left alone. Failures are not reported: the caller checks
 * folio_mapped() afterwards. Caller: holds the folio lock and a reference;
 * mmap_lock of the mms walked need not be held (rmap locks protect the walk).
 */
export function* tryToMigrate(k: Kernel, head: number, flags: number): K<void> {
  if (k.tracer !== null && k.tracer.enter('try_to_migrate')) return yield* k.tracer.span('try_to_migrate', head, tryToMigrate(k, head, flags));
  folioAssertLocked(k, head, 'try_to_migrate');
  const p = k.pages;
  head = p.folioPfn(head);
  if (flags & ~(TTU_RMAP_LOCKED | TTU_SPLIT_HUGE_PMD | TTU_SYNC | TTU_BATCH_FLUSH)) {
    k.printk.warn('try_to_migrate: invalid flags', `flags 0x${flags.toString(16)}`);
    return;
  }
  const g = p.pgmap[head];
  if (g !== 0) {
    const type = k.pgmaps[g]!.type;
    if (type !== MEMORY_DEVICE_PRIVATE && type !== MEMORY_DEVICE_COHERENT) return;
  }
  const targets: Array<[Vma, number]> = [];
  rmapWalk(k, head, (vma, addr) => {
    targets.push([vma, addr]);
    return true;
  });
  for (const [vma, addr] of targets) {
    if (!p.folioMapped(head)) break; /* .done = folio_not_mapped */
    const ok = yield* tryToMigrateOne(k, head, vma, addr, flags);
    if (!ok) break;
  }
}

/**
 * try_to_unmap(folio, flags): unmap every present PTE of a locked
 * page-cache (file) folio; the page cache keeps the data, so a later fault
 * maps it again. Anonymous folios need swap, which the model does not have:
 * they stay mapped (try_to_unmap_one() fails without a swap slot).
 * Device-private and device-exclusive entries are left alone.
 * Caller: folio locked, a reference held.
 */
export function* tryToUnmap(k: Kernel, head: number, flags: number): K<void> {
  folioAssertLocked(k, head, 'try_to_unmap');
  void flags;
  const p = k.pages;
  head = p.folioPfn(head);
  if (p.flags[head] & PG_anon) return;
  if (p.pgmap[head] !== 0) return;
  const nr = p.folioNr(head);
  const targets: Array<[Vma, number]> = [];
  rmapWalk(k, head, (vma, addr) => {
    targets.push([vma, addr]);
    return true;
  });
  for (const [vma, addr] of targets) {
    if (!p.folioMapped(head)) break;
    const mm = vma.mm;
    const end = Math.min(addr + nr * 4096, vma.end);
    const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_CLEAR, Math.max(addr, vma.start), end, null);
    yield* mmuNotifierInvalidateRangeStart(range);
    if (nr === HPAGE_PMD_NR && pmdAligned(addr)) {
      const pmd = pmdTableOf(mm.pgd, addr, false);
      const i = pmdIndex(addr);
      if (pmd !== null && pmdTransHuge(pmd.f[i]) && pmd.v[i] === head) {
        if (pmd.f[i] & _PAGE_DIRTY) p.flags[head] |= PG_dirty;
        setPmdLeaf(pmd, i, 0, 0, 'try_to_unmap_one');
        folioRemoveRmapPmd(k, head);
        mm.rss.shmem -= nr;
        folioPut(k, head);
      }
    }
    for (let j = 0; j < nr; j++) {
      const a = addr + j * 4096;
      if (a < vma.start || a >= vma.end) continue;
      const pt = pteTableOf(mm.pgd, a);
      if (pt === null) continue;
      const i = pteIndex(a);
      if (!ptePresent(pt.f[i]) || pt.v[i] !== head + j) continue;
      if (pt.f[i] & _PAGE_DIRTY) p.flags[head] |= PG_dirty;
      clearPte(pt, i, 'try_to_unmap_one');
      folioRemoveRmapPte(k, head + j);
      mm.rss.shmem--;
      folioPut(k, head);
    }
    mmuNotifierInvalidateRangeEnd(range);
  }
}
