// SPDX-License-Identifier: GPL-2.0-only
/**
 * Migration between system memory and the dmirror device:
 * HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS and the CPU fault
 * on a device-private page (pgmap->ops->migrate_to_ram).
 *
 * Every path follows the three-step migrate_vma protocol with mmap_lock
 * held for read by the caller (the ioctl or the fault handler): setup ->
 * driver allocates, locks and copies -> migrate_vma_pages -> driver maps ->
 * migrate_vma_finalize.
 */
import { chargeDeviceCopy } from '../../kernel/cost/charges.js';
import type { K } from '../../kernel/sched/sched.js';
import { KernelBug } from '../../kernel/printk.js';
import { EFAULT, EINVAL, ENOMEM } from '../../kernel/errno.js';
import { HPAGE_PMD_NR, PAGE_SIZE } from '../../kernel/mm/page.js';
import { GFP_HIGHUSER_MOVABLE, GFP_TRANSHUGE } from '../../kernel/mm/page_alloc.js';
import { folioLockQuick, folioPut, folioUnlock } from '../../kernel/mm/folio.js';
import { isDeviceCoherentPage, isDevicePrivatePage } from '../../kernel/mm/memremap.js';
import { VM_READ, VM_WRITE, type VmFault } from '../../kernel/mm/mm_types.js';
import { VM_FAULT_OOM, VM_FAULT_SIGBUS } from '../../kernel/mm/memory.js';
import {
  MIGRATE_PFN_COMPOUND, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_VALID, MIGRATE_PFN_WRITE, MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_SYSTEM, MigrateVma,
  migratePfn, migratePfnToPage, migrateVmaFinalize, migrateVmaPages, migrateVmaSetup, mpfnHas,
} from '../../kernel/mm/migrate_device.js';
import { mpfnClear, mpfnSet, mpfnFlags } from '../../kernel/mm/migrate_pfn.js';
import { copyToUser } from '../../kernel/uaccess.js';
import {
  DPT_XA_TAG_WRITE, type TestHmm, backingPage, dmirrorDevmemAllocPage, dmirrorDevmemAllocPageNoWait, ALLOC_MUST_SLEEP,
} from './device.js';
import { type Dmirror, dmirrorDoUpdate, mmgetNotZero, mmput, ptEntry } from './mirror.js';
import { cmdRange, dmirrorReturnMigrated } from './fault.js';
import { HMM_DMIRROR_FLAG_FAIL_ALLOC, HMM_DMIRROR_MEMORY_DEVICE_PRIVATE, type HmmDmirrorCmd } from './uapi.js';
import { mmapAssertLocked, mmapReadLock } from '../../kernel/mm/mmap_lock.js';
import { mutexLock } from '../../kernel/sched/locks.js';

/** PTRS_PER_PTE: the batch of MIGRATE_TO_DEV / MIGRATE_TO_SYS. */
const PTRS_PER_PTE = 512;

/** dmirror_select_device(): the MIGRATE_VMA_SELECT_* bit for the device's memory type. */
export function dmirrorSelectDevice(dmirror: Dmirror): number {
  return dmirror.mdevice.zoneDeviceType === HMM_DMIRROR_MEMORY_DEVICE_PRIVATE ? MIGRATE_VMA_SELECT_DEVICE_PRIVATE : MIGRATE_VMA_SELECT_DEVICE_COHERENT;
}

/** Test-and-clear HMM_DMIRROR_FLAG_FAIL_ALLOC: true if this allocation must fail. */
function takeFailAlloc(dmirror: Dmirror): boolean {
  if (!(dmirror.flags & HMM_DMIRROR_FLAG_FAIL_ALLOC)) return false;
  dmirror.flags &= ~HMM_DMIRROR_FLAG_FAIL_ALLOC;
  return true;
}

