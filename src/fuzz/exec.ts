// SPDX-License-Identifier: GPL-2.0-only
/**
 * Running one fuzz sequence: a fresh System (checked mode, test_hmm and
 * gup_test loaded), the operations of ops.ts issued through the simulated
 * processes exactly as a user program would (syscalls, CPU loads/stores,
 * ioctls whose structs live in the process's memory), and after every
 * operation a comparison with the shadow (shadow.ts): the return value
 * against the set of results the call may give, every byte a CPU, a device
 * or a pin reads against the contents the page may have.
 *
 * A KernelBug or WARNING is classified with the known-findings registry
 * (findings.ts); anything unexpected ends the sequence as a violation.
 */
import { System } from '../user/system.js';
import { type Process, ProcessSignal, SIGBUS, SIGSEGV } from '../user/process.js';
import { KernelBug, KernelOops } from '../kernel/printk.js';
import { applyConfigSetting, defaultConfig, type KernelConfig } from '../kernel/config.js';
import { EAGAIN, EBUSY, EFAULT, EINVAL, ENODEV, ENOENT, ENOMEM, EPERM } from '../kernel/errno.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_HUGETLB, MAP_PRIVATE, MAP_SHARED } from '../kernel/mm/mmap.js';
import { MADV_COLLAPSE, MADV_DONTNEED, MADV_FREE, MADV_HUGEPAGE, MADV_PAGEOUT } from '../kernel/mm/madvise.js';
import { MREMAP_FIXED, MREMAP_MAYMOVE } from '../kernel/mm/mremap.js';
import { O_RDWR, O_TMPFILE } from '../kernel/fs/chardev.js';
import { FOLL_WRITE } from '../kernel/mm/gup.js';
import { testHmmInit, testHmmModule } from '../drivers/test_hmm/index.js';
import { Snapshot } from '../explore/snapshot.js';
import {
  HMM_DMIRROR_CHECK_EXCLUSIVE, HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_FLAGS, HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_READ, HMM_DMIRROR_RELEASE, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_WRITE,
  HMM_DMIRROR_PROT_ERROR, HMM_DMIRROR_PROT_WRITE, encodeCmd,
} from '../drivers/test_hmm/uapi.js';
import {
  GUP_TEST_PATH, PIN_LONGTERM_BENCHMARK, PIN_LONGTERM_TEST_READ, PIN_LONGTERM_TEST_START, PIN_LONGTERM_TEST_STOP,
  PIN_LONGTERM_TEST_FLAG_USE_FAST, PIN_LONGTERM_TEST_FLAG_USE_WRITE, SIZEOF_PIN_LONGTERM_TEST, encodeGupTest, gupTestInit,
} from '../drivers/gup_test.js';
import {
  DRM_IOCTL_NOUVEAU_SVM_BIND, DRM_IOCTL_NOUVEAU_SVM_INIT, NOUVEAU_SIM_GPU_ACCESS, NOUVEAU_SIM_PATH, NOUVEAU_SVM_BIND_TARGET__GPU_VRAM,
  encodeU64s, nouveauDevice, nouveauInit, nouveauRemove, svmBindHeader,
} from '../drivers/nouveau/index.js';
import { runSync } from '../kernel/sched/sched.js';
import { matchFinding, type KnownFinding } from './findings.js';
import {
  ARENA, BUF_CMD, BUF_DATA, HPAGE_PAGES, MAX_OP_PAGES, MAX_PROCS, PAGE, REGIONS, type DmCmd, type DriverName, type Op, type OpName, type Region,
} from './ops.js';
import { Obj, ShadowMm, type Cands, type SVma, ZERO, describeCands, isHuge, isShared, matchCands, uniq, writeCands } from './shadow.js';

export type DeviceKind = 'private' | 'coherent';
export type ThpChoice = 'always' | 'madvise' | 'never' | 'mixed';

/** What a sequence runs on. */
export interface RunConfig {
  /** `--config name=value` settings applied over the fuzz machine's defaults. */
  settings: readonly string[];
  devices: readonly DeviceKind[];
  thp: ThpChoice;
  /**
   * The drivers whose operations are generated (`--drivers`). Absent:
   * dmirror only (what every reproducer written before the nouveau
   * operations means). The machine always has test_hmm; nouveau is probed
   * when it is listed.
   */
  drivers?: readonly DriverName[];
}

export const DEFAULT_RUN_CONFIG: RunConfig = { settings: [], devices: ['private', 'coherent'], thp: 'madvise' };

/** The drivers of rc (dmirror only when rc.drivers is absent). */
export function driversOf(rc: RunConfig): readonly DriverName[] {
  return rc.drivers ?? ['dmirror'];
}

/** VRAM of the fuzz machine's GPU: 2 MiB chunks (8 MiB: less than a big bind, so VRAM runs out too). */
export const FUZZ_VRAM_CHUNKS = 4;

export type ViolationClass = 'shadow' | 'errno' | 'signal' | 'kernel' | 'js';

/** A difference from the shadow or an unexpected report: the sequence fails. */
export class Violation extends Error {
  constructor(readonly cls: ViolationClass, message: string, readonly bytesLost = 0) {
    super(message);
    this.name = 'Violation';
  }
}

export interface SeqResult {
  /** Operations executed (including the one that failed). */
  ops: number;
  violation: { cls: ViolationClass; message: string; opIndex: number; op: Op | null } | null;
  /** A known finding that ended the sequence (or was hit as a WARNING). */
  findings: Array<{ id: string; rule: string; opIndex: number }>;
  bytesLost: number;
  /** Operations executed, by kind. */
  kinds: Partial<Record<OpName, number>>;
  /** Calls that reached the nouveau driver (open, ioctl, close, device removal; final GPU reads included). */
  nouveauCalls: number;
  /** mTHP folios (orders 2 to 8) the sequence's anonymous faults allocated (hugepages-<size>kB/stats/anon_fault_alloc). */
  mthpFolios: number;
}

/** Sum of the per-size anon_fault_alloc counters of the mTHP orders (2 to 8). */
function mthpFaultAllocs(sys: { kernel: { mthpStats: { anon_fault_alloc: Float64Array } } }): number {
  const a = sys.kernel.mthpStats.anon_fault_alloc;
  let n = 0;
  for (let o = 2; o < a.length - 1; o++) n += a[o];
  return n;
}

/** The KernelConfig of a fuzz machine: small RAM, swap, a hugetlb pool, checked mode, then the settings. */
export function fuzzKernelConfig(rc: RunConfig): KernelConfig {
  const cfg = defaultConfig({
    ramBytes: 256 * 1024 * 1024, swapMiB: 64, nrHugepages: 16, checked: true,
    thp: rc.thp === 'mixed' ? 'madvise' : rc.thp, spm: rc.devices.includes('coherent'),
  });
  for (const s of rc.settings) {
    const err = applyConfigSetting(cfg, s);
    if (err !== null) throw new Error(err);
  }
  return cfg;
}

const DEVICE_PATHS: Record<DeviceKind, string[]> = {
  private: ['/dev/hmm_dmirror0', '/dev/hmm_dmirror1'],
  coherent: ['/dev/hmm_dmirror2', '/dev/hmm_dmirror3'],
};

/** An open dmirror file (shared by the processes that inherited it). */
interface SFile {
  path: string;
  /** The process whose mm the mirror mirrors (current->mm at open). */
  mirror: SProc;
  /** Device-exclusive knowledge per arena page: 1 atomic, 0 not, -1 unknown; absent: `known` says. */
  atomic: Map<number, 0 | 1 | -1>;
  known: boolean;
}

/** The memfd and gup_test fds every process of a lineage inherits. */
interface Lineage {
  memfd: number;
  memObj: Obj;
  gupFd: number;
}

/** An open nouveau file (shared by the processes that inherited it). */
interface NvFile {
  /** The device generation it was opened on (an nvkill makes its ioctls -ENODEV). */
  gen: number;
  /** The process whose mm the SVMM mirrors (current->mm at SVM_INIT), or null before SVM_INIT. */
  mirror: SProc | null;
}

class SProc {
  alive = true;
  fds: Array<{ fd: number; file: SFile }> = [];
  nvfds: Array<{ fd: number; file: NvFile }> = [];
  constructor(readonly proc: Process, public mm: ShadowMm, readonly lin: Lineage) {}
}

interface PinState {
  owner: SProc;
  g0: number;
  /** Per pinned page: still the page the owner maps at g0 + i. */
  linked: boolean[];
}

