// SPDX-License-Identifier: GPL-2.0-only
/**
 * Page tables: PGD -> PUD -> PMD -> PTE, 512 entries per level, 48-bit VAs.
 *
 * A leaf entry is two numbers in parallel typed arrays of its table: `v` (a
 * pfn, or a swap slot) and `f` (the entry type in the low 4 bits, and the
 * pte bits above). No object per entry. PTE tables carry their split PTL;
 * PMD tables carry the pmd lock.
 *
 * Entry types (f & TYPE_MASK), shared by PTE and PMD leaves:
 *   NONE                      pte_none()
 *   PRESENT                   pte_present(): v = pfn (the zero pfn included)
 *   SWAP                      a real swap entry: v = swap slot
 *   MIGRATION_READ            is_readable_migration_entry(): v = pfn
 *   MIGRATION_READ_EXCLUSIVE  is_readable_exclusive_migration_entry()
 *   MIGRATION_WRITE           is_writable_migration_entry()
 *   DEVICE_PRIVATE_READ       is_device_private_entry() && !is_writable...
 *   DEVICE_PRIVATE_WRITE      is_writable_device_private_entry()
 *   DEVICE_EXCLUSIVE          is_device_exclusive_entry(): v = pfn
 *   HWPOISON                  is_hwpoison_entry(): v = pfn
 *   TABLE (PMD only)          the PMD points to a PTE table
 * Bits: WRITE, DIRTY, YOUNG, SOFT_DIRTY, UFFD_WP, SPECIAL, DEVMAP, PROTNONE;
 * SWP_EXCLUSIVE on swap entries.
 * Swap-type entries keep SOFT_DIRTY and UFFD_WP (pte_swp_soft_dirty,
 * pte_swp_uffd_wp) and, for migration entries, YOUNG and DIRTY
 * (SWP_MIG_YOUNG / SWP_MIG_DIRTY) in the same bit positions.
 *
 * Locking: the PTE entries of a table are protected by its `ptl`; PMD
 * entries by the PMD table's `lock`; allocation of tables by mmap_lock
 * (read is enough; the model has no concurrent table allocation race since
 * allocation never yields).
 */
import { Spinlock } from '../sched/locks.js';
import { PMD_SIZE, PUD_SIZE } from './page.js';
import { LOCK_CLASSES } from '../sched/lockdep.js';

export const PTRS_PER_TABLE = 512;

export const TYPE_MASK = 0xf;
export const T_NONE = 0;
export const T_PRESENT = 1;
export const T_SWAP = 2;
export const T_MIGRATION_READ = 3;
export const T_MIGRATION_READ_EXCLUSIVE = 4;
export const T_MIGRATION_WRITE = 5;
export const T_DEVICE_PRIVATE_READ = 6;
export const T_DEVICE_PRIVATE_WRITE = 7;
export const T_DEVICE_EXCLUSIVE = 8;
export const T_HWPOISON = 9;
export const T_TABLE = 15;

export const _PAGE_RW = 1 << 4;
export const _PAGE_DIRTY = 1 << 5;
export const _PAGE_ACCESSED = 1 << 6;
export const _PAGE_SOFT_DIRTY = 1 << 7;
export const _PAGE_UFFD_WP = 1 << 8;
export const _PAGE_SPECIAL = 1 << 9;
export const _PAGE_DEVMAP = 1 << 10;
export const _PAGE_PROTNONE = 1 << 11;
/** pte_swp_exclusive(): on a swap entry, the page was exclusive to this mapping when swapped out. */
export const _PAGE_SWP_EXCLUSIVE = 1 << 12;

export const TYPE_NAMES: Record<number, string> = {
  [T_NONE]: 'none', [T_PRESENT]: 'present', [T_SWAP]: 'swap', [T_MIGRATION_READ]: 'migration-read',
  [T_MIGRATION_READ_EXCLUSIVE]: 'migration-read-exclusive', [T_MIGRATION_WRITE]: 'migration-write',
  [T_DEVICE_PRIVATE_READ]: 'device-private-read', [T_DEVICE_PRIVATE_WRITE]: 'device-private-write',
  [T_DEVICE_EXCLUSIVE]: 'device-exclusive', [T_HWPOISON]: 'hwpoison', [T_TABLE]: 'table',
};

