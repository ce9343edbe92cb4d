// SPDX-License-Identifier: GPL-2.0-only
/**
 * The simulated machine seen from user space: one Kernel, its processes
 * (pid table) and the /proc and /sys pseudo files.
 *
 *   const sys = new System({ checked: true });
 *   const p = sys.spawn('hmm-tests');
 *   const a = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
 *
 * Pseudo files are generated when read (as seq_file does): /proc/meminfo,
 * /proc/self/pagemap (and /proc/<pid>/pagemap), /proc/self/maps,
 * /proc/vmstat, /sys/kernel/mm/transparent_hugepage/{enabled,hpage_pmd_size}.
 */
import { Kernel } from '../kernel/kernel.js';
import type { KernelConfig } from '../kernel/config.js';
import { File, type FileOperations } from '../kernel/fs/chardev.js';
import { EINVAL, EIO } from '../kernel/errno.js';
import { hugetlbReportMeminfo } from '../kernel/mm/hugetlb.js';
import {
  TYPE_MASK, T_NONE, T_PRESENT, T_TABLE, T_SWAP, T_MIGRATION_READ, T_MIGRATION_READ_EXCLUSIVE, T_MIGRATION_WRITE,
  T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_DEVICE_EXCLUSIVE, T_HWPOISON, _PAGE_SOFT_DIRTY, _PAGE_UFFD_WP,
  _PAGE_SPECIAL, pmdIndex, pmdTableOf, pteIndex,
} from '../kernel/mm/pgtable.js';
import { PAGE_SIZE, PG_anon } from '../kernel/mm/page.js';
import { type MmStruct, VM_SOFTDIRTY, VM_READ, VM_WRITE, VM_EXEC, VM_MAYSHARE, VM_GROWSDOWN } from '../kernel/mm/mm_types.js';
import { Process } from './process.js';

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
 * The pagemap entry (u64) of one page of mm at vaddr, as pagemap_pmd_range /
 * pte_to_pagemap_entry compute it (the simulated reader is privileged: PFNs
 * are shown).
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
  let pmdLevel = false;
  if (pmd !== null) {
    const i = pmdIndex(vaddr);
    const t = pmd.f[i] & TYPE_MASK;
    if (t === T_TABLE) {
      const pt = pmd.pte[i]!;
      const j = pteIndex(vaddr);
      v = pt.v[j];
      f = pt.f[j];
    } else if (t !== T_NONE) {
      v = pmd.v[i];
      f = pmd.f[i];
      sub = pteIndex(vaddr);
      pmdLevel = true;
    }
  }
  const t = f & TYPE_MASK;
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
  void pmdLevel;
  if (vma.flags & VM_SOFTDIRTY) flags |= PM_SOFT_DIRTY;
  return flags | (frame & PM_PFRAME_MASK);
}

/** /proc/pid/maps text. */
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

/** A text pseudo file: contents generated at each read from offset 0. */
function textFops(gen: (reader: Process) => string): FileOperations {
  return {
    owner: 'procfs',
    read(file: File, dst: Uint8Array, off: number): number {
      const text = new TextEncoder().encode(gen(file.privateData as Process));
      if (off >= text.length) return 0;
      const n = Math.min(dst.length, text.length - off);
      dst.set(text.subarray(off, off + n));
      return n;
    },
  };
}

/** /proc/pid/pagemap: 8 bytes per virtual page; offset and count must be multiples of 8. */
function pagemapFops(target: () => Process | null): FileOperations {
  return {
    owner: 'procfs',
    read(_file: File, dst: Uint8Array, off: number): number {
      if (off % 8 !== 0 || dst.length % 8 !== 0) return -EINVAL;
      const proc = target();
      if (proc === null || proc.mm === null) return -EIO;
      const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
      const n = dst.length / 8;
      for (let i = 0; i < n; i++) dv.setBigUint64(i * 8, pagemapEntry(proc.mm, (off / 8 + i) * PAGE_SIZE), true);
      return dst.length;
    },
  };
}

export class System {
  readonly kernel: Kernel;
  readonly procs = new Map<number, Process>();
  private nextPid = 1;

  constructor(cfg: Partial<KernelConfig> = {}) {
    this.kernel = new Kernel(cfg);
  }

  /**
   * Create a process with a fresh, empty address space. With `stdio`, fds 1
   * and 2 are a console whose writes go to the host callback (what
   * `hmmsim run` prints); without, they are closed.
   */
  spawn(name = 'proc', opts: { stdio?: (fd: number, text: string) => void } = {}): Process {
    const p = new Process(this, this.nextPid++, name, this.kernel.newMm(), null);
    this.procs.set(p.pid, p);
    if (opts.stdio) {
      const sink = opts.stdio;
      p.console = sink;
      for (const fd of [1, 2]) {
        const fops: FileOperations = {
          owner: 'tty',
          write(_f: File, src: Uint8Array): number {
            sink(fd, new TextDecoder().decode(src));
            return src.length;
          },
        };
        p.fds.set(fd, new File(this.kernel, fops, fd === 1 ? '/dev/stdout' : '/dev/stderr', 1 /* O_WRONLY */));
      }
    }
    return p;
  }

  /** Used by fork(): a new pid and Process around an mm. */
  newProcess(name: string, mm: MmStruct, parent: Process): Process {
    const p = new Process(this, this.nextPid++, name, mm, parent);
    this.procs.set(p.pid, p);
    return p;
  }

  /**
   * The pseudo file at path opened by `reader`, or null: /proc/self/...,
   * /proc/<pid>/..., /proc/meminfo, /proc/vmstat, /sys/kernel/mm/transparent_hugepage/*.
   */
  openPseudo(path: string, reader: Process, flags: number): File | null {
    const k = this.kernel;
    let fops: FileOperations | null = null;
    const m = /^\/proc\/(self|\d+)\/(pagemap|maps)$/.exec(path);
    if (m) {
      const target = (): Process | null => (m[1] === 'self' ? reader : this.procs.get(Number(m[1])) ?? null);
      if (m[1] !== 'self' && !this.procs.has(Number(m[1]))) return null;
      if (m[2] === 'pagemap') fops = pagemapFops(target);
      else fops = textFops(() => {
        const t = target();
        return t && t.mm ? procMaps(t.mm) : '';
      });
    } else {
      switch (path) {
        case '/proc/meminfo':
          fops = textFops(() => `MemTotal:       ${((k.buddy.end - k.buddy.start) * 4)} kB\nMemFree:        ${k.buddy.nrFree * 4} kB\n` + hugetlbReportMeminfo(k));
          break;
        case '/proc/vmstat':
          fops = textFops(() => Object.entries(k.vmstat).map(([n, v]) => `${n} ${v}`).join('\n') + '\n');
          break;
        case '/sys/kernel/mm/transparent_hugepage/hpage_pmd_size':
          fops = textFops(() => '2097152\n');
          break;
        case '/sys/kernel/mm/transparent_hugepage/enabled':
          fops = textFops(() => ['always', 'madvise', 'never'].map((m2) => (m2 === k.config.thp ? `[${m2}]` : m2)).join(' ') + '\n');
          break;
        case '/proc/sys/vm/nr_hugepages':
          fops = textFops(() => `${k.hugetlb.nrHugepages}\n`);
          break;
        default:
          return null;
      }
    }
    const f = new File(k, fops, path, flags);
    f.privateData = reader;
    return f;
  }
}
