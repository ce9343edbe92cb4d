// SPDX-License-Identifier: GPL-2.0-only
/**
 * Calibration of a profile's free parameters on published move_pages()
 * throughput (Shivank Garg, AMD, DMA folio-migration offload RFC v6, 2026;
 * 2-socket Zen 3 EPYC; 1 GB; GB/s by folio size 4K..2M).
 *
 * The structure is the kernel's path (predictMovePages: per
 * migrate_pages_batch() batch, per folio, per PTE, per byte; DMA per batch,
 * per segment on the CPU, per IOMMU page, per segment round trip on its
 * channel, per channel byte, aggregate limit); only the magnitudes are
 * fitted, on all 18 points at once. dma.aggregateGBps is not fitted (the
 * 1- and 2-channel data do not reach it; the fit checks that it does not
 * bind).
 *
 * Two objectives (`CalibrationObjective`):
 *  - 'minimax' (the default, and the shipped zen3-2s profile): the largest
 *    relative error over the 18 points, which is what the acceptance target
 *    (every point within 10%) measures. With the per-byte costs written as
 *    ns per 4 KiB (the inverse of a bandwidth) the model's time for each
 *    point is affine in the eight parameters (`linearize()` checks this), so
 *    "every point within t" is a set of linear constraints, and the least t
 *    for which they are feasible is found by bisection over linear programs
 *    (HiGHS, the `highs` package). That t is the exact optimum of this
 *    structure: no parameter values do better. The parameters at that t are
 *    not unique, so among them the fit takes the one with the least sum of
 *    squared relative time errors (a convex quadratic program, HiGHS
 *    again): the result does not depend on any starting point.
 *  - 'lsq': Nelder-Mead on the sum of squared relative GB/s errors,
 *    parameters kept non-negative (each the square of a free coordinate),
 *    restarted until the simplex stops improving: a lower rms, a larger
 *    worst point.
 *
 * boundFromConvexity() is the argument, from three published points alone,
 * that no parameter values of this structure meet 10% at every point
 * (docs/COST_MODEL.md); the minimax fit gives the exact figure.
 */
import highs from 'highs';
import type { HwProfile } from '../kernel/cost/profile.js';
import { FOLIO_KIB, predictMovePages } from './move_pages.js';

export const GB1 = 1 << 30;

/**
 * Measured move_pages() throughput to fit a profile to: GB/s (10^9 B/s) of
 * a 1 GiB move by folio size in FOLIO_KIB order (4K, 16K, 64K, 256K, 1M,
 * 2M), for the CPU copy and for DMA offload with N channels; null where a
 * point was not measured. `hmmsim model calibrate --data FILE` reads one
 * (parseCalibrationData()).
 */
export interface CalibrationData {
  /** Where the figures come from (printed, and written into a fitted profile's sources). */
  source?: string;
  cpu?: Array<number | null>;
  dma?: Record<string, Array<number | null>>;
}

/** The published rows (GB/s by folio size 4K, 16K, 64K, 256K, 1M, 2M). */
export const RFC_V6_ZEN3: { source: string; cpu: number[]; dma: Record<number, number[]> } = {
  source: 'Shivank Garg (AMD), DMA folio-migration offload RFC v6 (2026), move_pages() of 1 GB on 2-socket Zen 3 EPYC',
  cpu: [3.55, 5.66, 6.16, 7.12, 6.93, 10.88],
  dma: {
    1: [2.63, 2.92, 3.16, 4.75, 7.38, 12.64],
    2: [3.2, 4.68, 5.16, 7.42, 8.05, 14.4],
  },
};

/**
 * One free parameter of the fit: `key` its name in the profile, `read` and
 * `write` its value in the profile's unit, `inverse` for a bandwidth (the
 * minimax fit works in ns per 4 KiB, 4096 / GB/s, in which the model's
 * time is affine: fitCoord()), `dma` for a parameter only DMA rows move.
 */
interface Param {
  name: string;
  key: string;
  dma: boolean;
  inverse: boolean;
  read: (p: HwProfile) => number;
  write: (p: HwProfile, v: number) => void;
}

