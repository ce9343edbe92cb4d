// SPDX-License-Identifier: GPL-2.0-only
/**
 * The nouveau model (src/drivers/nouveau): migration to VRAM and back
 * through the copy engine with the data intact, GPU faults served by
 * hmm_range_fault() and invalidated by the notifiers, eviction at device
 * removal (with pages in use, with copies in flight), the ABI's errnos,
 * and the two seed switches.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSync, RandomStrategy } from '../src/kernel/sched/sched.js';
import { KernelBug } from '../src/kernel/printk.js';
import { vmMunmap } from '../src/kernel/mm/mmap.js';
import { doUserAddrFault, translate } from '../src/kernel/arch/fault.js';
import { isDevicePrivatePage } from '../src/kernel/mm/memremap.js';
import {
  DMEM_CHUNK_NPAGES, GPU_ACCESS_ATOMIC, GPU_ACCESS_READ, GPU_ACCESS_WRITE, NOUVEAU_SIM_CHAN_KILL, NOUVEAU_SIM_PATH, copyEngineThread,
  NouveauDrm, nouveauRemove, othersDone, svmBindHeader, NOUVEAU_SVM_BIND_TARGET__GPU_VRAM,
} from '../src/drivers/nouveau/index.js';
import { devicePrivatePfn } from '../scenarios/lib.js';
import { PAGE, RW, bootGpu, close, cpu, gpuAccess, ioctlU64, mkVma, pattern, svmBind, svmInit, uread, uwrite, type Gpu } from './nouveau_helpers.js';
import { explore, runOnce } from '../src/explore/engine.js';
import { findScenario } from '../scenarios/index.js';
import { defaultHistorical } from '../src/kernel/config.js';
import { ADDR, anonMapping, cpuAccess, populate, smallMachine, withMmapRead } from '../scenarios/lib.js';
import { NOUVEAU_CASE_NAMES, runNouveauSuite } from '../src/selftests/nouveau_tests.js';
import { thpBuffer } from './dmirror_helpers.js';
import { HPAGE_PMD_ORDER } from '../src/kernel/mm/page.js';
import { pmdTableOf, pmdIndex, isPmdDevicePrivateEntry } from '../src/kernel/mm/pgtable.js';

/** n pages of pattern data at a fresh RW anon VMA. */
function buffer(g: Gpu, n: number, base: number): { addr: number; data: Uint8Array } {
  const addr = mkVma(g.p, n, RW);
  const data = pattern(n, base);
  uwrite(g.p, addr, data);
  return { addr, data };
}

function devicePages(g: Gpu, addr: number, n: number): number {
  let c = 0;
  for (let i = 0; i < n; i++) if (devicePrivatePfn(g.p.mm, addr + i * PAGE) >= 0) c++;
  return c;
}

test('SVM_BIND migrates to VRAM through the copy engine; CPU faults bring every byte back', () => {
  const g = bootGpu();
  assert.equal(svmInit(g), 0);
  const { addr, data } = buffer(g, 8, 1000);
  assert.equal(g.drm.dmem.chunks.length, 0, 'chunks are allocated on demand');
  assert.equal(svmBind(g, addr, addr + 8 * PAGE), 0);
  assert.equal(devicePages(g, addr, 8), 8);
  assert.equal(g.drm.dmem.chunks.length, 1);
  assert.equal(g.drm.dmem.allocated(), 8);
  assert.equal(g.drm.dmem.chan.stat.pages, 8, 'eight page copies executed by the engine');
  assert.equal(g.drm.dmem.chan.pending(), 0);
  // The device pfns' own content slots are not used: the data is in VRAM.
  const dpfn = devicePrivatePfn(g.p.mm, addr);
  assert.ok(isDevicePrivatePage(g.k, dpfn));
  assert.deepEqual(uread(g.p, addr, 8 * PAGE), data, 'CPU reads fault every page back with its data');
  assert.equal(devicePages(g, addr, 8), 0);
  assert.equal(g.drm.dmem.stat.toRam, 8);
  assert.equal(g.drm.dmem.allocated(), 0, 'device pages freed back to the free list');
  assert.equal(g.drm.dmem.freePages.length, DMEM_CHUNK_NPAGES);
  close(g.p, g.f);
});

