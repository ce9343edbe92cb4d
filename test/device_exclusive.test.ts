// SPDX-License-Identifier: GPL-2.0-only
/**
 * make_device_exclusive() and the life of a device-exclusive entry: the
 * notifier with the caller's owner, the locked+referenced folio handed to
 * the driver, the CPU fault that notifies (owner NULL) and restores, the
 * driver's lock keeping the CPU off, fork, mprotect and munmap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PAGE, cpu, mkEnv, pte, run, storePage, type Env } from './migrate_helpers.js';
import { makeDeviceExclusive, removeDeviceExclusiveEntry, tryRestoreExclusivePte } from '../src/kernel/mm/device_exclusive.js';
import {
  MMU_NOTIFY_EXCLUSIVE, MmuIntervalNotifier, type MmuNotifierRange, mmuIntervalNotifierInsert, mmuIntervalReadBegin,
  mmuIntervalReadRetry, mmuIntervalSetSeq,
} from '../src/kernel/mm/mmu_notifier.js';
import { EBUSY, EFAULT, ENOMEM, EOPNOTSUPP } from '../src/kernel/errno.js';
import { T_DEVICE_EXCLUSIVE, T_PRESENT, _PAGE_RW, _PAGE_SOFT_DIRTY, pteType } from '../src/kernel/mm/pgtable.js';
import { VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_SHARED, VM_MAYSHARE, VM_SOFTDIRTY, VM_WRITE } from '../src/kernel/mm/mm_types.js';
import { PG_locked } from '../src/kernel/mm/page.js';
import { MMU_NOTIFY_PROTECTION_PAGE, mmuNotifierRangeInit, mmuNotifierInvalidateRangeStart, mmuNotifierInvalidateRangeEnd } from '../src/kernel/mm/mmu_notifier.js';
import { folioPut, folioTrylock, folioUnlock } from '../src/kernel/mm/folio.js';
import { KernelBug } from '../src/kernel/printk.js';
import type { K } from '../src/kernel/sched/sched.js';
import { checkInvariants } from '../src/kernel/mm/debug_vm.js';
import { FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_RETRY_NOWAIT, VM_FAULT_RETRY } from '../src/kernel/mm/memory.js';

const RW = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE;

function locked<T>(e: Env, g: K<T>): T {
  const s = e.k.sched;
  assert.ok(e.mm.mmapLock.tryReadFast(s));
  try {
    return run(e.k, g);
  } finally {
    e.mm.mmapLock.readUnlock(s);
  }
}

function recorder(e: Env, self: unknown): { sub: MmuIntervalNotifier; events: Array<{ event: number; owner: unknown }> } {
  const events: Array<{ event: number; owner: unknown }> = [];
  const sub = new MmuIntervalNotifier(e.mm, e.vma.start, e.vma.end - 1, {
    *invalidate(s: MmuIntervalNotifier, r: MmuNotifierRange, cur: number) {
      events.push({ event: r.event, owner: r.owner });
      if (r.event === MMU_NOTIFY_EXCLUSIVE && r.owner === self) return true; /* our own: ignore (else livelock) */
      mmuIntervalSetSeq(s, cur);
      return true;
    },
  });
  mmuIntervalNotifierInsert(sub);
  return { sub, events };
}

/** make_device_exclusive + the driver's unlock/put. Returns the pfn. */
function exclusive(e: Env, addr: number, owner: unknown): number {
  const r = locked(e, makeDeviceExclusive(e.mm, addr, owner));
  assert.ok('page' in r, `make_device_exclusive failed: ${'err' in r ? r.err : ''}`);
  folioUnlock(e.k, r.page);
  folioPut(e.k, r.page);
  return r.page;
}

