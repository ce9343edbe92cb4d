// SPDX-License-Identifier: GPL-2.0-only
/**
 * The nouveau model as a module of the simulated kernel: one GPU with
 * device memory (dmem.ts), a copy channel (chan.ts) and SVM (svm.ts), and
 * the file operations of /dev/dri/nouveau-sim (uapi.ts documents the ABI).
 *
 *   nouveauInit(k, opts)  nouveau_drm_probe() -> nouveau_drm_device_init():
 *                         nouveau_dmem_init() (no chunk yet: they are
 *                         allocated on demand), nouveau_svm_init(), the node.
 *   nouveauRemove(k)      nouveau_drm_device_remove() -> _fini(): the node
 *                         goes, nouveau_dmem_fini() evicts and unmaps every
 *                         chunk (a K: it waits for the copies).
 *
 * Per open file a client (struct nouveau_cli) holds at most one SVMM;
 * closing the file (nouveau_drm_postclose -> nouveau_cli_fini ->
 * nouveau_svmm_fini) frees it. Device pages migrated for that SVMM keep
 * pointing at it through zone_device_data.
 */
import type { Kernel } from '../../kernel/kernel.js';
import { KernelBug } from '../../kernel/printk.js';
import type { K } from '../../kernel/sched/sched.js';
import { EBUSY, EEXIST, EFAULT, EINVAL } from '../../kernel/errno.js';
import { type File, type FileOperations, registerChrdev, unregisterChrdev } from '../../kernel/fs/chardev.js';
import { copyFromUser, copyToUser } from '../../kernel/uaccess.js';
import { PAGE_SIZE } from '../../kernel/mm/page.js';
import { NouveauDmem, type NouveauDmemOptions } from './dmem.js';
import { NouveauSvm, type NouveauSvmm, GPU_ACCESS_ATOMIC, svmFaultThread } from './svm.js';
import {
  DRM_IOCTL_NOUVEAU_SVM_BIND, DRM_IOCTL_NOUVEAU_SVM_INIT, DRM_NOUVEAU_SVM_BIND_SIZE, DRM_NOUVEAU_SVM_INIT_SIZE,
  NOUVEAU_SIM_CHAN_KILL, NOUVEAU_SIM_GPU_ACCESS, NOUVEAU_SIM_GPU_ACCESS_SIZE, NOUVEAU_SIM_PATH, NOUVEAU_SIM_STAT,
  NOUVEAU_SIM_STAT_SIZE, NOUVEAU_SVM_BIND_COMMAND_MASK, NOUVEAU_SVM_BIND_COMMAND__MIGRATE, NOUVEAU_SVM_BIND_TARGET_MASK, NOUVEAU_SVM_BIND_TARGET_SHIFT,
  NOUVEAU_SVM_BIND_TARGET__GPU_VRAM, NOUVEAU_SVM_BIND_VALID_BITS, decodeU64s, encodeU64s,
} from './uapi.js';
import { copyEngineThread } from './chan.js';
import { nouveauCheckCoherence } from './check.js';
import { mmapReadLock } from '../../kernel/mm/mmap_lock.js';

export * from './uapi.js';
export { NouveauDmem, NouveauDmemChunk, DMEM_CHUNK_NPAGES, DMEM_CHUNK_SIZE } from './dmem.js';
export { NouveauSvm, NouveauSvmm, svmFaultThread, GPU_ACCESS_READ, GPU_ACCESS_WRITE, GPU_ACCESS_ATOMIC } from './svm.js';
export { NouveauChannel, NouveauFence, copyEngineThread, othersDone } from './chan.js';
export { STALE_GPU_ABSENT_PMD, STALE_GPU_AFTER_SKIPPED_MIGRATE, STALE_GPU_FOREIGN_BIND, STALE_GPU_MAPPING, nouveauCheckCoherence, nouveauCheckSvmm } from './check.js';

/** Maximum pages of one NOUVEAU_SIM_GPU_ACCESS. */
export const NOUVEAU_SIM_MAX_ACCESS_PAGES = 4096;

