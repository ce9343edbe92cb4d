// SPDX-License-Identifier: GPL-2.0-only
/**
 * get_user_pages / pin_user_pages / GUP-fast: references and pins
 * accounted (nr_foll_pin_acquired == released at rest), errnos, unshare
 * before R/O pins, device-private pages faulted back, and FOLL_LONGTERM
 * migrating device-coherent pages to system memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PAGE, cpu, mkEnv, pte, pmd, run, storePage, type Env } from './migrate_helpers.js';
import {
  FOLL_FORCE, FOLL_GET, FOLL_LONGTERM, FOLL_PIN, FOLL_WRITE, getUserPages, getUserPagesFast, getUserPagesFastOnly,
  pinUserPages, pinUserPagesFast, pinUserPagesRemote, putPage, unpinUserPage, unpinUserPages,
} from '../src/kernel/mm/gup.js';
import { EFAULT, EINVAL } from '../src/kernel/errno.js';
import {
  MMF_HAS_PINNED, VM_IO, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_SOFTDIRTY, VM_WRITE,
} from '../src/kernel/mm/mm_types.js';
import { T_DEVICE_PRIVATE_WRITE, T_PRESENT, _PAGE_RW, pteType } from '../src/kernel/mm/pgtable.js';
import { PG_anon_exclusive } from '../src/kernel/mm/page.js';
import { isDeviceCoherentPage, isDevicePrivatePage } from '../src/kernel/mm/memremap.js';
import { folioMaybeDmaPinned } from '../src/kernel/mm/folio.js';
import { Kernel } from '../src/kernel/kernel.js';
import type { K } from '../src/kernel/sched/sched.js';
import { checkInvariants } from '../src/kernel/mm/debug_vm.js';
import { dupMmap } from '../src/kernel/mm/fork.js';

/** Run a slow-path GUP call with mmap_lock held for read. */
function locked<T>(e: Env, g: K<T>): T {
  const s = e.k.sched;
  assert.ok(e.mm.mmapLock.tryReadFast(s));
  try {
    return run(e.k, g);
  } finally {
    e.mm.mmapLock.readUnlock(s);
  }
}

function balanced(k: Kernel): void {
  assert.equal(k.vmstat.nr_foll_pin_acquired, k.vmstat.nr_foll_pin_released, 'pins balanced');
  checkInvariants(k, 'gup test at rest');
}

test('get_user_pages faults in and takes one reference per page; put_page drops it', () => {
  const e = mkEnv(8);
  const pages = new Float64Array(8);
  assert.equal(locked(e, getUserPages(e.mm, e.vma.start, 8, FOLL_WRITE, pages)), 8);
  for (let i = 0; i < 8; i++) {
    const [v, f] = pte(e.mm, e.vma.start + i * PAGE);
    assert.equal(pages[i], v);
    assert.ok(f & _PAGE_RW);
    e.k.lru.drain();
    assert.equal(e.k.pages.refcount[v], 2, 'mapping + GUP');
  }
  for (let i = 0; i < 8; i++) putPage(e.k, pages[i]);
  for (let i = 0; i < 8; i++) assert.equal(e.k.pages.refcount[pages[i]], 1);
  assert.equal(e.k.vmstat.nr_foll_pin_acquired, 0);
  assert.equal(e.mm.flags & MMF_HAS_PINNED, 0);
});

test('pin_user_pages: +1024 per small folio, vmstat counts, MMF_HAS_PINNED; unpin balances', () => {
  const e = mkEnv(4);
  const pages = new Float64Array(4);
  assert.equal(locked(e, pinUserPages(e.mm, e.vma.start, 4, FOLL_WRITE, pages)), 4);
  e.k.lru.drain();
  for (let i = 0; i < 4; i++) {
    assert.equal(e.k.pages.refcount[pages[i]], 1 + 1024);
    assert.ok(folioMaybeDmaPinned(e.k, pages[i]));
    assert.ok(e.k.pages.flags[pages[i]] & PG_anon_exclusive);
  }
  assert.equal(e.k.vmstat.nr_foll_pin_acquired, 4);
  assert.ok(e.mm.flags & MMF_HAS_PINNED);
  unpinUserPages(e.k, pages, 4);
  for (let i = 0; i < 4; i++) assert.equal(e.k.pages.refcount[pages[i]], 1);
  balanced(e.k);
  assert.deepEqual(e.k.printk.warnings, []);
});

