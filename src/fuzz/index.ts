// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim fuzz`: model-based random testing of the model against a shadow
 * of user-visible semantics. See docs/FUZZ.md.
 *
 *   ops.ts       the operations (JSON) and their fast-check generators
 *   shadow.ts    the shadow model: mappings and possible page contents
 *   exec.ts      one sequence on a fresh machine, checked op by op
 *   findings.ts  the registry of known (kernel-faithful) findings
 *   campaign.ts  seeds, shards, shrinking, reproducers
 */
export * from './ops.js';
export { Obj, ShadowMm } from './shadow.js';
export {
  DEFAULT_RUN_CONFIG, FuzzMachine, MachinePool, type DeviceKind, type RunConfig, type SeqResult, type ThpChoice, type ViolationClass,
  FUZZ_VRAM_CHUNKS, Violation, checkRunConfig, driversOf, fuzzKernelConfig, patternByte, runSequence,
} from './exec.js';
export { KNOWN_FINDINGS, type KnownFinding, matchFinding } from './findings.js';
export {
  DEFAULT_LENGTH, type CampaignOptions, type CampaignResult, type ViolationReport, checkRun, emptyResult, replay,
  reproducerText, runCampaign, sequenceArbitrary, shardRange, shrinkSequence,
} from './campaign.js';
