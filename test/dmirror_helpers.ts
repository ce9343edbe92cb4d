// SPDX-License-Identifier: GPL-2.0-only
/**
 * Shared helpers for the dmirror*.test.ts files: the test_hmm driver driven
 * through its file operations. A process is an mm with VMAs built directly,
 * `current` points at it, the ioctl argument struct lives in that process's
 * memory (as hmm-tests.c's hmm_dmirror_cmd() puts it on its stack), and CPU
 * accesses go through the simulated MMU and fault path.
 */
import assert from 'node:assert/strict';
import { Kernel } from '../src/kernel/kernel.js';
import type { KernelConfig } from '../src/kernel/config.js';
import { runSync } from '../src/kernel/sched/sched.js';
import { KernelBug } from '../src/kernel/printk.js';
import { MmStruct, Vma, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE, VM_HUGEPAGE } from '../src/kernel/mm/mm_types.js';
import { doMmap, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { enableCheckedMode } from '../src/kernel/mm/debug_vm.js';
import { pmdAlignUp } from '../src/kernel/mm/pgtable.js';
import { translate, doUserAddrFault } from '../src/kernel/arch/fault.js';
import { File, O_RDWR, chrdevOpen, fput } from '../src/kernel/fs/chardev.js';
import { HMM_DMIRROR_CMD_SIZE, decodeCmd, encodeCmd, testHmmInit } from '../src/drivers/test_hmm/index.js';

export const PAGE = 4096;
export const U64 = (1n << 64n) - 1n;

export interface Proc {
  k: Kernel;
  mm: MmStruct;
  /** A scratch RW anon VMA for the ioctl struct and data buffers. */
  scratch: number;
  nextScratch: number;
}

/** A small machine (128 MiB RAM, SPM for the coherent devices) in checked mode with test_hmm loaded. */
export function boot(cfg: Partial<KernelConfig> = {}): Kernel {
  const k = new Kernel({ ramBytes: 128 << 20, nrHugepages: 0, checked: true, ...cfg });
  if (k.config.checked) enableCheckedMode(k);
  assert.equal(testHmmInit(k), 0);
  return k;
}

/** Next free user virtual address handed out by mkVma (VMAs are separated by unmapped gaps). */
const va = { next: 0x10000000 };

/** Insert an anon VMA of npages with the given vm_flags; returns its start. */
export function mkVma(p: Proc, npages: number, flags: number): number {
  const start = va.next;
  va.next += (npages + 16) * PAGE;
  p.mm.insertVma(new Vma(p.mm, start, start + npages * PAGE, flags, start / PAGE));
  return start;
}

export const RW = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE;
export const RO = VM_READ | VM_MAYREAD | VM_MAYWRITE;
/** PROT_NONE: no VM_READ / VM_WRITE. */
export const NONE = 0;

/** A new process (mm) made current, with a scratch VMA for umalloc(). */
export function spawn(k: Kernel): Proc {
  const mm = k.newMm();
  k.current = { pid: mm.id, mm, comm: 'hmm-tests' };
  const p: Proc = { k, mm, scratch: 0, nextScratch: 0 };
  p.scratch = mkVma(p, 4096, RW);
  p.nextScratch = p.scratch;
  return p;
}

/** malloc() from the scratch VMA (page aligned). */
export function umalloc(p: Proc, bytes: number): number {
  const a = p.nextScratch;
  p.nextScratch += Math.ceil(bytes / PAGE) * PAGE;
  return a;
}

/** A CPU access: fault until the MMU translates. */
export function cpu(mm: MmStruct, addr: number, write: boolean): number {
  for (let i = 0; i < 100; i++) {
    const pfn = translate(mm, addr, write);
    if (pfn >= 0) return pfn;
    const r = runSync(mm.kernel.sched, doUserAddrFault(mm, addr, write));
    mm.kernel.checkpoint('fault');
    if (!r.ok) throw new KernelBug('BUG', `test: signal ${r.signal} at 0x${addr.toString(16)}`);
  }
  throw new Error('cpu: no progress');
}

export function uwrite(p: Proc, addr: number, data: Uint8Array): void {
  for (let off = 0; off < data.length;) {
    const a = addr + off;
    const inpage = Math.min(PAGE - (a % PAGE), data.length - off);
    p.k.contents.write(cpu(p.mm, a, true), a % PAGE, data, off, inpage);
    off += inpage;
  }
}

export function uread(p: Proc, addr: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let off = 0; off < len;) {
    const a = addr + off;
    const inpage = Math.min(PAGE - (a % PAGE), len - off);
    p.k.contents.read(cpu(p.mm, a, false), a % PAGE, out, off, inpage);
    off += inpage;
  }
  return out;
}

/** int ptr[i] = base + i over n pages. */
export function pattern(npages: number, base: number): Uint8Array {
  const b = new Uint8Array(npages * PAGE);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < b.length / 4; i++) dv.setInt32(i * 4, base + i, true);
  return b;
}

export function open(p: Proc, path: string): File | number {
  p.k.current = { pid: p.mm.id, mm: p.mm, comm: 'hmm-tests' };
  return runSync(p.k.sched, chrdevOpen(p.k, path, O_RDWR));
}

export function openOk(p: Proc, path = '/dev/hmm_dmirror0'): File {
  const f = open(p, path);
  assert.ok(f instanceof File, `open ${path}: ${String(f)}`);
  return f;
}

export function close(p: Proc, f: File): void {
  runSync(p.k.sched, fput(f));
  p.k.checkpoint('close');
}

export interface Res {
  ret: number;
  cpages: bigint;
  faults: bigint;
}

/**
 * hmm_dmirror_cmd() of hmm-tests.c: the struct in user memory, cpages and
 * faults preset to 77 (they read back 77 when the driver copied nothing
 * back, i.e. on any error).
 */
export function ioctl(p: Proc, f: File, request: number, addr: number | bigint, ptr: number | bigint, npages: number | bigint): Res {
  const arg = umalloc(p, HMM_DMIRROR_CMD_SIZE);
  uwrite(p, arg, encodeCmd({ addr: BigInt(addr) & U64, ptr: BigInt(ptr) & U64, npages: BigInt(npages) & U64, cpages: 77n, faults: 77n }));
  p.k.current = { pid: p.mm.id, mm: p.mm, comm: 'hmm-tests' };
  const ret = runSync(p.k.sched, f.fops.unlockedIoctl!(f, request, arg));
  p.k.checkpoint('ioctl');
  const c = decodeCmd(uread(p, arg, HMM_DMIRROR_CMD_SIZE));
  return { ret, cpages: c.cpages, faults: c.faults };
}

/** mmap(NULL, npages, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS): a shmem-backed VMA. */
export function mmapSharedAnon(p: Proc, npages: number): number {
  const k = p.k;
  assert.ok(p.mm.mmapLock.tryWriteFast(k.sched));
  const a = runSync(k.sched, doMmap(p.mm, 0, npages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, null, 0));
  p.mm.mmapLock.writeUnlock(k.sched);
  assert.ok(a > 0, `mmap: ${a}`);
  return a;
}

/** A 2 MiB-aligned THP-eligible anon VMA of `npmd` PMDs, populated by CPU writes of pattern(…, base). */
export function thpBuffer(p: Proc, npmd: number, base: number): { addr: number; data: Uint8Array } {
  va.next = pmdAlignUp(va.next);
  const addr = mkVma(p, npmd * 512, RW | VM_HUGEPAGE);
  const data = pattern(npmd * 512, base);
  uwrite(p, addr, data);
  return { addr, data };
}