test('pinning a THP counts in _pincount; tail pages get their own entries', () => {
  const e = mkEnv(512, { hugepage: true });
  cpu(e.mm, e.vma.start, true);
  const [head, , t] = pmd(e.mm, e.vma.start);
  assert.ok(t !== null && e.k.pages.order[head] === 9);
  const pages = new Float64Array(16);
  assert.equal(locked(e, pinUserPagesRemote(e.mm, e.vma.start + 8 * PAGE, 16, FOLL_WRITE, pages)), 16);
  for (let i = 0; i < 16; i++) assert.equal(pages[i], head + 8 + i);
  assert.equal(e.k.pages.pincount[head], 16);
  assert.ok(folioMaybeDmaPinned(e.k, head));
  unpinUserPages(e.k, pages, 16);
  assert.equal(e.k.pages.pincount[head], 0);
  balanced(e.k);
});

test('errnos: no VMA, write to a read-only VMA, VM_IO, PROT_NONE -> -EFAULT', () => {
  const pages = new Float64Array(2);
  let e = mkEnv(2);
  assert.equal(locked(e, getUserPages(e.mm, e.vma.end, 1, 0, pages)), -EFAULT);
  // Partial success: the pages before the failure are returned.
  assert.equal(locked(e, getUserPages(e.mm, e.vma.end - PAGE, 2, 0, pages)), 1);
  putPage(e.k, pages[0]);
  e = mkEnv(2, { flags: VM_READ | VM_MAYREAD });
  assert.equal(locked(e, getUserPages(e.mm, e.vma.start, 1, FOLL_WRITE, pages)), -EFAULT);
  assert.equal(locked(e, pinUserPages(e.mm, e.vma.start, 1, FOLL_WRITE, pages)), -EFAULT);
  e = mkEnv(2, { flags: VM_READ | VM_WRITE | VM_IO });
  assert.equal(locked(e, getUserPages(e.mm, e.vma.start, 1, 0, pages)), -EFAULT);
  e = mkEnv(2, { flags: VM_MAYREAD | VM_MAYWRITE });
  assert.equal(locked(e, getUserPages(e.mm, e.vma.start, 1, 0, pages)), -EFAULT);
  // FOLL_FORCE reads a PROT_NONE-but-MAYREAD VMA.
  assert.equal(locked(e, getUserPages(e.mm, e.vma.start, 1, FOLL_FORCE, pages)), 1);
  putPage(e.k, pages[0]);
});

test('invalid flags: get_* -EINVAL, pin_user_pages 0, both with a WARN', () => {
  const e = mkEnv(2);
  const pages = new Float64Array(2);
  assert.equal(locked(e, getUserPages(e.mm, e.vma.start, 1, FOLL_PIN, pages)), -EINVAL);
  assert.equal(locked(e, getUserPages(e.mm, e.vma.start, 1, FOLL_LONGTERM, pages)), -EINVAL);
  assert.equal(locked(e, pinUserPages(e.mm, e.vma.start, 1, FOLL_GET, pages)), 0);
  assert.equal(run(e.k, pinUserPagesFast(e.mm, e.vma.start, 1, FOLL_GET, pages)), -EINVAL);
  assert.equal(locked(e, getUserPages(e.mm, e.vma.start, 1, FOLL_WRITE, null)), 1, 'no pages: just fault in');
  assert.equal(e.k.printk.warnings.length, 4);
  balanced(e.k);
});

test('FOLL_FORCE write to a private read-only mapping breaks COW into an exclusive anon page', () => {
  const e = mkEnv(1, { flags: VM_READ | VM_MAYREAD | VM_MAYWRITE | VM_SOFTDIRTY });
  const pages = new Float64Array(1);
  assert.equal(locked(e, getUserPages(e.mm, e.vma.start, 1, FOLL_WRITE | FOLL_FORCE, pages)), 1);
  const [v, f] = pte(e.mm, e.vma.start);
  assert.equal(pages[0], v);
  assert.ok(v !== e.k.zeroPfn && !(f & _PAGE_RW));
  assert.ok(e.k.pages.flags[v] & PG_anon_exclusive);
  putPage(e.k, v);
});

