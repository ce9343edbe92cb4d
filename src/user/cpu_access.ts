// SPDX-License-Identifier: GPL-2.0-only
/**
 * A process's CPU access to its own memory, as the MMU does it: loads and
 * stores (load8..64, store8..64), bulk copies (readBytes, writeBytes,
 * readI32, writeI32, fill), a page at a time: translate() (the TLB/MMU
 * walk); on a miss, the page fault path (doUserAddrFault()) and a retry,
 * as the CPU re-executes the faulting instruction. A SIGSEGV or SIGBUS
 * kills the process and throws ProcessSignal out of the access.
 *
 * One fault-and-retry loop, faultIn(), serves both callers: the plain
 * accesses drive it with runSync() on a TLB miss (a hit allocates nothing)
 * and check the faults once when the access completes; the generator
 * accesses of runThreads bodies (`yield* p.sys.load32(a)`) yield* it and
 * check after each fault (a no-op while the scheduler runs threads).
 */
import type { MmStruct } from '../kernel/mm/mm_types.js';
import { type K, runSync } from '../kernel/sched/sched.js';
import { KernelBug } from '../kernel/printk.js';
import { translate, doUserAddrFault, SIGSEGV } from '../kernel/arch/fault.js';
import { PAGE_SIZE } from '../kernel/mm/page.js';
import type { Process } from './process.js';

/** The top of the user address space the MMU accepts (47-bit virtual addresses). */
const USER_TOP = 2 ** 47;

/**
 * How often one user access re-executes after a fault before the model calls
 * it a livelock. The CPU restarts the instruction after every handled fault;
 * a fault that keeps "succeeding" without mapping the page (a migration
 * entry nobody removes, VM_FAULT_OOM retried by pagefault_out_of_memory())
 * would spin forever in a real kernel.
 */
const FAULT_RETRIES = 16;

/**
 * The HANG a user access that never completes reports. `oom`: how many of
 * the faults returned VM_FAULT_OOM and were retried (mm/oom_kill.c
 * pagefault_out_of_memory() since v5.16: "Huh VM_FAULT_OOM leaked out to
 * the #PF handler. Retrying PF"); all of them means a persistent allocation
 * failure, which a real kernel retries forever (the task stays killable).
 */
function faultsForever(addr: number, oom: number): KernelBug {
  const where = `user access at 0x${addr.toString(16)}`;
  if (oom === FAULT_RETRIES) return new KernelBug('HANG', `${where}: page fault retried forever (VM_FAULT_OOM each time: "Huh VM_FAULT_OOM leaked out to the #PF handler. Retrying PF")`);
  return new KernelBug('HANG', `${where} faults forever${oom ? ` (${oom} of ${FAULT_RETRIES} faults VM_FAULT_OOM)` : ''}`);
}

/** The CPU access path of one process. */
export class CpuAccess {
  private readonly scratch = new Uint8Array(8);
  private readonly scratchView = new DataView(this.scratch.buffer);
  /**
   * CPU faults taken inside one user access (a load, a store, a bulk copy
   * of a user buffer) are checked once, when the access completes: the
   * access is the user-visible operation. (Checking after each of the 64K
   * faults of a 256 MiB memset would make checked mode quadratic.)
   */
  private faultedInAccess = false;
  /** Why the last faultIn() returned -1: the signal and si_code (signal 0: it faulted forever, failOom of the faults VM_FAULT_OOM). */
  private failSignal = 0;
  private failCode = 0;
  private failOom = 0;

  constructor(private readonly p: Process) {}

  private endAccess(): void {
    if (this.faultedInAccess) {
      this.faultedInAccess = false;
      this.p.cp('fault');
    }
  }

  /**
   * The fault-and-retry loop of one access that missed in the TLB: up to
   * FAULT_RETRIES faults, each followed by a new translation. Returns the
   * pfn, or -1 with failSignal/failCode (the fault handler's signal) or
   * failSignal 0 and failOom (it never completes) set; the caller raises
   * (outside runSync(), so a signal is not taken for an oops of the fault
   * path). checkEach: checkpoint after every fault (generator accesses),
   * else once at the end of the access.
   */
  private *faultIn(mm: MmStruct, addr: number, write: boolean, checkEach: boolean): K<number> {
    const p = this.p;
    const k = p.kernel;
    let oom = 0;
    for (let t = 0; t < FAULT_RETRIES; t++) {
      k.current = { pid: p.pid, mm, comm: p.name };
      const r = yield* doUserAddrFault(mm, addr, write);
      if (checkEach) p.cp('fault');
      else this.faultedInAccess = true;
      if (!r.ok) {
        this.failSignal = r.signal;
        this.failCode = r.code;
        return -1;
      }
      if (r.oom) oom++;
      const pfn = translate(mm, addr, write);
      if (pfn >= 0) return pfn;
    }
    this.failSignal = 0;
    this.failOom = oom;
    return -1;
  }

  /** The pfn faultIn() returned, or what it recorded raised: the fatal signal, or the HANG of a fault that never completes. */
  private settle(addr: number, pfn: number): number {
    if (pfn >= 0) return pfn;
    if (this.failSignal !== 0) this.p.fatal(this.failSignal, addr, this.failCode);
    throw faultsForever(addr, this.failOom);
  }

