// SPDX-License-Identifier: GPL-2.0-only
/** NUMA nodes, move_pages(2) / migrate_pages(2) and the migrate_pages() batch path (mm/migrate.c). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { MADV_HUGEPAGE } from '../src/kernel/mm/madvise.js';
import { pmdAlignUp } from '../src/kernel/mm/pgtable.js';
import { MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, pageToNid, sysMigratePages, sysMovePages } from '../src/kernel/mm/migrate_numa.js';
import { EACCES, EFAULT, EINVAL, ENODEV, ENOENT, EPERM } from '../src/kernel/errno.js';
import { numaMachine, pfnOf } from './numa_helpers.js';

const PAGE = 4096;
const PMD = 2 << 20;

function machine(cfg = {}): ReturnType<typeof numaMachine> {
  return numaMachine('numa', cfg);
}

test('numa: the buddy allocator splits RAM into nodes; allocations start on node 0 and fall back', () => {
  const { sys } = machine();
  const k = sys.kernel;
  assert.equal(k.buddy.nrNodes, 2);
  assert.equal(pageToNid(k, k.buddy.start), 0);
  assert.equal(pageToNid(k, k.buddy.end - 1), 1);
  const a = k.buddy.alloc(0, 0);
  assert.equal(pageToNid(k, a), 0);
  const b = k.buddy.alloc(0, 0, 'alloc_pages', 1);
  assert.equal(pageToNid(k, b), 1);
  const h = k.buddy.alloc(9, 0, 'alloc_pages', 1);
  assert.equal(pageToNid(k, h), 1);
});

test('numa: move_pages moves pages to the target node, data intact, status = node', () => {
  const { sys, p } = machine();
  const k = sys.kernel;
  const a = p.mmap(0, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  for (let i = 0; i < 8; i++) p.fill(a + i * PAGE, PAGE, 0x10 + i);
  p.store8(a + 5, 0xee);
  const before = p.readBytes(a, 8 * PAGE);
  const pages = Array.from({ length: 8 }, (_, i) => a + i * PAGE);
  for (const x of pages) assert.equal(pageToNid(k, pfnOf(p, x)), 0);
  const status = new Int32Array(8);
  assert.equal(sysMovePages(k, p.mm!, pages, new Array(8).fill(1), status, MPOL_MF_MOVE), 0);
  assert.deepEqual([...status], new Array(8).fill(1));
  for (const x of pages) assert.equal(pageToNid(k, pfnOf(p, x)), 1);
  assert.deepEqual(p.readBytes(a, 8 * PAGE), before);
  assert.equal(k.vmstat.pgmigrate_success, 8);
  // Already there: status is the node, nothing migrates.
  assert.equal(sysMovePages(k, p.mm!, pages.slice(0, 2), [1, 1], status, MPOL_MF_MOVE), 0);
  assert.equal(status[0], 1);
  assert.equal(k.vmstat.pgmigrate_success, 8);
  // Query mode (nodes == NULL): do_pages_stat.
  const st = new Int32Array(2);
  assert.equal(sysMovePages(k, p.mm!, [a, a + PAGE], null, st, 0), 0);
  assert.deepEqual([...st], [1, 1]);
  // Writes still go to the moved page.
  p.store8(a, 0x77);
  assert.equal(p.load8(a), 0x77);
});

test('numa: move_pages errnos: -EINVAL, -EPERM, -ENODEV; status -EFAULT, -ENOENT, -EACCES', () => {
  const { sys, p } = machine();
  const k = sys.kernel;
  const a = p.mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  p.fill(a, PAGE, 1);
  p.load8(a + PAGE); /* read fault: the zero page */
  const status = new Int32Array(4).fill(99);
  assert.equal(sysMovePages(k, p.mm!, [a], [1], status, 0x80), -EINVAL);
  assert.equal(sysMovePages(k, p.mm!, [a], [1], status, MPOL_MF_MOVE_ALL, false), -EPERM);
  assert.equal(sysMovePages(k, p.mm!, [a], [7], status, MPOL_MF_MOVE), -ENODEV);
  assert.equal(pageToNid(k, pfnOf(p, a)), 0, 'nothing moved on -ENODEV');
  // a: moves; a+PAGE: zero page (-EFAULT); a+2*PAGE: never touched (-ENOENT); 0x1000: no VMA (-EFAULT).
  assert.equal(sysMovePages(k, p.mm!, [a, a + PAGE, a + 2 * PAGE, 0x1000], [1, 1, 1, 1], status, MPOL_MF_MOVE), 0);
  assert.deepEqual([...status], [1, -EFAULT, -ENOENT, -EFAULT]);
  // A page shared with a child after fork: -EACCES without MPOL_MF_MOVE_ALL.
  const b = p.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  p.fill(b, PAGE, 9);
  p.fork(() => {
    const s = new Int32Array(1);
    assert.equal(sysMovePages(k, p.mm!, [b], [1], s, MPOL_MF_MOVE), 0);
    assert.equal(s[0], -EACCES);
    assert.equal(sysMovePages(k, p.mm!, [b], [1], s, MPOL_MF_MOVE_ALL), 0);
    assert.equal(s[0], 1);
  });
  assert.equal(pageToNid(k, pfnOf(p, b)), 1);
  assert.equal(p.load8(b), 9);
});

