// SPDX-License-Identifier: GPL-2.0-only
/**
 * hmm_range_fault() (mm/hmm.c, include/linux/hmm.h): snapshot the CPU page
 * table of a range into an array of hmm_pfn words, faulting pages in where
 * the caller asks for them.
 *
 * ## The hmm_pfn word in the model
 *
 * The kernel word is an unsigned long: pfn in bits 0..52, the map order in
 * bits 53..57, flags in bits 58..63 (HMM_PFN_VALID is bit 63). A JS double is
 * exact only up to 2^53, so the model keeps the kernel's *layout of the high
 * 11 bits* but moves them down by 21 bits: bits 53..63 of the kernel word
 * become bits 32..42 of the model word.
 *
 *   model word = pfn + hi * 2^32        pfn < 2^31 (model pfns are Int32)
 *   hi (11 bits) = kernel_word >> 53     order in hi bits 0..4, flags in 5..10
 *
 * So HMM_PFN_VALID == 2^42 (kernel 2^63), HMM_PFN_WRITE == 2^41 (2^62),
 * HMM_PFN_ERROR == 2^40 (2^61), the sticky DMA bits 2^39..2^37, and the map
 * order is `order * 2^32`. Every value is an exact integer below 2^43, so a
 * Float64Array stores it without loss. Build and test words only with the
 * helpers below (hmmPfnToPfn, hmmPfnFlags, hmmPfnTest, hmmPfnToMapOrder,
 * hmmPfnMake); `toKernelWord`/`fromKernelWord` convert to the kernel's u64
 * (bigint) for traces and the ioctl ABI.
 *
 * ## Contract (hmm_range_fault)
 *
 * Caller holds mmap_lock (read or write) of range.notifier.mm and obtained
 * range.notifierSeq from mmu_interval_read_begin(). Returns 0 with every
 * entry written, -EBUSY if the interval was invalidated (the caller retries
 * from read_begin), -EFAULT (no VMA / PROT_NONE / VM_IO|VM_PFNMAP / special
 * pte / hwpoison where a fault was requested, or a fault failed), -EPERM (a
 * write fault requested on a VMA without VM_WRITE), -EINVAL (start >= end).
 * No page references are taken: the output is valid only until the driver's
 * mmu_interval_read_retry() under its own lock says otherwise.
 *
 * Invariant kept exactly as the kernel states it: all entries below
 * walk.last hold their output, all entries at or above it still hold their
 * input (a fault never writes the entry it faults on).
 */
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../printk.js';
import { EBUSY, EFAULT, EINVAL, EPERM } from '../errno.js';
import type { K } from '../sched/sched.js';
import { type MmStruct, type Vma, VM_HUGETLB, VM_IO, VM_PFNMAP, VM_READ, VM_WRITE } from './mm_types.js';
import {
  type PmdTable, T_DEVICE_EXCLUSIVE, T_DEVICE_PRIVATE_WRITE, T_NONE, T_PRESENT, T_SWAP, T_TABLE, _PAGE_PROTNONE,
  _PAGE_RW, isDevicePrivateType, isMigrationType, pmdIndex, pmdTableOf, pteIndex, pmdAddrEnd, pudAddrEnd, ptePresent,
  pteType,
} from './pgtable.js';
import { HPAGE_PMD_ORDER, PAGE_SIZE } from './page.js';
import { migrationEntryWait, pmdMigrationEntryWait } from './migrate.js';
import { type MmuIntervalNotifier, mmuIntervalCheckRetry } from './mmu_notifier.js';
import { FAULT_FLAG_REMOTE, FAULT_FLAG_WRITE, VM_FAULT_ERROR, handleMmFault, vmNormalPage } from './memory.js';
import { mmapAssertLocked } from './mmap_lock.js';
import { chargeHmmRangeFault } from '../cost/charges.js';

/* ---------------------------------------------------------------------- */
/* hmm_pfn encoding                                                        */

const HI = 4294967296; /* 2^32: the model word's hi part starts here */

