// SPDX-License-Identifier: GPL-2.0-only
/**
 * lib/test_hmm.c as a module of the simulated kernel: module init / exit
 * and the file operations of /dev/hmm_dmirror0..3.
 *
 *   testHmmInit(k)   hmm_dmirror_init(): devices 0 and 1 are
 *                    MEMORY_DEVICE_PRIVATE; with k.config.spm two special
 *                    purpose memory ranges are reserved above RAM (the
 *                    spm_addr_dev0/1 parameters) and devices 2 and 3 are
 *                    MEMORY_DEVICE_COHERENT. Each device gets its first
 *                    256 MiB chunk, then its /dev node.
 *   testHmmExit(k)   hmm_dmirror_exit(): remove the nodes and every chunk.
 */
import type { Kernel } from '../../kernel/kernel.js';
import { KernelBug } from '../../kernel/printk.js';
import { EINVAL, ENOMEM } from '../../kernel/errno.js';
import { type K, runSync } from '../../kernel/sched/sched.js';
import { type File, type FileOperations, registerChrdev, unregisterChrdev } from '../../kernel/fs/chardev.js';
import { type Vma } from '../../kernel/mm/mm_types.js';
import { PAGE_SIZE } from '../../kernel/mm/page.js';
import { GFP_KERNEL, __GFP_ZERO } from '../../kernel/mm/page_alloc.js';
import { folioPut } from '../../kernel/mm/folio.js';
import { requestFreeMemRegion } from '../../kernel/mm/memremap.js';
import { mmuIntervalNotifierInsert, mmuIntervalNotifierRemove } from '../../kernel/mm/mmu_notifier.js';
import { vmInsertPage } from '../../kernel/mm/vm_insert_page.js';
import {
  DEVMEM_CHUNK_SIZE, DMIRROR_NDEVICES, DmirrorDevice, TEST_HMM_DATA, TestHmm, testHmmModule, dmirrorAllocateChunk, dmirrorDeviceEvictChunk,
  dmirrorDeviceRemoveChunks,
} from './device.js';
import { Dmirror } from './mirror.js';
import { dmirrorDevmemFault } from './migrate.js';
import { dmirrorCheckCoherence } from './check.js';
import { dmirrorFopsUnlockedIoctl } from './ioctl.js';
import { HMM_DMIRROR_MEMORY_DEVICE_COHERENT, HMM_DMIRROR_MEMORY_DEVICE_PRIVATE } from './uapi.js';
import { mmapAssertWriteLocked } from '../../kernel/mm/mmap_lock.js';

export * from './uapi.js';
export { TestHmm, DmirrorDevice, DmirrorChunk } from './device.js';
export { Dmirror } from './mirror.js';

export { testHmmModule } from './device.js';

/** container_of(inode->i_cdev, struct dmirror_device, cdevice): the device of an open file. */
function deviceOfFile(file: File): DmirrorDevice {
  const mod = testHmmModule(file.kernel);
  const d = mod?.devices.find((x) => x.path === file.path);
  if (d === undefined) throw new KernelBug('BUG', `test_hmm: ${file.path} is not a dmirror device`);
  return d;
}

/**
 * dmirror_fops_open(inode, filp): allocate a mirror of current->mm with
 * an empty device page table and insert its interval notifier over the
 * whole address space. 0, -ENOMEM, or the insert error. (A kernel thread
 * has no mm: -EINVAL here, where the kernel would oops.)
 */
export function* dmirrorFopsOpen(file: File): K<number> {
  const mdevice = deviceOfFile(file);
  const mod = mdevice.mod;
  const mm = file.kernel.current.mm;
  if (mm === null) return -EINVAL;
  if (file.kernel.shouldFail('dmirror_fops_open')) return -ENOMEM; /* kzalloc(sizeof(*dmirror)) */
  const dmirror = new Dmirror(mod.nextMirrorId++, mdevice, mm);
  const ret = mmuIntervalNotifierInsert(dmirror.notifier);
  if (ret) return ret;
  mod.mirrors.set(dmirror.id, dmirror);
  file.privateData = dmirror;
  return 0;
}

/**
 * dmirror_fops_release(inode, filp): the last reference to the file is
 * gone. Remove the notifier, then evict every chunk of the device (closing
 * any fd of a device moves all of that device's pages back to system RAM,
 * for every process), then free the mirror (a later use of it through a
 * stale zone_device_data is a use-after-free).
 */
export function* dmirrorFopsRelease(file: File): K<void> {
  const dmirror = file.privateData as Dmirror;
  const mdevice = dmirror.mdevice;
  mmuIntervalNotifierRemove(dmirror.notifier);
  for (let i = 0; i < mdevice.devmemCount; i++) yield* dmirrorDeviceEvictChunk(mdevice.devmemChunks[i]);
  dmirror.pt.clear();
  mdevice.mod.mirrors.delete(dmirror.id);
  file.privateData = null;
}

/** vma_dummy_vm_ops: what mmap_region gives a file VMA before ->mmap (so it is not anonymous). */
const DMIRROR_VMA_OPS = { name: 'dmirror (vma_dummy_vm_ops)' };

