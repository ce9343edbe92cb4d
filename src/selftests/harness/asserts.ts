// SPDX-License-Identifier: GPL-2.0-only
/**
 * ASSERT_* / EXPECT_* (kselftest's __EXPECT()), SKIP(), ksft_exit_fail_msg()
 * and the simulated fork() child's assertion scope (asChild()).
 */
import { AssertAbort, BailOut, SkipAbort, TH_LOG, emitRaw, metadata } from './metadata.js';
import { callSite } from './callsite.js';


/* ------------------------------------------------------------------------ */
/* Assertions                                                                */
/* ------------------------------------------------------------------------ */

export type Val = number | bigint | boolean | null | undefined;

function toBig(v: Val): bigint | null {
  if (v === null || v === undefined) return 0n;
  if (typeof v === 'boolean') return v ? 1n : 0n;
  if (typeof v === 'bigint') return v;
  if (Number.isInteger(v)) return BigInt(v);
  return null;
}

function cmp(a: Val, b: Val): number {
  const x = toBig(a);
  const y = toBig(b);
  if (x !== null && y !== null) return x < y ? -1 : x > y ? 1 : 0;
  const fx = Number(a ?? 0);
  const fy = Number(b ?? 0);
  return fx < fy ? -1 : fx > fy ? 1 : fx === fy ? 0 : NaN;
}

function show(v: Val): string {
  if (v === null || v === undefined) return '0';
  if (typeof v === 'boolean') return v ? '1' : '0';
  if (typeof v === 'number' && Object.is(v, -0)) return '0';
  return String(v);
}

type Op = '==' | '!=' | '<' | '<=' | '>' | '>=';

function holds(op: Op, c: number): boolean {
  if (Number.isNaN(c)) return op === '!=';
  switch (op) {
    case '==':
      return c === 0;
    case '!=':
      return c !== 0;
    case '<':
      return c < 0;
    case '<=':
      return c <= 0;
    case '>':
      return c > 0;
    case '>=':
      return c >= 0;
  }
}

/** kselftest's __EXPECT(): compare, log on failure, abort for ASSERT_*. */
function expect(macro: string, expected: Val, seen: Val, op: Op, isAssert: boolean, exprs?: [string, string]): void {
  if (holds(op, cmp(expected, seen))) return;
  const md = metadata();
  const site = callSite(macro);
  let eExpr: string;
  let sExpr: string;
  if (exprs) [eExpr, sExpr] = exprs;
  else if (site.args !== null && site.args.length >= 2) [eExpr, sExpr] = [site.args[0], site.args[1]];
  else [eExpr, sExpr] = ['expected', 'seen'];
  const message = `${site.file}:${site.line}:${md.name}:Expected ${eExpr} (${show(expected)}) ${op} ${sExpr} (${show(seen)})`;
  md.failures.push({
    file: site.file,
    line: site.line,
    test: md.name,
    macro,
    expectedExpr: eExpr,
    expected: show(expected),
    op,
    seenExpr: sExpr,
    seen: show(seen),
    message,
    inChild: md.childDepth > 0,
  });
  TH_LOG(message);
  if (md.childDepth === 0) md.failed = true;
  if (isAssert) throw new AssertAbort(message);
}

/* The single-argument forms need the argument text from the call site. */
function expectBool(macro: string, seen: Val, wantTrue: boolean, isAssert: boolean): void {
  const ok = wantTrue ? cmp(0, seen) !== 0 : cmp(0, seen) === 0;
  if (ok) return;
  const site = callSite(macro);
  const sExpr = site.args?.[0] ?? 'seen';
  expect(macro, 0, seen, wantTrue ? '!=' : '==', isAssert, ['0', sExpr]);
}

