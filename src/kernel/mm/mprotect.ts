// SPDX-License-Identifier: GPL-2.0-only
/**
 * mprotect(2) (mm/mprotect.c: do_mprotect_pkey, mprotect_fixup,
 * change_protection, change_pte_range, change_huge_pmd; mm/hugetlb.c
 * hugetlb_change_protection).
 *
 * Entry changes (change_pte_range / change_softleaf_pte):
 *  - present: write is removed unless the new VMA flags allow it and
 *    (shared writable mapping, or MM_CP_TRY_CHANGE_WRITABLE and
 *    can_change_pte_writable(): an exclusive anon page); PROT_NONE sets
 *    _PAGE_PROTNONE, leaving PROT_NONE clears it;
 *  - device-private write -> device-private read (whatever the new prot;
 *    uffd-wp kept, soft-dirty dropped);
 *  - migration write -> read-exclusive (anon) or read (file);
 *  - device-exclusive, swap, hwpoison: unchanged.
 * PMD leaves get the same treatment (change_huge_pmd), after splitting a
 * THP that the range covers only in part. MMU_NOTIFY_PROTECTION_VMA covers
 * each VMA's range when it has page tables (the kernel starts it lazily at
 * the first populated PMD).
 */
import type { K } from '../sched/sched.js';
import { EACCES, EINVAL, ENOMEM } from '../errno.js';
import {
  type MmStruct, type Vma, VM_READ, VM_WRITE, VM_EXEC, VM_SHARED, VM_HUGETLB, VM_ACCESS_FLAGS,
  VM_ACCOUNT, VM_NORESERVE,
} from './mm_types.js';
import {
  type PteTable, T_NONE, T_PRESENT, T_TABLE, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE,
  T_MIGRATION_READ, T_MIGRATION_READ_EXCLUSIVE, T_MIGRATION_WRITE, _PAGE_RW, _PAGE_PROTNONE, _PAGE_SOFT_DIRTY,
  _PAGE_SPECIAL, pmdIndex, pmdTableOf, pteIndex, pudAddrEnd, pteNone, ptePresent, pteType, pteMkType, pmdAddrEnd,
} from './pgtable.js';
import { PAGE_SIZE, PMD_SIZE, PG_anon, PG_anon_exclusive } from './page.js';
import { setPteFlags, setPmdFlags } from './pte_ops.js';
import { MMU_NOTIFY_PROTECTION_VMA, mmuNotifierRangeInit, mmuNotifierInvalidateRangeStart, mmuNotifierInvalidateRangeEnd } from './mmu_notifier.js';
import { splitHugePmdNotify } from './huge_memory.js';
import { spinLock } from './zap.js';
import { vmaIsolateRange, calcVmProtBits, PROT_READ, PROT_WRITE, PROT_EXEC, PROT_SEM, PROT_GROWSDOWN, PROT_GROWSUP } from './mmap.js';
import type { Kernel } from '../kernel.js';
import { mmapAssertWriteLocked, mmapWriteLock } from './mmap_lock.js';

/** Does the new protection need the entry's write bit dropped / may it keep or gain it? */
interface ChangeCtx {
  k: Kernel;
  vma: Vma;
  /** The VMA is PROT_NONE after the change. */
  protnone: boolean;
  /** New VM_WRITE. */
  write: boolean;
  /** VM_SHARED writable: present entries become writable (no write notify for tmpfs). */
  sharedWrite: boolean;
  /** MM_CP_TRY_CHANGE_WRITABLE for private mappings. */
  tryWritable: boolean;
  pages: number;
}

/** can_change_pte_writable() for a private mapping: an exclusive anon page. */
function canChangeWritable(c: ChangeCtx, f: number, pfn: number): boolean {
  if (f & (_PAGE_PROTNONE | _PAGE_SPECIAL)) return false;
  if (pfn === c.k.zeroPfn) return false;
  const p = c.k.pages;
  return (p.flags[p.folioPfn(pfn)] & PG_anon) !== 0 && (p.flags[pfn] & PG_anon_exclusive) !== 0;
}

