// SPDX-License-Identifier: GPL-2.0-only
/**
 * The shared part of tools/testing/selftests/mm/hmm-tests.c: struct
 * hmm_buffer, the constants, the fixtures' types and the helpers
 * (hmm_dmirror_cmd, hmm_migrate_sys_to_dev, ...) that the TEST_Fs
 * (hmm_tests.ts) and benchmark_thp_migration (benchmark.ts) both use. A
 * separate module so benchmark.ts does not import the suite that imports it.
 */
import { TH_LOG, type CaseEnv } from './harness.js';
import { Libc, NULL, O_EXCL, O_RDWR, O_TMPFILE } from './libc.js';
import {
  HMM_DMIRROR_CMD_SIZE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, _IOWR, decodeCmd, encodeCmd,
} from '../drivers/test_hmm/uapi.js';
import { EINTR } from '../kernel/errno.js';


import { type KernelModule, loadModule } from '../kernel/module.js';
import type { K } from '../kernel/sched/sched.js';
import { System } from '../user/system.js';
import { type Process } from '../user/process.js';

/* ------------------------------------------------------------------------ */
/* struct hmm_buffer and the constants                                       */
/* ------------------------------------------------------------------------ */

/** struct hmm_buffer. `self` is the malloc'd struct itself (the C pointer). */
export interface HmmBuffer {
  self: number;
  ptr: number;
  mirror: number;
  size: number;
  fd: number;
  cpages: number;
  faults: number;
}

/* enum { HMM_PRIVATE_DEVICE_ONE, ... } */
export const HMM_PRIVATE_DEVICE_ONE = 0;
export const HMM_PRIVATE_DEVICE_TWO = 1;
export const HMM_COHERENCE_DEVICE_ONE = 2;
export const HMM_COHERENCE_DEVICE_TWO = 3;

export const ONEKB = 1 << 10;
export const ONEMEG = 1 << 20;
export const TWOMEG = 1 << 21;
export const HMM_BUFFER_SIZE = 1024 << 12;
export const NTIMES = 10;

/* Just the flags we need, copied from mm.h: */
export const FOLL_WRITE = 0x01;
export const FOLL_LONGTERM = 0x100;

/* mm/gup_test.h */
export const GUP_TEST_SIZE = 80;
export const G = 'g'.charCodeAt(0);
export const GUP_FAST_BENCHMARK = _IOWR(G, 1, GUP_TEST_SIZE);
export const PIN_FAST_BENCHMARK = _IOWR(G, 2, GUP_TEST_SIZE);
export const PIN_LONGTERM_BENCHMARK = _IOWR(G, 3, GUP_TEST_SIZE);
export const GUP_BASIC_TEST = _IOWR(G, 4, GUP_TEST_SIZE);

/** sizeof(struct hmm_buffer) on x86-64. */
export const SIZEOF_HMM_BUFFER = 48;

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                  */
/* ------------------------------------------------------------------------ */

/** What every case runs on: one machine, the test process and its libc. */
export interface HmmEnv extends CaseEnv {
  sys: System;
  p: Process;
  lc: Libc;
}

export interface HmmSelf {
  fd: number;
  page_size: number;
  page_shift: number;
}
export interface HmmVariant {
  device_number: number;
}
export interface Hmm2Self {
  fd0: number;
  fd1: number;
  page_size: number;
  page_shift: number;
}
export interface Hmm2Variant {
  device_number0: number;
  device_number1: number;
}

export function hmm_open(lc: Libc, unit: number): number {
  const pathname = `/dev/hmm_dmirror${unit}`;
  const fd = lc.open(pathname, O_RDWR, 0);
  if (fd < 0) TH_LOG(`could not open hmm dmirror driver (${pathname})`);
  return fd;
}

