// SPDX-License-Identifier: GPL-2.0-only
/**
 * split_folio() of a THP that another mm maps by PMD (a fork child, or the
 * parent of one). mm/huge_memory.c:__folio_split() -> unmap_folio() runs
 * try_to_migrate(folio, TTU_SPLIT_HUGE_PMD): every PMD mapping in every mm
 * is split (mm/rmap.c:try_to_migrate_one() restarts its walk after each
 * split_huge_pmd_locked(), 939080834fef "mm/huge_memory: fix early failure
 * try_to_migrate() when split huge pmd for shared THP"). The model used to
 * return -EAGAIN there, which made a device-private THP's retried CPU fault
 * livelock (`hmmsim fail-sites --filter dmirror/thp_migrate --site
 * dmirror_devmem_fault_alloc_and_copy --occurrence 1`) and a partial
 * MIGRATE_TO_DEV of a fork-shared THP migrate nothing.
 *
 * The last test is the mainline finding this does not change
 * (docs/FINDINGS.md#migrate-split-fork-shared-thp): migrate_vma_pages()'s
 * own split (migrate_vma_split_unmapped_folio()) splits only the migrating
 * VMA's PMD migration entry, and remove_migration_pte() BUGs on the child's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { System } from '../src/user/system.js';
import { type Process, ProcessSignal } from '../src/user/process.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { MADV_HUGEPAGE } from '../src/kernel/mm/madvise.js';
import { O_RDWR } from '../src/kernel/fs/chardev.js';
import { runSync } from '../src/kernel/sched/sched.js';
import { splitFolio } from '../src/kernel/mm/huge_memory.js';
import { folioGet, folioPut, folioTrylock, folioUnlock } from '../src/kernel/mm/folio.js';
import { getUserPagesFastOnly, putPage } from '../src/kernel/mm/gup.js';
import { checkInvariants } from '../src/kernel/mm/debug_vm.js';
import { EAGAIN } from '../src/kernel/errno.js';
import { HPAGE_PMD_NR } from '../src/kernel/mm/page.js';
import {
  TYPE_MASK, T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE, T_MIGRATION_READ, T_MIGRATION_WRITE, T_PRESENT, T_TABLE, _PAGE_PROTNONE, pmdIndex, pmdTableOf, pteIndex, pteTableOf,
} from '../src/kernel/mm/pgtable.js';
import { MMU_NOTIFY_CLEAR, MmuIntervalNotifier, mmuIntervalNotifierInsert } from '../src/kernel/mm/mmu_notifier.js';
import { testHmmInit, encodeCmd, HMM_DMIRROR_CMD_SIZE } from '../src/drivers/test_hmm/index.js';
import { HMM_DMIRROR_FLAGS, HMM_DMIRROR_FLAG_FAIL_ALLOC, HMM_DMIRROR_MIGRATE_TO_DEV } from '../src/drivers/test_hmm/uapi.js';
import { KernelBug } from '../src/kernel/printk.js';
import { runFailSiteSweep } from '../src/fuzz/fail_sites.js';
import { SIGSEGV } from '../src/kernel/arch/fault.js';
import type { MmStruct } from '../src/kernel/mm/mm_types.js';

const TWO = 2 << 20;
const PG = 4096;

/** Bytes that differ per page and per offset, so a wrong page or a shifted mapping shows. */
function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 7 + (i >> 12) * 13 + seed) & 0xff;
  return b;
}

