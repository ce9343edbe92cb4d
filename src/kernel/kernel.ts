// SPDX-License-Identifier: GPL-2.0-only
/**
 * One simulated machine: configuration, dmesg, struct page arrays, page
 * contents, the allocator, LRU, ZONE_DEVICE pagemaps, the scheduler and the
 * registries that map the model's integer ids to objects (the kernel uses
 * pointers: page->mapping, page->pgmap).
 *
 * Everything below src/kernel receives the Kernel (directly or through
 * vma.mm.kernel); nothing is global, so tests create as many machines as
 * they like.
 */
import { type KernelConfig, defaultConfig } from './config.js';
import { Printk, KernelBug, KernelOops } from './printk.js';
import { PageArrays, HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE } from './mm/page.js';
import { createContents, type PageContents } from './mm/contents.js';
import type { SwapDevice } from './mm/swap.js';
import { BuddyAllocator } from './mm/page_alloc.js';
import { Lru } from './mm/lru.js';
import { Sched } from './sched/sched.js';
import type { Tracer } from './trace.js';
import type { SimClock } from './cost/clock.js';
import { AddressSpace, AnonVma, MmStruct } from './mm/mm_types.js';
import type { DevPagemap } from './mm/memremap.js';
import { dumpPage, pageBug } from './mm/debug.js';
import { HugetlbPool } from './mm/hugetlb_pool.js';
import { enableCheckedMode } from './mm/debug_vm.js';
import { mmuNotifierEnableChecks } from './mm/mmu_notifier.js';
import { FaultInject } from './fault_inject.js';

/** Event counters (/proc/vmstat names where the kernel has them). */
export interface VmStat {
  nr_foll_pin_acquired: number;
  nr_foll_pin_released: number;
  thp_fault_alloc: number;
  thp_fault_fallback: number;
  thp_split_pmd: number;
  thp_split_page: number;
  thp_zero_page_alloc: number;
  thp_migration_success: number;
  thp_migration_split: number;
  pgfault: number;
  pgmigrate_success: number;
  pgmigrate_fail: number;
  cow: number;
  [k: string]: number;
}

/** x86-64 PAGE_OFFSET (page_offset_base, 4-level paging, no KASLR): the direct map of pfn 0. */
export const PAGE_OFFSET_X86_64 = 0xffff888000000000n;

/** Most device pfns the page arrays cover from boot (1 GiB of device memory); more grows them. */
export const DEVICE_PFN_RESERVE = 262144;

