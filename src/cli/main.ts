// SPDX-License-Identifier: GPL-2.0-only
/**
 * The hmmsim command line.
 *
 *   hmmsim selftest [--filter <glob>...] [--json] [--config name=value...] [--bench] [--list]
 *                   [--strict] [--driver ./my-driver.js ...] [--trace FILE]
 *   hmmsim explore <scenario | ./my-scenario.js> [...]   (src/cli/explore.ts)
 *   hmmsim run ./my-program.js [args...]                  (src/cli/run.ts)
 *   hmmsim bench [--json] [--only ...]                    (src/cli/bench.ts)
 *   hmmsim report --from-... -o FILE                      (src/cli/report.ts)
 *   hmmsim fail-sites [--filter <glob>...] [--site <name>...] [--max-occurrences N] [--json]   (src/cli/fail_sites.ts)
 *   hmmsim fuzz [--seed N] [--ops N] ...                  (src/cli/fuzz.ts)
 *   hmmsim --version
 *
 * `selftest` runs the port of the kernel's tools/testing/selftests/mm/
 * hmm-tests.c on the model, each case on a fresh simulated machine, and
 * prints kselftest TAP (or, with --json, one JSON object). The known
 * failure mainline shares is XFAIL (kselftest's XFAIL_ADD); `--strict`
 * makes it a failure. The exit status is 1 if any case failed, 2 on a
 * usage error (bare `hmmsim`, a bad option or --config value, a --filter
 * matching no case, a driver that does not load), else 0.
 */
