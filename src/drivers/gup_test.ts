// SPDX-License-Identifier: GPL-2.0-only
/**
 * mm/gup_test.c: the debugfs file /sys/kernel/debug/gup_test that the
 * tools/testing/selftests/mm gup_test and gup_longterm programs drive.
 *
 * ioctls (mm/gup_test.h, magic 'g', x86-64 values):
 *   GUP_FAST_BENCHMARK      0xC0506701  get_user_pages_fast
 *   PIN_FAST_BENCHMARK      0xC0506702  pin_user_pages_fast
 *   PIN_LONGTERM_BENCHMARK  0xC0506703  pin_user_pages(FOLL_LONGTERM)
 *   GUP_BASIC_TEST          0xC0506704  get_user_pages
 *   PIN_BASIC_TEST          0xC0506705  pin_user_pages
 *   DUMP_USER_PAGES_TEST    0xC0506706  get or pin, then dump_page() chosen pages
 *   PIN_LONGTERM_TEST_START 0x40186707  pin a range long-term and keep it pinned
 *   PIN_LONGTERM_TEST_STOP  0x00006708  unpin it
 *   PIN_LONGTERM_TEST_READ  0x40086709  copy the pinned pages to a user buffer
 *
 * struct gup_test (80 bytes, little-endian):
 *   @0 u64 get_delta_usec (out)   @8 u64 put_delta_usec (out)
 *   @16 u64 addr                  @24 u64 size (in: bytes; out: bytes gotten)
 *   @32 u32 nr_pages_per_call     @36 u32 gup_flags (raw FOLL_*)
 *   @40 u32 test_flags            @44 u32 which_pages[8] (1-based)
 * struct pin_longterm_test (24 bytes): @0 u64 addr, @8 u64 size, @16 u32 flags.
 *
 * Errors from the GUP calls in the benchmarks are swallowed (the loop just
 * stops; `size` reports what was gotten), as the kernel does. The
 * PIN_LONGTERM_TEST state is module-wide (static in the kernel): one per
 * machine here; releasing any open file of the device stops it.
 */
import type { Kernel } from '../kernel/kernel.js';
import type { K } from '../kernel/sched/sched.js';
import { Mutex, lockdepAssertHeld, mutexLock } from '../kernel/sched/locks.js';
import { LOCK_CLASSES } from '../kernel/sched/lockdep.js';
import { KernelBug } from '../kernel/printk.js';
import { EFAULT, EINVAL, ESRCH } from '../kernel/errno.js';
import { type File, type FileOperations, registerChrdev } from '../kernel/fs/chardev.js';
import { copyFromUser, copyToUser } from '../kernel/uaccess.js';
import type { MmStruct } from '../kernel/mm/mm_types.js';
import { PAGE_SIZE } from '../kernel/mm/page.js';
import { folioMaybeDmaPinned } from '../kernel/mm/folio.js';
import {
  FOLL_LONGTERM, FOLL_WRITE, folioIsLongtermPinnable, getUserPages, getUserPagesFast, pinUserPages,
  pinUserPagesFast, putPage, unpinUserPages,
} from '../kernel/mm/gup.js';
import { mmapReadLock } from '../kernel/mm/mmap_lock.js';

export const GUP_TEST_PATH = '/sys/kernel/debug/gup_test';

export const GUP_FAST_BENCHMARK = 0xc0506701;
export const PIN_FAST_BENCHMARK = 0xc0506702;
export const PIN_LONGTERM_BENCHMARK = 0xc0506703;
export const GUP_BASIC_TEST = 0xc0506704;
export const PIN_BASIC_TEST = 0xc0506705;
export const DUMP_USER_PAGES_TEST = 0xc0506706;
export const PIN_LONGTERM_TEST_START = 0x40186707;
export const PIN_LONGTERM_TEST_STOP = 0x00006708;
export const PIN_LONGTERM_TEST_READ = 0x40086709;

