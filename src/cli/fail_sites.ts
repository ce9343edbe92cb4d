// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim fail-sites` (to become `hmmsim fuzz --fail-sites`): the
 * allocation-failure sweep of src/fuzz/fail_sites.ts. Every scenario (each
 * hmm-tests case, then the dmirror sequences) runs once counting the
 * occurrences of each fault-injection site, then once per sampled
 * occurrence with exactly that one failing, in checked mode. Prints a table
 * per site (or one JSON object with --json); progress on stderr. Exit 0 if
 * no run threw a JS exception, leaked, lost a byte, raised a new kernel BUG
 * or WARN; 1 otherwise; 2 for bad arguments.
 *
 *   hmmsim fail-sites [--filter <glob>...] [--site <name>...]
 *                     [--max-occurrences N] [--occurrence N] [--json] [--config name=value...]
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { applyConfigSetting, defaultConfig, type KernelConfig } from '../kernel/config.js';
import { runFailSiteSweep, type FailSweepResult } from '../fuzz/fail_sites.js';

export interface FailSitesOptions {
  filter?: string[];
  site?: string[];
  maxOccurrences?: string;
  occurrence?: string;
  json?: boolean;
  config?: string[];
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Parse the options; a string is the usage error to print. */
function parse(opts: FailSitesOptions): { cfg: KernelConfig; max: number; occurrence?: number } | string {
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
  return { cfg, max, occurrence };
}

/** The human table: one row per site, then every failure. */
export function formatFailSweep(r: FailSweepResult): string {
  const lines: string[] = [];
  const w = Math.max(4, ...r.sites.map((s) => s.site.length));
  lines.push(`${'site'.padEnd(w)}  occurrences  tested  case-failed  failures`);
  for (const s of r.sites) {
    lines.push(`${s.site.padEnd(w)}  ${String(s.occurrences).padStart(11)}  ${String(s.tested).padStart(6)}  ${String(s.scenarioFailed).padStart(11)}  ${String(s.failures.length).padStart(8)}`);
  }
  const t = r.totals;
  lines.push('');
  lines.push(`scenarios ${t.scenarios}, sites ${t.sites}, occurrences ${t.occurrences}, runs ${t.runs}, not reached ${t.notReached}, failures ${t.failures}`);
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
  const p = parse(opts);
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
    { filter: opts.filter, sites: opts.site, maxOccurrences: p.max, occurrence: p.occurrence, config: p.cfg },
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
    process.stderr.write(`hmmsim fail-sites: no scenario matches ${(opts.filter ?? []).map((f) => `'${f}'`).join(', ')}\n`);
    return 2;
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
    .option('--site <name>', 'only this fault-injection site (e.g. __pte_alloc, anon_fault, xa_store); repeatable', collect)
    .option('--max-occurrences <n>', 'at most n occurrences of a site per scenario, evenly spaced (default 12)')
    .option('--occurrence <n>', 'fail only occurrence n of each selected site (replay one run)')
    .option('--json', 'print one JSON object ({sites, baselineFailures, scenarios, totals})')
    .addOption(new Option('--config <name=value...>', 'kernel configuration settings (checked mode is always on)'))
    .action(async (opts: FailSitesOptions) => {
      setCode(await failSitesAction(opts, out));
    });
}
