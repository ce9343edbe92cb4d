// SPDX-License-Identifier: GPL-2.0-only
/**
 * A fuzz campaign: runs numbered 0..runs-1, run r checks one generated
 * sequence with fast-check seed `seed + r` (fc.check, numRuns 1), so any run
 * can be replayed alone and a campaign splits into independent shards by
 * run range (`--shard i/n`). A failing sequence is shrunk by fast-check to
 * a minimal one and printed as a node:test reproducer and a replay command.
 *
 * Model-based testing with fast-check: the generated value is a plain array
 * of operations (ops.ts) executed against the machine and the shadow
 * (exec.ts) rather than fc.commands objects; the sequence is then JSON that
 * can be printed, stored and replayed without fast-check, and since every
 * operation resolves its process/fd/device indices at run time, fast-check's
 * array shrinking (drop operations, simplify fields) always yields valid
 * sequences.
 */
import fc from 'fast-check';
import { type Op, type OpName, opArbitrary } from './ops.js';
import { type RunConfig, type SeqResult, type ViolationClass, runSequence } from './exec.js';

export interface CampaignOptions {
  rc: RunConfig;
  /** Base seed: run r uses seed + r. */
  seed: number;
  /** Number of runs in the whole campaign. */
  runs: number;
  /** Operations per generated sequence. */
  length: number;
  /** This process runs shard `index` of `count` (contiguous run ranges). */
  shard: { index: number; count: number };
  exclude: ReadonlySet<OpName>;
  /** Stop at the first violation (default true). */
  stopOnViolation?: boolean;
  /** Progress: called after each run with the operations done so far. */
  onRun?: (runsDone: number, ops: number) => void;
}

export interface ViolationReport {
  run: number;
  seed: number;
  /** fast-check's path of the shrunk counterexample. */
  path: string;
  cls: ViolationClass;
  message: string;
  /** The shrunk sequence. */
  ops: Op[];
  /** Index of the failing operation in ops (ops.length: the final sweep). */
  opIndex: number;
  originalLength: number;
  reproducer: string;
  replayCommand: string;
}

export interface CampaignResult {
  seed: number;
  runs: { first: number; end: number };
  shard: { index: number; count: number };
  /** Operations executed while searching (not counting shrinking replays). */
  ops: number;
  sequences: number;
  violations: number;
  byClass: Record<ViolationClass, number>;
  bytesLost: number;
  jsExceptions: number;
  findings: Record<string, number>;
  /** Sequences ended by a known finding. */
  sequencesEndedByFinding: number;
  violationReports: ViolationReport[];
  seconds: number;
  /** Wall time of the searching runs (without shrinking), ms. */
  searchMs: number;
  /** ops / searching time: checked operations per second (machine setup and final sweeps included). */
  opsPerSecond: number;
}

/** The runs [first, end) of shard i of n over `runs` runs. */
export function shardRange(runs: number, index: number, count: number): { first: number; end: number } {
  return { first: Math.floor((runs * index) / count), end: Math.floor((runs * (index + 1)) / count) };
}

/** The arbitrary of one sequence. */
export function sequenceArbitrary(rc: RunConfig, length: number, exclude: ReadonlySet<OpName>): fc.Arbitrary<Op[]> {
  const op = opArbitrary({ exclude, thpMixed: rc.thp === 'mixed', devices: rc.devices.length });
  return fc.array(op, { minLength: 0, maxLength: length, size: 'max' });
}

function cliArgs(rc: RunConfig, length: number, exclude: ReadonlySet<OpName>): string {
  const a: string[] = [];
  for (const s of rc.settings) a.push(`--config ${s}`);
  a.push(`--devices ${rc.devices.join(',')}`, `--thp ${rc.thp}`, `--length ${length}`);
  if (exclude.size) a.push(`--exclude ${[...exclude].join(',')}`);
  return a.join(' ');
}

/** The text of a node:test file that replays `ops` and fails while the violation is there. */
export function reproducerText(rc: RunConfig, ops: readonly Op[], title: string, message: string): string {
  const lines = [
    `// hmmsim fuzz reproducer: ${title}`,
    `// ${message.split('\n')[0]}`,
    `import { test } from 'node:test';`,
    `import assert from 'node:assert/strict';`,
    `import { replay } from '../src/fuzz/index.js';`,
    ``,
    `test(${JSON.stringify(`fuzz reproducer: ${title}`)}, () => {`,
    `  const r = replay(${JSON.stringify({ settings: rc.settings, devices: rc.devices, thp: rc.thp })}, [`,
    ...ops.map((o) => `    ${JSON.stringify(o)},`),
    `  ]);`,
    `  assert.equal(r.violation, null, r.violation?.message);`,
    `});`,
  ];
  return lines.join('\n') + '\n';
}