/** struct nouveau_drm (the parts the model has). */
export class NouveauDrm {
  /** drm->dev: the pgmap owner and hmm dev_private_owner. */
  readonly dev: object;
  readonly dmem: NouveauDmem;
  readonly svm: NouveauSvm;
  /** Open clients (for removal). */
  readonly clients = new Set<NouveauCli>();
  removed = false;
  constructor(readonly k: Kernel, opts: NouveauDmemOptions = {}) {
    this.dev = { name: 'nouveau-sim' };
    this.dmem = new NouveauDmem(k, this.dev, opts);
    this.svm = new NouveauSvm(k, this.dmem);
  }

  /** The SVMMs of the open clients. */
  *svmms(): IterableIterator<NouveauSvmm> {
    for (const c of this.clients) if (c.svmm !== null) yield c.svmm;
  }

  /** Copy-engine and fault-handler threads for a scheduled run (spawn them with the run's threads). */
  gpuThreads(quiesced: () => boolean): Array<{ name: string; body: () => K<unknown> }> {
    return [
      { name: 'nouveau-ce', body: () => copyEngine(this, quiesced) },
      { name: 'nouveau-svm-fault', body: () => svmFault(this, quiesced) },
    ];
  }
}

function copyEngine(drm: NouveauDrm, q: () => boolean): K<void> {
  return copyEngineThread(drm.dmem.chan, q);
}
function svmFault(drm: NouveauDrm, q: () => boolean): K<void> {
  return svmFaultThread(drm.svm, q);
}

/** struct nouveau_cli: one open file. */
export class NouveauCli {
  svmm: NouveauSvmm | null = null;
  constructor(readonly drm: NouveauDrm) {}
}

/** The k.driverData key of the probed device (state lives on the machine). */
const NOUVEAU_DATA = 'nouveau';
/** The name of the checked-mode checker (k.registerChecker). */
const NOUVEAU_CHECKER = 'nouveau-svm';

/** The probed nouveau device of a machine, or null. */
export function nouveauDevice(k: Kernel): NouveauDrm | null {
  return (k.driverData.get(NOUVEAU_DATA) as NouveauDrm | undefined) ?? null;
}

/** nouveau_drm_probe(): create the device and its node. 0 or -EEXIST. */
export function nouveauInit(k: Kernel, opts: NouveauDmemOptions = {}): number {
  if (k.driverData.has(NOUVEAU_DATA)) return -EEXIST;
  const drm = new NouveauDrm(k, opts);
  const r = registerChrdev(k, NOUVEAU_SIM_PATH, nouveauFops);
  if (r) return r;
  k.driverData.set(NOUVEAU_DATA, drm);
  // Checked mode: every SVMM's GPU page table against its mm (check.ts).
  k.registerChecker(NOUVEAU_CHECKER, (_k, op) => nouveauCheckCoherence(drm.dmem, drm.svmms(), op));
  k.printk.info('nouveau-sim: DMEM: registered device memory (chunks on demand)');
  return 0;
}

/**
 * nouveau_drm_device_remove() / nouveau_drm_device_fini(): remove the
 * node, mark the device unplugged (open files then get -ENODEV from every
 * ioctl, as drm_dev_enter() fails), and nouveau_dmem_fini(): evict every
 * chunk (mainline) and memunmap_pages() each. Clients' SVMMs stay until
 * their files are closed (nouveau_svmm_fini() at postclose). A K: it waits
 * for the eviction's copies.
 */
export function* nouveauRemove(k: Kernel): K<void> {
  const drm = nouveauDevice(k);
  if (!drm) return;
  unregisterChrdev(k, NOUVEAU_SIM_PATH);
  drm.removed = true;
  yield* drm.dmem.fini();
  k.unregisterChecker(NOUVEAU_CHECKER);
  k.driverData.delete(NOUVEAU_DATA);
}

function cliOf(file: File): NouveauCli {
  const c = file.privateData as NouveauCli | null;
  if (c === null) throw new KernelBug('BUG', `nouveau: ${file.path} has no client`);
  return c;
}

/** nouveau_drm_open(): a client for the file. -ENODEV after removal. */
function* nouveauOpen(file: File): K<number> {
  const drm = nouveauDevice(file.kernel);
  if (!drm || drm.removed) return -19; /* -ENODEV */
  const cli = new NouveauCli(drm);
  drm.clients.add(cli);
  file.privateData = cli;
  return 0;
}