test('numa: a THP moves as one folio (PMD migration entry), contents intact', () => {
  const { sys, p } = machine({ thp: 'always' });
  const k = sys.kernel;
  const raw = p.mmap(0, 2 * PMD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = pmdAlignUp(raw);
  p.madvise(a, PMD, MADV_HUGEPAGE);
  for (let i = 0; i < 512; i += 37) p.fill(a + i * PAGE, PAGE, i & 0xff);
  const before = p.readBytes(a, PMD);
  assert.equal(k.pages.folioNr(pfnOf(p, a)), 512);
  const s = new Int32Array(1);
  assert.equal(sysMovePages(k, p.mm!, [a], [1], s, MPOL_MF_MOVE), 0);
  assert.equal(s[0], 1);
  const pfn = pfnOf(p, a);
  assert.equal(pageToNid(k, pfn), 1);
  assert.equal(k.pages.folioNr(pfn), 512, 'still a THP');
  assert.equal(k.vmstat.thp_migration_success, 1);
  assert.deepEqual(p.readBytes(a, PMD), before);
});

test('numa: migrate_pages(2) moves every page of a node; -EINVAL on bad node sets', () => {
  const { sys, p } = machine();
  const k = sys.kernel;
  const a = p.mmap(0, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  for (let i = 0; i < 16; i++) p.fill(a + i * PAGE, PAGE, i + 1);
  assert.equal(sysMigratePages(k, p.mm!, [0], [1, 0]), -EINVAL);
  assert.equal(sysMigratePages(k, p.mm!, [0], [5]), -EINVAL);
  assert.equal(sysMigratePages(k, p.mm!, [0], [1]), 0);
  for (let i = 0; i < 16; i++) {
    assert.equal(pageToNid(k, pfnOf(p, a + i * PAGE)), 1);
    assert.equal(p.load8(a + i * PAGE + 100), i + 1);
  }
});

test('numa: config numaNodes is validated', async () => {
  const { applyConfigSetting, defaultConfig } = await import('../src/kernel/config.js');
  const c = defaultConfig();
  assert.equal(applyConfigSetting(c, 'numaNodes=2'), null);
  assert.equal(c.numaNodes, 2);
  assert.match(applyConfigSetting(c, 'numaNodes=0') ?? '', /numaNodes/);
  void ENOENT;
});

test('numa: set_mempolicy MPOL_PREFERRED / MPOL_BIND place new faults; MPOL_DEFAULT goes back; bad input -EINVAL', async () => {
  const { sysSetMempolicy, MPOL_BIND, MPOL_DEFAULT, MPOL_PREFERRED } = await import('../src/kernel/mm/mempolicy.js');
  const { sys, p } = machine();
  const k = sys.kernel;
  k.current = { pid: p.pid, mm: p.mm, comm: 'numa' };
  assert.equal(sysSetMempolicy(k, 7, [1]), -EINVAL);
  assert.equal(sysSetMempolicy(k, MPOL_BIND, []), -EINVAL);
  assert.equal(sysSetMempolicy(k, MPOL_BIND, [2]), -EINVAL);
  assert.equal(sysSetMempolicy(k, MPOL_DEFAULT, [1]), -EINVAL);
  const a = p.mmap(0, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  assert.equal(sysSetMempolicy(k, MPOL_PREFERRED, [1]), 0);
  p.fill(a, PAGE, 1);
  assert.equal(pageToNid(k, pfnOf(p, a)), 1);
  assert.equal(sysSetMempolicy(k, MPOL_BIND, [1]), 0);
  p.fill(a + PAGE, PAGE, 2);
  assert.equal(pageToNid(k, pfnOf(p, a + PAGE)), 1);
  assert.equal(sysSetMempolicy(k, MPOL_DEFAULT, []), 0);
  p.fill(a + 2 * PAGE, PAGE, 3);
  assert.equal(pageToNid(k, pfnOf(p, a + 2 * PAGE)), 0);
});
