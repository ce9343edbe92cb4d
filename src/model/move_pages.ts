// SPDX-License-Identifier: GPL-2.0-only
/**
 * The move_pages() throughput experiment of the DMA offload RFC
 * (Shivank Garg, AMD, RFC v6 2026): move `bytes` of anonymous memory from
 * node 0 to node 1 with move_pages(2), one address per folio, for a folio
 * size, with the CPU copy (folios_copy) or the DMA migrator with N channels.
 * Throughput = bytes / simulated time of the syscall.
 *
 * Folio sizes: every run migrates real folios of its size. 4 KiB: order-0
 * pages (no THP); 16 KiB - 1 MiB: anonymous mTHP folios, PTE-mapped, from
 * write faults with hugepages-<size>kB/enabled = always and the PMD size
 * off; 2 MiB: PMD-mapped THPs (MADV_HUGEPAGE, thp=always). The buffer is
 * PMD-aligned, so every folio is naturally aligned and whole.
 *
 * `predictMovePages` is the same arithmetic in closed form (for the
 * calibration's least squares); a test checks it equals the simulation.
 */
import { System, pagemapEntry, PM_PFRAME_MASK } from '../user/system.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mmap.js';
import { MADV_HUGEPAGE } from '../kernel/mm/madvise.js';
import { SimClock } from '../kernel/cost/clock.js';
import type { HwProfile } from '../kernel/cost/profile.js';
import { cpuCopyGBps } from '../kernel/cost/profile.js';
import { MPOL_MF_MOVE, sysMovePages, pageToNid } from '../kernel/mm/migrate_numa.js';
import { startOffloading, stopOffloading } from '../kernel/mm/migrate_offload.js';
import { createDmaMigrator } from '../drivers/dma_migrator/index.js';
import { HPAGE_PMD_NR } from '../kernel/mm/page.js';
import { pmdAligned, pmdAlignUp } from '../kernel/mm/pgtable.js';
import type { Kernel } from '../kernel/kernel.js';

export const FOLIO_KIB = [4, 16, 64, 256, 1024, 2048];
const PMD = 2 * 1024 * 1024;

export interface MovePagesPoint {
  folioKiB: number;
  /** 0 = CPU copy. */
  channels: number;
  ns: number;
  GBps: number;
  /** Pages the syscall reported not migrated or with an error status. */
  failed: number;
  /** ns by phase. */
  acct: Record<string, number>;
}

/**
 * Run the experiment for one folio size and several copy configurations on
 * one machine (the memory moves 0 -> 1, then back untimed, per
 * configuration). contentMode=fingerprint (data still moves; every copy is
 * checked by the fingerprints in checked mode and by the caller's check).
 */
/**
 * A hook around one simulated configuration (tracing): called with the
 * machine and the configuration's fresh clock before the run, it returns
 * the function called after it.
 */
export type ConfigHook = (k: Kernel, clock: SimClock, label: string) => () => void;

