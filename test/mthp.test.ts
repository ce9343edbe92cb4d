// SPDX-License-Identifier: GPL-2.0-only
/**
 * Anonymous multi-size THP (mTHP): hugepages-<size>kB/enabled, folios of
 * orders 2 to 8 from do_anonymous_page() (alloc_anon_folio()), PTE-mapped,
 * through the paths a PTE-mapped large folio takes (munmap, fork and COW,
 * mprotect, MADV_DONTNEED, move_pages, migration to a device, swap).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { MADV_DONTNEED, MADV_HUGEPAGE } from '../src/kernel/mm/madvise.js';
import { pmdAlignUp } from '../src/kernel/mm/pgtable.js';
import { MPOL_MF_MOVE, pageToNid, sysMovePages } from '../src/kernel/mm/migrate_numa.js';
import { applyConfigSetting, defaultConfig } from '../src/kernel/config.js';
import { PG_buddy } from '../src/kernel/mm/page.js';
import { numaMachine, pfnOf } from './numa_helpers.js';

const PAGE = 4096;
const PMD = 2 << 20;

function machine(mthp: Record<string, string>, cfg = {}): ReturnType<typeof numaMachine> {
  return numaMachine('mthp', { mthp, ...cfg });
}

/** A PMD-aligned anonymous range of `len` bytes (so folios of every order align inside it). */
function alignedAnon(p: ReturnType<typeof numaMachine>['p'], len: number): number {
  const raw = p.mmap(0, len + PMD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  return pmdAlignUp(raw);
}

/** Write `pages` pages from `a`, page i filled with the byte `first + i` (faults the folios in). */
function fillPages(p: ReturnType<typeof numaMachine>['p'], a: number, pages: number, first: number): void {
  for (let i = 0; i < pages; i++) p.fill(a + i * PAGE, PAGE, first + i);
}

test('mthp: config hugepages-<size>kB takes always|inherit|madvise|never and rejects other sizes and values', () => {
  const cfg = defaultConfig();
  assert.equal(applyConfigSetting(cfg, 'hugepages-64kB=always'), null);
  assert.equal(cfg.mthp['64kB'], 'always');
  assert.equal(applyConfigSetting(cfg, 'hugepages-2048kB=never'), null);
  assert.match(applyConfigSetting(cfg, 'hugepages-8kB=always') ?? '', /no such size .*hugepages-16kB/);
  assert.match(applyConfigSetting(cfg, 'hugepages-64kB=sometimes') ?? '', /not always\|inherit\|madvise\|never/);
  assert.deepEqual(defaultConfig().mthp, {}, 'mainline default: no mTHP size enabled');
});

test('mthp: a write fault maps a whole 64 KiB folio with 16 PTEs; rss, refcount, mapcount and stats follow', () => {
  const { sys, p } = machine({ '64kB': 'always' });
  const k = sys.kernel;
  const a = alignedAnon(p, 256 * 1024);
  p.store8(a + 5 * PAGE + 3, 0x5a);
  const head = pfnOf(p, a);
  assert.equal(k.pages.folioNr(head), 16);
  for (let i = 0; i < 16; i++) assert.equal(pfnOf(p, a + i * PAGE), head + i, 'mapped in order');
  assert.equal(pfnOf(p, a + 16 * PAGE), 0, 'the next 64 KiB is untouched');
  assert.equal(k.pages.refcount[head], 16, 'one reference per PTE (folio_ref_add(nr - 1))');
  assert.equal(k.pages.folioMapcount(head), 16);
  assert.equal(p.mm!.rss.anon, 16);
  assert.equal(k.mthpStats.anon_fault_alloc[4], 1);
  assert.equal(p.load8(a + 5 * PAGE + 3), 0x5a);
  assert.equal(p.load8(a + 9 * PAGE), 0, 'the rest of the folio is zero');
});

test('mthp: the highest enabled order whose aligned range is all none and inside the VMA, then smaller ones; failed allocations fall back', () => {
  const { sys, p } = machine({ '16kB': 'always', '64kB': 'always' });
  const k = sys.kernel;
  const a = alignedAnon(p, 256 * 1024);
  // A VMA boundary at a + 24 pages: the 64 KiB range [16, 32) is not inside
  // the VMA, the 16 KiB range [16, 20) is.
  assert.equal(p.mprotect(a + 24 * PAGE, 8 * PAGE, PROT_READ), 0);
  p.store8(a + 17 * PAGE, 1);
  assert.equal(k.pages.folioNr(pfnOf(p, a + 16 * PAGE)), 4);
  assert.equal(pfnOf(p, a + 20 * PAGE), 0);
  // A read maps the zero page at page 32: [32, 48) is not all none, so a
  // write at page 38 gets the 16 KiB folio [36, 40).
  assert.equal(p.load8(a + 32 * PAGE), 0);
  p.store8(a + 38 * PAGE, 2);
  const h = pfnOf(p, a + 36 * PAGE);
  assert.equal(k.pages.folioNr(h), 4);
  assert.equal(pfnOf(p, a + 38 * PAGE), h + 2);
  assert.equal(pfnOf(p, a + 32 * PAGE), k.zeroPfn);
  // An injected failure of the 64 KiB allocation falls back to 16 KiB.
  k.failInject.rules.set('mthp_fault', { skip: 0, times: 1, order: 4 });
  p.store8(a + 48 * PAGE, 3);
  assert.equal(k.pages.folioNr(pfnOf(p, a + 48 * PAGE)), 4);
  assert.equal(k.mthpStats.anon_fault_fallback[4], 1);
  assert.equal(k.mthpStats.anon_fault_alloc[2], 3);
  assert.equal(p.load8(a + 17 * PAGE), 1);
  assert.equal(p.load8(a + 38 * PAGE), 2);
  assert.equal(p.load8(a + 48 * PAGE), 3);
});

test('mthp: inherit and madvise follow the global setting and MADV_HUGEPAGE; mainline defaults give order 0', () => {
  for (const [mthp, thp, madv, nr] of [
    [{}, 'always', false, 1],
    [{ '32kB': 'inherit' }, 'never', false, 1],
    [{ '32kB': 'inherit' }, 'always', false, 8],
    [{ '32kB': 'inherit' }, 'madvise', false, 1],
    [{ '32kB': 'inherit' }, 'madvise', true, 8],
    [{ '32kB': 'madvise' }, 'never', true, 8],
    [{ '32kB': 'madvise' }, 'always', false, 1],
  ] as Array<[Record<string, string>, string, boolean, number]>) {
    const { sys, p } = machine({ ...mthp, '2048kB': 'never' }, { thp, nrHugepages: 0 });
    const a = alignedAnon(p, 64 * 1024);
    if (madv) assert.equal(p.madvise(a, 64 * 1024, MADV_HUGEPAGE), 0);
    p.store8(a, 1);
    assert.equal(sys.kernel.pages.folioNr(pfnOf(p, a)), nr, `${JSON.stringify(mthp)} thp=${thp} madvise=${madv}`);
  }
});

test('mthp: move_pages() moves a 64 KiB folio whole (one folio, order kept), contents intact', () => {
  const { sys, p } = machine({ '64kB': 'always' });
  const k = sys.kernel;
  const a = alignedAnon(p, 128 * 1024);
  fillPages(p, a, 32, 0x20);
  const before = p.readBytes(a, 32 * PAGE);
  const old = pfnOf(p, a);
  assert.equal(k.pages.folioNr(old), 16);
  const s = new Int32Array(2);
  assert.equal(sysMovePages(k, p.mm!, [a + 3 * PAGE, a + 16 * PAGE], [1, 1], s, MPOL_MF_MOVE), 0);
  assert.deepEqual([...s], [1, 1]);
  const h = pfnOf(p, a);
  assert.equal(pageToNid(k, h), 1);
  assert.equal(k.pages.folioNr(h), 16, 'still a 64 KiB folio');
  for (let i = 0; i < 16; i++) assert.equal(pfnOf(p, a + i * PAGE), h + i);
  assert.equal(k.vmstat.pgmigrate_success, 32, 'counted in pages');
  assert.deepEqual(p.readBytes(a, 32 * PAGE), before);
});

test('mthp: fork shares the folio; COW copies one page while the child maps it; after the child exits the parent reuses it (1da190f4d0a6)', () => {
  const { sys, p } = machine({ '64kB': 'always' });
  const k = sys.kernel;
  const a = alignedAnon(p, 64 * 1024);
  fillPages(p, a, 16, 0x40);
  const head = pfnOf(p, a);
  let childCopy = -1;
  let parentCopy = -1;
  const pid = p.fork((c) => {
    assert.equal(pfnOf(c, a + 3 * PAGE), head + 3, 'the child maps the same folio');
    assert.equal(k.pages.folioMapcount(head), 32);
    c.store8(a + 3 * PAGE, 0xc3);
    childCopy = pfnOf(c, a + 3 * PAGE);
    // The parent writes while the child still maps the folio: a copy.
    p.store8(a + 4 * PAGE, 0xd4);
    parentCopy = pfnOf(p, a + 4 * PAGE);
    assert.equal(c.load8(a + 4 * PAGE), 0x44, 'the child still sees the old data');
    c.exit(0);
  });
  p.waitpid(pid);
  assert.notEqual(childCopy, head + 3);
  assert.equal(k.pages.folioNr(childCopy), 1, 'a COW copy is one page');
  assert.notEqual(parentCopy, head + 4);
  assert.equal(k.pages.folioMapcount(head), 15, 'the parent maps 15 pages of it');
  const cow = k.vmstat.cow;
  // Child gone: every reference is a mapping of the parent's: reuse in place.
  p.store8(a + 9 * PAGE, 0xe9);
  assert.equal(pfnOf(p, a + 9 * PAGE), head + 9, 'reused, not copied');
  assert.equal(k.vmstat.cow, cow);
  assert.equal(p.load8(a + 3 * PAGE), 0x43);
  assert.equal(p.load8(a + 4 * PAGE), 0xd4);
  assert.equal(p.load8(a + 9 * PAGE), 0xe9);
});

test('mthp: a large folio with one page mapped is not reused: the write copies so the folio can go', () => {
  const { sys, p } = machine({ '16kB': 'always' });
  const k = sys.kernel;
  const a = alignedAnon(p, 16 * 1024);
  fillPages(p, a, 4, 0x50);
  const head = pfnOf(p, a);
  const free0 = k.buddy.nrFree;
  const pid = p.fork((c) => c.exit(0));
  p.waitpid(pid);
  assert.equal(p.munmap(a + PAGE, 3 * PAGE), 0);
  assert.equal(k.pages.folioMapcount(head), 1);
  p.store8(a, 0x99);
  assert.notEqual(pfnOf(p, a), head, 'copied');
  assert.equal(p.load8(a), 0x99);
  assert.equal(p.load8(a + 1), 0x50);
  assert.ok(k.pages.flags[head] & PG_buddy, 'the old folio was freed');
  assert.equal(k.buddy.nrFree, free0 + 4 - 1, 'its four pages back, one page for the copy');
});

test('mthp: munmap of part of a folio keeps the rest mapped and intact; unmapping the rest frees the folio', () => {
  const { sys, p } = machine({ '64kB': 'always' });
  const k = sys.kernel;
  const a = alignedAnon(p, 64 * 1024);
  const free0 = k.buddy.nrFree;
  fillPages(p, a, 16, 0x60);
  const head = pfnOf(p, a);
  assert.equal(p.munmap(a + 4 * PAGE, 4 * PAGE), 0);
  assert.equal(p.mm!.rss.anon, 12);
  assert.equal(k.pages.refcount[head], 12);
  assert.equal(k.pages.folioNr(head), 16, 'not split (mainline queues it for deferred split)');
  for (const i of [0, 3, 8, 15]) assert.equal(p.load8(a + i * PAGE), 0x60 + i);
  assert.equal(p.munmap(a, 16 * PAGE), 0);
  assert.equal(p.mm!.rss.anon, 0);
  assert.ok(k.pages.flags[head] & PG_buddy, 'freed');
  assert.equal(k.buddy.nrFree, free0);
});