test('GPU faults: served with hmm_range_fault, data read and written, invalidated by munmap', () => {
  const g = bootGpu();
  assert.equal(svmInit(g), 0);
  const { addr, data } = buffer(g, 4, 7);
  const r = gpuAccess(g, addr, 4, GPU_ACCESS_READ);
  assert.equal(r.ret, 0);
  assert.equal(r.faults, 4n, 'one GPU fault per page');
  assert.deepEqual(r.data, data);
  // Second read: the GPU page table is populated, no fault.
  assert.equal(gpuAccess(g, addr, 4, GPU_ACCESS_READ).faults, 0n);
  // A write needs writable entries: hmm_range_fault gave writable pages already (anon, dirty).
  const w = pattern(4, 5555);
  const rw = gpuAccess(g, addr, 4, GPU_ACCESS_WRITE, w);
  assert.equal(rw.ret, 0);
  assert.deepEqual(uread(g.p, addr, 4 * PAGE), w, 'the CPU sees the GPU write');
  const svmm = g.drm.clients.values().next().value!.svmm!;
  assert.equal(svmm.pt.size, 4);
  // munmap: the notifier drops the GPU entries; a GPU access then faults and is cancelled.
  const k = g.k;
  assert.ok(g.p.mm.mmapLock.tryWriteFast(k.sched));
  g.p.mm.mmapLock.writeUnlock(k.sched);
  assert.equal(runSync(k.sched, vmMunmap(g.p.mm, addr, 4 * PAGE)), 0);
  assert.equal(svmm.pt.size, 0, 'invalidated');
  assert.equal(gpuAccess(g, addr, 1, GPU_ACCESS_READ).ret, -14, '-EFAULT: the GPU fault is cancelled');
  close(g.p, g.f);
});

test('GPU access of pages bound to VRAM goes to VRAM without faults; CPU write after it migrates back', () => {
  const g = bootGpu();
  assert.equal(svmInit(g), 0);
  const { addr, data } = buffer(g, 4, 42);
  assert.equal(svmBind(g, addr, addr + 4 * PAGE), 0);
  const r = gpuAccess(g, addr, 4, GPU_ACCESS_READ);
  assert.equal(r.faults, 0n, 'nouveau_pfns_map() mapped the VRAM pages');
  assert.deepEqual(r.data, data);
  const w = pattern(4, 99);
  assert.equal(gpuAccess(g, addr, 4, GPU_ACCESS_WRITE, w).ret, 0);
  assert.equal(devicePages(g, addr, 4), 4, 'still in VRAM');
  // CPU fault on page 1: migrate_to_ram invalidates the GPU entry of that page only.
  const svmm = g.drm.clients.values().next().value!.svmm!;
  assert.deepEqual(uread(g.p, addr + PAGE, PAGE), w.subarray(PAGE, 2 * PAGE));
  assert.equal(svmm.pt.has(addr + PAGE), false);
  assert.equal(svmm.pt.has(addr), true);
  // A GPU access of page 1 now faults and maps the system page.
  const r2 = gpuAccess(g, addr + PAGE, 1, GPU_ACCESS_READ);
  assert.equal(r2.faults, 1n);
  assert.deepEqual(r2.data, w.subarray(PAGE, 2 * PAGE));
  assert.deepEqual(uread(g.p, addr, 4 * PAGE), w);
  close(g.p, g.f);
});

test('device removal evicts pages in use (nouveau_dmem_evict_chunk); every byte survives', () => {
  const g = bootGpu();
  assert.equal(svmInit(g), 0);
  const { addr, data } = buffer(g, 600, 3); /* two chunks */
  assert.equal(svmBind(g, addr, addr + 600 * PAGE), 0);
  assert.equal(devicePages(g, addr, 600), 600);
  assert.equal(g.drm.dmem.chunks.length, 2);
  close(g.p, g.f); /* the client goes first: the pages stay in VRAM */
  runSync(g.k.sched, nouveauRemove(g.k));
  g.k.checkpoint('remove');
  assert.equal(g.drm.dmem.stat.evicted, 600);
  assert.equal(devicePages(g, addr, 600), 0);
  assert.equal(g.drm.dmem.chunks.length, 0);
  assert.deepEqual(uread(g.p, addr, 600 * PAGE), data);
  assert.equal(g.k.chardevs.has(NOUVEAU_SIM_PATH), false);
});

