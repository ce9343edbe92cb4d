// SPDX-License-Identifier: GPL-2.0-only
/**
 * try_to_migrate_one() treating device-coherent pages as device-private
 * (ttm_coherent_as_private).
 *
 * In the device-coherent series before review (review of "mm: add
 * device coherent checker to remove migration pte" and "mm: add zone device
 * coherent type memory support", 2022; mm/rmap.c:try_to_migrate_one())
 * try_to_migrate() accepted coherent folios but
 * try_to_migrate_one() still took its folio_is_zone_device() branch, written
 * for device-private pages: it decodes the present PTE as a device-private
 * swap entry (write permission lost) and, since device-private pages cannot
 * be pinned, does BUG_ON(page_try_share_anon_rmap(subpage)). Device-coherent
 * pages are ordinary CPU-mapped memory and can be pinned (O_DIRECT, short
 * term).
 *
 * Threads:
 *   dio     an O_DIRECT-like read into the buffer: pin_user_pages(FOLL_WRITE)
 *           under mmap_lock, the device "DMA" fills the pinned page, unpin
 *   evict   the driver evicts its device-coherent memory with
 *           migrate_device_range() (reaches every mapping through
 *           try_to_migrate())
 * Expected with the switch on: the eviction finds the pinned page: BUG in
 * try_to_migrate_one. Mainline: the pinned page cannot be shared, the
 * migration of that page fails and it stays where it is; the end check
 * compares the buffer with the DMA'd data.
 */
import type { KernelConfig } from '../src/kernel/config.js';
import { TestDev } from '../src/drivers/testdrv/testdrv.js';
import type { Scenario, ScenarioRun } from '../src/explore/engine.js';
import { FOLL_WRITE, pinUserPages, unpinUserPagesDirtyLock } from '../src/kernel/mm/gup.js';
import { PAGE_SIZE } from '../src/kernel/mm/page.js';
import { ADDR, anonMapping, fillChecksum, mappedPfn, populate, shadowCompare, smallMachine, withMmapRead } from './lib.js';
import { mmapReadLock } from '../src/kernel/mm/mmap_lock.js';

const DMA = 0x77;

export const ttmCoherentAsPrivate: Scenario = {
  name: 'ttm-coherent-as-private',
  description: 'eviction of device-coherent memory (try_to_migrate) while a page is pinned for DMA',
  seedRef: 'review of "mm: add device coherent checker to remove migration pte" and "mm: add zone device coherent type memory support" (2022); mm/rmap.c:try_to_migrate_one()',
  bugSwitch: 'ttm_coherent_as_private',
  expect: 'BUG in try_to_migrate_one',
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const k = smallMachine(cfg);
    const s = k.sched;
    const { mm, vma } = anonMapping(k, 1);
    const dev = new TestDev(k, { privatePages: 16, coherentPages: 16, name: 'ttm-dev' });
    populate(k, mm, ADDR, 0x44);
    withMmapRead(k, mm, () => dev.migrateToDevice(vma, ADDR, ADDR + 4096, 'coherent'));
    const cpfn = mappedPfn(mm, ADDR);
    const dmaSum = fillChecksum(k, DMA);
    return {
      k,
      roots: [dev],
      watch: [cpfn],
      threads: [
        {
          name: 'dio',
          *body() {
            const pages = new Float64Array(1);
            yield* mmapReadLock(mm);
            const n = yield* pinUserPages(mm, ADDR, 1, FOLL_WRITE, pages);
            mm.mmapLock.readUnlock(s);
            if (n !== 1) return n;
            if (s.exploring) yield s.point('dio: DMA to the pinned page', pages[0]);
            k.contents.fill(pages[0], 0, PAGE_SIZE, DMA);
            if (s.exploring) yield s.point('dio: DMA complete', pages[0]);
            unpinUserPagesDirtyLock(k, pages, 1, true);
            return n;
          },
        },
        { name: 'evict', *body() { return yield* dev.evict('coherent'); } },
      ],
      check: () => shadowCompare(k, mm, ADDR, dmaSum, 'the buffer the DMA filled'),
    };
  },
};
