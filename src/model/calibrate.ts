// SPDX-License-Identifier: GPL-2.0-only
/**
 * Calibration of a profile's free parameters on published move_pages()
 * throughput (Shivank Garg, AMD, DMA folio-migration offload RFC v6, 2026;
 * 2-socket Zen 3 EPYC; 1 GB; GB/s by folio size 4K..2M).
 *
 * The structure is the kernel's path (predictMovePages: per batch, per
 * folio, per PTE, per byte; DMA per batch, per descriptor, per IOMMU page,
 * per channel byte, aggregate limit); only the magnitudes are fitted, by
 * Levenberg-Marquardt least squares on relative error, parameters kept
 * positive (fitted in log space). Two fits: the CPU parameters on the CPU
 * row, then the DMA parameters on the 1- and 2-channel rows with the CPU
 * parameters fixed.
 */
import type { HwProfile } from '../kernel/cost/profile.js';
import { FOLIO_KIB, predictMovePages } from './move_pages.js';

export const GB1 = 1 << 30;

/** The published rows (GB/s by folio size 4K, 16K, 64K, 256K, 1M, 2M). */
export const RFC_V6_ZEN3: { cpu: number[]; dma: Record<number, number[]> } = {
  cpu: [3.55, 5.66, 6.16, 7.12, 6.93, 10.88],
  dma: {
    1: [2.63, 2.92, 3.16, 4.75, 7.38, 12.64],
    2: [3.2, 4.68, 5.16, 7.42, 8.05, 14.4],
  },
};

type Getter = [string, string];
const CPU_PARAMS: Getter[] = [['kernel', 'migrateBatchNs'], ['kernel', 'migrateFolioNs'], ['kernel', 'migratePteNs'], ['cpu', 'copy']];
const DMA_PARAMS: Getter[] = [['dma', 'batchNs'], ['dma', 'descriptorNs'], ['dma', 'iommuPageNs'], ['dma', 'channelGBps'], ['dma', 'aggregateGBps']];

function getP(p: HwProfile, [s, f]: Getter): number {
  if (s === 'cpu') return p.cpu.copy[0].GBps;
  return (p as unknown as Record<string, Record<string, number>>)[s][f];
}
function setP(p: HwProfile, [s, f]: Getter, v: number): void {
  if (s === 'cpu') p.cpu.copy = [{ blockBytes: 4096, GBps: v }];
  else (p as unknown as Record<string, Record<string, number>>)[s][f] = v;
  if (s === 'kernel' && f === 'migratePteNs') p.kernel.migratePmdNs = v; /* not separable: one PMD costs one PTE */
}

export interface Residual {
  row: string;
  folioKiB: number;
  measured: number;
  model: number;
  relErr: number;
}

/** Model GB/s (10^9 B/s) for a point. */
export function modelGBps(p: HwProfile, folioKiB: number, channels: number, bytes = GB1): number {
  return bytes / predictMovePages(p, folioKiB, channels, bytes);
}

export function residuals(p: HwProfile): Residual[] {
  const out: Residual[] = [];
  FOLIO_KIB.forEach((f, i) => {
    const m = modelGBps(p, f, 0);
    out.push({ row: 'CPU', folioKiB: f, measured: RFC_V6_ZEN3.cpu[i], model: m, relErr: (m - RFC_V6_ZEN3.cpu[i]) / RFC_V6_ZEN3.cpu[i] });
  });
  for (const [ch, row] of Object.entries(RFC_V6_ZEN3.dma)) {
    FOLIO_KIB.forEach((f, i) => {
      const m = modelGBps(p, f, Number(ch));
      out.push({ row: `DMA ${ch}ch`, folioKiB: f, measured: row[i], model: m, relErr: (m - row[i]) / row[i] });
    });
  }
  return out;
}

/** Solve A x = b (small dense, Gaussian elimination with partial pivoting). */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((r, i) => [...r, b[i]]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[piv][c])) piv = r;
    [M[c], M[piv]] = [M[piv], M[c]];
    const d = M[c][c] || 1e-300;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r][c] / d;
      for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  return M.map((r, i) => r[n] / (r[i] || 1e-300));
}

/** Levenberg-Marquardt on log-parameters; resid(x) returns relative errors. */
function lm(x0: number[], resid: (x: number[]) => number[], iters = 200): number[] {
  let x = x0.map(Math.log);
  const f = (lx: number[]): number[] => resid(lx.map(Math.exp));
  let r = f(x);
  let cost = r.reduce((s, v) => s + v * v, 0);
  let lambda = 1e-3;
  for (let it = 0; it < iters; it++) {
    const J: number[][] = r.map(() => new Array<number>(x.length).fill(0));
    for (let j = 0; j < x.length; j++) {
      const h = 1e-6;
      const xp = x.slice();
      xp[j] += h;
      const rp = f(xp);
      for (let i = 0; i < r.length; i++) J[i][j] = (rp[i] - r[i]) / h;
    }
    const JtJ = x.map((_, a) => x.map((_, b) => r.reduce((s, _v, i) => s + J[i][a] * J[i][b], 0)));
    const Jtr = x.map((_, a) => r.reduce((s, v, i) => s + J[i][a] * v, 0));
    let improved = false;
    for (let tries = 0; tries < 20; tries++) {
      const A = JtJ.map((row, a) => row.map((v, b) => (a === b ? v * (1 + lambda) + 1e-12 : v)));
      const dx = solve(A, Jtr.map((v) => -v));
      const xn = x.map((v, j) => Math.max(-30, Math.min(30, v + dx[j])));
      const rn = f(xn);
      const cn = rn.reduce((s, v) => s + v * v, 0);
      if (cn < cost) {
        x = xn;
        r = rn;
        const rel = (cost - cn) / cost;
        cost = cn;
        lambda = Math.max(lambda / 3, 1e-12);
        improved = rel > 1e-12;
        break;
      }
      lambda *= 4;
    }
    if (!improved) break;
  }
  return x.map(Math.exp);
}

/** Fit the free parameters of `base` (a copy is returned) on the RFC v6 rows. */
export function calibrate(base: HwProfile): HwProfile {
  const p = JSON.parse(JSON.stringify(base)) as HwProfile;
  const cpuX = lm(CPU_PARAMS.map((g) => getP(p, g)), (x) => {
    CPU_PARAMS.forEach((g, i) => setP(p, g, x[i]));
    return FOLIO_KIB.map((f, i) => (modelGBps(p, f, 0) - RFC_V6_ZEN3.cpu[i]) / RFC_V6_ZEN3.cpu[i]);
  });
  CPU_PARAMS.forEach((g, i) => setP(p, g, cpuX[i]));
  const dmaX = lm(DMA_PARAMS.map((g) => getP(p, g)), (x) => {
    DMA_PARAMS.forEach((g, i) => setP(p, g, x[i]));
    const r: number[] = [];
    for (const [ch, row] of Object.entries(RFC_V6_ZEN3.dma)) FOLIO_KIB.forEach((f, i) => r.push((modelGBps(p, f, Number(ch)) - row[i]) / row[i]));
    return r;
  });
  DMA_PARAMS.forEach((g, i) => setP(p, g, dmaX[i]));
  return p;
}

/** The fitted parameters by name, for printing. */
export function fittedParams(p: HwProfile): Record<string, number> {
  const o: Record<string, number> = {};
  for (const g of [...CPU_PARAMS, ...DMA_PARAMS]) o[g[0] === 'cpu' ? 'cpu.copy[4096].GBps' : `${g[0]}.${g[1]}`] = getP(p, g);
  return o;
}
