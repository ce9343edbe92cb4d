// SPDX-License-Identifier: GPL-2.0-only
/**
 * One owner per encoding: the migrate pfn entry format (MIGRATE_PFN_*,
 * `pfn * 64 + flags`) is read and changed only through
 * src/kernel/mm/migrate_pfn.ts (migratePfn, migratePfnToPage, mpfnHas,
 * mpfnSet, mpfnClear, mpfnFlags, mpfnPfn, mpfnMake, mpfnOrder). Drivers,
 * tools, scenarios, examples and tests never do the arithmetic by hand.
 * (src/kernel/mm/migrate_device.ts, the kernel's own migrate code, builds
 * entries from migratePfn() and constant flags as migrate_device.c does.)
 * Likewise the end of a PMD / PUD span is pmdAddrEnd() / pudAddrEnd()
 * (pmd_addr_end) from src/kernel/mm/pgtable.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { MIGRATE_PFN_COMPOUND, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_VALID, MIGRATE_PFN_WRITE, migratePfn, migratePfnToPage, mpfnClear, mpfnFlags, mpfnHas, mpfnMake, mpfnOrder, mpfnPfn, mpfnSet } from '../src/kernel/mm/migrate_pfn.js';

const ROOT = join(import.meta.dirname, '..', '..');
const OWNERS = new Set(['src/kernel/mm/migrate_pfn.ts', 'src/kernel/mm/migrate_device.ts', 'test/encoding_owners.test.ts']);

const HAND_WRITTEN: ReadonlyArray<RegExp> = Object.freeze([
  /migratePfn\([^)]*\)\s*[+|]/, /* migratePfn(p) + FLAG */
  /[+|-]=\s*MIGRATE_PFN_/, /* e += MIGRATE_PFN_WRITE */
  /(src|dst|mpfn|\bsv|\bdv)\S*\s*[%/]\s*64\b/, /* src[i] % 64, sv / 64 */
]);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (/\.(ts|mjs)$/.test(p)) out.push(p);
  }
  return out;
}

test('the migrate pfn helpers round-trip full-width entries', () => {
  for (const pfn of [0, 1, 0x1ffffff, 0x2000000, 2 ** 40 + 3]) {
    const v = mpfnSet(mpfnSet(migratePfn(pfn), MIGRATE_PFN_MIGRATE), MIGRATE_PFN_WRITE);
    assert.equal(migratePfnToPage(v), pfn);
    assert.equal(mpfnPfn(v), pfn);
    assert.equal(mpfnFlags(v), MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE);
    assert.equal(mpfnSet(v, MIGRATE_PFN_WRITE), v, 'setting a set flag changes nothing');
    assert.equal(mpfnHas(mpfnClear(v, MIGRATE_PFN_WRITE | MIGRATE_PFN_MIGRATE), MIGRATE_PFN_MIGRATE), false);
    assert.equal(mpfnPfn(mpfnClear(v, MIGRATE_PFN_WRITE)), pfn);
    assert.equal(mpfnMake(pfn, mpfnFlags(v)), v);
    assert.equal(mpfnOrder(mpfnSet(v, MIGRATE_PFN_COMPOUND)), 9);
    assert.equal(mpfnOrder(v), 0);
  }
  assert.equal(migratePfnToPage(MIGRATE_PFN_MIGRATE), -1, 'a hole has no page');
});

test('PMD/PUD boundary arithmetic only in the pgtable owner (pmdAddrEnd / pudAddrEnd)', () => {
  const BOUNDARY = /%\s*(PMD_SIZE|PUD_SIZE|PMD_SPAN|HPAGE_PMD_SIZE)\)?\s*\+\s*(PMD_SIZE|PUD_SIZE|PMD_SPAN|HPAGE_PMD_SIZE)\b/;
  const found: string[] = [];
  for (const dir of ['src', 'scenarios', 'test', 'examples']) {
    for (const f of sources(join(ROOT, dir))) {
      const rel = relative(ROOT, f);
      if (rel === 'src/kernel/mm/pgtable.ts' || rel === 'test/encoding_owners.test.ts') continue;
      readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
        if (BOUNDARY.test(line)) found.push(`${rel}:${i + 1}: ${line.trim()}`);
      });
    }
  }
  assert.deepEqual(found, [], `pmd_addr_end arithmetic by hand (use pmdAddrEnd/pudAddrEnd from pgtable.ts):\n${found.join('\n')}`);
});

test('no `& TYPE_MASK` in drivers, user space, tools or scenarios (pteType() from pgtable.ts)', () => {
  /* The mm core (src/kernel) and the tests still decode types inline; the layers above do not. */
  const found: string[] = [];
  for (const dir of ['src', 'scenarios', 'examples']) {
    for (const f of sources(join(ROOT, dir))) {
      const rel = relative(ROOT, f);
      if (rel.startsWith('src/kernel/')) continue;
      readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
        if (/&\s*TYPE_MASK\b/.test(line)) found.push(`${rel}:${i + 1}: ${line.trim()}`);
      });
    }
  }
  assert.deepEqual(found, [], `entry type decoded by hand (use pteType()):\n${found.join('\n')}`);
});

test('no hand-written migrate pfn arithmetic outside its owner', () => {
  const found: string[] = [];
  for (const dir of ['src', 'scenarios', 'test', 'examples']) {
    for (const f of sources(join(ROOT, dir))) {
      const rel = relative(ROOT, f);
      if (OWNERS.has(rel)) continue;
      readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
        if (HAND_WRITTEN.some((re) => re.test(line))) found.push(`${rel}:${i + 1}: ${line.trim()}`);
      });
    }
  }
  assert.deepEqual(found, [], `MIGRATE_PFN arithmetic by hand (use src/kernel/mm/migrate_pfn.ts):\n${found.join('\n')}`);
});
