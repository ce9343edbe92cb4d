// SPDX-License-Identifier: GPL-2.0-only
/**
 * The files under a source directory, recursively, for the tests that read
 * the tree as text or parse it (citations, encoding owners, lock idiom,
 * module state). `ts`: TypeScript sources only (no .d.ts); `code`: also
 * .mjs / .js (examples, bin).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function sourceFiles(dir: string, kind: 'ts' | 'code'): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p, kind));
    else if (kind === 'code' ? /\.(ts|mjs|js)$/.test(p) : p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}
