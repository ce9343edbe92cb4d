// SPDX-License-Identifier: GPL-2.0-only
/**
 * The simulated C library: glibc-style wrappers over a simulated process's
 * raw system calls (which return a value >= 0 or -errno), with `errno` and
 * the -1 / MAP_FAILED / NULL conventions, glibc's allocator
 * (src/user/malloc.ts: brk heap, mmap above the threshold), a stack VMA for
 * on-stack structs, tmpfs files (open with O_CREAT on /tmp, unlink,
 * mkstemp, O_TMPFILE) and line-buffered stdio on fds 1 and 2.
 *
 * A C program ports line by line: `int *p = malloc(n)` is
 * `const p = lc.malloc(n)`, `p[i] = v` is `lc.store32(p + 4 * i, v)`,
 * `if (fd < 0) perror("open")` is `if (fd < 0) lc.perror('open')`.
 *
 * Constants are the x86-64 Linux values of <sys/mman.h>, <fcntl.h>,
 * <signal.h> and <sys/wait.h>.
 *
 * What the simulated libc does not model: threads created by the program
 * (use Process.runThreads), signals handlers, stdio input, locale, printf
 * beyond %d %i %u %x %X %o %c %s %p %% with flags/width/precision and the
 * l/ll/z/h length modifiers, the allocator details listed in malloc.ts, a
 * growing stack (the stack VMA is 132 KiB and fixed), environment and
 * auxv on the stack, ASLR.
 */
import type { Process } from './process.js';
import { ProcessSignal } from './process.js';
import { EINVAL, EEXIST, ENOMEM, errnoName } from '../kernel/errno.js';
import type { MallocStats } from './malloc.js';

/* <sys/mman.h> */
export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_POPULATE = 0x8000;
export const MAP_HUGETLB = 0x40000;
export const MAP_FIXED_NOREPLACE = 0x100000;
/** (void *)-1 */
export const MAP_FAILED = -1;
export const MADV_DONTNEED = 4;
export const MADV_FREE = 8;
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;
export const MADV_PAGEOUT = 21;
export const MADV_COLLAPSE = 25;
export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MREMAP_DONTUNMAP = 4;

/* <fcntl.h> */
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
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

/** Bytes of the stack frame `stack()` hands out (below the top 64 KiB of the stack). */
const STACK_FRAME = 0x8000;
/** Where the frame sits: this far below the stack top. */
const STACK_FRAME_OFFSET = 0x10000;
/** glibc's stdio buffer size for a file or pipe (BUFSIZ-like st_blksize). */
const STDIO_BUFSIZ = 4096;

/**
 * One process's view of libc. `fork()` gives the child its own Libc (the
 * child's errno, memory and file table).
 */
export class Libc {
  errno = 0;
  /** The frame `stack()` hands out (in the stack VMA). */
  protected stackArea = 0;
  /** stdout/stderr buffers (malloc'ed at first use, as glibc does): pending text per fd. */
  private stdio = new Map<number, { buf: number; text: string }>();
  private tmpCounter = 0;

  /**
   * `stackArea`: a frame on the process's stack. A new program's stack
   * exists before main() (setupStack: the [stack] VMA at the top of the
   * address space, far from the program's mappings); fork()'s child
   * inherits the parent's at the same address.
   */
  constructor(
    readonly p: Process,
    stackArea = 0,
  ) {
    this.stackArea = stackArea;
    if (this.stackArea === 0) this.stackArea = p.setupStack() - STACK_FRAME_OFFSET;
  }

  protected sysret(r: number): number {
    if (r < 0) {
      this.errno = -r;
      return -1;
    }
    return r;
  }