import os from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import type { KernelConfig } from '../kernel/config.js';
import { type CaseResult, type SuiteResult, globToRegExp } from '../selftests/harness.js';
import type { Kernel } from '../kernel/kernel.js';
import { registerBench } from './bench.js';
import { registerExplore } from './explore.js';
import { registerReport } from './report.js';
import { VERSION } from '../version.js';
import { registerRun } from './run.js';
import { ConfigError, contentModeError, hostBoundsError, parseConfig } from './config_check.js';
import { UserModuleError, loadDriverFile } from './user_modules.js';
import { registerFailSites } from './fail_sites.js';
import { registerFuzz } from './fuzz.js';
import { registerModel } from './model.js';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Build a KernelConfig from `--config name=value` settings; throws a message on error. */
export function configFromSettings(settings: readonly string[]): KernelConfig {
  try {
    return parseConfig(settings);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
}

export class UsageError extends Error {}

interface SelftestOptions {
  filter?: string[];
  json?: boolean;
  config?: string[];
  bench?: boolean;
  list?: boolean;
  seed?: string;
  failOnWarn?: boolean;
  jobs?: string;
  trace?: string;
  strict?: boolean;
  driver?: string[];
  suite?: string;
}

function jsonReport(cfg: KernelConfig, seed: number | undefined, r: SuiteResult): unknown {
  return {
    suite: 'hmm-tests',
    config: cfg,
    seed: seed ?? null,
    cases: r.cases.map((c: CaseResult) => ({
      index: c.index,
      name: c.fullName,
      fixture: c.fixture,
      variant: c.variant,
      test: c.test,
      kernelLine: c.kernelLine ?? null,
      result: c.status,
      reason: c.reason,
      durationMs: Math.round(c.durationMs * 1000) / 1000,
      failures: c.failures,
      kernelWarnings: c.warnings.length,
      kernelWarningRules: [...new Set(c.warnings)],
      stats: c.stats,
      log: c.log,
    })),
    totals: r.totals,
    /** Model statistics summed over the cases (contentBytes: page-content memory traffic). */
    stats: { contentBytes: r.cases.reduce((s, c) => s + (c.stats.contentBytes ?? 0), 0) },
  };
}

/** Tracing of selftest cases: a tracer per case machine on one shared EventClock, written as one process per case. */
async function selftestTracing(): Promise<{ onMachine: (k: Kernel) => void; caseDone: (c: CaseResult) => void; write: (file: string) => void }> {
  const { EventClock, Tracer, attachTracer } = await import('../kernel/trace.js');
  const { sampleCounters } = await import('../trace/pagemap.js');
  const { writeTraces } = await import('../trace/chrome.js');
  const clock = new EventClock();
  const parts: Array<{ tracer: InstanceType<typeof Tracer>; label: string }> = [];
  return {
    onMachine: (k) => {
      const t = attachTracer(k, new Tracer(clock));
      t.limit = SELFTEST_TRACE_EVENTS_PER_CASE;
      // Counters at the end of one in 16 outermost kernel calls: a walk of the case's page tables each.
      sampleCounters(t, k, 16);
      parts.push({ tracer: t, label: `case ${parts.length + 1}` });
    },
    caseDone: (c) => {
      if (parts.length > 0) parts[parts.length - 1].label = `${c.index} ${c.fullName}: ${c.status}`;
    },
    write: (file) => writeTraces(file, parts),
  };
}

/** Events kept per traced selftest case (the rest are counted as dropped). */
const SELFTEST_TRACE_EVENTS_PER_CASE = 200_000;

/** --jobs: a positive integer, or the number of CPUs available by default. */
function parseJobs(v: string | undefined): number {
  if (v === undefined) return os.availableParallelism();
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new UsageError(`--jobs: '${v}' is not an integer in 1..64`);
  return n;
}

async function runSelftest(opts: SelftestOptions, write: (s: string) => void): Promise<number> {
  const cfg = configFromSettings(opts.config ?? []);
  const fp = contentModeError(cfg, 'selftest', 'hmm-tests compares page contents byte by byte');
  if (fp !== null) throw new UsageError(fp);
  const jobsWanted = parseJobs(opts.jobs);
  let seed: number | undefined;
  if (opts.seed !== undefined) {
    seed = Number(opts.seed);
    if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed: '${opts.seed}' is not a non-negative integer`);
  }
  if (opts.suite !== undefined && opts.suite !== 'hmm-tests') {
    if (opts.suite !== 'nouveau') throw new UsageError(`--suite: '${opts.suite}' is not hmm-tests|nouveau`);
    const { runNouveauSuite } = await import('../selftests/nouveau_tests.js');
    const pats = (opts.filter ?? []).map(globToRegExp);
    const sel = (n: string) => pats.length === 0 || pats.some((r) => r.test(n));
    if (opts.list) {
      const { NOUVEAU_CASE_NAMES } = await import('../selftests/nouveau_tests.js');
      for (const n of NOUVEAU_CASE_NAMES) if (sel(n)) write(n + '\n');
      return 0;
    }
    const r = runNouveauSuite(cfg, sel, opts.json ? null : (l) => write(l + '\n'));
    if (opts.json) write(JSON.stringify({ suite: 'nouveau', config: cfg, cases: r.cases, totals: { pass: r.pass, fail: r.fail } }, null, 2) + '\n');
    return r.fail > 0 ? 1 : 0;
  }
  // Loaded here so that the harness maps stack frames of an already built tree.
  const { buildHmmSuite } = await import('../selftests/hmm_tests.js');
  // --trace: every case's machine gets a tracer; one clock, so the cases follow each other in the trace.
  const traced = opts.trace !== undefined ? await selftestTracing() : null;
  const drivers = await loadDrivers(opts.driver ?? [], cfg);
  const suiteOpts = { config: cfg, seed, failOnWarn: opts.failOnWarn === true, strict: opts.strict === true };
  const suite = buildHmmSuite({ ...suiteOpts, onMachine: traced?.onMachine, modules: drivers.map(({ name, module }) => ({ name, module })) });
  const select = opts.bench ? (c: { test: string }) => c.test === 'benchmark_thp_migration' : undefined;
  // A filter that selects nothing is a typo, not an empty success.
  const all = suite.cases();
  for (const f of opts.filter ?? []) {
    const re = globToRegExp(f);
    if (!all.some((c) => re.test(c.fullName))) throw new UsageError(`--filter '${f}': no case matches (case names are fixture.variant.test; see --list)`);
  }
  if (select && !suite.select({ filter: opts.filter, select }).length) throw new UsageError('--bench with --filter: no benchmark_thp_migration case matches');
  if (opts.list) {
    const pats = (opts.filter ?? []).map(globToRegExp);
    for (const c of suite.cases()) {
      if (pats.length && !pats.some((r) => r.test(c.fullName))) continue;
      if (select && !select(c)) continue;
      write(c.fullName + '\n');
    }
    return 0;
  }
  let bar: { update(n: number): void; stop(): void } | null = null;
  if (opts.json && process.stderr.isTTY) {
    const { SingleBar, Presets } = (await import('cli-progress')).default;
    const total = suite.cases().length;
    const b = new SingleBar({ format: 'hmm-tests [{bar}] {value}/{total} {name}', stream: process.stderr, clearOnComplete: true }, Presets.shades_classic);
    b.start(total, 0, { name: '' });
    bar = { update: (n) => b.update(n), stop: () => b.stop() };
  }
  let done = 0;
  const runOpts = {
    filter: opts.filter,
    select,
    out: opts.json ? null : (l: string) => write(l + '\n'),
    onCase: (c: CaseResult) => {
      traced?.caseDone(c);
      bar?.update(++done);
    },
  };
  // A traced run stays in this thread: the machines must be here to be traced.
  const jobs = traced !== null ? 1 : Math.min(jobsWanted, suite.select(runOpts).length);
  const host = hostBoundsError(cfg, Math.max(1, jobs));
  if (host !== null) throw new UsageError(host);
  let result: SuiteResult;
  if (jobs <= 1) result = suite.run(runOpts);
  else {
    // Each case builds its own machine: run them on worker threads.
    const { SelftestPool } = await import('./selftest_pool.js');
    const pool = new SelftestPool(jobs, { ...suiteOpts, driverUrls: drivers.map(({ name, url }) => ({ name, url })) });
    try {
      result = await suite.runWith(runOpts, (c) => pool.exec(c));
    } finally {
      await pool.close();
    }
  }
  bar?.stop();
  if (traced !== null) traced.write(opts.trace!);
  if (opts.json) write(JSON.stringify(jsonReport(cfg, seed, result), null, 2) + '\n');
  return result.totals.fail > 0 || result.totals.error > 0 ? 1 : 0;
}

/**
 * --driver files: loaded, and tried once on a machine of the run's
 * configuration (with test_hmm loaded, as in a case), so a driver whose
 * init fails is a usage error before any case runs.
 */
async function loadDrivers(paths: readonly string[], cfg: KernelConfig) {
  const out = [];
  for (const p of paths) {
    let d;
    try {
      d = await loadDriverFile(p);
    } catch (e) {
      if (e instanceof UserModuleError) throw new UsageError(e.message);
      throw e;
    }
    out.push(d);
  }
  if (out.length === 0) return out;
  const { bootMachine, ModuleLoadError } = await import('../user/program.js');
  try {
    const sys = bootMachine({ config: structuredClone(cfg), modules: out });
    sys.kernel.release();
  } catch (e) {
    if (e instanceof ModuleLoadError) throw new UsageError(`--driver: ${e.message}`);
    throw new UsageError(`--driver: init raised ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const out = (s: string) => {
    process.stdout.write(s);
  };
  let code = 0;
  const program = new Command();
  program
    .name('hmmsim')
    .description('An executable model of Linux HMM / ZONE_DEVICE memory management')
    .version(VERSION, '-V, --version', 'print the version (semver) and exit')
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError();

  program
    .command('selftest')
    .description("run the port of the kernel's tools/testing/selftests/mm/hmm-tests.c (38 tests x 2 variants) on the model")
    .option('--filter <glob>', 'run only cases whose full name (fixture.variant.test) matches the glob; repeatable', collect)
    .option('--json', 'print one JSON object with per-case results and totals instead of TAP')
    .addOption(new Option('--config <name=value...>', 'kernel configuration settings (e.g. spm=off thp=always checked=on)'))
    .option('--bench', 'run only benchmark_thp_migration (prints the kernel test\'s THP migration table)')
    .option('--list', 'list the case names and exit')
    .option('--seed <n>', 'seed of hmm_random() (anon_teardown schedules)')
    .option('--fail-on-warn', 'a kernel WARNING during a case fails it (kselftest does not look at dmesg)')
    .option('--jobs <n>', 'run cases on n worker threads (default: the number of CPUs; 1 runs in-process)')
    .option('--trace <file>', 'write a Chrome Trace Event JSON (Perfetto) of the cases, one process per case (runs in-process; use --filter)')
    .option('--strict', 'the expected failure (XFAIL, a failure mainline has too) counts as a failure')
    .option('--driver <file>', 'a driver module (exports init(k), exit(k)) loaded into every case\'s machine; repeatable', collect)
    .option('--suite <name>', 'hmm-tests (default) or nouveau (the nouveau model through /dev/dri/nouveau-sim)')
    .exitOverride()
    .action(async (opts: SelftestOptions) => {
      code = await runSelftest(opts, out);
    });

  registerExplore(program, out, (c) => {
    code = c;
  });
  registerBench(program, out, (c) => {
    code = c;
  });
  registerReport(program, out, (c) => {
    code = c;
  });
  registerFailSites(program, out, (c) => {
    code = c;
  });
  registerRun(program, out, (c) => {
    code = c;
  });
  registerFuzz(program, out, (c) => {
    code = c;
  }, (settings) => {
    configFromSettings(settings);
  });
  registerModel(program, out, (c) => {
    code = c;
  });

  if (argv.length === 0) {
    // Bare `hmmsim`: the help, and the status of a usage error.
    program.outputHelp({ error: true });
    return 2;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') return 0;
      return 2;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`hmmsim: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  return code;
}
