// SPDX-License-Identifier: GPL-2.0-only
/** mbind(2) and allocation under a memory policy (mm/mempolicy.c: do_mbind, get_vma_policy, vma_alloc_folio). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { MADV_HUGEPAGE } from '../src/kernel/mm/madvise.js';
import { pageToNid } from '../src/kernel/mm/migrate_numa.js';
import {
  MPOL_BIND, MPOL_DEFAULT, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_PREFERRED, MPOL_PREFERRED_MANY, MPOL_F_RELATIVE_NODES, MPOL_F_STATIC_NODES,
  MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT, sysSetMempolicy, type MbindStats,
} from '../src/kernel/mm/mempolicy.js';
import { processMbind } from '../src/user/mempolicy.js';
import { EFAULT, EINVAL, EIO, EPERM } from '../src/kernel/errno.js';
import type { Process } from '../src/user/process.js';
import { numaMachine, pfnOf } from './numa_helpers.js';
import { pmdAlignUp } from '../src/kernel/mm/pgtable.js';

const PAGE = 4096;
const PMD = 2 << 20;

function machine(cfg = {}): ReturnType<typeof numaMachine> {
  return numaMachine('mbind', cfg);
}

function anon(p: Process, pages: number): number {
  return p.mmap(0, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
}

test('mbind: MPOL_BIND places the faults of the range on its node, splits the VMA, leaves the rest alone', () => {
  const { sys, p } = machine();
  const k = sys.kernel;
  const a = anon(p, 8);
  const before = p.mm!.vmas.length;
  assert.equal(p.mbind(a + 2 * PAGE, 3 * PAGE, MPOL_BIND, [1]), 0);
  assert.equal(p.mm!.vmas.length, before + 2, 'split at both ends');
  for (let i = 0; i < 8; i++) p.fill(a + i * PAGE, PAGE, i + 1);
  const nodes = Array.from({ length: 8 }, (_, i) => pageToNid(k, pfnOf(p, a + i * PAGE)));
  assert.deepEqual(nodes, [0, 0, 1, 1, 1, 0, 0, 0]);
  for (let i = 0; i < 8; i++) assert.equal(p.load8(a + i * PAGE + 5), i + 1);
  assert.equal(p.mm!.vmaLookup(a + 2 * PAGE)!.policy!.mode, MPOL_BIND);
  assert.equal(p.mm!.vmaLookup(a)!.policy, null);
  // MPOL_DEFAULT removes it: new faults go to the local node again.
  assert.equal(p.mbind(a, 8 * PAGE, MPOL_DEFAULT, []), 0);
  assert.equal(p.mm!.vmaLookup(a + 2 * PAGE)!.policy, null);
});

test('mbind: MPOL_INTERLEAVE puts page i of the mapping on node (vm_pgoff + i) % 2; MPOL_PREFERRED and MPOL_LOCAL', () => {
  const { sys, p } = machine();
  const k = sys.kernel;
  const a = anon(p, 8);
  assert.equal(p.mbind(a, 8 * PAGE, MPOL_INTERLEAVE, [0, 1]), 0);
  const pgoff = p.mm!.vmaLookup(a)!.pgoff;
  for (let i = 0; i < 8; i++) p.store8(a + i * PAGE, 1);
  for (let i = 0; i < 8; i++) assert.equal(pageToNid(k, pfnOf(p, a + i * PAGE)), (pgoff + i) % 2, `page ${i}`);
  const b = anon(p, 2);
  assert.equal(p.mbind(b, 2 * PAGE, MPOL_PREFERRED, [1, 0]), 0);
  assert.deepEqual(p.mm!.vmaLookup(b)!.policy!.nodes, [0], 'first_node() of the mask');
  const c = anon(p, 1);
  assert.equal(p.mbind(c, PAGE, MPOL_PREFERRED, [1]), 0);
  p.store8(c, 1);
  assert.equal(pageToNid(k, pfnOf(p, c)), 1);
  // MPOL_PREFERRED with an empty mask is MPOL_LOCAL.
  assert.equal(p.mbind(c, PAGE, MPOL_PREFERRED, []), 0);
  assert.equal(p.mm!.vmaLookup(c)!.policy!.mode, MPOL_LOCAL);
});

test('mbind: the VMA policy wins over the task policy; set_mempolicy(MPOL_INTERLEAVE) interleaves faults by offset too', () => {
  const { sys, p } = machine();
  const k = sys.kernel;
  k.current = { pid: p.pid, mm: p.mm, comm: 'mbind' };
  assert.equal(sysSetMempolicy(k, MPOL_BIND, [1]), 0);
  const a = anon(p, 2);
  assert.equal(p.mbind(a, PAGE, MPOL_BIND, [0]), 0);
  p.store8(a, 1);
  p.store8(a + PAGE, 1);
  assert.equal(pageToNid(k, pfnOf(p, a)), 0, 'VMA policy');
  assert.equal(pageToNid(k, pfnOf(p, a + PAGE)), 1, 'task policy');
  k.current = { pid: p.pid, mm: p.mm, comm: 'mbind' };
  assert.equal(sysSetMempolicy(k, MPOL_INTERLEAVE, [0, 1]), 0);
  const b = anon(p, 4);
  const pgoff = p.mm!.vmaLookup(b)!.pgoff;
  for (let i = 0; i < 4; i++) p.store8(b + i * PAGE, 1);
  for (let i = 0; i < 4; i++) assert.equal(pageToNid(k, pfnOf(p, b + i * PAGE)), (pgoff + i) % 2);
  k.current = { pid: p.pid, mm: p.mm, comm: 'mbind' };
  assert.equal(sysSetMempolicy(k, MPOL_DEFAULT, []), 0);
});

test('mbind: MPOL_MF_MOVE migrates the misplaced pages of the range (data intact), counts in stats', () => {
  const { sys, p } = machine();
  const k = sys.kernel;
  const a = anon(p, 16);
  for (let i = 0; i < 16; i++) p.fill(a + i * PAGE, PAGE, (i * 11 + 3) & 0xff);
  for (let i = 0; i < 16; i++) assert.equal(pageToNid(k, pfnOf(p, a + i * PAGE)), 0);
  const st: MbindStats = { queued: 0, migrated: 0, failed: 0 };
  assert.equal(processMbind(p, a, 16 * PAGE, MPOL_BIND, [1], MPOL_MF_MOVE | MPOL_MF_STRICT, true, st), 0);
  assert.deepEqual(st, { queued: 16, migrated: 16, failed: 0 });
  for (let i = 0; i < 16; i++) {
    assert.equal(pageToNid(k, pfnOf(p, a + i * PAGE)), 1);
    assert.equal(p.load8(a + i * PAGE + 100), (i * 11 + 3) & 0xff);
  }
  // Interleave with MOVE: each page to its interleave node; pages already on a node of the set stay.
  const st2: MbindStats = { queued: 0, migrated: 0, failed: 0 };
  assert.equal(processMbind(p, a, 16 * PAGE, MPOL_INTERLEAVE, [0, 1], MPOL_MF_MOVE, true, st2), 0);
  assert.equal(st2.queued, 0, 'every page is on a node of {0,1}: none misplaced');
  assert.equal(processMbind(p, a, 16 * PAGE, MPOL_BIND, [0], MPOL_MF_MOVE, true, st2), 0);
  assert.equal(st2.migrated, 16);
  // MPOL_PREFERRED keeps first_node() as its policy, but the pages are checked against the caller's mask.
  assert.equal(processMbind(p, a, 16 * PAGE, MPOL_PREFERRED, [1, 0], MPOL_MF_MOVE, true, st2), 0);
  assert.equal(st2.queued, 0, 'on node 0, which is in the mask {0,1}');
  assert.equal(processMbind(p, a, 16 * PAGE, MPOL_PREFERRED, [1], MPOL_MF_MOVE, true, st2), 0);
  assert.equal(st2.migrated, 16);
  assert.equal(pageToNid(k, pfnOf(p, a)), 1);
  for (let i = 0; i < 16; i++) assert.equal(p.load8(a + i * PAGE + 100), (i * 11 + 3) & 0xff);
});

test('mbind: MPOL_MF_STRICT alone on misplaced pages -> -EIO, the policy is set all the same', () => {
  const { sys, p } = machine();
  const a = anon(p, 4);
  p.fill(a, 4 * PAGE, 7);
  assert.equal(p.mbind(a, 4 * PAGE, MPOL_BIND, [1], MPOL_MF_STRICT), -EIO);
  assert.equal(p.mm!.vmaLookup(a)!.policy!.mode, MPOL_BIND, 'mbind_range() ran before the check');
  assert.equal(pageToNid(sys.kernel, pfnOf(p, a)), 0, 'nothing moved');
  // Already in place: STRICT is satisfied.
  assert.equal(p.mbind(a, 4 * PAGE, MPOL_BIND, [0, 1], MPOL_MF_STRICT), 0);
  // MPOL_DEFAULT clears STRICT (do_mbind).
  assert.equal(p.mbind(a, 4 * PAGE, MPOL_DEFAULT, [], MPOL_MF_STRICT), 0);
});

test('mbind: a page shared after fork moves only with MPOL_MF_MOVE_ALL, which needs CAP_SYS_NICE', () => {
  const { sys, p } = machine();
  const k = sys.kernel;
  const b = anon(p, 1);
  p.fill(b, PAGE, 9);
  p.fork((child) => {
    const st: MbindStats = { queued: 0, migrated: 0, failed: 0 };
    assert.equal(processMbind(child, b, PAGE, MPOL_BIND, [1], MPOL_MF_MOVE, true, st), 0);
    assert.equal(st.queued, 0, 'shared: skipped, not failed (migrate_folio_add)');
    assert.equal(processMbind(child, b, PAGE, MPOL_BIND, [1], MPOL_MF_MOVE_ALL, false), -EPERM);
    assert.equal(processMbind(child, b, PAGE, MPOL_BIND, [1], MPOL_MF_MOVE_ALL, true, st), 0);
    assert.equal(st.migrated, 1);
    // mbind in the child set the child's VMA policy (its own copy of the VMA).
    assert.equal(child.mm!.vmaLookup(b)!.policy!.mode, MPOL_BIND);
  });
  assert.equal(pageToNid(k, pfnOf(p, b)), 1, 'the parent maps the moved page too');
  assert.equal(p.load8(b), 9);
  assert.equal(p.mm!.vmaLookup(b)!.policy, null, "the child's mbind does not touch the parent's VMA");
});

test('mbind: fork copies the VMA policy (vma_dup_policy): the child faults on the bound node', () => {
  const { sys, p } = machine();
  const k = sys.kernel;
  const a = anon(p, 2);
  assert.equal(p.mbind(a, 2 * PAGE, MPOL_BIND, [1]), 0);
  p.fork((child) => {
    assert.equal(child.mm!.vmaLookup(a)!.policy!.mode, MPOL_BIND);
    child.store8(a, 3);
    assert.equal(pageToNid(k, pfnOf(child, a)), 1);
  });
});

test('mbind: a THP fault under MPOL_BIND lands on the node; MPOL_MF_MOVE moves the THP as one folio', () => {
  const { sys, p } = machine({ thp: 'always' });
  const k = sys.kernel;
  const raw = p.mmap(0, 3 * PMD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = pmdAlignUp(raw);
  p.madvise(a, 2 * PMD, MADV_HUGEPAGE);
  assert.equal(p.mbind(a, PMD, MPOL_BIND, [1]), 0);
  p.fill(a, PAGE, 0x5a);
  p.fill(a + PMD, PAGE, 0x6b);
  const f1 = pfnOf(p, a);
  assert.equal(pageToNid(k, f1), 1);
  assert.equal(k.pages.folioNr(k.pages.folioPfn(f1)), 512);
  const f2 = pfnOf(p, a + PMD);
  assert.equal(pageToNid(k, f2), 0);
  const st: MbindStats = { queued: 0, migrated: 0, failed: 0 };
  const thpBefore = k.vmstat.thp_migration_success;
  assert.equal(processMbind(p, a + PMD, PMD, MPOL_BIND, [1], MPOL_MF_MOVE, true, st), 0);
  assert.deepEqual(st, { queued: 1, migrated: 1, failed: 0 });
  assert.equal(k.vmstat.thp_migration_success, thpBefore + 1);
  assert.equal(pageToNid(k, pfnOf(p, a + PMD)), 1);
  assert.equal(p.load8(a + PMD + 10), 0x6b);
});

test('mbind: MPOL_BIND on an exhausted node does not fall back: the fault is OOM (SIGBUS/kill), MPOL_PREFERRED falls back', () => {
  const { sys, p } = machine({ ramBytes: 32 << 20 });
  const k = sys.kernel;
  // Fill node 1 with kernel allocations.
  let n = 0;
  for (;;) {
    const pfn = k.buddy.alloc(0, 0, 'alloc_pages', 1);
    if (pfn < 0 || pageToNid(k, pfn) !== 1) {
      if (pfn >= 0) k.buddy.free(pfn, 0);
      break;
    }
    n++;
  }
  assert.ok(n > 0);
  const a = anon(p, 2);
  assert.equal(p.mbind(a + PAGE, PAGE, MPOL_PREFERRED, [1]), 0);
  p.store8(a + PAGE, 1);
  assert.equal(pageToNid(k, pfnOf(p, a + PAGE)), 0, 'preferred falls back');
  assert.equal(p.mbind(a, PAGE, MPOL_BIND, [1]), 0);
  assert.equal(k.buddy.allocPolicy, null);
  let survived = false;
  const pid = p.fork((child) => {
    child.store8(a, 1); /* no page on node 1: OOM for this fault, the child dies */
    survived = true;
  });
  assert.ok(pid > 0);
  assert.equal(survived, false, 'MPOL_BIND never placed the page on node 0');
  assert.equal(k.buddy.allocPolicy, null, 'the per-allocation policy never stays set');
});

