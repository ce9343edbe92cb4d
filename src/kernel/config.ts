// SPDX-License-Identifier: GPL-2.0-only
/**
 * The kernel configuration: one object per simulated machine.
 *
 * Defaults are current mainline behaviour. Each historical behaviour (a bug
 * the seeds describe, before its fix) is a named switch in `historical`, off
 * by default. Code consults a switch at the exact place the old kernel
 * differed, with a comment naming the fix. The explorer (`--config name=on`)
 * and tests turn them on to reproduce a bug before its fix.
 *
 * The other way round, each fix the model proposes for a bug that mainline
 * still has (docs/FINDINGS.md) is a named switch in `fixes`, off by
 * default (mainline behaviour): turned on, the code takes the fixed path
 * at the place the switch is consulted, so a long run (a fuzz campaign)
 * can go past a known finding instead of stopping at it.
 */

/** Transparent hugepage policy, as /sys/kernel/mm/transparent_hugepage/enabled. */
export type ThpMode = 'always' | 'madvise' | 'never';

/**
 * Per-size anonymous THP policy, as
 * /sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/enabled (mainline
 * since 19eaf44954df "mm: thp: support allocation of anonymous multi-size
 * THP"): 'inherit' follows the global `thp` setting.
 */
export type MthpMode = 'always' | 'inherit' | 'madvise' | 'never';

/**
 * The hugepages-<size>kB directories of x86-64 for anonymous memory: orders 2
 * to 9 (THP_ORDERS_ALL_ANON excludes orders 0 and 1). 2048kB is the PMD
 * size.
 */
export const MTHP_SIZES = ['16kB', '32kB', '64kB', '128kB', '256kB', '512kB', '1024kB', '2048kB'] as const;
export type MthpSize = (typeof MTHP_SIZES)[number];

/** The hugepages-<size>kB size of a folio order: 2 -> 16kB ... 9 -> 2048kB. */
export function mthpSize(order: number): MthpSize {
  return MTHP_SIZES[order - 2];
}

/** How page contents are stored (see src/kernel/mm/contents.ts). */
export type ContentMode = 'bytes' | 'fingerprint';

export interface HistoricalSwitches {
  /**
   * CVE-2022-3523: do_swap_page() calls pgmap->ops->migrate_to_ram() on a
   * device-private entry without taking a page reference under the PTL, and
   * migration does not know the fault page (no migrate_vma.fault_page).
   * Fixed by 16ce101db85d "mm/memory.c: fix race when faulting a device
   * private page" (mm/memory.c:do_swap_page()).
   */
  fault_no_page_ref: boolean;
  /**
   * Free device pages have refcount 1 (before 27674ef6c73f "mm: remove the
   * extra ZONE_DEVICE struct page refcount"); get_page_unless_zero() cannot
   * tell free from used (fixed by "mm: free device private pages have zero
   * refcount"; mm/memremap.c:free_zone_device_folio()).
   */
  devpage_free_refcount_one: boolean;
  /**
   * memremap_pages() holds one bulk pgmap reference instead of one per
   * allocated page, so memunmap_pages() can finish while pages are in use
   * (before 0dc45ca1ce18 "mm/memremap.c: take a pgmap reference on page
   * allocation"; mm/memremap.c:zone_device_page_init()).
   */
  pgmap_bulk_ref: boolean;
  /**
   * Drivers release device memory without migrate_device_range() eviction:
   * memunmap_pages() with pages still mapped hangs (before "nouveau/dmem:
   * evict device private memory during release"; mm/memremap.c:memunmap_pages()).
   */
  release_without_eviction: boolean;
  /**
   * try_to_migrate_one() treats every ZONE_DEVICE page as device-private, so
   * device-coherent pages get device-private entries (review of "mm: add
   * device coherent checker to remove migration pte", 2022; mm/rmap.c:try_to_migrate_one()).
   */
  ttm_coherent_as_private: boolean;
  /**
   * migrate_vma_collect selects the zero pfn even without
   * MIGRATE_VMA_SELECT_SYSTEM (review of "mm: add device coherent vma
   * selection for memory migration", 2022; mm/migrate_device.c:migrate_vma_collect_pmd()).
   */
  zero_pfn_without_select_system: boolean;
  /**
   * GUP-fast pins device-coherent pages with FOLL_LONGTERM instead of falling
   * back to the slow path that migrates them (review of "mm: add zone device
   * coherent type memory support" v6; mm/gup.c:try_grab_folio_fast()).
   */
  gup_fast_longterm_coherent: boolean;
  /**
   * nouveau's ->migrate_to_ram goes through the old
   * nouveau_dmem_fault_copy_one(), before "nouveau/dmem: Refactor
   * nouveau_dmem_fault_copy_one()" ("nouveau/dmem: Refactor nouveau_dmem_fault_copy_one()" (Alistair Popple, series "Fix several device private page reference counting issues" v2 6/8, 2022-09-28)): when the copy
   * cannot be queued its error path frees the destination page while it is
   * still locked (Bad page state).
   */
  nouveau_dmem_fault_copy_one: boolean;
}

