// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim model <experiment> --profile <name>`: simulated-time experiments.
 *
 *   move-pages   move_pages() throughput of --size (default 1 GiB) by folio
 *                size, CPU copy and the DMA migrator with N channels
 *   nouveau-fault  nouveau's fault and migration latency by phase (migrate,
 *                copy, get pages, bind), 4 KiB vs 2 MiB
 *   calibrate    fit the profile's free parameters on the RFC v6 rows and
 *                print them with the per-point error
 *   profiles     list the shipped profiles
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadProfile, listProfiles } from '../model/profiles.js';
import { FOLIO_KIB, runMovePages, predictMovePages, type MovePagesPoint, type ConfigHook } from '../model/move_pages.js';
import { Tracer, attachTracer, detachTracer } from '../kernel/trace.js';
import { writeTraces, type TracePart } from '../trace/chrome.js';
import { type CalibrationData, parseCalibrationData, calibrateLeastSquares, minimaxFit, residuals, fittedParams, boundFromConvexity, modelGBps, RFC_V6_ZEN3 } from '../model/calibrate.js';
import { type HwProfile, withValue } from '../kernel/cost/profile.js';

interface ModelOpts {
  profile: string;
  json?: boolean;
  sweep?: string;
  size: string;
  channels: string;
  folios?: string;
  predict?: boolean;
  trace?: string;
  fit: string;
  data?: string;
  write?: string;
}

/** Default --size with --trace (a 1 GiB run's trace would be hundreds of MB). */
const TRACE_DEFAULT_MIB = 8;
/**
 * Events kept per traced run (Tracer.limit): the rest is dropped and the
 * trace says so. dmirror's benchmark migrates several GiB in total; its
 * full trace would not fit in memory.
 */
const TRACE_EVENT_LIMIT = 100_000;

/**
 * --trace: a hook that attaches a tracer in the configuration's simulated
 * time and logs its engine jobs; each configuration becomes one process of
 * the trace (src/trace/chrome.ts).
 */
function traceHook(parts: TracePart[], prefix: string): ConfigHook {
  return (k, clock, label) => {
    clock.jobs = [];
    const tr = attachTracer(k, new Tracer(clock));
    tr.limit = TRACE_EVENT_LIMIT;
    return () => {
      detachTracer(k);
      parts.push({ tracer: tr, label: prefix + label, engines: clock.jobs ?? [], enginesDropped: clock.jobsDropped });
    };
  };
}

function fmtKiB(f: number): string {
  return f >= 1024 ? `${f / 1024}M` : `${f}K`;
}

function parseList(s: string, what: string): number[] {
  const v = s.split(',').map((x) => Number(x.trim()));
  if (v.some((x) => !Number.isFinite(x) || x < 0)) throw new Error(`${what}: '${s}' is not a comma-separated list of non-negative numbers`);
  return v;
}

/** --data FILE: read and check calibration data (parseCalibrationData) for `profile`. */
function readCalibrationData(file: string, profile: HwProfile): CalibrationData {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`--data: cannot read '${file}' as JSON: ${(e as Error).message}`);
  }
  return parseCalibrationData(raw, profile);
}