export const GUP_TEST_MAX_PAGES_TO_DUMP = 8;
export const GUP_TEST_FLAG_DUMP_PAGES_USE_PIN = 0x1;
export const GUP_TEST_FLAG_GUP_TWICE = 0x2;
export const PIN_LONGTERM_TEST_FLAG_USE_WRITE = 1;
export const PIN_LONGTERM_TEST_FLAG_USE_FAST = 2;

export const SIZEOF_GUP_TEST = 80;
export const SIZEOF_PIN_LONGTERM_TEST = 24;

/** struct gup_test, decoded. */
export interface GupTest {
  getDeltaUsec: number;
  putDeltaUsec: number;
  addr: number;
  size: number;
  nrPagesPerCall: number;
  gupFlags: number;
  testFlags: number;
  whichPages: number[];
}

/** Decode a struct gup_test from its 80 bytes. */
export function decodeGupTest(b: Uint8Array): GupTest {
  const dv = new DataView(b.buffer, b.byteOffset, SIZEOF_GUP_TEST);
  const whichPages: number[] = [];
  for (let i = 0; i < GUP_TEST_MAX_PAGES_TO_DUMP; i++) whichPages.push(dv.getUint32(44 + 4 * i, true));
  return {
    getDeltaUsec: Number(dv.getBigUint64(0, true)),
    putDeltaUsec: Number(dv.getBigUint64(8, true)),
    addr: Number(dv.getBigUint64(16, true)),
    size: Number(dv.getBigUint64(24, true)),
    nrPagesPerCall: dv.getUint32(32, true),
    gupFlags: dv.getUint32(36, true),
    testFlags: dv.getUint32(40, true),
    whichPages,
  };
}

/** Encode a struct gup_test into 80 bytes (tail padding zero). */
export function encodeGupTest(g: GupTest, out = new Uint8Array(SIZEOF_GUP_TEST)): Uint8Array {
  const dv = new DataView(out.buffer, out.byteOffset, SIZEOF_GUP_TEST);
  dv.setBigUint64(0, BigInt(Math.max(0, Math.floor(g.getDeltaUsec))), true);
  dv.setBigUint64(8, BigInt(Math.max(0, Math.floor(g.putDeltaUsec))), true);
  dv.setBigUint64(16, BigInt(g.addr), true);
  dv.setBigUint64(24, BigInt(g.size), true);
  dv.setUint32(32, g.nrPagesPerCall >>> 0, true);
  dv.setUint32(36, g.gupFlags >>> 0, true);
  dv.setUint32(40, g.testFlags >>> 0, true);
  for (let i = 0; i < GUP_TEST_MAX_PAGES_TO_DUMP; i++) dv.setUint32(44 + 4 * i, (g.whichPages[i] ?? 0) >>> 0, true);
  dv.setUint32(76, 0, true);
  return out;
}

/** The module state (static variables of mm/gup_test.c). */
class GupTestModule {
  readonly longtermMutex = new Mutex('pin_longterm_test_mutex', LOCK_CLASSES.pin_longterm_test_mutex);
  longtermPages: Float64Array | null = null;
  longtermNrPages = 0;
  constructor(readonly k: Kernel) {}
}

const ULONG_MAX = 2 ** 64 - 1;

