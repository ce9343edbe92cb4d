// SPDX-License-Identifier: GPL-2.0-only
/**
 * A fuzz campaign: runs numbered 0..runs-1; run r is the sequence
 * fast-check generates with seed `seed + r` (fc.sample of the sequence
 * arbitrary), so any run can be replayed alone (`--seed <seed+r> --runs 1`)
 * and a campaign splits into independent shards by run range
 * (`--shard i/n`). A failing sequence is shrunk (shrinkSequence) and
 * printed as a node:test reproducer and a replay command.
 *
 * The generated value is a plain array of operations (ops.ts) executed
 * against the machine and the shadow (exec.ts) rather than fc.commands
 * objects: the sequence is JSON that can be printed, stored and replayed
 * without fast-check, and since every operation resolves its
 * process/fd/device indices at run time, every subsequence is valid.
 * Shrinking is our own deterministic ddmin rather than fast-check's: each
 * candidate replays on a fresh machine (~20 ms plus the operations), and
 * fast-check's array shrinker, which does not know where the sequence
 * failed, spent its 30 s budget on 1000-operation sequences without getting
 * below 168 operations; cutting at the failing operation first and then
 * dropping chunks gets to a handful in a few seconds (docs/FUZZ.md).
 */
import fc from 'fast-check';
import { DRIVER_OPS, type DriverName, type Op, type OpName, opArbitrary } from './ops.js';
import { MachinePool, type RunConfig, type SeqOptions, type SeqResult, type ViolationClass, driversOf, runSequence } from './exec.js';

/**
 * Operations per sequence by default: short sequences find more per
 * operation (1,500 x 100 operations found 1 violation, 3,000 x 30 found 3;
 * docs/FUZZ.md), long ones amortise the machine rollback.
 */
export const DEFAULT_LENGTH = 40;

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
  /** Time limit of one run including its shrinking (s): shrinking stops there with the smallest sequence so far. */
  shrinkSeconds: number;
  /** Stop at the first violation (default true). */
  stopOnViolation?: boolean;
  /** Progress: called after each run with the operations done so far. */
  onRun?: (runsDone: number, ops: number) => void;
}

export interface ViolationReport {
  run: number;
  seed: number;
  cls: ViolationClass;
  message: string;
  /** The shrunk sequence. */
  ops: Op[];
  /** Index of the failing operation in ops (ops.length: the final sweep). */
  opIndex: number;
  originalLength: number;
  /** Where the unshrunk sequence failed. */
  originalOpIndex: number;
  /** Sequences replayed while shrinking. */
  shrinkReplays: number;
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
  /** Operations executed, by driver (the operation kinds of ops.ts DRIVER_OPS; `other`: the rest). */
  opsByDriver: Record<DriverName | 'other', number>;
  /** Calls that reached the nouveau driver (open, ioctl, close, device removal, final GPU reads). */
  nouveauCalls: number;
  /** mTHP folios allocated by anonymous faults (with hugepages-<size>kB settings in --config). */
  mthpFolios: number;
  /** Sequences ended by a known finding. */
  sequencesEndedByFinding: number;
  violationReports: ViolationReport[];
  seconds: number;
  /** Wall time of the searching runs (without shrinking), ms. */
  searchMs: number;
  /** CPU time of the searching runs (user + system, ms): the rate on a loaded machine. */
  searchCpuMs: number;
  /** ops / searching time: checked operations per second (machine setup and final sweeps included). */
  opsPerSecond: number;
  /** ops / searching CPU time. */
  opsPerCpuSecond: number;
}

/** The runs [first, end) of shard i of n over `runs` runs. */
export function shardRange(runs: number, index: number, count: number): { first: number; end: number } {
  return { first: Math.floor((runs * index) / count), end: Math.floor((runs * (index + 1)) / count) };
}

