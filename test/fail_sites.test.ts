// SPDX-License-Identifier: GPL-2.0-only
/**
 * Fault injection at allocation sites (src/kernel/fault_inject.ts) and the
 * allocation-failure sweep (src/fuzz/fail_sites.ts): each site fails with
 * the kernel's error, nothing leaks, and the sweep both passes on clean
 * scenarios and reports a planted leak.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { System } from '../src/user/system.js';
import { type Process, ProcessSignal } from '../src/user/process.js';
import { Kernel } from '../src/kernel/kernel.js';
import { FaultInject } from '../src/kernel/fault_inject.js';
import { PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_HUGETLB, MAP_SHARED } from '../src/kernel/mm/mmap.js';
import { MADV_PAGEOUT } from '../src/kernel/mm/madvise.js';
import { MREMAP_MAYMOVE, MREMAP_FIXED } from '../src/kernel/mm/mremap.js';
import { ENOMEM } from '../src/kernel/errno.js';
import { VM_FAULT_OOM, VM_FAULT_SIGBUS, handleMmFault } from '../src/kernel/mm/memory.js';
import { runMmapRead } from './migrate_helpers.js';
import { runSync } from '../src/kernel/sched/sched.js';
import { pteTableOf, pteIndex, TYPE_MASK, T_PRESENT, T_DEVICE_PRIVATE_WRITE } from '../src/kernel/mm/pgtable.js';
import { leakBaseline, checkNoLeaks } from '../src/kernel/mm/debug_vm.js';
import { testHmmInit, encodeCmd, decodeCmd, HMM_DMIRROR_CMD_SIZE } from '../src/drivers/test_hmm/index.js';
import { HMM_DMIRROR_READ, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS } from '../src/drivers/test_hmm/uapi.js';
import { O_RDWR } from '../src/kernel/fs/chardev.js';
import { runFailSiteSweep, sampleOccurrences, type FailScenario } from '../src/fuzz/fail_sites.js';
import { KernelBug } from '../src/kernel/printk.js';
import { hmmTestScenarios } from '../src/fuzz/fail_scenarios.js';

const RW = PROT_READ | PROT_WRITE;
const PG = 4096;
const MB2 = 2 << 20;

/** A checked machine with test_hmm, one process, and the leak baseline taken. */
function setup(cfg: Record<string, unknown> = {}): { s: System; p: Process; k: Kernel; base: ReturnType<typeof leakBaseline> } {
  const s = new System({ ramBytes: 256 << 20, nrHugepages: 2, checked: true, ...cfg });
  assert.equal(testHmmInit(s.kernel), 0);
  const p = s.spawn('t');
  return { s, p, k: s.kernel, base: leakBaseline(s.kernel) };
}

/** Exit the process and assert that nothing leaked and the site was failed exactly `n` times. */
function finish(e: { p: Process; k: Kernel; base: ReturnType<typeof leakBaseline> }, site: string, n = 1): void {
  if (e.p.alive) e.p.exit(0);
  assert.deepEqual(checkNoLeaks(e.k, e.base), []);
  assert.equal(e.k.failInject.injected.filter((x) => x.site === site).length, n, `${site} failed ${n} time(s)`);
}

function fail(k: Kernel, site: string, skip = 0): void {
  k.failInject.set(site, { skip, times: 1 });
}

/** A dmirror command in the process's memory: returns [ret, cpages]. */
function dmirrorCmd(p: Process, fd: number, cmd: number, addr: number, npages: number): [number, number] {
  const c = p.malloc(HMM_DMIRROR_CMD_SIZE);
  const mirror = p.malloc(npages * PG);
  p.writeBytes(c, encodeCmd({ addr: BigInt(addr), ptr: BigInt(mirror), npages: BigInt(npages), cpages: 0n, faults: 0n }));
  const r = p.ioctl(fd, cmd, c);
  const out = decodeCmd(p.readBytes(c, HMM_DMIRROR_CMD_SIZE));
  p.free(c);
  p.free(mirror);
  return [r, Number(out.cpages)];
}