test('R/O pin of the zero page: no reference, not counted; FOLL_LONGTERM unshares it first', () => {
  const e = mkEnv(2);
  cpu(e.mm, e.vma.start, false);
  cpu(e.mm, e.vma.start + PAGE, false);
  const pages = new Float64Array(1);
  const zr = e.k.pages.refcount[e.k.zeroPfn];
  assert.equal(locked(e, pinUserPages(e.mm, e.vma.start, 1, 0, pages)), 1);
  assert.equal(pages[0], e.k.zeroPfn);
  assert.equal(e.k.pages.refcount[e.k.zeroPfn], zr);
  assert.equal(e.k.vmstat.nr_foll_pin_acquired, 0);
  unpinUserPage(e.k, pages[0]);
  // Long-term R/O pin in a COW mapping: FAULT_FLAG_UNSHARE replaces the zero page by an anon copy.
  assert.equal(locked(e, pinUserPages(e.mm, e.vma.start + PAGE, 1, FOLL_LONGTERM, pages)), 1);
  const [v, f] = pte(e.mm, e.vma.start + PAGE);
  assert.equal(pages[0], v);
  assert.notEqual(v, e.k.zeroPfn);
  assert.ok(!(f & _PAGE_RW), 'unshare keeps the PTE read-only');
  assert.ok(e.k.pages.flags[v] & PG_anon_exclusive);
  unpinUserPages(e.k, pages, 1);
  balanced(e.k);
});

test('GUP-fast: populated pages come from the lockless walk; the rest fall back and fault', () => {
  const e = mkEnv(8);
  for (let i = 0; i < 4; i++) cpu(e.mm, e.vma.start + i * PAGE, true);
  const pages = new Float64Array(8);
  assert.equal(getUserPagesFastOnly(e.mm, e.vma.start, 8, 0, pages), 4, 'fast-only stops at the first none PTE');
  for (let i = 0; i < 4; i++) putPage(e.k, pages[i]);
  pages.fill(0);
  assert.equal(run(e.k, getUserPagesFast(e.mm, e.vma.start, 8, FOLL_WRITE, pages)), 8);
  for (let i = 0; i < 8; i++) assert.equal(pages[i], pte(e.mm, e.vma.start + i * PAGE)[0]);
  for (let i = 0; i < 8; i++) putPage(e.k, pages[i]);
  assert.equal(e.mm.mmapLock.isLocked(), false);
  pages.fill(0);
  assert.equal(run(e.k, pinUserPagesFast(e.mm, e.vma.start, 8, FOLL_WRITE, pages)), 8);
  assert.equal(e.k.vmstat.nr_foll_pin_acquired, 8);
  unpinUserPages(e.k, pages, 8);
  balanced(e.k);
});

test('GUP-fast does not follow the (special) zero page or a read-only PTE for write: the slow path COWs', () => {
  const e = mkEnv(1);
  cpu(e.mm, e.vma.start, false);
  assert.equal(pte(e.mm, e.vma.start)[0], e.k.zeroPfn);
  const pages = new Float64Array(1);
  assert.equal(getUserPagesFastOnly(e.mm, e.vma.start, 1, 0, pages), 0);
  assert.equal(run(e.k, getUserPagesFast(e.mm, e.vma.start, 1, FOLL_WRITE, pages)), 1);
  const [v, f] = pte(e.mm, e.vma.start);
  assert.ok(v !== e.k.zeroPfn && (f & _PAGE_RW));
  assert.equal(pages[0], v);
  putPage(e.k, v);
});

test('GUP-fast FOLL_PIN gives up while fork write-protects (write_protect_seq odd)', () => {
  const e = mkEnv(2);
  cpu(e.mm, e.vma.start, true);
  const pages = new Float64Array(2);
  e.mm.writeProtectSeq = 1;
  assert.equal(run(e.k, pinUserPagesFast(e.mm, e.vma.start, 1, FOLL_WRITE, pages)), 1, 'slow path after the fast path gave up');
  e.mm.writeProtectSeq = 2;
  unpinUserPages(e.k, pages, 1);
  balanced(e.k);
});

