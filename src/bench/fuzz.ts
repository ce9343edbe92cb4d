// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fuzz benchmark: checked operations per second of `hmmsim fuzz` with
 * its defaults (both device kinds, every operation kind, DEFAULT_LENGTH
 * operations per sequence, checked mode, machines reused by rollback), without
 * shrinking: the rate counts the operations of the searching runs over
 * their wall time, machine rollback and the final read-back included.
 */
import { DEFAULT_LENGTH, DEFAULT_RUN_CONFIG, runCampaign } from '../fuzz/index.js';

export interface FuzzBenchResult {
  ops: number;
  sequences: number;
  seconds: number;
  opsPerSecond: number;
  /** The same per CPU second (user + system): what the machine's load does not change. */
  opsPerCpuSecond: number;
  /** Violations met on the way (the model's known bugs; they do not stop the bench). */
  violations: number;
}

export function runFuzzBench(quick: boolean): FuzzBenchResult {
  const runs = quick ? 100 : 750;
  // Warm-up (JIT), not counted.
  runCampaign({ rc: DEFAULT_RUN_CONFIG, seed: 99, runs: 10, length: DEFAULT_LENGTH, shard: { index: 0, count: 1 }, exclude: new Set(), shrinkSeconds: 0, stopOnViolation: false });
  const r = runCampaign({ rc: DEFAULT_RUN_CONFIG, seed: 1, runs, length: DEFAULT_LENGTH, shard: { index: 0, count: 1 }, exclude: new Set(), shrinkSeconds: 0, stopOnViolation: false });
  return { ops: r.ops, sequences: r.sequences, seconds: r.searchMs / 1000, opsPerSecond: r.opsPerSecond, opsPerCpuSecond: r.opsPerCpuSecond, violations: r.violations };
}
