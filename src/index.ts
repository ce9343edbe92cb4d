// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim`: boot a simulated Linux machine and use it from user space.
 *
 * ```ts
 * import { bootMachine, Libc, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS } from 'hmmsim';
 * const sys = bootMachine({ config: { checked: true } });   // test_hmm and gup_test loaded
 * const p = sys.spawn('prog');
 * const lc = new Libc(p);
 * const buf = lc.mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
 * ```
 *
 * - {@link System}: one machine (its {@link Kernel} and processes);
 *   {@link bootMachine} adds the test modules and your drivers.
 * - {@link Process}: raw system calls (`-errno` results), CPU loads and
 *   stores through the MMU, fork/wait/kill, threads under the scheduler.
 * - {@link Libc}: the simulated C library (glibc's conventions and
 *   allocator behaviour; see its doc comment for what it does not model).
 * - {@link runProgram}: run a program module's main() (`hmmsim run`).
 *
 * A driver uses `hmmsim/kernel`; the model's drivers are in
 * `hmmsim/drivers`; the interleaving explorer is `hmmsim/explore`.
 *
 * @module hmmsim
 */
export { System, pagemapEntry, procMaps, PM_PFRAME_MASK, PM_SOFT_DIRTY, PM_MMAP_EXCLUSIVE, PM_UFFD_WP, PM_FILE, PM_SWAP, PM_PRESENT } from './user/system.js';
export {
  Process, ProcessSignal, DeadProcessError, type SysCalls, type ProcState, WNOHANG, SIGSEGV, SIGBUS, SIGKILL, SIGTERM,
  SIGCHLD,
} from './user/process.js';
export {
  Libc, formatC, PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC, MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS,
  MAP_POPULATE, MAP_HUGETLB, MAP_FIXED_NOREPLACE, MAP_FAILED, MADV_DONTNEED, MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
  MADV_PAGEOUT, MADV_COLLAPSE, MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP, O_RDONLY, O_WRONLY, O_RDWR, O_CREAT,
  O_EXCL, O_TRUNC, O_DIRECTORY, O_TMPFILE, SIGABRT, WIFEXITED, WEXITSTATUS, WIFSIGNALED, WTERMSIG, NULL, PAGE_SIZE,
} from './user/libc.js';
export { type MallocStats, DEFAULT_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD_MAX, DEFAULT_TRIM_THRESHOLD, DEFAULT_TOP_PAD } from './user/malloc.js';
export {
  bootMachine, runProgram, ModuleLoadError, type BootOptions, type RunProgramOptions, type ProgramResult,
  type ProgramContext, type ProgramMain, type ProgramModule,
} from './user/program.js';
export { Kernel } from './kernel/kernel.js';
export { type KernelConfig, type HistoricalSwitches, defaultConfig, applyConfigSetting, HISTORICAL_SWITCH_NAMES } from './kernel/config.js';
export type { KernelModule } from './kernel/module.js';
export { KernelBug } from './kernel/printk.js';
export { errnoName } from './kernel/errno.js';
export { VERSION } from './version.js';