/** Kernel HMM_PFN_* high bits, as the 11-bit `hi` value (kernel bit n -> hi bit n-53). */
const HI_VALID = 1 << 10;
const HI_WRITE = 1 << 9;
const HI_ERROR = 1 << 8;
const HI_DMA_MAPPED = 1 << 7;
const HI_P2PDMA = 1 << 6;
const HI_P2PDMA_BUS = 1 << 5;
const HI_ORDER_MASK = 0x1f;
const HI_INOUT = HI_DMA_MAPPED | HI_P2PDMA | HI_P2PDMA_BUS;

/** HMM_PFN_VALID (kernel bit 63): the pfn is valid and at least readable. */
export const HMM_PFN_VALID = HI_VALID * HI;
/** HMM_PFN_WRITE (kernel bit 62): the CPU (and so the device) may write. */
export const HMM_PFN_WRITE = HI_WRITE * HI;
/** HMM_PFN_ERROR (kernel bit 61): access is impossible (no VMA, special, poisoned). */
export const HMM_PFN_ERROR = HI_ERROR * HI;
/** HMM_PFN_DMA_MAPPED (kernel bit 60): sticky, carried from input to output. */
export const HMM_PFN_DMA_MAPPED = HI_DMA_MAPPED * HI;
/** HMM_PFN_P2PDMA (kernel bit 59): sticky. */
export const HMM_PFN_P2PDMA = HI_P2PDMA * HI;
/** HMM_PFN_P2PDMA_BUS (kernel bit 58): sticky. */
export const HMM_PFN_P2PDMA_BUS = HI_P2PDMA_BUS * HI;
/** HMM_PFN_REQ_FAULT (input) == HMM_PFN_VALID: the output must be VALID, fault if needed. */
export const HMM_PFN_REQ_FAULT = HMM_PFN_VALID;
/** HMM_PFN_REQ_WRITE (input) == HMM_PFN_WRITE: the output must be WRITE (with REQ_FAULT). */
export const HMM_PFN_REQ_WRITE = HMM_PFN_WRITE;
/** HMM_PFN_INOUT_FLAGS: the sticky flags every output write preserves. */
export const HMM_PFN_INOUT_FLAGS = HI_INOUT * HI;
/** HMM_PFN_ORDER_SHIFT in the kernel (53); in the model the order lives at 2^32 (see top). */
export const HMM_PFN_ORDER_SHIFT = 53;
/** HMM_PFN_FLAGS: every bit above the pfn (kernel ~((1UL << 53) - 1)). */
export const HMM_PFN_FLAGS = 0x7ff * HI;
/** HMM_RANGE_DEFAULT_TIMEOUT (ms), used by drivers to bound the -EBUSY loop. */
export const HMM_RANGE_DEFAULT_TIMEOUT = 1000;

/** The 11-bit hi part (order + flags) of a model word. */
function hiOf(w: number): number {
  return Math.floor(w / HI);
}

/** hmm_pfn_to_pfn-style: `w & ~HMM_PFN_FLAGS` (the kernel's hmm_pfn_to_page() minus pfn_to_page). */
export function hmmPfnToPfn(w: number): number {
  return w % HI;
}

/** `w & HMM_PFN_FLAGS`: order and flags, as a model word with pfn 0. */
export function hmmPfnFlags(w: number): number {
  return hiOf(w) * HI;
}

/** `(w & flag) != 0` for one or more HMM_PFN_* flags. */
export function hmmPfnTest(w: number, flag: number): boolean {
  return (hiOf(w) & hiOf(flag)) !== 0;
}

/** hmm_pfn_to_map_order(): the order of the CPU mapping (0, 9 for a PMD, huge_page_order for hugetlb). */
export function hmmPfnToMapOrder(w: number): number {
  return hiOf(w) & HI_ORDER_MASK;
}

/** hmm_pfn_flags_order(order): the order as a model word part. */
export function hmmPfnFlagsOrder(order: number): number {
  return (order & HI_ORDER_MASK) * HI;
}

