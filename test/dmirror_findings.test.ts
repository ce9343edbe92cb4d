// SPDX-License-Identifier: GPL-2.0-only
/**
 * The test_hmm findings of docs/FINDINGS.md ("dmirror" sections), each as
 * the issue reported it, through the user layer (a System, a Process, its
 * fds and ioctls):
 *
 *  - RC2: a device WRITE to a hole migrated to the device. The mirror maps
 *    it read-only (mainline takes MIGRATE_PFN_WRITE from the source entry
 *    only), the WRITE refaults, hmm_range_fault() reports the writable
 *    device-private page itself and dmirror_do_write() memcpy_to_page()s
 *    it: an oops.
 *  - RC3: a device READ of this device's device-private pages after the
 *    mirror lost its entries (mprotect, fork, mremap): dmirror_do_read()
 *    memcpy_from_page()s the device-private page: an oops.
 *  - RC4: a second mirror of the device (a fork child's fd) gets raw
 *    device-private entries; the driver ignores its own device's
 *    MMU_NOTIFY_MIGRATE invalidations, so when the pages migrate back that
 *    mirror keeps entries to freed pages (caught by the checked-mode
 *    coherence check as a stale secondary mapping).
 *
 * Mainline behaviour (the default) must report what the kernel does: a
 * KernelOops (kind OOPS, rule 'BUG: unable to handle page fault', the
 * device-private pfn, the caller) out of the ioctl, which never returns
 * and never copies data (the user buffer keeps its old bytes, no zeros).
 * With config.fixes.dmirror_devmem_fix the same sequences give the right
 * bytes to the device and to the CPU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KernelBug, KernelOops } from '../src/kernel/printk.js';
import { System } from '../src/user/system.js';
import type { Process } from '../src/user/process.js';
import { isDevicePrivatePage } from '../src/kernel/mm/memremap.js';
import { T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_PRESENT, pteType } from '../src/kernel/mm/pgtable.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { MREMAP_FIXED, MREMAP_MAYMOVE } from '../src/kernel/mm/mremap.js';
import {
  HMM_DMIRROR_CMD_SIZE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, decodeCmd, encodeCmd,
  testHmmInit, testHmmModule,
} from '../src/drivers/test_hmm/index.js';
import { ptEntry } from '../src/drivers/test_hmm/mirror.js';
import { DPT_XA_TAG_WRITE } from '../src/drivers/test_hmm/device.js';
import { STALE_AFTER_SKIPPED_MIGRATE, STALE_SECONDARY_MAPPING } from '../src/drivers/test_hmm/check.js';
import { pte } from './migrate_helpers.js';

const PAGE = 4096;
const O_RDWR = 2;
/** A byte the user buffer holds before each ioctl: an oops must leave it there (no data, no zeros). */
const CANARY = 0xee;

interface Env {
  sys: System;
  p: Process;
  fd0: number;
  fd1: number;
  /** The struct hmm_dmirror_cmd and the data buffer, in p's memory. */
  cmd: number;
  buf: number;
}

/** A checked machine with test_hmm, one process with /dev/hmm_dmirror0 and 1 open. */
function boot(fix: boolean): Env {
  const sys = new System({ checked: true, ramBytes: 128 << 20, nrHugepages: 0, fixes: { dmirror_devmem_fix: fix } });
  assert.equal(testHmmInit(sys.kernel), 0);
  const p = sys.spawn('hmm-tests');
  const fd0 = p.open('/dev/hmm_dmirror0', O_RDWR);
  const fd1 = p.open('/dev/hmm_dmirror1', O_RDWR);
  assert.ok(fd0 >= 0 && fd1 >= 0);
  const cmd = p.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const buf = p.mmap(0, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  return { sys, p, fd0, fd1, cmd, buf };
}

interface Res {
  ret: number;
  cpages: bigint;
  faults: bigint;
}

/** One dmirror ioctl of proc on fd over npages at addr, data in e.buf (preset to CANARY). */
function dm(e: Env, proc: Process, fd: number, request: number, addr: number, npages: number): Res {
  proc.fill(e.buf, npages * PAGE, CANARY);
  proc.writeBytes(e.cmd, encodeCmd({ addr: BigInt(addr), ptr: BigInt(e.buf), npages: BigInt(npages), cpages: 0n, faults: 0n }));
  const ret = proc.ioctl(fd, request, e.cmd);
  const c = decodeCmd(proc.readBytes(e.cmd, HMM_DMIRROR_CMD_SIZE));
  return { ret, cpages: c.cpages, faults: c.faults };
}

/** The first byte of each of n pages of proc's memory at addr (CPU reads). */
function firstBytes(proc: Process, addr: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => proc.load8(addr + i * PAGE));
}

