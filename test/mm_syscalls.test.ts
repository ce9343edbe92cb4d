// SPDX-License-Identifier: GPL-2.0-only
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { System, pagemapEntry, PM_PRESENT, PM_PFRAME_MASK, PM_MMAP_EXCLUSIVE } from '../src/user/system.js';
import type { Process } from '../src/user/process.js';
import {
  PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS,
  MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_SHARED_VALIDATE, MAP_POPULATE, MAP_HUGETLB,
} from '../src/kernel/mm/mmap.js';
import { MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP } from '../src/kernel/mm/mremap.js';
import {
  MADV_DONTNEED, MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_COLLAPSE, MADV_WIPEONFORK, MADV_NORMAL,
} from '../src/kernel/mm/madvise.js';
import { EINVAL, ENOMEM, EEXIST, EFAULT, EPERM, EBADF, EACCES } from '../src/kernel/errno.js';
import { VM_HUGEPAGE, VM_NOHUGEPAGE, VM_READ, VM_WRITE } from '../src/kernel/mm/mm_types.js';
import { HPAGE_PMD_NR, PG_anon_exclusive, PG_swapbacked, PG_dirty } from '../src/kernel/mm/page.js';
import { pmdTableOf, pmdIndex, T_PRESENT, T_TABLE, pteType } from '../src/kernel/mm/pgtable.js';
import { MmuIntervalNotifier, mmuIntervalNotifierInsert, MMU_NOTIFY_UNMAP, MMU_NOTIFY_CLEAR, MMU_NOTIFY_PROTECTION_VMA } from '../src/kernel/mm/mmu_notifier.js';

const RW = PROT_READ | PROT_WRITE;
const PA = MAP_PRIVATE | MAP_ANONYMOUS;
const PG = 4096;
const MB2 = 2 << 20;

function setup(cfg = {}): { s: System; p: Process } {
  const s = new System({ ramBytes: 256 << 20, checked: true, ...cfg });
  return { s, p: s.spawn('t') };
}

function pfnOf(p: Process, addr: number): number {
  const e = pagemapEntry(p.mm!, addr);
  return e & PM_PRESENT ? Number(e & PM_PFRAME_MASK) : -1;
}

/** Record the notifier events over an interval. */
function watch(p: Process): number[] {
  const events: number[] = [];
  const sub = new MmuIntervalNotifier(p.mm!, 0, 2 ** 47, {
    *invalidate(_s, range) {
      events.push(range.event);
      return true;
    },
  }, 'watch');
  mmuIntervalNotifierInsert(sub);
  return events;
}

test('mmap: argument errors return the kernel errno', () => {
  const { p } = setup();
  assert.equal(p.mmap(0, 0, RW, PA), -EINVAL, 'len 0');
  assert.equal(p.mmap(0x10000001, PG, RW, PA | MAP_FIXED), -EINVAL, 'unaligned MAP_FIXED');
  assert.equal(p.mmap(0, 2 ** 53, RW, PA), -ENOMEM, 'huge length');
  assert.equal(p.mmap(0, PG, RW, MAP_ANONYMOUS), -EINVAL, 'neither shared nor private');
  assert.equal(p.mmap(0, PG, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS), -EINVAL, 'anonymous SHARED_VALIDATE');
  assert.equal(p.mmap(0, PG, RW, MAP_ANONYMOUS | 0x0f), -EINVAL, 'bad map type');
  assert.equal(p.mmap(0, PG, RW, MAP_PRIVATE), -EBADF, 'file mapping without fd');
  assert.equal(p.mmap(0, PG, RW, PA, -1, 100), -EINVAL, 'unaligned offset');
  assert.equal(p.mmap(0x1000, PG, RW, PA | MAP_FIXED), -EPERM, 'below mmap_min_addr');
  // Unknown flag bits are ignored.
  const a = p.mmap(0, PG, RW, PA | 0x40000000);
  assert.ok(a > 0);
  // Unknown prot bits are ignored by mmap (but not by mprotect).
  assert.ok(p.mmap(0, PG, RW | 0x100, PA) > 0);
});

test('mmap: top-down placement and address reuse after munmap', () => {
  const { p } = setup();
  const a = p.mmap(0, 3 * PG, RW, PA);
  const b = p.mmap(0, 3 * PG, RW, PA);
  assert.equal(b, a - 3 * PG, 'top-down: the next mapping goes right below');
  assert.equal(p.munmap(b, 3 * PG), 0);
  assert.equal(p.mmap(0, 3 * PG, RW, PA), b, 'same size after munmap: same address');
  // A 2 MiB-multiple anonymous mapping is THP aligned.
  const h = p.mmap(0, 2 * MB2, RW, PA);
  assert.equal(h % MB2, 0);
  // A free hint is honoured.
  const hint = 0x500000000;
  assert.equal(p.mmap(hint, PG, RW, PA), hint);
  assert.equal(p.mmap(hint, PG, RW, PA) !== hint, true, 'busy hint: elsewhere');
});

