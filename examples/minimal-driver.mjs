// SPDX-License-Identifier: GPL-2.0-only
/**
 * A minimal device-private memory driver, written against `hmmsim/kernel`
 * only: the README's "Writing a driver against the model", runnable.
 *
 *   hmmsim selftest --driver examples/minimal-driver.mjs   # loaded into every case's machine
 *   hmmsim run --driver examples/minimal-driver.mjs prog.mjs
 *
 * The device has 512 pages of MEMORY_DEVICE_PRIVATE memory and a character
 * device /dev/mydev with one ioctl, MYDEV_MIGRATE (arg: the user address of
 * `struct { u64 addr; u64 npages; }`), which moves a range of the calling
 * process into device memory with migrate_vma_setup/pages/finalize. A CPU
 * access to a moved page faults into ->migrate_to_ram(), which brings that
 * page back. module_exit evicts every device page with
 * migrate_device_range() before memunmap_pages(), as a driver must.
 */
import {
  DevPagemap, MEMORY_DEVICE_PRIVATE, requestFreeMemRegion, memremapPages, memunmapPages, zoneDeviceFolioInit,
  MigrateVma, migrateVmaSetup, migrateVmaPages, migrateVmaFinalize, migrateDeviceRange, migrateDevicePages,
  migrateDeviceFinalize, migratePfn, migratePfnToPage, mpfnHas, MIGRATE_PFN_MIGRATE, MIGRATE_VMA_SELECT_SYSTEM,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE, registerChrdev, unregisterChrdev, copyFromUser, folioTrylock, runSync,
  PAGE_SIZE, VM_FAULT_SIGBUS, VM_FAULT_OOM, __GFP_NOFAIL, EINVAL, ENOTTY, ENOMEM, EFAULT,
} from 'hmmsim/kernel';

export const name = 'mydev';
export const MYDEV_PATH = '/dev/mydev';
/** _IOWR('M', 1, struct mydev_migrate) */
export const MYDEV_MIGRATE = 0xc0104d01;
const NPAGES = 512;

/** One device: its pagemap and free list. All state is on this object (no module-level state). */
export class MyDev {
  /** @param {import('hmmsim/kernel').Kernel} k */
  constructor(k) {
    this.k = k;
    this.owner = { name };
    /** @type {number[]} free device pfns */
    this.free = [];
    this.stat = { toDevice: 0, toRam: 0 };
    this.pgmap = new DevPagemap(MEMORY_DEVICE_PRIVATE, requestFreeMemRegion(k, NPAGES * PAGE_SIZE), {
      folioFree: (pfn) => this.free.push(pfn), // ->folio_free(): the last reference is gone
      migrateToRam: (vmf) => this.migrateToRam(vmf), // ->migrate_to_ram(): the CPU touched a device page
    }, this.owner);
  }

  /** memremap_pages() and the free list: 0 or -errno. */
  start() {
    const r = memremapPages(this.k, this.pgmap);
    if (r < 0) return r;
    for (let i = NPAGES - 1; i >= 0; i--) this.free.push(this.pgmap.firstPfn + i);
    return 0;
  }

  /** A device page, zeroed, locked, with its pgmap reference (zone_device_folio_init), or -1. */
  allocPage() {
    const pfn = this.free.pop();
    if (pfn === undefined) return -1;
    zoneDeviceFolioInit(this.k, pfn, 0);
    // Device-private memory has no kernel direct map: the device clears it
    // (k.contents.deviceZero stands in for the device's own engine).
    this.k.contents.deviceZero(pfn, 1);
    return pfn;
  }

  /** A locked system page for data coming back, or -1. */
  allocSystemPage(flags = 0) {
    const pfn = this.k.buddy.alloc(0, flags, name);
    if (pfn >= 0) folioTrylock(this.k, pfn);
    return pfn;
  }

  /** Fill dst for the MIGRATE entries of src with pages from alloc(), copying the data ("DMA"). */
  copy(src, dst, n, alloc) {
    for (let i = 0; i < n; i++) {
      if (!mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) continue;
      const d = alloc();
      if (d < 0) return -ENOMEM;
      const s = migratePfnToPage(src[i]);
      // The device's DMA engine moves the data (a CPU copy of a
      // device-private page would oops: it has no direct map).
      if (s >= 0) this.k.contents.deviceCopy(d, s, 1);
      dst[i] = migratePfn(d);
    }
    return 0;
  }

