// SPDX-License-Identifier: GPL-2.0-only
/**
 * Scenarios of the allocation-failure sweep (fail_sites.ts):
 *  - every hmm-tests case (src/selftests/hmm_tests.ts), each on a fresh
 *    machine as `hmmsim selftest` runs it, with the sweep's ready / exited
 *    points at the suite's onReady / onExited hooks;
 *  - hand-written dmirror sequences that verify every byte they wrote,
 *    whatever an injected allocation failure made a syscall or ioctl return
 *    (the data must survive; an error return is allowed, a SIGKILL from
 *    VM_FAULT_OOM ends the check).
 */
import type { KernelConfig } from '../kernel/config.js';
import { defaultConfig } from '../kernel/config.js';
import { EEXIST } from '../kernel/errno.js';
import { MAP_ANONYMOUS, MAP_HUGETLB, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mmap.js';
import { MADV_HUGEPAGE, MADV_PAGEOUT } from '../kernel/mm/madvise.js';
import { MREMAP_MAYMOVE } from '../kernel/mm/mremap.js';
import { O_RDWR } from '../kernel/fs/chardev.js';
import { testHmmInit } from '../drivers/test_hmm/index.js';
import {
  HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_READ,
} from '../drivers/test_hmm/uapi.js';
import { gupTestInit } from '../drivers/gup_test.js';
import { System } from '../user/system.js';
import { ProcessSignal } from '../user/process.js';
import { Libc, ALIGN } from '../selftests/libc.js';
import { buildHmmSuite, hmm_buffer_new, hmm_dmirror_cmd } from '../selftests/hmm_tests.js';
import type { CaseResult, CaseStatus } from '../selftests/harness.js';
import { KernelBug } from '../kernel/printk.js';
import type { Kernel } from '../kernel/kernel.js';

const PAGE = 4096;

/* ------------------------------------------------------------------------ */
/* The scenario interface                                                    */
/* ------------------------------------------------------------------------ */

/** What a scenario run gives the sweep: the two points it must call. */
export interface ScenarioContext {
  /** The machine is up (drivers loaded, the process spawned), before the workload: arm, take the baseline. */
  ready(k: Kernel): void;
  /** Every process of the workload exited and every device file is closed: the leak check. */
  exited(k: Kernel): void;
}

/** An exception that escaped a scenario. */
export interface EscapedException {
  /** 'kernel-bug': a KernelBug (oops/BUG/INVARIANT...); 'js': anything else (a model defect). */
  kind: 'kernel-bug' | 'js';
  message: string;
}

/** What one run of a scenario reports. */
export interface ScenarioOutcome {
  /** The scenario's own verdict (a selftest case's result). */
  status: CaseStatus;
  reason: string;
  exception?: EscapedException;
  /** A verified byte that differs: where and what (hand-written scenarios). */
  lost?: string;
  /** Kernel WARNING rules printed during the run. */
  warnings: string[];
}

export interface FailScenario {
  name: string;
  run(ctx: ScenarioContext): ScenarioOutcome;
}

/** Describe any thrown value as an escaped exception. */
export function describeException(e: unknown): EscapedException {
  if (e instanceof KernelBug) {
    // The rule, then where the model raised it (the first frames of the stack).
    const frames = (e.stack ?? '').split('\n').filter((l) => l.trimStart().startsWith('at ')).slice(0, 6);
    return { kind: 'kernel-bug', message: [`${e.kind}: ${e.rule}`, ...frames].join('\n') };
  }
  if (e instanceof Error) return { kind: 'js', message: e.stack ?? e.message };
  return { kind: 'js', message: String(e) };
}

const TWOMEG = 2 << 20;

/* ------------------------------------------------------------------------ */
/* hmm-tests cases                                                           */
/* ------------------------------------------------------------------------ */

/** Classify a selftest case's result (the harness caught what escaped). */
function fromCase(r: CaseResult): ScenarioOutcome {
  const out: ScenarioOutcome = { status: r.status, reason: r.reason, warnings: r.warnings };
  const text = [r.reason, ...r.log].join('\n');
  const js = text.indexOf('Test terminated by an exception in the model: ');
  const kb = text.indexOf('Test terminated by kernel ');
  // After a fatal signal the harness still runs FIXTURE_TEARDOWN, whose
  // syscalls on the dead process raise DeadProcessError: in kselftest the
  // teardown ran in the killed child and never happens. Not a model defect.
  const killed = r.reason.startsWith('Test terminated unexpectedly by signal');
  if (js >= 0 && killed && /^\w*Error: process \d+ \(.*\) has exited/.test(text.slice(js + 'Test terminated by an exception in the model: '.length))) {
    return out;
  }
  if (js >= 0) out.exception = { kind: 'js', message: text.slice(js + 'Test terminated by an exception in the model: '.length).split('\n').slice(0, 8).join('\n') };
  else if (kb >= 0) out.exception = { kind: 'kernel-bug', message: text.slice(kb + 'Test terminated by kernel '.length).split('\n')[0] };
  return out;
}

/**
 * Before the leak check every process of the workload must be gone: a
 * forked child left running (its parent was killed by VM_FAULT_OOM before
 * it could kill it, as hmm_cow_in_device does) is ended here, as the end of
 * the session would.
 */
function exitAll(sys: System): void {
  for (const q of [...sys.procs.values()]) if (q.alive) q.exit(0);
}

/** One scenario per hmm-tests case, named `hmm-tests/<fixture.variant.test>`. */
export function hmmTestScenarios(config: Partial<KernelConfig> = {}): FailScenario[] {
  // The context of the run in progress (a per-call holder, not module state).
  const holder: { ctx: ScenarioContext | null } = { ctx: null };
  const suite = buildHmmSuite({
    config,
    onReady: (sys) => holder.ctx?.ready(sys.kernel),
    onExited: (sys) => {
      if (holder.ctx === null) return;
      exitAll(sys);
      holder.ctx.exited(sys.kernel);
    },
  });
  return suite.cases().map((info) => ({
    name: `hmm-tests/${info.fullName}`,
    run(ctx: ScenarioContext): ScenarioOutcome {
      holder.ctx = ctx;
      try {
        return fromCase(suite.runCase(info, null));
      } finally {
        holder.ctx = null;
      }
    },
  }));
}

/* ------------------------------------------------------------------------ */
/* Hand-written dmirror sequences                                            */
/* ------------------------------------------------------------------------ */

/** A deterministic byte pattern (seeded) of n bytes. */
function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** null if equal, else where the first byte differs. */
function diff(what: string, want: Uint8Array, got: Uint8Array): string | null {
  for (let i = 0; i < want.length; i++) {
    if (want[i] !== got[i]) return `${what}: byte ${i} (page ${Math.floor(i / PAGE)}) is 0x${got[i].toString(16)}, wrote 0x${want[i].toString(16)}`;
  }
  return null;
}

/** What a sequence body sees. */
interface Seq {
  lc: Libc;
  sys: System;
  /** Record a lost byte (the first one is kept). */
  lost(msg: string | null): void;
}

/**
 * A scenario around `body`: a fresh machine with test_hmm and gup_test
 * loaded, one process; ready() before the body, exit and exited() after.
 * A SIGKILL (VM_FAULT_OOM) or other fatal signal of the process ends the
 * body: the scenario fails, which is allowed. A forked child runs as a
 * Process (a fatal signal ends only the child).
 */
function sequence(name: string, config: Partial<KernelConfig>, body: (s: Seq) => void): FailScenario {
  const cfg = defaultConfig(config);
  return {
    name: `dmirror/${name}`,
    run(ctx: ScenarioContext): ScenarioOutcome {
      let sys: System | null = null;
      const out: ScenarioOutcome = { status: 'pass', reason: '', warnings: [] };
      try {
        sys = new System(structuredClone(cfg));
        for (const init of [testHmmInit, gupTestInit]) {
          const r = init(sys.kernel);
          if (r !== 0 && r !== -EEXIST) throw new Error(`module init failed: ${r}`);
        }
        const p = sys.spawn('fail-sites');
        const lc = new Libc(p);
        ctx.ready(sys.kernel);
        try {
          body({
            lc,
            sys,
            lost: (m) => {
              if (m !== null && out.lost === undefined) out.lost = m;
            },
          });
        } catch (e) {
          if (!(e instanceof ProcessSignal && e.pid === p.pid)) throw e;
          out.status = 'fail';
          out.reason = `signal ${e.signo}`;
        }
        if (p.alive) p.exit(0);
        exitAll(sys);
        ctx.exited(sys.kernel);
      } catch (e) {
        out.status = 'fail';
        out.reason = 'exception';
        out.exception = describeException(e);
      } finally {
        if (sys !== null) {
          out.warnings = sys.kernel.printk.warnings.map((w) => w.rule);
          sys.kernel.release();
        }
      }
      if (out.lost !== undefined) out.status = 'fail';
      return out;
    },
  };
}

/** mmap an anonymous private RW region; 0 if mmap failed (allowed: -ENOMEM). */
function anon(lc: Libc, len: number, extra = 0): number {
  const a = lc.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
  return a === -1 ? 0 : a;
}

/** A 2 MiB-aligned anonymous region of `len` (over-map and trim), 0 on failure. */
function anonAligned(lc: Libc, len: number): number {
  const a = anon(lc, len + TWOMEG);
  if (a === 0) return 0;
  const start = ALIGN(a, TWOMEG);
  if (start > a) lc.munmap(a, start - a);
  if (a + len + TWOMEG > start + len) lc.munmap(start + len, a + len + TWOMEG - (start + len));
  return start;
}

/** An ioctl on [addr, addr+len) with the result read back into a mirror buffer; the mirror's bytes on success, null on error. */
function dmirror(lc: Libc, fd: number, cmd: number, addr: number, len: number): Uint8Array | null {
  const buf = hmm_buffer_new(lc);
  if (buf.self < 0) return null;
  buf.ptr = addr;
  buf.size = len;
  buf.mirror = lc.malloc(len);
  if (buf.mirror < 0) {
    lc.free(buf.self);
    return null;
  }
  const r = hmm_dmirror_cmd(lc, fd, cmd, buf, len / PAGE);
  const bytes = r === 0 ? lc.readBytes(buf.mirror, len) : null;
  lc.free(buf.mirror);
  lc.free(buf.self);
  return bytes;
}

/** The dmirror sequences (device 0: device private). */
export function dmirrorScenarios(config: Partial<KernelConfig> = {}): FailScenario[] {
  const N = 64;
  const LEN = N * PAGE;
  return [
    sequence('migrate_roundtrip', config, ({ lc, lost }) => {
      const a = anon(lc, LEN);
      if (a === 0) return;
      const want = pattern(LEN, 1);
      lc.writeBytes(a, want);
      const fd = lc.open('/dev/hmm_dmirror0', O_RDWR);
      if (fd >= 0) {
        // HMM_DMIRROR_READ before the migration: after it, a refault of the
        // mirror (the munmap of a mirror buffer invalidates the whole mirror)
        // stores the device-private page itself, which dmirror_do_read() reads.
        const r = dmirror(lc, fd, HMM_DMIRROR_READ, a, LEN);
        if (r !== null) lost(diff('HMM_DMIRROR_READ', want, r));
        const m = dmirror(lc, fd, HMM_DMIRROR_MIGRATE_TO_DEV, a, LEN);
        if (m !== null) lost(diff('device view after migrate_to_device', want, m));
      }
      lost(diff('CPU read after migration', want, lc.readBytes(a, LEN)));
      if (fd >= 0) {
        dmirror(lc, fd, HMM_DMIRROR_MIGRATE_TO_DEV, a, LEN);
        dmirror(lc, fd, HMM_DMIRROR_MIGRATE_TO_SYS, a, LEN);
        lost(diff('CPU read after migrate_to_system', want, lc.readBytes(a, LEN)));
        lc.close(fd);
      }
      lc.munmap(a, LEN);
    }),
    sequence('fork_cow', config, ({ lc, lost }) => {
      const a = anon(lc, LEN);
      if (a === 0) return;
      const want = pattern(LEN, 2);
      lc.writeBytes(a, want);
      const fd = lc.open('/dev/hmm_dmirror0', O_RDWR);
      if (fd >= 0) dmirror(lc, fd, HMM_DMIRROR_MIGRATE_TO_DEV, a, LEN / 2);
      const pid = lc.p.fork((c) => {
        lost(diff('child read after fork', want, c.readBytes(a, LEN)));
        c.writeBytes(a, pattern(PAGE * 4, 3));
        c.exit(0);
      });
      if (pid > 0) lc.p.waitpid(pid);
      lost(diff('parent read after the child wrote', want, lc.readBytes(a, LEN)));
      if (fd >= 0) lc.close(fd);
      lc.munmap(a, LEN);
    }),
    sequence('pageout_swap', config, ({ lc, lost }) => {
      const a = anon(lc, LEN);
      if (a === 0) return;
      const want = pattern(LEN, 4);
      lc.writeBytes(a, want);
      lc.madvise(a, LEN, MADV_PAGEOUT);
      const fd = lc.open('/dev/hmm_dmirror0', O_RDWR);
      if (fd >= 0) {
        const r = dmirror(lc, fd, HMM_DMIRROR_READ, a, LEN);
        if (r !== null) lost(diff('HMM_DMIRROR_READ of swapped pages', want, r));
        lc.madvise(a, LEN, MADV_PAGEOUT);
        const m = dmirror(lc, fd, HMM_DMIRROR_MIGRATE_TO_DEV, a, LEN);
        if (m !== null) lost(diff('migrate_to_device of swapped pages', want, m));
        lc.close(fd);
      }
      lost(diff('CPU read after pageout', want, lc.readBytes(a, LEN)));
      lc.munmap(a, LEN);
    }),
    sequence('mprotect_mremap', config, ({ lc, lost }) => {
      const a = anon(lc, LEN);
      if (a === 0) return;
      const want = pattern(LEN, 5);
      lc.writeBytes(a, want);
      lc.mprotect(a + 8 * PAGE, 8 * PAGE, PROT_READ);
      const fd = lc.open('/dev/hmm_dmirror0', O_RDWR);
      if (fd >= 0) dmirror(lc, fd, HMM_DMIRROR_MIGRATE_TO_DEV, a + 16 * PAGE, 16 * PAGE);
      const b = lc.mremap(a, LEN, 2 * LEN, MREMAP_MAYMOVE);
      const at = b === -1 ? a : b;
      lost(diff(`CPU read after mremap (${b === -1 ? 'failed' : 'moved'})`, want, lc.readBytes(at, LEN)));
      if (fd >= 0) {
        const m = dmirror(lc, fd, HMM_DMIRROR_MIGRATE_TO_DEV, at, LEN);
        if (m !== null) lost(diff('migrate_to_device after mremap', want, m));
        lc.close(fd);
      }
      lc.munmap(at, b === -1 ? LEN : 2 * LEN);
    }),
    sequence('thp_migrate', config, ({ lc, lost }) => {
      const a = anonAligned(lc, TWOMEG);
      if (a === 0) return;
      lc.madvise(a, TWOMEG, MADV_HUGEPAGE);
      const want = pattern(TWOMEG, 6);
      lc.writeBytes(a, want);
      const fd = lc.open('/dev/hmm_dmirror0', O_RDWR);
      if (fd >= 0) {
        const m = dmirror(lc, fd, HMM_DMIRROR_MIGRATE_TO_DEV, a, TWOMEG);
        if (m !== null) lost(diff('migrate_to_device of a THP', want, m));
      }
      const pid = lc.p.fork((c) => {
        lost(diff('child read of the THP', want, c.readBytes(a, TWOMEG)));
        c.exit(0);
      });
      if (pid > 0) lc.p.waitpid(pid);
      lost(diff('CPU read of the THP', want, lc.readBytes(a, TWOMEG)));
      if (fd >= 0) lc.close(fd);
      lc.munmap(a, TWOMEG);
    }),
    sequence('exclusive', config, ({ lc, lost }) => {
      const a = anon(lc, 16 * PAGE);
      if (a === 0) return;
      const want = pattern(16 * PAGE, 7);
      lc.writeBytes(a, want);
      const fd = lc.open('/dev/hmm_dmirror0', O_RDWR);
      if (fd >= 0) {
        const m = dmirror(lc, fd, HMM_DMIRROR_EXCLUSIVE, a, 16 * PAGE);
        if (m !== null) lost(diff('HMM_DMIRROR_EXCLUSIVE', want, m));
      }
      lost(diff('CPU read of exclusive pages', want, lc.readBytes(a, 16 * PAGE)));
      const w2 = pattern(PAGE, 8);
      lc.writeBytes(a, w2);
      lost(diff('CPU write to an exclusive page', w2, lc.readBytes(a, PAGE)));
      if (fd >= 0) lc.close(fd);
      lc.munmap(a, 16 * PAGE);
    }),
    sequence('partial_read_then_migrate', config, ({ lc, lost }) => {
      // The mirror holds entries for the second half only when the whole
      // range migrates: a store failing in the first half must not leave
      // the second half's entries pointing at the freed system pages.
      const a = anon(lc, 4 * PAGE);
      if (a === 0) return;
      const want = pattern(4 * PAGE, 11);
      lc.writeBytes(a, want);
      const fd = lc.open('/dev/hmm_dmirror0', O_RDWR);
      if (fd >= 0) {
        const r1 = dmirror(lc, fd, HMM_DMIRROR_READ, a + 2 * PAGE, 2 * PAGE);
        if (r1 !== null) lost(diff('HMM_DMIRROR_READ of the second half', want.subarray(2 * PAGE), r1));
        dmirror(lc, fd, HMM_DMIRROR_MIGRATE_TO_DEV, a, 4 * PAGE);
        const r2 = dmirror(lc, fd, HMM_DMIRROR_READ, a + 2 * PAGE, 2 * PAGE);
        if (r2 !== null) lost(diff('HMM_DMIRROR_READ of the second half after migrate_to_device', want.subarray(2 * PAGE), r2));
        lc.close(fd);
      }
      lost(diff('CPU read', want, lc.readBytes(a, 4 * PAGE)));
      lc.munmap(a, 4 * PAGE);
    }),
    sequence('hugetlb_fork', config, ({ lc, lost }) => {
      const a = anon(lc, TWOMEG, MAP_HUGETLB);
      if (a === 0) return;
      const want = pattern(TWOMEG, 9);
      lc.writeBytes(a, want);
      const pid = lc.p.fork((c) => {
        lost(diff('child read of hugetlb', want, c.readBytes(a, TWOMEG)));
        c.writeBytes(a, pattern(PAGE, 10));
        c.exit(0);
      });
      if (pid > 0) lc.p.waitpid(pid);
      lost(diff('parent read of hugetlb after the child wrote', want, lc.readBytes(a, TWOMEG)));
      lc.munmap(a, TWOMEG);
    }),
  ];
}