/** Build a word: `pfn | flags` (flags: a sum of HMM_PFN_* and hmmPfnFlagsOrder()). */
export function hmmPfnMake(pfn: number, flags: number): number {
  return hiOf(flags) * HI + pfn;
}

/** The kernel's u64 value of a model word (for traces and the uapi). */
export function toKernelWord(w: number): bigint {
  return (BigInt(hiOf(w)) << 53n) | BigInt(w % HI);
}

/** A kernel u64 hmm_pfn as a model word. Throws on a pfn above 2^32. */
export function fromKernelWord(v: bigint): number {
  const pfn = v & ((1n << 53n) - 1n);
  if (pfn >= BigInt(HI)) throw new KernelBug('BUG', `hmm_pfn ${v.toString(16)}: pfn does not fit the model`);
  return Number(v >> 53n) * HI + Number(pfn);
}

/** A readable description: "pfn 0x1234 VALID|WRITE order 9". */
export function hmmPfnDescribe(w: number): string {
  const h = hiOf(w);
  const f: string[] = [];
  if (h & HI_VALID) f.push('VALID');
  if (h & HI_WRITE) f.push('WRITE');
  if (h & HI_ERROR) f.push('ERROR');
  if (h & HI_DMA_MAPPED) f.push('DMA_MAPPED');
  if (h & HI_P2PDMA) f.push('P2PDMA');
  if (h & HI_P2PDMA_BUS) f.push('P2PDMA_BUS');
  const o = h & HI_ORDER_MASK;
  return `pfn 0x${(w % HI).toString(16)} ${f.join('|') || '0'}${o ? ` order ${o}` : ''}`;
}

/* ---------------------------------------------------------------------- */
/* struct hmm_range                                                        */

/**
 * struct hmm_range. `hmmPfns` has one word per page of [start, end): input
 * request flags (REQ_FAULT / REQ_WRITE, after `& pfnFlagsMask | defaultFlags`)
 * and, after hmm_range_fault() returns 0, the output words.
 */
export class HmmRange {
  notifierSeq = 0;
  readonly hmmPfns: Float64Array;
  constructor(
    /** Must be non-null; mm = notifier.mm. */
    public notifier: MmuIntervalNotifier,
    /** Inclusive, page aligned. */
    public start: number,
    /** Exclusive, page aligned. */
    public end: number,
    /** OR-ed into every entry's request. */
    public defaultFlags = 0,
    /** AND-ed with each entry's request first. */
    public pfnFlagsMask = 0,
    /** pgmap->owner whose device-private pages are reported instead of faulted. */
    public devPrivateOwner: unknown = null,
    hmmPfns?: Float64Array,
  ) {
    const n = Math.max(0, (end - start) / PAGE_SIZE);
    this.hmmPfns = hmmPfns ?? new Float64Array(n);
  }
}

/* ---------------------------------------------------------------------- */
/* the walk                                                                */

/** Restarts of the walk at one address before the model reports a livelock. */
const HMM_LIVELOCK_SPINS = 10000;

const HMM_NEED_FAULT = 1;
const HMM_NEED_WRITE_FAULT = 2;
const HMM_NEED_ALL_BITS = 3;

/* Internal results of the non-blocking walk steps (never returned to callers). */
const STEP_FAULT = 1; /* hmm_vma_fault(w.faultAddr, w.faultEnd, w.required) */
const STEP_WAIT = 2; /* migration_entry_wait at w.waitAddr, then -EBUSY */

/** struct hmm_vma_walk, plus the pending blocking action of the current step. */
interface HmmVmaWalk {
  k: Kernel;
  mm: MmStruct;
  range: HmmRange;
  last: number;
  /** (defaultFlags | pfnFlagsMask) & REQ_FAULT: hmm_range_need_fault's shortcut. */
  anyFault: boolean;
  maskHi: number;
  defHi: number;
  vma: Vma | null;
  faultAddr: number;
  faultEnd: number;
  required: number;
  waitAddr: number;
  waitPmd: boolean;
}

