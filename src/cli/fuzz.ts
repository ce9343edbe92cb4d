// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim fuzz`: model-based random testing (src/fuzz, docs/FUZZ.md).
 *
 *   hmmsim fuzz [--seed N] [--ops N | --runs N] [--length N] [--config name=value...]
 *               [--devices private,coherent] [--thp always|madvise|never|mixed]
 *               [--exclude op,...] [--shard i/n] [--replay FILE] [--json]
 *
 * Exit 0 when no violation, 1 on a violation, 2 on a usage error.
 */
import fs from 'node:fs';
import { type Command, Option } from 'commander';
import { EventClock, Tracer, attachTracer } from '../kernel/trace.js';
import { writeTrace } from '../trace/chrome.js';
import {
  type CampaignResult, type DeviceKind, type DriverName, DRIVER_NAMES, OP_NAMES, type OpName, type RunConfig, type ThpChoice, type Op, KNOWN_FINDINGS,
  DEFAULT_LENGTH, checkRunConfig, emptyResult, replay, reproducerText, runCampaign,
} from '../fuzz/index.js';

export class FuzzUsageError extends Error {}

export interface FuzzCliOptions {
  seed: string;
  ops?: string;
  runs?: string;
  length: string;
  config?: string[];
  devices: string;
  drivers: string;
  thp: string;
  exclude?: string;
  shard: string;
  replay?: string;
  trace?: string;
  json?: boolean;
  shrinkSeconds: string;
  keepGoing?: boolean;
  failSites?: boolean;
}

export const DEFAULT_SEED = 20261204;

function int(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new FuzzUsageError(`--${name}: '${v}' is not an integer >= ${min}`);
  return n;
}

/** Parse `i/n` (0 <= i < n). */
export function parseShard(v: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(v);
  if (!m) throw new FuzzUsageError(`--shard: '${v}' is not i/n`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index >= count) throw new FuzzUsageError(`--shard: '${v}' needs 0 <= i < n`);
  return { index, count };
}

/** The RunConfig and campaign parameters from the options; throws FuzzUsageError. */
export function parseFuzzOptions(o: FuzzCliOptions, validateConfig: (settings: string[]) => void): {
  rc: RunConfig; seed: number; runs: number; length: number; exclude: Set<OpName>; shard: { index: number; count: number }; shrinkSeconds: number;
} {
  const seed = int('seed', o.seed, 0);
  const length = int('length', o.length, 1);
  let runs: number;
  if (o.runs !== undefined) runs = int('runs', o.runs, 1);
  else runs = Math.max(1, Math.ceil(int('ops', o.ops ?? '20000', 1) / length));
  const drivers = (o.drivers ?? DRIVER_NAMES.join(',')).split(',').filter(Boolean);
  if (drivers.length === 0) throw new FuzzUsageError(`--drivers: empty (choose from ${DRIVER_NAMES.join(', ')})`);
  for (const d of drivers) if (!(DRIVER_NAMES as readonly string[]).includes(d)) throw new FuzzUsageError(`--drivers: '${d}' is not a driver the fuzz drives (${DRIVER_NAMES.join(', ')})`);
  const devices = o.devices.split(',').filter(Boolean);
  for (const d of devices) if (d !== 'private' && d !== 'coherent') throw new FuzzUsageError(`--devices: '${d}' is not private or coherent`);
  if (!['always', 'madvise', 'never', 'mixed'].includes(o.thp)) throw new FuzzUsageError(`--thp: '${o.thp}' is not always|madvise|never|mixed`);
  const exclude = new Set<OpName>();
  for (const e of (o.exclude ?? '').split(',').filter(Boolean)) {
    if (!(OP_NAMES as readonly string[]).includes(e)) throw new FuzzUsageError(`--exclude: '${e}' is not an operation (${OP_NAMES.join(', ')})`);
    exclude.add(e as OpName);
  }
  const settings = (o.config ?? []).flatMap((s) => s.split(',').filter(Boolean));
  validateConfig(settings);
  const rc: RunConfig = { settings, devices: [...new Set(devices)] as DeviceKind[], thp: o.thp as ThpChoice, drivers: [...new Set(drivers)] as DriverName[] };
  const err = checkRunConfig(rc);
  if (err !== null) throw new FuzzUsageError(err);
  return { rc, seed, runs, length, exclude, shard: parseShard(o.shard), shrinkSeconds: int('shrink-seconds', o.shrinkSeconds, 1) };
}

