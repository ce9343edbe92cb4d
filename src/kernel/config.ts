// SPDX-License-Identifier: GPL-2.0-only
/**
 * The kernel configuration: one object per simulated machine.
 *
 * Defaults are current mainline behaviour. Each historical behaviour (a bug
 * the seeds describe, before its fix) is a named switch in `historical`, off
 * by default. Code consults a switch at the exact place the old kernel
 * differed, with a comment naming the fix. The explorer (`--config name=on`)
 * and tests turn them on to reproduce a bug before its fix.
 */

/** Transparent hugepage policy, as /sys/kernel/mm/transparent_hugepage/enabled. */
export type ThpMode = 'always' | 'madvise' | 'never';

/** How page contents are stored (see src/kernel/mm/contents.ts). */
export type ContentMode = 'bytes' | 'fingerprint';

export interface HistoricalSwitches {
  /**
   * CVE-2022-3523: do_swap_page() calls pgmap->ops->migrate_to_ram() on a
   * device-private entry without taking a page reference under the PTL, and
   * migration does not know the fault page (no migrate_vma.fault_page).
   * Fixed by 16ce101db85d "mm/memory.c: fix race when faulting a device
   * private page" (seed F3:1007-1021, 570-606).
   */
  fault_no_page_ref: boolean;
  /**
   * Free device pages have refcount 1 (before 27674ef6c73f "mm: remove the
   * extra ZONE_DEVICE struct page refcount"); get_page_unless_zero() cannot
   * tell free from used (seed F3:1905-1915, 3255-3263).
   */
  devpage_free_refcount_one: boolean;
  /**
   * memremap_pages() holds one bulk pgmap reference instead of one per
   * allocated page, so memunmap_pages() can finish while pages are in use
   * (before 0dc45ca1ce18 "mm/memremap.c: take a pgmap reference on page
   * allocation", seed F3:1639-1661).
   */
  pgmap_bulk_ref: boolean;
  /**
   * Drivers release device memory without migrate_device_range() eviction:
   * memunmap_pages() with pages still mapped hangs (seed F3:1748-1752).
   */
  release_without_eviction: boolean;
  /**
   * try_to_migrate_one() treats every ZONE_DEVICE page as device-private, so
   * device-coherent pages get device-private entries (seed F3:9211-9227,
   * 8502-8523).
   */
  ttm_coherent_as_private: boolean;
  /**
   * migrate_vma_collect selects the zero pfn even without
   * MIGRATE_VMA_SELECT_SYSTEM (seed F3:7760-7816, 7594-7600).
   */
  zero_pfn_without_select_system: boolean;
  /**
   * GUP-fast pins device-coherent pages with FOLL_LONGTERM instead of falling
   * back to the slow path that migrates them (seed F3:5372-5388).
   */
  gup_fast_longterm_coherent: boolean;
}

export const HISTORICAL_SWITCH_NAMES: ReadonlyArray<keyof HistoricalSwitches> = [
  'fault_no_page_ref',
  'devpage_free_refcount_one',
  'pgmap_bulk_ref',
  'release_without_eviction',
  'ttm_coherent_as_private',
  'zero_pfn_without_select_system',
  'gup_fast_longterm_coherent',
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
  };
}

export function defaultConfig(overrides: Partial<KernelConfig> = {}): KernelConfig {
  const cfg: KernelConfig = {
    ramBytes: 2 * 1024 * 1024 * 1024,
    nrHugepages: 8,
    swapMiB: 256,
    thp: 'madvise',
    thpUseZeroPage: true,
    spm: true,
    contentMode: 'bytes',
    numaNodes: 1,
    /* The test suite sets HMMSIM_CHECKED=1 so every machine it builds runs checked. */
    checked: typeof process !== 'undefined' && process.env.HMMSIM_CHECKED === '1',
    historical: defaultHistorical(),
    ...overrides,
  };
  if (overrides.historical) cfg.historical = { ...defaultHistorical(), ...overrides.historical };
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
    case 'swapMiB':
    case 'nrHugepages': {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) return `config ${name}: '${value}' is not a non-negative integer`;
      if (name === 'ramMiB') {
        if (n < 64 || n % 2) return `config ramMiB: must be an even number >= 64`;
        cfg.ramBytes = n * 1024 * 1024;
      } else if (name === 'swapMiB') cfg.swapMiB = n;
      else cfg.nrHugepages = n;
      return null;
    }
    case 'contentMode':
      if (value !== 'bytes' && value !== 'fingerprint') return `config contentMode: '${value}' is not bytes|fingerprint`;
      cfg.contentMode = value;
      return null;
    default:
      return `unknown config name '${name}' (known: ${[...HISTORICAL_SWITCH_NAMES, 'thp', 'spm', 'checked', 'thpUseZeroPage', 'ramMiB', 'swapMiB', 'nrHugepages', 'contentMode', 'numaNodes'].join(', ')})`;
  }
}
