// SPDX-License-Identifier: GPL-2.0-only
/**
 * migrate_vma_setup(): every argument check and every collect decision
 * (mm/migrate_device.c: migrate_vma_setup(), migrate_vma_collect_pmd()).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HPAGE, PAGE, cpu, loadPage, mkEnv, pte, ptOf, run, storePage, type Env, setupLocked, runMmapRead } from './migrate_helpers.js';
import {
  MIGRATE_PFN_COMPOUND, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_VALID, MIGRATE_PFN_WRITE, MIGRATE_PFN_SHIFT,
  MIGRATE_VMA_SELECT_COMPOUND, MIGRATE_VMA_SELECT_DEVICE_COHERENT, MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM, MigrateVma, type MigrateVmaArgs, migratePfn, migratePfnToPage, migrateVmaFinalize, migrateVmaSetup,
} from '../src/kernel/mm/migrate_device.js';
import { EINVAL } from '../src/kernel/errno.js';
import {
  T_MIGRATION_READ, T_MIGRATION_READ_EXCLUSIVE, T_MIGRATION_WRITE, T_PRESENT, T_DEVICE_PRIVATE_WRITE, _PAGE_ACCESSED,
  _PAGE_DIRTY, _PAGE_RW, _PAGE_SOFT_DIRTY, _PAGE_UFFD_WP, pteType,
} from '../src/kernel/mm/pgtable.js';
import { PG_anon_exclusive, PG_locked, GUP_PIN_COUNTING_BIAS } from '../src/kernel/mm/page.js';
import { VM_HUGETLB, VM_IO, VM_PFNMAP, Vma } from '../src/kernel/mm/mm_types.js';
import { folioTrylock, folioUnlock } from '../src/kernel/mm/folio.js';
import { KernelBug } from '../src/kernel/printk.js';
import {
  MMU_NOTIFY_MIGRATE, MmuIntervalNotifier, mmuIntervalNotifierInsert, mmuIntervalSetSeq, type MmuNotifierRange,
} from '../src/kernel/mm/mmu_notifier.js';
import { mpfnHas, mpfnSet } from '../src/kernel/mm/migrate_pfn.js';

function mv(e: Env, flags: number, start = e.vma.start, end = e.vma.end, extra: Partial<MigrateVmaArgs> = {}): MigrateVma {
  const n = Math.max(1, Math.ceil((end - start) / PAGE));
  return new MigrateVma({ vma: e.vma, start, end, src: new Float64Array(n), dst: new Float64Array(n), flags, pgmapOwner: e.dev.owner, ...extra });
}

function setup(e: Env, m: MigrateVma): number {
  return setupLocked(e.k, m);
}

function finalize(e: Env, m: MigrateVma): void {
  run(e.k, migrateVmaFinalize(m));
  e.k.checkpoint('finalize');
}

test('migrate_pfn encoding: kernel values, full-width arithmetic', () => {
  assert.equal(MIGRATE_PFN_VALID, 1);
  assert.equal(MIGRATE_PFN_MIGRATE, 2);
  assert.equal(MIGRATE_PFN_WRITE, 8);
  assert.equal(MIGRATE_PFN_COMPOUND, 0x10);
  assert.equal(MIGRATE_PFN_SHIFT, 6);
  assert.equal(MIGRATE_VMA_SELECT_SYSTEM, 1);
  assert.equal(MIGRATE_VMA_SELECT_DEVICE_PRIVATE, 2);
  assert.equal(MIGRATE_VMA_SELECT_DEVICE_COHERENT, 4);
  assert.equal(MIGRATE_VMA_SELECT_COMPOUND, 8);
  const big = 2 ** 40 + 5;
  const v = mpfnSet(migratePfn(big), MIGRATE_PFN_MIGRATE);
  assert.equal(migratePfnToPage(v), big);
  assert.equal(migratePfnToPage(MIGRATE_PFN_MIGRATE), -1, 'MIGRATE without VALID is a hole');
  assert.equal(migratePfnToPage(MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND), -1);
});

test('setup argument checks: each returns -EINVAL', () => {
  const e = mkEnv(8);
  const S = MIGRATE_VMA_SELECT_SYSTEM;
  assert.equal(setup(e, mv(e, S, e.vma.start, e.vma.end, { vma: null as unknown as Vma /* a JavaScript caller ignoring the types */ })), -EINVAL, 'no vma');
  const saved = e.vma.flags;
  for (const bad of [VM_HUGETLB, VM_IO, VM_PFNMAP]) {
    e.vma.flags = saved | bad;
    assert.equal(setup(e, mv(e, S)), -EINVAL, `vma flag 0x${bad.toString(16)}`);
  }
  e.vma.flags = saved;
  // nr_pages computed before masking: [0x1800, 0x2000) is 0 pages.
  assert.equal(setup(e, mv(e, S, e.vma.start + 0x1800, e.vma.start + 0x2000)), -EINVAL, 'empty range');
  assert.equal(setup(e, mv(e, S, e.vma.start + PAGE, e.vma.start)), -EINVAL, 'end < start');
  assert.equal(setup(e, mv(e, S, e.vma.start - PAGE, e.vma.start + PAGE)), -EINVAL, 'start below the vma');
  assert.equal(setup(e, mv(e, S, e.vma.end, e.vma.end + PAGE)), -EINVAL, 'start at vma end');
  assert.equal(setup(e, mv(e, S, e.vma.start, e.vma.end + PAGE)), -EINVAL, 'end beyond the vma');
  assert.equal(setup(e, mv(e, S, e.vma.start, e.vma.end, { src: null as unknown as Float64Array })), -EINVAL, 'no src');
  assert.equal(setup(e, mv(e, S, e.vma.start, e.vma.end, { dst: null as unknown as Float64Array })), -EINVAL, 'no dst');
  // fault_page must be device-private and locked.
  storePage(e.mm, e.vma.start, 1);
  const sys = cpu(e.mm, e.vma.start, false);
  assert.equal(setup(e, mv(e, S, e.vma.start, e.vma.end, { faultPage: sys })), -EINVAL, 'fault page not device-private');
  const d = e.dev.allocDevicePage('private');
  folioUnlock(e.k, d);
  assert.equal(setup(e, mv(e, S, e.vma.start, e.vma.end, { faultPage: d })), -EINVAL, 'fault page not locked');
  // A partial page at the end: [start, start + 0x1fff) is 1 page after masking.
  const m = mv(e, S, e.vma.start, e.vma.start + 0x1fff);
  assert.equal(setup(e, m), 0);
  assert.equal(m.npages, 1);
  finalize(e, m);
});

