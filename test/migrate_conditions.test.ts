// SPDX-License-Identifier: GPL-2.0-only
/**
 * Skip / abort / error conditions of migrate_vma_setup / _pages / _finalize
 * and migrate_device_* (current mm/migrate_device.c) that migrate_setup / migrate_pages /
 * migrate_device_range.test.ts do not already cover, driven through the
 * minimal driver (src/drivers/testdrv) or by hand as a driver would.
 * Each test names the kernel condition it checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HPAGE, PAGE, cpu, loadPage, mkEnv, pmd, pte, run, storePage, type Env, setupLocked, runMmapRead } from './migrate_helpers.js';
import {
  MIGRATE_PFN_COMPOUND, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_VALID, MIGRATE_PFN_WRITE, MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_SYSTEM, MigrateVma,
  migrateDeviceCoherentFolio, migrateDeviceFinalize, migrateDevicePages, migrateDevicePfns, migrateDeviceRange,
  migratePfn, migratePfnToPage, migrateVmaFinalize, migrateVmaPages, migrateVmaSetup, mpfnHas,
} from '../src/kernel/mm/migrate_device.js';
import {
  T_DEVICE_EXCLUSIVE, T_DEVICE_PRIVATE_WRITE, T_NONE, T_PRESENT, T_TABLE, _PAGE_RW, _PAGE_SPECIAL, pmdIndex,
  pmdTableOf, pteIndex, pteTableAlloc, pteType,
} from '../src/kernel/mm/pgtable.js';
import { setPte } from '../src/kernel/mm/pte_ops.js';
import { HPAGE_PMD_NR, PG_anon_exclusive, PG_buddy, PG_locked } from '../src/kernel/mm/page.js';
import { VM_DONTEXPAND, VM_MIXEDMAP, type VmFault } from '../src/kernel/mm/mm_types.js';
import { folioGet, folioPut, folioTrylock, folioUnlock } from '../src/kernel/mm/folio.js';
import { DevPagemap, MEMORY_DEVICE_GENERIC, isDevicePrivatePage, memremapPages, requestFreeMemRegion } from '../src/kernel/mm/memremap.js';
import { KernelBug } from '../src/kernel/printk.js';
import { EBUSY, EINVAL } from '../src/kernel/errno.js';
import { vmMunmap } from '../src/kernel/mm/mmap.js';
import { splitHugePmdNotify } from '../src/kernel/mm/huge_memory.js';
import { FOLL_WRITE, pinUserPages, unpinUserPage } from '../src/kernel/mm/gup.js';
import { makeDeviceExclusive } from '../src/kernel/mm/device_exclusive.js';
import { MMU_NOTIFY_MIGRATE, MmuIntervalNotifier, mmuIntervalNotifierInsert, mmuIntervalSetSeq, type MmuNotifierRange } from '../src/kernel/mm/mmu_notifier.js';
import { doUserAddrFault, SIGBUS } from '../src/kernel/arch/fault.js';
import type { MmStruct } from '../src/kernel/mm/mm_types.js';
import type { K } from '../src/kernel/sched/sched.js';
import { __GFP_NOWARN } from '../src/kernel/mm/page_alloc.js';
import { mpfnFlags, mpfnSet } from '../src/kernel/mm/migrate_pfn.js';

const S = MIGRATE_VMA_SELECT_SYSTEM;
const isBug = (rule: RegExp) => (err: unknown) => err instanceof KernelBug && err.kind === 'BUG' && rule.test(err.rule);
const flagsOf = mpfnFlags;

function mv(e: Env, flags: number, start = e.vma.start, end = e.vma.end): MigrateVma {
  const n = Math.max(1, (end - start) / PAGE);
  return new MigrateVma({ vma: e.vma, start, end, src: new Float64Array(n), dst: new Float64Array(n), flags, pgmapOwner: e.dev.owner });
}

/** Run f with mm's mmap_lock held for read (what a driver does around GUP / make_device_exclusive). */
function locked<T>(e: Env, f: () => T): T {
  assert.ok(e.mm.mmapLock.tryReadFast(e.k.sched));
  try {
    return f();
  } finally {
    e.mm.mmapLock.readUnlock(e.k.sched);
  }
}

function pin(e: Env, addr: number): number {
  const pages = new Float64Array(1);
  assert.equal(locked(e, () => run(e.k, pinUserPages(e.mm, addr, 1, FOLL_WRITE, pages))), 1);
  return pages[0];
}

/* ------------------------------------------------------------------ */
/* migrate_vma_setup() argument checks                                */

test('setup: VM_MIXEDMAP and VM_DONTEXPAND (the rest of VM_SPECIAL) are -EINVAL; src is left untouched on any argument error', () => {
  const e = mkEnv(2);
  const saved = e.vma.flags;
  for (const bad of [VM_MIXEDMAP, VM_DONTEXPAND]) {
    e.vma.flags = saved | bad;
    const m = mv(e, S);
    m.src.fill(123);
    assert.equal(setupLocked(e.k, m), -EINVAL, `flag 0x${bad.toString(16)}`);
    assert.deepEqual([...m.src], [123, 123], 'the memset happens after the checks');
    assert.equal(m.npages, 0);
  }
  e.vma.flags = saved;
  const m = mv(e, S);
  assert.equal(setupLocked(e.k, m), 0);
  assert.equal(m.npages, 2);
  run(e.k, migrateVmaFinalize(m));
});

