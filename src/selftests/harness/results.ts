// SPDX-License-Identifier: GPL-2.0-only
/** What a suite run reports: the cases, their results and the totals. */
import type { AssertionFailure } from './metadata.js';

/**
 * A case's result, as kselftest's exit codes: KSFT_PASS, KSFT_FAIL,
 * KSFT_SKIP, and for a case registered with XFAIL_ADD() KSFT_XFAIL (it
 * failed, as expected) or KSFT_XPASS (it passed unexpectedly).
 */
export type CaseStatus = 'pass' | 'fail' | 'skip' | 'xfail' | 'xpass';

/** One expanded case: fixture x variant x test, numbered as kselftest does. */
export interface CaseInfo {
  index: number;
  fullName: string;
  fixture: string;
  variant: string;
  test: string;
  kernelLine?: number;
}

export interface CaseResult extends CaseInfo {
  status: CaseStatus;
  /** SKIP reason, or why it failed ("assertion", "signal 11", "kernel BUG ..."). */
  reason: string;
  log: string[];
  failures: AssertionFailure[];
  /** Kernel WARNINGs during the case (a kselftest run does not fail on them). */
  warnings: string[];
  /** Model statistics (Metadata.stats). */
  stats: Record<string, number>;
  durationMs: number;
}

export interface Totals {
  pass: number;
  fail: number;
  xfail: number;
  xpass: number;
  skip: number;
  error: number;
}

export interface SuiteResult {
  cases: CaseResult[];
  totals: Totals;
}
