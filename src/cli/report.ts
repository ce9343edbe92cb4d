// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim report`: write one self-contained HTML report (docs/REPORT.md).
 *
 *   hmmsim report [--from-explore <scenario> [--config name=value ...] [--schedule c,c,...]
 *                  [--schedules N] [--seed S]] [--from-record FILE ...] [--from-selftest
 *                  [--filter GLOB ...]] [--from-bench FILE] [--trace FILE] [-o report.html] [--json]
 *
 * At least one --from-* source is required. Exit 0 when the report was
 * written, 2 on a usage error (unknown scenario, unreadable input file).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { type Command } from 'commander';
import { applyConfigSetting, defaultConfig, defaultHistorical, type KernelConfig } from '../kernel/config.js';
import { explore } from '../explore/engine.js';
import { SCENARIOS, findScenario } from '../../scenarios/index.js';
import { type RecordedRun, RunRecorder, parseRecord, recordSchedule } from '../trace/record.js';
import { writeTrace } from '../trace/chrome.js';
import { renderReport, type SelftestSummary } from '../report/html.js';

interface ReportOpts {
  fromExplore?: string;
  fromRecord?: string[];
  fromSelftest?: boolean;
  fromBench?: string;
  config?: string[];
  schedule?: string;
  schedules: string;
  seed: string;
  filter?: string[];
  trace?: string;
  output: string;
  json?: boolean;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

class UsageError extends Error {}

function flatSettings(settings: readonly string[]): string[] {
  return settings.flatMap((s) => s.split(',').filter((x) => x));
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${what} ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${what} ${file}: not JSON (${(e as Error).message})`);
  }
}

/** Explore a scenario (or replay --schedule) and record the counterexample (or the non-preemptive run when none is found). */
function exploreRecord(name: string, flat: string[], o: ReportOpts): { rec: RecordedRun; tracer: import('../kernel/trace.js').Tracer } {
  const sc = findScenario(name);
  if (!sc) throw new UsageError(`unknown scenario '${name}' (known: ${SCENARIOS.map((s) => s.name).join(', ')})`);
  const cfg = { historical: defaultHistorical() } as KernelConfig;
  for (const one of flat) {
    const err = applyConfigSetting(cfg, one);
    if (err !== null) throw new UsageError(err);
  }
  if (o.schedule !== undefined) {
    const choices = o.schedule.split(',').filter((x) => x.trim() !== '').map(Number);
    if (choices.some((c) => !Number.isInteger(c) || c < 0)) throw new UsageError('--schedule takes comma-separated non-negative integers');
    const { rec, tracer } = recordSchedule(sc, cfg, flat, choices);
    return { rec, tracer };
  }
  const schedules = Number(o.schedules);
  const seed = Number(o.seed);
  if (!Number.isInteger(schedules) || schedules <= 0) throw new UsageError(`--schedules: '${o.schedules}' is not a positive integer`);
  if (!Number.isInteger(seed)) throw new UsageError(`--seed: '${o.seed}' is not an integer`);
  const rr = new RunRecorder();
  const res = explore(sc, { schedules, seed, strategy: 'random', config: cfg, instrument: rr.instrument });
  if (res.found === null) return recordSchedule(sc, cfg, flat, []);
  return { rec: rr.finish(sc, flat, res.found), tracer: rr.tracer! };
}

async function selftestSummary(flat: string[], filter: string[] | undefined): Promise<SelftestSummary> {
  const cfg = defaultConfig();
  for (const one of flat) {
    const err = applyConfigSetting(cfg, one);
    if (err !== null) throw new UsageError(err);
  }
  const { buildHmmSuite } = await import('../selftests/hmm_tests.js');
  const suite = buildHmmSuite({ config: cfg });
  let bar: { update(n: number): void; stop(): void } | null = null;
  if (process.stderr.isTTY) {
    const { SingleBar, Presets } = (await import('cli-progress')).default;
    const b = new SingleBar({ format: 'hmm-tests [{bar}] {value}/{total}', stream: process.stderr, clearOnComplete: true }, Presets.shades_classic);
    b.start(suite.select({ filter }).length, 0);
    bar = { update: (n) => b.update(n), stop: () => b.stop() };
  }
  let done = 0;
  let r;
  try {
    r = suite.run({ filter, out: null, onCase: () => bar?.update(++done) });
  } finally {
    bar?.stop();
  }
  return {
    config: flat,
    totals: { ...r.totals },
    cases: r.cases.map((c) => ({ name: c.fullName, result: c.status, reason: c.reason, ms: c.durationMs, warnings: c.warnings.length })),
  };
}

export function registerReport(program: Command, write: (s: string) => void, setCode: (c: number) => void): void {
  program
    .command('report')
    .description('write a self-contained HTML report: page maps and swim lanes of an explorer run, selftest summary, bench charts')
    .option('--from-explore <scenario>', 'explore the scenario and show its counterexample (or the non-preemptive run when none is found)')
    .option('--config <name=value>', 'kernel configuration setting for --from-explore / --from-selftest (repeatable, or comma-separated)', collect)
    .option('--schedule <choices>', 'with --from-explore: show this schedule instead of exploring')
    .option('--schedules <n>', 'with --from-explore: schedules to try', '10000')
    .option('--seed <s>', 'with --from-explore: seed of the schedule generator', '1')
    .option('--from-record <file>', 'a recorded run written by hmmsim explore --record (repeatable)', collect)
    .option('--from-selftest', 'run the hmm-tests port and include its summary')
    .option('--filter <glob>', 'with --from-selftest: only cases matching the glob (repeatable)', collect)
    .option('--from-bench <file>', 'the JSON written by hmmsim bench --json')
    .option('--trace <file>', 'with --from-explore: also write the run as Chrome Trace Event JSON')
    .option('-o, --output <file>', 'the HTML file to write', 'report.html')
    .option('--json', 'print a JSON summary of what was written')
    .addHelpText('after', `
Examples:
  hmmsim report --from-explore cve-2022-3523 --config fault_no_page_ref=on -o cve.html
  hmmsim explore cve-2022-3523 --config fault_no_page_ref=on --record run.json; hmmsim report --from-record run.json
  hmmsim bench --json > bench.json; hmmsim report --from-bench bench.json --from-selftest -o all.html`)
    .action(async (o: ReportOpts) => {
      try {
        if (!o.fromExplore && !o.fromRecord && !o.fromSelftest && !o.fromBench) throw new UsageError('nothing to report: give --from-explore, --from-record, --from-selftest and/or --from-bench');
        if (o.trace !== undefined && !o.fromExplore) throw new UsageError('--trace needs --from-explore');
        const flat = flatSettings(o.config ?? []);
        const runs: RecordedRun[] = [];
        for (const f of o.fromRecord ?? []) {
          try {
            runs.push(parseRecord(readJson(f, '--from-record'), f));
          } catch (e) {
            throw e instanceof UsageError ? e : new UsageError((e as Error).message);
          }
        }
        if (o.fromExplore) {
          const { rec, tracer } = exploreRecord(o.fromExplore, flat, o);
          runs.unshift(rec);
          if (o.trace !== undefined) writeTrace(o.trace, tracer, { label: `explore ${rec.scenario} --schedule ${rec.schedule.join(',') || '0'}` });
        }
        const bench = o.fromBench ? readJson(o.fromBench, '--from-bench') : null;
        if (bench !== null && (typeof bench !== 'object' || !('core' in (bench as object)))) throw new UsageError(`--from-bench ${o.fromBench}: not the output of hmmsim bench --json (no "core")`);
        const selftest = o.fromSelftest ? await selftestSummary(flat, o.filter) : null;
        const html = renderReport({ runs, selftest, bench, title: runs.length ? `hmmsim report: ${runs.map((r) => r.scenario).join(', ')}` : 'hmmsim report' });
        writeFileSync(o.output, html);
        const summary = { output: o.output, bytes: Buffer.byteLength(html), runs: runs.map((r) => ({ scenario: r.scenario, violation: r.violation?.detector ?? null, steps: r.steps.length })), selftest: selftest?.totals ?? null, bench: bench !== null };
        write(o.json ? JSON.stringify(summary, null, 2) + '\n' : `wrote ${o.output} (${(summary.bytes / 1024).toFixed(0)} KiB): ${[...summary.runs.map((r) => `${r.scenario}${r.violation ? ` ${r.violation}` : ''} (${r.steps} steps)`), selftest ? 'selftest' : '', bench !== null ? 'bench' : ''].filter((x) => x).join(', ')}\n`);
        setCode(0);
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        process.stderr.write(`hmmsim report: ${e.message}\n`);
        setCode(2);
      }
    });
}
