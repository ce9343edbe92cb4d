// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fault path on VMAs built directly (no syscall layer): anonymous and
 * zero-page faults, COW, THP fault / huge zero page / PMD split / folio
 * split, the device-private fault (mainline and CVE-2022-3523 behaviour),
 * migration-entry waits and the signals of do_user_addr_fault().
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kernel } from '../src/kernel/kernel.js';
import { Vma, VM_READ, VM_WRITE, VM_MAYREAD, VM_MAYWRITE, VM_HUGEPAGE, type MmStruct, type VmFault } from '../src/kernel/mm/mm_types.js';
import {
  TYPE_MASK, T_NONE, T_PRESENT, T_TABLE, T_DEVICE_PRIVATE_WRITE, T_MIGRATION_READ, T_HWPOISON, _PAGE_RW, _PAGE_SPECIAL,
  pmdIndex, pmdTableOf, pteIndex, pteTableOf, pteTableAlloc,
} from '../src/kernel/mm/pgtable.js';
import { setPte } from '../src/kernel/mm/pte_ops.js';
import { runSync, type K } from '../src/kernel/sched/sched.js';
import { doUserAddrFault, translate, SIGSEGV, SIGBUS, SEGV_ACCERR, SEGV_MAPERR, BUS_MCEERR_AR } from '../src/kernel/arch/fault.js';
import { splitHugePmdNotify, splitFolio } from '../src/kernel/mm/huge_memory.js';
import { checkInvariants } from '../src/kernel/mm/debug_vm.js';
import { KernelBug } from '../src/kernel/printk.js';
import { HPAGE_PMD_NR, HPAGE_PMD_SIZE, PG_anon_exclusive } from '../src/kernel/mm/page.js';
import { folioTrylock, folioUnlock, folioTestLocked, folioRefCount, folioPut } from '../src/kernel/mm/folio.js';
import {
  DevPagemap, MEMORY_DEVICE_PRIVATE, memremapPages, memunmapPages, requestFreeMemRegion, zoneDevicePageInit,
} from '../src/kernel/mm/memremap.js';
import { anonVmaPrepare, folioAddAnonRmapPte } from '../src/kernel/mm/rmap.js';

const BASE = 0x7f0000000000;

function machine(thp: 'always' | 'madvise' | 'never' = 'madvise') {
  const k = new Kernel({ ramBytes: 128 << 20, nrHugepages: 0, thp });
  const mm = k.newMm();
  return { k, mm };
}

function anonVma(mm: MmStruct, start: number, len: number, flags = VM_READ | VM_WRITE): Vma {
  const vma = new Vma(mm, start, start + len, flags | VM_MAYREAD | VM_MAYWRITE, start / 4096);
  mm.insertVma(vma);
  return vma;
}

function fault(mm: MmStruct, addr: number, write: boolean) {
  return runSync(mm.kernel.sched, doUserAddrFault(mm, addr, write));
}

function pte(mm: MmStruct, addr: number): { v: number; f: number } {
  const pt = pteTableOf(mm.pgd, addr);
  if (pt === null) return { v: 0, f: 0 };
  return { v: pt.v[pteIndex(addr)], f: pt.f[pteIndex(addr)] };
}

test('read fault maps the zero page; write fault replaces it with an exclusive anon page', () => {
  const { k, mm } = machine();
  anonVma(mm, BASE, 16 * 4096);
  assert.deepEqual(fault(mm, BASE + 5, false), { ok: true });
  let e = pte(mm, BASE);
  assert.equal(e.f & TYPE_MASK, T_PRESENT);
  assert.equal(e.v, k.zeroPfn);
  assert.ok(e.f & _PAGE_SPECIAL);
  assert.equal(e.f & _PAGE_RW, 0);
  assert.equal(translate(mm, BASE, true), -1, 'zero page is never writable');
  assert.deepEqual(fault(mm, BASE, true), { ok: true });
  e = pte(mm, BASE);
  assert.notEqual(e.v, k.zeroPfn);
  assert.ok(e.f & _PAGE_RW);
  assert.ok(k.pages.flags[e.v] & PG_anon_exclusive);
  assert.equal(k.pages.mapcount[e.v], 1);
  assert.ok(k.contents.isZero(e.v));
  assert.equal(mm.rss.anon, 1);
  assert.equal(k.vmstat.cow, 1);
  checkInvariants(k, 'test');
});

test('access errors: no VMA is SEGV_MAPERR, write to read-only is SEGV_ACCERR, hwpoison is SIGBUS', () => {
  const { mm } = machine();
  anonVma(mm, BASE, 4096, VM_READ);
  assert.deepEqual(fault(mm, BASE + 8192, false), { ok: false, signal: SIGSEGV, code: SEGV_MAPERR, addr: BASE + 8192 });
  assert.deepEqual(fault(mm, BASE, true), { ok: false, signal: SIGSEGV, code: SEGV_ACCERR, addr: BASE });
  const none = anonVma(mm, BASE + 16 * 4096, 4096, 0);
  assert.deepEqual(fault(mm, none.start, false), { ok: false, signal: SIGSEGV, code: SEGV_ACCERR, addr: none.start });
  const pmd = pmdTableOf(mm.pgd, BASE, true)!;
  const pt = pteTableAlloc(mm.pgd, pmd, pmdIndex(BASE), BASE)!;
  setPte(pt, pteIndex(BASE), 1234, T_HWPOISON, 'test: inject entry');
  assert.deepEqual(fault(mm, BASE, false), { ok: false, signal: SIGBUS, code: BUS_MCEERR_AR, addr: BASE });
});

