// SPDX-License-Identifier: GPL-2.0-only
/**
 * The zero pfn selected without MIGRATE_VMA_SELECT_SYSTEM
 * (zero_pfn_without_select_system).
 *
 * Versions 4 and 5 of "mm: add device coherent vma selection for memory
 * migration" dropped the SELECT_SYSTEM test in front of the zero-pfn case of
 * migrate_vma_collect_pmd(); review: "this
 * can also select the zero pfn when MIGRATE_VMA_SELECT_DEVICE_COHERENT is
 * specified. As far as I know that can never point to device memory so
 * migration of a zero pfn should be also be skipped in that case. We should
 * only migrate the zero pfn if MIGRATE_VMA_SELECT_SYSTEM is specified."
 *
 * The buffer is fully populated: page 0 in device-coherent memory, page 1
 * read-faulted (the shared zero page). Threads:
 *   reclaim    the driver moves its device-coherent pages back to system
 *              memory: migrate_vma_setup(SELECT_DEVICE_COHERENT), one system
 *              page per collected page, migrate_vma_pages/finalize. It asked
 *              for its own pages only, over a range without pte_none holes,
 *              so every collected entry must be one of its pages; it WARNs
 *              (as test_hmm's dmirror_devmem_fault_alloc_and_copy() does for
 *              a foreign page) when migrate_vma_setup hands it anything else
 *   cpu-read   the process reads both pages meanwhile
 * Expected with the switch on: WARN (the zero page was selected: an entry
 * without a page, counted in cpages). Mainline: the zero page is skipped.
 * The model's migration core copes with the extra entry (it has no
 * destination and loses MIGRATE), so the bug shows as the broken contract.
 */
import type { KernelConfig } from '../src/kernel/config.js';
import { TestDev } from '../src/drivers/testdrv/testdrv.js';
import type { Scenario, ScenarioRun } from '../src/explore/engine.js';
import { runSync } from '../src/kernel/sched/sched.js';
import { doUserAddrFault } from '../src/kernel/arch/fault.js';
import { folioTrylock } from '../src/kernel/mm/folio.js';
import { __GFP_NOFAIL } from '../src/kernel/mm/page_alloc.js';
import { isDeviceCoherentPage } from '../src/kernel/mm/memremap.js';
import {
  MIGRATE_PFN_MIGRATE, MIGRATE_VMA_SELECT_DEVICE_COHERENT, MigrateVma, migratePfn, migratePfnToPage, migrateVmaFinalize,
  migrateVmaPages, migrateVmaSetup, mpfnHas,
} from '../src/kernel/mm/migrate_device.js';
import { ADDR, anonMapping, cpuAccess, mappedPfn, populate, shadowCompare, smallMachine, withMmapRead } from './lib.js';
import { mmapReadLock } from '../src/kernel/mm/mmap_lock.js';

export const zeroPfnSelectSystem: Scenario = {
  name: 'zero-pfn-select-system',
  description: 'driver reclaim of device-coherent pages with SELECT_DEVICE_COHERENT over a range holding the zero page',
  seedRef: 'review of "mm: add device coherent vma selection for memory migration" v4/v5 (2022); mm/migrate_device.c:migrate_vma_collect_pmd()',
  bugSwitch: 'zero_pfn_without_select_system',
  expect: 'WARN: migrate_vma_setup selected a page the caller excluded',
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const k = smallMachine(cfg);
    const s = k.sched;
    const { mm, vma } = anonMapping(k, 2);
    const dev = new TestDev(k, { privatePages: 16, coherentPages: 16, name: 'zero-dev' });
    const shadow0 = k.contents.checksum(populate(k, mm, ADDR, 0x55));
    withMmapRead(k, mm, () => dev.migrateToDevice(vma, ADDR, ADDR + 4096, 'coherent'));
    runSync(k.sched, doUserAddrFault(mm, ADDR + 4096, false)); /* page 1: the zero page */
    const cpfn = mappedPfn(mm, ADDR);
    return {
      k,
      roots: [dev],
      watch: [cpfn],
      threads: [
        {
          name: 'reclaim',
          *body() {
            yield* mmapReadLock(mm);
            const mv = new MigrateVma({
              vma, start: ADDR, end: ADDR + 2 * 4096, src: new Float64Array(2), dst: new Float64Array(2),
              flags: MIGRATE_VMA_SELECT_DEVICE_COHERENT, pgmapOwner: dev.owner,
            });
            const r = yield* migrateVmaSetup(mv);
            if (r === 0) {
              const src = mv.src!;
              for (let i = 0; i < mv.npages; i++) {
                if (!mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) continue;
                const page = migratePfnToPage(src[i]);
                if (page < 0 || !isDeviceCoherentPage(k, page)) {
                  k.warnOnPage(true, page, `reclaim: WARN_ON(!is_device_coherent_page(spage)): migrate_vma_setup(SELECT_DEVICE_COHERENT) collected entry ${i} (0x${(ADDR + i * 4096).toString(16)}), which is not one of the driver's pages (cpages ${mv.cpages})`);
                  continue;
                }
                const d = k.buddy.alloc(0, __GFP_NOFAIL, 'reclaim');
                folioTrylock(k, d);
                k.contents.copy(d, page);
                mv.dst![i] = migratePfn(d);
              }
              yield* migrateVmaPages(mv);
              yield* migrateVmaFinalize(mv);
            }
            mm.mmapLock.readUnlock(s);
            return r;
          },
        },
        {
          name: 'cpu-read',
          *body() {
            yield* cpuAccess(mm, ADDR, false);
            return yield* cpuAccess(mm, ADDR + 4096, false);
          },
        },
      ],
      check: () => shadowCompare(k, mm, ADDR, shadow0, 'page 0') ?? (mappedPfn(mm, ADDR + 4096) === k.zeroPfn ? null : 'page 1 is no longer the zero page'),
    };
  },
};
