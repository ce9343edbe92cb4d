// SPDX-License-Identifier: GPL-2.0-only
/**
 * Signals as the model's processes see them: the wait status encoding
 * (include/uapi/linux/wait.h, bits/waitstatus.h), the signal numbers, which
 * ones are ignored by default (kernel/signal.c sig_kernel_ignore()), and
 * ProcessSignal, thrown out of a CPU access or a self-kill when the process
 * dies by a signal.
 */
import { SIGSEGV, SIGBUS, SIGKILL } from '../kernel/arch/fault.js';

/* wait status encoding (include/uapi/linux/wait.h, bits/waitstatus.h) */
export const WNOHANG = 1;
export function WIFEXITED(s: number): boolean {
  return (s & 0x7f) === 0;
}
export function WEXITSTATUS(s: number): number {
  return (s >> 8) & 0xff;
}
export function WIFSIGNALED(s: number): boolean {
  return ((s & 0x7f) + 1) >> 1 > 0 && (s & 0x7f) !== 0x7f;
}
export function WTERMSIG(s: number): number {
  return s & 0x7f;
}

export { SIGSEGV, SIGBUS, SIGKILL };
export const SIGABRT = 6;
export const SIGTERM = 15;
export const SIGCHLD = 17;
export const SIGCONT = 18;
export const SIGSTOP = 19;
export const SIGURG = 23;
export const SIGWINCH = 28;
/** Signals whose default action is to ignore them (SIG_KERNEL_IGNORE_MASK; stop signals, which the model does not stop on, too). */
export const IGNORED_BY_DEFAULT: ReadonlySet<number> = new Set([SIGCHLD, SIGCONT, SIGURG, SIGWINCH, SIGSTOP, 20, 21, 22]);

/** The process was killed by a signal during a CPU access or a self-kill. */
export class ProcessSignal extends Error {
  constructor(
    readonly pid: number,
    readonly signo: number,
    readonly addr: number,
    readonly code = 0,
  ) {
    super(`process ${pid} killed by signal ${signo}${addr >= 0 ? ` at 0x${addr.toString(16)}` : ''}`);
    this.name = 'ProcessSignal';
  }
}