/**
 * dmirror_migrate_alloc_and_copy(args, dmirror): for each src entry with
 * MIGRATE allocate a device page (a device folio for COMPOUND entries),
 * point its backing page at the mirror, copy the source (or clear, for a
 * hole / zero page) and set dst = migrate_pfn(dpage) | (src & WRITE)
 * (| COMPOUND); with config.fixes.dmirror_devmem_fix a hole or zero page
 * in a VM_WRITE VMA gets WRITE too. A device page as source is a WARN and is skipped. With
 * HMM_DMIRROR_FLAG_FAIL_ALLOC the first allocation fails (flag cleared).
 * A failed small allocation leaves the page unmigrated; a failed large one
 * falls back to HPAGE_PMD_NR (or folio_nr_pages) small pages with dst
 * entries without COMPOUND, which makes the core split the source THP.
 * Caller holds mmap_lock for read, between migrate_vma_setup and
 * migrate_vma_pages. May sleep (chunk allocation).
 */
export function* dmirrorMigrateAllocAndCopy(args: MigrateVma, dmirror: Dmirror): K<void> {
  mmapAssertLocked(args.vma.mm, 'dmirror_migrate_alloc_and_copy');
  const k = dmirror.k;
  const p = k.pages;
  const src = args.src;
  const dst = args.dst;
  let i = 0;
  for (let addr = args.start; addr < args.end;) {
    const sv = src[i];
    const isLarge = mpfnHas(sv, MIGRATE_PFN_COMPOUND);
    let write = mpfnHas(sv, MIGRATE_PFN_WRITE) ? MIGRATE_PFN_WRITE : 0;
    if (!mpfnHas(sv, MIGRATE_PFN_MIGRATE)) {
      i++;
      addr += PAGE_SIZE;
      continue;
    }
    /* spage is -1 (NULL) for an unallocated pte_none() or the zero page. */
    const spage = migratePfnToPage(sv);
    /*
     * Mainline takes WRITE from the source entry only, which a hole or the
     * zero page never has, while migrate_vma_insert_page() makes the new
     * device-private entry writable in a VM_WRITE VMA: the mirror maps the
     * page read-only and a device write refaults (docs/FINDINGS.md). The
     * fix restores 6.1's condition.
     */
    if (spage < 0 && k.config.fixes.dmirror_devmem_fix && (args.vma.flags & VM_WRITE)) write = MIGRATE_PFN_WRITE;
    if (spage >= 0 && p.pgmap[spage] !== 0) {
      k.printk.warn(`page already in device spage pfn: 0x${spage.toString(16)}`, k.dumpPage(spage, 'dmirror_migrate_alloc_and_copy'));
      i++;
      addr += PAGE_SIZE;
      continue;
    }
    let dpage: number;
    if (takeFailAlloc(dmirror)) dpage = -1;
    else {
      dpage = dmirrorDevmemAllocPageNoWait(dmirror, isLarge);
      if (dpage === ALLOC_MUST_SLEEP) dpage = yield* dmirrorDevmemAllocPage(dmirror, isLarge);
    }
    if (dpage < 0) {
      if (!isLarge) {
        i++;
        addr += PAGE_SIZE;
        continue;
      }
      const spfn = spage; /* read only when spage >= 0 */
      const nr = spage < 0 ? HPAGE_PMD_NR : p.folioNr(spage);
      for (let j = 0; j < nr && addr < args.end; j++) {
        let dp = dmirrorDevmemAllocPageNoWait(dmirror, false);
        if (dp === ALLOC_MUST_SLEEP) dp = yield* dmirrorDevmemAllocPage(dmirror, false);
        /*
         * Mainline has no NULL check here: BACKING_PAGE(NULL) reads the
         * flags of a NULL struct page (is_device_private_page()): "BUG:
         * kernel NULL pointer dereference" in dmirror_migrate_alloc_and_copy,
         * the task is killed with the migration half done (docs/FINDINGS.md).
         */
        if (dp < 0) {
          const state = 'RIP: dmirror_migrate_alloc_and_copy: rpage = BACKING_PAGE(dpage) with dpage == NULL (dmirror_devmem_alloc_page(dmirror, false) failed in the small-page fallback)';
          k.printk.printk('err', `BUG: kernel NULL pointer dereference, address: 0000000000000000\n${state}`);
          throw new KernelBug('OOPS', 'BUG: kernel NULL pointer dereference', state);
        }
        const rp = backingPage(k, dp);
        p.zdd[rp] = dmirror.id;
        dst[i] = write ? mpfnSet(migratePfn(dp), write) : migratePfn(dp);
        if (spage >= 0) k.contents.copy(rp, spfn + j);
        else k.contents.zero(rp);
        if (k.clock !== null && spage >= 0) chargeDeviceCopy(k, 1, 'dmirror copy to device');
        i++;
        addr += PAGE_SIZE;
      }
      continue;
    }
    const rpage = backingPage(k, dpage);
    /* The backing page holds the pointer to the mirror (for the CPU fault path). */
    p.zdd[rpage] = dmirror.id;
    dst[i] = write ? mpfnSet(migratePfn(dpage), write) : migratePfn(dpage);
    if (isLarge) {
      dst[i] = mpfnSet(dst[i], MIGRATE_PFN_COMPOUND);
      if (p.order[dpage] !== 0) {
        const nr = p.folioNr(dpage);
        if (spage >= 0) k.contents.copyRange(rpage, spage, nr);
        else for (let j = 0; j < nr; j++) k.contents.zero(rpage + j);
        if (k.clock !== null && spage >= 0) chargeDeviceCopy(k, nr, 'dmirror copy to device');
        i += nr;
        addr += nr * PAGE_SIZE;
        continue;
      }
    }
    if (spage >= 0) k.contents.copy(rpage, spage);
    else k.contents.zero(rpage);
    if (k.clock !== null && spage >= 0) chargeDeviceCopy(k, 1, 'dmirror copy to device');
    i++;
    addr += PAGE_SIZE;
  }
}

