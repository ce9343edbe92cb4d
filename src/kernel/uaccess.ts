// SPDX-License-Identifier: GPL-2.0-only
/**
 * copy_from_user() / copy_to_user() (include/linux/uaccess.h,
 * arch/x86/lib/usercopy). The kernel touches user memory through the MMU;
 * a missing or insufficient translation takes the page fault path
 * (do_user_addr_fault, which takes mmap_lock for read), and a fault that
 * cannot be resolved is fixed up by the exception table: the copy stops
 * and the number of bytes NOT copied is returned. No signal is sent.
 *
 * Contract: the caller must not hold mmap_lock of `mm` (might_fault()).
 * Copies go page by page through k.contents; nothing is allocated per page.
 */
import type { MmStruct } from './mm/mm_types.js';
import type { K } from './sched/sched.js';
import { translate, doUserAddrFault } from './arch/fault.js';
import { PAGE_SIZE } from './mm/page.js';

/** Fault retries per page before giving up (the model's bound; the kernel retries until it succeeds or fails). */
const MAX_TRIES = 8;

/**
 * The pfn for a user access at addr, faulting it in if needed; -1 when the
 * fault cannot be resolved (SIGSEGV/SIGBUS in user mode -> fixup here).
 */
export function* userPagePfn(mm: MmStruct, addr: number, write: boolean): K<number> {
  for (let t = 0; t < MAX_TRIES; t++) {
    const pfn = translate(mm, addr, write);
    if (pfn >= 0) return pfn;
    const r = yield* doUserAddrFault(mm, addr, write, false);
    if (!r.ok) return -1;
  }
  return -1;
}

/**
 * The copy loop of copy_from_user() / copy_to_user(): page by page through
 * the MMU, faulting where the translation is missing; runs of whole pages
 * that are consecutive in physical memory (a THP, a freshly faulted
 * buffer) are copied in one go, flushed before any fault so that the copy
 * happens in the order the kernel's does. Returns the bytes not copied.
 */
function* copyUser(mm: MmStruct, addr: number, buf: Uint8Array, len: number, toUser: boolean): K<number> {
  const c = mm.kernel.contents;
  let done = 0;
  if (!(addr >= 0 && addr + len <= mm.taskSize)) return len; /* access_ok() */
  let runPfn = -1;
  let runN = 0;
  let runOff = 0;
  const flush = (): void => {
    if (runN === 0) return;
    if (toUser) c.writePages(runPfn, runN, buf, runOff);
    else c.readPages(runPfn, runN, buf, runOff);
    runN = 0;
  };
  while (done < len) {
    const a = addr + done;
    const off = a % PAGE_SIZE;
    const chunk = Math.min(PAGE_SIZE - off, len - done);
    let pfn = translate(mm, a, toUser);
    if (pfn < 0) {
      flush();
      pfn = yield* userPagePfn(mm, a, toUser);
      if (pfn < 0) return len - done;
    }
    if (off === 0 && chunk === PAGE_SIZE) {
      if (runN !== 0 && pfn === runPfn + runN) runN++;
      else {
        flush();
        runPfn = pfn;
        runN = 1;
        runOff = done;
      }
    } else {
      flush();
      if (toUser) c.write(pfn, off, buf, done, chunk);
      else c.read(pfn, off, buf, done, chunk);
    }
    done += chunk;
  }
  flush();
  return 0;
}

/**
 * copy_from_user(dst, addr, len): copy len bytes of user memory at addr
 * into dst[0..len). Returns the number of bytes not copied (0 on success).
 */
export function* copyFromUser(mm: MmStruct, dst: Uint8Array, addr: number, len: number): K<number> {
  return yield* copyUser(mm, addr, dst, len, false);
}

/**
 * copy_to_user(addr, src, len): copy src[0..len) to user memory at addr
 * (write faults: COW is broken, pages allocated). Returns the number of
 * bytes not copied.
 */
export function* copyToUser(mm: MmStruct, addr: number, src: Uint8Array, len: number): K<number> {
  return yield* copyUser(mm, addr, src, len, true);
}

/** clear_user(addr, len): zero user memory; returns bytes not cleared. */
export function* clearUser(mm: MmStruct, addr: number, len: number): K<number> {
  const k = mm.kernel;
  let done = 0;
  if (!(addr >= 0 && addr + len <= mm.taskSize)) return len; /* access_ok() */
  while (done < len) {
    const a = addr + done;
    const off = a % PAGE_SIZE;
    const chunk = Math.min(PAGE_SIZE - off, len - done);
    const pfn = yield* userPagePfn(mm, a, true);
    if (pfn < 0) return len - done;
    k.contents.fill(pfn, off, chunk, 0);
    done += chunk;
  }
  return 0;
}
