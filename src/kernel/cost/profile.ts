// SPDX-License-Identifier: GPL-2.0-only
/**
 * A hardware profile: the numbers simulated time is made of.
 *
 * A profile is data (profiles/<name>.json, described by
 * profiles/profile.schema.json). Every value says what it is the cost of in
 * kernel terms; `sources` names, per value, the public source it comes
 * from, or that it was fitted (docs/COST_MODEL.md has the calibration).
 *
 * Units: nanoseconds for latencies, GB/s (10^9 bytes per second) for
 * bandwidths. This module only describes and validates; reading the file
 * is the tools layer's business (src/model/profiles.ts).
 */

/** Costs of the kernel's own work on a CPU (per operation, in ns). */
export interface KernelCosts {
  /**
   * Per migrate_pages_batch() call: list handling, the retry loop's setup
   * and try_to_unmap_flush() (one batched TLB flush with its shootdown IPIs
   * for the whole batch).
   */
  migrateBatchNs: number;
  /**
   * Per folio migrated by migrate_pages_batch(): the destination allocation
   * (alloc_migration_target), folio lock, LRU isolation and putback,
   * try_to_migrate()'s rmap walk setup, folio_migrate_mapping(), the free
   * of the source, and (move_pages) the per-address lookup in
   * add_page_for_migration(): all once per folio whatever its size.
   */
  migrateFolioNs: number;
  /**
   * Per PTE of a PTE-mapped folio: installing the migration entry
   * (try_to_migrate_one), restoring it (remove_migration_pte) and the rmap
   * counters of that page.
   */
  migratePteNs: number;
  /** Per PMD mapping of a PMD-mapped THP (set_pmd_migration_entry + remove_migration_pmd). */
  migratePmdNs: number;
  /** Exception entry + handle_mm_fault() dispatch + return to user, per CPU fault. */
  faultEntryExitNs: number;
  /**
   * Optional (0 when absent). Per hmm_range_fault() call: the walk's setup
   * (walk_page_range() over the range's VMAs) and the caller's
   * mmu_interval_read_begin() / mmu_interval_read_retry() pair.
   */
  hmmRangeFaultNs?: number;
  /**
   * Optional (0 when absent). Per page hmm_range_fault() reports: one PTE
   * read and its hmm_pfn word (hmm_vma_handle_pte(), or one iteration of
   * hmm_vma_handle_pmd()'s fill loop for a PMD).
   */
  hmmPageNs?: number;
}

/** A CPU memory copy bandwidth for one block size. */
export interface CopyPoint {
  blockBytes: number;
  GBps: number;
}

export interface CpuProfile {
  /** Simulated CPUs (one clock each). */
  count: number;
  /**
   * Single-thread copy bandwidth by block size (copy_highpage() / memcpy of
   * blockBytes at a time); linear interpolation between points, clamped.
   */
  copy: CopyPoint[];
}

/** A DMA memcpy engine usable by a migrator (drivers/dma_migrator). */
export interface DmaProfile {
  /** DMA memcpy channels the engine offers. */
  channels: number;
  /**
   * Per batch handed to the engine: channel selection, descriptor chain
   * submission (dma_async_issue_pending) and the completion wait/wakeup.
   */
  batchNs: number;
  /**
   * Per DMA segment, on the submitting CPU (serial): dmaengine_prep_dma_memcpy()
   * and tx_submit for one mapped segment.
   */
  descriptorNs: number;
  /** Per 4 KiB page mapped for DMA with 4 KiB IOMMU granularity (dma_map_sgtable of non-PMD folios), on the CPU; a PMD folio is one 2 MiB IOMMU mapping. */
  iommuPageNs: number;
  /**
   * Per DMA segment, on the channel that runs it: the descriptor's fetch,
   * start and completion round trip, serial per channel, before and after
   * its bytes move at channelGBps.
   */
  segmentNs: number;
  /**
   * dma_get_max_seg_size() of the engine's device (include/linux/dma-mapping.h:
   * 64 KiB when the driver sets no dma_parms): the IOMMU DMA layer's
   * __finalise_sg() (drivers/iommu/dma-iommu.c) concatenates mapped folios
   * into one segment while the segment stays within this length; a folio
   * at least this long is one segment of its own.
   */
  maxSegmentBytes: number;
  /** Per-channel copy bandwidth. */
  channelGBps: number;
  /** All channels together cannot exceed this (the engine's / fabric's limit). */
  aggregateGBps: number;
}

/** A host-device link (PCIe, xGMI, NVLink-C2C). */
export interface LinkProfile {
  name: string;
  /** Unidirectional bandwidth. */
  GBps: number;
  /** One-way latency of a transfer start. */
  latencyNs: number;
}

/** A device's copy engines (the GPU's DMA engines used by migrate_vma). */
export interface DeviceProfile {
  copyEngines: number;
  /** Per copy command (setup, doorbell, fence). */
  copySetupNs: number;
  /** Device fault: interrupt, fault buffer read, the driver's handler up to hmm_range_fault / migrate_vma. */
  faultNs: number;
  /**
   * Optional (0 when absent). Per GPU page-table update method
   * (nouveau's NVIF_VMM_V0_PFNMAP / PFNCLR through nvif_object_ioctl():
   * the ioctl into nvkm and the page-table walk to the level of the
   * range), without the PTE writes and the TLB invalidate.
   */
  ptUpdateNs?: number;
  /** Optional (0 when absent). Per GPU PTE written or cleared by such a method. */
  ptePageNs?: number;
  /**
   * Optional (0 when absent). Per GPU TLB invalidate (the flush nvkm
   * issues after a page-table update, and its wait for the MMU's ack).
   */
  tlbInvalidateNs?: number;
}

