// SPDX-License-Identifier: GPL-2.0-only
/**
 * /proc/pid/pagemap and /proc/pid/maps (fs/proc/task_mmu.c): the kernel
 * side of the pseudo files user space reads (src/user/system.ts opens them).
 * pagemapRead() is pagemap_read(): 8 bytes per virtual page, offset and
 * count multiples of 8 (-EINVAL otherwise).
 */
import { EINVAL } from '../errno.js';
import {
  T_NONE, T_PRESENT, T_TABLE, T_SWAP, T_MIGRATION_READ, T_MIGRATION_READ_EXCLUSIVE, T_MIGRATION_WRITE,
  T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_DEVICE_EXCLUSIVE, T_HWPOISON, _PAGE_SOFT_DIRTY, _PAGE_UFFD_WP,
  _PAGE_SPECIAL, pmdIndex, pmdTableOf, pteIndex, pteType,
} from '../mm/pgtable.js';
import { PAGE_SIZE, PG_anon } from '../mm/page.js';
import { type MmStruct, VM_SOFTDIRTY, VM_READ, VM_WRITE, VM_EXEC, VM_MAYSHARE, VM_GROWSDOWN } from '../mm/mm_types.js';

/* /proc/pid/pagemap bits (fs/proc/task_mmu.c) */
export const PM_PFRAME_MASK = (1n << 55n) - 1n;
export const PM_SOFT_DIRTY = 1n << 55n;
export const PM_MMAP_EXCLUSIVE = 1n << 56n;
export const PM_UFFD_WP = 1n << 57n;
export const PM_FILE = 1n << 61n;
export const PM_SWAP = 1n << 62n;
export const PM_PRESENT = 1n << 63n;

/* swap types of non-swap entries (include/linux/swap.h, MAX_SWAPFILES_SHIFT 5). */
const MAX_SWAPFILES = 24;
const SWP_TYPE: Record<number, number> = {
  [T_SWAP]: 0,
  [T_HWPOISON]: MAX_SWAPFILES,
  [T_MIGRATION_READ]: MAX_SWAPFILES + 1,
  [T_MIGRATION_READ_EXCLUSIVE]: MAX_SWAPFILES + 2,
  [T_MIGRATION_WRITE]: MAX_SWAPFILES + 3,
  [T_DEVICE_PRIVATE_WRITE]: MAX_SWAPFILES + 4,
  [T_DEVICE_PRIVATE_READ]: MAX_SWAPFILES + 5,
  [T_DEVICE_EXCLUSIVE]: MAX_SWAPFILES + 6,
};

/**
 * The pagemap entry (u64) of one page of mm at vaddr, as pagemap_pmd_range() /
 * pte_to_pagemap_entry() compute it (fs/proc/task_mmu.c; the simulated
 * reader is privileged: PFNs are shown). A PMD leaf reports the subpage's
 * frame (pagemap_pmd_range walks it page by page). Caller: a reader of
 * /proc/pid/pagemap (pagemapRead) or a test; the model's walk takes no lock
 * (the kernel holds mmap_lock for read and the PTL).
 */