/** hmm_pte_need_fault(): HMM_NEED_* bits for one request word against the CPU flags (hi parts). */
function pteNeedFault(w: HmmVmaWalk, req: number, cpuHi: number): number {
  const r = (hiOf(req) & w.maskHi) | w.defHi;
  if (!(r & HI_VALID)) return 0;
  if ((r & HI_WRITE) && !(cpuHi & HI_WRITE)) return HMM_NEED_FAULT | HMM_NEED_WRITE_FAULT;
  if (!(cpuHi & HI_VALID)) return HMM_NEED_FAULT;
  return 0;
}

/** hmm_range_need_fault() over the entries of [addr, end). */
function rangeNeedFault(w: HmmVmaWalk, addr: number, end: number, cpuHi: number): number {
  if (!w.anyFault) return 0;
  const pfns = w.range.hmmPfns;
  let i = (addr - w.range.start) / PAGE_SIZE;
  const n = i + (end - addr) / PAGE_SIZE;
  let required = 0;
  for (; i < n; i++) {
    required |= pteNeedFault(w, pfns[i], cpuHi);
    if (required === HMM_NEED_ALL_BITS) return required;
  }
  return required;
}

/** hmm_pfns_fill(): every entry of [addr, end) becomes (old & INOUT) | value (value a pfn-free word). */
function pfnsFill(w: HmmVmaWalk, addr: number, end: number, valueHi: number): number {
  const pfns = w.range.hmmPfns;
  let i = (addr - w.range.start) / PAGE_SIZE;
  const n = i + (end - addr) / PAGE_SIZE;
  for (; i < n; i++) pfns[i] = ((hiOf(pfns[i]) & HI_INOUT) | valueHi) * HI;
  return 0;
}

/** Write one output entry: (old & INOUT) | pfn | cpu flags. */
function setOut(pfns: Float64Array, i: number, pfn: number, cpuHi: number): void {
  pfns[i] = ((hiOf(pfns[i]) & HI_INOUT) | cpuHi) * HI + pfn;
}

/** Record that the step needs hmm_vma_fault(addr, end, required). */
function needFault(w: HmmVmaWalk, addr: number, end: number, required: number): number {
  w.faultAddr = addr;
  w.faultEnd = end;
  w.required = required;
  return STEP_FAULT;
}

/** hmm_vma_walk_hole() */
function walkHole(w: HmmVmaWalk, addr: number, end: number): number {
  const required = rangeNeedFault(w, addr, end, 0);
  if (w.vma === null) return required ? -EFAULT : pfnsFill(w, addr, end, HI_ERROR);
  if (required) return needFault(w, addr, end, required);
  return pfnsFill(w, addr, end, 0);
}

/** hmm_vma_walk_test(): 0 walk the VMA, 1 skip it (filled with ERROR), <0 abort. */
function walkTest(w: HmmVmaWalk, vma: Vma, start: number, end: number): number {
  if (!(vma.flags & (VM_IO | VM_PFNMAP)) && (vma.flags & VM_READ)) return 0;
  if (rangeNeedFault(w, start, end, 0)) return -EFAULT;
  pfnsFill(w, start, end, HI_ERROR);
  return 1;
}

/** pte_to_hmm_pfn_flags() on present entry bits. */
function cpuFlagsOf(f: number): number {
  if (!ptePresent(f) || (f & _PAGE_PROTNONE)) return 0;
  return f & _PAGE_RW ? HI_VALID | HI_WRITE : HI_VALID;
}

/** hmm_vma_handle_pmd(): a present PMD leaf (THP or huge zero page). */
function handlePmd(w: HmmVmaWalk, addr: number, end: number, pmdPfn: number, f: number): number {
  const cpuHi = (f & _PAGE_PROTNONE) ? 0 : cpuFlagsOf(f) | HPAGE_PMD_ORDER;
  const required = rangeNeedFault(w, addr, end, cpuHi);
  if (required) return needFault(w, addr, end, required);
  const pfns = w.range.hmmPfns;
  let pfn = pmdPfn + pteIndex(addr);
  for (let i = (addr - w.range.start) / PAGE_SIZE; addr < end; addr += PAGE_SIZE, i++, pfn++) setOut(pfns, i, pfn, cpuHi);
  return 0;
}

