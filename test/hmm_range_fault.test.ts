// SPDX-License-Identifier: GPL-2.0-only
/**
 * hmm_range_fault(): every errno, the -EBUSY / read_begin / read_retry
 * protocol, owner filtering of device-private pages, output flags, sticky
 * flags and the map order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HPAGE, PAGE, cpu, mkEnv, pte, run, type Env, runMmapRead } from './migrate_helpers.js';
import {
  HMM_PFN_DMA_MAPPED, HMM_PFN_ERROR, HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, HMM_PFN_VALID, HMM_PFN_WRITE, HmmRange,
  fromKernelWord, hmmPfnFlagsOrder, hmmPfnMake, hmmPfnTest, hmmPfnToMapOrder, hmmPfnToPfn, hmmRangeFault,
  toKernelWord,
} from '../src/kernel/mm/hmm.js';
import {
  MMU_NOTIFY_CLEAR, MMU_NOTIFY_EXCLUSIVE, MmuIntervalNotifier, type MmuNotifierRange, mmuIntervalNotifierInsert,
  mmuIntervalReadBegin, mmuIntervalReadRetry, mmuIntervalSetSeq, mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart, mmuNotifierRangeInit,
} from '../src/kernel/mm/mmu_notifier.js';
import { EBUSY, EFAULT, EINVAL, EPERM } from '../src/kernel/errno.js';
import { VM_HUGEPAGE, VM_IO, VM_MAYREAD, VM_MAYWRITE, VM_PFNMAP, VM_READ, VM_WRITE, Vma } from '../src/kernel/mm/mm_types.js';
import { T_DEVICE_EXCLUSIVE, T_DEVICE_PRIVATE_WRITE, T_PRESENT, pteType, pmdAligned } from '../src/kernel/mm/pgtable.js';
import { isDevicePrivatePage } from '../src/kernel/mm/memremap.js';
import { makeDeviceExclusive } from '../src/kernel/mm/device_exclusive.js';
import { folioPut, folioUnlock } from '../src/kernel/mm/folio.js';
import { checkInvariants } from '../src/kernel/mm/debug_vm.js';

const REQ_RW = HMM_PFN_REQ_FAULT + HMM_PFN_REQ_WRITE;

interface Mirror {
  sub: MmuIntervalNotifier;
  events: Array<{ event: number; owner: unknown }>;
}

/** A driver-like interval notifier over [start, end) that records events and ignores its own EXCLUSIVE. */
function mirror(e: Env, start: number, end: number, self: unknown = null): Mirror {
  const events: Mirror['events'] = [];
  const sub = new MmuIntervalNotifier(e.mm, start, end - 1, {
    *invalidate(s: MmuIntervalNotifier, r: MmuNotifierRange, cur: number) {
      events.push({ event: r.event, owner: r.owner });
      if (r.event === MMU_NOTIFY_EXCLUSIVE && self !== null && r.owner === self) return true;
      mmuIntervalSetSeq(s, cur);
      return true;
    },
  }, 'test-mirror');
  mmuIntervalNotifierInsert(sub);
  return { sub, events };
}

/** read_begin + mmap_read_lock + hmm_range_fault + unlock. */
function hrf(e: Env, range: HmmRange, begin = true): number {
  if (begin) range.notifierSeq = run(e.k, mmuIntervalReadBegin(range.notifier));
  const s = e.k.sched;
  assert.ok(e.mm.mmapLock.tryReadFast(s));
  try {
    return run(e.k, hmmRangeFault(range));
  } finally {
    e.mm.mmapLock.readUnlock(s);
  }
}

/** The driver loop: retry on -EBUSY and on read_retry. */
function hrfLoop(e: Env, range: HmmRange): number {
  for (let i = 0; i < 10; i++) {
    const r = hrf(e, range);
    if (r === -EBUSY) continue;
    if (r) return r;
    if (mmuIntervalReadRetry(range.notifier, range.notifierSeq)) continue;
    return 0;
  }
  throw new Error('hrfLoop: no progress');
}

function invalidate(e: Env, start: number, end: number): void {
  const r = mmuNotifierRangeInit(e.mm, MMU_NOTIFY_CLEAR, start, end);
  run(e.k, mmuNotifierInvalidateRangeStart(r));
  mmuNotifierInvalidateRangeEnd(r);
}

