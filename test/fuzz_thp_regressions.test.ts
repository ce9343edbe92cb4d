// SPDX-License-Identifier: GPL-2.0-only
/**
 * The two sequences the THP-always fuzz campaign (base 1000000)
 * (246,540 operations) reported as violations, replayed exactly as shrunk.
 * Both are kernel behaviour, now known findings (src/fuzz/findings.ts):
 *
 * - migrate-coherent-thp-selected-as-system: mm/migrate_device.c
 *   migrate_vma_collect_huge_pmd() selects a PMD-mapped device-coherent THP
 *   under MIGRATE_VMA_SELECT_SYSTEM alone; lib/test_hmm.c
 *   dmirror_migrate_alloc_and_copy() WARNs "page already in device" and
 *   migrate_vma_finalize() restores the PMD (docs/FINDINGS.md
 *   #migrate-coherent-thp-selected-as-system).
 * - migrate-split-fork-shared-thp: a THP PMD-mapped in two mms whose
 *   migration falls back to small device pages; the split leaves the other
 *   mm's PMD migration entry and remove_migration_pte() BUGs on it (before
 *   h/triage 15e7d80 the model left that entry: HANG in
 *   pmd_migration_entry_wait) (docs/FINDINGS.md#migrate-split-fork-shared-thp).
 *
 * `violation === null` also means the final sweep (CPU and device reads of
 * every mapping against the shadow) found every byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { replay, type Op, type RunConfig } from '../src/fuzz/index.js';

const ALWAYS: RunConfig = { settings: [], devices: ['private', 'coherent'], thp: 'always' };

/** /tmp/camp/v0.json: open dmirror3, RELEASE, mmap 2 MiB anon at H, MIGRATE_TO_DEV twice. */
const V0: Op[] = [
  { o: 'open', p: 0, d: 3 },
  { o: 'dm', p: 0, f: 0, c: 'RELEASE', v: 1, r: 'A', a: 0, n: 1, s: true },
  { o: 'mmap', p: 0, kind: 'anon', prot: 3, r: 'H', a: 0, n: 1, s: true },
  { o: 'dm', p: 0, f: 0, c: 'MIGRATE_TO_DEV', v: 1, r: 'A', a: 0, n: 1, s: true },
  { o: 'dm', p: 0, f: 0, c: 'MIGRATE_TO_DEV', v: 1, r: 'A', a: 0, n: 1, s: true },
];

/**
 * /tmp/camp/v1.json: a shared hugetlb mapping at H (pinned) that the anon
 * mmap then replaces (it only puts the anon mapping on a PMD boundary),
 * fork, open dmirror3, writes in parent and child, fork, MIGRATE_TO_DEV.
 */
const V1: Op[] = [
  { o: 'mmap', p: 0, kind: 'hugeS', prot: 3, r: 'A', a: 0, n: 1, s: true },
  { o: 'pin', p: 0, w: true, fast: false, r: 'T', a: 0, n: 1, s: true },
  { o: 'mmap', p: 0, kind: 'anon', prot: 3, r: 'A', a: 0, n: 1, s: true },
  { o: 'fork', p: 0 },
  { o: 'open', p: 0, d: 3 },
  { o: 'write', p: 0, r: 'A', a: 0, s: true, off: 0, len: 1, v: 1 },
  { o: 'write', p: 1, r: 'A', a: 0, s: false, off: 0, len: 1, v: 1 },
  { o: 'fork', p: 0 },
  { o: 'dm', p: 0, f: 0, c: 'MIGRATE_TO_DEV', v: 1, r: 'A', a: 0, n: 1, s: true },
];

test('fuzz v0: a second MIGRATE_TO_DEV of a device-coherent THP is the known finding, not a violation', () => {
  const r = replay(ALWAYS, V0);
  assert.equal(r.violation, null, r.violation?.message);
  assert.deepEqual(r.findings, [{ id: 'migrate-coherent-thp-selected-as-system', rule: 'page already in device spage pfn: 0x20200', opIndex: 4 }]);
  assert.equal(r.bytesLost, 0);
});

test('fuzz v0: migrate_vma_finalize() restored the coherent THP: a third MIGRATE_TO_DEV collects it again', () => {
  const r = replay(ALWAYS, [...V0, V0[4]]);
  assert.equal(r.violation, null, r.violation?.message);
  assert.deepEqual(r.findings.map((f) => [f.id, f.opIndex]), [
    ['migrate-coherent-thp-selected-as-system', 4],
    ['migrate-coherent-thp-selected-as-system', 5],
  ]);
});

test('fuzz v0: one MIGRATE_TO_DEV of the hole (a coherent THP appears) is not a finding', () => {
  const r = replay(ALWAYS, V0.slice(0, 4));
  assert.equal(r.violation, null, r.violation?.message);
  assert.deepEqual(r.findings, []);
});

test('fuzz v1: MIGRATE_TO_DEV splitting a fork-shared THP is the known finding, not a HANG', () => {
  const r = replay(ALWAYS, V1);
  assert.equal(r.violation, null, r.violation?.message);
  assert.deepEqual(r.findings, [{ id: 'migrate-split-fork-shared-thp', rule: 'remove_migration_pte: PMD migration entry over an order-0 folio', opIndex: 8 }]);
});

test('fuzz v1: without THP nothing is found; without the second fork the same fallback splits the THP cleanly', () => {
  const never = replay({ ...ALWAYS, thp: 'never' }, V1);
  assert.equal(never.violation, null, never.violation?.message);
  assert.deepEqual(never.findings, []);
  // Only the parent maps the THP: the order-9 coherent allocation still
  // fails (the second chunk, a known finding of its own) and the small-page
  // fallback splits the folio, but no other mm holds a PMD migration entry.
  const noShare = replay(ALWAYS, [...V1.slice(0, 7), V1[8]]);
  assert.equal(noShare.violation, null, noShare.violation?.message);
  assert.deepEqual(noShare.findings, [{ id: 'dmirror-coherent-second-chunk', rule: 'Conflicting mapping in same section', opIndex: 7 }]);
});