/**
 * hmm_vma_handle_absent_pmd(): a non-present, non-migration PMD. Owned
 * device-private THP entries are reported with the PMD order; others fault
 * (device-private: migrate back) or report ERROR (note: ERROR at PMD level,
 * 0 at PTE level, as the kernel). The fill starts at the entry's pfn without
 * the intra-PMD offset, exactly as mainline does
 * (mm/hmm.c:hmm_vma_handle_absent_pmd(): pfn = swp_offset_pfn(entry)).
 */
function handleAbsentPmd(w: HmmVmaWalk, addr: number, end: number, v: number, t: number): number {
  const k = w.k;
  if (isDevicePrivateType(t) && k.pgmaps[k.pages.pgmap[v]]?.owner === w.range.devPrivateOwner) {
    const cpuHi = HI_VALID | HPAGE_PMD_ORDER | (t === T_DEVICE_PRIVATE_WRITE ? HI_WRITE : 0);
    const pfns = w.range.hmmPfns;
    let pfn = v;
    for (let i = (addr - w.range.start) / PAGE_SIZE; addr < end; addr += PAGE_SIZE, i++, pfn++) setOut(pfns, i, pfn, cpuHi);
    return 0;
  }
  const required = rangeNeedFault(w, addr, end, 0);
  if (required) {
    if (isDevicePrivateType(t)) return needFault(w, addr, end, required);
    return -EFAULT;
  }
  return pfnsFill(w, addr, end, HI_ERROR);
}

/**
 * hmm_vma_handle_pte() for every PTE of [addr, end) in one table: lockless
 * reads (HMM relies on the notifier sequence, not the PTL).
 */
function walkPtes(w: HmmVmaWalk, vma: Vma, pmdT: PmdTable, pi: number, addr: number, end: number): number {
  const k = w.k;
  const pt = pmdT.pte[pi]!;
  const pfns = w.range.hmmPfns;
  const zeroPfn = k.zeroPfn;
  for (let i = (addr - w.range.start) / PAGE_SIZE; addr < end; addr += PAGE_SIZE, i++) {
    const ti = pteIndex(addr);
    const v = pt.v[ti];
    const f = pt.f[ti];
    const t = pteType(f);
    const req = pfns[i];
    if (t === T_NONE) {
      const required = pteNeedFault(w, req, 0);
      if (required) return needFault(w, addr, end, required);
      setOut(pfns, i, 0, 0);
      continue;
    }
    if (t !== T_PRESENT) {
      if (isDevicePrivateType(t) && k.pgmaps[k.pages.pgmap[v]]?.owner === w.range.devPrivateOwner) {
        // Owned device-private page: reported, never faulted (even for REQ_WRITE).
        setOut(pfns, i, v, HI_VALID | (t === T_DEVICE_PRIVATE_WRITE ? HI_WRITE : 0));
        continue;
      }
      const required = pteNeedFault(w, req, 0);
      if (!required) {
        setOut(pfns, i, 0, 0);
        continue;
      }
      if (t === T_SWAP || isDevicePrivateType(t) || t === T_DEVICE_EXCLUSIVE) return needFault(w, addr, end, required);
      if (isMigrationType(t)) {
        w.last = addr;
        w.waitAddr = addr;
        w.waitPmd = false;
        return STEP_WAIT;
      }
      return -EFAULT; /* hwpoison and other markers */
    }
    const cpuHi = cpuFlagsOf(f);
    const required = pteNeedFault(w, req, cpuHi);
    if (required) return needFault(w, addr, end, required);
    if (vmNormalPage(k, vma, addr, v, f) < 0 && v !== zeroPfn) {
      if (pteNeedFault(w, req, 0)) return -EFAULT;
      setOut(pfns, i, 0, HI_ERROR);
      continue;
    }
    setOut(pfns, i, v, cpuHi);
  }
  return 0;
}

/**
 * hmm_vma_walk_hugetlb_entry() for one huge page [start, end): only the
 * first entry's request is checked, as the kernel.
 */
