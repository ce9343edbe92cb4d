// SPDX-License-Identifier: GPL-2.0-only
/**
 * set_mempolicy(2) (mm/mempolicy.c), as far as it places pages: the task
 * policy MPOL_DEFAULT / MPOL_PREFERRED / MPOL_BIND decides the node of the
 * task's allocations that name no node (page faults, the driver
 * allocations it makes in its context), through BuddyAllocator.policy.
 *
 * Not modelled: mbind(2) (per-VMA policy: the allocator is not told the
 * VMA), MPOL_INTERLEAVE / WEIGHTED_INTERLEAVE / PREFERRED_MANY / LOCAL,
 * MPOL_F_* mode flags, cpusets. They get -EINVAL, not silent acceptance.
 */
import type { Kernel } from '../kernel.js';
import { EINVAL } from '../errno.js';

/* include/uapi/linux/mempolicy.h */
export const MPOL_DEFAULT = 0;
export const MPOL_PREFERRED = 1;
export const MPOL_BIND = 2;

/** Policies per pid, on the machine's allocator; the lookup hook is installed with the first set_mempolicy(). */
function table(k: Kernel): Map<number, { mode: number; nodes: number[] }> {
  const m = k.buddy.taskPolicies;
  if (k.buddy.policy === null) {
    k.buddy.policy = () => {
      if (m.size === 0) return null;
      const p = m.get(k.current.pid);
      return p === undefined ? null : { nodes: p.nodes, bind: p.mode === MPOL_BIND };
    };
  }
  return m;
}

/**
 * set_mempolicy(mode, nodemask) for the current task (k.current.pid).
 * MPOL_DEFAULT: no mask; MPOL_PREFERRED: exactly one node (the first of the
 * mask, as the kernel's first_node()), fallback allowed; MPOL_BIND: the
 * mask's nodes only. Returns 0 or -EINVAL (unknown mode, empty mask, a node
 * without memory).
 */
export function sysSetMempolicy(k: Kernel, mode: number, nodemask: number[]): number {
  const nr = k.buddy.nrNodes;
  if (mode === MPOL_DEFAULT) {
    if (nodemask.length) return -EINVAL;
    table(k).delete(k.current.pid);
    return 0;
  }
  if (mode !== MPOL_PREFERRED && mode !== MPOL_BIND) return -EINVAL;
  if (nodemask.length === 0 || nodemask.some((n) => !Number.isInteger(n) || n < 0 || n >= nr)) return -EINVAL;
  const nodes = [...new Set(nodemask)].sort((a, b) => a - b);
  table(k).set(k.current.pid, { mode, nodes: mode === MPOL_PREFERRED ? [nodes[0]] : nodes });
  return 0;
}
