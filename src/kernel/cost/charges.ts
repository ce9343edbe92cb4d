// SPDX-License-Identifier: GPL-2.0-only
/**
 * Charging helpers called from the kernel and drivers at coarse points
 * (one call per migrate_vma_setup() / per copied folio), only when a clock
 * is attached (`if (k.clock !== null) ...` at the call site).
 */
import type { Kernel } from '../kernel.js';
import type { SimClock } from './clock.js';

/** MIGRATE_PFN_MIGRATE and MIGRATE_PFN_COMPOUND (include/linux/migrate.h values as the model encodes them in migrate_device.ts). */
export interface MigrateEntryBits {
  migrate: number;
  compound: number;
}

/**
 * migrate_vma_setup(): collect + unmap. Charged after the fact from the src
 * array: per call migrateBatchNs (one TLB flush for the range), per folio
 * migrateFolioNs (isolate, lock, refcount check, and later finalize), per
 * PTE-mapped page migratePteNs (migration entry in, entry out in finalize),
 * per PMD-mapped folio migratePmdNs.
 */
export function chargeMigrateVmaSetup(clock: SimClock, src: Float64Array, npages: number, has: (v: number, f: number) => boolean, bits: MigrateEntryBits, thpPages: number): void {
  const kc = clock.profile.kernel;
  let ns = kc.migrateBatchNs;
  for (let i = 0; i < npages; ) {
    const v = src[i];
    if (v === 0 || !has(v, bits.migrate)) {
      i++;
      continue;
    }
    if (has(v, bits.compound)) {
      ns += kc.migrateFolioNs + kc.migratePmdNs;
      i += thpPages;
    } else {
      ns += kc.migrateFolioNs + kc.migratePteNs;
      i++;
    }
  }
  clock.charge('migrate_vma_setup+finalize', ns);
}

/**
 * A device driver's copy of `pages` pages between system and device memory
 * (dmirror's copy in dmirror_migrate_alloc_and_copy /
 * dmirror_devmem_fault_alloc_and_copy; nouveau's nvc0b5_migrate_copy() /
 * nvc0b5_migrate_clear() command on its copy channel). With a
 * device and a link in the profile: one copy command on copy engine `ce0`,
 * copySetupNs on the CPU to submit, then link latency + bytes over the link
 * on the engine; the CPU does not wait here.
 * Without: a CPU copy (dmirror's memcpy) at the profile's CPU bandwidth.
 * Returns the ns the copy occupies the engine (0 for a CPU copy).
 */
export function chargeDeviceCopy(k: Kernel, pages: number, phase: string): number {
  const clock = k.clock!;
  const prof = clock.profile;
  if (prof.device !== undefined && prof.link !== undefined) {
    // Submitted and queued: the CPU waits once, for the fence, before
    // migrate_vma_finalize() (chargeCopyFenceWait).
    clock.charge(`${phase}: submit`, prof.device.copySetupNs);
    const ns = prof.link.latencyNs + (pages * 4096) / prof.link.GBps;
    clock.engineRun('ce0', ns, clock.now(), clock.jobs === null ? 'job' : `${phase}: ${pages} page${pages > 1 ? 's' : ''} over ${prof.link.name}`);
    return ns;
  }
  clock.charge(`${phase}: cpu copy`, pages * clock.cpuCopyPageNs);
  return 0;
}

/**
 * The driver's wait for its copy fence: migrate_vma_finalize() /
 * migrate_device_finalize() require the copy to the destination pages to be
 * complete, so the CPU waits for copy engine ce0 before them.
 */
export function chargeCopyFenceWait(clock: SimClock): void {
  const t = clock.engineNs.get('ce0');
  if (t !== undefined) clock.waitFor(t, 'copy fence wait');
}

/**
 * hmm_range_fault() (mm/hmm.c): `kernel.hmmRangeFaultNs` per call plus
 * `kernel.hmmPageNs` per page of the range (the walk reads one PTE per
 * page and writes its hmm_pfn word; a PMD's 512 words are written in one
 * loop, charged per page as well). Faults it takes through
 * handle_mm_fault() are not charged here. Nothing when the profile has
 * neither value.
 */
export function chargeHmmRangeFault(clock: SimClock, npages: number): void {
  const kc = clock.profile.kernel;
  const ns = (kc.hmmRangeFaultNs ?? 0) + npages * (kc.hmmPageNs ?? 0);
  if (ns > 0) clock.charge('hmm_range_fault', ns);
}

/**
 * A device driver's GPU page-table update (nouveau's NVIF_VMM_V0_PFNMAP
 * to map, PFNCLR to unmap, through nvif_object_ioctl() into nvkm) of
 * `ptes` entries, and the TLB invalidate that ends it: on the CPU, which
 * waits for the method and the invalidate's ack. `device.ptUpdateNs` per
 * update + `device.ptePageNs` per entry, then `device.tlbInvalidateNs`
 * (phase 'GPU TLB invalidate'). Nothing without a device in the profile.
 */
export function chargeGpuPtUpdate(clock: SimClock, phase: string, ptes: number): void {
  const dev = clock.profile.device;
  if (dev === undefined) return;
  const ns = (dev.ptUpdateNs ?? 0) + ptes * (dev.ptePageNs ?? 0);
  if (ns > 0) clock.charge(phase, ns);
  if ((dev.tlbInvalidateNs ?? 0) > 0) clock.charge('GPU TLB invalidate', dev.tlbInvalidateNs!);
}