/*
 * kernel.migrateBatchNs is not fitted: every batch of the experiment is
 * 2 MiB, so a per-batch cost and the copy time of 2 MiB are the same
 * column of the data (only migrateBatchNs + 2 MiB / CPU bandwidth, and
 * migrateBatchNs + dma.batchNs, are determined). It stays at the
 * profile's stated assumption and the copy bandwidth absorbs the rest.
 * kernel.migratePmdNs follows migratePteNs (not separable: one PMD costs
 * one PTE).
 */
const PARAMS: Param[] = [
  { name: 'F', key: 'kernel.migrateFolioNs', dma: false, inverse: false, read: (p) => p.kernel.migrateFolioNs, write: (p, v) => { p.kernel.migrateFolioNs = v; } },
  { name: 'Pte', key: 'kernel.migratePteNs', dma: false, inverse: false, read: (p) => p.kernel.migratePteNs, write: (p, v) => { p.kernel.migratePteNs = v; p.kernel.migratePmdNs = v; } },
  { name: 'Ccpu', key: 'cpu.copy[4096].GBps', dma: false, inverse: true, read: (p) => p.cpu.copy[0].GBps, write: (p, v) => { p.cpu.copy = [{ blockBytes: 4096, GBps: v }]; } },
  { name: 'S', key: 'dma.batchNs', dma: true, inverse: false, read: (p) => p.dma!.batchNs, write: (p, v) => { p.dma!.batchNs = v; } },
  { name: 'd', key: 'dma.descriptorNs', dma: true, inverse: false, read: (p) => p.dma!.descriptorNs, write: (p, v) => { p.dma!.descriptorNs = v; } },
  { name: 'io', key: 'dma.iommuPageNs', dma: true, inverse: false, read: (p) => p.dma!.iommuPageNs, write: (p, v) => { p.dma!.iommuPageNs = v; } },
  { name: 'e', key: 'dma.segmentNs', dma: true, inverse: false, read: (p) => p.dma!.segmentNs, write: (p, v) => { p.dma!.segmentNs = v; } },
  { name: 'bw', key: 'dma.channelGBps', dma: true, inverse: true, read: (p) => p.dma!.channelGBps, write: (p, v) => { p.dma!.channelGBps = v; } },
];

/** The parameters `data` can move: the DMA ones only if it has DMA rows. */
function paramsFor(data: CalibrationData): Param[] {
  return Object.keys(data.dma ?? {}).length > 0 ? PARAMS : PARAMS.filter((t) => !t.dma);
}

