// SPDX-License-Identifier: GPL-2.0-only
/**
 * printk, the dmesg ring, WARN_ON() and BUG()/VM_BUG_ON().
 *
 * WARN_ON records a warning (with a dump_page() text when a page is named)
 * and execution continues, as in the kernel. BUG, VM_BUG_ON, KASAN-style
 * use-after-free, refcount underflow, lock misuse and detected hangs raise a
 * KernelBug: a structured error naming the rule broken, the operation and the
 * state. Tests assert `dmesg.warnings.length === 0` for clean runs.
 */

export type BugKind =
  | 'BUG' /* BUG_ON / VM_BUG_ON_PAGE / VM_BUG_ON_FOLIO: API misuse or broken invariant */
  | 'OOPS' /* a kernel oops: "BUG: unable to handle page fault" (a kernel access to an unmapped address); the task dies */
  | 'KASAN' /* use-after-free of a page or pgmap */
  | 'REFCOUNT' /* refcount underflow / saturation */
  | 'LOCKDEP' /* lock misuse: unlock of an unheld lock, recursive lock */
  | 'HANG' /* a wait that can never finish (memunmap_pages with pages out, ...) */
  | 'DEADLOCK' /* every simulated thread blocked */
  | 'INVARIANT'; /* checked mode: an invariant of debug_vm.ts failed */

export class KernelBug extends Error {
  readonly kind: BugKind;
  /** The rule broken, as a short identifier: 'migrate_vma_pages: dst page not locked'. */
  readonly rule: string;
  /** The state at the time: dump_page() text and more. */
  readonly state: string;
  constructor(kind: BugKind, rule: string, state = '') {
    super(`${kind}: ${rule}${state ? '\n' + state : ''}`);
    this.name = 'KernelBug';
    this.kind = kind;
    this.rule = rule;
    this.state = state;
  }
}

/**
 * A kernel oops from a kernel CPU access through the direct map to a page
 * that has none (a device-private page): x86's page_fault_oops() prints
 * "BUG: unable to handle page fault for address: <address>", the faulting
 * function (RIP) and the call trace, and the task is killed (make_task_dead):
 * the system call never returns. kind 'OOPS', rule 'BUG: unable to handle
 * page fault'; `pfn` is the page, `caller` the kernel function that made
 * the access (dmirror_do_read), `op` the accessor (memcpy_from_page),
 * `address` the direct-map address the kernel dereferenced.
 */
export class KernelOops extends KernelBug {
  constructor(
    readonly pfn: number,
    readonly op: string,
    readonly caller: string,
    readonly address: bigint,
    state: string,
  ) {
    super('OOPS', 'BUG: unable to handle page fault', state);
    this.name = 'KernelOops';
  }
}

export interface LogLine {
  seq: number;
  level: 'info' | 'warn' | 'err' | 'debug';
  text: string;
}

export interface Warning {
  rule: string;
  state: string;
}

export class Printk {
  readonly log: LogLine[] = [];
  readonly warnings: Warning[] = [];
  private seq = 0;
  /** Keep at most this many lines (a ring, as the kernel's log buffer). */
  limit = 10000;
  /** Echo to stderr as lines are logged (hmmsim --dmesg). */
  echo = false;

  printk(level: LogLine['level'], text: string): void {
    const line = { seq: this.seq++, level, text };
    this.log.push(line);
    if (this.log.length > this.limit) this.log.splice(0, this.log.length - this.limit);
    if (this.echo) process.stderr.write(`[${String(line.seq).padStart(6)}] ${text}\n`);
  }

  info(text: string): void {
    this.printk('info', text);
  }

  /** The messages printk_once() already printed on this machine (the kernel's per-callsite static flag). */
  private readonly printedOnce = new Set<string>();

  /**
   * printk_once() / pr_*_once(): log `text` the first time this machine
   * prints it. The flag is per machine (the kernel's is per boot), so two
   * machines in one process each print it once.
   */
  infoOnce(text: string): void {
    if (this.printedOnce.has(text)) return;
    this.printedOnce.add(text);
    this.printk('info', text);
  }

  /** WARN(): log "WARNING: <rule>" with state and continue. Returns true (the condition). */
  warn(rule: string, state = ''): true {
    this.warnings.push({ rule, state });
    this.printk('warn', `WARNING: ${rule}${state ? '\n' + state : ''}`);
    return true;
  }

  /** The dmesg text. */
  text(): string {
    return this.log.map((l) => l.text).join('\n');
  }

  clearWarnings(): void {
    this.warnings.length = 0;
  }
}
