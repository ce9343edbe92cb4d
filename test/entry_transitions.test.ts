// SPDX-License-Identifier: GPL-2.0-only
/**
 * Page-table entry kinds and their transitions (issue 2, "tests for every
 * entry-kind transition"). Each test drives one transition through the
 * model's real code path (fault, syscall, migrate_vma_* / migrate_device_*,
 * fork, mremap, mprotect, munmap) and asserts the entry kind and its bits
 * before and after, read straight from the page tables.
 *
 * Transitions already asserted elsewhere (not repeated here):
 *   none -> zero pfn -> present (write fault)       fault.test 'read fault maps the zero page...'
 *   huge zero PMD -> split -> zero PTEs              fault.test 'THP: read maps the huge zero page...'
 *   THP PMD -> 512 PTEs, folio split                 fault.test 'THP: splitting the PMD...'
 *   present -> migration-write (soft-dirty, uffd-wp) -> present
 *                                                    migrate_setup.test 'migration entry kinds...'
 *   present -> device-exclusive -> present (fault, fork), -> none (munmap)
 *                                                    device_exclusive.test
 *   hwpoison -> SIGBUS BUS_MCEERR_AR                 fault.test 'access errors...'
 *   fork: present -> read-only shared; pinned copy   fork.test
 *
 * The model never creates swap entries (no swap-out) nor hwpoison entries
 * (no memory_failure(); MADV_HWPOISON is -EPERM): the last tests inject
 * them and check every consumer that handles them as the kernel does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HPAGE, PAGE, cpu, loadPage, mkEnv, pmd, pte, ptOf, run, storePage, type Env, setupLocked, runMmapRead } from './migrate_helpers.js';
import {
  TYPE_NAMES, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_HWPOISON, T_MIGRATION_READ, T_MIGRATION_READ_EXCLUSIVE,
  T_MIGRATION_WRITE, T_NONE, T_PRESENT, T_SWAP, T_TABLE, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PROTNONE, _PAGE_RW,
  _PAGE_SOFT_DIRTY, _PAGE_SPECIAL, _PAGE_UFFD_WP, describeEntry, pmdIndex, pmdTableOf, pteIndex, pteTableAlloc,
  pteType, pmdAligned, pmdAlignUp,
} from '../src/kernel/mm/pgtable.js';
import { setPte } from '../src/kernel/mm/pte_ops.js';
import { HPAGE_PMD_NR, PG_anon_exclusive, PG_buddy, PG_locked } from '../src/kernel/mm/page.js';
import {
  MIGRATE_PFN_MIGRATE, MIGRATE_VMA_SELECT_COMPOUND, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_SYSTEM,
  MigrateVma, migrateDeviceFinalize, migrateDevicePages, migrateDeviceRange, migratePfn, migrateVmaFinalize,
  migrateVmaPages, migrateVmaSetup, mpfnHas,
} from '../src/kernel/mm/migrate_device.js';
import { isDevicePrivatePage } from '../src/kernel/mm/memremap.js';
import { folioTrylock } from '../src/kernel/mm/folio.js';
import { doMprotect } from '../src/kernel/mm/mprotect.js';
import { doMadvise, MADV_DONTNEED, MADV_HUGEPAGE, MADV_PAGEOUT } from '../src/kernel/mm/madvise.js';
import { _PAGE_SWP_EXCLUSIVE } from '../src/kernel/mm/swap.js';
import { vmMunmap, PROT_READ, PROT_WRITE, PROT_NONE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_HUGETLB } from '../src/kernel/mm/mmap.js';
import { doMremap, MREMAP_FIXED, MREMAP_MAYMOVE } from '../src/kernel/mm/mremap.js';
import { dupMmap, mmput } from '../src/kernel/mm/fork.js';
import { hmmRangeFault, HmmRange, HMM_PFN_REQ_FAULT } from '../src/kernel/mm/hmm.js';
import { MmuIntervalNotifier, mmuIntervalNotifierInsert, mmuIntervalReadBegin } from '../src/kernel/mm/mmu_notifier.js';
import { doUserAddrFault, SIGBUS, BUS_MCEERR_AR } from '../src/kernel/arch/fault.js';
import { EFAULT } from '../src/kernel/errno.js';
import type { MmStruct, VmFault } from '../src/kernel/mm/mm_types.js';
import type { K } from '../src/kernel/sched/sched.js';
import { System, pagemapEntry, PM_PRESENT, PM_SWAP, PM_SOFT_DIRTY, PM_UFFD_WP, PM_PFRAME_MASK } from '../src/user/system.js';
import { TestDev } from '../src/drivers/testdrv/testdrv.js';
import { MIGRATE_PFN_COMPOUND, mpfnPfn, mpfnSet } from '../src/kernel/mm/migrate_pfn.js';

const RW = PROT_READ | PROT_WRITE;
const BITS = _PAGE_SWP_EXCLUSIVE | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_SOFT_DIRTY | _PAGE_UFFD_WP | _PAGE_SPECIAL | _PAGE_PROTNONE;

/** Assert the leaf entry (PTE, or PMD when level is 'pmd') at addr: its kind, exactly which bits are set, and optionally its pfn. */
function expectEntry(mm: MmStruct, addr: number, kind: number, bits: number, opts: { pfn?: number; level?: 'pte' | 'pmd'; msg?: string } = {}): number {
  const [v, f] = opts.level === 'pmd' ? pmd(mm, addr) : pte(mm, addr);
  const what = `${opts.msg ?? ''} at 0x${addr.toString(16)}: got ${describeEntry(v, f)}`;
  assert.equal(pteType(f), kind, `${what}, want ${TYPE_NAMES[kind]}`);
  assert.equal(f & BITS, bits, `${what}, want bits ${describeEntry(0, kind | bits)}`);
  if (opts.pfn !== undefined) assert.equal(v, opts.pfn, `${what}: pfn`);
  return v;
}

