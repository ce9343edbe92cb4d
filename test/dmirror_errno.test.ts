// SPDX-License-Identifier: GPL-2.0-only
/**
 * The error cases of every test_hmm ioctl, one test each, with the errno
 * the kernel returns. The reference is lib/test_hmm.c (mainline) and the
 * core paths it calls:
 *
 *  - dmirror_fops_unlocked_ioctl(): copy_from_user(&cmd) -> -EFAULT;
 *    `cmd.addr & ~PAGE_MASK` -> -EINVAL; `cmd.addr >= cmd.addr +
 *    (cmd.npages << PAGE_SHIFT)` (u64) -> -EINVAL, which covers npages == 0,
 *    a range that wraps past 2^64 and `npages << 12` wrapping to 0; an
 *    unknown command -> -EINVAL. These run before the switch, so RELEASE,
 *    FLAGS and CHECK_EXCLUSIVE get them too, and nothing is copied back on
 *    any error (`if (ret) return ret;` before copy_to_user).
 *  - READ / WRITE fault through hmm_range_fault(HMM_PFN_REQ_FAULT [| WRITE]):
 *    no VMA -> hmm_vma_walk_hole: -EFAULT; no VM_READ -> hmm_vma_walk_test:
 *    -EFAULT; a write to a VMA without VM_WRITE -> hmm_vma_fault: -EPERM.
 *    Another device's private page is faulted back (migrate_to_ram);
 *    a coherent page is used in place. copy_to/from_user(cmd.ptr) -> -EFAULT.
 *  - MIGRATE_TO_DEV / MIGRATE_TO_SYS: `!vma || !(vma->vm_flags & VM_READ)`
 *    -> -EINVAL. MIGRATE_TO_DEV reads the range back through the mirror:
 *    a page that did not move (another device's page) -> -ENOENT.
 *    MIGRATE_TO_SYS selects only this device's pages (pgmap_owner): another
 *    device's page is skipped, cpages 0, return 0.
 *  - SNAPSHOT: hmm_range_fault() without fault flags: no VMA and no
 *    VM_READ are reported per page as HMM_DMIRROR_PROT_ERROR, return 0.
 *  - EXCLUSIVE: make_device_exclusive() -> get_user_pages_remote(FOLL_WRITE):
 *    no VMA, no VM_WRITE (PROT_NONE, read-only) -> -EFAULT; a non-anonymous
 *    folio -> -EOPNOTSUPP.
 *  - CHECK_EXCLUSIVE only reads the device page table (-EPERM if any entry
 *    is ATOMIC); RELEASE and FLAGS do not look at the range at all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSync } from '../src/kernel/sched/sched.js';
import { KernelBug } from '../src/kernel/printk.js';
import { defaultConfig } from '../src/kernel/config.js';
import { System } from '../src/user/system.js';
import type { Process } from '../src/user/process.js';
import { EFAULT, EINVAL, ENOENT, EOPNOTSUPP, EPERM, errnoName } from '../src/kernel/errno.js';
import { isDeviceCoherentPage } from '../src/kernel/mm/memremap.js';
import { translate } from '../src/kernel/arch/fault.js';
import type { File } from '../src/kernel/fs/chardev.js';
import {
  HMM_DMIRROR_CHECK_EXCLUSIVE, HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_FLAGS, HMM_DMIRROR_FLAG_FAIL_ALLOC,
  HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE, HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_ERROR, HMM_DMIRROR_PROT_NONE, HMM_DMIRROR_PROT_READ, HMM_DMIRROR_PROT_WRITE, HMM_DMIRROR_PROT_ZERO,
  HMM_DMIRROR_READ, HMM_DMIRROR_READ_UNLOCKABLE, HMM_DMIRROR_RELEASE, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_WRITE,
  _IOC, _IOC_READ, _IOWR, encodeCmd, testHmmInit, testHmmModule,
} from '../src/drivers/test_hmm/index.js';
import {
  NONE, PAGE, RO, RW, U64, boot, close, cpu, ioctl, mkVma, mmapSharedAnon, openOk, pattern, spawn, umalloc, uread,
  uwrite, type Proc,
} from './dmirror_helpers.js';

const CMDS: ReadonlyArray<[string, number]> = [
  ['READ', HMM_DMIRROR_READ],
  ['WRITE', HMM_DMIRROR_WRITE],
  ['MIGRATE_TO_DEV', HMM_DMIRROR_MIGRATE_TO_DEV],
  ['MIGRATE_TO_SYS', HMM_DMIRROR_MIGRATE_TO_SYS],
  ['SNAPSHOT', HMM_DMIRROR_SNAPSHOT],
  ['EXCLUSIVE', HMM_DMIRROR_EXCLUSIVE],
  ['CHECK_EXCLUSIVE', HMM_DMIRROR_CHECK_EXCLUSIVE],
  ['RELEASE', HMM_DMIRROR_RELEASE],
  ['FLAGS', HMM_DMIRROR_FLAGS],
];

/** Assert ret == -errno and that the driver copied nothing back (cpages/faults still 77). */
function assertErr(r: { ret: number; cpages: bigint; faults: bigint }, errno: number, what: string): void {
  assert.equal(r.ret, -errno, `${what}: expected -${errnoName(errno)}, got ${r.ret < 0 ? '-' + errnoName(-r.ret) : r.ret}`);
  assert.equal(r.cpages, 77n, `${what}: the struct must not be copied back on error`);
  assert.equal(r.faults, 77n, `${what}: the struct must not be copied back on error`);
}

