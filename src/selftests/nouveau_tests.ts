// SPDX-License-Identifier: GPL-2.0-only
/**
 * A small selftest-style suite for the nouveau model, driven from a user
 * process through /dev/dri/nouveau-sim (src/drivers/nouveau/uapi.ts), in
 * the spirit of tools/testing/selftests/mm/hmm-tests.c (there is no
 * upstream nouveau SVM selftest; the cases are the model's own). Each case
 * gets a fresh machine and process, as kselftest forks a child per test.
 *
 * Output is kselftest TAP ("ok N nouveau.<case>"); `hmmsim selftest
 * --suite nouveau` runs it.
 */
import { System } from '../user/system.js';
import type { Process } from '../user/process.js';
import type { KernelConfig } from '../kernel/config.js';
import { KernelBug } from '../kernel/printk.js';
import { runSync } from '../kernel/sched/sched.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mmap.js';
import { O_RDWR } from '../kernel/fs/chardev.js';
import {
  DRM_IOCTL_NOUVEAU_SVM_BIND, DRM_IOCTL_NOUVEAU_SVM_INIT, NOUVEAU_SIM_GPU_ACCESS, NOUVEAU_SIM_PATH, NOUVEAU_SIM_STAT,
  decodeU64s, encodeU64s, nouveauInit, nouveauRemove, svmBindHeader,
} from '../drivers/nouveau/index.js';

const PAGE = 4096;

interface Ctx {
  sys: System;
  p: Process;
  fd: number;
}

/** The ioctl with its struct of u64s in the process's memory; returns [ret, fields read back]. */
function ioctl(c: Ctx, cmd: number, fields: bigint[]): [number, bigint[]] {
  const arg = c.p.malloc(Math.max(8, fields.length * 8));
  c.p.writeBytes(arg, encodeU64s(fields));
  const ret = c.p.ioctl(c.fd, cmd, arg);
  const out = decodeU64s(c.p.readBytes(arg, fields.length * 8));
  c.p.free(arg);
  return [ret, out];
}

function anon(c: Ctx, npages: number, byte: number): number {
  const a = c.p.mmap(0, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  if (a < 0) throw new Error(`mmap: ${a}`);
  c.p.fill(a, npages * PAGE, byte);
  return a;
}

function expectEq(what: string, want: number | bigint, got: number | bigint): void {
  if (want !== got) throw new Error(`${what}: expected ${want}, got ${got}`);
}

function expectBytes(what: string, buf: Uint8Array, byte: number): void {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== byte) throw new Error(`${what}: byte ${i} is 0x${buf[i].toString(16)}, expected 0x${byte.toString(16)}`);
}

const bind = (c: Ctx, a: number, n: number) => ioctl(c, DRM_IOCTL_NOUVEAU_SVM_BIND, [svmBindHeader(), BigInt(a), BigInt(a + n * PAGE), BigInt(n), 0n, 0n, 0n, 0n])[0];
const stat = (c: Ctx) => ioctl(c, NOUVEAU_SIM_STAT, [0n, 0n, 0n, 0n, 0n, 0n])[1];
function gpu(c: Ctx, a: number, n: number, access: number, fill = 0): { ret: number; faults: bigint; data: Uint8Array } {
  const ptr = c.p.malloc(n * PAGE);
  if (access !== 0) c.p.fill(ptr, n * PAGE, fill);
  const [ret, out] = ioctl(c, NOUVEAU_SIM_GPU_ACCESS, [BigInt(a), BigInt(ptr), BigInt(n), BigInt(access), 0n]);
  const data = ret === 0 && access === 0 ? c.p.readBytes(ptr, n * PAGE) : new Uint8Array(0);
  c.p.free(ptr);
  return { ret, faults: out[4], data };
}

