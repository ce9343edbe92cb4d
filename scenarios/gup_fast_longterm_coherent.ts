// SPDX-License-Identifier: GPL-2.0-only
/**
 * GUP-fast long-term pinning device-coherent pages
 * (gup_fast_longterm_coherent).
 *
 * Review of "mm: add zone device coherent type memory support" v6 (2022):
 * check_and_migrate_movable_pages() "would still get
 * called for gup_fast but unless I've missed something I don't think it
 * does. That means gup_fast could still pin movable and coherent pages" —
 * "We really should have the same pinning rules for GUP vs. GUP-fast."
 * A FOLL_LONGTERM pin must not stay in device-coherent memory: the device
 * could never get its memory back ("mm/gup: migrate device coherent pages
 * when pinning instead of failing"; mainline mm/gup.c:try_grab_folio_fast()
 * refuses a FOLL_LONGTERM pin of a !folio_is_longterm_pinnable() folio).
 *
 * Threads:
 *   rdma-pin         pin_user_pages_fast(FOLL_LONGTERM | FOLL_WRITE) on the
 *                    buffer, as an RDMA memory registration does; the pin
 *                    is held for good (the registration outlives the run)
 *   device-removal   testdrv release(): evict, memunmap_pages()
 * Expected with the switch on: GUP-fast pins the page in device memory, the
 * eviction cannot move a pinned page and memunmap_pages() waits forever:
 * HANG. Mainline: GUP-fast refuses, the slow path migrates the page to
 * system memory and pins that; the end check compares the data.
 */
import type { KernelConfig } from '../src/kernel/config.js';
import { TestDev } from '../src/drivers/testdrv/testdrv.js';
import type { Scenario, ScenarioRun } from '../src/explore/engine.js';
import { FOLL_LONGTERM, FOLL_WRITE, pinUserPagesFast } from '../src/kernel/mm/gup.js';
import { ADDR, anonMapping, mappedPfn, populate, shadowCompare, smallMachine, withMmapRead } from './lib.js';

export const gupFastLongtermCoherent: Scenario = {
  name: 'gup-fast-longterm-coherent',
  description: 'a long-term GUP-fast pin of a device-coherent page racing with device removal',
  seedRef: 'review of "mm: add zone device coherent type memory support" v6 and "mm/gup: migrate device coherent pages when pinning instead of failing" (2022); mm/gup.c:try_grab_folio_fast(), check_and_migrate_movable_pages()',
  bugSwitch: 'gup_fast_longterm_coherent',
  expect: 'HANG in memunmap_pages',
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const k = smallMachine(cfg);
    const { mm, vma } = anonMapping(k, 1);
    const dev = new TestDev(k, { privatePages: 16, coherentPages: 16, name: 'rdma-dev' });
    const shadow = k.contents.checksum(populate(k, mm, ADDR, 0x66));
    withMmapRead(k, mm, () => dev.migrateToDevice(vma, ADDR, ADDR + 4096, 'coherent'));
    const cpfn = mappedPfn(mm, ADDR);
    const pinned = { pages: new Float64Array(1) };
    return {
      k,
      roots: [dev, pinned],
      watch: [cpfn],
      threads: [
        { name: 'rdma-pin', *body() { return yield* pinUserPagesFast(mm, ADDR, 1, FOLL_LONGTERM | FOLL_WRITE, pinned.pages); } },
        { name: 'device-removal', *body() { yield* dev.release(); } },
      ],
      check: () => {
        const d = shadowCompare(k, mm, ADDR, shadow, 'the registered buffer');
        if (d !== null) return d;
        return pinned.pages[0] === mappedPfn(mm, ADDR) ? null : `the long-term pin (pfn 0x${pinned.pages[0].toString(16)}) is not the page mapped at 0x${ADDR.toString(16)}`;
      },
    };
  },
};