/**
 * dmirror_migrate_finalize_and_map(args, dmirror): after migrate_vma_pages,
 * store every migrated page in the device page table - the backing page
 * for PRIVATE, the device page for COHERENT - tagged WRITE if dst has
 * MIGRATE_PFN_WRITE; a COMPOUND dst maps all its pages. Takes
 * dmirror->mutex. Returns 0, or xa_store()'s -ENOMEM at the first store
 * that fails (the rest of the range is left as it was).
 */
export function* dmirrorMigrateFinalizeAndMap(args: MigrateVma, dmirror: Dmirror): K<number> {
  const k = dmirror.k;
  const p = k.pages;
  const s = k.sched;
  const src = args.src;
  const dst = args.dst;
  const startPfn = Math.floor(args.start / PAGE_SIZE);
  const endPfn = Math.floor(args.end / PAGE_SIZE);
  yield* mutexLock(s, dmirror.mutex);
  for (let pfn = startPfn, i = 0; pfn < endPfn; pfn++, i++) {
    if (!mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) continue;
    const dpage = migratePfnToPage(dst[i]);
    if (dpage < 0) continue;
    const nr = mpfnHas(dst[i], MIGRATE_PFN_COMPOUND) ? p.folioNr(dpage) : 1;
    if (endPfn < startPfn + nr) k.printk.warn('dmirror_migrate_finalize_and_map: WARN_ON_ONCE(end_pfn < start_pfn + nr)');
    const rpage = backingPage(k, dpage);
    if (p.folioNr(rpage) !== nr) k.printk.warn('dmirror_migrate_finalize_and_map: VM_WARN_ON(folio_nr_pages(page_folio(rpage)) != nr)', k.dumpPage(rpage));
    const rhead = p.folioPfn(rpage);
    const tag = mpfnHas(dst[i], MIGRATE_PFN_WRITE) ? DPT_XA_TAG_WRITE : 0;
    for (let j = 0; j < nr; j++) {
      if (k.failInject.armed && dmirror.pt.get(pfn + j) === undefined && k.shouldFail('xa_store')) {
        // xa_is_err(entry): unlock and return xa_err() (the caller ignores it,
        // as dmirror_migrate_to_device does: the page migrated but is not
        // mirrored). Entries of the rest of the range that an earlier
        // HMM_DMIRROR_READ stored still point at the migrated system pages,
        // and this mirror skipped the MMU_NOTIFY_MIGRATE invalidation
        // (docs/FINDINGS.md). config.fixes.dmirror_devmem_fix erases them
        // (xa_erase allocates nothing): the next device access refaults.
        if (k.config.fixes.dmirror_devmem_fix) dmirrorDoUpdate(dmirror, (pfn + j) * PAGE_SIZE, args.end - PAGE_SIZE);
        dmirror.mutex.unlock(s);
        return -ENOMEM;
      }
      dmirror.pt.set(pfn + j, ptEntry(rhead + j, tag));
    }
  }
  dmirror.mutex.unlock(s);
  return 0;
}

