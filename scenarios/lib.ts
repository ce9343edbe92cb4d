// SPDX-License-Identifier: GPL-2.0-only
/**
 * Helpers shared by the scenarios: a small machine, an anonymous mapping,
 * the CPU's loads and stores (the MMU walk, faulting until the access can
 * complete), and the shadow copy of page contents the end checks compare.
 *
 * Explorer machines are small (4 MiB of RAM, no hugetlb pool, a few device
 * pages) and keep page contents as fingerprints (contentMode=fingerprint):
 * a copy carries the fingerprint, any store changes it, so comparing
 * checksums detects lost or misdirected data without storing bytes.
 */
import { Kernel } from '../src/kernel/kernel.js';
import type { KernelConfig } from '../src/kernel/config.js';
import { runSync, type K } from '../src/kernel/sched/sched.js';
import { type MmStruct, Vma, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE } from '../src/kernel/mm/mm_types.js';
import { doUserAddrFault, translate } from '../src/kernel/arch/fault.js';
import { PAGE_SIZE } from '../src/kernel/mm/page.js';
import { KernelBug } from '../src/kernel/printk.js';
import { TestDev } from '../src/drivers/testdrv/testdrv.js';
import type { ScenarioRun } from '../src/explore/engine.js';
import { isDevicePrivateType, pmdIndex, pmdTableOf, pteIndex, T_TABLE, pteType } from '../src/kernel/mm/pgtable.js';

/** User address of the scenarios' buffer. */
export const ADDR = 0x40000000;

/** A small machine for exploration; the scenario's config (historical switches) on top. */
export function smallMachine(cfg: Partial<KernelConfig>): Kernel {
  const k = new Kernel({ ramBytes: 4 << 20, nrHugepages: 0, contentMode: 'fingerprint', ...cfg, checked: false });
  // A page the kernel keeps from boot: the first 2 MiB block stays split, so
  // the scenarios' few page allocations and frees do not split and coalesce
  // a whole block every schedule.
  k.buddy.alloc(0, 0, 'boot');
  return k;
}

/** A private anonymous read-write mapping of `npages` at ADDR (mmap(MAP_PRIVATE|MAP_ANONYMOUS)). */
export function anonMapping(k: Kernel, npages: number): { mm: MmStruct; vma: Vma } {
  const mm = k.newMm();
  const vma = new Vma(mm, ADDR, ADDR + npages * PAGE_SIZE, VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE, ADDR / PAGE_SIZE);
  mm.insertVma(vma);
  return { mm, vma };
}

/** Fault a page in for writing and fill it with `byte` (run to completion, before the threads). Returns the pfn. */
export function populate(k: Kernel, mm: MmStruct, addr: number, byte: number): number {
  const r = runSync(k.sched, doUserAddrFault(mm, addr, true));
  if (!r.ok) throw new KernelBug('BUG', `scenario setup: write fault at 0x${addr.toString(16)} failed (signal ${r.signal})`);
  const pfn = translate(mm, addr, true);
  k.contents.fill(pfn, 0, PAGE_SIZE, byte);
  return pfn;
}

/** Run a kernel path to completion holding mmap_lock for read (driver setup steps). */
export function withMmapRead<T>(k: Kernel, mm: MmStruct, g: () => K<T>): T {
  if (!mm.mmapLock.tryReadFast(k.sched)) throw new KernelBug('BUG', 'scenario setup: mmap_lock contended');
  try {
    return runSync(k.sched, g());
  } finally {
    mm.mmapLock.readUnlock(k.sched);
  }
}

/**
 * A CPU load or store of the page at addr from a simulated thread: the MMU
 * walk, and a page fault whenever it cannot complete. Returns the pfn the
 * access reached, or -signal.
 */
export function* cpuAccess(mm: MmStruct, addr: number, write: boolean): K<number> {
  const s = mm.kernel.sched;
  for (let i = 0; i < 1000; i++) {
    const pfn = translate(mm, addr, write);
    if (pfn >= 0) return pfn;
    // The instruction is re-executed after a fault that changed nothing:
    // let another thread run first (see SchedEvent 'yield').
    if (i > 0 && s.exploring) yield s.yieldPoint('access retried', addr);
    const r = yield* doUserAddrFault(mm, addr, write);
    if (!r.ok) return -r.signal;
  }
  throw new KernelBug('HANG', `CPU access at 0x${addr.toString(16)} faulted 1000 times (livelock)`);
}

