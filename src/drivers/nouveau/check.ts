// SPDX-License-Identifier: GPL-2.0-only
/**
 * Checked mode for the nouveau model (model-only, no kernel counterpart):
 * the coherence of every SVMM's GPU page table with the CPU page table of
 * the mm it mirrors, registered on the machine at probe
 * (k.registerChecker, nouveauInit) and run at each checkpoint after the
 * kernel's own invariants, as test_hmm/check.ts does for dmirror.
 *
 * The rule (a secondary MMU may map only what the primary maps): a valid
 * GPU entry at address a of an SVMM whose vmm is alive must match the CPU
 * entry of svmm.mm at a:
 *  - a HOST entry of page P: the CPU maps P there (a present PTE, the
 *    subpage of a PMD leaf) or holds a device-exclusive entry of P;
 *  - a VRAM entry of VRAM page V: the CPU holds a device-private entry of
 *    a page D of this device with nouveau_dmem_page_addr(D) == V;
 *  - anything else (none, swap, hwpoison): no GPU entry at all.
 * A writable GPU entry needs a writable CPU entry (present with _PAGE_RW,
 * a writable device-private entry, a device-exclusive entry); an atomic one
 * needs a device-exclusive entry. The GPU may map less, never more.
 *
 * Every change of a CPU entry invalidates first
 * (nouveau_svmm_invalidate_range_start() drops the GPU's entries under
 * svmm->mutex), and the fault path programs entries under the same mutex
 * only when the interval sequence has not moved since hmm_range_fault().
 * So at a checkpoint (at rest: no migration entry left) an entry that does
 * not match is a stale GPU mapping. Two ways mainline leaves one are
 * known findings and named as such (docs/FINDINGS.md): an SVMM that skipped
 * its device's MMU_NOTIFY_MIGRATE for a migration another SVMM (another
 * file on the same mm) made, and SVM_BIND through a file inherited over
 * fork (nouveau_pfns_map() of the child's pages into the parent's SVMM).
 */
import { KernelBug } from '../../kernel/printk.js';
import {
  TYPE_NAMES, T_DEVICE_EXCLUSIVE, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_NONE, T_TABLE, T_PRESENT, _PAGE_RW,
  isMigrationType, pmdIndex, pmdTableOf, pteIndex, pteType,
} from '../../kernel/mm/pgtable.js';
import { NOUVEAU_APER_HOST } from './chan.js';
import type { NouveauDmem } from './dmem.js';
import type { GpuPte, NouveauSvmm } from './svm.js';

/** The rule of a stale GPU entry no known finding explains. */
export const STALE_GPU_MAPPING = 'stale GPU mapping';
/** The rule when the SVMM skipped its device's MMU_NOTIFY_MIGRATE (a migration through another SVMM of the mm). */
export const STALE_GPU_AFTER_SKIPPED_MIGRATE = 'stale GPU mapping: the SVMM skipped its device\'s MMU_NOTIFY_MIGRATE invalidation (nouveau_svmm_invalidate_range_start) for a migration made through another SVMM';
/**
 * The rule when the CPU maps a device-private PMD there and the GPU entry
 * names the PMD's first page: mm/hmm.c hmm_vma_handle_absent_pmd() fills
 * hmm_pfns from swp_offset_pfn(entry) without the offset of range->start
 * inside the PMD (docs/FINDINGS.md, hmm-absent-pmd-first-pfn).
 */
export const STALE_GPU_ABSENT_PMD = 'stale GPU mapping: hmm_vma_handle_absent_pmd() reported the device-private PMD\'s first pfn for an address inside it';
/** The rule when the entry was programmed for another mm's page (SVM_BIND through an inherited file). */
export const STALE_GPU_FOREIGN_BIND = 'stale GPU mapping: nouveau_pfns_map() programmed it for a page of another mm (SVM_BIND through a file inherited over fork)';

/** The checker of one probed device: every SVMM of every open client. */
export function nouveauCheckCoherence(dmem: NouveauDmem, svmms: Iterable<NouveauSvmm>, op: string): void {
  for (const svmm of svmms) nouveauCheckSvmm(dmem, svmm, op);
}

