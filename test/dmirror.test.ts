// SPDX-License-Identifier: GPL-2.0-only
/**
 * The test_hmm (dmirror) driver through its file operations: a process is
 * an mm with VMAs built directly, `current` points at it, the ioctl
 * argument struct lives in that process's memory, and CPU accesses go
 * through the simulated MMU and fault path (helpers in dmirror_helpers.ts).
 * Checks module init, the uapi, and READ / WRITE / MIGRATE / SNAPSHOT /
 * EXCLUSIVE round trips with their counters. Every ioctl's error cases, one
 * test each with the kernel's errno, are in dmirror_errno.test.ts; coherent
 * devices and THPs in dmirror_coherent.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KernelConfig } from '../src/kernel/config.js';
import { runSync } from '../src/kernel/sched/sched.js';
import { KernelBug } from '../src/kernel/printk.js';
import { EFAULT, EINVAL, ENOENT, EPERM } from '../src/kernel/errno.js';
import { VM_MIXEDMAP } from '../src/kernel/mm/mm_types.js';
import { doMmap, doMunmap, MAP_PRIVATE, PROT_READ } from '../src/kernel/mm/mmap.js';
import { translate } from '../src/kernel/arch/fault.js';
import {
  HMM_DMIRROR_CHECK_EXCLUSIVE, HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_FLAGS, HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_READ, HMM_DMIRROR_RELEASE, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_WRITE,
  HMM_DMIRROR_READ_UNLOCKABLE, decodeCmd, encodeCmd, testHmmExit, testHmmModule,
} from '../src/drivers/test_hmm/index.js';
import {
  PAGE, RO, RW, U64, boot, close, ioctl, mkVma, mmapSharedAnon, open, openOk, pattern, spawn, thpBuffer, umalloc,
  uread, uwrite,
} from './dmirror_helpers.js';

test('uapi: ioctl numbers are the real _IOWR(\'H\', nr, struct hmm_dmirror_cmd) values and the struct is 40 bytes', () => {
  assert.equal(HMM_DMIRROR_READ, 0xc0284800);
  assert.equal(HMM_DMIRROR_WRITE, 0xc0284801);
  assert.equal(HMM_DMIRROR_MIGRATE_TO_DEV, 0xc0284802);
  assert.equal(HMM_DMIRROR_MIGRATE_TO_SYS, 0xc0284803);
  assert.equal(HMM_DMIRROR_SNAPSHOT, 0xc0284804);
  assert.equal(HMM_DMIRROR_EXCLUSIVE, 0xc0284805);
  assert.equal(HMM_DMIRROR_CHECK_EXCLUSIVE, 0xc0284806);
  assert.equal(HMM_DMIRROR_RELEASE, 0xc0284807);
  assert.equal(HMM_DMIRROR_FLAGS, 0xc0284808);
  const b = encodeCmd({ addr: 0x1000n, ptr: 2n, npages: 3n, cpages: 4n, faults: 5n });
  assert.equal(b.length, 40);
  assert.deepEqual([...b.slice(0, 8)], [0, 0x10, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(decodeCmd(b), { addr: 0x1000n, ptr: 2n, npages: 3n, cpages: 4n, faults: 5n });
});

test('module init: four devices with SPM, one 256 MB chunk each; without SPM dmirror2/3 do not exist', () => {
  const k = boot();
  assert.equal(testHmmModule(k)!.devices.length, 4);
  assert.equal(k.printk.log.filter((l) => /^added new 256 MB chunk \(total 1 chunks, 256 MB\) PFNs \[0x[0-9a-f]+ 0x[0-9a-f]+\)$/.test(l.text)).length, 4);
  assert.ok(k.printk.text().includes('HMM test module loaded. This is only for testing HMM.'));
  const p = spawn(k);
  for (const d of [0, 1, 2, 3]) close(p, openOk(p, `/dev/hmm_dmirror${d}`));
  testHmmExit(k);
  assert.equal(open(p, '/dev/hmm_dmirror0'), -ENOENT);

  const k2 = boot({ spm: false });
  const p2 = spawn(k2);
  assert.equal(testHmmModule(k2)!.devices.length, 2);
  close(p2, openOk(p2, '/dev/hmm_dmirror1'));
  assert.equal(open(p2, '/dev/hmm_dmirror2'), -ENOENT);
  assert.equal(open(p2, '/dev/hmm_dmirror3'), -ENOENT);
});

test('dispatcher: -EFAULT for an unreadable struct, -EINVAL for unaligned addr, npages 0, wrap, unknown command', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p);
  const buf = mkVma(p, 4, RW);
  const ptr = umalloc(p, 4 * PAGE);
  /* arg in no VMA: copy_from_user fails */
  assert.equal(runSync(k.sched, f.fops.unlockedIoctl!(f, HMM_DMIRROR_READ, 0x1000)), -EFAULT);
  assert.equal(ioctl(p, f, HMM_DMIRROR_READ, buf + 8, ptr, 1).ret, -EINVAL);
  assert.equal(ioctl(p, f, HMM_DMIRROR_READ, buf, ptr, 0).ret, -EINVAL);
  assert.equal(ioctl(p, f, HMM_DMIRROR_READ, U64 - 0xfffn, ptr, 2).ret, -EINVAL);
  assert.equal(ioctl(p, f, HMM_DMIRROR_READ, buf, ptr, 1n << 52n).ret, -EINVAL, 'npages << 12 wraps to 0');
  const r = ioctl(p, f, HMM_DMIRROR_READ_UNLOCKABLE, buf, ptr, 1);
  assert.equal(r.ret, -EINVAL);
  assert.equal(r.cpages, 77n, 'nothing copied back on error');
  assert.equal(ioctl(p, f, 0x1234, buf, ptr, 1).ret, -EINVAL);
  close(p, f);
  assert.equal(k.printk.warnings.length, 0, k.printk.text());
});

