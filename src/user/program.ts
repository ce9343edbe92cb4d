// SPDX-License-Identifier: GPL-2.0-only
/**
 * Booting a machine and running a user program on it (`hmmsim run`).
 *
 * A program is an ES module whose default export (or `main` export) is
 * its main():
 *
 *   export default function main({ libc, argv }) {
 *     const p = libc.malloc(4096);
 *     libc.printf('%p\n', p);
 *     return 0;
 *   }
 *
 * It runs as process 1 of a booted machine, with the simulated libc
 * (src/user/libc.ts), stdout/stderr going to the host's, and returns its
 * exit status (or calls libc.exit()). A fatal signal (a SIGSEGV from a
 * bad access, SIGABRT from free() of a bad pointer) ends it as it would a
 * C program.
 */
import { System } from './system.js';
import { Process, ProcessSignal, WEXITSTATUS, WIFEXITED, WTERMSIG } from './process.js';
import { Libc } from './libc.js';
import type { Kernel } from '../kernel/kernel.js';
import type { KernelConfig } from '../kernel/config.js';
import { type KernelModule, loadModule } from '../kernel/module.js';
import { EEXIST, errnoName } from '../kernel/errno.js';
import { testHmmInit } from '../drivers/test_hmm/index.js';
import { gupTestInit } from '../drivers/gup_test.js';

/** What main() receives. */
export interface ProgramContext {
  /** The machine. */
  sys: System;
  /** The program's process (raw syscalls: return -errno). */
  proc: Process;
  /** The C library (errno, NULL, -1 conventions; malloc; printf). */
  libc: Libc;
  /** argv[0] is the program's path, then the arguments after it on the command line. */
  argv: string[];
  /** The simulated kernel (for inspection: dmesg, vmstat, page state). */
  kernel: Kernel;
}

/** A program's main(): its exit status (undefined: 0). */
export type ProgramMain = (ctx: ProgramContext) => number | void | Promise<number | void>;

/** The shape of a program module. */
export interface ProgramModule {
  default?: ProgramMain;
  main?: ProgramMain;
}

export interface BootOptions {
  /** Kernel configuration (defaults: mainline, src/kernel/config.ts). */
  config?: Partial<KernelConfig>;
  /**
   * Load test_hmm (/dev/hmm_dmirror0..3) and gup_test as the kernel
   * selftests' test_hmm.sh does (default true).
   */
  testModules?: boolean;
  /** Further modules (user drivers) to load, in order, after the test modules. */
  modules?: Array<{ name: string; module: KernelModule }>;
}

/** A module failed to load: its name and the errno init returned. */
export class ModuleLoadError extends Error {
  constructor(
    readonly module: string,
    readonly errno: number,
  ) {
    super(`loading module ${module} failed: ${errno} (${errnoName(-errno)})`);
    this.name = 'ModuleLoadError';
  }
}

/**
 * Boot a machine: the kernel with `config`, the test modules, then the
 * given modules. Throws ModuleLoadError when one's init fails.
 */
export function bootMachine(opts: BootOptions = {}): System {
  const sys = new System(opts.config ?? {});
  const k = sys.kernel;
  if (opts.testModules !== false) {
    for (const [name, init] of [['test_hmm', testHmmInit], ['gup_test', gupTestInit]] as const) {
      const r = loadModule(k, { name, init }, name);
      if (r !== 0 && r !== -EEXIST) throw new ModuleLoadError(name, r);
    }
  }
  for (const m of opts.modules ?? []) {
    const r = loadModule(k, m.module, m.name);
    if (r !== 0) throw new ModuleLoadError(m.name, r);
  }
  return sys;
}

export interface RunProgramOptions extends BootOptions {
  argv?: string[];
  /** Receives what the program writes to fd 1 and 2 (default: the host's stdout/stderr). */
  stdio?: (fd: number, text: string) => void;
  /** The process name (comm); default 'a.out'. */
  name?: string;
  /** Called with the booted machine before the program's process starts (e.g. to attach a tracer). */
  onMachine?: (sys: System) => void;
}

export interface ProgramResult {
  /** The wait status (exit code << 8, or the signal). */
  status: number;
  /** The exit code when it exited, else null. */
  exitCode: number | null;
  /** The signal that killed it, else null. */
  signal: number | null;
  sys: System;
}

/** Run main() as a process on a booted machine; returns how it ended. */
export async function runProgram(main: ProgramMain, opts: RunProgramOptions = {}): Promise<ProgramResult> {
  const sys = bootMachine(opts);
  if (opts.onMachine) opts.onMachine(sys);
  const stdio = opts.stdio ?? ((fd: number, text: string) => (fd === 2 ? process.stderr : process.stdout).write(text));
  const proc = sys.spawn(opts.name ?? 'a.out', { stdio });
  const libc = new Libc(proc);
  try {
    const r = await main({ sys, proc, libc, argv: opts.argv ?? [opts.name ?? 'a.out'], kernel: sys.kernel });
    if (proc.alive) libc.exit(typeof r === 'number' ? r : 0);
  } catch (e) {
    if (!(e instanceof ProcessSignal && e.pid === proc.pid)) throw e;
  }
  const status = proc.status;
  return {
    status,
    exitCode: WIFEXITED(status) ? WEXITSTATUS(status) : null,
    signal: WIFEXITED(status) ? null : WTERMSIG(status),
    sys,
  };
}
