// SPDX-License-Identifier: GPL-2.0-only
/**
 * Scenarios on the nouveau model (src/drivers/nouveau): its two seed fixes
 * and a race of GPU faults, CPU faults and munmap with the copy engine and
 * the GPU fault handler as threads of their own.
 *
 * Every scenario's machine: the explorer's small machine, a nouveau device
 * with one 2 MiB VRAM chunk, a process whose SVMM mirrors its mm, and some
 * of its pages migrated to VRAM (nouveau_dmem_migrate_vma(), run to
 * completion before the threads start). The GPU threads (copy engine,
 * fault handler) run until every other thread has ended and their queues
 * are empty.
 */
import type { KernelConfig } from '../src/kernel/config.js';
import { runSync } from '../src/kernel/sched/sched.js';
import type { Scenario, ScenarioRun, ScenarioThread } from '../src/explore/engine.js';
import { vmMunmap } from '../src/kernel/mm/mmap.js';
import { PAGE_SIZE } from '../src/kernel/mm/page.js';
import { NouveauDrm, othersDone, GPU_ACCESS_ATOMIC, GPU_ACCESS_READ, GPU_ACCESS_WRITE } from '../src/drivers/nouveau/index.js';
import type { NouveauSvmm } from '../src/drivers/nouveau/svm.js';
import { NOUVEAU_APER_HOST } from '../src/drivers/nouveau/chan.js';
import { ADDR, anonMapping, cpuAccess, cpuFill, devicePrivatePfn, fillChecksum, mappedPfn, populate, shadowCompare, smallMachine, withMmapRead } from './lib.js';
import { mmapReadLock } from '../src/kernel/mm/mmap_lock.js';
import { translate } from '../src/kernel/arch/fault.js';
import { dupMmap } from '../src/kernel/mm/fork.js';
import { isDevicePrivateType, pmdIndex, pmdTableOf, pteIndex, pteTableOf, T_DEVICE_EXCLUSIVE, pteType } from '../src/kernel/mm/pgtable.js';

/** The common machine: `npages` of data at ADDR (byte 0x40 + i), the first `nvram` of them moved to VRAM. */
function gpuMachine(cfg: Partial<KernelConfig>, npages: number, nvram: number) {
  const k = smallMachine(cfg);
  const { mm, vma } = anonMapping(k, npages);
  const drm = new NouveauDrm(k, { vramChunks: 1 });
  const shadow: number[] = [];
  for (let i = 0; i < npages; i++) shadow.push(k.contents.checksum(populate(k, mm, ADDR + i * PAGE_SIZE, 0x40 + i)));
  const svmm: NouveauSvmm = runSync(k.sched, drm.svm.svmmInit(mm, 0, 0));
  if (nvram > 0) withMmapRead(k, mm, () => drm.dmem.migrateVma(svmm, vma, ADDR, ADDR + nvram * PAGE_SIZE));
  const gpu: ScenarioThread[] = drm.gpuThreads(othersDone(k));
  return { k, mm, vma, drm, svmm, shadow, gpu };
}

function checkAll(k: ReturnType<typeof gpuMachine>['k'], mm: ReturnType<typeof gpuMachine>['mm'], shadow: number[], drm: NouveauDrm): string | null {
  for (let i = 0; i < shadow.length; i++) {
    const a = ADDR + i * PAGE_SIZE;
    const d = devicePrivatePfn(mm, a);
    if (d >= 0) {
      // Still in VRAM: compare the VRAM copy.
      const got = drm.dmem.vram.checksum(drm.dmem.pageAddr(d));
      if (got !== shadow[i]) return `data lost: page ${i} in VRAM has checksum 0x${got.toString(16)}, the shadow copy 0x${shadow[i].toString(16)}`;
      continue;
    }
    const r = shadowCompare(k, mm, a, shadow[i], `page ${i}`);
    if (r !== null) return r;
  }
  return null;
}

