// SPDX-License-Identifier: GPL-2.0-only
/**
 * The allocation-failure findings of docs/FINDINGS.md (the sections whose
 * title starts "dmirror:" and names an allocation), each as the kernel
 * sequence the section gives, with the failure injected at the site the
 * sweep (`hmmsim fail-sites`) found it at:
 *
 *  - xa_store failing in dmirror_migrate_finalize_and_map(): the error is
 *    ignored and the mirror keeps HMM_DMIRROR_READ's entries to the
 *    migrated (freed) system pages: checked mode reports the stale
 *    secondary mapping right after the ioctl (dmirror_devmem_fix erases
 *    the rest of the range and the data reads back right);
 *  - dmirror_devmem_alloc_page failing in the small-page fallback of
 *    dmirror_migrate_alloc_and_copy(): BACKING_PAGE(NULL), an oops;
 *  - a device-private THP shared by fork(): a CPU fault that gets no
 *    order-9 page cannot split it (can_split_folio() counts the fault's
 *    reference) and migrates nothing; HMM_DMIRROR_MIGRATE_TO_SYS with
 *    FAIL_ALLOC does split it and remove_migration_pte() BUGs on the other
 *    mm's PMD migration entry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KernelBug } from '../src/kernel/printk.js';
import { STALE_SECONDARY_MAPPING } from '../src/drivers/test_hmm/check.js';
import {
  HMM_DMIRROR_FLAGS, HMM_DMIRROR_FLAG_FAIL_ALLOC, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_READ,
} from '../src/drivers/test_hmm/index.js';
import { PAGE, boot, ioctl, mkVma, openOk, spawn, thpBuffer, umalloc, uread, uwrite, pattern } from './dmirror_helpers.js';
import { VM_READ, VM_WRITE } from '../src/kernel/mm/mm_types.js';
import { System } from '../src/user/system.js';
import type { Process } from '../src/user/process.js';
import { testHmmInit, encodeCmd, HMM_DMIRROR_CMD_SIZE } from '../src/drivers/test_hmm/index.js';
import { HMM_DMIRROR_MIGRATE_TO_SYS } from '../src/drivers/test_hmm/uapi.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { MADV_HUGEPAGE } from '../src/kernel/mm/madvise.js';
import { O_RDWR } from '../src/kernel/fs/chardev.js';
import { handleMmFault } from '../src/kernel/mm/memory.js';
import { T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, pmdIndex, pmdTableOf, pteIndex, pteTableOf, pteType } from '../src/kernel/mm/pgtable.js';
import { runMmapRead } from './migrate_helpers.js';

/** The xa_store sequence: 66 pages written, device READ of pages 64-65, MIGRATE_TO_DEV of 0-65 with the first new-index store failing. */
function xaStoreSequence(fix: boolean): { run: () => void; readBack: () => Uint8Array; data: Uint8Array; stores: () => number } {
  const k = boot({ checked: true, fixes: { dmirror_devmem_fix: fix } });
  const p = spawn(k);
  const f = openOk(p, '/dev/hmm_dmirror0');
  const n = 66;
  const addr = mkVma(p, n, VM_READ | VM_WRITE);
  const data = pattern(n, 21);
  uwrite(p, addr, data);
  const ptr = umalloc(p, n * PAGE);
  // The READ stores entries 64 and 65: on a real xarray a node for 64..127
  // (and a root node); index 0 then needs a new leaf node, the one
  // allocation xa_store(GFP_ATOMIC) can fail in this sequence.
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_READ, addr + 64 * PAGE, ptr, 2), { ret: 0, cpages: 2n, faults: 1n });
  assert.deepEqual(uread(p, ptr, 2 * PAGE), data.subarray(64 * PAGE));
  return {
    data,
    stores: () => k.failInject.injected.filter((x) => x.site === 'xa_store').length,
    run() {
      k.failInject.set('xa_store', { skip: 0, times: 1 }); /* the store of index 0 */
      ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, addr, ptr, n);
    },
    readBack() {
      const r = ioctl(p, f, HMM_DMIRROR_READ, addr + 64 * PAGE, ptr, 2);
      assert.equal(r.ret, 0);
      return uread(p, ptr, 2 * PAGE);
    },
  };
}

test('xa_store failing in dmirror_migrate_finalize_and_map (mainline): the mirror keeps READ\'s entries to the migrated system pages - a stale secondary mapping right after the ioctl', () => {
  const s = xaStoreSequence(false);
  assert.throws(() => s.run(), (e: unknown) => e instanceof KernelBug && e.kind === 'INVARIANT' && e.rule === `after ioctl: ${STALE_SECONDARY_MAPPING}`);
  assert.equal(s.stores(), 1);
});

test('xa_store failing in dmirror_migrate_finalize_and_map (dmirror_devmem_fix): the rest of the range is erased, the device READ refaults and reads the data through BACKING_PAGE', () => {
  const s = xaStoreSequence(true);
  s.run();
  assert.equal(s.stores(), 1);
  assert.deepEqual(s.readBack(), s.data.subarray(64 * PAGE));
});

