// SPDX-License-Identifier: GPL-2.0-only
/**
 * Swap: MADV_PAGEOUT of anonymous pages (present -> swap entry), swap-in on
 * a CPU fault and through hmm_range_fault (swap entry -> present), fork
 * (swap_duplicate, exclusivity cleared), munmap and exit (swap_free), the
 * pages reclaim must leave alone, and the checked-mode slot invariant.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { System, PM_PRESENT, PM_SWAP, PM_PFRAME_MASK } from '../src/user/system.js';
import type { Process } from '../src/user/process.js';
import { MAP_ANONYMOUS, MAP_HUGETLB, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { MADV_HUGEPAGE, MADV_PAGEOUT } from '../src/kernel/mm/madvise.js';
import { EINVAL } from '../src/kernel/errno.js';
import { T_PRESENT, T_SWAP, _PAGE_RW, _PAGE_SWP_EXCLUSIVE, pteType } from '../src/kernel/mm/pgtable.js';
import { pmdIndex, pmdTableOf, pteIndex, pteTableOf } from '../src/kernel/mm/pgtable.js';
import { PG_anon_exclusive } from '../src/kernel/mm/page.js';
import { KernelBug } from '../src/kernel/printk.js';
import { TestDev } from '../src/drivers/testdrv/testdrv.js';
import { HMM_PFN_REQ_FAULT, HMM_PFN_VALID, hmmPfnTest } from '../src/kernel/mm/hmm.js';
import { runSync } from '../src/kernel/sched/sched.js';
import { unpinUserPage, pinUserPages, FOLL_WRITE } from '../src/kernel/mm/gup.js';

const PG = 4096;
const RW = PROT_READ | PROT_WRITE;

function setup(cfg: { swapMiB?: number } = {}): { s: System; p: Process } {
  const s = new System({ ramBytes: 64 << 20, nrHugepages: 2, checked: true, ...cfg });
  return { s, p: s.spawn('swap') };
}

/** The (v, f) of the PTE at addr. */
function entry(p: Process, addr: number): { v: number; f: number } {
  const pt = pteTableOf(p.mm!.pgd, addr)!;
  return { v: pt.v[pteIndex(addr)], f: pt.f[pteIndex(addr)] };
}

function fillPages(p: Process, a: number, n: number, seed: number): void {
  for (let i = 0; i < n; i++) p.fill(a + i * PG, PG, (seed + i) & 0xff);
}

function expectPages(p: Process, a: number, n: number, seed: number): void {
  for (let i = 0; i < n; i++) {
    const b = p.readBytes(a + i * PG, PG);
    assert.ok(b.every((x) => x === ((seed + i) & 0xff)), `page ${i} holds its data`);
  }
}

test('MADV_PAGEOUT: exclusive anon pages become exclusive swap entries and are freed; a read fault swaps in a private, still exclusive copy that a write then reuses', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const a = p.mmap(0, 4 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  fillPages(p, a, 4, 10);
  const free0 = k.buddy.nrFree;
  assert.equal(p.madvise(a, 4 * PG, MADV_PAGEOUT), 0);
  assert.equal(k.buddy.nrFree, free0 + 4, 'the four pages were freed');
  for (let i = 0; i < 4; i++) {
    const e = entry(p, a + i * PG);
    assert.equal(pteType(e.f), T_SWAP, `page ${i} swapped out`);
    assert.ok(e.f & _PAGE_SWP_EXCLUSIVE, 'pte_swp_exclusive');
    const pm = p.pagemap(a + i * PG);
    assert.equal(pm & (PM_SWAP | PM_PRESENT), PM_SWAP);
    assert.equal(pm & PM_PFRAME_MASK, BigInt(e.v) << 5n, 'swap offset = slot');
  }
  assert.equal(p.mm!.rss.swap, 4);
  assert.equal(k.swap!.used, 4);
  // Read fault: swap-in maps read-only but exclusive; the write reuses it.
  assert.equal(p.load8(a + 5), 10);
  const e0 = entry(p, a);
  assert.equal(pteType(e0.f), T_PRESENT);
  assert.equal(e0.f & _PAGE_RW, 0, 'read fault: read-only');
  assert.ok(k.pages.flags[e0.v] & PG_anon_exclusive);
  p.store8(a + 5, 99);
  assert.equal(entry(p, a).v, e0.v, 'exclusive: do_wp_page reuses the page');
  // Write fault on a swapped page: writable at once.
  p.store8(a + PG, 77);
  assert.ok(entry(p, a + PG).f & _PAGE_RW);
  assert.equal(p.load8(a + PG), 77);
  assert.equal(p.load8(a + PG + 1), 11);
  expectPages(p, a + 2 * PG, 2, 12);
  assert.equal(p.mm!.rss.swap, 0);
  assert.equal(k.swap!.used, 0, 'every slot freed by swap-in');
});