/** A migrate_vma descriptor over [start, end) of e.vma. */
function mv(e: Env, flags: number, start = e.vma.start, end = e.vma.end): MigrateVma {
  const n = (end - start) / PAGE;
  return new MigrateVma({ vma: e.vma, start, end, src: new Float64Array(n), dst: new Float64Array(n), flags, pgmapOwner: e.dev.owner });
}

/** Flip bits of the PTE at addr (what the hardware, soft-dirty clearing or UFFDIO_WRITEPROTECT would do). */
function setBits(mm: MmStruct, addr: number, set: number, clear: number): void {
  const s = ptOf(mm, addr)!;
  s.pt.f[s.i] = (s.pt.f[s.i] & ~clear) | set;
}

test('none -> present on an anonymous write fault: write|dirty|young, exclusive, mapcount 1; none -> zero pfn on a read fault', () => {
  const e = mkEnv(2);
  expectEntry(e.mm, e.vma.start, T_NONE, 0);
  run(e.k, doUserAddrFault(e.mm, e.vma.start, true));
  const pfn = expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED);
  assert.ok(e.k.pages.flags[pfn] & PG_anon_exclusive);
  assert.equal(e.k.pages.mapcount[pfn], 1);
  run(e.k, doUserAddrFault(e.mm, e.vma.start + PAGE, false));
  const z = pte(e.mm, e.vma.start + PAGE);
  assert.equal(z[0], e.k.zeroPfn);
  assert.equal(pteType(z[1]), T_PRESENT);
  assert.equal(z[1] & (_PAGE_SPECIAL | _PAGE_RW | _PAGE_DIRTY), _PAGE_SPECIAL, 'zero pfn: special, read-only, clean');
  assert.equal(e.k.pages.mapcount[e.k.zeroPfn], 0, 'the zero page is never counted');
  e.k.checkpoint('faults');
});

test('mprotect: present write -> read-only -> writable again without a fault (exclusive) -> PROT_NONE (protnone, still present)', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 1);
  const pfn = expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED);
  assert.equal(run(e.k, doMprotect(e.mm, e.vma.start, PAGE, PROT_READ)), 0);
  expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_DIRTY | _PAGE_ACCESSED, { pfn, msg: 'PROT_READ' });
  const faults = e.k.vmstat.pgfault;
  assert.equal(run(e.k, doMprotect(e.mm, e.vma.start, PAGE, RW)), 0);
  expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, { pfn, msg: 'back to RW (MM_CP_TRY_CHANGE_WRITABLE)' });
  assert.equal(cpu(e.mm, e.vma.start, true), pfn);
  assert.equal(e.k.vmstat.pgfault, faults, 'no write fault was needed');
  assert.equal(run(e.k, doMprotect(e.mm, e.vma.start, PAGE, PROT_NONE)), 0);
  expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_PROTNONE, { pfn, msg: 'PROT_NONE' });
  assert.equal(pagemapEntry(e.mm, e.vma.start) & PM_PRESENT, PM_PRESENT, 'a PROT_NONE entry is present');
  assert.equal(run(e.k, doMprotect(e.mm, e.vma.start, PAGE, PROT_READ)), 0);
  expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_DIRTY | _PAGE_ACCESSED, { pfn, msg: 'PROT_NONE -> PROT_READ' });
  e.k.checkpoint('mprotect');
});

test('present read-only -> migration read-exclusive / read keeping soft-dirty and uffd-wp; young and dirty only when set; restore gives them back', () => {
  const e = mkEnv(3);
  for (let i = 0; i < 3; i++) storePage(e.mm, e.vma.start + i * PAGE, i + 1);
  const a0 = e.vma.start;
  const a1 = a0 + PAGE;
  const a2 = a0 + 2 * PAGE;
  // 0: read-only exclusive, soft-dirty + uffd-wp, young + dirty.
  setBits(e.mm, a0, _PAGE_SOFT_DIRTY | _PAGE_UFFD_WP, _PAGE_RW);
  // 1: read-only exclusive, old and clean, uffd-wp only.
  setBits(e.mm, a1, _PAGE_UFFD_WP, _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY);
  // 2: read-only shared (not exclusive), soft-dirty, old but dirty.
  setBits(e.mm, a2, _PAGE_SOFT_DIRTY, _PAGE_RW | _PAGE_ACCESSED);
  const p2 = pte(e.mm, a2)[0];
  e.k.pages.flags[p2] &= ~PG_anon_exclusive;
  const pf = [0, 1, 2].map((i) => pte(e.mm, a0 + i * PAGE)[0]);
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM);
  assert.equal(setupLocked(e.k, m), 0);
  assert.equal(m.cpages, 3);
  expectEntry(e.mm, a0, T_MIGRATION_READ_EXCLUSIVE, _PAGE_SOFT_DIRTY | _PAGE_UFFD_WP | _PAGE_ACCESSED | _PAGE_DIRTY, { pfn: pf[0] });
  expectEntry(e.mm, a1, T_MIGRATION_READ_EXCLUSIVE, _PAGE_UFFD_WP, { pfn: pf[1] });
  expectEntry(e.mm, a2, T_MIGRATION_READ, _PAGE_SOFT_DIRTY | _PAGE_DIRTY, { pfn: pf[2] });
  assert.equal(pagemapEntry(e.mm, a0) & (PM_SWAP | PM_SOFT_DIRTY | PM_UFFD_WP | PM_PRESENT), PM_SWAP | PM_SOFT_DIRTY | PM_UFFD_WP, 'pagemap: a swap-type entry (bit 62)');
  run(e.k, migrateVmaPages(m));
  run(e.k, migrateVmaFinalize(m));
  e.k.checkpoint('finalize');
  // remove_migration_pte(): a non-writable entry restores read-only with uffd-wp; young/dirty from the entry.
  expectEntry(e.mm, a0, T_PRESENT, _PAGE_SOFT_DIRTY | _PAGE_UFFD_WP | _PAGE_ACCESSED | _PAGE_DIRTY, { pfn: pf[0] });
  expectEntry(e.mm, a1, T_PRESENT, _PAGE_UFFD_WP, { pfn: pf[1] });
  expectEntry(e.mm, a2, T_PRESENT, _PAGE_SOFT_DIRTY | _PAGE_DIRTY, { pfn: pf[2] });
  assert.ok(e.k.pages.flags[pf[0]] & PG_anon_exclusive, 'read-exclusive restores PG_anon_exclusive');
  assert.ok(e.k.pages.flags[pf[1]] & PG_anon_exclusive);
  assert.equal(e.k.pages.flags[pf[2]] & PG_anon_exclusive, 0, 'a readable entry restores a shared page');
});

