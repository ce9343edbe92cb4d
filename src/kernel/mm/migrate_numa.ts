// SPDX-License-Identifier: GPL-2.0-only
/**
 * Page migration between NUMA memory nodes (mm/migrate.c): the batched
 * migrate_pages() path and the move_pages(2) syscall (do_pages_move,
 * do_pages_stat), with the copy step behind the migrator switch of the DMA
 * offload RFC (migrate_offload.ts).
 *
 * migrate_pages() cuts the list into batches of NR_MAX_BATCHED_MIGRATION
 * (HPAGE_PMD_NR) pages; migrate_pages_batch() then
 *   1. unmaps every folio of the batch (migrate_folio_unmap: allocate the
 *      destination on the target node, lock, try_to_migrate with
 *      TTU_BATCH_FLUSH),
 *   2. flushes the TLB once for the batch (try_to_unmap_flush),
 *   3. copies the batch (folios_mc_copy, or the offload migrator),
 *   4. moves each folio (folio_migrate_mapping, flags, copy if not yet
 *      copied, remove_migration_ptes, unlock, putback / free).
 * Time (k.clock) is charged per batch and per folio at those four steps.
 *
 * Deliberate simplifications, each observable only as a count: MIGRATE_SYNC
 * is one pass (the kernel's async-then-sync retry of migrate_pages_sync()
 * changes nothing without concurrent references in run-to-completion); a
 * folio that cannot be unmapped or whose references do not match fails at
 * once instead of after NR_MAX_MIGRATE_PAGES_RETRY passes; a THP whose
 * destination cannot be allocated is not split (the kernel splits and
 * retries the pages): it fails with -ENOMEM as an order-0 allocation
 * failure does. Hugetlb folios are not migrated here (-EBUSY).
 */
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../printk.js';
import { EACCES, EAGAIN, EBUSY, EFAULT, EINVAL, ENODEV, ENOENT, ENOMEM, EPERM } from '../errno.js';
import { GFP_HIGHUSER_MOVABLE, __GFP_THISNODE } from './page_alloc.js';
import { HPAGE_PMD_NR, PG_anon, PG_lru } from './page.js';
import { folioPut, folioTrylock, folioUnlock, folioGet } from './folio.js';
import { folioMigrateFlags, folioMigrateMapping, folioCopy, removeMigrationPtes, TTU_BATCH_FLUSH } from './migrate.js';
import { tryToMigrate } from './rmap_migrate.js';
import { runSync } from '../sched/sched.js';
import { T_PRESENT, T_TABLE, _PAGE_SPECIAL, pmdIndex, pmdTableOf, pteIndex, pteTableOf, ptePresent, pteType } from './pgtable.js';
import { VM_HUGETLB, VM_IO, VM_PFNMAP, type MmStruct } from './mm_types.js';
import { migratorCopyBatch } from './migrate_offload.js';

/** include/uapi/linux/mempolicy.h */
export const MPOL_MF_STRICT = 1 << 0;
export const MPOL_MF_MOVE = 1 << 1;
export const MPOL_MF_MOVE_ALL = 1 << 2;
/** mm/migrate.c: pages per migrate_pages_batch() call (HPAGE_PMD_NR with THP). */
export const NR_MAX_BATCHED_MIGRATION = HPAGE_PMD_NR;

/** page_to_nid() / folio_nid() of a RAM pfn; -1 for anything else (ZONE_DEVICE pages have their pgmap's node, not modelled). */
/**
 * migrate_folio_undo_src() + migrate_folio_undo_dst() (mm/migrate.c): a
 * folio that cannot migrate gets its mappings back (removeMigrationPtes
 * of src onto itself), both folios are unlocked, the destination is freed
 * and the source goes back to its LRU. Caller holds both folio locks.
 */
function migrateFolioUndo(k: Kernel, src: number, dst: number): void {
  removeMigrationPtes(k, src, src, false);
  folioUnlock(k, src);
  folioUnlock(k, dst);
  folioPut(k, dst);
  putbackFolio(k, src);
}