test('src/dst arrays shorter than the range are a BUG', () => {
  const e = mkEnv(8);
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM);
  m.src = new Float64Array(4);
  assert.throws(() => setup(e, m), (err: unknown) => err instanceof KernelBug && err.kind === 'BUG' && /shorter/.test(err.rule));
});

test('holes: MIGRATE without a page in anon VMAs (any flags), 0 in file VMAs', () => {
  const e = mkEnv(4);
  const m = mv(e, 0);
  assert.equal(setup(e, m), 0);
  assert.equal(m.npages, 4);
  assert.equal(m.cpages, 4);
  for (let i = 0; i < 4; i++) assert.equal(m.src[i], MIGRATE_PFN_MIGRATE);
  finalize(e, m);
  // A file-backed VMA: holes are not populated.
  const as = e.k.newAddressSpace('shmem');
  const fv = new Vma(e.mm, 0x50000000, 0x50000000 + 4 * PAGE, e.vma.flags, 0);
  fv.file = as;
  e.mm.insertVma(fv);
  const m2 = new MigrateVma({ vma: fv, start: fv.start, end: fv.end, src: new Float64Array(4), dst: new Float64Array(4), flags: MIGRATE_VMA_SELECT_SYSTEM });
  assert.equal(setup(e, m2), 0);
  assert.equal(m2.cpages, 0);
  for (let i = 0; i < 4; i++) assert.equal(m2.src[i], 0);
});

test('compound hole: one MIGRATE|COMPOUND entry then 511 zeros; unaligned range gets small holes', () => {
  const e = mkEnv(1024, { hugepage: true, start: 0x40000000 });
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND, e.vma.start, e.vma.start + HPAGE);
  assert.equal(setup(e, m), 0);
  assert.equal(m.src[0], MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
  for (let i = 1; i < 512; i++) assert.equal(m.src[i], 0);
  assert.equal(m.cpages, 1);
  finalize(e, m);
  const m2 = mv(e, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND, e.vma.start + PAGE, e.vma.start + HPAGE);
  assert.equal(setup(e, m2), 0);
  assert.equal(m2.cpages, 511);
  finalize(e, m2);
});