/**
 * dmirror_migrate_to_device(dmirror, cmd) (HMM_DMIRROR_MIGRATE_TO_DEV):
 * under mmap_read_lock, in batches of up to PTRS_PER_PTE pages clipped to
 * the VMA: migrate_vma with SELECT_SYSTEM | SELECT_COMPOUND, owner = the
 * device. Then read the whole range through the mirror into cmd.ptr: a
 * page that did not migrate (shared anon memory, a page of another device)
 * has no pt entry -> -ENOENT. cmd.cpages = pages read.
 * Errors: -EINVAL (mm gone, no VMA or a VMA without VM_READ, setup), -ENOENT,
 * -EFAULT (copy to user), -ENOMEM (bounce).
 */
export function* dmirrorMigrateToDevice(dmirror: Dmirror, cmd: HmmDmirrorCmd): K<number> {
  const r = cmdRange(cmd);
  if (r === null) return -EINVAL;
  const ret = yield* dmirrorMigrateBatches(dmirror, r.start, r.end, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND, function* (args) {
    yield* dmirrorMigrateAllocAndCopy(args, dmirror);
    yield* migrateVmaPages(args);
    yield* dmirrorMigrateFinalizeAndMap(args, dmirror);
    yield* migrateVmaFinalize(args);
    return 0;
  });
  if (ret) return ret;

  /* Return the migrated data for verification (only pages in device memory). */
  return yield* dmirrorReturnMigrated(dmirror, cmd, r.start, r.end, r.size);
}

/**
 * The batch walk both migrate commands share: take a reference on the mm
 * (-EINVAL if it is gone) and mmap_read_lock, then for each batch of up to
 * PTRS_PER_PTE pages clipped to its VMA (-EINVAL: no VMA, or one without
 * VM_READ) run migrate_vma_setup() with `flags` and owner = the device,
 * then `batch(args)` (the driver's copy, pages, finalize), which returns 0
 * or an -errno that ends the walk. Unlocks and drops the mm reference.
 */
function* dmirrorMigrateBatches(dmirror: Dmirror, start: number, end: number, flags: number, batch: (args: MigrateVma) => K<number>): K<number> {
  const s = dmirror.k.sched;
  const mm = dmirror.notifier.mm;
  if (!mmgetNotZero(mm)) return -EINVAL;
  const src = new Float64Array(PTRS_PER_PTE);
  const dst = new Float64Array(PTRS_PER_PTE);
  let ret = 0;
  yield* mmapReadLock(mm);
  dmirror.migrating++; /* fixes.dmirror_devmem_fix: this mirror's own migration (mirror.ts) */
  try {
    ret = yield* dmirrorMigrateBatchLoop(dmirror, start, end, flags, src, dst, batch);
  } finally {
    dmirror.migrating--;
  }
  mm.mmapLock.readUnlock(s);
  mmput(mm);
  return ret;
}

