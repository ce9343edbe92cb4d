// SPDX-License-Identifier: GPL-2.0-only
/** The explorer's scenarios, by name. */
import type { Scenario } from '../src/explore/engine.js';
import { cve20223523 } from './cve_2022_3523.js';

export const SCENARIOS: ReadonlyArray<Scenario> = [cve20223523];

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