export function hmm_is_coherent_type(dev_num: number): boolean {
  return dev_num >= HMM_COHERENCE_DEVICE_ONE;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/** buffer = malloc(sizeof(*buffer)) */
export function hmm_buffer_new(lc: Libc): HmmBuffer {
  return { self: lc.malloc(SIZEOF_HMM_BUFFER), ptr: NULL, mirror: NULL, size: 0, fd: -1, cpages: 0, faults: 0 };
}

/** Fill a struct hmm_dmirror_cmd on the "stack" of `lc`'s process. */
export function cmd_prepare(lc: Libc, buffer: HmmBuffer, npages: number): number {
  const cmd = lc.stack(HMM_DMIRROR_CMD_SIZE);
  lc.writeBytes(cmd, encodeCmd({ addr: BigInt(buffer.ptr), ptr: BigInt(buffer.mirror), npages: BigInt(npages), cpages: 0n, faults: 0n }));
  return cmd;
}

export function cmd_copy_back(lc: Libc, cmd: number, buffer: HmmBuffer): void {
  const c = decodeCmd(lc.readBytes(cmd, HMM_DMIRROR_CMD_SIZE));
  buffer.cpages = Number(c.cpages);
  buffer.faults = Number(c.faults);
}

/**
 * hmm_dmirror_cmd(): the struct lives in user memory; the ioctl is retried on
 * EINTR; cpages/faults are copied back only on success; returns -errno.
 */
export function hmm_dmirror_cmd(lc: Libc, fd: number, request: number, buffer: HmmBuffer, npages: number | bigint): number {
  /* Simulate a device reading system memory. */
  const cmd = cmd_prepare(lc, buffer, 0);
  // npages may be a flags word (HMM_DMIRROR_FLAGS): store it as u64.
  lc.writeU64(cmd + 16, BigInt(npages));
  let ret: number;
  for (;;) {
    ret = lc.ioctl(fd, request, cmd);
    if (ret === 0) break;
    if (lc.errno === EINTR) continue;
    return -lc.errno;
  }
  cmd_copy_back(lc, cmd, buffer);
  return 0;
}

/** The same, as a thread body (anon_teardown): raw ioctl through p.sys. */
export function* hmm_dmirror_cmd_thread(p: Process, fd: number, request: number, cmd: number): K<number> {
  for (;;) {
    const r = (yield* p.sys.ioctl(fd, request, cmd)) as number;
    if (r === 0) return 0;
    if (r === -EINTR) continue;
    return r;
  }
}

export function hmm_buffer_free(lc: Libc, buffer: HmmBuffer | null): void {
  if (buffer === null) return;
  if (buffer.ptr) {
    lc.munmap(buffer.ptr, buffer.size);
    buffer.ptr = NULL;
  }
  lc.free(buffer.mirror);
  lc.free(buffer.self);
}

/** Create a temporary file that will be deleted on close. */
export function hmm_create_file(lc: Libc, size: number): number {
  const path = '/tmp';
  const fd = lc.open(path, O_TMPFILE | O_EXCL | O_RDWR, 0o600);
  if (fd >= 0) {
    let r: number;
    do {
      r = lc.ftruncate(fd, size);
    } while (r === -1 && lc.errno === EINTR);
    if (!r) return fd;
    lc.close(fd);
  }
  return -1;
}

/**
 * hmm_random(): /dev/urandom in the C test. The model uses a seeded
 * generator so that a failing anon_teardown schedule can be replayed.
 */
let randomState = 0x2545f491;
export function hmm_random_seed(seed: number): void {
  randomState = seed >>> 0 || 0x2545f491;
}
export function hmm_random(): number {
  let x = randomState;
  x ^= x << 13;
  x >>>= 0;
  x ^= x >>> 17;
  x ^= x << 5;
  x >>>= 0;
  randomState = x;
  return x;
}

/** anon_teardown: nanoseconds of hmm_nanosleep() per scheduling point. */
export const NS_PER_SCHED_POINT = 10;

export function hmm_migrate_sys_to_dev(lc: Libc, fd: number, buffer: HmmBuffer, npages: number): number {
  return hmm_dmirror_cmd(lc, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages);
}

export function hmm_migrate_dev_to_sys(lc: Libc, fd: number, buffer: HmmBuffer, npages: number): number {
  return hmm_dmirror_cmd(lc, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, npages);
}

/** gup_test_exec(): struct gup_test on the stack, FOLL_WRITE | flags; returns errno. */
export function gup_test_exec(lc: Libc, gup_fd: number, addr: number, cmd: number, npages: number, size: number, flags: number): number {
  const gup = lc.stack(GUP_TEST_SIZE);
  const b = new Uint8Array(GUP_TEST_SIZE);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(16, BigInt(addr), true); /* .addr */
  dv.setBigUint64(24, BigInt(size), true); /* .size */
  dv.setUint32(32, npages, true); /* .nr_pages_per_call */
  dv.setUint32(36, FOLL_WRITE | flags, true); /* .gup_flags */
  lc.writeBytes(gup, b);
  if (lc.ioctl(gup_fd, cmd, gup)) {
    TH_LOG(`ioctl on error\n: ${lc.errName()}`); /* perror() */
    return lc.errno;
  }
  return 0;
}
