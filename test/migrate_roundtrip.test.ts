// SPDX-License-Identifier: GPL-2.0-only
/**
 * Data integrity through migrate_vma_* and migrate_device_*: every round
 * trip leaves the bytes the process sees identical, and the reference /
 * mapping / lock state clean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HPAGE, PAGE, cpu, loadPage, mkEnv, pmd, pte, run, storePage, runMmapRead } from './migrate_helpers.js';
import {
  T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_PRESENT, T_TABLE, pteNone, pteType,
} from '../src/kernel/mm/pgtable.js';
import { PG_locked } from '../src/kernel/mm/page.js';
import { isDeviceCoherentPage, isDevicePrivatePage } from '../src/kernel/mm/memremap.js';
import type { Env } from './migrate_helpers.js';

function fill(e: Env, n: number, skip: (i: number) => boolean = () => false): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = e.vma.start + i * PAGE;
    if (skip(i)) {
      out.push(-1);
      continue;
    }
    storePage(e.mm, a, i + 7);
    out.push(e.k.contents.checksum(cpu(e.mm, a, false)));
  }
  // The kernel moves a large folio to the LRU at once (folio_add_lru() does
  // not batch large folios); the model batches it until a drain.
  e.k.lru.drain();
  return out;
}

function check(e: Env, want: number[], holeSum: number): void {
  for (let i = 0; i < want.length; i++) {
    const got = loadPage(e.mm, e.vma.start + i * PAGE);
    assert.equal(got, want[i] < 0 ? holeSum : want[i], `page ${i}`);
  }
}

function clean(e: Env): void {
  const p = e.k.pages;
  for (let i = 0; i < (e.vma.end - e.vma.start) / PAGE; i++) {
    const [v, f] = pte(e.mm, e.vma.start + i * PAGE);
    if (pteNone(f)) continue;
    assert.equal(p.flags[p.folioPfn(v)] & PG_locked, 0, `page ${i} left locked`);
  }
  assert.deepEqual(e.k.printk.warnings, []);
  e.k.checkpoint('migrate test');
}

test('system -> device-private -> system (4 KiB pages, holes and a zero page)', () => {
  const e = mkEnv(16);
  const want = fill(e, 16, (i) => i === 3 || i === 9);
  loadPage(e.mm, e.vma.start + 9 * PAGE); // page 9: the zero page (read fault)
  const zeroSum = e.k.contents.checksum(e.k.zeroPfn);
  const n = runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private'));
  e.k.checkpoint('migrate');
  assert.equal(n, 16);
  for (let i = 0; i < 16; i++) {
    const [v, f] = pte(e.mm, e.vma.start + i * PAGE);
    assert.equal(pteType(f), T_DEVICE_PRIVATE_WRITE, `page ${i} device-private writable`);
    assert.ok(isDevicePrivatePage(e.k, v));
    assert.equal(e.k.pages.refcount[v], 1);
    assert.equal(e.k.pages.mapcount[v], 1);
  }
  assert.equal(e.dev.allocated('private'), 16);
  // CPU reads fault each page back through ->migrate_to_ram with fault_page.
  check(e, want, zeroSum);
  assert.equal(e.dev.stat.migrateToRam, 16);
  assert.equal(e.dev.allocated('private'), 0, 'device pages freed after migrating back');
  for (let i = 0; i < 16; i++) assert.equal(pteType(pte(e.mm, e.vma.start + i * PAGE)[1]), T_PRESENT);
  clean(e);
});

test('system -> device-coherent -> system', () => {
  const e = mkEnv(8);
  const want = fill(e, 8, (i) => i === 5);
  const n = runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'coherent'));
  e.k.checkpoint('migrate');
  assert.equal(n, 8);
  for (let i = 0; i < 8; i++) {
    const [v, f] = pte(e.mm, e.vma.start + i * PAGE);
    assert.equal(pteType(f), T_PRESENT);
    assert.ok(isDeviceCoherentPage(e.k, v));
  }
  // Coherent memory is CPU addressable: reads need no migration.
  check(e, want, e.k.contents.checksum(e.k.zeroPfn));
  assert.equal(e.dev.stat.migrateToRam, 0);
  const back = runMmapRead(e.mm, e.dev.migrateToSystem(e.vma, e.vma.start, e.vma.end));
  assert.equal(back, 8);
  assert.equal(e.dev.allocated('coherent'), 0);
  for (let i = 0; i < 8; i++) assert.ok(!isDeviceCoherentPage(e.k, pte(e.mm, e.vma.start + i * PAGE)[0]));
  check(e, want, 0);
  clean(e);
});

test('device -> device via system (private -> system -> coherent -> system -> private)', () => {
  const e = mkEnv(4);
  const want = fill(e, 4);
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private')), 4);
  e.k.checkpoint('migrate');
  assert.equal(runMmapRead(e.mm, e.dev.migrateToSystem(e.vma, e.vma.start, e.vma.end)), 4);
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'coherent')), 4);
  e.k.checkpoint('migrate');
  assert.equal(runMmapRead(e.mm, e.dev.migrateToSystem(e.vma, e.vma.start, e.vma.end)), 4);
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private')), 4);
  e.k.checkpoint('migrate');
  check(e, want, 0);
  assert.equal(e.dev.allocated('private'), 0);
  clean(e);
});

test('THP (PMD-mapped, SELECT_COMPOUND) -> device-private THP -> system via a PMD fault', () => {
  const e = mkEnv(1024, { hugepage: true, start: 0x40000000 });
  const want = fill(e, 512);
  const [hv, hf] = pmd(e.mm, e.vma.start);
  assert.equal(pteType(hf), T_PRESENT, 'THP mapped by a PMD');
  assert.equal(e.k.pages.order[hv], 9);
  const n = runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.start + HPAGE, 'private', true));
  e.k.checkpoint('migrate');
  assert.equal(n, 1, 'one compound entry');
  const [dv, df] = pmd(e.mm, e.vma.start);
  assert.equal(pteType(df), T_DEVICE_PRIVATE_WRITE, 'device-private PMD entry');
  assert.equal(e.k.pages.order[dv], 9);
  assert.equal(e.dev.allocated('private'), 512);
  check(e, want, 0);
  assert.equal(e.dev.allocated('private'), 0);
  const [, bf] = pmd(e.mm, e.vma.start);
  assert.equal(pteType(bf), T_PRESENT, 'back as a THP');
  clean(e);
});

test('THP without SELECT_COMPOUND is split and migrated as 4 KiB pages', () => {
  const e = mkEnv(512, { hugepage: true });
  const want = fill(e, 512);
  assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_PRESENT);
  const n = runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private', false));
  e.k.checkpoint('migrate');
  assert.equal(n, 512);
  assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_TABLE);
  for (let i = 0; i < 512; i += 97) assert.equal(pteType(pte(e.mm, e.vma.start + i * PAGE)[1]), T_DEVICE_PRIVATE_WRITE);
  check(e, want, 0);
  assert.equal(e.dev.allocated('private'), 0);
  clean(e);
});

test('compound hole (empty 2 MiB) -> device-private THP; data reads back as zeroes', () => {
  const e = mkEnv(512, { hugepage: true });
  const n = runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private', true));
  e.k.checkpoint('migrate');
  assert.equal(n, 1);
  assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_DEVICE_PRIVATE_WRITE);
  assert.equal(e.mm.rss.anon, 512);
  const z = e.k.contents.checksum(e.k.zeroPfn);
  for (let i = 0; i < 512; i += 101) assert.equal(loadPage(e.mm, e.vma.start + i * PAGE), z);
  clean(e);
});

test('device-private THP back to system with small pages (source split at migrate_vma_pages time)', () => {
  const e = mkEnv(512, { hugepage: true });
  const want = fill(e, 512);
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private', true)), 1);
  e.k.checkpoint('migrate');
  // Exhaust order-9 system allocations so the driver supplies 4 KiB pages.
  e.k.buddy.fail.set('testdrv', { skip: 0, times: Infinity, order: 9 });
  assert.equal(runMmapRead(e.mm, e.dev.migrateToSystem(e.vma, e.vma.start, e.vma.end, true)), 512);
  e.k.checkpoint('migrate');
  assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_TABLE);
  check(e, want, 0);
  assert.equal(e.dev.allocated('private'), 0);
  clean(e);
});

test('device-private entries are read-only for a read-only VMA after hole insertion', () => {
  const e = mkEnv(2, { flags: 0x1 | 0x10 });
  const n = runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private'));
  e.k.checkpoint('migrate');
  assert.equal(n, 2);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_DEVICE_PRIVATE_READ);
});

test('eviction with migrate_device_range() brings every device page back; memunmap_pages then completes', () => {
  const e = mkEnv(600, { hugepage: true });
  const want = fill(e, 600);
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.start + HPAGE, 'private', true)), 1);
  e.k.checkpoint('migrate');
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start + HPAGE, e.vma.end, 'private')), 88);
  assert.equal(e.dev.allocated('private'), 600);
  run(e.k, e.dev.release());
  assert.equal(e.dev.allocated('private'), 0);
  assert.ok(e.dev.priv.pgmap.dead);
  for (let i = 0; i < 600; i += 37) assert.equal(pteType(pte(e.mm, e.vma.start + i * PAGE)[1]) || pteType(pmd(e.mm, e.vma.start + i * PAGE)[1]), T_PRESENT);
  check(e, want, 0);
  clean(e);
});

import { RandomStrategy } from '../src/kernel/sched/sched.js';
import { doUserAddrFault } from '../src/kernel/arch/fault.js';
import type { K } from '../src/kernel/sched/sched.js';

test('concurrent CPU faults and migration (explored schedules): data intact, no leaked entries', () => {
  for (let seed = 1; seed <= 40; seed++) {
    const e = mkEnv(4);
    const want = fill(e, 4);
    const s = e.k.sched;
    const migrator = function* (): K<void> {
      yield* e.mm.mmapLock.readLock(s);
      yield* e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, seed % 2 ? 'private' : 'coherent');
      e.mm.mmapLock.readUnlock(s);
      yield* e.mm.mmapLock.readLock(s);
      yield* e.dev.migrateToSystem(e.vma, e.vma.start, e.vma.end);
      e.mm.mmapLock.readUnlock(s);
    };
    const toucher = (i: number, write: boolean) => function* (): K<void> {
      const r = yield* doUserAddrFault(e.mm, e.vma.start + i * PAGE, write);
      assert.ok(r.ok);
    };
    s.spawn('migrate', migrator());
    s.spawn('cpu0', toucher(0, false)());
    s.spawn('cpu2', toucher(2, true)());
    s.run(new RandomStrategy(seed));
    check(e, want, 0);
    clean(e);
  }
});