/** The batch loop of dmirrorMigrateBatches (mmap_lock held for read). */
function* dmirrorMigrateBatchLoop(dmirror: Dmirror, start: number, end: number, flags: number, src: Float64Array, dst: Float64Array, batch: (args: MigrateVma) => K<number>): K<number> {
  const mm = dmirror.notifier.mm;
  let ret = 0;
  for (let addr = start, next = 0; addr < end; addr = next) {
    const vma = mm.vmaLookup(addr);
    if (vma === null || !(vma.flags & VM_READ)) {
      ret = -EINVAL;
      break;
    }
    next = Math.min(end, addr + PTRS_PER_PTE * PAGE_SIZE);
    if (next > vma.end) next = vma.end;
    const args = new MigrateVma({ vma, src, dst, start: addr, end: next, pgmapOwner: dmirror.mdevice, flags });
    ret = yield* migrateVmaSetup(args);
    if (ret) break;
    ret = yield* batch(args);
    if (ret) break;
  }
  return ret;
}

/**
 * dmirror_devmem_fault_alloc_and_copy(args, dmirror): the device -> system
 * copy shared by MIGRATE_TO_SYS and the CPU fault. For each src entry with
 * a page and MIGRATE (a non-device page is a WARN and skipped): order = the
 * backing folio's order; dst gets COMPOUND if order > 0 and WRITE if src has
 * it; allocate a system folio of that order (HMM_DMIRROR_FLAG_FAIL_ALLOC:
 * cleared, COMPOUND dropped, the allocation fails), lock it, and for each
 * subpage erase the mirror's pt entry and copy. A failed order-0
 * allocation is VM_FAULT_OOM; a failed large one falls back to one page per
 * subpage (their dst entries without WRITE, as the source), unwinding with
 * VM_FAULT_OOM if one of those fails.
 *
 * As the kernel, the src/dst stride after a skipped entry is 1 << order of
 * the *previous* migrated folio while addr advances by one page; the model
 * stops when the stride runs past the arrays (where the kernel would read
 * beyond them). Returns 0 or VM_FAULT_OOM.
 */