/* ------------------------------------------------------------------ */
/* migrate_vma_collect_huge_pmd()                                     */

test('collect: a THP PMD without SELECT_SYSTEM is skipped whole (512 zeros), the PMD untouched', () => {
  const e = mkEnv(512, { hugepage: true });
  storePage(e.mm, e.vma.start, 1);
  const [head, f] = pmd(e.mm, e.vma.start);
  const m = mv(e, MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_DEVICE_COHERENT | MIGRATE_VMA_SELECT_COMPOUND);
  assert.equal(setupLocked(e.k, m), 0);
  assert.equal(m.npages, HPAGE_PMD_NR);
  assert.equal(m.cpages, 0);
  assert.ok(m.src.every((x) => x === 0));
  assert.deepEqual(pmd(e.mm, e.vma.start).slice(0, 2), [head, f]);
  run(e.k, migrateVmaFinalize(m));
  e.k.checkpoint('finalize');
});

test('collect: the huge zero PMD is a hole (COMPOUND with SELECT_COMPOUND, else 512 MIGRATE) and is not split', () => {
  const e = mkEnv(512, { hugepage: true });
  cpu(e.mm, e.vma.start, false);
  assert.equal(pmd(e.mm, e.vma.start)[0], e.k.hugeZeroPfn);
  const m = mv(e, S | MIGRATE_VMA_SELECT_COMPOUND);
  assert.equal(setupLocked(e.k, m), 0);
  assert.equal(m.src[0], MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
  assert.equal(m.cpages, 1);
  assert.ok(m.src.subarray(1).every((x) => x === 0));
  run(e.k, migrateVmaFinalize(m));
  const m2 = mv(e, S);
  assert.equal(setupLocked(e.k, m2), 0);
  assert.ok(m2.src.every((x) => x === MIGRATE_PFN_MIGRATE));
  assert.equal(m2.cpages, HPAGE_PMD_NR);
  run(e.k, migrateVmaFinalize(m2));
  const [v, f] = pmd(e.mm, e.vma.start);
  assert.equal(pteType(f), T_PRESENT);
  assert.equal(v, e.k.hugeZeroPfn, 'still the huge zero PMD');
  assert.equal(e.k.vmstat.thp_split_pmd, 0);
});

test('collect: a THP whose folio lock is held elsewhere (trylock fails) is skipped whole', () => {
  const e = mkEnv(512, { hugepage: true });
  storePage(e.mm, e.vma.start, 1);
  const head = pmd(e.mm, e.vma.start)[0];
  e.k.lru.drain();
  const ref = e.k.pages.refcount[head];
  assert.ok(folioTrylock(e.k, head));
  e.k.sched.lockdep?.folioDisown(head); /* held elsewhere: another context's lock (lockdep) */
  const m = mv(e, S | MIGRATE_VMA_SELECT_COMPOUND);
  assert.equal(setupLocked(e.k, m), 0);
  assert.ok(m.src.every((x) => x === 0));
  assert.equal(m.cpages, 0);
  assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_PRESENT);
  assert.equal(e.k.pages.refcount[head], ref, 'the collect reference was dropped');
  assert.ok(e.k.pages.flags[head] & PG_locked, 'still held by the other locker');
  run(e.k, migrateVmaFinalize(m));
  folioUnlock(e.k, head);
  e.k.checkpoint('unlock');
});

test('collect: SELECT_COMPOUND on a range that does not cover the whole 2 MiB splits the THP and collects the pages one by one', () => {
  const e = mkEnv(512, { hugepage: true });
  for (let i = 0; i < 512; i += 128) storePage(e.mm, e.vma.start + i * PAGE, i + 1);
  const want = loadPage(e.mm, e.vma.start + 128 * PAGE);
  const head = pmd(e.mm, e.vma.start)[0];
  e.k.lru.drain();
  const m = mv(e, S | MIGRATE_VMA_SELECT_COMPOUND, e.vma.start + PAGE, e.vma.end);
  assert.equal(setupLocked(e.k, m), 0);
  assert.equal(m.npages, 511);
  assert.equal(m.cpages, 511);
  for (let i = 0; i < 511; i++) {
    assert.equal(flagsOf(m.src[i]), MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE, `entry ${i}`);
    assert.equal(migratePfnToPage(m.src[i]), head + 1 + i);
  }
  assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_TABLE);
  assert.equal(e.k.pages.order[head], 0, 'split_folio()');
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_PRESENT, 'the page outside the range stays mapped');
  run(e.k, migrateVmaFinalize(m));
  e.k.checkpoint('finalize');
  assert.equal(loadPage(e.mm, e.vma.start + 128 * PAGE), want);
});

