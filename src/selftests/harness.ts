// SPDX-License-Identifier: GPL-2.0-only
/**
 * A kselftest_harness.h for the model.
 *
 * The kernel's harness (tools/testing/selftests/kselftest_harness.h) runs
 * every TEST_F once per FIXTURE_VARIANT, each in a fork()ed child: setup,
 * body, teardown, exit. Here each case gets a fresh simulated machine
 * (`new System(cfg)`) and one process spawned on it; the case ends with that
 * process exiting (exit_mmap), as the kernel's test child does.
 *
 * Output is kselftest's TAP:
 *
 *     TAP version 13
 *     1..76
 *     # Starting 76 tests from 4 test cases.
 *     #  RUN           hmm.hmm_device_private.open_close ...
 *     #            OK  hmm.hmm_device_private.open_close
 *     ok 1 hmm.hmm_device_private.open_close
 *     ...
 *     # PASSED: 76 / 76 tests passed.
 *     # Totals: pass:76 fail:0 xfail:0 xpass:0 skip:0 error:0
 *
 * ASSERT_* / EXPECT_* report a failure as kselftest's __TH_LOG does,
 * `# <file>:<line>:<test>:Expected <a> (<val>) <op> <b> (<val>)`, with the
 * file and line of the assertion in the port (from the call stack, mapped
 * through the emitted source map to the .ts source) and the expression text
 * read back from that source line. ASSERT_* ends the test (kselftest
 * longjmp()s / abort()s); EXPECT_* marks it failed and continues.
 *
 * The harness itself does not depend on the simulated kernel: the machine
 * factory and the "process died" classification are passed in by the suite,
 * so this file can be unit-tested on its own.
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';

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

/**
 * A case's result, as kselftest's exit codes: KSFT_PASS, KSFT_FAIL,
 * KSFT_SKIP, and for a case registered with XFAIL_ADD() KSFT_XFAIL (it
 * failed, as expected) or KSFT_XPASS (it passed unexpectedly).
 */
export type CaseStatus = 'pass' | 'fail' | 'skip' | 'xfail' | 'xpass';

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
function emitRaw(line: string): void {
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

/* ------------------------------------------------------------------------ */
/* Call-site location: stack frame -> source map -> .ts line + expressions   */
/* ------------------------------------------------------------------------ */

const HARNESS_FILE = (() => {
  try {
    return fileURLToPath(import.meta.url);
  } catch {
    return '';
  }
})();

interface Frame {
  file: string;
  line: number;
  col: number;
}

function parseFrames(stack: string): Frame[] {
  const out: Frame[] = [];
  for (const raw of stack.split('\n').slice(1)) {
    const m = /\(?((?:file:\/\/)?[^()\s]+?):(\d+):(\d+)\)?\s*$/.exec(raw.trim());
    if (!m) continue;
    let file = m[1];
    if (file.startsWith('file://')) {
      try {
        file = fileURLToPath(file);
      } catch {
        /* keep */
      }
    }
    out.push({ file, line: Number(m[2]), col: Number(m[3]) });
  }
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64V = new Map<string, number>([...B64].map((c, i) => [c, i]));

interface MapSeg {
  genCol: number;
  src: number;
  line: number;
  col: number;
}

interface LoadedMap {
  sources: string[];
  lines: MapSeg[][];
}

const mapCache = new Map<string, LoadedMap | null>();

function decodeVlq(s: string, pos: { i: number }): number {
  let result = 0;
  let shift = 0;
  for (;;) {
    const c = B64V.get(s[pos.i++]);
    if (c === undefined) return 0;
    result += (c & 31) << shift;
    if (!(c & 32)) break;
    shift += 5;
  }
  return result & 1 ? -(result >>> 1) : result >>> 1;
}

function loadMap(jsFile: string): LoadedMap | null {
  if (mapCache.has(jsFile)) return mapCache.get(jsFile)!;
  let res: LoadedMap | null = null;
  try {
    const mapFile = jsFile + '.map';
    if (existsSync(mapFile)) {
      const raw = JSON.parse(readFileSync(mapFile, 'utf8')) as { sources: string[]; sourceRoot?: string; mappings: string };
      const base = resolve(dirname(mapFile), raw.sourceRoot ?? '');
      const sources = raw.sources.map((s) => resolve(base, s));
      const lines: MapSeg[][] = [];
      let src = 0;
      let oline = 0;
      let ocol = 0;
      for (const lineStr of raw.mappings.split(';')) {
        const segs: MapSeg[] = [];
        let gcol = 0;
        if (lineStr.length > 0) {
          for (const segStr of lineStr.split(',')) {
            if (!segStr) continue;
            const pos = { i: 0 };
            gcol += decodeVlq(segStr, pos);
            if (pos.i < segStr.length) {
              src += decodeVlq(segStr, pos);
              oline += decodeVlq(segStr, pos);
              ocol += decodeVlq(segStr, pos);
              segs.push({ genCol: gcol, src, line: oline, col: ocol });
            }
          }
        }
        lines.push(segs);
      }
      res = { sources, lines };
    }
  } catch {
    res = null;
  }
  mapCache.set(jsFile, res);
  return res;
}

/** Map a generated (1-based line, 1-based col) position to the original source. */
function mapPosition(f: Frame): Frame {
  if (!f.file.endsWith('.js')) return f;
  const m = loadMap(f.file);
  if (m === null) return f;
  const segs = m.lines[f.line - 1];
  if (!segs || segs.length === 0) return f;
  let best: MapSeg | null = null;
  for (const s of segs) {
    if (s.genCol <= f.col - 1) best = s;
    else break;
  }
  if (best === null) best = segs[0];
  return { file: m.sources[best.src] ?? f.file, line: best.line + 1, col: best.col + 1 };
}

const srcCache = new Map<string, string[] | null>();

function sourceLines(file: string): string[] | null {
  if (srcCache.has(file)) return srcCache.get(file)!;
  let lines: string[] | null = null;
  try {
    if (existsSync(file)) lines = readFileSync(file, 'utf8').split('\n');
  } catch {
    lines = null;
  }
  srcCache.set(file, lines);
  return lines;
}

/** Split the argument list of a call that starts at `text[open]` === '('. */
function splitArgs(text: string, open: number): string[] | null {
  const args: string[] = [];
  let depth = 0;
  let cur = '';
  let quote: string | null = null;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (quote !== null) {
      cur += c;
      if (c === '\\') {
        cur += text[++i] ?? '';
      } else if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') {
      quote = c;
      cur += c;
      continue;
    }
    if (c === '(' || c === '[' || c === '{') {
      depth++;
      if (depth === 1 && c === '(') continue;
    } else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth === 0) {
        args.push(cur.trim());
        return args;
      }
    } else if (c === ',' && depth === 1) {
      args.push(cur.trim());
      cur = '';
      continue;
    }
    cur += c;
  }
  return null;
}

