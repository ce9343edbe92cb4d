// SPDX-License-Identifier: GPL-2.0-only
/**
 * Citations a reader can follow: src/, scenarios/ and test/ cite upstream
 * commits (id and/or subject) and kernel file:function, never a document
 * that is not in the repository (the seed files and their line numbers, a
 * "spec" section, an "open question", the reference inventory).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sourceFiles } from './source_files.js';
import { join, relative } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/** Patterns of references to documents outside the repository. */
export const BANNED_CITATIONS: ReadonlyArray<RegExp> = Object.freeze([
  /\bseed\s+(F\d|\d{3}|inventory)/i, /* "seed F3:...", "seed 003...", "seed inventory section 3" */
  /\bF\d:\d+/, /* "F3:7760-7816" */
  /\bspec(\s+sections?)?\s+\d/i, /* "spec 3.4", "spec section 2" */
  /\bopen question\s+\d/i,
  /seed-inventory|architecture-sketch|hmm-tests-catalog|\/work\/shared\//,
]);

function sources(dir: string): string[] {
  return sourceFiles(dir, 'code');
}

export function bannedCitations(file: string, text: string): string[] {
  const out: string[] = [];
  text.split('\n').forEach((line, i) => {
    for (const re of BANNED_CITATIONS) if (re.test(line)) out.push(`${file}:${i + 1}: ${line.trim()}`);
  });
  return out;
}

test('the citation patterns catch what they must and spare kernel references', () => {
  assert.equal(bannedCitations('x', '(seed F3:7760-7816)').length, 2);
  assert.equal(bannedCitations('x', 'see spec section 2').length, 1);
  assert.equal(bannedCitations('x', '(spec open question 9)').length, 1);
  assert.equal(bannedCitations('x', "seedRef: 'seed 003_2df7.txt'").length, 1);
  assert.deepEqual(bannedCitations('x', '16ce101db85d "mm/memory.c: fix race"; mm/memory.c:do_swap_page()'), []);
  assert.deepEqual(bannedCitations('x', 'explore(sc, { seed: 3 }); --seed 42; the seed of the generator'), []);
});

test('src, scenarios and test cite only what a reader can find', () => {
  const found: string[] = [];
  for (const dir of ['src', 'scenarios', 'test']) {
    for (const f of sources(join(ROOT, dir))) {
      if (f.endsWith('citations.test.ts')) continue;
      found.push(...bannedCitations(relative(ROOT, f), readFileSync(f, 'utf8')));
    }
  }
  assert.deepEqual(found, [], `citations of documents not in the repository:\n${found.join('\n')}`);
});