test('collect: a pinned THP cannot become a PMD migration entry nor be split: every entry 0, data and pin intact', () => {
  for (const compound of [true, false]) {
    const e = mkEnv(512, { hugepage: true });
    storePage(e.mm, e.vma.start, 9);
    const want = loadPage(e.mm, e.vma.start);
    const head = pmd(e.mm, e.vma.start)[0];
    const pinned = pin(e, e.vma.start);
    assert.equal(pinned, head);
    const m = mv(e, S | (compound ? MIGRATE_VMA_SELECT_COMPOUND : 0));
    assert.equal(setupLocked(e.k, m), 0);
    assert.ok(m.src.every((x) => x === 0), `compound=${compound}`);
    assert.equal(m.cpages, 0);
    assert.equal(e.k.pages.order[head], 9, 'split_folio() refused (can_split_folio)');
    assert.ok(e.k.pages.flags[head] & PG_anon_exclusive, 'folio_try_share failed: still exclusive');
    assert.equal(e.k.pages.flags[head] & PG_locked, 0);
    run(e.k, migrateVmaFinalize(m));
    assert.equal(loadPage(e.mm, e.vma.start), want);
    unpinUserPage(e.k, pinned);
    e.k.checkpoint('unpin');
  }
});

// __folio_split() checks can_split_folio() BEFORE unmap_folio() splits the
// PMD, so a pinned THP stays PMD-mapped (collectHugePmd's fallback does the
// same) and its span is skipped.
test('collect: a pinned THP stays PMD-mapped after the failed split (kernel order: can_split_folio before unmap_folio)', () => {
  const e = mkEnv(512, { hugepage: true });
  storePage(e.mm, e.vma.start, 9);
  const pinned = pin(e, e.vma.start);
  const m = mv(e, S);
  setupLocked(e.k, m);
  run(e.k, migrateVmaFinalize(m));
  try {
    assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_PRESENT);
  } finally {
    unpinUserPage(e.k, pinned);
  }
});

/* ------------------------------------------------------------------ */
/* migrate_vma_collect_pmd(): PTE level                               */

/** split_huge_pmd() of the THP at e.vma.start without splitting the VMA (as a partial zap or mprotect would). */
function splitPmd(e: Env): void {
  const pm = pmdTableOf(e.mm.pgd, e.vma.start, false)!;
  run(e.k, splitHugePmdNotify(e.vma, pm, pmdIndex(e.vma.start), e.vma.start));
  assert.equal(pteType(pm.f[pmdIndex(e.vma.start)]), T_TABLE);
}

test('collect: a PTE-mapped large folio is split (migrate_vma_split_folio) and each page collected; a pinned one makes the rest of the span 0', () => {
  const e = mkEnv(512, { hugepage: true });
  storePage(e.mm, e.vma.start, 1);
  const head = pmd(e.mm, e.vma.start)[0];
  splitPmd(e);
  const t = pmdTableOf(e.mm.pgd, e.vma.start, false)!.pte[pmdIndex(e.vma.start)]!;
  t.f[pteIndex(e.vma.start + 10 * PAGE)] &= ~_PAGE_RW;
  assert.equal(e.k.pages.order[head], 9, 'the PMD split keeps the large folio');
  e.k.lru.drain();
  const m = mv(e, S);
  assert.equal(setupLocked(e.k, m), 0);
  assert.equal(m.cpages, HPAGE_PMD_NR);
  assert.equal(e.k.pages.order[head], 0);
  for (let i = 0; i < HPAGE_PMD_NR; i++) assert.equal(migratePfnToPage(m.src[i]), head + i);
  assert.ok(!mpfnHas(m.src[10], MIGRATE_PFN_WRITE), 'the read-only PTE gives no MIGRATE_PFN_WRITE');
  assert.ok(mpfnHas(m.src[11], MIGRATE_PFN_WRITE));
  run(e.k, migrateVmaFinalize(m));
  e.k.checkpoint('finalize');

  const p = mkEnv(512, { hugepage: true });
  storePage(p.mm, p.vma.start, 1);
  const h2 = pmd(p.mm, p.vma.start)[0];
  splitPmd(p);
  const pinned = pin(p, p.vma.start + 3 * PAGE);
  const m2 = mv(p, S);
  assert.equal(setupLocked(p.k, m2), 0);
  assert.ok(m2.src.every((x) => x === 0), 'split failed: migrate_vma_collect_skip(addr, end)');
  assert.equal(m2.cpages, 0);
  assert.equal(p.k.pages.order[h2], 9);
  assert.equal(pteType(pte(p.mm, p.vma.start + 3 * PAGE)[1]), T_PRESENT);
  run(p.k, migrateVmaFinalize(m2));
  unpinUserPage(p.k, pinned);
  p.k.checkpoint('unpin');
});