/** Fixes for bugs mainline still has (docs/FINDINGS.md), off by default. */
export interface FixSwitches {
  /**
   * lib/test_hmm.c and device-private memory (docs/FINDINGS.md, "dmirror"
   * sections). Mainline's dmirror_do_fault() stores the page
   * hmm_range_fault() reports, which for the device's own device-private
   * pages is the device-private page itself, and dmirror_do_read() /
   * dmirror_do_write() then memcpy_from_page() / memcpy_to_page() it: an
   * oops (no direct map). With the fix:
   *  1. dmirror_do_read / dmirror_do_write copy through BACKING_PAGE(page),
   *     the system page that holds a private device page's data;
   *  2. dmirror_migrate_alloc_and_copy() maps a migrated hole or zero page
   *     writable in the mirror when the VMA is VM_WRITE, as before the
   *     device-THP rework (6.1: `(*src & MIGRATE_PFN_WRITE) || (!spage &&
   *     args->vma->vm_flags & VM_WRITE)`), matching the writable
   *     device-private entry migrate_vma_insert_page() installs;
   *  3. dmirror_interval_invalidate() ignores MMU_NOTIFY_MIGRATE ranges of
   *     its own device only in the mirror running that migration: mainline
   *     skips them in every mirror of the device, but only the migrating
   *     mirror's entries are stored or erased by the driver
   *     (dmirror_migrate_finalize_and_map, dmirror_devmem_fault_alloc_and_copy),
   *     so every other mirror (another fd, a fork child's) keeps entries to
   *     pages that migrate away and are freed.
   */
  dmirror_devmem_fix: boolean;
}

export const FIX_SWITCH_NAMES: ReadonlyArray<keyof FixSwitches> = ['dmirror_devmem_fix'];

export function defaultFixes(): FixSwitches {
  return { dmirror_devmem_fix: false };
}

export const HISTORICAL_SWITCH_NAMES: ReadonlyArray<keyof HistoricalSwitches> = [
  'fault_no_page_ref',
  'devpage_free_refcount_one',
  'pgmap_bulk_ref',
  'release_without_eviction',
  'ttm_coherent_as_private',
  'zero_pfn_without_select_system',
  'gup_fast_longterm_coherent',
  'nouveau_dmem_fault_copy_one',
];