test('migration -> device-private write / read carrying soft-dirty and uffd-wp (young and dirty are dropped)', () => {
  const e = mkEnv(2);
  storePage(e.mm, e.vma.start, 1);
  storePage(e.mm, e.vma.start + PAGE, 2);
  setBits(e.mm, e.vma.start, _PAGE_SOFT_DIRTY, 0);
  setBits(e.mm, e.vma.start + PAGE, _PAGE_UFFD_WP, _PAGE_RW);
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM);
  assert.equal(setupLocked(e.k, m), 0);
  expectEntry(e.mm, e.vma.start, T_MIGRATION_WRITE, _PAGE_SOFT_DIRTY | _PAGE_ACCESSED | _PAGE_DIRTY);
  expectEntry(e.mm, e.vma.start + PAGE, T_MIGRATION_READ_EXCLUSIVE, _PAGE_UFFD_WP | _PAGE_ACCESSED | _PAGE_DIRTY);
  const d = [0, 1].map((i) => {
    const dp = e.dev.allocDevicePage('private');
    e.k.contents.deviceCopy(dp, mpfnPfn(m.src[i]), 1); /* the device's copy engine */
    m.dst[i] = migratePfn(dp);
    return dp;
  });
  run(e.k, migrateVmaPages(m));
  run(e.k, migrateVmaFinalize(m));
  e.k.checkpoint('finalize');
  expectEntry(e.mm, e.vma.start, T_DEVICE_PRIVATE_WRITE, _PAGE_SOFT_DIRTY, { pfn: d[0] });
  expectEntry(e.mm, e.vma.start + PAGE, T_DEVICE_PRIVATE_READ, _PAGE_UFFD_WP, { pfn: d[1] });
  for (const dp of d) {
    assert.ok(e.k.pages.flags[dp] & PG_anon_exclusive, 'both were exclusive: the device page is too');
    assert.equal(e.k.pages.mapcount[dp], 1);
    assert.equal(e.k.pages.refcount[dp], 1, 'the mapping holds the only reference');
  }
  assert.equal(pagemapEntry(e.mm, e.vma.start) & (PM_SWAP | PM_PRESENT | PM_SOFT_DIRTY), PM_SWAP | PM_SOFT_DIRTY, 'device-private: pagemap swap bit');
});

test('device-private -> migration entry (inside migrate_to_ram, fault_page locked) -> present writable on a CPU read', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 7);
  const want = loadPage(e.mm, e.vma.start);
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private')), 1);
  const dpage = expectEntry(e.mm, e.vma.start, T_DEVICE_PRIVATE_WRITE, 0);
  // A minimal ->migrate_to_ram() that looks at the CPU page table between the steps.
  const seen: string[] = [];
  const dev = e.dev as unknown as { migrateToRam: (vmf: VmFault) => K<number> };
  dev.migrateToRam = function* (vmf: VmFault): K<number> {
    seen.push(`fault page ${vmf.page === dpage ? 'ok' : vmf.page} locked=${(e.k.pages.flags[vmf.page] & PG_locked) !== 0}`);
    const m = new MigrateVma({
      vma: vmf.vma, start: vmf.address, end: vmf.address + PAGE, src: new Float64Array(1), dst: new Float64Array(1),
      flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmapOwner: e.dev.owner, faultPage: vmf.page,
    });
    assert.equal(yield* migrateVmaSetup(m), 0);
    const [v, f] = pte(e.mm, vmf.address);
    seen.push(`after setup: ${describeEntry(v, f)} src MIGRATE=${mpfnHas(m.src[0], MIGRATE_PFN_MIGRATE)}`);
    const s = e.k.buddy.alloc(0, 0);
    folioTrylock(e.k, s);
    e.k.contents.deviceCopy(s, dpage, 1);
    m.dst[0] = migratePfn(s);
    yield* migrateVmaPages(m);
    yield* migrateVmaFinalize(m);
    seen.push(`fault page still locked after finalize=${(e.k.pages.flags[dpage] & PG_locked) !== 0}`);
    return 0;
  };
  const pfn = cpu(e.mm, e.vma.start, false);
  assert.deepEqual(seen, [
    'fault page ok locked=true',
    `after setup: migration-write pfn ${dpage} src MIGRATE=true`,
    'fault page still locked after finalize=true', /* do_swap_page unlocks it */
  ]);
  assert.ok(!isDevicePrivatePage(e.k, pfn));
  expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_RW | _PAGE_ACCESSED, { pfn, msg: 'writable migration entry restores write (dirty only if the folio is)' });
  assert.ok(e.k.pages.flags[pfn] & PG_anon_exclusive);
  assert.equal(e.k.contents.checksum(pfn), want);
  assert.equal(e.dev.allocated('private'), 0, 'the device page was freed');
  e.k.checkpoint('fault');
});