/**
 * "nouveau/dmem: Evict device private memory during release" (seed
 * "nouveau/dmem: Evict device private memory during release" (Alistair Popple, series "Fix several device private page reference counting issues" v2 7/8, 2022-09-28)): nouveau_dmem_fini() with pages still mapped by a process.
 * Two pages in VRAM. Threads: a GPU read of page 0 (through its VRAM
 * entry, or, once eviction invalidated it, a GPU fault served by
 * hmm_range_fault that waits out the migration), device-removal
 * (nouveau_dmem_fini), the copy engine executing the eviction's copies and
 * the fault handler. Without eviction memunmap_pages() waits forever for
 * both pages; with it they come back through the copy engine, whatever the
 * interleaving. (A CPU fault racing the removal is the separate finding of
 * nouveau-fini-vs-fault; munmap racing it hits a model issue reported with
 * the branch.)
 */
export const nouveauReleaseWithoutEviction: Scenario = {
  name: 'nouveau-release-without-eviction',
  description: 'nouveau_dmem_fini() with VRAM pages still mapped, racing a GPU read, the copy engine and the fault handler',
  seedRef: '"nouveau/dmem: Evict device private memory during release" (Alistair Popple, v2 7/8, 2022-09-28); drivers/gpu/drm/nouveau/nouveau_dmem.c:nouveau_dmem_evict_chunk()',
  bugSwitch: 'release_without_eviction',
  expect: 'HANG in memunmap_pages',
  maxSteps: 48,
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const m = gpuMachine(cfg, 2, 2);
    const { k, mm, drm, svmm, shadow } = m;
    const st = { gpu: 0 };
    return {
      k,
      roots: [drm, svmm, st],
      watch: [devicePrivatePfn(mm, ADDR), devicePrivatePfn(mm, ADDR + PAGE_SIZE)],
      threads: [
        { name: 'gpu-read', *body() { st.gpu = yield* drm.svm.gpuAccess(svmm, ADDR, 1, GPU_ACCESS_READ, null); } },
        { name: 'device-removal', *body() { yield* drm.dmem.fini(); } },
        ...m.gpu,
      ],
      check: () => {
        if (st.gpu < 0) return `the GPU read failed with ${st.gpu}`;
        if (devicePrivatePfn(mm, ADDR) >= 0 || devicePrivatePfn(mm, ADDR + PAGE_SIZE) >= 0) return 'a device-private entry survived nouveau_dmem_fini()';
        return shadowCompare(k, mm, ADDR, shadow[0], 'page 0') ?? shadowCompare(k, mm, ADDR + PAGE_SIZE, shadow[1], 'page 1');
      },
    };
  },
};

/**
 * Mainline finding (docs/FINDINGS.md): device removal racing a CPU fault
 * on a VRAM page. The fault holds the page locked in migrate_to_ram, so
 * nouveau_dmem_evict_chunk()'s migrate_device_range() skips it; fini then
 * drops chunk->bo, WARNs on chunk->callocated, and the fault's copy
 * dereferences chunk->bo (nouveau_dmem_page_addr()) if it had not queued
 * it yet. Threads: cpu-read, device-removal, copy engine.
 */
export const nouveauFiniVsFault: Scenario = {
  name: 'nouveau-fini-vs-fault',
  description: 'nouveau_dmem_fini() racing a CPU fault on a VRAM page (mainline: WARN_ON(callocated), chunk->bo NULL dereference)',
  seedRef: '"nouveau/dmem: Evict device private memory during release" (Alistair Popple, v2 7/8, 2022-09-28); drivers/gpu/drm/nouveau/nouveau_dmem.c:nouveau_dmem_fini() (mainline finding)',
  bugSwitch: '(none)',
  expect: 'WARN nouveau_dmem_fini: WARN_ON(chunk->callocated); BUG NULL pointer dereference of chunk->bo',
  maxSteps: 48,
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const m = gpuMachine(cfg, 2, 2);
    const { k, mm, drm, shadow } = m;
    return {
      k,
      roots: [drm, m.svmm],
      watch: [devicePrivatePfn(mm, ADDR)],
      threads: [
        { name: 'cpu-read', *body() { return yield* cpuAccess(mm, ADDR, false); } },
        { name: 'device-removal', *body() { yield* drm.dmem.fini(); } },
        m.gpu[0],
      ],
      check: () => checkAll(k, mm, shadow, drm),
    };
  },
};