export class Kernel {
  readonly config: KernelConfig;
  readonly printk = new Printk();
  readonly pages = new PageArrays();
  readonly contents: PageContents;
  readonly buddy: BuddyAllocator;
  readonly lru: Lru;
  readonly sched = new Sched();
  readonly hugetlb = new HugetlbPool();
  /** Fault injection at allocation sites (lib/fault-inject.c): see fault_inject.ts. */
  readonly failInject = new FaultInject();
  /** id -> pgmap; index 0 unused (page.pgmap == 0 means "not ZONE_DEVICE"). */
  readonly pgmaps: Array<DevPagemap | null> = [null];
  /** id -> anon_vma or address_space (page.mapping); index 0 unused. */
  readonly mappings: Array<AnonVma | AddressSpace | null> = [null];
  /** Live mm_structs, for checked mode and debugging. */
  readonly mms = new Set<MmStruct>();
  private nextMm = 1;
  /** Top of the physical address space used so far (request_free_mem_region). */
  physTopPfn: number;
  readonly vmstat: VmStat = {
    nr_foll_pin_acquired: 0, nr_foll_pin_released: 0, thp_fault_alloc: 0, thp_fault_fallback: 0,
    thp_split_pmd: 0, thp_split_page: 0, thp_zero_page_alloc: 0, thp_migration_success: 0, thp_migration_split: 0,
    pgfault: 0, pgmigrate_success: 0, pgmigrate_fail: 0, cow: 0,
  };
  /**
   * Per-size mTHP event counters by folio order
   * (/sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/stats/).
   */
  readonly mthpStats = {
    anon_fault_alloc: new Float64Array(HPAGE_PMD_ORDER + 1),
    anon_fault_fallback: new Float64Array(HPAGE_PMD_ORDER + 1),
  };
  /**
   * `current`: the task in whose context the kernel runs (set by the user
   * layer on syscall entry; drivers read current.mm in ioctl handlers).
   */
  current: { pid: number; mm: MmStruct | null; comm: string } = { pid: 0, mm: null, comm: 'swapper' };
  /** Character devices and pseudo files by path (/dev/hmm_dmirror0, ...): see src/kernel/fs/chardev.ts. */
  readonly chardevs = new Map<string, unknown>();
  /**
   * The tmpfs names of /tmp and /dev/shm (one flat directory each): path ->
   * inode. The entry holds an inode reference (the dentry's) until unlink().
   */
  readonly tmpfs = new Map<string, AddressSpace>();
  /** Loaded modules by name (src/kernel/module.ts loadModule). */
  readonly modules = new Map<string, unknown>();
  /**
   * A driver's static data, by driver name (what a kernel module keeps in
   * file-scope variables): one per machine, reachable from the Kernel so the
   * explorer's snapshot restores it. Drivers wrap it in a typed accessor.
   */
  readonly driverData = new Map<string, unknown>();
  /** The swap device, created at its first use (mm/swap.ts swapDevice()). */
  swap: SwapDevice | null = null;
  /** The attached tracer, or null (src/kernel/trace.ts attachTracer()); instrumented sites test it with one branch. */
  tracer: Tracer | null = null;
  /**
   * Simulated time (src/kernel/cost/clock.ts), or null: no hardware profile,
   * no time accounting. Charging sites test it with one branch, per folio or
   * per batch, never per byte.
   */
  clock: SimClock | null = null;
  /** The page-migration copy offload state (mm/migrate_offload.ts), created on first use. */
  migrateOffload: unknown = null;
  /** Checked mode: invariants run after each operation (installed by debug_vm.ts). */
  checkHook: ((k: Kernel, op: string) => void) | null = null;
  /**
   * Checked-mode invariants of loaded drivers (model-only, no kernel
   * counterpart: a driver's own CONFIG_DEBUG_VM-style self check). The
   * checkpoint runs each after the kernel's own invariants; a checker
   * throws a KernelBug naming the rule it found broken. Drivers add theirs
   * at module init (registerChecker) and remove them at exit, so the
   * kernel's checked-mode code never imports a driver.
   */
  readonly checkers: Array<{ name: string; check: (k: Kernel, op: string) => void }> = [];

  constructor(config: Partial<KernelConfig> = {}) {
    this.config = defaultConfig(config);
    const ramPages = Math.floor(this.config.ramBytes / PAGE_SIZE / HPAGE_PMD_NR) * HPAGE_PMD_NR;
    if (ramPages < 2 * HPAGE_PMD_NR) throw new KernelBug('BUG', `RAM of ${this.config.ramBytes} bytes is too small (at least 4 MiB)`);
    this.contents = createContents(this.config.contentMode);
    // struct page arrays for RAM and as many device pfns as RAM has pages,
    // up to DEVICE_PFN_RESERVE, at once: memremap_pages() of the usual device
    // ranges (test_hmm's four 256 MiB chunks) then needs no growth, which
    // would copy every array. (Small machines, like the explorer's, stay small.)
    this.pages.ensureCapacity(2 * HPAGE_PMD_NR + ramPages + Math.min(ramPages, DEVICE_PFN_RESERVE));
    this.contents.ensureCapacity(this.pages.capacity);
    this.contents.setOopsHandler(this);
    this.buddy = new BuddyAllocator(this.pages, this.contents, this.printk, ramPages, this.failInject, this.config.numaNodes);
    this.lru = new Lru(this);
    this.hugetlb.init(this, this.config.nrHugepages);
    if (this.config.checked) enableCheckedMode(this); /* the invariants and lockdep */
    // Device ranges start on the next 2 MiB boundary above RAM, so a small
    // machine keeps small page arrays.
    this.physTopPfn = Math.ceil(this.buddy.end / HPAGE_PMD_NR) * HPAGE_PMD_NR;
    this.printk.info(`Memory: ${ramPages * 4}K system RAM, pfns [${this.buddy.start}, ${this.buddy.end})`);
  }

  get zeroPfn(): number {
    return this.buddy.zeroPfn;
  }

  get hugeZeroPfn(): number {
    return this.buddy.hugeZeroPfn;
  }