/** nouveau_drm_postclose() -> nouveau_cli_fini() -> nouveau_svmm_fini(). */
function* nouveauRelease(file: File): K<void> {
  const cli = cliOf(file);
  if (cli.svmm !== null) {
    yield* cli.drm.svm.svmmFini(cli.svmm);
    cli.svmm = null;
  }
  cli.drm.clients.delete(cli);
  file.privateData = null;
}

/**
 * nouveau_svmm_init(dev, data, file_priv): -EBUSY if the client has an
 * SVMM, -EINVAL without an mm; else the SVMM of current->mm.
 */
function* svmInit(cli: NouveauCli, arg: number): K<number> {
  const k = cli.drm.k;
  const mm = k.current.mm;
  if (mm === null) return -EINVAL;
  const buf = new Uint8Array(DRM_NOUVEAU_SVM_INIT_SIZE);
  if (yield* copyFromUser(mm, buf, arg, buf.length)) return -EFAULT;
  const [uaddr, usize] = decodeU64s(buf);
  if (cli.svmm !== null) return -EBUSY;
  cli.svmm = yield* cli.drm.svm.svmmInit(mm, Number(uaddr), Number(usize));
  return 0;
}

/**
 * nouveau_svmm_bind(dev, data, file_priv): va_start is rounded down and
 * va_end up to pages; -EINVAL for reserved0/1 set, a bit above the valid
 * ones, va_start >= va_end, a command other than MIGRATE, a target other
 * than GPU_VRAM, a stride (the priority is decoded by nothing: mainline
 * dropped its check, any value is accepted); then current's mm
 * (get_task_mm(): -EINVAL without one), mmap_lock for read, -EINVAL without
 * an SVMM; for each VMA piece of [va_start, va_end)
 * nouveau_dmem_migrate_vma() with the client's SVMM (errors ignored:
 * "best effort"). result = 0.
 *
 * As in the kernel, the pages migrated are current->mm's while the GPU
 * entries nouveau_pfns_map() programs are the SVMM's: a process that
 * inherited the file (fork) binds its own pages into the parent's GPU
 * address space (docs/FINDINGS.md, nouveau-bind-inherited-file).
 */
function* svmBind(cli: NouveauCli, arg: number): K<number> {
  const k = cli.drm.k;
  const s = k.sched;
  const cmm = k.current.mm;
  if (cmm === null) return -EINVAL;
  const buf = new Uint8Array(DRM_NOUVEAU_SVM_BIND_SIZE);
  if (yield* copyFromUser(cmm, buf, arg, buf.length)) return -EFAULT;
  const f = decodeU64s(buf);
  const header = f[0];
  const pageMask = ~BigInt(PAGE_SIZE - 1);
  const vaStartB = f[1] & pageMask;
  const vaEndB = BigInt.asUintN(64, (f[2] + BigInt(PAGE_SIZE - 1)) & pageMask);
  if (f[6] !== 0n || f[7] !== 0n) return -EINVAL; /* reserved0, reserved1 */
  if (header >> BigInt(NOUVEAU_SVM_BIND_VALID_BITS)) return -EINVAL;
  if (vaStartB >= vaEndB) return -EINVAL;
  const cmd = Number(header & BigInt(NOUVEAU_SVM_BIND_COMMAND_MASK));
  if (cmd !== NOUVEAU_SVM_BIND_COMMAND__MIGRATE) return -EINVAL;
  const target = Number((header >> BigInt(NOUVEAU_SVM_BIND_TARGET_SHIFT)) & BigInt(NOUVEAU_SVM_BIND_TARGET_MASK));
  if (target !== NOUVEAU_SVM_BIND_TARGET__GPU_VRAM) return -EINVAL;
  if (f[4] !== 0n) return -EINVAL; /* stride */
  const mm = cmm; /* get_task_mm(current) */
  if (mm.mmUsers === 0) return -EINVAL;
  const vaStart = Number(vaStartB);
  const vaEnd = Number(vaEndB);
  yield* mmapReadLock(mm);
  try {
    if (cli.svmm === null) return -EINVAL;
    for (let addr = vaStart; addr < vaEnd;) {
      const vma = mm.findVma(addr);
      if (vma === null || vma.start >= vaEnd) break;
      addr = Math.max(addr, vma.start);
      const next = Math.min(vma.end, vaEnd);
      yield* cli.drm.dmem.migrateVma(cli.svmm, vma, addr, next);
      addr = next;
    }
  } finally {
    mm.mmapLock.readUnlock(s);
  }
  f[5] = 0n;
  if (yield* copyToUser(mm, arg, encodeU64s(f), buf.length)) return -EFAULT;
  return 0;
}