/**
 * "nouveau/dmem: Refactor nouveau_dmem_fault_copy_one()" (seed
 * "nouveau/dmem: Refactor nouveau_dmem_fault_copy_one()" (Alistair Popple, series "Fix several device private page reference counting issues" v2 6/8, 2022-09-28)): before it, migrate_to_ram answered a failed destination
 * allocation with VM_FAULT_SIGBUS; after it, with 0 (the CPU faults again
 * and the retry succeeds). One allocation at the site fails (transient
 * memory pressure, by failure injection). Threads: cpu-read of the VRAM
 * page, a GPU read of it (its GPU entry is invalidated by migrate_to_ram;
 * the GPU fault then waits for the migration), the copy engine and the
 * fault handler. The check: the CPU read got no signal and the data is
 * intact.
 */
export const nouveauFaultCopyOne: Scenario = {
  name: 'nouveau-fault-copy-one',
  description: 'migrate_to_ram with a failed destination allocation (SIGBUS before the refactor), racing a GPU read',
  seedRef: '"nouveau/dmem: Refactor nouveau_dmem_fault_copy_one()" (Alistair Popple, v2 6/8, 2022-09-28); drivers/gpu/drm/nouveau/nouveau_dmem.c:nouveau_dmem_migrate_to_ram()',
  bugSwitch: 'nouveau_dmem_fault_copy_one',
  expect: 'DATA: the CPU read got SIGBUS',
  maxSteps: 48,
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const m = gpuMachine(cfg, 1, 1);
    const { k, mm, drm, svmm, shadow } = m;
    k.buddy.fail.set('nouveau_dmem_migrate_to_ram', { skip: 0, times: 1 });
    const st = { cpu: 0, gpu: 0 };
    return {
      k,
      roots: [drm, svmm, st],
      watch: [devicePrivatePfn(mm, ADDR)],
      threads: [
        { name: 'cpu-read', *body() { st.cpu = yield* cpuAccess(mm, ADDR, false); } },
        { name: 'gpu-read', *body() { st.gpu = yield* drm.svm.gpuAccess(svmm, ADDR, 1, GPU_ACCESS_READ, null); } },
        ...m.gpu,
      ],
      check: () => {
        if (st.cpu < 0) return `the CPU read of 0x${ADDR.toString(16)} got signal ${-st.cpu} (migrate_to_ram returned VM_FAULT_SIGBUS on a failed allocation)`;
        if (st.gpu < 0) return `the GPU read failed with ${st.gpu}`;
        return checkAll(k, mm, shadow, drm);
      },
    };
  },
};

/**
 * GPU fault vs CPU fault vs munmap (mainline; no historical switch): page
 * 0 in VRAM, page 1 in system memory. Threads: a GPU write of both pages
 * (faulting page 1 through hmm_range_fault, writing page 0 in VRAM), a CPU
 * read of page 0 (migrate_to_ram, copy in flight), munmap of page 1, the
 * copy engine and the fault handler. Detectors: a GPU access through a
 * stale GPU PTE to a freed page (KASAN in svm.ts), a copy-engine DMA to a
 * freed page, the explorer's page-freed-while-mapped invariant; the check:
 * page 0 holds either its old data or the GPU's write, and the GPU page
 * table names only pages the CPU page table maps at the same address.
 */
