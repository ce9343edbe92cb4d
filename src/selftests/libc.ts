// SPDX-License-Identifier: GPL-2.0-only
/**
 * The C library the ported selftests call: libc-style wrappers over the
 * simulated process's raw syscalls (which return a value >= 0 or -errno),
 * with `errno` and the -1 / MAP_FAILED convention, plus the helpers of
 * tools/testing/selftests/mm/vm_util.c that hmm-tests.c uses
 * (read_pmd_pagesize, default_huge_page_size, pagemap_get_entry) and the
 * hugetlb pool query of hugepage_settings.h.
 *
 * Constants are the x86-64 Linux values of <sys/mman.h>, <fcntl.h>,
 * <signal.h> and <sys/wait.h>.
 */
import type { Process } from '../user/process.js';
import { EINTR, errnoName } from '../kernel/errno.js';
import { asChild, ksft_exit_fail_msg, metadata } from './harness.js';

/* <sys/mman.h> */
export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_HUGETLB = 0x40000;
/** (void *)-1 */
export const MAP_FAILED = -1;
export const MADV_FREE = 8;
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;
export const MADV_COLLAPSE = 25;
export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MREMAP_DONTUNMAP = 4;

/* <fcntl.h> */
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_EXCL = 0o200;
export const O_DIRECTORY = 0o200000;
export const O_TMPFILE = 0o20000000 | O_DIRECTORY;

/* <signal.h> */
export const SIGABRT = 6;
export const SIGKILL = 9;
export const SIGBUS = 7;
export const SIGSEGV = 11;

/* <sys/wait.h> (glibc's encoding of a wait status) */
export const WIFEXITED = (s: number): number => ((s & 0x7f) === 0 ? 1 : 0);
export const WEXITSTATUS = (s: number): number => (s >> 8) & 0xff;
export const WIFSIGNALED = (s: number): number => ((((s & 0x7f) + 1) << 24) >> 25 > 0 ? 1 : 0);
export const WTERMSIG = (s: number): number => s & 0x7f;

/** NULL */
export const NULL = 0;

/** sysconf(_SC_PAGE_SIZE) on x86-64. */
export const PAGE_SIZE = 4096;

/**
 * One process's view of libc. `fork()` gives the child its own Libc (the
 * child's errno, memory and file table).
 */
export class Libc {
  errno = 0;
  /** A scratch area standing in for the C stack (structs passed to ioctl). */
  private stackArea = 0;

  /**
   * `stackArea`: the stack of the process. A new program's stack exists
   * before main() (and is placed away from the test's mappings); fork()'s
   * child inherits the parent's at the same address. It is created here,
   * before the test body, so that a lazily made mapping cannot land in a
   * hole the test punched (migrate_mixed, snapshot).
   */
  constructor(
    readonly p: Process,
    stackArea = 0,
  ) {
    this.stackArea = stackArea;
    if (this.stackArea === 0) this.stack(0);
  }

  private sysret(r: number): number {
    if (r < 0) {
      this.errno = -r;
      return -1;
    }
    return r;
  }

  /** A piece of "stack": 4 KiB of malloc'd memory reused by the helpers. */
  stack(size: number): number {
    if (size > 4096) throw new Error(`Libc.stack: ${size} bytes is too big`);
    if (this.stackArea === 0) {
      this.stackArea = this.p.malloc(4096);
      if (this.stackArea <= 0) throw new Error('Libc.stack: malloc failed');
    }
    return this.stackArea;
  }

  /* ---- memory management ---- */