export function pageToNid(k: Kernel, pfn: number): number {
  return k.buddy.isRam(pfn) ? k.buddy.nid(pfn) : -1;
}

/** Outcome of migrate_pages(): the folios that did not migrate are back on the LRU. */
export interface MigrateResult {
  /** migrate_pages()'s return: folios not migrated, or a negative errno (-ENOMEM). */
  rc: number;
  succeeded: number;
  /** Head pfns that failed (already put back). */
  failed: number[];
}

/**
 * migrate_pages(from, alloc_migration_target, NULL, &mtc, MIGRATE_SYNC,
 * reason) for isolated RAM folios, target node `nid` (the mtc.nid of
 * do_move_pages_to_node; GFP_HIGHUSER_MOVABLE | __GFP_THISNODE).
 * Caller: each folio isolated from the LRU (holding the isolation
 * reference, no other reference of its own), not locked. Returns with every
 * folio either migrated (source freed, destination on the LRU) or put back
 * (putback_movable_pages()); no folio stays isolated.
 */
export function migratePages(k: Kernel, from: number[], nid: number): MigrateResult {
  const res: MigrateResult = { rc: 0, succeeded: 0, failed: [] };
  let i = 0;
  while (i < from.length) {
    // The batch: folios until NR_MAX_BATCHED_MIGRATION pages are reached (the
    // folio that reaches it is included, as list_cut_before(folio2) does).
    let nr = 0;
    let j = i;
    while (j < from.length && nr < NR_MAX_BATCHED_MIGRATION) nr += k.pages.folioNr(from[j++]);
    const rc = migratePagesBatch(k, from.slice(i, j), nid, res);
    i = j;
    if (rc === -ENOMEM) {
      // -ENOMEM ends migrate_pages(): the rest goes back.
      for (; i < from.length; i++) {
        putbackFolio(k, from[i]);
        res.failed.push(from[i]);
      }
      res.rc = -ENOMEM;
      return res;
    }
  }
  res.rc = res.failed.length;
  return res;
}

/** putback_movable_pages() for one folio: back on the LRU, dropping the isolation reference. */
function putbackFolio(k: Kernel, f: number): void {
  k.lru.putback(f);
}

/**
 * migrate_pages_batch(): unmap all, one TLB flush, batch copy, move all.
 * Returns 0 or -ENOMEM (no destination on the node).
 */
function migratePagesBatch(k: Kernel, batch: number[], nid: number, res: MigrateResult): number {
  const tr = k.tracer;
  if (tr === null) return migratePagesBatchInner(k, batch, nid, res);
  tr.begin('migrate_pages_batch', batch.length);
  try {
    return migratePagesBatchInner(k, batch, nid, res);
  } catch (e) {
    tr.raised(e);
    throw e;
  } finally {
    tr.end('migrate_pages_batch');
  }
}

