// SPDX-License-Identifier: GPL-2.0-only
/**
 * Checked mode (issue 2): the invariants of src/kernel/mm/debug_vm.ts run
 * after each syscall / ioctl / CPU fault and each one fires, naming the
 * rule, when the state it guards is broken. Each test breaks exactly one
 * thing behind the model's back on an otherwise consistent machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PAGE, mkEnv, pmd, pte, run, storePage, type Env, runMmapRead } from './migrate_helpers.js';
import { checkInvariants, findFreedWhileMapped } from '../src/kernel/mm/debug_vm.js';
import { freedWhileMapped } from '../src/explore/engine.js';
import { KernelBug } from '../src/kernel/printk.js';
import { Kernel } from '../src/kernel/kernel.js';
import { PG_buddy, PG_shadow_free } from '../src/kernel/mm/page.js';
import { folioTrylock, folioUnlock } from '../src/kernel/mm/folio.js';
import { pinUserPages, unpinUserPage, FOLL_WRITE } from '../src/kernel/mm/gup.js';
import { System } from '../src/user/system.js';
import { PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS } from '../src/kernel/mm/mmap.js';

const broken = (rule: RegExp) => (e: unknown) => e instanceof KernelBug && e.kind === 'INVARIANT' && rule.test(e.rule);

/** A machine at rest with a mapped system page, a mapped device-private page and a mapped THP. */
function machine(): { e: Env; sys: number; dev: number; thp: number } {
  const e = mkEnv(1024, { hugepage: true });
  storePage(e.mm, e.vma.start, 1);
  storePage(e.mm, e.vma.start + 2 * 1024 * 1024, 2);
  storePage(e.mm, e.vma.start + PAGE, 3);
  // Page 1 goes to the device (collect splits the first THP: pages 0 and 1 become PTE-mapped).
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start + PAGE, e.vma.start + 2 * PAGE, 'private')), 1);
  e.k.lru.drain();
  checkInvariants(e.k, 'clean');
  return { e, sys: pte(e.mm, e.vma.start)[0], dev: pte(e.mm, e.vma.start + PAGE)[0], thp: pmd(e.mm, e.vma.start + 2 * 1024 * 1024)[0] };
}

test('one walk: findFreedWhileMapped() finds what checked mode and the explorer detector report', () => {
  const m = machine();
  const k = m.e.k;
  assert.equal(findFreedWhileMapped(k), null);
  assert.equal(freedWhileMapped(k), null);
  k.pages.flags[m.dev] |= PG_shadow_free;
  const f = findFreedWhileMapped(k);
  assert.ok(f !== null);
  assert.deepEqual({ pfn: f.pfn, addr: f.addr, entry: f.entry, huge: f.huge, free: f.free, mm: f.mm.id }, { pfn: m.dev, addr: m.e.vma.start + PAGE, entry: 'device-private entry', huge: false, free: true, mm: m.e.mm.id });
  assert.deepEqual(findFreedWhileMapped(k, true), f, 'the page is under a VMA: the explorer\'s VMA-bounded walk finds the same entry');
  const v = freedWhileMapped(k);
  assert.equal(v?.detector, 'INVARIANT');
  assert.equal(v?.rule, `page freed while mapped: pfn 0x${m.dev.toString(16)} is free but mm #${m.e.mm.id} still maps it at 0x${(m.e.vma.start + PAGE).toString(16)}`);
  assert.throws(() => checkInvariants(k, 'op'), broken(/free page mapped by a device-private entry/));
  k.pages.flags[m.dev] &= ~PG_shadow_free;
  k.pages.flags[m.thp] |= PG_buddy;
  const h = findFreedWhileMapped(k, true);
  assert.equal(h?.huge, true);
  assert.equal(h?.entry, 'PMD');
  assert.match(freedWhileMapped(k)!.rule, /still maps it with a PMD/);
  k.pages.flags[m.thp] &= ~PG_buddy;
});

test('checked mode is on for the test suite (HMMSIM_CHECKED=1) and for System({ checked: true })', () => {
  const k = new Kernel({ ramBytes: 64 << 20, nrHugepages: 0 });
  assert.equal(k.config.checked, process.env.HMMSIM_CHECKED === '1');
  assert.equal(k.checkHook !== null, k.config.checked);
  const s = new System({ ramBytes: 64 << 20, nrHugepages: 0, checked: true });
  assert.ok(s.kernel.checkHook !== null);
});

test('no free page is mapped: a mapped page found in the buddy allocator, or freed to its driver', () => {
  const m = machine();
  m.e.k.pages.flags[m.sys] |= PG_buddy;
  assert.throws(() => checkInvariants(m.e.k, 'op'), broken(/free page mapped by a PTE/));
  m.e.k.pages.flags[m.sys] &= ~PG_buddy;
  m.e.k.pages.flags[m.dev] |= PG_shadow_free;
  assert.throws(() => checkInvariants(m.e.k, 'op'), broken(/free page mapped by a device-private entry/));
  m.e.k.pages.flags[m.dev] &= ~PG_shadow_free;
  checkInvariants(m.e.k, 'repaired');
});

