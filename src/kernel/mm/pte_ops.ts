// SPDX-License-Identifier: GPL-2.0-only
/**
 * Entry updates that keep table accounting right (set_pte_at, pte_clear,
 * ptep_get_and_clear, set_pmd_at, pmdp_huge_get_and_clear). The caller
 * holds the table's lock (PteTable.ptl or PmdTable.lock).
 */
import {
  type PmdTable, type PteTable, TYPE_MASK, T_NONE, T_PRESENT, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_RW,
  _PAGE_SOFT_DIRTY, _PAGE_UFFD_WP,
} from './pgtable.js';

/** set_pte_at(): install (v, f) at slot i. */
export function setPte(pt: PteTable, i: number, v: number, f: number): void {
  const wasNone = (pt.f[i] & TYPE_MASK) === T_NONE;
  const isNone = (f & TYPE_MASK) === T_NONE;
  if (wasNone && !isNone) pt.used++;
  else if (!wasNone && isNone) pt.used--;
  pt.v[i] = v;
  pt.f[i] = f;
}

/** pte_clear() */
export function clearPte(pt: PteTable, i: number): void {
  if ((pt.f[i] & TYPE_MASK) !== T_NONE) pt.used--;
  pt.v[i] = 0;
  pt.f[i] = 0;
}

/** set_pmd_at() for a leaf entry (not a table pointer). */
export function setPmdLeaf(pmd: PmdTable, i: number, v: number, f: number): void {
  const wasNone = (pmd.f[i] & TYPE_MASK) === T_NONE;
  const isNone = (f & TYPE_MASK) === T_NONE;
  if (wasNone && !isNone) pmd.used++;
  else if (!wasNone && isNone) pmd.used--;
  pmd.v[i] = v;
  pmd.f[i] = f;
  pmd.pte[i] = null;
}

/** pmd_clear() of a leaf. */
export function clearPmd(pmd: PmdTable, i: number): void {
  if ((pmd.f[i] & TYPE_MASK) !== T_NONE) pmd.used--;
  pmd.v[i] = 0;
  pmd.f[i] = 0;
  pmd.pte[i] = null;
}

/** pte_present() (PROT_NONE entries are present too, as on x86). */
export function isPresent(f: number): boolean {
  return (f & TYPE_MASK) === T_PRESENT;
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