function assertClean(p: Proc): void {
  assert.equal(p.k.printk.warnings.length, 0, p.k.printk.text());
}

/* ------------------------------------------------------------------------ */
/* dmirror_fops_unlocked_ioctl(): the checks every command goes through      */
/* ------------------------------------------------------------------------ */

for (const [name, cmd] of CMDS) {
  test(`${name}: unaligned addr -> -EINVAL`, () => {
    const k = boot();
    const p = spawn(k);
    const f = openOk(p);
    const buf = mkVma(p, 4, RW);
    const ptr = umalloc(p, 4 * PAGE);
    for (const off of [1, 8, 0x800, PAGE - 1]) assertErr(ioctl(p, f, cmd, buf + off, ptr, 1), EINVAL, `addr + ${off}`);
    close(p, f);
    assertClean(p);
  });

  test(`${name}: npages 0 -> -EINVAL`, () => {
    const k = boot();
    const p = spawn(k);
    const f = openOk(p);
    const buf = mkVma(p, 4, RW);
    const ptr = umalloc(p, 4 * PAGE);
    assertErr(ioctl(p, f, cmd, buf, ptr, 0), EINVAL, 'npages 0');
    assertErr(ioctl(p, f, cmd, 0, ptr, 0), EINVAL, 'addr 0, npages 0');
    close(p, f);
    assertClean(p);
  });

  test(`${name}: a range that overflows u64 -> -EINVAL`, () => {
    const k = boot();
    const p = spawn(k);
    const f = openOk(p);
    const buf = mkVma(p, 4, RW);
    const ptr = umalloc(p, 4 * PAGE);
    /* addr + size wraps past 2^64 */
    assertErr(ioctl(p, f, cmd, U64 - 0xfffn, ptr, 2), EINVAL, 'last page + 2 pages');
    /* ends exactly at 2^64: addr + size == 0 <= addr */
    assertErr(ioctl(p, f, cmd, U64 - 0xfffn, ptr, 1), EINVAL, 'range ending at 2^64');
    /* npages << PAGE_SHIFT wraps to 0 */
    assertErr(ioctl(p, f, cmd, buf, ptr, 1n << 52n), EINVAL, 'npages = 2^52');
    /* huge npages from a real address */
    assertErr(ioctl(p, f, cmd, buf, ptr, U64), EINVAL, 'npages = ~0');
    close(p, f);
    assertClean(p);
  });

  test(`${name}: struct hmm_dmirror_cmd not readable -> -EFAULT`, () => {
    const k = boot();
    const p = spawn(k);
    const f = openOk(p);
    k.current = { pid: p.mm.id, mm: p.mm, comm: 'hmm-tests' };
    for (const arg of [0, 0x1000, 0x7000_0000_0000]) assert.equal(runSync(k.sched, f.fops.unlockedIoctl!(f, cmd, arg)), -EFAULT, `arg 0x${arg.toString(16)}`);
    /* A struct straddling the end of a VMA: copy_from_user of 40 bytes fails. */
    const end = mkVma(p, 1, RW) + PAGE;
    assert.equal(runSync(k.sched, f.fops.unlockedIoctl!(f, cmd, end - 16)), -EFAULT);
    close(p, f);
    assertClean(p);
  });
}

