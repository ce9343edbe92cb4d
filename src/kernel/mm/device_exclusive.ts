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
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../printk.js';
import { EBUSY, EOPNOTSUPP } from '../errno.js';
import type { K } from '../sched/sched.js';
import { spinLock } from '../sched/locks.js';
import { type MmStruct, type Vma, type VmFault, VM_ACCESS_FLAGS, VM_SHARED, VM_SOFTDIRTY, VM_WRITE } from './mm_types.js';
import {
  type PteTable, TYPE_MASK, T_DEVICE_EXCLUSIVE, T_PRESENT, _PAGE_DIRTY, _PAGE_PROTNONE, _PAGE_RW, _PAGE_SOFT_DIRTY,
  _PAGE_UFFD_WP, pteIndex, pteTableOf,
} from './pgtable.js';
import { setPte } from './pte_ops.js';
import { PAGE_SIZE, PG_anon, PG_anon_exclusive, PG_dirty, PG_hugetlb } from './page.js';
import { folioLock, folioPut, folioTryGet, folioTrylock, folioUnlock, folioTestLocked } from './folio.js';
import { MMU_NOTIFY_EXCLUSIVE, mmuNotifierInvalidateRangeEnd, mmuNotifierInvalidateRangeStart, mmuNotifierRangeInit } from './mmu_notifier.js';
import { FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_RETRY_NOWAIT, VM_FAULT_RETRY, vmNormalPage } from './memory.js';
import { FOLL_GET, FOLL_SPLIT_PMD, FOLL_WRITE, getUserPageVmaRemote } from './gup.js';
import { mmapAssertLocked, mmapAssertWriteLocked } from './mmap_lock.js';
import { lockdepAssertHeld } from '../sched/locks.js';

/** make_device_exclusive() retries (the kernel loops without bound) before the model reports a livelock. */
const MDE_MAX_RETRIES = 10000;

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
  if ((f & TYPE_MASK) !== T_DEVICE_EXCLUSIVE) throw new KernelBug('BUG', 'try_restore_exclusive_pte: not a device-exclusive entry', `${vma} addr 0x${addr.toString(16)}`);
  if (!folioTrylock(k, pfn)) return -EBUSY;
  restoreExclusivePte(vma, pfn, addr, pt, i, f);
  folioUnlock(k, pfn);
  return 0;
}

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
      if ((f & TYPE_MASK) === T_PRESENT && pt.v[i] === page && (f & _PAGE_RW)) {
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
