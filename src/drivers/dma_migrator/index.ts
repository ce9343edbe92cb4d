// SPDX-License-Identifier: GPL-2.0-only
/**
 * A DMA-engine migrator for the page-migration copy offload (the
 * `struct migrator` of "[RFC PATCH 4/5] mm: add support for DMA folio
 * Migration", src/kernel/mm/migrate_offload.ts; the RFC's reference driver is dcbm,
 * drivers/migrate_offload/dcbm in RFC v4-v6): N DMA memcpy channels, a
 * batch's folios dealt round-robin over the channels, one descriptor per
 * folio (dmaengine_prep_dma_memcpy per mapped segment), submitted by the
 * CPU, then the CPU waits for all channels to complete.
 *
 * Data moves for real (k.contents.copyRange per folio). Time, with a
 * profile: on the CPU, the per-batch setup and completion wait
 * (dma.batchNs), the serial descriptor preparation (dma.descriptorNs each)
 * and the IOMMU mapping (dma.iommuPageNs per 4 KiB page of a folio smaller
 * than a PMD; one mapping for a 2 MiB folio); on channel c, its folios'
 * bytes at dma.channelGBps; all channels together at most
 * dma.aggregateGBps.
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
        // Descriptors: one per folio; in experiment accounting (an mTHP size
        // the allocator lacks) one per accountFolioPages order-0 folios.
        const acc = clock.accountFolioPages;
        const descPages = acc > 1 && pages === srcs.length ? acc : 0;
        const nDesc = descPages > 0 ? Math.ceil(pages / descPages) : srcs.length;
        chanBytes.fill(0);
        if (descPages > 0) for (let j = 0; j < nDesc; j++) chanBytes[j % channels] += Math.min(descPages, pages - j * descPages) * 4096;
        else for (let j = 0; j < srcs.length; j++) chanBytes[j % channels] += p.folioNr(srcs[j]) * 4096;
        clock.charge('dma_migrate: setup', d.batchNs + nDesc * d.descriptorNs + iommuPages * d.iommuPageNs);
        const start = clock.now();
        let end = start;
        for (let c = 0; c < channels && c < nDesc; c++) {
          const e = clock.engineRun(`dma${c}`, chanBytes[c] / d.channelGBps, start);
          if (e > end) end = e;
        }
        end = Math.max(end, start + (pages * 4096) / d.aggregateGBps);
        clock.waitFor(end, 'dma_migrate: wait');
      }
      return out;
    },
  };
}