export const nouveauGpuCpuMunmap: Scenario = {
  name: 'nouveau-gpu-cpu-munmap',
  description: 'GPU write faults vs CPU fault on a VRAM page vs munmap, with the copy engine and fault handler as threads',
  seedRef: 'drivers/gpu/drm/nouveau/nouveau_svm.c:nouveau_range_fault() / nouveau_svmm_invalidate_range_start(); "nouveau/dmem: Refactor nouveau_dmem_fault_copy_one()" (Alistair Popple, v2 6/8, 2022-09-28); drivers/gpu/drm/nouveau/nouveau_dmem.c:nouveau_dmem_migrate_to_ram()',
  bugSwitch: '(none)',
  expect: 'no violation (mainline race exploration)',
  maxSteps: 64,
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const m = gpuMachine(cfg, 2, 1);
    const { k, mm, drm, svmm, shadow } = m;
    const st = { gpu: 0, cpu: 0, munmap: 0 };
    const gpuShadow = fillChecksum(k, 0x77);
    return {
      k,
      roots: [drm, svmm, st],
      watch: [devicePrivatePfn(mm, ADDR)],
      threads: [
        { name: 'gpu-write', *body() { st.gpu = yield* drm.svm.gpuAccess(svmm, ADDR, 2, GPU_ACCESS_WRITE, null, 0x77); } },
        { name: 'cpu-read', *body() { st.cpu = yield* cpuAccess(mm, ADDR, false); } },
        { name: 'munmap', *body() { st.munmap = yield* vmMunmap(mm, ADDR + PAGE_SIZE, PAGE_SIZE); } },
        ...m.gpu,
      ],
      invariant: () => {
        for (const [a, pte] of svmm.pt) {
          if (pte.aper !== NOUVEAU_APER_HOST) continue; /* VRAM entries: checked at the end */
          if (k.pages.refcount[k.pages.folioPfn(pte.addr)] === 0) return `GPU PTE at 0x${a.toString(16)} names freed pfn 0x${pte.addr.toString(16)}`;
        }
        return null;
      },
      check: () => {
        if (st.cpu < 0) return `the CPU read got signal ${-st.cpu}`;
        if (st.munmap !== 0) return `munmap returned ${st.munmap}`;
        // The GPU write of page 1 may fail (-EFAULT) when munmap won; page 0 is mapped throughout.
        if (st.gpu < 0 && st.gpu !== -14) return `GPU write failed with ${st.gpu}`;
        // The GPU writes page 0 before it touches page 1, so page 0 holds its write whatever happened to page 1.
        const d = devicePrivatePfn(mm, ADDR);
        const c = d >= 0 ? drm.dmem.vram.checksum(drm.dmem.pageAddr(d)) : k.contents.checksum(translateAny(m, ADDR));
        if (c !== gpuShadow) return `lost GPU write: page 0 has checksum 0x${c.toString(16)} (its old data: 0x${shadow[0].toString(16)}), not the GPU's write (0x${gpuShadow.toString(16)})`;
        for (const [a, pte] of svmm.pt) {
          if (pte.aper === NOUVEAU_APER_HOST) {
            const cpuPfn = translateAny(m, a);
            if (cpuPfn !== pte.addr) return `GPU PTE at 0x${a.toString(16)} names pfn 0x${pte.addr.toString(16)}, the CPU maps 0x${cpuPfn.toString(16)}`;
          } else if (devicePrivatePfn(mm, a) < 0 || drm.dmem.pageAddr(devicePrivatePfn(mm, a)) !== pte.addr) {
            return `GPU PTE at 0x${a.toString(16)} names VRAM page ${pte.addr}, the CPU page table disagrees`;
          }
        }
        return null;
      },
    };
  },
};

/**
 * GPU write vs fork vs CPU read (mainline; no historical switch): page 0 in
 * VRAM, page 1 in system memory. Threads: a GPU write of both pages
 * (0x77), fork (dup_mmap: COW write-protection invalidates the GPU's
 * entries; the device-private entry becomes read-only in both mms), a CPU
 * read of page 0 in the parent, the copy engine and the fault handler.
 * The GPU mirrors the parent, so the parent must see the GPU's write of
 * both pages; the child sees, per page, either the data before the write
 * or the write (it shares what was written before the fork).
 */
