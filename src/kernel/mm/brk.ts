// SPDX-License-Identifier: GPL-2.0-only
/**
 * brk(2): the program break (mm/mmap.c SYSCALL_DEFINE1(brk) and
 * do_brk_flags()).
 *
 * The heap is one anonymous private VMA starting at mm->start_brk; brk()
 * grows it by expanding that VMA (vma_expand: no new VMA, no MMU notifier)
 * and shrinks it with do_vmi_align_munmap() of the released pages (which
 * fires MMU_NOTIFY_UNMAP on them, as every munmap does). glibc's malloc
 * takes its small chunks from this heap (src/user/malloc.ts).
 *
 * Differences from the kernel: no RLIMIT_DATA check (check_brk_limits), no
 * VM_LOCKED populate (mlockall(MCL_FUTURE) is not modelled), no brk
 * randomisation.
 */
import type { K } from '../sched/sched.js';
import {
  type MmStruct, Vma, VM_READ, VM_WRITE, VM_MAYREAD, VM_MAYWRITE, VM_MAYEXEC, VM_ACCOUNT, VM_SOFTDIRTY, VM_GROWSDOWN,
} from './mm_types.js';
import { PAGE_SIZE } from './page.js';
import { munmapRange } from './mmap.js';
import { mmapWriteLock } from './mmap_lock.js';

/** stack_guard_gap (256 pages), kept below a VM_GROWSDOWN VMA above the break. */
const STACK_GUARD_GAP = 256 * PAGE_SIZE;

/**
 * VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT | VM_SOFTDIRTY: the flags of a VMA
 * do_brk_flags() creates (x86-64 with a non-executable heap, no
 * mm->def_flags).
 */
export const BRK_VM_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_ACCOUNT | VM_SOFTDIRTY;

function pageAlign(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

/** vm_start_gap(): a stack VMA keeps stack_guard_gap free below it. */
function vmStartGap(v: Vma): number {
  return v.flags & VM_GROWSDOWN ? Math.max(0, v.start - STACK_GUARD_GAP) : v.start;
}

/**
 * do_brk_flags(): map [addr, addr + len) as heap. The VMA ending at addr
 * (at or above start_brk) is expanded when its flags are the heap's
 * (can_vma_merge_after); otherwise a new anonymous VMA is inserted. Returns
 * 0. Caller holds mmap_lock for write and checked that the range is free.
 */
function doBrkFlags(mm: MmStruct, addr: number, len: number): number {
  const prev = addr > 0 ? mm.vmaLookup(addr - 1) : null;
  if (prev !== null && prev.end === addr && prev.start >= mm.startBrk && prev.isAnon() && (prev.flags & ~VM_SOFTDIRTY) === (BRK_VM_FLAGS & ~VM_SOFTDIRTY)) {
    // vma_expand(): the anon_vma (if any) covers the grown part too; pgoff is linear.
    prev.end = addr + len;
    return 0;
  }
  mm.insertVma(new Vma(mm, addr, addr + len, BRK_VM_FLAGS, addr / PAGE_SIZE));
  return 0;
}

/**
 * brk(2) (SYSCALL_DEFINE1(brk)): set the program break to `brk`. Takes and
 * releases mmap_lock for write. Returns the new break on success and the
 * unchanged break on failure (the syscall never returns -errno; glibc's
 * sbrk() turns a short answer into ENOMEM):
 *   brk < start_brk                     unchanged
 *   brk within the same page as mm->brk  mm->brk = brk, nothing mapped
 *   brk below mm->brk                    the pages above PAGE_ALIGN(brk) are unmapped
 *                                        (MMU_NOTIFY_UNMAP, zap, VMA shrunk); fails if
 *                                        the range is not the heap's own VMA
 *   brk above mm->brk                    fails if the grown heap would come within a
 *                                        page of the next VMA (stack guard gap for a stack)
 */
export function* sysBrk(mm: MmStruct, brk: number): K<number> {
  const s = mm.kernel.sched;
  yield* mmapWriteLock(mm);
  try {
    if (!Number.isFinite(brk) || brk < mm.startBrk || brk > mm.taskSize) return mm.brk;
    const newbrk = pageAlign(brk);
    const oldbrk = pageAlign(mm.brk);
    if (oldbrk === newbrk) {
      mm.brk = brk;
      return brk;
    }
    if (brk <= mm.brk) {
      // Shrink: the pages [newbrk, oldbrk) must be the heap's.
      const vma = mm.findVma(newbrk);
      if (vma === null || vma.start >= oldbrk) return mm.brk;
      mm.brk = brk;
      const r = yield* munmapRange(mm, newbrk, oldbrk);
      return r < 0 ? mm.brk : brk;
    }
    const next = mm.findVma(oldbrk);
    if (next !== null && newbrk + PAGE_SIZE > vmStartGap(next)) return mm.brk;
    doBrkFlags(mm, oldbrk, newbrk - oldbrk);
    mm.brk = brk;
    return brk;
  } finally {
    mm.mmapLock.writeUnlock(s);
  }
}
