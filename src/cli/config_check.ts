// SPDX-License-Identifier: GPL-2.0-only
/**
 * `--config name=value` for every command: parsed and checked up front
 * against the real bounds (src/kernel/config.ts applyConfigSetting and
 * configBoundsError), plus the bounds of this host and command:
 *
 *  - host memory: the struct page arrays take PAGE_FRAME_BYTES per 4 KiB
 *    page frame (RAM plus the device pfns reserved at boot) and the swap
 *    map SWAP_SLOT_BYTES per slot; one machine per worker thread must fit
 *    in half of the host's memory, or the host's OOM killer ends the run
 *    part way (signal 9) instead of an error now;
 *  - content mode: a command that reads page contents back byte by byte
 *    (selftest, run) cannot be served by contentMode=fingerprint.
 */
import os from 'node:os';
import { applyConfigSetting, configBoundsError, defaultConfig, type KernelConfig } from '../kernel/config.js';
import { DEVICE_PFN_RESERVE } from '../kernel/kernel.js';

/** Bytes of model state per page frame: struct page arrays 47, contents map and LRU bookkeeping 7 (docs/PERFORMANCE.md). */
export const PAGE_FRAME_BYTES = 54;
/** Bytes per swap slot: swap_map 4, contents map 1 (bytes mode) or 8 (fingerprint). */
const SWAP_SLOT_BYTES = 12;

export class ConfigError extends Error {}

/** Split `a=1,b=2` and repeated settings into single `name=value` strings. */
export function flatSettings(settings: readonly string[]): string[] {
  return settings.flatMap((s) => s.split(',').filter((x) => x.length > 0));
}

/** Apply the settings to `cfg` (default: the mainline default config); throws ConfigError naming the bound. */
export function parseConfig(settings: readonly string[], cfg: KernelConfig = defaultConfig()): KernelConfig {
  for (const one of flatSettings(settings)) {
    const err = applyConfigSetting(cfg, one);
    if (err !== null) throw new ConfigError(err);
  }
  const err = configBoundsError(cfg);
  if (err !== null) throw new ConfigError(err);
  return cfg;
}

/** Host memory one machine of `cfg` needs for its bookkeeping (not page contents, which are committed as written). */
export function machineBytes(cfg: KernelConfig): number {
  const ramPages = cfg.ramBytes / 4096;
  const frames = ramPages + Math.min(ramPages, DEVICE_PFN_RESERVE) + 1024;
  return frames * PAGE_FRAME_BYTES + (cfg.swapMiB * 256) * SWAP_SLOT_BYTES;
}

/**
 * The host bound: `machines` machines of `cfg` at once (one per worker
 * thread) must fit in half of the host's memory. Returns an error naming
 * the bound, or null.
 */
export function hostBoundsError(cfg: KernelConfig, machines: number, totalmem = os.totalmem()): string | null {
  const need = machineBytes(cfg) * machines;
  const limit = totalmem / 2;
  if (need <= limit) return null;
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  const maxRamMiB = Math.floor(limit / machines / PAGE_FRAME_BYTES / 2 / 256 / 2) * 2;
  return `config ramMiB=${cfg.ramBytes / 2 ** 20} swapMiB=${cfg.swapMiB}: ${machines} machine(s) need ${gib(need)} GiB of struct page and swap maps (${PAGE_FRAME_BYTES} bytes per 4 KiB page frame), above the bound of half this host's memory (${gib(limit)} GiB of ${gib(totalmem)} GiB); at most about ramMiB=${maxRamMiB} per machine${machines > 1 ? ', or fewer --jobs' : ''}`;
}

/** A command that reads page bytes back cannot run in fingerprint mode: the refusal, or null. */
export function contentModeError(cfg: KernelConfig, command: string, why: string): string | null {
  if (cfg.contentMode !== 'fingerprint') return null;
  return `config contentMode=fingerprint: '${command}' cannot run in fingerprint mode (${why}; fingerprint mode keeps no bytes and refuses such reads); use contentMode=bytes`;
}