const DM_CMDS: Record<DmCmd, number> = {
  READ: HMM_DMIRROR_READ, WRITE: HMM_DMIRROR_WRITE, MIGRATE_TO_DEV: HMM_DMIRROR_MIGRATE_TO_DEV,
  MIGRATE_TO_SYS: HMM_DMIRROR_MIGRATE_TO_SYS, EXCLUSIVE: HMM_DMIRROR_EXCLUSIVE, CHECK_EXCLUSIVE: HMM_DMIRROR_CHECK_EXCLUSIVE,
  SNAPSHOT: HMM_DMIRROR_SNAPSHOT, RELEASE: HMM_DMIRROR_RELEASE, FLAGS: HMM_DMIRROR_FLAGS,
};

const MADV: Record<string, number> = { DONTNEED: MADV_DONTNEED, FREE: MADV_FREE, PAGEOUT: MADV_PAGEOUT, HUGEPAGE: MADV_HUGEPAGE, COLLAPSE: MADV_COLLAPSE };

/** The byte a fuzz write stores in arena page g for pattern v (differs page to page). */
export function patternByte(v: number, g: number): number {
  return (v + g * 37) & 0xff || 1;
}

const gAddr = (g: number): number => ARENA + g * PAGE;

/** One machine and its shadow, driven op by op. */
export class FuzzMachine {
  readonly sys: System;
  readonly procs: SProc[] = [];
  readonly devices: string[];
  readonly nouveau: boolean;
  /** Device generation of the nouveau GPU (nvkill: removal and a new probe). */
  private nvGen = 0;
  private pin: PinState | null = null;
  private files = new Set<SFile>();
  bytesLost = 0;
  /** Calls that reached the nouveau driver. */
  nvCalls = 0;
  private warningsSeen = 0;
  /** Known 'ERRNO' findings of the last operation (reported by checkWarnings; the sequence goes on). */
  private errnoFindings: Array<{ f: KnownFinding; rule: string }> = [];
  /** Findings hit as WARNINGs (a known WARN does not end the sequence). */
  readonly warnFindings: Array<{ f: KnownFinding; rule: string }> = [];

  /**
   * A machine for rc: a new System, or (from a MachinePool) the pool's
   * System rolled back to its state right after setup.
   */
  constructor(readonly rc: RunConfig, template?: { sys: System; root: Process; lin: Lineage }) {
    this.devices = driversOf(rc).includes('dmirror') ? rc.devices.flatMap((d) => DEVICE_PATHS[d]) : [];
    this.nouveau = driversOf(rc).includes('nouveau');
    if (this.devices.length === 0 && !this.nouveau) throw new Error('fuzz: no device enabled');
    if (template) {
      this.sys = template.sys;
      // The memfd is made per sequence (shmem state is not rolled back reliably).
      this.procs.push(new SProc(template.root, new ShadowMm(), { ...template.lin, memfd: FuzzMachine.memfd(template.root), memObj: new Obj('memfd', 4096) }));
      return;
    }
    this.sys = new System(fuzzKernelConfig(rc));
    const k = this.sys.kernel;
    if (testHmmInit(k) !== 0) throw new Error('fuzz: test_hmm did not load');
    if (gupTestInit(k) !== 0) throw new Error('fuzz: gup_test did not load');
    if (this.nouveau && nouveauInit(k, { vramChunks: FUZZ_VRAM_CHUNKS }) !== 0) throw new Error('fuzz: nouveau did not probe');
    this.spawnRoot();
  }

  /** The setup state a MachinePool keeps (right after construction). */
  setupState(): { sys: System; root: Process; lin: Lineage } {
    const r = this.procs[0];
    return { sys: this.sys, root: r.proc, lin: r.lin };
  }

  /** Close the first process's memfd (the pool snapshots the machine without it). */
  dropMemfd(): void {
    const r = this.procs[0];
    if (r.proc.close(r.lin.memfd) !== 0) throw new Error('fuzz: close memfd');
  }

  /**
   * End a sequence so the machine can be rolled back: stop a long-term pin
   * (gup_test keeps it in module state that a rollback cannot reach).
   * False if that is not possible (then the machine is not reused).
   */
  quiesce(): boolean {
    if (this.pin === null) return true;
    const sp = this.live().find((x) => x.lin === this.pin!.owner.lin) ?? this.live()[0];
    if (sp === undefined) return false;
    return sp.proc.ioctl(sp.lin.gupFd, PIN_LONGTERM_TEST_STOP, 0) === 0;
  }

  /** open(O_TMPFILE) a 16 MiB tmpfs file in p. */
  static memfd(p: Process): number {
    const memfd = p.open('/dev/shm', O_TMPFILE | O_RDWR);
    if (memfd < 0 || p.ftruncate(memfd, 4096 * PAGE) !== 0) throw new Error(`fuzz: memfd ${memfd}`);
    return memfd;
  }

  /** A new first process: its buffers, a memfd and the gup_test fd. */
  private spawnRoot(): void {
    const p = this.sys.spawn('fuzz');
    const rw = 3;
    if (p.mmap(BUF_CMD, PAGE, rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED) !== BUF_CMD) throw new Error('fuzz: cmd buffer');
    if (p.mmap(BUF_DATA, MAX_OP_PAGES * PAGE, rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED) !== BUF_DATA) throw new Error('fuzz: data buffer');
    const memfd = FuzzMachine.memfd(p);
    const gupFd = p.open(GUP_TEST_PATH, O_RDWR);
    if (gupFd < 0) throw new Error(`fuzz: gup_test open ${gupFd}`);
    this.procs.push(new SProc(p, new ShadowMm(), { memfd, memObj: new Obj('memfd', 4096), gupFd }));
  }

  private live(): SProc[] {
    return this.procs.filter((s) => s.alive);
  }

  private procAt(i: number): SProc | null {
    const l = this.live();
    return l.length ? l[i % l.length] : null;
  }

  /** The region and page within it of (r, a), snapped to one of mm's mappings when s (see Rng). */
  static place(mm: ShadowMm, r: Region, a: number, s: boolean): [Region, number] {
    if (s && mm.vmas.length) {
      const v = mm.vmas[a % mm.vmas.length];
      const g = v.start + (Math.floor(a / mm.vmas.length) % (v.end - v.start));
      const reg = (Object.keys(REGIONS) as Region[]).find((x) => g >= REGIONS[x][0] && g < REGIONS[x][0] + REGIONS[x][1])!;
      return [reg, g - REGIONS[reg][0]];
    }
    return [r, a % REGIONS[r][1]];
  }

  /** The end of what a final read-back sweep reads of VMA v: its object's end, at most MAX_OP_PAGES. */
  static sweepEnd(v: SVma): number {
    let end = v.end;
    if (v.obj !== null) end = Math.max(v.start, Math.min(v.end, v.start + (v.obj.size - v.pgoff)));
    return Math.min(end, v.start + MAX_OP_PAGES);
  }

  /** [g0, g1) of a range op on mm. */
  static rangeOf(mm: ShadowMm, x: { r: Region; a: number; n: number; s: boolean }): [number, number] {
    const [r, a] = FuzzMachine.place(mm, x.r, x.a, x.s);
    return FuzzMachine.range(r, a, x.n);
  }

  /** [g0, g1) of a range op; H ranges are rounded to whole huge pages. */
  static range(r: Region, a: number, n: number): [number, number] {
    const [base, cnt] = REGIONS[r];
    let s = a % cnt;
    let len = Math.max(1, Math.min(n, cnt - s));
    if (r === 'H') {
      s = Math.floor(s / HPAGE_PAGES) * HPAGE_PAGES;
      len = Math.min(cnt - s, Math.max(HPAGE_PAGES, Math.ceil(len / HPAGE_PAGES) * HPAGE_PAGES));
    }
    return [base + s, base + s + len];
  }

  /* ---------------- checks ---------------- */

  private expectRet(what: string, got: number, allowed: readonly number[]): void {
    if (!allowed.includes(got)) throw new Violation('errno', `${what} returned ${got}, expected ${allowed.length === 1 ? allowed[0] : `one of ${allowed.join(', ')}`}`);
  }

  /**
   * The shadow after a device (dmirror WRITE) or GPU (nouveau write/atomic)
   * write of n pages from page g0: the written bytes where it returned 0;
   * where it failed, each writable page may hold its old or its new bytes
   * (the write may have landed partly).
   */
  private shadowDeviceWrite(mm: ShadowMm, g0: number, n: number, data: Uint8Array, ret: number): void {
    for (let i = 0; i < n; i++) {
      const g = g0 + i;
      const v = mm.vmaAt(g);
      if (v === null || (v.prot & 3) !== 3 || mm.beyond(v, g)) continue;
      const page: Cands = [data.slice(i * PAGE, (i + 1) * PAGE)];
      mm.setPage(v, g, ret === 0 ? page : uniq([...mm.pageIn(v, g), ...page]));
    }
  }