  /** The pfn for an access: translate(), on a miss the faults driven with runSync(). */
  private page(addr: number, write: boolean): number {
    const mm = this.p.mmOrDie();
    if (!(addr >= 0 && addr < USER_TOP)) this.p.fatal(SIGSEGV, addr, 1);
    const pfn = translate(mm, addr, write);
    if (pfn >= 0) return pfn;
    return this.settle(addr, runSync(this.p.kernel.sched, this.faultIn(mm, addr, write, false)));
  }

  /** page() for generator accesses: the faults are yield*ed. */
  private *pageGen(addr: number, write: boolean): K<number> {
    const mm = this.p.mmOrDie();
    if (!(addr >= 0 && addr < USER_TOP)) this.p.fatal(SIGSEGV, addr, 1);
    const pfn = translate(mm, addr, write);
    if (pfn >= 0) return pfn;
    return this.settle(addr, yield* this.faultIn(mm, addr, write, true));
  }

  /**
   * One CPU access of [addr, addr+len): page by page through the MMU
   * (faulting where needed), `fn(pfn, offset in page, bytes done, chunk)`
   * for each piece; the faults taken are checked once at the end.
   */
  private access(addr: number, len: number, write: boolean, fn: (pfn: number, off: number, done: number, chunk: number) => void): void {
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const off = a % PAGE_SIZE;
      const chunk = Math.min(PAGE_SIZE - off, len - done);
      fn(this.page(a, write), off, done, chunk);
      done += chunk;
    }
    this.endAccess();
  }

  /** Copy user memory [addr, addr+len) into out[outOff..]. */
  private readInto(addr: number, out: Uint8Array, outOff: number, len: number): void {
    const c = this.p.kernel.contents;
    this.access(addr, len, false, (pfn, off, done, chunk) => c.read(pfn, off, out, outOff + done, chunk));
  }

  private writeFrom(addr: number, src: Uint8Array, srcOff: number, len: number): void {
    const c = this.p.kernel.contents;
    this.access(addr, len, true, (pfn, off, done, chunk) => c.write(pfn, off, src, srcOff + done, chunk));
  }

  readBytes(addr: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.readInto(addr, out, 0, len);
    return out;
  }

  writeBytes(addr: number, bytes: Uint8Array): void {
    this.writeFrom(addr, bytes, 0, bytes.length);
  }

  fill(addr: number, len: number, byte: number): void {
    const c = this.p.kernel.contents;
    this.access(addr, len, true, (pfn, off, _done, chunk) => c.fill(pfn, off, chunk, byte & 0xff));
  }

  readI32(addr: number, n: number): Int32Array {
    const out = new Int32Array(n);
    this.readInto(addr, new Uint8Array(out.buffer), 0, n * 4);
    return out;
  }

  writeI32(addr: number, arr: Int32Array): void {
    this.writeFrom(addr, new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength), 0, arr.byteLength);
  }

  load8(addr: number): number {
    this.readInto(addr, this.scratch, 0, 1);
    return this.scratch[0];
  }
  load16(addr: number): number {
    this.readInto(addr, this.scratch, 0, 2);
    return this.scratchView.getUint16(0, true);
  }
  load32(addr: number): number {
    this.readInto(addr, this.scratch, 0, 4);
    return this.scratchView.getInt32(0, true);
  }
  load64(addr: number): bigint {
    this.readInto(addr, this.scratch, 0, 8);
    return this.scratchView.getBigUint64(0, true);
  }
  store8(addr: number, v: number): void {
    this.scratch[0] = v;
    this.writeFrom(addr, this.scratch, 0, 1);
  }
  store16(addr: number, v: number): void {
    this.scratchView.setUint16(0, v, true);
    this.writeFrom(addr, this.scratch, 0, 2);
  }
  store32(addr: number, v: number): void {
    this.scratchView.setInt32(0, v | 0, true);
    this.writeFrom(addr, this.scratch, 0, 4);
  }
  store64(addr: number, v: bigint): void {
    this.scratchView.setBigUint64(0, BigInt.asUintN(64, v), true);
    this.writeFrom(addr, this.scratch, 0, 8);
  }

  /** readBytes() for runThreads bodies. */
  *readBytesGen(addr: number, len: number): K<Uint8Array> {
    const out = new Uint8Array(len);
    const c = this.p.kernel.contents;
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const off = a % PAGE_SIZE;
      const chunk = Math.min(PAGE_SIZE - off, len - done);
      const pfn = yield* this.pageGen(a, false);
      c.read(pfn, off, out, done, chunk);
      done += chunk;
    }
    return out;
  }

  /** writeBytes() for runThreads bodies. */
  *writeBytesGen(addr: number, bytes: Uint8Array): K<void> {
    const c = this.p.kernel.contents;
    let done = 0;
    while (done < bytes.length) {
      const a = addr + done;
      const off = a % PAGE_SIZE;
      const chunk = Math.min(PAGE_SIZE - off, bytes.length - done);
      const pfn = yield* this.pageGen(a, true);
      c.write(pfn, off, bytes, done, chunk);
      done += chunk;
    }
  }

  /** load32() for runThreads bodies. */
  *load32Gen(addr: number): K<number> {
    const b = yield* this.readBytesGen(addr, 4);
    return new DataView(b.buffer).getInt32(0, true);
  }

  /** store32() for runThreads bodies. */
  *store32Gen(addr: number, v: number): K<void> {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v | 0, true);
    yield* this.writeBytesGen(addr, b);
  }
}
