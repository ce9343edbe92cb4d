// SPDX-License-Identifier: GPL-2.0-only
/**
 * A bulk pgmap reference (pgmap_bulk_ref): memunmap_pages() finishing while
 * device pages are still in use.
 *
 * Before "mm/memremap.c: Take a pgmap reference on page allocation" (0dc45ca1ce18;
 * mm/memremap.c:zone_device_page_init()) the pgmap reference was no longer tied to allocated pages:
 * "memunmap_pages() can complete even though pages are still mapped by the
 * kernel which can lead to kernel crashes, particularly if a driver frees
 * the pagemap."
 *
 * Threads:
 *   cpu-fault        a user read of the device-private page; do_swap_page()
 *                    (mainline, with the CVE-2022-3523 fix) holds the page
 *                    locked and referenced across migrate_to_ram()
 *   device-removal   testdrv release(): eviction skips the locked page,
 *                    then memunmap_pages()
 * Expected with the switch on: memunmap_pages() returns with the page still
 * allocated (INVARIANT: pgmap lifetime), and the fault then touches the
 * freed pgmap (KASAN). Mainline: memunmap_pages() waits for the fault's
 * migration to free the page.
 */
import type { KernelConfig } from '../src/kernel/config.js';
import type { Scenario, ScenarioRun } from '../src/explore/engine.js';
import { faultVsRemoval } from './lib.js';

export const pgmapBulkRef: Scenario = {
  name: 'pgmap-bulk-ref',
  description: 'device removal while a CPU fault holds a device page: memunmap_pages must wait for it',
  seedRef: '0dc45ca1ce18 "mm/memremap.c: take a pgmap reference on page allocation"; mm/memremap.c:zone_device_page_init(), memunmap_pages()',
  bugSwitch: 'pgmap_bulk_ref',
  expect: 'INVARIANT: memunmap_pages finished with device pages in use',
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    return faultVsRemoval(cfg, 'bulk-dev', 0x22);
  },
};