function migratePagesBatchInner(k: Kernel, batch: number[], nid: number, res: MigrateResult): number {
  const p = k.pages;
  const clock = k.clock;
  if (clock !== null) clock.charge('migrate_pages_batch', clock.profile.kernel.migrateBatchNs);
  const srcs: number[] = [];
  const dsts: number[] = [];
  let rc = 0;
  // 1. migrate_folio_unmap() per folio.
  const tr = k.tracer;
  tr?.begin('migrate_folio_unmap', batch.length);
  try {
    for (let bi = 0; bi < batch.length; bi++) {
      const src = batch[bi];
      if (rc === -ENOMEM) {
        putbackFolio(k, src);
        res.failed.push(src);
        continue;
      }
      const nr = p.folioNr(src);
      const order = p.folioOrder(src); /* alloc_migration_target(): a folio of the source's order */
      const dst = k.buddy.alloc(order, GFP_HIGHUSER_MOVABLE | __GFP_THISNODE, 'migrate', nid);
      if (dst < 0) {
        rc = -ENOMEM;
        putbackFolio(k, src);
        res.failed.push(src);
        continue;
      }
      if (!folioTrylock(k, src)) {
        // MIGRATE_SYNC would sleep on the lock; in run-to-completion a held
        // folio lock is someone else's long-term business: fail the folio.
        k.buddy.free(dst, order);
        putbackFolio(k, src);
        res.failed.push(src);
        continue;
      }
      folioTrylock(k, dst);
      if (clock !== null) clock.charge('migrate_folio_unmap', folioCost(clock, nr) / 2);
      if (p.folioMapped(src)) runSync(k.sched, tryToMigrate(k, src, TTU_BATCH_FLUSH));
      if (p.folioMapped(src)) {
        // Could not unmap every mapping: restore the entries installed and fail.
        migrateFolioUndo(k, src, dst);
        res.failed.push(src);
        continue;
      }
      srcs.push(src);
      dsts.push(dst);
    }
  } finally {
    tr?.end('migrate_folio_unmap');
  }
  if (srcs.length === 0) return rc;
  // 2. try_to_unmap_flush(): one TLB flush for the batch (in migrateBatchNs).
  // 3. The batch copy: folios_mc_copy() or the offload migrator.
  const copied = k.tracer === null ? migratorCopyBatch(k, dsts, srcs) : tracedCopyBatch(k, dsts, srcs);
  // 4. migrate_folio_move() per folio.
  tr?.begin('migrate_folio_move', srcs.length);
  try {
    for (let bi = 0; bi < srcs.length; bi++) {
      const src = srcs[bi];
      const dst = dsts[bi];
      const nr = p.folioNr(src);
      if (clock !== null) clock.charge('migrate_folio_move', folioCost(clock, nr) / 2);
      if (folioMigrateMapping(k, dst, src, 0) === -EAGAIN) {
        // An unexpected reference (a GUP pin, ...): the kernel retries, then fails.
        migrateFolioUndo(k, src, dst);
        res.failed.push(src);
        continue;
      }
      folioMigrateFlags(k, dst, src);
      if (copied === null || !copied[bi]) {
        folioCopy(k, dst, src);
        if (clock !== null) clock.charge('folio_copy', nr * clock.cpuCopyPageNs);
      }
      k.lru.add(dst);
      removeMigrationPtes(k, src, dst, false);
      folioUnlock(k, src);
      folioUnlock(k, dst);
      folioPut(k, dst); /* the allocation reference; the mappings and the LRU batch hold theirs */
      folioPut(k, src); /* the isolation reference: the source is freed */
      res.succeeded++;
      k.vmstat.pgmigrate_success += nr;
      if (nr === HPAGE_PMD_NR) k.vmstat.thp_migration_success++;
    }
  } finally {
    tr?.end('migrate_folio_move');
  }
  return rc;
}

/**
 * The batch copy with a trace span 'migrate_dma' when a migrator is active.
 * (Trace spans of the batch: migrate_pages_batch around all of it,
 * migrate_folio_unmap / migrate_folio_move around the loops over its
 * folios; the CPU copy is inside migrate_folio_move.)
 */
function tracedCopyBatch(k: Kernel, dsts: number[], srcs: number[]): boolean[] | null {
  const tr = k.tracer!;
  const st = k.migrateOffload as { active: { name: string } | null } | null;
  if (st === null || st.active === null) return migratorCopyBatch(k, dsts, srcs); /* folios_copy: per folio in migrate_folio_move */
  tr.begin('migrate_dma', srcs.length);
  try {
    return migratorCopyBatch(k, dsts, srcs);
  } finally {
    tr.end('migrate_dma');
  }
}

