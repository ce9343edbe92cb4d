// SPDX-License-Identifier: GPL-2.0-only
/**
 * The registry of KNOWN FINDINGS: kernel-faithful reports (an oops, a WARN,
 * a livelock the kernel really has) that the fuzzer may run into while the
 * model behaves as mainline Linux does. A KernelBug or WARNING whose kind and
 * rule match an entry is counted as a finding (by id) and ends that sequence
 * on the machine it happened on; anything else is a violation.
 *
 * Kept as data: each entry names the docs/FINDINGS.md anchor that describes
 * the sequence, the kernel source lines and what a real kernel does.
 */
import type { BugKind } from '../kernel/printk.js';

export interface KnownFinding {
  /** Stable identifier (counted in the fuzz report). */
  id: string;
  /** The KernelBug kinds it may come as; 'WARN' for a printk WARNING. */
  kinds: ReadonlyArray<BugKind | 'WARN'>;
  /** Matched against the KernelBug / WARNING rule text. */
  rule: RegExp;
  /** docs/FINDINGS.md#anchor */
  doc: string;
  /** One line: what it is. */
  summary: string;
  /**
   * 'failSites': only the allocation-failure sweep (src/fuzz/fail_sites.ts)
   * counts it, in a run that failed one of `sites` (a finding that needs an
   * injected allocation failure; the fuzz never injects one). Unset: both.
   */
  scope?: 'failSites';
  /** scope 'failSites': the fault-injection sites whose failure leads to it. */
  sites?: readonly string[];
}

/** Where a report was seen: the fuzz, or an allocation-failure sweep run failing `failSite`. */
export interface FindingContext {
  failSite?: string;
}