function textReport(r: CampaignResult): string {
  const out: string[] = [];
  out.push(`hmmsim fuzz: seed ${r.seed}, runs ${r.runs.first}..${r.runs.end - 1} (shard ${r.shard.index}/${r.shard.count})`);
  out.push(`  ${r.ops} checked operations in ${r.sequences} sequences, ${r.opsPerSecond} ops/s (${r.opsPerCpuSecond} per CPU second)`);
  out.push(`  violations ${r.violations} (${Object.entries(r.byClass).filter(([, n]) => n).map(([c, n]) => `${c} ${n}`).join(', ') || 'none'}), bytes lost ${r.bytesLost}, JS exceptions ${r.jsExceptions}`);
  const f = Object.entries(r.findings);
  out.push(`  known findings: ${f.length ? f.map(([id, n]) => `${id} x${n}`).join(', ') : 'none'}`);
  out.push(`  operations by driver: dmirror ${r.opsByDriver.dmirror}, nouveau ${r.opsByDriver.nouveau}, other ${r.opsByDriver.other}; calls that reached nouveau ${r.nouveauCalls}` + (r.mthpFolios > 0 ? `; mTHP folios faulted ${r.mthpFolios}` : ''));
  for (const v of r.violationReports) {
    out.push('', `VIOLATION (${v.cls}) in run ${v.run} (seed ${v.seed}), shrunk from ${v.originalLength} to ${v.ops.length} operations (${v.shrinkReplays} replays):`);
    out.push(...v.message.split('\n').map((l) => `  ${l}`));
    out.push('', '  sequence:', ...v.ops.map((op, i) => `  ${String(i).padStart(4)} ${JSON.stringify(op)}${i === v.opIndex ? '   <== fails here' : ''}`));
    if (v.opIndex >= v.ops.length) out.push('       (fails in the final read-back of every mapping)');
    out.push('', `  replay: ${v.replayCommand}`, '', '  reproducer (test/<name>.test.ts):', ...v.reproducer.trimEnd().split('\n').map((l) => `  | ${l}`));
  }
  return out.join('\n') + '\n';
}

export async function runFuzz(o: FuzzCliOptions, write: (s: string) => void, validateConfig: (settings: string[]) => void): Promise<number> {
  if (o.failSites) {
    // Fault injection lives in src/cli/fail_sites.ts (another change); loaded only if this build has it.
    const path = './fail_sites.js';
    type FailSites = { failSitesAction?: (opts: unknown, write: (s: string) => void) => unknown };
    let mod: FailSites | null;
    try {
      mod = (await import(path)) as FailSites;
    } catch {
      mod = null;
    }
    if (mod === null || typeof mod.failSitesAction !== 'function') {
      process.stderr.write('hmmsim fuzz: --fail-sites is not available in this build\n');
      return 2;
    }
    const r = await mod.failSitesAction(o, write);
    return typeof r === 'number' ? r : 0;
  }
  const p = parseFuzzOptions(o, validateConfig);
  if (o.trace !== undefined && o.replay === undefined) throw new FuzzUsageError('--trace needs --replay FILE (a trace is of one sequence: replay a reproducer)');
  if (o.replay !== undefined) {
    let ops: Op[];
    try {
      const text = fs.readFileSync(o.replay, 'utf8');
      const j = JSON.parse(text) as Op[] | { ops: Op[] };
      ops = Array.isArray(j) ? j : j.ops;
      if (!Array.isArray(ops)) throw new Error('no operation array');
    } catch (e) {
      throw new FuzzUsageError(`--replay ${o.replay}: ${(e as Error).message}`);
    }
    let tracer: Tracer | null = null;
    const r = replay(p.rc, ops, o.trace === undefined ? {} : { onMachine: (sys: { kernel: Parameters<typeof attachTracer>[0] }) => { tracer = attachTracer(sys.kernel, new Tracer(new EventClock())); } });
    if (o.trace !== undefined && tracer !== null) writeTrace(o.trace, tracer, { label: `hmmsim fuzz --replay ${o.replay}` });
    const acc = emptyResult({ ...p, rc: p.rc });
    acc.runs = { first: 0, end: 1 };
    acc.ops = r.ops;
    acc.sequences = 1;
    acc.bytesLost = r.bytesLost;
    acc.nouveauCalls = r.nouveauCalls;
    acc.mthpFolios = r.mthpFolios;
    for (const f of r.findings) acc.findings[f.id] = (acc.findings[f.id] ?? 0) + 1;
    if (r.violation) {
      acc.violations = 1;
      acc.byClass[r.violation.cls]++;
      acc.violationReports.push({
        run: 0, seed: p.seed, cls: r.violation.cls, message: r.violation.message, ops, opIndex: r.violation.opIndex,
        originalLength: ops.length, originalOpIndex: r.violation.opIndex, shrinkReplays: 0,
        reproducer: reproducerText(p.rc, ops, `replay of ${o.replay}`, r.violation.message), replayCommand: `hmmsim fuzz --replay ${o.replay}`,
      });
    }
    write(o.json ? JSON.stringify({ ...acc, knownFindings: KNOWN_FINDINGS.map((f) => ({ id: f.id, doc: f.doc })) }, null, 2) + '\n' : textReport(acc));
    return r.violation ? 1 : 0;
  }
  let bar: { update(n: number, ops: number): void; stop(): void } | null = null;
  const total = Math.floor((p.runs * (p.shard.index + 1)) / p.shard.count) - Math.floor((p.runs * p.shard.index) / p.shard.count);
  if (process.stderr.isTTY && !o.json) {
    const { SingleBar, Presets } = (await import('cli-progress')).default;
    const b = new SingleBar({ format: 'fuzz [{bar}] {value}/{total} sequences, {ops} ops', stream: process.stderr, clearOnComplete: true }, Presets.shades_classic);
    b.start(total, 0, { ops: 0 });
    bar = { update: (n, ops) => b.update(n, { ops }), stop: () => b.stop() };
  }
  if (!o.json) process.stderr.write(`hmmsim fuzz --seed ${p.seed} --runs ${p.runs} --length ${p.length} --shard ${p.shard.index}/${p.shard.count}\n`);
  const r = runCampaign({
    rc: p.rc, seed: p.seed, runs: p.runs, length: p.length, shard: p.shard, exclude: p.exclude, shrinkSeconds: p.shrinkSeconds,
    stopOnViolation: !o.keepGoing, onRun: (n, ops) => bar?.update(n, ops),
  });
  bar?.stop();
  write(o.json ? JSON.stringify({ ...r, knownFindings: KNOWN_FINDINGS.map((f) => ({ id: f.id, doc: f.doc })) }, null, 2) + '\n' : textReport(r));
  return r.violations > 0 ? 1 : 0;
}