test('dmirror_devmem_alloc_page failing in the small-page fallback of dmirror_migrate_alloc_and_copy (private device): BACKING_PAGE(NULL), kernel NULL pointer dereference', () => {
  const k = boot({ checked: true });
  const p = spawn(k);
  const f = openOk(p, '/dev/hmm_dmirror0');
  const { addr } = thpBuffer(p, 1, 5);
  const ptr = umalloc(p, 512 * PAGE);
  assert.equal(ioctl(p, f, HMM_DMIRROR_FLAGS, addr, ptr, HMM_DMIRROR_FLAG_FAIL_ALLOC).ret, 0);
  // FAIL_ALLOC fails the large device allocation; the third small one of the fallback fails too.
  k.failInject.set('dmirror_devmem_alloc_page', { skip: 2, times: 1 });
  assert.throws(() => ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, addr, ptr, 512),
    (e: unknown) => e instanceof KernelBug && e.kind === 'OOPS' && e.rule === 'BUG: kernel NULL pointer dereference' && /BACKING_PAGE\(dpage\) with dpage == NULL/.test(e.state));
  assert.match(k.printk.text(), /BUG: kernel NULL pointer dereference, address: 0000000000000000/);
  assert.equal(k.failInject.injected.length, 1);
});

/* ------------------------------------------------------------------ */
/* a device-private THP shared by fork()                               */

/** A System with test_hmm, a process with a 2 MiB-aligned THP buffer of 0x07 bytes migrated to device 0, and its fd. */
function sharedDeviceThp(): { sys: System; p: Process; a: number; cmd: (req: number, n: number | bigint) => number } {
  const sys = new System({ checked: true, ramBytes: 256 << 20, nrHugepages: 0 });
  assert.equal(testHmmInit(sys.kernel), 0);
  const p = sys.spawn('t');
  const TWO = 2 << 20;
  let a = p.mmap(0, 2 * TWO, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  a = Math.ceil(a / TWO) * TWO;
  assert.equal(p.madvise(a, TWO, MADV_HUGEPAGE), 0);
  p.fill(a, TWO, 7);
  const fd = p.open('/dev/hmm_dmirror0', O_RDWR);
  const c = p.malloc(HMM_DMIRROR_CMD_SIZE);
  const buf = p.malloc(TWO);
  const cmd = (req: number, n: number | bigint): number => {
    p.writeBytes(c, encodeCmd({ addr: BigInt(a), ptr: BigInt(buf), npages: BigInt(n), cpages: 0n, faults: 0n }));
    return p.ioctl(fd, req, c);
  };
  assert.equal(cmd(HMM_DMIRROR_MIGRATE_TO_DEV, 512), 0);
  const pmd = pmdTableOf(p.mm!.pgd, a, false)!;
  assert.equal(pteType(pmd.f[pmdIndex(a)]), T_DEVICE_PRIVATE_WRITE, 'a device-private PMD');
  return { sys, p, a, cmd };
}

test('fork-shared device-private THP, the child\'s CPU fault gets no order-9 page: folio_split_unmapped() fails (can_split_folio: the fault\'s own reference), nothing migrates, both mappings are restored', () => {
  const { sys, p, a } = sharedDeviceThp();
  const k = sys.kernel;
  let seen = false;
  p.fork((ch) => {
    k.failInject.set('dmirror_devmem_fault_alloc_and_copy', { skip: 0, times: 1 }); /* the order-9 allocation */
    const vma = ch.mm!.vmaLookup(a)!;
    assert.equal(runMmapRead(ch.mm!, handleMmFault(vma, a, 0)), 0, 'migrate_to_ram returns 0: the fault is retried');
    assert.equal(k.vmstat.thp_migration_split, 0, 'no split');
    // split_huge_pmd_address(freeze) ran before the split failed: the child's
    // PMD is now a PTE table of device-private entries; the parent's is
    // restored as a device-private PMD (no migration entry anywhere).
    const pt = pteTableOf(ch.mm!.pgd, a)!;
    assert.ok([T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE].includes(pteType(pt.f[pteIndex(a)])));
    const ppmd = pmdTableOf(p.mm!.pgd, a, false)!;
    assert.ok([T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE].includes(pteType(ppmd.f[pmdIndex(a)])), 'the parent\'s PMD is not left a migration entry');
    seen = true;
    ch.exit(0);
  });
  assert.ok(seen);
});

test('fork-shared device-private THP, HMM_DMIRROR_MIGRATE_TO_SYS in the parent with FAIL_ALLOC: the split leaves the child\'s PMD migration entry, remove_migration_pte() hits VM_BUG_ON_FOLIO(!folio_test_pmd_mappable)', () => {
  const { p, cmd } = sharedDeviceThp();
  p.fork(() => { /* the child keeps its PMD mapping of the device THP */ });
  assert.equal(cmd(HMM_DMIRROR_FLAGS, HMM_DMIRROR_FLAG_FAIL_ALLOC), 0);
  assert.throws(() => cmd(HMM_DMIRROR_MIGRATE_TO_SYS, 512),
    (e: unknown) => e instanceof KernelBug && e.kind === 'BUG' && e.rule === 'remove_migration_pte: PMD migration entry over an order-0 folio' && /VM_BUG_ON_FOLIO\(folio_test_hugetlb\(folio\) \|\| !folio_test_pmd_mappable\(folio\)\)/.test(e.state));
});
