// SPDX-License-Identifier: GPL-2.0-only
/**
 * What the explorer runs and what a run reports: a scenario (its machine,
 * threads, per-step invariant and end check) and a run's violation, trace
 * and schedule. Scenario modules (scenarios/, a user's ./my-scenario.js)
 * import these types.
 */
import type { Kernel } from '../kernel/kernel.js';
import type { KernelConfig } from '../kernel/config.js';
import type { K, TraceStep } from '../kernel/sched/sched.js';

export interface ScenarioThread {
  name: string;
  body: () => K<unknown>;
}

export interface ScenarioRun {
  k: Kernel;
  threads: ScenarioThread[];
  /**
   * Objects whose state the threads change and the Kernel does not reach
   * (the driver: pgmap ops reach it only through closures; scenario state).
   * They are snapshotted and restored with the machine.
   */
  roots?: object[];
  /** pfns whose state the trace shows when it changes (the pages the race is about). */
  watch?: number[];
  /** A cheap invariant checked after every step: a violation description, or null. */
  invariant?: () => string | null;
  /** Called after all threads finished: a violation description (DATA), or null. */
  check?: () => string | null;
}

export interface Scenario {
  name: string;
  description: string;
  /** Upstream reference of the historical bug: the fixing commit or review thread (subject, id where known) and kernel file:function. */
  seedRef: string;
  /** The historical switch that reintroduces the bug. */
  bugSwitch: string;
  /** The detector expected to fire with the switch on (documentation, --list). */
  expect: string;
  /** Choices generated per schedule (default 16: the scenarios run 4 to 12 steps). */
  maxSteps?: number;
  /** Build a machine and the threads to interleave. Called once per exploration. */
  setup(cfg: Partial<KernelConfig>): ScenarioRun;
}

export interface Violation {
  detector: string;
  rule: string;
  state: string;
}

export interface RunResult {
  violation: Violation | null;
  trace: TraceStep[];
  /** Per trace step: the changed state of watched pages (only when traced verbosely). */
  notes: string[];
  /** The relative choices taken, trailing zeros trimmed: replays the run. */
  schedule: number[];
  steps: number;
}