/**
 * Load (and cache) the source map and source of the module calling the
 * harness now, so that a later failure is mapped with the map that matches
 * the code actually loaded, even if the tree is rebuilt meanwhile.
 */
function preloadCaller(): void {
  const frames = parseFrames(new Error().stack ?? '');
  const harnessJs = HARNESS_FILE;
  for (const fr of frames) {
    if (fr.file === harnessJs || fr.file.startsWith('node:')) continue;
    const m = loadMap(fr.file);
    if (m !== null) for (const src of m.sources) sourceLines(src);
    else sourceLines(fr.file);
    return;
  }
}

export interface CallSite {
  /** Basename of the port's source file: "hmm_tests.ts". */
  file: string;
  line: number;
  /** Source text of the macro's arguments, when the source is readable. */
  args: string[] | null;
}

/** Where `macro` was called from: the first stack frame outside this file. */
export function callSite(macro: string): CallSite {
  const stack = new Error().stack ?? '';
  const frames = parseFrames(stack);
  const harnessJs = HARNESS_FILE;
  const harnessTs = harnessJs.replace(/\/dist\//, '/').replace(/\.js$/, '.ts');
  let f: Frame | undefined;
  for (const fr of frames) {
    if (fr.file === harnessJs || fr.file === harnessTs || fr.file.startsWith('node:')) continue;
    f = fr;
    break;
  }
  if (f === undefined) return { file: '?', line: 0, args: null };
  const m = mapPosition(f);
  let args: string[] | null = null;
  const lines = sourceLines(m.file);
  if (lines !== null && m.line >= 1 && m.line <= lines.length) {
    // The call may span lines: search forward from the reported line.
    const text = lines.slice(m.line - 1, m.line + 12).join('\n');
    const needle = `${macro}(`;
    // Prefer the occurrence nearest to the reported column on the first line.
    let best = -1;
    let bestDist = Infinity;
    for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) {
      if (at > 0 && /[\w$.]/.test(text[at - 1]) && text[at - 1] !== '.') continue;
      const dist = Math.abs(at - (m.col - 1));
      if (dist < bestDist) {
        best = at;
        bestDist = dist;
      }
      if (at > lines[m.line - 1].length) break;
    }
    if (best >= 0) args = splitArgs(text, best + macro.length)?.map((a) => a.replace(/\s+/g, ' ')) ?? null;
  }
  return { file: basename(m.file), line: m.line, args };
}

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

