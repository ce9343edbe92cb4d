// SPDX-License-Identifier: GPL-2.0-only
/** kselftest's TAP output: the plan, one case's result lines, the totals. */
import type { CaseInfo, CaseResult, Totals } from './results.js';

/** The TAP plan lines before the first case (`caseCount`: fixture variants, kselftest's "test cases"). */
export function tapHeader(emit: (l: string) => void, n: number, caseCount: number): void {
  emit('TAP version 13');
  emit(`1..${n}`);
  emit(`# Starting ${n} tests from ${caseCount} test cases.`);
}

/** The TAP lines of one finished case (its log too, unless it was printed live). */
export function tapCase(emit: (l: string) => void, c: CaseInfo, r: CaseResult, replayLog: boolean): void {
  if (replayLog) for (const l of r.log) emit(l);
  emit(`#          ${r.status === 'fail' || r.status === 'xfail' ? 'FAIL' : '  OK'}  ${c.fullName}`);
  if (r.status === 'pass') emit(`ok ${c.index} ${c.fullName}`);
  else if (r.status === 'skip') emit(`ok ${c.index} ${c.fullName} # SKIP ${r.reason}`);
  else if (r.status === 'xfail') emit(`ok ${c.index} ${c.fullName} # XFAIL ${r.reason}`);
  else if (r.status === 'xpass') emit(`ok ${c.index} ${c.fullName} # XPASS ${r.reason}`);
  else emit(`not ok ${c.index} ${c.fullName}`);
}

/** The summary lines after the last case. */
export function tapFooter(emit: (l: string) => void, n: number, totals: Totals): void {
  // __test_passed(): everything but KSFT_FAIL counts as passed.
  const passed = totals.pass + totals.skip + totals.xfail + totals.xpass;
  emit(`# ${totals.fail ? 'FAILED' : 'PASSED'}: ${passed} / ${n} tests passed.`);
  emit(totalsLine(totals));
}

/** `# Totals: pass:N fail:N xfail:0 xpass:0 skip:N error:0` */
export function totalsLine(t: Totals): string {
  return `# Totals: pass:${t.pass} fail:${t.fail} xfail:${t.xfail} xpass:${t.xpass} skip:${t.skip} error:${t.error}`;
}