test('encoding: model words convert exactly to the kernel layout', () => {
  assert.equal(toKernelWord(HMM_PFN_VALID), 1n << 63n);
  assert.equal(toKernelWord(HMM_PFN_WRITE), 1n << 62n);
  assert.equal(toKernelWord(HMM_PFN_ERROR), 1n << 61n);
  assert.equal(toKernelWord(hmmPfnFlagsOrder(9)), 9n << 53n);
  const w = hmmPfnMake(0x12345, HMM_PFN_VALID + HMM_PFN_WRITE + hmmPfnFlagsOrder(9));
  assert.equal(hmmPfnToPfn(w), 0x12345);
  assert.equal(hmmPfnToMapOrder(w), 9);
  assert.ok(hmmPfnTest(w, HMM_PFN_VALID) && hmmPfnTest(w, HMM_PFN_WRITE) && !hmmPfnTest(w, HMM_PFN_ERROR));
  assert.equal(fromKernelWord(toKernelWord(w)), w);
  assert.ok(Number.isSafeInteger(w));
});

test('REQ_FAULT|REQ_WRITE faults an empty anon range in: VALID|WRITE, order 0, the CPU pfns', () => {
  const e = mkEnv(8);
  const m = mirror(e, e.vma.start, e.vma.end);
  const range = new HmmRange(m.sub, e.vma.start, e.vma.end, REQ_RW, 0, null);
  assert.equal(hrfLoop(e, range), 0);
  for (let i = 0; i < 8; i++) {
    const w = range.hmmPfns[i];
    assert.ok(hmmPfnTest(w, HMM_PFN_VALID) && hmmPfnTest(w, HMM_PFN_WRITE), `page ${i}`);
    assert.equal(hmmPfnToMapOrder(w), 0);
    const [v, f] = pte(e.mm, e.vma.start + i * PAGE);
    assert.equal(pteType(f), T_PRESENT);
    assert.equal(hmmPfnToPfn(w), v);
  }
  assert.deepEqual(e.k.printk.warnings, []);
});

test('no fault requested: none -> 0, zero page -> VALID read-only, written page -> VALID|WRITE', () => {
  const e = mkEnv(4);
  const m = mirror(e, e.vma.start, e.vma.end);
  cpu(e.mm, e.vma.start + PAGE, false); // zero page
  cpu(e.mm, e.vma.start + 2 * PAGE, true);
  const range = new HmmRange(m.sub, e.vma.start, e.vma.end, 0, 0, null);
  assert.equal(hrf(e, range), 0);
  assert.equal(range.hmmPfns[0], 0);
  assert.equal(range.hmmPfns[1], hmmPfnMake(e.k.zeroPfn, HMM_PFN_VALID));
  assert.ok(hmmPfnTest(range.hmmPfns[2], HMM_PFN_WRITE));
  assert.equal(range.hmmPfns[3], 0);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), 0, 'nothing was faulted');
});

test('REQ_FAULT (read) maps the zero page; REQ_WRITE without REQ_FAULT does nothing', () => {
  const e = mkEnv(2);
  const m = mirror(e, e.vma.start, e.vma.end);
  const range = new HmmRange(m.sub, e.vma.start, e.vma.end, 0, REQ_RW, null);
  range.hmmPfns[0] = HMM_PFN_REQ_FAULT;
  range.hmmPfns[1] = HMM_PFN_REQ_WRITE;
  assert.equal(hrfLoop(e, range), 0);
  assert.equal(range.hmmPfns[0], hmmPfnMake(e.k.zeroPfn, HMM_PFN_VALID));
  // hmm_vma_fault faulted every page of the step (both read faults): page 1 is the zero page too.
  assert.equal(range.hmmPfns[1], hmmPfnMake(e.k.zeroPfn, HMM_PFN_VALID));
});

test('a hole (no page table yet) is faulted as a whole, even entries that asked for nothing', () => {
  const e = mkEnv(8);
  const m = mirror(e, e.vma.start, e.vma.end);
  const range = new HmmRange(m.sub, e.vma.start, e.vma.end, 0, REQ_RW, null);
  range.hmmPfns[3] = REQ_RW;
  assert.equal(hrfLoop(e, range), 0);
  for (let i = 0; i < 8; i++) assert.ok(hmmPfnTest(range.hmmPfns[i], HMM_PFN_WRITE), `page ${i}`);
});