  /** Compare `got` (n whole pages from page g0 of sp) with the shadow. */
  private comparePages(what: string, sm: ShadowMm, g0: number, got: Uint8Array, skip?: (i: number) => boolean): void {
    const n = got.length / PAGE;
    for (let i = 0; i < n; i++) {
      if (skip?.(i)) continue;
      const c = sm.page(g0 + i);
      if (c === null) continue;
      const bad = matchCands(c, 0, got, i * PAGE, PAGE);
      if (bad >= 0) {
        this.bytesLost += bad;
        throw new Violation('shadow', `${what}: page ${g0 + i} (0x${gAddr(g0 + i).toString(16)}) has ${bad} wrong bytes: got [${Array.from(got.subarray(i * PAGE, i * PAGE + 8)).join(',')}...], expected ${describeCands(c, 0)}`, bad);
      }
    }
  }

  /** A process died by a signal (or exited): forget it. */
  private dead(sp: SProc): void {
    sp.alive = false;
    sp.fds = [];
    sp.nvfds = [];
    if (this.pin && this.pin.owner === sp) this.pin.linked.fill(false);
    // The lineage's gup_test file had its last reference dropped:
    // gup_test_release() stops the long-term pin test.
    if (!this.procs.some((x) => x.alive && x.lin === sp.lin)) this.pin = null;
  }

  /**
   * Device-exclusive knowledge of the mirrors of sp's mm (all mirrors when
   * sp is null) is lost over [g0, g1) (everywhere by default): an operation
   * that may invalidate or restore device-exclusive entries.
   */
  private forgetAtomic(sp: SProc | null, g0 = 0, g1 = Infinity): void {
    for (const f of this.files) {
      if (sp !== null && f.mirror !== sp) continue;
      if (g1 === Infinity) {
        f.atomic.clear();
        f.known = false;
      } else for (let g = g0; g < g1; g++) {
        if (f.known) f.atomic.set(g, -1);
        else f.atomic.delete(g);
      }
    }
  }

  private atomicState(f: SFile, g: number): 0 | 1 | -1 {
    const s = f.atomic.get(g);
    if (s === undefined) return f.known ? 0 : -1;
    return s;
  }

  private unlinkPin(sp: SProc): void {
    if (this.pin && this.pin.owner === sp) this.pin.linked.fill(false);
  }

  /* ---------------- ops ---------------- */

  apply(op: Op): void {
    switch (op.o) {
      case 'thp':
        this.sys.kernel.config.thp = op.m;
        return;
      case 'fork':
        return this.fork(op.p);
      case 'nvkill':
        return this.nvKill();
    }
    const sp = this.procAt(op.p);
    if (sp === null) return;
    switch (op.o) {
      case 'mmap': return this.mmap(sp, op);
      case 'munmap': return this.munmap(sp, op);
      case 'mprotect': return this.mprotect(sp, op);
      case 'madvise': return this.madvise(sp, op);
      case 'mremap': return this.mremap(sp, op);
      case 'write': return this.cpu(sp, ...FuzzMachine.place(sp.mm, op.r, op.a, op.s), op.off, op.len, op.v);
      case 'read': return this.cpu(sp, ...FuzzMachine.place(sp.mm, op.r, op.a, op.s), op.off, op.len, -1);
      case 'exit': {
        /* exit picks among the processes but the first (which stays, as does a shell). */
        const rest = this.live().slice(1);
        return rest.length ? this.exit(rest[op.p % rest.length]) : undefined;
      }
      case 'open': return this.open(sp, op.d);
      case 'close': return this.close(sp, op.f);
      case 'dm': return this.dm(sp, op);
      case 'pin': return this.pinStart(sp, op);
      case 'pinread': return this.pinRead(sp);
      case 'unpin': return this.pinStop(sp);
      case 'gup': return this.gup(sp, op);
      case 'nvopen': return this.nvOpen(sp, op.i);
      case 'nvclose': return this.nvClose(sp, op.f);
      case 'nv': return this.nv(sp, op);
    }
  }

  private mmap(sp: SProc, op: Extract<Op, { o: 'mmap' }>): void {
    const huge = isHuge(op.kind);
    let [reg, a] = FuzzMachine.place(sp.mm, op.r, op.a, op.s);
    if (huge && reg !== 'H') [reg, a] = ['H', op.a % REGIONS.H[1]];
    const [g0, g1] = FuzzMachine.range(reg, a, op.n);
    const addr = gAddr(g0);
    const len = (g1 - g0) * PAGE;
    let flags = MAP_FIXED;
    let fd = -1;
    let off = 0;
    switch (op.kind) {
      case 'anon': flags |= MAP_PRIVATE | MAP_ANONYMOUS; break;
      case 'shanon': flags |= MAP_SHARED | MAP_ANONYMOUS; break;
      case 'file': flags |= MAP_SHARED; fd = sp.lin.memfd; off = g0 * PAGE; break;
      case 'fileP': flags |= MAP_PRIVATE; fd = sp.lin.memfd; off = g0 * PAGE; break;
      case 'huge': flags |= MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB; break;
      case 'hugeS': flags |= MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB; break;
    }
    const r = sp.proc.mmap(addr, len, op.prot, flags, fd, off);
    this.forgetAtomic(sp);
    this.unlinkPin(sp);
    if (huge && r === -ENOMEM) {
      // The hugetlb pool ran out: the old mapping may or may not be gone;
      // make the range empty on both sides.
      this.expectRet('munmap after failed hugetlb mmap', sp.proc.munmap(addr, len), [0]);
      sp.mm.unmap(g0, g1);
      return;
    }
    this.expectRet(`mmap(${op.kind})`, r, [addr]);
    const obj = op.kind === 'file' || op.kind === 'fileP' ? sp.lin.memObj : isShared(op.kind) ? new Obj(op.kind, g1 - g0) : null;
    sp.mm.insert({ start: g0, end: g1, prot: op.prot, kind: op.kind, obj, pgoff: op.kind === 'file' || op.kind === 'fileP' ? g0 : 0 });
  }

  private munmap(sp: SProc, op: Extract<Op, { o: 'munmap' }>): void {
    const [g0, g1] = FuzzMachine.rangeOf(sp.mm, op);
    const ret = sp.proc.munmap(gAddr(g0), (g1 - g0) * PAGE);
    this.forgetAtomic(sp);
    this.unlinkPin(sp);
    this.expectRet('munmap', ret, [0]);
    sp.mm.unmap(g0, g1);
  }

  private mprotect(sp: SProc, op: Extract<Op, { o: 'mprotect' }>): void {
    const [g0, g1] = FuzzMachine.rangeOf(sp.mm, op);
    const ret = sp.proc.mprotect(gAddr(g0), (g1 - g0) * PAGE, op.prot);
    this.forgetAtomic(sp);
    // do_mprotect_pkey(): VMA by VMA from start; a hole ends it with -ENOMEM (earlier VMAs keep the change).
    const vs = sp.mm.within(g0, g1);
    let cur = g0;
    let exp = 0;
    for (const v of vs) {
      if (v.start > cur) { exp = -ENOMEM; break; }
      v.prot = op.prot;
      cur = v.end;
    }
    if (cur < g1) exp = -ENOMEM;
    this.expectRet('mprotect', ret, [exp]);
  }

