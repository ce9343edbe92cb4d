// SPDX-License-Identifier: GPL-2.0-only
/**
 * Entry updates that keep table accounting right (set_pte_at, pte_clear,
 * ptep_get_and_clear, set_pmd_at, pmdp_huge_get_and_clear). The caller
 * holds the table's lock (PteTable.ptl or PmdTable.lock).
 */
import {
  type PmdTable, type PteTable, T_NONE, T_PRESENT, T_TABLE, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_RW, _PAGE_SOFT_DIRTY,
  _PAGE_UFFD_WP, pteNone, pmdNone, pmdIsTable,
} from './pgtable.js';

const PAGE_SIZE = 4096;
const PMD_SIZE = 512 * PAGE_SIZE;

/*
 * Every change of a page-table entry goes through these helpers (the x86
 * walker's accessed/dirty updates in arch/fault.ts excepted: they only add
 * bits). `fn` names the kernel function making the change. In checked mode
 * the owning mm's check (pgd.check, mmu_notifier.ts mmuNotifierCheckEntry)
 * verifies that a change a secondary MMU must hear about happens inside an
 * active mmu_notifier_invalidate_range_start() range; otherwise the cost is
 * one load and one predictable branch.
 */

/** set_pte_at(): install (v, f) at slot i. */
export function setPte(pt: PteTable, i: number, v: number, f: number, fn: string): void {
  const check = pt.pgd.check;
  if (check !== null) check(pt.base + i * PAGE_SIZE, PAGE_SIZE, pt.v[i], pt.f[i], v, f, fn);
  const wasNone = pteNone(pt.f[i]);
  const isNone = pteNone(f);
  if (wasNone && !isNone) pt.used++;
  else if (!wasNone && isNone) pt.used--;
  pt.v[i] = v;
  pt.f[i] = f;
}

/** A change of the bits of the entry at slot i, same pfn or slot (ptep_modify_prot_commit(), ptep_set_wrprotect(), ...). */
export function setPteFlags(pt: PteTable, i: number, f: number, fn: string): void {
  setPte(pt, i, pt.v[i], f, fn);
}

/** pte_clear() */
export function clearPte(pt: PteTable, i: number, fn: string): void {
  const check = pt.pgd.check;
  if (check !== null) check(pt.base + i * PAGE_SIZE, PAGE_SIZE, pt.v[i], pt.f[i], 0, 0, fn);
  if (!pteNone(pt.f[i])) pt.used--;
  pt.v[i] = 0;
  pt.f[i] = 0;
}

/** set_pmd_at() for a leaf entry (not a table pointer). */
export function setPmdLeaf(pmd: PmdTable, i: number, v: number, f: number, fn: string): void {
  const check = pmd.pgd.check;
  if (check !== null) check(pmd.base + i * PMD_SIZE, PMD_SIZE, pmd.v[i], pmdOldFlags(pmd, i), v, f, fn);
  const wasNone = pmdNone(pmd.f[i]);
  const isNone = pmdNone(f);
  if (wasNone && !isNone) pmd.used++;
  else if (!wasNone && isNone) pmd.used--;
  pmd.v[i] = v;
  pmd.f[i] = f;
  pmd.pte[i] = null;
}

/** A change of the bits of the PMD leaf at slot i, same pfn (pmdp_set_wrprotect(), set_pmd_at() of a modified pmd). */
export function setPmdFlags(pmd: PmdTable, i: number, f: number, fn: string): void {
  setPmdLeaf(pmd, i, pmd.v[i], f, fn);
}

/** pmd_clear() of a leaf. */
export function clearPmd(pmd: PmdTable, i: number, fn: string): void {
  const check = pmd.pgd.check;
  if (check !== null) check(pmd.base + i * PMD_SIZE, PMD_SIZE, pmd.v[i], pmdOldFlags(pmd, i), 0, 0, fn);
  if (!pmdNone(pmd.f[i])) pmd.used--;
  pmd.v[i] = 0;
  pmd.f[i] = 0;
  pmd.pte[i] = null;
}

/**
 * pmd_populate(): point PMD slot i, a leaf or none, at the PTE table pt
 * (the end of __split_huge_pmd_locked(), or the undo of a failed collapse).
 */
export function pmdPopulate(pmd: PmdTable, i: number, pt: PteTable, fn: string): void {
  const check = pmd.pgd.check;
  if (check !== null) check(pmd.base + i * PMD_SIZE, PMD_SIZE, pmd.v[i], pmd.f[i], 0, T_TABLE, fn);
  if (pmdNone(pmd.f[i])) pmd.used++;
  pmd.pte[i] = pt;
  pmd.v[i] = 0;
  pmd.f[i] = T_TABLE;
}

/**
 * For the check: a PMD pointing to a PTE table that still maps something is
 * reported as T_TABLE (its replacement unmaps those PTEs, as khugepaged's
 * collapse does); an empty table as none (free_pgtables(): nothing mapped).
 */
function pmdOldFlags(pmd: PmdTable, i: number): number {
  const f = pmd.f[i];
  if (!pmdIsTable(f)) return f;
  const pt = pmd.pte[i];
  return pt !== null && pt.used > 0 ? f : T_NONE;
}

/** pte_write() */
export function isWrite(f: number): boolean {
  return (f & _PAGE_RW) !== 0;
}

/** mk_pte() bits for a present entry: young, plus write/dirty as asked. */
export function mkPresent(write: boolean, dirty: boolean): number {
  return T_PRESENT | _PAGE_ACCESSED | (write ? _PAGE_RW : 0) | (dirty ? _PAGE_DIRTY : 0);
}

/** The soft-dirty and uffd-wp bits, which every entry conversion carries over. */
export function carryBits(f: number): number {
  return f & (_PAGE_SOFT_DIRTY | _PAGE_UFFD_WP);
}
