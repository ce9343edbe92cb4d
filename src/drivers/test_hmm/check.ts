// SPDX-License-Identifier: GPL-2.0-only
/**
 * Checked mode for test_hmm (model-only, no kernel counterpart): the
 * coherence of every mirror's device page table with the CPU page table of
 * the mm it mirrors, registered on the machine at module init
 * (k.registerChecker) and run at each checkpoint after the kernel's own
 * invariants (src/kernel/mm/debug_vm.ts).
 *
 * The rule (a secondary MMU may map only what the primary maps): a mirror
 * entry at virtual pfn v, tagged as dmirror tags it, must match the CPU
 * entry of notifier.mm at v * PAGE_SIZE:
 *  - a present PTE or PMD leaf: the entry is that page;
 *  - a device-private entry of page D: the entry is D (what
 *    hmm_range_fault() reports for the device's own pages) or, if D is
 *    this device's, BACKING_PAGE(D) (what dmirror_migrate_finalize_and_map
 *    stores);
 *  - a device-exclusive entry of page P: the entry is P;
 *  - anything else (none, swap, hwpoison): no entry at all.
 * A WRITE entry needs a writable CPU entry (present with _PAGE_RW, a
 * writable device-private entry, or a device-exclusive entry); an ATOMIC
 * entry needs a device-exclusive one. A mirror may map less, or
 * read-only, never more.
 *
 * Every event that changes a CPU entry invalidates the range first
 * (mmu_notifier_invalidate_range_start), and dmirror_interval_invalidate
 * erases the mirror's entries there under dmirror->mutex after moving the
 * interval sequence; dmirror_do_fault stores entries only when the
 * sequence has not moved since hmm_range_fault. So at a checkpoint (at
 * rest: no invalidation in flight, no migration entry left) every entry
 * was made after the last invalidation of its address and must match:
 * an entry that does not is a stale secondary mapping (a missing
 * notifier in the kernel, or a driver path that skips an invalidation).
 * Cost: one page-table walk per 512 mirror entries, one lookup per entry.
 */
import type { Kernel } from '../../kernel/kernel.js';
import { KernelBug } from '../../kernel/printk.js';
import { isDevicePrivatePage, pagePgmap } from '../../kernel/mm/memremap.js';
import { PAGE_SIZE } from '../../kernel/mm/page.js';
import {
  TYPE_NAMES, T_DEVICE_EXCLUSIVE, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_NONE, T_PRESENT, T_TABLE, _PAGE_RW, isMigrationType, pmdIndex, pmdTableOf, pteType,
} from '../../kernel/mm/pgtable.js';
import { DPT_XA_TAG_ATOMIC, DPT_XA_TAG_WRITE, DmirrorChunk, type TestHmm } from './device.js';
import type { Dmirror } from './mirror.js';

/** The rule name of a violation. */
export const STALE_SECONDARY_MAPPING = 'stale secondary mapping';
/**
 * The rule when the stale entry is one a second mirror of the device kept
 * by skipping that device's MMU_NOTIFY_MIGRATE invalidation, as mainline's
 * dmirror_interval_invalidate() does (docs/FINDINGS.md: a known test_hmm
 * bug, not a missing notifier).
 */
export const STALE_AFTER_SKIPPED_MIGRATE = 'stale secondary mapping: a second mirror of the device skipped its MMU_NOTIFY_MIGRATE invalidation (dmirror_interval_invalidate)';

/** The checker of the module: every mirror of every device. */
export function dmirrorCheckCoherence(mod: TestHmm, op: string): void {
  for (const dmirror of mod.mirrors.values()) dmirrorCheckMirror(dmirror, op);
}