test('pfn_flags_mask: per-entry requests; pages after the requested one in the same step are faulted too', () => {
  const e = mkEnv(8);
  const m = mirror(e, e.vma.start, e.vma.end);
  cpu(e.mm, e.vma.start + 7 * PAGE, true); // the PTE table exists: per-PTE decisions
  const range = new HmmRange(m.sub, e.vma.start, e.vma.end, 0, REQ_RW, null);
  range.hmmPfns[3] = REQ_RW;
  assert.equal(hrfLoop(e, range), 0);
  for (let i = 0; i < 3; i++) assert.equal(range.hmmPfns[i], 0, `page ${i} not faulted`);
  for (let i = 3; i < 8; i++) assert.ok(hmmPfnTest(range.hmmPfns[i], HMM_PFN_WRITE), `page ${i} faulted for write`);
});

test('sticky DMA flags are carried from input to output', () => {
  const e = mkEnv(2);
  const m = mirror(e, e.vma.start, e.vma.end);
  cpu(e.mm, e.vma.start, true);
  const range = new HmmRange(m.sub, e.vma.start, e.vma.end, 0, 0, null);
  range.hmmPfns[0] = HMM_PFN_DMA_MAPPED;
  range.hmmPfns[1] = HMM_PFN_DMA_MAPPED;
  assert.equal(hrf(e, range), 0);
  assert.ok(hmmPfnTest(range.hmmPfns[0], HMM_PFN_DMA_MAPPED) && hmmPfnTest(range.hmmPfns[0], HMM_PFN_VALID));
  assert.equal(range.hmmPfns[1], HMM_PFN_DMA_MAPPED);
});

test('-EFAULT for a hole without a VMA when faulting; ERROR when only snapshotting', () => {
  const e = mkEnv(4);
  const m = mirror(e, e.vma.start, e.vma.end + 4 * PAGE);
  const r1 = new HmmRange(m.sub, e.vma.start, e.vma.end + 4 * PAGE, HMM_PFN_REQ_FAULT, 0, null);
  assert.equal(hrf(e, r1), -EFAULT);
  const r2 = new HmmRange(m.sub, e.vma.start, e.vma.end + 4 * PAGE, 0, 0, null);
  assert.equal(hrf(e, r2), 0);
  for (let i = 4; i < 8; i++) assert.equal(r2.hmmPfns[i], HMM_PFN_ERROR);
});

test('-EINVAL for an empty range', () => {
  const e = mkEnv(2);
  const m = mirror(e, e.vma.start, e.vma.end);
  const r = new HmmRange(m.sub, e.vma.start, e.vma.start, HMM_PFN_REQ_FAULT, 0, null);
  assert.equal(hrf(e, r), -EINVAL);
});

test('-EFAULT on PROT_NONE, VM_IO and VM_PFNMAP VMAs when faulting; ERROR otherwise', () => {
  for (const flags of [VM_MAYREAD | VM_MAYWRITE, VM_READ | VM_IO, VM_READ | VM_PFNMAP]) {
    const e = mkEnv(2, { flags });
    const m = mirror(e, e.vma.start, e.vma.end);
    assert.equal(hrf(e, new HmmRange(m.sub, e.vma.start, e.vma.end, HMM_PFN_REQ_FAULT, 0, null)), -EFAULT, `flags ${flags}`);
    const r = new HmmRange(m.sub, e.vma.start, e.vma.end, 0, 0, null);
    assert.equal(hrf(e, r), 0);
    assert.equal(r.hmmPfns[0], HMM_PFN_ERROR);
  }
});

test('-EPERM for a write fault on a read-only VMA (before any fault is done)', () => {
  const e = mkEnv(2, { flags: VM_READ | VM_MAYREAD });
  const m = mirror(e, e.vma.start, e.vma.end);
  assert.equal(hrf(e, new HmmRange(m.sub, e.vma.start, e.vma.end, REQ_RW, 0, null)), -EPERM);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), 0);
  // Read faults are fine.
  const r = new HmmRange(m.sub, e.vma.start, e.vma.end, HMM_PFN_REQ_FAULT, 0, null);
  assert.equal(hrfLoop(e, r), 0);
  assert.ok(!hmmPfnTest(r.hmmPfns[0], HMM_PFN_WRITE));
});

