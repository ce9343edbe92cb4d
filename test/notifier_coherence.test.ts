// SPDX-License-Identifier: GPL-2.0-only
/**
 * Secondary-MMU coherence: every CPU page-table change that makes a device
 * mirror's translation wrong is announced by mmu_notifier_invalidate_range_start()
 * (issue 11, root cause 1), and checked mode reports one that is not, naming
 * the kernel function that made it.
 *
 * The device is test_hmm's dmirror: HMM_DMIRROR_READ/WRITE use the mirror's
 * own page table when it has an entry and only fault (hmm_range_fault, the
 * `faults` count of struct hmm_dmirror_cmd) when it has none, so a missed
 * invalidation shows as stale bytes and faults == 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { System } from '../src/user/system.js';
import type { Process } from '../src/user/process.js';
import { PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS } from '../src/kernel/mm/mmap.js';
import { MADV_DONTNEED } from '../src/kernel/mm/madvise.js';
import { O_RDWR } from '../src/kernel/fs/chardev.js';
import { EPERM } from '../src/kernel/errno.js';
import { KernelBug } from '../src/kernel/printk.js';
import { runSync } from '../src/kernel/sched/sched.js';
import {
  HMM_DMIRROR_CMD_SIZE, HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, decodeCmd, encodeCmd, testHmmInit,
} from '../src/drivers/test_hmm/index.js';
import {
  MMU_NOTIFY_CLEAR, MMU_NOTIFY_PROTECTION_VMA, MmuIntervalNotifier, type MmuNotifierSubscriptions, mmuIntervalNotifierInsert,
  mmuNotifierInvalidateRangeEnd, mmuNotifierInvalidateRangeStart, mmuNotifierRangeInit,
} from '../src/kernel/mm/mmu_notifier.js';
import {
  T_PRESENT, T_MIGRATION_READ, _PAGE_RW, pmdIndex, pmdTableOf, pteIndex, pteTableOf, pteType, pmdAligned,
} from '../src/kernel/mm/pgtable.js';
import { setPte, clearPte, setPmdFlags } from '../src/kernel/mm/pte_ops.js';

const PG = 4096;
const HPAGE = 512 * PG;
const RW = PROT_READ | PROT_WRITE;
const PA = MAP_PRIVATE | MAP_ANONYMOUS;

function machine(cfg = {}): { s: System; p: Process } {
  const s = new System({ ramBytes: 128 << 20, checked: true, ...cfg });
  assert.equal(testHmmInit(s.kernel), 0);
  return { s, p: s.spawn('hmm-tests') };
}

/** A dmirror opened by p, with its ioctl struct and data buffer in p's memory. */
interface Mirror {
  p: Process;
  fd: number;
  cmd: number;
  buf: number;
}

function mirror(p: Process, pages = 1): Mirror {
  const fd = p.open('/dev/hmm_dmirror0', O_RDWR);
  assert.ok(fd >= 0, `open: ${fd}`);
  return { p, fd, cmd: p.mmap(0, PG, RW, PA), buf: p.mmap(0, pages * PG, RW, PA) };
}

/** One dmirror command on [addr, addr + npages): returns ret, cpages, faults. */
function dm(m: Mirror, request: number, addr: number, npages = 1): { ret: number; cpages: bigint; faults: bigint } {
  m.p.writeBytes(m.cmd, encodeCmd({ addr: BigInt(addr), ptr: BigInt(m.buf), npages: BigInt(npages), cpages: 77n, faults: 77n }));
  const ret = m.p.ioctl(m.fd, request, m.cmd);
  const c = decodeCmd(m.p.readBytes(m.cmd, HMM_DMIRROR_CMD_SIZE));
  return { ret, cpages: c.cpages, faults: c.faults };
}

/** The device's view: READ one page and return its first and last bytes. */
function deviceRead(m: Mirror, addr: number): { ret: number; faults: bigint; first: number; last: number } {
  const r = dm(m, HMM_DMIRROR_READ, addr);
  const b = m.p.readBytes(m.buf, PG);
  return { ret: r.ret, faults: r.faults, first: b[0], last: b[PG - 1] };
}

function subs(p: Process): MmuNotifierSubscriptions {
  return p.mm!.notifierSubs as MmuNotifierSubscriptions;
}

/** Record the events of every invalidation of [start, start + len) in p's mm. */
function recordEvents(p: Process, start: number, len: number): number[] {
  const events: number[] = [];
  mmuIntervalNotifierInsert(new MmuIntervalNotifier(p.mm!, start, start + len - 1, {
    *invalidate(_sub, r) {
      events.push(r.event);
      return true;
    },
  }, 'test-recorder'));
  return events;
}

