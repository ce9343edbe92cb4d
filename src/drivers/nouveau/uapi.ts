// SPDX-License-Identifier: GPL-2.0-only
/**
 * The user ABI of the nouveau model, /dev/dri/nouveau-sim.
 *
 * Real ioctls (include/uapi/drm/nouveau_drm.h, DRM_IOWR('d',
 * DRM_COMMAND_BASE + nr, struct)):
 *   DRM_IOCTL_NOUVEAU_SVM_INIT  struct drm_nouveau_svm_init
 *       { __u64 unmanaged_addr; __u64 unmanaged_size; }            16 bytes
 *       Create the SVMM mirroring the caller's mm. -EBUSY if this open
 *       file already has one; -EINVAL without an mm.
 *   DRM_IOCTL_NOUVEAU_SVM_BIND  struct drm_nouveau_svm_bind
 *       { __u64 header, va_start, va_end, npages, stride, result,
 *         reserved0, reserved1; }                                   64 bytes
 *       header = command | priority << 8 | target << 16. Only
 *       NOUVEAU_SVM_BIND_COMMAND__MIGRATE with priority 0 and target
 *       NOUVEAU_SVM_BIND_TARGET__GPU_VRAM, stride 0 is accepted
 *       (-EINVAL otherwise, and for bits above the valid ones or no SVMM).
 *       Migrates every VMA piece of [va_start, va_end) to VRAM. result is
 *       0 (the kernel does not count; the model's driver does, see
 *       NOUVEAU_SIM_STAT).
 *
 * Model-only ioctls (nr 0x30.. in the driver range, not in nouveau_drm.h:
 * a real GPU is driven by command submission, which the model does not
 * have):
 *   NOUVEAU_SIM_GPU_ACCESS  struct { __u64 addr, ptr, npages, access,
 *       faults; }                                                  40 bytes
 *       The GPU reads (access 0), writes (1) or atomically updates (2: a
 *       write that needs the page device-exclusive, taken with
 *       make_device_exclusive()) npages pages at addr through the SVMM, faulting through the
 *       fault buffer; a read copies the data to ptr, a write takes it from
 *       ptr. faults (out): GPU faults taken. -EINVAL: no SVMM, unaligned
 *       addr, npages 0 or > 4096, bad access; -EFAULT: a fault was
 *       cancelled (address not mapped / no permission) or ptr is bad.
 *   NOUVEAU_SIM_CHAN_KILL   no argument: kill the copy channel (what GPU
 *       error recovery does; fault injection for the copy-failure paths).
 *   NOUVEAU_SIM_STAT        struct { __u64 allocated, to_device, to_ram,
 *       evicted, faults, invalidations; }                          48 bytes
 */

/* asm-generic/ioctl.h: nr bits 0..7, type 8..15, size 16..29, direction 30..31. */
const _IOC_NONE = 0;
const _IOC_WRITE = 1;
const _IOC_READ = 2;
function _IOC(dir: number, type: number, nr: number, size: number): number {
  return ((dir << 30) | (type << 8) | nr | (size << 16)) >>> 0;
}
function _IOWR(type: number, nr: number, size: number): number {
  return _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);
}

const D = 'd'.charCodeAt(0);
/** DRM_COMMAND_BASE (drm.h) */
export const DRM_COMMAND_BASE = 0x40;
export const DRM_NOUVEAU_SVM_INIT = 0x08;
export const DRM_NOUVEAU_SVM_BIND = 0x09;

export const DRM_NOUVEAU_SVM_INIT_SIZE = 16;
export const DRM_NOUVEAU_SVM_BIND_SIZE = 64;
export const NOUVEAU_SIM_GPU_ACCESS_SIZE = 40;
export const NOUVEAU_SIM_STAT_SIZE = 48;

export const DRM_IOCTL_NOUVEAU_SVM_INIT = _IOWR(D, DRM_COMMAND_BASE + DRM_NOUVEAU_SVM_INIT, DRM_NOUVEAU_SVM_INIT_SIZE);
export const DRM_IOCTL_NOUVEAU_SVM_BIND = _IOWR(D, DRM_COMMAND_BASE + DRM_NOUVEAU_SVM_BIND, DRM_NOUVEAU_SVM_BIND_SIZE);
export const NOUVEAU_SIM_GPU_ACCESS = _IOWR(D, DRM_COMMAND_BASE + 0x30, NOUVEAU_SIM_GPU_ACCESS_SIZE);
export const NOUVEAU_SIM_CHAN_KILL = _IOC(_IOC_NONE, D, DRM_COMMAND_BASE + 0x31, 0);
export const NOUVEAU_SIM_STAT = _IOWR(D, DRM_COMMAND_BASE + 0x32, NOUVEAU_SIM_STAT_SIZE);

export const NOUVEAU_SVM_BIND_COMMAND_SHIFT = 0;
export const NOUVEAU_SVM_BIND_COMMAND_MASK = (1 << 8) - 1;
export const NOUVEAU_SVM_BIND_PRIORITY_SHIFT = 8;
export const NOUVEAU_SVM_BIND_PRIORITY_MASK = (1 << 8) - 1;
export const NOUVEAU_SVM_BIND_TARGET_SHIFT = 16;
export const NOUVEAU_SVM_BIND_TARGET_MASK = 0xffffffff;
/** NOUVEAU_SVM_BIND_VALID_BITS = 8 + 8 + 32 */
export const NOUVEAU_SVM_BIND_VALID_BITS = 48;
export const NOUVEAU_SVM_BIND_COMMAND__MIGRATE = 0;
export const NOUVEAU_SVM_BIND_TARGET__GPU_VRAM = 0x80000000;

/** The device node. */
export const NOUVEAU_SIM_PATH = '/dev/dri/nouveau-sim';

/** Little-endian u64 fields of a struct. */
export function encodeU64s(vals: readonly bigint[]): Uint8Array {
  const b = new Uint8Array(vals.length * 8);
  const v = new DataView(b.buffer);
  vals.forEach((x, i) => v.setBigUint64(i * 8, BigInt.asUintN(64, x), true));
  return b;
}

export function decodeU64s(b: Uint8Array): bigint[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: bigint[] = [];
  for (let i = 0; i + 8 <= b.length; i += 8) out.push(v.getBigUint64(i, true));
  return out;
}

/** header of a drm_nouveau_svm_bind: MIGRATE to GPU VRAM, priority 0. */
export function svmBindHeader(cmd = NOUVEAU_SVM_BIND_COMMAND__MIGRATE, priority = 0, target = NOUVEAU_SVM_BIND_TARGET__GPU_VRAM): bigint {
  return BigInt(cmd) | (BigInt(priority) << 8n) | (BigInt(target) << 16n);
}