test('mapcounts equal the mappings found in the page tables (PTE, device-private, PMD)', () => {
  const m = machine();
  const p = m.e.k.pages;
  p.mapcount[m.sys]++;
  assert.throws(() => checkInvariants(m.e.k, 'op'), broken(/mapcount 2 but 1 PTE mapping/));
  p.mapcount[m.sys]--;
  p.mapcount[m.dev] = 0;
  assert.throws(() => checkInvariants(m.e.k, 'op'), broken(/mapcount 0 but 1 PTE mapping/));
  p.mapcount[m.dev] = 1;
  p.entireMapcount[m.thp] = 2;
  assert.throws(() => checkInvariants(m.e.k, 'op'), broken(/entire mapcount 2 but 1 PMD mapping/));
  p.entireMapcount[m.thp] = 1;
  checkInvariants(m.e.k, 'repaired');
});

test('the refcount accounts for mappings, pins and the LRU batch', () => {
  const m = machine();
  const p = m.e.k.pages;
  p.refcount[m.sys]--;
  assert.throws(() => checkInvariants(m.e.k, 'op'), broken(/refcount 0 < 1 mapping\(s\) \+ 0 pin/));
  p.refcount[m.sys]++;
  // A FOLL_PIN on the THP: refcount and pincount; losing the pin's reference is caught.
  const pages = new Float64Array(1);
  assert.ok(m.e.mm.mmapLock.tryReadFast(m.e.k.sched));
  assert.equal(run(m.e.k, pinUserPages(m.e.mm, m.e.vma.start + 2 * 1024 * 1024, 1, FOLL_WRITE, pages)), 1);
  m.e.mm.mmapLock.readUnlock(m.e.k.sched);
  checkInvariants(m.e.k, 'pinned');
  p.refcount[m.thp]--;
  assert.throws(() => checkInvariants(m.e.k, 'op'), broken(/< 1 mapping\(s\) \+ 1 pin reference/));
  p.refcount[m.thp]++;
  unpinUserPage(m.e.k, pages[0]);
  checkInvariants(m.e.k, 'repaired');
  // A fresh page in the per-CPU LRU batch holds a batch reference.
  const b = mkEnv(1);
  storePage(b.mm, b.vma.start, 4);
  const fresh = pte(b.mm, b.vma.start)[0];
  assert.equal(b.k.pages.refcount[fresh], 2, 'mapping + batch');
  b.k.pages.refcount[fresh]--;
  assert.throws(() => checkInvariants(b.k, 'op'), broken(/refcount 1 < 1 mapping\(s\) \+ 0 pin reference\(s\) \+ 1 LRU batch/));
  b.k.pages.refcount[fresh]++;
  checkInvariants(b.k, 'repaired');
});

test('no ZONE_DEVICE page on an LRU (folio_add_lru refuses it; one that got there anyway is caught)', () => {
  const m = machine();
  assert.throws(() => m.e.k.lru.add(m.dev), (e: unknown) => e instanceof KernelBug && e.kind === 'BUG' && /ZONE_DEVICE/.test(e.rule));
  m.e.k.lru.addSplit(m.dev);
  assert.throws(() => checkInvariants(m.e.k, 'op'), broken(/ZONE_DEVICE page on an LRU/));
});

test('pgmap references equal 1 + allocated device pages + get_dev_pagemap holders', () => {
  const m = machine();
  const g = m.e.dev.priv.pgmap;
  assert.equal(g.refCount, 1 + 1);
  g.refCount++;
  assert.throws(() => checkInvariants(m.e.k, 'op'), broken(/reference count 3 != 1 \+ 1 allocated page/));
  g.refCount--;
  g.dead = true;
  assert.throws(() => checkInvariants(m.e.k, 'op'), broken(/page of a removed pgmap mapped/));
  g.dead = false;
  checkInvariants(m.e.k, 'repaired');
});

test('at rest no mmap_lock is held and no mapped folio is left locked', () => {
  const m = machine();
  assert.ok(m.e.mm.mmapLock.tryReadFast(m.e.k.sched));
  assert.throws(() => checkInvariants(m.e.k, 'op'), broken(/mmap_lock of mm #\d+ held at rest/));
  m.e.mm.mmapLock.readUnlock(m.e.k.sched);
  assert.ok(folioTrylock(m.e.k, m.sys));
  assert.throws(() => checkInvariants(m.e.k, 'op'), broken(/mapped folio left locked at rest/));
  folioUnlock(m.e.k, m.sys);
  checkInvariants(m.e.k, 'repaired');
});

test('the check runs after every syscall and CPU fault of a simulated process, naming the operation', () => {
  const s = new System({ ramBytes: 64 << 20, nrHugepages: 0, checked: true });
  const p = s.spawn('checked');
  const a = p.mmap(0, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  p.store32(a, 1);
  const k = s.kernel;
  const pfn = Number(p.pagemap(a) & ((1n << 55n) - 1n));
  k.pages.mapcount[pfn]++;
  assert.throws(() => p.mmap(0, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS), broken(/^after mmap: mapcount 2/));
  assert.throws(() => p.load32(a + PAGE), broken(/^after fault: mapcount 2/), 'the read fault on the second page');
  k.pages.mapcount[pfn]--;
  assert.equal(p.load32(a), 1);
});