test('device removal with copies in flight: fault, removal and copy engine interleaved (50 seeds), no hang, no lost byte', () => {
  let blocked = 0;
  for (let seed = 1; seed <= 50; seed++) {
    const g = bootGpu({ checked: false });
    assert.equal(svmInit(g), 0);
    const { addr, data } = buffer(g, 3, seed * 10);
    assert.equal(svmBind(g, addr, addr + 3 * PAGE), 0);
    const k = g.k;
    const mm = g.p.mm;
    const q = othersDone(k);
    k.sched.spawn('cpu-read', (function* () {
      for (let i = 0; i < 100; i++) {
        if (translate(mm, addr + PAGE, false) >= 0) return;
        const r = yield* doUserAddrFault(mm, addr + PAGE, false);
        assert.ok(r.ok, `seed ${seed}: fault signal`);
      }
    })());
    k.sched.spawn('device-removal', nouveauRemove(k));
    k.sched.spawn('nouveau-ce', copyEngineThread(g.drm.dmem.chan, q));
    k.sched.run(new RandomStrategy(seed));
    assert.equal(devicePages(g, addr, 3), 0, `seed ${seed}`);
    assert.deepEqual(uread(g.p, addr, 3 * PAGE), data, `seed ${seed}: data intact`);
    assert.equal(g.drm.dmem.chan.pending(), 0);
    blocked += g.drm.dmem.chan.stat.blockedWaits;
  }
  assert.ok(blocked > 0, 'some fence waits found their copies still in flight');
});

test('release_without_eviction=on: nouveau_dmem_fini hangs in memunmap_pages with a page still mapped', () => {
  const g = bootGpu({ historical: { release_without_eviction: true } as never });
  assert.equal(svmInit(g), 0);
  const { addr } = buffer(g, 2, 1);
  assert.equal(svmBind(g, addr, addr + 2 * PAGE), 0);
  close(g.p, g.f);
  assert.throws(() => runSync(g.k.sched, nouveauRemove(g.k)), (e: unknown) => e instanceof KernelBug && e.kind === 'HANG' && /memunmap_pages/.test(e.message));
});

test('nouveau_dmem_fault_copy_one=on: a copy that cannot be queued frees the locked destination (Bad page state)', () => {
  const g = bootGpu({ historical: { nouveau_dmem_fault_copy_one: true } as never });
  assert.equal(svmInit(g), 0);
  const { addr } = buffer(g, 1, 1);
  assert.equal(svmBind(g, addr, addr + PAGE), 0);
  assert.equal(ioctlU64(g, NOUVEAU_SIM_CHAN_KILL, []).ret, 0);
  assert.throws(() => cpu(g.p.mm, addr, false), (e: unknown) => e instanceof KernelBug && e.kind === 'BUG' && /freeing a locked page/.test(e.message));
});

test('mainline, copy channel dead: migrate_to_ram returns SIGBUS and leaves a migration entry to a freed device page (FINDINGS)', () => {
  const g = bootGpu({ checked: false });
  assert.equal(svmInit(g), 0);
  const { addr } = buffer(g, 1, 1);
  assert.equal(svmBind(g, addr, addr + PAGE), 0);
  assert.equal(ioctlU64(g, NOUVEAU_SIM_CHAN_KILL, []).ret, 0);
  const r = runSync(g.k.sched, doUserAddrFault(g.p.mm, addr, false));
  assert.deepEqual([r.ok, r.ok ? 0 : r.signal], [false, 7], 'SIGBUS');
  assert.equal(g.drm.dmem.stat.toRamFailed, 1);
  // migrate_vma_finalize() with dst set and the entry still MIGRATE, but no
  // migrate_vma_pages(): remove_migration_ptes(src, dst) walks dst's rmap,
  // which is empty, so the migration entry stays while the device page is freed.
  assert.equal(translate(g.p.mm, addr, false), -1, 'nothing mapped');
  assert.equal(devicePrivatePfn(g.p.mm, addr), -1, 'not a device-private entry either');
  assert.equal(g.drm.dmem.allocated(), 0, 'the device page was freed');
  assert.throws(() => runSync(g.k.sched, doUserAddrFault(g.p.mm, addr, false)), (e: unknown) => e instanceof KernelBug && e.kind === 'HANG' && /migration_entry_wait/.test(e.message), 'the next access waits on the stale migration entry forever');
});