test('THP: read maps the huge zero page, write splits it and COWs one page, a fresh write maps a THP', () => {
  const { k, mm } = machine('madvise');
  anonVma(mm, BASE, 2 * HPAGE_PMD_SIZE, VM_READ | VM_WRITE | VM_HUGEPAGE);
  fault(mm, BASE + 4096 * 3, false);
  const pmd = pmdTableOf(mm.pgd, BASE, false)!;
  const pi = pmdIndex(BASE);
  assert.equal(pmd.f[pi] & TYPE_MASK, T_PRESENT);
  assert.equal(pmd.v[pi], k.hugeZeroPfn);
  assert.equal(translate(mm, BASE + 4096 * 3, false), k.hugeZeroPfn + 3);
  fault(mm, BASE + 4096 * 3, true);
  assert.equal(pmd.f[pi] & TYPE_MASK, T_TABLE, 'the huge zero PMD was split');
  assert.equal(pte(mm, BASE).v, k.zeroPfn);
  assert.notEqual(pte(mm, BASE + 4096 * 3).v, k.zeroPfn);
  assert.equal(k.vmstat.thp_split_pmd, 1);
  // The second 2 MiB: a write fault allocates a THP mapped by one PMD.
  const b = BASE + HPAGE_PMD_SIZE;
  fault(mm, b + 100, true);
  const pj = pmdIndex(b);
  assert.equal(pmd.f[pj] & TYPE_MASK, T_PRESENT);
  const head = pmd.v[pj];
  assert.equal(k.pages.order[head], 9);
  assert.equal(k.pages.entireMapcount[head], 1);
  assert.equal(mm.rss.anon, 1 + HPAGE_PMD_NR);
  assert.equal(k.vmstat.thp_fault_alloc, 1);
  checkInvariants(k, 'test');
});

test('THP: splitting the PMD moves the mapping to 512 PTEs, then split_folio makes 512 folios', () => {
  const { k, mm } = machine('always');
  const vma = anonVma(mm, BASE, HPAGE_PMD_SIZE);
  fault(mm, BASE, true);
  const pmd = pmdTableOf(mm.pgd, BASE, false)!;
  const head = pmd.v[pmdIndex(BASE)];
  k.lru.drain();
  assert.equal(folioRefCount(k, head), 1);
  // split_huge_pmd(): __split_huge_pmd() inside its MMU_NOTIFY_CLEAR range.
  runSync(k.sched, splitHugePmdNotify(vma, pmd, pmdIndex(BASE), BASE));
  assert.equal(k.pages.entireMapcount[head], 0);
  for (let i = 0; i < HPAGE_PMD_NR; i += 97) {
    assert.equal(pte(mm, BASE + i * 4096).v, head + i);
    assert.equal(k.pages.mapcount[head + i], 1);
  }
  assert.equal(folioRefCount(k, head), HPAGE_PMD_NR);
  checkInvariants(k, 'test');
  // can_split_folio(): the caller's reference plus one per mapping.
  assert.ok(folioTrylock(k, head));
  k.pages.refcount[head]++;
  assert.equal(runSync(k.sched, splitFolio(k, head)), 0);
  assert.equal(k.pages.order[head + 5], 0);
  assert.equal(k.pages.refcount[head + 5], 1);
  assert.equal(k.pages.refcount[head], 2);
  folioUnlock(k, head);
  folioPut(k, head);
  checkInvariants(k, 'test');
  // The data path still works page by page.
  k.contents.fill(head + 7, 0, 8, 0x5a);
  assert.equal(translate(mm, BASE + 7 * 4096, true), head + 7);
});

/** A device-private pgmap whose migrate_to_ram records what it saw. */
function privateDevice(k: Kernel) {
  const seen: Array<{ page: number; locked: boolean; ref: number }> = [];
  const pgmap = new DevPagemap(MEMORY_DEVICE_PRIVATE, requestFreeMemRegion(k, 64 * 4096), {
    folioFree: () => {},
    *migrateToRam(vmf: VmFault): K<number> {
      seen.push({ page: vmf.page, locked: folioTestLocked(k, vmf.page), ref: folioRefCount(k, vmf.page) });
      return 0x2; /* VM_FAULT_SIGBUS: leave the entry in place */
    },
  }, { name: 'test device' });
  assert.ok(memremapPages(k, pgmap) > 0);
  return { pgmap, seen };
}

