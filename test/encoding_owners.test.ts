// SPDX-License-Identifier: GPL-2.0-only
/**
 * One owner per encoding (checked here, over src, scenarios, test and
 * examples):
 * - the migrate pfn entry format (MIGRATE_PFN_*, `pfn * 64 + flags`) is
 *   built, read and changed only through src/kernel/mm/migrate_pfn.ts
 *   (migratePfn, mpfnMake, migratePfnToPage, mpfnHas, mpfnSet, mpfnClear,
 *   mpfnFlags, mpfnPfn, mpfnOrder), as include/linux/migrate.h owns it.
 *   Flag constants may be combined with `|` (they are small integers); an
 *   entry is never changed with `+`, `-`, `%`, `/`, shifts or `&`.
 * - page-table entry types (`f & TYPE_MASK`) are decoded and built only in
 *   src/kernel/mm/pgtable.ts: everything else calls pteType(), pteMkType()
 *   and the predicates named after the kernel's (pteNone, ptePresent,
 *   isSwapPte, isMigrationEntry, isDevicePrivateEntry,
 *   isDeviceExclusiveEntry, pmdNone, pmdTransHuge, pmdIsTable, ...).
 *   No other module even names TYPE_MASK.
 * - PMD / PUD span arithmetic (ALIGN_DOWN(addr, PMD_SIZE), IS_ALIGNED(),
 *   pmd_addr_end(), the page index in a PMD) is pmdAlignDown / pmdAlignUp /
 *   pmdAligned / pmdSpanEnd / pmdAddrEnd / pudAddrEnd / pgdAddrEnd /
 *   pteIndex / pmdIndex in pgtable.ts. (hugetlb's hstate alignment,
 *   huge_page_size() = HPAGE_SIZE, is hugetlb.ts's own and not this rule.)
 * Comment lines (quoting kernel code) are not checked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sourceFiles } from './source_files.js';
import { join, relative } from 'node:path';
import { MIGRATE_PFN_COMPOUND, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_VALID, MIGRATE_PFN_WRITE, migratePfn, migratePfnToPage, mpfnClear, mpfnFlags, mpfnHas, mpfnMake, mpfnOrder, mpfnPfn, mpfnSet } from '../src/kernel/mm/migrate_pfn.js';
import { PMD_SIZE, PUD_SIZE } from '../src/kernel/mm/page.js';
import {
  T_DEVICE_EXCLUSIVE, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_HWPOISON, T_MIGRATION_READ, T_MIGRATION_READ_EXCLUSIVE,
  T_MIGRATION_WRITE, T_NONE, T_PRESENT, T_SWAP, T_TABLE, _PAGE_DIRTY, _PAGE_RW, isDeviceExclusiveEntry, isDevicePrivateEntry,
  isHwpoisonEntry, isMigrationEntry, isPfnSwapEntry, isPmdDevicePrivateEntry, isPmdMigrationEntry, isSwapPmd, isSwapPte,
  isSwapSlotEntry, isWritableDevicePrivateEntry, isWritableMigrationEntry, pgdAddrEnd, pmdAddrEnd, pmdAlignDown, pmdAlignUp,
  pmdAligned, pmdIsTable, pmdNone, pmdPresent, pmdSpanEnd, pmdTransHuge, pteIndex, pteMkType, pteNone, ptePresent, pteType,
  pudAddrEnd, pudAlignDown,
} from '../src/kernel/mm/pgtable.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DIRS = ['src', 'scenarios', 'test', 'examples'];
const SELF = 'test/encoding_owners.test.ts';

/* Migrate pfn arithmetic by hand (owner: src/kernel/mm/migrate_pfn.ts). */
const MPFN_BY_HAND: ReadonlyArray<RegExp> = Object.freeze([
  /migratePfn\([^)]*\)\s*[-+|]/, /* migratePfn(p) + FLAG */
  /[-+|]=\s*(MIGRATE_PFN_|migratePfn\()/, /* e += MIGRATE_PFN_WRITE, dst[i] += migratePfn(p) */
  /MIGRATE_PFN_[A-Z]+\s*[-+]|[-+]\s*MIGRATE_PFN_/, /* MIGRATE_PFN_MIGRATE + MIGRATE_PFN_COMPOUND, v - MIGRATE_PFN_WRITE */
  /&\s*~?\s*\(?\s*MIGRATE_PFN_/, /* src[i] & MIGRATE_PFN_WRITE: mpfnHas / mpfnClear */
  /(<<|>>>?|\*\*)\s*MIGRATE_PFN_SHIFT/, /* pfn << MIGRATE_PFN_SHIFT */
  /(src|dst|mpfn|\bsv|\bdv)\S*\s*[%/*]\s*64\b/, /* src[i] % 64, sv / 64 */
]);

/* Entry types by hand (owner: src/kernel/mm/pgtable.ts). */
const TYPE_BY_HAND: ReadonlyArray<RegExp> = Object.freeze([
  /\bTYPE_MASK\b/, /* f & TYPE_MASK, f & ~TYPE_MASK, or importing it at all */
  /(\.f\[[^\]]*\]|\bf)\s*&\s*(0xf|15)\b/, /* pt.f[i] & 0xf */
]);

/* PMD / PUD span arithmetic by hand (owner: src/kernel/mm/pgtable.ts). */
const SPAN = String.raw`(HPAGE_PMD_SIZE|PMD_SIZE|PUD_SIZE|PGDIR_SIZE|PMD_SPAN|PUD_SPAN|PGD_SPAN|HPAGE|HP|PMD|TWOMEG|HPAGE_PMD_NR\s*\*\s*(4096|PAGE_SIZE|PAGE|PG))`;
const SPAN_BY_HAND: ReadonlyArray<RegExp> = Object.freeze([
  new RegExp(String.raw`%\s*\(?\s*${SPAN}\b`), /* addr - addr % PMD_SIZE, addr % PMD_SIZE === 0 */
  new RegExp(String.raw`&\s*~?\s*\(?\s*${SPAN}\s*-\s*1\b`), /* addr & ~(PMD_SIZE - 1) */
  /\b(PMD|PUD|PGDIR)_MASK\b/,
  new RegExp(String.raw`Math\.(floor|ceil|round|trunc)\([^()]*\/\s*${SPAN}\)\s*\*`), /* Math.ceil(a / PMD_SIZE) * PMD_SIZE */
  new RegExp(String.raw`Math\.min\([^)]*\+\s*${SPAN}\b`), /* Math.min(end, start + PMD_SIZE): pmd_addr_end */
  new RegExp(String.raw`\/\s*${SPAN}\)\s*%\s*(512|PTRS_PER_TABLE)\b`), /* Math.floor(a / PMD_SIZE) % 512: pmdIndex */
  /&\s*\(\s*HPAGE_PMD_NR\s*-\s*1\s*\)/, /* (addr >>> 12) & (HPAGE_PMD_NR - 1): pteIndex */
]);

function sources(dir: string): string[] {
  return sourceFiles(dir, 'code');
}

/** Code lines matching any of `rules` in every checked file but the owners (comment lines skipped). */
function byHand(rules: ReadonlyArray<RegExp>, owners: ReadonlySet<string>): string[] {
  const found: string[] = [];
  for (const dir of DIRS) {
    for (const f of sources(join(ROOT, dir))) {
      const rel = relative(ROOT, f);
      if (owners.has(rel)) continue;
      readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
        const code = line.trim();
        if (code.startsWith('*') || code.startsWith('//') || code.startsWith('/*')) return;
        if (rules.some((re) => re.test(code))) found.push(`${rel}:${i + 1}: ${code}`);
      });
    }
  }
  return found;
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

