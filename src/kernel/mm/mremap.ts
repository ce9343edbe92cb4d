// SPDX-License-Identifier: GPL-2.0-only
/**
 * mremap(2) (mm/mremap.c: check_mremap_params, do_mremap, mremap_to,
 * move_vma, copy_vma, move_page_tables, move_ptes, move_huge_pmd).
 *
 * Moving keeps every entry exactly as it is — present pages (mapcount and
 * references unchanged), the zero page, swap, migration, device-private and
 * device-exclusive entries, and whole PMD leaves (THP, PMD migration and
 * device-private entries, hugetlb) when source and destination are PMD
 * aligned (move_huge_pmd); a PMD leaf only partly moved is split first.
 * The new VMA keeps vm_pgoff + offset and the anon_vma chain of the old
 * one, so rmap (page->index) still finds the pages at their new address.
 * Moved entries get soft-dirty as the kernel sets it: every present or
 * swap-type PTE (move_soft_dirty_pte), a present PMD or PMD migration entry
 * (move_soft_dirty_pmd), not a hugetlb entry (move_huge_pte).
 *
 * Differences: no VMA merge with neighbours after the move; no
 * multi-VMA moves (6.17+); accounting (VM_ACCOUNT, locked_vm) not modelled.
 */
import type { K } from '../sched/sched.js';
import { EINVAL, EFAULT, ENOMEM } from '../errno.js';
import { type MmStruct, Vma, VM_SHARED, VM_MAYSHARE, VM_DONTEXPAND, VM_PFNMAP, VM_HUGETLB, VM_LOCKED } from './mm_types.js';
import {
  type PmdTable, T_NONE, T_PRESENT, T_TABLE, _PAGE_SOFT_DIRTY, isMigrationType, pmdIndex, pmdTableOf, pteIndex,
  pteTableAlloc, pmdNone, pmdIsTable, pteNone, pteType, pmdSpanEnd,
} from './pgtable.js';
import { clearPte, setPte, clearPmd, setPmdLeaf } from './pte_ops.js';
import { PAGE_SIZE, PMD_SIZE } from './page.js';
import { MMU_NOTIFY_UNMAP, mmuNotifierRangeInit, mmuNotifierInvalidateRangeStart, mmuNotifierInvalidateRangeEnd } from './mmu_notifier.js';
import { splitHugePmdNotify } from './huge_memory.js';
import { spinLock, freePteTable } from './zap.js';
import { spinLockNested } from '../sched/locks.js';
import { SINGLE_DEPTH_NESTING } from '../sched/lockdep.js';
import {
  munmapRange, findVmaIntersection, getUnmappedArea, vmaDup, anonVmaClone, vmaLinkFile, unlinkAnonVmas, MAP_FIXED,
  MAP_PRIVATE, MAP_SHARED,
} from './mmap.js';
import { HPAGE_SIZE } from './hugetlb.js';
import { mmapAssertWriteLocked, mmapWriteLock } from './mmap_lock.js';

export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MREMAP_DONTUNMAP = 4;

