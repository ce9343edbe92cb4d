// SPDX-License-Identifier: GPL-2.0-only
/**
 * The allocation-failure sweep (tools layer): for each scenario (a fresh
 * machine running a fixed sequence: an hmm-tests case, or a hand-written
 * dmirror sequence that verifies its data), run it once counting the
 * occurrences of every fault-injection site (k.failInject, see
 * src/kernel/fault_inject.ts), then re-run it once per (site, occurrence)
 * with exactly that occurrence failing, in checked mode, and verify:
 *
 *  - no JS exception escapes the model (a KernelBug is a model finding: the
 *    kernel would oops or WARN; both are reported, unless the uninjected
 *    run showed the same one);
 *  - nothing leaks: after the process exited and its device files were
 *    closed, checkNoLeaks() (src/kernel/mm/debug_vm.ts: buddy pages,
 *    hugetlb pool, swap slots, mm_structs, pgmap references) and the
 *    checked-mode invariants hold;
 *  - no byte is lost where the scenario verifies its data;
 *  - no new kernel WARNING appears.
 * A selftest case whose own assertions fail because its allocation failed
 * is not a failure of the sweep (the selftest reports a failed case; the
 * kernel returned an error, as it may).
 *
 * Which occurrences fail (the plan), per (scenario, site) with n occurrences:
 *  - default: a sample of at most maxOccurrences, evenly spaced, always
 *    including the first and the last;
 *  - everyOccurrence: all n;
 *  - contextAbove T: all n when n <= T; when n > T, one occurrence (the
 *    first) per distinct call context, the stack of kernel and driver
 *    functions that reached the site (kernelContext()), learnt in a second
 *    counting run: a reduction that keeps every distinct path into the site
 *    and drops only repeats of a path (the 4,096 anon_fault calls of one
 *    4,096-page write loop);
 *  - occurrence i: only the i-th (a replay).
 * shard {index, count}: every shard counts every selected scenario (cheap)
 * and runs the injected runs whose index in the whole plan is congruent to
 * index mod count, so n independent processes split the work evenly even
 * when one scenario dominates. dryRun: count only and report the plan with
 * its estimated cost (planned runs x the scenario's uninjected run time).
 * Deterministic: a (scenario, site, occurrence) triple replays exactly.
 */
import type { Kernel } from '../kernel/kernel.js';
import { defaultConfig, type KernelConfig } from '../kernel/config.js';
import { checkInvariants, checkNoLeaks, leakBaseline, type LeakBaseline } from '../kernel/mm/debug_vm.js';
import { globToRegExp } from '../selftests/harness.js';
import type { BugKind } from '../kernel/printk.js';
import { matchFinding } from './findings.js';
import {
  hmmTestScenarios, dmirrorScenarios, describeException, type FailScenario, type ScenarioContext, type ScenarioOutcome,
} from './fail_scenarios.js';

export { describeException, type EscapedException, type FailScenario, type ScenarioContext, type ScenarioOutcome } from './fail_scenarios.js';

export type FailureKind = 'exception' | 'kernel-bug' | 'leak' | 'lost-data' | 'warning' | 'no-leak-check';

export interface FailRunFailure {
  scenario: string;
  site: string;
  /** 1-based occurrence of the site that failed (0: the uninjected run). */
  occurrence: number;
  kind: FailureKind;
  detail: string;
}

export interface FailSiteResult {
  site: string;
  /** Occurrences counted over all scenarios (uninjected runs). */
  occurrences: number;
  /** Injected runs (occurrences failed, after sampling). */
  tested: number;
  /** Injected runs in which the scenario's own verdict was a failure (allowed). */
  scenarioFailed: number;
  /** Injected runs explained by a known finding (src/fuzz/findings.ts), per finding id. */
  findings: Record<string, number>;
  failures: FailRunFailure[];
}

export interface FailSweepTotals {
  scenarios: number;
  sites: number;
  occurrences: number;
  runs: number;
  failures: number;
  /** Injected runs whose occurrence was never reached (the run diverged before it): not failures. */
  notReached: number;
  /** Injected runs explained by a known finding: not failures. */
  explained: number;
  /** The same per finding id. */
  findings: Record<string, number>;
}