/**
 * The entry type (T_*) of a PTE or PMD flags word. This module is the one
 * owner of the encoding: everything else decodes entries with pteType() or
 * the predicates below (pte_none(), pte_present(), is_migration_entry()...
 * decode the same bits in the kernel) and builds them with pteMkType().
 * All are one-line functions V8 inlines into the walkers.
 */
export function pteType(f: number): number {
  return f & TYPE_MASK;
}

/** Flags word f with its entry type replaced by t (the other bits kept): the encoding half of mk_pte() / swp_entry_to_pte(). */
export function pteMkType(f: number, t: number): number {
  return (f & ~TYPE_MASK) | t;
}

/* Predicates on a type (T_*) already decoded with pteType(). */

/** is_migration_entry() on a decoded type. */
export function isMigrationType(t: number): boolean {
  return t === T_MIGRATION_READ || t === T_MIGRATION_READ_EXCLUSIVE || t === T_MIGRATION_WRITE;
}

/** is_device_private_entry() on a decoded type. */
export function isDevicePrivateType(t: number): boolean {
  return t === T_DEVICE_PRIVATE_READ || t === T_DEVICE_PRIVATE_WRITE;
}

/** is_pfn_swap_entry() on a decoded type: a non-present entry that names a pfn. */
export function isPfnSwapType(t: number): boolean {
  return t >= T_MIGRATION_READ && t <= T_HWPOISON;
}

/* Predicates on a PTE flags word (include/linux/pgtable.h, swapops.h). */

/** pte_none() */
export function pteNone(f: number): boolean {
  return (f & TYPE_MASK) === T_NONE;
}

/** pte_present() (a PROT_NONE entry is present too: _PAGE_PROTNONE is a bit on a present entry). */
export function ptePresent(f: number): boolean {
  return (f & TYPE_MASK) === T_PRESENT;
}

/** is_swap_pte(): neither none nor present (a swap, migration, device or hwpoison entry). */
export function isSwapPte(f: number): boolean {
  const t = f & TYPE_MASK;
  return t !== T_NONE && t !== T_PRESENT;
}

/** A real swap entry, naming a swap slot (!non_swap_entry() of pte_to_swp_entry()). */
export function isSwapSlotEntry(f: number): boolean {
  return (f & TYPE_MASK) === T_SWAP;
}

/** is_migration_entry() */
export function isMigrationEntry(f: number): boolean {
  return isMigrationType(f & TYPE_MASK);
}

/** is_writable_migration_entry() */
export function isWritableMigrationEntry(f: number): boolean {
  return (f & TYPE_MASK) === T_MIGRATION_WRITE;
}

/** is_device_private_entry() */
export function isDevicePrivateEntry(f: number): boolean {
  return isDevicePrivateType(f & TYPE_MASK);
}

/** is_writable_device_private_entry() */
export function isWritableDevicePrivateEntry(f: number): boolean {
  return (f & TYPE_MASK) === T_DEVICE_PRIVATE_WRITE;
}

/** is_device_exclusive_entry() */
export function isDeviceExclusiveEntry(f: number): boolean {
  return (f & TYPE_MASK) === T_DEVICE_EXCLUSIVE;
}

/** is_hwpoison_entry() */
export function isHwpoisonEntry(f: number): boolean {
  return (f & TYPE_MASK) === T_HWPOISON;
}

/** is_pfn_swap_entry(): a non-present entry that names a pfn (migration, device private/exclusive, hwpoison). */
export function isPfnSwapEntry(f: number): boolean {
  return isPfnSwapType(f & TYPE_MASK);
}

/* Predicates on a PMD flags word. */

/** pmd_none() */
export function pmdNone(f: number): boolean {
  return (f & TYPE_MASK) === T_NONE;
}

/** pmd_trans_huge(): the PMD maps a huge page (a present leaf). */
export function pmdTransHuge(f: number): boolean {
  return (f & TYPE_MASK) === T_PRESENT;
}

