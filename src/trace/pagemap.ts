// SPDX-License-Identifier: GPL-2.0-only
/**
 * Page maps: the state of every page of every live address space, read from
 * the page tables (src/kernel/mm/pgtable.ts entry types), as small integer
 * codes; and the counters a trace samples from them.
 *
 * One code per 4 KiB page of each VMA (a PMD-mapped THP gives every page of
 * its 2 MiB the code THP). Cost: one walk of the VMAs' page tables, so the
 * recorder samples it per explorer step (the explorer's machines are a few
 * pages) and a run-to-completion trace only at the end of outermost kernel
 * spans. Reads only; never changes the machine.
 */
import type { Kernel } from '../kernel/kernel.js';
import {
  T_DEVICE_EXCLUSIVE, T_HWPOISON, T_NONE, T_PRESENT, T_SWAP, T_TABLE, isDevicePrivateType, isMigrationType, pmdIndex, pmdTableOf, pteIndex, pmdAddrEnd, pteType,
} from '../kernel/mm/pgtable.js';
import { MEMORY_DEVICE_COHERENT } from '../kernel/mm/memremap.js';
import type { Tracer } from '../kernel/trace.js';

/** Page state codes. Device-private pages are DEVICE_PRIVATE_BASE + pgmap id. */
export const PS_NONE = 0;
export const PS_PRESENT = 1;
export const PS_ZERO = 2;
export const PS_THP = 3;
export const PS_COHERENT = 4;
export const PS_MIGRATION = 5;
export const PS_EXCLUSIVE = 6;
export const PS_SWAP = 7;
export const PS_HWPOISON = 8;
export const DEVICE_PRIVATE_BASE = 16;

/** Name of a state code ("device-private #1" for pgmap 1). */
export function stateName(code: number): string {
  if (code >= DEVICE_PRIVATE_BASE) return `device-private #${code - DEVICE_PRIVATE_BASE}`;
  return ['none', 'present', 'zero page', 'THP', 'device-coherent', 'migration entry', 'device-exclusive', 'swap', 'hwpoison'][code] ?? `state ${code}`;
}

export interface SpaceLayout {
  /** mm id. */
  mm: number;
  /** VMAs [start, end) in page order; codes index them in this order. */
  vmas: Array<{ start: number; end: number }>;
  pages: number;
}

const PAGE = 4096;

function presentCode(k: Kernel, pfn: number): number {
  if (pfn === k.zeroPfn || pfn === k.hugeZeroPfn) return PS_ZERO;
  const g = pfn < k.pages.capacity ? k.pages.pgmap[pfn] : 0;
  if (g !== 0) {
    const pg = k.pgmaps[g];
    if (pg && pg.type === MEMORY_DEVICE_COHERENT) return PS_COHERENT;
  }
  return PS_PRESENT;
}

/** The state of one page-table entry (type `t`, value `v`), as a code. */
function entryCode(k: Kernel, t: number, v: number): number {
  if (t === T_NONE) return PS_NONE;
  if (t === T_PRESENT) return presentCode(k, v);
  if (t === T_SWAP) return PS_SWAP;
  if (isMigrationType(t)) return PS_MIGRATION;
  if (isDevicePrivateType(t)) return DEVICE_PRIVATE_BASE + (v < k.pages.capacity ? k.pages.pgmap[v] : 0);
  if (t === T_DEVICE_EXCLUSIVE) return PS_EXCLUSIVE;
  if (t === T_HWPOISON) return PS_HWPOISON;
  return PS_NONE;
}

/** The live address spaces and their VMAs. */
export function layoutOf(k: Kernel): SpaceLayout[] {
  const out: SpaceLayout[] = [];
  for (const mm of k.mms) {
    if (mm.mmUsers <= 0) continue;
    const vmas = mm.vmas.map((v) => ({ start: v.start, end: v.end }));
    out.push({ mm: mm.id, vmas, pages: vmas.reduce((s, v) => s + (v.end - v.start) / PAGE, 0) });
  }
  return out;
}

/** Codes of every page of `layout`'s VMAs (in VMA order), read from mm's page tables. */
export function pageCodes(k: Kernel, layout: SpaceLayout): Uint8Array {
  const out = new Uint8Array(layout.pages);
  let mm = null;
  for (const m of k.mms) if (m.id === layout.mm) mm = m;
  if (mm === null || mm.mmUsers <= 0) return out;
  let o = 0;
  for (const vma of layout.vmas) {
    for (let addr = vma.start; addr < vma.end;) {
      const next = pmdAddrEnd(addr, vma.end);
      const n = (next - addr) / PAGE;
      const pmd = pmdTableOf(mm.pgd, addr, false);
      if (pmd !== null) {
        const i = pmdIndex(addr);
        const t = pteType(pmd.f[i]);
        if (t === T_TABLE) {
          const pt = pmd.pte[i]!;
          const first = pteIndex(addr);
          for (let j = 0; j < n; j++) out[o + j] = entryCode(k, pteType(pt.f[first + j]), pt.v[first + j]);
        } else if (t !== T_NONE) {
          let c = entryCode(k, t, pmd.v[i]);
          if (c === PS_PRESENT) c = PS_THP;
          out.fill(c, o, o + n);
        }
      }
      o += n;
      addr = next;
    }
  }
  return out;
}

/** Pages per state over all live address spaces, and free device pages per pgmap: the trace's counters. */
export function countersOf(k: Kernel): { states: Record<string, number>; device: Record<string, number> } {
  const states: Record<string, number> = {};
  for (const l of layoutOf(k)) {
    const codes = pageCodes(k, l);
    for (let i = 0; i < codes.length; i++) {
      if (codes[i] === PS_NONE) continue;
      const n = stateName(codes[i]);
      states[n] = (states[n] ?? 0) + 1;
    }
  }
  const device: Record<string, number> = {};
  for (const g of k.pgmaps) {
    if (g === null) continue;
    device[`pgmap #${g.id} free`] = g.dead ? 0 : g.nrPages - g.allocated;
  }
  return { states, device };
}

/**
 * Install a sampler on `t` that records the counters (pages per state,
 * free device pages) of machine `k` at every explorer step and at the end
 * of every outermost kernel span. `every` thins run-to-completion samples
 * (one in `every` outermost spans).
 */
export function sampleCounters(t: Tracer, k: Kernel, every = 1): void {
  let n = 0;
  const known = new Set<string>();
  t.sampler = (tr, at) => {
    if (at === undefined && n++ % every !== 0) return;
    const c = countersOf(k);
    // A state seen before and gone now is reported as 0, so its track drops.
    for (const name of known) if (!(name in c.states)) c.states[name] = 0;
    for (const name of Object.keys(c.states)) known.add(name);
    tr.counter('pages by state', c.states, at);
    if (Object.keys(c.device).length > 0) tr.counter('free device pages', c.device, at);
  };
}