export const nouveauGpuFork: Scenario = {
  name: 'nouveau-gpu-fork',
  description: 'GPU write faults vs fork (COW of device-private and anon pages) vs CPU fault, with the GPU threads',
  seedRef: 'nouveau_svm.c nouveau_svmm_invalidate_range_start; mm/memory.c copy_page_range COW invalidation',
  bugSwitch: '(none)',
  expect: 'HANG: a GPU write to VRAM made read-only by fork livelocks (mainline nouveau_svm_fault() replays; finding nouveau-gpu-write-readonly-vram-livelock)',
  maxSteps: 64,
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const m = gpuMachine(cfg, 2, 1);
    const { k, mm, drm, svmm, shadow } = m;
    const child = k.newMm();
    const st = { gpu: 0, cpu: 0, fork: 0 };
    const gpuShadow = fillChecksum(k, 0x77);
    const pageSum = (x: typeof mm, a: number): number => {
      const d = devicePrivatePfn(x, a);
      if (d >= 0) return drm.dmem.vram.checksum(drm.dmem.pageAddr(d));
      const pfn = translate(x, a, false);
      return pfn >= 0 ? k.contents.checksum(pfn) : -1;
    };
    return {
      k,
      roots: [drm, svmm, st, child],
      watch: [devicePrivatePfn(mm, ADDR)],
      threads: [
        { name: 'gpu-write', *body() { st.gpu = yield* drm.svm.gpuAccess(svmm, ADDR, 2, GPU_ACCESS_WRITE, null, 0x77); } },
        { name: 'fork', *body() { st.fork = yield* dupMmap(mm, child); } },
        { name: 'cpu-read', *body() { st.cpu = yield* cpuAccess(mm, ADDR, false); } },
        ...m.gpu,
      ],
      check: () => {
        // -EFAULT: a write fault was cancelled. (When fork made the VRAM
        // entry read-only first, mainline replays forever instead: the
        // explorer reports that HANG, docs/FINDINGS.md.)
        if (st.gpu < 0 && st.gpu !== -14) return `the GPU write failed with ${st.gpu}`;
        if (st.cpu < 0) return `the CPU read got signal ${-st.cpu}`;
        if (st.fork !== 0) return `fork returned ${st.fork}`;
        for (let i = 0; i < 2; i++) {
          const a = ADDR + i * PAGE_SIZE;
          const p = pageSum(mm, a);
          const want = st.gpu === -14 ? shadow[i] : gpuShadow;
          if (p !== want) return `parent page ${i} has checksum 0x${p.toString(16)}, want 0x${want.toString(16)} (GPU write ${st.gpu === -14 ? 'cancelled' : 'done'})`;
          const c = pageSum(child, a);
          if (c !== gpuShadow && c !== shadow[i]) return `child page ${i} has checksum 0x${c.toString(16)}: neither its data before the write nor the write`;
        }
        return null;
      },
    };
  },
};

function translateAny(m: { mm: Parameters<typeof translate>[0] }, a: number): number {
  return translate(m.mm, a, false);
}

/**
 * Large device folios (mainline; no historical switch): a 2 MiB THP moved
 * to VRAM as one device folio. Threads: a CPU read of page 100 (a
 * PMD-level fault: migrate_to_ram brings the whole folio back, a 512-page
 * copy in flight), a GPU write of pages 5-6 (0x77), munmap of the second
 * half (splits the PMD, device-private or not), the copy engine and the
 * fault handler. The check: pages 5 and 6 hold the GPU's write (or the
 * write was cancelled), the other pages of the first half their data.
 */