test('make_device_exclusive: EXCLUSIVE notifier with the owner, folio returned locked with a reference, mapcount kept', () => {
  const e = mkEnv(2);
  const self = { name: 'drv' };
  const m = recorder(e, self);
  storePage(e.mm, e.vma.start, 5);
  const pfn = pte(e.mm, e.vma.start)[0];
  const sum = e.k.contents.checksum(pfn);
  e.k.lru.drain();
  const ref0 = e.k.pages.refcount[pfn];
  const seq = run(e.k, mmuIntervalReadBegin(m.sub));
  const r = locked(e, makeDeviceExclusive(e.mm, e.vma.start + 123, self));
  assert.ok('page' in r);
  assert.equal(r.page, pfn);
  assert.ok(e.k.pages.flags[pfn] & PG_locked, 'returned locked');
  assert.equal(e.k.pages.refcount[pfn], ref0 + 1, 'returned with a GUP reference');
  assert.equal(e.k.pages.mapcount[pfn], 1, 'the entry still counts as a mapping');
  const [v, f] = pte(e.mm, e.vma.start);
  assert.equal(pteType(f), T_DEVICE_EXCLUSIVE);
  assert.equal(v, pfn);
  assert.deepEqual(m.events, [{ event: MMU_NOTIFY_EXCLUSIVE, owner: self }]);
  assert.equal(mmuIntervalReadRetry(m.sub, seq), false, 'the driver filtered its own event');
  folioUnlock(e.k, pfn);
  folioPut(e.k, pfn);
  assert.equal(e.k.pages.refcount[pfn], ref0);
  assert.equal(e.k.contents.checksum(pfn), sum);
  assert.deepEqual(e.k.printk.warnings, []);
  checkInvariants(e.k, 'exclusive entry installed');
});

test('CPU access faults, notifies EXCLUSIVE with owner NULL and restores the PTE (writable when allowed)', () => {
  const e = mkEnv(2, { flags: RW | VM_SOFTDIRTY });
  const self = { name: 'drv' };
  const m = recorder(e, self);
  storePage(e.mm, e.vma.start, 9);
  const pfn = exclusive(e, e.vma.start, self);
  m.events.length = 0;
  const seq = run(e.k, mmuIntervalReadBegin(m.sub));
  assert.equal(cpu(e.mm, e.vma.start, false), pfn);
  assert.deepEqual(m.events, [{ event: MMU_NOTIFY_EXCLUSIVE, owner: null }]);
  assert.equal(mmuIntervalReadRetry(m.sub, seq), true, 'the device mapping was invalidated');
  const [v, f] = pte(e.mm, e.vma.start);
  assert.equal(v, pfn);
  assert.equal(pteType(f), T_PRESENT);
  assert.ok(f & _PAGE_RW, 'exclusive anon page in a writable VMA: restored writable');
  assert.equal(e.k.pages.mapcount[pfn], 1);
  assert.equal(e.k.pages.flags[pfn] & PG_locked, 0);
  checkInvariants(e.k, 'restored');
});

test('restore keeps soft-dirty; with soft-dirty tracking armed and a clean entry it restores read-only', () => {
  const e = mkEnv(2); // VM_SOFTDIRTY clear: tracking armed
  storePage(e.mm, e.vma.start, 1);
  const pfn = exclusive(e, e.vma.start, null);
  cpu(e.mm, e.vma.start, false);
  const f = pte(e.mm, e.vma.start)[1];
  assert.equal(pteType(f), T_PRESENT);
  assert.equal(f & _PAGE_RW, 0, 'a write fault is needed to record soft-dirty');
  // The write fault reuses the exclusive page in place.
  assert.equal(cpu(e.mm, e.vma.start, true), pfn);
  // Soft-dirty on the original PTE is carried through the entry.
  const e2 = mkEnv(1);
  storePage(e2.mm, e2.vma.start, 1);
  const pt = (e2.mm.pgd.pud.find((x) => x !== null)!.pmd.find((x) => x !== null)!.pte.find((x) => x !== null))!;
  const i = (e2.vma.start / PAGE) % 512;
  pt.f[i] |= _PAGE_SOFT_DIRTY;
  exclusive(e2, e2.vma.start, null);
  assert.ok(pte(e2.mm, e2.vma.start)[1] & _PAGE_SOFT_DIRTY, 'entry carries soft-dirty');
  cpu(e2.mm, e2.vma.start, false);
  const f2 = pte(e2.mm, e2.vma.start)[1];
  assert.ok((f2 & _PAGE_SOFT_DIRTY) && (f2 & _PAGE_RW), 'soft-dirty restored, so writable at once');
});

test('an unpopulated page is faulted in for write; the zero page is COW-broken first', () => {
  const e = mkEnv(2);
  const pfn = exclusive(e, e.vma.start, null);
  assert.ok(e.k.buddy.isRam(pfn));
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_DEVICE_EXCLUSIVE);
  cpu(e.mm, e.vma.start + PAGE, false);
  assert.equal(pte(e.mm, e.vma.start + PAGE)[0], e.k.zeroPfn);
  const pfn2 = exclusive(e, e.vma.start + PAGE, null);
  assert.notEqual(pfn2, e.k.zeroPfn);
});

