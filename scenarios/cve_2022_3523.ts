// SPDX-License-Identifier: GPL-2.0-only
/**
 * CVE-2022-3523: a CPU fault on a device-private page races with device
 * removal (driver eviction with migrate_device_range() + memunmap_pages()).
 *
 * Before 16ce101db85d ("mm/memory.c: fix race when faulting a device
 * private page", seed F3:1007-1021, 570-606) do_swap_page() dropped the PTL
 * and called page->pgmap->ops->migrate_to_ram() holding no page reference:
 * the eviction could migrate the page away, free it (and the pgmap) in
 * between, and the fault then dereferenced freed memory.
 *
 * Threads:
 *   cpu-fault       a user read of the device-private page (do_user_addr_fault)
 *   device-removal  testdrv.release(): evict both pagemaps, memunmap_pages()
 * Switch: fault_no_page_ref. Expected: KASAN use-after-free with the switch
 * on; nothing with it off (the fault holds a reference and the page lock,
 * eviction skips the page, memunmap_pages() waits for the fault's
 * migrate_to_ram() to free it).
 */
import { Kernel } from '../src/kernel/kernel.js';
import type { KernelConfig } from '../src/kernel/config.js';
import { runSync } from '../src/kernel/sched/sched.js';
import { Vma, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE } from '../src/kernel/mm/mm_types.js';
import { doUserAddrFault, translate } from '../src/kernel/arch/fault.js';
import { TestDev } from '../src/drivers/testdrv/testdrv.js';
import type { Scenario, ScenarioRun } from '../src/explore/engine.js';

const ADDR = 0x40000000;
const PATTERN = 0x5a;

export const cve20223523: Scenario = {
  name: 'cve-2022-3523',
  description: 'device-private CPU fault racing with device removal (migrate_device_range eviction + memunmap_pages)',
  seedRef: 'seed F3:1007-1021, 493-517, 570-606; seed inventory section 3, bug 1',
  bugSwitch: 'fault_no_page_ref',
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const k = new Kernel({ ramBytes: 4 << 20, nrHugepages: 0, ...cfg, checked: false });
    const mm = k.newMm();
    const vma = new Vma(mm, ADDR, ADDR + 4096, VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE, ADDR / 4096);
    mm.insertVma(vma);
    const dev = new TestDev(k, { privatePages: 512, coherentPages: 0, name: 'cve-dev' });
    // Populate the page with a pattern, then move it to device-private memory.
    runSync(k.sched, doUserAddrFault(mm, ADDR, true));
    k.contents.fill(translate(mm, ADDR, true), 0, 4096, PATTERN);
    mm.mmapLock.tryReadFast(k.sched);
    runSync(k.sched, dev.migrateToDevice(vma, ADDR, ADDR + 4096, 'private'));
    mm.mmapLock.readUnlock(k.sched);
    return {
      k,
      threads: [
        {
          name: 'cpu-fault',
          *body() {
            const r = yield* doUserAddrFault(mm, ADDR, false);
            return r;
          },
        },
        {
          name: 'device-removal',
          *body() {
            yield* dev.release();
          },
        },
      ],
      check() {
        const pfn = translate(mm, ADDR, false);
        if (pfn < 0) return 'the page is not mapped after the fault and the removal';
        const b = new Uint8Array(4096);
        k.contents.read(pfn, 0, b, 0, 4096);
        for (let i = 0; i < 4096; i++) if (b[i] !== PATTERN) return `data lost: byte ${i} is 0x${b[i].toString(16)}, expected 0x${PATTERN.toString(16)}`;
        return null;
      },
    };
  },
};
