// SPDX-License-Identifier: GPL-2.0-only
/**
 * The explorer's per-step detectors and how an exception becomes a
 * violation: a page freed while mapped (checked mode's
 * findFreedWhileMapped(), formatted), a pgmap removed with pages in use,
 * the compact page state of traces.
 */
import type { Kernel } from '../kernel/kernel.js';
import { KernelBug } from '../kernel/printk.js';
import { findFreedWhileMapped } from '../kernel/mm/debug_vm.js';
import { FLAG_NAMES } from '../kernel/mm/page.js';
import type { Violation } from './scenario.js';

/** A violation found by a per-step detector: stops the run. */
export class DetectorStop extends Error {
  constructor(readonly violation: Violation) {
    super(`${violation.detector}: ${violation.rule}`);
  }
}

/** Compact page state for traces. */
export function pageState(k: Kernel, pfn: number): string {
  const p = k.pages;
  if (pfn <= 0 || pfn >= p.capacity) return `pfn 0x${pfn.toString(16)}: no struct page`;
  const head = p.folioPfn(pfn);
  const flags = FLAG_NAMES.filter(([b]) => (p.flags[pfn] & b) !== 0).map(([, n]) => n);
  let s = `pfn 0x${pfn.toString(16)} ref:${p.refcount[head]} map:${p.mapcount[pfn]}${p.pincount[head] ? ` pin:${p.pincount[head]}` : ''} ${flags.join('|') || '-'}`;
  const g = p.pgmap[pfn];
  if (g !== 0) {
    const pg = k.pgmaps[g];
    if (pg) s += ` pgmap#${g}:ref ${pg.refCount}${pg.dead ? ' DEAD' : pg.dying ? ' dying' : ''}`;
  }
  return s;
}

/**
 * Per-step: a page that is free (buddy or returned to its driver) or whose
 * pgmap is gone must not be mapped by any page table entry under a VMA of a
 * live mm (entries outside every VMA are covered by the end-of-run
 * invariants). The walk is checked mode's findFreedWhileMapped(); this
 * formats what it finds as a violation, or returns null.
 */
export function freedWhileMapped(k: Kernel): Violation | null {
  const bad = findFreedWhileMapped(k, true);
  if (bad === null) return null;
  const rule = bad.huge
    ? `page freed while mapped: folio 0x${bad.pfn.toString(16)} is free but mm #${bad.mm.id} still maps it with a PMD`
    : `page freed while mapped: pfn 0x${bad.pfn.toString(16)} is free but mm #${bad.mm.id} still maps it at 0x${bad.addr.toString(16)}`;
  return { detector: 'INVARIANT', rule, state: k.dumpPage(bad.pfn, 'page freed while mapped') };
}

/** Per-step: memunmap_pages() must not have finished while pages of the pgmap are allocated. */
export function pgmapLifetime(k: Kernel): Violation | null {
  for (const g of k.pgmaps) {
    if (g === null || !g.dead || g.allocated <= 0) continue;
    return {
      detector: 'INVARIANT',
      rule: `memunmap_pages(pgmap #${g.id}) finished with ${g.allocated} device page(s) still in use: their struct pages and pgmap are freed under their users`,
      state: `pgmap #${g.id} type:${g.typeName()} ref:${g.refCount} allocated:${g.allocated} DEAD`,
    };
  }
  return null;
}

/** A number that changes whenever a page is freed (buddy frees, device pages returned to their driver). */
export function freeCount(k: Kernel): number {
  let n = (Math.imul(k.buddy.stat.free0, 7) + k.buddy.stat.free9) | 0;
  for (const g of k.pgmaps) if (g !== null) n = (Math.imul(n, 1000003) + g.allocated * 2 + (g.dead ? 1 : 0)) | 0;
  return n;
}

/** The violation an exception from a run stands for. */
export function violationOf(e: unknown): Violation {
  if (e instanceof DetectorStop) return e.violation;
  if (e instanceof KernelBug) return { detector: e.kind, rule: e.rule, state: e.state };
  const err = e instanceof Error ? e : new Error(String(e));
  const where = (err.stack ?? '').split('\n').slice(1, 4).map((l) => l.trim()).join('\n');
  return { detector: 'OOPS', rule: `${err.name}: ${err.message}`, state: where };
}