/** One mirror against the CPU page table of its mm. */
export function dmirrorCheckMirror(dmirror: Dmirror, op: string): void {
  const k = dmirror.k;
  const mm = dmirror.notifier.mm;
  dmirror.pt.forEachLeaf((block, leaf) => {
    const base = block * 512 * PAGE_SIZE;
    const pmd = pmdTableOf(mm.pgd, base, false);
    const i = pmdIndex(base);
    const pmdType = pmd === null ? T_NONE : pteType(pmd.f[i]);
    const pte = pmdType === T_TABLE ? pmd!.pte[i] : null;
    for (let j = 0; j < 512; j++) {
      if (leaf[j] === 0) continue;
      const entry = leaf[j] - 1;
      const page = Math.floor(entry / 4);
      const tag = entry % 4;
      let v = 0;
      let f = 0;
      if (pte !== null) {
        v = pte.v[j];
        f = pte.f[j];
      } else if (pmd !== null && pmdType !== T_NONE && pmdType !== T_TABLE) {
        v = pmd.v[i] + j; /* the subpage of a PMD leaf */
        f = pmd.f[i];
      }
      const why = mismatch(k, dmirror, page, tag, v, f);
      if (why !== null) stale(k, dmirror, op, base + j * PAGE_SIZE, page, tag, v, f, why, dmirror.pt.skipped?.has(block * 512 + j) === true);
    }
  });
}

/** Why entry (page, tag) cannot stand beside the CPU entry (v, f), or null if it can. */
function mismatch(k: Kernel, dmirror: Dmirror, page: number, tag: number, v: number, f: number): string | null {
  const t = pteType(f);
  if (isMigrationType(t)) return null; /* not at rest: another invariant's business */
  let mapsPage: boolean;
  let writable: boolean;
  switch (t) {
    case T_PRESENT:
      mapsPage = page === v;
      writable = (f & _PAGE_RW) !== 0;
      break;
    case T_DEVICE_PRIVATE_READ:
    case T_DEVICE_PRIVATE_WRITE:
      mapsPage = page === v || (ownDevicePage(k, dmirror, v) && page === backingOf(k, v));
      writable = t === T_DEVICE_PRIVATE_WRITE;
      break;
    case T_DEVICE_EXCLUSIVE:
      mapsPage = page === v;
      writable = true;
      break;
    default:
      return `the CPU maps nothing there (${TYPE_NAMES[t] ?? t})`;
  }
  if (!mapsPage) return `the CPU maps pfn 0x${v.toString(16)} there`;
  if (tag === DPT_XA_TAG_WRITE && !writable) return 'the mirror entry is writable, the CPU entry is not';
  if (tag === DPT_XA_TAG_ATOMIC && t !== T_DEVICE_EXCLUSIVE) return 'the mirror entry is atomic (device-exclusive), the CPU entry is not device-exclusive';
  return null;
}

/** d is a device-private page of this mirror's device. */
function ownDevicePage(k: Kernel, dmirror: Dmirror, d: number): boolean {
  if (!isDevicePrivatePage(k, d)) return false;
  const pg = pagePgmap(k, d);
  return pg instanceof DmirrorChunk && pg.mdevice === dmirror.mdevice;
}

/** BACKING_PAGE() of a device-private page, through its folio head (a device THP's tails get theirs at split). */
function backingOf(k: Kernel, d: number): number {
  const h = k.pages.folioPfn(d);
  const r = k.pages.zdd[h];
  return r === 0 ? -1 : r + (d - h);
}

function stale(k: Kernel, dmirror: Dmirror, op: string, addr: number, page: number, tag: number, v: number, f: number, why: string, skipped: boolean): never {
  const t = pteType(f);
  const tagName = tag === DPT_XA_TAG_WRITE ? 'WRITE' : tag === DPT_XA_TAG_ATOMIC ? 'ATOMIC' : 'read-only';
  const state = [
    `dmirror #${dmirror.id} (${dmirror.mdevice}) of mm #${dmirror.notifier.mm.id} at 0x${addr.toString(16)}: entry pfn 0x${page.toString(16)} ${tagName}; ${why}`,
    `CPU entry: ${TYPE_NAMES[t] ?? t}${t === T_NONE ? '' : ` pfn 0x${v.toString(16)} flags 0x${f.toString(16)}`}`,
    k.dumpPage(page, `dmirror entry at 0x${addr.toString(16)}`),
  ].join('\n');
  throw new KernelBug('INVARIANT', `after ${op}: ${skipped ? STALE_AFTER_SKIPPED_MIGRATE : STALE_SECONDARY_MAPPING}`, state);
}