export const nouveauThpRace: Scenario = {
  name: 'nouveau-thp-race',
  description: 'a 2 MiB device folio: PMD-level CPU fault vs GPU write vs partial munmap, with the GPU threads',
  seedRef: 'nouveau_dmem.c large folios (after the seeds); mm/huge_memory.c device-private PMD split',
  bugSwitch: '(none)',
  expect: 'no violation (mainline race exploration)',
  maxSteps: 64,
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const k = smallMachine({ ramBytes: 16 << 20, thp: 'always', ...cfg });
    const base = ADDR; /* 2 MiB aligned */
    const { mm, vma } = anonMapping(k, HPAGE_NR);
    const drm = new NouveauDrm(k, { vramChunks: 2 });
    // Populate the THP by one write fault, then give each checked page its own data.
    populate(k, mm, base, 0x10);
    const shadow: number[] = [];
    for (const i of [0, 5, 6, 100, 255]) shadow[i] = k.contents.checksum(populate(k, mm, base + i * PAGE_SIZE, 0x40 + i));
    const svmm: NouveauSvmm = runSync(k.sched, drm.svm.svmmInit(mm, 0, 0));
    withMmapRead(k, mm, () => drm.dmem.migrateVma(svmm, vma, base, base + HPAGE_NR * PAGE_SIZE));
    const gpuShadow = fillChecksum(k, 0x77);
    const st = { gpu: 0, cpu: 0, munmap: 0 };
    const pageSum = (a: number): number => {
      const d = devicePrivatePfn(mm, a);
      if (d >= 0) return drm.dmem.vram.checksum(drm.dmem.pageAddr(d));
      const pmdD = devicePrivatePmdPfn(mm, a);
      if (pmdD >= 0) return drm.dmem.vram.checksum(drm.dmem.pageAddr(pmdD + ((a - base) / PAGE_SIZE)));
      const pfn = translate(mm, a, false);
      return pfn >= 0 ? k.contents.checksum(pfn) : -1;
    };
    return {
      k,
      roots: [drm, svmm, st],
      watch: [],
      threads: [
        { name: 'cpu-read', *body() { st.cpu = yield* cpuAccess(mm, base + 100 * PAGE_SIZE, false); } },
        { name: 'gpu-write', *body() { st.gpu = yield* drm.svm.gpuAccess(svmm, base + 5 * PAGE_SIZE, 2, GPU_ACCESS_WRITE, null, 0x77); } },
        { name: 'munmap', *body() { st.munmap = yield* vmMunmap(mm, base + 256 * PAGE_SIZE, 256 * PAGE_SIZE); } },
        ...drm.gpuThreads(othersDone(k)),
      ],
      check: () => {
        if (st.cpu < 0) return `the CPU read got signal ${-st.cpu}`;
        if (st.munmap !== 0) return `munmap returned ${st.munmap}`;
        if (st.gpu < 0 && st.gpu !== -14) return `the GPU write failed with ${st.gpu}`;
        for (const i of [0, 100, 255]) {
          const c = pageSum(base + i * PAGE_SIZE);
          if (c !== shadow[i]) return `data lost: page ${i} has checksum 0x${c.toString(16)}, the shadow copy 0x${shadow[i].toString(16)}`;
        }
        for (const i of [5, 6]) {
          const c = pageSum(base + i * PAGE_SIZE);
          const want = st.gpu === -14 ? c : gpuShadow;
          if (c !== want || (c !== gpuShadow && c !== shadow[i])) return `page ${i} has checksum 0x${c.toString(16)}: neither its data nor the GPU's write`;
        }
        return null;
      },
    };
  },
};

/**
 * SVM_BIND racing a GPU write to the pages it migrates (mainline; no
 * switch). Page 0 is in system memory and already mapped in the GPU's page
 * table (an earlier GPU read). Threads: nouveau_dmem_migrate_vma() of page
 * 0 to VRAM (under mmap_lock for read, as the ioctl), a GPU write of page 0
 * (0x77), the copy engine and the fault handler. The GPU write completes
 * in every interleaving, so page 0 must hold it at the end, wherever it
 * lives.
 */
