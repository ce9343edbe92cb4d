// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim/kernel`: what a kernel module (a device driver) may use — the
 * simulated kernel's API, under the kernel's names in camelCase
 * (`migrate_vma_setup()` is `migrateVmaSetup()`).
 *
 * A driver is a {@link KernelModule} (`init(k)` / `exit(k)`), written the
 * way src/drivers/testdrv/testdrv.ts is: ZONE_DEVICE pagemaps
 * ({@link DevPagemap}, {@link memremapPages}), device page allocation
 * ({@link zoneDeviceFolioInit}), `->migrate_to_ram()` and `->folio_free()`,
 * migration ({@link MigrateVma}, {@link migrateVmaSetup},
 * {@link migrateDeviceRange}), mirroring ({@link HmmRange},
 * {@link hmmRangeFault}, MMU interval notifiers), character devices
 * ({@link registerChrdev}) and user copies ({@link copyFromUser}).
 *
 * Kernel paths that can block are generators (`K<T>`): call them with
 * `yield*` from another kernel path, or run one to completion with
 * {@link runSync}.
 *
 * @module hmmsim/kernel
 */
export { Kernel, type VmStat } from './kernel.js';
export {
  type KernelConfig, type HistoricalSwitches, type ThpMode, type ContentMode, HISTORICAL_SWITCH_NAMES, defaultConfig,
  defaultHistorical, applyConfigSetting,
} from './config.js';
export { type KernelModule, loadModule, unloadModule } from './module.js';
export { KernelBug, Printk, type BugKind, type Warning, type LogLine } from './printk.js';
export * from './errno.js';

/* scheduling and locks */
export { type K, Sched, runSync, waitUntil, type Strategy, RandomStrategy, type Task, type TraceStep } from './sched/sched.js';
export { Mutex, Spinlock, RwSem } from './sched/locks.js';

/* struct page, folios, allocation */
export {
  PAGE_SHIFT, PAGE_SIZE, HPAGE_PMD_ORDER, HPAGE_PMD_NR, HPAGE_PMD_SIZE, PMD_SIZE, PUD_SIZE, PG_locked, PG_lru, PG_anon,
  PG_head, PG_tail, PG_dirty, PG_uptodate, FLAG_NAMES, PageArrays,
} from './mm/page.js';
export { GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_TRANSHUGE, __GFP_ZERO, __GFP_NOFAIL, __GFP_NOWARN } from './mm/page_alloc.js';
export {
  folioGet, folioTryGet, folioRefCount, folioPut, folioTrylock, folioLock, folioUnlock, folioTestLocked, folioTestAnon,
  folioTestLarge, folioMaybeDmaPinned,
} from './mm/folio.js';
export type { PageContents } from './mm/contents.js';

/* address spaces */
export { MmStruct, Vma, type VmFault, type VmOps, VM_READ, VM_WRITE, VM_EXEC, VM_SHARED, VM_GROWSDOWN, VM_HUGETLB } from './mm/mm_types.js';
export { VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_FAULT_RETRY, VM_FAULT_ERROR, FAULT_FLAG_WRITE, handleMmFault } from './mm/memory.js';
export { copyFromUser, copyToUser, clearUser } from './uaccess.js';

/* ZONE_DEVICE */
export {
  MEMORY_DEVICE_PRIVATE, MEMORY_DEVICE_COHERENT, type MemoryType, type DevPagemapOps, type PhysRange, DevPagemap,
  requestFreeMemRegion, memremapPages, memunmapPages, zoneDeviceFolioInit, zoneDevicePageInit, isDevicePrivatePage,
  isDeviceCoherentPage, pagePgmap,
} from './mm/memremap.js';

/* migration */
export {
  MIGRATE_PFN_VALID, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_WRITE, MIGRATE_PFN_COMPOUND, MIGRATE_PFN_SHIFT,
  MIGRATE_VMA_SELECT_SYSTEM, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_COMPOUND, migratePfn, migratePfnToPage, mpfnHas, mpfnSet, mpfnClear, mpfnFlags, mpfnPfn, mpfnMake, mpfnOrder, MigrateVma, type MigrateVmaArgs, MigrateVmaState, migrateVmaSetup, migrateVmaPages,
  migrateVmaFinalize, migrateDeviceRange, migrateDevicePfns, migrateDevicePages, migrateDeviceFinalize,
} from './mm/migrate_device.js';

/* mirroring */
export {
  HMM_PFN_VALID, HMM_PFN_WRITE, HMM_PFN_ERROR, HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE, HMM_PFN_FLAGS, HMM_PFN_ORDER_SHIFT,
  hmmPfnToPfn, hmmPfnToMapOrder, HmmRange, hmmRangeFault,
} from './mm/hmm.js';
export {
  MMU_NOTIFY_UNMAP, MMU_NOTIFY_CLEAR, MMU_NOTIFY_PROTECTION_VMA, MMU_NOTIFY_PROTECTION_PAGE, MMU_NOTIFY_SOFT_DIRTY,
  MMU_NOTIFY_RELEASE, MMU_NOTIFY_MIGRATE, MMU_NOTIFY_EXCLUSIVE, MMU_NOTIFY_EVENT_NAMES, type MmuNotifierRange,
  type MmuIntervalNotifierOps, MmuIntervalNotifier, type MmuNotifierOps, mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove, mmuIntervalReadBegin, mmuIntervalReadRetry, mmuIntervalSetSeq, mmuNotifierRegister,
  mmuNotifierUnregister, mmuNotifierRangeBlockable,
} from './mm/mmu_notifier.js';
export { makeDeviceExclusive } from './mm/device_exclusive.js';
export {
  FOLL_WRITE, FOLL_GET, FOLL_LONGTERM, FOLL_PIN, FOLL_FORCE, getUserPages, getUserPagesFast, pinUserPages,
  pinUserPagesFast, unpinUserPage, unpinUserPages, putPage,
} from './mm/gup.js';

/* files */
export {
  File, type FileOperations, registerChrdev, unregisterChrdev, O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC,
  O_TMPFILE,
} from './fs/chardev.js';
