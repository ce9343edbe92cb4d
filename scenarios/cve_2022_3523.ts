// SPDX-License-Identifier: GPL-2.0-only
/**
 * CVE-2022-3523: a CPU fault on a device-private page races with (a) device
 * removal (driver eviction with migrate_device_range() + memunmap_pages())
 * and (b) a driver migration of the same page back to system memory
 * (migrate_vma_setup/pages/finalize with SELECT_DEVICE_PRIVATE).
 *
 * Before 16ce101db85d ("mm/memory.c: fix race when faulting a device
 * private page"; mm/memory.c:do_swap_page()) do_swap_page()
 * dropped the PTL and called page->pgmap->ops->migrate_to_ram() holding no
 * page reference: "a concurrent migration of the device private page can
 * free the page and possibly the underlying pgmap". The fault then
 * dereferences freed memory.
 *
 * Threads:
 *   cpu-fault        a user read of the device-private page (do_user_addr_fault)
 *   device-removal   testdrv release(): evict the pagemap, memunmap_pages()
 *   driver-migrate   (second scenario) the driver migrates the page to RAM,
 *                    holding mmap_lock for read as migrate_vma_* requires
 * Switch: fault_no_page_ref. Expected: KASAN use-after-free with the switch
 * on; nothing with it off (the fault holds a reference and the page lock:
 * eviction and migration skip the locked page, memunmap_pages() waits for
 * the fault's migrate_to_ram() to free it; a migration that got there first
 * leaves a migration entry the fault waits on). The end check compares the
 * data with its shadow copy.
 */
import type { KernelConfig } from '../src/kernel/config.js';
import type { Scenario, ScenarioRun } from '../src/explore/engine.js';
import { ADDR, cpuAccess, faultVsRemoval, setupDevicePage, shadowCompare } from './lib.js';
import { mmapReadLock } from '../src/kernel/mm/mmap_lock.js';

const PATTERN = 0x5a;

export const cve20223523: Scenario = {
  name: 'cve-2022-3523',
  description: 'device-private CPU fault racing with device removal (migrate_device_range eviction + memunmap_pages)',
  seedRef: '16ce101db85d "mm/memory.c: fix race when faulting a device private page" (CVE-2022-3523); mm/memory.c:do_swap_page()',
  bugSwitch: 'fault_no_page_ref',
  expect: 'KASAN use-after-free in do_swap_page',
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    return faultVsRemoval(cfg, 'cve-dev', PATTERN);
  },
};

export const cve20223523Migrate: Scenario = {
  name: 'cve-2022-3523-migrate',
  description: 'device-private CPU fault racing with a driver migration of the same page to system memory (migrate_vma_*)',
  seedRef: '16ce101db85d "mm/memory.c: fix race when faulting a device private page" (CVE-2022-3523); mm/memory.c:do_swap_page()',
  bugSwitch: 'fault_no_page_ref',
  expect: 'KASAN use-after-free in do_swap_page',
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const { k, mm, vma, dev, shadow, dpfn } = setupDevicePage(cfg, 'cve-dev', PATTERN);
    const s = k.sched;
    return {
      k,
      roots: [dev],
      watch: [dpfn],
      threads: [
        { name: 'cpu-fault', *body() { return yield* cpuAccess(mm, ADDR, false); } },
        {
          name: 'driver-migrate',
          *body() {
            yield* mmapReadLock(mm);
            const n = yield* dev.migrateToSystem(vma, ADDR, ADDR + 4096);
            mm.mmapLock.readUnlock(s);
            return n;
          },
        },
      ],
      check: () => shadowCompare(k, mm, ADDR, shadow, 'the page migrated back from device memory'),
    };
  },
};
