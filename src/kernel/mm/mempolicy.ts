// SPDX-License-Identifier: GPL-2.0-only
/**
 * NUMA memory policies (mm/mempolicy.c), as far as they place pages:
 * set_mempolicy(2) (the task policy) and mbind(2) (the policy of a range of
 * VMAs, optionally moving the pages already there). The allocation side
 * (get_vma_policy, policy_nodemask, vma_alloc_folio) is mm/mpol_alloc.ts.
 *
 * Modes: MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE,
 * MPOL_LOCAL. Not modelled, and refused with -EINVAL rather than silently
 * accepted: MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE. Mode flags:
 * MPOL_F_STATIC_NODES / MPOL_F_RELATIVE_NODES are checked as the kernel
 * checks them and otherwise change nothing (they matter only when a cpuset
 * rebinds the policy; the model has no cpusets); MPOL_F_NUMA_BALANCING is
 * accepted with MPOL_BIND only (no NUMA balancing in the model).
 */
import type { Kernel } from '../kernel.js';
import type { K } from '../sched/sched.js';
import { EFAULT, EINVAL, EIO, EPERM } from '../errno.js';
import type { Mempolicy, MmStruct } from './mm_types.js';
import { PAGE_SIZE, PG_lru, HPAGE_PMD_NR } from './page.js';
import { folioGet, folioPut } from './folio.js';
import { vmaIsolateRange } from './mmap.js';
import { MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT, folioWalk, migratePages, pageToNid, vmaMigratable } from './migrate_numa.js';
import {
  LOCAL_NODE, MPOL_BIND, MPOL_DEFAULT, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_MAX, MPOL_PREFERRED, policyTargetNode,
} from './mpol_alloc.js';
import { mmapWriteLock } from './mmap_lock.js';

export { MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE, MPOL_MAX } from './mpol_alloc.js';
export { MPOL_MF_STRICT, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL } from './migrate_numa.js';

/* include/uapi/linux/mempolicy.h: mode flags, or'ed into the mode argument */
export const MPOL_F_STATIC_NODES = 1 << 15;
export const MPOL_F_RELATIVE_NODES = 1 << 14;
export const MPOL_F_NUMA_BALANCING = 1 << 13;
export const MPOL_MODE_FLAGS = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING;
/** MPOL_MF_VALID: the flags mbind(2) accepts. */
export const MPOL_MF_VALID = MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL;

/**
 * sanitize_mpol_flags() + validate_mpol_flags(): split `modeArg` into mode
 * and mode flags. Returns them, or -EINVAL (mode >= MPOL_MAX, both
 * STATIC and RELATIVE, NUMA_BALANCING without MPOL_BIND).
 */
function sanitizeMpolFlags(modeArg: number): { mode: number; flags: number } | number {
  const flags = modeArg & MPOL_MODE_FLAGS;
  const mode = modeArg & ~MPOL_MODE_FLAGS;
  if (!Number.isInteger(mode) || mode < 0 || mode >= MPOL_MAX) return -EINVAL;
  if ((flags & MPOL_F_STATIC_NODES) && (flags & MPOL_F_RELATIVE_NODES)) return -EINVAL;
  if ((flags & MPOL_F_NUMA_BALANCING) && mode !== MPOL_BIND) return -EINVAL;
  return { mode, flags };
}

/**
 * mpol_new() + mpol_set_nodemask(): the policy for mode and nodemask, null
 * for MPOL_DEFAULT, or -EINVAL. The mask is first and-ed with the nodes
 * that have memory (node_states[N_MEMORY]: the model's nodes), as the
 * kernel does; a mode that needs nodes and is left with none is -EINVAL.
 * MPOL_PREFERRED with an empty mask is MPOL_LOCAL; MPOL_PREFERRED keeps
 * first_node() of the mask.
 */