function pageAlign(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

/**
 * move_page_tables(vma, old_addr, new_vma, new_addr, len): move every entry
 * of [oldAddr, oldAddr+len) to newAddr. Caller holds mmap_lock for write;
 * the MMU_NOTIFY_UNMAP range over the old addresses is fired here.
 */
export function* movePageTables(vma: Vma, oldAddr: number, newVma: Vma, newAddr: number, len: number): K<void> {
  mmapAssertWriteLocked(vma.mm, 'move_page_tables');
  const mm = vma.mm;
  const k = mm.kernel;
  const s = k.sched;
  const pgd = mm.pgd;
  if (len === 0) return;
  const range = mmuNotifierRangeInit(mm, MMU_NOTIFY_UNMAP, oldAddr, oldAddr + len);
  yield* mmuNotifierInvalidateRangeStart(range);
  try {
    let done = 0;
    while (done < len) {
      const oa = oldAddr + done;
      const na = newAddr + done;
      const extent = Math.min(len - done, pmdSpanEnd(oa) - oa, pmdSpanEnd(na) - na); /* get_extent(NORMAL_PMD) */
      const opmd = pmdTableOf(pgd, oa, false);
      if (opmd === null) {
        done += extent;
        continue;
      }
      const oi = pmdIndex(oa);
      let t = pteType(opmd.f[oi]);
      if (t === T_NONE) {
        done += extent;
        continue;
      }
      if (t !== T_TABLE) {
        const npmd = pmdTableOf(pgd, na, true)!;
        const ni = pmdIndex(na);
        if (extent === PMD_SIZE && (pmdNone(npmd.f[ni]) || emptyTable(npmd, ni))) {
          // move_huge_pmd()
          yield* spinLock(s, opmd.lock);
          if (npmd !== opmd) yield* spinLockNested(s, npmd.lock, SINGLE_DEPTH_NESTING);
          if (pmdIsTable(npmd.f[ni])) freePteTable(mm, npmd, ni);
          const v = opmd.v[oi];
          const f = opmd.f[oi];
          clearPmd(opmd, oi, 'move_huge_pmd');
          // move_soft_dirty_pmd(): a present PMD or a PMD migration entry
          // becomes soft-dirty; hugetlb moves (move_huge_pte) keep the bits.
          const tt = pteType(f);
          const sd = !(vma.flags & VM_HUGETLB) && (tt === T_PRESENT || isMigrationType(tt));
          setPmdLeaf(npmd, ni, v, sd ? f | _PAGE_SOFT_DIRTY : f, 'move_huge_pmd');
          if (npmd !== opmd) npmd.lock.unlock(s);
          opmd.lock.unlock(s);
          done += extent;
          continue;
        }
        if (vma.flags & VM_HUGETLB) throw new Error('unreachable: unaligned hugetlb move');
        // split_huge_pmd(): __split_huge_pmd() has its own MMU_NOTIFY_CLEAR
        // range over the whole PMD (the UNMAP range covers only the move).
        yield* splitHugePmdNotify(vma, opmd, oi, oa);
        t = pteType(opmd.f[oi]);
        if (t !== T_TABLE) {
          done += extent;
          continue;
        }
      }
      // move_ptes()
      const opt = opmd.pte[oi]!;
      const npmd = pmdTableOf(pgd, na, true)!;
      const ni = pmdIndex(na);
      const npt = pteTableAlloc(pgd, npmd, ni, na);
      if (npt === null) throw new Error('move_ptes: destination PMD is a leaf');
      yield* spinLock(s, opt.ptl);
      if (npt !== opt) yield* spinLockNested(s, npt.ptl, SINGLE_DEPTH_NESTING);
      const oj0 = pteIndex(oa);
      const nj0 = pteIndex(na);
      const n = extent / PAGE_SIZE;
      for (let j = 0; j < n; j++) {
        const f = opt.f[oj0 + j];
        if (pteNone(f)) continue;
        const v = opt.v[oj0 + j];
        clearPte(opt, oj0 + j, 'move_ptes');
        setPte(npt, nj0 + j, v, f | _PAGE_SOFT_DIRTY, 'move_ptes');
      }
      if (npt !== opt) npt.ptl.unlock(s);
      opt.ptl.unlock(s);
      done += extent;
    }
  } finally {
    mmuNotifierInvalidateRangeEnd(range);
  }
  void newVma;
}

function emptyTable(pmd: PmdTable, i: number): boolean {
  return pmdIsTable(pmd.f[i]) && pmd.pte[i]!.used === 0;
}

/**
 * move_vma(): copy_vma() a new VMA at newAddr (pgoff and anon_vma chain
 * carried over), move the page tables, then unmap the old range — or, with
 * MREMAP_DONTUNMAP, leave the old VMA in place, empty, and unlinked from
 * its anon_vmas when it covered exactly the moved range. Returns newAddr or
 * -errno. Caller holds mmap_lock for write.
 */
function* moveVma(vma: Vma, oldAddr: number, oldLen: number, newLen: number, newAddr: number, flags: number): K<number> {
  mmapAssertWriteLocked(vma.mm, 'move_vma');
  const mm = vma.mm;
  if (mm.kernel.shouldFail('vm_area_dup')) return -ENOMEM; /* copy_vma(): vm_area_dup() */
  const nv = vmaDup(vma, mm);
  nv.start = newAddr;
  nv.end = newAddr + newLen;
  nv.pgoff = vma.pgoff + (oldAddr - vma.start) / PAGE_SIZE;
  anonVmaClone(nv, vma);
  vmaLinkFile(nv, true);
  mm.insertVma(nv);
  yield* movePageTables(vma, oldAddr, nv, newAddr, oldLen);
  if (flags & MREMAP_DONTUNMAP) {
    vma.flags &= ~VM_LOCKED;
    if (vma.start === oldAddr && vma.end === oldAddr + oldLen) unlinkAnonVmas(vma);
    return newAddr;
  }
  if (oldLen > 0) {
    const r = yield* munmapRange(mm, oldAddr, oldAddr + oldLen);
    if (r < 0) return r;
  }
  return newAddr;
}

/**
 * mremap(2): do_mremap(addr, old_len, new_len, flags, new_addr). Takes
 * mmap_lock for write. Returns the (new) address or -errno:
 *   -EINVAL  unknown flags; addr (or new_addr with FIXED/DONTUNMAP) not
 *            page aligned; new_len 0 after alignment or beyond TASK_SIZE;
 *            FIXED or DONTUNMAP without MAYMOVE; DONTUNMAP with
 *            old_len != new_len; overlapping old and new ranges;
 *            old_len 0 on a private mapping; DONTUNMAP on
 *            VM_DONTEXPAND/VM_PFNMAP; hugetlb: unaligned or growing;
 *            a shrink whose old range runs past TASK_SIZE
 *   -EFAULT  no VMA at addr; [addr, addr+old_len) not inside one VMA;
 *            growing a VM_DONTEXPAND/VM_PFNMAP mapping
 *   -ENOMEM  cannot grow in place without MREMAP_MAYMOVE; no room
 */
export function* doMremap(mm: MmStruct, addr: number, oldLen: number, newLen: number, flags: number, newAddr: number): K<number> {
  if (flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP)) return -EINVAL;
  if (addr % PAGE_SIZE !== 0) return -EINVAL;
  oldLen = pageAlign(oldLen);
  newLen = pageAlign(newLen);
  if (newLen === 0) return -EINVAL;
  const impliesNew = (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) !== 0;
  if (newLen > mm.taskSize || (impliesNew && newAddr > mm.taskSize - newLen)) return -EINVAL;
  if (impliesNew) {
    if (newAddr % PAGE_SIZE !== 0) return -EINVAL;
    if (!(flags & MREMAP_MAYMOVE)) return -EINVAL;
    if ((flags & MREMAP_DONTUNMAP) && oldLen !== newLen) return -EINVAL;
    if ((flags & MREMAP_FIXED) && addr < newAddr + newLen && newAddr < addr + oldLen) return -EINVAL;
  }
  const s = mm.kernel.sched;
  yield* mmapWriteLock(mm);
  try {
    let vma = mm.vmaLookup(addr);
    if (vma === null) return -EFAULT;
    if (vma.flags & VM_HUGETLB) {
      if (addr % HPAGE_SIZE || (impliesNew && newAddr % HPAGE_SIZE)) return -EINVAL;
      oldLen = Math.ceil(oldLen / HPAGE_SIZE) * HPAGE_SIZE;
      newLen = Math.ceil(newLen / HPAGE_SIZE) * HPAGE_SIZE;
      if (newLen > oldLen) return -EINVAL;
    }
    const prep = (): number => {
      if (oldLen === 0 && !(vma!.flags & (VM_SHARED | VM_MAYSHARE))) return -EINVAL;
      if ((flags & MREMAP_DONTUNMAP) && (vma!.flags & (VM_DONTEXPAND | VM_PFNMAP))) return -EINVAL;
      if (oldLen > vma!.end - addr) return -EFAULT;
      if (newLen === oldLen) return 0;
      if (newLen > oldLen && (vma!.flags & (VM_DONTEXPAND | VM_PFNMAP))) return -EFAULT;
      return 0;
    };
    const mapFlags = vma.flags & VM_MAYSHARE ? MAP_SHARED : MAP_PRIVATE;
    const anonPrivate = vma.isAnon() && !(vma.flags & VM_MAYSHARE);
    if (impliesNew) {
      // mremap_to()
      if (flags & MREMAP_FIXED) {
        const r = yield* munmapRange(mm, newAddr, newAddr + newLen);
        if (r < 0) return r;
      }
      if (oldLen > newLen) {
        if (addr + oldLen > mm.taskSize) return -EINVAL; /* shrink_vma(): do_vmi_munmap() range check */
        const r = yield* munmapRange(mm, addr + newLen, addr + oldLen);
        if (r < 0) return r;
        oldLen = newLen;
      }
      vma = mm.vmaLookup(addr);
      if (vma === null) return -EFAULT;
      const e = prep();
      if (e < 0) return e;
      const a = getUnmappedArea(mm, (vma.flags & VM_HUGETLB) !== 0, newAddr, newLen, mapFlags | (flags & MREMAP_FIXED ? MAP_FIXED : 0), anonPrivate);
      if (a < 0) return a;
      if (!(flags & MREMAP_FIXED) && findVmaIntersection(mm, a, a + newLen) !== null) return -ENOMEM;
      return yield* moveVma(vma, addr, oldLen, newLen, a, flags);
    }
    if (oldLen >= newLen && oldLen !== 0) {
      if (oldLen > newLen) {
        if (addr + oldLen > mm.taskSize) return -EINVAL; /* shrink_vma(): do_vmi_munmap() range check */
        const r = yield* munmapRange(mm, addr + newLen, addr + oldLen);
        if (r < 0) return r;
      }
      return addr;
    }
    const e = prep();
    if (e < 0) return e;
    if (oldLen === vma.end - addr) {
      // vma_expandable(): grow in place if the space after it is free.
      const delta = newLen - oldLen;
      if (vma.end + delta <= mm.taskSize && findVmaIntersection(mm, vma.end, vma.end + delta) === null) {
        vma.end += delta;
        return addr;
      }
    }
    if (!(flags & MREMAP_MAYMOVE)) return -ENOMEM;
    const a = getUnmappedArea(mm, (vma.flags & VM_HUGETLB) !== 0, 0, newLen, mapFlags, anonPrivate);
    if (a < 0) return a;
    return yield* moveVma(vma, addr, oldLen, newLen, a, flags);
  } finally {
    mm.mmapLock.writeUnlock(s);
  }
}