export function ASSERT_EQ(expected: Val, seen: Val): void {
  if (typeof expected === 'number' && typeof seen === 'number' && expected === seen) return;
  expect('ASSERT_EQ', expected, seen, '==', true);
}
export function ASSERT_NE(expected: Val, seen: Val): void {
  if (typeof expected === 'number' && typeof seen === 'number' && expected !== seen) return;
  expect('ASSERT_NE', expected, seen, '!=', true);
}
export function ASSERT_LT(expected: Val, seen: Val): void {
  if (typeof expected === 'number' && typeof seen === 'number' && expected < seen) return;
  expect('ASSERT_LT', expected, seen, '<', true);
}
export function ASSERT_LE(expected: Val, seen: Val): void {
  if (typeof expected === 'number' && typeof seen === 'number' && expected <= seen) return;
  expect('ASSERT_LE', expected, seen, '<=', true);
}
export function ASSERT_GT(expected: Val, seen: Val): void {
  if (typeof expected === 'number' && typeof seen === 'number' && expected > seen) return;
  expect('ASSERT_GT', expected, seen, '>', true);
}
export function ASSERT_GE(expected: Val, seen: Val): void {
  if (typeof expected === 'number' && typeof seen === 'number' && expected >= seen) return;
  expect('ASSERT_GE', expected, seen, '>=', true);
}
export function ASSERT_TRUE(seen: Val): void {
  expectBool('ASSERT_TRUE', seen, true, true);
}
export function ASSERT_FALSE(seen: Val): void {
  expectBool('ASSERT_FALSE', seen, false, true);
}
export function EXPECT_EQ(expected: Val, seen: Val): void {
  if (typeof expected === 'number' && typeof seen === 'number' && expected === seen) return;
  expect('EXPECT_EQ', expected, seen, '==', false);
}
export function EXPECT_NE(expected: Val, seen: Val): void {
  if (typeof expected === 'number' && typeof seen === 'number' && expected !== seen) return;
  expect('EXPECT_NE', expected, seen, '!=', false);
}
export function EXPECT_LT(expected: Val, seen: Val): void {
  if (typeof expected === 'number' && typeof seen === 'number' && expected < seen) return;
  expect('EXPECT_LT', expected, seen, '<', false);
}
export function EXPECT_LE(expected: Val, seen: Val): void {
  if (typeof expected === 'number' && typeof seen === 'number' && expected <= seen) return;
  expect('EXPECT_LE', expected, seen, '<=', false);
}
export function EXPECT_GT(expected: Val, seen: Val): void {
  if (typeof expected === 'number' && typeof seen === 'number' && expected > seen) return;
  expect('EXPECT_GT', expected, seen, '>', false);
}
export function EXPECT_GE(expected: Val, seen: Val): void {
  if (typeof expected === 'number' && typeof seen === 'number' && expected >= seen) return;
  expect('EXPECT_GE', expected, seen, '>=', false);
}
export function EXPECT_TRUE(seen: Val): void {
  expectBool('EXPECT_TRUE', seen, true, false);
}
export function EXPECT_FALSE(seen: Val): void {
  expectBool('EXPECT_FALSE', seen, false, false);
}

/**
 * SKIP(return, fmt): record the reason and end the test. In setup, the body
 * and teardown do not run (kselftest: "Let setup failure terminate early").
 */
export function SKIP(reason: string): never {
  const md = metadata();
  md.skip = true;
  md.skipReason = reason;
  emitRaw(`#      SKIP      ${reason}`);
  throw new SkipAbort(reason);
}

/** ksft_exit_fail_msg(): "Bail out! <msg>" and the test process exits failed. */
export function ksft_exit_fail_msg(msg: string): never {
  TH_LOG(`Bail out! ${msg.replace(/\n$/, '')}`);
  const md = metadata();
  if (md.childDepth === 0) md.failed = true;
  throw new BailOut(msg);
}

/**
 * Run `body` as the code of a simulated fork() child: an assertion failure
 * inside is printed and reported to the caller as `'abort'` (the child dies
 * by SIGABRT) without failing the test itself.
 */
export function asChild<T>(body: () => T): { ok: true; value: T } | { ok: false; abort: AssertAbort | BailOut } {
  const md = metadata();
  md.childDepth++;
  try {
    return { ok: true, value: body() };
  } catch (e) {
    if (e instanceof AssertAbort || e instanceof BailOut) return { ok: false, abort: e };
    throw e;
  } finally {
    md.childDepth--;
  }
}
