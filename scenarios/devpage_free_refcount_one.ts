// SPDX-License-Identifier: GPL-2.0-only
/**
 * Free device pages with refcount 1 (devpage_free_refcount_one).
 *
 * Before "mm: Free device private pages have zero refcount" (fixes
 * 27674ef6c73f; mm/memremap.c:free_zone_device_page()) free_zone_device_page() reset a freed
 * device page's count to 1 before handing it back to the driver, so "both
 * free and in use pages will have a non-zero refcount" and kernel code could
 * not use get_page_unless_zero() to skip free pages — which is exactly what
 * migrate_device_range() / migrate_device_pfns() rely on.
 *
 * Threads:
 *   munmap         the process unmaps its buffer: the last reference to the
 *                  device-private page goes, the page returns to the driver
 *   driver-evict   the driver evicts its pages: it takes the list of its
 *                  allocated pfns under its own lock, drops the lock, then
 *                  migrate_device_pfns() + migrate_device_pages/finalize
 * Expected with the switch on: the page freed between the list and
 * migrate_device_pfns() still has refcount 1, get_page_unless_zero()
 * succeeds on a free page: KASAN use-after-free in folio_try_get. Mainline:
 * the freed page has refcount 0 and is skipped.
 */
import type { KernelConfig } from '../src/kernel/config.js';
import { TestDev } from '../src/drivers/testdrv/testdrv.js';
import type { Scenario, ScenarioRun } from '../src/explore/engine.js';
import { vmMunmap } from '../src/kernel/mm/mmap.js';
import { __GFP_NOFAIL } from '../src/kernel/mm/page_alloc.js';
import { folioTrylock } from '../src/kernel/mm/folio.js';
import {
  MIGRATE_PFN_MIGRATE, migrateDeviceFinalize, migrateDevicePages, migrateDevicePfns, migratePfn, migratePfnToPage, mpfnHas,
} from '../src/kernel/mm/migrate_device.js';
import { ADDR, anonMapping, devicePrivatePfn, populate, smallMachine, withMmapRead } from './lib.js';

export const devpageFreeRefcountOne: Scenario = {
  name: 'devpage-free-refcount-one',
  description: 'munmap frees a device page while the driver evicts its page list with migrate_device_pfns (get_page_unless_zero on free pages)',
  seedRef: '"mm: free device private pages have zero refcount" (fixes 27674ef6c73f); mm/memremap.c:free_zone_device_page(), mm/migrate_device.c:migrate_device_range()',
  bugSwitch: 'devpage_free_refcount_one',
  expect: 'KASAN use-after-free in folio_try_get',
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const k = smallMachine(cfg);
    const s = k.sched;
    const { mm, vma } = anonMapping(k, 1);
    const dev = new TestDev(k, { privatePages: 16, coherentPages: 0, name: 'refone-dev' });
    populate(k, mm, ADDR, 0x11);
    withMmapRead(k, mm, () => dev.migrateToDevice(vma, ADDR, ADDR + 4096, 'private'));
    const dpfn = devicePrivatePfn(mm, ADDR);
    return {
      k,
      roots: [dev],
      watch: [dpfn],
      threads: [
        { name: 'munmap', *body() { return yield* vmMunmap(mm, ADDR, 4096); } },
        {
          name: 'driver-evict',
          *body() {
            // Under the driver's allocator lock: the pfns it has handed out.
            const pg = dev.priv.pgmap;
            const list: number[] = [];
            for (let i = 0; i < pg.nrPages; i++) if (dev.priv.used[i]) list.push(pg.firstPfn + i);
            if (s.exploring) yield s.point('driver: devmem lock dropped', list.length);
            const n = list.length;
            const src = new Float64Array(list);
            const dst = new Float64Array(n);
            yield* migrateDevicePfns(k, src, n);
            for (let i = 0; i < n; i++) {
              if (!mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) continue;
              const d = k.buddy.alloc(0, __GFP_NOFAIL, 'driver-evict');
              folioTrylock(k, d);
              k.contents.deviceCopy(d, migratePfnToPage(src[i]), 1); /* the device's copy engine */
              dst[i] = migratePfn(d);
            }
            yield* migrateDevicePages(k, src, dst, n);
            yield* migrateDeviceFinalize(k, src, dst, n);
          },
        },
      ],
    };
  },
};