  mmap(addr: number, length: number, prot: number, flags: number, fd: number, offset: number): number {
    const r = this.p.mmap(addr, length, prot, flags, fd, offset);
    if (r < 0 && r >= -4095) {
      this.errno = -r;
      return MAP_FAILED;
    }
    return r;
  }
  munmap(addr: number, length: number): number {
    return this.sysret(this.p.munmap(addr, length));
  }
  mprotect(addr: number, length: number, prot: number): number {
    return this.sysret(this.p.mprotect(addr, length, prot));
  }
  mremap(old: number, oldSize: number, newSize: number, flags: number, newAddr = 0): number {
    const r = this.p.mremap(old, oldSize, newSize, flags, newAddr);
    if (r < 0 && r >= -4095) {
      this.errno = -r;
      return MAP_FAILED;
    }
    return r;
  }
  madvise(addr: number, length: number, advice: number): number {
    return this.sysret(this.p.madvise(addr, length, advice));
  }
  malloc(size: number): number {
    const r = this.p.malloc(size);
    return r > 0 ? r : NULL;
  }
  free(addr: number): void {
    if (addr !== NULL) this.p.free(addr);
  }
  /** memset() */
  memset(addr: number, byte: number, n: number): void {
    this.p.fill(addr, n, byte);
  }

  /* ---- files ---- */

  open(path: string, flags: number, mode = 0): number {
    return this.sysret(this.p.open(path, flags, mode));
  }
  close(fd: number): number {
    return this.sysret(this.p.close(fd));
  }
  read(fd: number, buf: number, n: number): number {
    return this.sysret(this.p.read(fd, buf, n));
  }
  pread(fd: number, buf: number, n: number, off: number): number {
    return this.sysret(this.p.pread(fd, buf, n, off));
  }
  pwrite(fd: number, buf: number, n: number, off: number): number {
    return this.sysret(this.p.pwrite(fd, buf, n, off));
  }
  ftruncate(fd: number, len: number): number {
    return this.sysret(this.p.ftruncate(fd, len));
  }
  ioctl(fd: number, cmd: number, arg: number): number {
    return this.sysret(this.p.ioctl(fd, cmd, arg));
  }

  /* ---- processes ---- */

  /**
   * fork(): runs `child` as the child's code, with the child's Libc. An
   * ASSERT_* failing in the child is printed and the child dies by SIGABRT
   * (kselftest's abort()), which the parent sees through waitpid().
   */
  fork(child: (c: Libc) => void): number {
    const r = this.p.fork((cp: Process) => {
      const c = new Libc(cp, this.stackArea);
      const res = asChild(() => child(c));
      if (!res.ok) {
        // abort(): the child raises SIGABRT on itself.
        cp.kill(cp.pid, SIGABRT);
      }
    });
    return this.sysret(r);
  }
  /** waitpid(pid, &status, 0): returns [pid or -1, status]. */
  waitpid(pid: number): [number, number] {
    const r = this.p.waitpid(pid);
    if (r.pid < 0) {
      this.errno = -r.pid;
      return [-1, 0];
    }
    return [r.pid, r.status];
  }
  kill(pid: number, sig: number): number {
    return this.sysret(this.p.kill(pid, sig));
  }
  /** _exit() */
  _exit(code: number): void {
    this.p.exit(code);
  }

  /* ---- CPU accesses (the test's `ptr[i]`) ---- */

  readI32(addr: number, n: number): Int32Array {
    return this.p.readI32(addr, n);
  }
  writeI32(addr: number, v: Int32Array): void {
    this.p.writeI32(addr, v);
  }
  load32(addr: number): number {
    return this.p.load32(addr);
  }
  store32(addr: number, v: number): void {
    this.p.store32(addr, v);
  }
  load8(addr: number): number {
    return this.p.load8(addr);
  }
  readBytes(addr: number, n: number): Uint8Array {
    return this.p.readBytes(addr, n);
  }
  writeBytes(addr: number, b: Uint8Array): void {
    this.p.writeBytes(addr, b);
  }
  readU64(addr: number): bigint {
    const b = this.p.readBytes(addr, 8);
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  }
  writeU64(addr: number, v: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
    this.p.writeBytes(addr, b);
  }

  /** strerror(errno) style name, for messages. */
  errName(): string {
    return errnoName(this.errno);
  }
}

/**
 * The init loops of the tests (`for (i = 0; i < n; ++i) ptr[i] = i;`, or
 * `-i`, or `i + c`) as an Int32Array: element i is start + step * i.
 *
 * The result is shared and read-only: every caller stores it straight into
 * simulated memory (`lc.writeI32(ptr, iota(n))`), so the last few arrays
 * are kept and handed out again (the tests build the same 2 MiB patterns
 * dozens of times).
 */