test('-EBUSY when the interval is invalidated after read_begin; the retry succeeds', () => {
  const e = mkEnv(4);
  const m = mirror(e, e.vma.start, e.vma.end);
  const range = new HmmRange(m.sub, e.vma.start, e.vma.end, REQ_RW, 0, null);
  range.notifierSeq = run(e.k, mmuIntervalReadBegin(m.sub));
  invalidate(e, e.vma.start, e.vma.start + PAGE);
  assert.equal(hrf(e, range, false), -EBUSY);
  assert.equal(hrf(e, range), 0);
  assert.equal(mmuIntervalReadRetry(m.sub, range.notifierSeq), false);
  // An invalidation after a successful fault makes read_retry true (the driver must not use the pfns).
  invalidate(e, e.vma.start, e.vma.end);
  assert.equal(mmuIntervalReadRetry(m.sub, range.notifierSeq), true);
  // An invalidation outside the interval does not.
  range.notifierSeq = run(e.k, mmuIntervalReadBegin(m.sub));
  invalidate(e, e.vma.end + HPAGE, e.vma.end + HPAGE + PAGE);
  assert.equal(mmuIntervalReadRetry(m.sub, range.notifierSeq), false);
});

test('device-private pages: own owner reported without faulting, other owners faulted back or 0', () => {
  const e = mkEnv(4);
  const m = mirror(e, e.vma.start, e.vma.end);
  for (let i = 0; i < 4; i++) cpu(e.mm, e.vma.start + i * PAGE, true);
  assert.equal(runMmapRead(e.mm, e.dev.migrateToDevice(e.vma, e.vma.start, e.vma.end, 'private')), 4);
  const dpfn = pte(e.mm, e.vma.start)[0];
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_DEVICE_PRIVATE_WRITE);

  // Owner matches: VALID|WRITE with the device pfn, even with REQ_WRITE; no migration.
  const own = new HmmRange(m.sub, e.vma.start, e.vma.end, REQ_RW, 0, e.dev.owner);
  assert.equal(hrfLoop(e, own), 0);
  assert.equal(own.hmmPfns[0], hmmPfnMake(dpfn, HMM_PFN_VALID + HMM_PFN_WRITE));
  assert.ok(isDevicePrivatePage(e.k, hmmPfnToPfn(own.hmmPfns[3])));
  assert.equal(e.dev.stat.migrateToRam, 0);

  // Another owner, snapshot only: 0.
  const other = new HmmRange(m.sub, e.vma.start, e.vma.end, 0, 0, { name: 'someone else' });
  assert.equal(hrf(e, other), 0);
  assert.deepEqual([...other.hmmPfns], [0, 0, 0, 0]);

  // Another owner, fault requested on page 1: pages 1..3 migrate back (the whole step is faulted).
  const other2 = new HmmRange(m.sub, e.vma.start, e.vma.end, 0, REQ_RW, { name: 'someone else' });
  other2.hmmPfns[1] = HMM_PFN_REQ_FAULT;
  assert.equal(hrfLoop(e, other2), 0);
  assert.equal(other2.hmmPfns[0], 0);
  for (let i = 1; i < 4; i++) {
    const p = hmmPfnToPfn(other2.hmmPfns[i]);
    assert.ok(hmmPfnTest(other2.hmmPfns[i], HMM_PFN_VALID));
    assert.ok(e.k.buddy.isRam(p), `page ${i} back in system RAM`);
  }
  assert.ok(e.dev.stat.migrateToRam >= 3);
  assert.ok(m.events.some((x) => x.event === 6 /* MIGRATE */));
  checkInvariants(e.k, 'hmm device-private');
});

test('THP: a PMD mapping reports map order 9 and consecutive pfns', () => {
  const e = mkEnv(512, { start: 0x40000000, hugepage: true });
  assert.ok(e.vma.flags & VM_HUGEPAGE);
  const m = mirror(e, e.vma.start, e.vma.end);
  cpu(e.mm, e.vma.start, true);
  const off = 16;
  const range = new HmmRange(m.sub, e.vma.start + off * PAGE, e.vma.start + (off + 8) * PAGE, HMM_PFN_REQ_FAULT, 0, null);
  assert.equal(hrfLoop(e, range), 0);
  const p0 = hmmPfnToPfn(range.hmmPfns[0]);
  assert.equal(e.k.pages.order[p0], 9, 'a THP backs the range');
  for (let i = 0; i < 8; i++) {
    assert.equal(hmmPfnToMapOrder(range.hmmPfns[i]), 9);
    assert.equal(hmmPfnToPfn(range.hmmPfns[i]), p0 + i);
    assert.ok(hmmPfnTest(range.hmmPfns[i], HMM_PFN_WRITE));
  }
  assert.equal(p0 % 512, off);
});