test('fork: device-private write -> read in parent and child; a CPU fault in one mm migrates both mappings (present read-only, shared)', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 3);
  const want = loadPage(e.mm, e.vma.start);
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private'));
  const dpage = expectEntry(e.mm, e.vma.start, T_DEVICE_PRIVATE_WRITE, 0);
  const child = e.k.newMm();
  assert.equal(run(e.k, dupMmap(e.mm, child)), 0);
  expectEntry(e.mm, e.vma.start, T_DEVICE_PRIVATE_READ, 0, { pfn: dpage, msg: 'parent' });
  expectEntry(child, e.vma.start, T_DEVICE_PRIVATE_READ, 0, { pfn: dpage, msg: 'child' });
  assert.equal(e.k.pages.mapcount[dpage], 2);
  assert.equal(e.k.pages.refcount[dpage], 2);
  assert.equal(e.k.pages.flags[dpage] & PG_anon_exclusive, 0);
  assert.equal(child.rss.anon, 1);
  e.k.checkpoint('fork');
  // The parent reads: migrate_to_ram() collects its entry, try_to_migrate() the child's.
  const pfn = cpu(e.mm, e.vma.start, false);
  expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_ACCESSED, { pfn, msg: 'parent' });
  expectEntry(child, e.vma.start, T_PRESENT, 0, { pfn, msg: 'child: same new page, read-only' });
  assert.equal(e.k.pages.mapcount[pfn], 2);
  assert.equal(e.k.pages.flags[pfn] & PG_anon_exclusive, 0);
  assert.equal(e.dev.allocated('private'), 0);
  assert.equal(e.k.contents.checksum(pfn), want);
  // The child writes: COW copy; then the parent's write reuses the page.
  const cp = cpu(child, e.vma.start, true);
  assert.notEqual(cp, pfn);
  expectEntry(child, e.vma.start, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, { pfn: cp });
  assert.equal(cpu(e.mm, e.vma.start, true), pfn, 'sole user: reused');
  assert.ok(e.k.pages.flags[pfn] & PG_anon_exclusive);
  run(e.k, mmput(child));
  e.k.checkpoint('exit');
});

test('mprotect: device-private write -> read (soft-dirty dropped) even when write stays allowed; a write fault then migrates and reuses', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 5);
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private'));
  setBits(e.mm, e.vma.start, _PAGE_SOFT_DIRTY | _PAGE_UFFD_WP, 0);
  const dpage = expectEntry(e.mm, e.vma.start, T_DEVICE_PRIVATE_WRITE, _PAGE_SOFT_DIRTY | _PAGE_UFFD_WP);
  assert.equal(run(e.k, doMprotect(e.mm, e.vma.start, PAGE, PROT_READ)), 0);
  expectEntry(e.mm, e.vma.start, T_DEVICE_PRIVATE_READ, _PAGE_UFFD_WP, { pfn: dpage, msg: 'change_pte_range' });
  setBits(e.mm, e.vma.start, 0, _PAGE_UFFD_WP);
  assert.equal(run(e.k, doMprotect(e.mm, e.vma.start, PAGE, RW)), 0);
  expectEntry(e.mm, e.vma.start, T_DEVICE_PRIVATE_READ, 0, { pfn: dpage, msg: 'mprotect never makes a device-private entry writable' });
  const cow = e.k.vmstat.cow;
  const pfn = cpu(e.mm, e.vma.start, true);
  assert.ok(!isDevicePrivatePage(e.k, pfn));
  expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, { pfn, msg: 'read-exclusive migration, then do_wp_page reuse' });
  assert.equal(e.k.vmstat.cow, cow, 'wp_page_reuse: no copy');
  assert.ok(e.k.pages.flags[pfn] & PG_anon_exclusive);
  e.k.checkpoint('write');
});

test('mprotect during a migration: migration write -> read-exclusive; finalize restores read-only exclusive', () => {
  const e = mkEnv(1);
  storePage(e.mm, e.vma.start, 5);
  const pfn = pte(e.mm, e.vma.start)[0];
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM);
  setupLocked(e.k, m);
  expectEntry(e.mm, e.vma.start, T_MIGRATION_WRITE, _PAGE_ACCESSED | _PAGE_DIRTY);
  e.k.sched.lockdep?.folioDisownAll(); /* the migration's folio locks stay with the driver's context; the syscall below is the process's (lockdep) */
  assert.equal(run(e.k, doMprotect(e.mm, e.vma.start, PAGE, PROT_READ)), 0);
  expectEntry(e.mm, e.vma.start, T_MIGRATION_READ_EXCLUSIVE, _PAGE_ACCESSED | _PAGE_DIRTY, { pfn });
  run(e.k, migrateVmaFinalize(m));
  expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_ACCESSED | _PAGE_DIRTY, { pfn });
  assert.ok(e.k.pages.flags[pfn] & PG_anon_exclusive);
  e.k.checkpoint('finalize');
});