/** The cases: name -> body (throws to fail). */
const CASES: Array<[string, (c: Ctx) => void]> = [
  ['svm_init_twice', (c) => {
    expectEq('second SVM_INIT', -16, ioctl(c, DRM_IOCTL_NOUVEAU_SVM_INIT, [0n, 0n])[0]);
  }],
  ['migrate_to_vram_and_back', (c) => {
    const a = anon(c, 16, 0x5a);
    expectEq('SVM_BIND', 0, bind(c, a, 16));
    expectEq('device pages allocated', 16n, stat(c)[0]);
    expectBytes('CPU read after migration', c.p.readBytes(a, 16 * PAGE), 0x5a);
    expectEq('pages migrated back by CPU faults', 16n, stat(c)[2]);
    expectEq('device pages allocated after', 0n, stat(c)[0]);
  }],
  ['gpu_read_faults', (c) => {
    const a = anon(c, 4, 0x11);
    const r = gpu(c, a, 4, 0);
    expectEq('ret', 0, r.ret);
    expectEq('faults', 4n, r.faults);
    expectBytes('GPU read', r.data, 0x11);
    expectEq('faults on second read', 0n, gpu(c, a, 4, 0).faults);
  }],
  ['gpu_write_cpu_read', (c) => {
    const a = anon(c, 4, 0);
    expectEq('GPU write', 0, gpu(c, a, 4, 1, 0x33).ret);
    expectBytes('CPU read of the GPU write', c.p.readBytes(a, 4 * PAGE), 0x33);
  }],
  ['gpu_write_vram_cpu_read', (c) => {
    const a = anon(c, 4, 0x01);
    expectEq('SVM_BIND', 0, bind(c, a, 4));
    const r = gpu(c, a, 4, 1, 0x44);
    expectEq('GPU write to VRAM', 0, r.ret);
    expectEq('no faults (mapped by the bind)', 0n, r.faults);
    expectBytes('CPU read migrates the GPU write back', c.p.readBytes(a, 4 * PAGE), 0x44);
  }],
  ['gpu_access_after_munmap', (c) => {
    const a = anon(c, 2, 0x22);
    expectEq('GPU read', 0, gpu(c, a, 2, 0).ret);
    // The struct and buffer first, so that no later mmap reuses the hole.
    const arg = c.p.malloc(40);
    const ptr = c.p.malloc(PAGE);
    expectEq('munmap', 0, c.p.munmap(a, 2 * PAGE));
    c.p.writeBytes(arg, encodeU64s([BigInt(a), BigInt(ptr), 1n, 0n, 0n]));
    expectEq('GPU read after munmap', -14, c.p.ioctl(c.fd, NOUVEAU_SIM_GPU_ACCESS, arg));
  }],
  ['device_removal_evicts', (c) => {
    const a = anon(c, 8, 0x77);
    expectEq('SVM_BIND', 0, bind(c, a, 8));
    runSync(c.sys.kernel.sched, nouveauRemove(c.sys.kernel));
    expectBytes('data after device removal', c.p.readBytes(a, 8 * PAGE), 0x77);
    expectEq('ioctl after removal', -19, ioctl(c, NOUVEAU_SIM_STAT, [0n, 0n, 0n, 0n, 0n, 0n])[0]);
  }],
];

/** Full names of the cases, in order. */
export const NOUVEAU_CASE_NAMES: readonly string[] = CASES.map(([n]) => `nouveau.${n}`);

export interface NouveauSuiteResult {
  pass: number;
  fail: number;
  cases: Array<{ name: string; ok: boolean; reason: string }>;
}

/** Run the suite (cases whose name matches `filter`, all by default), printing TAP to `out` if given. */
export function runNouveauSuite(cfg: Partial<KernelConfig>, filter: (name: string) => boolean = () => true, out: ((line: string) => void) | null = null): NouveauSuiteResult {
  const sel = CASES.filter(([n]) => filter(`nouveau.${n}`));
  const res: NouveauSuiteResult = { pass: 0, fail: 0, cases: [] };
  out?.('TAP version 13');
  out?.(`1..${sel.length}`);
  sel.forEach(([name, body], i) => {
    const full = `nouveau.${name}`;
    out?.(`#  RUN           ${full} ...`);
    let reason = '';
    try {
      const sys = new System({ ramBytes: 64 << 20, nrHugepages: 0, ...cfg });
      const r = nouveauInit(sys.kernel, { vramChunks: 2 });
      if (r) throw new Error(`nouveau probe: ${r}`);
      const p = sys.spawn('nouveau-test');
      const fd = p.open(NOUVEAU_SIM_PATH, O_RDWR);
      if (fd < 0) throw new Error(`open ${NOUVEAU_SIM_PATH}: ${fd}`);
      const c: Ctx = { sys, p, fd };
      expectEq('SVM_INIT', 0, ioctl(c, DRM_IOCTL_NOUVEAU_SVM_INIT, [0n, 0n])[0]);
      body(c);
    } catch (e) {
      reason = e instanceof KernelBug ? `${e.kind}: ${e.rule}` : e instanceof Error ? e.message : String(e);
    }
    const ok = reason === '';
    if (ok) res.pass++;
    else res.fail++;
    res.cases.push({ name: full, ok, reason });
    if (!ok) out?.(`# ${full}: ${reason}`);
    out?.(`#            ${ok ? 'OK' : 'FAIL'}  ${full}`);
    out?.(`${ok ? 'ok' : 'not ok'} ${i + 1} ${full}`);
  });
  out?.(`# ${res.fail ? 'FAILED' : 'PASSED'}: ${res.pass} / ${sel.length} tests passed.`);
  out?.(`# Totals: pass:${res.pass} fail:${res.fail} xfail:0 xpass:0 skip:0 error:0`);
  return res;
}
