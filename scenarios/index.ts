// SPDX-License-Identifier: GPL-2.0-only
/**
 * The explorer's scenarios, by name: one or more per historical switch of
 * src/kernel/config.ts (docs/EXPLORER.md describes each).
 */
import type { Scenario } from '../src/explore/engine.js';
import { cve20223523, cve20223523Migrate } from './cve_2022_3523.js';
import { devpageFreeRefcountOne } from './devpage_free_refcount_one.js';
import { pgmapBulkRef } from './pgmap_bulk_ref.js';
import { releaseWithoutEviction } from './release_without_eviction.js';
import { ttmCoherentAsPrivate } from './ttm_coherent_as_private.js';
import { zeroPfnSelectSystem } from './zero_pfn_select_system.js';
import { gupFastLongtermCoherent } from './gup_fast_longterm_coherent.js';
import { NOUVEAU_RACE_SCENARIOS, nouveauFaultCopyOne, nouveauReleaseWithoutEviction } from './nouveau.js';

export const SCENARIOS: ReadonlyArray<Scenario> = [
  cve20223523,
  cve20223523Migrate,
  devpageFreeRefcountOne,
  pgmapBulkRef,
  releaseWithoutEviction,
  ttmCoherentAsPrivate,
  zeroPfnSelectSystem,
  gupFastLongtermCoherent,
  nouveauReleaseWithoutEviction,
  nouveauFaultCopyOne,
];

/** Scenarios without a historical switch (mainline race explorations): found by name, not in the switch table. */
export const RACE_SCENARIOS: ReadonlyArray<Scenario> = [...NOUVEAU_RACE_SCENARIOS];

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name) ?? RACE_SCENARIOS.find((s) => s.name === name);
}
