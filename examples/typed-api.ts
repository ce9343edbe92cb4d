// SPDX-License-Identifier: GPL-2.0-only
/**
 * The typed public API, end to end (compiles with `tsc --strict`): boot a
 * machine, register a device-private driver of our own as a kernel module,
 * migrate a process's pages to device memory and back (by a CPU fault, and
 * by the driver), and check the bytes. Imports only the package's entry
 * points.
 */
import { bootMachine, Libc, MAP_ANONYMOUS, MAP_PRIVATE, NULL, PROT_READ, PROT_WRITE, type Process } from 'hmmsim';
import {
  DevPagemap, MEMORY_DEVICE_PRIVATE, MIGRATE_PFN_MIGRATE, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_SYSTEM,
  MigrateVma, PAGE_SIZE, VM_FAULT_OOM, VM_FAULT_SIGBUS, folioTrylock, memremapPages, migratePfn, migratePfnToPage,
  migrateVmaFinalize, migrateVmaPages, migrateVmaSetup, mpfnHas, requestFreeMemRegion, runSync, zoneDeviceFolioInit,
  type K, type Kernel, type KernelModule, type Vma, type VmFault,
} from 'hmmsim/kernel';

/** A device with 64 pages of device-private memory. */
class TinyGpu {
  readonly owner = { name: 'tinygpu' };
  readonly free: number[] = [];
  readonly pgmap: DevPagemap;
  faults = 0;

  constructor(readonly k: Kernel) {
    this.pgmap = new DevPagemap(MEMORY_DEVICE_PRIVATE, requestFreeMemRegion(k, 64 * PAGE_SIZE), {
      folioFree: (pfn: number) => {
        this.free.push(pfn);
      },
      migrateToRam: (vmf: VmFault) => this.migrateToRam(vmf),
    }, this.owner);
  }

  start(): number {
    const r = memremapPages(this.k, this.pgmap);
    if (r < 0) return r;
    for (let i = 0; i < this.pgmap.nrPages; i++) this.free.push(this.pgmap.firstPfn + i);
    return 0;
  }

  private fill(src: Float64Array, dst: Float64Array, n: number, alloc: () => number): boolean {
    for (let i = 0; i < n; i++) {
      if (!mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) continue;
      const d = alloc();
      if (d < 0) return false;
      const s = migratePfnToPage(src[i]);
      // The device's DMA engine moves the data: a CPU copy of a
      // device-private page would oops (it has no kernel direct map).
      if (s >= 0) this.k.contents.deviceCopy(d, s, 1);
      else this.k.contents.deviceZero(d, 1);
      dst[i] = migratePfn(d);
    }
    return true;
  }

  private devicePage(): number {
    const pfn = this.free.pop();
    if (pfn === undefined) return -1;
    zoneDeviceFolioInit(this.k, pfn, 0);
    return pfn;
  }

  private systemPage(): number {
    const pfn = this.k.buddy.alloc(0, 0, 'tinygpu');
    if (pfn >= 0) folioTrylock(this.k, pfn);
    return pfn;
  }

  /** The caller holds mmap_lock for read. Returns the migrated count or -errno. */
  *migrate(vma: Vma, start: number, npages: number, toDevice: boolean): K<number> {
    const src = new Float64Array(npages);
    const dst = new Float64Array(npages);
    const mv = new MigrateVma({
      vma, start, end: start + npages * PAGE_SIZE, src, dst, pgmapOwner: this.owner,
      flags: toDevice ? MIGRATE_VMA_SELECT_SYSTEM : MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
    });
    const r = yield* migrateVmaSetup(mv);
    if (r !== 0) return r;
    this.fill(src, dst, mv.npages, () => (toDevice ? this.devicePage() : this.systemPage()));
    yield* migrateVmaPages(mv);
    let n = 0;
    for (let i = 0; i < mv.npages; i++) if (mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) n++;
    yield* migrateVmaFinalize(mv);
    return n;
  }

  *migrateToRam(vmf: VmFault): K<number> {
    this.faults++;
    const start = vmf.address - (vmf.address % PAGE_SIZE);
    const src = new Float64Array(1);
    const dst = new Float64Array(1);
    const mv = new MigrateVma({
      vma: vmf.vma, start, end: start + PAGE_SIZE, src, dst, pgmapOwner: this.owner,
      flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE, faultPage: vmf.page,
    });
    if ((yield* migrateVmaSetup(mv)) !== 0) return VM_FAULT_SIGBUS;
    const ok = this.fill(src, dst, mv.npages, () => this.systemPage());
    yield* migrateVmaPages(mv);
    yield* migrateVmaFinalize(mv);
    return ok ? 0 : VM_FAULT_OOM;
  }
}

let gpu: TinyGpu | null = null;
const tinygpu: KernelModule = {
  name: 'tinygpu',
  init(k: Kernel): number {
    gpu = new TinyGpu(k);
    return gpu.start();
  },
};

/** Run the driver's migration of [addr, addr + npages pages) with mmap_lock held for read. */
function driverMigrate(p: Process, addr: number, npages: number, toDevice: boolean): number {
  const mm = p.mm!;
  const k = p.kernel;
  return runSync(k.sched, (function* (): K<number> {
    yield* mm.mmapLock.readLock(k.sched);
    try {
      return yield* gpu!.migrate(mm.vmaLookup(addr)!, addr, npages, toDevice);
    } finally {
      mm.mmapLock.readUnlock(k.sched);
    }
  })());
}

const sys = bootMachine({ config: { ramBytes: 64 << 20, checked: true }, modules: [{ name: 'tinygpu', module: tinygpu }] });
const p = sys.spawn('typed');
const lc = new Libc(p);
const N = 8;
const buf = lc.mmap(NULL, N * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
for (let i = 0; i < N; i++) lc.store32(buf + i * PAGE_SIZE, 1000 + i);

const toDev = driverMigrate(p, buf, N, true);
const onDevice = gpu!.pgmap.nrPages - gpu!.free.length;
const viaFault = lc.load32(buf + 2 * PAGE_SIZE); // a CPU fault: ->migrate_to_ram()
const toRam = driverMigrate(p, buf, N, false); // the rest, by the driver
let ok = toDev === N && onDevice === N && viaFault === 1002 && gpu!.faults === 1 && toRam === N - 1;
for (let i = 0; i < N; i++) ok &&= lc.load32(buf + i * PAGE_SIZE) === 1000 + i;
ok &&= gpu!.free.length === gpu!.pgmap.nrPages;
console.log(`typed-api: to device ${toDev}, by fault ${gpu!.faults}, back by driver ${toRam}, device pages free ${gpu!.free.length}: ${ok ? 'PASS' : 'FAIL'}`);
process.exitCode = ok ? 0 : 1;