/** A PMD-aligned 2 MiB anon THP (MADV_HUGEPAGE) written with a pattern, in a new process. */
function thpProcess(opts: { testHmm?: boolean } = {}): { sys: System; p: Process; a: number; want: Uint8Array } {
  const sys = new System({ checked: true, ramBytes: 256 << 20, nrHugepages: 0, thp: 'madvise' });
  if (opts.testHmm) assert.equal(testHmmInit(sys.kernel), 0);
  const p = sys.spawn('parent');
  let a = p.mmap(0, 2 * TWO, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  a = Math.ceil(a / TWO) * TWO;
  assert.equal(p.madvise(a, TWO, MADV_HUGEPAGE), 0);
  const want = pattern(TWO, 3);
  p.writeBytes(a, want);
  return { sys, p, a, want };
}

function pmdEntry(mm: MmStruct, a: number): { t: number; v: number } {
  const pmd = pmdTableOf(mm.pgd, a, false)!;
  return { t: pmd.f[pmdIndex(a)] & TYPE_MASK, v: pmd.v[pmdIndex(a)] };
}

/** Fork a child that stays alive (its body returns without exit()). */
function forkAlive(p: Process): Process {
  let child: Process | null = null;
  assert.ok(p.fork((c) => { child = c; }) > 0);
  return child!;
}

/** MMU_NOTIFY_CLEAR ranges seen by an interval notifier over all of mm. */
function clears(mm: MmStruct): Array<[number, number]> {
  const seen: Array<[number, number]> = [];
  mmuIntervalNotifierInsert(new MmuIntervalNotifier(mm, 0, 2 ** 47, {
    *invalidate(_sub, r) {
      if (r.event === MMU_NOTIFY_CLEAR) seen.push([r.start, r.end]);
      return true;
    },
  }));
  return seen;
}

test('split_folio of a THP PMD-mapped by parent and fork child splits both PMDs (each in an MMU_NOTIFY_CLEAR range) and the folio; both read their bytes, COW still works', () => {
  const { sys, p, a, want } = thpProcess();
  const k = sys.kernel;
  const c = forkAlive(p);
  const pe = pmdEntry(p.mm!, a);
  const ce = pmdEntry(c.mm!, a);
  assert.equal(pe.t, T_PRESENT);
  assert.equal(ce.t, T_PRESENT);
  const head = pe.v;
  assert.equal(ce.v, head, 'copy_huge_pmd(): the child maps the same THP with a PMD');
  assert.equal(k.pages.entireMapcount[head], 2);
  const pClears = clears(p.mm!);
  const cClears = clears(c.mm!);
  const splitPmd0 = k.vmstat.thp_split_pmd;
  k.lru.drain();

  folioGet(k, head);
  assert.ok(folioTrylock(k, head));
  assert.equal(runSync(k.sched, splitFolio(k, head)), 0);
  folioUnlock(k, head);
  folioPut(k, head);

  assert.equal(k.vmstat.thp_split_pmd - splitPmd0, 2, 'one PMD split per mm');
  assert.equal(k.pages.entireMapcount[head], 0);
  assert.deepEqual(pClears, [[a, a + TWO]]);
  assert.deepEqual(cClears, [[a, a + TWO]]);
  for (const mm of [p.mm!, c.mm!]) {
    assert.equal(pmdEntry(mm, a).t, T_TABLE);
    for (let j = 0; j < HPAGE_PMD_NR; j += 73) {
      const pt = pteTableOf(mm.pgd, a + j * PG)!;
      assert.equal(pt.v[pteIndex(a + j * PG)], head + j);
      assert.equal(pt.f[pteIndex(a + j * PG)] & TYPE_MASK, T_PRESENT);
    }
  }
  for (let j = 0; j < HPAGE_PMD_NR; j += 73) {
    assert.equal(k.pages.order[head + j], 0);
    assert.equal(k.pages.mapcount[head + j], 2);
    assert.equal(k.pages.refcount[head + j], 2, 'one reference per PTE mapping');
  }
  checkInvariants(k, 'after split');
  assert.deepEqual(p.readBytes(a, TWO), want);
  assert.deepEqual(c.readBytes(a, TWO), want);
  // The pages are still COW-shared: a child write copies one page only.
  c.store8(a + 5 * PG + 1, 0xee);
  assert.equal(p.load8(a + 5 * PG + 1), want[5 * PG + 1]);
  assert.equal(c.load8(a + 5 * PG + 1), 0xee);
  assert.equal(pteTableOf(p.mm!.pgd, a + 5 * PG)!.v[pteIndex(a + 5 * PG)], head + 5);
  assert.notEqual(pteTableOf(c.mm!.pgd, a + 5 * PG)!.v[pteIndex(a + 5 * PG)], head + 5);
  c.exit(0);
  p.waitpid(c.pid);
  checkInvariants(k, 'after child exit');
  assert.deepEqual(p.readBytes(a, TWO), want);
});

test('split_folio of a fork-shared THP with an extra reference (a GUP reference): -EAGAIN before unmap_folio, neither PMD is split', () => {
  const { sys, p, a } = thpProcess();
  const k = sys.kernel;
  const c = forkAlive(p);
  const head = pmdEntry(p.mm!, a).v;
  const pages = new Float64Array(1);
  assert.equal(getUserPagesFastOnly(c.mm!, a + 3 * PG, 1, 0, pages), 1);
  const splitPmd0 = k.vmstat.thp_split_pmd;
  folioGet(k, head);
  assert.ok(folioTrylock(k, head));
  assert.equal(runSync(k.sched, splitFolio(k, head)), -EAGAIN);
  folioUnlock(k, head);
  folioPut(k, head);
  assert.equal(k.vmstat.thp_split_pmd, splitPmd0, 'folio_expected_ref_count() check fails before any PMD is split');
  assert.equal(pmdEntry(p.mm!, a).t, T_PRESENT);
  assert.equal(pmdEntry(c.mm!, a).t, T_PRESENT);
  assert.equal(k.pages.order[head], 9);
  putPage(k, pages[0]);
  checkInvariants(k, 'after put');
});

/** The dmirror command block and an ioctl helper for process p on fd. */
function dmirrorCmd(p: Process, fd: number, buf: number) {
  const c = p.malloc(HMM_DMIRROR_CMD_SIZE);
  return (req: number, addr: number, n: number | bigint): number => {
    p.writeBytes(c, encodeCmd({ addr: BigInt(addr), ptr: BigInt(buf), npages: BigInt(n), cpages: 0n, faults: 0n }));
    return p.ioctl(fd, req, c);
  };
}

test('HMM_DMIRROR_MIGRATE_TO_DEV of 16 pages inside a fork-shared THP: the collect fallback\'s split_folio splits the child\'s PMD too and the pages migrate; parent and child read their bytes', () => {
  const { sys, p, a, want } = thpProcess({ testHmm: true });
  const k = sys.kernel;
  const c = forkAlive(p);
  const fd = p.open('/dev/hmm_dmirror0', O_RDWR);
  const buf = p.malloc(TWO);
  const cmd = dmirrorCmd(p, fd, buf);
  const off = 100 * PG;
  const head = pmdEntry(p.mm!, a).v;
  assert.equal(cmd(HMM_DMIRROR_MIGRATE_TO_DEV, a + off, 16), 0);
  assert.equal(k.pages.order[head], 0, 'the THP was split');
  assert.equal(pmdEntry(c.mm!, a).t, T_TABLE, 'the child\'s PMD was split by unmap_folio()');
  // The shared pages moved for both mms (try_to_migrate() reaches the child).
  for (const mm of [p.mm!, c.mm!]) {
    const pt = pteTableOf(mm.pgd, a + off)!;
    for (let j = 0; j < 16; j++) assert.ok([T_DEVICE_PRIVATE_READ, T_DEVICE_PRIVATE_WRITE].includes(pt.f[pteIndex(a + off) + j] & TYPE_MASK));
    assert.equal(pt.f[pteIndex(a + off) + 16] & TYPE_MASK, T_PRESENT);
  }
  assert.deepEqual(p.readBytes(buf, 16 * PG), want.subarray(off, off + 16 * PG), 'the device copy');
  checkInvariants(k, 'after migrate');
  assert.deepEqual(c.readBytes(a, TWO), want);
  assert.deepEqual(p.readBytes(a, TWO), want);
  c.exit(0);
  p.waitpid(c.pid);
  p.close(fd);
  checkInvariants(k, 'end');
});

test('a fork-shared device-private THP whose CPU fault gets no order-9 page: the retried fault splits it through the PTE path (split_folio splits the parent\'s PMD) and the child reads its data', () => {
  const { sys, p, a, want } = thpProcess({ testHmm: true });
  const k = sys.kernel;
  const fd = p.open('/dev/hmm_dmirror0', O_RDWR);
  const buf = p.malloc(TWO);
  const cmd = dmirrorCmd(p, fd, buf);
  assert.equal(cmd(HMM_DMIRROR_MIGRATE_TO_DEV, a, 512), 0);
  assert.equal(pmdEntry(p.mm!, a).t, T_DEVICE_PRIVATE_WRITE, 'a device-private PMD');
  let got: Uint8Array | null = null;
  p.fork((ch) => {
    k.failInject.set('dmirror_devmem_fault_alloc_and_copy', { skip: 0, times: 1 }); /* the order-9 allocation */
    got = ch.readBytes(a, TWO);
    ch.exit(0);
  });
  assert.deepEqual(got, want, 'the child\'s read completes (it used to fault forever)');
  assert.equal(k.failInject.injected.filter((x) => x.site === 'dmirror_devmem_fault_alloc_and_copy').length, 1);
  assert.equal(pmdEntry(p.mm!, a).t, T_TABLE, 'the parent\'s device-private PMD was split by the child\'s split_folio()');
  assert.deepEqual(p.readBytes(a, TWO), want);
  checkInvariants(k, 'end');
});

test('fail-sites replay dmirror/thp_migrate, dmirror_devmem_fault_alloc_and_copy #1: no failure (was HANG: faults forever)', () => {
  const r = runFailSiteSweep({ filter: ['dmirror/thp_migrate'], sites: ['dmirror_devmem_fault_alloc_and_copy'], occurrence: 1 });
  assert.equal(r.totals.scenarios, 1);
  assert.equal(r.totals.runs, 2);
  assert.equal(r.totals.notReached, 0);
  assert.deepEqual(r.baselineFailures, []);
  assert.deepEqual(r.sites.flatMap((s) => s.failures.map((f) => `${f.kind}: ${f.detail.split('\n')[0]}`)), []);
});

test('finding migrate-split-fork-shared-thp on a device-private dmirror: MIGRATE_TO_DEV of a fork-shared THP with FAIL_ALLOC splits the folio (folio_split_unmapped succeeds) and remove_migration_pte BUGs on the child\'s PMD migration entry', () => {
  const { sys, p, a } = thpProcess({ testHmm: true });
  const k = sys.kernel;
  const c = forkAlive(p);
  const head = pmdEntry(p.mm!, a).v;
  const fd = p.open('/dev/hmm_dmirror0', O_RDWR);
  const buf = p.malloc(TWO);
  const cmd = dmirrorCmd(p, fd, buf);
  assert.equal(cmd(HMM_DMIRROR_FLAGS, a, HMM_DMIRROR_FLAG_FAIL_ALLOC), 0);
  const split0 = k.vmstat.thp_migration_split;
  assert.throws(() => cmd(HMM_DMIRROR_MIGRATE_TO_DEV, a, 512), (e: unknown) => e instanceof KernelBug && e.kind === 'BUG'
    && e.rule === 'remove_migration_pte: PMD migration entry over an order-0 folio'
    && e.state.includes('VM_BUG_ON_FOLIO(folio_test_hugetlb(folio) || !folio_test_pmd_mappable(folio))')
    && e.state.includes(`in mm #${c.mm!.id} covers src pfn 0x${head.toString(16)}`));
  // What the kernel has at that point: the folio was split (no -EAGAIN:
  // migration entries hold no reference, the isolation reference is the
  // only one), the parent's PMD migration entry was split into PTE entries
  // (split_huge_pmd_address() of migrate->vma), the child's was not.
  assert.equal(k.vmstat.thp_migration_split - split0, 1);
  assert.equal(k.pages.order[head], 0);
  assert.equal(pmdEntry(p.mm!, a).t, T_TABLE);
  assert.ok([T_MIGRATION_READ, T_MIGRATION_WRITE].includes(pmdEntry(c.mm!, a).t), 'the child keeps a PMD migration entry');
  assert.equal(pmdEntry(c.mm!, a).v, head);
});

/*
 * remove_migration_pte() / remove_migration_pmd() build the restored entry
 * from the VMA's vm_page_prot (mk_pte(new, READ_ONCE(vma->vm_page_prot)),
 * folio_mk_pmd(folio, READ_ONCE(vma->vm_page_prot))): a fork child that made
 * its copy PROT_NONE while it was a device-private entry gets a PROT_NONE
 * mapping back when the parent's fault migrates the page to system memory.
 * Found by the THP-always fuzz campaign with base 6000000 (100,000
 * operations, run 1702): the model restored an accessible PMD and the
 * child's read succeeded.
 */
test('fork-shared device-private THP, child mprotect(PROT_NONE), parent faults it back: the child\'s restored PMD is PROT_NONE and its read is SIGSEGV', () => {
  const { sys, p, a, want } = thpProcess({ testHmm: true });
  const k = sys.kernel;
  const c = forkAlive(p);
  const fd = p.open('/dev/hmm_dmirror0', O_RDWR);
  const cmd = dmirrorCmd(p, fd, p.malloc(TWO));
  assert.equal(cmd(HMM_DMIRROR_MIGRATE_TO_DEV, a, 512), 0);
  assert.equal(pmdEntry(c.mm!, a).t, T_DEVICE_PRIVATE_READ, 'try_to_migrate() moved the child\'s PMD too');
  assert.equal(c.mprotect(a, TWO, PROT_NONE), 0);
  assert.deepEqual(p.readBytes(a, TWO), want);
  const pmd = pmdTableOf(c.mm!.pgd, a, false)!;
  assert.equal(pmd.f[pmdIndex(a)] & TYPE_MASK, T_PRESENT);
  assert.ok(pmd.f[pmdIndex(a)] & _PAGE_PROTNONE, 'remove_migration_pmd() used the child VMA\'s PAGE_NONE');
  assert.throws(() => c.load8(a), (e: unknown) => e instanceof ProcessSignal && e.signo === SIGSEGV);
  checkInvariants(k, 'end');
});

test('fork-shared device-private pages, child mprotect(PROT_NONE), parent faults them back: the child\'s restored PTEs are PROT_NONE and its read is SIGSEGV', () => {
  const sys = new System({ checked: true, ramBytes: 256 << 20, nrHugepages: 0, thp: 'never' });
  assert.equal(testHmmInit(sys.kernel), 0);
  const p = sys.spawn('parent');
  const a = p.mmap(0, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const want = pattern(4 * PG, 9);
  p.writeBytes(a, want);
  const fd = p.open('/dev/hmm_dmirror0', O_RDWR);
  const cmd = dmirrorCmd(p, fd, p.malloc(4 * PG));
  assert.equal(cmd(HMM_DMIRROR_MIGRATE_TO_DEV, a, 4), 0);
  const c = forkAlive(p);
  assert.equal(c.mprotect(a, 4 * PG, PROT_NONE), 0);
  assert.deepEqual(p.readBytes(a, 4 * PG), want);
  const pt = pteTableOf(c.mm!.pgd, a)!;
  for (let j = 0; j < 4; j++) {
    const f = pt.f[pteIndex(a) + j];
    assert.equal(f & TYPE_MASK, T_PRESENT, `page ${j} restored`);
    assert.ok(f & _PAGE_PROTNONE, `page ${j}: remove_migration_pte() used the child VMA's PAGE_NONE`);
  }
  assert.throws(() => c.load8(a + PG), (e: unknown) => e instanceof ProcessSignal && e.signo === SIGSEGV);
  checkInvariants(sys.kernel, 'end');
});