test('zero pfn: selected only with SELECT_SYSTEM (historical: also without)', () => {
  for (const hist of [false, true]) {
    const e = mkEnv(2, { cfg: { historical: { zero_pfn_without_select_system: hist } as never } });
    loadPage(e.mm, e.vma.start); // read fault maps the zero page
    assert.equal(pte(e.mm, e.vma.start)[0], e.k.zeroPfn);
    const m = mv(e, MIGRATE_VMA_SELECT_DEVICE_COHERENT);
    assert.equal(setup(e, m), 0);
    assert.equal(m.src[0], hist ? MIGRATE_PFN_MIGRATE : 0, `historical=${hist}`);
    finalize(e, m);
    const m2 = mv(e, MIGRATE_VMA_SELECT_SYSTEM);
    assert.equal(setup(e, m2), 0);
    assert.equal(m2.src[0], MIGRATE_PFN_MIGRATE);
    assert.equal(pte(e.mm, e.vma.start)[0], e.k.zeroPfn, 'zero page PTE left in place');
    finalize(e, m2);
  }
});

test('selection by SELECT flags and pgmap owner', () => {
  const e = mkEnv(3);
  for (let i = 0; i < 3; i++) storePage(e.mm, e.vma.start + i * PAGE, i);
  // page 1 -> device-private, page 2 -> device-coherent
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start + PAGE, e.vma.start + 2 * PAGE, 'private')), 1);
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start + 2 * PAGE, e.vma.start + 3 * PAGE, 'coherent')), 1);
  const cases: Array<[number, unknown, boolean[]]> = [
    [MIGRATE_VMA_SELECT_SYSTEM, e.dev.owner, [true, false, false]],
    [MIGRATE_VMA_SELECT_DEVICE_PRIVATE, e.dev.owner, [false, true, false]],
    [MIGRATE_VMA_SELECT_DEVICE_COHERENT, e.dev.owner, [false, false, true]],
    [MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_DEVICE_COHERENT, { other: 1 }, [false, false, false]],
    [0, e.dev.owner, [false, false, false]],
  ];
  for (const [flags, owner, want] of cases) {
    const m = mv(e, flags, e.vma.start, e.vma.end, { pgmapOwner: owner });
    assert.equal(setup(e, m), 0);
    for (let i = 0; i < 3; i++) assert.equal(mpfnHas(m.src[i], MIGRATE_PFN_MIGRATE), want[i], `flags ${flags} page ${i}`);
    finalize(e, m);
  }
  for (let i = 0; i < 3; i++) assert.equal(e.k.pages.flags[e.k.pages.folioPfn(pte(e.mm, e.vma.start + i * PAGE)[0])] & PG_locked, 0);
});

test('migration entry kinds: WRITE, READ_EXCLUSIVE, READ; bits carried', () => {
  const e = mkEnv(3);
  for (let i = 0; i < 3; i++) storePage(e.mm, e.vma.start + i * PAGE, i);
  // page 0: writable, soft-dirty + uffd-wp; page 1: read-only exclusive; page 2: read-only shared.
  const set = (i: number, fn: (f: number) => number) => {
    const a = e.vma.start + i * PAGE;
    const f = pte(e.mm, a)[1];
    const t = ptOf(e.mm, a)!;
    t.pt.f[t.i] = fn(f);
  };
  set(0, (f) => f | _PAGE_SOFT_DIRTY | _PAGE_UFFD_WP);
  set(1, (f) => f & ~_PAGE_RW);
  set(2, (f) => f & ~_PAGE_RW);
  e.k.pages.flags[pte(e.mm, e.vma.start + 2 * PAGE)[0]] &= ~PG_anon_exclusive;
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM);
  assert.equal(setup(e, m), 0);
  assert.ok(mpfnHas(m.src[0], MIGRATE_PFN_WRITE));
  assert.ok(!mpfnHas(m.src[1], MIGRATE_PFN_WRITE));
  const [, f0] = pte(e.mm, e.vma.start);
  const [, f1] = pte(e.mm, e.vma.start + PAGE);
  const [, f2] = pte(e.mm, e.vma.start + 2 * PAGE);
  assert.equal(pteType(f0), T_MIGRATION_WRITE);
  assert.ok(f0 & _PAGE_SOFT_DIRTY && f0 & _PAGE_UFFD_WP && f0 & _PAGE_DIRTY && f0 & _PAGE_ACCESSED);
  assert.equal(pteType(f1), T_MIGRATION_READ_EXCLUSIVE);
  assert.equal(pteType(f2), T_MIGRATION_READ);
  // No dst: finalize restores the original mappings exactly.
  finalize(e, m);
  const [v0, g0] = pte(e.mm, e.vma.start);
  assert.equal(pteType(g0), T_PRESENT);
  assert.ok(g0 & _PAGE_RW && g0 & _PAGE_SOFT_DIRTY && !(g0 & _PAGE_UFFD_WP), 'writable entry restores write, not uffd-wp');
  assert.ok(e.k.pages.flags[v0] & PG_anon_exclusive);
  const [v1, g1] = pte(e.mm, e.vma.start + PAGE);
  assert.ok(!(g1 & _PAGE_RW) && e.k.pages.flags[v1] & PG_anon_exclusive, 'read-only exclusive');
  const [v2, g2] = pte(e.mm, e.vma.start + 2 * PAGE);
  assert.ok(!(g2 & _PAGE_RW) && !(e.k.pages.flags[v2] & PG_anon_exclusive), 'read-only shared');
  e.k.lru.drain(); // finalize's folio_add_lru() reference sits in the batch until a drain
  for (const v of [v0, v1, v2]) {
    assert.equal(e.k.pages.refcount[v], 1);
    assert.equal(e.k.pages.mapcount[v], 1);
    assert.equal(e.k.pages.flags[v] & PG_locked, 0);
  }
});


