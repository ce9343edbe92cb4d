// SPDX-License-Identifier: GPL-2.0-only
/**
 * A bulk pgmap reference (pgmap_bulk_ref): memunmap_pages() finishing while
 * device pages are still in use.
 *
 * Before "mm/memremap.c: Take a pgmap reference on page allocation" (seed
 * F3:1639-1661) the pgmap reference was no longer tied to allocated pages:
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
import { TestDev } from '../src/drivers/testdrv/testdrv.js';
import type { Scenario, ScenarioRun } from '../src/explore/engine.js';
import { ADDR, anonMapping, cpuAccess, devicePrivatePfn, populate, shadowCompare, smallMachine, withMmapRead } from './lib.js';

export const pgmapBulkRef: Scenario = {
  name: 'pgmap-bulk-ref',
  description: 'device removal while a CPU fault holds a device page: memunmap_pages must wait for it',
  seedRef: 'seed F3 (003_2df76121baecf9ea.txt) lines 1639-1661; seed inventory section 3, bug 3',
  bugSwitch: 'pgmap_bulk_ref',
  expect: 'INVARIANT: memunmap_pages finished with device pages in use',
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const k = smallMachine(cfg);
    const { mm, vma } = anonMapping(k, 1);
    const dev = new TestDev(k, { privatePages: 16, coherentPages: 0, name: 'bulk-dev' });
    const sys = populate(k, mm, ADDR, 0x22);
    const shadow = k.contents.checksum(sys);
    withMmapRead(k, mm, () => dev.migrateToDevice(vma, ADDR, ADDR + 4096, 'private'));
    const dpfn = devicePrivatePfn(mm, ADDR);
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
  },
};