test('READ: faults the range in once, copies the data, cpages == npages, faults == 1; errors -EFAULT', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p);
  const n = 64;
  const buf = mkVma(p, n, RW);
  const data = pattern(n - 2, 0);
  uwrite(p, buf + 2 * PAGE, data); /* pages 0, 1 untouched */
  const ptr = umalloc(p, n * PAGE);
  const r = ioctl(p, f, HMM_DMIRROR_READ, buf, ptr, n);
  assert.deepEqual(r, { ret: 0, cpages: BigInt(n), faults: 1n });
  const got = uread(p, ptr, n * PAGE);
  assert.ok(got.subarray(0, 2 * PAGE).every((x) => x === 0));
  assert.deepEqual(got.subarray(2 * PAGE), data);
  /* Again: everything is in the device page table, no fault. */
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_READ, buf, ptr, n), { ret: 0, cpages: BigInt(n), faults: 0n });

  const none = mkVma(p, 4, 0 /* PROT_NONE */);
  assert.equal(ioctl(p, f, HMM_DMIRROR_READ, none, ptr, 4).ret, -EFAULT);
  assert.equal(ioctl(p, f, HMM_DMIRROR_READ, 0x7000_0000_0000, ptr, 1).ret, -EFAULT, 'no VMA');
  /* bad destination buffer */
  assert.equal(ioctl(p, f, HMM_DMIRROR_READ, buf, 0x1000, n).ret, -EFAULT);
  close(p, f);
  assert.equal(k.printk.warnings.length, 0, k.printk.text());
});

test('WRITE: -EPERM on a read-only VMA, then writes through the mirror; the CPU sees the data', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p);
  const n = 16;
  const ro = mkVma(p, n, RO);
  const ptr = umalloc(p, n * PAGE);
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_READ, ro, ptr, 1), { ret: 0, cpages: 1n, faults: 1n });
  uwrite(p, ptr, pattern(n, 0));
  assert.equal(ioctl(p, f, HMM_DMIRROR_WRITE, ro, ptr, n).ret, -EPERM);
  assert.ok(uread(p, ro, n * PAGE).every((x) => x === 0));

  const rw = mkVma(p, n, RW);
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_WRITE, rw, ptr, n), { ret: 0, cpages: BigInt(n), faults: 1n });
  assert.deepEqual(uread(p, rw, n * PAGE), pattern(n, 0));
  /* bad source buffer */
  assert.equal(ioctl(p, f, HMM_DMIRROR_WRITE, rw, 0x1000, n).ret, -EFAULT);
  close(p, f);
  assert.equal(k.printk.warnings.length, 0, k.printk.text());
});