/** A CPU store of a whole page of `byte` at addr (one store: the fingerprint of a full fill). */
export function* cpuFill(k: Kernel, mm: MmStruct, addr: number, byte: number): K<number> {
  const pfn = yield* cpuAccess(mm, addr, true);
  if (pfn >= 0) k.contents.fill(pfn, 0, PAGE_SIZE, byte);
  return pfn;
}

/** The checksum a page has after one full-page fill with `byte` (computed on a scratch page). */
export function fillChecksum(k: Kernel, byte: number): number {
  const pfn = k.buddy.alloc(0, 0, 'scenario-scratch');
  if (pfn < 0) throw new KernelBug('BUG', 'scenario setup: no scratch page');
  k.contents.fill(pfn, 0, PAGE_SIZE, byte);
  const c = k.contents.checksum(pfn);
  k.contents.discard(pfn);
  k.buddy.free(pfn, 0);
  return c;
}

/**
 * The shadow compare: the page the CPU sees at addr (without faulting:
 * mapped, or a device-private entry whose page still holds the data) must
 * carry `want`. Returns a DATA violation text or null.
 */
export function shadowCompare(k: Kernel, mm: MmStruct, addr: number, want: number, what: string): string | null {
  const pfn = mappedPfn(mm, addr);
  if (pfn < 0) return `data lost: ${what} at 0x${addr.toString(16)} is no longer mapped`;
  const got = k.contents.checksum(pfn);
  if (got !== want) return `data lost: ${what} at 0x${addr.toString(16)} (pfn 0x${pfn.toString(16)}) has checksum 0x${got.toString(16)}, the shadow copy 0x${want.toString(16)}`;
  return null;
}

/** The pfn a PTE at addr names (present or device-private), or -1. */
export function mappedPfn(mm: MmStruct, addr: number): number {
  const pfn = translate(mm, addr, false);
  if (pfn >= 0) return pfn;
  return devicePrivatePfn(mm, addr);
}


/** The device page a device-private PTE at addr names, or -1. */
export function devicePrivatePfn(mm: MmStruct, addr: number): number {
  const pmd = pmdTableOf(mm.pgd, addr, false);
  if (pmd === null) return -1;
  const i = pmdIndex(addr);
  if (pteType(pmd.f[i]) !== T_TABLE) return -1;
  const pt = pmd.pte[i]!;
  const j = pteIndex(addr);
  return isDevicePrivateType(pteType(pt.f[j])) ? pt.v[j] : -1;
}

/**
 * The common machine of the device-page scenarios: one page of data
 * (`pattern` bytes) moved to device-private memory of a testdrv device.
 * Returns the machine, the data's shadow checksum and the device pfn.
 */
export function setupDevicePage(cfg: Partial<KernelConfig>, name: string, pattern: number) {
  const k = smallMachine(cfg);
  const { mm, vma } = anonMapping(k, 1);
  const dev = new TestDev(k, { privatePages: 16, coherentPages: 0, name });
  const sys = populate(k, mm, ADDR, pattern);
  const shadow = k.contents.checksum(sys);
  withMmapRead(k, mm, () => dev.migrateToDevice(vma, ADDR, ADDR + 4096, 'private'));
  const dpfn = devicePrivatePfn(mm, ADDR);
  return { k, mm, vma, dev, shadow, dpfn };
}

/** Two threads: a CPU read of the device page, and the device's removal (release()). */
export function faultVsRemoval(cfg: Partial<KernelConfig>, name: string, pattern: number): ScenarioRun {
  const { k, mm, dev, shadow, dpfn } = setupDevicePage(cfg, name, pattern);
  return {
    k,
    roots: [dev],
    watch: [dpfn],
    threads: [
      { name: 'cpu-fault', *body() { return yield* cpuAccess(mm, ADDR, false); } },
      { name: 'device-removal', *body() { yield* dev.release(); } },
    ],
    check: () => shadowCompare(k, mm, ADDR, shadow, 'the page faulted back from device memory'),
  };
}

