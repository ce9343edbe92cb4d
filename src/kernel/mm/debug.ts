// SPDX-License-Identifier: GPL-2.0-only
/** dump_page() (mm/debug.c): the state of a page as text. */
import type { Kernel } from '../kernel.js';
import { FLAG_NAMES } from './page.js';
import { type BugKind, KernelBug } from '../printk.js';

export function dumpPage(k: Kernel, pfn: number, reason: string): string {
  const p = k.pages;
  if (pfn < 0 || pfn >= p.capacity) return `page:pfn ${pfn} (no struct page)`;
  const head = p.folioPfn(pfn);
  const flags = FLAG_NAMES.filter(([b]) => (p.flags[pfn] & b) !== 0).map(([, n]) => n);
  const pg = p.pgmap[pfn];
  const pgmap = pg ? k.pgmaps[pg] : null;
  const lines = [
    `page: refcount:${p.refcount[head]} mapcount:${p.mapcount[pfn]} mapping:${p.mapping[head] ? '#' + p.mapping[head] : '0'} index:0x${p.index[pfn].toString(16)} pfn:0x${pfn.toString(16)}`,
    head !== pfn || p.order[pfn] ? `head: pfn:0x${head.toString(16)} order:${p.order[pfn]} entire_mapcount:${p.entireMapcount[head]} pincount:${p.pincount[head]}` : `pincount:${p.pincount[head]}`,
    `flags: ${flags.join('|') || '0'}`,
  ];
  if (pgmap) lines.push(`pgmap: #${pgmap.id} type:${pgmap.typeName()} ref:${pgmap.refCount}${pgmap.dying ? ' dying' : ''}${pgmap.dead ? ' DEAD' : ''} zone_device_data:${p.zdd[pfn]}`);
  if (reason) lines.push(`page dumped because: ${reason}`);
  return lines.join('\n');
}

/**
 * VM_BUG_ON_PAGE() and friends, out of line: raise a KernelBug of `kind`
 * naming `rule`, with dump_page(pfn, why). The hot paths test their
 * condition inline and call this only when it fails, so the report's
 * formatting stays out of the small functions V8 inlines.
 */
export function pageBug(k: Kernel, kind: BugKind, rule: string, pfn: number, why = ''): never {
  throw new KernelBug(kind, rule, dumpPage(k, pfn, why));
}