  private madvise(sp: SProc, op: Extract<Op, { o: 'madvise' }>): void {
    const [g0, g1] = FuzzMachine.rangeOf(sp.mm, op);
    const ret = sp.proc.madvise(gAddr(g0), (g1 - g0) * PAGE, MADV[op.adv]);
    this.forgetAtomic(sp);
    const mm = sp.mm;
    const full = mm.covered(g0, g1, 0);
    const anyHuge = mm.any(g0, g1, (v) => isHuge(v.kind));
    const allAnon = !mm.any(g0, g1, (v) => v.kind !== 'anon');
    let allowed: number[];
    if (op.adv === 'COLLAPSE' || anyHuge) allowed = [0, -ENOMEM, -EINVAL, -EAGAIN, -EBUSY];
    else if (op.adv === 'FREE' && !allAnon) allowed = [-EINVAL, -ENOMEM];
    else allowed = [full ? 0 : -ENOMEM];
    this.expectRet(`madvise(${op.adv})`, ret, allowed);
    if (op.adv === 'HUGEPAGE' && (ret === 0 || ret === -ENOMEM)) for (const v of mm.within(g0, g1)) if (!isHuge(v.kind)) v.hp = true;
    if (op.adv === 'DONTNEED' || op.adv === 'FREE') {
      this.unlinkPin(sp);
      const definite = op.adv === 'DONTNEED' && (ret === 0 || ret === -ENOMEM);
      for (const v of mm.within(g0, g1)) {
        if (isShared(v.kind)) continue;
        if (op.adv === 'FREE' && v.kind !== 'anon') continue;
        for (let g = v.start; g < v.end; g++) {
          if (definite) mm.priv.delete(g);
          else {
            const old = mm.pageIn(v, g);
            const after = v.kind === 'fileP' ? v.obj!.get(v.pgoff + g - v.start) : ZERO;
            mm.priv.set(g, uniq([...old, ...after]));
          }
        }
      }
    }
  }

  private mremap(sp: SProc, op: Extract<Op, { o: 'mremap' }>): void {
    const [r] = FuzzMachine.place(sp.mm, op.r, op.a, op.s);
    const [g0, g1] = FuzzMachine.rangeOf(sp.mm, op);
    const [n0, n1] = FuzzMachine.range(r, op.a2, op.n2);
    const n = g1 - g0;
    const n2 = n1 - n0;
    const ret = sp.proc.mremap(gAddr(g0), n * PAGE, n2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, gAddr(n0));
    this.forgetAtomic(sp);
    this.unlinkPin(sp);
    const mm = sp.mm;
    // mremap_to(): overlap check, the VMA at addr, hugetlb rules, then unmap
    // the target and the shrunk tail, then the old range must lie in one VMA.
    if (g0 < n1 && n0 < g1) return this.expectRet('mremap (overlap)', ret, [-EINVAL]);
    let v = mm.vmaAt(g0);
    if (v === null) return this.expectRet('mremap (no vma)', ret, [-EFAULT]);
    if (isHuge(v.kind) && n2 > n) return this.expectRet('mremap (hugetlb grow)', ret, [-EINVAL]);
    const kind = v.kind;
    const prot = v.prot;
    const obj = v.obj;
    const hp = v.hp;
    mm.unmap(n0, n1);
    let oldLen = n;
    if (n > n2) {
      mm.unmap(g0 + n2, g1);
      oldLen = n2;
    }
    // [g0, g0 + oldLen) must lie in one kernel VMA. The shadow's VMAs may be
    // cut where the kernel merged them again: across a cut between pieces
    // with the same attributes (and contiguous file offsets) either result
    // is possible; across a hole or differing attributes, -EFAULT.
    const pieces = mm.within(g0, g0 + oldLen);
    let one = pieces.length > 0 && pieces[0].start === g0;
    let cut = false;
    for (let i = 1; one && i < pieces.length; i++) {
      const a = pieces[i - 1];
      const b = pieces[i];
      if (b.start !== a.end || b.kind !== a.kind || b.prot !== a.prot || b.obj !== a.obj || !!b.hp !== !!a.hp) one = false;
      else if (b.obj !== null && b.pgoff !== a.pgoff + (a.end - a.start)) one = false;
      else cut = true;
    }
    if (one && pieces[pieces.length - 1].end < g0 + oldLen) one = false;
    if (!one) return this.expectRet('mremap (old range not in one vma)', ret, [-EFAULT]);
    this.expectRet('mremap', ret, cut ? [gAddr(n0), -EFAULT] : [gAddr(n0)]);
    if (ret === -EFAULT) return;
    const pgoff = pieces[0].pgoff;
    const moved: Array<Cands | undefined> = [];
    for (let i = 0; i < oldLen; i++) moved.push(mm.priv.get(g0 + i));
    mm.unmap(g0, g0 + oldLen);
    mm.insert({ start: n0, end: n1, prot, kind, obj, pgoff, hp });
    for (let i = 0; i < oldLen; i++) if (moved[i] !== undefined) mm.priv.set(n0 + i, moved[i]!);
  }

  /** A CPU access of [byte off of page a, + len): a write of pattern v, or a read (v < 0). */
  private cpu(sp: SProc, r: Region, a: number, off: number, len0: number, v: number): void {
    const [base, cnt] = REGIONS[r];
    const g0 = base + a;
    const len = Math.max(1, Math.min(len0, (base + cnt - g0) * PAGE - off));
    const addr = gAddr(g0) + off;
    const write = v >= 0;
    const mm = sp.mm;
    // The chunks the access touches and where it must fault.
    const chunks: Array<{ g: number; o: number; n: number; at: number }> = [];
    let faultAt = -1;
    let faultSig = SIGSEGV;
    for (let done = 0; done < len;) {
      const x = addr + done;
      const g = Math.floor((x - ARENA) / PAGE);
      const o = x % PAGE;
      const n = Math.min(PAGE - o, len - done);
      const vma = mm.vmaAt(g);
      if (vma === null || !(vma.prot & (write ? 2 : 1))) {
        faultAt = x;
        break;
      }
      if (mm.beyond(vma, g)) {
        faultAt = x;
        faultSig = SIGBUS;
        break;
      }
      chunks.push({ g, o, n, at: done });
      done += n;
    }
    let data: Uint8Array | null = null;
    if (write) {
      data = new Uint8Array(len);
      for (let done = 0; done < len;) {
        const x = addr + done;
        const n = Math.min(PAGE - (x % PAGE), len - done);
        data.fill(patternByte(v, Math.floor((x - ARENA) / PAGE)), done, done + n);
        done += n;
      }
    }
    let got: Uint8Array | null = null;
    let sig: ProcessSignal | null = null;
    try {
      if (write) sp.proc.writeBytes(addr, data!);
      else got = sp.proc.readBytes(addr, len);
    } catch (e) {
      if (!(e instanceof ProcessSignal)) throw e;
      sig = e;
    }
    // Device-exclusive entries of the pages touched are restored.
    for (const f of this.files) if (f.mirror === sp) for (const c of chunks) f.atomic.set(c.g, 0);
    if (sig !== null) {
      this.dead(sp);
      if (faultAt < 0) throw new Violation('signal', `${write ? 'write' : 'read'} of 0x${addr.toString(16)}+${len}: ${sig.message}, the shadow expects no fault`);
      if (sig.signo !== faultSig || sig.addr !== faultAt) throw new Violation('signal', `${write ? 'write' : 'read'} of 0x${addr.toString(16)}+${len}: ${sig.message}, expected ${faultSig === SIGBUS ? 'SIGBUS' : 'SIGSEGV'} at 0x${faultAt.toString(16)}`);
    } else if (faultAt >= 0) {
      throw new Violation('signal', `${write ? 'write' : 'read'} of 0x${addr.toString(16)}+${len} succeeded, expected ${faultSig === SIGBUS ? 'SIGBUS at 0x' + faultAt.toString(16) + ' (beyond the end of the shared object)' : 'SIGSEGV at 0x' + faultAt.toString(16) + ' (no mapping or no permission)'}`);
    }
    for (const c of chunks) {
      if (!write && got === null) break; /* the read faulted: nothing was returned */
      const vma = mm.vmaAt(c.g)!;
      if (write) {
        mm.setPage(vma, c.g, writeCands(mm.pageIn(vma, c.g), c.o, data!, c.at, c.n));
      } else {
        const cands = mm.pageIn(vma, c.g);
        const bad = matchCands(cands, c.o, got!, c.at, c.n);
        if (bad >= 0) {
          this.bytesLost += bad;
          throw new Violation('shadow', `CPU read of page ${c.g} (0x${gAddr(c.g).toString(16)}) +${c.o}..+${c.o + c.n} by pid ${sp.proc.pid}: ${bad} wrong bytes: got [${Array.from(got!.subarray(c.at, c.at + 8)).join(',')}...], expected ${describeCands(cands, c.o)}`, bad);
        }
      }
    }
  }

  private fork(p: number): void {
    const live = this.live();
    if (live.length === 0) {
      this.spawnRoot();
      return;
    }
    if (live.length >= MAX_PROCS) return;
    const sp = live[p % live.length];
    const pid = sp.proc.fork(() => {});
    this.forgetAtomic(sp);
    if (pid < 0) throw new Violation('errno', `fork returned ${pid}`);
    const child = this.sys.procs.get(pid);
    if (child === undefined) throw new Violation('js', `fork: no process ${pid}`);
    const c = new SProc(child, sp.mm.clone(), sp.lin);
    c.fds = sp.fds.map((x) => ({ ...x }));
    c.nvfds = sp.nvfds.map((x) => ({ ...x }));
    this.procs.push(c);
  }