/* ------------------------------------------------------------------------ */
/* Fixtures, variants, tests                                                 */
/* ------------------------------------------------------------------------ */

/** What a case runs on: created fresh for every case by the suite. */
export interface CaseEnv {
  /** Called after the case (teardown done): process exit, dmesg scan. */
  finish?(md: Metadata): void;
}

export interface FixtureDef<Self, Variant, Env extends CaseEnv> {
  name: string;
  /** FIXTURE(): a fresh `self` per case. */
  create(env: Env): Self;
  /** FIXTURE_SETUP() */
  setup(self: Self, variant: Variant, env: Env): void;
  /** FIXTURE_TEARDOWN() */
  teardown(self: Self, variant: Variant, env: Env): void;
}

export interface VariantDef<Variant> {
  name: string;
  data: Variant;
}

export interface TestDef<Self, Variant, Env extends CaseEnv> {
  name: string;
  body: (self: Self, variant: Variant, env: Env) => void;
  /** Line of the TEST_F in the kernel's hmm-tests.c. */
  kernelLine?: number;
  /** TEST_F_TIMEOUT seconds (informational: the model is not preempted). */
  timeout?: number;
}

interface FixtureEntry<Env extends CaseEnv> {
  // The registry is heterogeneous in Self/Variant: the entries are typed at
  // registration and erased here.
  /* eslint-disable @typescript-eslint/no-explicit-any */
  def: FixtureDef<any, any, Env>;
  variants: VariantDef<any>[];
  tests: TestDef<any, any, Env>[];
  /* eslint-enable @typescript-eslint/no-explicit-any */
  /** XFAIL_ADD() entries: variant + test expected to fail, with the reason printed. */
  xfails: Array<{ variant: string; test: string; reason: string }>;
}

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

export interface RunOptions {
  /** Glob patterns on the full case name; a case runs if any matches (none = all). */
  filter?: string[];
  /** A further predicate a case must satisfy. */
  select?: (c: CaseInfo) => boolean;
  /** Receives each output line (TAP). Null: silent. */
  out?: ((line: string) => void) | null;
  /** Called after each case (progress bars, node:test). */
  onCase?: (r: CaseResult) => void;
}

/** How the suite turns an exception from a case into a result line. */
export type ExceptionClassifier = (e: unknown, md: Metadata) => string;

export class Suite<Env extends CaseEnv> {
  private readonly fixtures: FixtureEntry<Env>[] = [];

  constructor(
    /** The test program's name ("hmm-tests"). */
    readonly name: string,
    /** A fresh environment (simulated machine + process) for one case. */
    private readonly makeEnv: () => Env,
    /** Describe an unexpected exception: "Test terminated unexpectedly by signal 11". */
    private readonly classify: ExceptionClassifier,
    /** Strict: XFAIL_ADD() entries are ignored, an expected failure is a failure. */
    private readonly strict = false,
  ) {}

  /** FIXTURE() + FIXTURE_SETUP/TEARDOWN. */
  fixture<Self, Variant>(def: FixtureDef<Self, Variant, Env>): FixtureHandle<Self, Variant, Env> {
    const entry: FixtureEntry<Env> = { def, variants: [], tests: [], xfails: [] };
    this.fixtures.push(entry);
    return new FixtureHandle<Self, Variant, Env>(entry);
  }

  /** Every case in kselftest order: fixture, then variant, then test. */
  cases(): CaseInfo[] {
    const out: CaseInfo[] = [];
    for (const f of this.fixtures) {
      const variants = f.variants.length ? f.variants : [{ name: '', data: {} }];
      for (const v of variants) {
        for (const t of f.tests) {
          out.push({
            index: out.length + 1,
            fullName: `${f.def.name}${v.name ? '.' + v.name : ''}.${t.name}`,
            fixture: f.def.name,
            variant: v.name,
            test: t.name,
            kernelLine: t.kernelLine,
          });
        }
      }
    }
    return out;
  }

  /** Number of fixture variants ("test cases" in kselftest's wording). */
  private caseCount(): number {
    let n = 0;
    for (const f of this.fixtures) n += Math.max(1, f.variants.length);
    return n;
  }