test('unknown command -> -EINVAL: other numbers, the READ_UNLOCKABLE of linux-mm, a wrong size or direction', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p);
  const buf = mkVma(p, 4, RW);
  uwrite(p, buf, pattern(4, 1));
  const ptr = umalloc(p, 4 * PAGE);
  const H = 'H'.charCodeAt(0);
  const bad: Array<[string, number]> = [
    ['0', 0],
    ['0x1234', 0x1234],
    ['READ_UNLOCKABLE (nr 9, not in mainline)', HMM_DMIRROR_READ_UNLOCKABLE],
    ['nr 10', _IOWR(H, 10, 40)],
    ['nr 0xff', _IOWR(H, 0xff, 40)],
    ['READ with size 32', _IOWR(H, 0, 32)],
    ['READ with size 48', _IOWR(H, 0, 48)],
    ['_IOR READ', _IOC(_IOC_READ, H, 0, 40)],
    ['READ with type \'h\'', _IOWR('h'.charCodeAt(0), 0, 40)],
  ];
  for (const [what, nr] of bad) assertErr(ioctl(p, f, nr, buf, ptr, 4), EINVAL, what);
  /* The same arguments with the real command work. */
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_READ, buf, ptr, 4), { ret: 0, cpages: 4n, faults: 1n });
  close(p, f);
  assertClean(p);
});

test('npages << PAGE_SHIFT overflowing 64 bits without wrapping the range passes the check (size is truncated, as in the kernel)', () => {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p);
  const buf = mkVma(p, 2, RW);
  uwrite(p, buf, pattern(2, 5));
  const ptr = umalloc(p, 2 * PAGE);
  /* (2^52 + 1) << 12 == 4096 (mod 2^64): a one-page READ */
  assert.deepEqual(ioctl(p, f, HMM_DMIRROR_READ, buf, ptr, (1n << 52n) + 1n), { ret: 0, cpages: 1n, faults: 1n });
  assert.deepEqual(uread(p, ptr, PAGE), pattern(1, 5));
  close(p, f);
  assertClean(p);
});

/* ------------------------------------------------------------------------ */
/* The per-command errors: no VMA, PROT_NONE, read-only, another device's   */
/* page, a bad cmd.ptr                                                       */
/* ------------------------------------------------------------------------ */

/** An address with no VMA around it (the model's user VMAs are far below). */
const NO_VMA = 0x7000_0000_0000;

interface Ctx {
  p: Proc;
  f: File;
  ptr: number;
}

function setup(dev = 0): Ctx {
  const k = boot();
  const p = spawn(k);
  const f = openOk(p, `/dev/hmm_dmirror${dev}`);
  return { p, f, ptr: umalloc(p, 64 * PAGE) };
}

/** n pages of RW anon memory holding pattern(n, base), migrated to device `other`. */
function onOtherDevice(c: Ctx, other: number, n: number, base: number): { buf: number; f1: File } {
  const f1 = openOk(c.p, `/dev/hmm_dmirror${other}`);
  const buf = mkVma(c.p, n, RW);
  uwrite(c.p, buf, pattern(n, base));
  assert.deepEqual(ioctl(c.p, f1, HMM_DMIRROR_MIGRATE_TO_DEV, buf, c.ptr, n), { ret: 0, cpages: BigInt(n), faults: 0n });
  return { buf, f1 };
}

function pfnAt(p: Proc, addr: number): number {
  return translate(p.mm, addr, false);
}

test('READ: no VMA -> -EFAULT, also when the range runs past the end of a VMA', () => {
  const c = setup();
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_READ, NO_VMA, c.ptr, 1), EFAULT, 'no VMA');
  const buf = mkVma(c.p, 4, RW);
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_READ, buf, c.ptr, 5), EFAULT, 'one page past the VMA');
  close(c.p, c.f);
  assertClean(c.p);
});

test('READ: PROT_NONE -> -EFAULT', () => {
  const c = setup();
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_READ, mkVma(c.p, 4, NONE), c.ptr, 4), EFAULT, 'PROT_NONE');
  close(c.p, c.f);
  assertClean(c.p);
});

test('READ: read-only -> 0 (the zero page is read)', () => {
  const c = setup();
  const ro = mkVma(c.p, 4, RO);
  assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_READ, ro, c.ptr, 4), { ret: 0, cpages: 4n, faults: 1n });
  assert.ok(uread(c.p, c.ptr, 4 * PAGE).every((x) => x === 0));
  close(c.p, c.f);
  assertClean(c.p);
});

test('READ: a bad cmd.ptr -> -EFAULT (copy_to_user)', () => {
  const c = setup();
  const buf = mkVma(c.p, 4, RW);
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_READ, buf, 0x1000, 4), EFAULT, 'ptr in no VMA');
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_READ, buf, mkVma(c.p, 4, RO), 4), EFAULT, 'ptr read-only');
  close(c.p, c.f);
  assertClean(c.p);
});