export const nouveauBindVsGpuWrite: Scenario = {
  name: 'nouveau-bind-vs-gpu-write',
  description: 'SVM_BIND migrating a page to VRAM while the GPU writes it through its existing mapping',
  seedRef: 'nouveau_svm.c nouveau_svmm_invalidate_range_start (own MMU_NOTIFY_MIGRATE skipped); nouveau_dmem.c nouveau_dmem_migrate_chunk',
  bugSwitch: '(none)',
  expect: 'DATA: a GPU write lost (finding)',
  maxSteps: 48,
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const m = gpuMachine(cfg, 1, 0);
    const { k, mm, vma, drm, svmm } = m;
    runSync(k.sched, drm.svm.gpuAccess(svmm, ADDR, 1, GPU_ACCESS_READ, null));
    const gpuShadow = fillChecksum(k, 0x77);
    const st = { gpu: 0, bind: 0 };
    return {
      k,
      roots: [drm, svmm, st],
      watch: [translate(mm, ADDR, false)],
      threads: [
        { name: 'svm-bind', *body() {
          const s = k.sched;
          yield* mmapReadLock(mm);
          st.bind = yield* drm.dmem.migrateVma(svmm, vma, ADDR, ADDR + PAGE_SIZE);
          mm.mmapLock.readUnlock(s);
        } },
        { name: 'gpu-write', *body() { st.gpu = yield* drm.svm.gpuAccess(svmm, ADDR, 1, GPU_ACCESS_WRITE, null, 0x77); } },
        ...m.gpu,
      ],
      check: () => {
        if (st.gpu < 0) return `the GPU write failed with ${st.gpu}`;
        const d = devicePrivatePfn(mm, ADDR);
        const c = d >= 0 ? drm.dmem.vram.checksum(drm.dmem.pageAddr(d)) : k.contents.checksum(translate(mm, ADDR, false));
        if (c !== gpuShadow) return `lost GPU write: page 0 (${d >= 0 ? 'in VRAM' : 'in system memory'}) has checksum 0x${c.toString(16)}, not the GPU's write 0x${gpuShadow.toString(16)}`;
        return null;
      },
    };
  },
};

/**
 * GPU atomics vs CPU write vs fork (mainline; no switch): page 0 in system
 * memory. Threads: a GPU atomic on page 0 (make_device_exclusive(), then
 * a 0x77 fill through the atomic mapping), a CPU store of 0x55 over the
 * page, fork, and the GPU threads. Invariants: while the GPU holds an
 * atomic mapping the CPU cannot reach the page (its PTE is the
 * device-exclusive entry); every GPU host entry names a live page. The
 * check: the parent's page holds one of the two writes, whole.
 */
export const nouveauGpuAtomic: Scenario = gpuAtomicScenario('nouveau-gpu-atomic', { acceptForkEnomem: false });
/** The same with fork's -ENOMEM accepted: explores past that finding. */
export const nouveauGpuAtomicPastEnomem: Scenario = gpuAtomicScenario('nouveau-gpu-atomic-past-enomem', { acceptForkEnomem: true });