test('nouveau_dmem_fault_copy_one=on: a failed destination allocation is SIGBUS; mainline returns 0 and the refault succeeds', () => {
  for (const old of [true, false]) {
    const g = bootGpu({ historical: { nouveau_dmem_fault_copy_one: old } as never });
    assert.equal(svmInit(g), 0);
    const { addr, data } = buffer(g, 1, 5);
    assert.equal(svmBind(g, addr, addr + PAGE), 0);
    g.k.buddy.fail.set('nouveau_dmem_migrate_to_ram', { skip: 0, times: 1 });
    const r = runSync(g.k.sched, doUserAddrFault(g.p.mm, addr, false));
    if (old) assert.deepEqual([r.ok, r.ok ? 0 : r.signal], [false, 7], 'old: SIGBUS');
    else {
      assert.equal(r.ok, true, 'mainline: no signal');
      assert.deepEqual(uread(g.p, addr, PAGE), data, 'the refault migrates the page');
    }
  }
});

test('closing the file frees the SVMM that device pages still name: a later CPU fault is a use-after-free', () => {
  const g = bootGpu();
  assert.equal(svmInit(g), 0);
  const { addr } = buffer(g, 1, 1);
  assert.equal(svmBind(g, addr, addr + PAGE), 0);
  close(g.p, g.f);
  assert.throws(() => cpu(g.p.mm, addr, false), (e: unknown) => e instanceof KernelBug && e.kind === 'KASAN' && /nouveau_svmm/.test(e.message));
});

test('ABI errnos', () => {
  const g = bootGpu();
  const { addr } = buffer(g, 2, 1);
  assert.equal(svmBind(g, addr, addr + PAGE), -22, 'BIND without SVM_INIT: -EINVAL');
  assert.equal(gpuAccess(g, addr, 1, GPU_ACCESS_READ).ret, -22, 'GPU access without SVMM: -EINVAL');
  assert.equal(svmInit(g), 0);
  assert.equal(svmInit(g), -16, 'second SVM_INIT: -EBUSY');
  assert.equal(svmBind(g, addr, addr + PAGE, svmBindHeader(1)), -22, 'unknown command');
  assert.equal(svmBind(g, addr, addr + PAGE, svmBindHeader(0, 1)), 0, 'priority: not checked by mainline');
  assert.equal(svmBind(g, addr, addr + PAGE, svmBindHeader(0, 0, 0)), -22, 'target other than GPU_VRAM');
  assert.equal(svmBind(g, addr, addr + PAGE, svmBindHeader() | (1n << 48n)), -22, 'bits above the valid ones');
  assert.equal(svmBind(g, addr, addr + PAGE, svmBindHeader(), 1n), -22, 'stride');
  assert.equal(svmBind(g, addr, addr + PAGE, svmBindHeader(0, 0, NOUVEAU_SVM_BIND_TARGET__GPU_VRAM)), 0);
  assert.equal(gpuAccess(g, addr + 1, 1, GPU_ACCESS_READ).ret, -22, 'unaligned');
  assert.equal(gpuAccess(g, addr, 0, GPU_ACCESS_READ).ret, -22, 'npages 0');
  assert.equal(gpuAccess(g, addr, 1, 7).ret, -22, 'bad access type');
  assert.equal(gpuAccess(g, 0x7000_0000, 1, GPU_ACCESS_READ).ret, -14, 'unmapped: -EFAULT');
  assert.equal(ioctlU64(g, 0xdead, [0n]).ret, -22, 'unknown ioctl');
  close(g.p, g.f);
});