for (const variant of [{ name: 'private', dev: 0, other: 1, local: 0x22 }, { name: 'coherent', dev: 2, other: 3, local: 0x42 }]) {
  test(`MIGRATE_TO_DEV (${variant.name}): data on the device, snapshot, CPU access brings it back`, () => {
    const k = boot();
    const p = spawn(k);
    const f = openOk(p, `/dev/hmm_dmirror${variant.dev}`);
    const n = 32;
    const buf = mkVma(p, n, RW);
    const data = pattern(n, 1000);
    uwrite(p, buf, data);
    const ptr = umalloc(p, n * PAGE);
    assert.deepEqual(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, buf, ptr, n), { ret: 0, cpages: BigInt(n), faults: 0n });
    assert.deepEqual(uread(p, ptr, n * PAGE), data);
    const snap = umalloc(p, n);
    assert.deepEqual(ioctl(p, f, HMM_DMIRROR_SNAPSHOT, buf, snap, n), { ret: 0, cpages: BigInt(n), faults: 0n });
    assert.ok(uread(p, snap, n).every((x) => x === variant.local), `snapshot ${[...uread(p, snap, n)]}`);
    /* READ through the mirror: no fault (the pages are in the device page table). */
    assert.deepEqual(ioctl(p, f, HMM_DMIRROR_READ, buf, ptr, n), { ret: 0, cpages: BigInt(n), faults: 0n });
    if (variant.name === 'coherent') {
      const r = ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_SYS, buf, ptr, n);
      assert.deepEqual(r, { ret: 0, cpages: BigInt(n), faults: 0n });
    }
    /* The CPU reads the data (private: migrate_to_ram on each page). */
    assert.deepEqual(uread(p, buf, n * PAGE), data);
    assert.deepEqual(ioctl(p, f, HMM_DMIRROR_SNAPSHOT, buf, snap, n).ret, 0);
    assert.ok(uread(p, snap, n).every((x) => x === 0x02 || x === 0x01), `snapshot after ${[...uread(p, snap, n)]}`);
    close(p, f);
    assert.equal(k.printk.warnings.length, 0, k.printk.text());
  });

  test(`MIGRATE errors (${variant.name}): -EINVAL without VMA or VM_READ, -ENOENT for another device's page, RELEASE`, () => {
    const k = boot();
    const p = spawn(k);
    const f0 = openOk(p, `/dev/hmm_dmirror${variant.dev}`);
    const f1 = openOk(p, `/dev/hmm_dmirror${variant.other}`);
    const ptr = umalloc(p, 8 * PAGE);
    const none = mkVma(p, 4, 0);
    assert.equal(ioctl(p, f0, HMM_DMIRROR_MIGRATE_TO_DEV, none, ptr, 4).ret, -EINVAL);
    assert.equal(ioctl(p, f0, HMM_DMIRROR_MIGRATE_TO_DEV, 0x7000_0000_0000, ptr, 1).ret, -EINVAL);
    assert.equal(ioctl(p, f0, HMM_DMIRROR_MIGRATE_TO_SYS, 0x7000_0000_0000, ptr, 1).ret, -EINVAL);
    const buf = mkVma(p, 4, RW);
    uwrite(p, buf, pattern(4, 7));
    assert.deepEqual(ioctl(p, f1, HMM_DMIRROR_MIGRATE_TO_DEV, buf, ptr, 4), { ret: 0, cpages: 4n, faults: 0n });
    assert.equal(ioctl(p, f0, HMM_DMIRROR_MIGRATE_TO_DEV, buf + 3 * PAGE, ptr, 1).ret, -ENOENT);
    const snap = umalloc(p, 4);
    assert.equal(ioctl(p, f0, HMM_DMIRROR_SNAPSHOT, buf, snap, 4).ret, 0);
    const remote = variant.name === 'private' ? 0x00 : 0x52;
    assert.ok(uread(p, snap, 4).every((x) => x === remote), `remote snapshot ${[...uread(p, snap, 4)]}`);
    /* RELEASE evicts device 1's chunks: the pages are back in system RAM. */
    assert.equal(ioctl(p, f1, HMM_DMIRROR_RELEASE, buf, ptr, 1).ret, 0);
    assert.deepEqual(uread(p, buf, 4 * PAGE), pattern(4, 7));
    assert.equal(ioctl(p, f1, HMM_DMIRROR_SNAPSHOT, buf, snap, 4).ret, 0);
    assert.ok(uread(p, snap, 4).every((x) => x === 0x02), `after release ${[...uread(p, snap, 4)]}`);
    /* Migrating again makes a new chunk. */
    assert.deepEqual(ioctl(p, f1, HMM_DMIRROR_MIGRATE_TO_DEV, buf, ptr, 4), { ret: 0, cpages: 4n, faults: 0n });
    close(p, f1);
    close(p, f0);
    assert.deepEqual(uread(p, buf, 4 * PAGE), pattern(4, 7));
    assert.equal(k.printk.warnings.length, 0, k.printk.text());
  });
}