/** n anonymous pages with page i filled with byte 10 + i. */
function populated(p: Process, n: number): number {
  const a = p.mmap(0, (n + 1) * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  assert.equal(p.munmap(a + n * PAGE, PAGE), 0); /* a hole after the range */
  for (let i = 0; i < n; i++) p.fill(a + i * PAGE, PAGE, 10 + i);
  return a;
}

/** The device-private page the CPU page table of proc maps at addr (the entry must be one). */
function devicePrivateAt(proc: Process, addr: number): number {
  const [v, f] = pte(proc.mm!, addr);
  const t = pteType(f);
  assert.ok(t === T_DEVICE_PRIVATE_READ || t === T_DEVICE_PRIVATE_WRITE, `a device-private entry at 0x${addr.toString(16)} (type ${t})`);
  return v;
}

/**
 * Run fn, which must oops: a KernelOops from `caller` (`op`) on pfn `want`
 * (a device-private page), logged to dmesg; the user buffer still holds
 * the canary (nothing copied back, no zeros).
 */
function expectOops(e: Env, proc: Process, op: string, caller: string, want: number, npages: number, fn: () => unknown): void {
  let got: unknown = null;
  try {
    fn();
  } catch (x) {
    got = x;
  }
  assert.ok(got instanceof KernelOops, `expected an oops, got ${String(got)}`);
  assert.equal(got.kind, 'OOPS');
  assert.equal(got.rule, 'BUG: unable to handle page fault');
  assert.equal(got.op, op);
  assert.equal(got.caller, caller);
  assert.equal(got.pfn, want, `the oops names pfn 0x${want.toString(16)}`);
  assert.ok(isDevicePrivatePage(e.sys.kernel, got.pfn));
  assert.equal(got.address, 0xffff888000000000n + BigInt(want) * 4096n, 'the direct-map address of the page');
  assert.match(e.sys.kernel.printk.text(), /BUG: unable to handle page fault for address: ffff888/);
  assert.match(got.state, new RegExp(`RIP: 0010:${op}\\nCall Trace:\\n ${caller}`));
  const b = proc.readBytes(e.buf, npages * PAGE);
  assert.ok(b.every((x) => x === CANARY), 'the ioctl copied nothing back: no data, no zeros');
}

/* ---------------- RC2: a device write to a migrated hole ---------------- */

function rc2Setup(e: Env): number {
  const a = e.p.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const r = dm(e, e.p, e.fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a, 1);
  assert.deepEqual([r.ret, r.cpages], [0, 1n], 'the untouched page (a hole) migrates');
  assert.equal(pteType(pte(e.p.mm!, a)[1]), T_DEVICE_PRIVATE_WRITE, 'migrate_vma_insert_page: writable device-private entry (VM_WRITE)');
  return a;
}

test('RC2 (mainline): a device WRITE to a migrated hole refaults and memcpy_to_page()s the device-private page: oops, nothing written', () => {
  const e = boot(false);
  const a = rc2Setup(e);
  const d = devicePrivateAt(e.p, a);
  const backing = e.sys.kernel.pages.zdd[d];
  let got: unknown = null;
  e.p.fill(e.buf, PAGE, 87);
  e.p.writeBytes(e.cmd, encodeCmd({ addr: BigInt(a), ptr: BigInt(e.buf), npages: 1n, cpages: 0n, faults: 0n }));
  try {
    e.p.ioctl(e.fd0, HMM_DMIRROR_WRITE, e.cmd);
  } catch (x) {
    got = x;
  }
  assert.ok(got instanceof KernelOops, String(got));
  assert.deepEqual([got.kind, got.rule, got.op, got.caller, got.pfn], ['OOPS', 'BUG: unable to handle page fault', 'memcpy_to_page', 'dmirror_do_write', d]);
  assert.ok(e.sys.kernel.contents.isZero(backing), 'the device memory (backing page) did not get the bytes: the write did not silently land elsewhere');
  assert.equal(e.sys.kernel.contents.checksum(d), 0, 'nor in the device-private pfn itself');
});

test('RC2 (fix): the hole is mapped writable in the mirror, the WRITE needs no fault, device and CPU read 87', () => {
  const e = boot(true);
  const a = rc2Setup(e);
  e.p.fill(e.buf, PAGE, 87);
  e.p.writeBytes(e.cmd, encodeCmd({ addr: BigInt(a), ptr: BigInt(e.buf), npages: 1n, cpages: 0n, faults: 0n }));
  assert.equal(e.p.ioctl(e.fd0, HMM_DMIRROR_WRITE, e.cmd), 0);
  const c = decodeCmd(e.p.readBytes(e.cmd, HMM_DMIRROR_CMD_SIZE));
  assert.deepEqual([c.cpages, c.faults], [1n, 0n], 'written through the migration\'s own (writable) mirror entry');
  const r = dm(e, e.p, e.fd0, HMM_DMIRROR_READ, a, 1);
  assert.deepEqual([r.ret, r.faults], [0, 0n]);
  assert.ok(e.p.readBytes(e.buf, PAGE).every((x) => x === 87), 'the device reads 87');
  assert.ok(e.p.readBytes(a, PAGE).every((x) => x === 87), 'the CPU reads 87 (migrated back from the backing page)');
  assert.equal(pteType(pte(e.p.mm!, a)[1]), T_PRESENT);
});

test('RC2 (fix): a device write after the mirror lost the entry (mremap) goes through BACKING_PAGE', () => {
  const e = boot(true);
  const a = rc2Setup(e);
  const hole = e.p.mmap(0, 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
  const b = e.p.mremap(a, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, hole + PAGE);
  assert.equal(b, hole + PAGE);
  assert.equal(pteType(pte(e.p.mm!, b)[1]), T_DEVICE_PRIVATE_WRITE, 'mremap moved the writable device-private entry');
  e.p.fill(e.buf, PAGE, 91);
  e.p.writeBytes(e.cmd, encodeCmd({ addr: BigInt(b), ptr: BigInt(e.buf), npages: 1n, cpages: 0n, faults: 0n }));
  assert.equal(e.p.ioctl(e.fd0, HMM_DMIRROR_WRITE, e.cmd), 0);
  const c = decodeCmd(e.p.readBytes(e.cmd, HMM_DMIRROR_CMD_SIZE));
  assert.deepEqual([c.cpages, c.faults], [1n, 1n], 'one fault: hmm_range_fault reported the device-private page');
  assert.ok(e.p.readBytes(b, PAGE).every((x) => x === 91), 'the CPU reads what the device wrote');
});

test('device WRITE to the device\'s own read-only device-private page (after fork): WARN in dmirror_do_fault, -EFAULT (mainline and fix)', () => {
  for (const fix of [false, true]) {
    const e = boot(fix);
    const a = populated(e.p, 1);
    assert.equal(dm(e, e.p, e.fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a, 1).ret, 0);
    assert.ok(e.p.fork(() => {}) > 0);
    assert.equal(pteType(pte(e.p.mm!, a)[1]), T_DEVICE_PRIVATE_READ, 'fork made the parent\'s entry read-only (COW)');
    const r = dm(e, e.p, e.fd0, HMM_DMIRROR_WRITE, a, 1);
    assert.equal(r.ret, -14 /* -EFAULT */);
    assert.deepEqual(e.sys.kernel.printk.warnings.map((w) => w.rule), ['dmirror_do_fault: WARN_ON(range->default_flags & HMM_PFN_WRITE)']);
    assert.deepEqual(firstBytes(e.p, a, 1), [10], 'the data is unchanged');
  }
});

/* ---------------- RC3: device reads of device-private pages ---------------- */

const N = 4;

/** RC3 sequence 1: CPU writes, MIGRATE_TO_DEV of pages 1-2 on device 1, mprotect invalidates the mirror, READ 0-3 via device 1. */
function rc3Mprotect(e: Env): { proc: Process; addr: number; first: number } {
  const a = populated(e.p, N);
  assert.equal(dm(e, e.p, e.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, a + PAGE, 2).ret, 0);
  assert.equal(e.p.mprotect(a, N * PAGE, PROT_READ), 0, 'MMU_NOTIFY_PROTECTION_VMA erases the mirror');
  return { proc: e.p, addr: a, first: 1 };
}

/** RC3 sequence 2: MIGRATE_TO_DEV on device 1, fork (COW: the parent's range is invalidated), READ in the parent. */
function rc3Fork(e: Env): { proc: Process; addr: number; first: number } {
  const a = populated(e.p, N);
  assert.equal(dm(e, e.p, e.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, a, N).ret, 0);
  assert.ok(e.p.fork(() => {}) > 0);
  return { proc: e.p, addr: a, first: 0 };
}

/** RC3 sequence 3: MIGRATE_TO_DEV on device 1, mremap the range elsewhere, READ at the new address. */
function rc3Mremap(e: Env): { proc: Process; addr: number; first: number } {
  const a = populated(e.p, N);
  assert.equal(dm(e, e.p, e.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, a, N).ret, 0);
  const hole = e.p.mmap(0, 2 * N * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
  const b = e.p.mremap(a, N * PAGE, N * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, hole + N * PAGE);
  assert.equal(b, hole + N * PAGE);
  return { proc: e.p, addr: b, first: 0 };
}

const RC3: ReadonlyArray<[string, (e: Env) => { proc: Process; addr: number; first: number }]> = [
  ['write, MIGRATE_TO_DEV a subset on device 1, mprotect, READ via device 1', rc3Mprotect],
  ['MIGRATE_TO_DEV, fork, READ in the parent', rc3Fork],
  ['MIGRATE_TO_DEV, mremap, READ at the new address', rc3Mremap],
];

for (const [name, seq] of RC3) {
  test(`RC3 (mainline) ${name}: dmirror_do_read memcpy_from_page()s a device-private page: oops, no data`, () => {
    const e = boot(false);
    const { proc, addr, first } = seq(e);
    const d = devicePrivateAt(proc, addr + first * PAGE);
    expectOops(e, proc, 'memcpy_from_page', 'dmirror_do_read', d, N, () => dm(e, proc, e.fd1, HMM_DMIRROR_READ, addr, N));
  });

  test(`RC3 (fix) ${name}: the device reads the data through BACKING_PAGE, the CPU agrees`, () => {
    const e = boot(true);
    const { proc, addr } = seq(e);
    const r = dm(e, proc, e.fd1, HMM_DMIRROR_READ, addr, N);
    assert.deepEqual([r.ret, r.cpages], [0, BigInt(N)]);
    const dev = Array.from({ length: N }, (_, i) => proc.readBytes(e.buf + i * PAGE, PAGE));
    dev.forEach((pg, i) => assert.ok(pg.every((x) => x === 10 + i), `device page ${i} reads ${10 + i}`));
    assert.deepEqual(firstBytes(proc, addr, N), [10, 11, 12, 13], 'the CPU reads the same bytes');
  });
}

/* ---------------- RC4: a second mirror of the device ---------------- */

/** fork; the child opens its own device-1 fd; the parent migrates the range to device 1. */
function rc4Setup(e: Env, n: number): { child: Process; cfd: number; a: number } {
  const a = populated(e.p, n);
  let child: Process | null = null;
  let cfd = -1;
  e.p.fork((c) => {
    child = c;
    cfd = c.open('/dev/hmm_dmirror1', O_RDWR);
  });
  assert.ok(child !== null && cfd >= 0);
  const r = dm(e, e.p, e.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, a, n);
  assert.deepEqual([r.ret, r.cpages], [0, BigInt(n)]);
  return { child: child!, cfd, a };
}

test('RC4 (mainline): the child reading the parent\'s migrated range with its own device-1 fd oopses first (RC3)', () => {
  const e = boot(false);
  const { child, cfd, a } = rc4Setup(e, N);
  const d = devicePrivateAt(child, a);
  assert.equal(d, devicePrivateAt(e.p, a), 'try_to_migrate moved the child\'s COW-shared mapping to the same device page');
  expectOops(e, child, 'memcpy_from_page', 'dmirror_do_read', d, N, () => dm(e, child, cfd, HMM_DMIRROR_READ, a, N));
});

test('RC4 (mainline): without the oops (READ ends -EFAULT) the child\'s mirror keeps raw device-private entries; a CPU fault migrates the page back and the entry goes stale', () => {
  const e = boot(false);
  const n = 32; /* one dmirror_fault batch */
  const { child, cfd, a } = rc4Setup(e, n);
  const d0 = devicePrivateAt(child, a);
  // Pages 0-31 are this device's private pages (stored raw, batch 1), page 32
  // is unmapped: hmm_range_fault fails batch 2 with -EFAULT before any copy.
  const r = dm(e, child, cfd, HMM_DMIRROR_READ, a, n + 1);
  assert.equal(r.ret, -14 /* -EFAULT */);
  const mod = testHmmModule(e.sys.kernel)!;
  const cm = [...mod.mirrors.values()].find((m) => m.notifier.mm === child.mm)!;
  assert.equal(Math.floor(cm.pt.get(a / PAGE)! / 4), d0, 'the child\'s mirror holds the device-private page itself');
  // The child's CPU read: migrate_to_ram with the child's VMA. Its
  // MMU_NOTIFY_MIGRATE (owner: device 1) is ignored by every device-1
  // mirror; dmirror_devmem_fault_alloc_and_copy erases only the parent's
  // (the mirror in the backing page). The device page is freed, the
  // child's entry still points at it.
  let got: unknown = null;
  try {
    child.load8(a);
  } catch (x) {
    got = x;
  }
  assert.ok(got instanceof KernelBug && got.kind === 'INVARIANT', String(got));
  assert.equal(got.rule, `after fault: ${STALE_AFTER_SKIPPED_MIGRATE}`);
  assert.match(got.state, new RegExp(`entry pfn 0x${d0.toString(16)} read-only; the CPU maps pfn 0x[0-9a-f]+ there`));
  assert.equal(e.sys.kernel.pages.refcount[d0], 0, 'the device page the entry names is free');
});

test('RC4 (fix): the child reads the data, the CPU read migrates it back, the child reads it again', () => {
  const e = boot(true);
  const { child, cfd, a } = rc4Setup(e, N);
  const read = (): number[] => {
    const r = dm(e, child, cfd, HMM_DMIRROR_READ, a, N);
    assert.deepEqual([r.ret, r.cpages], [0, BigInt(N)]);
    return firstBytes(child, e.buf, N);
  };
  assert.deepEqual(read(), [10, 11, 12, 13], 'through BACKING_PAGE');
  assert.deepEqual(firstBytes(child, a, N), [10, 11, 12, 13], 'the child\'s CPU read migrates the pages back');
  assert.deepEqual(read(), [10, 11, 12, 13], 'the invalidation erased the child\'s entries: refault, no stale page');
  assert.deepEqual(firstBytes(e.p, a, N), [10, 11, 12, 13], 'the parent agrees');
});

test('RC4 (fix): two fds of device 1 in one process: the other mirror erases on the first one\'s migrations, the migrating one keeps its entries', () => {
  const e = boot(true);
  const fdB = e.p.open('/dev/hmm_dmirror1', O_RDWR);
  const a = populated(e.p, N);
  assert.deepEqual(dm(e, e.p, e.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, a, N).cpages, BigInt(N));
  assert.equal(dm(e, e.p, fdB, HMM_DMIRROR_READ, a, N).ret, 0);
  assert.deepEqual(firstBytes(e.p, e.buf, N), [10, 11, 12, 13], 'B reads the device pages through BACKING_PAGE');
  assert.deepEqual(firstBytes(e.p, a, 2), [10, 11], 'CPU faults pages 0-1 back (A serves the fault)');
  const r = dm(e, e.p, fdB, HMM_DMIRROR_READ, a, N);
  assert.deepEqual([r.ret, r.faults], [0, 1n], 'B lost its entries for 0-1 and refaulted');
  assert.deepEqual(firstBytes(e.p, e.buf, N), [10, 11, 12, 13]);
  // hmm-tests migrate_fault: migrating a range partly on the device already
  // keeps A's entries of the pages that stay (the read-back finds them).
  const again = dm(e, e.p, e.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, a, N);
  assert.deepEqual([again.ret, again.cpages], [0, BigInt(N)]);
  assert.deepEqual(firstBytes(e.p, e.buf, N), [10, 11, 12, 13]);
});

/* ---------------- the coherence check itself ---------------- */

test('checked mode: a deliberately stale mirror entry is a stale secondary mapping; a writable entry over a read-only PTE too', () => {
  const e = boot(false);
  const a = populated(e.p, 2);
  assert.equal(dm(e, e.p, e.fd0, HMM_DMIRROR_READ, a, 2).ret, 0);
  const k = e.sys.kernel;
  k.checkpoint('clean'); /* a mirror filled by hmm_range_fault matches */
  const m = [...testHmmModule(k)!.mirrors.values()].find((x) => x.notifier.mm === e.p.mm)!;
  const vpfn = a / PAGE;
  const good = m.pt.get(vpfn)!;
  const other = Math.floor(m.pt.get(vpfn + 1)! / 4);
  m.pt.set(vpfn, ptEntry(other, 0)); /* the page of the next address */
  assert.throws(() => k.checkpoint('poke'), (x: unknown) => x instanceof KernelBug && x.kind === 'INVARIANT' && x.rule === `after poke: ${STALE_SECONDARY_MAPPING}` && /the CPU maps pfn/.test(x.state));
  m.pt.set(vpfn, good);
  k.checkpoint('restored');
  assert.equal(e.p.mprotect(a, 2 * PAGE, PROT_READ), 0);
  assert.equal(m.pt.get(vpfn), undefined, 'mprotect invalidated the mirror');
  assert.equal(dm(e, e.p, e.fd0, HMM_DMIRROR_READ, a, 2).ret, 0);
  m.pt.set(vpfn, ptEntry(Math.floor(m.pt.get(vpfn)! / 4), DPT_XA_TAG_WRITE));
  assert.throws(() => k.checkpoint('poke-write'), (x: unknown) => x instanceof KernelBug && /the mirror entry is writable, the CPU entry is not/.test(x.state));
});

test('device-private contents: the kernel accessors oops, the device copy engine (testdrv\'s) does not', () => {
  const e = boot(false);
  const a = populated(e.p, 1);
  assert.equal(dm(e, e.p, e.fd1, HMM_DMIRROR_MIGRATE_TO_DEV, a, 1).ret, 0);
  const k = e.sys.kernel;
  const d = devicePrivateAt(e.p, a);
  const sys = k.zeroPfn;
  assert.throws(() => k.contents.copy(sys, d), (x: unknown) => x instanceof KernelOops && x.pfn === d && x.op === 'copy_highpage');
  assert.throws(() => k.contents.read(d, 0, new Uint8Array(8), 0, 8, 'test_caller'), (x: unknown) => x instanceof KernelOops && x.caller === 'test_caller');
  assert.throws(() => k.contents.fill(d, 0, 8, 1), (x: unknown) => x instanceof KernelOops && x.op === 'memset_page');
  assert.throws(() => k.contents.readPages(d, 2, new Uint8Array(2 * PAGE), 0), (x: unknown) => x instanceof KernelOops && x.pfn === d);
  assert.ok(k.contents.noDirectMap(d) && !k.contents.noDirectMap(k.zeroPfn));
  k.contents.deviceCopy(d, k.pages.zdd[d], 1); /* the device's own engine reaches its memory */
  assert.equal(k.contents.checksum(d), k.contents.checksum(k.pages.zdd[d]));
  k.contents.deviceZero(d, 1);
  assert.ok(k.contents.isZero(d));
});