/** The new flags of one entry (PTE or PMD leaf); returns f unchanged when nothing changes. */
function changeEntry(c: ChangeCtx, v: number, f: number): number {
  const t = pteType(f);
  switch (t) {
    case T_PRESENT: {
      let nf = f & ~(_PAGE_RW | _PAGE_PROTNONE);
      if (c.protnone) return nf | _PAGE_PROTNONE;
      if (c.write && !(f & _PAGE_SPECIAL) && v !== c.k.zeroPfn && v !== c.k.hugeZeroPfn) {
        if (c.sharedWrite) nf |= _PAGE_RW;
        else if ((f & _PAGE_RW) || (c.tryWritable && canChangeWritable(c, nf, v))) nf |= _PAGE_RW;
      }
      return nf;
    }
    case T_DEVICE_PRIVATE_WRITE:
      return pteMkType(f & ~_PAGE_SOFT_DIRTY, T_DEVICE_PRIVATE_READ);
    case T_MIGRATION_WRITE: {
      const p = c.k.pages;
      const anon = (p.flags[p.folioPfn(v)] & PG_anon) !== 0;
      return pteMkType(f, anon ? T_MIGRATION_READ_EXCLUSIVE : T_MIGRATION_READ);
    }
    default:
      return f;
  }
}

function* changePteRange(c: ChangeCtx, pt: PteTable, start: number, end: number): K<void> {
  const s = c.k.sched;
  yield* spinLock(s, pt.ptl);
  const j0 = pteIndex(start);
  const j1 = j0 + (end - start) / PAGE_SIZE;
  for (let j = j0; j < j1; j++) {
    const f = pt.f[j];
    if (pteNone(f)) continue;
    const nf = changeEntry(c, pt.v[j], f);
    if (nf !== f) {
      setPteFlags(pt, j, nf, 'change_pte_range');
      c.pages++;
    }
  }
  pt.ptl.unlock(s);
}

/**
 * change_protection(tlb, vma, start, end, cp_flags) for [start, end) inside
 * vma, whose vm_flags already hold the new protection. Returns the number of
 * entries changed. Caller holds mmap_lock for write.
 */
export function* changeProtection(vma: Vma, start: number, end: number, tryWritable: boolean): K<number> {
  mmapAssertWriteLocked(vma.mm, 'change_protection');
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  const c: ChangeCtx = {
    k, vma,
    protnone: (vma.flags & VM_ACCESS_FLAGS) === 0,
    write: (vma.flags & VM_WRITE) !== 0,
    sharedWrite: (vma.flags & (VM_SHARED | VM_WRITE)) === (VM_SHARED | VM_WRITE),
    tryWritable,
    pages: 0,
  };
  let range = null;
  let addr = start;
  while (addr < end) {
    const pmd = pmdTableOf(mm.pgd, addr, false);
    if (pmd === null) {
      addr = pudAddrEnd(addr, end);
      continue;
    }
    const next = pmdAddrEnd(addr, end);
    const i = pmdIndex(addr);
    let t = pteType(pmd.f[i]);
    if (t !== T_NONE && range === null) {
      range = mmuNotifierRangeInit(mm, MMU_NOTIFY_PROTECTION_VMA, addr, end);
      yield* mmuNotifierInvalidateRangeStart(range);
    }
    if (t !== T_NONE && t !== T_TABLE) {
      if (next - addr === PMD_SIZE || (vma.flags & VM_HUGETLB)) {
        yield* spinLock(s, pmd.lock);
        // change_huge_pmd() / hugetlb_change_protection()
        const f = pmd.f[i];
        let nf = changeEntry(c, pmd.v[i], f);
        if ((vma.flags & VM_HUGETLB) && ptePresent(f) && !c.protnone && c.write && (vma.flags & VM_SHARED)) nf |= _PAGE_RW;
        if (nf !== f) {
          setPmdFlags(pmd, i, nf, vma.flags & VM_HUGETLB ? 'hugetlb_change_protection' : 'change_huge_pmd');
          c.pages += 512;
        }
        pmd.lock.unlock(s);
        addr = next;
        continue;
      }
      // __split_huge_pmd(), with its own MMU_NOTIFY_CLEAR range over the
      // whole PMD (this range may cover only part of it).
      yield* splitHugePmdNotify(vma, pmd, i, addr);
      t = pteType(pmd.f[i]);
    }
    if (t === T_TABLE) yield* changePteRange(c, pmd.pte[i]!, addr, next);
    addr = next;
  }
  if (range !== null) mmuNotifierInvalidateRangeEnd(range);
  return c.pages;
}