/**
 * The kernel work of migrating one folio of nr pages (excluding the copy):
 * migrateFolioNs + per PTE migratePteNs, or migratePmdNs for a PMD-mapped
 * THP (an mTHP folio is PTE-mapped: nr PTEs). Charged half in the unmap
 * step (allocation, lock, isolation, migration entries in) and half in the
 * move step (mapping transfer, entries out, putback, free): the split is not
 * calibrated, only the sum is.
 */
function folioCost(clock: NonNullable<Kernel['clock']>, nr: number): number {
  const kc = clock.profile.kernel;
  if (nr === HPAGE_PMD_NR) return kc.migrateFolioNs + kc.migratePmdNs;
  return kc.migrateFolioNs + nr * kc.migratePteNs;
}

/** vma_migratable(): not VM_IO / VM_PFNMAP (hugetlb: not migrated by this model). */
export function vmaMigratable(flags: number): boolean {
  return (flags & (VM_IO | VM_PFNMAP | VM_HUGETLB)) === 0;
}

/**
 * folio_walk_start(vma, addr, FW_ZEROPAGE) reduced to what move_pages
 * needs: the page a present PTE or PMD maps (the zero pages included), or
 * -1 for none / a non-present entry.
 */
export function folioWalk(k: Kernel, mm: MmStruct, addr: number): number {
  const pmd = pmdTableOf(mm.pgd, addr, false);
  if (pmd === null) return -1;
  const i = pmdIndex(addr);
  const t = pteType(pmd.f[i]);
  if (t === T_PRESENT) return pmd.v[i] + pteIndex(addr);
  if (t !== T_TABLE) return -1;
  const pt = pteTableOf(mm.pgd, addr);
  if (pt === null) return -1;
  const j = pteIndex(addr);
  if (!ptePresent(pt.f[j])) return -1;
  if ((pt.f[j] & _PAGE_SPECIAL) && pt.v[j] !== k.zeroPfn) return -1; /* vm_normal_page() == NULL */
  return pt.v[j];
}

/**
 * add_folio_for_migration() + __add_folio_for_migration(): look up addr,
 * isolate its folio onto `list`. Returns 1 (queued), 0 (already on node),
 * or -EFAULT (no VMA, not migratable, zero page), -ENOENT (nothing mapped,
 * a ZONE_DEVICE page), -EACCES (shared without MPOL_MF_MOVE_ALL), -EBUSY
 * (not on an LRU, e.g. already queued). Caller: mmap_lock taken inside.
 */
function addFolioForMigration(k: Kernel, mm: MmStruct, addr: number, node: number, list: number[], migrateAll: boolean): number {
  const vma = mm.vmaLookup(addr);
  if (vma === null || !vmaMigratable(vma.flags)) return -EFAULT;
  const page = folioWalk(k, mm, addr);
  if (page < 0) return -ENOENT;
  if (page === k.zeroPfn || (page >= k.hugeZeroPfn && page < k.hugeZeroPfn + HPAGE_PMD_NR)) return -EFAULT;
  const p = k.pages;
  if (p.pgmap[page] !== 0) return -ENOENT;
  const folio = p.folioPfn(page);
  if (pageToNid(k, folio) === node) return 0;
  // folio_maybe_mapped_shared()
  if (!migrateAll && p.folioMapcount(folio) > (p.folioNr(folio) === 1 ? 1 : p.folioNr(folio))) return -EACCES;
  if (!(p.flags[folio] & PG_lru)) {
    k.lru.drain(); /* the isolation would fail on a folio still in an LRU add batch */
  }
  folioGet(k, folio); /* folio_walk's reference is implied; isolation needs one held */
  const ok = k.lru.isolate(folio);
  folioPut(k, folio);
  if (!ok) return -EBUSY;
  list.push(folio);
  return 1;
}

/**
 * do_move_pages_to_node() + the status update of move_pages_and_store_status():
 * migrate `list` to `node`; on success store `node` in status[start, end).
 * Returns 0, the number of pages not migrated plus those not attempted
 * (> 0), or a negative errno.
 */
