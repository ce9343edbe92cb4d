// SPDX-License-Identifier: GPL-2.0-only
/**
 * Helpers for test/nouveau*.test.ts: a checked machine with the nouveau
 * model probed, a process with the device open, and the ABI's ioctls with
 * their structs in the process's memory.
 */
import assert from 'node:assert/strict';
import { Kernel } from '../src/kernel/kernel.js';
import type { KernelConfig } from '../src/kernel/config.js';
import { runSync } from '../src/kernel/sched/sched.js';
import { enableCheckedMode } from '../src/kernel/mm/debug_vm.js';
import { File } from '../src/kernel/fs/chardev.js';
import {
  DRM_IOCTL_NOUVEAU_SVM_BIND, DRM_IOCTL_NOUVEAU_SVM_INIT, NOUVEAU_SIM_GPU_ACCESS, NOUVEAU_SIM_PATH, type NouveauDrm,
  decodeU64s, encodeU64s, nouveauDevice, nouveauInit, svmBindHeader,
} from '../src/drivers/nouveau/index.js';
import { type Proc, openOk, spawn, umalloc, uread, uwrite } from './dmirror_helpers.js';

export { PAGE, RW, mkVma, pattern, uread, uwrite, cpu, close, type Proc } from './dmirror_helpers.js';

export interface Gpu {
  k: Kernel;
  p: Proc;
  f: File;
  drm: NouveauDrm;
}

/** A checked 128 MiB machine with nouveau probed (`vramChunks` 2 MiB chunks), a process, the device open. */
export function bootGpu(cfg: Partial<KernelConfig> = {}, vramChunks = 4): Gpu {
  const k = new Kernel({ ramBytes: 128 << 20, nrHugepages: 0, checked: true, ...cfg });
  if (k.config.checked) enableCheckedMode(k);
  assert.equal(nouveauInit(k, { vramChunks }), 0);
  const p = spawn(k);
  const f = openOk(p, NOUVEAU_SIM_PATH);
  return { k, p, f, drm: nouveauDevice(k)! };
}

/** Run an ioctl with a u64 struct in user memory; returns ret and the struct read back. */
export function ioctlU64(g: Gpu, cmd: number, fields: bigint[]): { ret: number; out: bigint[] } {
  const { p, f, k } = g;
  const arg = umalloc(p, fields.length * 8 || 8);
  if (fields.length) uwrite(p, arg, encodeU64s(fields));
  k.current = { pid: p.mm.id, mm: p.mm, comm: 'nouveau-test' };
  const ret = runSync(k.sched, f.fops.unlockedIoctl!(f, cmd, arg));
  k.checkpoint('ioctl');
  return { ret, out: fields.length ? decodeU64s(uread(p, arg, fields.length * 8)) : [] };
}

export function svmInit(g: Gpu): number {
  return ioctlU64(g, DRM_IOCTL_NOUVEAU_SVM_INIT, [0n, 0n]).ret;
}

export function svmBind(g: Gpu, start: number, end: number, header = svmBindHeader(), stride = 0n): number {
  return ioctlU64(g, DRM_IOCTL_NOUVEAU_SVM_BIND, [header, BigInt(start), BigInt(end), BigInt((end - start) / 4096), stride, 77n, 0n, 0n]).ret;
}

/** NOUVEAU_SIM_GPU_ACCESS: returns ret, faults, and for a read the data. */
export function gpuAccess(g: Gpu, addr: number, npages: number, access: number, data?: Uint8Array): { ret: number; faults: bigint; data: Uint8Array } {
  const ptr = umalloc(g.p, npages * 4096);
  if (data) uwrite(g.p, ptr, data);
  const r = ioctlU64(g, NOUVEAU_SIM_GPU_ACCESS, [BigInt(addr), BigInt(ptr), BigInt(npages), BigInt(access), 77n]);
  return { ret: r.ret, faults: r.out[4], data: r.ret === 0 && access === 0 ? uread(g.p, ptr, npages * 4096) : new Uint8Array(0) };
}