test('device-exclusive entries: 0 without a fault request; faulted (restored) with one, notifying EXCLUSIVE owner NULL', () => {
  const e = mkEnv(2);
  const self = { name: 'me' };
  const m = mirror(e, e.vma.start, e.vma.end, self);
  cpu(e.mm, e.vma.start, true);
  e.mm.mmapLock.tryReadFast(e.k.sched);
  const r = run(e.k, makeDeviceExclusive(e.mm, e.vma.start, self));
  e.mm.mmapLock.readUnlock(e.k.sched);
  assert.ok('page' in r);
  folioUnlock(e.k, r.page);
  folioPut(e.k, r.page);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_DEVICE_EXCLUSIVE);

  const snap = new HmmRange(m.sub, e.vma.start, e.vma.start + PAGE, 0, 0, self);
  assert.equal(hrf(e, snap), 0);
  assert.equal(snap.hmmPfns[0], 0);

  const range = new HmmRange(m.sub, e.vma.start, e.vma.start + PAGE, HMM_PFN_REQ_FAULT, 0, self);
  m.events.length = 0;
  assert.equal(hrf(e, range), -EBUSY, 'the restore invalidated our own interval');
  assert.deepEqual(m.events, [{ event: MMU_NOTIFY_EXCLUSIVE, owner: null }]);
  assert.equal(pteType(pte(e.mm, e.vma.start)[1]), T_PRESENT);
  assert.equal(hrf(e, range), 0);
  assert.equal(hmmPfnToPfn(range.hmmPfns[0]), r.page);
  checkInvariants(e.k, 'hmm exclusive');
});

test('a VMA gap between two VMAs is a hole with no VMA', () => {
  const e = mkEnv(2);
  const v2 = new Vma(e.mm, e.vma.end + 2 * PAGE, e.vma.end + 4 * PAGE, VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE, (e.vma.end + 2 * PAGE) / PAGE);
  e.mm.insertVma(v2);
  const m = mirror(e, e.vma.start, v2.end);
  const r = new HmmRange(m.sub, e.vma.start, v2.end, 0, 0, null);
  assert.equal(hrf(e, r), 0);
  assert.deepEqual([...r.hmmPfns].map((w) => w === HMM_PFN_ERROR), [false, false, true, true, false, false]);
  const r2 = new HmmRange(m.sub, v2.start, v2.end, REQ_RW, 0, null);
  assert.equal(hrfLoop(e, r2), 0);
  assert.ok(hmmPfnTest(r2.hmmPfns[1], HMM_PFN_WRITE));
});

test('hugetlb: faulted through the hugetlb path, reported with the huge page order', async () => {
  const { System } = await import('../src/user/system.js');
  const { MAP_ANONYMOUS, MAP_HUGETLB, MAP_PRIVATE, PROT_READ, PROT_WRITE } = await import('../src/kernel/mm/mmap.js');
  const sys = new System({ ramBytes: 128 << 20, nrHugepages: 2 });
  const p = sys.spawn('hugetlb');
  const addr = p.mmap(0, HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  assert.ok(addr > 0 && pmdAligned(addr));
  const mm = p.mm!;
  const k = sys.kernel;
  const e = { k, mm } as unknown as Env;
  const events: number[] = [];
  const sub = new MmuIntervalNotifier(mm, addr, addr + HPAGE - 1, {
    *invalidate(s: MmuIntervalNotifier, r: MmuNotifierRange, cur: number) {
      events.push(r.event);
      mmuIntervalSetSeq(s, cur);
      return true;
    },
  });
  mmuIntervalNotifierInsert(sub);
  // Snapshot before any fault: nothing valid.
  const snap = new HmmRange(sub, addr, addr + 4 * PAGE, 0, 0, null);
  assert.equal(hrf(e, snap), 0);
  assert.ok(!hmmPfnTest(snap.hmmPfns[0], HMM_PFN_VALID));
  const range = new HmmRange(sub, addr + 8 * PAGE, addr + 12 * PAGE, REQ_RW, 0, null);
  assert.equal(hrfLoop(e, range), 0);
  const p0 = hmmPfnToPfn(range.hmmPfns[0]);
  for (let i = 0; i < 4; i++) {
    assert.ok(hmmPfnTest(range.hmmPfns[i], HMM_PFN_VALID) && hmmPfnTest(range.hmmPfns[i], HMM_PFN_WRITE));
    assert.equal(hmmPfnToMapOrder(range.hmmPfns[i]), 9);
    assert.equal(hmmPfnToPfn(range.hmmPfns[i]), p0 + i);
  }
  assert.equal(p0 % 512, 8);
  assert.equal(k.hugetlb.nrFree(), 1);
});