test('RC1: a CPU write that breaks COW of the zero page invalidates the device mirror (wp_page_copy, MMU_NOTIFY_CLEAR)', () => {
  const { p } = machine();
  const m = mirror(p);
  const a = p.mmap(0, PG, RW, PA);
  const events = recordEvents(p, a, PG);
  const first = deviceRead(m, a);
  assert.deepEqual(first, { ret: 0, faults: 1n, first: 0, last: 0 }, 'the device faults in and mirrors the zero page');
  const again = deviceRead(m, a);
  assert.equal(again.faults, 0n, 'a second READ uses the mirror, no fault');
  const nr = subs(p).nrInvalidations;
  const seq = subs(p).invalidateSeq;
  p.fill(a, PG, 7);
  assert.ok(subs(p).nrInvalidations > nr, 'the CPU write started an invalidation');
  assert.ok(subs(p).invalidateSeq > seq, 'invalidate_seq moved');
  assert.equal(subs(p).invalidateSeq % 2, 0, 'and no invalidation is left running');
  assert.ok(events.includes(MMU_NOTIFY_CLEAR), `events seen: ${events.join(',')}`);
  const after = deviceRead(m, a);
  assert.deepEqual(after, { ret: 0, faults: 1n, first: 7, last: 7 }, 'the device refaults and reads the CPU\'s bytes');
});

test('COW after fork: the child\'s write invalidates the child\'s mirror; the parent\'s mirror keeps the parent\'s data', () => {
  const { p } = machine();
  const a = p.mmap(0, PG, RW, PA);
  p.fill(a, PG, 0x11);
  const mp = mirror(p);
  assert.deepEqual(deviceRead(mp, a), { ret: 0, faults: 1n, first: 0x11, last: 0x11 });
  const pfn = pteTableOf(p.mm!.pgd, a)!.v[pteIndex(a)];
  let child: Process | null = null;
  p.fork((c) => {
    child = c;
  });
  const c = child as Process | null;
  assert.ok(c !== null);
  assert.equal(pteTableOf(c.mm!.pgd, a)!.v[pteIndex(a)], pfn, 'the child maps the parent\'s page (COW)');
  assert.deepEqual(deviceRead(mp, a), { ret: 0, faults: 1n, first: 0x11, last: 0x11 }, 'fork write-protected the parent (MMU_NOTIFY_PROTECTION_PAGE): its device refaults');
  const mc = mirror(c);
  assert.deepEqual(deviceRead(mc, a), { ret: 0, faults: 1n, first: 0x11, last: 0x11 }, 'the child\'s mirror maps the shared page');
  assert.equal(deviceRead(mc, a).faults, 0n, 'and keeps it');
  const nr = subs(c).nrInvalidations;
  c.fill(a, PG, 0x22);
  assert.notEqual(pteTableOf(c.mm!.pgd, a)!.v[pteIndex(a)], pfn, 'the child\'s write copied the page');
  assert.ok(subs(c).nrInvalidations > nr, 'the child\'s mm was invalidated');
  assert.deepEqual(deviceRead(mc, a), { ret: 0, faults: 1n, first: 0x22, last: 0x22 }, 'the child\'s device sees the child\'s data');
  assert.deepEqual(deviceRead(mp, a), { ret: 0, faults: 0n, first: 0x11, last: 0x11 }, 'the parent\'s mirror still maps the parent\'s page');
  assert.equal(p.load8(a), 0x11);
  assert.equal(pteTableOf(p.mm!.pgd, a)!.v[pteIndex(a)], pfn);
});

test('THP COW: a parent write to a shared THP splits the PMD and copies one page; the parent\'s mirror sees the new bytes', () => {
  const { p } = machine({ thp: 'always' });
  const a = p.mmap(0, HPAGE, RW, PA);
  assert.ok(pmdAligned(a));
  p.fill(a, HPAGE, 0x33);
  const pmd = pmdTableOf(p.mm!.pgd, a, false)!;
  const i = pmdIndex(a);
  assert.equal(pteType(pmd.f[i]), T_PRESENT, 'one PMD maps the THP');
  const head = pmd.v[i];
  const m = mirror(p);
  const x = a + 5 * PG;
  assert.deepEqual(deviceRead(m, x), { ret: 0, faults: 1n, first: 0x33, last: 0x33 });
  let child: Process | null = null;
  p.fork((c) => {
    child = c;
  });
  assert.ok(child !== null);
  assert.equal(pmd.f[i] & _PAGE_RW, 0, 'fork write-protected the parent\'s PMD');
  assert.deepEqual(deviceRead(m, x), { ret: 0, faults: 1n, first: 0x33, last: 0x33 }, 'fork invalidated the mirror; it refaults the read-only THP');
  assert.equal(deviceRead(m, x).faults, 0n, 'and keeps it');
  const events = recordEvents(p, x, PG);
  p.fill(x, PG, 0x44);
  assert.ok(events.length >= 2 && events.every((e) => e === MMU_NOTIFY_CLEAR), `split then copy, both CLEAR: ${events.join(',')}`);
  const pt = pteTableOf(p.mm!.pgd, x)!;
  assert.notEqual(pt.v[pteIndex(x)], head + 5, 'the written page was copied');
  assert.equal(pt.v[pteIndex(x) + 1], head + 6, 'its neighbours still map the THP');
  assert.deepEqual(deviceRead(m, x), { ret: 0, faults: 1n, first: 0x44, last: 0x44 });
  assert.equal((child as Process | null)!.load8(x), 0x33, 'the child keeps the THP data');
});