function nowUsec(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** verify_dma_pinned(): WARN on the first page that is not (or may not be) pinned. */
function verifyDmaPinned(k: Kernel, cmd: number, pages: Float64Array, nr: number): void {
  if (cmd !== PIN_FAST_BENCHMARK && cmd !== PIN_BASIC_TEST && cmd !== PIN_LONGTERM_BENCHMARK) return;
  for (let i = 0; i < nr; i++) {
    const head = k.pages.folioPfn(pages[i]);
    if (!folioMaybeDmaPinned(k, head)) {
      k.printk.warn(`gup_test: pages[${i}] is NOT dma-pinned`, k.dumpPage(head, 'gup_test failure'));
      break;
    }
    if (cmd === PIN_LONGTERM_BENCHMARK && !folioIsLongtermPinnable(k, head)) {
      k.printk.warn(`gup_test: pages[${i}] is NOT pinnable but pinned`, k.dumpPage(head, 'gup_test failure'));
      break;
    }
  }
}

/** dump_pages_test() */
function dumpPagesTest(k: Kernel, g: GupTest, pages: Float64Array, nr: number): void {
  for (let i = 0; i < GUP_TEST_MAX_PAGES_TO_DUMP; i++) {
    if (g.whichPages[i] > nr) {
      k.printk.printk('warn', `ZEROING due to out of range: .which_pages[${i}]: ${g.whichPages[i]}`);
      g.whichPages[i] = 0;
    }
  }
  for (let i = 0; i < GUP_TEST_MAX_PAGES_TO_DUMP; i++) {
    const idx = g.whichPages[i];
    if (!idx) continue;
    k.printk.info(`---- page #${idx - 1}, starting from user virt addr: 0x${g.addr.toString(16)}`);
    k.printk.info(k.dumpPage(pages[idx - 1], 'gup_test: dump_pages() test'));
  }
}

/** put_back_pages() */
function putBackPages(k: Kernel, cmd: number, pages: Float64Array, nr: number, testFlags: number): void {
  const pin = cmd === PIN_FAST_BENCHMARK || cmd === PIN_BASIC_TEST || cmd === PIN_LONGTERM_BENCHMARK ||
    (cmd === DUMP_USER_PAGES_TEST && (testFlags & GUP_TEST_FLAG_DUMP_PAGES_USE_PIN) !== 0);
  if (pin) unpinUserPages(k, pages, nr);
  else for (let i = 0; i < nr; i++) putPage(k, pages[i]);
}

/** __gup_test_ioctl(cmd, gup): 0 or -errno; fills the out fields of g. */
function* gupTestIoctlInner(k: Kernel, mm: MmStruct, cmd: number, g: GupTest): K<number> {
  const end = g.addr + g.size;
  if (g.addr > ULONG_MAX || g.size > ULONG_MAX || !g.size || !g.nrPagesPerCall || g.size % PAGE_SIZE !== 0) return -EINVAL;
  if (end > ULONG_MAX) return -EINVAL;
  const nrPages = g.size / PAGE_SIZE;
  const pages = new Float64Array(nrPages);
  const needsMmapLock = cmd !== GUP_FAST_BENCHMARK && cmd !== PIN_FAST_BENCHMARK;
  const s = k.sched;
  if (needsMmapLock) yield* mmapReadLock(mm);
  try {
    let i = 0;
    let nr = g.nrPagesPerCall;
    const t0 = nowUsec();
    for (let addr = g.addr, next = 0; addr < end; addr = next) {
      if (nr !== g.nrPagesPerCall) break;
      next = addr + nr * PAGE_SIZE;
      if (next > end) {
        next = end;
        nr = (next - addr) / PAGE_SIZE;
      }
      switch (cmd) {
        case GUP_FAST_BENCHMARK:
          nr = yield* getUserPagesFast(mm, addr, nr, g.gupFlags, pages, i);
          break;
        case PIN_FAST_BENCHMARK:
          nr = yield* pinUserPagesFast(mm, addr, nr, g.gupFlags, pages, i);
          break;
        case GUP_BASIC_TEST:
          nr = yield* getUserPages(mm, addr, nr, g.gupFlags, pages, i);
          break;
        case PIN_BASIC_TEST:
          nr = yield* pinUserPages(mm, addr, nr, g.gupFlags, pages, i);
          break;
        case PIN_LONGTERM_BENCHMARK:
          nr = yield* pinUserPages(mm, addr, nr, g.gupFlags | FOLL_LONGTERM, pages, i);
          break;
        case DUMP_USER_PAGES_TEST:
          if (g.testFlags & GUP_TEST_FLAG_DUMP_PAGES_USE_PIN) nr = yield* pinUserPages(mm, addr, nr, g.gupFlags, pages, i);
          else nr = yield* getUserPages(mm, addr, nr, g.gupFlags, pages, i);
          break;
        default:
          return -EINVAL;
      }
      if (nr <= 0) break;
      i += nr;
    }
    const t1 = nowUsec();
    g.getDeltaUsec = t1 - t0;
    g.size = i * PAGE_SIZE;
    verifyDmaPinned(k, cmd, pages, i);
    if (cmd === DUMP_USER_PAGES_TEST) dumpPagesTest(k, g, pages, i);
    const t2 = nowUsec();
    putBackPages(k, cmd, pages, i, g.testFlags);
    g.putDeltaUsec = nowUsec() - t2;
    return 0;
  } finally {
    if (needsMmapLock) mm.mmapLock.readUnlock(s);
  }
}

/** pin_longterm_test_stop(): unpin and forget the long-term pinned pages. Mutex held. */
function pinLongtermTestStop(m: GupTestModule): void {
  lockdepAssertHeld(m.k.sched, m.longtermMutex, 'pin_longterm_test_stop');
  if (m.longtermPages === null) return;
  unpinUserPages(m.k, m.longtermPages, m.longtermNrPages);
  m.longtermPages = null;
  m.longtermNrPages = 0;
}

/** pin_longterm_test_start(arg). Mutex held. */
function* pinLongtermTestStart(m: GupTestModule, mm: MmStruct, arg: number): K<number> {
  lockdepAssertHeld(m.k.sched, m.longtermMutex, 'pin_longterm_test_start');
  const k = m.k;
  if (m.longtermPages !== null) return -EINVAL;
  const buf = new Uint8Array(SIZEOF_PIN_LONGTERM_TEST);
  if ((yield* copyFromUser(mm, buf, arg, SIZEOF_PIN_LONGTERM_TEST)) !== 0) return -EFAULT;
  const dv = new DataView(buf.buffer);
  const addr = Number(dv.getBigUint64(0, true));
  const size = Number(dv.getBigUint64(8, true));
  const flags = dv.getUint32(16, true);
  if (flags & ~(PIN_LONGTERM_TEST_FLAG_USE_WRITE | PIN_LONGTERM_TEST_FLAG_USE_FAST)) return -EINVAL;
  if (addr % PAGE_SIZE || size % PAGE_SIZE) return -EINVAL;
  if (size > 2 ** 63 - 1) return -EINVAL;
  const nrPages = size / PAGE_SIZE;
  if (!nrPages) return -EINVAL;
  const pages = new Float64Array(nrPages);
  let gupFlags = FOLL_LONGTERM;
  if (flags & PIN_LONGTERM_TEST_FLAG_USE_WRITE) gupFlags |= FOLL_WRITE;
  const fast = (flags & PIN_LONGTERM_TEST_FLAG_USE_FAST) !== 0;
  const s = k.sched;
  if (!fast) yield* mmapReadLock(mm);
  m.longtermPages = pages;
  m.longtermNrPages = 0;
  let ret = 0;
  try {
    while (nrPages - m.longtermNrPages) {
      const remaining = nrPages - m.longtermNrPages;
      const a = addr + m.longtermNrPages * PAGE_SIZE;
      const cur = fast
        ? yield* pinUserPagesFast(mm, a, remaining, gupFlags, pages, m.longtermNrPages)
        : yield* pinUserPages(mm, a, remaining, gupFlags, pages, m.longtermNrPages);
      if (cur < 0) {
        pinLongtermTestStop(m);
        ret = cur;
        break;
      }
      if (cur === 0) throw new KernelBug('HANG', 'pin_longterm_test_start: pin_user_pages returned 0 (the kernel loops forever)', `addr 0x${a.toString(16)}`);
      m.longtermNrPages += cur;
    }
  } finally {
    if (!fast) mm.mmapLock.readUnlock(s);
  }
  return ret;
}

/** pin_longterm_test_read(arg): copy every pinned page to the user buffer whose address is at arg. Mutex held. */
function* pinLongtermTestRead(m: GupTestModule, mm: MmStruct, arg: number): K<number> {
  lockdepAssertHeld(m.k.sched, m.longtermMutex, 'pin_longterm_test_read');
  const k = m.k;
  if (m.longtermPages === null) return -EINVAL;
  const ab = new Uint8Array(8);
  if ((yield* copyFromUser(mm, ab, arg, 8)) !== 0) return -EFAULT;
  let userAddr = Number(new DataView(ab.buffer).getBigUint64(0, true));
  const page = new Uint8Array(PAGE_SIZE);
  for (let i = 0; i < m.longtermNrPages; i++) {
    k.contents.read(m.longtermPages[i], 0, page, 0, PAGE_SIZE); /* kmap_local_page */
    if ((yield* copyToUser(mm, userAddr, page, PAGE_SIZE)) !== 0) return -EFAULT;
    userAddr += PAGE_SIZE;
  }
  return 0;
}

/** pin_longterm_test_ioctl(): commands 7-9 under the module mutex. */
function* pinLongtermTestIoctl(m: GupTestModule, mm: MmStruct, cmd: number, arg: number): K<number> {
  const s = m.k.sched;
  yield* mutexLock(s, m.longtermMutex); /* mutex_lock_killable: no signals */
  try {
    switch (cmd) {
      case PIN_LONGTERM_TEST_START:
        return yield* pinLongtermTestStart(m, mm, arg);
      case PIN_LONGTERM_TEST_STOP:
        pinLongtermTestStop(m);
        return 0;
      case PIN_LONGTERM_TEST_READ:
        return yield* pinLongtermTestRead(m, mm, arg);
      default:
        return -EINVAL;
    }
  } finally {
    m.longtermMutex.unlock(s);
  }
}

/**
 * gup_test_ioctl(filep, cmd, arg): runs in the context of the calling task
 * (k.current.mm). No locks held on entry or return. 0 or -errno.
 */
function* gupTestIoctl(m: GupTestModule, _file: File, cmd: number, arg: number): K<number> {
  const k = m.k;
  const mm = k.current.mm;
  if (mm === null) return -ESRCH;
  cmd >>>= 0;
  switch (cmd) {
    case GUP_FAST_BENCHMARK:
    case PIN_FAST_BENCHMARK:
    case PIN_LONGTERM_BENCHMARK:
    case GUP_BASIC_TEST:
    case PIN_BASIC_TEST:
    case DUMP_USER_PAGES_TEST:
      break;
    case PIN_LONGTERM_TEST_START:
    case PIN_LONGTERM_TEST_STOP:
    case PIN_LONGTERM_TEST_READ:
      return yield* pinLongtermTestIoctl(m, mm, cmd, arg);
    default:
      return -EINVAL;
  }
  const buf = new Uint8Array(SIZEOF_GUP_TEST);
  if ((yield* copyFromUser(mm, buf, arg, SIZEOF_GUP_TEST)) !== 0) return -EFAULT;
  const g = decodeGupTest(buf);
  const ret = yield* gupTestIoctlInner(k, mm, cmd, g);
  if (ret) return ret;
  encodeGupTest(g, buf);
  if ((yield* copyToUser(mm, arg, buf, SIZEOF_GUP_TEST)) !== 0) return -EFAULT;
  return 0;
}

/**
 * gup_test_init(): create /sys/kernel/debug/gup_test (mode 0600). Returns
 * 0 or -EEXIST if already registered on this machine.
 */
export function gupTestInit(k: Kernel): number {
  const m = new GupTestModule(k);
  const fops: FileOperations = {
    owner: 'gup_test',
    unlockedIoctl: (file, cmd, arg) => gupTestIoctl(m, file, cmd, arg),
    // gup_test_release(): stops a running PIN_LONGTERM test.
    *release(_file: File): K<void> {
      const s = k.sched;
      yield* mutexLock(s, m.longtermMutex);
      pinLongtermTestStop(m);
      m.longtermMutex.unlock(s);
    },
  };
  return registerChrdev(k, GUP_TEST_PATH, fops);
}
