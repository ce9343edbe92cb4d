// SPDX-License-Identifier: GPL-2.0-only
/**
 * The vma-less API (migrate_device_range / _pfns / _pages / _finalize),
 * migrate_device_coherent_folio(), the fault_page path, and the historical
 * switches that change migration behaviour.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PAGE, mkEnv, pte, pmd, ptOf, run, storePage, loadPage, cpu, type Env, setupLocked, runMmapRead } from './migrate_helpers.js';
import {
  MIGRATE_PFN_COMPOUND, MIGRATE_PFN_MIGRATE, MIGRATE_VMA_SELECT_SYSTEM, MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MigrateVma, migrateDeviceCoherentFolio, migrateDeviceFinalize, migrateDevicePages, migrateDevicePfns,
  migrateDeviceRange, migratePfn, migrateVmaFinalize, migrateVmaPages, migrateVmaSetup, mpfnHas,
} from '../src/kernel/mm/migrate_device.js';
import {
  T_DEVICE_PRIVATE_WRITE, T_PRESENT, _PAGE_RW, pmdTableOf, pteTableAlloc, pteType, pmdIndex,
} from '../src/kernel/mm/pgtable.js';
import { setPte } from '../src/kernel/mm/pte_ops.js';
import { PG_anon_exclusive, PG_locked } from '../src/kernel/mm/page.js';
import { Vma } from '../src/kernel/mm/mm_types.js';
import { folioGet, folioPut, folioTrylock, folioUnlock } from '../src/kernel/mm/folio.js';
import { isDeviceCoherentPage, isDevicePrivatePage } from '../src/kernel/mm/memremap.js';
import { EBUSY } from '../src/kernel/errno.js';
import { MIGRATE_PFN_VALID, mpfnPfn } from '../src/kernel/mm/migrate_pfn.js';

test('migrate_device_range: free pages and locked pages give 0, allocated mapped pages are collected', () => {
  const e = mkEnv(2);
  storePage(e.mm, e.vma.start, 1);
  storePage(e.mm, e.vma.start + PAGE, 2);
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private')), 2);
  const d0 = pte(e.mm, e.vma.start)[0];
  const d1 = pte(e.mm, e.vma.start + PAGE)[0];
  const first = e.dev.priv.pgmap.firstPfn;
  assert.equal(d0, first);
  assert.ok(folioTrylock(e.k, d1)); // somebody holds d1 locked
  const src = new Float64Array(8);
  assert.equal(run(e.k, migrateDeviceRange(e.k, src, first, 8)), 0);
  assert.ok(mpfnHas(src[0], MIGRATE_PFN_MIGRATE));
  assert.equal(src[1], 0, 'locked page skipped');
  for (let i = 2; i < 8; i++) assert.equal(src[i], 0, 'free pages skipped (get_page_unless_zero)');
  // The mapped page is now unmapped (migration entry), locked, referenced once.
  assert.equal(e.k.pages.mapcount[d0], 0);
  assert.ok(e.k.pages.flags[d0] & PG_locked);
  const dst = new Float64Array(8);
  const s = e.k.buddy.alloc(0, 0);
  folioTrylock(e.k, s);
  e.k.contents.deviceCopy(s, d0, 1); /* the device's copy engine */
  dst[0] = migratePfn(s);
  run(e.k, migrateDevicePages(e.k, src, dst, 8));
  assert.ok(mpfnHas(src[0], MIGRATE_PFN_MIGRATE));
  run(e.k, migrateDeviceFinalize(e.k, src, dst, 8));
  assert.equal(pte(e.mm, e.vma.start)[0], s);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_PRESENT);
  assert.ok(pte(e.mm, e.vma.start)[1] & _PAGE_RW);
  folioUnlock(e.k, d1);
  assert.equal(e.dev.allocated('private'), 1);
  e.k.checkpoint('after unlock');
});

test('migrate_device_range: a large device folio is one COMPOUND entry; starting at a tail gives 0|COMPOUND', () => {
  const e = mkEnv(512, { hugepage: true });
  for (let i = 0; i < 512; i += 64) storePage(e.mm, e.vma.start + i * PAGE, i);
  e.k.lru.drain();
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private', true)), 1);
  const head = pmd(e.mm, e.vma.start)[0];
  const src = new Float64Array(512);
  run(e.k, migrateDeviceRange(e.k, src, head + 1, 512));
  assert.equal(src[0], MIGRATE_PFN_COMPOUND, 'tail page: no reference taken, COMPOUND only');
  run(e.k, migrateDeviceFinalize(e.k, src, new Float64Array(512), 512));
  e.k.checkpoint('finalize');
  const src2 = new Float64Array(512);
  run(e.k, migrateDeviceRange(e.k, src2, head, 512));
  assert.ok(mpfnHas(src2[0], MIGRATE_PFN_MIGRATE) && mpfnHas(src2[0], MIGRATE_PFN_COMPOUND));
  for (let i = 1; i < 512; i++) assert.equal(src2[i], 0);
  // A small dst for a compound source is refused without a vma (no split).
  const dst = new Float64Array(512);
  const s = e.k.buddy.alloc(0, 0);
  folioTrylock(e.k, s);
  dst[0] = migratePfn(s);
  run(e.k, migrateDevicePages(e.k, src2, dst, 512));
  assert.ok(!mpfnHas(src2[0], MIGRATE_PFN_MIGRATE));
  run(e.k, migrateDeviceFinalize(e.k, src2, dst, 512));
  e.k.checkpoint('finalize');
  assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_DEVICE_PRIVATE_WRITE, 'restored');
});

