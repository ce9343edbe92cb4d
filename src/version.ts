// SPDX-License-Identifier: GPL-2.0-only
/** The package version (semver), read from package.json next to dist/. */
import { readFileSync } from 'node:fs';

/** hmmsim's version, as in package.json (`hmmsim --version`). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