test('MIGRATE_TO_DEV of shared anonymous memory: -ENOENT', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p);
  const ptr = umalloc(p, 4 * PAGE);
  /* mmap(MAP_SHARED | MAP_ANONYMOUS): shmem-backed. */
  const sh = mmapSharedAnon(p, 4);
  uwrite(p, sh, pattern(4, 9));
  const r = ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, sh, ptr, 4);
  assert.equal(r.ret, -ENOENT);
  close(p, f);
});

test('EXCLUSIVE / CHECK_EXCLUSIVE: atomic entries until the CPU touches the pages', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p);
  const n = 8;
  const buf = mkVma(p, n, RW);
  uwrite(p, buf, pattern(n, 0));
  const ptr = umalloc(p, n * PAGE);
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_EXCLUSIVE, buf, ptr, n), { ret: 0, cpages: BigInt(n), faults: 0n });
  assert.deepEqual(uread(p, ptr, n * PAGE), pattern(n, 0));
  assert.equal(ioctl(p, f, HMM_DMIRROR_CHECK_EXCLUSIVE, buf, ptr, n).ret, -EPERM);
  /* The CPU writes: the exclusive entries are restored and the device loses atomic access. */
  uwrite(p, buf, pattern(n, 1));
  assert.equal(ioctl(p, f, HMM_DMIRROR_CHECK_EXCLUSIVE, buf, ptr, n).ret, 0);
  assert.deepEqual(uread(p, buf, n * PAGE), pattern(n, 1));
  close(p, f);
  assert.equal(k.printk.warnings.length, 0, k.printk.text());
});

test('FLAGS: stores the flags; FAIL_ALLOC makes one small allocation fail (the page is not migrated)', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p);
  const buf = mkVma(p, 4, RW);
  uwrite(p, buf, pattern(4, 3));
  const ptr = umalloc(p, 4 * PAGE);
  assert.equal(ioctl(p, f, HMM_DMIRROR_FLAGS, buf, ptr, 1).ret, 0);
  assert.equal(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, buf, ptr, 4).ret, -ENOENT);
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, buf, ptr, 4), { ret: 0, cpages: 4n, faults: 0n });
  assert.deepEqual(uread(p, ptr, 4 * PAGE), pattern(4, 3));
  close(p, f);
});

test('close() evicts the device memory of every process', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p);
  const buf = mkVma(p, 8, RW);
  uwrite(p, buf, pattern(8, 5));
  const ptr = umalloc(p, 8 * PAGE);
  assert.equal(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, buf, ptr, 8).ret, 0);
  const dev = testHmmModule(k)!.devices[0];
  assert.ok(dev.calloc - dev.cfree >= 8);
  close(p, f);
  assert.equal(dev.calloc - dev.cfree, 0);
  /* Pages are system pages again: no device fault needed. */
  for (let i = 0; i < 8; i++) assert.ok(translate(p.mm, buf + i * PAGE, false) >= 0 && translate(p.mm, buf + i * PAGE, false) < k.buddy.end);
  assert.deepEqual(uread(p, buf, 8 * PAGE), pattern(8, 5));
  assert.equal(k.printk.warnings.length, 0, k.printk.text());
});

test('THP: MIGRATE_TO_DEV moves a PMD-mapped THP as one device folio (snapshot 0x26), the CPU faults it back whole', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p);
  const { addr, data } = thpBuffer(p, 1, 0);
  const n = 512;
  const pmdMapped = k.vmstat.thp_fault_alloc;
  assert.ok(pmdMapped >= 1, 'the buffer is a THP');
  const ptr = umalloc(p, n * PAGE);
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, addr, ptr, n), { ret: 0, cpages: BigInt(n), faults: 0n });
  assert.deepEqual(uread(p, ptr, n * PAGE), data);
  const snap = umalloc(p, n);
  assert.equal(ioctl(p, f, HMM_DMIRROR_SNAPSHOT, addr, snap, n).ret, 0);
  const bytes = uread(p, snap, n);
  assert.ok(bytes.every((x) => x === 0x26), `snapshot ${bytes[0]}..${bytes[n - 1]}`);
  assert.deepEqual(uread(p, addr, n * PAGE), data);
  close(p, f);
  assert.equal(k.printk.warnings.length, 0, k.printk.text());
});

