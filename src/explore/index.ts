// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim/explore`: the interleaving explorer and the scenario helpers.
 *
 * A scenario module (`hmmsim explore ./my-scenario.js`) default-exports a
 * {@link Scenario} (or exports `scenario`): its `setup(cfg)` builds a
 * machine and returns the threads to interleave ({@link ScenarioRun}); the
 * explorer runs them under many schedules, checks its detectors after
 * every step (KernelBug, WARN, a page freed while mapped, the scenario's
 * invariant) and the scenario's end `check()`, and shrinks the first
 * violation to a minimal trace with a replayable schedule.
 *
 * Threads are generators (`K<T>`): a user thread's system calls are
 * `yield* proc.sys.munmap(...)` (Process.sys), a CPU access is
 * {@link cpuAccess}; kernel paths yield at lock and reference hook points.
 *
 * @module hmmsim/explore
 */
export {
  type Scenario, type ScenarioRun, type ScenarioThread, type Violation, type RunResult, type ExploreOptions,
  type ExploreResult, type StrategyName, STRATEGIES, explore, runOnce, formatTrace, Machine,
} from './engine.js';
export { SCENARIOS, findScenario } from '../../scenarios/index.js';
export {
  ADDR, smallMachine, anonMapping, populate, withMmapRead, cpuAccess, cpuFill, fillChecksum, shadowCompare, mappedPfn,
  devicePrivatePfn,
} from '../../scenarios/lib.js';