  private exit(sp: SProc): void {
    sp.proc.exit(0);
    this.forgetAtomic(null);
    this.dead(sp);
  }

  private open(sp: SProc, d: number): void {
    if (this.devices.length === 0) return;
    const path = this.devices[d % this.devices.length];
    const fd = sp.proc.open(path, O_RDWR);
    if (fd < 0) throw new Violation('errno', `open(${path}) returned ${fd}`);
    const file: SFile = { path, mirror: sp, atomic: new Map(), known: true };
    this.files.add(file);
    sp.fds.push({ fd, file });
  }

  private close(sp: SProc, f: number): void {
    if (sp.fds.length === 0) return;
    const i = f % sp.fds.length;
    const { fd } = sp.fds[i];
    sp.fds.splice(i, 1);
    this.expectRet(`close(${fd})`, sp.proc.close(fd), [0]);
    this.forgetAtomic(null);
  }

  /** struct hmm_dmirror_cmd at BUF_CMD; ioctl; returns the result. */
  private dmIoctl(sp: SProc, fd: number, cmd: number, g0: number, n: number, npagesField = BigInt(n)): number {
    sp.proc.writeBytes(BUF_CMD, encodeCmd({ addr: BigInt(gAddr(g0)), ptr: BigInt(BUF_DATA), npages: npagesField, cpages: 0n, faults: 0n }));
    return sp.proc.ioctl(fd, cmd, BUF_CMD);
  }

  private dm(sp: SProc, op: Extract<Op, { o: 'dm' }>): void {
    if (sp.fds.length === 0) return;
    const { fd, file } = sp.fds[op.f % sp.fds.length];
    const m = file.mirror;
    const mm = m.mm;
    const [g0, g1] = FuzzMachine.rangeOf(mm, op);
    const n = g1 - g0;
    const what = `${op.c} via ${file.path} (mirror of pid ${m.proc.pid}) by pid ${sp.proc.pid} of pages ${g0}..${g1 - 1}`;
    switch (op.c) {
      case 'READ':
      case 'WRITE': {
        const write = op.c === 'WRITE';
        let data: Uint8Array | null = null;
        if (write) {
          data = new Uint8Array(n * PAGE);
          for (let i = 0; i < n; i++) data.fill(patternByte(op.v, g0 + i), i * PAGE, (i + 1) * PAGE);
          sp.proc.writeBytes(BUF_DATA, data);
        }
        const ret = this.dmIoctl(sp, fd, DM_CMDS[op.c], g0, n);
        // A fault may restore device-exclusive entries of the range.
        this.forgetAtomic(m, g0, g1);
        if (!m.alive) throw new Violation('kernel', `${what}: returned ${ret} although the mirrored mm has exited (the kernel's dmirror_fault() loop never ends)`);
        const need = write ? 3 : 1;
        const ok = mm.covered(g0, g1, need) && !mm.anyBeyond(g0, g1);
        // The known finding dmirror-write-readonly-devpriv-warn: a WRITE over
        // the device's own read-only device-private entries WARNs and fails.
        const w = this.sys.kernel.printk.warnings;
        let roDevpriv = false;
        for (let i = this.warningsSeen; i < w.length; i++) if (matchFinding('WARN', w[i].rule)?.id === 'dmirror-write-readonly-devpriv-warn') roDevpriv = true;
        this.expectRet(what, ret, ok ? (roDevpriv ? [0, -EFAULT] : [0]) : [-EFAULT, -EPERM]);
        if (!write) {
          if (ret === 0) this.comparePages(`device ${what}`, mm, g0, sp.proc.readBytes(BUF_DATA, n * PAGE));
          return;
        }
        this.shadowDeviceWrite(mm, g0, n, data!, ret);
        return;
      }
      case 'MIGRATE_TO_DEV':
      case 'MIGRATE_TO_SYS': {
        const ret = this.dmIoctl(sp, fd, DM_CMDS[op.c], g0, n);
        this.forgetAtomic(m);
        if (!m.alive) return this.expectRet(what, ret, [-EINVAL]);
        const ok = mm.covered(g0, g1, 1);
        const huge = mm.any(g0, g1, (v) => isHuge(v.kind));
        const allowed = ok ? (huge ? [0, -ENOENT, -EINVAL] : [0, -ENOENT]) : [-EINVAL];
        // A device-coherent dmirror has one SPM range: when its chunk is
        // full (or a THP needs a new one) the allocation fails (-ENOMEM; see
        // the known finding dmirror-coherent-second-chunk).
        if (ok && op.c === 'MIGRATE_TO_DEV' && /dmirror[23]$/.test(file.path)) allowed.push(-ENOMEM);
        this.expectRet(what, ret, allowed);
        if (ret === 0 && op.c === 'MIGRATE_TO_DEV') this.comparePages(`data returned by ${what}`, mm, g0, sp.proc.readBytes(BUF_DATA, n * PAGE));
        return;
      }
      case 'EXCLUSIVE': {
        const ret = this.dmIoctl(sp, fd, HMM_DMIRROR_EXCLUSIVE, g0, n);
        this.forgetAtomic(m, g0, g1);
        if (!m.alive) return this.expectRet(what, ret, [-EINVAL]);
        const anonRw = mm.covered(g0, g1, 3, (v) => v.kind === 'anon');
        if (ret === 0 && mm.anyBeyond(g0, g1)) throw new Violation('errno', `${what} returned 0 over pages beyond the end of their shared object`);
        if (anonRw) this.expectRet(what, ret, [0]);
        else if (ret === 0 && !mm.covered(g0, g1, 1)) throw new Violation('errno', `${what} returned 0 over a range that is not mapped readable`);
        else if (ret > 0) throw new Violation('errno', `${what} returned ${ret}`);
        if (ret === 0) {
          for (const f of this.files) if (f.mirror === m) for (let g = g0; g < g1; g++) f.atomic.set(g, f === file ? 1 : 0);
          this.comparePages(`data returned by ${what}`, mm, g0, sp.proc.readBytes(BUF_DATA, n * PAGE));
        }
        return;
      }
      case 'CHECK_EXCLUSIVE': {
        const ret = this.dmIoctl(sp, fd, HMM_DMIRROR_CHECK_EXCLUSIVE, g0, n);
        let anyAtomic = false;
        let allKnown = m.alive;
        for (let g = g0; g < g1; g++) {
          const s = this.atomicState(file, g);
          if (s === 1) anyAtomic = true;
          if (s === -1) allKnown = false;
        }
        if (anyAtomic && m.alive) this.expectRet(what, ret, [-EPERM]);
        else if (allKnown) this.expectRet(what, ret, [0]);
        else this.expectRet(what, ret, [0, -EPERM]);
        return;
      }
      case 'SNAPSHOT': {
        const ret = this.dmIoctl(sp, fd, HMM_DMIRROR_SNAPSHOT, g0, n);
        if (!m.alive) return this.expectRet(what, ret, [-EINVAL]);
        this.expectRet(what, ret, [0]);
        const perm = sp.proc.readBytes(BUF_DATA, n);
        for (let i = 0; i < n; i++) {
          const v = mm.vmaAt(g0 + i);
          const b = perm[i];
          if (v === null || !(v.prot & 1)) {
            if (b !== HMM_DMIRROR_PROT_ERROR) throw new Violation('shadow', `${what}: page ${g0 + i} is ${v === null ? 'not mapped' : 'PROT_NONE'}, snapshot byte 0x${b.toString(16)} (expected HMM_DMIRROR_PROT_ERROR)`);
          } else if (!(v.prot & 2) && b !== HMM_DMIRROR_PROT_ERROR && (b & HMM_DMIRROR_PROT_WRITE)) {
            /*
             * HMM_DMIRROR_PROT_ERROR (0xff) is not a permission set: a
             * readable page gets it when another owner's device-private
             * THP maps it (mm/hmm.c hmm_vma_handle_absent_pmd() fills
             * HMM_PFN_ERROR where the PTE path, hmm_vma_handle_pte(),
             * reports 0), e.g. after a nouveau SVM_BIND of a 2 MiB hole.
             */
            throw new Violation('shadow', `${what}: page ${g0 + i} is mapped read-only, snapshot byte 0x${b.toString(16)} has HMM_DMIRROR_PROT_WRITE`);
          }
        }
        return;
      }
      case 'RELEASE': {
        const ret = this.dmIoctl(sp, fd, HMM_DMIRROR_RELEASE, g0, n);
        this.forgetAtomic(null);
        this.expectRet(what, ret, [0]);
        return;
      }
      case 'FLAGS': {
        /*
         * The flags travel in cmd.npages, so 0 fails the dispatcher's range
         * check (-EINVAL, as in the kernel). HMM_DMIRROR_FLAG_FAIL_ALLOC is
         * not generated (which later allocation fails is not user-visible);
         * bit 1, which the driver ignores, is.
         */
        const ret = this.dmIoctl(sp, fd, HMM_DMIRROR_FLAGS, g0, n, 2n);
        this.expectRet(what, ret, [0]);
        return;
      }
    }
  }

