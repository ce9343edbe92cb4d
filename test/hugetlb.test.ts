// SPDX-License-Identifier: GPL-2.0-only
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { System } from '../src/user/system.js';
import { type Process } from '../src/user/process.js';
import { PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_HUGETLB, MAP_HUGE_1GB, MAP_HUGE_2MB, MAP_NORESERVE } from '../src/kernel/mm/mmap.js';
import { MREMAP_MAYMOVE } from '../src/kernel/mm/mremap.js';
import { MADV_DONTNEED, MADV_FREE } from '../src/kernel/mm/madvise.js';
import { EINVAL, ENOMEM } from '../src/kernel/errno.js';
import { PG_hugetlb, PG_anon_exclusive } from '../src/kernel/mm/page.js';
import { pmdTableOf, pmdIndex, T_PRESENT, _PAGE_RW, pteType } from '../src/kernel/mm/pgtable.js';
import { FOLL_LONGTERM, pinUserPages, unpinUserPages } from '../src/kernel/mm/gup.js';
import { runMmapRead } from './migrate_helpers.js';

const RW = PROT_READ | PROT_WRITE;
const MB2 = 2 << 20;
const PG = 4096;

function setup(n = 4): { s: System; p: Process } {
  const s = new System({ ramBytes: 256 << 20, nrHugepages: n, checked: true });
  return { s, p: s.spawn('t') };
}
function freeHuge(p: Process): number {
  return Number(/HugePages_Free:\s+(\d+)/.exec(p.readFileText('/proc/meminfo') as string)![1]);
}
function leaf(p: Process, a: number): { v: number; f: number } {
  const pmd = pmdTableOf(p.mm!.pgd, a, false)!;
  return { v: pmd.v[pmdIndex(a)], f: pmd.f[pmdIndex(a)] };
}

test('MAP_HUGETLB: reservation, fault, meminfo, munmap returns the page', () => {
  const { s, p } = setup(4);
  const k = s.kernel;
  assert.equal(freeHuge(p), 4);
  assert.equal(p.mmap(0, 5 * MB2, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB), -ENOMEM, 'pool too small');
  assert.equal(p.mmap(0, MB2, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_1GB), -EINVAL, 'no 1 GiB pool');
  const a = p.mmap(0, 3 * MB2 - PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB);
  assert.ok(a > 0);
  assert.equal(a % MB2, 0);
  assert.equal(p.mm!.vmaLookup(a)!.end - a, 3 * MB2, 'length rounded to huge pages');
  assert.equal(p.mmap(0, 2 * MB2, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB), -ENOMEM, 'reserved pages are taken');
  p.store32(a + MB2 + 8, 42);
  assert.equal(freeHuge(p), 3);
  const l = leaf(p, a + MB2);
  assert.equal(pteType(l.f), T_PRESENT);
  assert.ok(k.pages.flags[l.v] & PG_hugetlb);
  assert.equal(k.pages.entireMapcount[l.v], 1);
  assert.equal(p.load32(a + MB2 + 8), 42);
  assert.equal(p.load32(a + 2 * MB2 + 100), 0);
  assert.equal(p.munmap(a + PG, PG), -EINVAL, 'unaligned hugetlb munmap');
  assert.equal(p.madvise(a, MB2, MADV_FREE), -EINVAL);
  assert.equal(p.madvise(a + MB2, MB2, MADV_DONTNEED), 0);
  assert.equal(freeHuge(p), 3, 'page freed, one more page still faulted');
  assert.equal(p.load32(a + MB2 + 8), 0, 'fresh page');
  assert.equal(p.mremap(a, 3 * MB2, 4 * MB2, MREMAP_MAYMOVE), -EINVAL, 'hugetlb cannot grow');
  assert.equal(p.munmap(a, 3 * MB2), 0);
  assert.equal(freeHuge(p), 4);
  assert.match(p.readFileText('/proc/meminfo') as string, /HugePages_Rsvd:\s+0/);
});