test('collect: a PTE-mapped large device-private folio is split at the CPU fault; the unmapped page of it goes back to the driver', () => {
  for (const faultAt of [0, 7]) {
    const e = mkEnv(512, { hugepage: true });
    for (let i = 0; i < 512; i += 64) storePage(e.mm, e.vma.start + i * PAGE, i + 1);
    storePage(e.mm, e.vma.start + 7 * PAGE, 77);
    const want = loadPage(e.mm, e.vma.start + faultAt * PAGE);
    e.k.lru.drain();
    assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private', true)), 1);
    const d = pmd(e.mm, e.vma.start)[0];
    assert.equal(run(e.k, vmMunmap(e.mm, e.vma.start + 5 * PAGE, PAGE)), 0);
    assert.equal(e.dev.allocated('private'), HPAGE_PMD_NR, 'still one 512-page folio');
    const pfn = cpu(e.mm, e.vma.start + faultAt * PAGE, false);
    assert.ok(!isDevicePrivatePage(e.k, pfn));
    assert.equal(e.k.contents.checksum(pfn), want);
    assert.equal(e.k.pages.order[d], 0, 'the device folio was split');
    assert.equal(e.dev.allocated('private'), HPAGE_PMD_NR - 2, `fault at ${faultAt}: the migrated page and the unmapped page 5 were freed`);
    for (const i of [1, 6, 8, 511]) {
      if (i === faultAt) continue;
      const [v, f] = pte(e.mm, e.vma.start + i * PAGE);
      assert.equal(pteType(f), T_DEVICE_PRIVATE_WRITE);
      assert.equal(v, d + i);
      assert.equal(e.k.pages.refcount[v], 1);
    }
    e.k.checkpoint('split device folio');
  }
});

test('collect: a device-exclusive entry is not collected (not a device-private entry); a special PTE (vm_normal_page NULL) gives 0', () => {
  const e = mkEnv(3);
  storePage(e.mm, e.vma.start, 1);
  const r = locked(e, () => run(e.k, makeDeviceExclusive(e.mm, e.vma.start, null)));
  assert.ok('page' in r);
  folioUnlock(e.k, r.page);
  folioPut(e.k, r.page);
  const special = e.k.buddy.alloc(0, 0);
  const pm = pmdTableOf(e.mm.pgd, e.vma.start, true)!;
  setPte(pteTableAlloc(e.mm.pgd, pm, pmdIndex(e.vma.start), e.vma.start)!, pteIndex(e.vma.start + PAGE), special, T_PRESENT | _PAGE_SPECIAL, 'test: inject entry');
  const m = mv(e, S | MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_DEVICE_COHERENT);
  assert.equal(setupLocked(e.k, m), 0);
  assert.deepEqual([...m.src], [0, 0, MIGRATE_PFN_MIGRATE]);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_DEVICE_EXCLUSIVE);
  assert.equal(pte(e.mm, e.vma.start + PAGE)[0], special);
  run(e.k, migrateVmaFinalize(m));
  e.k.checkpoint('finalize');
});

/* ------------------------------------------------------------------ */
/* migrate_device_unmap() / migrate_vma_check_page()                  */

test('unmap: a device page with ONE extra reference passes migrate_vma_check_page (ZONE_DEVICE leniency) but folio_migrate_mapping refuses it', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 4);
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private'));
  const d = pte(e.mm, e.vma.start)[0];
  folioGet(e.k, d);
  const m = mv(e, MIGRATE_VMA_SELECT_DEVICE_PRIVATE);
  assert.equal(setupLocked(e.k, m), 0);
  assert.ok(mpfnHas(m.src[0], MIGRATE_PFN_MIGRATE), 'setup keeps it');
  assert.equal(m.cpages, 1);
  const s = e.k.buddy.alloc(0, 0);
  folioTrylock(e.k, s);
  m.dst[0] = migratePfn(s);
  run(e.k, migrateVmaPages(m));
  assert.ok(!mpfnHas(m.src[0], MIGRATE_PFN_MIGRATE), 'the exact check in folio_migrate_mapping fails');
  run(e.k, migrateVmaFinalize(m));
  e.k.lru.drain();
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_DEVICE_PRIVATE_WRITE, 'restored');
  assert.ok(e.k.pages.flags[s] & PG_buddy, 'unused dst freed');
  folioPut(e.k, d);
  e.k.checkpoint('finalize');
});

test('unmap: a device page with TWO extra references fails the check and is restored at once (src 0, unlocked)', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 4);
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private'));
  const d = pte(e.mm, e.vma.start)[0];
  folioGet(e.k, d);
  folioGet(e.k, d);
  const m = mv(e, MIGRATE_VMA_SELECT_DEVICE_PRIVATE);
  assert.equal(setupLocked(e.k, m), 0);
  assert.equal(m.src[0], 0);
  assert.equal(m.cpages, 0);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_DEVICE_PRIVATE_WRITE);
  assert.equal(e.k.pages.flags[d] & PG_locked, 0);
  assert.equal(e.k.pages.refcount[d], 3);
  run(e.k, migrateVmaFinalize(m));
  folioPut(e.k, d);
  folioPut(e.k, d);
  e.k.checkpoint('finalize');
});