test('device-private pages are faulted back to system RAM by GUP', () => {
  const e = mkEnv(4);
  for (let i = 0; i < 4; i++) storePage(e.mm, e.vma.start + i * PAGE, i + 1);
  const before = pte(e.mm, e.vma.start + PAGE)[0];
  const sum = e.k.contents.checksum(before);
  assert.equal(locked(e, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private')), 4);
  assert.equal(pteType(pte(e.mm, e.vma.start + PAGE)[1]), T_DEVICE_PRIVATE_WRITE);
  const pages = new Float64Array(4);
  assert.equal(locked(e, pinUserPages(e.mm, e.vma.start, 4, FOLL_WRITE, pages)), 4);
  for (let i = 0; i < 4; i++) {
    assert.ok(!isDevicePrivatePage(e.k, pages[i]));
    assert.ok(e.k.buddy.isRam(pages[i]));
  }
  assert.equal(e.k.contents.checksum(pages[1]), sum, 'contents came back');
  assert.equal(e.dev.allocated('private'), 0);
  unpinUserPages(e.k, pages, 4);
  balanced(e.k);
});

test('FOLL_LONGTERM on device-coherent pages migrates them to system memory first', () => {
  const e = mkEnv(4);
  for (let i = 0; i < 4; i++) storePage(e.mm, e.vma.start + i * PAGE, i + 11);
  const sums = [0, 1, 2, 3].map((i) => e.k.contents.checksum(pte(e.mm, e.vma.start + i * PAGE)[0]));
  assert.equal(locked(e, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'coherent')), 4);
  for (let i = 0; i < 4; i++) assert.ok(isDeviceCoherentPage(e.k, pte(e.mm, e.vma.start + i * PAGE)[0]));
  // A short-term pin may pin coherent memory.
  const pages = new Float64Array(4);
  assert.equal(locked(e, pinUserPages(e.mm, e.vma.start, 1, FOLL_WRITE, pages)), 1);
  assert.ok(isDeviceCoherentPage(e.k, pages[0]));
  unpinUserPages(e.k, pages, 1);
  // A long-term pin may not: the pages move to RAM, the PTEs follow.
  pages.fill(0);
  assert.equal(locked(e, pinUserPages(e.mm, e.vma.start, 4, FOLL_WRITE | FOLL_LONGTERM, pages)), 4);
  for (let i = 0; i < 4; i++) {
    const [v, f] = pte(e.mm, e.vma.start + i * PAGE);
    assert.equal(pteType(f), T_PRESENT);
    assert.equal(pages[i], v);
    assert.ok(!isDeviceCoherentPage(e.k, v) && e.k.buddy.isRam(v), `page ${i} in system RAM`);
    assert.equal(e.k.contents.checksum(v), sums[i]);
    assert.ok(folioMaybeDmaPinned(e.k, v));
  }
  assert.equal(e.dev.allocated('coherent'), 0, 'the coherent pages were freed');
  unpinUserPages(e.k, pages, 4);
  balanced(e.k);
  assert.deepEqual(e.k.printk.warnings, []);
});

test('pin_user_pages_fast(FOLL_LONGTERM) falls back to the slow path for coherent pages', () => {
  const e = mkEnv(2);
  for (let i = 0; i < 2; i++) storePage(e.mm, e.vma.start + i * PAGE, i + 3);
  assert.equal(locked(e, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'coherent')), 2);
  const pages = new Float64Array(2);
  assert.equal(run(e.k, pinUserPagesFast(e.mm, e.vma.start, 2, FOLL_WRITE | FOLL_LONGTERM, pages)), 2);
  for (let i = 0; i < 2; i++) assert.ok(!isDeviceCoherentPage(e.k, pages[i]));
  unpinUserPages(e.k, pages, 2);
  balanced(e.k);
});