/** The PMD points to a PTE table (pmd_present() && !pmd_leaf()). */
export function pmdIsTable(f: number): boolean {
  return (f & TYPE_MASK) === T_TABLE;
}

/** pmd_present(): a PTE table or a huge page (not a migration or device entry). */
export function pmdPresent(f: number): boolean {
  const t = f & TYPE_MASK;
  return t === T_PRESENT || t === T_TABLE;
}

/** is_swap_pmd(): neither none nor present (a PMD migration or device-private entry). */
export function isSwapPmd(f: number): boolean {
  const t = f & TYPE_MASK;
  return t !== T_NONE && t !== T_PRESENT && t !== T_TABLE;
}

/** is_pmd_migration_entry() */
export function isPmdMigrationEntry(f: number): boolean {
  return isMigrationType(f & TYPE_MASK);
}

/** is_pmd_device_private_entry() */
export function isPmdDevicePrivateEntry(f: number): boolean {
  return isDevicePrivateType(f & TYPE_MASK);
}

/** Describe an entry: "present pfn 1234 write dirty". */
export function describeEntry(v: number, f: number): string {
  const t = pteType(f);
  const bits: string[] = [];
  if (f & _PAGE_RW) bits.push('write');
  if (f & _PAGE_DIRTY) bits.push('dirty');
  if (f & _PAGE_ACCESSED) bits.push('young');
  if (f & _PAGE_SOFT_DIRTY) bits.push('soft-dirty');
  if (f & _PAGE_UFFD_WP) bits.push('uffd-wp');
  if (f & _PAGE_SPECIAL) bits.push('special');
  if (f & _PAGE_DEVMAP) bits.push('devmap');
  if (f & _PAGE_PROTNONE) bits.push('protnone');
  if (f & _PAGE_SWP_EXCLUSIVE) bits.push('exclusive');
  const what = t === T_NONE ? 'none' : t === T_SWAP ? `swap slot ${v}` : t === T_TABLE ? 'table' : `${TYPE_NAMES[t]} pfn ${v}`;
  return [what, ...bits].join(' ');
}

/**
 * Checked mode's hook on every entry change made through pte_ops.ts (see
 * mmu_notifier.ts mmuNotifierCheckEntry()): addr and size are the virtual
 * range the entry maps, (ov, of) the old entry, (v, f) the new one and fn the
 * kernel function making the change. Null when checked mode is off.
 */
export type EntryCheck = (addr: number, size: number, ov: number, of: number, v: number, f: number, fn: string) => void;

export class PteTable {
  readonly v = new Int32Array(PTRS_PER_TABLE);
  readonly f = new Uint32Array(PTRS_PER_TABLE);
  /** The split page-table lock (pte_lockptr()). */
  readonly ptl: Spinlock;
  /** Non-none entries, so an empty table can be freed. */
  used = 0;
  /**
   * Model-only back-pointers (the kernel finds them from the walk): the
   * page tables this table belongs to and the address of its entry 0, so
   * checked mode can name the mm and address of a change.
   */
  constructor(name: string, readonly pgd: Pgd, readonly base: number) {
    this.ptl = new Spinlock(name, LOCK_CLASSES.ptl);
  }
}

export class PmdTable {
  readonly v = new Int32Array(PTRS_PER_TABLE);
  readonly f = new Uint32Array(PTRS_PER_TABLE);
  readonly pte: Array<PteTable | null> = new Array<PteTable | null>(PTRS_PER_TABLE).fill(null);
  /** pmd_lockptr() */
  readonly lock: Spinlock;
  used = 0;
  /** Back-pointers as PteTable's: the owning page tables and the address of entry 0. */
  constructor(name: string, readonly pgd: Pgd, readonly base: number) {
    this.lock = new Spinlock(name, LOCK_CLASSES.pmd_lock);
  }
}

export class PudTable {
  readonly pmd: Array<PmdTable | null> = new Array<PmdTable | null>(PTRS_PER_TABLE).fill(null);
  used = 0;
}