/* ---------------------------------------------------------------------- */
/* explorer                                                                 */

for (const [name, sw, detector, rule] of [
  ['nouveau-release-without-eviction', 'release_without_eviction', 'HANG', /memunmap_pages/],
  ['nouveau-fault-copy-one', 'nouveau_dmem_fault_copy_one', 'DATA', /got signal 7/],
] as const) {
  test(`explorer: ${name} breaks with ${sw}=on and survives on mainline`, () => {
    const sc = findScenario(name)!;
    assert.equal(sc.bugSwitch, sw);
    const on = { historical: { ...defaultHistorical(), [sw]: true } };
    const r = explore(sc, { schedules: 200, seed: 1, strategy: 'random', config: on });
    assert.ok(r.found, 'a violation with the switch on');
    assert.equal(r.found.violation!.detector, detector);
    assert.match(r.found.violation!.rule, rule);
    assert.deepEqual(runOnce(sc, on, r.schedule!).violation, r.found.violation, 'the schedule replays');
    const off = explore(sc, { schedules: 400, seed: 1, strategy: 'random', config: {} });
    assert.equal(off.found, null, off.found ? `${off.found.violation!.detector}: ${off.found.violation!.rule}` : '');
    assert.equal(runOnce(sc, {}, r.schedule!).violation, null, 'the breaking interleaving is harmless on mainline');
  });
}