test('the entry predicates agree with pteType() for every type', () => {
  const all = [T_NONE, T_PRESENT, T_SWAP, T_MIGRATION_READ, T_MIGRATION_READ_EXCLUSIVE, T_MIGRATION_WRITE, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_DEVICE_EXCLUSIVE, T_HWPOISON, T_TABLE];
  const mig = [T_MIGRATION_READ, T_MIGRATION_READ_EXCLUSIVE, T_MIGRATION_WRITE];
  const dev = [T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE];
  for (const t of all) {
    for (const bits of [0, _PAGE_RW | _PAGE_DIRTY]) {
      const f = t | bits;
      assert.equal(pteType(f), t);
      assert.equal(pteMkType(f, T_SWAP), T_SWAP | bits, 'pteMkType keeps the bits');
      assert.equal(pteNone(f), t === T_NONE);
      assert.equal(pmdNone(f), t === T_NONE);
      assert.equal(ptePresent(f), t === T_PRESENT);
      assert.equal(pmdTransHuge(f), t === T_PRESENT);
      assert.equal(pmdIsTable(f), t === T_TABLE);
      assert.equal(pmdPresent(f), t === T_PRESENT || t === T_TABLE);
      assert.equal(isSwapPte(f), t !== T_NONE && t !== T_PRESENT);
      assert.equal(isSwapPmd(f), t !== T_NONE && t !== T_PRESENT && t !== T_TABLE);
      assert.equal(isSwapSlotEntry(f), t === T_SWAP);
      assert.equal(isMigrationEntry(f), mig.includes(t));
      assert.equal(isPmdMigrationEntry(f), mig.includes(t));
      assert.equal(isWritableMigrationEntry(f), t === T_MIGRATION_WRITE);
      assert.equal(isDevicePrivateEntry(f), dev.includes(t));
      assert.equal(isPmdDevicePrivateEntry(f), dev.includes(t));
      assert.equal(isWritableDevicePrivateEntry(f), t === T_DEVICE_PRIVATE_WRITE);
      assert.equal(isDeviceExclusiveEntry(f), t === T_DEVICE_EXCLUSIVE);
      assert.equal(isHwpoisonEntry(f), t === T_HWPOISON);
      assert.equal(isPfnSwapEntry(f), mig.includes(t) || dev.includes(t) || t === T_DEVICE_EXCLUSIVE || t === T_HWPOISON);
    }
  }
});