test('mbind: errnos of kernel_mbind / do_mbind', () => {
  const { p } = machine();
  const a = anon(p, 4);
  assert.equal(p.mbind(a, 4 * PAGE, MPOL_BIND, [1], 1 << 3), -EINVAL, 'flags outside MPOL_MF_VALID');
  assert.equal(p.mbind(a + 1, PAGE, MPOL_BIND, [1]), -EINVAL, 'unaligned start');
  assert.equal(p.mbind(a, PAGE, 7, [1]), -EINVAL, 'mode >= MPOL_MAX');
  assert.equal(p.mbind(a, PAGE, MPOL_BIND | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES, [1]), -EINVAL);
  assert.equal(p.mbind(a, PAGE, MPOL_DEFAULT, [1]), -EINVAL, 'MPOL_DEFAULT with nodes');
  assert.equal(p.mbind(a, PAGE, MPOL_BIND, []), -EINVAL, 'empty mask');
  assert.equal(p.mbind(a, PAGE, MPOL_BIND, [5]), -EINVAL, 'no node with memory left in the mask');
  assert.equal(p.mbind(a, PAGE, MPOL_LOCAL, [0]), -EINVAL, 'MPOL_LOCAL takes no nodes');
  assert.equal(p.mbind(a, PAGE, MPOL_PREFERRED_MANY, [1]), -EINVAL, 'not modelled: refused, not ignored');
  assert.equal(p.mbind(a, 0, MPOL_BIND, [1]), 0, 'len 0');
  assert.equal(p.mbind(a, 8 * PAGE, MPOL_BIND, [1]), -EFAULT, 'range runs past the VMA into a hole');
  assert.equal(p.mbind(0x1000, PAGE, MPOL_BIND, [1]), -EFAULT, 'no VMA');
  assert.equal(p.mbind(a, PAGE, MPOL_BIND | MPOL_F_STATIC_NODES, [1, 9]), 0, 'STATIC alone is fine; node 9 is dropped (N_MEMORY)');
  assert.deepEqual(p.mm!.vmaLookup(a)!.policy!.nodes, [1]);
});