/** The arbitrary of one sequence. */
export function sequenceArbitrary(rc: RunConfig, length: number, exclude: ReadonlySet<OpName>): fc.Arbitrary<Op[]> {
  const op = opArbitrary({ exclude, thpMixed: rc.thp === 'mixed', devices: rc.devices.length, drivers: driversOf(rc) });
  return fc.array(op, { minLength: length, maxLength: length });
}

function cliArgs(rc: RunConfig, length: number, exclude: ReadonlySet<OpName>): string {
  const a: string[] = [];
  for (const s of rc.settings) a.push(`--config ${s}`);
  a.push(`--drivers ${driversOf(rc).join(',')}`, `--devices ${rc.devices.join(',')}`, `--thp ${rc.thp}`, `--length ${length}`);
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
    `  const r = replay(${JSON.stringify({ settings: rc.settings, devices: rc.devices, thp: rc.thp, ...(rc.drivers ? { drivers: rc.drivers } : {}) })}, [`,
    ...ops.map((o) => `    ${JSON.stringify(o)},`),
    `  ]);`,
    `  assert.equal(r.violation, null, r.violation?.message);`,
    `});`,
  ];
  return lines.join('\n') + '\n';
}

/** Run one sequence (the replay API reproducers use): the same operations, machine and checks as a campaign. */
export function replay(rc: RunConfig, ops: readonly Op[], o: Pick<SeqOptions, 'onMachine'> = {}): SeqResult {
  return runSequence(ops, rc, o);
}

/**
 * Shrink a failing sequence: cut it after the failing operation, then
 * delta debugging (ddmin: drop chunks, halving the chunk size when no
 * chunk can go), then simplify each remaining operation's fields. A
 * candidate is kept when it fails with the same violation class (and, for
 * a kernel report, the same first line). Deterministic; stops after
 * `budgetMs`.
 */
export function shrinkSequence(ops: readonly Op[], rc: RunConfig, v: NonNullable<SeqResult['violation']>, budgetMs: number, pool?: MachinePool): { ops: Op[]; violation: NonNullable<SeqResult['violation']>; replays: number } {
  const t0 = performance.now();
  const key = (x: NonNullable<SeqResult['violation']>): string => (x.cls === 'kernel' ? `kernel:${x.message.split('\n')[0]}` : x.cls);
  const want = key(v);
  let best = { ops: ops.slice(0, Math.min(ops.length, v.opIndex + 1)), violation: v };
  let replays = 0;
  const test = (cand: Op[]): boolean => {
    replays++;
    const r = runSequence(cand, rc, { pool });
    if (r.violation === null || key(r.violation) !== want) return false;
    best = { ops: cand.slice(0, Math.min(cand.length, r.violation.opIndex + 1)), violation: r.violation };
    return true;
  };
  const late = (): boolean => performance.now() - t0 > budgetMs;
  let n = 2;
  while (best.ops.length >= 2 && !late()) {
    const cur = best.ops;
    const chunk = Math.ceil(cur.length / n);
    let reduced = false;
    for (let i = 0; i * chunk < cur.length && !late(); i++) {
      const cand = [...cur.slice(0, i * chunk), ...cur.slice((i + 1) * chunk)];
      if (cand.length > 0 && test(cand)) {
        reduced = true;
        n = Math.max(2, n - 1);
        break;
      }
    }
    if (!reduced) {
      if (chunk <= 1) break;
      n = Math.min(cur.length, n * 2);
    }
  }
  // Field simplification: smaller ranges and offsets, snapped ranges.
  const simpler: Array<[string, unknown]> = [['n', 1], ['len', 1], ['off', 0], ['a', 0], ['s', true], ['n2', 1], ['a2', 0], ['p', 0], ['f', 0], ['v', 1]];
  for (let i = 0; i < best.ops.length && !late(); i++) {
    for (const [f, val] of simpler) {
      const op = best.ops[i] as unknown as Record<string, unknown>;
      if (!(f in op) || op[f] === val) continue;
      const cand = best.ops.slice();
      cand[i] = { ...op, [f]: val } as unknown as Op;
      test(cand);
      if (i >= best.ops.length) break;
    }
  }
  return { ...best, replays };
}