  /**
   * A piece of stack: the address of a frame of up to 32 KiB in the stack
   * VMA for on-stack structs (`struct hmm_dmirror_cmd cmd;`). The frame is
   * reused by every call: data in it lives until the next call.
   */
  stack(size: number): number {
    if (size > STACK_FRAME) throw new RangeError(`Libc.stack: ${size} bytes is more than the ${STACK_FRAME}-byte frame`);
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
  /** brk(addr): 0, or -1 with ENOMEM when the kernel did not move the break there. */
  brk(addr: number): number {
    const r = this.p.brk(addr);
    if (r < addr) {
      this.errno = ENOMEM;
      return -1;
    }
    return 0;
  }
  /** sbrk(increment): the old break, or -1 ((void *)-1) with ENOMEM. */
  sbrk(increment: number): number {
    const cur = this.p.brk(0);
    if (increment === 0) return cur;
    const r = this.p.brk(cur + increment);
    if (r !== cur + increment) {
      this.errno = ENOMEM;
      return -1;
    }
    return cur;
  }
  /** malloc(): NULL with ENOMEM on failure. */
  malloc(size: number): number {
    const r = this.p.heap.malloc(size);
    if (r === NULL) this.errno = this.p.heap.errno;
    return r;
  }
  calloc(nmemb: number, size: number): number {
    const r = this.p.heap.calloc(nmemb, size);
    if (r === NULL) this.errno = this.p.heap.errno;
    return r;
  }
  realloc(ptr: number, size: number): number {
    const r = this.p.heap.realloc(ptr, size);
    if (r === NULL && size !== 0) this.errno = this.p.heap.errno;
    return r;
  }
  /** free(): NULL is a no-op; an invalid pointer aborts (SIGABRT). */
  free(addr: number): void {
    if (addr !== NULL) this.p.free(addr);
  }
  /**
   * posix_memalign(&ptr, alignment, size): 0 and the pointer stored at
   * `memptr` (8 bytes of user memory), or EINVAL (alignment not a power of
   * two multiple of sizeof(void *)) / ENOMEM. errno is not set.
   */
  posix_memalign(memptr: number, alignment: number, size: number): number {
    if (alignment % 8 !== 0 || alignment === 0 || (alignment & (alignment - 1)) !== 0) return EINVAL;
    const r = this.p.heap.memalign(alignment, size);
    if (r === NULL) return ENOMEM;
    this.writeU64(memptr, BigInt(r));
    return 0;
  }
  /** aligned_alloc() / memalign(): NULL with EINVAL or ENOMEM. */
  aligned_alloc(alignment: number, size: number): number {
    const r = this.p.heap.memalign(alignment, size);
    if (r === NULL) this.errno = this.p.heap.errno;
    return r;
  }
  malloc_usable_size(ptr: number): number {
    return this.p.heap.usableSize(ptr);
  }
  /** mallinfo2()-like counters of the allocator (arena size, mmapped chunks, thresholds, syscalls made). */
  mallinfo(): MallocStats {
    return this.p.heap.stats();
  }
  /** memset() */
  memset(addr: number, byte: number, n: number): number {
    this.p.fill(addr, n, byte);
    return addr;
  }
  /** memcpy() */
  memcpy(dst: number, src: number, n: number): number {
    if (n > 0) this.p.writeBytes(dst, this.p.readBytes(src, n));
    return dst;
  }

  /* ---- C strings ---- */

  /** Store a JS string as a NUL-terminated UTF-8 C string at addr (strcpy from a literal). */
  strcpy(addr: number, s: string): number {
    const b = new TextEncoder().encode(s);
    const out = new Uint8Array(b.length + 1);
    out.set(b);
    this.p.writeBytes(addr, out);
    return addr;
  }
  /** The C string at addr (up to max bytes) as a JS string. */
  cstring(addr: number, max = 4096): string {
    const bytes: number[] = [];
    for (let i = 0; i < max; i++) {
      const c = this.p.load8(addr + i);
      if (c === 0) break;
      bytes.push(c);
    }
    return new TextDecoder().decode(new Uint8Array(bytes));
  }
  private path(p: string | number): string {
    return typeof p === 'string' ? p : this.cstring(p);
  }

  /* ---- files ---- */

  /** open(path, flags, mode): path a JS string or a char * in user memory. */
  open(path: string | number, flags: number, mode = 0): number {
    return this.sysret(this.p.open(this.path(path), flags, mode));
  }
  close(fd: number): number {
    if (this.stdio.has(fd)) this.fflush(fd);
    return this.sysret(this.p.close(fd));
  }
  read(fd: number, buf: number, n: number): number {
    return this.sysret(this.p.read(fd, buf, n));
  }
  write(fd: number, buf: number, n: number): number {
    return this.sysret(this.p.write(fd, buf, n));
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
  unlink(path: string | number): number {
    return this.sysret(this.p.unlink(this.path(path)));
  }
  /**
   * mkstemp(template): `template` is a char * in user memory ending in
   * "XXXXXX" (e.g. "/tmp/hmmXXXXXX" copied to the stack with strcpy). The
   * X's are replaced with a unique name and the file is created with
   * O_RDWR | O_CREAT | O_EXCL, mode 0600. Returns the fd, or -1 with EINVAL
   * (bad template) or EEXIST (no unique name found).
   */
  mkstemp(template: number): number {
    const t = this.cstring(template);
    if (!t.endsWith('XXXXXX')) {
      this.errno = EINVAL;
      return -1;
    }
    const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    for (let attempt = 0; attempt < 62 * 62 * 62; attempt++) {
      // glibc draws random letters; the model derives them from pid and a counter (replayable).
      let v = (this.p.pid * 7919 + this.tmpCounter++ * 104729) >>> 0;
      let suffix = '';
      for (let i = 0; i < 6; i++) {
        suffix += letters[v % 62];
        v = Math.floor(v / 62) + i * 31;
      }
      const name = t.slice(0, -6) + suffix;
      const fd = this.p.open(name, O_RDWR | O_CREAT | O_EXCL, 0o600);
      if (fd === -EEXIST) continue;
      if (fd < 0) return this.sysret(fd);
      this.strcpy(template, name);
      return fd;
    }
    this.errno = EEXIST;
    return -1;
  }

  /* ---- stdio (fds 1 and 2) ---- */

  /**
   * printf(fmt, ...): formatted text to stdout through a 4 KiB buffer the
   * first call malloc()s, as glibc does; flushed at each newline (glibc
   * line-buffers a terminal) and at exit. Returns the number of bytes.
   */
  printf(fmt: string, ...args: Array<number | bigint | string>): number {
    return this.fprintf(1, fmt, ...args);
  }
  /** fprintf(stdout or stderr, ...): `stream` is the fd (1 or 2). stderr is unbuffered. */
  fprintf(stream: number, fmt: string, ...args: Array<number | bigint | string>): number {
    const text = formatC(fmt, args);
    let st = this.stdio.get(stream);
    if (st === undefined) {
      const buf = this.malloc(STDIO_BUFSIZ);
      if (buf === NULL) return -1;
      st = { buf, text: '' };
      this.stdio.set(stream, st);
    }
    st.text += text;
    if (stream === 2 || st.text.includes('\n')) {
      const cut = stream === 2 ? st.text.length : st.text.lastIndexOf('\n') + 1;
      const out = st.text.slice(0, cut);
      st.text = st.text.slice(cut);
      this.writeOut(stream, st.buf, out);
    }
    return new TextEncoder().encode(text).length;
  }
  puts(s: string): number {
    return this.printf('%s\n', s);
  }
  /** perror(s): "s: strerror(errno)" on stderr. */
  perror(s: string): void {
    this.fprintf(2, '%s: %s\n', s, errnoName(this.errno));
  }
  /** fflush(stream): write out what the stream's buffer holds. */
  fflush(stream: number): number {
    const st = this.stdio.get(stream);
    if (st === undefined || st.text === '') return 0;
    const out = st.text;
    st.text = '';
    return this.writeOut(stream, st.buf, out) < 0 ? -1 : 0;
  }
  private writeOut(fd: number, buf: number, text: string): number {
    const b = new TextEncoder().encode(text);
    for (let off = 0; off < b.length; off += STDIO_BUFSIZ) {
      const chunk = b.subarray(off, Math.min(b.length, off + STDIO_BUFSIZ));
      this.p.writeBytes(buf, chunk);
      const r = this.p.write(fd, buf, chunk.length);
      if (r < 0) {
        this.errno = -r;
        return -1;
      }
    }
    return b.length;
  }

  /* ---- processes ---- */

  /** The child's Libc after fork() (same stack frame address). */
  protected childLibc(cp: Process): Libc {
    return new Libc(cp, this.stackArea);
  }

  /**
   * fork(): runs `child` as the child's code, with the child's Libc, to
   * completion; then the parent continues. Returns the child's pid or -1.
   */
  fork(child: (c: Libc) => void): number {
    for (const fd of this.stdio.keys()) this.fflush(fd);
    const r = this.p.fork((cp: Process) => {
      child(this.childLibc(cp));
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
  getpid(): number {
    return this.p.getpid();
  }
  /** exit(): flush stdio, then _exit(). */
  exit(code: number): void {
    for (const fd of this.stdio.keys()) this.fflush(fd);
    this.p.exit(code);
  }
  /** _exit() */
  _exit(code: number): void {
    this.p.exit(code);
  }
  /** abort(): SIGABRT; throws ProcessSignal out of the call. */
  abort(): never {
    this.p.kill(this.p.pid, SIGABRT);
    throw new ProcessSignal(this.p.pid, SIGABRT, -1);
  }

  /* ---- CPU accesses (the program's `ptr[i]`) ---- */

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
  store8(addr: number, v: number): void {
    this.p.store8(addr, v);
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
 * The C printf conversions the simulated libc supports: flags (-, 0, +,
 * space, #), width, precision, length modifiers h hh l ll z j t (ignored:
 * arguments are JS numbers or bigints), and d i u x X o c s p %.
 */
export function formatC(fmt: string, args: ReadonlyArray<number | bigint | string>): string {
  let out = '';
  let ai = 0;
  const re = /%([-+ 0#]*)(\d+|\*)?(?:\.(\d+|\*))?(hh|h|ll|l|z|j|t)?([diuxXocsp%])/g;
  let last = 0;
  for (let m = re.exec(fmt); m !== null; m = re.exec(fmt)) {
    out += fmt.slice(last, m.index);
    last = re.lastIndex;
    const [, flags, w, prec, , conv] = m;
    if (conv === '%') {
      out += '%';
      continue;
    }
    const width = w === '*' ? Number(args[ai++]) : w ? Number(w) : 0;
    const precision = prec === '*' ? Number(args[ai++]) : prec !== undefined ? Number(prec) : -1;
    const a = args[ai++];
    let s: string;
    switch (conv) {
      case 'd':
      case 'i': {
        const v = typeof a === 'bigint' ? a : BigInt(Math.trunc(Number(a)));
        s = (v < 0n ? -v : v).toString();
        if (precision >= 0) s = s.padStart(precision, '0');
        s = (v < 0n ? '-' : flags.includes('+') ? '+' : flags.includes(' ') ? ' ' : '') + s;
        break;
      }
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        let v = typeof a === 'bigint' ? a : BigInt(Math.trunc(Number(a)));
        if (v < 0n) v = BigInt.asUintN(64, v);
        s = v.toString(conv === 'u' ? 10 : conv === 'o' ? 8 : 16);
        if (conv === 'X') s = s.toUpperCase();
        if (precision >= 0) s = s.padStart(precision, '0');
        if (flags.includes('#') && v !== 0n) s = (conv === 'o' ? '0' : conv === 'x' ? '0x' : conv === 'X' ? '0X' : '') + s;
        break;
      }
      case 'p':
        s = Number(a) === 0 ? '(nil)' : '0x' + BigInt(a).toString(16);
        break;
      case 'c':
        s = typeof a === 'string' ? a.slice(0, 1) : String.fromCharCode(Number(a));
        break;
      default: /* s */
        s = a === undefined ? '(null)' : String(a);
        if (precision >= 0) s = s.slice(0, precision);
    }
    if (s.length < width) {
      if (flags.includes('-')) s = s.padEnd(width);
      else if (flags.includes('0') && conv !== 's' && conv !== 'c' && precision < 0) {
        const sign = /^[-+ ]/.test(s) ? s[0] : '';
        s = sign + s.slice(sign.length).padStart(width - sign.length, '0');
      } else s = s.padStart(width);
    }
    out += s;
  }
  return out + fmt.slice(last);
}