  /**
   * Move [start, start + npages pages) of vma to device memory. The caller
   * holds mmap_lock for read. Returns the pages moved or -errno.
   * @returns {import('hmmsim/kernel').K<number>}
   */
  *migrateToDevice(vma, start, npages) {
    const src = new Float64Array(npages);
    const dst = new Float64Array(npages);
    const mv = new MigrateVma({ vma, start, end: start + npages * PAGE_SIZE, src, dst, flags: MIGRATE_VMA_SELECT_SYSTEM, pgmapOwner: this.owner });
    const r = yield* migrateVmaSetup(mv);
    if (r !== 0) return r;
    this.copy(src, dst, mv.npages, () => this.allocPage());
    yield* migrateVmaPages(mv);
    let moved = 0;
    for (let i = 0; i < mv.npages; i++) if (mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) moved++;
    yield* migrateVmaFinalize(mv);
    this.stat.toDevice += moved;
    return moved;
  }

  /**
   * ->migrate_to_ram(vmf): with mmap_lock held for read and vmf.page locked
   * and referenced by the fault; the faulting page goes back to RAM.
   * @returns {import('hmmsim/kernel').K<number>}
   */
  *migrateToRam(vmf) {
    const start = vmf.address - (vmf.address % PAGE_SIZE);
    const src = new Float64Array(1);
    const dst = new Float64Array(1);
    const mv = new MigrateVma({
      vma: vmf.vma, start, end: start + PAGE_SIZE, src, dst,
      flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE, pgmapOwner: this.owner, faultPage: vmf.page,
    });
    if ((yield* migrateVmaSetup(mv)) !== 0) return VM_FAULT_SIGBUS;
    const ret = this.copy(src, dst, mv.npages, () => this.allocSystemPage()) < 0 ? VM_FAULT_OOM : 0;
    yield* migrateVmaPages(mv);
    yield* migrateVmaFinalize(mv);
    if (ret === 0) this.stat.toRam++;
    return ret;
  }

  /** ->unlocked_ioctl(file, cmd, arg) @returns {import('hmmsim/kernel').K<number>} */
  *ioctl(file, cmd, arg) {
    if (cmd !== MYDEV_MIGRATE) return -ENOTTY;
    const mm = this.k.current.mm;
    if (mm === null) return -EINVAL;
    const buf = new Uint8Array(16);
    if ((yield* copyFromUser(mm, buf, arg, 16)) !== 0) return -EFAULT;
    const dv = new DataView(buf.buffer);
    const addr = Number(dv.getBigUint64(0, true));
    const npages = Number(dv.getBigUint64(8, true));
    if (addr % PAGE_SIZE !== 0 || npages <= 0 || npages > NPAGES) return -EINVAL;
    const s = this.k.sched;
    yield* mm.mmapLock.readLock(s);
    try {
      const vma = mm.findVma(addr);
      if (vma === null || vma.start > addr || vma.end < addr + npages * PAGE_SIZE) return -EINVAL;
      return yield* this.migrateToDevice(vma, addr, npages);
    } finally {
      mm.mmapLock.readUnlock(s);
    }
  }

  /** Evict every allocated device page to RAM (migrate_device_range), then memunmap_pages(). */
  *release() {
    const n = this.pgmap.nrPages;
    const src = new Float64Array(n);
    const dst = new Float64Array(n);
    yield* migrateDeviceRange(this.k, src, this.pgmap.firstPfn, n);
    this.copy(src, dst, n, () => this.allocSystemPage(__GFP_NOFAIL));
    yield* migrateDevicePages(this.k, src, dst, n);
    yield* migrateDeviceFinalize(this.k, src, dst, n);
    yield* memunmapPages(this.k, this.pgmap);
  }
}

/**
 * Register /dev/mydev for `dev` on its kernel: the file operations call the
 * device's ioctl. Returns 0 or -errno.
 */
export function registerDevice(dev) {
  return registerChrdev(dev.k, MYDEV_PATH, { owner: name, unlockedIoctl: (file, cmd, arg) => dev.ioctl(file, cmd, arg) });
}

/** Each machine's device, keyed by the machine (as lib/test_hmm.c's devices hang off the module). */
const devices = new WeakMap();

/** module_init: 0 or -errno. */
export function init(k) {
  const dev = new MyDev(k);
  const r = dev.start();
  if (r < 0) return r;
  const c = registerDevice(dev);
  if (c < 0) return c;
  devices.set(k, dev);
  return 0;
}

/** module_exit */
export function exit(k) {
  const dev = devices.get(k);
  if (dev === undefined) return;
  unregisterChrdev(k, MYDEV_PATH);
  runSync(k.sched, dev.release());
  devices.delete(k);
}

/** The MyDev init() made on machine k, or undefined. */
export function loadedDevice(k) {
  return devices.get(k);
}
