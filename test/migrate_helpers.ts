// SPDX-License-Identifier: GPL-2.0-only
/**
 * Shared helpers for the migrate_*.test.ts files: a small machine, anon
 * VMAs built directly (no user layer needed), CPU accesses through the
 * simulated MMU and fault path, and page-content fingerprints.
 */
import { Kernel } from '../src/kernel/kernel.js';
import { type KernelConfig } from '../src/kernel/config.js';
import { runSync } from '../src/kernel/sched/sched.js';
import { MmStruct, Vma, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE, VM_HUGEPAGE } from '../src/kernel/mm/mm_types.js';
import { translate, doUserAddrFault } from '../src/kernel/arch/fault.js';
import { KernelBug } from '../src/kernel/printk.js';
import {
  pmdIndex, pmdTableOf, pteIndex, type PteTable, type PmdTable, pmdIsTable,
} from '../src/kernel/mm/pgtable.js';
import { TestDev } from '../src/drivers/testdrv/testdrv.js';
import { MigrateVma, migrateVmaSetup } from '../src/kernel/mm/migrate_device.js';
import { enableCheckedMode } from '../src/kernel/mm/debug_vm.js';

export const PAGE = 4096;
export const HPAGE = 2 * 1024 * 1024;

export function mkKernel(cfg: Partial<KernelConfig> = {}): Kernel {
  const k = new Kernel({ ramBytes: 128 << 20, nrHugepages: 0, ...cfg });
  enableCheckedMode(k);
  return k;
}

export interface Env {
  k: Kernel;
  mm: MmStruct;
  vma: Vma;
  dev: TestDev;
}

/** A machine, a process with one anon VMA of `npages` at `start`, and a testdrv device. */
export function mkEnv(npages: number, opts: { cfg?: Partial<KernelConfig>; start?: number; flags?: number; hugepage?: boolean } = {}): Env {
  const k = mkKernel(opts.cfg);
  const mm = k.newMm();
  const start = opts.start ?? 0x40000000;
  const flags = opts.flags ?? (VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | (opts.hugepage ? VM_HUGEPAGE : 0));
  const vma = new Vma(mm, start, start + npages * PAGE, flags, start / PAGE);
  mm.insertVma(vma);
  const dev = new TestDev(k);
  return { k, mm, vma, dev };
}

/** A CPU access at addr: fault until the MMU translates it. Returns the pfn. */
export function cpu(mm: MmStruct, addr: number, write: boolean): number {
  const k = mm.kernel;
  for (let i = 0; i < 100; i++) {
    const pfn = translate(mm, addr, write);
    if (pfn >= 0) return pfn;
    const r = runSync(k.sched, doUserAddrFault(mm, addr, write));
    if (!r.ok) throw new KernelBug('BUG', `test: signal ${r.signal} at 0x${addr.toString(16)}`);
  }
  throw new Error('cpu: no progress');
}

const word = new Uint8Array(4);

/** Store a recognisable pattern into the page at addr (through the CPU). */
export function storePage(mm: MmStruct, addr: number, seed: number): void {
  const pfn = cpu(mm, addr, true);
  mm.kernel.contents.fill(pfn, 0, PAGE, seed & 0xff);
  new DataView(word.buffer).setUint32(0, (seed * 2654435761) >>> 0, true);
  mm.kernel.contents.write(pfn, 8, word, 0, 4);
}

/** Content fingerprint of the page at addr as the CPU sees it (reading faults it in). */
export function loadPage(mm: MmStruct, addr: number): number {
  const pfn = cpu(mm, addr, false);
  return mm.kernel.contents.checksum(pfn);
}

/** Fingerprints of n pages from addr without touching page tables (via the pfns given). */
export function sums(k: Kernel, pfns: number[]): number[] {
  return pfns.map((p) => k.contents.checksum(p));
}

/** The PTE table and index for addr, or null. */
export function ptOf(mm: MmStruct, addr: number): { pt: PteTable; i: number } | null {
  const pmd = pmdTableOf(mm.pgd, addr, false);
  if (pmd === null) return null;
  const pi = pmdIndex(addr);
  if (!pmdIsTable(pmd.f[pi])) return null;
  return { pt: pmd.pte[pi]!, i: pteIndex(addr) };
}

/** The PTE entry at addr: [v, f], or [0, 0] when there is no table. */
export function pte(mm: MmStruct, addr: number): [number, number] {
  const s = ptOf(mm, addr);
  return s === null ? [0, 0] : [s.pt.v[s.i], s.pt.f[s.i]];
}

/** The PMD entry at addr: [v, f] and the table. */
export function pmd(mm: MmStruct, addr: number): [number, number, PmdTable | null] {
  const t = pmdTableOf(mm.pgd, addr, false);
  if (t === null) return [0, 0, null];
  const i = pmdIndex(addr);
  return [t.v[i], t.f[i], t];
}

/** Run a kernel generator to completion. */
export function run<T>(k: Kernel, g: Generator<unknown, T, void>): T {
  return runSync(k.sched, g as never) as T;
}

/**
 * Run a kernel generator with `mm`'s mmap_lock held for read around it, as
 * a driver calls migrate_vma_setup() and the testdrv migrations (lockdep
 * asserts it in checked mode: migrate_vma_collect()'s walk_page_range()).
 */
export function runMmapRead<T>(mm: MmStruct, g: Generator<unknown, T, void>): T {
  const s = mm.kernel.sched;
  if (!mm.mmapLock.tryReadFast(s)) throw new Error(`runMmapRead: mmap_lock of mm #${mm.id} is taken`);
  try {
    return run(mm.kernel, g);
  } finally {
    mm.mmapLock.readUnlock(s);
  }
}

/** migrate_vma_setup(m) under the mmap_lock of m.vma's mm (none when the VMA is missing: -EINVAL before any walk). */
export function setupLocked(k: Kernel, m: MigrateVma): number {
  return m.vma === null ? run(k, migrateVmaSetup(m)) : runMmapRead(m.vma.mm, migrateVmaSetup(m));
}