test('mprotect RW -> RO invalidates a writable mirror: the device\'s next WRITE faults and gets -EPERM', () => {
  const { p } = machine();
  const a = p.mmap(0, PG, RW, PA);
  p.fill(a, PG, 1);
  const m = mirror(p);
  p.fill(m.buf, PG, 0x55);
  assert.deepEqual(dm(m, HMM_DMIRROR_WRITE, a), { ret: 0, cpages: 1n, faults: 1n }, 'the device faults the page in writable');
  assert.equal(p.load8(a), 0x55);
  p.fill(m.buf, PG, 0x56);
  assert.deepEqual(dm(m, HMM_DMIRROR_WRITE, a), { ret: 0, cpages: 1n, faults: 0n }, 'and writes through its mirror');
  const events = recordEvents(p, a, PG);
  assert.equal(p.mprotect(a, PG, PROT_READ), 0);
  assert.deepEqual(events, [MMU_NOTIFY_PROTECTION_VMA]);
  p.fill(m.buf, PG, 0x57);
  assert.equal(dm(m, HMM_DMIRROR_WRITE, a).ret, -EPERM, 'no stale writable mirror entry');
  assert.equal(p.load8(a), 0x56, 'the page keeps the last permitted write');
  assert.deepEqual(deviceRead(m, a), { ret: 0, faults: 1n, first: 0x56, last: 0x56 }, 'reading is still allowed');
});

test('checked mode: an entry change needing invalidation outside any range is a KernelBug naming the function', () => {
  const { s, p } = machine();
  const k = s.kernel;
  const a = p.mmap(0, 2 * PG, RW, PA);
  p.fill(a, 2 * PG, 9);
  const pt = pteTableOf(p.mm!.pgd, a)!;
  const j = pteIndex(a);
  const v = pt.v[j];
  const f = pt.f[j];
  // Dropping write permission without a range.
  assert.throws(() => setPte(pt, j, v, f & ~_PAGE_RW, 'test_wrprotect'), (e: unknown) =>
    e instanceof KernelBug && e.kind === 'INVARIANT' &&
    e.rule === 'test_wrprotect: page-table entry changed without mmu_notifier_invalidate_range_start()' &&
    e.state.includes(`address 0x${a.toString(16)}`) && e.state.includes('active ranges: none'));
  assert.equal(pt.f[j], f, 'the entry is unchanged');
  // Clearing it, or a range that covers a different page, is reported too.
  const other = mmuNotifierRangeInit(p.mm!, MMU_NOTIFY_CLEAR, a + PG, a + 2 * PG);
  runSync(k.sched, mmuNotifierInvalidateRangeStart(other));
  assert.throws(() => clearPte(pt, j, 'test_clear'), (e: unknown) => e instanceof KernelBug && e.rule.startsWith('test_clear: ') && e.state.includes(`[0x${(a + PG).toString(16)}, 0x${(a + 2 * PG).toString(16)})`));
  mmuNotifierInvalidateRangeEnd(other);
  // Inside a covering range the same change is fine.
  const range = mmuNotifierRangeInit(p.mm!, MMU_NOTIFY_CLEAR, a, a + PG);
  runSync(k.sched, mmuNotifierInvalidateRangeStart(range));
  setPte(pt, j, v, f & ~_PAGE_RW, 'test_wrprotect');
  mmuNotifierInvalidateRangeEnd(range);
  assert.equal(pt.f[j] & _PAGE_RW, 0);
  // Changes that need no invalidation: making it writable again, a
  // migration entry replaced by a page (remove_migration_pte), none -> page.
  setPte(pt, j, v, f, 'test_mkwrite');
  const b = a + PG;
  const jb = pteIndex(b);
  const vb = pt.v[jb];
  const fb = pt.f[jb];
  const rb = mmuNotifierRangeInit(p.mm!, MMU_NOTIFY_CLEAR, b, b + PG);
  runSync(k.sched, mmuNotifierInvalidateRangeStart(rb));
  setPte(pt, jb, vb, T_MIGRATION_READ, 'test_unmap');
  mmuNotifierInvalidateRangeEnd(rb);
  setPte(pt, jb, vb, fb, 'test_remove_migration_pte');
  assert.equal(p.load8(b), 9);
  assert.equal(k.printk.warnings.length, 0);
});