function movePagesAndStoreStatus(k: Kernel, node: number, list: number[], status: Int32Array, start: number, i: number, nrPages: number): number {
  if (list.length === 0) return 0;
  const r = migratePages(k, list.splice(0), node);
  if (r.rc !== 0) return r.rc > 0 ? r.rc + nrPages - i : r.rc;
  status.fill(node, start, i);
  return 0;
}

/**
 * do_pages_move(): move each pages[i] to nodes[i], in runs of equal target
 * node, storing the per-page outcome in status[] (the node, or a negative
 * errno). Returns 0, the count of pages not migrated, or -ENODEV (target
 * node does not exist or has no memory) / -EACCES (node not in the task's
 * allowed nodes; the model allows all).
 */
function doPagesMove(k: Kernel, mm: MmStruct, pages: ArrayLike<number>, nodes: ArrayLike<number>, status: Int32Array, flags: number): number {
  const list: number[] = [];
  let currentNode = -1;
  let start = 0;
  let err = 0;
  let i = 0;
  const n = pages.length;
  const nrNodes = k.buddy.nrNodes;
  for (; i < n; i++) {
    const node = nodes[i];
    if (!Number.isInteger(node) || node < 0 || node >= nrNodes) {
      err = -ENODEV; /* MAX_NUMNODES / node_state(node, N_MEMORY) */
      break;
    }
    if (currentNode === -1) {
      currentNode = node;
      start = i;
    } else if (node !== currentNode) {
      err = movePagesAndStoreStatus(k, currentNode, list, status, start, i, n);
      if (err) return err;
      start = i;
      currentNode = node;
    }
    err = addFolioForMigration(k, mm, pages[i], currentNode, list, (flags & MPOL_MF_MOVE_ALL) !== 0);
    if (err > 0) continue; /* queued */
    // Already on the node (0) or an error: store it, then flush the run so far.
    status[i] = err === 0 ? currentNode : err;
    err = movePagesAndStoreStatus(k, currentNode, list, status, start, i, n);
    if (err) {
      if (err > 0) err--; /* page i is accounted for */
      return err;
    }
    currentNode = -1;
  }
  const err1 = movePagesAndStoreStatus(k, currentNode, list, status, start, i, n);
  if (err >= 0) err = err1;
  return err;
}

/** do_pages_stat(): status[i] = the node of the page at pages[i], or -EFAULT / -ENOENT. */
function doPagesStat(k: Kernel, mm: MmStruct, pages: ArrayLike<number>, status: Int32Array): number {
  for (let i = 0; i < pages.length; i++) {
    const vma = mm.vmaLookup(pages[i]);
    if (vma === null) {
      status[i] = -EFAULT;
      continue;
    }
    const page = folioWalk(k, mm, pages[i]);
    if (page < 0) status[i] = -ENOENT;
    else if (page === k.zeroPfn || (page >= k.hugeZeroPfn && page < k.hugeZeroPfn + HPAGE_PMD_NR)) status[i] = -EFAULT;
    else if (k.pages.pgmap[page] !== 0) status[i] = -ENOENT;
    else status[i] = pageToNid(k, page);
  }
  return 0;
}

/**
 * move_pages(2) (kernel_move_pages) for the calling task's own mm:
 * nodes === null asks for the nodes only (do_pages_stat). flags: MPOL_MF_MOVE
 * or MPOL_MF_MOVE_ALL (which needs CAP_SYS_NICE: `capSysNice`). status
 * must have pages.length entries. Returns 0, the number of pages not
 * migrated, or -EINVAL / -EPERM / -ENODEV / -EACCES / -ENOMEM.
 * -E2BIG is not returned: the kernel stopped generating it in 2.6.29 (the
 * array is processed in chunks), and so does the model.
 */
