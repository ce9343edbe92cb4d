// SPDX-License-Identifier: GPL-2.0-only
/**
 * Explorer throughput, for `hmmsim bench` (explorerSchedulesPerSecond):
 * schedules per second of `explore` on a scenario with the default
 * (mainline) configuration, where nothing is found and every schedule runs.
 * A warm-up run of as many schedules first lets the JIT compile the hot paths.
 */
import { explore, type StrategyName } from '../explore/engine.js';
import { findScenario } from '../../scenarios/index.js';

export interface ExplorerBench {
  scenario: string;
  strategy: StrategyName;
  schedules: number;
  seconds: number;
  schedulesPerSecond: number;
  /** Schedules per second of process CPU time (user + system, all threads: GC included). */
  schedulesPerCpuSecond: number;
}

export function benchExplorer(scenarioName = 'cve-2022-3523', n = 10000, strategy: StrategyName = 'random', seed = 1): ExplorerBench {
  const sc = findScenario(scenarioName);
  if (!sc) throw new Error(`unknown scenario '${scenarioName}'`);
  explore(sc, { schedules: Math.max(300, n), seed: seed + 1, strategy, config: {} }); /* warm-up: as many schedules as measured */
  const c0 = process.cpuUsage();
  const r = explore(sc, { schedules: n, seed, strategy, config: {} });
  const c = process.cpuUsage(c0);
  if (r.found) throw new Error(`benchExplorer: ${scenarioName} found a violation on the default configuration: ${r.found.violation?.detector} ${r.found.violation?.rule}`);
  const cpu = (c.user + c.system) / 1e6;
  return {
    scenario: scenarioName, strategy, schedules: r.schedulesRun, seconds: r.seconds,
    schedulesPerSecond: r.schedulesRun / r.seconds, schedulesPerCpuSecond: r.schedulesRun / cpu,
  };
}

/** Schedules per second of the explorer on `scenarioName` (default configuration, random strategy). */
export function measureSchedulesPerSecond(scenarioName = 'cve-2022-3523', n = 10000): number {
  return benchExplorer(scenarioName, n).schedulesPerSecond;
}
