// SPDX-License-Identifier: GPL-2.0-only
/**
 * nouveau fault latency by phase, under a profile: the nouveau model
 * (src/drivers/nouveau) on one machine with a simulated clock, driven from
 * a process through /dev/dri/nouveau-sim. Each scenario is measured alone
 * (a fresh clock) and its CPU time is split into the phases of the
 * kernel's code path:
 *
 *   fault      the fault's entry: for a GPU fault device.faultNs
 *              (interrupt, nouveau_svm_fault_cache(), replay); for a CPU
 *              fault kernel.faultEntryExitNs (do_user_addr_fault())
 *   migrate    migrate_vma_setup() / migrate_vma_pages() /
 *              migrate_vma_finalize() bookkeeping (chargeMigrateVmaSetup())
 *   copy       the copy engine: nvc0b5_migrate_copy() submits
 *              (device.copySetupNs each) and the CPU's wait in
 *              nouveau_fence_wait() for the copy over the link
 *   get pages  hmm_range_fault() (kernel.hmmRangeFaultNs + hmmPageNs)
 *   bind       GPU page-table updates: NVIF_VMM_V0_PFNMAP after a fault
 *              (nouveau_range_fault()) or a migration (nouveau_pfns_map()),
 *              PFNCLR in nouveau_svmm_invalidate() before a copy back, each
 *              with its TLB invalidate
 *
 * Scenarios (mainline nouveau_dmem.c has large folios, and so has the
 * model: a PMD-mapped THP migrates to one 2 MiB VRAM folio and a CPU fault
 * on it brings the whole folio back in one fault):
 *
 *   GPU read fault, system memory, 4K   NOUVEAU_SIM_GPU_ACCESS of a resident
 *       page: nouveau_svm_fault() -> nouveau_range_fault() maps the host
 *       page; nothing migrates
 *   SVM_BIND to VRAM, 4K / 2M THP       DRM_IOCTL_NOUVEAU_SVM_BIND (the
 *       prefetch a GPU runtime issues): nouveau_dmem_migrate_vma()
 *   SVM_BIND to VRAM, 2M of 512 x 4K    the same 2 MiB as 512 order-0
 *       folios (no THP): 512 copy commands in one bind
 *   CPU fault from VRAM, 4K / 2M        a CPU store to the migrated range:
 *       do_swap_page() / the PMD fault -> nouveau_dmem_migrate_to_ram()
 *
 * Deterministic: arithmetic on the profile's numbers, a fixed sequence.
 */
import { System } from '../user/system.js';
import type { Process } from '../user/process.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mmap.js';
import { MADV_HUGEPAGE, MADV_NOHUGEPAGE } from '../kernel/mm/madvise.js';
import { O_RDWR } from '../kernel/fs/chardev.js';
import { pmdAlignUp } from '../kernel/mm/pgtable.js';
import { SimClock } from '../kernel/cost/clock.js';
import type { HwProfile } from '../kernel/cost/profile.js';
import {
  DRM_IOCTL_NOUVEAU_SVM_BIND, DRM_IOCTL_NOUVEAU_SVM_INIT, NOUVEAU_SIM_GPU_ACCESS, NOUVEAU_SIM_PATH, NOUVEAU_SIM_STAT,
  decodeU64s, encodeU64s, nouveauInit, svmBindHeader,
} from '../drivers/nouveau/index.js';
import { PHASE_GPU_FAULT, PHASE_PFNCLR, PHASE_PFNMAP } from '../drivers/nouveau/svm.js';
import type { ConfigHook } from './move_pages.js';

const PAGE = 4096;
const TWOMEG = 2 << 20;

/** The phases of a row, in table order. */
export const NOUVEAU_PHASES = ['fault', 'migrate', 'copy', 'get pages', 'bind'] as const;
export type NouveauPhase = (typeof NOUVEAU_PHASES)[number];

export interface NouveauFaultRow {
  scenario: string;
  /** Bytes the fault or bind serves. */
  bytes: number;
  /** Folios moved or mapped: '1 x 4K', '1 x 2M', '512 x 4K'. */
  folios: string;
  /** Total simulated CPU ns (= the sum of `phases`). */
  ns: number;
  /** ns by phase (every phase present, 0 when the path does not take it). */
  phases: Record<NouveauPhase, number>;
  /** The clock's raw accounting (kernel function or activity -> ns). */
  acct: Record<string, number>;
}

/** The phase a charge of the clock belongs to; a charge no rule knows is an error (so a new charging site is classified here). */
export function nouveauPhaseOf(charge: string): NouveauPhase {
  if (charge === 'fault entry/exit' || charge === PHASE_GPU_FAULT) return 'fault';
  if (charge === 'migrate_vma_setup+finalize') return 'migrate';
  if (charge.startsWith('nouveau copy') || charge.startsWith('nouveau clear') || charge === 'copy fence wait') return 'copy';
  if (charge === 'hmm_range_fault') return 'get pages';
  if (charge === PHASE_PFNMAP || charge === PHASE_PFNCLR || charge === 'GPU TLB invalidate') return 'bind';
  throw new Error(`nouveau-fault: charge '${charge}' belongs to no phase`);
}

function measure(k: System['kernel'], profile: HwProfile, scenario: string, bytes: number, folios: string, body: () => void, onConfig?: ConfigHook): NouveauFaultRow {
  const clock = new SimClock(profile);
  k.clock = clock;
  const done = onConfig?.(k, clock, `${scenario} (${folios})`);
  try {
    body();
  } finally {
    done?.();
    k.clock = null;
  }
  const acct = clock.snapshot().acct;
  const phases = Object.fromEntries(NOUVEAU_PHASES.map((p) => [p, 0])) as Record<NouveauPhase, number>;
  for (const [c, ns] of Object.entries(acct)) phases[nouveauPhaseOf(c)] += ns;
  return { scenario, bytes, folios, ns: clock.now(), phases, acct };
}