export function registerModel(program: Command, write: (s: string) => void, setCode: (c: number) => void): void {
  program
    .command('model')
    .description('simulated-time experiments under a hardware profile (move-pages, dmirror-benchmark, device-fault, nouveau-fault, calibrate, profiles)')
    .argument('<experiment>', 'move-pages | dmirror-benchmark | device-fault | nouveau-fault | calibrate | profiles')
    .option('--profile <name>', 'hardware profile (profiles/<name>.json or a path)', 'zen3-2s')
    .option('--size <MiB>', 'move-pages: memory moved, MiB (multiple of 2)', '1024')
    .option('--channels <list>', 'move-pages: copy configurations, 0 = CPU copy', '0,1,2,4,8,16')
    .option('--folios <list>', `move-pages: folio sizes in KiB (${FOLIO_KIB.join(',')})`)
    .option('--sweep <param=a,b,c>', 'repeat for each value of a profile parameter (e.g. dma.channelGBps=8,16)')
    .option('--predict', 'move-pages: closed-form prediction only (no simulation run)')
    .option('--trace <file>', 'move-pages, device-fault, nouveau-fault, dmirror-benchmark: write the runs as Chrome Trace Event JSON in simulated time (one process per configuration; CPU thread, DMA channel and copy engine tracks); move-pages defaults to --size 8 with it')
    .option('--fit <objective>', 'calibrate: minimax (the worst point; the shipped zen3-2s fit) or lsq (sum of squared relative errors)', 'minimax')
    .option('--data <file>', 'calibrate, move-pages: your own move_pages() GB/s to fit to (calibrate) or compare with (move-pages) (JSON: {"source": "...", "cpu": [6 values], "dma": {"1": [6 values]}}, folios 4K..2M, null where not measured) instead of the RFC v6 rows')
    .option('--write <file>', 'calibrate: write the fitted profile (JSON, loadable with --profile FILE)')
    .option('--json', 'print JSON')
    .addHelpText('after', `
The move-pages experiment runs the model with contentMode=fingerprint (data
moves, contents are compared by fingerprint) and 2 NUMA nodes; 16K-1M folios
are real PTE-mapped mTHP folios of that size, 2M a PMD-mapped THP: see
docs/COST_MODEL.md. calibrate fits the profile's free parameters on the
RFC v6 rows (or on yours, --data FILE): --fit minimax (default) minimises the worst point exactly
(linear programs), --fit lsq the sum of squares (Nelder-Mead).

Examples:
  hmmsim model move-pages --profile zen3-2s
  hmmsim model move-pages --size 64 --channels 0,1 --folios 4,2048 --json
  hmmsim model move-pages --predict --sweep dma.channelGBps=8,13,20
  hmmsim model dmirror-benchmark --profile pcie5-gpu
  hmmsim model device-fault --profile pcie5-gpu --sweep link.GBps=31.5,63
  hmmsim model nouveau-fault --profile pcie5-gpu
  hmmsim model nouveau-fault --profile pcie5-gpu --sweep device.copySetupNs=1000,5000 --json
  hmmsim model calibrate --profile zen3-2s
  hmmsim model calibrate --fit lsq --json
  hmmsim model calibrate --data my-machine.json --write my-machine-profile.json
  hmmsim model move-pages --folios 4,2048 --channels 0,4 --trace mp.json`)
    .action(async (experiment: string, o: ModelOpts, cmd: Command) => {
      try {
        const parts: TracePart[] = [];
        if (o.trace !== undefined && !['move-pages', 'device-fault', 'nouveau-fault', 'dmirror-benchmark'].includes(experiment)) throw new Error(`--trace: experiment '${experiment}' runs no simulation (move-pages, device-fault, nouveau-fault, dmirror-benchmark do)`);
        if (o.trace !== undefined && o.predict) throw new Error('--trace needs a simulation: drop --predict');
        if (o.trace !== undefined && cmd.getOptionValueSource('size') === 'default') o.size = String(TRACE_DEFAULT_MIB);
        const finishTrace = (): void => {
          if (o.trace === undefined) return;
          writeTraces(o.trace, parts);
          process.stderr.write(`trace: ${parts.length} simulated run${parts.length === 1 ? '' : 's'} written to ${o.trace}\n`);
        };
        if (experiment === 'profiles') {
          const names = listProfiles();
          write(o.json ? JSON.stringify(names) + '\n' : names.map((n) => `${n}: ${loadProfile(n).description}`).join('\n') + '\n');
          return;
        }
        const base = loadProfile(o.profile);
        let variants: Array<{ label: string; p: HwProfile }> = [{ label: '', p: base }];
        if (o.sweep !== undefined) {
          const eq = o.sweep.indexOf('=');
          if (eq <= 0) throw new Error(`--sweep: '${o.sweep}' is not param=a,b,c`);
          const param = o.sweep.slice(0, eq);
          variants = parseList(o.sweep.slice(eq + 1), '--sweep').map((v) => ({ label: `${param}=${v}`, p: withValue(base, param, v) }));
        }
        if (o.fit !== 'minimax' && o.fit !== 'lsq') throw new Error(`--fit: '${o.fit}' is not minimax or lsq`);
        for (const opt of ['fit', 'write']) if (cmd.getOptionValueSource(opt) === 'cli' && experiment !== 'calibrate') throw new Error(`--${opt} applies to calibrate, not to '${experiment}'`);
        if (o.data !== undefined && experiment !== 'calibrate' && experiment !== 'move-pages') throw new Error(`--data applies to calibrate and move-pages, not to '${experiment}'`);
        const userData = o.data === undefined ? undefined : readCalibrationData(o.data, base);
        if (experiment === 'calibrate') {
          let data: CalibrationData = RFC_V6_ZEN3;
          if (userData !== undefined) data = userData;
          else if (base.dma === undefined) throw new Error(`calibrate: profile '${base.name}' has no DMA engine; the RFC v6 data has DMA rows (use zen3-2s, or --data with a CPU row only)`);
          const source = data.source ?? o.data ?? RFC_V6_ZEN3.source;
          const fit = o.fit === 'minimax' ? await minimaxFit(base, data) : { profile: calibrateLeastSquares(base, data), optimum: undefined };
          const fitted = fit.profile;
          const res = residuals(fitted, data);
          const bound = boundFromConvexity(fitted, data);
          if (o.write !== undefined) {
            const how = o.fit === 'minimax' ? 'minimax (least worst relative error, by linear programs in HiGHS, ties broken by least squares)' : 'Nelder-Mead least squares';
            const out = JSON.parse(JSON.stringify(fitted)) as HwProfile;
            for (const k of Object.keys(fittedParams(fitted, data))) out.sources[k.startsWith('cpu.copy') ? 'cpu.copy' : k] = `fitted: ${how} on ${res.length} point(s) of ${source}; \`hmmsim model calibrate\` from profile '${base.name}'`;
            writeFileSync(o.write, JSON.stringify(out, null, 2) + '\n');
            loadProfile(o.write); // the written profile passes the schema
            process.stderr.write(`calibrate: fitted profile written to ${o.write} (use --profile ${o.write})\n`);
          }
          const worst = Math.max(...res.map((r) => Math.abs(r.relErr)));
          const rms = Math.sqrt(res.reduce((s, r) => s + r.relErr * r.relErr, 0) / res.length);
          const predCh = [4, 8, 16].filter((c) => fitted.dma !== undefined && c <= fitted.dma.channels && data.dma?.[String(c)] === undefined);
          const predictions = predCh.map((ch) => ({ channels: ch, GBps: FOLIO_KIB.map((f) => modelGBps(fitted, f, ch)) }));
          const crossover = fitted.dma === undefined ? [] : FOLIO_KIB.map((f) => ({ folioKiB: f, cpu: modelGBps(fitted, f, 0), dma1: modelGBps(fitted, f, 1) }));
          if (o.json) write(JSON.stringify({ fit: o.fit, source, params: fittedParams(fitted, data), residuals: res, worst, rms, optimum: fit.optimum ?? null, bound, predictions, crossover }, null, 2) + '\n');
          else {
            const how = o.fit === 'minimax' ? 'minimax: the least worst relative error, by linear programs, ties broken by least squares' : 'Nelder-Mead least squares of the relative errors';
            write(`Fitted parameters (${how}; ${res.length} move_pages() GB/s points of ${source}):\n`);
            for (const [k, v] of Object.entries(fittedParams(fitted, data))) write(`  ${k.padEnd(24)} ${v.toFixed(3)}\n`);
            write(`  (not fitted: kernel.migrateBatchNs ${fitted.kernel.migrateBatchNs}${fitted.dma === undefined ? '' : `, dma.maxSegmentBytes ${fitted.dma.maxSegmentBytes}, dma.aggregateGBps ${fitted.dma.aggregateGBps}`}: see the profile's sources)\n`);
            write('\nrow       folio  measured  model   error\n');
            for (const r of res) write(`${r.row.padEnd(9)} ${fmtKiB(r.folioKiB).padStart(5)}  ${r.measured.toFixed(2).padStart(8)}  ${r.model.toFixed(2).padStart(6)}  ${(r.relErr * 100).toFixed(1).padStart(6)}%\n`);
            write(`\nworst point: ${(worst * 100).toFixed(2)}%, rms ${(rms * 100).toFixed(1)}%${data === RFC_V6_ZEN3 && worst > 0.1 ? ' (above the 10% target)' : ''}\n`);
            if (fit.optimum !== undefined) write(`the least worst error any parameter values of this structure reach: ${(fit.optimum * 100).toFixed(2)}% (linear programs; the fit above is at it)\n`);
            if (bound !== null && data === RFC_V6_ZEN3) write(`\nWhy 10% at every point is out of reach for this structure: on the 1-channel row the\n` +
              `${bound.folioKiB.map(fmtKiB).join(', ')} points differ only in their folio = segment count per 2 MiB batch\n` +
              `(${bound.segments.join(', ')}); the model's batch time is convex in that count, so\n` +
              `T(${bound.segments[1]}) <= ${bound.lambda.toFixed(2)} T(${bound.segments[0]}) + ${(1 - bound.lambda).toFixed(2)} T(${bound.segments[2]}) = ${(bound.chordNs / 1000).toFixed(1)} us ` +
              `(${((2 * 1024 * 1024) / bound.chordNs).toFixed(2)} GB/s at ${fmtKiB(bound.folioKiB[1])}),\n` +
              `but the published ${fmtKiB(bound.folioKiB[1])} point takes ${(bound.measuredNs[1] / 1000).toFixed(1)} us (${((2 * 1024 * 1024) / bound.measuredNs[1]).toFixed(2)} GB/s). ` +
              `Any parameter values miss one of these three points by at least ${(bound.minMaxRelErr * 100).toFixed(1)}%.\n`);
            if (predictions.length) {
              write(`\nPredictions (GB/s, not fitted: no data for these)\n${'copy'.padEnd(12)}${FOLIO_KIB.map((f) => fmtKiB(f).padStart(8)).join('')}\n`);
              for (const pr of predictions) write(`${`DMA ${pr.channels}ch`.padEnd(12)}${pr.GBps.map((v) => v.toFixed(2).padStart(8)).join('')}\n`);
            }
            const slower = crossover.filter((c) => c.dma1 < c.cpu).map((c) => fmtKiB(c.folioKiB));
            if (crossover.length) write(`\n1-channel crossover: DMA slower than the CPU at ${slower.join(', ') || 'no size'}; faster at ${crossover.filter((c) => c.dma1 >= c.cpu).map((c) => fmtKiB(c.folioKiB)).join(', ') || 'no size'}\n`);
          }
          return;
        }
        if (experiment === 'device-fault') {
          const { runDeviceFault } = await import('../model/device_fault.js');
          for (const v of variants) {
            const rows = runDeviceFault(v.p, o.trace === undefined ? undefined : traceHook(parts, v.label ? `${v.label}: ` : ''));
            if (o.json) {
              write(JSON.stringify({ experiment, profile: base.name, variant: v.label, rows }, null, 2) + '\n');
              continue;
            }
            write(`\nDevice fault latency by phase, profile ${base.name}${v.label ? `, ${v.label}` : ''} (simulated us)\n`);
            for (const r of rows) {
              write(`${r.scenario} (${r.pages} page${r.pages > 1 ? 's' : ''}): ${(r.ns / 1000).toFixed(2)} us\n`);
              for (const [ph, ns] of Object.entries(r.phases)) write(`    ${ph.padEnd(40)} ${(ns / 1000).toFixed(2).padStart(10)}\n`);
            }
          }
          finishTrace();
          return;
        }
        if (experiment === 'nouveau-fault') {
          if (base.device === undefined || base.link === undefined) throw new Error(`nouveau-fault: profile '${base.name}' has no device and link (a GPU profile: pcie5-gpu, coherent-apu)`);
          const { runNouveauFault, NOUVEAU_PHASES } = await import('../model/nouveau_fault.js');
          for (const v of variants) {
            const rows = runNouveauFault(v.p, o.trace === undefined ? undefined : traceHook(parts, v.label ? `${v.label}: ` : ''));
            if (o.json) {
              write(JSON.stringify({ experiment, profile: base.name, variant: v.label, phases: NOUVEAU_PHASES, rows }, null, 2) + '\n');
              continue;
            }
            write(`\nnouveau fault latency by phase, profile ${base.name}${v.label ? `, ${v.label}` : ''} (simulated us; '-': the path does not take the phase)\n`);
            const head = ['scenario'.padEnd(30), 'folios'.padEnd(9), 'total'.padStart(9), ...NOUVEAU_PHASES.map((ph) => ph.padStart(10)), 'ns/KiB'.padStart(8)];
            write(head.join(' ') + '\n');
            for (const r of rows) {
              const cells = NOUVEAU_PHASES.map((ph) => (r.phases[ph] > 0 ? (r.phases[ph] / 1000).toFixed(2) : '-').padStart(10));
              write([r.scenario.padEnd(30), r.folios.padEnd(9), (r.ns / 1000).toFixed(2).padStart(9), ...cells, (r.ns / (r.bytes / 1024)).toFixed(1).padStart(8)].join(' ') + '\n');
            }
          }
          finishTrace();
          return;
        }
        if (experiment === 'dmirror-benchmark') {
          await dmirrorBenchmark(base, o.json === true, write, o.trace === undefined ? null : parts);
          finishTrace();
          return;
        }
        if (experiment !== 'move-pages') throw new Error(`unknown experiment '${experiment}' (move-pages, dmirror-benchmark, device-fault, nouveau-fault, calibrate, profiles)`);
        const mib = Number(o.size);
        if (!Number.isInteger(mib) || mib < 2 || mib % 2) throw new Error(`--size: '${o.size}' is not an even number of MiB >= 2`);
        const bytes = mib * (1 << 20);
        const chans = parseList(o.channels, '--channels');
        const folios = o.folios ? parseList(o.folios, '--folios') : FOLIO_KIB;
        for (const f of folios) if (!FOLIO_KIB.includes(f)) throw new Error(`--folios: ${f} is not one of ${FOLIO_KIB.join(',')}`);
        for (const c of chans) if (c > 0 && (base.dma === undefined || c > base.dma.channels)) throw new Error(`--channels: profile '${base.name}' has ${base.dma ? `${base.dma.channels} DMA channels` : 'no DMA engine'}`);
        const all: Array<{ variant: string; points: MovePagesPoint[] }> = [];
        // Progress: one tick per simulated configuration (a 1 GiB run is about a minute).
        let bar: { increment(): void; stop(): void } | null = null;
        if (!o.predict && process.stderr.isTTY) {
          const { SingleBar, Presets } = (await import('cli-progress')).default;
          const b = new SingleBar({ format: 'move-pages [{bar}] {value}/{total} configurations', stream: process.stderr, clearOnComplete: true }, Presets.shades_classic);
          b.start(variants.length * folios.length * chans.length, 0);
          bar = { increment: () => b.increment(), stop: () => b.stop() };
        }
        for (const v of variants) {
          const points: MovePagesPoint[] = [];
          for (const f of folios) {
            if (o.predict) {
              for (const c of chans) {
                const ns = predictMovePages(v.p, f, c, bytes);
                points.push({ folioKiB: f, channels: c, ns, GBps: bytes / ns, failed: 0, acct: {} });
              }
            } else {
              if (!o.json && bar === null) process.stderr.write(`${v.label ? v.label + ' ' : ''}folio ${fmtKiB(f)}: simulating ${mib} MiB x ${chans.length} configurations...\n`);
              points.push(...runMovePages(v.p, f, chans, bytes, false, () => bar?.increment(), o.trace === undefined ? undefined : traceHook(parts, v.label ? `${v.label}: ` : '')));
            }
          }
          all.push({ variant: v.label, points });
        }
        bar?.stop();
        finishTrace();
        if (o.json) {
          write(JSON.stringify({ experiment, profile: base.name, bytes, contentMode: 'fingerprint', results: all, ...(userData !== undefined ? { measured: userData } : {}) }, null, 2) + '\n');
          return;
        }
        for (const { variant, points } of all) {
          write(`\nmove_pages() of ${mib} MiB, node 0 -> 1, profile ${base.name}${variant ? `, ${variant}` : ''}: throughput GB/s${o.predict ? ' (closed form)' : ''}\n`);
          write(`${'copy'.padEnd(12)}${folios.map((f) => fmtKiB(f).padStart(8)).join('')}\n`);
          for (const c of chans) {
            const row = folios.map((f) => points.find((p) => p.folioKiB === f && p.channels === c)!);
            write(`${(c === 0 ? 'CPU' : `DMA ${c}ch`).padEnd(12)}${row.map((p) => p.GBps.toFixed(2).padStart(8)).join('')}\n`);
            const failed = row.reduce((s, p) => s + p.failed, 0);
            if (failed) write(`  (${failed} pages not migrated)\n`);
          }
          /* the measurements to compare with: --data, or the RFC v6 rows for the full zen3-2s table */
          const ref = userData ?? (base.name === 'zen3-2s' && !variant && mib === 1024 ? RFC_V6_ZEN3 : undefined);
          if (ref !== undefined) {
            const rows: Array<[number, Array<number | null>]> = [
              ...(ref.cpu ? [[0, ref.cpu] as [number, Array<number | null>]] : []),
              ...Object.entries(ref.dma ?? {}).map(([c, r]) => [Number(c), r] as [number, Array<number | null>]),
            ];
            const cell = (v: number | null): string => (v === null ? '-' : v.toFixed(2)).padStart(8);
            write(`\nmeasured (${ref === RFC_V6_ZEN3 ? 'RFC v6, calibration data' : ref.source ?? o.data}):\n`);
            for (const [c, row] of rows) write(`${(c === 0 ? 'CPU' : `DMA ${c}ch`).padEnd(12)}${row.map(cell).join('')}\n`);
            const errRows = rows.filter(([c]) => chans.includes(c) && folios.every((f) => FOLIO_KIB.includes(f)));
            if (errRows.length) {
              write('\nmodel vs measured (%):\n');
              for (const [c, row] of errRows) {
                const cells = folios.map((f) => {
                  const m = points.find((p) => p.folioKiB === f && p.channels === c)!.GBps;
                  const pub = row[FOLIO_KIB.indexOf(f)];
                  return (pub === null ? '-' : (((m - pub) / pub) * 100).toFixed(1)).padStart(8);
                });
                write(`${(c === 0 ? 'CPU' : `DMA ${c}ch`).padEnd(12)}${cells.join('')}\n`);
              }
              if (ref === RFC_V6_ZEN3) write('(10% per point is out of reach for this structure: hmmsim model calibrate, docs/COST_MODEL.md)\n');
            }
          }
        }
      } catch (e) {
        process.stderr.write(`hmmsim model: ${(e as Error).message}\n`);
        setCode(2);
      }
    });
}

