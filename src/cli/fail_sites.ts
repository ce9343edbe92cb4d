// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim fail-sites` (to become `hmmsim fuzz --fail-sites`): the
 * allocation-failure sweep of src/fuzz/fail_sites.ts. Every scenario (each
 * hmm-tests case, then the dmirror sequences) runs once counting the
 * occurrences of each fault-injection site, then once per sampled
 * occurrence with exactly that one failing, in checked mode. Prints a table
 * per site (or one JSON object with --json); progress on stderr. Exit 0 if
 * no run threw a JS exception, leaked, lost a byte, raised a new kernel BUG
 * or WARN; 1 otherwise; 2 for bad arguments. --dry-run prints the plan
 * (scenarios, sites, occurrences, runs, estimated CPU time) and exits 0.
 *
 *   hmmsim fail-sites [--filter <glob>...] [--exclude <glob>...] [--site <name>...]
 *                     [--max-occurrences N | --every-occurrence | --context-above T | --occurrence N]
 *                     [--shard i/n] [--dry-run] [--json] [--config name=value...]
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { applyConfigSetting, defaultConfig, type KernelConfig } from '../kernel/config.js';
import { runFailSiteSweep, type FailSweepResult } from '../fuzz/fail_sites.js';

export interface FailSitesOptions {
  filter?: string[];
  exclude?: string[];
  everyOccurrence?: boolean;
  contextAbove?: string;
  shard?: string;
  dryRun?: boolean;
  site?: string[];
  maxOccurrences?: string;
  occurrence?: string;
  json?: boolean;
  config?: string[];
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

interface Parsed {
  cfg: KernelConfig;
  max: number;
  occurrence?: number;
  contextAbove?: number;
  shard: { index: number; count: number };
}

/** Parse the options; a string is the usage error to print. */
export function parseFailSitesOptions(opts: FailSitesOptions): Parsed | string {
  const cfg = defaultConfig();
  for (const s of opts.config ?? []) {
    for (const one of s.split(',').filter((x) => x.length > 0)) {
      const err = applyConfigSetting(cfg, one);
      if (err !== null) return err;
    }
  }
  let max = 12;
  if (opts.maxOccurrences !== undefined) {
    max = Number(opts.maxOccurrences);
    if (!Number.isInteger(max) || max < 1) return `--max-occurrences '${opts.maxOccurrences}' is not a positive integer`;
  }
  let occurrence: number | undefined;
  if (opts.occurrence !== undefined) {
    occurrence = Number(opts.occurrence);
    if (!Number.isInteger(occurrence) || occurrence < 1) return `--occurrence '${opts.occurrence}' is not a positive integer`;
  }
  let contextAbove: number | undefined;
  if (opts.contextAbove !== undefined) {
    contextAbove = Number(opts.contextAbove);
    if (!/^\d+$/.test(opts.contextAbove.trim()) || !Number.isInteger(contextAbove) || contextAbove < 1) return `--context-above '${opts.contextAbove}' is not a positive integer`;
  }
  const modes = [opts.maxOccurrences !== undefined && '--max-occurrences', opts.everyOccurrence && '--every-occurrence', opts.contextAbove !== undefined && '--context-above', opts.occurrence !== undefined && '--occurrence'].filter((x): x is string => typeof x === 'string');
  if (modes.length > 1) return `${modes.join(' and ')} choose the occurrences in different ways: give one`;
  let shard = { index: 0, count: 1 };
  if (opts.shard !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(opts.shard.trim());
    if (m === null) return `--shard '${opts.shard}' is not i/n (e.g. 3/64)`;
    shard = { index: Number(m[1]), count: Number(m[2]) };
    if (shard.count < 1 || shard.index >= shard.count) return `--shard '${opts.shard}' needs 0 <= i < n`;
  }
  return { cfg, max, occurrence, contextAbove, shard };
}

/** Seconds as a short human duration. */
function dur(s: number): string {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** The plan of a --dry-run: one row per scenario, one per site, the totals and the estimate. */
export function formatFailPlan(r: FailSweepResult): string {
  const lines: string[] = [];
  const w = Math.max(8, ...r.scenarios.map((s) => s.name.length));
  lines.push(`${'scenario'.padEnd(w)}  occurrences  contexts  planned-runs  shard-runs  run-ms  est-cpu`);
  for (const s of r.scenarios) {
    const occ = Object.values(s.occurrences).reduce((a, b) => a + b, 0);
    const ctx = Object.values(s.contexts).reduce((a, b) => a + b, 0);
    lines.push(`${s.name.padEnd(w)}  ${String(occ).padStart(11)}  ${String(ctx).padStart(8)}  ${String(s.planned).padStart(12)}  ${String(s.shardRuns).padStart(10)}  ${String(s.baseMs).padStart(6)}  ${dur(Math.round((s.shardRuns * s.baseMs) / 1000)).padStart(7)}`);
  }
  lines.push('');
  const sw = Math.max(4, ...r.sites.map((s) => s.site.length));
  lines.push(`${'site'.padEnd(sw)}  occurrences`);
  for (const s of r.sites) lines.push(`${s.site.padEnd(sw)}  ${String(s.occurrences).padStart(11)}`);
  const t = r.totals;
  const p = r.plan;
  lines.push('');
  lines.push(`plan: scenarios ${t.scenarios}, sites ${t.sites}, occurrences ${t.occurrences}, contexts ${p.contexts}, planned runs ${p.planned}`);
  lines.push(`shard ${r.shard.index}/${r.shard.count}: ${p.shardRuns} runs, estimated CPU ${dur(p.estimatedCpuSeconds)} (whole plan: ${dur(p.estimatedCpuSecondsAll)}; each run costed at its scenario's uninjected run, an upper bound for runs that end early)`);
  return lines.join('\n') + '\n';
}

/** The human table: one row per site, then every failure. */
export function formatFailSweep(r: FailSweepResult): string {
  const lines: string[] = [];
  const w = Math.max(4, ...r.sites.map((s) => s.site.length));
  lines.push(`${'site'.padEnd(w)}  occurrences  tested  case-failed  findings  failures`);
  for (const s of r.sites) {
    const fd = Object.values(s.findings).reduce((a, b) => a + b, 0);
    lines.push(`${s.site.padEnd(w)}  ${String(s.occurrences).padStart(11)}  ${String(s.tested).padStart(6)}  ${String(s.scenarioFailed).padStart(11)}  ${String(fd).padStart(8)}  ${String(s.failures.length).padStart(8)}`);
  }
  const t = r.totals;
  lines.push('');
  lines.push(`scenarios ${t.scenarios}, sites ${t.sites}, occurrences ${t.occurrences}, contexts ${r.plan.contexts}, runs ${t.runs}, not reached ${t.notReached}, explained by findings ${t.explained}, failures ${t.failures}${r.shard.count > 1 ? ` (shard ${r.shard.index}/${r.shard.count})` : ''}`);
  for (const [id, n] of Object.entries(t.findings)) lines.push(`finding ${id}: ${n} run(s) (docs/FINDINGS.md; src/fuzz/findings.ts)`);
  const all = [...r.baselineFailures, ...r.sites.flatMap((s) => s.failures)];
  for (const f of all) {
    const what = f.occurrence === 0 ? 'uninjected run' : `${f.site} #${f.occurrence}`;
    lines.push(`FAIL ${f.scenario} [${what}] ${f.kind}: ${f.detail.split('\n').join('\n    ')}`);
    if (f.occurrence > 0) lines.push(`  replay: hmmsim fail-sites --filter '${f.scenario}' --site ${f.site} --occurrence ${f.occurrence}`);
  }
  return lines.join('\n') + '\n';
}

/** The action: run the sweep, print, return the exit status. */
export async function failSitesAction(opts: FailSitesOptions, out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const p = parseFailSitesOptions(opts);
  if (typeof p === 'string') {
    process.stderr.write(`hmmsim fail-sites: ${p}\n`);
    return 2;
  }
  let bar: { start(t: number, v: number, p?: object): void; setTotal(t: number): void; update(v: number, p?: object): void; stop(): void } | null = null;
  if (process.stderr.isTTY) {
    const { SingleBar, Presets } = (await import('cli-progress')).default;
    bar = new SingleBar({ format: 'fail-sites [{bar}] {value}/{total} runs {name}', stream: process.stderr, clearOnComplete: true, hideCursor: true }, Presets.shades_classic);
    bar.start(1, 0, { name: '' });
  }
  let last = 0;
  const result = runFailSiteSweep(
    {
      filter: opts.filter, exclude: opts.exclude, sites: opts.site, maxOccurrences: p.max, occurrence: p.occurrence,
      everyOccurrence: opts.everyOccurrence === true, contextAbove: p.contextAbove, shard: p.shard, dryRun: opts.dryRun === true, config: p.cfg,
    },
    (ev) => {
      if (bar !== null) {
        bar.setTotal(ev.planned);
        bar.update(ev.done, { name: ev.scenario });
      } else if (ev.phase === 'count' || ev.done - last >= 500) {
        last = ev.done;
        process.stderr.write(`fail-sites: ${ev.done}/${ev.planned} runs (${ev.scenario})\n`);
      }
    },
  );
  bar?.stop();
  if (result.totals.scenarios === 0) {
    process.stderr.write(`hmmsim fail-sites: no scenario matches ${(opts.filter ?? []).map((f) => `'${f}'`).join(', ') || 'the filters'}${(opts.exclude ?? []).length ? ` outside --exclude ${(opts.exclude ?? []).map((f) => `'${f}'`).join(', ')}` : ''}\n`);
    return 2;
  }
  if (result.dryRun) {
    out(opts.json ? JSON.stringify(result, null, 2) + '\n' : formatFailPlan(result));
    return 0;
  }
  out(opts.json ? JSON.stringify(result, null, 2) + '\n' : formatFailSweep(result));
  return result.totals.failures > 0 ? 1 : 0;
}

/** Register `hmmsim fail-sites` (temporary standalone; the integrator attaches it as `fuzz --fail-sites`). */
export function registerFailSites(program: Command, out: (s: string) => void, setCode: (c: number) => void): void {
  program
    .command('fail-sites')
    .description('fail each allocation site at each of its occurrences in every hmm-tests case and dmirror sequence; check for exceptions, leaks, lost bytes and new BUG/WARN (checked mode)')
    .option('--filter <glob>', 'only scenarios whose name matches (hmm-tests/<fixture.variant.test>, dmirror/<name>); repeatable', collect)
    .option('--exclude <glob>', 'leave out scenarios whose name matches (after --filter; e.g. \'*benchmark*\'); repeatable', collect)
    .option('--site <name>', 'only this fault-injection site (e.g. __pte_alloc, anon_fault, xa_store); repeatable', collect)
    .option('--max-occurrences <n>', 'at most n occurrences of a site per scenario, evenly spaced (default 12)')
    .option('--every-occurrence', 'fail every occurrence of every site, not a sample (see --dry-run for the cost)')
    .option('--context-above <t>', 'every occurrence of sites with at most t occurrences in a run; above t, one occurrence per distinct call context (stack of kernel functions)')
    .option('--occurrence <n>', 'fail only occurrence n of each selected site (replay one run)')
    .option('--shard <i/n>', 'run only shard i of n (0 <= i < n) of the injected runs, round-robin over the whole plan; for batch arrays (default 0/1)')
    .option('--dry-run', 'count occurrences only and print the plan: scenarios, sites, occurrences, contexts, runs, estimated CPU time')
    .option('--json', 'print one JSON object ({dryRun, shard, sites, baselineFailures, scenarios, totals, plan})')
    .addOption(new Option('--config <name=value...>', 'kernel configuration settings (checked mode is always on)'))
    .action(async (opts: FailSitesOptions) => {
      setCode(await failSitesAction(opts, out));
    });
}
