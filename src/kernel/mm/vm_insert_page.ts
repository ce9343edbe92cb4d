// SPDX-License-Identifier: GPL-2.0-only
/**
 * vm_insert_page() (mm/memory.c): map a kernel-allocated page into a user
 * VMA from a driver's ->mmap. Added for the test_hmm driver's
 * dmirror_fops_mmap (the mixedmap selftest).
 */
import { EBUSY, EFAULT, EINVAL, ENOMEM } from '../errno.js';
import { KernelBug } from '../printk.js';
import { VM_MIXEDMAP, VM_PFNMAP, VM_SHARED, VM_WRITE, type Vma } from './mm_types.js';
import { pmdIndex, pmdTableOf, pteIndex, pteTableAlloc, pteNone } from './pgtable.js';
import { pmdAllocFails, pteAllocFails } from './pgtable.js';
import { mkPresent, setPte } from './pte_ops.js';
import { folioGet, folioTestAnon } from './folio.js';
import { folioAddFileRmapPte } from './rmap.js';
import { PG_hugetlb } from './page.js';

/**
 * vm_insert_page(vma, addr, page): install a PTE for `pfn` at addr. The
 * first call on a VMA makes it VM_MIXEDMAP (BUG if VM_PFNMAP; the caller
 * holds mmap_lock for write). Anon and hugetlb pages are refused
 * (-EINVAL, validate_page_before_insert); an address outside the VMA is
 * -EFAULT; a populated PTE -EBUSY. Takes a page reference and a file
 * mapcount; the PTE is writable only for a shared writable VMA
 * (vm_page_prot), not dirty.
 */
export function vmInsertPage(vma: Vma, addr: number, pfn: number): number {
  const mm = vma.mm;
  const k = mm.kernel;
  if (addr < vma.start || addr >= vma.end) return -EFAULT;
  if (!(vma.flags & VM_MIXEDMAP)) {
    if (mm.mmapLock.writer === 0) throw new KernelBug('BUG', 'vm_insert_page: BUG_ON(mmap_read_trylock(vma->vm_mm))', `${vma}`);
    if (vma.flags & VM_PFNMAP) throw new KernelBug('BUG', 'vm_insert_page: BUG_ON(vma->vm_flags & VM_PFNMAP)', `${vma}`);
    vma.flags |= VM_MIXEDMAP;
  }
  if (folioTestAnon(k, pfn) || (k.pages.flags[k.pages.folioPfn(pfn)] & PG_hugetlb)) return -EINVAL;
  if (pmdAllocFails(k, mm.pgd, addr)) return -ENOMEM; /* get_locked_pte(): pmd_alloc */
  const pmd = pmdTableOf(mm.pgd, addr, true)!;
  if (pteAllocFails(k, pmd, pmdIndex(addr))) return -ENOMEM; /* pte_alloc_map_lock */
  const pt = pteTableAlloc(mm.pgd, pmd, pmdIndex(addr), addr);
  if (pt === null) return -ENOMEM;
  const i = pteIndex(addr);
  if (!pt.ptl.trylock(k.sched)) throw new KernelBug('LOCKDEP', `vm_insert_page: ${pt.ptl.name} contended under mmap_lock for write`);
  if (!pteNone(pt.f[i])) {
    pt.ptl.unlock(k.sched);
    return -EBUSY;
  }
  folioGet(k, pfn);
  mm.rss.file++;
  folioAddFileRmapPte(k, pfn);
  const write = (vma.flags & (VM_SHARED | VM_WRITE)) === (VM_SHARED | VM_WRITE);
  setPte(pt, i, pfn, mkPresent(write, false), 'insert_page_into_pte_locked');
  pt.ptl.unlock(k.sched);
  return 0;
}