test('munmap / MADV_DONTNEED: present and device-private -> none; pages freed (device page back to its driver)', () => {
  const e = mkEnv(4);
  for (let i = 0; i < 4; i++) storePage(e.mm, e.vma.start + i * PAGE, i);
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start + 2 * PAGE, e.vma.end, 'private'));
  const sys0 = expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED);
  expectEntry(e.mm, e.vma.start + 2 * PAGE, T_DEVICE_PRIVATE_WRITE, 0);
  assert.equal(e.mm.rss.anon, 4);
  assert.equal(run(e.k, doMadvise(e.mm, e.vma.start, PAGE, MADV_DONTNEED)), 0);
  assert.equal(run(e.k, doMadvise(e.mm, e.vma.start + 2 * PAGE, PAGE, MADV_DONTNEED)), 0);
  expectEntry(e.mm, e.vma.start, T_NONE, 0, { msg: 'DONTNEED present' });
  expectEntry(e.mm, e.vma.start + 2 * PAGE, T_NONE, 0, { msg: 'DONTNEED device-private' });
  assert.equal(e.dev.allocated('private'), 1, 'folio_free() returned the zapped device page');
  e.k.lru.drain();
  assert.ok(e.k.pages.flags[sys0] & PG_buddy, 'the system page is back in the buddy allocator');
  assert.equal(e.mm.rss.anon, 2);
  assert.equal(run(e.k, vmMunmap(e.mm, e.vma.start, 4 * PAGE)), 0);
  assert.equal(e.mm.vmas.length, 0);
  assert.equal(e.dev.allocated('private'), 0);
  assert.equal(e.mm.rss.anon, 0);
  e.k.checkpoint('munmap');
});

test('migrate_device_range: device-private -> migration (vma-less eviction); munmap meanwhile zaps the migration entry; finalize frees both pages', () => {
  const e = mkEnv(2);
  storePage(e.mm, e.vma.start, 1);
  storePage(e.mm, e.vma.start + PAGE, 2);
  runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private'));
  const d0 = pte(e.mm, e.vma.start)[0];
  const d1 = pte(e.mm, e.vma.start + PAGE)[0];
  const src = new Float64Array(2);
  run(e.k, migrateDeviceRange(e.k, src, d0, 2));
  expectEntry(e.mm, e.vma.start, T_MIGRATION_WRITE, 0, { pfn: d0 });
  expectEntry(e.mm, e.vma.start + PAGE, T_MIGRATION_WRITE, 0, { pfn: d1 });
  // The process unmaps the first page while the eviction runs (no mmap_lock held by migrate_device_*).
  e.k.sched.lockdep?.folioDisownAll(); /* the migration's folio locks stay with the driver's context; the syscall below is the process's (lockdep) */
  assert.equal(run(e.k, vmMunmap(e.mm, e.vma.start, PAGE)), 0);
  expectEntry(e.mm, e.vma.start, T_NONE, 0);
  assert.equal(e.mm.rss.anon, 1);
  const dst = new Float64Array(2);
  const s = [0, 1].map((i) => {
    const p = e.k.buddy.alloc(0, 0);
    folioTrylock(e.k, p);
    e.k.contents.deviceCopy(p, i ? d1 : d0, 1);
    dst[i] = migratePfn(p);
    return p;
  });
  run(e.k, migrateDevicePages(e.k, src, dst, 2));
  assert.ok(mpfnHas(src[0], MIGRATE_PFN_MIGRATE) && mpfnHas(src[1], MIGRATE_PFN_MIGRATE));
  run(e.k, migrateDeviceFinalize(e.k, src, dst, 2));
  e.k.lru.drain();
  expectEntry(e.mm, e.vma.start + PAGE, T_PRESENT, _PAGE_RW, { pfn: s[1], msg: 'still mapped page' });
  assert.ok(e.k.pages.flags[s[0]] & PG_buddy, 'the destination of the unmapped page was freed');
  assert.equal(e.dev.allocated('private'), 0);
  e.k.checkpoint('finalize');
});

test('THP: PMD present -> PMD migration entry (SELECT_COMPOUND) -> PMD device-private -> PMD present on a CPU fault', () => {
  const e = mkEnv(512, { hugepage: true });
  storePage(e.mm, e.vma.start, 1);
  const head = expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, { level: 'pmd' });
  assert.equal(e.k.pages.order[head], 9);
  e.k.lru.drain();
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND);
  assert.equal(setupLocked(e.k, m), 0);
  expectEntry(e.mm, e.vma.start, T_MIGRATION_WRITE, _PAGE_ACCESSED | _PAGE_DIRTY, { level: 'pmd', pfn: head });
  assert.equal(e.k.pages.entireMapcount[head], 0);
  const d = e.dev.allocDevicePage('private', 9);
  e.k.contents.deviceCopy(d, head, HPAGE_PMD_NR);
  m.dst[0] = mpfnSet(migratePfn(d), MIGRATE_PFN_COMPOUND);
  run(e.k, migrateVmaPages(m));
  run(e.k, migrateVmaFinalize(m));
  expectEntry(e.mm, e.vma.start, T_DEVICE_PRIVATE_WRITE, 0, { level: 'pmd', pfn: d });
  assert.equal(e.k.pages.entireMapcount[d], 1);
  e.k.checkpoint('to device');
  const pfn = cpu(e.mm, e.vma.start + 100 * PAGE, false);
  const nh = expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_RW | _PAGE_ACCESSED, { level: 'pmd' });
  assert.equal(pfn, nh + 100);
  assert.equal(e.dev.allocated('private'), 0);
  e.k.checkpoint('back');
});

