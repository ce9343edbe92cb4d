// SPDX-License-Identifier: GPL-2.0-only
/**
 * The system RAM page allocator (mm/page_alloc.c), reduced to what this
 * subsystem needs: orders 0 to HPAGE_PMD_ORDER (0 and 9 for base pages and
 * PMD THPs, 1 to 8 for mTHP folios), the zero page and the huge zero page,
 * and failure injection at allocation sites.
 *
 * Free pages carry PG_buddy. A free piece of order o (2^o pages, aligned)
 * sits on the free list of order o, a doubly linked list threaded through
 * the same lruPrev/lruNext arrays the LRU uses (a page is never on both, as
 * in the kernel); freeOrder[] holds the order of each free piece's first
 * page. An allocation takes the smallest free piece of at least the order
 * asked for and returns the upper halves to the lists, as the kernel's
 * expand() does (__rmqueue_smallest()). blockFree[b] counts free pages of
 * 2 MiB block b.
 *
 * Deliberate difference: a freed piece is not merged with its buddy below
 * order 9 (the kernel's __free_one_page() merges at every order); a 2 MiB
 * block whose pages are all free again becomes one order-9 piece. Without
 * mTHP this gives the same pfns, in the same order, as the kernel's
 * allocator gives the model's order-0 and order-9 requests, and it keeps the
 * free path one push.
 *
 * Lock: zone->lock. In the model allocation never yields, so the lock is
 * implicit: no hook point inside the allocator.
 */
import { KernelBug } from '../printk.js';
import {
  HPAGE_PMD_NR, HPAGE_PMD_ORDER, PG_buddy, PG_head, PG_reserved, PG_shadow_free, PG_tail, type PageArrays,
} from './page.js';
import type { PageContents } from './contents.js';
import type { Printk } from '../printk.js';
import type { FaultAttr, FaultInject } from '../fault_inject.js';

export const GFP_KERNEL = 0;
export const __GFP_ZERO = 1 << 0;
export const __GFP_NOFAIL = 1 << 1;
export const __GFP_NOWARN = 1 << 2;
export const GFP_HIGHUSER_MOVABLE = 1 << 3;
export const GFP_TRANSHUGE = 1 << 4;
/** __GFP_THISNODE: no fallback to other nodes (the model's bit, not the kernel's value). */
export const __GFP_THISNODE = 1 << 5;

/** A failure-injection rule for one allocation site (fault_attr; see fault_inject.ts). */
export type FailRule = FaultAttr;

const NIL = -1;

export class BuddyAllocator {
  /** First and last+1 pfn of system RAM. */
  readonly start: number;
  readonly end: number;
  readonly zeroPfn: number;
  readonly hugeZeroPfn: number;
  /**
   * Free lists per NUMA node (pglist_data's zone free_area): RAM is cut into
   * nrNodes equal ranges of whole 2 MiB blocks; node n owns
   * [start + n * nodePages, start + (n + 1) * nodePages) (the last node
   * takes the remainder). One node: the single list of before.
   */
  readonly nrNodes: number;
  readonly nodePages: number;
  /** Free lists: heads[order * nrNodes + node], -1 when empty. */
  private readonly heads: Int32Array;
  /** Order of the free piece starting at a pfn (valid on a free piece's first page only). */
  private readonly freeOrder: Uint8Array;
  nrFree = 0;
  private blockFree: Uint16Array;
  /**
   * The allocating task's memory policy (mm/mempolicy.ts installs it with
   * set_mempolicy()): for an allocation without an explicit node, the nodes
   * to use in order and whether other nodes are forbidden (MPOL_BIND).
   * null: the local node with fallback.
   */
  policy: (() => { nodes: readonly number[]; bind: boolean } | null) | null = null;
  /** Task memory policies by pid (mm/mempolicy.ts); empty until set_mempolicy(). */
  readonly taskPolicies = new Map<number, { mode: number; nodes: number[]; ilPrev: number }>();
  /**
   * The policy of the allocation in progress, set by vma_alloc_folio()
   * (mm/mpol_alloc.ts) around one alloc() call for a VMA with a policy
   * (alloc_pages_mpol): it overrides the task policy hook. null otherwise.
   */
  allocPolicy: { nodes: readonly number[]; bind: boolean } | null = null;
  /**
   * Failure injection rules by site name ('alloc_pages', 'thp', 'dmirror', ...):
   * the machine's fault-injection table (k.failInject.rules), shared by every site.
   */
  readonly fail: Map<string, FailRule>;
  /** Counters (vmstat-like). */
  readonly stat = { alloc0: 0, alloc9: 0, allocMthp: 0, free0: 0, free9: 0, freeMthp: 0, failInjected: 0, failNoMem: 0, failNoMemOrder0: 0 };

