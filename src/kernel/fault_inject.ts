// SPDX-License-Identifier: GPL-2.0-only
/**
 * Fault injection at allocation sites (lib/fault-inject.c, with the site
 * names of failslab / fail_page_alloc / fail_make_request collapsed into
 * one table): every allocation the model's kernel can fail asks
 * should_fail(site) first and takes its failure path when it answers true.
 *
 * A site is named after the kernel function whose allocation it models
 * ('__pte_alloc', 'vm_area_dup', 'dmirror_bounce_init', or the buddy
 * allocator's caller name such as 'anon_fault'). A rule (struct fault_attr)
 * per site says which calls fail:
 *   skip      calls let through before the first failure (the kernel's
 *             `space` budget, counted in calls rather than bytes);
 *   times     how many calls fail after that (Infinity: all; the kernel's -1);
 *   interval  fail only every interval-th eligible call (1 or unset: each);
 *   order     (page allocations only) only allocations of this order.
 * The kernel's `probability` is deliberately absent: the model is
 * deterministic; a sweep fails each occurrence in turn instead (the
 * kernel's /proc/<pid>/fail-nth, per site).
 *
 * Occurrence counting: while `counting` is set, every should_fail() call
 * counts one occurrence of its site (whether or not a rule is armed), so a
 * sweep can run a scenario once to learn how often each site is reached,
 * then re-run it failing occurrence i alone ({skip: i - 1, times: 1}).
 *
 * Cost: with no rule and counting off, should_fail() is one branch.
 * State lives here, on the Kernel (k.failInject); nothing is global.
 */

/** struct fault_attr for one site. */
export interface FaultAttr {
  /** Calls to let through before failing (the kernel's `space`, in calls). */
  skip: number;
  /** How many calls to fail after that (Infinity: all; the kernel's times = -1). */
  times: number;
  /** Fail only every interval-th eligible call (unset or 1: every one). */
  interval?: number;
  /** Only allocations of this page order (page allocation sites; unset: any). */
  order?: number;
}

/** One injected failure, for reports: the site and its occurrence number (1-based, when counting). */
export interface InjectedFailure {
  site: string;
  occurrence: number;
}

export class FaultInject {
  /** The armed rules by site name (the buddy allocator's `fail` map is this map). */
  readonly rules = new Map<string, FaultAttr>();
  /** Occurrences per site since counting was switched on. */
  readonly counts = new Map<string, number>();
  /** Count occurrences of every site (sweeps; off by default). */
  counting = false;
  /**
   * Model-only observer of each counted occurrence (site, 1-based number),
   * called while `counting` is on: a sweep records the call context of an
   * occurrence here. null (the default): nothing is called.
   */
  onOccurrence: ((site: string, occurrence: number) => void) | null = null;
  /** Failures injected so far (the kernel's verbose log, kept as data). */
  readonly injected: InjectedFailure[] = [];
  /** Eligible calls per site with an `interval` rule (the fault_attr's count). */
  private readonly intervalSeen = new Map<string, number>();

  /** Anything armed or counted: callers whose should_fail() needs a costly precondition test this first. */
  get armed(): boolean {
    return this.counting || this.rules.size > 0;
  }

  /** Arm a rule on a site (replacing any previous one). */
  set(site: string, attr: FaultAttr): void {
    this.rules.set(site, attr);
  }

  /** Disarm every rule and forget counts and the log. */
  reset(): void {
    this.rules.clear();
    this.counts.clear();
    this.injected.length = 0;
    this.intervalSeen.clear();
  }

  /**
   * should_fail(attr, size): true when this call at `site` must fail. `order`
   * is the page order of a page allocation (-1 for others); a rule with an
   * order only considers calls of that order. `count` false: a second
   * consultation of the same call (the generic 'alloc_pages' rule after the
   * caller's own) that is not another occurrence.
   */
  shouldFail(site: string, order = -1, count = true): boolean {
    if (!this.counting && this.rules.size === 0) return false;
    let n = 0;
    if (this.counting && count) {
      n = (this.counts.get(site) ?? 0) + 1;
      this.counts.set(site, n);
      if (this.onOccurrence !== null) this.onOccurrence(site, n);
    }
    const r = this.rules.get(site);
    if (r === undefined || (r.order !== undefined && r.order !== order)) return false;
    if (r.skip > 0) {
      r.skip--;
      return false;
    }
    if (r.times <= 0) return false;
    if (r.interval !== undefined && r.interval > 1) {
      const seen = (this.intervalSeen.get(site) ?? 0) + 1;
      this.intervalSeen.set(site, seen);
      if (seen % r.interval !== 0) return false;
    }
    r.times--;
    this.injected.push({ site, occurrence: n });
    return true;
  }
}