test('THP: a PMD migration entry is restored to a PMD when the migration fails; split into 512 PTE migration entries when the driver gives small pages', () => {
  const e = mkEnv(512, { hugepage: true });
  storePage(e.mm, e.vma.start, 1);
  const head = pmd(e.mm, e.vma.start)[0];
  e.k.lru.drain();
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND);
  setupLocked(e.k, m);
  expectEntry(e.mm, e.vma.start, T_MIGRATION_WRITE, _PAGE_ACCESSED | _PAGE_DIRTY, { level: 'pmd' });
  run(e.k, migrateVmaPages(m));
  run(e.k, migrateVmaFinalize(m));
  expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, { level: 'pmd', pfn: head, msg: 'no dst: restored' });
  assert.ok(e.k.pages.flags[head] & PG_anon_exclusive);
  e.k.checkpoint('restored');
  e.k.lru.drain();
  const m2 = mv(e, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND);
  setupLocked(e.k, m2);
  for (let i = 0; i < HPAGE_PMD_NR; i++) {
    const dp = e.dev.allocDevicePage('private');
    e.k.contents.deviceCopy(dp, head + i, 1);
    m2.dst[i] = migratePfn(dp);
  }
  run(e.k, migrateVmaPages(m2));
  assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_TABLE, 'migrate_vma_split_unmapped_folio split the PMD entry');
  for (const i of [0, 1, 255, 511]) expectEntry(e.mm, e.vma.start + i * PAGE, T_MIGRATION_WRITE, _PAGE_ACCESSED | _PAGE_DIRTY, { pfn: head + i });
  run(e.k, migrateVmaFinalize(m2));
  for (const i of [0, 1, 255, 511]) expectEntry(e.mm, e.vma.start + i * PAGE, T_DEVICE_PRIVATE_WRITE, 0);
  assert.equal(e.dev.allocated('private'), HPAGE_PMD_NR);
  e.k.checkpoint('split migration');
});

test('THP: a device-private PMD partly unmapped is split into 511 device-private PTEs; a THP PMD split carries write/dirty/young/soft-dirty and exclusivity', () => {
  const e = mkEnv(512, { hugepage: true });
  for (let i = 0; i < 512; i += 64) storePage(e.mm, e.vma.start + i * PAGE, i + 1);
  e.k.lru.drain();
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private', true)), 1);
  const d = expectEntry(e.mm, e.vma.start, T_DEVICE_PRIVATE_WRITE, 0, { level: 'pmd' });
  assert.equal(run(e.k, vmMunmap(e.mm, e.vma.start + 5 * PAGE, PAGE)), 0);
  assert.equal(pteType(pmd(e.mm, e.vma.start)[1]), T_TABLE);
  expectEntry(e.mm, e.vma.start + 4 * PAGE, T_DEVICE_PRIVATE_WRITE, 0, { pfn: d + 4 });
  expectEntry(e.mm, e.vma.start + 5 * PAGE, T_NONE, 0);
  expectEntry(e.mm, e.vma.start + 6 * PAGE, T_DEVICE_PRIVATE_WRITE, 0, { pfn: d + 6 });
  assert.equal(e.k.pages.entireMapcount[d], 0);
  assert.equal(e.k.pages.mapcount[d + 4], 1);
  assert.equal(e.k.pages.mapcount[d + 5], 0);
  assert.equal(e.mm.rss.anon, HPAGE_PMD_NR - 1);
  e.k.checkpoint('split device-private PMD');

  const t = mkEnv(512, { hugepage: true });
  storePage(t.mm, t.vma.start, 1);
  const pm = pmd(t.mm, t.vma.start);
  pm[2]!.f[pmdIndex(t.vma.start)] |= _PAGE_SOFT_DIRTY;
  const head = pm[0];
  assert.equal(run(t.k, doMprotect(t.mm, t.vma.start + 3 * PAGE, PAGE, PROT_READ)), 0, 'mprotect of one page splits the PMD');
  expectEntry(t.mm, t.vma.start + 2 * PAGE, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_SOFT_DIRTY, { pfn: head + 2 });
  expectEntry(t.mm, t.vma.start + 3 * PAGE, T_PRESENT, _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_SOFT_DIRTY, { pfn: head + 3 });
  assert.ok(t.k.pages.flags[head + 3] & PG_anon_exclusive, 'PG_anon_exclusive carried to every subpage');
  t.k.checkpoint('split THP');
});