export function* dmirrorDevmemFaultAllocAndCopy(args: MigrateVma, dmirror: Dmirror): K<number> {
  const k = dmirror.k;
  const p = k.pages;
  const src = args.src;
  const dst = args.dst;
  const n = Math.floor((args.end - args.start) / PAGE_SIZE);
  let order = 0;
  let i = 0;
  for (let addr = args.start; addr < args.end;) {
    if (i >= n) break;
    let spage = migratePfnToPage(src[i]);
    if (spage < 0 || !mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) {
      addr += PAGE_SIZE;
      i += 1 << order;
      continue;
    }
    if (k.warnOnPage(!isDevicePrivatePage(k, spage) && !isDeviceCoherentPage(k, spage), spage, 'dmirror_devmem_fault_alloc_and_copy: WARN_ON(!is_device_private_page(spage) && !is_device_coherent_page(spage))')) {
      addr += PAGE_SIZE;
      i += 1 << order;
      continue;
    }
    spage = backingPage(k, spage);
    order = p.order[p.folioPfn(spage)];
    if (order) dst[i] = MIGRATE_PFN_COMPOUND;
    if (mpfnHas(src[i], MIGRATE_PFN_WRITE)) dst[i] = mpfnSet(dst[i], MIGRATE_PFN_WRITE);
    let dpage: number;
    if (takeFailAlloc(dmirror)) {
      dst[i] = mpfnClear(dst[i], MIGRATE_PFN_COMPOUND);
      dpage = -1;
    } else if (order) {
      dpage = k.buddy.alloc(order, GFP_HIGHUSER_MOVABLE | GFP_TRANSHUGE, 'dmirror_devmem_fault_alloc_and_copy');
    } else {
      dpage = k.buddy.alloc(0, GFP_HIGHUSER_MOVABLE, 'dmirror_devmem_fault_alloc_and_copy');
    }
    if (dpage < 0 && !order) return VM_FAULT_OOM;
    if (dpage >= 0) {
      yield* folioLockQuick(k, dpage);
      dst[i] = mpfnSet(migratePfn(dpage), mpfnFlags(dst[i])); /* dst[i] |= migrate_pfn(dpage) */
    }
    const nr = 1 << order;
    for (let j = 0; j < nr; j++) {
      let dstPage: number;
      if (dpage < 0 && order) {
        /* Try with smaller pages if the large allocation failed. */
        const dp = k.buddy.alloc(0, GFP_HIGHUSER_MOVABLE, 'dmirror_devmem_fault_alloc_and_copy');
        if (dp < 0) {
          while (j > 0) {
            const fpage = migratePfnToPage(dst[i + --j]);
            folioUnlock(k, fpage);
            folioPut(k, fpage);
          }
          while (j < nr) dst[i + j++] = 0;
          return VM_FAULT_OOM;
        }
        yield* folioLockQuick(k, dp);
        dst[i + j] = migratePfn(dp);
        dstPage = dp;
      } else {
        dstPage = dpage + j;
      }
      dmirror.pt.delete(Math.floor(addr / PAGE_SIZE));
      addr += PAGE_SIZE;
      if (dpage < 0) {
        k.contents.copy(dstPage, spage + j);
        if (k.clock !== null) chargeDeviceCopy(k, 1, 'dmirror copy to system');
      }
    }
    /* copy_highpage() of every subpage of a folio destination: one folio copy. */
    if (dpage >= 0) {
      k.contents.copyRange(dpage, spage, nr);
      if (k.clock !== null) chargeDeviceCopy(k, nr, 'dmirror copy to system');
    }
    i += 1 << order;
  }
  return 0;
}

/** dmirror_successful_migrated_pages(): src entries with VALID and MIGRATE. */
export function dmirrorSuccessfulMigratedPages(args: MigrateVma): number {
  const src = args.src;
  let cpages = 0;
  for (let i = 0; i < args.npages; i++) if (mpfnHas(src[i], MIGRATE_PFN_VALID) && mpfnHas(src[i], MIGRATE_PFN_MIGRATE)) cpages++;
  return cpages;
}

/**
 * dmirror_migrate_to_system(dmirror, cmd) (HMM_DMIRROR_MIGRATE_TO_SYS):
 * batches as MIGRATE_TO_DEV with SELECT_DEVICE_PRIVATE or
 * SELECT_DEVICE_COHERENT (by device type) | SELECT_COMPOUND, owner = the
 * device: setup, fault_alloc_and_copy, migrate_vma_pages, cpages +=
 * VALID|MIGRATE entries, finalize. As mainline, the return value of
 * dmirror_devmem_fault_alloc_and_copy() is ignored: after a failed
 * allocation the entries it filled migrate, those without a dst lose
 * MIGRATE_PFN_MIGRATE in migrate_vma_pages() and stay on the device
 * (migrate_vma_finalize() restores their source mapping), and the batch
 * loop goes on. Nothing is copied to cmd.ptr. Errors: -EINVAL (mm gone,
 * VMA), setup's.
 */
export function* dmirrorMigrateToSystem(dmirror: Dmirror, cmd: HmmDmirrorCmd): K<number> {
  const r = cmdRange(cmd);
  if (r === null) return -EINVAL;
  cmd.cpages = 0n;
  return yield* dmirrorMigrateBatches(dmirror, r.start, r.end, dmirrorSelectDevice(dmirror) | MIGRATE_VMA_SELECT_COMPOUND, function* (args) {
    yield* dmirrorDevmemFaultAllocAndCopy(args, dmirror);
    yield* migrateVmaPages(args);
    cmd.cpages += BigInt(dmirrorSuccessfulMigratedPages(args));
    yield* migrateVmaFinalize(args);
    return 0;
  });
}