/**
 * mprotect_fixup(): give [start, end) of vma the flags newflags: split the
 * VMA at start/end if needed, set vm_flags, change_protection with
 * MM_CP_TRY_CHANGE_WRITABLE (vma_wants_manual_pte_write_upgrade).
 * Returns the VMA now covering [start, end) or -errno.
 */
function* mprotectFixup(vma: Vma, start: number, end: number, newflags: number): K<Vma | number> {
  if (newflags === vma.flags) return vma;
  if ((newflags & (VM_WRITE | VM_SHARED | VM_NORESERVE)) === VM_WRITE && !(vma.flags & VM_SHARED)) newflags |= VM_ACCOUNT;
  const r = yield* vmaIsolateRange(vma, start, end);
  if (typeof r === 'number') return r;
  vma = r;
  vma.flags = newflags;
  const tryWritable = (newflags & VM_WRITE) !== 0; // vma_wants_manual_pte_write_upgrade()
  yield* changeProtection(vma, start, end, tryWritable);
  return vma;
}

/**
 * do_mprotect_pkey(start, len, prot, -1): mprotect(2). Takes mmap_lock for
 * write. Returns 0 or -errno:
 *   -EINVAL  start not page aligned; PROT_GROWSDOWN|PROT_GROWSUP together;
 *            prot bits other than READ/WRITE/EXEC/SEM (arch_validate_prot)
 *   -ENOMEM  len overflows; [start, end) has an unmapped hole (the VMAs
 *            before the hole have already been changed, as in Linux)
 *   -EACCES  the new protection is not allowed by VM_MAY* (PROT_WRITE on a
 *            shared mapping of a file opened read-only)
 * len 0 is a no-op returning 0.
 */
export function* doMprotect(mm: MmStruct, start: number, len: number, prot: number): K<number> {
  const grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
  prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP);
  if (grows === (PROT_GROWSDOWN | PROT_GROWSUP)) return -EINVAL;
  if (start % PAGE_SIZE !== 0) return -EINVAL;
  if (len === 0) return 0;
  if (len < 0) return -ENOMEM;
  len = Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  const end = start + len;
  if (end <= start || end > 2 ** 64) return -ENOMEM;
  if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) return -EINVAL;
  const s = mm.kernel.sched;
  yield* mmapWriteLock(mm);
  try {
    let vma = mm.findVma(start);
    if (vma === null || vma.start > start) return -ENOMEM;
    let nstart = start;
    for (;;) {
      const newflags = calcVmProtBits(prot) | (vma.flags & ~(VM_READ | VM_WRITE | VM_EXEC));
      // newflags >> 4 shifts VM_MAY% in place of VM_%
      if ((newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS) return -EACCES;
      const tmp = Math.min(vma.end, end);
      const r = yield* mprotectFixup(vma, nstart, tmp, newflags);
      if (typeof r === 'number') return r;
      nstart = tmp;
      if (nstart >= end) return 0;
      const nv = mm.findVma(nstart);
      if (nv === null || nv.start !== nstart) return -ENOMEM;
      vma = nv;
    }
  } finally {
    mm.mmapLock.writeUnlock(s);
  }
}
