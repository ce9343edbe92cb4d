// SPDX-License-Identifier: GPL-2.0-only
/**
 * The migrate pfn encoding (include/linux/migrate.h: MIGRATE_PFN_*,
 * migrate_pfn(), migrate_pfn_to_page()): the one owner of the entries of
 * migrate_vma.src / dst and migrate_device_*() arrays. An entry is
 * `pfn << MIGRATE_PFN_SHIFT | flags`, kept in a Float64Array, so above 2^31
 * the arithmetic is on full-width numbers: drivers, tools and tests read and
 * change entries only through these helpers, never with `% 64`, `/ 64` or
 * `+ FLAG`. A header: no imports, no state.
 */

/* include/linux/migrate.h */
/** The entry names a page (migrate_pfn() sets it; a hole has MIGRATE without VALID). */
export const MIGRATE_PFN_VALID = 1 << 0;
/** The entry migrates: set by collect, cleared by any step that gives the page up. */
export const MIGRATE_PFN_MIGRATE = 1 << 1;
/** The source was mapped writable: the destination is mapped writable too. */
export const MIGRATE_PFN_WRITE = 1 << 3;
/** The entry is a PMD-sized folio (head entry; the next 511 entries are 0). */
export const MIGRATE_PFN_COMPOUND = 1 << 4;
/** The pfn lives above these flag bits. */
export const MIGRATE_PFN_SHIFT = 6;
const MIGRATE_PFN_FLAGS = 1 << MIGRATE_PFN_SHIFT; /* 64: flags live in v % 64 */

/** migrate_pfn(pfn): a valid entry for pfn (pfn * 64 + MIGRATE_PFN_VALID). */
export function migratePfn(pfn: number): number {
  return pfn * MIGRATE_PFN_FLAGS + MIGRATE_PFN_VALID;
}

/*
 * Entries below 2^31 (pfns below 2^25: 128 GiB of physical address space)
 * take the int32 path; larger ones fall back to float arithmetic. Both give
 * the same answers; the int path avoids a floating-point modulo per entry.
 */
const INT_LIMIT = 2147483648;

/** The MIGRATE_PFN_* bits of entry v (v % 64). */
export function mpfnFlags(v: number): number {
  return v < INT_LIMIT ? v & (MIGRATE_PFN_FLAGS - 1) : v % MIGRATE_PFN_FLAGS;
}

/** migrate_pfn_to_page(v): the pfn of a VALID entry, else -1. Only VALID is looked at. */
export function migratePfnToPage(v: number): number {
  return v < INT_LIMIT ? ((v & MIGRATE_PFN_VALID) !== 0 ? v >>> MIGRATE_PFN_SHIFT : -1) : migratePfnToPageWide(v);
}

/** migratePfnToPage() of an entry of 2^31 or more (float arithmetic; kept out of line). */
function migratePfnToPageWide(v: number): number {
  if ((v % MIGRATE_PFN_FLAGS) % 2 !== 1) return -1;
  return Math.floor(v / MIGRATE_PFN_FLAGS);
}

/** Does entry v have flag bit f (a MIGRATE_PFN_* below 64)? */
export function mpfnHas(v: number, f: number): boolean {
  return (mpfnFlags(v) & f) !== 0;
}

/** v | f, on the full-width value. */
export function mpfnSet(v: number, f: number): number {
  return v + (f & ~mpfnFlags(v));
}

/** v & ~f, on the full-width value (f may combine several flags). */
export function mpfnClear(v: number, f: number): number {
  return v - (mpfnFlags(v) & f);
}

/** The order of the folio an entry names: 9 (HPAGE_PMD_ORDER) for MIGRATE_PFN_COMPOUND, else 0. */
export function mpfnOrder(v: number): number {
  return mpfnHas(v, MIGRATE_PFN_COMPOUND) ? 9 : 0;
}

/** The pfn field of entry v whatever its flags (migrate_pfn_to_page() without the VALID test). */
export function mpfnPfn(v: number): number {
  return Math.floor(v / MIGRATE_PFN_FLAGS);
}

/** The entry with pfn field `pfn` and MIGRATE_PFN_* bits `flags` (pfn << MIGRATE_PFN_SHIFT | flags). */
export function mpfnMake(pfn: number, flags: number): number {
  return pfn * MIGRATE_PFN_FLAGS + flags;
}
