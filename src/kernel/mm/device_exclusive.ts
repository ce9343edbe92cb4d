// SPDX-License-Identifier: GPL-2.0-only
/**
 * Device-exclusive entries (mm/rmap.c make_device_exclusive(), mm/memory.c
 * remove_device_exclusive_entry() / restore_exclusive_pte() /
 * try_restore_exclusive_pte()), mainline semantics (6.15+).
 *
 * A driver that needs atomic access to one anon page from its device asks
 * make_device_exclusive(): the page's writable PTE is replaced by a
 * DEVICE_EXCLUSIVE entry naming the same pfn. The page stays mapped for
 * rmap purposes: its mapcount and the mapping's reference are untouched.
 * Any CPU access faults; the fault (remove_device_exclusive_entry) notifies
 * the device with MMU_NOTIFY_EXCLUSIVE (owner NULL) and restores a present
 * PTE. Fork restores the PTE in the parent first (try_restore_exclusive_pte).
 *
 * Rules for the other walkers of the page tables (not implemented here):
 *  - mprotect (change_pte_range, non-present branch): leave a
 *    DEVICE_EXCLUSIVE entry unchanged (only uffd-wp may be set/cleared on
 *    it); writability is decided later by restore_exclusive_pte() from the
 *    VMA's flags at restore time. (Before 6.15 a "writable" exclusive entry
 *    was downgraded.)
 *  - zap (zap_nonpresent_ptes): like a device-private entry: if
 *    should_zap_folio(), rss[anon]--, folio_remove_rmap_pte(),
 *    folio_put() (the mapping's reference), clear the entry; the event is
 *    the caller's (UNMAP for munmap/exit, CLEAR for MADV_DONTNEED).
 *  - fork (copy_nonpresent_pte): VM_BUG_ON(!is_cow_mapping(src)); call
 *    tryRestoreExclusivePte(src_vma, addr, pt, i): 0 -> re-read the now
 *    present PTE and copy it as present (write-protecting both sides,
 *    dup'ing the rmap); -EBUSY (folio locked by a driver) -> stop; fork()
 *    fails with -ENOMEM.
 *  - hmm_range_fault: reports 0 without REQ_FAULT, else faults it (hmm.ts);
 *    GUP slow path faults it; GUP-fast falls back (not present).
 */

import { KernelBug } from '../printk.js';
import { EOPNOTSUPP } from '../errno.js';
import type { K } from '../sched/sched.js';
import { spinLock } from '../sched/locks.js';
import type { MmStruct } from './mm_types.js';
import {
  T_DEVICE_EXCLUSIVE, _PAGE_DIRTY, _PAGE_PROTNONE, _PAGE_RW, _PAGE_SOFT_DIRTY, _PAGE_UFFD_WP, pteIndex, pteTableOf,
  ptePresent,
} from './pgtable.js';
import { setPte } from './pte_ops.js';
import { PAGE_SIZE, PG_anon, PG_dirty, PG_hugetlb } from './page.js';
import { folioLock, folioPut, folioUnlock } from './folio.js';
import { MMU_NOTIFY_EXCLUSIVE, mmuNotifierInvalidateRangeEnd, mmuNotifierInvalidateRangeStart, mmuNotifierRangeInit } from './mmu_notifier.js';
/* The fault side (remove_device_exclusive_entry, restore_exclusive_pte, try_restore_exclusive_pte) is in mm/memory.c: memory.ts. */
export { removeDeviceExclusiveEntry, restoreExclusivePte, tryRestoreExclusivePte } from './memory.js';
import { FOLL_GET, FOLL_SPLIT_PMD, FOLL_WRITE, getUserPageVmaRemote } from './gup.js';
import { mmapAssertLocked } from './mmap_lock.js';


/** make_device_exclusive() retries (the kernel loops without bound) before the model reports a livelock. */
const MDE_MAX_RETRIES = 10000;

/**
 * make_device_exclusive(mm, addr, owner, &folio) (mainline, 6.15+).
 *
 * Caller holds mmap_lock of mm (read is enough). GUPs the page for write
 * (FOLL_GET | FOLL_WRITE | FOLL_SPLIT_PMD: COW is broken, a THP split, an
 * existing exclusive entry restored first), rejects non-anon and hugetlb
 * folios with -EOPNOTSUPP, locks the folio, fires MMU_NOTIFY_EXCLUSIVE with
 * `owner` (the caller's notifier must ignore its own event or it livelocks),
 * rechecks that the PTE still maps the page writable (else starts over) and
 * installs the DEVICE_EXCLUSIVE entry (soft-dirty carried, folio dirtied if
 * the PTE was dirty).
 *
 * On success returns {page} with the folio LOCKED and one extra REFERENCE
 * (from GUP): the driver maps the page in its device under its notifier
 * lock, then calls folioUnlock() and folioPut(). On failure {err: -errno}
 * (GUP's errors, -EOPNOTSUPP), with no lock or reference held.
 */
export function* makeDeviceExclusive(mm: MmStruct, addr: number, owner: unknown): K<{ page: number } | { err: number }> {
  const k = mm.kernel;
  const s = k.sched;
  mmapAssertLocked(mm, 'make_device_exclusive');
  if (!mm.mmapLock.isLocked()) throw new KernelBug('LOCKDEP', 'make_device_exclusive: mmap_assert_locked(mm) failed', `mm #${mm.id}`);
  addr -= addr % PAGE_SIZE;
  for (let tries = 0; ; tries++) {
    if (tries > MDE_MAX_RETRIES) throw new KernelBug('HANG', `make_device_exclusive: 0x${addr.toString(16)} never stays writable (retried ${tries} times; the kernel loops forever)`);
    const page = yield* getUserPageVmaRemote(mm, addr, FOLL_GET | FOLL_WRITE | FOLL_SPLIT_PMD);
    if (page < 0) return { err: page };
    const p = k.pages;
    const head = p.folioPfn(page);
    if (!(p.flags[head] & PG_anon) || (p.flags[head] & PG_hugetlb)) {
      folioPut(k, head);
      return { err: -EOPNOTSUPP };
    }
    yield* folioLock(k, head); /* folio_lock_killable(): no fatal signals in the model */
    const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_EXCLUSIVE, addr, addr + PAGE_SIZE, owner);
    yield* mmuNotifierInvalidateRangeStart(range);
    // folio_walk_start(): the PTE must still map this page, writable.
    const pt = pteTableOf(mm.pgd, addr);
    let ok = false;
    if (pt !== null) {
      yield* spinLock(k.sched, pt.ptl);
      const i = pteIndex(addr);
      const f = pt.f[i];
      if (ptePresent(f) && pt.v[i] === page && (f & _PAGE_RW)) {
        /* ptep_clear_flush(), then the device-exclusive swap PTE */
        if (f & _PAGE_DIRTY) p.flags[head] |= PG_dirty;
        setPte(pt, i, page, T_DEVICE_EXCLUSIVE | (f & _PAGE_SOFT_DIRTY), 'make_device_exclusive');
        ok = true;
      }
      pt.ptl.unlock(s);
    }
    mmuNotifierInvalidateRangeEnd(range);
    if (ok) return { page };
    folioUnlock(k, head);
    folioPut(k, head);
    if (s.exploring) yield s.point('make_device_exclusive: retry', addr);
  }
}