function walkHugetlbEntry(w: HmmVmaWalk, start: number, end: number, v: number, f: number): number {
  const cpuHi = cpuFlagsOf(f) | HPAGE_PMD_ORDER;
  const req = w.range.hmmPfns[(start - w.range.start) / PAGE_SIZE];
  const required = pteNeedFault(w, req, cpuHi);
  if (required) return needFault(w, start, end, required);
  const pfns = w.range.hmmPfns;
  let pfn = v + pteIndex(start);
  for (let i = (start - w.range.start) / PAGE_SIZE; start < end; start += PAGE_SIZE, i++, pfn++) setOut(pfns, i, pfn, cpuHi);
  return 0;
}

/**
 * One PMD step [addr, end) of a VMA (hmm_vma_walk_pmd, or the hugetlb
 * entry for hugetlb VMAs). Returns 0, -errno, STEP_FAULT or STEP_WAIT.
 */
function walkPmdStep(w: HmmVmaWalk, vma: Vma, addr: number, end: number): number {
  const pmdT = pmdTableOf(w.mm.pgd, addr, false);
  if (pmdT === null) return walkHole(w, addr, end);
  const pi = pmdIndex(addr);
  const f = pmdT.f[pi];
  const t = pteType(f);
  if (vma.flags & VM_HUGETLB) {
    // walk_hugetlb_range: an existing slot goes to hugetlb_entry (even none).
    return walkHugetlbEntry(w, addr, end, pmdT.v[pi], t === T_TABLE ? 0 : f);
  }
  if (t === T_NONE) return walkHole(w, addr, end);
  if (isMigrationType(t)) {
    if (rangeNeedFault(w, addr, end, 0)) {
      w.last = addr;
      w.waitAddr = addr;
      w.waitPmd = true;
      return STEP_WAIT;
    }
    return pfnsFill(w, addr, end, 0);
  }
  if (t === T_TABLE) return walkPtes(w, vma, pmdT, pi, addr, end);
  if (t === T_PRESENT) return handlePmd(w, addr, end, pmdT.v[pi], f);
  return handleAbsentPmd(w, addr, end, pmdT.v[pi], t);
}

/**
 * walk_page_range(mm, start, end, hmm_walk_ops) as hmm uses it. Returns 0,
 * -errno, STEP_FAULT or STEP_WAIT (with the walk state describing it).
 */
function walkRange(w: HmmVmaWalk, start: number, end: number): number {
  if (start >= end) return -EINVAL;
  const mm = w.mm;
  let addr = start;
  let vma = mm.findVma(addr);
  while (addr < end) {
    if (vma === null || vma.start >= end) {
      w.vma = null;
      return walkHole(w, addr, end);
    }
    if (addr < vma.start) {
      w.vma = null;
      const r = walkHole(w, addr, vma.start);
      if (r !== 0) return r;
      addr = vma.start;
    }
    w.vma = vma;
    const vend = Math.min(end, vma.end);
    const r = walkTest(w, vma, addr, vend);
    if (r < 0) return r;
    if (r === 0) {
      while (addr < vend) {
        // Next PMD boundary; when the whole PUD is empty, a hole up to the PUD boundary.
        let next = pmdAddrEnd(addr, vend);
        if (pmdTableOf(mm.pgd, addr, false) === null) next = pudAddrEnd(addr, vend);
        const s = walkPmdStep(w, vma, addr, next);
        if (s !== 0) return s;
        addr = next;
      }
    }
    addr = vend;
    vma = mm.findVma(addr);
  }
  return 0;
}

/** hmm_vma_fault(): fault every page of [addr, end); always an error (-EBUSY on success). */
function* hmmVmaFault(w: HmmVmaWalk): K<number> {
  const vma = w.vma!;
  let addr = w.faultAddr;
  const end = w.faultEnd;
  if (w.k.warnOnPage(w.required === 0, -1, 'hmm_vma_fault: WARN_ON_ONCE(!required_fault)')) return -EFAULT;
  w.last = addr;
  let flags = FAULT_FLAG_REMOTE;
  if (w.required & HMM_NEED_WRITE_FAULT) {
    if (!(vma.flags & VM_WRITE)) return -EPERM;
    flags |= FAULT_FLAG_WRITE;
  }
  for (; addr < end; addr += PAGE_SIZE) {
    const r = yield* handleMmFault(vma, addr, flags);
    if (r & VM_FAULT_ERROR) return -EFAULT;
  }
  return -EBUSY;
}