test('THP + FAIL_ALLOC: the large device allocation fails once, the split fallback migrates every page; MIGRATE_TO_SYS falls back too', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p);
  const { addr, data } = thpBuffer(p, 1, 2048);
  const n = 512;
  const ptr = umalloc(p, n * PAGE);
  assert.equal(ioctl(p, f, HMM_DMIRROR_FLAGS, addr, ptr, 1).ret, 0);
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, addr, ptr, n), { ret: 0, cpages: BigInt(n), faults: 0n });
  assert.deepEqual(uread(p, ptr, n * PAGE), data);
  assert.deepEqual(uread(p, addr, n * PAGE), data);

  const b = thpBuffer(p, 1, 77);
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, b.addr, ptr, n), { ret: 0, cpages: BigInt(n), faults: 0n });
  assert.equal(ioctl(p, f, HMM_DMIRROR_FLAGS, b.addr, ptr, 1).ret, 0);
  const r = ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_SYS, b.addr, ptr, n);
  assert.equal(r.ret, 0);
  assert.deepEqual(uread(p, b.addr, n * PAGE), b.data);
  close(p, f);
  assert.equal(k.printk.warnings.length, 0, k.printk.text());
});

test('mmap of the device file: zeroed kernel pages via vm_insert_page, SNAPSHOT reads PROT_READ', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p);
  assert.ok(p.mm.mmapLock.tryWriteFast(k.sched));
  const m = runSync(k.sched, doMmap(p.mm, 0, PAGE, PROT_READ, MAP_PRIVATE, f, 0));
  p.mm.mmapLock.writeUnlock(k.sched);
  assert.ok(m > 0, `mmap: ${m}`);
  assert.ok(p.mm.vmaLookup(m)!.flags & VM_MIXEDMAP);
  const snap = umalloc(p, 1);
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_SNAPSHOT, m, snap, 1), { ret: 0, cpages: 1n, faults: 0n });
  assert.equal(uread(p, snap, 1)[0], 0x01);
  assert.ok(uread(p, m, PAGE).every((x) => x === 0));
  close(p, f);
});

for (const off of [0, 128, 256]) {
  test(`THP on the device, munmap of half at page ${off} splits the device folio; the CPU reads the rest`, () => {
    const k = boot();
    const p = spawn(k);
    const f = openOk(p);
    const { addr, data } = thpBuffer(p, 1, 0);
    const n = 512;
    const ptr = umalloc(p, n * PAGE);
    assert.deepEqual(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, addr, ptr, n), { ret: 0, cpages: BigInt(n), faults: 0n });
    assert.ok(p.mm.mmapLock.tryWriteFast(k.sched));
    assert.equal(runSync(k.sched, doMunmap(p.mm, addr + off * PAGE, 256 * PAGE)), 0);
    p.mm.mmapLock.writeUnlock(k.sched);
    k.checkpoint('munmap');
    for (let i = 0; i < n; i++) {
      if (i >= off && i < off + 256) continue;
      assert.deepEqual(uread(p, addr + i * PAGE, PAGE), data.subarray(i * PAGE, (i + 1) * PAGE), `page ${i}`);
    }
    assert.ok(k.vmstat.thp_split_page > 0, 'the device folio was split');
    close(p, f);
    assert.equal(k.printk.warnings.length, 0, k.printk.text());
  });
}

test('historical release_without_eviction: RELEASE with device pages still mapped hangs in memunmap_pages', () => {
  const k = boot({ historical: { release_without_eviction: true } as KernelConfig['historical'] });
  const p = spawn(k);
  const f = openOk(p);
  const buf = mkVma(p, 4, RW);
  uwrite(p, buf, pattern(4, 1));
  const ptr = umalloc(p, 4 * PAGE);
  assert.equal(ioctl(p, f, HMM_DMIRROR_MIGRATE_TO_DEV, buf, ptr, 4).ret, 0);
  assert.throws(() => ioctl(p, f, HMM_DMIRROR_RELEASE, buf, ptr, 1), (e: unknown) => e instanceof KernelBug && e.kind === 'HANG' && /memunmap_pages/.test(e.message));
});