function mpolNew(k: Kernel, mode: number, flags: number, nodemask: readonly number[]): Mempolicy | null | number {
  if (nodemask.some((n) => !Number.isInteger(n) || n < 0)) return -EINVAL; /* get_nodes(): not a node number */
  if (mode === MPOL_DEFAULT) return nodemask.length ? -EINVAL : null;
  if (mode === MPOL_LOCAL) {
    if (nodemask.length || (flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES))) return -EINVAL;
    return { mode: MPOL_LOCAL, flags, nodes: [] };
  }
  if (mode === MPOL_PREFERRED && nodemask.length === 0) {
    if (flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES)) return -EINVAL;
    return { mode: MPOL_LOCAL, flags, nodes: [] };
  }
  if (nodemask.length === 0) return -EINVAL;
  if (mode !== MPOL_PREFERRED && mode !== MPOL_BIND && mode !== MPOL_INTERLEAVE) return -EINVAL; /* PREFERRED_MANY, WEIGHTED_INTERLEAVE: not modelled */
  const nodes = [...new Set(nodemask)].filter((n) => n < k.buddy.nrNodes).sort((a, b) => a - b);
  if (nodes.length === 0) return -EINVAL;
  return { mode, flags, nodes: mode === MPOL_PREFERRED ? [nodes[0]] : nodes };
}

/**
 * The allocator's task-policy hook, installed with the first
 * set_mempolicy(): for an allocation made outside a VMA fault in the
 * task's context (a VMA fault goes through vma_alloc_folio(),
 * mpol_alloc.ts). MPOL_INTERLEAVE here is interleave_nodes(): the node
 * after the task's il_prev, round robin.
 */
function table(k: Kernel): Map<number, { mode: number; nodes: number[]; ilPrev: number }> {
  const m = k.buddy.taskPolicies;
  if (k.buddy.policy === null) {
    k.buddy.policy = () => {
      if (m.size === 0) return null;
      const p = m.get(k.current.pid);
      if (p === undefined) return null;
      if (p.mode === MPOL_INTERLEAVE) {
        const i = (p.nodes.indexOf(p.ilPrev) + 1) % p.nodes.length;
        p.ilPrev = p.nodes[i];
        return { nodes: [p.ilPrev], bind: false };
      }
      if (p.mode === MPOL_LOCAL) return { nodes: [LOCAL_NODE], bind: false };
      return { nodes: p.nodes, bind: p.mode === MPOL_BIND };
    };
  }
  return m;
}

/**
 * set_mempolicy(mode | mode flags, nodemask) for the current task
 * (kernel_set_mempolicy → do_set_mempolicy, k.current.pid). Returns 0 or
 * -EINVAL (unknown mode or flags, a mask the mode does not allow, no node
 * with memory left in the mask).
 */
export function sysSetMempolicy(k: Kernel, modeArg: number, nodemask: number[]): number {
  const mf = sanitizeMpolFlags(modeArg);
  if (typeof mf === 'number') return mf;
  const pol = mpolNew(k, mf.mode, mf.flags, nodemask);
  if (typeof pol === 'number') return pol;
  if (pol === null) {
    table(k).delete(k.current.pid);
    return 0;
  }
  table(k).set(k.current.pid, { mode: pol.mode, nodes: [...pol.nodes], ilPrev: pol.nodes.length ? pol.nodes[pol.nodes.length - 1] : LOCAL_NODE });
  return 0;
}

/** Outcome counters of the last mbind() on a machine, for tests and tools. */
export interface MbindStats {
  queued: number;
  migrated: number;
  failed: number;
}