/** A parameter in the minimax fit's coordinates (ns per 4 KiB for a bandwidth). */
function fitCoord(t: Param, p: HwProfile): number {
  return t.inverse ? 4096 / t.read(p) : t.read(p);
}
function setFitCoord(t: Param, p: HwProfile, v: number): void {
  t.write(p, t.inverse ? 4096 / v : v);
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

/** One measured point: folio KiB, channels (0 = CPU copy), GB/s. */
interface DataPoint {
  row: string;
  folioKiB: number;
  channels: number;
  GBps: number;
}

/** The measured points of `data`, CPU row first, then the DMA rows by channel count. */
function dataPoints(data: CalibrationData): DataPoint[] {
  const out: DataPoint[] = [];
  data.cpu?.forEach((g, i) => {
    if (g !== null) out.push({ row: 'CPU', folioKiB: FOLIO_KIB[i], channels: 0, GBps: g });
  });
  const chans = Object.keys(data.dma ?? {}).map(Number).sort((a, b) => a - b);
  for (const ch of chans) {
    data.dma![String(ch)].forEach((g, i) => {
      if (g !== null) out.push({ row: `DMA ${ch}ch`, folioKiB: FOLIO_KIB[i], channels: ch, GBps: g });
    });
  }
  return out;
}

/** Model vs measured at every point of `data` (default: the RFC v6 rows). */
export function residuals(p: HwProfile, data: CalibrationData = RFC_V6_ZEN3): Residual[] {
  return dataPoints(data).map((d) => {
    const m = modelGBps(p, d.folioKiB, d.channels);
    return { row: d.row, folioKiB: d.folioKiB, measured: d.GBps, model: m, relErr: (m - d.GBps) / d.GBps };
  });
}

/**
 * Check a user's calibration data against `profile` and return it typed:
 * an object with optional `source` (string), `cpu` (6 entries) and `dma`
 * (channel count -> 6 entries), each entry a positive GB/s or null; at
 * least one point; DMA rows only for a profile with a DMA engine and at
 * most its channel count. Throws an Error naming the first problem.
 */
export function parseCalibrationData(raw: unknown, profile: HwProfile): CalibrationData {
  const where = 'calibration data';
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${where}: not a JSON object ({"cpu": [...], "dma": {"1": [...]}})`);
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['source', 'cpu', 'dma'].includes(k)) throw new Error(`${where}: unknown key '${k}' (source, cpu, dma)`);
  if (o.source !== undefined && typeof o.source !== 'string') throw new Error(`${where}: source must be a string`);
  const row = (v: unknown, name: string): Array<number | null> => {
    if (!Array.isArray(v) || v.length !== FOLIO_KIB.length) throw new Error(`${where}: ${name} must be an array of ${FOLIO_KIB.length} GB/s values for folios ${FOLIO_KIB.map((f) => `${f}K`).join(', ')} (null where not measured)`);
    return v.map((x, i) => {
      if (x === null) return null;
      if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) throw new Error(`${where}: ${name}[${i}] (${FOLIO_KIB[i]}K) is ${JSON.stringify(x)}, not a positive GB/s or null`);
      return x;
    });
  };
  const out: CalibrationData = {};
  if (typeof o.source === 'string') out.source = o.source;
  if (o.cpu !== undefined) out.cpu = row(o.cpu, 'cpu');
  if (o.dma !== undefined) {
    if (typeof o.dma !== 'object' || o.dma === null || Array.isArray(o.dma)) throw new Error(`${where}: dma must be an object of channel count -> row`);
    out.dma = {};
    for (const [ch, r] of Object.entries(o.dma as Record<string, unknown>)) {
      const n = Number(ch);
      if (!Number.isInteger(n) || n < 1 || String(n) !== ch) throw new Error(`${where}: dma key '${ch}' is not a channel count >= 1`);
      if (profile.dma === undefined) throw new Error(`${where}: has DMA rows but profile '${profile.name}' has no DMA engine`);
      if (n > profile.dma.channels) throw new Error(`${where}: dma row for ${n} channels, but profile '${profile.name}' has ${profile.dma.channels}`);
      out.dma[ch] = row(r, `dma["${ch}"]`);
    }
  }
  if (dataPoints(out).length === 0) throw new Error(`${where}: no measured point`);
  return out;
}

/**
 * Nelder-Mead minimisation of f from x0 (standard coefficients: reflection
 * 1, expansion 2, contraction 1/2, shrink 1/2), restarted from the best
 * point with a fresh simplex until a restart no longer improves f.
 * Deterministic.
 */
export function nelderMead(f: (x: number[]) => number, x0: number[], opts: { steps?: number[]; iters?: number; tol?: number } = {}): { x: number[]; fx: number } {
  const n = x0.length;
  const steps = opts.steps ?? x0.map(() => 0.5);
  const iters = opts.iters ?? 4000;
  const tol = opts.tol ?? 1e-14;
  let best = x0.slice();
  let fbest = f(best);
  for (let restart = 0; restart < 20; restart++) {
    const simplex: number[][] = [best.slice()];
    for (let i = 0; i < n; i++) {
      const v = best.slice();
      v[i] += steps[i];
      simplex.push(v);
    }
    let fs = simplex.map(f);
    for (let it = 0; it < iters; it++) {
      const order = fs.map((_, i) => i).sort((a, b) => fs[a] - fs[b]);
      const S = order.map((i) => simplex[i]);
      fs = order.map((i) => fs[i]);
      for (let i = 0; i <= n; i++) simplex[i] = S[i];
      if (Math.abs(fs[n] - fs[0]) <= tol * (Math.abs(fs[0]) + 1e-30)) break;
      const c = new Array<number>(n).fill(0);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) c[j] += simplex[i][j] / n;
      const at = (t: number): number[] => c.map((v, j) => v + t * (simplex[n][j] - v));
      const xr = at(-1);
      const fr = f(xr);
      if (fr < fs[0]) {
        const xe = at(-2);
        const fe = f(xe);
        if (fe < fr) [simplex[n], fs[n]] = [xe, fe];
        else [simplex[n], fs[n]] = [xr, fr];
      } else if (fr < fs[n - 1]) {
        [simplex[n], fs[n]] = [xr, fr];
      } else {
        const xc = fr < fs[n] ? at(-0.5) : at(0.5);
        const fc = f(xc);
        if (fc < Math.min(fr, fs[n])) [simplex[n], fs[n]] = [xc, fc];
        else {
          for (let i = 1; i <= n; i++) {
            simplex[i] = simplex[i].map((v, j) => simplex[0][j] + 0.5 * (v - simplex[0][j]));
            fs[i] = f(simplex[i]);
          }
        }
      }
    }
    let bi = 0;
    for (let i = 1; i <= n; i++) if (fs[i] < fs[bi]) bi = i;
    const improved = fs[bi] < fbest * (1 - 1e-12);
    if (fs[bi] <= fbest) {
      best = simplex[bi].slice();
      fbest = fs[bi];
    }
    if (!improved) break;
  }
  return { x: best, fx: fbest };
}

/** Sum of squared relative errors over the points of `data`. */
function cost(p: HwProfile, data: CalibrationData): number {
  return residuals(p, data).reduce((s, r) => s + r.relErr * r.relErr, 0);
}

/** The largest |relative error| over the points of `data` (default: the 18 RFC v6 points). */
export function worstRelErr(p: HwProfile, data: CalibrationData = RFC_V6_ZEN3): number {
  let m = 0;
  for (const r of residuals(p, data)) m = Math.max(m, Math.abs(r.relErr));
  return m;
}

/** What the fit minimises: the worst point ('minimax') or the sum of squares ('lsq'). */
export type CalibrationObjective = 'minimax' | 'lsq';

/**
 * Fit the free parameters of `base` (a copy is returned) on the RFC v6
 * rows: all 18 points at once (the CPU-path parameters are shared by the
 * CPU and DMA rows, as the kernel path shares them).
 */
export async function calibrate(base: HwProfile, objective: CalibrationObjective = 'minimax', data: CalibrationData = RFC_V6_ZEN3): Promise<HwProfile> {
  return objective === 'minimax' ? (await minimaxFit(base, data)).profile : calibrateLeastSquares(base, data);
}

/**
 * The 'lsq' objective: Nelder-Mead on the sum of squared relative GB/s
 * errors. With no DMA rows in `data` the DMA parameters stay as in `base`.
 */
export function calibrateLeastSquares(base: HwProfile, data: CalibrationData = RFC_V6_ZEN3): HwProfile {
  const p = JSON.parse(JSON.stringify(base)) as HwProfile;
  /*
   * Each parameter is the square of a free coordinate: positive, and 0 is
   * reachable and can be left again (log space gets stuck there). The
   * simplex steps are relative to the starting values.
   */
  const params = paramsFor(data);
  const x0 = params.map((t) => Math.sqrt(t.read(p)));
  const f = (x: number[]): number => {
    params.forEach((t, i) => t.write(p, Math.max(x[i] * x[i], 1e-9)));
    return cost(p, data);
  };
  const { x } = nelderMead(f, x0, { steps: x0.map((v) => Math.max(0.3 * v, 1)) });
  f(x);
  return p;
}

/** One published point as a linear function: model time / measured time = a + c . theta. */
interface LinearPoint {
  a: number;
  c: number[];
}

/**
 * The model's time at each measured point as an affine function of `theta`
 * (relative to the measured time), read off predictMovePages() at theta = 0
 * and at each unit vector (the other parameters as in `base`), with the
 * aggregate DMA cap lifted. Checked: at the base profile's own theta the
 * affine form equals predictMovePages().
 */
function linearize(base: HwProfile, data: CalibrationData, theta: Param[]): LinearPoint[] {
  const p = JSON.parse(JSON.stringify(base)) as HwProfile;
  if (p.dma !== undefined) p.dma.aggregateGBps = Infinity;
  const at = (v: number[]): void => theta.forEach((t, i) => setFitCoord(t, p, v[i]));
  const zero = theta.map(() => 0);
  const theta0 = theta.map((t) => fitCoord(t, base));
  return dataPoints(data).map(({ folioKiB: f, channels: ch, GBps: g }) => {
    const measured = GB1 / g;
    at(zero);
    const a = predictMovePages(p, f, ch, GB1) / measured;
    const c = theta.map((_, j) => {
      const u = zero.slice();
      u[j] = 1;
      at(u);
      return predictMovePages(p, f, ch, GB1) / measured - a;
    });
    at(theta0);
    const direct = predictMovePages(p, f, ch, GB1) / measured;
    const affine = a + c.reduce((s, cj, j) => s + cj * theta0[j], 0);
    if (!(Math.abs(direct - affine) <= 1e-9 * direct)) throw new Error(`calibration: the model's time at ${f}K/${ch}ch is not affine in the fitted parameters (${direct} vs ${affine})`);
    return { a, c };
  });
}