test('the span helpers are ALIGN_DOWN / ALIGN / IS_ALIGNED / pmd_addr_end, also above 2^32', () => {
  for (const base of [0, 7 * PMD_SIZE, 2 ** 40, 2 ** 47 - PUD_SIZE]) {
    assert.equal(pmdAlignDown(base + 4096), base);
    assert.equal(pmdAlignDown(base), base);
    assert.equal(pmdAlignUp(base), base);
    assert.equal(pmdAlignUp(base + 1), base + PMD_SIZE);
    assert.ok(pmdAligned(base) && !pmdAligned(base + 4096));
    assert.equal(pmdSpanEnd(base), base + PMD_SIZE);
    assert.equal(pmdSpanEnd(base + PMD_SIZE - 4096), base + PMD_SIZE);
    assert.equal(pmdAddrEnd(base + 4096, base + 8192), base + 8192);
    assert.equal(pmdAddrEnd(base + 4096, base + 3 * PMD_SIZE), base + PMD_SIZE);
    assert.equal(pteIndex(base + 5 * 4096), 5);
    assert.equal(pteIndex(base + PMD_SIZE - 4096), 511);
  }
  assert.equal(pudAlignDown(PUD_SIZE + PMD_SIZE), PUD_SIZE);
  assert.equal(pudAddrEnd(PMD_SIZE, 4 * PUD_SIZE), PUD_SIZE);
  assert.equal(pgdAddrEnd(PMD_SIZE, 2 ** 47), 512 * PUD_SIZE);
});

test('the by-hand patterns catch what they are meant to (and not their replacements)', () => {
  const hits = (rules: ReadonlyArray<RegExp>, line: string): boolean => rules.some((re) => re.test(line));
  for (const bad of ['const t = pt.f[i] & TYPE_MASK;', 'f = (f & ~TYPE_MASK) | T_SWAP;', 'if ((pt.f[i] & 0xf) === 1) x();']) assert.ok(hits(TYPE_BY_HAND, bad), bad);
  for (const ok of ['const t = pteType(pt.f[i]);', 'if (ptePresent(f) && (f & _PAGE_RW)) x();']) assert.ok(!hits(TYPE_BY_HAND, ok), ok);
  for (const bad of [
    'const haddr = addr - (addr % HPAGE_PMD_SIZE);', 'const next = Math.min(end, ps + PMD_SIZE);', 'if (addr % PMD_SIZE !== 0) x();',
    'const a = Math.ceil(raw / PMD) * PMD;', 'const b = addr & ~(PMD_SIZE - 1);', 'const i = Math.floor(a / HPAGE) % 512;',
    'return v + ((addr >>> 12) & (HPAGE_PMD_NR - 1));', 'if (addr % (HPAGE_PMD_NR * 4096) === 0) x();',
  ]) assert.ok(hits(SPAN_BY_HAND, bad), bad);
  for (const ok of ['const next = pmdAddrEnd(addr, end);', 'if (next - addr === PMD_SIZE) x();', 'const raw = mmap(0, len + PMD_SIZE);', 'if (j % 2 === 0) x();']) assert.ok(!hits(SPAN_BY_HAND, ok), ok);
  for (const bad of [
    'src[i] = migratePfn(p) + MIGRATE_PFN_MIGRATE;', 'dst[i] += migratePfn(dpage);', 'emit(w, MIGRATE_PFN_MIGRATE + MIGRATE_PFN_COMPOUND);',
    'if (src[i] & MIGRATE_PFN_WRITE) x();', 'const v = pfn << MIGRATE_PFN_SHIFT;', 'const f = src[i] % 64;',
  ]) assert.ok(hits(MPFN_BY_HAND, bad), bad);
  for (const ok of ['emit(w, MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);', 'dst[i] = mpfnMake(p, MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE);']) assert.ok(!hits(MPFN_BY_HAND, ok), ok);
});

test('no entry-type arithmetic outside pgtable.ts (pteType(), pteMkType() and the predicates)', () => {
  const found = byHand(TYPE_BY_HAND, new Set(['src/kernel/mm/pgtable.ts', SELF]));
  assert.deepEqual(found, [], `entry type decoded or built by hand (use pgtable.ts):\n${found.join('\n')}`);
});

test('no PMD/PUD span arithmetic outside pgtable.ts (pmdAlignDown/Up, pmdAligned, pmdAddrEnd, pudAddrEnd, pteIndex)', () => {
  const found = byHand(SPAN_BY_HAND, new Set(['src/kernel/mm/pgtable.ts', SELF]));
  assert.deepEqual(found, [], `PMD/PUD span arithmetic by hand (use pgtable.ts):\n${found.join('\n')}`);
});

test('no migrate pfn arithmetic outside migrate_pfn.ts', () => {
  const found = byHand(MPFN_BY_HAND, new Set(['src/kernel/mm/migrate_pfn.ts', SELF]));
  assert.deepEqual(found, [], `MIGRATE_PFN arithmetic by hand (use src/kernel/mm/migrate_pfn.ts):\n${found.join('\n')}`);
});