  private pinStart(sp: SProc, op: Extract<Op, { o: 'pin' }>): void {
    const [g0, g1] = FuzzMachine.rangeOf(sp.mm, op);
    const b = new Uint8Array(SIZEOF_PIN_LONGTERM_TEST);
    const dv = new DataView(b.buffer);
    dv.setBigUint64(0, BigInt(gAddr(g0)), true);
    dv.setBigUint64(8, BigInt((g1 - g0) * PAGE), true);
    dv.setUint32(16, (op.w ? PIN_LONGTERM_TEST_FLAG_USE_WRITE : 0) | (op.fast ? PIN_LONGTERM_TEST_FLAG_USE_FAST : 0), true);
    sp.proc.writeBytes(BUF_CMD, b);
    const ret = sp.proc.ioctl(sp.lin.gupFd, PIN_LONGTERM_TEST_START, BUF_CMD);
    this.forgetAtomic(sp);
    const what = `PIN_LONGTERM_TEST_START pages ${g0}..${g1 - 1} ${op.w ? 'write' : 'read-only'}${op.fast ? ' fast' : ''} by pid ${sp.proc.pid}`;
    if (this.pin !== null) return this.expectRet(what, ret, [-EINVAL]);
    const mm = sp.mm;
    const ok = mm.covered(g0, g1, op.w ? 3 : 1) && !mm.anyBeyond(g0, g1);
    if (!ok) {
      if (ret === 0) throw new Violation('errno', `${what} returned 0 over a range not mapped ${op.w ? 'writable' : 'readable'}`);
      if (ret > 0) throw new Violation('errno', `${what} returned ${ret}`);
      return;
    }
    this.expectRet(what, ret, [0]);
    const linked: boolean[] = [];
    for (let g = g0; g < g1; g++) {
      const v = mm.vmaAt(g)!;
      if (!op.w && v.kind === 'fileP' && !mm.priv.has(g)) {
        // A read-only FOLL_LONGTERM pin of a page-cache page in a COW
        // mapping unshares it (mm/internal.h gup_must_unshare(): !PageAnon
        // && FOLL_LONGTERM -> is_cow_mapping(), since 84209e87c696
        // "mm/gup: reliable R/O long-term pinning in COW mappings"): the
        // mapping now holds a private copy of the file's current bytes and
        // no longer sees later writes to the file.
        mm.setPage(v, g, mm.pageIn(v, g));
        linked.push(true);
        continue;
      }
      // A read-only pin of a page that may be the shared zero page pins a
      // page the next write replaces.
      const roMaybeShared = !op.w && !isShared(v.kind) && (mm.pageIn(v, g) === ZERO || mm.pageIn(v, g).includes(null));
      linked.push(!roMaybeShared);
    }
    this.pin = { owner: sp, g0, linked };
  }