export function iota(n: number, step = 1, start = 0): Int32Array {
  for (const c of iotaCache) if (c.n === n && c.step === step && c.start === start) return c.a;
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = start + step * i;
  iotaCache.unshift({ n, step, start, a });
  if (iotaCache.length > IOTA_CACHE) iotaCache.pop();
  return a;
}

const IOTA_CACHE = 4;
const iotaCache: Array<{ n: number; step: number; start: number; a: Int32Array }> = [];

/* ------------------------------------------------------------------------ */
/* tools/testing/selftests/mm/vm_util.c and hugepage_settings.h              */
/* ------------------------------------------------------------------------ */

const PMD_SIZE_FILE_PATH = '/sys/kernel/mm/transparent_hugepage/hpage_pmd_size';

/** Read a whole small file through read(2) into a JS string ("" on error). */
function readSmallFile(lc: Libc, path: string, max = 4095): string | null {
  const fd = lc.open(path, O_RDONLY);
  if (fd === -1) return null;
  const buf = lc.stack(max + 1);
  let text = '';
  for (;;) {
    const n = lc.read(fd, buf, max);
    if (n <= 0) break;
    text += new TextDecoder().decode(lc.readBytes(buf, n));
    if (text.length > 1 << 20) break;
  }
  lc.close(fd);
  return text;
}

/** vm_util.c read_pmd_pagesize(): 0 when the file cannot be read. */
export function read_pmd_pagesize(lc: Libc): number {
  const fd = lc.open(PMD_SIZE_FILE_PATH, O_RDONLY);
  if (fd === -1) return 0;
  const buf = lc.stack(20);
  const num_read = lc.read(fd, buf, 19);
  if (num_read < 1) {
    lc.close(fd);
    return 0;
  }
  const s = new TextDecoder().decode(lc.readBytes(buf, num_read));
  lc.close(fd);
  const n = parseInt(s, 10);
  return Number.isFinite(n) ? n : 0;
}

/** A "Name:   value kB" field of /proc/meminfo, or null. */
function meminfoField(lc: Libc, name: string): number | null {
  const text = readSmallFile(lc, '/proc/meminfo');
  if (text === null) return null;
  for (const line of text.split('\n')) {
    const m = /^([^:]+):\s*(\d+)/.exec(line);
    if (m && m[1] === name) return Number(m[2]);
  }
  return null;
}

/** vm_util.c default_huge_page_size(): Hugepagesize from /proc/meminfo, in bytes (0 if absent). */
export function default_huge_page_size(lc: Libc): number {
  const kb = meminfoField(lc, 'Hugepagesize');
  return kb === null ? 0 : kb * 1024;
}

/** hugepage_settings.h hugetlb_free_default_pages(): HugePages_Free of /proc/meminfo. */
export function hugetlb_free_default_pages(lc: Libc): number {
  return meminfoField(lc, 'HugePages_Free') ?? 0;
}

/** vm_util.h: bits of a /proc/pid/pagemap entry. */
export const PM_SWAP = 1n << 62n;
export const PM_PRESENT = 1n << 63n;
export const PAGEMAP_PRESENT = (ent: bigint): number => ((ent & PM_PRESENT) !== 0n ? 1 : 0);

/** vm_util.c pagemap_get_entry(fd, start) */
export function pagemap_get_entry(lc: Libc, fd: number, start: number): bigint {
  const pfn = Math.floor(start / PAGE_SIZE);
  const entry = lc.stack(8);
  const ret = lc.pread(fd, entry, 8, pfn * 8);
  if (ret !== 8) ksft_exit_fail_msg('reading pagemap failed\n');
  return lc.readU64(entry);
}

/** hmm-tests.c: ALIGN(x, a) */
export function ALIGN(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/** ffs() */
export function ffs(x: number): number {
  if (x === 0) return 0;
  let i = 1;
  while ((x & 1) === 0) {
    x >>>= 1;
    i++;
  }
  return i;
}

export { EINTR, metadata };