/** NOUVEAU_SIM_GPU_ACCESS (model only): see uapi.ts. */
function* gpuAccessIoctl(cli: NouveauCli, arg: number): K<number> {
  const k = cli.drm.k;
  const mm = k.current.mm;
  if (mm === null) return -EINVAL;
  const buf = new Uint8Array(NOUVEAU_SIM_GPU_ACCESS_SIZE);
  if (yield* copyFromUser(mm, buf, arg, buf.length)) return -EFAULT;
  const f = decodeU64s(buf);
  const addr = Number(f[0]);
  const ptr = Number(f[1]);
  const npages = Number(f[2]);
  const access = Number(f[3]);
  if (cli.svmm === null) return -EINVAL;
  if (f[0] % 4096n || f[2] === 0n || f[2] > BigInt(NOUVEAU_SIM_MAX_ACCESS_PAGES) || f[3] > BigInt(GPU_ACCESS_ATOMIC)) return -EINVAL;
  const data = new Uint8Array(npages * PAGE_SIZE);
  if (access !== 0 && (yield* copyFromUser(mm, data, ptr, data.length))) return -EFAULT;
  const r = yield* cli.drm.svm.gpuAccess(cli.svmm, addr, npages, access, data);
  if (r < 0) return r;
  if (access === 0 && (yield* copyToUser(mm, ptr, data, data.length))) return -EFAULT;
  f[4] = BigInt(r);
  if (yield* copyToUser(mm, arg, encodeU64s(f), buf.length)) return -EFAULT;
  return 0;
}

function* statIoctl(cli: NouveauCli, arg: number): K<number> {
  const k = cli.drm.k;
  const mm = k.current.mm;
  if (mm === null) return -EINVAL;
  const d = cli.drm.dmem;
  const inval = cli.svmm?.stat.invalidations ?? 0;
  const vals = [d.allocated(), d.stat.toDevice, d.stat.toRam, d.stat.evicted, cli.drm.svm.stat.faults, inval].map((x) => BigInt(x));
  if (yield* copyToUser(mm, arg, encodeU64s(vals), NOUVEAU_SIM_STAT_SIZE)) return -EFAULT;
  return 0;
}

/** ->unlocked_ioctl (drm_ioctl() dispatch to the driver's ioctls). Unknown: -EINVAL. */
function* nouveauIoctl(file: File, cmd: number, arg: number): K<number> {
  const cli = cliOf(file);
  if (cli.drm.removed) return -19; /* -ENODEV: drm_dev_enter() fails after unplug */
  switch (cmd >>> 0) {
    case DRM_IOCTL_NOUVEAU_SVM_INIT:
      return yield* svmInit(cli, arg);
    case DRM_IOCTL_NOUVEAU_SVM_BIND:
      return yield* svmBind(cli, arg);
    case NOUVEAU_SIM_GPU_ACCESS:
      return yield* gpuAccessIoctl(cli, arg);
    case NOUVEAU_SIM_CHAN_KILL:
      cli.drm.dmem.chan.kill();
      return 0;
    case NOUVEAU_SIM_STAT:
      return yield* statIoctl(cli, arg);
    default:
      return -EINVAL;
  }
}

/** The driver's file operations (drm_fops + nouveau's driver ioctls). */
export const nouveauFops: FileOperations = {
  owner: 'nouveau',
  open: nouveauOpen,
  release: nouveauRelease,
  unlockedIoctl: nouveauIoctl,
};