test('fork after MADV_PAGEOUT: both mms share the slot (swap_duplicate), neither entry is exclusive; each swaps in its own copy, writes stay private; exit frees the slots', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const a = p.mmap(0, 2 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  fillPages(p, a, 2, 40);
  assert.equal(p.madvise(a, 2 * PG, MADV_PAGEOUT), 0);
  const slot = entry(p, a).v;
  let childSaw = -1;
  const pid = p.fork((c) => {
    const ce = entry(c, a);
    assert.equal(pteType(ce.f), T_SWAP);
    assert.equal(ce.f & _PAGE_SWP_EXCLUSIVE, 0);
    assert.equal(k.swap!.swapCount(slot), 2);
    childSaw = c.load8(a);
    c.store8(a, 1);
    c.exit(0);
  });
  assert.ok(pid > 0);
  assert.equal(p.waitpid(pid).pid, pid);
  assert.equal(childSaw, 40);
  assert.equal(entry(p, a).f & _PAGE_SWP_EXCLUSIVE, 0, 'the parent entry lost exclusivity at fork');
  assert.equal(k.swap!.swapCount(slot), 1, 'the child swap-in dropped its reference');
  assert.equal(p.load8(a), 40, 'the child write is not visible');
  assert.equal(k.swap!.swapCount(slot), 0);
  assert.equal(k.swap!.used, 1, 'the second page is still out');
  assert.equal(p.munmap(a, 2 * PG), 0);
  assert.equal(k.swap!.used, 0, 'munmap freed the slot');
});