  private pinRead(sp: SProc): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(BUF_DATA), true);
    sp.proc.writeBytes(BUF_CMD, b);
    const ret = sp.proc.ioctl(sp.lin.gupFd, PIN_LONGTERM_TEST_READ, BUF_CMD);
    const pin = this.pin;
    if (pin === null) return this.expectRet('PIN_LONGTERM_TEST_READ without a pin', ret, [-EINVAL]);
    this.expectRet('PIN_LONGTERM_TEST_READ', ret, [0]);
    const n = pin.linked.length;
    this.comparePages(`pinned pages of pid ${pin.owner.proc.pid} read through gup_test`, pin.owner.mm, pin.g0, sp.proc.readBytes(BUF_DATA, n * PAGE), (i) => !pin.linked[i]);
  }

  private pinStop(sp: SProc): void {
    const ret = sp.proc.ioctl(sp.lin.gupFd, PIN_LONGTERM_TEST_STOP, 0);
    this.expectRet('PIN_LONGTERM_TEST_STOP', ret, [0]);
    this.pin = null;
  }

  private gup(sp: SProc, op: Extract<Op, { o: 'gup' }>): void {
    const [g0, g1] = FuzzMachine.rangeOf(sp.mm, op);
    const g = encodeGupTest({ getDeltaUsec: 0, putDeltaUsec: 0, addr: gAddr(g0), size: (g1 - g0) * PAGE, nrPagesPerCall: 64, gupFlags: op.w ? FOLL_WRITE : 0, testFlags: 0, whichPages: [] });
    sp.proc.writeBytes(BUF_CMD, g);
    const ret = sp.proc.ioctl(sp.lin.gupFd, PIN_LONGTERM_BENCHMARK, BUF_CMD);
    this.forgetAtomic(sp);
    /* Errors of pin_user_pages are swallowed by the benchmark (size says what was pinned). */
    this.expectRet(`PIN_LONGTERM_BENCHMARK pages ${g0}..${g1 - 1}`, ret, [0]);
  }

  /* ---------------- nouveau ---------------- */

  /** open /dev/dri/nouveau-sim (and SVM_INIT when init). */
  private nvOpen(sp: SProc, init: boolean): void {
    if (!this.nouveau) return;
    this.nvCalls++;
    const fd = sp.proc.open(NOUVEAU_SIM_PATH, O_RDWR);
    if (fd < 0) throw new Violation('errno', `open(${NOUVEAU_SIM_PATH}) returned ${fd}`);
    const file: NvFile = { gen: this.nvGen, mirror: null };
    sp.nvfds.push({ fd, file });
    if (init) this.nvInit(sp, fd, file);
  }

  /**
   * DRM_IOCTL_NOUVEAU_SVM_INIT (no unmanaged window): -ENODEV after the
   * device went away, -EBUSY when the file has an SVMM, else 0 and the SVMM
   * mirrors the caller's mm.
   */
  private nvInit(sp: SProc, fd: number, file: NvFile): void {
    sp.proc.writeBytes(BUF_CMD, encodeU64s([0n, 0n]));
    this.nvCalls++;
    const ret = sp.proc.ioctl(fd, DRM_IOCTL_NOUVEAU_SVM_INIT, BUF_CMD);
    const what = `SVM_INIT by pid ${sp.proc.pid}`;
    if (file.gen !== this.nvGen) return this.expectRet(what, ret, [-ENODEV]);
    if (file.mirror !== null) return this.expectRet(`${what} (the file has an SVMM)`, ret, [-EBUSY]);
    this.expectRet(what, ret, [0]);
    file.mirror = sp;
  }

  /** close one nouveau fd of sp (the last reference frees the SVMM: nouveau_svmm_fini()). */
  private nvClose(sp: SProc, f: number): void {
    if (sp.nvfds.length === 0) return;
    const i = f % sp.nvfds.length;
    const { fd } = sp.nvfds[i];
    sp.nvfds.splice(i, 1);
    this.nvCalls++;
    this.expectRet(`close(${fd}) of a nouveau file`, sp.proc.close(fd), [0]);
  }

  /** Device removal (nouveau_dmem_fini(): every VRAM page evicted to system memory) and a new probe. */
  private nvKill(): void {
    if (!this.nouveau) return;
    const k = this.sys.kernel;
    this.nvCalls++;
    runSync(k.sched, nouveauRemove(k));
    k.checkpoint('nouveau device removal');
    this.nvGen++;
    this.forgetAtomic(null);
    const r = nouveauInit(k, { vramChunks: FUZZ_VRAM_CHUNKS });
    if (r !== 0) throw new Violation('errno', `nouveau probe after removal returned ${r}`);
  }

  private nv(sp: SProc, op: Extract<Op, { o: 'nv' }>): void {
    if (!this.nouveau) return;
    // A process without a nouveau file opens one and SVM_INITs first (as a
    // GPU program starts): the GPU operations then mostly have an SVMM.
    if (sp.nvfds.length === 0) this.nvOpen(sp, true);
    const { fd, file } = sp.nvfds[op.f % sp.nvfds.length];
    // A snapped range of a process with nothing mapped in the arena: the
    // program first maps its buffer (anonymous, read-write, over the
    // op's range), so that GPU operations mostly meet memory.
    const target = op.c === 'BIND' || file.mirror === null ? sp : file.mirror;
    if (op.s && op.c !== 'INIT' && target.alive && target.mm.vmas.length === 0 && op.r !== 'H') {
      this.mmap(target, { o: 'mmap', p: op.p, kind: 'anon', prot: 3, r: op.r, a: op.a, n: op.n, s: false });
    }
    if (op.c === 'INIT') return this.nvInit(sp, fd, file);
    const stale = file.gen !== this.nvGen;
    if (op.c === 'BIND') return this.nvBind(sp, fd, file, op, stale);
    const m = file.mirror;
    const mm = m?.mm ?? sp.mm;
    const [g0, g1] = FuzzMachine.rangeOf(mm, op);
    const n = g1 - g0;
    const access = op.c === 'READ' ? 0 : op.c === 'WRITE' ? 1 : 2;
    // Not generated: a GPU write through the SVMM of an exited process. Its
    // entries outlive exit_mmap() (the known finding
    // nouveau-exit-keeps-gpu-entries) and may name pages reused since: the
    // write would land in another process's memory, as on a real machine.
    if (!stale && m !== null && !m.alive && access !== 0) return;
    let data: Uint8Array | null = null;
    if (access !== 0) {
      data = new Uint8Array(n * PAGE);
      for (let i = 0; i < n; i++) data.fill(patternByte(op.v, g0 + i), i * PAGE, (i + 1) * PAGE);
      sp.proc.writeBytes(BUF_DATA, data);
    }
    sp.proc.writeBytes(BUF_CMD, encodeU64s([BigInt(gAddr(g0)), BigInt(BUF_DATA), BigInt(n), BigInt(access), 0n]));
    const drm = nouveauDevice(this.sys.kernel);
    const atomicTimeouts = drm?.svm.stat.atomicTimeouts ?? 0;
    this.nvCalls++;
    const ret = sp.proc.ioctl(fd, NOUVEAU_SIM_GPU_ACCESS, BUF_CMD);
    // The known finding nouveau-gpu-atomic-retry-livelock: the atomic fault timed out.
    const atomicLivelock = (drm?.svm.stat.atomicTimeouts ?? 0) > atomicTimeouts;
    if (atomicLivelock) {
      const rule = 'nouveau_atomic_range_fault: -EBUSY after HMM_RANGE_DEFAULT_TIMEOUT';
      const f = matchFinding('ERRNO', rule);
      if (f !== null) this.errnoFindings.push({ f, rule });
    }
    // GPU faults may restore or take device-exclusive entries, and migrate pages back.
    this.forgetAtomic(null);
    const what = `GPU ${op.c} via nouveau fd ${fd} (SVMM of pid ${m?.proc.pid ?? '-'}) by pid ${sp.proc.pid} of pages ${g0}..${g1 - 1}`;
    if (stale) return this.expectRet(what, ret, [-ENODEV]);
    if (m === null) return this.expectRet(`${what} without an SVMM`, ret, [-EINVAL]);
    if (!m.alive) {
      // A page without a GPU entry faults: nouveau_svm_fault()'s
      // mmget_not_zero() fails, the fault is cancelled (-EFAULT). But the
      // entries the SVMM had at the exit are still there (no ->release):
      // a read of only such pages succeeds with whatever those pages hold now.
      this.expectRet(`${what} after the SVMM's process exited`, ret, [-EFAULT, 0]);
      if (ret === 0) {
        const rule = 'GPU read through the SVMM of an exited mm succeeded (entries kept past exit_mmap)';
        const f = matchFinding('ERRNO', rule);
        if (f !== null) this.errnoFindings.push({ f, rule });
      }
      return;
    }
    const need = access === 0 ? 1 : 3;
    const ok = mm.covered(g0, g1, need) && !mm.anyBeyond(g0, g1);
    let allowed: number[];
    if (!ok) allowed = [-EFAULT];
    else if (access !== 2) allowed = [0];
    else {
      // make_device_exclusive(): anonymous (or COW-broken private file) small pages only; hugetlb and shared memory fail.
      const anon = mm.covered(g0, g1, 3, (v) => v.kind === 'anon' && !v.hp) && g1 <= REGIONS.A[0] + REGIONS.A[1];
      allowed = anon ? [0] : mm.any(g0, g1, (v) => isShared(v.kind) || isHuge(v.kind)) ? [-EFAULT] : [0, -EFAULT];
      if (atomicLivelock) allowed = [-EFAULT];
    }
    // The known finding nouveau-bind-prot-none: SVM_BIND migrated pages of a
    // PROT_NONE mapping to VRAM and mapped them readable in the GPU; a GPU
    // read of them (and of readable pages around them) succeeds.
    if (access === 0 && ret === 0 && !ok && mm.covered(g0, g1, 0) && !mm.anyBeyond(g0, g1)) {
      const rule = 'GPU read of a PROT_NONE page succeeded (SVM_BIND mapped it in VRAM)';
      const f = matchFinding('ERRNO', rule);
      if (f !== null) {
        this.errnoFindings.push({ f, rule });
        allowed.push(0);
      }
    }
    this.expectRet(what, ret, allowed);
    if (access === 0) {
      if (ret === 0) this.comparePages(`GPU ${what}`, mm, g0, sp.proc.readBytes(BUF_DATA, n * PAGE));
      return;
    }
    this.shadowDeviceWrite(mm, g0, n, data!, ret);
  }

  /**
   * DRM_IOCTL_NOUVEAU_SVM_BIND of a range of the caller's mm (mainline
   * migrates current->mm's pages whatever mm the SVMM mirrors), with its
   * arguments made invalid one way when op.b says so. Contents never change.
   */
  private nvBind(sp: SProc, fd: number, file: NvFile, op: Extract<Op, { o: 'nv' }>, stale: boolean): void {
    const [g0, g1] = FuzzMachine.rangeOf(sp.mm, op);
    let header = svmBindHeader();
    let start = BigInt(gAddr(g0));
    let end = BigInt(gAddr(g1));
    let stride = 0n;
    let reserved = 0n;
    let invalid = true;
    switch (op.b) {
      case 'reserved': reserved = 1n; break;
      case 'hibits': header |= 1n << 50n; break;
      case 'empty': end = start; break;
      case 'cmd': header = svmBindHeader(1); break;
      case 'target': header = svmBindHeader(0, 0, NOUVEAU_SVM_BIND_TARGET__GPU_VRAM - 1); break;
      case 'stride': stride = 1n; break;
      case 'prio': header = svmBindHeader(0, 7); invalid = false; break;
      case 'unaligned': start += 123n; end -= BigInt(PAGE) - 5n; invalid = false; break;
      default: invalid = false;
    }
    sp.proc.writeBytes(BUF_CMD, encodeU64s([header, start, end, BigInt(g1 - g0), stride, 77n, reserved, 0n]));
    this.nvCalls++;
    const ret = sp.proc.ioctl(fd, DRM_IOCTL_NOUVEAU_SVM_BIND, BUF_CMD);
    this.forgetAtomic(null);
    const what = `SVM_BIND${op.b ? ` (${op.b})` : ''} via nouveau fd ${fd} by pid ${sp.proc.pid} of pages ${g0}..${g1 - 1}`;
    if (stale) return this.expectRet(what, ret, [-ENODEV]);
    if (invalid || file.mirror === null) return this.expectRet(what, ret, [-EINVAL]);
    this.expectRet(what, ret, [0]);
  }

  /**
   * The nouveau half of the final sweep: through every open nouveau file of
   * the current device whose SVMM's process lives, a GPU read of every
   * readable mapping of that process, compared with the shadow.
   */
  private gpuSweep(): void {
    const seen = new Set<NvFile>();
    for (const sp of this.live()) {
      for (const { fd, file } of sp.nvfds) {
        if (seen.has(file) || file.gen !== this.nvGen || file.mirror === null || !file.mirror.alive) continue;
        seen.add(file);
        const mm = file.mirror.mm;
        for (const v of [...mm.vmas]) {
          if (!(v.prot & 1)) continue;
          const end = FuzzMachine.sweepEnd(v);
          if (end <= v.start) continue;
          const n = end - v.start;
          sp.proc.writeBytes(BUF_CMD, encodeU64s([BigInt(gAddr(v.start)), BigInt(BUF_DATA), BigInt(n), 0n, 0n]));
          const what = `final GPU READ via nouveau fd ${fd} (SVMM of pid ${file.mirror.proc.pid}) by pid ${sp.proc.pid} of pages ${v.start}..${end - 1}`;
          this.nvCalls++;
          this.expectRet(what, sp.proc.ioctl(fd, NOUVEAU_SIM_GPU_ACCESS, BUF_CMD), [0]);
          this.comparePages(what, mm, v.start, sp.proc.readBytes(BUF_DATA, n * PAGE));
        }
      }
    }
  }

  /** New kernel WARNINGs since the last call: known ones are returned, others are a violation. */
  checkWarnings(): Array<{ f: KnownFinding; rule: string }> {
    const w = this.sys.kernel.printk.warnings;
    const out: Array<{ f: KnownFinding; rule: string }> = this.errnoFindings;
    this.errnoFindings = [];
    for (; this.warningsSeen < w.length; this.warningsSeen++) {
      const { rule, state } = w[this.warningsSeen];
      const f = matchFinding('WARN', rule);
      if (f === null) throw new Violation('kernel', `WARNING: ${rule}${state ? '\n' + state : ''}`);
      out.push({ f, rule });
    }
    return out;
  }

  /**
   * The device half of the final sweep: through every open dmirror fd whose
   * mirrored process lives, HMM_DMIRROR_READ of every readable mapping of
   * that process, compared with the shadow. A device page-table entry left
   * stale anywhere in the sequence shows here (before the CPU sweep faults
   * pages back).
   */
  deviceSweep(): void {
    const seen = new Set<SFile>();
    for (const sp of this.live()) {
      for (const { fd, file } of sp.fds) {
        if (seen.has(file) || !file.mirror.alive) continue;
        seen.add(file);
        const mm = file.mirror.mm;
        for (const v of [...mm.vmas]) {
          if (!(v.prot & 1)) continue;
          const end = FuzzMachine.sweepEnd(v);
          if (end <= v.start) continue;
          const n = end - v.start;
          const what = `final device READ via ${file.path} (mirror of pid ${file.mirror.proc.pid}) by pid ${sp.proc.pid} of pages ${v.start}..${end - 1}`;
          this.expectRet(what, this.dmIoctl(sp, fd, HMM_DMIRROR_READ, v.start, n), [0]);
          this.comparePages(what, mm, v.start, sp.proc.readBytes(BUF_DATA, n * PAGE));
        }
      }
    }
  }

  /** The final sweep: every readable arena page of every live process read and compared. */
  sweep(): void {
    this.deviceSweep();
    this.gpuSweep();
    for (const sp of this.live()) {
      for (const v of [...sp.mm.vmas]) {
        if (!(v.prot & 1)) continue;
        let end = v.end;
        if (v.obj !== null) end = Math.max(v.start, Math.min(v.end, v.start + (v.obj.size - v.pgoff)));
        if (end <= v.start) continue;
        const got = sp.proc.readBytes(gAddr(v.start), (end - v.start) * PAGE);
        this.comparePages(`final read of pid ${sp.proc.pid}`, sp.mm, v.start, got);
      }
    }
  }
}

