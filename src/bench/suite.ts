// SPDX-License-Identifier: GPL-2.0-only
/**
 * The suite benchmark: wall time of the whole `hmmsim selftest`, run as a
 * child process exactly as a user runs it (node startup included), with
 * --json so that the kernel-format table of benchmark_thp_migration can be
 * taken from that same run (the selftest-table section).
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { round } from './stats.js';

export interface SuiteRun {
  selftestSeconds: number;
  totals: Record<string, number>;
  /** The benchmark_thp_migration table lines of each fixture variant. */
  tables: Array<{ name: string; lines: string[] }>;
  exitCode: number;
  /** Bytes of page contents the suite copied, read, written or filled (selftest --json stats.contentBytes). */
  contentBytes: number;
  /** Wall time of each benchmark_thp_migration case, seconds. */
  benchmarkCaseSeconds: number[];
  /** Worker threads the suite ran on (selftest's default --jobs). */
  jobs: number;
}

const BIN = fileURLToPath(new URL('../../../bin/hmmsim.js', import.meta.url));

export function runSuite(extraArgs: readonly string[] = []): SuiteRun {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [BIN, 'selftest', '--json', ...extraArgs], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.error) throw r.error;
  let parsed: { totals: Record<string, number>; stats?: { contentBytes?: number }; cases: Array<{ name: string; test: string; log: string[]; durationMs: number }> };
  try {
    parsed = JSON.parse(r.stdout);
  } catch {
    throw new Error(`bench suite: hmmsim selftest printed no JSON (exit ${r.status}): ${r.stderr.slice(0, 500)}`);
  }
  const tables = parsed.cases
    .filter((c) => c.test === 'benchmark_thp_migration')
    .map((c) => ({ name: c.name, lines: c.log }));
  const bench = parsed.cases.filter((c) => c.test === 'benchmark_thp_migration');
  return {
    selftestSeconds: round(seconds, 2), totals: parsed.totals, tables, exitCode: r.status ?? -1,
    contentBytes: parsed.stats?.contentBytes ?? 0,
    benchmarkCaseSeconds: bench.map((c) => round(c.durationMs / 1000, 2)),
    jobs: os.availableParallelism(),
  };
}
