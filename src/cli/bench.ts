// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim bench [--json] [--only <section...>] [--reps N] [--quick]`: the
 * performance figures of docs/PERFORMANCE.md, each a median of repeated
 * runs, all in one process run. Progress goes to stderr; the report (or,
 * with --json, one JSON object) to stdout. Exit 0 when every section ran
 * (targets missed are reported, not an error), 1 when a section failed
 * (for instance the data-integrity check), 2 on a usage error.
 */
import { type Command, Option } from 'commander';
import { DEFAULT_SECTIONS, SECTIONS, type Section, runBench, type BenchResult } from '../bench/index.js';

interface BenchOpts {
  json?: boolean;
  only?: string[];
  reps: string;
  quick?: boolean;
}

function report(r: BenchResult): string {
  const out: string[] = [];
  out.push(`hmmsim bench on ${r.machine.cpus} x ${r.machine.cpuModel}, node ${r.machine.node}${r.machine.quick ? ' (quick: not target sizes)' : ''}`);
  if (r.core.length) {
    out.push('', 'core: system -> device-private -> system round trips (median)');
    out.push('  pages      page   s2d GB/s  d2s GB/s  memcpy GB/s  ratio');
    for (const c of r.core) {
      out.push(`  ${String(c.pages).padStart(8)}  ${c.thp ? ' THP' : '4KiB'}  ${c.s2dGBps.toFixed(2).padStart(8)}  ${c.d2sGBps.toFixed(2).padStart(8)}  ${c.memcpyGBps.toFixed(2).padStart(11)}  ${c.ratio.toFixed(3)}`);
    }
  }
  if (r.fault) out.push('', `fault: ${r.fault.devicePrivateFaultsPerSecond} device-private CPU faults/s; hmm_range_fault ${r.fault.hmmRangeFaultPagesPerSecond} pages/s`);
  if (r.scale) {
    out.push('', 'scale (fingerprint mode, 4 KiB round trip):');
    for (const s of r.scale.rows) out.push(`  ${String(s.pages).padStart(8)} pages  ${s.nsPerPage.toFixed(0)} ns/page`);
  }
  if (r.memory) out.push('', `memory: ${r.memory.bytesPerPage} bytes per page frame at ${r.memory.populatedPages} populated pages (struct page arrays ${r.memory.structPageBytes}, other ${r.memory.otherBytes})`);
  if (r.selftestSeconds !== null) out.push('', `suite: hmmsim selftest ${r.selftestSeconds} s, ${JSON.stringify(r.selftestTotals)}`);
  const f = r.selftestFloor;
  if (f) {
    out.push(`  page contents moved: ${(f.contentBytes / 1e9).toFixed(1)} GB; ${f.jobs} threads copy ${f.parallelMemcpyGBps.toFixed(2)} GB/s together,`);
    out.push(`  so the copies alone need ${f.copySeconds.toFixed(2)} s of wall time (benchmark_thp_migration: ${f.benchmarkCaseSeconds.join(' s, ')} s)`);
  }
  for (const t of r.selftestTable ?? []) out.push('', `${t.name}:`, ...t.lines.map((l) => `  ${l}`));
  if (r.explorerSchedulesPerSecond !== null) out.push('', `explorer: ${r.explorerSchedulesPerSecond} schedules/s (cve-2022-3523)`);
  if (r.fuzz) out.push('', `fuzz: ${r.fuzz.opsPerSecond} checked operations/s, ${r.fuzz.opsPerCpuSecond} per CPU second (${r.fuzz.ops} ops, ${r.fuzz.sequences} sequences of hmmsim fuzz defaults, ${r.fuzz.violations} violations met)`);
  if (r.big) out.push('', `big: ${r.big.ramGiB} GiB RAM + ${r.big.deviceGiB} GiB device-private (fingerprint mode): ${r.big.populatedPages} pages populated, ${r.big.migratedPages} migrated there and back, ${r.big.verifiedPages} verified; model ${r.big.modelGiB} GiB, RSS ${r.big.rssGiB} GiB, ${r.big.seconds} s`);
  out.push('', 'targets:');
  for (const [name, t] of Object.entries(r.targets)) {
    out.push(`  ${name.padEnd(28)} ${t.value === null ? 'not measured' : String(t.value).padStart(10)}  (${t.target})  ${t.met === null ? '' : t.met ? 'met' : 'NOT MET'}`);
    if (t.note) out.push(`  ${''.padEnd(28)} ${t.note}`);
  }
  out.push('', `${r.seconds} s`);
  return out.join('\n') + '\n';
}

export function registerBench(program: Command, write: (s: string) => void, setCode: (c: number) => void): void {
  program
    .command('bench')
    .description('measure the model: migration vs memcpy, faults, scaling, memory per page, selftest and explorer speed')
    .option('--json', 'print one JSON object (memcpyGBps, core[], ratio4k, ratioThp, scaleFlatness, bytesPerPage, selftestSeconds, selftestFloor, explorerSchedulesPerSecond, ...)')
    .addOption(new Option('--only <section...>', 'run only these sections (big: the 64 GiB + 16 GiB fingerprint-mode machine, not run by default)').choices([...SECTIONS]))
    .option('--reps <n>', 'timed repetitions per core row at 64 MiB and above (smaller rows scale up; the median is reported)', '5')
    .option('--quick', 'small sizes only: a smoke run, not the target figures')
    .action(async (opts: BenchOpts) => {
      const reps = Number(opts.reps);
      if (!Number.isInteger(reps) || reps < 1 || reps > 100) {
        process.stderr.write(`hmmsim bench: --reps '${opts.reps}' is not an integer in 1..100\n`);
        setCode(2);
        return;
      }
      const sections = (opts.only ?? [...DEFAULT_SECTIONS]) as Section[];
      try {
        const r = await runBench({ sections, quick: opts.quick === true, reps, log: (l) => process.stderr.write(`# ${l}\n`) });
        write(opts.json ? JSON.stringify(r, null, 2) + '\n' : report(r));
        setCode(0);
      } catch (e) {
        process.stderr.write(`hmmsim bench: ${(e as Error).message}\n`);
        setCode(1);
      }
    });
}