/**
 * queue_pages_range(mm, start, end, nmask, flags | MPOL_MF_INVERT, pagelist):
 * every present, normal folio mapped in [start, end) that is not on a node
 * of nmask (the mbind() caller's mask) is "misplaced"; an empty mask
 * (MPOL_DEFAULT, MPOL_LOCAL) is the local node here (see doMbind). With MPOL_MF_MOVE /
 * MOVE_ALL it is isolated onto `queued` (migrate_folio_add: a folio mapped
 * by more than one process only with MOVE_ALL, otherwise it stays and is
 * not counted); a misplaced folio that cannot be isolated or sits in a VMA
 * that cannot migrate counts as failed. With MPOL_MF_STRICT alone the
 * first misplaced folio counts as failed and ends the walk. Zero pages,
 * ZONE_DEVICE pages and non-present entries are skipped.
 * Returns the failed count, or -EFAULT when [start, end) has a hole
 * (no MPOL_MF_DISCONTIG_OK for mbind).
 */
function queuePagesRange(k: Kernel, mm: MmStruct, start: number, end: number, nmask: readonly number[], flags: number, queued: Array<{ folio: number; addr: number; vma: NonNullable<ReturnType<MmStruct['vmaLookup']>> }>): number {
  // The hole check first, as the walk would meet it.
  let a = start;
  while (a < end) {
    const v = mm.vmaLookup(a);
    if (v === null) return -EFAULT;
    a = v.end;
  }
  const nodes = nmask.length === 0 ? [LOCAL_NODE] : nmask;
  const move = (flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)) !== 0;
  const p = k.pages;
  const seen = new Set<number>();
  let failed = 0;
  let drained = false;
  for (a = start; a < end; a += PAGE_SIZE) {
    const vma = mm.vmaLookup(a)!;
    const page = folioWalk(k, mm, a);
    if (page < 0 || page === k.zeroPfn || (page >= k.hugeZeroPfn && page < k.hugeZeroPfn + HPAGE_PMD_NR)) continue;
    if (p.pgmap[page] !== 0 || !k.buddy.isRam(page)) continue;
    const folio = p.folioPfn(page);
    if (seen.has(folio)) continue;
    seen.add(folio);
    if (nodes.includes(pageToNid(k, folio))) continue; /* queue_folio_required() with MPOL_MF_INVERT */
    if (!move || !vmaMigratable(vma.flags)) {
      failed++;
      if (!move) break; /* strictly_unmovable(): MPOL_MF_STRICT alone stops at the first */
      continue;
    }
    // migrate_folio_add()
    if (!(flags & MPOL_MF_MOVE_ALL) && p.folioMapcount(folio) > (p.folioNr(folio) === 1 ? 1 : p.folioNr(folio))) continue;
    if (!(p.flags[folio] & PG_lru) && !drained) {
      k.lru.drain(); /* the folio may still sit in an LRU add batch */
      drained = true;
    }
    folioGet(k, folio);
    const ok = k.lru.isolate(folio);
    folioPut(k, folio);
    if (!ok) {
      failed++;
      continue;
    }
    queued.push({ folio, addr: a, vma });
  }
  return failed;
}

/**
 * mbind(2) (kernel_mbind → do_mbind) on the current task's `mm`: set the
 * policy of [start, start + len) (splitting VMAs at the ends, as
 * mbind_range/vma_modify_policy) and, with MPOL_MF_MOVE (pages mapped only
 * by this process) or MPOL_MF_MOVE_ALL (all; needs CAP_SYS_NICE:
 * `capSysNice`), migrate the pages in the range that are not on a node of
 * the policy to the node the policy names for them
 * (alloc_migration_target_by_mpol: per page for MPOL_INTERLEAVE).
 * MPOL_MF_STRICT: -EIO if a page could not be moved or (without MOVE*)
 * a page is not on a node of the policy; the policy is set all the same,
 * as do_mbind() applies mbind_range() before it checks.
 *
 * Returns 0, -EINVAL (flags, unaligned start, wrapping range, mode, mask),
 * -EPERM (MOVE_ALL without CAP_SYS_NICE), -EFAULT (a hole in the range),
 * -EIO (MPOL_MF_STRICT, above), or the -errno of a VMA split. len 0: 0.
 * Takes mmap_lock for write (held across the migration, as do_mbind).
 *
 * Deliberate differences: with MPOL_DEFAULT or MPOL_LOCAL and a MOVE flag
 * the kernel queues every page (the empty mask inverted) and migrates them
 * to the local node, node-0 pages included; the model moves only the pages
 * not on the local node (same placement, fewer copies). A page queued for a node
 * that has no free page fails (migrate_pages() with __GFP_THISNODE) where
 * MPOL_BIND over several nodes could fall back to another node of the set.
 */