test('unmap: when the fault page cannot migrate, the restore pass leaves it locked for do_swap_page (fault_folio is not unlocked)', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 4);
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private'));
  const d = pte(e.mm, e.vma.start)[0];
  folioGet(e.k, d);
  folioGet(e.k, d);
  const seen: unknown[] = [];
  (e.dev as unknown as { migrateToRam: (vmf: VmFault) => K<number> }).migrateToRam = function* (vmf: VmFault): K<number> {
    const m = new MigrateVma({
      vma: vmf.vma, start: vmf.address, end: vmf.address + PAGE, src: new Float64Array(1), dst: new Float64Array(1),
      flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmapOwner: e.dev.owner, faultPage: vmf.page,
    });
    assert.equal(yield* migrateVmaSetup(m), 0);
    seen.push(m.src[0], m.cpages, (e.k.pages.flags[d] & PG_locked) !== 0, e.k.pages.refcount[d]);
    yield* migrateVmaPages(m);
    yield* migrateVmaFinalize(m);
    seen.push((e.k.pages.flags[d] & PG_locked) !== 0);
    return 0x2; /* VM_FAULT_SIGBUS */
  };
  const r = run(e.k, doUserAddrFault(e.mm, e.vma.start, false));
  assert.equal(r.ok ? 0 : r.signal, SIGBUS);
  // src 0, nothing collected, the fault page still locked with the fault handler's reference (+2 extra + the mapping).
  assert.deepEqual(seen, [0, 0, true, 4, true]);
  assert.equal(e.k.pages.flags[d] & PG_locked, 0, 'do_swap_page unlocked it');
  assert.equal(e.k.pages.refcount[d], 3);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_DEVICE_PRIVATE_WRITE);
  folioPut(e.k, d);
  folioPut(e.k, d);
  e.k.checkpoint('fault');
});

test('migrate_device_range: a pinned device-coherent page stays mapped (try_to_migrate cannot share it) and is restored', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 4);
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'coherent'));
  const c = pte(e.mm, e.vma.start)[0];
  const pinned = pin(e, e.vma.start);
  assert.equal(pinned, c, 'a short-term pin of a coherent page is allowed');
  const src = new Float64Array(1);
  run(e.k, migrateDeviceRange(e.k, src, c, 1));
  assert.equal(src[0], 0);
  const [v, f] = pte(e.mm, e.vma.start);
  assert.equal(v, c);
  assert.equal(pteType(f), T_PRESENT, 'never replaced by a migration entry');
  assert.ok(f & _PAGE_RW);
  assert.ok(e.k.pages.flags[c] & PG_anon_exclusive);
  assert.equal(e.k.pages.flags[c] & PG_locked, 0);
  run(e.k, migrateDeviceFinalize(e.k, src, new Float64Array(1), 1));
  unpinUserPage(e.k, pinned);
  e.k.checkpoint('restore');
});

test('migrate_device_range: an unmapped device page held by its driver passes migrate_vma_check_page but not folio_migrate_mapping; free pages are skipped', () => {
  const e = mkEnv(1);
  const d = e.dev.allocDevicePage('private');
  e.k.contents.deviceFill(d, 0x3c); /* the device writes its page */
  folioUnlock(e.k, d);
  const src = new Float64Array(2);
  run(e.k, migrateDeviceRange(e.k, src, d, 2));
  assert.equal(flagsOf(src[0]), MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE, 'not mapped: no try_to_migrate; check passes (ZONE_DEVICE extra)');
  assert.equal(src[1], 0, 'the next page is free: get_page_unless_zero fails');
  assert.equal(e.k.pages.refcount[d], 2, "the driver's reference + migrate_device_pfn_lock's");
  const s = e.k.buddy.alloc(0, 0);
  folioTrylock(e.k, s);
  e.k.contents.deviceCopy(s, d, 1);
  const dst = new Float64Array([migratePfn(s), 0]);
  run(e.k, migrateDevicePages(e.k, src, dst, 2));
  assert.ok(!mpfnHas(src[0], MIGRATE_PFN_MIGRATE), 'folio_migrate_mapping: refcount 2 != expected 1');
  run(e.k, migrateDeviceFinalize(e.k, src, dst, 2));
  e.k.lru.drain();
  assert.equal(e.k.pages.refcount[d], 1);
  assert.equal(e.k.pages.flags[d] & PG_locked, 0);
  assert.ok(e.k.pages.flags[s] & PG_buddy, 'the unused destination was freed');
  const free = new Float64Array([e.dev.priv.pgmap.firstPfn + 9]);
  run(e.k, migrateDevicePfns(e.k, free, 1));
  assert.equal(free[0], 0, 'migrate_device_pfns: a free device page gives 0');
  folioPut(e.k, d);
  assert.equal(e.dev.allocated('private'), 0);
  e.k.checkpoint('evict');
});