/** Run one sequence (the replay API reproducers use). */
export function replay(rc: RunConfig, ops: readonly Op[]): SeqResult {
  return runSequence(ops, rc);
}

/** Check run r: generate with seed + r, run, shrink on failure. */
export function checkRun(o: CampaignOptions, r: number, acc: CampaignResult, replayPath?: string): void {
  const seed = o.seed + r;
  const arb = sequenceArbitrary(o.rc, o.length, o.exclude);
  let searching = true;
  let last: SeqResult | null = null;
  const prop = fc.property(arb, (ops) => {
    const t0 = performance.now();
    const res = runSequence(ops, o.rc);
    if (searching) {
      acc.searchMs += performance.now() - t0;
      acc.ops += res.ops;
      acc.sequences++;
      acc.bytesLost += res.bytesLost;
      for (const f of res.findings) acc.findings[f.id] = (acc.findings[f.id] ?? 0) + 1;
      if (res.findings.length && res.violation === null && res.ops < ops.length) acc.sequencesEndedByFinding++;
      if (res.violation) {
        acc.violations++;
        acc.byClass[res.violation.cls]++;
        if (res.violation.cls === 'js') acc.jsExceptions++;
      }
      searching = false;
    }
    if (res.violation) last = res;
    return res.violation === null;
  });
  const params: fc.Parameters<[Op[]]> = { seed, numRuns: 1, endOnFailure: false, unbiased: true };
  if (replayPath !== undefined) params.path = replayPath;
  const details = fc.check(prop, params);
  if (!details.failed || details.counterexample === null) return;
  const ops = details.counterexample[0];
  // Re-run the shrunk sequence for its exact message.
  const fin = runSequence(ops, o.rc);
  const v = fin.violation ?? (last as SeqResult | null)?.violation;
  if (!v) return;
  const title = `seed ${seed} path ${details.counterexamplePath}`;
  acc.violationReports.push({
    run: r, seed, path: details.counterexamplePath ?? '', cls: v.cls, message: v.message,
    ops, opIndex: v.opIndex, originalLength: o.length,
    reproducer: reproducerText(o.rc, ops, title, v.message),
    replayCommand: `hmmsim fuzz --seed ${seed} --runs 1 --path ${details.counterexamplePath} --replay ${cliArgs(o.rc, o.length, o.exclude)}`,
  });
}

export function emptyResult(o: CampaignOptions): CampaignResult {
  return {
    seed: o.seed, runs: shardRange(o.runs, o.shard.index, o.shard.count), shard: o.shard,
    ops: 0, sequences: 0, violations: 0, byClass: { shadow: 0, errno: 0, signal: 0, kernel: 0, js: 0 },
    bytesLost: 0, jsExceptions: 0, findings: {}, sequencesEndedByFinding: 0, violationReports: [], seconds: 0, searchMs: 0, opsPerSecond: 0,
  };
}

/** Run this shard of a campaign. */
export function runCampaign(o: CampaignOptions): CampaignResult {
  const acc = emptyResult(o);
  const t0 = performance.now();
  const { first, end } = acc.runs;
  for (let r = first; r < end; r++) {
    const before = acc.violations;
    checkRun(o, r, acc);
    o.onRun?.(r - first + 1, acc.ops);
    if (acc.violations > before && o.stopOnViolation !== false) break;
  }
  const ms = performance.now() - t0;
  acc.seconds = Math.round(ms / 10) / 100;
  acc.opsPerSecond = acc.searchMs > 0 ? Math.round((acc.ops / acc.searchMs) * 1000) : 0;
  acc.searchMs = Math.round(acc.searchMs);
  return acc;
}

/** Replay one run along a fast-check path (the shrunk counterexample of that run). */
export function replayRun(o: CampaignOptions, run: number, path: string): CampaignResult {
  const acc = emptyResult(o);
  acc.runs = { first: run, end: run + 1 };
  const t0 = performance.now();
  checkRun(o, run, acc, path);
  const ms = performance.now() - t0;
  acc.seconds = Math.round(ms / 10) / 100;
  acc.opsPerSecond = acc.searchMs > 0 ? Math.round((acc.ops / acc.searchMs) * 1000) : 0;
  acc.searchMs = Math.round(acc.searchMs);
  return acc;
}