/** The ioctl with its struct of u64s in the process's memory (allocated by the caller, outside the measurement). */
function ioctl(p: Process, fd: number, cmd: number, arg: number, fields: bigint[]): [number, bigint[]] {
  p.writeBytes(arg, encodeU64s(fields));
  const ret = p.ioctl(fd, cmd, arg);
  return [ret, decodeU64s(p.readBytes(arg, fields.length * 8))];
}

/** Run the scenarios under `profile`. Throws an Error if an ioctl fails or data is lost. */
export function runNouveauFault(profile: HwProfile, onConfig?: ConfigHook): NouveauFaultRow[] {
  const sys = new System({ ramBytes: 256 << 20, thp: 'madvise', swapMiB: 0, nrHugepages: 0, checked: false });
  const k = sys.kernel;
  const r0 = nouveauInit(k, { vramChunks: 4 });
  if (r0) throw new Error(`nouveau probe: ${r0}`);
  const p = sys.spawn('nouveau-fault');
  const fd = p.open(NOUVEAU_SIM_PATH, O_RDWR);
  if (fd < 0) throw new Error(`open ${NOUVEAU_SIM_PATH}: ${fd}`);
  const arg = p.malloc(64);
  p.fill(arg, 64, 0);
  if (ioctl(p, fd, DRM_IOCTL_NOUVEAU_SVM_INIT, arg, [0n, 0n])[0] !== 0) throw new Error('DRM_IOCTL_NOUVEAU_SVM_INIT failed');
  /** A 2 MiB-aligned anonymous range of `size`, THP or not, every page resident and filled with `byte`. */
  const region = (size: number, thp: boolean, byte: number): number => {
    const raw = p.mmap(0, size + TWOMEG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (raw < 0) throw new Error(`mmap: ${raw}`);
    const a = pmdAlignUp(raw);
    if (p.madvise(a, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) !== 0) throw new Error('madvise failed');
    p.fill(a, size, byte);
    return a;
  };
  const bind = (a: number, n: number): void => {
    const r = ioctl(p, fd, DRM_IOCTL_NOUVEAU_SVM_BIND, arg, [svmBindHeader(), BigInt(a), BigInt(a + n * PAGE), BigInt(n), 0n, 0n, 0n, 0n])[0];
    if (r !== 0) throw new Error(`DRM_IOCTL_NOUVEAU_SVM_BIND: ${r}`);
  };
  const deviceAllocated = (): bigint => ioctl(p, fd, NOUVEAU_SIM_STAT, arg, [0n, 0n, 0n, 0n, 0n, 0n])[1][0];
  const rows: NouveauFaultRow[] = [];

  // A GPU read fault on resident system memory: hmm_range_fault + PFNMAP of the host page.
  const sysPage = region(PAGE, false, 0x11);
  const out = p.malloc(PAGE);
  p.fill(out, PAGE, 0); /* faulted in now, so copy_to_user does not fault inside the measurement */
  rows.push(measure(k, profile, 'GPU read fault, system memory', PAGE, '1 x 4K', () => {
    const [r, f] = ioctl(p, fd, NOUVEAU_SIM_GPU_ACCESS, arg, [BigInt(sysPage), BigInt(out), 1n, 0n, 0n]);
    if (r !== 0 || f[4] !== 1n) throw new Error(`NOUVEAU_SIM_GPU_ACCESS: ${r}, ${f[4]} faults (expected 0, 1)`);
  }, onConfig));
  if (p.load8(out) !== 0x11) throw new Error('nouveau-fault: the GPU read the wrong data');

  // GPU-initiated migrations to VRAM (SVM_BIND), then CPU faults bringing them back.
  const small = region(PAGE, false, 0x22);
  rows.push(measure(k, profile, 'SVM_BIND to VRAM', PAGE, '1 x 4K', () => bind(small, 1), onConfig));
  const thp = region(TWOMEG, true, 0x33);
  const before = deviceAllocated();
  rows.push(measure(k, profile, 'SVM_BIND to VRAM', TWOMEG, '1 x 2M', () => bind(thp, TWOMEG / PAGE), onConfig));
  if (deviceAllocated() - before !== BigInt(TWOMEG / PAGE)) throw new Error('nouveau-fault: the THP did not migrate whole');
  const many = region(TWOMEG, false, 0x44);
  rows.push(measure(k, profile, 'SVM_BIND to VRAM', TWOMEG, '512 x 4K', () => bind(many, TWOMEG / PAGE), onConfig));
  rows.push(measure(k, profile, 'CPU fault from VRAM', PAGE, '1 x 4K', () => p.store8(small, 0x55), onConfig));
  rows.push(measure(k, profile, 'CPU fault from VRAM', TWOMEG, '1 x 2M', () => p.store8(thp, 0x66), onConfig));
  if (p.load8(small) !== 0x55 || p.load8(small + 1) !== 0x22) throw new Error('nouveau-fault: data lost in the 4K round trip');
  if (p.load8(thp) !== 0x66 || p.load8(thp + TWOMEG - 1) !== 0x33) throw new Error('nouveau-fault: data lost in the 2M round trip');
  if (p.load8(many + TWOMEG - 1) !== 0x44) throw new Error('nouveau-fault: data lost in the 512 x 4K round trip');
  k.release();
  return rows;
}