test('mremap: device-private entries move as they are (+ soft-dirty); the page still migrates back at the new address', () => {
  const s = new System({ ramBytes: 128 << 20, nrHugepages: 0, checked: true });
  const p = s.spawn('mremap');
  const k = s.kernel;
  const dev = new TestDev(k);
  const a = p.mmap(0, 2 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  p.store32(a, 11);
  p.store32(a + PAGE, 22);
  const vma = p.mm!.vmaLookup(a)!;
  assert.equal(runMmapRead(p.mm!, dev.migrateToDevice(vma, a, a + 2 * PAGE, 'private')), 2);
  const d0 = expectEntry(p.mm!, a, T_DEVICE_PRIVATE_WRITE, 0);
  const dst = 0x700000000000;
  assert.equal(run(k, doMremap(p.mm!, a, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst)), dst);
  k.checkpoint('mremap');
  expectEntry(p.mm!, a, T_NONE, 0, { msg: 'old address' });
  expectEntry(p.mm!, dst, T_DEVICE_PRIVATE_WRITE, _PAGE_SOFT_DIRTY, { pfn: d0, msg: 'move_soft_dirty_pte' });
  assert.equal(k.pages.mapcount[d0], 1);
  assert.equal(p.load32(dst), 11, 'migrate_to_ram at the new address (rmap follows the move)');
  assert.equal(p.load32(dst + PAGE), 22);
  assert.equal(dev.allocated('private'), 0);
  assert.ok(!isDevicePrivatePage(k, Number(pagemapEntry(p.mm!, dst) & PM_PFRAME_MASK)));
});

/** Install a raw entry at addr (entries the model never creates itself). */
function inject(mm: MmStruct, addr: number, v: number, f: number): void {
  const pm = pmdTableOf(mm.pgd, addr, true)!;
  const pt = pteTableAlloc(mm.pgd, pm, pmdIndex(addr), addr)!;
  setPte(pt, pteIndex(addr), v, f, 'test: inject entry');
}

test('swap (MADV_PAGEOUT) and hwpoison (injected: the model has no memory_failure) entries: pagemap, collect, fork, hmm_range_fault, munmap', () => {
  const e = mkEnv(4);
  const a = e.vma.start;
  storePage(e.mm, a, 1); /* anon_vma + a page table */
  storePage(e.mm, a + PAGE, 2);
  setBits(e.mm, a + PAGE, _PAGE_SOFT_DIRTY, 0);
  assert.equal(run(e.k, doMadvise(e.mm, a + PAGE, PAGE, MADV_PAGEOUT)), 0);
  const slot = expectEntry(e.mm, a + PAGE, T_SWAP, _PAGE_SOFT_DIRTY | _PAGE_SWP_EXCLUSIVE, { msg: 'swapped out' });
  assert.equal(e.mm.rss.swap, 1);
  inject(e.mm, a + 2 * PAGE, 0x777, T_HWPOISON);
  // /proc/self/pagemap: swap bit 62, swap type in bits 0-4, offset above (swp_entry encoding).
  const sw = pagemapEntry(e.mm, a + PAGE);
  assert.equal(sw & (PM_SWAP | PM_PRESENT | PM_SOFT_DIRTY), PM_SWAP | PM_SOFT_DIRTY);
  assert.equal(sw & PM_PFRAME_MASK, (BigInt(slot) << 5n) | 0n, 'swap type 0, offset = the slot');
  const hp = pagemapEntry(e.mm, a + 2 * PAGE);
  assert.equal(hp & (PM_SWAP | PM_PRESENT), PM_SWAP);
  assert.equal(hp & 0x1fn, 24n, 'SWP_HWPOISON = MAX_SWAPFILES');
  // migrate_vma_collect_pmd: non-device-private swap-type entries are not collected.
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM);
  assert.equal(setupLocked(e.k, m), 0);
  assert.equal(m.src[1], 0, 'swap entry: 0');
  assert.equal(m.src[2], 0, 'hwpoison entry: 0');
  assert.equal(m.src[3], MIGRATE_PFN_MIGRATE, 'a none PTE is a hole');
  run(e.k, migrateVmaFinalize(m));
  expectEntry(e.mm, a + PAGE, T_SWAP, _PAGE_SOFT_DIRTY | _PAGE_SWP_EXCLUSIVE, { pfn: slot });
  expectEntry(e.mm, a + 2 * PAGE, T_HWPOISON, 0, { pfn: 0x777 });
  // hmm_range_fault: hwpoison with a fault requested is -EFAULT; without, an empty output.
  const sub = new MmuIntervalNotifier(e.mm, a, e.vma.end - 1, { *invalidate() { return true; } });
  mmuIntervalNotifierInsert(sub);
  const r = new HmmRange(sub, a + 2 * PAGE, a + 3 * PAGE, HMM_PFN_REQ_FAULT, 0, null);
  r.notifierSeq = run(e.k, mmuIntervalReadBegin(sub));
  assert.ok(e.mm.mmapLock.tryReadFast(e.k.sched));
  assert.equal(run(e.k, hmmRangeFault(r)), -EFAULT);
  const r0 = new HmmRange(sub, a + PAGE, a + 3 * PAGE, 0, 0, null);
  r0.notifierSeq = run(e.k, mmuIntervalReadBegin(sub));
  assert.equal(run(e.k, hmmRangeFault(r0)), 0);
  assert.deepEqual([...r0.hmmPfns], [0, 0]);
  e.mm.mmapLock.readUnlock(e.k.sched);
  // A CPU access to the hwpoison entry: SIGBUS / BUS_MCEERR_AR.
  assert.deepEqual(run(e.k, doUserAddrFault(e.mm, a + 2 * PAGE, false)), { ok: false, signal: SIGBUS, code: BUS_MCEERR_AR, addr: a + 2 * PAGE });
  // fork: both entries are copied (MM_SWAPENTS counted in the child); the
  // swap slot gains a reference and neither entry stays exclusive.
  const child = e.k.newMm();
  assert.equal(run(e.k, dupMmap(e.mm, child)), 0);
  expectEntry(child, a + PAGE, T_SWAP, _PAGE_SOFT_DIRTY, { pfn: slot });
  expectEntry(e.mm, a + PAGE, T_SWAP, _PAGE_SOFT_DIRTY, { pfn: slot, msg: 'parent: pte_swp_clear_exclusive' });
  expectEntry(child, a + 2 * PAGE, T_HWPOISON, 0, { pfn: 0x777 });
  assert.equal(child.rss.swap, 1);
  assert.equal(e.k.swap!.swapCount(slot), 2);
  run(e.k, mmput(child));
  assert.equal(e.k.swap!.swapCount(slot), 1, 'the child exit dropped its reference');
  // munmap clears them (MM_SWAPENTS--) and frees the slot.
  assert.equal(run(e.k, vmMunmap(e.mm, a + PAGE, 2 * PAGE)), 0);
  assert.equal(e.mm.rss.swap, 0);
  assert.equal(e.k.swap!.used, 0);
  e.k.checkpoint('zap');
});