test('explorer: nouveau-gpu-fork finds the mainline livelock of a GPU write to VRAM made read-only by fork (FINDINGS)', () => {
  // nouveau_svm_fault() replays a fault whose nouveau_range_fault() succeeded
  // without checking the entry it got: hmm_range_fault() reports the
  // device's own read-only device-private page without faulting it.
  const r = explore(findScenario('nouveau-gpu-fork')!, { schedules: 400, seed: 3, strategy: 'random', config: {} });
  assert.ok(r.found);
  assert.equal(r.found.violation!.detector, 'HANG');
  assert.match(r.found.violation!.rule, /replayed 1000 times \(livelock\): the entry is this device's read-only VRAM page/);
});

for (const name of ['nouveau-gpu-cpu-munmap', 'nouveau-thp-race']) {
  test(`explorer: ${name} (GPU fault vs CPU fault vs ${name.endsWith('fork') ? 'fork' : 'munmap'}) finds no violation on mainline`, () => {
    const sc = findScenario(name)!;
    for (const strategy of ['random', 'pct'] as const) {
      const r = explore(sc, { schedules: strategy === 'random' ? 400 : 100, seed: 3, strategy, config: {} });
      assert.equal(r.found, null, r.found ? `${strategy}: ${r.found.violation!.detector}: ${r.found.violation!.rule}` : '');
    }
  });
}

test('explorer: nouveau-fini-vs-fault finds the mainline WARN_ON(chunk->callocated) when a CPU fault holds the page', () => {
  const r = explore(findScenario('nouveau-fini-vs-fault')!, { schedules: 200, seed: 1, strategy: 'random', config: {} });
  assert.ok(r.found);
  assert.equal(r.found.violation!.detector, 'WARN');
  assert.match(r.found.violation!.rule, /nouveau_dmem_fini: WARN_ON\(chunk->callocated\)/);
});

test('device removal racing a CPU fault (random schedules): the fault copies from a dropped chunk->bo (NULL dereference) in some', () => {
  const outcomes = { ok: 0, warn: 0, nullDeref: 0 };
  for (let seed = 1; seed <= 120; seed++) {
    const k = smallMachine({});
    const { mm, vma } = anonMapping(k, 2);
    populate(k, mm, ADDR, 1);
    populate(k, mm, ADDR + PAGE, 2);
    const drm = new NouveauDrm(k, { vramChunks: 1 });
    const svmm = runSync(k.sched, drm.svm.svmmInit(mm, 0, 0));
    withMmapRead(k, mm, () => drm.dmem.migrateVma(svmm, vma, ADDR, ADDR + 2 * PAGE));
    k.sched.spawn('cpu-read', cpuAccess(mm, ADDR, false));
    k.sched.spawn('device-removal', drm.dmem.fini());
    k.sched.spawn('nouveau-ce', copyEngineThread(drm.dmem.chan, othersDone(k)));
    try {
      k.sched.run(new RandomStrategy(seed));
      if (k.printk.warnings.some((w) => /WARN_ON\(chunk->callocated\)/.test(w.rule))) outcomes.warn++;
      else outcomes.ok++;
    } catch (e) {
      assert.ok(e instanceof KernelBug, String(e));
      assert.match(e.rule, /NULL pointer dereference: chunk->bo in nouveau_dmem_page_addr/, `seed ${seed}: ${e.message}`);
      outcomes.nullDeref++;
    }
  }
  assert.ok(outcomes.ok > 0, JSON.stringify(outcomes));
  assert.ok(outcomes.nullDeref > 0, `the oops is reachable: ${JSON.stringify(outcomes)}`);
});

/* ---------------------------------------------------------------------- */
/* the selftest-style suite                                                 */

test('selftest --suite nouveau: every case passes on mainline and prints kselftest TAP', () => {
  const lines: string[] = [];
  const r = runNouveauSuite({ checked: true }, () => true, (l) => lines.push(l));
  assert.equal(r.fail, 0, r.cases.filter((c) => !c.ok).map((c) => `${c.name}: ${c.reason}`).join('\n'));
  assert.equal(r.pass, NOUVEAU_CASE_NAMES.length);
  assert.equal(lines[0], 'TAP version 13');
  assert.equal(lines[1], `1..${NOUVEAU_CASE_NAMES.length}`);
  assert.ok(lines.includes('ok 2 nouveau.migrate_to_vram_and_back'));
  assert.match(lines[lines.length - 1], /^# Totals: pass:\d+ fail:0/);
});

test('selftest --suite nouveau: device_removal_evicts fails with release_without_eviction=on (HANG)', () => {
  const r = runNouveauSuite({ historical: { ...defaultHistorical(), release_without_eviction: true } }, (n) => n === 'nouveau.device_removal_evicts');
  assert.equal(r.fail, 1);
  assert.match(r.cases[0].reason, /^HANG: .*memunmap_pages/);
});

/* ---------------------------------------------------------------------- */
/* large folios                                                             */

function pmdDevicePfn(g: Gpu, addr: number): number {
  const pmd = pmdTableOf(g.p.mm.pgd, addr, false);
  if (pmd === null) return -1;
  const i = pmdIndex(addr);
  return isPmdDevicePrivateEntry(pmd.f[i]) ? pmd.v[i] : -1;
}

test('a PMD-mapped THP migrates to one 2 MiB device folio and comes back whole on a CPU fault', () => {
  const g = bootGpu({ thp: 'always' });
  assert.equal(svmInit(g), 0);
  const { addr, data } = thpBuffer(g.p, 1, 77);
  assert.equal(svmBind(g, addr, addr + 512 * PAGE), 0);
  const d = pmdDevicePfn(g, addr);
  assert.ok(d >= 0, 'a device-private PMD entry');
  assert.equal(g.k.pages.order[d], HPAGE_PMD_ORDER, 'a large device folio');
  assert.equal(g.drm.dmem.allocated(), 512);
  assert.equal(g.drm.dmem.chan.stat.copies, 1, 'one 512-page copy command');
  // The GPU reads it through VRAM without faults.
  const r = gpuAccess(g, addr + 5 * PAGE, 2, GPU_ACCESS_READ);
  assert.equal(r.faults, 0n);
  assert.deepEqual(r.data, data.subarray(5 * PAGE, 7 * PAGE));
  // A CPU read of one page brings the whole folio back as a THP.
  assert.deepEqual(uread(g.p, addr + 100 * PAGE, PAGE), data.subarray(100 * PAGE, 101 * PAGE));
  const pfn = translate(g.p.mm, addr, false);
  assert.ok(pfn >= 0);
  assert.equal(g.k.pages.order[g.k.pages.folioPfn(pfn)], HPAGE_PMD_ORDER, 'back as a 2 MiB system folio');
  assert.equal(g.drm.dmem.allocated(), 0);
  assert.equal(g.drm.dmem.freeFolios.length, 1, 'the free folio goes back to free_folios');
  assert.deepEqual(uread(g.p, addr, 512 * PAGE), data);
  close(g.p, g.f);
});

test('device removal evicts a large device folio to a 2 MiB system folio', () => {
  const g = bootGpu({ thp: 'always' });
  assert.equal(svmInit(g), 0);
  const { addr, data } = thpBuffer(g.p, 1, 9);
  assert.equal(svmBind(g, addr, addr + 512 * PAGE), 0);
  assert.ok(pmdDevicePfn(g, addr) >= 0);
  runSync(g.k.sched, nouveauRemove(g.k));
  g.k.checkpoint('remove');
  assert.equal(g.drm.dmem.stat.evicted, 512);
  assert.equal(pmdDevicePfn(g, addr), -1);
  assert.deepEqual(uread(g.p, addr, 512 * PAGE), data);
  close(g.p, g.f);
});

test('explorer: nouveau-bind-vs-gpu-write finds a lost GPU write on mainline (own MMU_NOTIFY_MIGRATE skipped, GPU PTE updated only after the copy)', () => {
  const sc = findScenario('nouveau-bind-vs-gpu-write')!;
  const r = explore(sc, { schedules: 2000, seed: 1, strategy: 'random', config: {} });
  assert.ok(r.found, 'found');
  assert.equal(r.found.violation!.detector, 'DATA');
  assert.match(r.found.violation!.rule, /lost GPU write: page 0 \(in VRAM\)/);
  // The losing interleaving: the GPU writes through its old PTE after the copy ran, before nouveau_pfns_map().
  const whats = r.found.trace.map((t) => `${t.taskName}:${t.what}`);
  const gpu = whats.indexOf('gpu-write:GPU access');
  assert.ok(gpu > 0 && whats.slice(0, gpu).some((w) => w.startsWith('svm-bind:lock nouveau_svmm->mutex')), whats.join('\n'));
  assert.deepEqual(runOnce(sc, {}, r.schedule!).violation, r.found.violation, 'replays');
});

test('GPU atomics: make_device_exclusive takes the page, a CPU access restores it and invalidates the GPU entry', () => {
  const g = bootGpu();
  assert.equal(svmInit(g), 0);
  const { addr } = buffer(g, 1, 3);
  const r = gpuAccess(g, addr, 1, GPU_ACCESS_ATOMIC, pattern(1, 8));
  assert.equal(r.ret, 0);
  assert.equal(r.faults, 1n);
  const svmm = g.drm.clients.values().next().value!.svmm!;
  assert.equal(svmm.pt.get(addr)?.atomic, true);
  assert.equal(translate(g.p.mm, addr, false), -1, 'the CPU PTE is a device-exclusive entry');
  // A second atomic needs no fault.
  assert.equal(gpuAccess(g, addr, 1, GPU_ACCESS_ATOMIC, pattern(1, 9)).faults, 0n);
  // The CPU touches it: the exclusive entry is restored and the GPU's entry dropped.
  assert.deepEqual(uread(g.p, addr, PAGE), pattern(1, 9));
  assert.equal(svmm.pt.has(addr), false);
  // A plain GPU read faults and maps it again (not atomic).
  assert.equal(gpuAccess(g, addr, 1, GPU_ACCESS_READ).faults, 1n);
  assert.equal(svmm.pt.get(addr)?.atomic, undefined);
  close(g.p, g.f);
});

test('explorer: nouveau-gpu-atomic: fork racing a GPU atomic fault fails with -ENOMEM (finding); past it, no violation', () => {
  const r = explore(findScenario('nouveau-gpu-atomic')!, { schedules: 1000, seed: 1, strategy: 'random', config: {} });
  assert.ok(r.found);
  assert.equal(r.found.violation!.detector, 'DATA');
  assert.match(r.found.violation!.rule, /fork returned -ENOMEM/);
  const past = explore(findScenario('nouveau-gpu-atomic-past-enomem')!, { schedules: 400, seed: 1, strategy: 'random', config: {} });
  assert.equal(past.found, null, past.found ? `${past.found.violation!.detector}: ${past.found.violation!.rule}` : '');
});
