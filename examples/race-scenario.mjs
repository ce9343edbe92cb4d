// SPDX-License-Identifier: GPL-2.0-only
/**
 * An explorer scenario of your own (`hmmsim explore examples/race-scenario.mjs`):
 * two threads of one user process race on a buffer. Thread "migrate" asks
 * the example driver (examples/minimal-driver.mjs) to move the buffer to
 * device-private memory; thread "writer" stores into page 1 of it at the
 * same time. Whatever the interleaving, the store must not be lost and the
 * other pages must keep their data: the end check reads everything back
 * (faulting device pages back to RAM through ->migrate_to_ram()).
 *
 * The explorer snapshots the machine and restores it before each schedule:
 * everything the threads change must be reachable from `k` or `roots` (the
 * process table and the driver object here).
 */
import { System, Libc, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, O_RDWR } from 'hmmsim';
import { MyDev, registerDevice, MYDEV_MIGRATE } from './minimal-driver.mjs';

const PAGES = 4;
const PAGE = 4096;
const STORED = 0x1234;

/** @type {import('hmmsim/explore').Scenario} */
export default {
  name: 'my-migrate-vs-store',
  description: 'a user thread stores into a page while another migrates the buffer to device memory',
  seedRef: 'examples/race-scenario.mjs',
  bugSwitch: '-',
  expect: 'nothing: the store survives every interleaving',
  maxSteps: 24,
  setup(cfg) {
    // A small machine: 8 MiB of RAM, no hugetlb pool; page bytes kept (the end check reads them).
    const sys = new System({ ramBytes: 8 << 20, nrHugepages: 0, swapMiB: 0, ...cfg, checked: false });
    const dev = new MyDev(sys.kernel);
    if (dev.start() !== 0 || registerDevice(dev) !== 0) throw new Error('mydev did not start');
    const p = sys.spawn('racer');
    const lc = new Libc(p);
    const buf = lc.mmap(0, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (let i = 0; i < PAGES; i++) lc.store32(buf + i * PAGE, 100 + i);
    const fd = lc.open('/dev/mydev', O_RDWR);
    const arg = lc.stack(16);
    lc.writeU64(arg, BigInt(buf));
    lc.writeU64(arg + 8, BigInt(PAGES));
    return {
      k: sys.kernel,
      roots: [sys, dev],
      threads: [
        { name: 'migrate', *body() { return yield* p.sys.ioctl(fd, MYDEV_MIGRATE, arg); } },
        { name: 'writer', *body() { yield* p.sys.store32(buf + PAGE, STORED); } },
      ],
      check() {
        for (let i = 0; i < PAGES; i++) {
          const want = i === 1 ? STORED : 100 + i;
          const got = p.load32(buf + i * PAGE);
          if (got !== want) return `page ${i}: read ${got}, expected ${want} (lost ${i === 1 ? 'the racing store' : 'data'})`;
        }
        return null;
      },
    };
  },
};