test('migrate_device_coherent_folio: no system page available -> -EBUSY, the coherent page is restored and still mapped', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 4);
  const want = loadPage(e.mm, e.vma.start);
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'coherent'));
  const c = pte(e.mm, e.vma.start)[0];
  e.k.buddy.fail.set('migrate_device_coherent_folio', { skip: 0, times: 1 });
  folioGet(e.k, c); /* the caller's reference, consumed */
  assert.equal(run(e.k, migrateDeviceCoherentFolio(e.k, c)), -EBUSY);
  const [v, f] = pte(e.mm, e.vma.start);
  assert.equal(v, c);
  assert.equal(pteType(f), T_PRESENT);
  assert.ok(f & _PAGE_RW);
  assert.equal(e.k.pages.refcount[c], 1, 'only the mapping');
  assert.equal(e.k.pages.flags[c] & PG_locked, 0);
  assert.equal(loadPage(e.mm, e.vma.start), want);
  e.k.checkpoint('coherent');
});

/* ------------------------------------------------------------------ */
/* __migrate_device_pages() / migrate_vma_insert_page()               */

test('pages: inserting holes fires one MMU_NOTIFY_MIGRATE (owner) from the first hole to the end; page -> page migration fires none', () => {
  const e = mkEnv(4);
  storePage(e.mm, e.vma.start, 1);
  storePage(e.mm, e.vma.start + 2 * PAGE, 3);
  const seen: MmuNotifierRange[] = [];
  mmuIntervalNotifierInsert(new MmuIntervalNotifier(e.mm, e.vma.start, e.vma.end - 1, {
    *invalidate(s, r, seq) {
      seen.push(r);
      mmuIntervalSetSeq(s, seq);
      return true;
    },
  }));
  const m = mv(e, S);
  setupLocked(e.k, m);
  assert.deepEqual(seen.map((r) => r.event), [MMU_NOTIFY_MIGRATE], 'collect');
  seen.length = 0;
  for (let i = 0; i < 4; i++) {
    const d = e.dev.allocDevicePage('private');
    const sp = migratePfnToPage(m.src[i]);
    if (sp >= 0) e.k.contents.deviceCopy(d, sp, 1);
    m.dst[i] = migratePfn(d);
  }
  run(e.k, migrateVmaPages(m));
  assert.equal(seen.length, 1);
  assert.equal(seen[0].event, MMU_NOTIFY_MIGRATE);
  assert.equal(seen[0].owner, e.dev.owner);
  assert.equal(seen[0].start, e.vma.start + PAGE, 'from the first hole');
  assert.equal(seen[0].end, e.vma.end);
  run(e.k, migrateVmaFinalize(m));
  const m2 = mv(e, MIGRATE_VMA_SELECT_DEVICE_PRIVATE);
  setupLocked(e.k, m2);
  seen.length = 0;
  for (let i = 0; i < 4; i++) {
    const s = e.k.buddy.alloc(0, 0);
    folioTrylock(e.k, s);
    e.k.contents.deviceCopy(s, migratePfnToPage(m2.src[i]), 1);
    m2.dst[i] = migratePfn(s);
  }
  run(e.k, migrateVmaPages(m2));
  assert.deepEqual(seen, [], 'no notifier: the PTEs already hold migration entries');
  run(e.k, migrateVmaFinalize(m2));
  e.k.checkpoint('finalize');
});

test('pages: a COMPOUND hole with 512 small dst pages is inserted page by page (src exactly MIGRATE each)', () => {
  const e = mkEnv(512, { hugepage: true });
  const m = mv(e, S | MIGRATE_VMA_SELECT_COMPOUND);
  setupLocked(e.k, m);
  assert.equal(m.src[0], MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
  for (let i = 0; i < HPAGE_PMD_NR; i++) m.dst[i] = migratePfn(e.dev.allocDevicePage('private'));
  run(e.k, migrateVmaPages(m));
  assert.ok(m.src.every((x) => x === MIGRATE_PFN_MIGRATE));
  run(e.k, migrateVmaFinalize(m));
  assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_TABLE);
  for (const i of [0, 300, 511]) assert.equal(pteType(pte(e.mm, e.vma.start + i * PAGE)[1]), T_DEVICE_PRIVATE_WRITE);
  assert.equal(e.mm.rss.anon, HPAGE_PMD_NR);
  e.k.checkpoint('finalize');
});

test('insert: a huge-zero-PMD hole is split first (the other 511 stay zero-page PTEs); a THP that appeared after setup aborts the insert', () => {
  const e = mkEnv(1024, { hugepage: true });
  cpu(e.mm, e.vma.start, false);
  const m = mv(e, S, e.vma.start, e.vma.start + HPAGE);
  setupLocked(e.k, m);
  const d = e.dev.allocDevicePage('private');
  m.dst[3] = migratePfn(d);
  run(e.k, migrateVmaPages(m));
  assert.equal(m.src[3], MIGRATE_PFN_MIGRATE);
  run(e.k, migrateVmaFinalize(m));
  assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_TABLE);
  assert.deepEqual(pte(e.mm, e.vma.start + 3 * PAGE), [d, T_DEVICE_PRIVATE_WRITE]);
  assert.equal(pte(e.mm, e.vma.start + 4 * PAGE)[0], e.k.zeroPfn);
  e.k.checkpoint('insert');
  // The second 2 MiB: holes collected, then a THP write fault fills the PMD before migrate_vma_pages().
  const b = e.vma.start + HPAGE;
  const m2 = mv(e, S, b, b + HPAGE);
  setupLocked(e.k, m2);
  assert.equal(m2.cpages, HPAGE_PMD_NR);
  storePage(e.mm, b, 5);
  const thp = pmd(e.mm, b)[0];
  assert.equal(e.k.pages.order[thp], 9);
  m2.dst[0] = migratePfn(e.dev.allocDevicePage('private'));
  run(e.k, migrateVmaPages(m2));
  assert.equal(m2.src[0], 0, 'pmd_trans_huge and not the huge zero page: abort');
  run(e.k, migrateVmaFinalize(m2));
  assert.equal(pmd(e.mm, b)[0], thp);
  assert.equal(e.dev.allocated('private'), 1, 'the unused dst was freed');
  e.k.checkpoint('abort');
});

