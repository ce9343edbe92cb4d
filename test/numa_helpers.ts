// SPDX-License-Identifier: GPL-2.0-only
/** Shared setup of the NUMA tests (numa, mbind): a 2-node machine and a page's pfn. */
import { System, pagemapEntry } from '../src/user/system.js';
import type { Process } from '../src/user/process.js';

/** The pfn /proc/pid/pagemap reports for address a of p (PM_PFN_FRAME_MASK, bits 0-54). */
export function pfnOf(p: Process, a: number): number {
  return Number(pagemapEntry(p.mm!, a) & ((1n << 55n) - 1n));
}

/** A 128 MiB machine of 2 NUMA nodes, no swap, no hugetlb pool, and one process `name`. */
export function numaMachine(name: string, cfg = {}): { sys: System; p: Process } {
  const sys = new System({ ramBytes: 128 << 20, numaNodes: 2, swapMiB: 0, nrHugepages: 0, ...cfg });
  return { sys, p: sys.spawn(name) };
}