/**
 * Machines for one RunConfig, reused: after setup the machine's object
 * graph is snapshotted (src/explore/snapshot.ts, as the explorer does) and
 * each sequence starts from a rollback to it instead of building a new
 * Kernel (the device chunks' struct page arrays make construction cost
 * ~25 ms and most of the GC). A machine that ended in a KernelBug or could
 * not be quiesced is dropped and the next sequence builds a new one.
 * One pool per campaign (no module state).
 */
export class MachinePool {
  private snap: Snapshot | null = null;
  private state: { sys: System; root: Process; lin: Lineage } | null = null;
  builds = 0;
  reuses = 0;
  constructor(readonly rc: RunConfig) {}

  take(): FuzzMachine {
    if (this.snap !== null && this.state !== null) {
      this.snap.restore();
      this.reuses++;
      return new FuzzMachine(this.rc, this.state);
    }
    const m = new FuzzMachine(this.rc);
    this.builds++;
    const k = m.sys.kernel;
    m.dropMemfd();
    // give() hands the storage segments to the contents pool before each
    // rollback: the snapshot must own none, or the pool and the restored
    // store would share one.
    if (k.contents.storageBytes() !== 0) throw new Error('fuzz: page contents stored during setup; the machine cannot be pooled');
    this.state = m.setupState();
    this.snap = new Snapshot([m.sys, testHmmModule(k)]);
    return new FuzzMachine(this.rc, this.state);
  }

  /** The sequence on m is over; reusable says whether its state may be rolled back. */
  give(m: FuzzMachine, reusable: boolean): void {
    if (!reusable || !m.quiesce()) {
      this.snap = null;
      this.state = null;
    }
    // Hand the page-content storage segments the sequence allocated to the
    // contents pool (the rollback would drop them; allocating a new one per
    // sequence costs a full GC for external memory each time).
    m.sys.kernel.contents.release();
  }
}

/** Options of runSequence. */
export interface SeqOptions {
  /** Reuse machines (rollback) instead of building one per sequence. */
  pool?: MachinePool;
  /** Read back every mapped page at the end (default true). */
  sweep?: boolean;
  /** Called after each operation (progress). */
  onOp?: () => void;
  /** Called with the sequence's machine before the first operation (e.g. to attach a tracer). */
  onMachine?: (sys: System) => void;
}

/** Run one sequence on a fresh machine and classify what happens. */
export function runSequence(ops: readonly Op[], rc: RunConfig, o: SeqOptions = {}): SeqResult {
  const res: SeqResult = { ops: 0, violation: null, findings: [], bytesLost: 0, kinds: {}, nouveauCalls: 0, mthpFolios: 0 };
  let m: FuzzMachine;
  try {
    m = o.pool ? o.pool.take() : new FuzzMachine(rc);
    o.onMachine?.(m.sys);
  } catch (e) {
    res.violation = { cls: 'js', message: `machine setup: ${(e as Error).stack ?? e}`, opIndex: -1, op: null };
    return res;
  }
  const mthp0 = mthpFaultAllocs(m.sys);
  let i = 0;
  const fail = (e: unknown, op: Op | null): void => {
    if (e instanceof Violation) res.violation = { cls: e.cls, message: e.message, opIndex: i, op };
    else if (e instanceof KernelBug) {
      // An oops is told apart by the kernel function that took it (KernelOops.caller).
      const what = e instanceof KernelOops ? `${e.rule} in ${e.caller}` : e.rule;
      const f = matchFinding(e.kind, what);
      if (f !== null) res.findings.push({ id: f.id, rule: what, opIndex: i });
      else res.violation = { cls: 'kernel', message: `${e.kind}: ${e.rule}${e.state ? '\n' + e.state : ''}`, opIndex: i, op };
    } else res.violation = { cls: 'js', message: `${(e as Error)?.stack ?? String(e)}`, opIndex: i, op };
  };
  try {
    for (; i < ops.length; i++) {
      res.ops++;
      res.kinds[ops[i].o] = (res.kinds[ops[i].o] ?? 0) + 1;
      m.apply(ops[i]);
      for (const w of m.checkWarnings()) res.findings.push({ id: w.f.id, rule: w.rule, opIndex: i });
      o.onOp?.();
    }
    if (o.sweep !== false) {
      m.sweep();
      for (const w of m.checkWarnings()) res.findings.push({ id: w.f.id, rule: w.rule, opIndex: i });
    }
  } catch (e) {
    fail(e, i < ops.length ? ops[i] : null);
  }
  res.bytesLost = m.bytesLost;
  res.nouveauCalls = m.nvCalls;
  res.mthpFolios = mthpFaultAllocs(m.sys) - mthp0;
  if (!o.pool) m.sys.kernel.contents.release(); /* storage segments to the contents pool for the next machine */
  if (o.pool) {
    let reusable = res.violation === null && res.findings.length === 0;
    try {
      o.pool.give(m, reusable);
    } catch {
      reusable = false;
      o.pool.give(m, false);
    }
  }
  return res;
}

/** The sanity of a RunConfig (device kinds need spm for coherent). */
export function checkRunConfig(rc: RunConfig): string | null {
  if (rc.devices.length === 0) return 'no device kind enabled';
  try {
    const cfg = fuzzKernelConfig(rc);
    if (rc.devices.includes('coherent') && !cfg.spm) return 'device-coherent dmirror2/3 need spm=on';
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}