/**
 * dmirror_devmem_fault(vmf) = pgmap->ops->migrate_to_ram: the CPU touched a
 * device-private page. The mirror is found through the backing page
 * (folio zone_device_data -> backing page -> zone_device_data). The range
 * is the faulting folio (order 0 when the fault came through a PTE, as
 * the folio may be partly split), aligned down; flags select this device
 * type (+ COMPOUND for order > 0); fault_page = vmf.page (locked and
 * referenced by the fault handler). migrate_vma_setup failure ->
 * VM_FAULT_SIGBUS; then fault_alloc_and_copy, migrate_vma_pages,
 * migrate_vma_finalize. Caller (do_swap_page / do_huge_pmd_device_private)
 * holds mmap_lock for read.
 *
 * When fault_alloc_and_copy fails (VM_FAULT_OOM), lib/test_hmm.c in the
 * linux-mm tree runs `if (ret) { migrate_vma_finalize(&args); goto err; }`:
 * fault_alloc_and_copy left no dst page behind (an order-0 failure returns
 * before its dst gets a pfn; the small-page fallback frees what it
 * allocated and clears the rest of dst), so finalize restores every source
 * mapping on the device, drops the collect references, and VM_FAULT_OOM
 * goes back to the fault handler (the #PF is retried). The device-THP
 * series as first posted had `if (ret) goto err;` without the finalize,
 * which left the migration entries for good (docs/FINDINGS.md, "a failed
 * allocation in migrate_to_ram"); the model follows the later source. With
 * config.fixes.dmirror_devmem_fix the failure path also runs
 * migrate_vma_pages() first, as dmirror_migrate_to_system() does (what was
 * copied migrates).
 */
export function* dmirrorDevmemFault(mod: TestHmm, vmf: VmFault): K<number> {
  const k = mod.k;
  const p = k.pages;
  const rpage = p.zdd[p.folioPfn(vmf.page)];
  const dmirror = mod.mirrorOf(p.zdd[rpage], 'dmirror_devmem_fault');
  let order = p.order[vmf.page];
  if (!vmf.pmdLevel) order = 0;
  const size = PAGE_SIZE * (1 << order);
  const start = vmf.address - (vmf.address % size);
  const nr = size / PAGE_SIZE;
  const args = new MigrateVma({
    vma: vmf.vma, start, end: start + size, src: new Float64Array(nr), dst: new Float64Array(nr),
    pgmapOwner: dmirror.mdevice, flags: dmirrorSelectDevice(dmirror), faultPage: vmf.page,
  });
  // args.src / args.dst = kcalloc(nr, GFP_KERNEL): NULL -> VM_FAULT_OOM.
  if (k.shouldFail('dmirror_devmem_fault')) return VM_FAULT_OOM;
  if (order) args.flags |= MIGRATE_VMA_SELECT_COMPOUND;
  dmirror.migrating++; /* fixes.dmirror_devmem_fix: the mirror serving the fault (mirror.ts) */
  try {
    if (yield* migrateVmaSetup(args)) return VM_FAULT_SIGBUS;
    const ret = yield* dmirrorDevmemFaultAllocAndCopy(args, dmirror);
    if (ret) {
      if (k.config.fixes.dmirror_devmem_fix) yield* migrateVmaPages(args);
      yield* migrateVmaFinalize(args);
      return ret;
    }
    yield* migrateVmaPages(args);
    /* No device finalize step: fault_alloc_and_copy already erased the pt entries. */
    yield* migrateVmaFinalize(args);
    return 0;
  } finally {
    dmirror.migrating--;
  }
}