  constructor(
    private readonly pages: PageArrays,
    private readonly contents: PageContents,
    private readonly printk: Printk,
    ramPages: number,
    private readonly failInject: FaultInject,
    nrNodes = 1,
  ) {
    this.fail = failInject.rules;
    // pfn 0..511: reserved (pfn 0 is never handed out; the zero page is pfn 1).
    // pfn 512..1023: the huge zero page. RAM starts at 1024.
    this.zeroPfn = 1;
    this.hugeZeroPfn = HPAGE_PMD_NR;
    this.start = 2 * HPAGE_PMD_NR;
    this.end = this.start + ramPages;
    pages.ensureCapacity(this.end);
    contents.ensureCapacity(this.end);
    for (let p = 0; p < this.start; p++) {
      pages.flags[p] = PG_reserved;
      pages.refcount[p] = 1;
    }
    for (let i = 0; i < HPAGE_PMD_NR; i++) {
      pages.order[this.hugeZeroPfn + i] = HPAGE_PMD_ORDER;
      pages.flags[this.hugeZeroPfn + i] |= i === 0 ? PG_head : PG_tail;
    }
    if (!Number.isInteger(nrNodes) || nrNodes < 1 || nrNodes * HPAGE_PMD_NR > ramPages) throw new KernelBug('BUG', `numaNodes=${nrNodes}: each node needs at least one 2 MiB block of RAM`);
    this.nrNodes = nrNodes;
    this.nodePages = Math.floor(ramPages / HPAGE_PMD_NR / nrNodes) * HPAGE_PMD_NR;
    this.heads = new Int32Array((HPAGE_PMD_ORDER + 1) * nrNodes).fill(NIL);
    this.freeOrder = new Uint8Array(ramPages);
    this.blockFree = new Uint16Array(ramPages / HPAGE_PMD_NR).fill(HPAGE_PMD_NR);
    pages.flags.fill(PG_buddy | PG_shadow_free, this.start, this.end);
    for (let b = this.end - HPAGE_PMD_NR; b >= this.start; b -= HPAGE_PMD_NR) this.pushFree(b, HPAGE_PMD_ORDER);
    this.nrFree = ramPages;
  }

  isRam(pfn: number): boolean {
    return pfn >= this.start && pfn < this.end;
  }

  /** page_to_nid() of a RAM pfn (the caller checked isRam). */
  nid(pfn: number): number {
    if (this.nrNodes === 1) return 0; /* no division on the free-list paths of a non-NUMA machine */
    return Math.min(this.nrNodes - 1, Math.floor((pfn - this.start) / this.nodePages));
  }

  /**
   * should_fail_alloc_page(): consult the injection rule for a site (one
   * occurrence of it); `count` false for the generic 'alloc_pages' rule
   * consulted after the caller's own (the same call, not a new occurrence).
   */
  shouldFail(site: string, order: number, count = true): boolean {
    if (!this.failInject.shouldFail(site, order, count)) return false;
    this.stat.failInjected++;
    return true;
  }

  /** Put the free piece of `order` starting at pfn on the head of its node's list. */
  private pushFree(pfn: number, order: number): void {
    const p = this.pages;
    const h = order * this.nrNodes + this.nid(pfn);
    const head = this.heads[h];
    p.lruPrev[pfn] = NIL;
    p.lruNext[pfn] = head;
    if (head !== NIL) p.lruPrev[head] = pfn;
    this.heads[h] = pfn;
    this.freeOrder[pfn - this.start] = order;
  }