test('should_fail(): skip, times, interval, order, and occurrence counting per site', () => {
  const fi = new FaultInject();
  assert.equal(fi.shouldFail('x'), false, 'nothing armed');
  fi.counting = true;
  fi.set('a', { skip: 2, times: 2 });
  const seen = Array.from({ length: 6 }, () => fi.shouldFail('a'));
  assert.deepEqual(seen, [false, false, true, true, false, false]);
  fi.set('b', { skip: 0, times: Infinity, interval: 3 });
  assert.deepEqual(Array.from({ length: 6 }, () => fi.shouldFail('b')), [false, false, true, false, false, true]);
  fi.set('c', { skip: 0, times: 1, order: 9 });
  assert.equal(fi.shouldFail('c', 0), false, 'order filter');
  assert.equal(fi.shouldFail('c', 9), true);
  assert.equal(fi.counts.get('a'), 6);
  assert.equal(fi.counts.get('c'), 2);
  assert.deepEqual(fi.injected.map((x) => `${x.site}#${x.occurrence}`), ['a#3', 'a#4', 'b#3', 'b#6', 'c#2']);
  assert.deepEqual(sampleOccurrences(5, 12), [1, 2, 3, 4, 5]);
  assert.deepEqual(sampleOccurrences(100, 4), [1, 34, 67, 100]);
});

test('buddy rules live on the machine table: k.buddy.fail is k.failInject.rules; __GFP_NOFAIL is not an occurrence', () => {
  const k = new Kernel({ ramBytes: 64 << 20, nrHugepages: 0 });
  assert.equal(k.buddy.fail, k.failInject.rules);
  k.buddy.fail.set('anon_fault', { skip: 0, times: 1 });
  k.failInject.counting = true;
  assert.equal(k.buddy.alloc(0, 0, 'anon_fault'), -1);
  assert.ok(k.buddy.alloc(0, 0, 'anon_fault') >= 0);
  assert.ok(k.buddy.alloc(0, 2 /* __GFP_NOFAIL */, 'nofail_site') >= 0);
  assert.equal(k.failInject.counts.get('anon_fault'), 2);
  assert.equal(k.failInject.counts.get('nofail_site'), undefined);
  assert.equal(k.buddy.stat.failInjected, 1);
});

