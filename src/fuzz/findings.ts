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

export type FindingKind = BugKind | 'WARN' | 'ERRNO';

export interface KnownFinding {
  /** Stable identifier (counted in the fuzz report). */
  id: string;
  /**
   * The KernelBug kinds it may come as; 'WARN' for a printk WARNING;
   * 'ERRNO' for a call that fails where the shadow expects success and the
   * model says why (exec.ts reports it; the sequence goes on).
   */
  kinds: ReadonlyArray<FindingKind>;
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
  {
    id: 'nouveau-close-frees-svmm',
    kinds: ['KASAN'],
    rule: /^use-after-free of struct nouveau_svmm \(page->zone_device_data\) in nouveau_dmem_(migrate_to_ram|fault_copy_one)$/,
    doc: 'docs/FINDINGS.md#nouveau-closing-the-drm-file-frees-the-svmm-that-device-pages-still-name',
    summary: 'closing the DRM file frees the nouveau_svmm (nouveau_svmm_fini -> mmu_notifier_put) while VRAM pages migrated for it still name it in zone_device_data; the next CPU fault of such a page (nouveau_dmem_migrate_to_ram) locks and invalidates the freed svmm',
  },
  {
    id: 'nouveau-bind-inherited-file',
    kinds: ['INVARIANT'],
    rule: /^after [^:]+: stale GPU mapping: nouveau_pfns_map\(\) programmed it for a page of another mm/,
    doc: 'docs/FINDINGS.md#nouveau-svm_bind-through-a-file-inherited-over-fork-maps-the-childs-pages-into-the-parents-gpu-address-space',
    summary: 'nouveau_svmm_bind() migrates current->mm\'s pages but nouveau_dmem_migrate_chunk() -> nouveau_pfns_map() programs them into the file\'s SVMM, which mirrors the mm that called SVM_INIT: a fork child binding through the inherited file maps its pages at those addresses in the parent\'s GPU address space',
  },
  {
    id: 'nouveau-second-svmm-skips-migrate',
    kinds: ['INVARIANT'],
    rule: /^after [^:]+: stale GPU mapping: the SVMM skipped its device's MMU_NOTIFY_MIGRATE invalidation/,
    doc: 'docs/FINDINGS.md#nouveau-a-second-svmm-of-an-mm-keeps-gpu-entries-to-pages-another-svmm-migrated',
    summary: 'nouveau_svmm_invalidate_range_start() skips every MMU_NOTIFY_MIGRATE whose owner is its device, so a second SVMM of the same mm (another DRM file) keeps its GPU entries to the system pages an SVM_BIND through the first one migrates and frees',
  },
  {
    id: 'nouveau-gpu-write-readonly-vram-livelock',
    kinds: ['HANG'],
    rule: /^nouveau: GPU fault at 0x[0-9a-f]+ replayed 1000 times \(livelock\): the entry is this device's read-only VRAM page/,
    doc: 'docs/FINDINGS.md#nouveau-a-gpu-write-to-its-own-read-only-vram-page-faults-forever',
    summary: 'a GPU write to a page in VRAM made read-only by fork: hmm_range_fault() reports the device\'s own device-private entry without faulting it for write, nouveau_range_fault() succeeds, nouveau_svm_fault() replays, the GPU faults again, forever',
  },
  {
    id: 'nouveau-exit-keeps-gpu-entries',
    kinds: ['KASAN', 'ERRNO'],
    rule: /^(nouveau: GPU access through an entry of an exited mm to a freed page|GPU read through the SVMM of an exited mm succeeded)/,
    doc: 'docs/FINDINGS.md#nouveau-the-gpu-keeps-its-entries-to-an-exited-processs-pages',
    summary: 'nouveau_mn_ops has no ->release: exit_mmap() -> mn_hlist_release() unhooks the SVMM\'s notifier without invalidating, and the unmap that frees the pages reaches it no more; the GPU keeps its entries to the freed pages until the DRM file is closed (a process that inherited the file still reads through them)',
  },
  {
    id: 'nouveau-bind-prot-none',
    kinds: ['ERRNO'],
    rule: /^GPU read of a PROT_NONE page succeeded \(SVM_BIND mapped it in VRAM\)$/,
    doc: 'docs/FINDINGS.md#nouveau-svm_bind-of-a-prot_none-range-lets-the-gpu-read-it',
    summary: 'nouveau_svmm_bind() migrates every VMA piece of the range whatever its protection (migrate_vma_setup() does not check VM_READ) and nouveau_pfns_map() maps the VRAM copies readable: the GPU reads memory the process made PROT_NONE, which a GPU fault (hmm_range_fault(): -EFAULT) would refuse',
  },
  {
    id: 'hmm-absent-pmd-first-pfn',
    kinds: ['INVARIANT'],
    rule: /^after [^:]+: stale GPU mapping: hmm_vma_handle_absent_pmd\(\) reported the device-private PMD's first pfn/,
    doc: 'docs/FINDINGS.md#mmhmmc-hmm_vma_handle_absent_pmd-reports-the-pmds-first-pfn-for-a-range-starting-inside-it',
    summary: 'mm/hmm.c hmm_vma_handle_absent_pmd() fills hmm_pfns from swp_offset_pfn(entry) without the offset of the range start inside the PMD: a GPU fault on page j of a 2 MiB device-private THP (nouveau: one page per fault) is told the THP\'s first page, and the GPU maps the wrong VRAM page (reads and writes land in page 0)',
  },
  {
    id: 'nouveau-gpu-atomic-retry-livelock',
    kinds: ['ERRNO'],
    rule: /^nouveau_atomic_range_fault: -EBUSY after HMM_RANGE_DEFAULT_TIMEOUT$/,
    doc: 'docs/FINDINGS.md#nouveau-a-gpu-atomic-on-a-page-that-needs-cow-retries-until-the-timeout',
    summary: 'nouveau_atomic_range_fault(): when the first make_device_exclusive() had to break COW (zero page, fork-shared page) or split a THP, the sequence moved; every later round restores the device-exclusive entry it left (MMU_NOTIFY_CLEAR, not skipped) and moves it again, until HMM_RANGE_DEFAULT_TIMEOUT: -EBUSY, the GPU fault is cancelled',
  },
];

/**
 * The known finding a KernelBug or WARNING matches, or null. Entries scoped
 * to the allocation-failure sweep match only with `ctx.failSite` among their
 * sites.
 */
export function matchFinding(kind: FindingKind, rule: string, ctx: FindingContext = {}): KnownFinding | null {
  for (const f of KNOWN_FINDINGS) {
    if (f.scope === 'failSites' && (ctx.failSite === undefined || (f.sites !== undefined && !f.sites.includes(ctx.failSite)))) continue;
    if (f.kinds.includes(kind) && f.rule.test(rule)) return f;
  }
  return null;
}