  /** Take the free piece of `order` starting at pfn off its list. */
  private unlink(pfn: number, order: number): void {
    const p = this.pages;
    const prev = p.lruPrev[pfn];
    const next = p.lruNext[pfn];
    if (prev !== NIL) p.lruNext[prev] = next;
    else this.heads[order * this.nrNodes + this.nid(pfn)] = next;
    if (next !== NIL) p.lruPrev[next] = prev;
    p.lruPrev[pfn] = NIL;
    p.lruNext[pfn] = NIL;
  }

  /** The smallest order >= `order` with a free piece on node n, or -1. */
  private smallestFree(n: number, order: number): number {
    for (let o = order; o <= HPAGE_PMD_ORDER; o++) if (this.heads[o * this.nrNodes + n] !== NIL) return o;
    return -1;
  }

  /**
   * The node an allocation is served from: `nid` (numa_node_id() when -1:
   * node 0, the model's CPUs sit on node 0) if it has a free block of the
   * order or a larger one to break, else the next node
   * with one (the zonelist fallback), unless __GFP_THISNODE. -1: none.
   */
  private pickNode(order: number, gfp: number, nid: number): number {
    const pol = nid >= 0 ? null : this.allocPolicy !== null ? this.allocPolicy : this.policy !== null ? this.policy() : null;
    if (pol !== null) {
      for (const n of pol.nodes) if (this.smallestFree(n, order) >= 0) return n;
      if (pol.bind) return -1;
    }
    const first = nid < 0 ? (pol !== null ? pol.nodes[0] : 0) : nid;
    for (let j = 0; j < this.nrNodes; j++) {
      const n = (first + j) % this.nrNodes;
      if (this.smallestFree(n, order) >= 0) return n;
      if (gfp & __GFP_THISNODE) return -1;
    }
    return -1;
  }

  /**
   * alloc_pages(gfp, order) for order 0 to 9 (HPAGE_PMD_ORDER). Returns the
   * head pfn with refcount 1, or -1 (NULL) when memory is exhausted or a
   * failure is injected at `site`. A compound page gets PG_head / PG_tail
   * and the order on every subpage. __GFP_ZERO clears the contents. `nid`:
   * the preferred node (alloc_pages_node(); -1: the local node), with
   * fallback to the other nodes unless __GFP_THISNODE.
   */
  alloc(order: number, gfp: number, site = 'alloc_pages', nid = -1): number {
    if (!Number.isInteger(order) || order < 0 || order > HPAGE_PMD_ORDER) throw new KernelBug('BUG', `alloc_pages: order ${order} not supported by the model (0 to ${HPAGE_PMD_ORDER})`);
    // should_fail_alloc_page() does not consider __GFP_NOFAIL allocations
    // (they retry forever in the kernel): no occurrence, no injected failure.
    if (!(gfp & __GFP_NOFAIL) && (this.shouldFail(site, order) || (site !== 'alloc_pages' && this.fail.has('alloc_pages') && this.shouldFail('alloc_pages', order, false)))) {
      return NIL;
    }
    const p = this.pages;
    const n = this.nrNodes === 1 ? 0 : this.pickNode(order, gfp, nid);
    if (n < 0) return this.noMem(order, gfp);
    let pfn = order === 0 ? this.heads[n] : NIL;
    if (pfn !== NIL) {
      this.unlink(pfn, 0);
    } else {
      // __rmqueue_smallest(): the smallest piece that fits; expand() gives
      // the upper halves back, largest first, so the next small requests
      // take the lowest free pfns of the block in ascending order.
      const o = this.smallestFree(n, order);
      if (o < 0) return this.noMem(order, gfp);
      pfn = this.heads[o * this.nrNodes + n];
      this.unlink(pfn, o);
      for (let q = o - 1; q >= order; q--) this.pushFree(pfn + (1 << q), q);
    }
    this.blockFree[(pfn - this.start) >> HPAGE_PMD_ORDER] -= 1 << order;
    if (order === 0) {
      p.flags[pfn] = 0;
      p.order[pfn] = 0;
      this.stat.alloc0++;
    } else {
      const end = pfn + (1 << order);
      p.flags[pfn] = PG_head;
      p.flags.fill(PG_tail, pfn + 1, end);
      p.order.fill(order, pfn, end);
      if (order === HPAGE_PMD_ORDER) this.stat.alloc9++;
      else this.stat.allocMthp++;
    }
    const nr = 1 << order;
    if (nr === 1) {
      p.mapcount[pfn] = 0;
      p.mapping[pfn] = 0;
      p.index[pfn] = 0;
      p.zdd[pfn] = 0;
    } else {
      p.refcount.fill(0, pfn, pfn + nr);
      p.mapcount.fill(0, pfn, pfn + nr);
      p.mapping.fill(0, pfn, pfn + nr);
      p.index.fill(0, pfn, pfn + nr);
      p.zdd.fill(0, pfn, pfn + nr);
    }
    p.refcount[pfn] = 1;
    p.entireMapcount[pfn] = 0;
    p.pincount[pfn] = 0;
    this.nrFree -= nr;
    if (gfp & __GFP_ZERO) for (let i = 0; i < nr; i++) this.contents.zero(pfn + i);
    return pfn;
  }