function gpuAtomicScenario(name: string, opts: { acceptForkEnomem: boolean }): Scenario {
  return {
  name,
  description: `GPU atomic (device-exclusive) vs CPU store vs fork, with the GPU threads${opts.acceptForkEnomem ? " (fork's -ENOMEM accepted)" : ''}`,
  seedRef: 'nouveau_svm.c nouveau_atomic_range_fault; mm/rmap.c make_device_exclusive; mm/memory.c copy_nonpresent_pte',
  bugSwitch: '(none)',
  expect: opts.acceptForkEnomem ? 'no violation (mainline race exploration)' : 'DATA: fork returned -ENOMEM (finding)',
  maxSteps: 64,
  setup(cfg: Partial<KernelConfig>): ScenarioRun {
    const m = gpuMachine(cfg, 1, 0);
    const { k, mm, drm, svmm } = m;
    const child = k.newMm();
    const st = { gpu: 0, cpu: 0, fork: 0 };
    const a77 = fillChecksum(k, 0x77);
    const a55 = fillChecksum(k, 0x55);
    return {
      k,
      roots: [drm, svmm, st, child],
      watch: [translate(mm, ADDR, false)],
      threads: [
        { name: 'gpu-atomic', *body() { st.gpu = yield* drm.svm.gpuAccess(svmm, ADDR, 1, GPU_ACCESS_ATOMIC, null, 0x77); } },
        { name: 'cpu-store', *body() { st.cpu = yield* cpuFill(k, mm, ADDR, 0x55); } },
        { name: 'fork', *body() { st.fork = yield* dupMmap(mm, child); } },
        ...m.gpu,
      ],
      invariant: () => {
        const pte = svmm.pt.get(ADDR);
        if (pte === undefined) return null;
        if (k.pages.refcount[k.pages.folioPfn(pte.addr)] === 0) return `GPU PTE names freed pfn 0x${pte.addr.toString(16)}`;
        if (pte.atomic && translate(mm, ADDR, false) >= 0) return 'the GPU holds an atomic mapping while the CPU can access the page';
        return null;
      },
      check: () => {
        if (st.gpu < 0 && st.gpu !== -14) return `the GPU atomic failed with ${st.gpu}`;
        if (st.cpu < 0) return `the CPU store got signal ${-st.cpu}`;
        if (st.fork === -12 && !opts.acceptForkEnomem) return 'fork returned -ENOMEM: copy_pte_range() met the device-exclusive entry while the GPU fault held its folio lock (try_restore_exclusive_pte() -EBUSY, turned into -ENOMEM by copy_pmd_range())';
        if (st.fork !== 0 && st.fork !== -12) return `fork returned ${st.fork}`;
        const pfn = exclusiveOrMappedPfn(mm, ADDR);
        const c = pfn >= 0 ? k.contents.checksum(pfn) : -1;
        if (c !== a55 && c !== a77) return `page 0 has checksum 0x${c.toString(16)}: neither the CPU's nor the GPU's write`;
        return null;
      },
    };
  },
  };
}

/** The page a present or device-exclusive PTE at addr names, or -1. */
function exclusiveOrMappedPfn(mm: Parameters<typeof translate>[0], addr: number): number {
  const pfn = mappedPfn(mm, addr);
  if (pfn >= 0) return pfn;
  const pt = pteTableOf(mm.pgd, addr);
  if (pt === null) return -1;
  const i = pteIndex(addr);
  return pteType(pt.f[i]) === T_DEVICE_EXCLUSIVE ? pt.v[i] : -1;
}

/** The device folio a device-private PMD entry at addr names (head pfn), or -1. */
function devicePrivatePmdPfn(mm: Parameters<typeof translate>[0], addr: number): number {
  const pmd = pmdTableOf(mm.pgd, addr, false);
  if (pmd === null) return -1;
  const i = pmdIndex(addr);
  return isDevicePrivateType(pteType(pmd.f[i])) ? pmd.v[i] : -1;
}

const HPAGE_NR = 512;

/** Nouveau scenarios with a historical switch (registered in SCENARIOS). */
export const NOUVEAU_SCENARIOS: ReadonlyArray<Scenario> = [nouveauReleaseWithoutEviction, nouveauFaultCopyOne];
/** Mainline race explorations without a switch (found by name, tested in test/nouveau.test.ts). */
export const NOUVEAU_RACE_SCENARIOS: ReadonlyArray<Scenario> = [nouveauGpuCpuMunmap, nouveauGpuFork, nouveauThpRace, nouveauFiniVsFault, nouveauBindVsGpuWrite, nouveauGpuAtomic, nouveauGpuAtomicPastEnomem];