export interface KernelConfig {
  /** System RAM in bytes (multiple of 2 MiB). */
  ramBytes: number;
  /** Default hugetlb pool: number of 2 MiB huge pages (vm.nr_hugepages). */
  nrHugepages: number;
  /** Size of the swap device in MiB (0: no swap; MADV_PAGEOUT then keeps anonymous pages). */
  swapMiB: number;
  /** /sys/kernel/mm/transparent_hugepage/enabled */
  thp: ThpMode;
  /**
   * hugepages-<size>kB/enabled by size; a size not listed has mainline's
   * default (2048kB 'inherit', the others 'never').
   */
  mthp: Partial<Record<MthpSize, MthpMode>>;
  /** /sys/kernel/mm/transparent_hugepage/use_zero_page */
  thpUseZeroPage: boolean;
  /** Special-purpose memory for the coherent test devices (test_hmm spm_addr_dev0/1). */
  spm: boolean;
  contentMode: ContentMode;
  /** NUMA memory nodes: system RAM is split into this many equal nodes (page_to_nid()); 1 = no NUMA. */
  numaNodes: number;
  /** Checked mode: verify the invariants of src/kernel/mm/debug_vm.ts after every operation. */
  checked: boolean;
  historical: HistoricalSwitches;
  /** Fixes the model proposes for bugs mainline still has; all off (mainline) by default. */
  fixes: FixSwitches;
}

export function defaultHistorical(): HistoricalSwitches {
  return {
    fault_no_page_ref: false,
    devpage_free_refcount_one: false,
    pgmap_bulk_ref: false,
    release_without_eviction: false,
    ttm_coherent_as_private: false,
    zero_pfn_without_select_system: false,
    gup_fast_longterm_coherent: false,
    nouveau_dmem_fault_copy_one: false,
  };
}

export function defaultConfig(overrides: Partial<KernelConfig> = {}): KernelConfig {
  const cfg: KernelConfig = {
    ramBytes: 2 * 1024 * 1024 * 1024,
    nrHugepages: 8,
    swapMiB: 256,
    thp: 'madvise',
    mthp: {},
    thpUseZeroPage: true,
    spm: true,
    contentMode: 'bytes',
    numaNodes: 1,
    /* The test suite sets HMMSIM_CHECKED=1 so every machine it builds runs checked. */
    checked: typeof process !== 'undefined' && process.env.HMMSIM_CHECKED === '1',
    historical: defaultHistorical(),
    fixes: defaultFixes(),
    ...overrides,
  };
  if (overrides.historical) cfg.historical = { ...defaultHistorical(), ...overrides.historical };
  if (overrides.fixes) cfg.fixes = { ...defaultFixes(), ...overrides.fixes };
  cfg.mthp = { ...cfg.mthp };
  return cfg;
}

/**
 * Apply a `name=value` setting (as `--config` passes it). Returns an error
 * string for an unknown name or a bad value, else null.
 */