test('THP: huge zero PMD and THP PMD -> none with MADV_DONTNEED of the whole 2 MiB; the THP is freed', () => {
  const e = mkEnv(1024, { hugepage: true });
  cpu(e.mm, e.vma.start, false);
  expectEntry(e.mm, e.vma.start, T_PRESENT, pmd(e.mm, e.vma.start)[1] & BITS, { level: 'pmd', pfn: e.k.hugeZeroPfn });
  storePage(e.mm, e.vma.start + HPAGE, 1);
  const head = expectEntry(e.mm, e.vma.start + HPAGE, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, { level: 'pmd' });
  assert.equal(run(e.k, doMadvise(e.mm, e.vma.start, 2 * HPAGE, MADV_DONTNEED)), 0);
  expectEntry(e.mm, e.vma.start, T_NONE, 0, { level: 'pmd' });
  expectEntry(e.mm, e.vma.start + HPAGE, T_NONE, 0, { level: 'pmd' });
  e.k.lru.drain();
  assert.ok(e.k.pages.flags[head] & PG_buddy);
  assert.equal(e.mm.rss.anon, 0);
  e.k.checkpoint('dontneed');
});

test('migration -> present device-coherent page (write|dirty, not special: mainline has no pte_devmap since the devmap removal); a hole gets the same entry', () => {
  const e = mkEnv(2);
  storePage(e.mm, e.vma.start, 1);
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'coherent')), 2);
  const c0 = expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, { msg: 'remove_migration_pte keeps young/dirty of the entry' });
  const c1 = expectEntry(e.mm, e.vma.start + PAGE, T_PRESENT, _PAGE_RW | _PAGE_DIRTY, { msg: 'migrate_vma_insert_page: write+dirty, not young' });
  for (const c of [c0, c1]) {
    assert.ok(!isDevicePrivatePage(e.k, c) && e.k.pages.pgmap[c] !== 0, 'a device-coherent page');
    assert.equal(e.k.pages.mapcount[c], 1);
  }
  assert.equal(pte(e.mm, e.vma.start)[1] & (1 << 10) /* _PAGE_DEVMAP */, 0);
  e.k.checkpoint('coherent');
});

test('mremap: a PMD migration entry moves as one entry and becomes soft-dirty (move_soft_dirty_pmd); the migration then completes at the new address', () => {
  const e = mkEnv(512, { hugepage: true });
  storePage(e.mm, e.vma.start, 7);
  const head = expectEntry(e.mm, e.vma.start, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, { level: 'pmd' });
  e.k.lru.drain();
  const m = mv(e, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND);
  assert.equal(setupLocked(e.k, m), 0);
  expectEntry(e.mm, e.vma.start, T_MIGRATION_WRITE, _PAGE_ACCESSED | _PAGE_DIRTY, { level: 'pmd', pfn: head });
  e.k.sched.lockdep?.folioDisownAll(); /* the migration's folio locks stay with the driver's context; the syscall below is the process's (lockdep) */
  const old = e.vma.start;
  const dst = 0x80000000;
  assert.equal(run(e.k, doMremap(e.mm, old, HPAGE, HPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst)), dst);
  assert.equal(pteType(pmd(e.mm, old)[1]), T_NONE, 'old address');
  expectEntry(e.mm, dst, T_MIGRATION_WRITE, _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_SOFT_DIRTY, { level: 'pmd', pfn: head, msg: 'moved PMD migration entry' });
  // No destination: the migration fails and remove_migration_pmd() restores
  // the THP where the entry now is, keeping soft-dirty.
  run(e.k, migrateVmaPages(m));
  run(e.k, migrateVmaFinalize(m));
  expectEntry(e.mm, dst, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_SOFT_DIRTY, { level: 'pmd', pfn: head });
  e.k.checkpoint('restored');
});

test('mremap: a hugetlb PMD moves without gaining soft-dirty (move_huge_pte); a THP PMD gains it', () => {
  const s = new System({ ramBytes: 64 << 20, nrHugepages: 2, checked: true });
  const p = s.spawn('mremap-huge');
  const a = p.mmap(0, HPAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  assert.ok(a > 0 && pmdAligned(a));
  p.store32(a, 5);
  expectEntry(p.mm!, a, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, { level: 'pmd' });
  const dst = 0x7f0000000000;
  assert.equal(p.mremap(a, HPAGE, HPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
  expectEntry(p.mm!, dst, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, { level: 'pmd', msg: 'hugetlb: no soft-dirty' });
  assert.equal(p.load32(dst), 5);
  const t = p.mmap(0, 2 * HPAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  const ta = pmdAlignUp(t);
  assert.equal(p.madvise(ta, HPAGE, MADV_HUGEPAGE), 0);
  p.store32(ta, 6);
  expectEntry(p.mm!, ta, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED, { level: 'pmd' });
  const dst2 = 0x7e0000000000;
  assert.equal(p.mremap(ta, HPAGE, HPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst2), dst2);
  expectEntry(p.mm!, dst2, T_PRESENT, _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_SOFT_DIRTY, { level: 'pmd', msg: 'THP: soft-dirty' });
  assert.equal(p.load32(dst2), 6);
});
