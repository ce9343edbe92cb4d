// SPDX-License-Identifier: GPL-2.0-only
/**
 * The /sys/kernel/debug/gup_test device through the user layer: the ioctl
 * ABI (numbers, 80-byte struct), every command, errors, pins balanced.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { System } from '../src/user/system.js';
import {
  DUMP_USER_PAGES_TEST, GUP_BASIC_TEST, GUP_FAST_BENCHMARK, GUP_TEST_PATH, PIN_BASIC_TEST, PIN_FAST_BENCHMARK,
  PIN_LONGTERM_BENCHMARK, PIN_LONGTERM_TEST_READ, PIN_LONGTERM_TEST_START, PIN_LONGTERM_TEST_STOP,
  SIZEOF_GUP_TEST, decodeGupTest, encodeGupTest, gupTestInit, GUP_TEST_FLAG_DUMP_PAGES_USE_PIN,
} from '../src/drivers/gup_test.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { FOLL_PIN, FOLL_WRITE } from '../src/kernel/mm/gup.js';
import { O_RDWR } from '../src/kernel/fs/chardev.js';
import { EINVAL } from '../src/kernel/errno.js';

const PAGE = 4096;

function setup(npages: number) {
  const sys = new System({ ramBytes: 128 << 20, nrHugepages: 0, checked: true });
  assert.equal(gupTestInit(sys.kernel), 0);
  const p = sys.spawn('gup_test');
  const fd = p.open(GUP_TEST_PATH, O_RDWR);
  assert.ok(fd >= 0);
  const buf = p.mmap(0, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  assert.ok(buf > 0);
  const arg = p.malloc(SIZEOF_GUP_TEST);
  return { sys, k: sys.kernel, p, fd, buf, arg };
}

function ioctlGup(p: ReturnType<typeof setup>['p'], fd: number, arg: number, cmd: number, fields: { addr: number; size: number; nr: number; flags: number; testFlags?: number; which?: number[] }) {
  const bytes = encodeGupTest({
    getDeltaUsec: 0, putDeltaUsec: 0, addr: fields.addr, size: fields.size, nrPagesPerCall: fields.nr,
    gupFlags: fields.flags, testFlags: fields.testFlags ?? 0, whichPages: fields.which ?? [],
  });
  p.writeBytes(arg, bytes);
  const r = p.ioctl(fd, cmd, arg);
  return { r, out: decodeGupTest(p.readBytes(arg, SIZEOF_GUP_TEST)) };
}

test('struct gup_test encodes to 80 bytes at the kernel offsets', () => {
  const b = encodeGupTest({ getDeltaUsec: 1, putDeltaUsec: 2, addr: 0x1000, size: 0x2000, nrPagesPerCall: 3, gupFlags: 4, testFlags: 5, whichPages: [6, 7] });
  assert.equal(b.length, 80);
  const dv = new DataView(b.buffer);
  assert.equal(dv.getBigUint64(16, true), 0x1000n);
  assert.equal(dv.getUint32(32, true), 3);
  assert.equal(dv.getUint32(44, true), 6);
  assert.equal(dv.getUint32(48, true), 7);
  assert.deepEqual(decodeGupTest(b).whichPages.slice(0, 3), [6, 7, 0]);
});

test('every benchmark/test command gets all pages, reports the size, and puts them back', () => {
  const e = setup(64);
  for (const cmd of [GUP_FAST_BENCHMARK, PIN_FAST_BENCHMARK, PIN_LONGTERM_BENCHMARK, GUP_BASIC_TEST, PIN_BASIC_TEST, DUMP_USER_PAGES_TEST]) {
    const { r, out } = ioctlGup(e.p, e.fd, e.arg, cmd, { addr: e.buf, size: 64 * PAGE, nr: 7, flags: FOLL_WRITE, which: [1, 64, 65] });
    assert.equal(r, 0, `cmd ${cmd.toString(16)}`);
    assert.equal(out.size, 64 * PAGE, `cmd ${cmd.toString(16)}`);
    if (cmd === DUMP_USER_PAGES_TEST) assert.deepEqual(out.whichPages.slice(0, 3), [1, 64, 0], 'out-of-range index zeroed');
  }
  assert.equal(e.k.vmstat.nr_foll_pin_acquired, 3 * 64);
  assert.equal(e.k.vmstat.nr_foll_pin_acquired, e.k.vmstat.nr_foll_pin_released);
  const { r } = ioctlGup(e.p, e.fd, e.arg, DUMP_USER_PAGES_TEST, { addr: e.buf, size: 4 * PAGE, nr: 4, flags: 0, testFlags: GUP_TEST_FLAG_DUMP_PAGES_USE_PIN, which: [2] });
  assert.equal(r, 0);
  assert.ok(e.k.printk.text().includes('gup_test: dump_pages() test'));
  assert.equal(e.k.vmstat.nr_foll_pin_acquired, e.k.vmstat.nr_foll_pin_released);
  assert.deepEqual(e.k.printk.warnings, []);
});

test('argument errors: -EINVAL for size 0, unaligned size, nr_pages_per_call 0, unknown cmd; GUP errors are swallowed', () => {
  const e = setup(4);
  assert.equal(ioctlGup(e.p, e.fd, e.arg, GUP_BASIC_TEST, { addr: e.buf, size: 0, nr: 1, flags: 0 }).r, -EINVAL);
  assert.equal(ioctlGup(e.p, e.fd, e.arg, GUP_BASIC_TEST, { addr: e.buf, size: 100, nr: 1, flags: 0 }).r, -EINVAL);
  assert.equal(ioctlGup(e.p, e.fd, e.arg, GUP_BASIC_TEST, { addr: e.buf, size: PAGE, nr: 0, flags: 0 }).r, -EINVAL);
  assert.equal(e.p.ioctl(e.fd, 0xc0506799, e.arg), -EINVAL);
  // Beyond the mapping: the first call fails, the ioctl succeeds with size 0.
  const beyond = ioctlGup(e.p, e.fd, e.arg, GUP_BASIC_TEST, { addr: e.buf + 64 * PAGE, size: PAGE, nr: 1, flags: 0 });
  assert.equal(beyond.r, 0);
  assert.equal(beyond.out.size, 0);
  // Internal flags (FOLL_PIN) from user space: WARN, nothing gotten.
  const bad = ioctlGup(e.p, e.fd, e.arg, GUP_BASIC_TEST, { addr: e.buf, size: PAGE, nr: 1, flags: FOLL_PIN });
  assert.equal(bad.r, 0);
  assert.equal(bad.out.size, 0);
});

test('PIN_LONGTERM_TEST: START pins, READ copies the pinned pages, STOP (or close) unpins', () => {
  const e = setup(4);
  for (let i = 0; i < 4; i++) e.p.store32(e.buf + i * PAGE, 0x1000 + i);
  const args = e.p.malloc(24);
  const a = new Uint8Array(24);
  const dv = new DataView(a.buffer);
  dv.setBigUint64(0, BigInt(e.buf), true);
  dv.setBigUint64(8, BigInt(4 * PAGE), true);
  dv.setUint32(16, 1 /* USE_WRITE */, true);
  e.p.writeBytes(args, a);
  assert.equal(e.p.ioctl(e.fd, PIN_LONGTERM_TEST_START, args), 0);
  assert.equal(e.p.ioctl(e.fd, PIN_LONGTERM_TEST_START, args), -EINVAL, 'already started');
  assert.equal(e.k.vmstat.nr_foll_pin_acquired - e.k.vmstat.nr_foll_pin_released, 4);
  const dst = e.p.mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const ptr = e.p.malloc(8);
  const pa = new Uint8Array(8);
  new DataView(pa.buffer).setBigUint64(0, BigInt(dst), true);
  e.p.writeBytes(ptr, pa);
  assert.equal(e.p.ioctl(e.fd, PIN_LONGTERM_TEST_READ, ptr), 0);
  for (let i = 0; i < 4; i++) assert.equal(e.p.load32(dst + i * PAGE), 0x1000 + i);
  assert.equal(e.p.ioctl(e.fd, PIN_LONGTERM_TEST_STOP, 0), 0);
  assert.equal(e.k.vmstat.nr_foll_pin_acquired, e.k.vmstat.nr_foll_pin_released);
  assert.equal(e.p.ioctl(e.fd, PIN_LONGTERM_TEST_READ, ptr), -EINVAL, 'not started');
  // Started and then the file closed: release stops it.
  assert.equal(e.p.ioctl(e.fd, PIN_LONGTERM_TEST_START, args), 0);
  assert.equal(e.p.close(e.fd), 0);
  assert.equal(e.k.vmstat.nr_foll_pin_acquired, e.k.vmstat.nr_foll_pin_released);
});