export function registerFuzz(program: Command, write: (s: string) => void, setCode: (c: number) => void, validateConfig: (settings: string[]) => void): void {
  program
    .command('fuzz')
    .description('model-based random testing: random operation sequences checked against a shadow of user-visible semantics (docs/FUZZ.md)')
    .option('--seed <n>', 'base seed (run r uses seed + r)', String(DEFAULT_SEED))
    .option('--ops <n>', 'operations budget of the whole campaign (runs = ops / length)', '20000')
    .option('--runs <n>', 'number of sequences of the whole campaign (overrides --ops)')
    .option('--length <n>', 'operations per sequence', String(DEFAULT_LENGTH))
    .addOption(new Option('--config <name=value...>', 'kernel configuration settings over the fuzz machine defaults (e.g. fault_no_page_ref=on swapMiB=0)'))
    .option('--drivers <names>', `drivers whose operations are generated: ${DRIVER_NAMES.join(', ')} (nouveau: /dev/dri/nouveau-sim, SVM_INIT/SVM_BIND/GPU read, write, atomic, device removal)`, DRIVER_NAMES.join(','))
    .option('--devices <kinds>', 'dmirror devices to use: private (dmirror0/1), coherent (dmirror2/3)', 'private,coherent')
    .option('--thp <mode>', 'transparent hugepages: always, madvise, never, or mixed (operations switch it)', 'madvise')
    .option('--exclude <ops>', `operation kinds not generated (${OP_NAMES.join(',')})`)
    .option('--shard <i/n>', 'run only shard i of n (contiguous run ranges; for batch arrays)', '0/1')
    .option('--replay <file>', 'run the operations of a JSON file (an array, or {ops}) instead of generating')
    .option('--trace <file>', 'with --replay: write the sequence\'s run as Chrome Trace Event JSON (Perfetto; docs/REPORT.md)')
    .option('--shrink-seconds <n>', 'time limit of shrinking one failure', '60')
    .option('--keep-going', 'do not stop at the first violation')
    .option('--fail-sites', 'fault injection over the fuzz (src/cli/fail_sites.ts failSitesAction)')
    .option('--json', 'print one JSON object: counters, findings, violations with reproducers')
    .action(async (opts: FuzzCliOptions) => {
      try {
        setCode(await runFuzz(opts, write, validateConfig));
      } catch (e) {
        if (e instanceof FuzzUsageError) {
          process.stderr.write(`hmmsim fuzz: ${e.message}\n`);
          setCode(2);
          return;
        }
        throw e;
      }
    });
}