  private noMem(order: number, gfp: number): number {
    this.stat.failNoMem++;
    // An order-0 request is "too small to fail" for the kernel's allocator:
    // it would run the OOM killer (__alloc_pages_may_oom) rather than fail.
    // The #PF path reads this count (arch/fault.ts pagefault_out_of_memory).
    if (order === 0) this.stat.failNoMemOrder0++;
    if (gfp & __GFP_NOFAIL) throw new KernelBug('HANG', `__GFP_NOFAIL allocation of order ${order} with no free memory: the kernel would loop in the allocator forever`);
    if (!(gfp & __GFP_NOWARN) && order === 0) this.printk.warn('page allocation failure: order:0, mode: GFP_KERNEL (out of memory)');
    return NIL;
  }

  /**
   * __free_pages(): return a folio (head pfn) of the given order. The caller
   * (folio_put's free path) has already checked it is unmapped and not on an
   * LRU. Contents are discarded.
   */
  free(pfn: number, order: number): void {
    const p = this.pages;
    if (!this.isRam(pfn)) throw new KernelBug('BUG', `free of pfn ${pfn} outside system RAM`);
    const nr = 1 << order;
    for (let i = 0; i < nr; i++) {
      if (p.flags[pfn + i] & PG_buddy) throw new KernelBug('BUG', `double free of pfn ${pfn + i}`);
    }
    if (nr === 1) {
      p.flags[pfn] = PG_buddy | PG_shadow_free;
      p.order[pfn] = 0;
      p.refcount[pfn] = 0;
      p.mapping[pfn] = 0;
      this.contents.discard(pfn);
    } else {
      p.flags.fill(PG_buddy | PG_shadow_free, pfn, pfn + nr);
      p.order.fill(0, pfn, pfn + nr);
      p.refcount.fill(0, pfn, pfn + nr);
      p.mapping.fill(0, pfn, pfn + nr);
      this.contents.discardRange(pfn, nr);
    }
    this.nrFree += nr;
    const blk = (pfn - this.start) >> HPAGE_PMD_ORDER;
    if (order === 0) this.stat.free0++;
    else if (order === HPAGE_PMD_ORDER) this.stat.free9++;
    else this.stat.freeMthp++;
    this.pushFree(pfn, order);
    if ((this.blockFree[blk] += nr) === HPAGE_PMD_NR && order !== HPAGE_PMD_ORDER) {
      // The whole 2 MiB block is free again: merge its pieces back to order 9.
      const b = this.start + blk * HPAGE_PMD_NR;
      for (let i = 0; i < HPAGE_PMD_NR; ) {
        const o = this.freeOrder[b + i - this.start];
        this.unlink(b + i, o);
        i += 1 << o;
      }
      this.pushFree(b, HPAGE_PMD_ORDER);
    }
  }

  /** Free pages of order 9 available (for THP decisions and tests). */
  nrFreeHuge(): number {
    let n = 0;
    for (let j = 0; j < this.nrNodes; j++) for (let b = this.heads[HPAGE_PMD_ORDER * this.nrNodes + j]; b !== NIL; b = this.pages.lruNext[b]) n++;
    return n;
  }
}