/** One scenario's counting run and its plan. */
export interface FailScenarioRow {
  name: string;
  /** The uninjected run's own verdict. */
  status: string;
  /** Occurrences per site in the uninjected run. */
  occurrences: Record<string, number>;
  /** contextAbove: distinct call contexts of each site above the threshold. */
  contexts: Record<string, number>;
  /** contextAbove: the occurrences failed for those sites (the first of each context), ascending. */
  contextOccurrences: Record<string, number[]>;
  /** Injected runs planned for this scenario (all shards). */
  planned: number;
  /** Of those, the runs of this shard. */
  shardRuns: number;
  /** CPU milliseconds of the uninjected counting run (the estimate's unit cost). */
  baseMs: number;
}

export interface FailSweepPlanTotals {
  /** Injected runs of the whole plan (all shards). */
  planned: number;
  /** Injected runs of this shard. */
  shardRuns: number;
  /** Distinct call contexts over the reduced (scenario, site) pairs (contextAbove). */
  contexts: number;
  /** Estimated CPU seconds of this shard's injected runs (planned runs x uninjected run time). */
  estimatedCpuSeconds: number;
  /** The same for the whole plan. */
  estimatedCpuSecondsAll: number;
}

export interface FailSweepResult {
  /** True: only the counting runs ran (the plan; `sites[].tested` are 0). */
  dryRun: boolean;
  /** The shard this result covers. */
  shard: { index: number; count: number };
  sites: FailSiteResult[];
  /** Problems of the uninjected runs themselves (site '(none)'); reported by shard 0 only. */
  baselineFailures: FailRunFailure[];
  scenarios: FailScenarioRow[];
  totals: FailSweepTotals;
  plan: FailSweepPlanTotals;
}

export interface FailSweepOptions {
  /** Globs over scenario names (none: all). */
  filter?: string[];
  /** Globs over scenario names to leave out (applied after filter). */
  exclude?: string[];
  /** Only these sites (none: every site a scenario reaches). */
  sites?: string[];
  /** Most occurrences of one site failed per scenario (evenly spaced); default 12. */
  maxOccurrences?: number;
  /** Fail only this occurrence of each selected site (a replay), instead of a sample. */
  occurrence?: number;
  /** Fail every occurrence (no sampling). */
  everyOccurrence?: boolean;
  /** Sites with more than this many occurrences in a run: one occurrence per distinct call context; the others: every occurrence. */
  contextAbove?: number;
  /** Run only shard index of count (0 <= index < count) of the injected runs. */
  shard?: { index: number; count: number };
  /** Count and plan only: no injected run. */
  dryRun?: boolean;
  /** Machine configuration (checked mode is forced on). */
  config?: Partial<KernelConfig>;
  /** The scenarios (default: every hmm-tests case, then the dmirror sequences). */
  scenarios?: FailScenario[];
}

export interface FailSweepProgress {
  phase: 'count' | 'inject';
  scenario: string;
  /** Runs done and planned so far (planned grows as scenarios are counted). */
  done: number;
  planned: number;
}

/** The default scenario list for a configuration. */
export function defaultFailScenarios(config: Partial<KernelConfig> = {}): FailScenario[] {
  return [...hmmTestScenarios(config), ...dmirrorScenarios(config)];
}

/** Up to `max` occurrence numbers in 1..n, evenly spaced, first and last included. */
export function sampleOccurrences(n: number, max: number): number[] {
  if (n <= max) return Array.from({ length: n }, (_, i) => i + 1);
  if (max <= 1) return [1];
  const out = new Set<number>();
  for (let j = 0; j < max; j++) out.add(1 + Math.round((j * (n - 1)) / (max - 1)));
  return [...out].sort((a, b) => a - b);
}

/**
 * The call context of the current fault-injection occurrence: the stack of
 * kernel and driver functions (frames in src/kernel and src/drivers, the
 * fault-injection machinery itself left out), innermost first, joined by
 * '<'. Function names only: two calls of one site from the same chain of
 * functions are the same path.
 */