  /** Run one case by its CaseInfo (no TAP framing). */
  runCase(info: CaseInfo, out: ((line: string) => void) | null = null): CaseResult {
    const f = this.fixtures.find((x) => x.def.name === info.fixture)!;
    const v = f.variants.find((x) => x.name === info.variant) ?? { name: '', data: {} };
    const t = f.tests.find((x) => x.name === info.test)!;
    const md: Metadata = {
      name: t.name,
      fullName: info.fullName,
      failed: false,
      skip: false,
      skipReason: '',
      setupCompleted: false,
      log: [],
      failures: [],
      childDepth: 0,
      warnings: [],
      stats: {},
    };
    const start = performance.now();
    const prev = current;
    const prevSink = logSink;
    current = md;
    logSink = out;
    let reason = '';
    let terminated = false;
    const note = (e: unknown): void => {
      if (!(e instanceof SkipAbort)) terminated = true;
      if (e instanceof AssertAbort) {
        // kselftest: the test child abort()s; the parent prints this line.
        TH_LOG(`${md.name}: Test terminated by assertion`);
        md.failed = true;
        if (!reason) reason = 'assertion';
      } else if (e instanceof SkipAbort) {
        /* recorded by SKIP() */
      } else if (e instanceof BailOut) {
        md.failed = true;
        if (!reason) reason = `bail out: ${e.message}`;
      } else {
        const why = this.classify(e, md);
        TH_LOG(`${md.name}: ${why}`);
        md.failed = true;
        if (!reason) reason = why;
      }
    };
    let env: Env | null = null;
    try {
      env = this.makeEnv();
      const self = f.def.create(env);
      try {
        f.def.setup(self, v.data, env);
        md.setupCompleted = !md.failed && !md.skip;
      } catch (e) {
        note(e);
      }
      if (md.setupCompleted) {
        try {
          t.body(self, v.data, env);
        } catch (e) {
          note(e);
        }
        try {
          f.def.teardown(self, v.data, env);
        } catch (e) {
          note(e);
        }
      }
      try {
        env.finish?.(md);
      } catch (e) {
        note(e);
      }
    } catch (e) {
      note(e);
    } finally {
      current = prev;
      logSink = prevSink;
    }
    if (md.failed && !terminated) {
      // The test process exited with KSFT_FAIL (EXPECT_* failures) instead of dying.
      current = md;
      logSink = out;
      TH_LOG(`${md.name}: Test failed`);
      current = prev;
      logSink = prevSink;
    }
    let status: CaseStatus = md.failed ? 'fail' : md.skip ? 'skip' : 'pass';
    if (status === 'skip') reason = md.skipReason;
    if (status === 'fail' && !reason) reason = md.failures.length ? 'assertion' : 'failed';
    // __run_test(): a case on the variant's xfail list reports XFAIL / XPASS.
    const xf = this.strict ? undefined : f.xfails.find((x) => x.variant === v.name && x.test === t.name);
    if (xf !== undefined && (status === 'fail' || status === 'pass')) {
      status = status === 'fail' ? 'xfail' : 'xpass';
      reason = xf.reason;
    }
    return {
      ...info,
      status,
      reason,
      log: md.log,
      failures: md.failures,
      warnings: md.warnings,
      stats: md.stats,
      durationMs: performance.now() - start,
    };
  }

  /** The selected cases, renumbered consecutively as kselftest does. */
  select(opts: RunOptions = {}): CaseInfo[] {
    const pats = (opts.filter ?? []).map(globToRegExp);
    const selected = this.cases().filter((c) => (!pats.length || pats.some((r) => r.test(c.fullName))) && (!opts.select || opts.select(c)));
    return selected.map((c, i) => ({ ...c, index: i + 1 }));
  }

  /** The TAP plan lines before the first case. */
  private header(emit: (l: string) => void, n: number): void {
    emit('TAP version 13');
    emit(`1..${n}`);
    emit(`# Starting ${n} tests from ${this.caseCount()} test cases.`);
  }

  /** The TAP lines of one finished case (its log too, unless it was printed live). */
  private report(emit: (l: string) => void, c: CaseInfo, r: CaseResult, replayLog: boolean): void {
    if (replayLog) for (const l of r.log) emit(l);
    emit(`#          ${r.status === 'fail' || r.status === 'xfail' ? 'FAIL' : '  OK'}  ${c.fullName}`);
    if (r.status === 'pass') emit(`ok ${c.index} ${c.fullName}`);
    else if (r.status === 'skip') emit(`ok ${c.index} ${c.fullName} # SKIP ${r.reason}`);
    else if (r.status === 'xfail') emit(`ok ${c.index} ${c.fullName} # XFAIL ${r.reason}`);
    else if (r.status === 'xpass') emit(`ok ${c.index} ${c.fullName} # XPASS ${r.reason}`);
    else emit(`not ok ${c.index} ${c.fullName}`);
  }