test('MADV_PAGEOUT leaves alone: a page shared with a child, a pinned page, a THP, and everything without a swap device; hugetlb is -EINVAL', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const a = p.mmap(0, 4 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  fillPages(p, a, 4, 1);
  // Pinned (FOLL_PIN): the extra reference keeps it.
  const pages = new Float64Array(1);
  assert.ok(p.mm!.mmapLock.tryReadFast(k.sched));
  assert.equal(runSync(k.sched, pinUserPages(p.mm!, a + PG, 1, FOLL_WRITE, pages)), 1);
  p.mm!.mmapLock.readUnlock(k.sched);
  // Shared with a child that sleeps in fork's body until checked.
  let inChild = false;
  const pid = p.fork((c) => {
    inChild = true;
    assert.equal(c.madvise(a + 2 * PG, PG, MADV_PAGEOUT), 0);
    assert.equal(pteType(entry(c, a + 2 * PG).f), T_PRESENT, 'mapped by both mms: folio_likely_mapped_shared');
    c.exit(0);
  });
  p.waitpid(pid);
  assert.ok(inChild);
  assert.equal(p.madvise(a, 4 * PG, MADV_PAGEOUT), 0);
  assert.equal(pteType(entry(p, a + PG).f), T_PRESENT, 'pinned page kept');
  unpinUserPage(k, pages[0]);
  expectPages(p, a + PG, 1, 2);
  const h = p.mmap(0, 2 << 20, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  p.store8(h, 1);
  assert.equal(p.madvise(h, 2 << 20, MADV_PAGEOUT), -EINVAL);
  const { p: q } = setup({ swapMiB: 0 });
  const b = q.mmap(0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  q.store8(b, 3);
  assert.equal(q.madvise(b, PG, MADV_PAGEOUT), 0);
  assert.equal(pteType(entry(q, b).f), T_PRESENT, 'no swap device: nothing to reclaim anonymous memory to');
});

test('hmm_range_fault with HMM_PFN_REQ_FAULT swaps pages in (and MADV_PAGEOUT notifies the mirror first)', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const dev = new TestDev(k, { privatePages: 512, coherentPages: 0 });
  const a = p.mmap(0, 8 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  fillPages(p, a, 8, 70);
  assert.equal(p.madvise(a, 8 * PG, MADV_PAGEOUT), 0);
  assert.equal(k.swap!.used, 8);
  const out = new Float64Array(8);
  assert.equal(runSync(k.sched, dev.snapshot(p.mm!, a, a + 8 * PG, out, HMM_PFN_REQ_FAULT)), 0);
  for (let i = 0; i < 8; i++) {
    assert.ok(hmmPfnTest(out[i], HMM_PFN_VALID), `entry ${i}`);
    assert.equal(pteType(entry(p, a + i * PG).f), T_PRESENT);
  }
  assert.equal(k.swap!.used, 0);
  expectPages(p, a, 8, 70);
});

test('checked mode: a swap slot whose count disagrees with the swap entries is an INVARIANT violation', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const a = p.mmap(0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  p.store8(a, 1);
  assert.equal(p.madvise(a, PG, MADV_PAGEOUT), 0);
  const slot = entry(p, a).v;
  k.swap!.count[slot]++;
  assert.throws(() => k.checkpoint('corrupted'), (e: unknown) => e instanceof KernelBug && e.kind === 'INVARIANT' && /swap slot/.test(e.message));
  k.swap!.count[slot]--;
  k.checkpoint('repaired');
});

test('MADV_PAGEOUT of a THP mapped only here: the PMD and the folio are split and all 512 pages swapped out; the data comes back', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const raw = p.mmap(0, 4 << 20, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = Math.ceil(raw / (2 << 20)) * (2 << 20);
  assert.equal(p.madvise(a, 2 << 20, MADV_HUGEPAGE), 0);
  for (let i = 0; i < 512; i++) p.store32(a + i * PG, 1000 + i);
  const pmd = pmdTableOf(p.mm!.pgd, a, false)!;
  assert.equal(pteType(pmd.f[pmdIndex(a)]), T_PRESENT, 'a PMD-mapped THP');
  const splits = k.vmstat.thp_split_page;
  assert.equal(p.madvise(a, 2 << 20, MADV_PAGEOUT), 0);
  assert.equal(k.vmstat.thp_split_page, splits + 1);
  for (let i = 0; i < 512; i++) assert.equal(pteType(entry(p, a + i * PG).f), T_SWAP, `page ${i}`);
  assert.equal(k.swap!.used, 512);
  for (let i = 0; i < 512; i++) assert.equal(p.load32(a + i * PG), 1000 + i);
  assert.equal(k.swap!.used, 0);
});

test('MADV_PAGEOUT leaves a THP shared with a child PMD-mapped', () => {
  const { p } = setup();
  const raw = p.mmap(0, 4 << 20, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = Math.ceil(raw / (2 << 20)) * (2 << 20);
  assert.equal(p.madvise(a, 2 << 20, MADV_HUGEPAGE), 0);
  p.store32(a, 1);
  const pid = p.fork((c) => {
    assert.equal(c.madvise(a, 2 << 20, MADV_PAGEOUT), 0);
    const pmd = pmdTableOf(c.mm!.pgd, a, false)!;
    assert.equal(pteType(pmd.f[pmdIndex(a)]), T_PRESENT, 'still one PMD');
    c.exit(0);
  });
  assert.equal(p.waitpid(pid).status, 0);
});