/** CPLEX LP text: minimise `objective` with every point's time within the bounds for relative error t. */
function lpText(rows: LinearPoint[], theta: Param[], t: number, objective: string): string {
  const num = (x: number): string => x.toPrecision(17);
  const lin = (c: number[]): string => c.map((cj, j) => `${cj >= 0 ? '+' : '-'} ${num(Math.abs(cj))} ${theta[j].name}`).join(' ');
  const lines = ['Minimize', ` obj: ${objective}`, 'Subject To'];
  /* GB/s within t of the measured  <=>  model time / measured time in [1/(1+t), 1/(1-t)] */
  rows.forEach((r, i) => {
    lines.push(` lo${i}: ${lin(r.c)} >= ${num(1 / (1 + t) - r.a)}`);
    lines.push(` hi${i}: ${lin(r.c)} <= ${num(1 / (1 - t) - r.a)}`);
  });
  lines.push('Bounds', ...theta.map((th) => ` ${th.name} >= 0`), 'End');
  return lines.join('\n');
}

/*
 * highs runs as ES module here (build/highs.mjs, whose default export is the
 * loader) but its declarations are typed as CommonJS, so TypeScript types
 * the default import as the module object; its `default` is the loader.
 */
const loadHighs = highs as unknown as typeof highs.default;

