// SPDX-License-Identifier: GPL-2.0-only
/**
 * Allocation under a memory policy (mm/mempolicy.c): get_vma_policy(),
 * policy_nodemask() / interleave_nid() and vma_alloc_folio() for the page
 * faults of a VMA. The policies themselves are made by set_mempolicy(2)
 * and mbind(2) (mm/mempolicy.ts).
 *
 * A VMA's policy (vma->vm_policy, set by mbind) wins over the task's
 * (set_mempolicy); with neither, the local node (node 0: the model's CPUs
 * sit there) with fallback to the others. What a mode does to an
 * allocation (policy_nodemask):
 *   MPOL_PREFERRED   the policy's node first, then fallback
 *   MPOL_LOCAL       the local node first, then fallback
 *   MPOL_BIND        the policy's nodes only (nearest first: ascending from
 *                    the local node 0), no fallback: -ENOMEM / OOM
 *   MPOL_INTERLEAVE  node number ilx % weight of the set, then fallback;
 *                    ilx = (vm_pgoff >> order) + ((addr - vm_start) >>
 *                    (PAGE_SHIFT + order)), so the page at a given offset of
 *                    the mapping always gets the same node
 * Deliberate differences: the THP fast path of alloc_pages_mpol() (try the
 * preferred node alone with __GFP_THISNODE first) is not modelled: a THP
 * allocation falls back like an order-0 one; shmem's shared policy
 * (shmem_get_policy) is not modelled: shmem pages use the task policy.
 */
import type { Kernel } from '../kernel.js';
import type { Mempolicy, Vma } from './mm_types.js';

/* include/uapi/linux/mempolicy.h: enum { MPOL_DEFAULT, ... MPOL_MAX } */
export const MPOL_DEFAULT = 0;
export const MPOL_PREFERRED = 1;
export const MPOL_BIND = 2;
export const MPOL_INTERLEAVE = 3;
export const MPOL_LOCAL = 4;
export const MPOL_PREFERRED_MANY = 5;
export const MPOL_WEIGHTED_INTERLEAVE = 6;
export const MPOL_MAX = 7;

/** numa_node_id(): the node of the CPU the model runs on. */
export const LOCAL_NODE = 0;

/** interleave_nid(pol, ilx): the (ilx % nodes)-th node of the policy's set. */
export function interleaveNid(pol: Mempolicy, ilx: number): number {
  return pol.nodes[ilx % pol.nodes.length];
}

/**
 * The interleave index of get_vma_policy(): (vm_pgoff >> order) +
 * ((addr - vm_start) >> (PAGE_SHIFT + order)).
 */
export function interleaveIndex(vma: Vma, addr: number, order: number): number {
  return Math.floor(vma.pgoff / 2 ** order) + Math.floor((addr - vma.start) / 2 ** (12 + order));
}

/**
 * policy_nodemask() reduced to what the model's allocator takes: the nodes
 * to try in order and whether the others are forbidden (MPOL_BIND).
 */
export function policyNodes(pol: Mempolicy, ilx: number): { nodes: readonly number[]; bind: boolean } {
  switch (pol.mode) {
    case MPOL_PREFERRED:
      return { nodes: [pol.nodes[0]], bind: false };
    case MPOL_BIND:
      return { nodes: pol.nodes, bind: true };
    case MPOL_INTERLEAVE:
      return { nodes: [interleaveNid(pol, ilx)], bind: false };
    default:
      return { nodes: [LOCAL_NODE], bind: false };
  }
}

/**
 * The node a folio at `addr` of `vma` should be on under `pol` (the target
 * alloc_migration_target_by_mpol() allocates on when mbind(MPOL_MF_MOVE)
 * migrates): the first node policyNodes() names.
 */
export function policyTargetNode(pol: Mempolicy, vma: Vma, addr: number, order: number): number {
  return policyNodes(pol, interleaveIndex(vma, addr, order)).nodes[0];
}

/**
 * get_vma_policy(vma, addr, order, &ilx): the VMA's policy, else the
 * current task's; null is the default policy (local allocation). The task
 * policy is the one set_mempolicy() stored for k.current.pid.
 */
export function getVmaPolicy(k: Kernel, vma: Vma): Mempolicy | null {
  if (vma.policy !== null) return vma.policy;
  const tp = k.buddy.taskPolicies.size === 0 ? undefined : k.buddy.taskPolicies.get(k.current.pid);
  return tp === undefined ? null : { mode: tp.mode, flags: 0, nodes: tp.nodes };
}

/**
 * vma_alloc_folio(gfp, order, vma, addr): allocate a folio for a fault at
 * addr of vma under get_vma_policy() (alloc_pages_mpol). Returns the head
 * pfn or -1 like BuddyAllocator.alloc(). No policy anywhere (or one node):
 * exactly alloc(order, gfp, site), so a machine without policies behaves
 * as before.
 */
export function vmaAllocFolio(k: Kernel, vma: Vma, addr: number, order: number, gfp: number, site: string): number {
  const b = k.buddy;
  if (b.nrNodes === 1 || (vma.policy === null && b.taskPolicies.size === 0)) return b.alloc(order, gfp, site);
  const pol = getVmaPolicy(k, vma);
  if (pol === null) return b.alloc(order, gfp, site);
  b.allocPolicy = policyNodes(pol, pol.mode === MPOL_INTERLEAVE ? interleaveIndex(vma, addr, order) : 0);
  try {
    return b.alloc(order, gfp, site);
  } finally {
    b.allocPolicy = null;
  }
}
