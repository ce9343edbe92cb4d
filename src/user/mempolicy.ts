// SPDX-License-Identifier: GPL-2.0-only
/**
 * The user side of mbind(2) for a simulated process: syscall entry (the
 * process is current), the kernel's do_mbind() (mm/mempolicy.ts), the
 * checkpoint after the syscall. Process.mbind() calls this.
 */
import type { Process } from './process.js';
import { runSync } from '../kernel/sched/sched.js';
import { doMbind, type MbindStats } from '../kernel/mm/mempolicy.js';

/**
 * mbind(addr, len, mode | mode flags, nodemask, flags) in `p`'s context.
 * Returns 0 or a negative errno (see doMbind). `capSysNice`: the caller's
 * CAP_SYS_NICE (needed for MPOL_MF_MOVE_ALL); `stats` receives the queued /
 * migrated / failed counts.
 */
export function processMbind(p: Process, addr: number, len: number, mode: number, nodemask: readonly number[], flags: number, capSysNice = true, stats?: MbindStats): number {
  const k = p.system.kernel;
  const mm = p.mm;
  if (mm === null || !p.alive) throw new Error(`process ${p.pid} (${p.name}) has exited`);
  k.current = { pid: p.pid, mm, comm: p.name };
  const r = runSync(k.sched, doMbind(k, mm, addr, len, mode, nodemask, flags, capSysNice, stats));
  if (!k.sched.exploring) k.checkpoint('mbind');
  return r;
}