test('historical gup_fast_longterm_coherent: GUP-fast long-term pins coherent pages (mm/gup.c:try_grab_folio_fast)', () => {
  const e = mkEnv(2, { cfg: { historical: { gup_fast_longterm_coherent: true } as never } });
  for (let i = 0; i < 2; i++) storePage(e.mm, e.vma.start + i * PAGE, i + 3);
  assert.equal(locked(e, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'coherent')), 2);
  const pages = new Float64Array(2);
  assert.equal(run(e.k, pinUserPagesFast(e.mm, e.vma.start, 2, FOLL_WRITE | FOLL_LONGTERM, pages)), 2);
  for (let i = 0; i < 2; i++) assert.ok(isDeviceCoherentPage(e.k, pages[i]), 'pinned in device memory');
  unpinUserPages(e.k, pages, 2);
  balanced(e.k);
});

test('fork after a pin: the pinned exclusive page stays with the parent, the child gets a copy', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 7);
  const pages = new Float64Array(1);
  assert.equal(locked(e, pinUserPages(e.mm, e.vma.start, 1, FOLL_WRITE | FOLL_LONGTERM, pages)), 1);
  const child = e.k.newMm();
  assert.equal(run(e.k, dupMmap(e.mm, child)), 0);
  const [pv, pf] = pte(e.mm, e.vma.start);
  const [cv] = pte(child, e.vma.start);
  assert.equal(pv, pages[0]);
  assert.ok(pf & _PAGE_RW, 'the parent keeps its writable PTE');
  assert.notEqual(cv, pv, 'the child got its own copy');
  assert.equal(e.k.contents.checksum(cv), e.k.contents.checksum(pv));
  unpinUserPages(e.k, pages, 1);
  balanced(e.k);
});

test('R/O pin of an anon page shared after fork unshares it first (FOLL_PIN needs PageAnonExclusive)', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 7);
  const shared = pte(e.mm, e.vma.start)[0];
  const child = e.k.newMm();
  assert.equal(run(e.k, dupMmap(e.mm, child)), 0);
  assert.equal(e.k.pages.flags[shared] & PG_anon_exclusive, 0);
  const pages = new Float64Array(1);
  // get_user_pages (FOLL_GET) R/O does not unshare.
  assert.equal(locked(e, getUserPages(e.mm, e.vma.start, 1, 0, pages)), 1);
  assert.equal(pages[0], shared);
  putPage(e.k, pages[0]);
  // pin_user_pages R/O does.
  assert.equal(locked(e, pinUserPages(e.mm, e.vma.start, 1, 0, pages)), 1);
  assert.notEqual(pages[0], shared);
  assert.equal(pte(e.mm, e.vma.start)[0], pages[0]);
  assert.ok(e.k.pages.flags[pages[0]] & PG_anon_exclusive);
  assert.equal(pte(child, e.vma.start)[0], shared, 'the child keeps the old page');
  unpinUserPages(e.k, pages, 1);
  balanced(e.k);
});

test('hugetlb pages pin with _pincount; make_device_exclusive refuses them (-EOPNOTSUPP)', async () => {
  const { System } = await import('../src/user/system.js');
  const { MAP_ANONYMOUS, MAP_HUGETLB, MAP_PRIVATE, PROT_READ, PROT_WRITE } = await import('../src/kernel/mm/mmap.js');
  const { makeDeviceExclusive } = await import('../src/kernel/mm/device_exclusive.js');
  const sys = new System({ ramBytes: 128 << 20, nrHugepages: 1 });
  const p = sys.spawn('hugetlb');
  const addr = p.mmap(0, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  const e = { k: sys.kernel, mm: p.mm! } as unknown as Env;
  const pages = new Float64Array(4);
  assert.equal(locked(e, pinUserPages(e.mm, addr + 4 * PAGE, 4, FOLL_WRITE | FOLL_LONGTERM, pages)), 4);
  const head = e.k.pages.folioPfn(pages[0]);
  assert.equal(e.k.pages.pincount[head], 4);
  assert.equal(pages[3], head + 7);
  unpinUserPages(e.k, pages, 4);
  assert.equal(e.k.pages.pincount[head], 0);
  assert.deepEqual(locked(e, makeDeviceExclusive(e.mm, addr, null)), { err: -95 /* EOPNOTSUPP */ });
  balanced(e.k);
});