  private footer(emit: (l: string) => void, n: number, totals: Totals): void {
    // __test_passed(): everything but KSFT_FAIL counts as passed.
    const passed = totals.pass + totals.skip + totals.xfail + totals.xpass;
    emit(`# ${totals.fail ? 'FAILED' : 'PASSED'}: ${passed} / ${n} tests passed.`);
    emit(totalsLine(totals));
  }

  /** Run the selected cases, printing kselftest TAP to `out`. */
  run(opts: RunOptions = {}): SuiteResult {
    const out = opts.out === undefined ? (l: string) => process.stdout.write(l + '\n') : opts.out;
    const emit = (l: string) => out?.(l);
    const cases = this.select(opts);
    this.header(emit, cases.length);
    const results: CaseResult[] = [];
    const totals: Totals = { pass: 0, fail: 0, xfail: 0, xpass: 0, skip: 0, error: 0 };
    for (const c of cases) {
      emit(`#  RUN           ${c.fullName} ...`);
      const r = this.runCase(c, out);
      this.report(emit, c, r, false);
      totals[r.status]++;
      results.push(r);
      opts.onCase?.(r);
    }
    this.footer(emit, cases.length, totals);
    return { cases: results, totals };
  }

  /**
   * As run(), but each case's result comes from `exec` (which may run it
   * elsewhere, e.g. in a worker thread, and may be called for several cases
   * before the first resolves); the TAP is printed in case order, each
   * case's log replayed from its result.
   */
  async runWith(opts: RunOptions, exec: (c: CaseInfo) => Promise<CaseResult>): Promise<SuiteResult> {
    const out = opts.out === undefined ? (l: string) => process.stdout.write(l + '\n') : opts.out;
    const emit = (l: string) => out?.(l);
    const cases = this.select(opts);
    this.header(emit, cases.length);
    const pending = cases.map((c) => exec(c));
    const results: CaseResult[] = [];
    const totals: Totals = { pass: 0, fail: 0, xfail: 0, xpass: 0, skip: 0, error: 0 };
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i];
      // A case whose runner died (a worker thread crashed) is a failure, not a crash of the run.
      const r = await pending[i].then(
        (x): CaseResult => ({ ...x, index: c.index }),
        (e: unknown): CaseResult => ({
          ...c, status: 'fail', reason: `runner died: ${e instanceof Error ? e.message : String(e)}`,
          log: [`# ${c.test}: runner died: ${e instanceof Error ? e.message : String(e)}`], failures: [], warnings: [], stats: {}, durationMs: 0,
        }),
      );
      emit(`#  RUN           ${c.fullName} ...`);
      this.report(emit, c, r, true);
      totals[r.status]++;
      results.push(r);
      opts.onCase?.(r);
    }
    this.footer(emit, cases.length, totals);
    return { cases: results, totals };
  }
}

/** `# Totals: pass:N fail:N xfail:0 xpass:0 skip:N error:0` */
export function totalsLine(t: Totals): string {
  return `# Totals: pass:${t.pass} fail:${t.fail} xfail:${t.xfail} xpass:${t.xpass} skip:${t.skip} error:${t.error}`;
}

export class FixtureHandle<Self, Variant, Env extends CaseEnv> {
  constructor(private readonly entry: FixtureEntry<Env>) {}

  /**
   * XFAIL_ADD(fixture, variant, test): the case is expected to fail; it
   * reports `ok N name # XFAIL reason` (or `# XPASS` if it passes) and does
   * not fail the run, unless the suite is strict.
   */
  xfail(variant: string, test: string, reason: string): this {
    this.entry.xfails.push({ variant, test, reason });
    return this;
  }

  /** FIXTURE_VARIANT_ADD(fixture, name) */
  variant(name: string, data: Variant): this {
    this.entry.variants.push({ name, data });
    return this;
  }

  /** TEST_F(fixture, name) / TEST_F_TIMEOUT(fixture, name, timeout) */
  test(
    name: string,
    body: (self: Self, variant: Variant, env: Env) => void,
    opts: { kernelLine?: number; timeout?: number } = {},
  ): this {
    if (this.entry.tests.some((t) => t.name === name)) throw new Error(`TEST_F(${this.entry.def.name}, ${name}) defined twice`);
    preloadCaller();
    this.entry.tests.push({ name, body, kernelLine: opts.kernelLine, timeout: opts.timeout });
    return this;
  }
}

/** Shell-style glob (*, ?, [...]) matching a whole case name. */
export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        let cls = glob.slice(i + 1, end);
        if (cls.startsWith('!')) cls = '^' + cls.slice(1);
        re += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(re + '$');
}