export function kernelContext(): string {
  const lim = Error.stackTraceLimit;
  Error.stackTraceLimit = 100;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = lim;
  const out: string[] = [];
  for (const line of stack.split('\n')) {
    const m = /^\s*at (?:async )?(?:new )?(\S+) \((.*):\d+:\d+\)$/.exec(line);
    if (m === null) continue;
    const file = m[2];
    if (!/\/src\/(kernel|drivers)\//.test(file) || /\/(fault_inject|kernel)\.[jt]s$/.test(file)) continue;
    out.push(m[1].slice(m[1].lastIndexOf('.') + 1));
  }
  return out.join('<');
}

/** The first occurrence of each distinct call context per site (a counting run's observer). */
function contextRecorder(sites: ReadonlySet<string>): { arm(k: Kernel): void; firsts: Map<string, Map<string, number>> } {
  const firsts = new Map<string, Map<string, number>>();
  return {
    firsts,
    arm(k: Kernel): void {
      k.failInject.onOccurrence = (site, n) => {
        if (!sites.has(site)) return;
        let m = firsts.get(site);
        if (m === undefined) firsts.set(site, (m = new Map()));
        const c = kernelContext();
        if (!m.has(c)) m.set(c, n);
      };
    },
  };
}

/** CPU milliseconds (user + system) of fn. */
function cpuMs<T>(fn: () => T): [T, number] {
  const t0 = process.cpuUsage();
  const r = fn();
  const d = process.cpuUsage(t0);
  return [r, (d.user + d.system) / 1000];
}

interface RunRecord {
  outcome: ScenarioOutcome;
  /** null: the exited() point was never reached (the teardown itself failed). */
  leaks: string[] | null;
  counts: Map<string, number>;
  injected: number;
}

/** Run a scenario once with `arm` applied at its ready point; counts occurrences of every site. */
export function runScenarioOnce(sc: FailScenario, arm: ((k: Kernel) => void) | null): RunRecord {
  let base: LeakBaseline | null = null;
  let leaks: string[] | null = null;
  let counts = new Map<string, number>();
  let injected = 0;
  const ctx: ScenarioContext = {
    ready(k) {
      k.failInject.reset();
      base = leakBaseline(k);
      k.failInject.counting = true;
      arm?.(k);
    },
    exited(k) {
      const fi = k.failInject;
      counts = new Map(fi.counts);
      injected = fi.injected.length;
      fi.counting = false;
      fi.onOccurrence = null;
      fi.rules.clear();
      if (base === null) {
        leaks = ['exited() before ready()'];
        return;
      }
      try {
        leaks = checkNoLeaks(k, base);
        checkInvariants(k, 'end of run (all processes exited)');
      } catch (e) {
        const d = describeException(e);
        (leaks ??= []).push(`${d.kind === 'js' ? 'exception in the leak check' : 'invariant'}: ${d.message}`);
      }
    },
  };
  let outcome: ScenarioOutcome;
  try {
    outcome = sc.run(ctx);
  } catch (e) {
    outcome = { status: 'fail', reason: 'scenario threw', exception: describeException(e), warnings: [] };
  }
  return { outcome, leaks, counts, injected };
}

/** The first line of a message (signatures compare first lines). */
function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}

/** Problems of one run; those whose signature is in `known` (the uninjected run's) are dropped. */
function problemsOf(rec: RunRecord, known: Set<string> | null): Array<{ kind: FailureKind; detail: string }> {
  const out: Array<{ kind: FailureKind; detail: string }> = [];
  const add = (kind: FailureKind, detail: string): void => {
    const sig = `${kind}:${firstLine(detail)}`;
    if (known !== null && known.has(sig)) return;
    out.push({ kind, detail });
  };
  const ex = rec.outcome.exception;
  if (ex !== undefined) add(ex.kind === 'js' ? 'exception' : 'kernel-bug', ex.message);
  if (rec.outcome.lost !== undefined) add('lost-data', rec.outcome.lost);
  if (rec.leaks === null) {
    if (ex === undefined) add('no-leak-check', 'the scenario never reached its end-of-run point');
  } else for (const l of rec.leaks) add('leak', l);
  for (const w of new Set(rec.outcome.warnings)) add('warning', w);
  return out;
}

/**
 * The known finding (src/fuzz/findings.ts) a run hit, given the site it
 * failed: its escaped KernelBug, or a new WARNING. The kernel crashed or
 * WARNed there as mainline does; what the run reports after that (leaked
 * references of the killed task, bytes it never got to copy) is that
 * crash's consequence and is not counted as a failure.
 */