/**
 * migration_entry_wait() / pmd_migration_entry_wait() at w.waitAddr (no PTL
 * held): sleep until the migration entry is gone. A leaked entry is a HANG.
 */
function* migrationWait(w: HmmVmaWalk): K<void> {
  const addr = w.waitAddr;
  const pmdT = pmdTableOf(w.mm.pgd, addr, false);
  if (pmdT === null) return;
  const pi = pmdIndex(addr);
  if (w.waitPmd) {
    yield* pmdMigrationEntryWait(w.mm, pmdT, pi);
    return;
  }
  const pt = pmdT.pte[pi];
  if (pt !== null) yield* migrationEntryWait(w.mm, pt, pteIndex(addr));
}

/**
 * hmm_range_fault(range): fill range.hmmPfns for [start, end).
 *
 * Locks: the caller holds mmap_lock of range.notifier.mm (read is enough)
 * on entry, and still holds it on return (faults are done without
 * FAULT_FLAG_ALLOW_RETRY, so the lock is never dropped). No page
 * references are taken. May sleep (faults, migration-entry waits).
 * Returns 0 / -EBUSY / -EFAULT / -EPERM / -EINVAL as described at the top.
 * Simulated time (with k.clock): chargeHmmRangeFault() once per call for
 * the whole range, before the walk.
 */
export function* hmmRangeFault(range: HmmRange): K<number> {
  if (range.notifier.mm.kernel.tracer !== null && range.notifier.mm.kernel.tracer.enter('hmm_range_fault')) return yield* range.notifier.mm.kernel.tracer.span('hmm_range_fault', range.start, hmmRangeFault(range));
  const mm = range.notifier.mm;
  const k = mm.kernel;
  mmapAssertLocked(mm, 'hmm_range_fault');
  if (!mm.mmapLock.isLocked()) throw new KernelBug('LOCKDEP', 'hmm_range_fault: mmap_assert_locked(mm) failed', `mm #${mm.id}`);
  if (range.hmmPfns.length < (range.end - range.start) / PAGE_SIZE) throw new KernelBug('BUG', 'hmm_range_fault: hmm_pfns shorter than the range');
  if (k.clock !== null) chargeHmmRangeFault(k.clock, (range.end - range.start) / PAGE_SIZE);
  const w: HmmVmaWalk = {
    k, mm, range, last: range.start,
    anyFault: ((hiOf(range.defaultFlags) | hiOf(range.pfnFlagsMask)) & HI_VALID) !== 0,
    maskHi: hiOf(range.pfnFlagsMask), defHi: hiOf(range.defaultFlags),
    vma: null, faultAddr: 0, faultEnd: 0, required: 0, waitAddr: 0, waitPmd: false,
  };
  let ret: number;
  let spins = 0;
  let lastSeen = -1;
  do {
    if (mmuIntervalCheckRetry(range.notifier, range.notifierSeq)) return -EBUSY;
    // The kernel loops here for as long as a fault makes no progress (a
    // device page whose lock is never released); the model reports it.
    if (w.last === lastSeen) {
      if (++spins > HMM_LIVELOCK_SPINS) throw new KernelBug('HANG', `hmm_range_fault: no progress at 0x${w.last.toString(16)} after ${spins} restarts (livelock)`);
    } else {
      spins = 0;
      lastSeen = w.last;
    }
    const s = walkRange(w, w.last, range.end);
    if (s === STEP_FAULT) ret = yield* hmmVmaFault(w);
    else if (s === STEP_WAIT) {
      yield* migrationWait(w);
      ret = -EBUSY;
    } else ret = s;
  } while (ret === -EBUSY);
  return ret;
}