function mapDevicePrivate(k: Kernel, mm: MmStruct, vma: Vma, addr: number, dpage: number): void {
  zoneDevicePageInit(k, dpage);
  anonVmaPrepare(k, vma);
  folioAddAnonRmapPte(k, dpage, vma, addr, true);
  const pmd = pmdTableOf(mm.pgd, addr, true)!;
  const pt = pteTableAlloc(mm.pgd, pmd, pmdIndex(addr), addr)!;
  setPte(pt, pteIndex(addr), dpage, T_DEVICE_PRIVATE_WRITE, 'test: inject entry');
  folioUnlock(k, dpage);
}

test('device-private fault: migrate_to_ram runs with the page locked and a reference held (mainline)', () => {
  const { k, mm } = machine();
  const vma = anonVma(mm, BASE, 4096);
  const { pgmap, seen } = privateDevice(k);
  const dpage = pgmap.firstPfn + 3;
  mapDevicePrivate(k, mm, vma, BASE, dpage);
  assert.equal(folioRefCount(k, dpage), 1);
  const r = fault(mm, BASE, false);
  assert.deepEqual(r, { ok: false, signal: SIGBUS, code: 2, addr: BASE });
  assert.deepEqual(seen, [{ page: dpage, locked: true, ref: 2 }]);
  assert.equal(folioRefCount(k, dpage), 1, 'the fault path dropped its reference');
  assert.equal(folioTestLocked(k, dpage), false);
  checkInvariants(k, 'test');
});

test('device-private fault with fault_no_page_ref: migrate_to_ram runs with no reference (CVE-2022-3523)', () => {
  const k = new Kernel({ ramBytes: 128 << 20, nrHugepages: 0, historical: { fault_no_page_ref: true } as never });
  const mm = k.newMm();
  const vma = anonVma(mm, BASE, 4096);
  const { pgmap, seen } = privateDevice(k);
  const dpage = pgmap.firstPfn;
  mapDevicePrivate(k, mm, vma, BASE, dpage);
  fault(mm, BASE, false);
  assert.deepEqual(seen, [{ page: dpage, locked: false, ref: 1 }]);
});

test('a migration entry with nobody to finish the migration is a HANG, not a hang', () => {
  const { mm } = machine();
  anonVma(mm, BASE, 4096);
  const pmd = pmdTableOf(mm.pgd, BASE, true)!;
  const pt = pteTableAlloc(mm.pgd, pmd, pmdIndex(BASE), BASE)!;
  setPte(pt, pteIndex(BASE), 2000, T_MIGRATION_READ, 'test: inject entry');
  assert.throws(() => fault(mm, BASE, false), (e: unknown) => e instanceof KernelBug && e.kind === 'HANG');
});

test('memunmap_pages with a page still allocated is a detected HANG; after the free it completes', () => {
  const { k } = machine();
  const { pgmap } = privateDevice(k);
  zoneDevicePageInit(k, pgmap.firstPfn);
  folioUnlock(k, pgmap.firstPfn);
  assert.throws(() => runSync(k.sched, memunmapPages(k, pgmap)), (e: unknown) => e instanceof KernelBug && e.kind === 'HANG' && /memunmap_pages/.test(e.rule));
  // A fresh machine: free the page first, then unmap.
  const m2 = machine();
  const d2 = privateDevice(m2.k);
  zoneDevicePageInit(m2.k, d2.pgmap.firstPfn);
  folioUnlock(m2.k, d2.pgmap.firstPfn);
  folioPut(m2.k, d2.pgmap.firstPfn);
  assert.equal(d2.pgmap.refCount, 1);
  runSync(m2.k.sched, memunmapPages(m2.k, d2.pgmap));
  assert.equal(d2.pgmap.dead, true);
  assert.throws(() => zoneDevicePageInit(m2.k, d2.pgmap.firstPfn + 1), (e: unknown) => e instanceof KernelBug && e.kind === 'KASAN');
});

test('memremap_pages argument checks return the kernel errno', () => {
  const { k } = machine();
  const range = requestFreeMemRegion(k, 16 * 4096);
  assert.equal(memremapPages(k, new DevPagemap(MEMORY_DEVICE_PRIVATE, range, { folioFree: () => {} }, {})), -22);
  assert.equal(memremapPages(k, new DevPagemap(0, range, {}, {})), -22);
  const ops = { folioFree: () => {}, *migrateToRam() { return 0; } };
  assert.equal(memremapPages(k, new DevPagemap(MEMORY_DEVICE_PRIVATE, { start: 4096 * 2000, end: 4096 * 2016 - 1 }, ops, {})), -6, 'System RAM: -ENXIO');
  assert.ok(memremapPages(k, new DevPagemap(MEMORY_DEVICE_PRIVATE, range, ops, {})) > 0);
  const w = k.printk.warnings.length;
  assert.equal(memremapPages(k, new DevPagemap(MEMORY_DEVICE_PRIVATE, range, ops, {})), -12, 'same range again: -ENOMEM');
  assert.equal(k.printk.warnings.length, w + 1);
  assert.match(k.printk.warnings[w].rule, /Conflicting mapping in same section/);
});
