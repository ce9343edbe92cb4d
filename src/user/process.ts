// SPDX-License-Identifier: GPL-2.0-only
/**
 * A simulated user process: raw system calls (return >= 0 or -errno, as the
 * syscall instruction does, no errno variable), CPU loads and stores through
 * the MMU, fork/wait/kill/exit.
 *
 * Every syscall has a generator twin under `p.sys` (`yield* p.sys.munmap(a,
 * n)`) for use inside `p.runThreads(seed, bodies)`, where several threads
 * of the process run under the deterministic scheduler. The plain methods
 * (`p.munmap(a, n)`) drive the same generator with runSync().
 *
 * CPU access (load8..64, store8..64, readBytes, writeBytes, readI32,
 * writeI32, fill) is src/user/cpu_access.ts (the MMU walk, the fault and
 * retry); a SIGSEGV or SIGBUS kills the process (fds closed, address space
 * torn down) and throws ProcessSignal (src/user/signals.ts, with the wait
 * status encoding) out of the access. Every syscall and every CPU fault
 * ends with k.checkpoint() (checked mode invariants).
 */
import type { Kernel } from '../kernel/kernel.js';
import type { MmStruct } from '../kernel/mm/mm_types.js';
import { type K, runSync, RandomStrategy } from '../kernel/sched/sched.js';
import { KernelBug } from '../kernel/printk.js';
import { EBADF, ECHILD, EINVAL, ESRCH, ENOMEM } from '../kernel/errno.js';
import { PAGE_SIZE } from '../kernel/mm/page.js';
import { File, O_RDONLY, fput, getFile } from '../kernel/fs/chardev.js';
import { processMbind } from './mempolicy.js';
import { vmMmapPgoff, vmMunmap, MAP_ANONYMOUS, MAP_FIXED, MAP_GROWSDOWN, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mmap.js';
import { sysBrk } from '../kernel/mm/brk.js';
import { Malloc } from './malloc.js';
import { doMprotect } from '../kernel/mm/mprotect.js';
import { doMremap } from '../kernel/mm/mremap.js';
import { doMadvise } from '../kernel/mm/madvise.js';
import { dupMmap, mmput } from '../kernel/mm/fork.js';
import type { System } from './system.js';
import { IGNORED_BY_DEFAULT, ProcessSignal, SIGABRT, WNOHANG } from './signals.js';
import { CpuAccess } from './cpu_access.js';
import { sysClose, sysFtruncate, sysIoctl, sysOpen, sysRead, sysUnlink, sysWrite } from './file_syscalls.js';

export {
  WNOHANG, WIFEXITED, WEXITSTATUS, WIFSIGNALED, WTERMSIG, SIGSEGV, SIGBUS, SIGKILL, SIGABRT, SIGTERM, SIGCHLD, SIGCONT,
  SIGSTOP, SIGURG, SIGWINCH, ProcessSignal,
} from './signals.js';

/** A syscall on a process that has exited: a bug in the test, not simulated behaviour. */
export class DeadProcessError extends Error {}


export type ProcState = 'running' | 'zombie' | 'reaped';

/** The generator twins of the syscalls and CPU accesses (for runThreads bodies). */
export interface SysCalls {
  mmap(addr: number, len: number, prot: number, flags: number, fd?: number, off?: number): K<number>;
  munmap(addr: number, len: number): K<number>;
  mprotect(addr: number, len: number, prot: number): K<number>;
  mremap(old: number, oldSize: number, newSize: number, flags: number, newAddr?: number): K<number>;
  madvise(addr: number, len: number, advice: number): K<number>;
  open(path: string, flags: number, mode?: number): K<number>;
  close(fd: number): K<number>;
  read(fd: number, buf: number, count: number): K<number>;
  pread(fd: number, buf: number, count: number, off: number): K<number>;
  pwrite(fd: number, buf: number, count: number, off: number): K<number>;
  ftruncate(fd: number, len: number): K<number>;
  ioctl(fd: number, cmd: number, arg: number): K<number>;
  brk(addr: number): K<number>;
  write(fd: number, buf: number, count: number): K<number>;
  unlink(path: string): K<number>;
  readBytes(addr: number, len: number): K<Uint8Array>;
  writeBytes(addr: number, bytes: Uint8Array): K<void>;
  load32(addr: number): K<number>;
  store32(addr: number, v: number): K<void>;
}

export class Process {
  readonly fds = new Map<number, File>();
  state: ProcState = 'running';
  /** wait status once a zombie. */
  status = 0;
  readonly children = new Set<Process>();
  readonly sys: SysCalls;
  /** The C library's allocator state (glibc-like: src/user/malloc.ts); fork() copies it. */
  heap: Malloc;
  /** Top of the stack VMA once set up (setupStack), else 0. */
  stackTop = 0;
  /** Host sink of what the process writes to fds 1 and 2 when they are the console (System.spawn stdio). */
  console: ((fd: number, text: string) => void) | null = null;
  /** A fatal signal taken inside runThreads: the wait status to die with after the run, or -1. */
  private pendingDeath = -1;
  /** The MMU access path of this process's CPU (loads, stores, bulk copies). */
  private readonly cpu: CpuAccess;

  constructor(
    readonly system: System,
    readonly pid: number,
    readonly name: string,
    public mm: MmStruct | null,
    readonly parent: Process | null,
  ) {
    const self = this;
    this.cpu = new CpuAccess(this);
    this.sys = {
      mmap: (a, l, pr, fl, fd = -1, off = 0) => self.sysMmap(a, l, pr, fl, fd, off),
      munmap: (a, l) => self.wrap('munmap', vmMunmap(self.mmOrDie(), a, l)),
      mprotect: (a, l, pr) => self.wrap('mprotect', doMprotect(self.mmOrDie(), a, l, pr)),
      mremap: (o, os, ns, fl, na = 0) => self.wrap('mremap', doMremap(self.mmOrDie(), o, os, ns, fl, na)),
      madvise: (a, l, adv) => self.wrap('madvise', doMadvise(self.mmOrDie(), a, l, adv)),
      open: (path, fl, mode = 0) => sysOpen(self, path, fl, mode),
      close: (fd) => sysClose(self, fd),
      read: (fd, buf, count) => sysRead(self, fd, buf, count, -1),
      pread: (fd, buf, count, off) => (off < 0 ? self.wrap('pread', ret(-EINVAL)) : sysRead(self, fd, buf, count, off)),
      pwrite: (fd, buf, count, off) => (off < 0 ? self.wrap('pwrite', ret(-EINVAL)) : sysWrite(self, fd, buf, count, off)),
      ftruncate: (fd, len) => sysFtruncate(self, fd, len),
      ioctl: (fd, cmd, arg) => sysIoctl(self, fd, cmd, arg),
      brk: (addr) => self.wrap('brk', sysBrk(self.mmOrDie(), addr)),
      write: (fd, buf, count) => sysWrite(self, fd, buf, count, -1),
      unlink: (path) => sysUnlink(self, path),
      readBytes: (addr, len) => self.cpu.readBytesGen(addr, len),
      writeBytes: (addr, bytes) => self.cpu.writeBytesGen(addr, bytes),
      load32: (addr) => self.cpu.load32Gen(addr),
      store32: (addr, v) => self.cpu.store32Gen(addr, v),
    };
    this.heap = new Malloc(this.mallocHost());
  }

  /** The primitives glibc's malloc uses, on this process. */
  private mallocHost() {
    return {
      brk: (a: number) => this.brk(a),
      mmap: (a: number, l: number, pr: number, fl: number) => this.mmap(a, l, pr, fl),
      munmap: (a: number, l: number) => this.munmap(a, l),
      mremap: (o: number, os: number, ns: number, fl: number) => this.mremap(o, os, ns, fl),
      store64: (a: number, v: bigint) => this.store64(a, v),
      readBytes: (a: number, l: number) => this.readBytes(a, l),
      writeBytes: (a: number, b: Uint8Array) => this.writeBytes(a, b),
      fill: (a: number, l: number, b: number) => this.fill(a, l, b),
      abort: (msg: string): never => this.abort(msg),
      checked: this.kernel.config.checked,
    };
  }

  /**
   * abort(): glibc prints the message (malloc_printerr) and raises SIGABRT;
   * the process dies and ProcessSignal is thrown out of the call.
   */
  abort(msg: string): never {
    this.mmOrDie();
    this.kernel.printk.info(`${this.name}[${this.pid}]: ${msg}`);
    this.console?.(2, `${msg}\n`);
    this.die(SIGABRT);
    throw new ProcessSignal(this.pid, SIGABRT, -1);
  }

  get kernel(): Kernel {
    return this.system.kernel;
  }

  get alive(): boolean {
    return this.state === 'running';
  }

  /** @internal The live process's mm; a DeadProcessError once it exited. */
  mmOrDie(): MmStruct {
    if (this.state !== 'running' || this.mm === null) throw new DeadProcessError(`process ${this.pid} (${this.name}) has exited`);
    return this.mm;
  }

  /** @internal Syscall entry: set current, check the process is alive. */
  enter(): Kernel {
    const mm = this.mmOrDie();
    const k = this.kernel;
    k.current = { pid: this.pid, mm, comm: this.name };
    return k;
  }

  private *wrap<T>(op: string, g: K<T>): K<T> {
    const k = this.enter();
    const r = yield* g;
    this.cp(op);
    return r;
  }

  /**
   * k.checkpoint(op) after a syscall or fault, except inside runThreads:
   * the invariants hold only at rest, so runThreads checks once at the end.
   * @internal
   */
  cp(op: string): void {
    const k = this.kernel;
    if (!k.sched.exploring) k.checkpoint(op);
  }

  private run<T>(g: K<T>): T {
    return runSync(this.kernel.sched, g);
  }

  /* ---------------- syscalls ---------------- */

  private *sysMmap(addr: number, len: number, prot: number, flags: number, fd: number, off: number): K<number> {
    const k = this.enter();
    let r: number;
    if (off % PAGE_SIZE !== 0 || off < 0) r = -EINVAL;
    else {
      let file: File | null = null;
      if (!(flags & MAP_ANONYMOUS)) file = this.fds.get(fd) ?? null;
      if (!(flags & MAP_ANONYMOUS) && file === null) r = -EBADF;
      else r = yield* vmMmapPgoff(this.mm!, addr, len, prot, flags, file, off / PAGE_SIZE);
    }
    this.cp('mmap');
    return r;
  }

  mmap(addr: number, len: number, prot: number, flags: number, fd = -1, off = 0): number {
    return this.run(this.sys.mmap(addr, len, prot, flags, fd, off));
  }
  munmap(addr: number, len: number): number {
    return this.run(this.sys.munmap(addr, len));
  }
  mprotect(addr: number, len: number, prot: number): number {
    return this.run(this.sys.mprotect(addr, len, prot));
  }
  mremap(old: number, oldSize: number, newSize: number, flags: number, newAddr = 0): number {
    return this.run(this.sys.mremap(old, oldSize, newSize, flags, newAddr));
  }
  madvise(addr: number, len: number, advice: number): number {
    return this.run(this.sys.madvise(addr, len, advice));
  }
  /** mbind(2): src/user/mempolicy.ts, mm/mempolicy.ts doMbind(). */
  mbind(addr: number, len: number, mode: number, nodemask: readonly number[], flags = 0): number { return processMbind(this, addr, len, mode, nodemask, flags); }
  open(path: string, flags: number, mode = 0): number {
    return this.run(this.sys.open(path, flags, mode));
  }
  close(fd: number): number {
    return this.run(this.sys.close(fd));
  }
  read(fd: number, bufAddr: number, count: number): number {
    return this.run(this.sys.read(fd, bufAddr, count));
  }
  pread(fd: number, bufAddr: number, count: number, off: number): number {
    return this.run(this.sys.pread(fd, bufAddr, count, off));
  }
  pwrite(fd: number, bufAddr: number, count: number, off: number): number {
    return this.run(this.sys.pwrite(fd, bufAddr, count, off));
  }
  ftruncate(fd: number, len: number): number {
    return this.run(this.sys.ftruncate(fd, len));
  }
  ioctl(fd: number, cmd: number, argAddr: number): number {
    return this.run(this.sys.ioctl(fd, cmd, argAddr));
  }
  /** brk(2): the new program break, or the unchanged one on failure (never -errno). */
  brk(addr: number): number {
    return this.run(this.sys.brk(addr));
  }
  /** write(2) at the file position. */
  write(fd: number, bufAddr: number, count: number): number {
    return this.run(this.sys.write(fd, bufAddr, count));
  }
  /** unlink(2) (tmpfs names under /tmp and /dev/shm). */
  unlink(path: string): number {
    return this.run(this.sys.unlink(path));
  }
  getpid(): number {
    this.mmOrDie();
    return this.pid;
  }

  /**
   * Convenience (not a syscall): the whole text of a file, read through a
   * temporary buffer in this process (open + read + close).
   */
  readFileText(path: string, max = 1 << 16): string | number {
    const fd = this.open(path, O_RDONLY);
    if (fd < 0) return fd;
    const buf = this.malloc(max);
    const n = this.read(fd, buf, max);
    const bytes = n > 0 ? this.readBytes(buf, n) : new Uint8Array(0);
    this.free(buf);
    this.close(fd);
    return n < 0 ? n : new TextDecoder().decode(bytes);
  }

  /** Convenience: the /proc/self/pagemap entry of one virtual address. */
  pagemap(addr: number): bigint {
    const fd = this.open('/proc/self/pagemap', O_RDONLY);
    if (fd < 0) throw new Error(`open pagemap: ${fd}`);
    const buf = this.malloc(8);
    const n = this.pread(fd, buf, 8, Math.floor(addr / PAGE_SIZE) * 8);
    const v = this.load64(buf);
    this.free(buf);
    this.close(fd);
    if (n !== 8) throw new Error(`pread pagemap: ${n}`);
    return v;
  }

  /* ---------------- memory helpers ---------------- */

  /**
   * malloc() of the process's C library (glibc-like, src/user/malloc.ts):
   * small requests from the brk heap, large ones (>= the mmap threshold)
   * mmap()ed. Returns the address, or -ENOMEM.
   */
  malloc(size: number): number {
    const a = this.heap.malloc(size);
    return a === 0 ? -ENOMEM : a;
  }

  /** free() of a malloc()ed address; an invalid pointer aborts the process (SIGABRT), as glibc does. */
  free(addr: number): void {
    this.mmOrDie();
    this.heap.free(addr);
  }

  /** Size of the stack VMA setupStack() maps: a fresh process's [stack] (132 KiB). */
  static readonly STACK_SIZE = 132 * 1024;

  /**
   * The stack as execve() leaves it (setup_arg_pages): an anonymous
   * VM_GROWSDOWN VMA just below TASK_SIZE (the model has no ASLR). Called
   * once by the C runtime (Libc) before main(); returns the stack top.
   * The model does not grow the stack on a fault below it (no
   * expand_stack): programs keep their on-stack data within 132 KiB.
   */
  setupStack(): number {
    if (this.stackTop !== 0) return this.stackTop;
    const mm = this.mmOrDie();
    const top = mm.taskSize;
    const a = this.mmap(top - Process.STACK_SIZE, Process.STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_GROWSDOWN);
    if (a < 0) throw new KernelBug('BUG', `setupStack: mmap of the stack failed (${a})`);
    this.stackTop = top;
    return top;
  }

  /* ---------------- CPU access (src/user/cpu_access.ts) ---------------- */

  /** @internal Deliver a fatal signal from a CPU access: kill, then throw. */
  fatal(signo: number, addr: number, code: number): never {
    this.die(signo);
    throw new ProcessSignal(this.pid, signo, addr, code);
  }

  readBytes(addr: number, len: number): Uint8Array {
    return this.cpu.readBytes(addr, len);
  }
  writeBytes(addr: number, bytes: Uint8Array): void {
    this.cpu.writeBytes(addr, bytes);
  }
  fill(addr: number, len: number, byte: number): void {
    this.cpu.fill(addr, len, byte);
  }
  readI32(addr: number, n: number): Int32Array {
    return this.cpu.readI32(addr, n);
  }
  writeI32(addr: number, arr: Int32Array): void {
    this.cpu.writeI32(addr, arr);
  }
  load8(addr: number): number {
    return this.cpu.load8(addr);
  }
  load16(addr: number): number {
    return this.cpu.load16(addr);
  }
  load32(addr: number): number {
    return this.cpu.load32(addr);
  }
  load64(addr: number): bigint {
    return this.cpu.load64(addr);
  }
  store8(addr: number, v: number): void {
    this.cpu.store8(addr, v);
  }
  store16(addr: number, v: number): void {
    this.cpu.store16(addr, v);
  }
  store32(addr: number, v: number): void {
    this.cpu.store32(addr, v);
  }
  store64(addr: number, v: bigint): void {
    this.cpu.store64(addr, v);
  }

  /* ---------------- processes ---------------- */

  /**
   * fork(): a child with a copy of the address space (dup_mmap: COW) and of
   * the fd table. childBody runs at once, to completion (a SIGSEGV/SIGBUS in
   * it kills only the child). If it returns without exit() the child stays
   * alive until killed. Returns the child's pid, or -ENOMEM when the address
   * space could not be copied.
   */
  fork(childBody: (child: Process) => void): number {
    const mm = this.mmOrDie();
    const k = this.kernel;
    k.current = { pid: this.pid, mm, comm: this.name };
    if (k.shouldFail('dup_mm')) {
      this.cp('fork');
      return -ENOMEM; /* dup_mm(): allocate_mm() returned NULL */
    }
    const cmm = k.newMm();
    const r = runSync(k.sched, dupMmap(mm, cmm));
    if (r < 0) {
      runSync(k.sched, mmput(cmm));
      this.cp('fork');
      return r === -ENOMEM ? r : -ENOMEM;
    }
    const child = this.system.newProcess(this.name, cmm, this);
    child.heap = this.heap.cloneFor(child.mallocHost());
    child.stackTop = this.stackTop;
    child.console = this.console;
    this.children.add(child);
    for (const [fd, f] of this.fds) child.fds.set(fd, getFile(f));
    this.cp('fork');
    try {
      childBody(child);
    } catch (e) {
      if (!(e instanceof ProcessSignal && e.pid === child.pid)) throw e;
    }
    return child.pid;
  }

  /** Tear down: close every fd (driver release), mmput (exit_mmap), become a zombie. */
  private die(status: number): void {
    if (this.state !== 'running') return;
    const k = this.kernel;
    if (k.sched.exploring) {
      // Inside runThreads: the teardown runs when the scheduled run is over.
      if (this.pendingDeath < 0) this.pendingDeath = status;
      return;
    }
    const mm = this.mm!;
    k.current = { pid: this.pid, mm, comm: this.name };
    const files = [...this.fds.values()];
    this.fds.clear();
    for (const f of files) runSync(k.sched, fput(f));
    this.mm = null;
    runSync(k.sched, mmput(mm));
    this.state = 'zombie';
    this.status = status;
    k.current = { pid: 0, mm: null, comm: 'swapper' };
    this.cp('exit');
  }

  /** exit(code): the process ends (status (code & 0xff) << 8). Returns normally to the caller. */
  exit(code: number): void {
    this.mmOrDie();
    this.die((code & 0xff) << 8);
  }

  /**
   * kill(pid, sig): signals with a terminating default action kill the
   * target (status = sig); ignored-by-default ones do nothing; sig 0 only
   * checks. -ESRCH: no such process; -EINVAL: bad signal. Killing oneself
   * throws ProcessSignal (the call does not return).
   */
  kill(pid: number, sig: number): number {
    this.mmOrDie();
    if (sig < 0 || sig > 64) return -EINVAL;
    const t = this.system.procs.get(pid);
    if (t === undefined || t.state === 'reaped') return -ESRCH;
    if (sig === 0 || t.state !== 'running' || IGNORED_BY_DEFAULT.has(sig)) return 0;
    t.die(sig & 0x7f);
    if (t === this) throw new ProcessSignal(this.pid, sig, -1);
    return 0;
  }

  /**
   * waitpid(pid, options): reap a zombie child (pid -1: any). Returns
   * {pid, status}; {pid: 0} with WNOHANG while it runs; {pid: -ECHILD} if
   * it is not a child. Waiting without WNOHANG for a child that never exits
   * is a HANG KernelBug (nothing else can run in the model).
   */
  waitpid(pid: number, options = 0): { pid: number; status: number } {
    this.mmOrDie();
    const cands = [...this.children].filter((c) => pid === -1 || c.pid === pid);
    if (cands.length === 0) return { pid: -ECHILD, status: 0 };
    const z = cands.find((c) => c.state === 'zombie');
    if (z) {
      z.state = 'reaped';
      this.children.delete(z);
      this.system.procs.delete(z.pid);
      return { pid: z.pid, status: z.status };
    }
    if (options & WNOHANG) return { pid: 0, status: 0 };
    throw new KernelBug('HANG', `waitpid(${pid}) in process ${this.pid}: the child never exits`);
  }

  /**
   * Run several threads of this process under the scheduler with a seeded
   * random interleaving (k.sched.run(new RandomStrategy(seed))). Bodies use
   * the generator syscalls (`yield* p.sys.munmap(...)`). Returns each
   * thread's result.
   */
  runThreads(seed: number, bodies: Array<() => K<unknown>>): unknown[] {
    const mm = this.mmOrDie();
    const k = this.kernel;
    k.current = { pid: this.pid, mm, comm: this.name };
    const self = this;
    // A thread killed by a signal ends its body with the ProcessSignal as its
    // result; the others run to the end of their bodies (the model does not
    // interrupt them at their next return to user mode) and the process dies
    // when the run is over.
    function* guard(b: () => K<unknown>): K<unknown> {
      try {
        return yield* b();
      } catch (e) {
        if (e instanceof ProcessSignal && e.pid === self.pid) return e;
        throw e;
      }
    }
    const tasks = bodies.map((b, i) => k.sched.spawn(`${this.name}[${this.pid}]/t${i}`, guard(b)));
    try {
      k.sched.run(new RandomStrategy(seed));
    } finally {
      if (this.pendingDeath >= 0) {
        const st = this.pendingDeath;
        this.pendingDeath = -1;
        this.die(st);
      }
    }
    k.checkpoint('threads');
    return tasks.map((t) => t.result);
  }
}

function* ret(v: number): K<number> {
  return v;
}
