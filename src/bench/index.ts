// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim bench`: every performance figure of the model, measured in one
 * process run (the suite section runs `hmmsim selftest` as a child, since
 * its figure is that command's wall time). See docs/PERFORMANCE.md.
 *
 * Sections: core (migration round trips vs memcpy), table (the kernel's
 * benchmark_thp_migration table, from the suite run), fault (device-private
 * CPU faults, hmm_range_fault snapshots), scale (per-page cost from 1K to 1M
 * pages), memory (model bytes per page frame), suite (selftest wall time),
 * explorer (schedules per second on the CVE-2022-3523 scenario), fuzz
 * (hmmsim fuzz checked operations per second), and, only
 * when asked for, big (a 64 GiB + 16 GiB machine in fingerprint mode).
 */
import os from 'node:os';
import { runCore, type CoreRow } from './core.js';
import { runFault, type FaultResult } from './fault.js';
import { runMemory, type MemoryResult } from './memory.js';
import { runScale, type ScaleResult } from './scale.js';
import { runSuite, type SuiteRun } from './suite.js';
import { runBig, type BigResult } from './big.js';
import { runFuzzBench, type FuzzBenchResult } from './fuzz.js';
import { median, round } from './stats.js';
import { parallelMemcpyGBps } from './memcpy.js';

export const SECTIONS = ['core', 'fault', 'scale', 'memory', 'suite', 'explorer', 'fuzz', 'big'] as const;
/** What runs without --only: everything but the minute-long big-machine run. */
export const DEFAULT_SECTIONS: readonly Section[] = ['core', 'fault', 'scale', 'memory', 'suite', 'explorer', 'fuzz'];
export type Section = (typeof SECTIONS)[number];

export interface BenchOptions {
  sections: readonly Section[];
  /** Smaller sizes everywhere (a smoke run; the figures are not the targets'). */
  quick: boolean;
  /** Timed repetitions per core row (median). */
  reps: number;
  log: (line: string) => void;
}

export interface Target {
  value: number | null;
  target: string;
  met: boolean | null;
  /** What bounds the figure, where the bench measured it (selftestSeconds: the copy floor). */
  note?: string;
}

export interface BenchResult {
  machine: { cpus: number; cpuModel: string; node: string; totalMemGiB: number; quick: boolean };
  memcpyGBps: number | null;
  memcpyGBpsThp: number | null;
  core: CoreRow[];
  ratio4k: number | null;
  ratioThp: number | null;
  fault: FaultResult | null;
  scale: ScaleResult | null;
  scaleFlatness: number | null;
  memory: MemoryResult | null;
  bytesPerPage: number | null;
  selftestSeconds: number | null;
  selftestTotals: Record<string, number> | null;
  selftestTable: Array<{ name: string; lines: string[] }> | null;
  /**
   * Why the suite takes what it takes: the page-content bytes it moves,
   * the memcpy bandwidth of all its worker threads copying at once, and
   * the wall time those bytes alone need at that bandwidth (a lower bound
   * of selftestSeconds in bytes mode: no bookkeeping, perfect balance).
   */
  selftestFloor: { contentBytes: number; jobs: number; parallelMemcpyGBps: number; copySeconds: number; benchmarkCaseSeconds: number[] } | null;
  explorerSchedulesPerSecond: number | null;
  /** hmmsim fuzz: checked operations per second (src/bench/fuzz.ts). */
  fuzz: FuzzBenchResult | null;
  big: BigResult | null;
  targets: Record<string, Target>;
  seconds: number;
}

const MiB = 256; /* pages per MiB */

function target(value: number | null, op: '>=' | '<=', limit: number): Target {
  return { value, target: `${op} ${limit}`, met: value === null ? null : op === '>=' ? value >= limit : value <= limit };
}

async function explorerRate(quick: boolean): Promise<number> {
  const { measureSchedulesPerSecond } = await import('./explorer.js');
  return round(measureSchedulesPerSecond('cve-2022-3523', quick ? 1000 : 10000), 0);
}

export async function runBench(o: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const has = (s: Section) => o.sections.includes(s);
  const res: BenchResult = {
    machine: {
      cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', node: process.version,
      totalMemGiB: round(os.totalmem() / 2 ** 30, 1), quick: o.quick,
    },
    memcpyGBps: null, memcpyGBpsThp: null, core: [], ratio4k: null, ratioThp: null, fault: null, scale: null,
    scaleFlatness: null, memory: null, bytesPerPage: null, selftestSeconds: null, selftestTotals: null,
    selftestTable: null, selftestFloor: null, explorerSchedulesPerSecond: null, fuzz: null, big: null, targets: {}, seconds: 0,
  };
  if (has('core')) {
    const sizes = o.quick ? [4 * MiB, 16 * MiB] : [16 * MiB, 64 * MiB, 256 * MiB];
    // Warm the JIT on both paths before anything is timed: enough round
    // trips (tens of thousands of pages) for V8 to optimize the per-page
    // loops, so the first row does not pay for tier-up.
    runCore({ pages: (o.quick ? 4 : 16) * MiB, thp: false, reps: 4 });
    runCore({ pages: (o.quick ? 4 : 16) * MiB, thp: true, reps: 4 });
    for (const thp of [false, true]) {
      for (const pages of sizes) {
        // Smaller buffers get more repetitions (each row times about as
        // many bytes), so their medians are as steady as the large ones'.
        const reps = Math.max(o.reps, Math.round((o.reps * 64 * MiB) / pages));
        const row = runCore({ pages, thp, reps: reps * 3, machines: 3 });
        res.core.push(row);
        o.log(`core ${thp ? 'THP ' : '4KiB'} ${String(pages / MiB).padStart(4)} MiB: s2d ${row.s2dGBps.toFixed(2)} GB/s, d2s ${row.d2sGBps.toFixed(2)} GB/s, memcpy ${row.memcpyGBps.toFixed(2)} GB/s, ratio ${row.ratio.toFixed(3)}, ${row.verifiedPages} pages verified (3 machines)`);
      }
    }
    const small = res.core.filter((r) => !r.thp);
    const big = res.core.filter((r) => r.thp);
    res.ratio4k = round(median(small.map((r) => r.ratio)));
    res.ratioThp = round(median(big.map((r) => r.ratio)));
    res.memcpyGBps = round(median(small.map((r) => r.memcpyGBps)));
    res.memcpyGBpsThp = round(median(big.map((r) => r.memcpyGBps)));
  }
  if (has('fault')) {
    res.fault = runFault(o.quick ? 1024 : 4096, o.quick ? 2 : 5);
    o.log(`fault: ${res.fault.devicePrivateFaultsPerSecond} device-private faults/s, ${res.fault.hmmRangeFaultPagesPerSecond} hmm_range_fault pages/s`);
  }
  if (has('scale')) {
    const sizes = o.quick ? [1024, 16384] : [1024, 16384, 262144, 1048576];
    res.scale = runScale(sizes, o.quick ? 1 : 5, (r) => o.log(`scale ${String(r.pages).padStart(8)} pages: ${r.nsPerPage.toFixed(0)} ns/page per round trip`));
    res.scaleFlatness = res.scale.flatness;
    o.log(`scale flatness (max/min): ${res.scaleFlatness}`);
  }
  if (has('memory')) {
    res.memory = runMemory(o.quick ? 65536 : 1 << 20);
    res.bytesPerPage = res.memory.bytesPerPage;
    o.log(`memory: ${res.memory.bytesPerPage} bytes per page frame (struct page arrays ${res.memory.structPageBytes}, other ${res.memory.otherBytes}) at ${res.memory.populatedPages} populated pages`);
  }
  if (has('suite')) {
    const s: SuiteRun = runSuite();
    res.selftestSeconds = s.selftestSeconds;
    res.selftestTotals = s.totals;
    res.selftestTable = s.tables;
    o.log(`suite: hmmsim selftest took ${s.selftestSeconds} s (${JSON.stringify(s.totals)})`);
    const bw = await parallelMemcpyGBps(s.jobs, o.quick ? 64 << 20 : 256 << 20, 2 << 20, o.quick ? 3 : 7);
    res.selftestFloor = {
      contentBytes: s.contentBytes, jobs: s.jobs, parallelMemcpyGBps: round(bw),
      copySeconds: round(s.contentBytes / (bw * 1e9)), benchmarkCaseSeconds: s.benchmarkCaseSeconds,
    };
    o.log(`suite floor: ${(s.contentBytes / 1e9).toFixed(1)} GB of page contents moved; ${s.jobs} threads copy ${res.selftestFloor.parallelMemcpyGBps} GB/s together (2 MiB blocks), so the copies alone take ${res.selftestFloor.copySeconds} s; benchmark_thp_migration cases ${s.benchmarkCaseSeconds.join(' s, ')} s`);
  }
  if (has('explorer')) {
    res.explorerSchedulesPerSecond = await explorerRate(o.quick);
    o.log(`explorer: ${res.explorerSchedulesPerSecond} schedules/s on cve-2022-3523`);
  }
  if (has('fuzz')) {
    res.fuzz = runFuzzBench(o.quick);
    o.log(`fuzz: ${res.fuzz.opsPerSecond} checked ops/s, ${res.fuzz.opsPerCpuSecond} per CPU second (${res.fuzz.ops} ops in ${res.fuzz.sequences} sequences, ${res.fuzz.violations} violations)`);
  }
  if (has('big')) {
    res.big = runBig(o.log);
    o.log(`big: ${res.big.ramGiB} GiB RAM + ${res.big.deviceGiB} GiB device, ${res.big.populatedPages} pages populated, ${res.big.migratedPages} migrated and back, ${res.big.verifiedPages} verified; model ${res.big.modelGiB} GiB, RSS ${res.big.rssGiB} GiB, ${res.big.seconds} s`);
  }
  res.targets = {
    ratio4k: target(res.ratio4k, '>=', 0.5),
    ratioThp: target(res.ratioThp, '>=', 0.85),
    scaleFlatness: target(res.scaleFlatness, '<=', 1.25),
    bytesPerPage: target(res.bytesPerPage, '<=', 64),
    selftestSeconds: {
      ...target(res.selftestSeconds, '<=', 3),
      ...(res.selftestFloor ? { note: `the suite moves ${(res.selftestFloor.contentBytes / 1e9).toFixed(1)} GB of page contents; at ${res.selftestFloor.parallelMemcpyGBps} GB/s (${res.selftestFloor.jobs} threads copying at once) the copies alone take ${res.selftestFloor.copySeconds} s` } : {}),
    },
    explorerSchedulesPerSecond: target(res.explorerSchedulesPerSecond, '>=', 5000),
    fuzzOpsPerSecond: target(res.fuzz?.opsPerSecond ?? null, '>=', 5000),
  };
  res.seconds = round((performance.now() - t0) / 1000, 1);
  return res;
}
