// SPDX-License-Identifier: GPL-2.0-only
/**
 * The running test's metadata (kselftest's struct __test_metadata), its
 * output sink, and the exceptions that end a test body. The one piece of
 * harness state: which case is running, set by the suite around a case
 * (enterCase() / leaveCase()) and read by the assertions.
 */

/* ------------------------------------------------------------------------ */
/* Control flow                                                              */
/* ------------------------------------------------------------------------ */

/** Thrown by a failed ASSERT_*: ends the test body (kselftest: abort()). */
export class AssertAbort extends Error {
  constructor(msg = 'assertion failed') {
    super(msg);
    this.name = 'AssertAbort';
  }
}

/** Thrown by SKIP(): ends the test body with KSFT_SKIP. */
export class SkipAbort extends Error {
  constructor(readonly reason: string) {
    super(`SKIP: ${reason}`);
    this.name = 'SkipAbort';
  }
}

/** Thrown by ksft_exit_fail_msg() (vm_util helpers): "Bail out!", test fails. */
export class BailOut extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'BailOut';
  }
}

/* ------------------------------------------------------------------------ */
/* Per-test metadata (kselftest's struct __test_metadata)                    */
/* ------------------------------------------------------------------------ */

export interface Metadata {
  /** The test's own name, as _metadata->name: "anon_read". */
  readonly name: string;
  /** fixture.variant.test: "hmm.hmm_device_private.anon_read". */
  readonly fullName: string;
  /** KSFT_FAIL was recorded. */
  failed: boolean;
  skip: boolean;
  skipReason: string;
  /** Setup completed: teardown runs. */
  setupCompleted: boolean;
  /** Output lines printed for this case (as printed, "# " prefixed). */
  readonly log: string[];
  /** Assertion failures recorded (for --json). */
  readonly failures: AssertionFailure[];
  /**
   * > 0 while running the body of a simulated fork() child: an assertion
   * failure there is printed and aborts only the child (SIGABRT), as the
   * kernel harness's abort() in a forked child does.
   */
  childDepth: number;
  /** Kernel WARNINGs logged while the case ran (rules), filled by the suite. */
  warnings: string[];
  /** Model statistics of the case (CaseEnv.finish() fills them): contentBytes, ... */
  stats: Record<string, number>;
}

export interface AssertionFailure {
  file: string;
  line: number;
  test: string;
  macro: string;
  expectedExpr: string;
  expected: string;
  op: string;
  seenExpr: string;
  seen: string;
  message: string;
  inChild: boolean;
}

let current: Metadata | null = null;

/** The running test's metadata (throws outside a test). */
export function metadata(): Metadata {
  if (current === null) throw new Error('kselftest harness: assertion used outside a running test');
  return current;
}

/** TH_LOG(): a diagnostic line attached to the running test ("# " prefixed). */
export function TH_LOG(msg: string): void {
  for (const l of msg.split('\n')) emitRaw(`# ${l}`);
}

/** An output line of the running test, as printed. */
export function emitRaw(line: string): void {
  const md = current;
  if (md === null) return;
  md.log.push(line);
  if (logSink) logSink(line);
}

/** printf() of the test program to stdout: the line is printed as is. */
export function printLine(line: string): void {
  if (current === null) {
    process.stdout.write(line + '\n');
    return;
  }
  emitRaw(line);
}

let logSink: ((line: string) => void) | null = null;

/** The running case and its output sink, as enterCase() found them. */
export interface CaseContext {
  readonly md: Metadata | null;
  readonly sink: ((line: string) => void) | null;
}

/** Make `md` the running test, its lines going to `sink`; returns what was running. */
export function enterCase(md: Metadata | null, sink: ((line: string) => void) | null): CaseContext {
  const prev: CaseContext = { md: current, sink: logSink };
  current = md;
  logSink = sink;
  return prev;
}

/** Restore what enterCase() returned. */
export function leaveCase(prev: CaseContext): void {
  current = prev.md;
  logSink = prev.sink;
}
