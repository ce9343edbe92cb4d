// SPDX-License-Identifier: GPL-2.0-only
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kernel } from '../src/kernel/kernel.js';
import { HPAGE_PMD_NR, PG_buddy, PG_head, PG_tail } from '../src/kernel/mm/page.js';
import { __GFP_ZERO } from '../src/kernel/mm/page_alloc.js';
import { folioGet, folioPut } from '../src/kernel/mm/folio.js';
import { KernelBug } from '../src/kernel/printk.js';

const small = () => new Kernel({ ramBytes: 64 << 20, nrHugepages: 0 });

test('order-0 allocation takes refcount 1 and free returns it to the buddy', () => {
  const k = small();
  const free0 = k.buddy.nrFree;
  const pfn = k.buddy.alloc(0, __GFP_ZERO);
  assert.ok(pfn >= k.buddy.start && pfn < k.buddy.end);
  assert.equal(k.pages.refcount[pfn], 1);
  assert.equal(k.buddy.nrFree, free0 - 1);
  folioPut(k, pfn);
  assert.equal(k.buddy.nrFree, free0);
  assert.ok(k.pages.flags[pfn] & PG_buddy);
});

test('a fully freed 2 MiB block coalesces back to order 9', () => {
  const k = small();
  const huge0 = k.buddy.nrFreeHuge();
  const pfns: number[] = [];
  for (let i = 0; i < HPAGE_PMD_NR; i++) pfns.push(k.buddy.alloc(0, 0));
  assert.equal(k.buddy.nrFreeHuge(), huge0 - 1);
  for (const p of pfns) folioPut(k, p);
  assert.equal(k.buddy.nrFreeHuge(), huge0);
  const thp = k.buddy.alloc(9, 0);
  assert.ok(thp >= 0 && thp % HPAGE_PMD_NR === 0);
  assert.ok(k.pages.flags[thp] & PG_head);
  assert.ok(k.pages.flags[thp + 1] & PG_tail);
  assert.equal(k.pages.folioPfn(thp + 77), thp);
});

test('failure injection fails the named site exactly the requested times', () => {
  const k = small();
  k.buddy.fail.set('thp', { skip: 1, times: 1, order: 9 });
  assert.ok(k.buddy.alloc(9, 0, 'thp') >= 0);
  assert.equal(k.buddy.alloc(9, 0, 'thp'), -1);
  assert.ok(k.buddy.alloc(9, 0, 'thp') >= 0);
  assert.ok(k.buddy.alloc(0, 0, 'thp') >= 0, 'order filter');
});

test('refcount underflow and use-after-free raise structured errors', () => {
  const k = small();
  const pfn = k.buddy.alloc(0, 0);
  folioPut(k, pfn);
  assert.throws(() => folioPut(k, pfn), (e: unknown) => e instanceof KernelBug && e.kind === 'KASAN');
  assert.throws(() => folioGet(k, pfn), (e: unknown) => e instanceof KernelBug && e.kind === 'KASAN' && /dumped because/.test(e.state));
});

test('contents: copy, zero and checksum', () => {
  const k = small();
  const a = k.buddy.alloc(0, __GFP_ZERO);
  const b = k.buddy.alloc(0, __GFP_ZERO);
  assert.ok(k.contents.isZero(a));
  k.contents.fill(a, 100, 10, 0xab);
  k.contents.copy(b, a);
  const out = new Uint8Array(12);
  k.contents.read(b, 99, out, 0, 12);
  assert.deepEqual([...out], [0, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0]);
  assert.equal(k.contents.checksum(a), k.contents.checksum(b));
  assert.notEqual(k.contents.checksum(a), 0);
  k.contents.zero(b);
  assert.ok(k.contents.isZero(b));
});