for (const v of [{ name: 'private', dev: 0, other: 1 }, { name: 'coherent', dev: 2, other: 3 }]) {
  test(`READ: another device's ${v.name} page -> 0 (${v.name === 'private' ? 'faulted back to system memory' : 'read in place'})`, () => {
    const c = setup(v.dev);
    const { buf, f1 } = onOtherDevice(c, v.other, 4, 100);
    assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_READ, buf, c.ptr, 4), { ret: 0, cpages: 4n, faults: 1n });
    assert.deepEqual(uread(c.p, c.ptr, 4 * PAGE), pattern(4, 100));
    const pfn = pfnAt(c.p, buf);
    if (v.name === 'private') assert.ok(pfn >= 0 && pfn < c.p.k.buddy.end, 'back in system RAM');
    else assert.ok(isDeviceCoherentPage(c.p.k, pfn), 'still on the other coherent device');
    close(c.p, f1);
    close(c.p, c.f);
    assertClean(c.p);
  });
}

test('WRITE: no VMA -> -EFAULT', () => {
  const c = setup();
  uwrite(c.p, c.ptr, pattern(4, 1));
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_WRITE, NO_VMA, c.ptr, 1), EFAULT, 'no VMA');
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_WRITE, mkVma(c.p, 2, RW), c.ptr, 3), EFAULT, 'past the VMA');
  close(c.p, c.f);
  assertClean(c.p);
});

test('WRITE: PROT_NONE -> -EFAULT', () => {
  const c = setup();
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_WRITE, mkVma(c.p, 4, NONE), c.ptr, 4), EFAULT, 'PROT_NONE');
  close(c.p, c.f);
  assertClean(c.p);
});

test('WRITE: read-only -> -EPERM (also after a READ mapped the pages read-only)', () => {
  const c = setup();
  const ro = mkVma(c.p, 4, RO);
  uwrite(c.p, c.ptr, pattern(4, 1));
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_WRITE, ro, c.ptr, 4), EPERM, 'read-only, not faulted');
  assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_READ, ro, c.ptr, 4).ret, 0);
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_WRITE, ro, c.ptr, 4), EPERM, 'read-only, mirrored read-only');
  assert.ok(uread(c.p, ro, 4 * PAGE).every((x) => x === 0));
  close(c.p, c.f);
  assertClean(c.p);
});

test('WRITE: a bad cmd.ptr -> -EFAULT (copy_from_user, before any fault)', () => {
  const c = setup();
  const buf = mkVma(c.p, 4, RW);
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_WRITE, buf, 0x1000, 4), EFAULT, 'ptr in no VMA');
  /* Nothing was faulted in. */
  assert.equal(pfnAt(c.p, buf), -1);
  close(c.p, c.f);
  assertClean(c.p);
});

for (const v of [{ name: 'private', dev: 0, other: 1 }, { name: 'coherent', dev: 2, other: 3 }]) {
  test(`WRITE: another device's ${v.name} page -> 0 (${v.name === 'private' ? 'faulted back' : 'written in place'})`, () => {
    const c = setup(v.dev);
    const { buf, f1 } = onOtherDevice(c, v.other, 4, 100);
    uwrite(c.p, c.ptr, pattern(4, 9000));
    assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_WRITE, buf, c.ptr, 4), { ret: 0, cpages: 4n, faults: 1n });
    const pfn = pfnAt(c.p, buf);
    if (v.name === 'private') assert.ok(pfn >= 0 && pfn < c.p.k.buddy.end, 'back in system RAM');
    else assert.ok(isDeviceCoherentPage(c.p.k, pfn), 'still on the other coherent device');
    assert.deepEqual(uread(c.p, buf, 4 * PAGE), pattern(4, 9000));
    close(c.p, f1);
    close(c.p, c.f);
    assertClean(c.p);
  });
}

for (const [name, cmd] of [['MIGRATE_TO_DEV', HMM_DMIRROR_MIGRATE_TO_DEV], ['MIGRATE_TO_SYS', HMM_DMIRROR_MIGRATE_TO_SYS]] as const) {
  test(`${name}: no VMA -> -EINVAL, also a range running into a hole`, () => {
    const c = setup();
    assertErr(ioctl(c.p, c.f, cmd, NO_VMA, c.ptr, 1), EINVAL, 'no VMA');
    const buf = mkVma(c.p, 4, RW);
    uwrite(c.p, buf, pattern(4, 3));
    assertErr(ioctl(c.p, c.f, cmd, buf, c.ptr, 5), EINVAL, 'one page past the VMA');
    close(c.p, c.f);
    assertClean(c.p);
  });

  test(`${name}: PROT_NONE (no VM_READ) -> -EINVAL`, () => {
    const c = setup();
    assertErr(ioctl(c.p, c.f, cmd, mkVma(c.p, 4, NONE), c.ptr, 4), EINVAL, 'PROT_NONE');
    /* write-only is not possible on x86 but the check is VM_READ alone */
    assertErr(ioctl(c.p, c.f, cmd, mkVma(c.p, 4, RW & ~1), c.ptr, 4), EINVAL, 'no VM_READ');
    close(c.p, c.f);
    assertClean(c.p);
  });
}