/**
 * hmm-tests' benchmark_thp_migration (src/selftests/benchmark.ts) on
 * machines with a simulated clock: the kernel's table, in simulated ms.
 */
async function dmirrorBenchmark(profile: HwProfile, json: boolean, write: (s: string) => void, parts: TracePart[] | null): Promise<void> {
  const { buildHmmSuite } = await import('../selftests/hmm_tests.js');
  const { SimClock } = await import('../kernel/cost/clock.js');
  const clocks: Array<InstanceType<typeof SimClock>> = [];
  const traced: Array<{ k: Parameters<typeof detachTracer>[0]; tr: Tracer; clock: InstanceType<typeof SimClock> }> = [];
  const suite = buildHmmSuite({
    onMachine: (k) => {
      k.clock = new SimClock(profile);
      clocks.push(k.clock);
      if (parts !== null) {
        k.clock.jobs = [];
        const tr = attachTracer(k, new Tracer(k.clock));
        tr.limit = TRACE_EVENT_LIMIT;
        traced.push({ k, tr, clock: k.clock });
      }
    },
  });
  const lines: string[] = [];
  const r = suite.run({ select: (c: { test: string }) => c.test === 'benchmark_thp_migration', out: (l: string) => lines.push(l) });
  traced.forEach((t, i) => {
    detachTracer(t.k);
    parts!.push({ tracer: t.tr, label: `benchmark_thp_migration machine ${i + 1} (${profile.name})`, engines: t.clock.jobs ?? [], enginesDropped: t.clock.jobsDropped });
  });
  if (json) {
    const acct: Record<string, number> = {};
    for (const c of clocks) for (const [k, v] of c.acct) acct[k] = (acct[k] ?? 0) + v;
    write(JSON.stringify({ experiment: 'dmirror-benchmark', profile: profile.name, totals: r.totals, output: lines, nsByPhase: acct }, null, 2) + '\n');
  } else {
    write(`# times are simulated (profile ${profile.name})\n`);
    write(lines.join('\n') + '\n');
  }
  if (r.totals.fail > 0 || r.totals.error > 0) throw new Error('benchmark_thp_migration failed');
}