test('migrate_device_pfns takes raw pfns', () => {
  const e = mkEnv(3);
  for (let i = 0; i < 3; i++) storePage(e.mm, e.vma.start + i * PAGE, i + 1);
  const want = [0, 1, 2].map((i) => loadPage(e.mm, e.vma.start + i * PAGE));
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private'));
  const pf = [2, 0].map((i) => pte(e.mm, e.vma.start + i * PAGE)[0]);
  const src = new Float64Array(pf);
  run(e.k, migrateDevicePfns(e.k, src, 2));
  assert.ok(mpfnHas(src[0], MIGRATE_PFN_MIGRATE) && mpfnHas(src[1], MIGRATE_PFN_MIGRATE));
  const dst = new Float64Array(2);
  for (let i = 0; i < 2; i++) {
    const s = e.k.buddy.alloc(0, 0);
    folioTrylock(e.k, s);
    e.k.contents.deviceCopy(s, pf[i], 1);
    dst[i] = migratePfn(s);
  }
  run(e.k, migrateDevicePages(e.k, src, dst, 2));
  run(e.k, migrateDeviceFinalize(e.k, src, dst, 2));
  e.k.checkpoint('finalize');
  assert.equal(e.dev.allocated('private'), 1);
  for (let i = 0; i < 3; i++) assert.equal(loadPage(e.mm, e.vma.start + i * PAGE), want[i]);
});

test('migrate_device_coherent_folio: moves a mapped coherent page to system memory; pinned -> -EBUSY', () => {
  const e = mkEnv(2);
  storePage(e.mm, e.vma.start, 1);
  storePage(e.mm, e.vma.start + PAGE, 2);
  const w0 = loadPage(e.mm, e.vma.start);
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'coherent'));
  const c0 = pte(e.mm, e.vma.start)[0];
  const c1 = pte(e.mm, e.vma.start + PAGE)[0];
  assert.ok(isDeviceCoherentPage(e.k, c0));
  folioGet(e.k, c0); // GUP's reference, consumed
  assert.equal(run(e.k, migrateDeviceCoherentFolio(e.k, c0)), 0);
  const n0 = pte(e.mm, e.vma.start)[0];
  assert.ok(!isDeviceCoherentPage(e.k, n0));
  assert.equal(loadPage(e.mm, e.vma.start), w0);
  assert.ok(pte(e.mm, e.vma.start)[1] & _PAGE_RW);
  // An extra (pin) reference: the check fails, the page stays.
  folioGet(e.k, c1);
  folioGet(e.k, c1);
  assert.equal(run(e.k, migrateDeviceCoherentFolio(e.k, c1)), -EBUSY);
  assert.equal(pte(e.mm, e.vma.start + PAGE)[0], c1);
  assert.equal(e.k.pages.flags[c1] & PG_locked, 0);
  assert.equal(e.k.pages.refcount[c1], 2, 'mapping + the pin; the caller reference was consumed');
  folioPut(e.k, c1);
});

test('fault_page: a CPU write on a device-private page migrates it back with the fault page tolerated', () => {
  for (const hist of [false, true]) {
    const e = mkEnv(2, { cfg: { historical: { fault_no_page_ref: hist } as never } });
    storePage(e.mm, e.vma.start, 5);
    const want = loadPage(e.mm, e.vma.start);
    runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private'));
    const pfn = cpu(e.mm, e.vma.start, true);
    assert.ok(!isDevicePrivatePage(e.k, pfn), `historical=${hist}`);
    assert.equal(e.k.contents.checksum(pfn), want);
    assert.equal(e.dev.stat.migrateToRam, 1);
    assert.equal(e.dev.allocated('private'), 1, 'only the untouched page remains on the device');
    assert.ok(pte(e.mm, e.vma.start)[1] & _PAGE_RW);
    assert.ok(e.k.pages.flags[pfn] & PG_anon_exclusive);
  }
});