test('MIGRATE_TO_DEV: read-only -> 0 (populated pages and holes migrate, mapped read-only on the device)', () => {
  const c = setup();
  const ro = mkVma(c.p, 4, RO);
  uread(c.p, ro, PAGE); /* page 0: the zero page; pages 1..3: pte_none */
  assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_MIGRATE_TO_DEV, ro, c.ptr, 4), { ret: 0, cpages: 4n, faults: 0n });
  assert.ok(uread(c.p, c.ptr, 4 * PAGE).every((x) => x === 0));
  const snap = umalloc(c.p, 4);
  assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_SNAPSHOT, ro, snap, 4).ret, 0);
  assert.ok(uread(c.p, snap, 4).every((x) => x === (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_READ)), `snapshot ${[...uread(c.p, snap, 4)]}`);
  /*
   * A device WRITE now gets -EFAULT, not the -EPERM of a read-only system
   * page: hmm_vma_handle_pte() reports a device-private entry owned by the
   * caller without faulting, even for REQ_WRITE on a read-only entry, so
   * dmirror_do_fault() sees VALID without WRITE and hits
   * `else if (WARN_ON(range->default_flags & HMM_PFN_WRITE)) return -EFAULT;`.
   */
  uwrite(c.p, c.ptr, pattern(4, 1));
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_WRITE, ro, c.ptr, 4), EFAULT, 'device write to a read-only VMA on this device');
  assert.deepEqual([...new Set(c.p.k.printk.warnings.map((w) => w.rule))], ['dmirror_do_fault: WARN_ON(range->default_flags & HMM_PFN_WRITE)']);
  close(c.p, c.f);
});

test('MIGRATE_TO_DEV: another device\'s page -> -ENOENT (not selected: it has no device page-table entry)', () => {
  for (const v of [{ dev: 0, other: 1 }, { dev: 2, other: 3 }, { dev: 0, other: 2 }, { dev: 2, other: 0 }]) {
    const c = setup(v.dev);
    const { buf, f1 } = onOtherDevice(c, v.other, 4, 100);
    assertErr(ioctl(c.p, c.f, HMM_DMIRROR_MIGRATE_TO_DEV, buf, c.ptr, 4), ENOENT, `dev ${v.dev}, page on dev ${v.other}`);
    close(c.p, f1);
    close(c.p, c.f);
    assertClean(c.p);
  }
});

test('MIGRATE_TO_DEV: shared anonymous memory -> -ENOENT; a bad cmd.ptr -> -EFAULT after migrating', () => {
  const c = setup();
  const sh = mmapSharedAnon(c.p, 4);
  uwrite(c.p, sh, pattern(4, 1));
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_MIGRATE_TO_DEV, sh, c.ptr, 4), ENOENT, 'MAP_SHARED');
  const buf = mkVma(c.p, 4, RW);
  uwrite(c.p, buf, pattern(4, 2));
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 0x1000, 4), EFAULT, 'ptr in no VMA');
  assert.equal(pfnAt(c.p, buf), -1, 'the pages did move to the device');
  assert.deepEqual(uread(c.p, buf, 4 * PAGE), pattern(4, 2));
  close(c.p, c.f);
  assertClean(c.p);
});

test('MIGRATE_TO_DEV: FAIL_ALLOC on a small page -> -ENOENT (that page stays in system memory)', () => {
  const c = setup();
  const buf = mkVma(c.p, 4, RW);
  uwrite(c.p, buf, pattern(4, 2));
  assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_FLAGS, buf, c.ptr, HMM_DMIRROR_FLAG_FAIL_ALLOC).ret, 0);
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_MIGRATE_TO_DEV, buf, c.ptr, 4), ENOENT, 'first page not migrated');
  assert.ok(pfnAt(c.p, buf) >= 0, 'page 0 is still a system page');
  assert.equal(pfnAt(c.p, buf + PAGE), -1, 'page 1 moved');
  close(c.p, c.f);
  assertClean(c.p);
});