export class Pgd {
  readonly pud: Array<PudTable | null> = new Array<PudTable | null>(PTRS_PER_TABLE).fill(null);
  /** Page-table pages allocated (mm_pgtables_bytes / PAGE_SIZE). */
  nrTables = 1;
  /** Checked mode: the entry-change check of the owning mm (null otherwise). */
  check: EntryCheck | null = null;
}

const VPN_PER_PMD = 512;
const VPN_PER_PUD = 512 * 512;
const VPN_PER_PGD = 512 * 512 * 512;

/*
 * PMD / PUD span arithmetic (ALIGN_DOWN(addr, PMD_SIZE), IS_ALIGNED(),
 * pmd_addr_end()): the one place that writes it. Addresses are non-negative
 * numbers below 2^53, so `%` is exact.
 */
/** ALIGN_DOWN(addr, PMD_SIZE) (addr & PMD_MASK): the start of the PMD span holding addr. */
export function pmdAlignDown(addr: number): number {
  return addr - (addr % PMD_SIZE);
}

/** ALIGN(addr, PMD_SIZE): addr rounded up to a PMD boundary (addr itself when aligned). */
export function pmdAlignUp(addr: number): number {
  const r = addr % PMD_SIZE;
  return r === 0 ? addr : addr - r + PMD_SIZE;
}

/** IS_ALIGNED(x, PMD_SIZE): x (an address or a length) is a multiple of PMD_SIZE. */
export function pmdAligned(x: number): boolean {
  return x % PMD_SIZE === 0;
}

/** The end of the PMD span holding addr (ALIGN_DOWN(addr, PMD_SIZE) + PMD_SIZE; pmd_addr_end() without the clamp). */
export function pmdSpanEnd(addr: number): number {
  return addr - (addr % PMD_SIZE) + PMD_SIZE;
}

/**
 * pmd_addr_end(addr, end) (include/linux/pgtable.h): the end of the PMD
 * span holding addr, or end if that comes first. Walkers step with it
 * instead of writing the boundary arithmetic themselves.
 */
export function pmdAddrEnd(addr: number, end: number): number {
  const boundary = addr - (addr % PMD_SIZE) + PMD_SIZE;
  return boundary < end ? boundary : end;
}

/** ALIGN_DOWN(addr, PUD_SIZE): the start of the PUD span (1 GiB) holding addr. */
export function pudAlignDown(addr: number): number {
  return addr - (addr % PUD_SIZE);
}

/** pud_addr_end(addr, end): as pmdAddrEnd for the PUD span (1 GiB). */
export function pudAddrEnd(addr: number, end: number): number {
  const boundary = addr - (addr % PUD_SIZE) + PUD_SIZE;
  return boundary < end ? boundary : end;
}

const PGDIR_SIZE = PUD_SIZE * PTRS_PER_TABLE;

/** pgd_addr_end(addr, end): as pmdAddrEnd for the PGD span (512 GiB; no P4D level). */
export function pgdAddrEnd(addr: number, end: number): number {
  const boundary = addr - (addr % PGDIR_SIZE) + PGDIR_SIZE;
  return boundary < end ? boundary : end;
}

/*
 * The index helpers divide by a power of two (exact for addresses below
 * 2^53) and keep the low 9 bits with `& 511`: ToInt32 truncates toward zero
 * and wraps modulo 2^32, a multiple of 512, so the bits are right for every
 * non-negative address, without a floating-point modulo.
 */
/** pte_index(): the PTE slot of addr in its table (also the page index of addr in its PMD span). */
export function pteIndex(addr: number): number {
  return (addr / 4096) & (PTRS_PER_TABLE - 1);
}
export function pmdIndex(addr: number): number {
  return (addr / (4096 * VPN_PER_PMD)) & (PTRS_PER_TABLE - 1);
}
export function pudIndex(addr: number): number {
  return (addr / (4096 * VPN_PER_PUD)) & (PTRS_PER_TABLE - 1);
}
export function pgdIndex(addr: number): number {
  return (addr / (4096 * VPN_PER_PGD)) & (PTRS_PER_TABLE - 1);
}