/** Check run r: generate the sequence of seed + r with fast-check, run it, shrink a failure. */
export function checkRun(o: CampaignOptions, r: number, acc: CampaignResult, pool = new MachinePool(o.rc)): void {
  const seed = o.seed + r;
  const arb = sequenceArbitrary(o.rc, o.length, o.exclude);
  const [ops] = fc.sample(arb, { seed, numRuns: 1 });
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const res = runSequence(ops, o.rc, { pool });
  acc.searchMs += performance.now() - t0;
  const c1 = process.cpuUsage(c0);
  acc.searchCpuMs += (c1.user + c1.system) / 1000;
  acc.ops += res.ops;
  acc.sequences++;
  acc.bytesLost += res.bytesLost;
  acc.nouveauCalls += res.nouveauCalls;
  acc.mthpFolios += res.mthpFolios;
  for (const [kind, n] of Object.entries(res.kinds)) {
    const d = (Object.keys(DRIVER_OPS) as DriverName[]).find((x) => DRIVER_OPS[x].includes(kind as OpName)) ?? 'other';
    acc.opsByDriver[d] += n;
  }
  for (const f of res.findings) acc.findings[f.id] = (acc.findings[f.id] ?? 0) + 1;
  if (res.findings.length && res.violation === null && res.ops < ops.length) acc.sequencesEndedByFinding++;
  if (res.violation === null) return;
  acc.violations++;
  acc.byClass[res.violation.cls]++;
  if (res.violation.cls === 'js') acc.jsExceptions++;
  const sh = shrinkSequence(ops, o.rc, res.violation, o.shrinkSeconds * 1000, pool);
  const v = sh.violation;
  const title = `seed ${seed}`;
  acc.violationReports.push({
    run: r, seed, cls: v.cls, message: v.message, ops: sh.ops, opIndex: v.opIndex, originalLength: ops.length, originalOpIndex: res.violation.opIndex,
    shrinkReplays: sh.replays,
    reproducer: reproducerText(o.rc, sh.ops, title, v.message),
    replayCommand: `hmmsim fuzz --seed ${seed} --runs 1 ${cliArgs(o.rc, o.length, o.exclude)}`,
  });
}

export function emptyResult(o: CampaignOptions): CampaignResult {
  return {
    seed: o.seed, runs: shardRange(o.runs, o.shard.index, o.shard.count), shard: o.shard,
    ops: 0, sequences: 0, violations: 0, byClass: { shadow: 0, errno: 0, signal: 0, kernel: 0, js: 0 },
    bytesLost: 0, jsExceptions: 0, findings: {}, opsByDriver: { dmirror: 0, nouveau: 0, other: 0 }, nouveauCalls: 0, mthpFolios: 0, sequencesEndedByFinding: 0, violationReports: [], seconds: 0, searchMs: 0, searchCpuMs: 0, opsPerSecond: 0, opsPerCpuSecond: 0,
  };
}

/** Run this shard of a campaign. */
export function runCampaign(o: CampaignOptions): CampaignResult {
  const acc = emptyResult(o);
  const t0 = performance.now();
  const { first, end } = acc.runs;
  const pool = new MachinePool(o.rc);
  for (let r = first; r < end; r++) {
    const before = acc.violations;
    checkRun(o, r, acc, pool);
    o.onRun?.(r - first + 1, acc.ops);
    if (acc.violations > before && o.stopOnViolation !== false) break;
  }
  const ms = performance.now() - t0;
  acc.seconds = Math.round(ms / 10) / 100;
  acc.opsPerSecond = acc.searchMs > 0 ? Math.round((acc.ops / acc.searchMs) * 1000) : 0;
  acc.opsPerCpuSecond = acc.searchCpuMs > 0 ? Math.round((acc.ops / acc.searchCpuMs) * 1000) : 0;
  acc.searchMs = Math.round(acc.searchMs);
  acc.searchCpuMs = Math.round(acc.searchCpuMs);
  return acc;
}

