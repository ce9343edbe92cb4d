// SPDX-License-Identifier: GPL-2.0-only
/**
 * The x86 MMU and user page fault entry (arch/x86/mm/fault.c).
 *
 * translate() is the hardware walk: it succeeds only on a present,
 * accessible PTE (or PMD leaf) with write permission when writing, and sets
 * the accessed/dirty bits as the CPU does. Anything else is a page fault:
 * doUserAddrFault() finds the VMA, checks the access (access_error()), calls
 * handle_mm_fault() under mmap_lock (read), retries on VM_FAULT_RETRY, and
 * turns failures into the signal Linux delivers:
 *   no VMA                     SIGSEGV / SEGV_MAPERR
 *   access not allowed by VMA  SIGSEGV / SEGV_ACCERR
 *   VM_FAULT_SIGBUS            SIGBUS  / BUS_ADRERR
 *   VM_FAULT_HWPOISON          SIGBUS  / BUS_MCEERR_AR
 *   VM_FAULT_SIGSEGV           SIGSEGV / SEGV_ACCERR
 *   VM_FAULT_OOM               the OOM killer: SIGKILL
 */
import type { MmStruct } from '../mm/mm_types.js';
import { VM_READ, VM_WRITE, VM_EXEC } from '../mm/mm_types.js';
import {
  TYPE_MASK, T_PRESENT, T_TABLE, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PROTNONE, _PAGE_RW, pmdIndex, pmdTableOf, pteIndex,
} from '../mm/pgtable.js';
import {
  FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_KILLABLE, FAULT_FLAG_USER, FAULT_FLAG_WRITE, FAULT_FLAG_TRIED, VM_FAULT_HWPOISON,
  VM_FAULT_HWPOISON_LARGE, VM_FAULT_OOM, VM_FAULT_RETRY, VM_FAULT_SIGBUS, VM_FAULT_SIGSEGV, handleMmFault,
} from '../mm/memory.js';
import type { K } from '../sched/sched.js';
import { KernelBug } from '../printk.js';

export const SIGBUS = 7;
export const SIGKILL = 9;
export const SIGSEGV = 11;
export const SEGV_MAPERR = 1;
export const SEGV_ACCERR = 2;
export const BUS_ADRERR = 2;
export const BUS_MCEERR_AR = 4;

export type FaultOutcome = { ok: true } | { ok: false; signal: number; code: number; addr: number };

const OK: FaultOutcome = { ok: true };

/** Retries of one fault before the model reports a livelock. */
const MAX_RETRIES = 10000;

/**
 * The hardware page walk: the pfn backing addr if the access can complete
 * without a fault, else -1. Sets accessed (and dirty for writes). These
 * bit-setting writes are the one place entries change outside pte_ops.ts:
 * the MMU only adds bits, which no secondary MMU needs to hear about.
 */
export function translate(mm: MmStruct, addr: number, write: boolean): number {
  const pmd = pmdTableOf(mm.pgd, addr, false);
  if (pmd === null) return -1;
  const pi = pmdIndex(addr);
  const pf = pmd.f[pi];
  const pt = pf & TYPE_MASK;
  if (pt === T_TABLE) {
    const table = pmd.pte[pi]!;
    const i = pteIndex(addr);
    const f = table.f[i];
    if ((f & TYPE_MASK) !== T_PRESENT || (f & _PAGE_PROTNONE)) return -1;
    if (write) {
      if (!(f & _PAGE_RW)) return -1;
      table.f[i] = f | _PAGE_ACCESSED | _PAGE_DIRTY;
    } else if (!(f & _PAGE_ACCESSED)) table.f[i] = f | _PAGE_ACCESSED;
    return table.v[i];
  }
  if (pt !== T_PRESENT || (pf & _PAGE_PROTNONE)) return -1;
  if (write) {
    if (!(pf & _PAGE_RW)) return -1;
    pmd.f[pi] = pf | _PAGE_ACCESSED | _PAGE_DIRTY;
  } else if (!(pf & _PAGE_ACCESSED)) pmd.f[pi] = pf | _PAGE_ACCESSED; /* the walker sets A on a PMD leaf too */
  return pmd.v[pi] + pteIndex(addr);
}

/**
 * do_user_addr_fault(): handle a user-mode fault at addr. Takes and releases
 * mmap_lock (read). Returns {ok:true} when the access can be retried, or the
 * signal to deliver.
 */
export function* doUserAddrFault(mm: MmStruct, addr: number, write: boolean): K<FaultOutcome> {
  if (mm.kernel.tracer !== null && mm.kernel.tracer.enter('do_user_addr_fault')) return yield* mm.kernel.tracer.span('do_user_addr_fault', addr, doUserAddrFault(mm, addr, write));
  const k = mm.kernel;
  if (k.clock !== null) k.clock.charge('fault entry/exit', k.clock.profile.kernel.faultEntryExitNs);
  const s = k.sched;
  let flags = FAULT_FLAG_USER | FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE | (write ? FAULT_FLAG_WRITE : 0);
  for (let tries = 0; ; tries++) {
    if (tries > MAX_RETRIES) throw new KernelBug('HANG', `page fault at 0x${addr.toString(16)} retried ${MAX_RETRIES} times (livelock)`);
    if (!mm.mmapLock.tryReadFast(s)) yield* mm.mmapLock.readLock(s);
    const vma = mm.vmaLookup(addr);
    if (vma === null) {
      mm.mmapLock.readUnlock(s);
      return { ok: false, signal: SIGSEGV, code: SEGV_MAPERR, addr };
    }
    /* access_error() */
    if (write ? !(vma.flags & VM_WRITE) : !(vma.flags & (VM_READ | VM_WRITE | VM_EXEC))) {
      mm.mmapLock.readUnlock(s);
      return { ok: false, signal: SIGSEGV, code: SEGV_ACCERR, addr };
    }
    const r = yield* handleMmFault(vma, addr, flags);
    mm.mmapLock.readUnlock(s);
    if (r & VM_FAULT_RETRY) {
      flags |= FAULT_FLAG_TRIED;
      if (s.exploring) yield s.yieldPoint('page fault retry', addr);
      continue;
    }
    if (r & VM_FAULT_OOM) return { ok: false, signal: SIGKILL, code: 0, addr };
    if (r & (VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE)) return { ok: false, signal: SIGBUS, code: BUS_MCEERR_AR, addr };
    if (r & VM_FAULT_SIGBUS) return { ok: false, signal: SIGBUS, code: BUS_ADRERR, addr };
    if (r & VM_FAULT_SIGSEGV) return { ok: false, signal: SIGSEGV, code: SEGV_ACCERR, addr };
    return OK;
  }
}