// Mainline do_huge_pmd_device_private() passes the HEAD page as vmf->page
// (the PMD entry's pfn); fault_page == head is what lets the folio pass
// folio_migrate_mapping()'s exact check (extra_cnt is compared with the
// head). huge_memory.ts currently passes the faulting subpage: see report.
test('PMD device-private fault at a tail address migrates the whole THP back', () => {
  const e = mkEnv(512, { hugepage: true });
  for (let i = 0; i < 512; i += 50) storePage(e.mm, e.vma.start + i * PAGE, i + 1);
  const want = loadPage(e.mm, e.vma.start + 300 * PAGE);
  e.k.lru.drain();
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private', true)), 1);
  assert.equal(loadPage(e.mm, e.vma.start + 300 * PAGE), want);
  assert.equal(e.dev.allocated('private'), 0);
  assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_PRESENT);
});

/** Map the page at e.vma.start writable into a second mm sharing the anon_vma. */
function mapInSecondMm(e: Env) {
  const mm2 = e.k.newMm();
  const vma2 = new Vma(mm2, e.vma.start, e.vma.end, e.vma.flags, e.vma.pgoff);
  mm2.insertVma(vma2);
  vma2.anonVma = e.vma.anonVma;
  e.vma.anonVma!.vmas.add(vma2);
  const a = e.vma.start;
  const s = ptOf(e.mm, a)!;
  const v = s.pt.v[s.i];
  e.k.pages.flags[v] &= ~PG_anon_exclusive;
  const pm = pmdTableOf(mm2.pgd, a, true)!;
  const pt2 = pteTableAlloc(mm2.pgd, pm, pmdIndex(a), a)!;
  setPte(pt2, Math.floor(a / PAGE) % 512, v, T_PRESENT | _PAGE_RW, 'test: inject entry');
  e.k.pages.mapcount[v]++;
  e.k.pages.refcount[v]++;
  return mm2;
}

test('historical ttm_coherent_as_private: try_to_migrate loses write permission of a coherent page', () => {
  for (const hist of [false, true]) {
    const e = mkEnv(1, { cfg: { historical: { ttm_coherent_as_private: hist } as never } });
    storePage(e.mm, e.vma.start, 1);
    runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'coherent'));
    const c = pte(e.mm, e.vma.start)[0];
    const mm2 = mapInSecondMm(e);
    // Migrate from the first mm; the second mapping is reached by try_to_migrate.
    const m = new MigrateVma({
      vma: e.vma, start: e.vma.start, end: e.vma.end, src: new Float64Array(1), dst: new Float64Array(1),
      flags: MIGRATE_VMA_SELECT_DEVICE_COHERENT, pgmapOwner: e.dev.owner,
    });
    setupLocked(e.k, m);
    assert.ok(mpfnHas(m.src[0], MIGRATE_PFN_MIGRATE));
    run(e.k, migrateVmaPages(m)); // no dst: restore
    run(e.k, migrateVmaFinalize(m));
    e.k.checkpoint('finalize');
    const [v2, f2] = pte(mm2, e.vma.start);
    assert.equal(v2, c);
    assert.equal((f2 & _PAGE_RW) !== 0, !hist, `historical=${hist}: write permission ${hist ? 'lost' : 'kept'}`);
  }
});

test('migrate_vma with SELECT_SYSTEM onto system pages (system -> system)', () => {
  const e = mkEnv(2);
  storePage(e.mm, e.vma.start, 1);
  const want = loadPage(e.mm, e.vma.start);
  const old = pte(e.mm, e.vma.start)[0];
  const m = new MigrateVma({ vma: e.vma, start: e.vma.start, end: e.vma.end, src: new Float64Array(2), dst: new Float64Array(2), flags: MIGRATE_VMA_SELECT_SYSTEM });
  setupLocked(e.k, m);
  for (let i = 0; i < 2; i++) {
    const s = e.k.buddy.alloc(0, 0);
    folioTrylock(e.k, s);
    if (mpfnHas(m.src[i], MIGRATE_PFN_VALID)) e.k.contents.deviceCopy(s, mpfnPfn(m.src[i]), 1);
    else e.k.contents.zero(s);
    m.dst[i] = migratePfn(s);
  }
  run(e.k, migrateVmaPages(m));
  run(e.k, migrateVmaFinalize(m));
  e.k.checkpoint('finalize');
  assert.notEqual(pte(e.mm, e.vma.start)[0], old);
  assert.equal(loadPage(e.mm, e.vma.start), want);
  assert.equal(pteType(pte(e.mm, e.vma.start + PAGE)[1]), T_PRESENT, 'hole populated with a system page');
  assert.deepEqual(e.k.printk.warnings, []);
});