test('__pte_alloc / __pmd_alloc / __pud_alloc failing in a CPU fault: VM_FAULT_OOM, nothing mapped; the user access retries the fault (pagefault_out_of_memory)', () => {
  for (const site of ['__pte_alloc', '__pmd_alloc', '__pud_alloc']) {
    const e = setup();
    const a = e.p.mmap(0, 4 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    const vma = e.p.mm!.vmaLookup(a)!;
    fail(e.k, site);
    assert.equal(runMmapRead(vma.mm, handleMmFault(vma, a, 1)), VM_FAULT_OOM, site);
    assert.equal(pteTableOf(e.p.mm!.pgd, a), null, `${site}: no PTE table, nothing mapped`);
    fail(e.k, site);
    e.p.writeBytes(a, new Uint8Array([1]));
    assert.equal(e.p.readBytes(a, 1)[0], 1, `${site}: the retried fault maps the page`);
    assert.match(e.k.printk.text(), /Huh VM_FAULT_OOM leaked out to the #PF handler/);
    finish(e, site, 2);
  }
});

test('a persistent allocation failure in a CPU fault: the #PF is retried forever (HANG report), no signal', () => {
  const e = setup();
  const a = e.p.mmap(0, 4 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  e.k.failInject.set('__pte_alloc', { skip: 0, times: Infinity });
  assert.throws(() => e.p.writeBytes(a, new Uint8Array([1])), (x: unknown) => x instanceof KernelBug && x.kind === 'HANG' && /page fault retried forever \(VM_FAULT_OOM each time/.test(x.rule));
  assert.ok(e.p.alive, 'not killed: pagefault_out_of_memory() does not invoke the OOM killer');
  e.k.failInject.rules.clear();
  e.p.writeBytes(a, new Uint8Array([2]));
  assert.equal(e.p.readBytes(a, 1)[0], 2);
});

test('anon_vma_prepare failing: the anonymous write fault is VM_FAULT_OOM and the VMA keeps no anon_vma', () => {
  const e = setup();
  const a = e.p.mmap(0, 4 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  const vma = e.p.mm!.vmaLookup(a)!;
  fail(e.k, 'anon_vma_prepare');
  assert.equal(runMmapRead(vma.mm, handleMmFault(vma, a, 1)), VM_FAULT_OOM);
  assert.equal(vma.anonVma, null);
  e.p.writeBytes(a, new Uint8Array([7]));
  assert.equal(e.p.readBytes(a, 1)[0], 7, 'the next fault succeeds');
  finish(e, 'anon_vma_prepare');
});

test('vm_area_alloc / vm_area_dup failing: mmap, munmap split and mremap return -ENOMEM with the old mappings intact', () => {
  const e = setup();
  fail(e.k, 'vm_area_alloc');
  assert.equal(e.p.mmap(0, 4 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS), -ENOMEM);
  const a = e.p.mmap(0, 4 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  assert.ok(a > 0);
  e.p.fill(a, 4 * PG, 0x5a);
  fail(e.k, 'vm_area_dup');
  assert.equal(e.p.munmap(a + PG, PG), -ENOMEM, '__split_vma: vm_area_dup');
  fail(e.k, 'vm_area_dup');
  assert.equal(e.p.mremap(a, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, a + 1024 * PG), -ENOMEM, 'move_vma -> copy_vma: vm_area_dup');
  assert.deepEqual([...e.p.readBytes(a, 4 * PG)].every((b) => b === 0x5a), true);
  assert.equal(e.k.failInject.injected.length, 3);
  e.p.exit(0);
  assert.deepEqual(checkNoLeaks(e.k, e.base), []);
});

test('dup_mm / vm_area_dup / anon_vma_fork / __pte_alloc failing in fork(): -ENOMEM, the child mm torn down, parent intact', () => {
  for (const site of ['dup_mm', 'vm_area_dup', 'anon_vma_fork', '__pte_alloc', '__pmd_alloc']) {
    const e = setup();
    const a = e.p.mmap(0, 8 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    e.p.fill(a, 8 * PG, 0x33);
    fail(e.k, site);
    let ran = false;
    assert.equal(e.p.fork(() => {
      ran = true;
    }), -ENOMEM, site);
    assert.equal(ran, false);
    assert.equal(e.p.readBytes(a + 5 * PG, 1)[0], 0x33);
    finish(e, site);
  }
});

test('folio_alloc_swap failing: MADV_PAGEOUT keeps the page mapped and uses no slot', () => {
  const e = setup();
  const a = e.p.mmap(0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  e.p.fill(a, PG, 0x11);
  fail(e.k, 'folio_alloc_swap');
  assert.equal(e.p.madvise(a, PG, MADV_PAGEOUT), 0);
  const pt = pteTableOf(e.p.mm!.pgd, a)!;
  assert.equal(pt.f[pteIndex(a)] & TYPE_MASK, T_PRESENT, 'still mapped');
  assert.equal(e.k.swap?.used ?? 0, 0);
  assert.equal(e.p.readBytes(a, 1)[0], 0x11);
  finish(e, 'folio_alloc_swap');
});

test('alloc_hugetlb_folio failing: the hugetlb fault is SIGBUS and the reservation is kept', () => {
  const e = setup();
  const a = e.p.mmap(0, MB2, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  assert.ok(a > 0);
  const resv = e.k.hugetlb.resv;
  const free = e.k.hugetlb.nrFree();
  fail(e.k, 'alloc_hugetlb_folio');
  assert.equal(runMmapRead(e.p.mm!, handleMmFault(e.p.mm!.vmaLookup(a)!, a, 1)), VM_FAULT_SIGBUS);
  assert.equal(e.k.hugetlb.resv, resv, 'HugePages_Rsvd unchanged');
  assert.equal(e.k.hugetlb.nrFree(), free, 'HugePages_Free unchanged');
  fail(e.k, 'alloc_hugetlb_folio');
  assert.throws(() => e.p.writeBytes(a, new Uint8Array([1])), (x: unknown) => x instanceof ProcessSignal && x.signo === 7, 'SIGBUS to the task');
  finish(e, 'alloc_hugetlb_folio', 2);
});

test('dmirror sites: open (kzalloc, notifier registration), bounce buffer and xa_store fail with -ENOMEM', () => {
  for (const site of ['dmirror_fops_open', '__mmu_notifier_register']) {
    const e = setup();
    fail(e.k, site);
    assert.equal(e.p.open('/dev/hmm_dmirror0', O_RDWR), -ENOMEM, site);
    assert.ok(e.p.open('/dev/hmm_dmirror0', O_RDWR) >= 0);
    finish(e, site);
  }
  for (const site of ['dmirror_bounce_init', 'xa_store']) {
    const e = setup();
    const fd = e.p.open('/dev/hmm_dmirror0', O_RDWR);
    const a = e.p.mmap(0, 4 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    e.p.fill(a, 4 * PG, 0x42);
    fail(e.k, site);
    assert.deepEqual(dmirrorCmd(e.p, fd, HMM_DMIRROR_READ, a, 4)[0], -ENOMEM, site);
    assert.deepEqual(dmirrorCmd(e.p, fd, HMM_DMIRROR_READ, a, 4), [0, 4]);
    finish(e, site);
  }
});

test('dmirror_allocate_chunk failing at module load (dmirror_device_init): modprobe test_hmm fails with -ENOMEM', () => {
  const s = new System({ ramBytes: 256 << 20, nrHugepages: 0, checked: true });
  s.kernel.failInject.set('dmirror_allocate_chunk', { skip: 0, times: 1 });
  assert.equal(testHmmInit(s.kernel), -ENOMEM);
  assert.equal(s.kernel.failInject.injected.length, 1);
});

test('dmirror_devmem_alloc_page failing: migrate_to_device migrates nothing, the data stays in RAM', () => {
  for (const site of ['dmirror_devmem_alloc_page']) {
    const e = setup();
    const fd = e.p.open('/dev/hmm_dmirror0', O_RDWR);
    const a = e.p.mmap(0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    e.p.fill(a, PG, 0x24);
    fail(e.k, site);
    const [r] = dmirrorCmd(e.p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, a, 1);
    assert.ok(r === -ENOMEM || r === -2 /* -ENOENT: the page did not migrate, the mirror has no entry */, `${site}: ${r}`);
    const pt = pteTableOf(e.p.mm!.pgd, a)!;
    assert.equal(pt.f[pteIndex(a)] & TYPE_MASK, T_PRESENT, 'still in system RAM');
    assert.equal(e.p.readBytes(a, 1)[0], 0x24);
    finish(e, site);
  }
});

test('dmirror_devmem_fault (kcalloc of src/dst) failing: the CPU fault is VM_FAULT_OOM, the page stays on the device with its data', () => {
  const e = setup();
  const fd = e.p.open('/dev/hmm_dmirror0', O_RDWR);
  const a = e.p.mmap(0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  e.p.fill(a, PG, 0x77);
  assert.deepEqual(dmirrorCmd(e.p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, a, 1), [0, 1]);
  const vma = e.p.mm!.vmaLookup(a)!;
  fail(e.k, 'dmirror_devmem_fault');
  assert.equal(runMmapRead(vma.mm, handleMmFault(vma, a, 0)), VM_FAULT_OOM);
  const pt = pteTableOf(e.p.mm!.pgd, a)!;
  assert.equal(pt.f[pteIndex(a)] & TYPE_MASK, T_DEVICE_PRIVATE_WRITE, 'still on the device');
  assert.equal(e.p.readBytes(a, 1)[0], 0x77, 'the next fault migrates it back');
  finish(e, 'dmirror_devmem_fault');
});

test('__pte_alloc failing in dmirror mmap (vm_insert_page): mmap returns -ENOMEM', () => {
  const e = setup();
  const fd = e.p.open('/dev/hmm_dmirror0', O_RDWR);
  fail(e.k, '__pte_alloc');
  assert.equal(e.p.mmap(0, 2 * PG, RW, MAP_SHARED, fd, 0), -ENOMEM);
  finish(e, '__pte_alloc');
});

test('the sweep over a representative subset of hmm-tests cases reports no failure', () => {
  const r = runFailSiteSweep({
    filter: ['hmm-tests/hmm.hmm_device_private.open_close', 'hmm-tests/hmm.hmm_device_private.anon_read', 'hmm-tests/hmm.hmm_device_private.migrate', 'hmm-tests/hmm.hmm_device_private.anon_write'],
    maxOccurrences: 2,
  });
  assert.equal(r.totals.scenarios, 4);
  assert.ok(r.totals.runs > 20, `runs ${r.totals.runs}`);
  for (const s of ['anon_fault', 'dmirror_bounce_init', 'dmirror_fops_open', 'xa_store', 'vm_area_alloc']) {
    assert.ok(r.sites.some((x) => x.site === s && x.tested > 0), `site ${s} tested`);
  }
  const all = [...r.baselineFailures, ...r.sites.flatMap((s) => s.failures)];
  assert.deepEqual(all.map((f) => `${f.scenario} ${f.site}#${f.occurrence} ${f.kind}: ${f.detail.split('\n')[0]}`), []);
  assert.equal(r.totals.failures, 0);
});

test('the sweep reports a leak planted in a failure path, with its site and occurrence', () => {
  // A "driver" that allocates two pages and, when the second allocation
  // fails, forgets to free the first: clean unless that occurrence fails.
  const planted: FailScenario = {
    name: 'planted/leak-on-failure',
    run(ctx) {
      const k = new Kernel({ ramBytes: 64 << 20, nrHugepages: 0, checked: true });
      ctx.ready(k);
      const a = k.buddy.alloc(0, 0, 'planted_alloc');
      const b = k.buddy.alloc(0, 0, 'planted_alloc');
      if (b >= 0) {
        k.buddy.free(b, 0);
        if (a >= 0) k.buddy.free(a, 0);
      } /* else: a leaks */
      ctx.exited(k);
      k.release();
      return { status: 'pass', reason: '', warnings: [] };
    },
  };
  const r = runFailSiteSweep({ scenarios: [planted] });
  assert.equal(r.totals.runs, 3, 'one counting run, then occurrences 1 and 2');
  const site = r.sites.find((s) => s.site === 'planted_alloc')!;
  assert.equal(site.occurrences, 2);
  assert.deepEqual(site.failures.map((f) => [f.occurrence, f.kind]), [[2, 'leak']]);
  assert.match(site.failures[0].detail, /buddy: 1 page\(s\) not freed/);
  assert.equal(r.totals.failures, 1);
});

test('a JS exception in a scenario is a failure; the hmm-tests scenario list is every case', () => {
  const boom: FailScenario = {
    name: 'planted/throws',
    run(ctx) {
      const k = new Kernel({ ramBytes: 64 << 20, nrHugepages: 0 });
      ctx.ready(k);
      if (k.buddy.alloc(0, 0, 'planted_throw') < 0) throw new TypeError('model defect on the failure path');
      ctx.exited(k);
      return { status: 'pass', reason: '', warnings: [] };
    },
  };
  const r = runFailSiteSweep({ scenarios: [boom] });
  const f = r.sites.find((s) => s.site === 'planted_throw')!.failures;
  assert.equal(f.length, 1);
  assert.equal(f[0].kind, 'exception');
  assert.match(f[0].detail, /TypeError: model defect/);
  assert.equal(hmmTestScenarios().length, 76);
});

test('dmirror_devmem_fault_alloc_and_copy failing in the CPU fault (linux-mm lib/test_hmm.c): migrate_vma_finalize restores the device entry, the retried fault migrates the page, nothing leaks', () => {
  const e = setup();
  const fd = e.p.open('/dev/hmm_dmirror0', O_RDWR);
  const a = e.p.mmap(0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  e.p.fill(a, PG, 0x5a);
  assert.deepEqual(dmirrorCmd(e.p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, a, 1), [0, 1]);
  const vma = e.p.mm!.vmaLookup(a)!;
  fail(e.k, 'dmirror_devmem_fault_alloc_and_copy');
  assert.equal(runMmapRead(vma.mm, handleMmFault(vma, a, 0)), VM_FAULT_OOM);
  assert.equal(pteTableOf(e.p.mm!.pgd, a)!.f[pteIndex(a)] & TYPE_MASK, T_DEVICE_PRIVATE_WRITE, 'finalize put the device-private entry back (no migration entry left)');
  assert.equal(e.p.readBytes(a, 1)[0], 0x5a, 'the retried fault migrates the page');
  assert.equal(pteTableOf(e.p.mm!.pgd, a)!.f[pteIndex(a)] & TYPE_MASK, T_PRESENT);
  e.p.close(fd);
  finish(e, 'dmirror_devmem_fault_alloc_and_copy');
});

test('dmirror_devmem_fault_alloc_and_copy failing in the CPU fault (dmirror_devmem_fix): migrate_vma_pages + finalize restore the page on the device, the retried fault migrates it', () => {
  const e = setup({ fixes: { dmirror_devmem_fix: true } });
  const fd = e.p.open('/dev/hmm_dmirror0', O_RDWR);
  const a = e.p.mmap(0, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  e.p.fill(a, PG, 0x5a);
  assert.deepEqual(dmirrorCmd(e.p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, a, 1), [0, 1]);
  fail(e.k, 'dmirror_devmem_fault_alloc_and_copy');
  assert.equal(e.p.readBytes(a, 1)[0], 0x5a);
  assert.equal(pteTableOf(e.p.mm!.pgd, a)!.f[pteIndex(a)] & TYPE_MASK, T_PRESENT);
  e.p.close(fd);
  finish(e, 'dmirror_devmem_fault_alloc_and_copy');
});

test('dmirror_devmem_fault_alloc_and_copy failing mid-batch in HMM_DMIRROR_MIGRATE_TO_SYS: the error is ignored (mainline), the copied pages migrate, the rest stay on the device, no migration entry is left', () => {
  const e = setup();
  const fd = e.p.open('/dev/hmm_dmirror0', O_RDWR);
  const a = e.p.mmap(0, 4 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  for (let i = 0; i < 4; i++) e.p.fill(a + i * PG, PG, 0x10 + i);
  assert.deepEqual(dmirrorCmd(e.p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, a, 4), [0, 4]);
  fail(e.k, 'dmirror_devmem_fault_alloc_and_copy', 2);
  assert.deepEqual(dmirrorCmd(e.p, fd, HMM_DMIRROR_MIGRATE_TO_SYS, a, 4), [0, 2]);
  const pt = pteTableOf(e.p.mm!.pgd, a)!;
  assert.deepEqual([0, 1, 2, 3].map((i) => pt.f[pteIndex(a) + i] & TYPE_MASK), [T_PRESENT, T_PRESENT, T_DEVICE_PRIVATE_WRITE, T_DEVICE_PRIVATE_WRITE]);
  for (let i = 0; i < 4; i++) assert.equal(e.p.readBytes(a + i * PG, 1)[0], 0x10 + i, `page ${i}`);
  e.p.close(fd);
  finish(e, 'dmirror_devmem_fault_alloc_and_copy');
});
