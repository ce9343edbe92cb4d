// SPDX-License-Identifier: GPL-2.0-only
/**
 * The C library the ported selftests call: the simulated libc
 * (src/user/libc.ts) with kselftest's handling of a failing forked child,
 * plus the helpers of
 * tools/testing/selftests/mm/vm_util.c that hmm-tests.c uses
 * (read_pmd_pagesize, default_huge_page_size, pagemap_get_entry) and the
 * hugetlb pool query of hugepage_settings.h.
 *
 * Constants are the x86-64 Linux values of <sys/mman.h>, <fcntl.h>,
 * <signal.h> and <sys/wait.h>.
 */
import type { Process } from '../user/process.js';
import { EINTR } from '../kernel/errno.js';
import { Libc as UserLibc, O_RDONLY, PAGE_SIZE, SIGABRT } from '../user/libc.js';
import { asChild, ksft_exit_fail_msg, metadata } from './harness.js';

export {
  PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC, MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_HUGETLB, MAP_FAILED,
  MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_COLLAPSE, MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP,
  O_RDONLY, O_WRONLY, O_RDWR, O_EXCL, O_DIRECTORY, O_TMPFILE, SIGABRT, SIGKILL, SIGBUS, SIGSEGV,
  WIFEXITED, WEXITSTATUS, WIFSIGNALED, WTERMSIG, NULL, PAGE_SIZE,
} from '../user/libc.js';

/**
 * The simulated libc (src/user/libc.ts) as the kselftest harness runs a
 * test: an ASSERT_* failing in a fork()ed child is printed and the child
 * dies by SIGABRT (kselftest's abort()), which the parent sees through
 * waitpid().
 */
export class Libc extends UserLibc {
  protected override childLibc(cp: Process): Libc {
    return new Libc(cp, this.stackArea);
  }

  override fork(child: (c: Libc) => void): number {
    return super.fork((c) => {
      const res = asChild(() => child(c as Libc));
      if (!res.ok) {
        // abort(): the child raises SIGABRT on itself.
        c.p.kill(c.p.pid, SIGABRT);
      }
    });
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