test('hugetlb private: fork shares read-only, write copies; shared: visible to child', () => {
  const { s, p } = setup(4);
  const k = s.kernel;
  const a = p.mmap(0, MB2, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  p.store32(a, 1);
  const head = leaf(p, a).v;
  assert.ok(k.pages.flags[head] & PG_anon_exclusive);
  const sh = p.mmap(0, MB2, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB);
  p.store32(sh, 10);
  const pid = p.fork((c) => {
    assert.equal(c.load32(a), 1);
    assert.equal(k.pages.entireMapcount[head], 2);
    c.store32(a, 2);
    assert.notEqual(leaf(c, a).v, head, 'child copied');
    assert.equal(c.load32(sh), 10);
    c.store32(sh, 11);
    c.exit(0);
  });
  p.waitpid(pid);
  assert.equal(p.load32(a), 1);
  assert.equal(p.load32(sh), 11);
  assert.equal(leaf(p, a).f & _PAGE_RW, 0);
  p.store32(a, 3);
  assert.equal(leaf(p, a).v, head, 'sole user: reused');
  p.exit(0);
  k.lru.drain();
  assert.equal(k.hugetlb.nrFree(), 4);
  assert.equal(k.hugetlb.resv, 0);
});

test('MAP_HUGETLB | MAP_NORESERVE: no reservation at mmap; pages come from the free pool at fault time, and an empty pool is SIGBUS', () => {
  const { p } = setup(2);
  assert.equal(p.mmap(0, 3 * MB2, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB), -ENOMEM, 'reserving 3 pages from a pool of 2 fails');
  const a = p.mmap(0, 3 * MB2, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE);
  assert.ok(a > 0, 'MAP_NORESERVE maps without reserving');
  assert.match(p.readFileText('/proc/meminfo') as string, /HugePages_Rsvd:\s+0/);
  p.store32(a, 1);
  p.store32(a + MB2, 2);
  assert.equal(freeHuge(p), 0);
  const pid = p.fork((c) => {
    c.store32(a + 2 * MB2, 3); /* no free huge page: SIGBUS */
    c.exit(0);
  });
  assert.equal(p.waitpid(pid).status & 0x7f, 7, 'SIGBUS');
  assert.equal(p.load32(a), 1);
  assert.equal(p.munmap(a, 3 * MB2), 0);
  assert.equal(freeHuge(p), 2);
});

test('hugetlb private read-only mapping after fork: a R/O FOLL_LONGTERM pin unshares (FAULT_FLAG_UNSHARE, no VM_WRITE needed) into a read-only copy', () => {
  // fuzz --thp always --seed=31000000, run 4695: PIN_LONGTERM_TEST_START of
  // a PROT_READ MAP_HUGETLB page after fork returned -EFAULT; hugetlb_wp()
  // with unshare needs no VM_WRITE and maps the copy read-only.
  const { s, p } = setup(4);
  const k = s.kernel;
  const a = p.mmap(0, MB2, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  assert.equal(p.load32(a + 64), 0);
  const head = leaf(p, a).v;
  const pid = p.fork((c) => {
    assert.equal(k.pages.entireMapcount[head], 2, 'shared with the parent');
    const pages = new Float64Array(1);
    assert.equal(runMmapRead(c.mm!, pinUserPages(c.mm!, a, 1, FOLL_LONGTERM, pages)), 1);
    const l = leaf(c, a);
    assert.notEqual(l.v, head, 'the child unshared into its own copy');
    assert.equal(l.f & _PAGE_RW, 0, 'the copy is mapped read-only');
    assert.ok(k.pages.flags[l.v] & PG_anon_exclusive);
    assert.equal(k.pages.folioPfn(pages[0]), l.v, 'the pin is on the copy');
    assert.equal(k.pages.entireMapcount[head], 1, 'the parent keeps the original');
    assert.equal(c.load32(a + 64), 0);
    unpinUserPages(k, pages, 1);
    c.exit(0);
  });
  p.waitpid(pid);
  assert.equal(leaf(p, a).v, head);
  p.exit(0);
  k.lru.drain();
  assert.equal(k.hugetlb.nrFree(), 4);
});