/** The minimax fit and the least worst relative error of this structure. */
export interface MinimaxFit {
  profile: HwProfile;
  /** The least t for which some parameter values put every point within t: the structure's optimum. */
  optimum: number;
}

/**
 * The 'minimax' objective: bisection over LPs for the least feasible t (to
 * 1e-10), then the least-squares point among the parameters within
 * t (1 + 1e-6) (a QP). Throws if the aggregate DMA cap binds at the result
 * (the linear form would not hold there).
 */
export async function minimaxFit(base: HwProfile, data: CalibrationData = RFC_V6_ZEN3): Promise<MinimaxFit> {
  if (Object.keys(data.dma ?? {}).length > 0 && base.dma === undefined) throw new Error(`calibration: the data has DMA rows but profile '${base.name}' has no DMA engine`);
  const theta = paramsFor(data);
  const solver = await loadHighs();
  const rows = linearize(base, data, theta);
  const solve = (t: number, objective: string): number[] | null => {
    const r = solver.solve(lpText(rows, theta, t, objective), { output_flag: false });
    if (r.Status !== 'Optimal') return null;
    return theta.map((th) => (r.Columns[th.name] as { Primal: number }).Primal);
  };
  let lo = 0;
  let hi = 0.9;
  if (solve(hi, `0 ${theta[0].name}`) === null) throw new Error('calibration: no parameter values put every point within 90%');
  while (hi - lo > 1e-10) {
    const mid = (lo + hi) / 2;
    if (solve(mid, `0 ${theta[0].name}`) === null) lo = mid;
    else hi = mid;
  }
  /*
   * sum_i (a_i + c_i . theta - 1)^2 = theta' (sum c c') theta + 2 sum (a_i - 1) c_i . theta + const;
   * HiGHS minimises g . theta + [theta' H theta] / 2, so H = 2 sum c c'.
   */
  const n = theta.length;
  const g = new Array<number>(n).fill(0);
  const H = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (const r of rows) {
    for (let i = 0; i < n; i++) {
      g[i] += 2 * (r.a - 1) * r.c[i];
      for (let j = 0; j < n; j++) H[i][j] += 2 * r.c[i] * r.c[j];
    }
  }
  const num = (x: number): string => `${x >= 0 ? '+' : '-'} ${Math.abs(x).toPrecision(17)}`;
  const quad: string[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const v = i === j ? H[i][i] : 2 * H[i][j];
      if (v !== 0) quad.push(`${num(v)} ${i === j ? `${theta[i].name}^2` : `${theta[i].name} * ${theta[j].name}`}`);
    }
  }
  const objective = `${g.map((v, j) => `${num(v)} ${theta[j].name}`).join(' ')} + [ ${quad.join(' ')} ] / 2`;
  const x = solve(hi * (1 + 1e-6), objective);
  if (x === null) throw new Error('calibration: the least-squares step found no point within the minimax bound');
  const p = JSON.parse(JSON.stringify(base)) as HwProfile;
  theta.forEach((th, i) => setFitCoord(th, p, Math.max(x[i], 0)));
  if (!Number.isFinite(p.cpu.copy[0].GBps) || (p.dma !== undefined && !Number.isFinite(p.dma.channelGBps))) throw new Error('calibration: the fit put a copy bandwidth at infinity (its per-byte cost at 0); the data cannot pin it');
  const capped = dataPoints(data).some(({ folioKiB: f, channels: ch }) => {
    if (ch === 0) return false;
    const free = JSON.parse(JSON.stringify(p)) as HwProfile;
    free.dma!.aggregateGBps = Infinity;
    return predictMovePages(p, f, ch, GB1) !== predictMovePages(free, f, ch, GB1);
  });
  if (capped) throw new Error(`calibration: dma.aggregateGBps (${p.dma!.aggregateGBps} GB/s, not fitted) limits some measured point at the fit, where the fit's linear form does not hold: raise it in profile '${base.name}' (a copy, --profile FILE) or leave out the points with the most channels`);
  return { profile: p, optimum: hi };
}