test('MIGRATE_TO_SYS: read-only -> 0; nothing on the device -> 0 with cpages 0', () => {
  const c = setup();
  const ro = mkVma(c.p, 4, RO);
  assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_MIGRATE_TO_SYS, ro, c.ptr, 4), { ret: 0, cpages: 0n, faults: 0n });
  uread(c.p, ro, 4 * PAGE);
  assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_MIGRATE_TO_DEV, ro, c.ptr, 4).ret, 0);
  assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_MIGRATE_TO_SYS, ro, c.ptr, 4), { ret: 0, cpages: 4n, faults: 0n });
  assert.ok(uread(c.p, ro, 4 * PAGE).every((x) => x === 0));
  close(c.p, c.f);
  assertClean(c.p);
});

test('MIGRATE_TO_SYS: another device\'s page -> 0, cpages 0 (only this device\'s pages are selected)', () => {
  for (const v of [{ dev: 0, other: 1 }, { dev: 2, other: 3 }, { dev: 0, other: 2 }, { dev: 2, other: 0 }]) {
    const c = setup(v.dev);
    const { buf, f1 } = onOtherDevice(c, v.other, 4, 100);
    const before = pfnAt(c.p, buf);
    assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_MIGRATE_TO_SYS, buf, c.ptr, 4), { ret: 0, cpages: 0n, faults: 0n }, `dev ${v.dev}, page on dev ${v.other}`);
    assert.equal(pfnAt(c.p, buf), before, 'the page did not move');
    close(c.p, f1);
    close(c.p, c.f);
    assertClean(c.p);
  }
});

test('SNAPSHOT: no VMA and PROT_NONE -> 0 with HMM_DMIRROR_PROT_ERROR bytes; read-only -> NONE, then ZERO|READ', () => {
  const c = setup();
  const snap = umalloc(c.p, 8);
  assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_SNAPSHOT, NO_VMA, snap, 2), { ret: 0, cpages: 2n, faults: 0n });
  assert.deepEqual([...uread(c.p, snap, 2)], [HMM_DMIRROR_PROT_ERROR, HMM_DMIRROR_PROT_ERROR]);
  assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_SNAPSHOT, mkVma(c.p, 2, NONE), snap, 2), { ret: 0, cpages: 2n, faults: 0n });
  assert.deepEqual([...uread(c.p, snap, 2)], [HMM_DMIRROR_PROT_ERROR, HMM_DMIRROR_PROT_ERROR]);
  const ro = mkVma(c.p, 2, RO);
  assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_SNAPSHOT, ro, snap, 2), { ret: 0, cpages: 2n, faults: 0n });
  assert.deepEqual([...uread(c.p, snap, 2)], [HMM_DMIRROR_PROT_NONE, HMM_DMIRROR_PROT_NONE]);
  cpu(c.p.mm, ro, false);
  assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_SNAPSHOT, ro, snap, 2).ret, 0);
  assert.deepEqual([...uread(c.p, snap, 2)], [HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ, HMM_DMIRROR_PROT_NONE]);
  /* A range over a VMA and the hole after it: per-page bytes, still 0. */
  const rw = mkVma(c.p, 1, RW);
  uwrite(c.p, rw, pattern(1, 1));
  assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_SNAPSHOT, rw, snap, 2), { ret: 0, cpages: 2n, faults: 0n });
  assert.deepEqual([...uread(c.p, snap, 2)], [HMM_DMIRROR_PROT_WRITE, HMM_DMIRROR_PROT_ERROR]);
  close(c.p, c.f);
  assertClean(c.p);
});

test('SNAPSHOT: another device\'s page -> 0 (private: not VALID, 0x00; coherent: REMOTE|WRITE); a bad cmd.ptr -> -EFAULT', () => {
  for (const v of [{ dev: 0, other: 1, byte: HMM_DMIRROR_PROT_NONE }, { dev: 2, other: 3, byte: HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE | HMM_DMIRROR_PROT_WRITE }]) {
    const c = setup(v.dev);
    const { buf, f1 } = onOtherDevice(c, v.other, 4, 100);
    const snap = umalloc(c.p, 4);
    assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_SNAPSHOT, buf, snap, 4), { ret: 0, cpages: 4n, faults: 0n });
    assert.ok(uread(c.p, snap, 4).every((x) => x === v.byte), `dev ${v.dev}: ${[...uread(c.p, snap, 4)]}`);
    assertErr(ioctl(c.p, c.f, HMM_DMIRROR_SNAPSHOT, buf, 0x1000, 4), EFAULT, 'ptr in no VMA');
    close(c.p, f1);
    close(c.p, c.f);
    assertClean(c.p);
  }
});