/** One SVMM's GPU page table against the CPU page table of its mm. */
export function nouveauCheckSvmm(dmem: NouveauDmem, svmm: NouveauSvmm, op: string): void {
  if (!svmm.vmmAlive || svmm.freed) return;
  // An mm that has exited maps nothing, but exit_mmap() did not invalidate
  // the SVMM (nouveau's notifier has no ->release: the known finding
  // nouveau-exit-keeps-gpu-entries, reported where the GPU uses such an
  // entry). Of such an SVMM only the entries SVM_BIND programmed for another
  // mm after the exit are checked.
  const gone = svmm.mm.mmUsers <= 0;
  for (const [addr, pte] of svmm.pt) {
    if (gone && !svmm.foreignBind?.has(addr)) continue;
    const pmd = gone ? null : pmdTableOf(svmm.mm.pgd, addr, false);
    const i = pmdIndex(addr);
    const pmdType = pmd === null ? T_NONE : pteType(pmd.f[i]);
    let v = 0;
    let f = 0;
    let pmdHead = -1;
    if (pmdType === T_TABLE) {
      const t = pmd!.pte[i];
      if (t) {
        v = t.v[pteIndex(addr)];
        f = t.f[pteIndex(addr)];
      }
    } else if (pmd !== null && pmdType !== T_NONE) {
      v = pmd.v[i] + pteIndex(addr); /* the subpage of a PMD leaf */
      f = pmd.f[i];
      pmdHead = pmd.v[i];
    }
    const why = mismatch(dmem, pte, v, f);
    if (why === null) continue;
    const t0 = pteType(f);
    const absentPmdSkew = pmdHead >= 0 && (t0 === T_DEVICE_PRIVATE_READ || t0 === T_DEVICE_PRIVATE_WRITE) && pte.aper !== NOUVEAU_APER_HOST &&
      pteIndex(addr) !== 0 && vramAddr(dmem, pmdHead) === pte.addr;
    const rule = svmm.foreignBind?.has(addr) ? STALE_GPU_FOREIGN_BIND : svmm.skippedMigrate?.has(addr) ? STALE_GPU_AFTER_SKIPPED_MIGRATE : absentPmdSkew ? STALE_GPU_ABSENT_PMD : STALE_GPU_MAPPING;
    const t = pteType(f);
    const state = [
      `svmm of mm #${svmm.mm.id} at 0x${addr.toString(16)}: GPU entry ${pte.aper === NOUVEAU_APER_HOST ? 'HOST pfn' : 'VRAM page'} 0x${pte.addr.toString(16)}${pte.write ? ' W' : ''}${pte.atomic ? ' A' : ''}; ${why}`,
      `CPU entry: ${TYPE_NAMES[t] ?? t}${t === T_NONE ? '' : ` pfn 0x${v.toString(16)} flags 0x${f.toString(16)}`}`,
    ].join('\n');
    throw new KernelBug('INVARIANT', `after ${op}: ${rule}`, state);
  }
}

/** Why GPU entry pte cannot stand beside the CPU entry (v, f), or null if it can. */
function mismatch(dmem: NouveauDmem, pte: GpuPte, v: number, f: number): string | null {
  const t = pteType(f);
  if (isMigrationType(t)) return null; /* not at rest: another invariant's business */
  let maps: boolean;
  let writable: boolean;
  switch (t) {
    case T_PRESENT:
      maps = pte.aper === NOUVEAU_APER_HOST && pte.addr === v;
      writable = (f & _PAGE_RW) !== 0;
      break;
    case T_DEVICE_PRIVATE_READ:
    case T_DEVICE_PRIVATE_WRITE:
      maps = pte.aper !== NOUVEAU_APER_HOST && dmem.pageToChunk(v) !== null && vramAddr(dmem, v) === pte.addr;
      writable = t === T_DEVICE_PRIVATE_WRITE;
      break;
    case T_DEVICE_EXCLUSIVE:
      maps = pte.aper === NOUVEAU_APER_HOST && pte.addr === v;
      writable = true;
      break;
    default:
      return `the CPU maps nothing there (${TYPE_NAMES[t] ?? t})`;
  }
  if (!maps) return `the CPU maps ${t === T_PRESENT || t === T_DEVICE_EXCLUSIVE ? 'host' : 'device'} pfn 0x${v.toString(16)} there`;
  if (pte.write && !writable) return 'the GPU entry is writable, the CPU entry is not';
  if (pte.atomic && t !== T_DEVICE_EXCLUSIVE) return 'the GPU entry is atomic, the CPU entry is not device-exclusive';
  return null;
}

/** nouveau_dmem_page_addr() of a page of a live chunk, or -1 when its buffer object is gone. */
function vramAddr(dmem: NouveauDmem, pfn: number): number {
  const c = dmem.pageToChunk(pfn);
  if (c === null || !c.bo) return -1;
  return dmem.pageAddr(pfn);
}