export interface HwProfile {
  name: string;
  description: string;
  cpu: CpuProfile;
  kernel: KernelCosts;
  dma?: DmaProfile;
  link?: LinkProfile;
  device?: DeviceProfile;
  /** Value path ("kernel.migratePteNs") -> the public source of that value, or "fitted: ...". */
  sources: Record<string, string>;
}

/** Fields that must be finite non-negative numbers, by section. */
const NUMERIC: Record<string, string[]> = {
  kernel: ['migrateBatchNs', 'migrateFolioNs', 'migratePteNs', 'migratePmdNs', 'faultEntryExitNs'],
  dma: ['channels', 'batchNs', 'descriptorNs', 'iommuPageNs', 'segmentNs', 'maxSegmentBytes', 'channelGBps', 'aggregateGBps'],
  link: ['GBps', 'latencyNs'],
  device: ['copyEngines', 'copySetupNs', 'faultNs'],
};

/** Fields that may be absent (then 0); when present, a finite non-negative number with a source. */
const OPTIONAL_NUMERIC: Record<string, string[]> = {
  kernel: ['hmmRangeFaultNs', 'hmmPageNs'],
  device: ['ptUpdateNs', 'ptePageNs', 'tlbInvalidateNs'],
};

/**
 * Check a parsed profile. Returns the errors (empty: valid). The JSON
 * Schema in profiles/ says the same; this keeps the runtime free of a
 * schema validator.
 */
export function validateProfile(x: unknown): string[] {
  const errs: string[] = [];
  if (typeof x !== 'object' || x === null) return ['profile is not an object'];
  const o = x as Record<string, unknown>;
  if (typeof o.name !== 'string' || o.name === '') errs.push('name: missing');
  if (typeof o.description !== 'string') errs.push('description: missing');
  const cpu = o.cpu as Record<string, unknown> | undefined;
  if (typeof cpu !== 'object' || cpu === null) errs.push('cpu: missing');
  else {
    if (!Number.isInteger(cpu.count) || (cpu.count as number) < 1) errs.push('cpu.count: not a positive integer');
    if (!Array.isArray(cpu.copy) || cpu.copy.length === 0) errs.push('cpu.copy: not a non-empty array');
    else for (const [i, c] of (cpu.copy as CopyPoint[]).entries()) {
      if (!(c.blockBytes > 0) || !(c.GBps > 0)) errs.push(`cpu.copy[${i}]: blockBytes and GBps must be positive`);
    }
  }
  for (const [sec, fields] of Object.entries(NUMERIC)) {
    const s = o[sec] as Record<string, unknown> | undefined;
    if (s === undefined && sec !== 'kernel') continue;
    if (typeof s !== 'object' || s === null) {
      errs.push(`${sec}: missing`);
      continue;
    }
    for (const f of fields) {
      const v = s[f];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) errs.push(`${sec}.${f}: not a non-negative number`);
    }
  }
  for (const [sec, fields] of Object.entries(OPTIONAL_NUMERIC)) {
    const s = o[sec] as Record<string, unknown> | undefined;
    if (typeof s !== 'object' || s === null) continue;
    for (const f of fields) {
      if (!(f in s)) continue;
      const v = s[f];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) errs.push(`${sec}.${f}: not a non-negative number`);
      else if (typeof o.sources === 'object' && o.sources !== null && typeof (o.sources as Record<string, unknown>)[`${sec}.${f}`] !== 'string') errs.push(`sources: no source for ${sec}.${f}`);
    }
  }
  const dma = o.dma as DmaProfile | undefined;
  if (dma && (!Number.isInteger(dma.channels) || dma.channels < 1)) errs.push('dma.channels: not a positive integer');
  if (dma && !(dma.channelGBps > 0 && dma.aggregateGBps > 0)) errs.push('dma: bandwidths must be positive');
  if (dma && !(Number.isInteger(dma.maxSegmentBytes) && dma.maxSegmentBytes >= 4096)) errs.push('dma.maxSegmentBytes: not an integer >= 4096');
  if (typeof o.sources !== 'object' || o.sources === null) errs.push('sources: missing');
  else {
    // Every numeric value names its source.
    for (const [sec, fields] of Object.entries(NUMERIC)) {
      if (o[sec] === undefined) continue;
      for (const f of fields) if (typeof (o.sources as Record<string, unknown>)[`${sec}.${f}`] !== 'string') errs.push(`sources: no source for ${sec}.${f}`);
    }
    if (typeof (o.sources as Record<string, unknown>)['cpu.copy'] !== 'string') errs.push('sources: no source for cpu.copy');
  }
  return errs;
}

/** CPU copy bandwidth (GB/s) for a block size: linear interpolation over the profile's points, clamped at the ends. */
export function cpuCopyGBps(p: HwProfile, blockBytes: number): number {
  const pts = p.cpu.copy;
  if (blockBytes <= pts[0].blockBytes) return pts[0].GBps;
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1];
    const b = pts[i];
    if (blockBytes <= b.blockBytes) return a.GBps + ((b.GBps - a.GBps) * (blockBytes - a.blockBytes)) / (b.blockBytes - a.blockBytes);
  }
  return pts[pts.length - 1].GBps;
}

/** A copy of `p` with some values replaced (`--sweep dma.channels=1,2`): path "sec.field". */
export function withValue(p: HwProfile, path: string, value: number): HwProfile {
  const q = JSON.parse(JSON.stringify(p)) as HwProfile;
  const [sec, field] = path.split('.');
  const s = (q as unknown as Record<string, Record<string, unknown>>)[sec];
  if (s === undefined || typeof s[field] !== 'number') throw new Error(`profile has no numeric value '${path}'`);
  s[field] = value;
  return q;
}