test('EXCLUSIVE: no VMA -> -EFAULT (get_user_pages_remote)', () => {
  const c = setup();
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_EXCLUSIVE, NO_VMA, c.ptr, 1), EFAULT, 'no VMA');
  const buf = mkVma(c.p, 2, RW);
  uwrite(c.p, buf, pattern(2, 1));
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_EXCLUSIVE, buf, c.ptr, 3), EFAULT, 'past the VMA');
  close(c.p, c.f);
  assertClean(c.p);
});

test('EXCLUSIVE: PROT_NONE and read-only -> -EFAULT (FOLL_WRITE without VM_WRITE)', () => {
  const c = setup();
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_EXCLUSIVE, mkVma(c.p, 2, NONE), c.ptr, 2), EFAULT, 'PROT_NONE');
  const ro = mkVma(c.p, 2, RO);
  uread(c.p, ro, 2 * PAGE);
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_EXCLUSIVE, ro, c.ptr, 2), EFAULT, 'read-only');
  close(c.p, c.f);
  assertClean(c.p);
});

test('EXCLUSIVE: shared (non-anonymous) memory -> -EOPNOTSUPP; a bad cmd.ptr -> -EFAULT', () => {
  const c = setup();
  const sh = mmapSharedAnon(c.p, 2);
  uwrite(c.p, sh, pattern(2, 1));
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_EXCLUSIVE, sh, c.ptr, 2), EOPNOTSUPP, 'MAP_SHARED');
  const buf = mkVma(c.p, 2, RW);
  uwrite(c.p, buf, pattern(2, 1));
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_EXCLUSIVE, buf, 0x1000, 2), EFAULT, 'ptr in no VMA');
  /* The entries were made before the copy failed. */
  assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_CHECK_EXCLUSIVE, buf, c.ptr, 2).ret, -EPERM);
  close(c.p, c.f);
  assertClean(c.p);
});

for (const v of [{ name: 'private', dev: 0, other: 1 }, { name: 'coherent', dev: 2, other: 3 }]) {
  test(`EXCLUSIVE: another device's ${v.name} page -> 0 (${v.name === 'private' ? 'GUP faults it back first' : 'GUP returns the coherent page, made exclusive in place'})`, () => {
    const c = setup(v.dev);
    const { buf, f1 } = onOtherDevice(c, v.other, 2, 100);
    const before = pfnAt(c.p, buf);
    assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_EXCLUSIVE, buf, c.ptr, 2), { ret: 0, cpages: 2n, faults: 0n });
    assert.deepEqual(uread(c.p, c.ptr, 2 * PAGE), pattern(2, 100));
    assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_CHECK_EXCLUSIVE, buf, c.ptr, 2).ret, -EPERM);
    /* The CPU access restores the PTE. */
    assert.deepEqual(uread(c.p, buf, 2 * PAGE), pattern(2, 100));
    const after = pfnAt(c.p, buf);
    if (v.name === 'private') assert.ok(after >= 0 && after < c.p.k.buddy.end, 'back in system RAM');
    else assert.equal(after, before, 'the same coherent page');
    assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_CHECK_EXCLUSIVE, buf, c.ptr, 2).ret, 0);
    close(c.p, f1);
    close(c.p, c.f);
    assertClean(c.p);
  });
}

test('CHECK_EXCLUSIVE: only the device page table is read: no VMA, PROT_NONE, read-only, another device -> 0; ATOMIC -> -EPERM', () => {
  const c = setup();
  assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_CHECK_EXCLUSIVE, NO_VMA, c.ptr, 4), { ret: 0, cpages: 0n, faults: 0n });
  assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_CHECK_EXCLUSIVE, mkVma(c.p, 4, NONE), c.ptr, 4).ret, 0);
  assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_CHECK_EXCLUSIVE, mkVma(c.p, 4, RO), c.ptr, 4).ret, 0);
  const { buf, f1 } = onOtherDevice(c, 1, 4, 100);
  assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_CHECK_EXCLUSIVE, buf, c.ptr, 4).ret, 0);
  const rw = mkVma(c.p, 4, RW);
  uwrite(c.p, rw, pattern(4, 1));
  assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_EXCLUSIVE, rw + 3 * PAGE, c.ptr, 1).ret, 0);
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_CHECK_EXCLUSIVE, rw, c.ptr, 4), EPERM, 'last page ATOMIC');
  assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_CHECK_EXCLUSIVE, rw, c.ptr, 3).ret, 0, 'the ATOMIC page is outside');
  close(c.p, f1);
  close(c.p, c.f);
  assertClean(c.p);
});

