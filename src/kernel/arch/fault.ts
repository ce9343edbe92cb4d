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
 *   VM_FAULT_OOM               pagefault_out_of_memory(): the fault is retried
 *                              (SIGKILL only when the model's stand-in for the
 *                              allocator's OOM killer chose the task; below)
 */
import type { MmStruct } from '../mm/mm_types.js';
import { VM_READ, VM_WRITE, VM_EXEC } from '../mm/mm_types.js';
import {
  T_PRESENT, T_TABLE, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PROTNONE, _PAGE_RW, pmdIndex, pmdTableOf, pteIndex,
  ptePresent, pteType,
} from '../mm/pgtable.js';
import {
  FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_KILLABLE, FAULT_FLAG_USER, FAULT_FLAG_WRITE, FAULT_FLAG_TRIED, VM_FAULT_HWPOISON,
  VM_FAULT_HWPOISON_LARGE, VM_FAULT_OOM, VM_FAULT_RETRY, VM_FAULT_SIGBUS, VM_FAULT_SIGSEGV, handleMmFault,
} from '../mm/memory.js';
import type { K } from '../sched/sched.js';
import { KernelBug } from '../printk.js';
import { mmapReadLock } from '../mm/mmap_lock.js';

export const SIGBUS = 7;
export const SIGKILL = 9;
export const SIGSEGV = 11;
export const SEGV_MAPERR = 1;
export const SEGV_ACCERR = 2;
export const BUS_ADRERR = 2;
export const BUS_MCEERR_AR = 4;

/**
 * What do_user_addr_fault() leaves the CPU: retry the access (`ok`; `oom`
 * when the fault returned VM_FAULT_OOM and pagefault_out_of_memory() let it
 * be retried, so a caller re-faulting forever can say why), or deliver
 * `signal`.
 */
export type FaultOutcome = { ok: true; oom?: true } | { ok: false; signal: number; code: number; addr: number };

const OK: FaultOutcome = { ok: true };
const OOM_RETRY: FaultOutcome = { ok: true, oom: true };

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
  const pt = pteType(pf);
  if (pt === T_TABLE) {
    const table = pmd.pte[pi]!;
    const i = pteIndex(addr);
    const f = table.f[i];
    if (!ptePresent(f) || (f & _PAGE_PROTNONE)) return -1;
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
 * pagefault_out_of_memory() (mm/oom_kill.c) as called by mm_fault_error()
 * (arch/x86/mm/fault.c) for a user-mode VM_FAULT_OOM. Since commit
 * 60e2793d440a ("mm, oom: do not trigger out_of_memory from the #PF",
 * v5.16) it never invokes the OOM killer: memcg OOM handling aside
 * (mem_cgroup_oom_synchronize(); the model has no memcg), a task with a
 * fatal signal pending just returns, and otherwise it prints (ratelimited)
 * "Huh VM_FAULT_OOM leaked out to the #PF handler. Retrying PF" and returns:
 * the instruction is restarted and faults again. An injected failure
 * (fail_page_alloc / failslab) is therefore retried and, if transient,
 * succeeds; a persistent one makes the task loop in the #PF path (killable)
 * forever - the caller's re-fault loop bounds that and reports a HANG.
 *
 * Real exhaustion is different: the order-0 allocations of a fault are "too
 * small to fail", so __alloc_pages_slowpath() runs out_of_memory() itself,
 * which kills the task with the worst oom_badness(); if that is the faulting
 * task its allocation then fails, the fault returns VM_FAULT_OOM, this
 * function sees the fatal signal pending and the SIGKILL is delivered on the
 * way back to user mode. The model has no OOM killer (no badness ranking, no
 * oom_reaper, no pending signals): when an order-0 buddy allocation found no
 * free memory during this fault (`noMem`), it takes the faulting task as the
 * victim, as vm.oom_kill_allocating_task=1 does, logs the kill and returns
 * true (deliver SIGKILL). Deliberate difference: the ratelimit is not
 * modelled (one line per call; a caller retries at most a few times).
 */
function pagefaultOutOfMemory(mm: MmStruct, noMem: boolean): boolean {
  const k = mm.kernel;
  if (noMem) {
    k.printk.printk('err', `Out of memory (oom_kill_allocating_task): Killed process ${k.current.pid} (${k.current.comm})`);
    return true;
  }
  k.printk.printk('warn', 'Huh VM_FAULT_OOM leaked out to the #PF handler. Retrying PF');
  return false;
}

/**
 * do_user_addr_fault(): handle a fault at addr. Takes and releases mmap_lock
 * (read). Returns {ok:true} when the access can be retried, or the signal to
 * deliver. `userMode` false is a kernel access to user memory (uaccess):
 * mm_fault_error() then has the exception table fix up VM_FAULT_OOM
 * (kernelmode_fixup_or_oops: the copy fails) instead of retrying, which the
 * model reports as SIGSEGV for the caller to turn into a short copy.
 */
export function* doUserAddrFault(mm: MmStruct, addr: number, write: boolean, userMode = true): K<FaultOutcome> {
  if (mm.kernel.tracer !== null && mm.kernel.tracer.enter('do_user_addr_fault')) return yield* mm.kernel.tracer.span('do_user_addr_fault', addr, doUserAddrFault(mm, addr, write, userMode));
  const k = mm.kernel;
  if (k.clock !== null) k.clock.charge('fault entry/exit', k.clock.profile.kernel.faultEntryExitNs);
  const s = k.sched;
  let flags = FAULT_FLAG_USER | FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE | (write ? FAULT_FLAG_WRITE : 0);
  for (let tries = 0; ; tries++) {
    if (tries > MAX_RETRIES) throw new KernelBug('HANG', `page fault at 0x${addr.toString(16)} retried ${MAX_RETRIES} times (livelock)`);
    yield* mmapReadLock(mm);
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
    const noMem0 = k.buddy.stat.failNoMemOrder0;
    const r = yield* handleMmFault(vma, addr, flags);
    mm.mmapLock.readUnlock(s);
    if (r & VM_FAULT_RETRY) {
      flags |= FAULT_FLAG_TRIED;
      if (s.exploring) yield s.yieldPoint('page fault retry', addr);
      continue;
    }
    if (r & VM_FAULT_OOM) {
      if (!userMode) return { ok: false, signal: SIGSEGV, code: SEGV_MAPERR, addr };
      return pagefaultOutOfMemory(mm, k.buddy.stat.failNoMemOrder0 !== noMem0) ? { ok: false, signal: SIGKILL, code: 0, addr } : OOM_RETRY;
    }
    if (r & (VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE)) return { ok: false, signal: SIGBUS, code: BUS_MCEERR_AR, addr };
    if (r & VM_FAULT_SIGBUS) return { ok: false, signal: SIGBUS, code: BUS_ADRERR, addr };
    if (r & VM_FAULT_SIGSEGV) return { ok: false, signal: SIGSEGV, code: SEGV_ACCERR, addr };
    return OK;
  }
}
