// SPDX-License-Identifier: GPL-2.0-only
/**
 * Inode references (fs/inode.c ihold() / iput()). The model's inode is the
 * AddressSpace of a shmem or hugetlbfs file; its count lives on it
 * (`iCount`, inode->i_count) so every machine has its own and the
 * explorer's snapshot restores it. The last iput() calls the filesystem's
 * evict_inode (`as.evictInode`: shmem_evict_inode, hugetlbfs_evict_inode).
 */
import type { Kernel } from '../kernel.js';
import type { AddressSpace } from '../mm/mm_types.js';

/** ihold(): one more reference on the inode (an open file or a VMA). */
export function mappingGet(as: AddressSpace): void {
  as.iCount++;
}

/**
 * iput(): drop an inode reference; the last one evicts the inode
 * (sb->s_op->evict_inode: the cached folios lose the cache reference, they
 * are unmapped by then, and hugetlb reservations are returned).
 */
export function mappingPut(k: Kernel, as: AddressSpace): void {
  const n = --as.iCount;
  if (n > 0) return;
  if (as.evictInode !== null) as.evictInode(k, as);
}

/** Inode reference count (atomic_read(&inode->i_count)), for tests. */
export function mappingRefs(as: AddressSpace): number {
  return as.iCount;
}