test('collect: a locked page is skipped (trylock fails), PTE untouched', () => {
  const e = mkEnv(2);
  storePage(e.mm, e.vma.start, 1);
  storePage(e.mm, e.vma.start + PAGE, 2);
  const v = pte(e.mm, e.vma.start)[0];
  assert.ok(folioTrylock(e.k, v));
  e.k.sched.lockdep?.folioDisown(v); /* locked by another context (lockdep) */
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM);
  assert.equal(setup(e, m), 0);
  assert.equal(m.src[0], 0);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_PRESENT);
  assert.equal(m.cpages, 1);
  run(e.k, migrateVmaFinalize(m));
  folioUnlock(e.k, v);
  assert.equal(e.k.pages.refcount[v], 1);
  e.k.checkpoint('after unlock');
});

test('collect: an anon-exclusive page that may be pinned is skipped (folio_try_share fails)', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 1);
  const v = pte(e.mm, e.vma.start)[0];
  e.k.pages.refcount[v] += GUP_PIN_COUNTING_BIAS; // a FOLL_PIN
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM);
  assert.equal(setup(e, m), 0);
  assert.equal(m.src[0], 0);
  assert.equal(m.cpages, 0);
  const [, f] = pte(e.mm, e.vma.start);
  assert.equal(pteType(f), T_PRESENT);
  assert.ok(f & _PAGE_RW);
  assert.ok(e.k.pages.flags[v] & PG_anon_exclusive);
  e.k.pages.refcount[v] -= GUP_PIN_COUNTING_BIAS;
  assert.equal(e.k.pages.flags[v] & PG_locked, 0);
});

test('collect: other swap-type entries (migration entry of another migration) are not selected', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 1);
  const m1 = mv(e, MIGRATE_VMA_SELECT_SYSTEM);
  assert.equal(setup(e, m1), 0);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_MIGRATION_WRITE);
  // m1 stands for a migration in another context: its folio lock is not this thread's (lockdep).
  e.k.sched.lockdep?.folioDisown(pte(e.mm, e.vma.start)[0]);
  const m2 = mv(e, MIGRATE_VMA_SELECT_SYSTEM);
  assert.equal(setup(e, m2), 0);
  assert.equal(m2.src[0], 0);
  assert.equal(m2.cpages, 0);
  finalize(e, m2);
  finalize(e, m1);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_PRESENT);
});

test('collect: one MMU_NOTIFY_MIGRATE invalidation carrying pgmap_owner', () => {
  const e = mkEnv(2);
  storePage(e.mm, e.vma.start, 1);
  const seen: MmuNotifierRange[] = [];
  const sub = new MmuIntervalNotifier(e.mm, e.vma.start, e.vma.end - 1, {
    *invalidate(s, r, seq) {
      seen.push(r);
      mmuIntervalSetSeq(s, seq);
      return true;
    },
  });
  mmuIntervalNotifierInsert(sub);
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM);
  assert.equal(setup(e, m), 0);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].event, MMU_NOTIFY_MIGRATE);
  assert.equal(seen[0].owner, e.dev.owner);
  assert.equal(seen[0].start, e.vma.start);
  assert.equal(seen[0].end, e.vma.end);
  finalize(e, m);
});

test('collect: a device-private page of another owner stays; migrate_to_ram owner mismatch gives no entry', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 1);
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private')), 1);
  const m = mv(e, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, e.vma.start, e.vma.end, { pgmapOwner: 'someone else' });
  assert.equal(setup(e, m), 0);
  assert.equal(m.src[0], 0);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_DEVICE_PRIVATE_WRITE);
  finalize(e, m);
});