export interface ConvexityBound {
  /** The three folio sizes (KiB) and their segment counts per 2 MiB batch. */
  folioKiB: [number, number, number];
  segments: [number, number, number];
  /** Weight of the first point in the convex combination for the middle one. */
  lambda: number;
  /** Published time per 2 MiB batch (ns) at the three sizes. */
  measuredNs: [number, number, number];
  /** The middle point's time if it lay on the chord: the most a convex model allows. */
  chordNs: number;
  /** No parameter values give every point of the three within this relative error. */
  minMaxRelErr: number;
}

/**
 * Why 10% at every point is out of reach for this structure: on the
 * 1-channel row at folio sizes >= maxSegmentBytes (64K, 256K, 1M) every
 * batch has the same pages, PTEs, IOMMU pages and bytes; only the count n
 * of folios = segments differs (32, 8, 2). The model's batch time is
 * T(n) = A + n (migrateFolioNs + descriptorNs) + max(n segmentNs + X, Y):
 * convex in n. So T(8) <= 0.2 T(32) + 0.8 T(2) (8 = 0.2*32 + 0.8*2). The
 * published 256K point is far slower than that chord (its jump to 1M is
 * too large for its step from 64K). With every model time within a
 * relative error t of the published GB/s, the best case is T8/(1+t) <=
 * chord/(1-t), so t >= (1-q)/(1+q), q = chord / T8. Null when `data` lacks
 * one of the three 1-channel points or the profile merges segments beyond
 * 64 KiB (the three sizes would not differ only in n).
 */
export function boundFromConvexity(p: HwProfile, data: CalibrationData = RFC_V6_ZEN3): ConvexityBound | null {
  const maxSeg = p.dma?.maxSegmentBytes ?? 65536;
  const sizes: [number, number, number] = [64, 256, 1024];
  const idx = sizes.map((s) => FOLIO_KIB.indexOf(s));
  const row = data.dma?.['1'];
  if (row === undefined || idx.some((i) => row[i] === null) || maxSeg > 65536) return null;
  const seg = sizes.map((s) => Math.ceil((2048 * 1024) / Math.max(s * 1024, maxSeg))) as [number, number, number];
  const T = idx.map((i) => (2 * 1024 * 1024) / row[i]!) as [number, number, number];
  const lambda = (seg[1] - seg[2]) / (seg[0] - seg[2]);
  const chord = lambda * T[0] + (1 - lambda) * T[2];
  const q = chord / T[1];
  return { folioKiB: sizes, segments: seg, lambda, measuredNs: T, chordNs: chord, minMaxRelErr: q >= 1 ? 0 : (1 - q) / (1 + q) };
}

/** The parameters a fit to `data` sets, by name (the DMA ones only if it has DMA rows), for printing. */
export function fittedParams(p: HwProfile, data: CalibrationData = RFC_V6_ZEN3): Record<string, number> {
  const o: Record<string, number> = {};
  for (const t of paramsFor(data)) o[t.key] = t.read(p);
  return o;
}