test('checked mode off: no check, no range tracking', () => {
  const s = new System({ ramBytes: 64 << 20, checked: false });
  const p = s.spawn('t');
  const a = p.mmap(0, PG, RW, PA);
  p.fill(a, PG, 3);
  assert.equal(p.mm!.pgd.check, null);
  assert.equal(p.mm!.invalidateRanges, null);
  const pt = pteTableOf(p.mm!.pgd, a)!;
  const j = pteIndex(a);
  setPte(pt, j, pt.v[j], pt.f[j] & ~_PAGE_RW, 'test_wrprotect');
  assert.equal(pt.f[j] & _PAGE_RW, 0);
});

test('a THP split for a partial mprotect / MADV_DONTNEED is announced over the whole PMD (__split_huge_pmd, MMU_NOTIFY_CLEAR)', () => {
  const { p } = machine({ thp: 'always' });
  const a = p.mmap(0, HPAGE, RW, PA);
  p.fill(a, HPAGE, 0x66);
  const pmd = pmdTableOf(p.mm!.pgd, a, false)!;
  const i = pmdIndex(a);
  assert.equal(pteType(pmd.f[i]), T_PRESENT);
  const far = a + 300 * PG;
  const events = recordEvents(p, far, PG);
  const m = mirror(p);
  assert.deepEqual(deviceRead(m, far), { ret: 0, faults: 1n, first: 0x66, last: 0x66 });
  assert.equal(p.mprotect(a, PG, PROT_READ), 0);
  assert.deepEqual(events, [MMU_NOTIFY_CLEAR], 'only the split reaches a page outside the mprotect range');
  assert.equal(deviceRead(m, far).faults, 1n, 'the split invalidated the mirror of the whole THP');
  assert.deepEqual(deviceRead(m, far), { ret: 0, faults: 0n, first: 0x66, last: 0x66 });
  // MADV_DONTNEED of one page of a second THP: the same.
  const b = p.mmap(0, HPAGE, RW, PA);
  p.fill(b, HPAGE, 0x77);
  const eb = recordEvents(p, b + 100 * PG, PG);
  assert.equal(p.madvise(b + 7 * PG, PG, MADV_DONTNEED), 0);
  assert.deepEqual(eb, [MMU_NOTIFY_CLEAR]);
  assert.equal(p.load8(b + 7 * PG), 0, 'the discarded page reads zero');
  assert.equal(p.load8(b + 100 * PG), 0x77);
});

test('checked mode: a PMD change is checked against the whole 2 MiB', () => {
  const { s, p } = machine({ thp: 'always' });
  const k = s.kernel;
  const a = p.mmap(0, HPAGE, RW, PA);
  p.fill(a, HPAGE, 1);
  const pmd = pmdTableOf(p.mm!.pgd, a, false)!;
  const i = pmdIndex(a);
  const f = pmd.f[i];
  assert.equal(pteType(f), T_PRESENT);
  assert.ok(f & _PAGE_RW);
  const part = mmuNotifierRangeInit(p.mm!, MMU_NOTIFY_CLEAR, a, a + HPAGE - PG);
  runSync(k.sched, mmuNotifierInvalidateRangeStart(part));
  assert.throws(() => setPmdFlags(pmd, i, f & ~_PAGE_RW, 'test_pmd_wrprotect'), (e: unknown) =>
    e instanceof KernelBug && e.rule.startsWith('test_pmd_wrprotect: ') && e.state.includes('(pmd)'));
  mmuNotifierInvalidateRangeEnd(part);
  const whole = mmuNotifierRangeInit(p.mm!, MMU_NOTIFY_CLEAR, a, a + HPAGE);
  runSync(k.sched, mmuNotifierInvalidateRangeStart(whole));
  setPmdFlags(pmd, i, f & ~_PAGE_RW, 'test_pmd_wrprotect');
  mmuNotifierInvalidateRangeEnd(whole);
  assert.equal(pmd.f[i] & _PAGE_RW, 0);
  assert.equal(p.mm!.invalidateRanges!.length, 0);
  p.store8(a, 2);
  assert.equal(p.load8(a), 2, 'a write fault reuses the exclusive THP');
});