export function sysMovePages(k: Kernel, mm: MmStruct, pages: ArrayLike<number>, nodes: ArrayLike<number> | null, status: Int32Array, flags: number, capSysNice = true): number {
  if (flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)) return -EINVAL;
  if ((flags & MPOL_MF_MOVE_ALL) && !capSysNice) return -EPERM;
  if (status.length < pages.length || (nodes !== null && nodes.length < pages.length)) return -EFAULT;
  const tr = k.tracer;
  tr?.begin('kernel_move_pages', pages.length);
  let r: number;
  try {
    r = nodes === null ? doPagesStat(k, mm, pages, status) : doPagesMove(k, mm, pages, nodes, status, flags);
  } finally {
    tr?.end('kernel_move_pages');
  }
  if (k.checkHook !== null && r === 0) checkStatusTruth(k, mm, pages, status);
  k.checkpoint('move_pages');
  return r;
}

/**
 * Checked mode: a status entry that names a node is the truth: the page at
 * that address is mapped and sits on that node (a successful move_pages()
 * leaves no page behind and no folio isolated).
 */
function checkStatusTruth(k: Kernel, mm: MmStruct, pages: ArrayLike<number>, status: Int32Array): void {
  for (let i = 0; i < pages.length; i++) {
    if (status[i] < 0) continue;
    const page = folioWalk(k, mm, pages[i]);
    const nid = page < 0 ? -1 : pageToNid(k, page);
    if (nid !== status[i]) throw new KernelBug('BUG', 'move_pages: status names a node the page is not on', `pages[${i}] = 0x${pages[i].toString(16)}: status ${status[i]}, page ${page} on node ${nid}`);
    if (k.pages.flags[k.pages.folioPfn(page)] & PG_lru) continue;
    if (!k.lru.batch.includes(k.pages.folioPfn(page))) throw new KernelBug('BUG', 'move_pages: a folio stayed isolated', `pages[${i}]: pfn ${page} neither on an LRU nor in the LRU add batch`);
  }
}

/**
 * migrate_pages(2) (kernel_migrate_pages → do_migrate_pages): move every
 * page of `mm` on a node of `fromNodes` to the node at the same position of
 * `toNodes` (the kernel's node-to-node mapping when the sets have the same
 * size; the model requires that). Returns the number of pages not migrated,
 * or -EINVAL (bad node sets).
 */
export function sysMigratePages(k: Kernel, mm: MmStruct, fromNodes: number[], toNodes: number[]): number {
  const nrNodes = k.buddy.nrNodes;
  if (fromNodes.length !== toNodes.length || [...fromNodes, ...toNodes].some((n) => !Number.isInteger(n) || n < 0 || n >= nrNodes)) return -EINVAL;
  let notMigrated = 0;
  k.lru.drain(); /* lru_cache_disable() / lru_add_drain_all() of do_migrate_pages() */
  for (let x = 0; x < fromNodes.length; x++) {
    if (fromNodes[x] === toNodes[x]) continue;
    const list: number[] = [];
    const seen = new Set<number>();
    for (const vma of mm.vmas) {
      if (!vmaMigratable(vma.flags)) continue;
      for (let a = vma.start; a < vma.end; a += 4096) {
        const page = folioWalk(k, mm, a);
        if (page < 0 || k.pages.pgmap[page] !== 0 || !k.buddy.isRam(page)) continue;
        const f = k.pages.folioPfn(page);
        if (pageToNid(k, f) !== fromNodes[x] || seen.has(f) || !(k.pages.flags[f] & PG_lru)) continue;
        if (k.pages.flags[f] & PG_anon && k.pages.folioMapcount(f) > k.pages.folioNr(f)) continue; /* shared: MPOL_MF_MOVE only */
        folioGet(k, f);
        seen.add(f);
        if (k.lru.isolate(f)) list.push(f);
        folioPut(k, f);
      }
    }
    const r = migratePages(k, list, toNodes[x]);
    notMigrated += r.rc > 0 ? r.rc : r.rc < 0 ? r.failed.length : 0;
  }
  k.checkpoint('migrate_pages');
  return notMigrated;
}