test('insert: a dst of an unsupported ZONE_DEVICE type (generic) aborts the insert ("Unsupported ZONE_DEVICE page type.")', () => {
  const e = mkEnv(1);
  const gp = new DevPagemap(MEMORY_DEVICE_GENERIC, requestFreeMemRegion(e.k, 16 * PAGE), {}, null);
  assert.ok(memremapPages(e.k, gp) > 0);
  const g = gp.firstPfn;
  e.k.pages.flags[g] = PG_locked;
  e.k.pages.refcount[g] = 1;
  const m = mv(e, S);
  setupLocked(e.k, m);
  assert.equal(m.src[0], MIGRATE_PFN_MIGRATE);
  m.dst[0] = migratePfn(g);
  run(e.k, migrateVmaPages(m));
  assert.equal(m.src[0], 0);
  run(e.k, migrateVmaFinalize(m));
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_NONE);
  assert.equal(e.k.pages.flags[g] & PG_locked, 0, 'finalize unlocked the unused dst');
  e.k.checkpoint('finalize');
});

test('insert: a COMPOUND dst for a hole at an index that cannot hold a PMD (-EINVAL) clears MIGRATE on that entry only', () => {
  const e = mkEnv(4, { hugepage: true });
  const m = mv(e, S);
  setupLocked(e.k, m);
  const big = e.dev.allocDevicePage('private', 9);
  m.dst[1] = mpfnSet(migratePfn(big), MIGRATE_PFN_COMPOUND);
  const small = e.dev.allocDevicePage('private');
  m.dst[2] = migratePfn(small);
  run(e.k, migrateVmaPages(m));
  assert.deepEqual([...m.src], [0, 0, MIGRATE_PFN_MIGRATE, 0]);
  run(e.k, migrateVmaFinalize(m));
  assert.equal(pteType(pte(e.mm, e.vma.start + PAGE)[1]), T_NONE);
  assert.deepEqual(pte(e.mm, e.vma.start + 2 * PAGE), [small, T_DEVICE_PRIVATE_WRITE]);
  assert.equal(e.dev.allocated('private'), 1, 'the large dst was freed by finalize');
  e.k.checkpoint('finalize');
});

/* ------------------------------------------------------------------ */
/* driver misuse: KernelBug naming the rule                           */

test('misuse: a dst pfn with no struct page, a COMPOUND dst that is not PMD-sized, a compound hole split with a missing dst, pages() after finalize', () => {
  const e = mkEnv(1);
  const m = mv(e, S);
  setupLocked(e.k, m);
  m.dst[0] = migratePfn(0x7ffff000);
  assert.throws(() => run(e.k, migrateVmaPages(m)), isBug(/dst pfn has no struct page/));

  const h = mkEnv(512, { hugepage: true });
  const m2 = mv(h, S | MIGRATE_VMA_SELECT_COMPOUND);
  setupLocked(h.k, m2);
  m2.dst[0] = mpfnSet(migratePfn(h.dev.allocDevicePage('private')), MIGRATE_PFN_COMPOUND);
  assert.throws(() => run(h.k, migrateVmaPages(m2)), isBug(/COMPOUND dst is not a PMD-sized folio/));

  const h2 = mkEnv(512, { hugepage: true });
  const m3 = mv(h2, S | MIGRATE_VMA_SELECT_COMPOUND);
  setupLocked(h2.k, m3);
  m3.dst[0] = migratePfn(h2.dev.allocDevicePage('private'));
  assert.throws(() => run(h2.k, migrateVmaPages(m3)), isBug(/compound hole split without a dst page/));

  const f = mkEnv(1);
  const m4 = mv(f, S);
  setupLocked(f.k, m4);
  run(f.k, migrateVmaFinalize(m4));
  assert.throws(() => run(f.k, migrateVmaPages(m4)), isBug(/migrate_vma_pages\(\) after migrate_vma_finalize\(\)/));
  f.k.checkpoint('misuse');
});

void (null as unknown as MmStruct);

/* ------------------------------------------------------------------ */
/* the device-private CPU fault: what reaches the process              */

