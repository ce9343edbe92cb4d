// SPDX-License-Identifier: GPL-2.0-only
/**
 * tmpfs / shmem (mm/shmem.c), reduced to what the model needs: an inode is
 * an AddressSpace of kind 'shmem' whose page cache maps page index -> pfn;
 * O_TMPFILE files, MAP_SHARED|MAP_ANONYMOUS (shmem_zero_setup), page-cache
 * lookup and allocation (shmem_get_folio), read/write through the page
 * contents, and truncation (shmem_setattr -> truncate_pagecache).
 *
 * References: the page cache holds one reference per cached folio (the
 * allocation reference); each mapping PTE holds one more (taken by the
 * fault path). The inode (AddressSpace) is referenced by open files and by
 * VMAs (mappingGet/mappingPut); the last put evicts the cache
 * (shmem_evict_inode). Shmem pages are never swapped out (the model swaps
 * anonymous memory only): they stay resident.
 *
 * Locks: i_rwsem and the i_pages lock are implicit (nothing here yields
 * except the unmap in truncate, which takes PTLs through zap).
 */
import type { Kernel } from '../kernel.js';
import type { K } from '../sched/sched.js';
import { EINVAL, ENOENT, ENOMEM, EFBIG } from '../errno.js';
import type { AddressSpace, Vma } from './mm_types.js';
import { PAGE_SIZE, PG_swapbacked, PG_uptodate, PG_dirty } from './page.js';
import { __GFP_ZERO } from './page_alloc.js';
import { folioPut } from './folio.js';
import { unmapMappingRange } from './zap.js';
import { File, type FileOperations } from '../fs/chardev.js';
import { mappingGet, mappingPut } from '../fs/inode.js';

/** MAX_LFS_FILESIZE on 64-bit (bytes); the model caps at 2^52. */
export const MAX_LFS_FILESIZE = 2 ** 52;

/* ihold()/iput() on the inode live in fs/inode.ts; re-exported for existing importers. */
export { mappingGet, mappingPut, mappingRefs } from '../fs/inode.js';

/** shmem_evict_inode(): every cached folio loses the cache reference (they are unmapped by then). */
function shmemEvictInode(k: Kernel, as: AddressSpace): void {
  for (const [idx, pfn] of [...as.pages]) dropCachePage(k, as, idx, pfn);
  if (k.mappings[as.id] === as) k.mappings[as.id] = null;
}

/**
 * shmem_get_folio(inode, index, &folio, SGP_CACHE): the folio caching
 * `index`, allocating a zeroed one when absent and `alloc`. Returns the
 * pfn WITHOUT an extra reference (the caller takes one with folioGet before
 * anything that can yield), or -ENOENT (absent, !alloc), -EINVAL (beyond
 * EOF, or a hugetlbfs inode), -ENOMEM.
 */
export function shmemGetFolio(k: Kernel, as: AddressSpace, index: number, alloc: boolean): number {
  const pfn = as.pages.get(index);
  if (pfn !== undefined) return pfn;
  if (!alloc) return -ENOENT;
  if (as.kind !== 'shmem' || index * PAGE_SIZE >= as.size) return -EINVAL;
  const np = k.buddy.alloc(0, __GFP_ZERO, 'shmem');
  if (np < 0) return -ENOMEM;
  const p = k.pages;
  p.mapping[np] = as.id;
  p.index[np] = index;
  p.flags[np] |= PG_swapbacked | PG_uptodate;
  as.pages.set(index, np);
  k.lru.add(np);
  return np;
}

function dropCachePage(k: Kernel, as: AddressSpace, idx: number, pfn: number): void {
  as.pages.delete(idx);
  const p = k.pages;
  k.warnOnPage(p.folioMapped(pfn), pfn, 'truncate_inode_folio: folio still mapped');
  p.mapping[pfn] = 0;
  p.flags[pfn] &= ~PG_dirty;
  folioPut(k, pfn);
}

/** shmem_file_setup() / O_TMPFILE on tmpfs: a new empty inode and its File. */
export function shmemFileSetup(k: Kernel, path: string, size: number, flags: number): File {
  const as = k.newAddressSpace('shmem');
  as.evictInode = shmemEvictInode;
  as.size = size;
  const f = new File(k, shmemFileOperations, path, flags);
  f.mapping = as;
  mappingGet(as);
  return f;
}

