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
 * dmirror_devmem_fault_alloc_and_copy; a real driver's copy engine). With a
 * device and a link in the profile: one copy command on copy engine `ce0`,
 * copySetupNs on the CPU to submit, then link latency + bytes over the link
 * on the engine; the CPU does not wait here.
 * Without: a CPU copy (dmirror's memcpy) at the profile's CPU bandwidth.
 */
export function chargeDeviceCopy(k: Kernel, pages: number, phase: string): void {
  const clock = k.clock!;
  const prof = clock.profile;
  if (prof.device !== undefined && prof.link !== undefined) {
    // Submitted and queued: the CPU waits once, for the fence, before
    // migrate_vma_finalize() (chargeCopyFenceWait).
    clock.charge(`${phase}: submit`, prof.device.copySetupNs);
    clock.engineRun('ce0', prof.link.latencyNs + (pages * 4096) / prof.link.GBps, clock.now(), clock.jobs === null ? 'job' : `${phase}: ${pages} page${pages > 1 ? 's' : ''} over ${prof.link.name}`);
  } else {
    clock.charge(`${phase}: cpu copy`, pages * clock.cpuCopyPageNs);
  }
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