  /** mm_alloc() */
  newMm(): MmStruct {
    const mm = new MmStruct(this.nextMm++);
    mm.kernel = this;
    if (this.config.checked) mmuNotifierEnableChecks(mm);
    this.mms.add(mm);
    return mm;
  }

  /** anon_vma_alloc() */
  newAnonVma(root: AnonVma | null): AnonVma {
    const av = new AnonVma(this.mappings.length, root);
    this.mappings.push(av);
    return av;
  }

  newAddressSpace(kind: AddressSpace['kind']): AddressSpace {
    const as = new AddressSpace(this.mappings.length, kind);
    this.mappings.push(as);
    return as;
  }

  /** dump_page(): the text the kernel prints for a page. */
  dumpPage(pfn: number, reason = ''): string {
    return dumpPage(this, pfn, reason);
  }

  /** VM_BUG_ON_PAGE(cond, page): raise a BUG naming the rule, with dump_page(). */
  bugOnPage(cond: boolean, pfn: number, rule: string): void {
    if (cond) pageBug(this, 'BUG', rule, pfn, rule);
  }

  /** WARN_ON_ONCE-style with a page dump; returns cond. */
  warnOnPage(cond: boolean, pfn: number, rule: string): boolean {
    if (cond) this.printk.warn(rule, pfn >= 0 ? this.dumpPage(pfn, rule) : '');
    return cond;
  }

  /**
   * The oops of a kernel CPU access through the direct map to a pfn that
   * has none (a device-private page): arch/x86/mm/fault.c
   * page_fault_oops() -> "BUG: unable to handle page fault for address",
   * the #PF lines, RIP and the call trace, then make_task_dead() kills
   * the task. Logged to dmesg and thrown as a KernelOops: the system call
   * (or fault) that made the access never returns. `op` is the accessor
   * (memcpy_from_page, ...), `caller` the kernel function that called it.
   */
  oopsNoDirectMap(pfn: number, op: string, caller: string): never {
    const address = PAGE_OFFSET_X86_64 + BigInt(pfn) * BigInt(PAGE_SIZE);
    const write = op === 'memcpy_to_page' || op === 'clear_highpage' || op === 'memset_page';
    const text = [
      `BUG: unable to handle page fault for address: ${address.toString(16)}`,
      `#PF: supervisor ${write ? 'write' : 'read'} access in kernel mode`,
      `#PF: error_code(0x000${write ? 2 : 0}) - not-present page`,
      `Oops: 000${write ? 2 : 0} [#1] PREEMPT SMP`,
      `CPU: 0 PID: ${this.current.pid} Comm: ${this.current.comm}`,
      `RIP: 0010:${op}`,
      'Call Trace:',
      ` ${caller}`,
      this.dumpPage(pfn, `${op} from ${caller}: pfn 0x${pfn.toString(16)} has no kernel direct map (MEMORY_DEVICE_PRIVATE)`),
    ].join('\n');
    this.printk.printk('err', text);
    throw new KernelOops(pfn, op, caller, address, text);
  }

  /** Add a driver's checked-mode invariant (see `checkers`). */
  registerChecker(name: string, check: (k: Kernel, op: string) => void): void {
    this.checkers.push({ name, check });
  }

  /** Remove a driver's checked-mode invariant (module exit). */
  unregisterChecker(name: string): void {
    const i = this.checkers.findIndex((c) => c.name === name);
    if (i >= 0) this.checkers.splice(i, 1);
  }

  /**
   * Model-only, no kernel counterpart: this machine is discarded (a
   * selftest case ended). Its page-content storage goes to the thread's
   * pool for the next machine; nothing here may be used afterwards.
   */
  release(): void {
    this.contents.release();
    this.swap?.contents.release();
  }

  /** should_fail(): whether this occurrence of allocation site `site` must fail (fault_inject.ts). */
  shouldFail(site: string): boolean {
    return this.failInject.shouldFail(site);
  }

  /**
   * Run the checked-mode invariants if enabled (after a user-visible
   * operation): first lockdep's return-to-user check (no lock held).
   */
  checkpoint(op: string): void {
    if (this.sched.lockdep !== null) this.sched.lockdep.checkReturnToUser(op);
    if (this.checkHook !== null) this.checkHook(this, op);
  }
}

