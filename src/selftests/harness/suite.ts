// SPDX-License-Identifier: GPL-2.0-only
/**
 * Fixtures, variants and tests (FIXTURE(), FIXTURE_VARIANT_ADD(), TEST_F(),
 * XFAIL_ADD()) and the runner: each case on a fresh environment, setup,
 * body, teardown, its result classified as kselftest's __run_test() does.
 */
import { AssertAbort, BailOut, type Metadata, SkipAbort, TH_LOG, enterCase, leaveCase } from './metadata.js';
import { preloadCaller } from './callsite.js';
import type { CaseInfo, CaseResult, CaseStatus, SuiteResult, Totals } from './results.js';
import { tapCase, tapFooter, tapHeader } from './tap.js';
import { globToRegExp } from './filter.js';

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
    const prev = enterCase(md, out);
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
      leaveCase(prev);
    }
    if (md.failed && !terminated) {
      // The test process exited with KSFT_FAIL (EXPECT_* failures) instead of dying.
      enterCase(md, out);
      TH_LOG(`${md.name}: Test failed`);
      leaveCase(prev);
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

  /** Run the selected cases, printing kselftest TAP to `out`. */
  run(opts: RunOptions = {}): SuiteResult {
    const out = opts.out === undefined ? (l: string) => process.stdout.write(l + '\n') : opts.out;
    const emit = (l: string) => out?.(l);
    const cases = this.select(opts);
    tapHeader(emit, cases.length, this.caseCount());
    const results: CaseResult[] = [];
    const totals: Totals = { pass: 0, fail: 0, xfail: 0, xpass: 0, skip: 0, error: 0 };
    for (const c of cases) {
      emit(`#  RUN           ${c.fullName} ...`);
      const r = this.runCase(c, out);
      tapCase(emit, c, r, false);
      totals[r.status]++;
      results.push(r);
      opts.onCase?.(r);
    }
    tapFooter(emit, cases.length, totals);
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
    tapHeader(emit, cases.length, this.caseCount());
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
      tapCase(emit, c, r, true);
      totals[r.status]++;
      results.push(r);
      opts.onCase?.(r);
    }
    tapFooter(emit, cases.length, totals);
    return { cases: results, totals };
  }
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