/**
 * shmem_zero_setup(): MAP_SHARED|MAP_ANONYMOUS memory is a shmem object of
 * the mapping's size ("/dev/zero (deleted)"); vma->vm_file points to it.
 * Returns 0.
 */
export function shmemZeroSetup(k: Kernel, vma: Vma): number {
  const as = k.newAddressSpace('shmem');
  as.evictInode = shmemEvictInode;
  as.size = vma.end - vma.start;
  vma.file = as;
  vma.ops = null;
  return 0;
}

/**
 * shmem_file_read_iter(): copy up to dst.length bytes at `off` into dst;
 * holes read as zeroes without allocating. Returns bytes read (0 at EOF).
 */
export function shmemRead(k: Kernel, as: AddressSpace, off: number, dst: Uint8Array): number {
  if (off >= as.size) return 0;
  const n = Math.min(dst.length, as.size - off);
  let done = 0;
  while (done < n) {
    const pos = off + done;
    const idx = Math.floor(pos / PAGE_SIZE);
    const po = pos % PAGE_SIZE;
    const chunk = Math.min(PAGE_SIZE - po, n - done);
    const pfn = as.pages.get(idx);
    if (pfn === undefined) dst.fill(0, done, done + chunk);
    else k.contents.read(pfn, po, dst, done, chunk);
    done += chunk;
  }
  return n;
}

/**
 * shmem_file_write_iter() (generic_perform_write): write src at off,
 * extending i_size. Returns bytes written, or -ENOMEM / -EFBIG.
 */
export function shmemWrite(k: Kernel, as: AddressSpace, off: number, src: Uint8Array): number {
  if (off + src.length > MAX_LFS_FILESIZE) return -EFBIG;
  if (off + src.length > as.size) as.size = off + src.length;
  let done = 0;
  while (done < src.length) {
    const pos = off + done;
    const idx = Math.floor(pos / PAGE_SIZE);
    const po = pos % PAGE_SIZE;
    const chunk = Math.min(PAGE_SIZE - po, src.length - done);
    const pfn = shmemGetFolio(k, as, idx, true);
    if (pfn < 0) return done > 0 ? done : pfn;
    k.contents.write(pfn, po, src, done, chunk);
    k.pages.flags[pfn] |= PG_dirty;
    done += chunk;
  }
  return done;
}

/**
 * shmem_setattr(ATTR_SIZE) -> truncate_setsize + shmem_truncate_range:
 * growing only changes i_size; shrinking unmaps every mapping of the pages
 * beyond the new EOF, private COW copies included (unmap_mapping_range
 * even_cows=1), drops them from the cache and zeroes the tail of a partial
 * last page. An access beyond EOF then gets SIGBUS. Returns 0 or -errno.
 * The caller holds no mmap_lock.
 */
export function* shmemTruncate(k: Kernel, as: AddressSpace, newSize: number): K<number> {
  if (newSize < 0) return -EINVAL;
  if (newSize > MAX_LFS_FILESIZE) return -EFBIG;
  const old = as.size;
  as.size = newSize;
  if (newSize >= old) return 0;
  const firstGone = Math.ceil(newSize / PAGE_SIZE);
  yield* unmapMappingRange(as, firstGone, 0, true);
  for (const [idx, pfn] of [...as.pages]) if (idx >= firstGone) dropCachePage(k, as, idx, pfn);
  if (newSize % PAGE_SIZE !== 0) {
    const pfn = as.pages.get(Math.floor(newSize / PAGE_SIZE));
    if (pfn !== undefined) k.contents.fill(pfn, newSize % PAGE_SIZE, PAGE_SIZE - (newSize % PAGE_SIZE), 0);
  }
  return 0;
}

/** The file operations of a tmpfs file (shmem_file_operations). */
export const shmemFileOperations: FileOperations = {
  owner: 'tmpfs',
  mmap(file: File, vma: Vma): number {
    // shmem_mmap(): file_accessed; the fault path serves pages from the cache.
    vma.file = file.mapping;
    vma.ops = null;
    return 0;
  },
  read(file: File, dst: Uint8Array, off: number): number {
    return shmemRead(file.kernel, file.mapping!, off, dst);
  },
  write(file: File, src: Uint8Array, off: number): number {
    return shmemWrite(file.kernel, file.mapping!, off, src);
  },
  *release(file: File): K<void> {
    if (file.mapping) mappingPut(file.kernel, file.mapping);
  },
};
