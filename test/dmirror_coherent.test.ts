// SPDX-License-Identifier: GPL-2.0-only
/**
 * Device-coherent dmirror devices and THPs: why the kernel's
 * migrate_anon_huge_err fails on hmm_device_coherent.
 *
 * lib/test_hmm.c, dmirror_allocate_chunk(): a coherent chunk is always
 * mapped at the same physical address,
 *
 *     devmem->pagemap.range.start = (MINOR(mdevice->device.devt) - 2) ?
 *                                   spm_addr_dev0 : spm_addr_dev1;
 *
 * so once the first chunk exists (dmirror_device_init() allocates it with
 * is_large = false: every page on free_pages, no free_folios), a second
 * memremap_pages() of that range fails in pagemap_range()
 * (`conflict_pgmap = get_dev_pagemap(PHYS_PFN(range->start)); if
 * (conflict_pgmap) { WARN(1, "Conflicting mapping in same section\n"); ...
 * return -ENOMEM; }`). dmirror_devmem_alloc_page(dmirror, true) therefore
 * returns NULL and dmirror_migrate_alloc_and_copy() takes its small-page
 * fallback: a THP lands on a coherent device as 512 order-0 pages.
 *
 * Then, with HMM_DMIRROR_FLAG_FAIL_ALLOC, dmirror_devmem_fault_alloc_and_copy()
 * sees order 0 (`order = folio_order(page_folio(spage))`), clears the flag,
 * `dpage = NULL`, and `if (!dpage && !order) return VM_FAULT_OOM;` before
 * filling any dst entry. dmirror_migrate_to_system() ignores that return
 * value and calls migrate_vma_pages() (no dst: every entry loses
 * MIGRATE_PFN_MIGRATE) and migrate_vma_finalize() (the sources are mapped
 * again): the ioctl returns 0, cpages 0, and every page stays on the device,
 * which the CPU reads directly (coherent memory): hmm-tests.c:2662-2665 pass.
 * On a private device the THP is a device folio of order 9: FAIL_ALLOC drops
 * COMPOUND and the small-page fallback succeeds.
 *
 * The coherent device gets device folios only if its chunk is created by a
 * large allocation, e.g. the first allocation after HMM_DMIRROR_RELEASE.
 *
 * As on mainline, memremap_pages() refuses the second chunk at the same
 * address with WARN "Conflicting mapping in same section" and -ENOMEM; the
 * driver ignores the errno (the allocation fails).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDeviceCoherentPage } from '../src/kernel/mm/memremap.js';
import { translate } from '../src/kernel/arch/fault.js';
import {
  HMM_DMIRROR_FLAGS, HMM_DMIRROR_FLAG_FAIL_ALLOC, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL, HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL, HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_WRITE, HMM_DMIRROR_RELEASE, HMM_DMIRROR_SNAPSHOT, testHmmModule,
} from '../src/drivers/test_hmm/index.js';
import { PAGE, boot, close, ioctl, openOk, spawn, thpBuffer, umalloc, uread, type Proc } from './dmirror_helpers.js';

const N = 512;

function snapshot(p: Proc, f: ReturnType<typeof openOk>, addr: number): Set<number> {
  const snap = umalloc(p, N);
  assert.equal(ioctl(p, f, HMM_DMIRROR_SNAPSHOT, addr, snap, N).ret, 0);
  return new Set(uread(p, snap, N));
}

test('coherent device: a THP migrates as 512 small device pages (no second chunk at the SPM address); private: one device folio', () => {
  const k = boot();
  const p = spawn(k);
  const mod = testHmmModule(k)!;
  for (const v of [{ dev: 2, bytes: [HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE], chunks: 1 },
    { dev: 0, bytes: [HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD], chunks: 2 }]) {
    const f = openOk(p, `/dev/hmm_dmirror${v.dev}`);
    const { addr, data } = thpBuffer(p, 1, 7);
    const ptr = umalloc(p, N * PAGE);
    assert.deepEqual(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, addr, ptr, N), { ret: 0, cpages: BigInt(N), faults: 0n });
    assert.deepEqual(uread(p, ptr, N * PAGE), data);
    assert.deepEqual([...snapshot(p, f, addr)], v.bytes, `dev ${v.dev}`);
    assert.equal(mod.devices[v.dev].devmemCount, v.chunks, `dev ${v.dev}: chunks`);
    assert.equal(mod.devices[v.dev].freeFolios.length > 0, v.dev === 0, `dev ${v.dev}: free device folios`);
    close(p, f);
  }
});

test('coherent device: FAIL_ALLOC + MIGRATE_TO_SYS on order-0 device pages: VM_FAULT_OOM is ignored (mainline), 0 and cpages 0, nothing moves, the flag is consumed', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p, '/dev/hmm_dmirror2');
  const { addr, data } = thpBuffer(p, 1, 11);
  const ptr = umalloc(p, N * PAGE);
  assert.equal(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, addr, ptr, N).ret, 0);
  assert.equal(ioctl(p, f, HMM_DMIRROR_FLAGS, addr, ptr, HMM_DMIRROR_FLAG_FAIL_ALLOC).ret, 0);
  const r = ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_SYS, addr, ptr, N);
  assert.equal(r.ret, 0);
  assert.equal(r.cpages, 0n, 'nothing copied back');
  assert.deepEqual(uread(p, addr + 2 * PAGE, PAGE), data.subarray(2 * PAGE, 3 * PAGE), 'the CPU reads the coherent page in place');
  for (const i of [0, 2, N - 1]) assert.ok(isDeviceCoherentPage(k, translate(p.mm, addr + i * PAGE, false)), `page ${i} still on the device`);
  /* one-shot: the retry migrates everything */
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_SYS, addr, ptr, N), { ret: 0, cpages: BigInt(N), faults: 0n });
  const pfn = translate(p.mm, addr, false);
  assert.ok(pfn >= 0 && pfn < k.buddy.end, 'back in system RAM');
  assert.deepEqual(uread(p, addr, N * PAGE), data);
  close(p, f);
});

test('coherent device: after RELEASE the first allocation is large, the new chunk holds device folios, and the migrate_anon_huge_err sequence passes', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p, '/dev/hmm_dmirror2');
  const dev = testHmmModule(k)!.devices[2];
  const ptr = umalloc(p, N * PAGE);
  assert.equal(ioctl(p, f, HMM_DMIRROR_RELEASE, ptr, ptr, 1).ret, 0);
  assert.equal(dev.devmemCount, 0);
  const { addr, data } = thpBuffer(p, 1, 3);
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, addr, ptr, N), { ret: 0, cpages: BigInt(N), faults: 0n });
  assert.equal(dev.devmemCount, 1);
  assert.equal(dev.freePages.length, 0, 'a chunk made by a large allocation has no small pages');
  assert.deepEqual([...snapshot(p, f, addr)], [HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD]);
  /* hmm-tests.c:2658-2665 */
  assert.equal(ioctl(p, f, HMM_DMIRROR_FLAGS, addr, ptr, HMM_DMIRROR_FLAG_FAIL_ALLOC).ret, 0);
  assert.equal(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_SYS, addr, ptr, N).ret, 0);
  assert.deepEqual(uread(p, addr + 2 * PAGE, PAGE), data.subarray(2 * PAGE, 3 * PAGE));
  assert.deepEqual(uread(p, addr, N * PAGE), data);
  close(p, f);
});