test('device-private fault: migrate_to_ram returning VM_FAULT_OOM (an injected allocation failure) is retried, not a signal (pagefault_out_of_memory since v5.16); the entry and data stay', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 6);
  const want = loadPage(e.mm, e.vma.start);
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private'));
  const d = pte(e.mm, e.vma.start)[0];
  e.k.buddy.fail.set('testdrv', { skip: 0, times: 1 });
  assert.deepEqual(run(e.k, doUserAddrFault(e.mm, e.vma.start, false)), { ok: true, oom: true });
  assert.match(e.k.printk.text(), /Huh VM_FAULT_OOM leaked out to the #PF handler\. Retrying PF/);
  assert.equal(e.k.printk.warnings.length, 0, 'a pr_warn, not a WARN');
  assert.equal(e.dev.stat.toRamFailed, 1);
  assert.deepEqual(pte(e.mm, e.vma.start), [d, T_DEVICE_PRIVATE_WRITE]);
  assert.equal(e.k.pages.flags[d] & PG_locked, 0);
  assert.equal(e.k.pages.refcount[d], 1);
  e.k.checkpoint('oom');
  assert.equal(loadPage(e.mm, e.vma.start), want, 'the next fault migrates it');
});

test('device-private fault on a page locked by someone else: the fault is retried once the holder unlocks, then migrate_to_ram runs', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 6);
  const want = loadPage(e.mm, e.vma.start);
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private'));
  const d = pte(e.mm, e.vma.start)[0];
  assert.ok(folioTrylock(e.k, d)); /* e.g. the driver inside its own migration */
  e.k.sched.lockdep?.folioDisown(d); /* ... in its own context: the 'holder' thread unlocks it (lockdep) */
  const s = e.k.sched;
  let faultResult: unknown = null;
  s.spawn('cpu', (function* (): K<void> {
    faultResult = yield* doUserAddrFault(e.mm, e.vma.start, false);
  })());
  let unlocked = false;
  s.spawn('holder', (function* (): K<void> {
    for (let i = 0; i < 3; i++) yield s.point('holder busy');
    unlocked = true;
    folioUnlock(e.k, d);
  })());
  // The CPU thread whenever it can run. It cannot lock the page, so
  // do_swap_page returns VM_FAULT_RETRY; under the explorer the spin is a
  // wait for the unlock (a schedule cannot starve the holder), then the
  // retried fault migrates the page.
  let blockedWhileLocked = false;
  let retries = 0;
  s.run({
    pick(runnable) {
      const cpu = s.tasks.find((t) => t.name === 'cpu');
      if (cpu && cpu.state === 'blocked' && !unlocked && /device page 0x[0-9a-f]+ locked/.test(cpu.waitWhat)) blockedWhileLocked = true;
      const cpuIdx = runnable.findIndex((t) => t.name === 'cpu');
      if (cpuIdx >= 0) {
        if (runnable[cpuIdx].last === 'page fault retry') retries++;
        return cpuIdx;
      }
      return 0;
    },
  });
  assert.ok(blockedWhileLocked, 'the fault waited for the page lock instead of spinning');
  assert.equal(retries, 1, 'the fault was retried once, after the unlock');
  assert.deepEqual(faultResult, { ok: true });
  assert.equal(e.dev.stat.migrateToRam, 1, 'migrate_to_ram ran once, after the unlock');
  const [v, f] = pte(e.mm, e.vma.start);
  assert.equal(pteType(f), T_PRESENT);
  assert.equal(e.k.contents.checksum(v), want);
  e.k.checkpoint('retry');
});

test('anonymous fault with an injected allocation failure: VM_FAULT_OOM, the fault is retried and the next one maps the page', () => {
  const e = mkEnv(1);
  e.k.buddy.fail.set('anon_fault', { skip: 0, times: 1 });
  assert.deepEqual(run(e.k, doUserAddrFault(e.mm, e.vma.start, true)), { ok: true, oom: true });
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_NONE);
  assert.doesNotMatch(e.k.printk.text(), /Out of memory/, 'no OOM kill for an injected failure');
  assert.deepEqual(run(e.k, doUserAddrFault(e.mm, e.vma.start, true)), { ok: true });
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_PRESENT);
});

test('anonymous fault with no free memory at all: the allocator\'s OOM killer (the model picks the faulting task) - SIGKILL', () => {
  const e = mkEnv(1);
  const held: number[] = [];
  for (let pfn = e.k.buddy.alloc(9, 0, 'test'); pfn >= 0; pfn = e.k.buddy.alloc(9, 0, 'test')) held.push(pfn);
  for (let pfn = e.k.buddy.alloc(0, __GFP_NOWARN, 'test'); pfn >= 0; pfn = e.k.buddy.alloc(0, __GFP_NOWARN, 'test')) held.push(pfn);
  e.k.current = { pid: 42, mm: e.mm, comm: 'hog' };
  assert.deepEqual(run(e.k, doUserAddrFault(e.mm, e.vma.start, true)), { ok: false, signal: 9, code: 0, addr: e.vma.start });
  assert.match(e.k.printk.text(), /Out of memory \(oom_kill_allocating_task\): Killed process 42 \(hog\)/);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_NONE);
  assert.ok(held.length > 0);
});