export function* doMbind(k: Kernel, mm: MmStruct, start: number, len: number, modeArg: number, nodemask: readonly number[], flags: number, capSysNice = true, stats?: MbindStats): K<number> {
  const mf = sanitizeMpolFlags(modeArg);
  if (typeof mf === 'number') return mf;
  if (flags & ~MPOL_MF_VALID) return -EINVAL;
  if ((flags & MPOL_MF_MOVE_ALL) && !capSysNice) return -EPERM;
  if (!Number.isInteger(start) || start % PAGE_SIZE !== 0 || start < 0) return -EINVAL;
  if (mf.mode === MPOL_DEFAULT) flags &= ~MPOL_MF_STRICT;
  if (!Number.isInteger(len) || len < 0) return -EINVAL;
  len = Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  const end = start + len;
  if (end > 2 ** 64) return -EINVAL; /* end < start in unsigned arithmetic */
  if (end === start) return 0;
  const pol = mpolNew(k, mf.mode, mf.flags, nodemask);
  if (typeof pol === 'number') return pol;
  const s = k.sched;
  yield* mmapWriteLock(mm);
  try {
    const queued: Array<{ folio: number; addr: number; vma: NonNullable<ReturnType<MmStruct['vmaLookup']>> }> = [];
    // The mask the pages are checked against is the caller's (and-ed with
    // N_MEMORY), not the policy's: MPOL_PREFERRED keeps only its first node.
    const nmask = [...new Set(nodemask)].filter((n) => n < k.buddy.nrNodes);
    let nrFailed = queuePagesRange(k, mm, start, end, nmask, flags, queued);
    let err = 0;
    if (nrFailed < 0) {
      err = nrFailed;
      nrFailed = 0;
    } else {
      // mbind_range() for each VMA of the range.
      let a = start;
      while (a < end) {
        const v = mm.vmaLookup(a)!;
        const r = yield* vmaIsolateRange(v, Math.max(start, v.start), Math.min(end, v.end));
        if (typeof r === 'number') {
          err = r;
          break;
        }
        r.policy = pol;
        a = r.end;
      }
    }
    let migrated = 0;
    if (err === 0 && queued.length > 0) {
      // migrate_pages(pagelist, alloc_migration_target_by_mpol, ..., MR_MEMPOLICY_MBIND)
      const byNode = new Map<number, number[]>();
      for (const q of queued) {
        const order = k.pages.folioNr(q.folio) === 1 ? 0 : 9;
        const nid = pol === null ? LOCAL_NODE : policyTargetNode(pol, q.vma, q.addr, order);
        let l = byNode.get(nid);
        if (l === undefined) byNode.set(nid, (l = []));
        l.push(q.folio);
      }
      for (const [nid, list] of [...byNode].sort((x, y) => x[0] - y[0])) {
        const r = migratePages(k, list, nid);
        migrated += r.succeeded;
        nrFailed += r.failed.length;
      }
    } else {
      for (const q of queued) k.lru.putback(q.folio); /* putback_movable_pages() */
    }
    if (err === 0 && nrFailed > 0 && (flags & MPOL_MF_STRICT)) err = -EIO;
    if (stats !== undefined) Object.assign(stats, { queued: queued.length, migrated, failed: nrFailed });
    return err;
  } finally {
    mm.mmapLock.writeUnlock(s);
  }
}
