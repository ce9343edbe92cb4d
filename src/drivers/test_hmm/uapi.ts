// SPDX-License-Identifier: GPL-2.0-only
/**
 * lib/test_hmm_uapi.h: the user ABI of the dmirror test driver.
 *
 * `struct hmm_dmirror_cmd { __u64 addr, ptr, npages, cpages, faults; }` is
 * 40 bytes, little-endian (x86-64). The ioctl numbers are
 * `_IOWR('H', nr, struct hmm_dmirror_cmd)` computed with the generic
 * asm-generic/ioctl.h layout (nr bits 0..7, type 8..15, size 16..29,
 * direction 30..31), i.e. the real 32-bit values user space passes.
 */

/* asm-generic/ioctl.h */
export const _IOC_NRBITS = 8;
export const _IOC_TYPEBITS = 8;
export const _IOC_SIZEBITS = 14;
export const _IOC_NRSHIFT = 0;
export const _IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS;
export const _IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS;
export const _IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS;
export const _IOC_NONE = 0;
export const _IOC_WRITE = 1;
export const _IOC_READ = 2;

/** _IOC(dir, type, nr, size) as an unsigned 32-bit number. */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  return ((dir << _IOC_DIRSHIFT) | (type << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT)) >>> 0;
}

/** _IOWR(type, nr, size) */
export function _IOWR(type: number, nr: number, size: number): number {
  return _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);
}

/** sizeof(struct hmm_dmirror_cmd) */
export const HMM_DMIRROR_CMD_SIZE = 40;

const H = 'H'.charCodeAt(0);

export const HMM_DMIRROR_READ = _IOWR(H, 0x00, HMM_DMIRROR_CMD_SIZE); /* 0xc0284800 */
export const HMM_DMIRROR_WRITE = _IOWR(H, 0x01, HMM_DMIRROR_CMD_SIZE);
export const HMM_DMIRROR_MIGRATE_TO_DEV = _IOWR(H, 0x02, HMM_DMIRROR_CMD_SIZE);
export const HMM_DMIRROR_MIGRATE_TO_SYS = _IOWR(H, 0x03, HMM_DMIRROR_CMD_SIZE);
export const HMM_DMIRROR_SNAPSHOT = _IOWR(H, 0x04, HMM_DMIRROR_CMD_SIZE);
export const HMM_DMIRROR_EXCLUSIVE = _IOWR(H, 0x05, HMM_DMIRROR_CMD_SIZE);
export const HMM_DMIRROR_CHECK_EXCLUSIVE = _IOWR(H, 0x06, HMM_DMIRROR_CMD_SIZE);
export const HMM_DMIRROR_RELEASE = _IOWR(H, 0x07, HMM_DMIRROR_CMD_SIZE);
export const HMM_DMIRROR_FLAGS = _IOWR(H, 0x08, HMM_DMIRROR_CMD_SIZE);
/**
 * Defined by the header but not handled by this version of the driver
 * (the dispatcher returns -EINVAL for it, as for any unknown command).
 */
export const HMM_DMIRROR_READ_UNLOCKABLE = _IOWR(H, 0x09, HMM_DMIRROR_CMD_SIZE);

/** Names by command value, for traces. */
export const HMM_DMIRROR_CMD_NAMES: ReadonlyMap<number, string> = new Map([
  [HMM_DMIRROR_READ, 'HMM_DMIRROR_READ'],
  [HMM_DMIRROR_WRITE, 'HMM_DMIRROR_WRITE'],
  [HMM_DMIRROR_MIGRATE_TO_DEV, 'HMM_DMIRROR_MIGRATE_TO_DEV'],
  [HMM_DMIRROR_MIGRATE_TO_SYS, 'HMM_DMIRROR_MIGRATE_TO_SYS'],
  [HMM_DMIRROR_SNAPSHOT, 'HMM_DMIRROR_SNAPSHOT'],
  [HMM_DMIRROR_EXCLUSIVE, 'HMM_DMIRROR_EXCLUSIVE'],
  [HMM_DMIRROR_CHECK_EXCLUSIVE, 'HMM_DMIRROR_CHECK_EXCLUSIVE'],
  [HMM_DMIRROR_RELEASE, 'HMM_DMIRROR_RELEASE'],
  [HMM_DMIRROR_FLAGS, 'HMM_DMIRROR_FLAGS'],
  [HMM_DMIRROR_READ_UNLOCKABLE, 'HMM_DMIRROR_READ_UNLOCKABLE'],
]);

/** HMM_DMIRROR_FLAG_FAIL_ALLOC (1ULL << 0): the next device allocation fails once. */
export const HMM_DMIRROR_FLAG_FAIL_ALLOC = 1n << 0n;

/* Snapshot bytes (HMM_DMIRROR_SNAPSHOT writes one per page to cmd.ptr). */
export const HMM_DMIRROR_PROT_ERROR = 0xff;
export const HMM_DMIRROR_PROT_NONE = 0x00;
export const HMM_DMIRROR_PROT_READ = 0x01;
export const HMM_DMIRROR_PROT_WRITE = 0x02;
export const HMM_DMIRROR_PROT_PMD = 0x04;
export const HMM_DMIRROR_PROT_PUD = 0x08;
export const HMM_DMIRROR_PROT_ZERO = 0x10;
export const HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL = 0x20;
export const HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE = 0x30;
export const HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL = 0x40;
export const HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE = 0x50;

/* Device memory types (0 is reserved to catch uninitialised fields). */
export const HMM_DMIRROR_MEMORY_DEVICE_PRIVATE = 1;
export const HMM_DMIRROR_MEMORY_DEVICE_COHERENT = 2;

/** struct hmm_dmirror_cmd, with u64 fields as bigint (the kernel's view). */
export interface HmmDmirrorCmd {
  addr: bigint;
  ptr: bigint;
  npages: bigint;
  cpages: bigint;
  faults: bigint;
}

/** Decode the 40-byte little-endian struct. */
export function decodeCmd(b: Uint8Array): HmmDmirrorCmd {
  const dv = new DataView(b.buffer, b.byteOffset, HMM_DMIRROR_CMD_SIZE);
  return {
    addr: dv.getBigUint64(0, true),
    ptr: dv.getBigUint64(8, true),
    npages: dv.getBigUint64(16, true),
    cpages: dv.getBigUint64(24, true),
    faults: dv.getBigUint64(32, true),
  };
}

/** Encode the struct as 40 little-endian bytes (u64 fields wrap mod 2^64). */
export function encodeCmd(c: HmmDmirrorCmd): Uint8Array {
  const b = new Uint8Array(HMM_DMIRROR_CMD_SIZE);
  const dv = new DataView(b.buffer);
  const m = (1n << 64n) - 1n;
  dv.setBigUint64(0, c.addr & m, true);
  dv.setBigUint64(8, c.ptr & m, true);
  dv.setBigUint64(16, c.npages & m, true);
  dv.setBigUint64(24, c.cpages & m, true);
  dv.setBigUint64(32, c.faults & m, true);
  return b;
}