test('RELEASE: the range is not used (no VMA -> 0), but the dispatcher checks still apply', () => {
  const c = setup();
  const buf = mkVma(c.p, 4, RW);
  uwrite(c.p, buf, pattern(4, 6));
  assert.equal(ioctl(c.p, c.f, HMM_DMIRROR_MIGRATE_TO_DEV, buf, c.ptr, 4).ret, 0);
  const dev = testHmmModule(c.p.k)!.devices[0];
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_RELEASE, buf, c.ptr, 0), EINVAL, 'npages 0');
  assert.equal(dev.devmemCount, 1, 'a rejected RELEASE removed nothing');
  assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_RELEASE, NO_VMA, c.ptr, 1), { ret: 0, cpages: 0n, faults: 0n });
  assert.equal(dev.devmemCount, 0);
  assert.deepEqual(uread(c.p, buf, 4 * PAGE), pattern(4, 6));
  close(c.p, c.f);
  assertClean(c.p);
});

test('FLAGS: the flags travel in npages, so FLAGS(0) is -EINVAL and leaves the flags set; the range is not used', () => {
  const c = setup();
  const buf = mkVma(c.p, 4, RW);
  uwrite(c.p, buf, pattern(4, 6));
  /* no VMA at addr: fine */
  assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_FLAGS, NO_VMA, c.ptr, HMM_DMIRROR_FLAG_FAIL_ALLOC), { ret: 0, cpages: 0n, faults: 0n });
  /* clearing them is refused by the npages check */
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_FLAGS, buf, c.ptr, 0), EINVAL, 'FLAGS(0)');
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_FLAGS, buf + 8, c.ptr, 2), EINVAL, 'unaligned');
  /* FAIL_ALLOC is still armed: the first page does not migrate */
  assertErr(ioctl(c.p, c.f, HMM_DMIRROR_MIGRATE_TO_DEV, buf, c.ptr, 4), ENOENT, 'FAIL_ALLOC still set');
  /* one-shot: consumed */
  assert.deepEqual(ioctl(c.p, c.f, HMM_DMIRROR_MIGRATE_TO_DEV, buf, c.ptr, 4), { ret: 0, cpages: 4n, faults: 0n });
  close(c.p, c.f);
  assertClean(c.p);
});

/* ------------------------------------------------------------------------ */
/* The mirrored mm has exited (a fork child kept the fd)                     */
/* ------------------------------------------------------------------------ */

test('mirror of an exited mm: MIGRATE_TO_DEV / MIGRATE_TO_SYS / SNAPSHOT / EXCLUSIVE -> -EINVAL; READ and WRITE loop forever (HANG)', () => {
  const sys = new System(defaultConfig({ ramBytes: 128 << 20, nrHugepages: 0 }));
  const r = testHmmInit(sys.kernel);
  assert.ok(r === 0 || r === -17);
  const parent = sys.spawn('parent');
  const fd = parent.open('/dev/hmm_dmirror0', 2 /* O_RDWR */);
  assert.ok(fd >= 0);
  let child: Process | null = null;
  /* The child inherits the fd and outlives the parent; the mirror is of the parent's mm. */
  parent.fork((c) => {
    child = c;
  });
  parent.exit(0);
  const c = child as unknown as Process;
  const arg = c.malloc(4096);
  // Page-aligned: an anonymous mapping (malloc's small chunks are 16-byte aligned, on the heap).
  const buf = c.mmap(0, 2 * PAGE, 3 /* PROT_READ | PROT_WRITE */, 0x22 /* MAP_PRIVATE | MAP_ANONYMOUS */);
  c.writeBytes(buf, pattern(1, 1));
  const run = (cmd: number): number => {
    c.writeBytes(arg, encodeCmd({ addr: BigInt(buf), ptr: BigInt(buf + PAGE), npages: 1n, cpages: 77n, faults: 77n }));
    return c.ioctl(fd, cmd, arg);
  };
  for (const cmd of [HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_EXCLUSIVE]) assert.equal(run(cmd), -EINVAL);
  /* mmget_not_zero() is not taken: only the device page table is read. */
  assert.equal(run(HMM_DMIRROR_CHECK_EXCLUSIVE), 0);
  assert.equal(run(HMM_DMIRROR_FLAGS), 0);
  /* dmirror_fault() returns 0 for a dead mm, dmirror_do_read() keeps failing: mainline spins. */
  for (const [cmd, fn] of [[HMM_DMIRROR_READ, 'dmirror_read'], [HMM_DMIRROR_WRITE, 'dmirror_write']] as const) {
    assert.throws(() => run(cmd), (e: unknown) => e instanceof KernelBug && e.kind === 'HANG' && e.message.includes(`${fn}: dmirror_fault() returns 0`), fn);
  }
});