test('errors: -EFAULT without a VMA or write permission, -EOPNOTSUPP for a shared (non-anon) page', () => {
  const e = mkEnv(1);
  let r = locked(e, makeDeviceExclusive(e.mm, e.vma.end, null));
  assert.deepEqual(r, { err: -EFAULT });
  const ro = mkEnv(1, { flags: VM_READ | VM_MAYREAD });
  r = locked(ro, makeDeviceExclusive(ro.mm, ro.vma.start, null));
  assert.deepEqual(r, { err: -EFAULT });
  // A shmem page (shared mapping of a tmpfs object).
  const sh = mkEnv(1, { flags: RW | VM_SHARED | VM_MAYSHARE });
  const as = sh.k.newAddressSpace('shmem');
  as.size = PAGE;
  sh.vma.file = as;
  sh.vma.pgoff = 0;
  as.iMmap.add(sh.vma);
  r = locked(sh, makeDeviceExclusive(sh.mm, sh.vma.start, null));
  assert.deepEqual(r, { err: -EOPNOTSUPP });
  const pfn = pte(sh.mm, sh.vma.start)[0];
  assert.equal(sh.k.pages.flags[pfn] & PG_locked, 0, 'no lock left behind');
});

test('the driver holding the folio lock keeps the CPU off (the fault sleeps; NOWAIT gets VM_FAULT_RETRY)', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 1);
  const r = locked(e, makeDeviceExclusive(e.mm, e.vma.start, null));
  assert.ok('page' in r);
  // The driver keeps the folio locked in its own context, not the CPU's thread (lockdep).
  e.k.sched.lockdep?.folioDisown(r.page);
  // Run to completion: nobody else can unlock, so the sleeping fault is a HANG.
  assert.throws(() => cpu(e.mm, e.vma.start, false), (x: unknown) => x instanceof KernelBug && x.kind === 'HANG');
  const [v, f] = pte(e.mm, e.vma.start);
  const vmf = { vma: e.vma, address: e.vma.start, realAddress: e.vma.start, flags: FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_RETRY_NOWAIT, page: v, origV: v, origF: f, pmdLevel: false };
  assert.equal(locked(e, removeDeviceExclusiveEntry(vmf)), VM_FAULT_RETRY);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_DEVICE_EXCLUSIVE);
  folioUnlock(e.k, r.page);
  folioPut(e.k, r.page);
  assert.equal(cpu(e.mm, e.vma.start, true), r.page);
});

test('fork restores the entry in the parent (try_restore_exclusive_pte); a locked folio makes fork fail -ENOMEM', async () => {
  const { dupMmap } = await import('../src/kernel/mm/fork.js');
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 3);
  const pfn = exclusive(e, e.vma.start, null);
  const child = e.k.newMm();
  assert.equal(run(e.k, dupMmap(e.mm, child)), 0);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_PRESENT);
  assert.equal(pte(child, e.vma.start)[0], pfn, 'the child shares the page (COW)');
  assert.equal(e.k.pages.mapcount[pfn], 2);
  checkInvariants(e.k, 'fork');

  const e2 = mkEnv(1);
  storePage(e2.mm, e2.vma.start, 3);
  const r = locked(e2, makeDeviceExclusive(e2.mm, e2.vma.start, null));
  assert.ok('page' in r);
  e2.k.sched.lockdep?.folioDisown(r.page); /* held by the driver's context, not fork's (lockdep) */
  const child2 = e2.k.newMm();
  assert.equal(run(e2.k, dupMmap(e2.mm, child2)), -ENOMEM);
  assert.equal(pteType(pte(e2.mm, e2.vma.start)[1]), T_DEVICE_EXCLUSIVE);
  folioUnlock(e2.k, r.page);
  folioPut(e2.k, r.page);
});