test('mmap: MAP_FIXED replaces, MAP_FIXED_NOREPLACE fails with EEXIST', () => {
  const { p } = setup();
  const a = p.mmap(0, 4 * PG, RW, PA);
  p.fill(a, 4 * PG, 0x5a);
  assert.equal(p.mm!.rss.anon, 4);
  assert.equal(p.mmap(a + PG, PG, RW, PA | MAP_FIXED_NOREPLACE), -EEXIST);
  assert.equal(p.load8(a + PG), 0x5a);
  assert.equal(p.mmap(a + PG, PG, RW, PA | MAP_FIXED), a + PG);
  assert.equal(p.load8(a + PG), 0, 'replaced by fresh zero memory');
  assert.equal(p.load8(a), 0x5a);
  assert.equal(p.load8(a + 2 * PG), 0x5a);
  assert.equal(p.mm!.vmas.length, 3, 'split into three VMAs');
  assert.equal(p.mm!.rss.anon, 3);
});

test('munmap: errors, partial unmap splits the VMA and frees pages', () => {
  const { s, p } = setup();
  const k = s.kernel;
  assert.equal(p.munmap(0x10001, PG), -EINVAL);
  assert.equal(p.munmap(0x10000, 0), -EINVAL);
  assert.equal(p.munmap(0x7fff00000000, 2 ** 50), -EINVAL);
  assert.equal(p.munmap(0x10000, PG), 0, 'nothing mapped: 0');
  const a = p.mmap(0, 5 * PG, RW, PA);
  for (let i = 0; i < 5; i++) p.store32(a + i * PG, i + 1);
  const free0 = k.buddy.nrFree;
  const events = watch(p);
  assert.equal(p.munmap(a + PG, 2 * PG), 0);
  assert.deepEqual(events, [MMU_NOTIFY_UNMAP]);
  assert.equal(p.mm!.vmas.length, 2);
  assert.equal(p.mm!.rss.anon, 3);
  k.lru.drain();
  assert.equal(k.buddy.nrFree, free0 + 2);
  assert.equal(p.load32(a), 1);
  assert.equal(p.load32(a + 3 * PG), 4);
  // Unaligned length rounds up.
  assert.equal(p.munmap(a + 3 * PG, 1), 0);
  assert.equal(p.mm!.vmas.length, 2);
  assert.equal(p.mm!.vmas.find((v) => v.start === a + 4 * PG)?.end, a + 5 * PG);
});

test('mprotect: errors, split, write-protect and SIGSEGV, then writable again', () => {
  const { p } = setup();
  const a = p.mmap(0, 4 * PG, RW, PA);
  p.fill(a, 4 * PG, 1);
  assert.equal(p.mprotect(a + 1, PG, PROT_READ), -EINVAL);
  assert.equal(p.mprotect(a, PG, PROT_READ | 0x10), -EINVAL, 'unknown prot bit');
  assert.equal(p.mprotect(a, PG, PROT_GROWSDOWN | PROT_GROWSUP), -EINVAL);
  assert.equal(p.mprotect(a, 0, PROT_READ), 0);
  assert.equal(p.mprotect(0x20000, PG, PROT_READ), -ENOMEM, 'unmapped');
  const events = watch(p);
  assert.equal(p.mprotect(a + PG, PG, PROT_READ), 0);
  assert.deepEqual(events, [MMU_NOTIFY_PROTECTION_VMA]);
  assert.equal(p.mm!.vmas.length, 3);
  const v = p.mm!.vmaLookup(a + PG)!;
  assert.equal(v.flags & (VM_READ | VM_WRITE), VM_READ);
  assert.equal(p.load8(a + PG), 1);
  // Writing now segfaults in a child (the parent stays alive).
  const pid = p.fork((c) => {
    c.store8(a + PG, 2);
    c.exit(0);
  });
  const st = p.waitpid(pid);
  assert.equal(st.status & 0x7f, 11, 'child killed by SIGSEGV');
  // Back to RW: the exclusive anon page is made writable again without a fault.
  assert.equal(p.mprotect(a + PG, PG, RW), 0);
  p.store8(a + PG, 3);
  assert.equal(p.load8(a + PG), 3);
  // A hole in the range: -ENOMEM after applying to the part before it.
  const b = p.mmap(0, 3 * PG, RW, PA);
  assert.equal(p.munmap(b + PG, PG), 0);
  assert.equal(p.mprotect(b, 3 * PG, PROT_READ), -ENOMEM);
  assert.equal(p.mm!.vmaLookup(b)!.flags & VM_WRITE, 0, 'first part changed');
  assert.equal(p.mm!.vmaLookup(b + 2 * PG)!.flags & VM_WRITE, VM_WRITE, 'after the hole unchanged');
});