function findingOf(rec: RunRecord, failSite: string, known: Set<string>): string | null {
  const ex = rec.outcome.exception;
  if (ex !== undefined && ex.kind === 'kernel-bug') {
    const m = /^(\w+): (.*)$/.exec(firstLine(ex.message));
    if (m !== null) {
      const f = matchFinding(m[1] as BugKind, m[2], { failSite });
      if (f !== null) return f.id;
    }
  }
  for (const w of new Set(rec.outcome.warnings)) {
    if (known.has(`warning:${firstLine(w)}`)) continue;
    const f = matchFinding('WARN', w, { failSite });
    if (f !== null) return f.id;
  }
  return null;
}

function signatures(ps: Array<{ kind: FailureKind; detail: string }>): Set<string> {
  return new Set(ps.map((p) => `${p.kind}:${firstLine(p.detail)}`));
}

/**
 * runFailSiteSweep(): the sweep over the selected scenarios (filter, then
 * exclude). Synchronous; `progress` is called after every run. Throws a
 * RangeError for bad options.
 */
export function runFailSiteSweep(options: FailSweepOptions = {}, progress?: (p: FailSweepProgress) => void): FailSweepResult {
  const max = options.maxOccurrences ?? 12;
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxOccurrences must be a positive integer, not ${max}`);
  if (options.occurrence !== undefined && (!Number.isInteger(options.occurrence) || options.occurrence < 1)) throw new RangeError(`occurrence must be a positive integer, not ${options.occurrence}`);
  const above = options.contextAbove;
  if (above !== undefined && (!Number.isInteger(above) || above < 1)) throw new RangeError(`contextAbove must be a positive integer, not ${above}`);
  if (options.occurrence !== undefined && (options.everyOccurrence || above !== undefined)) throw new RangeError('occurrence (a replay) excludes everyOccurrence and contextAbove');
  const shard = options.shard ?? { index: 0, count: 1 };
  if (!Number.isInteger(shard.count) || shard.count < 1 || !Number.isInteger(shard.index) || shard.index < 0 || shard.index >= shard.count) throw new RangeError(`shard must be 0 <= index < count, not ${shard.index}/${shard.count}`);
  const config: Partial<KernelConfig> = { ...(options.config ?? {}), checked: true };
  defaultConfig(config); /* validate up front */
  const all = options.scenarios ?? defaultFailScenarios(config);
  const pats = (options.filter ?? []).map(globToRegExp);
  const excl = (options.exclude ?? []).map(globToRegExp);
  const scenarios = all.filter((s) => (!pats.length || pats.some((r) => r.test(s.name))) && !excl.some((r) => r.test(s.name)));
  const siteFilter = options.sites && options.sites.length ? new Set(options.sites) : null;

  const bySite = new Map<string, FailSiteResult>();
  const site = (name: string): FailSiteResult => {
    let r = bySite.get(name);
    if (r === undefined) {
      r = { site: name, occurrences: 0, tested: 0, scenarioFailed: 0, findings: {}, failures: [] };
      bySite.set(name, r);
    }
    return r;
  };
  const baselineFailures: FailRunFailure[] = [];
  const scenarioRows: FailScenarioRow[] = [];
  let runs = 0;
  let notReached = 0;
  let planned = scenarios.length;
  let done = 0;
  /** Index of the next injected run in the whole plan (shard selection). */
  let globalRun = 0;
  let contexts = 0;
  let estMs = 0;
  let estMsAll = 0;
  let shardRunsAll = 0;
  let plannedAll = 0;

  for (const sc of scenarios) {
    const [base, baseMs] = cpuMs(() => runScenarioOnce(sc, null));
    runs++;
    done++;
    progress?.({ phase: 'count', scenario: sc.name, done, planned });
    const baseProblems = problemsOf(base, null);
    // A WARN of the uninjected run is the scenario's own (some hmm-tests provoke one): only new ones count.
    if (shard.index === 0) for (const p of baseProblems) if (p.kind !== 'warning') baselineFailures.push({ scenario: sc.name, site: '(none)', occurrence: 0, kind: p.kind, detail: p.detail });
    const known = signatures(baseProblems);
    const row: FailScenarioRow = { name: sc.name, status: base.outcome.status, occurrences: Object.fromEntries(base.counts), contexts: {}, contextOccurrences: {}, planned: 0, shardRuns: 0, baseMs: Math.round(baseMs) };
    scenarioRows.push(row);
    // contextAbove: a second counting run records the contexts of the sites above the threshold.
    let ctxFirsts: Map<string, Map<string, number>> | null = null;
    if (above !== undefined) {
      const big = new Set([...base.counts].filter(([name, n]) => n > above && (siteFilter === null || siteFilter.has(name))).map(([name]) => name));
      if (big.size > 0) {
        const rec = contextRecorder(big);
        const again = runScenarioOnce(sc, (k) => rec.arm(k));
        runs++;
        for (const name of big) {
          if (again.counts.get(name) !== base.counts.get(name)) throw new Error(`${sc.name}: site ${name} counted ${base.counts.get(name)} then ${again.counts.get(name)} occurrences (the scenario is not deterministic)`);
        }
        ctxFirsts = rec.firsts;
      }
    }
    const plan: Array<[string, number]> = [];
    for (const [name, n] of base.counts) {
      if (siteFilter !== null && !siteFilter.has(name)) continue;
      site(name).occurrences += n;
      const occ = options.occurrence;
      let list: number[];
      if (occ !== undefined) list = occ <= n ? [occ] : [];
      else if (above !== undefined && n > above) {
        const firsts = ctxFirsts?.get(name) ?? new Map<string, number>();
        row.contexts[name] = firsts.size;
        contexts += firsts.size;
        list = [...firsts.values()].sort((a, b) => a - b);
        row.contextOccurrences[name] = list;
      } else if (options.everyOccurrence || above !== undefined) list = Array.from({ length: n }, (_, i) => i + 1);
      else list = sampleOccurrences(n, max);
      row.planned += list.length;
      for (const i of list) {
        if (globalRun++ % shard.count === shard.index) plan.push([name, i]);
      }
    }
    row.shardRuns = plan.length;
    plannedAll += row.planned;
    shardRunsAll += plan.length;
    estMs += plan.length * baseMs;
    estMsAll += row.planned * baseMs;
    if (options.dryRun) continue;
    planned += plan.length;
    for (const [name, i] of plan) {
      const rec = runScenarioOnce(sc, (k) => k.failInject.set(name, { skip: i - 1, times: 1 }));
      runs++;
      done++;
      const r = site(name);
      if (rec.injected === 0 && rec.leaks !== null) notReached++;
      else r.tested++;
      if (rec.outcome.status === 'fail') r.scenarioFailed++;
      const finding = findingOf(rec, name, known);
      if (finding !== null) {
        r.findings[finding] = (r.findings[finding] ?? 0) + 1;
        progress?.({ phase: 'inject', scenario: sc.name, done, planned });
        continue;
      }
      for (const p of problemsOf(rec, known)) r.failures.push({ scenario: sc.name, site: name, occurrence: i, kind: p.kind, detail: p.detail });
      progress?.({ phase: 'inject', scenario: sc.name, done, planned });
    }
  }
  const sites = [...bySite.values()].sort((a, b) => a.site.localeCompare(b.site));
  const failures = sites.reduce((n, s) => n + s.failures.length, 0) + baselineFailures.length;
  const findings: Record<string, number> = {};
  for (const s of sites) for (const [id, n] of Object.entries(s.findings)) findings[id] = (findings[id] ?? 0) + n;
  return {
    dryRun: options.dryRun === true,
    shard,
    sites,
    baselineFailures,
    scenarios: scenarioRows,
    totals: {
      scenarios: scenarios.length,
      sites: sites.length,
      occurrences: sites.reduce((n, s) => n + s.occurrences, 0),
      runs,
      failures,
      notReached,
      explained: Object.values(findings).reduce((a, b) => a + b, 0),
      findings,
    },
    plan: {
      planned: plannedAll,
      shardRuns: shardRunsAll,
      contexts,
      estimatedCpuSeconds: Math.round(estMs / 1000),
      estimatedCpuSecondsAll: Math.round(estMsAll / 1000),
    },
  };
}