export function pagemapEntry(mm: MmStruct, vaddr: number): bigint {
  const k = mm.kernel;
  const p = k.pages;
  const vma = mm.vmaLookup(vaddr);
  if (vma === null) return 0n;
  let flags = 0n;
  let frame = 0n;
  const pmd = pmdTableOf(mm.pgd, vaddr, false);
  let v = 0;
  let f = 0;
  let sub = 0;
  if (pmd !== null) {
    const i = pmdIndex(vaddr);
    const t = pteType(pmd.f[i]);
    if (t === T_TABLE) {
      const pt = pmd.pte[i]!;
      const j = pteIndex(vaddr);
      v = pt.v[j];
      f = pt.f[j];
    } else if (t !== T_NONE) {
      v = pmd.v[i];
      f = pmd.f[i];
      sub = pteIndex(vaddr);
    }
  }
  const t = pteType(f);
  if (t === T_PRESENT) {
    const pfn = v + sub;
    frame = BigInt(pfn);
    flags |= PM_PRESENT;
    if (f & _PAGE_SOFT_DIRTY) flags |= PM_SOFT_DIRTY;
    if (f & _PAGE_UFFD_WP) flags |= PM_UFFD_WP;
    const normal = !(f & _PAGE_SPECIAL) && v !== k.zeroPfn && v !== k.hugeZeroPfn;
    if (normal) {
      if (!(p.flags[p.folioPfn(pfn)] & PG_anon)) flags |= PM_FILE;
      if (p.pageMapcount(pfn) === 1) flags |= PM_MMAP_EXCLUSIVE;
    }
  } else if (t !== T_NONE) {
    const type = SWP_TYPE[t] ?? 0;
    const off = t === T_SWAP ? v : v + sub;
    frame = BigInt(type) | (BigInt(off) << 5n);
    flags |= PM_SWAP;
    if (f & _PAGE_SOFT_DIRTY) flags |= PM_SOFT_DIRTY;
    if (f & _PAGE_UFFD_WP) flags |= PM_UFFD_WP;
    if (t !== T_SWAP && t !== T_HWPOISON) {
      const pfn = v + sub;
      if (!(p.flags[p.folioPfn(pfn)] & PG_anon)) flags |= PM_FILE;
      const migration = t === T_MIGRATION_READ || t === T_MIGRATION_READ_EXCLUSIVE || t === T_MIGRATION_WRITE;
      if (!migration && p.pageMapcount(pfn) === 1) flags |= PM_MMAP_EXCLUSIVE;
    }
  }
  if (vma.flags & VM_SOFTDIRTY) flags |= PM_SOFT_DIRTY;
  return flags | (frame & PM_PFRAME_MASK);
}

/** /proc/pid/maps text (show_map_vma() for each VMA). */
export function procMaps(mm: MmStruct): string {
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  return mm.vmas.map((v) => {
    const perms = (v.flags & VM_READ ? 'r' : '-') + (v.flags & VM_WRITE ? 'w' : '-') + (v.flags & VM_EXEC ? 'x' : '-') + (v.flags & VM_MAYSHARE ? 's' : 'p');
    // show_map_vma(): [heap] for the VMA around [start_brk, brk]; [stack] for the stack (the model marks it VM_GROWSDOWN).
    const name = v.file
      ? (v.file.kind === 'hugetlbfs' ? '/anon_hugepage (deleted)' : '/dev/zero (deleted)')
      : v.start <= mm.brk && v.end >= mm.startBrk ? '[heap]' : v.flags & VM_GROWSDOWN ? '[stack]' : '';
    // show_map_vma() prints the file offset; an anonymous VMA shows 0 (its vm_pgoff is the linear index).
    const off = v.file ? v.pgoff * PAGE_SIZE : 0;
    return `${hex(v.start)}-${hex(v.end)} ${perms} ${hex(off)} 00:00 0${name ? ' ' + name : ''}`;
  }).join('\n') + (mm.vmas.length ? '\n' : '');
}

/**
 * pagemap_read(file, buf, count, ppos) for mm: fill dst (count bytes) with
 * the entries of the pages from byte offset `off` (= vaddr / PAGE_SIZE * 8).
 * Returns the byte count, or -EINVAL when off or count is not a multiple of 8.
 */
export function pagemapRead(mm: MmStruct, dst: Uint8Array, off: number): number {
  if (off % 8 !== 0 || dst.length % 8 !== 0) return -EINVAL;
  const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  const n = dst.length / 8;
  for (let i = 0; i < n; i++) dv.setBigUint64(i * 8, pagemapEntry(mm, (off / 8 + i) * PAGE_SIZE), true);
  return dst.length;
}