/**
 * dmirror_fops_mmap(file, vma): back every page of the VMA with a zeroed
 * kernel page inserted with vm_insert_page() (which makes the VMA
 * VM_MIXEDMAP and takes its own reference; the driver drops its
 * allocation reference). -ENOMEM or vm_insert_page's error. Called with
 * mmap_lock held for write.
 */
export function dmirrorFopsMmap(file: File, vma: Vma): number {
  mmapAssertWriteLocked(vma.mm, 'dmirror_fops_mmap');
  const k = file.kernel;
  if (vma.ops === null) vma.ops = DMIRROR_VMA_OPS;
  for (let addr = vma.start; addr < vma.end; addr += PAGE_SIZE) {
    const page = k.buddy.alloc(0, GFP_KERNEL | __GFP_ZERO, 'dmirror_fops_mmap');
    if (page < 0) return -ENOMEM;
    const ret = vmInsertPage(vma, addr, page);
    if (ret) {
      folioPut(k, page);
      return ret;
    }
    folioPut(k, page);
  }
  return 0;
}

/** static const struct file_operations dmirror_fops */
export const dmirrorFops: FileOperations = {
  owner: 'test_hmm',
  open: dmirrorFopsOpen,
  release: dmirrorFopsRelease,
  unlockedIoctl: dmirrorFopsUnlockedIoctl,
  mmap: dmirrorFopsMmap,
};

/**
 * dmirror_device_init(mdevice, id): allocate the first chunk (all small
 * pages), then create the device node. 0 or -errno.
 */
function dmirrorDeviceInit(k: Kernel, mdevice: DmirrorDevice): number {
  const ret = runSync(k.sched, dmirrorAllocateChunk(mdevice, false, false));
  if (ret < 0) return ret;
  return registerChrdev(k, mdevice.path, dmirrorFops);
}

/** dmirror_device_remove(): delete the node, then (device release) remove every chunk. */
function dmirrorDeviceRemove(k: Kernel, mdevice: DmirrorDevice): void {
  unregisterChrdev(k, mdevice.path);
  runSync(k.sched, dmirrorDeviceRemoveChunks(mdevice));
}

/**
 * hmm_dmirror_init() / module_init: create the devices (0, 1 PRIVATE;
 * 2, 3 COHERENT when both SPM addresses are set, i.e. k.config.spm) and
 * log "HMM test module loaded. This is only for testing HMM.". Returns 0 or
 * -errno (-EEXIST if already loaded), undoing what was done.
 */
export function testHmmInit(k: Kernel): number {
  if (testHmmModule(k) !== null) return -17; /* -EEXIST: module already loaded */
  const mod = new TestHmm(k, dmirrorDevmemFault);
  if (k.config.spm) {
    /* The "special purpose memory" the module parameters point at: reserved above RAM. */
    mod.spmAddrDev0 = requestFreeMemRegion(k, DEVMEM_CHUNK_SIZE).start;
    mod.spmAddrDev1 = requestFreeMemRegion(k, DEVMEM_CHUNK_SIZE).start;
  }
  const types = [HMM_DMIRROR_MEMORY_DEVICE_PRIVATE, HMM_DMIRROR_MEMORY_DEVICE_PRIVATE];
  if (mod.spmAddrDev0 && mod.spmAddrDev1) types.push(HMM_DMIRROR_MEMORY_DEVICE_COHERENT, HMM_DMIRROR_MEMORY_DEVICE_COHERENT);
  k.driverData.set(TEST_HMM_DATA, mod);
  for (let id = 0; id < types.length && id < DMIRROR_NDEVICES; id++) {
    const mdevice = new DmirrorDevice(mod, id, types[id]);
    const ret = dmirrorDeviceInit(k, mdevice);
    if (ret) {
      for (const d of mod.devices) dmirrorDeviceRemove(k, d);
      runSync(k.sched, dmirrorDeviceRemoveChunks(mdevice));
      k.driverData.delete(TEST_HMM_DATA);
      return ret;
    }
    mod.devices.push(mdevice);
  }
  /* Checked mode: the mirrors' coherence with the CPU page tables (check.ts). */
  k.registerChecker(TEST_HMM_CHECKER, (_k, op) => dmirrorCheckCoherence(mod, op));
  k.printk.info('HMM test module loaded. This is only for testing HMM.');
  return 0;
}

/** hmm_dmirror_exit() / module_exit: remove every device and its chunks. */
export function testHmmExit(k: Kernel): void {
  const mod = testHmmModule(k);
  if (!mod) return;
  k.unregisterChecker(TEST_HMM_CHECKER);
  for (const d of mod.devices) dmirrorDeviceRemove(k, d);
  k.driverData.delete(TEST_HMM_DATA);
}

/** The name test_hmm's checked-mode invariant is registered under (k.checkers). */
export const TEST_HMM_CHECKER = 'test_hmm: dmirror mirrors coherent with the CPU page tables';
