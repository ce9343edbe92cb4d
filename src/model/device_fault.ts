// SPDX-License-Identifier: GPL-2.0-only
/**
 * Device fault latency by phase, under a profile: the dmirror device
 * (test_hmm) on one machine with a simulated clock.
 *
 *   device read fault   HMM_DMIRROR_READ of N pages: the device faults, the
 *                       driver runs hmm_range_fault() (the walk itself is
 *                       not charged) and mirrors the pages
 *   CPU fault, 4K       a CPU write to one page that lives in device-private
 *                       memory: do_user_addr_fault -> do_swap_page ->
 *                       migrate_to_ram: migrate_vma_setup, the copy back,
 *                       finalize
 *   CPU fault, THP      the same for a 2 MiB device-private THP (one fault
 *                       migrates the whole folio)
 */
import { System } from '../user/system.js';
import { Libc, MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, O_RDWR, ALIGN } from '../selftests/libc.js';
import { type HmmBuffer, hmm_dmirror_cmd, hmm_migrate_sys_to_dev, TWOMEG } from '../selftests/hmm_tests.js';
import { HMM_DMIRROR_READ } from '../drivers/test_hmm/uapi.js';
import { testHmmInit } from '../drivers/test_hmm/index.js';
import { SimClock } from '../kernel/cost/clock.js';
import type { HwProfile } from '../kernel/cost/profile.js';
import type { ConfigHook } from './move_pages.js';

export interface FaultRow {
  scenario: string;
  pages: number;
  ns: number;
  phases: Record<string, number>;
}

function measure(k: System['kernel'], profile: HwProfile, scenario: string, pages: number, body: () => void, onConfig?: ConfigHook): FaultRow {
  const clock = new SimClock(profile);
  k.clock = clock;
  const done = onConfig?.(k, clock, `${scenario} (${pages} page${pages > 1 ? 's' : ''})`);
  try {
    body();
  } finally {
    done?.();
    k.clock = null;
  }
  return { scenario, pages, ns: clock.now(), phases: clock.snapshot().acct };
}

export function runDeviceFault(profile: HwProfile, onConfig?: ConfigHook): FaultRow[] {
  const sys = new System({ ramBytes: 256 << 20, thp: 'madvise', swapMiB: 0, checked: false });
  const k = sys.kernel;
  testHmmInit(k);
  const p = sys.spawn('device-fault');
  const lc = new Libc(p);
  const fd = lc.open('/dev/hmm_dmirror0', O_RDWR, 0);
  if (fd < 0) throw new Error('cannot open /dev/hmm_dmirror0');
  const rows: FaultRow[] = [];
  const buf = (size: number, thp: boolean): HmmBuffer => {
    const raw = lc.mmap(0, size + TWOMEG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const ptr = ALIGN(raw, TWOMEG);
    if (thp) lc.madvise(ptr, size, MADV_HUGEPAGE);
    p.fill(ptr, size, 0x11);
    const mirror = lc.malloc(size);
    p.fill(mirror, size, 0); /* faulted in now, so the ioctl's copy_to_user does not fault inside the measurement */
    return { self: lc.malloc(48), ptr, mirror, size, fd, cpages: 0, faults: 0 };
  };
  for (const n of [1, 512]) {
    const b = buf(n * 4096, false);
    rows.push(measure(k, profile, 'device read fault', n, () => {
      const r = hmm_dmirror_cmd(lc, fd, HMM_DMIRROR_READ, b, n);
      if (r !== 0) throw new Error(`HMM_DMIRROR_READ: ${r}`);
    }, onConfig));
  }
  for (const thp of [false, true]) {
    const size = TWOMEG;
    const b = buf(size, thp);
    const r = hmm_migrate_sys_to_dev(lc, fd, b, size / 4096);
    if (r !== 0) throw new Error(`HMM_DMIRROR_MIGRATE_TO_DEV: ${r}`);
    rows.push(measure(k, profile, thp ? 'CPU fault on device THP' : 'CPU fault on device 4K page', thp ? 512 : 1, () => {
      p.store8(b.ptr, 0x22);
    }, onConfig));
    if (p.load8(b.ptr + 4096) !== 0x11 || p.load8(b.ptr) !== 0x22) throw new Error('device-fault: data lost in the round trip');
  }
  k.release();
  return rows;
}