test('mprotect PROT_NONE marks PTEs protnone; access SIGSEGVs', () => {
  const { p } = setup();
  const a = p.mmap(0, PG, RW, PA);
  p.store32(a, 99);
  assert.equal(p.mprotect(a, PG, PROT_NONE), 0);
  assert.equal(pagemapEntry(p.mm!, a) & PM_PRESENT, PM_PRESENT, 'still present (protnone)');
  const pid = p.fork((c) => {
    c.load8(a);
  });
  assert.equal(p.waitpid(pid).status & 0x7f, 11);
  assert.equal(p.mprotect(a, PG, PROT_READ), 0);
  assert.equal(p.load32(a), 99);
});

test('mremap: errors', () => {
  const { p } = setup();
  const a = p.mmap(0, 2 * PG, RW, PA);
  assert.equal(p.mremap(a, PG, PG, 8), -EINVAL, 'unknown flag');
  assert.equal(p.mremap(a + 1, PG, PG, 0), -EINVAL);
  assert.equal(p.mremap(a, PG, 0, 0), -EINVAL, 'new len 0');
  assert.equal(p.mremap(a, PG, PG, MREMAP_FIXED, 0x600000000), -EINVAL, 'FIXED without MAYMOVE');
  assert.equal(p.mremap(a, PG, PG, MREMAP_DONTUNMAP), -EINVAL, 'DONTUNMAP without MAYMOVE');
  assert.equal(p.mremap(a, PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP), -EINVAL, 'DONTUNMAP resize');
  assert.equal(p.mremap(a, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, a + 1), -EINVAL, 'unaligned new addr');
  assert.equal(p.mremap(a, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, a + PG), -EINVAL, 'overlap');
  assert.equal(p.mremap(0x30000, PG, PG, 0), -EFAULT, 'nothing mapped');
  assert.equal(p.mremap(a, 4 * PG, 5 * PG, MREMAP_MAYMOVE), -EFAULT, 'old range beyond the VMA');
  assert.equal(p.mremap(a, 0, PG, MREMAP_MAYMOVE), -EINVAL, 'old_len 0 of a private mapping');
  const b = p.mmap(0, PG, RW, PA);
  assert.equal(b, a - PG);
  assert.equal(p.mremap(b, PG, 2 * PG, 0), -ENOMEM, 'cannot grow in place without MAYMOVE');
});

