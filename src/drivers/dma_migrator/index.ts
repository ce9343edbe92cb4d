// SPDX-License-Identifier: GPL-2.0-only
/**
 * A DMA-engine migrator for the page-migration copy offload (the
 * `struct migrator` of "[RFC PATCH 4/5] mm: add support for DMA folio
 * Migration", src/kernel/mm/migrate_offload.ts; the RFC's reference driver is dcbm,
 * drivers/migrate_offload/dcbm in RFC v4-v6): N DMA memcpy channels, a
 * batch's segments dealt round-robin over the channels, one descriptor per
 * mapped segment (dmaengine_prep_dma_memcpy), submitted by the CPU, then
 * the CPU waits for all channels to complete.
 *
 * Data moves for real (k.contents.copyRange per folio). Time, with a
 * profile, per batch (one migrate_dma() call = one migrate_pages_batch()
 * batch of at most NR_MAX_BATCHED_MIGRATION pages):
 *  - segments: the folios are mapped for DMA (dma_map_sgtable) and the IOMMU
 *    DMA layer's __finalise_sg() (drivers/iommu/dma-iommu.c) concatenates
 *    consecutive entries into one segment while it stays within
 *    dma_get_max_seg_size() (dma.maxSegmentBytes, 64 KiB by default); a
 *    folio at least that long stays one segment of its own. So 4 KiB
 *    folios give 64 KiB segments, a 256 KiB folio one 256 KiB segment;
 *  - on the CPU: dma.batchNs (channel selection, submission, completion
 *    wakeup), dma.descriptorNs per segment (prep + tx_submit, serial),
 *    dma.iommuPageNs per 4 KiB IOMMU page mapped (one per PMD folio);
 *  - on the channels: whole segments dealt round-robin, each costing
 *    dma.segmentNs (descriptor round trip) + its bytes at dma.channelGBps;
 *    all channels together at most dma.aggregateGBps. The CPU waits for
 *    the last channel.
 * A 2 MiB folio is one segment and so runs on one channel: more channels
 * do not speed up a batch of one THP (the model's prediction; see
 * docs/COST_MODEL.md).
 *
 * can_migrate_dma(): no for ZONE_DEVICE folios and, if configured, folios
 * smaller than `minFolioPages` (those are copied by the CPU).
 */
import type { Kernel } from '../../kernel/kernel.js';
import type { Migrator } from '../../kernel/mm/migrate_offload.js';
import { HPAGE_PMD_NR } from '../../kernel/mm/page.js';

export interface DmaMigratorOptions {
  /** Channels to use (nr_dma_chan); at most the profile's dma.channels when a profile is loaded. */
  channels: number;
  /** can_migrate_dma() refuses folios of fewer pages (0: take all RAM folios). */
  minFolioPages?: number;
}

export interface DmaMigrator extends Migrator {
  readonly channels: number;
  /** folios_migrated / folios_failures of dcbm's sysfs. */
  readonly stat: { foliosMigrated: number; foliosRefused: number; batches: number };
}

export function createDmaMigrator(k: Kernel, opt: DmaMigratorOptions): DmaMigrator {
  if (!Number.isInteger(opt.channels) || opt.channels < 1) throw new RangeError(`dma_migrator: channels must be a positive integer (got ${opt.channels})`);
  const prof = k.clock?.profile.dma;
  if (k.clock !== null && prof === undefined) throw new RangeError(`dma_migrator: profile '${k.clock.profile.name}' has no DMA engine`);
  if (prof !== undefined && opt.channels > prof.channels) throw new RangeError(`dma_migrator: ${opt.channels} channels requested, the profile's engine has ${prof.channels}`);
  const channels = opt.channels;
  const minPages = opt.minFolioPages ?? 0;
  const stat = { foliosMigrated: 0, foliosRefused: 0, batches: 0 };
  const chanBytes = new Float64Array(channels);
  const chanSegs = new Int32Array(channels);
  return {
    name: `dma_migrator(${channels}ch)`,
    channels,
    stat,
    canMigrateDma(kk: Kernel, dst: number, src: number): boolean {
      const p = kk.pages;
      const ok = p.pgmap[src] === 0 && p.pgmap[dst] === 0 && p.folioNr(src) >= minPages;
      if (!ok) stat.foliosRefused++;
      return ok;
    },
    migrateDma(kk: Kernel, dsts: number[], srcs: number[]): boolean[] {
      const p = kk.pages;
      const out = new Array<boolean>(srcs.length);
      let pages = 0;
      let iommuPages = 0;
      for (let i = 0; i < srcs.length; i++) {
        const nr = p.folioNr(srcs[i]);
        kk.contents.copyRange(dsts[i], srcs[i], nr);
        out[i] = true;
        pages += nr;
        iommuPages += nr === HPAGE_PMD_NR ? 1 : nr;
      }
      stat.foliosMigrated += srcs.length;
      stat.batches++;
      const clock = kk.clock;
      if (clock !== null) {
        const d = clock.profile.dma!;
        chanBytes.fill(0);
        chanSegs.fill(0);
        // __finalise_sg(): concatenate while the segment stays <= maxSegmentBytes.
        const maxSeg = d.maxSegmentBytes;
        let nSeg = 0;
        let cur = 0;
        for (let j = 0; j < srcs.length; j++) {
          const bytes = p.folioNr(srcs[j]) * 4096;
          if (cur === 0 || bytes > maxSeg - cur) {
            nSeg++;
            cur = 0;
            chanSegs[(nSeg - 1) % channels]++;
          }
          cur += bytes;
          chanBytes[(nSeg - 1) % channels] += bytes;
        }
        clock.charge('dma_migrate: setup', d.batchNs + nSeg * d.descriptorNs + iommuPages * d.iommuPageNs);
        const start = clock.now();
        let end = start;
        for (let c = 0; c < channels && c < nSeg; c++) {
          const e = clock.engineRun(`dma${c}`, chanSegs[c] * d.segmentNs + chanBytes[c] / d.channelGBps, start, clock.jobs === null ? 'job' : `memcpy: ${chanSegs[c]} segment${chanSegs[c] > 1 ? 's' : ''}, ${chanBytes[c] >> 10} KiB`);
          if (e > end) end = e;
        }
        end = Math.max(end, start + (pages * 4096) / d.aggregateGBps);
        clock.waitFor(end, 'dma_migrate: wait');
      }
      return out;
    },
  };
}
