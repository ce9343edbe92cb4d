// SPDX-License-Identifier: GPL-2.0-only
/**
 * Hardware profiles on disk: profiles/<name>.json (schema:
 * profiles/profile.schema.json). Loading and validation for the tools.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type HwProfile, validateProfile } from '../kernel/cost/profile.js';

/** The profiles/ directory of the package (dist/src/model -> ../../../profiles). */
export function profilesDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../../../profiles', '../../profiles']) {
    const d = resolve(here, up);
    if (existsSync(d)) return d;
  }
  return resolve(here, '../../../profiles');
}

/** Names of the shipped profiles. */
export function listProfiles(): string[] {
  return readdirSync(profilesDir())
    .filter((f) => f.endsWith('.json') && !f.endsWith('.schema.json'))
    .map((f) => f.slice(0, -5))
    .sort();
}

/** Load a profile by name (profiles/<name>.json) or by path. Throws an Error with a specific message on a bad file. */
export function loadProfile(nameOrPath: string): HwProfile {
  const path = nameOrPath.endsWith('.json') ? nameOrPath : join(profilesDir(), `${nameOrPath}.json`);
  if (!existsSync(path)) throw new Error(`unknown profile '${nameOrPath}' (shipped: ${listProfiles().join(', ')})`);
  let x: unknown;
  try {
    x = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`profile ${path}: not JSON: ${(e as Error).message}`);
  }
  const errs = validateProfile(x);
  if (errs.length) throw new Error(`profile ${path} is invalid:\n  ${errs.join('\n  ')}`);
  return x as HwProfile;
}