test('try_restore_exclusive_pte directly: -EBUSY while locked, 0 and restored after', () => {
  const e = mkEnv(1, { flags: RW | VM_SOFTDIRTY });
  storePage(e.mm, e.vma.start, 3);
  const pfn = exclusive(e, e.vma.start, null);
  const pmdT = e.mm.pgd.pud.find((x) => x !== null)!.pmd.find((x) => x !== null)!;
  const pt = pmdT.pte.find((x) => x !== null)!;
  const i = (e.vma.start / PAGE) % 512;
  // Its caller, copy_page_range(), runs it inside an MMU_NOTIFY_PROTECTION_PAGE range.
  const range = mmuNotifierRangeInit(e.mm, MMU_NOTIFY_PROTECTION_PAGE, e.vma.start, e.vma.end);
  run(e.k, mmuNotifierInvalidateRangeStart(range));
  assert.ok(folioTrylock(e.k, pfn));
  e.k.sched.lockdep?.folioDisown(pfn); /* a driver holds it, in its own context */
  // fork calls it with mmap_lock (write) and the PTL held (copy_nonpresent_pte).
  const s = e.k.sched;
  assert.ok(e.mm.mmapLock.tryWriteFast(s));
  assert.ok(pt.ptl.trylock(s));
  assert.equal(tryRestoreExclusivePte(e.vma, e.vma.start, pt, i), -EBUSY);
  folioUnlock(e.k, pfn);
  assert.equal(tryRestoreExclusivePte(e.vma, e.vma.start, pt, i), 0);
  pt.ptl.unlock(s);
  mmuNotifierInvalidateRangeEnd(range);
  e.mm.mmapLock.writeUnlock(s);
  assert.equal(pteType(pt.f[i]), T_PRESENT);
  assert.ok(pt.f[i] & _PAGE_RW);
});

test('mprotect leaves the entry alone; the restore then follows the new VMA protection', async () => {
  const { doMprotect } = await import('../src/kernel/mm/mprotect.js');
  const e = mkEnv(1, { flags: RW | VM_SOFTDIRTY });
  storePage(e.mm, e.vma.start, 3);
  const pfn = exclusive(e, e.vma.start, null);
  const before = pte(e.mm, e.vma.start);
  assert.equal(run(e.k, doMprotect(e.mm, e.vma.start, PAGE, 1 /* PROT_READ */)), 0);
  assert.deepEqual(pte(e.mm, e.vma.start), before, 'device-exclusive entries are not changed by mprotect');
  assert.equal(cpu(e.mm, e.vma.start, false), pfn);
  const f = pte(e.mm, e.vma.start)[1];
  assert.equal(pteType(f), T_PRESENT);
  assert.equal(f & _PAGE_RW, 0, 'restored read-only: VM_WRITE is gone');
});

test('munmap of a device-exclusive entry drops the mapping and its reference', async () => {
  const { zapPageRange } = await import('../src/kernel/mm/zap.js');
  const e = mkEnv(2);
  storePage(e.mm, e.vma.start, 3);
  const pfn = exclusive(e, e.vma.start, null);
  e.k.lru.drain();
  const ref = e.k.pages.refcount[pfn];
  locked(e, zapPageRange(e.vma, e.vma.start, e.vma.end));
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), 0);
  assert.equal(e.k.pages.mapcount[pfn], 0);
  assert.equal(e.k.pages.refcount[pfn], ref - 1, 'the mapping reference was dropped');
  checkInvariants(e.k, 'zap');
});

test('a PMD-mapped THP is split to PTEs (FOLL_SPLIT_PMD) and one PTE becomes exclusive', () => {
  const e = mkEnv(512, { hugepage: true, flags: RW | VM_SOFTDIRTY | 0x20000000 /* VM_HUGEPAGE */ });
  storePage(e.mm, e.vma.start, 1);
  const head = e.k.pages.folioPfn(cpu(e.mm, e.vma.start, false));
  assert.equal(e.k.pages.order[head], 9);
  const pfn = exclusive(e, e.vma.start + 5 * PAGE, null);
  assert.equal(pfn, head + 5);
  assert.equal(pteType(pte(e.mm, e.vma.start + 5 * PAGE)[1]), T_DEVICE_EXCLUSIVE);
  assert.equal(pteType(pte(e.mm, e.vma.start + 6 * PAGE)[1]), T_PRESENT);
  assert.equal(e.k.pages.mapcount[pfn], 1);
  assert.equal(cpu(e.mm, e.vma.start + 5 * PAGE, true), pfn);
  checkInvariants(e.k, 'thp exclusive');
});