/**
 * pmd_offset() after pgd/p4d/pud_offset: the PMD table covering addr, or
 * null when an upper level is empty and `alloc` is false (pud_alloc /
 * pmd_alloc when true).
 */
export function pmdTableOf(pgd: Pgd, addr: number, alloc: boolean): PmdTable | null {
  const gi = pgdIndex(addr);
  let pud = pgd.pud[gi];
  if (pud === null) {
    if (!alloc) return null;
    pud = new PudTable();
    pgd.pud[gi] = pud;
    pgd.nrTables++;
  }
  const ui = pudIndex(addr);
  let pmd = pud.pmd[ui];
  if (pmd === null) {
    if (!alloc) return null;
    const base = pudAlignDown(addr);
    pmd = new PmdTable(`pmd_lock@${base.toString(16)}`, pgd, base);
    pud.pmd[ui] = pmd;
    pud.used++;
    pgd.nrTables++;
  }
  return pmd;
}

/**
 * pte_alloc() for the PMD slot `i`: install an empty PTE table when the PMD is
 * none. Returns null when the PMD is a leaf (huge, migration or device entry).
 */
export function pteTableAlloc(pgd: Pgd, pmd: PmdTable, i: number, addr: number): PteTable | null {
  const t = pteType(pmd.f[i]);
  if (t === T_TABLE) return pmd.pte[i];
  if (t !== T_NONE) return null;
  const base = pmdAlignDown(addr);
  const pt = new PteTable(`ptl@${base.toString(16)}`, pgd, base);
  pmd.pte[i] = pt;
  pmd.f[i] = T_TABLE;
  pmd.v[i] = 0;
  pmd.used++;
  pgd.nrTables++;
  return pt;
}

/** The PTE table for addr, or null (pte_offset_map() failing: none or huge PMD). */
export function pteTableOf(pgd: Pgd, addr: number): PteTable | null {
  const pmd = pmdTableOf(pgd, addr, false);
  if (pmd === null) return null;
  const i = pmdIndex(addr);
  return pmdIsTable(pmd.f[i]) ? pmd.pte[i] : null;
}

/** Visit every PMD table that intersects [start, end), in address order. */
export function forEachPmdTable(pgd: Pgd, start: number, end: number, fn: (pmd: PmdTable, tableStart: number) => void): void {
  const span = 4096 * VPN_PER_PUD;
  for (let a = pudAlignDown(start); a < end; a += span) {
    const pmd = pmdTableOf(pgd, a, false);
    if (pmd !== null) fn(pmd, a);
  }
}

/** What answers should_fail() for a page-table allocation (the Kernel: k.shouldFail). */
export interface PgtableFailSource {
  shouldFail(site: string): boolean;
}

/**
 * The failure half of pud_alloc() + pmd_alloc() for addr (__pud_alloc(),
 * __pmd_alloc(): the table page allocation returns NULL, the caller gets
 * -ENOMEM or VM_FAULT_OOM). True when a missing level's allocation fails
 * (fault injection at '__pud_alloc' / '__pmd_alloc'); levels that exist
 * allocate nothing and cannot fail. Callers ask before
 * pmdTableOf(pgd, addr, true), which then cannot fail.
 */
export function pmdAllocFails(k: PgtableFailSource, pgd: Pgd, addr: number): boolean {
  const pud = pgd.pud[pgdIndex(addr)];
  if (pud === null) return k.shouldFail('__pud_alloc') || k.shouldFail('__pmd_alloc');
  return pud.pmd[pudIndex(addr)] === null && k.shouldFail('__pmd_alloc');
}

/**
 * The failure half of pte_alloc(mm, pmd) (__pte_alloc(): pte_alloc_one()
 * returns NULL -> -ENOMEM): true when PMD slot i is none and the PTE table
 * allocation fails (fault injection at '__pte_alloc'). Callers ask before
 * pteTableAlloc().
 */
export function pteAllocFails(k: PgtableFailSource, pmd: PmdTable, i: number): boolean {
  return pmdNone(pmd.f[i]) && k.shouldFail('__pte_alloc');
}