export function runMovePages(profile: HwProfile, folioKiB: number, channelsList: number[], bytes: number, checked = false, onDone?: (pt: MovePagesPoint) => void, onConfig?: ConfigHook): MovePagesPoint[] {
  if (!FOLIO_KIB.includes(folioKiB)) throw new RangeError(`folio size ${folioKiB} KiB is not one of ${FOLIO_KIB.join(', ')}`);
  if (!pmdAligned(bytes) || bytes <= 0) throw new RangeError('bytes must be a positive multiple of 2 MiB');
  const nodeMiB = Math.ceil(bytes / (1 << 20) / 2) * 2 + 128;
  const mthp = folioKiB === 4 || folioKiB === 2048 ? {} : { [`${folioKiB}kB`]: 'always' as const };
  const sys = new System({ ramBytes: 2 * nodeMiB * (1 << 20), numaNodes: 2, contentMode: 'fingerprint', thp: folioKiB === 2048 ? 'always' : 'never', mthp, swapMiB: 0, nrHugepages: 0, checked });
  const k = sys.kernel;
  const proc = sys.spawn('move_pages');
  const raw = proc.mmap(0, bytes + PMD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const base = pmdAlignUp(raw);
  if (folioKiB === 2048) proc.madvise(base, bytes, MADV_HUGEPAGE);
  // A distinct byte per folio so a mixed-up copy shows.
  const step = folioKiB * 1024;
  const nFolios = bytes / step;
  for (let i = 0; i < nFolios; i++) proc.fill(base + i * step, step, (i * 7 + 1) & 0xff);
  // The faults made folios of the size asked for (an allocation failure
  // would have fallen back to a smaller order: the experiment must not
  // measure those).
  for (let i = 0; i < nFolios; i++) {
    const pfn = pfnAt(proc, base + i * step);
    if (k.pages.folioNr(pfn) * 4096 !== step) throw new Error(`move_pages experiment: folio ${i} has ${k.pages.folioNr(pfn) * 4} KiB, not ${folioKiB} KiB`);
  }
  // One address per folio.
  const nAddr = nFolios;
  const pages = new Float64Array(nAddr);
  for (let i = 0; i < nAddr; i++) pages[i] = base + i * step;
  const status = new Int32Array(nAddr);
  const before = checksum(sys, proc, base, bytes);
  const out: MovePagesPoint[] = [];
  for (const ch of channelsList) {
    const clock = new SimClock(profile);
    k.clock = clock;
    if (ch > 0) startOffloading(k, createDmaMigrator(k, { channels: ch }));
    const done = onConfig?.(k, clock, `move_pages ${folioKiB >= 1024 ? `${folioKiB / 1024}M` : `${folioKiB}K`} folios, ${ch === 0 ? 'CPU copy' : `DMA ${ch}ch`}`);
    let r: number;
    try {
      r = sysMovePages(k, proc.mm!, pages, new Int32Array(nAddr).fill(1), status, MPOL_MF_MOVE);
    } finally {
      done?.();
    }
    if (ch > 0) stopOffloading(k);
    k.clock = null;
    let failed = r > 0 ? r : 0;
    for (let i = 0; i < nAddr; i++) if (status[i] !== 1) failed++;
    if (r < 0) throw new Error(`move_pages failed: ${r}`);
    const ns = clock.now();
    const pt: MovePagesPoint = { folioKiB, channels: ch, ns, GBps: bytes / ns, failed, acct: clock.snapshot().acct };
    out.push(pt);
    onDone?.(pt);
    // Back to node 0, untimed, for the next configuration.
    sysMovePages(k, proc.mm!, pages, new Int32Array(nAddr).fill(0), status, MPOL_MF_MOVE);
  }
  const after = checksum(sys, proc, base, bytes);
  if (after !== before) throw new Error(`move_pages experiment: contents changed (${before} -> ${after})`);
  void pageToNid;
  k.release();
  return out;
}

/** A checksum of the buffer's page contents (fingerprints), through the page tables. */
function checksum(sys: System, proc: ReturnType<System['spawn']>, base: number, bytes: number): number {
  const k = sys.kernel;
  let h = 0;
  for (let a = base; a < base + bytes; a += 4096) {
    h = (h * 31 + k.contents.checksum(pfnAt(proc, a))) % 2147483647;
  }
  return h;
}

/** The pfn /proc/pid/pagemap gives for address a of proc. */
function pfnAt(proc: ReturnType<System['spawn']>, a: number): number {
  return Number(pagemapEntry(proc.mm!, a) & PM_PFRAME_MASK);
}

/**
 * The simulated time of the experiment in closed form: the same charges
 * migrate_pages_batch() and the DMA migrator make, summed. Returns ns.
 */
export function predictMovePages(profile: HwProfile, folioKiB: number, channels: number, bytes: number): number {
  const kc = profile.kernel;
  const P = folioKiB / 4;
  const nFolios = bytes / (folioKiB * 1024);
  const fpb = Math.max(1, Math.ceil(HPAGE_PMD_NR / P));
  const nBatches = Math.ceil(nFolios / fpb);
  let ns = nBatches * kc.migrateBatchNs;
  ns += nFolios * (P === HPAGE_PMD_NR ? kc.migrateFolioNs + kc.migratePmdNs : kc.migrateFolioNs + P * kc.migratePteNs);
  if (channels === 0) return ns + (bytes / 4096) * (4096 / cpuCopyGBps(profile, 4096));
  const d = profile.dma!;
  const folioBytes = folioKiB * 1024;
  const batchBytes = fpb * folioBytes;
  const iommuPages = P === HPAGE_PMD_NR ? fpb : fpb * P;
  // Segments: folios concatenated up to maxSegmentBytes; a folio at least
  // that long is one segment (every batch here has equal folios).
  const perSeg = folioBytes >= d.maxSegmentBytes ? 1 : Math.floor(d.maxSegmentBytes / folioBytes);
  const nSeg = Math.ceil(fpb / perSeg);
  let chan = 0;
  for (let c = 0; c < Math.min(channels, nSeg); c++) {
    let segs = 0;
    let b = 0;
    for (let s = c; s < nSeg; s += channels) {
      segs++;
      b += Math.min(perSeg, fpb - s * perSeg) * folioBytes;
    }
    chan = Math.max(chan, segs * d.segmentNs + b / d.channelGBps);
  }
  const perBatch = d.batchNs + nSeg * d.descriptorNs + iommuPages * d.iommuPageNs + Math.max(chan, batchBytes / d.aggregateGBps);
  return ns + nBatches * perBatch;
}