test('mremap: shrink, grow in place, move keeps contents, rmap and mapcounts', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const a = p.mmap(0, 4 * PG, RW, PA);
  for (let i = 0; i < 4; i++) p.store32(a + i * PG, 100 + i);
  assert.equal(p.mremap(a, 4 * PG, 2 * PG, 0), a, 'shrink in place');
  assert.equal(p.mm!.rss.anon, 2);
  assert.equal(p.mremap(a, 2 * PG, 3 * PG, 0), a, 'grow in place into the freed space');
  assert.equal(p.load32(a + 2 * PG), 0);
  const pfn0 = pfnOf(p, a);
  const dst = 0x600000000;
  assert.equal(p.mremap(a, 3 * PG, 3 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
  assert.equal(pfnOf(p, dst), pfn0, 'same page, moved');
  assert.equal(k.pages.mapcount[pfn0], 1);
  assert.equal(p.load32(dst), 100);
  assert.equal(p.load32(dst + PG), 101);
  assert.equal(p.mm!.vmaLookup(a), null);
  // rmap still finds the page at its new address.
  let seen = -1;
  import('../src/kernel/mm/rmap.js').then(() => undefined);
  const v = p.mm!.vmaLookup(dst)!;
  assert.equal(v.addressOf(k.pages.index[pfn0]), dst);
  seen = v.addressOf(k.pages.index[pfn0]);
  assert.equal(seen, dst);
  // Move to a new place chosen by the kernel (grow with MAYMOVE when blocked).
  const blocker = p.mmap(dst + 3 * PG, PG, RW, PA | MAP_FIXED);
  assert.equal(blocker, dst + 3 * PG);
  const n = p.mremap(dst, 3 * PG, 8 * PG, MREMAP_MAYMOVE);
  assert.ok(n > 0 && n !== dst);
  assert.equal(p.load32(n + PG), 101);
  assert.equal(p.load32(n + 7 * PG), 0);
});

test('mremap MREMAP_DONTUNMAP leaves the old VMA empty', () => {
  const { p } = setup();
  const a = p.mmap(0, 2 * PG, RW, PA);
  p.store32(a, 7);
  p.store32(a + PG, 8);
  const n = p.mremap(a, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
  assert.ok(n > 0 && n !== a);
  assert.equal(p.load32(n), 7);
  assert.equal(p.load32(n + PG), 8);
  assert.notEqual(p.mm!.vmaLookup(a), null, 'old VMA still there');
  assert.equal(p.load32(a), 0, 'old range reads fresh zero memory');
  assert.equal(p.mm!.vmaLookup(a)!.anonVma === null || p.mm!.vmaLookup(a)!.anonVma !== p.mm!.vmaLookup(n)!.anonVma, true);
});

test('mremap moves a THP PMD as is', () => {
  const { s, p } = setup({ thp: 'always' });
  const k = s.kernel;
  const a = p.mmap(0, MB2, RW, PA);
  p.store32(a, 5);
  const pmd = pmdTableOf(p.mm!.pgd, a, false)!;
  assert.equal(pteType(pmd.f[pmdIndex(a)]), T_PRESENT, 'THP mapped by a PMD');
  const head = pmd.v[pmdIndex(a)];
  const dst = 0x640000000;
  assert.equal(p.mremap(a, MB2, MB2, MREMAP_MAYMOVE | MREMAP_FIXED, dst), dst);
  const npmd = pmdTableOf(p.mm!.pgd, dst, false)!;
  assert.equal(pteType(npmd.f[pmdIndex(dst)]), T_PRESENT);
  assert.equal(npmd.v[pmdIndex(dst)], head);
  assert.equal(k.pages.entireMapcount[head], 1);
  assert.equal(p.load32(dst), 5);
  assert.equal(p.mm!.rss.anon, HPAGE_PMD_NR);
});

test('munmap of part of a THP splits the PMD', () => {
  const { s, p } = setup({ thp: 'always' });
  const k = s.kernel;
  const a = p.mmap(0, MB2, RW, PA);
  p.fill(a, MB2, 3);
  const head = pfnOf(p, a);
  assert.equal(k.pages.entireMapcount[head], 1);
  assert.equal(p.munmap(a + PG, PG), 0);
  const pmd = pmdTableOf(p.mm!.pgd, a, false)!;
  assert.equal(pteType(pmd.f[pmdIndex(a)]), T_TABLE);
  assert.equal(k.pages.entireMapcount[head], 0);
  assert.equal(k.pages.mapcount[head], 1);
  assert.equal(k.pages.mapcount[head + 1], 0);
  assert.equal(p.mm!.rss.anon, HPAGE_PMD_NR - 1);
  assert.equal(p.load8(a + 2 * PG), 3);
  assert.equal(p.munmap(a, MB2), 0);
  assert.equal(p.mm!.rss.anon, 0);
});

test('madvise: errors, DONTNEED, FREE, HUGEPAGE', () => {
  const { s, p } = setup();
  const k = s.kernel;
  const a = p.mmap(0, 4 * PG, RW, PA);
  assert.equal(p.madvise(a, PG, 7), -EINVAL, 'unknown advice');
  assert.equal(p.madvise(a, PG, 99), -EINVAL);
  assert.equal(p.madvise(a + 1, PG, MADV_DONTNEED), -EINVAL, 'unaligned');
  assert.equal(p.madvise(a, -1, MADV_DONTNEED), -EINVAL);
  assert.equal(p.madvise(a, 0, MADV_DONTNEED), 0);
  assert.equal(p.madvise(0x40000, PG, MADV_NORMAL), -ENOMEM, 'unmapped');
  p.fill(a, 4 * PG, 9);
  const events = watch(p);
  assert.equal(p.madvise(a, 2 * PG, MADV_DONTNEED), 0);
  assert.deepEqual(events, [MMU_NOTIFY_CLEAR]);
  assert.equal(p.load8(a), 0, 'DONTNEED: zero-fill on next touch');
  assert.equal(p.load8(a + 2 * PG), 9);
  assert.equal(p.mm!.rss.anon, 2);
  // MADV_FREE: lazyfree, data kept until reclaim (none in the model).
  const pfn = pfnOf(p, a + 3 * PG);
  assert.equal(p.madvise(a + 3 * PG, PG, MADV_FREE), 0);
  assert.equal(k.pages.flags[pfn] & (PG_swapbacked | PG_dirty), 0);
  assert.equal(p.load8(a + 3 * PG), 9);
  // A hole: applied to the mapped parts, -ENOMEM.
  assert.equal(p.munmap(a + PG, PG), 0);
  assert.equal(p.madvise(a, 4 * PG, MADV_DONTNEED), -ENOMEM);
  assert.equal(p.load8(a + 2 * PG), 0);
  // HUGEPAGE / NOHUGEPAGE split the VMA and set the flags.
  const b = p.mmap(0, 3 * PG, RW, PA);
  assert.equal(p.madvise(b + PG, PG, MADV_HUGEPAGE), 0);
  assert.equal(p.mm!.vmaLookup(b + PG)!.flags & VM_HUGEPAGE, VM_HUGEPAGE);
  assert.equal(p.mm!.vmaLookup(b)!.flags & VM_HUGEPAGE, 0);
  assert.equal(p.madvise(b + PG, PG, MADV_NOHUGEPAGE), 0);
  assert.equal(p.mm!.vmaLookup(b + PG)!.flags & (VM_HUGEPAGE | VM_NOHUGEPAGE), VM_NOHUGEPAGE);
  // WIPEONFORK only for private anonymous memory.
  const sh = p.mmap(0, PG, RW, MAP_SHARED | MAP_ANONYMOUS);
  assert.equal(p.madvise(sh, PG, MADV_WIPEONFORK), -EINVAL);
  assert.equal(p.madvise(sh, PG, MADV_FREE), -EINVAL, 'MADV_FREE on shmem');
});

test('MADV_COLLAPSE turns 512 PTE-mapped pages into a PMD-mapped THP', () => {
  const { s, p } = setup({ thp: 'never' });
  const k = s.kernel;
  const a = p.mmap(0, MB2, RW, PA);
  assert.equal(a % MB2, 0);
  for (let i = 0; i < HPAGE_PMD_NR; i += 2) p.store32(a + i * PG, i + 1);
  p.load8(a + PG); /* zero page */
  assert.equal(p.mm!.rss.anon, 256);
  const free0 = k.buddy.nrFree;
  assert.equal(p.madvise(a + PG, PG, MADV_COLLAPSE), -EINVAL, 'no whole aligned 2 MiB inside the range');
  assert.equal(p.madvise(a, MB2, MADV_COLLAPSE), 0);
  const pmd = pmdTableOf(p.mm!.pgd, a, false)!;
  const i = pmdIndex(a);
  assert.equal(pteType(pmd.f[i]), T_PRESENT);
  const head = pmd.v[i];
  assert.equal(k.pages.order[head], 9);
  assert.equal(k.pages.entireMapcount[head], 1);
  assert.ok(k.pages.flags[head] & PG_anon_exclusive);
  assert.equal(p.mm!.rss.anon, HPAGE_PMD_NR);
  for (let j = 0; j < HPAGE_PMD_NR; j++) assert.equal(p.load32(a + j * PG), j % 2 === 0 ? j + 1 : 0);
  k.lru.drain();
  assert.equal(k.buddy.nrFree, free0 - HPAGE_PMD_NR + 256, 'old small pages freed');
  assert.equal(pagemapEntry(p.mm!, a + 5 * PG) & PM_MMAP_EXCLUSIVE, PM_MMAP_EXCLUSIVE);
  assert.equal(p.madvise(a, MB2, MADV_COLLAPSE), 0, 'already a THP');
  p.store32(a + 4 * PG, 77);
  assert.equal(p.load32(a + 4 * PG), 77);
  // VM_NOHUGEPAGE forbids it.
  const b = p.mmap(0, MB2, RW, PA);
  p.store8(b, 1);
  p.madvise(b, MB2, MADV_NOHUGEPAGE);
  assert.equal(p.madvise(b, MB2, MADV_COLLAPSE), -EINVAL);
});

test('MAP_POPULATE faults the pages in', () => {
  const { p } = setup();
  const a = p.mmap(0, 3 * PG, RW, PA | MAP_POPULATE);
  assert.equal(p.mm!.rss.anon, 3);
  assert.notEqual(pfnOf(p, a + 2 * PG), -1);
  void MAP_HUGETLB;
  void PROT_EXEC;
  void EACCES;
});