export function applyConfigSetting(cfg: KernelConfig, setting: string): string | null {
  const eq = setting.indexOf('=');
  if (eq <= 0) return `config setting '${setting}' is not name=value`;
  const name = setting.slice(0, eq);
  const value = setting.slice(eq + 1);
  const bool = (v: string): boolean | null =>
    ['on', '1', 'true', 'y', 'yes'].includes(v) ? true : ['off', '0', 'false', 'n', 'no'].includes(v) ? false : null;
  if ((HISTORICAL_SWITCH_NAMES as readonly string[]).includes(name)) {
    const b = bool(value);
    if (b === null) return `config ${name}: '${value}' is not on/off`;
    cfg.historical[name as keyof HistoricalSwitches] = b;
    return null;
  }
  if ((FIX_SWITCH_NAMES as readonly string[]).includes(name)) {
    const b = bool(value);
    if (b === null) return `config ${name}: '${value}' is not on/off`;
    cfg.fixes = { ...defaultFixes(), ...cfg.fixes, [name]: b };
    return null;
  }
  const hp = /^hugepages-(\d+kB)$/.exec(name);
  if (hp) {
    if (!(MTHP_SIZES as readonly string[]).includes(hp[1])) return `config ${name}: no such size (anonymous mTHP sizes: ${MTHP_SIZES.map((z) => `hugepages-${z}`).join(', ')})`;
    if (value !== 'always' && value !== 'inherit' && value !== 'madvise' && value !== 'never') return `config ${name}: '${value}' is not always|inherit|madvise|never`;
    cfg.mthp = { ...cfg.mthp, [hp[1]]: value };
    return null;
  }
  switch (name) {
    case 'thp':
      if (value !== 'always' && value !== 'madvise' && value !== 'never') return `config thp: '${value}' is not always|madvise|never`;
      cfg.thp = value;
      return null;
    case 'spm':
    case 'checked':
    case 'thpUseZeroPage': {
      const b = bool(value);
      if (b === null) return `config ${name}: '${value}' is not on/off`;
      cfg[name] = b;
      return null;
    }
    case 'numaNodes': {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > 64) return `config numaNodes: '${value}' is not an integer in 1..64`;
      cfg.numaNodes = n;
      return null;
    }
    case 'ramMiB':
    case 'ramBytes':
    case 'swapMiB':
    case 'nrHugepages': {
      const n = /^\d+$/.test(value) ? Number(value) : NaN;
      if (!Number.isSafeInteger(n)) return `config ${name}: '${value}' is not a non-negative integer`;
      if (name === 'ramMiB' || name === 'ramBytes') {
        const mib = name === 'ramMiB' ? n : n / (1024 * 1024);
        const shown = `config ${name}=${value}`;
        if (mib < RAM_MIB_MIN) return `${shown}: below the minimum of ${RAM_MIB_MIN} MiB (${RAM_MIB_MIN * 1024 * 1024} bytes): the kernel needs two 2 MiB blocks`;
        if (mib % 2 !== 0) return `${shown}: not a multiple of 2 MiB (${2 * 1024 * 1024} bytes): RAM is made of 2 MiB blocks`;
        if (mib > RAM_MIB_MAX) return `${shown}: above the maximum of ${RAM_MIB_MAX} MiB (${RAM_MIB_MAX / (1024 * 1024)} TiB): page frame numbers are 31-bit in the model's struct page arrays`;
        cfg.ramBytes = mib * 1024 * 1024;
      } else if (name === 'swapMiB') {
        if (n > SWAP_MIB_MAX) return `config swapMiB=${value}: above the maximum of ${SWAP_MIB_MAX} MiB (${SWAP_MIB_MAX / (1024 * 1024)} TiB): swap slots are 31-bit`;
        cfg.swapMiB = n;
      } else cfg.nrHugepages = n;
      return null;
    }
    case 'contentMode':
      if (value !== 'bytes' && value !== 'fingerprint') return `config contentMode: '${value}' is not bytes|fingerprint`;
      cfg.contentMode = value;
      return null;
    default:
      return `unknown config name '${name}' (known: ${[...HISTORICAL_SWITCH_NAMES, ...FIX_SWITCH_NAMES, 'thp', 'hugepages-<size>kB', 'spm', 'checked', 'thpUseZeroPage', 'ramMiB', 'ramBytes', 'swapMiB', 'nrHugepages', 'contentMode', 'numaNodes'].join(', ')})`;
  }
}

/** Smallest machine: two 2 MiB blocks of RAM (the Kernel constructor's minimum). */
export const RAM_MIB_MIN = 4;
/** Largest RAM: pfns (RAM + device memory) must stay below 2^31; half of that range is left to device memory. */
export const RAM_MIB_MAX = 4 * 1024 * 1024;
/** Largest swap device: slot numbers are 31-bit. */
export const SWAP_MIB_MAX = 4 * 1024 * 1024;

/**
 * The bounds that involve several settings, checked once all are applied
 * (`--config` order must not matter). Returns an error naming the bound,
 * or null:
 *   nrHugepages  the pool comes out of RAM: at most ramMiB / 2 huge pages
 *                (Linux would silently give fewer; a setting the machine
 *                cannot honour is refused instead).
 */
export function configBoundsError(cfg: KernelConfig): string | null {
  const ramMiB = cfg.ramBytes / (1024 * 1024);
  const maxHuge = Math.floor(ramMiB / 2);
  if (cfg.nrHugepages > maxHuge) {
    return `config nrHugepages=${cfg.nrHugepages}: above the maximum of ${maxHuge} for ${ramMiB} MiB of RAM (ramMiB / 2: the pool is made of 2 MiB blocks of RAM)`;
  }
  return null;
}
