// SPDX-License-Identifier: GPL-2.0-only
/**
 * Driver release without migrate_device_range() eviction
 * (release_without_eviction): the teardown hang.
 *
 * Before "nouveau/dmem: Evict device private memory during release" (and "mm/migrate_device.c: add
 * migrate_device_range()", the series "Fix several device private page
 * reference counting issues", 2022) a driver unbinding with device-private pages still mapped by
 * processes went straight to memunmap_pages(), which "will wait in an
 * uninterruptible state until all device pages have been freed which may
 * never happen".
 *
 * Two pages of a process live in device-private memory. Threads:
 *   cpu-read         the process reads the first page (migrate_to_ram
 *                    brings it back); it never touches the second
 *   device-removal   testdrv release(): [evict,] memunmap_pages()
 * Expected with the switch on: HANG, memunmap_pages() waits for the second
 * page, which nothing will ever free. Mainline: eviction migrates both pages
 * back; the end check compares both with their shadow copies.
 */
import type { KernelConfig } from '../src/kernel/config.js';
import { TestDev } from '../src/drivers/testdrv/testdrv.js';
import type { Scenario, ScenarioRun } from '../src/explore/engine.js';
import { ADDR, anonMapping, cpuAccess, devicePrivatePfn, populate, shadowCompare, smallMachine, withMmapRead } from './lib.js';

export const releaseWithoutEviction: Scenario = {
  name: 'release-without-eviction',
  description: 'device removal with device-private pages still mapped by a process (teardown hang without eviction)',
  seedRef: '"nouveau/dmem: evict device private memory during release" and "mm/migrate_device.c: add migrate_device_range()" (2022); mm/memremap.c:memunmap_pages()',
  bugSwitch: 'release_without_eviction',
  expect: 'HANG in memunmap_pages',
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const k = smallMachine(cfg);
    const { mm, vma } = anonMapping(k, 2);
    const dev = new TestDev(k, { privatePages: 16, coherentPages: 0, name: 'release-dev' });
    const shadow = [0, 1].map((i) => k.contents.checksum(populate(k, mm, ADDR + i * 4096, 0x30 + i)));
    withMmapRead(k, mm, () => dev.migrateToDevice(vma, ADDR, ADDR + 2 * 4096, 'private'));
    return {
      k,
      roots: [dev],
      watch: [devicePrivatePfn(mm, ADDR), devicePrivatePfn(mm, ADDR + 4096)],
      threads: [
        { name: 'cpu-read', *body() { return yield* cpuAccess(mm, ADDR, false); } },
        { name: 'device-removal', *body() { yield* dev.release(); } },
      ],
      check: () => shadowCompare(k, mm, ADDR, shadow[0], 'page 0') ?? shadowCompare(k, mm, ADDR + 4096, shadow[1], 'page 1'),
    };
  },
};