export const KNOWN_FINDINGS: readonly KnownFinding[] = [
  {
    id: 'dmirror-second-mirror-skips-migrate',
    kinds: ['INVARIANT'],
    rule: /^after [^:]+: stale secondary mapping: a second mirror of the device skipped its MMU_NOTIFY_MIGRATE invalidation/,
    doc: 'docs/FINDINGS.md#dmirror-a-second-mirror-of-a-device-keeps-entries-to-freed-device-pages',
    summary: 'lib/test_hmm.c dmirror_interval_invalidate() skips its device\'s MMU_NOTIFY_MIGRATE ranges in every mirror, so a second mirror of the device (another fd, a fork child\'s) keeps entries to pages that migrate and are freed (KASAN in dmirror_do_read on the next READ)',
  },
  {
    id: 'dmirror-devpriv-copy-oops',
    kinds: ['OOPS'],
    rule: /^BUG: unable to handle page fault in dmirror_do_(read|write)$/,
    doc: 'docs/FINDINGS.md#dmirror-device-reads-of-the-devices-own-private-pages-oops-in-dmirror_do_read',
    summary: 'lib/test_hmm.c dmirror_do_read/dmirror_do_write memcpy from/to a device-private page (no CPU mapping): oops',
  },
  {
    id: 'dmirror-fault-livelock-exited-mm',
    kinds: ['HANG'],
    rule: /^dmirror_(read|write): dmirror_fault\(\) returns 0 for the mirror's exited mm/,
    doc: 'docs/FINDINGS.md#dmirror-fault-livelock',
    summary: 'HMM_DMIRROR_READ/WRITE through an fd whose mirrored mm has exited loops forever (dmirror_fault returns 0)',
  },
  {
    id: 'dmirror-coherent-second-chunk',
    kinds: ['WARN'],
    rule: /^Conflicting mapping in same section$/,
    doc: 'docs/FINDINGS.md#dmirror-coherent-second-chunk',
    summary: 'lib/test_hmm.c dmirror_allocate_chunk() maps a device-coherent device\'s one SPM range again for a second chunk: memremap_pages WARNs and fails with -ENOMEM',
  },
  {
    id: 'dmirror-write-readonly-devpriv-warn',
    kinds: ['WARN'],
    rule: /^dmirror_do_fault: WARN_ON\(range->default_flags & HMM_PFN_WRITE\)$/,
    doc: 'docs/FINDINGS.md#dmirror-a-device-write-to-its-own-read-only-device-private-page-warns-and-fails',
    summary: 'HMM_DMIRROR_WRITE over the device\'s own read-only device-private entries (COW-shared after fork): hmm_range_fault reports them without faulting, dmirror_do_fault WARNs and the ioctl fails with -EFAULT',
  },
  {
    id: 'migrate-coherent-thp-selected-as-system',
    kinds: ['WARN'],
    rule: /^page already in device spage pfn: 0x[0-9a-f]+$/,
    doc: 'docs/FINDINGS.md#migrate-coherent-thp-selected-as-system',
    summary: 'mm/migrate_device.c migrate_vma_collect_huge_pmd() collects a PMD-mapped device-coherent THP under MIGRATE_VMA_SELECT_SYSTEM alone (the PTE path skips such pages without SELECT_DEVICE_COHERENT and the same pgmap owner): a second HMM_DMIRROR_MIGRATE_TO_DEV of a coherent dmirror\'s THP WARNs in dmirror_migrate_alloc_and_copy() and migrates nothing',
  },
  {
    id: 'migrate-split-fork-shared-thp',
    kinds: ['BUG'],
    rule: /^remove_migration_pte: PMD migration entry over an order-0 folio$/,
    doc: 'docs/FINDINGS.md#migrate-split-fork-shared-thp',
    summary: 'a THP PMD-mapped in two mms (fork) that migrate_vma_pages() must split (order-9 destination allocation failed): migrate_vma_split_unmapped_folio() splits only the migrating VMA\'s PMD, remove_migration_ptes() of an order-0 page meets the other mm\'s PMD migration entry: VM_BUG_ON_FOLIO in remove_migration_pte (without DEBUG_VM a 2 MiB PMD over an order-0 folio)',
  },
  {
    id: 'dmirror-alloc-fallback-null-oops',
    kinds: ['OOPS'],
    rule: /^BUG: kernel NULL pointer dereference$/,
    doc: 'docs/FINDINGS.md#dmirror-a-failed-small-page-allocation-in-dmirror_migrate_alloc_and_copy-dereferences-null',
    summary: 'lib/test_hmm.c dmirror_migrate_alloc_and_copy(): a failed dmirror_devmem_alloc_page() in the small-page fallback of a THP source is not checked: BACKING_PAGE(NULL), an oops',
    scope: 'failSites',
    sites: ['dmirror_devmem_alloc_page', 'dmirror_allocate_chunk'],
  },
  {
    id: 'dmirror-xa-store-stale-entries',
    kinds: ['INVARIANT'],
    rule: /^after [^:]+: stale secondary mapping$/,
    doc: 'docs/FINDINGS.md#dmirror-xa_store-failing-in-dmirror_migrate_finalize_and_map-leaves-stale-mirror-entries-use-after-free',
    summary: 'lib/test_hmm.c dmirror_migrate_finalize_and_map(): a failed xa_store() returns at the first failing index and dmirror_migrate_to_device() ignores it: the mirror keeps entries to the migrated (freed) system pages',
    scope: 'failSites',
    sites: ['xa_store'],
  },
];

/**
 * The known finding a KernelBug or WARNING matches, or null. Entries scoped
 * to the allocation-failure sweep match only with `ctx.failSite` among their
 * sites.
 */
export function matchFinding(kind: BugKind | 'WARN', rule: string, ctx: FindingContext = {}): KnownFinding | null {
  for (const f of KNOWN_FINDINGS) {
    if (f.scope === 'failSites' && (ctx.failSite === undefined || (f.sites !== undefined && !f.sites.includes(ctx.failSite)))) continue;
    if (f.kinds.includes(kind) && f.rule.test(rule)) return f;
  }
  return null;
}
