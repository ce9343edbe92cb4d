// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim explore <scenario>`: run a scenario under many interleavings and
 * report the first violation with a minimal trace and the replay command.
 *
 *   hmmsim explore <scenario | ./my-scenario.js> [--schedules N] [--seed S] [--strategy random|pct|bounded]
 *                  [--bound B] [--config name=value ...] [--json] [--schedule c,c,...] [--fresh]
 *                  [--trace FILE] [--record FILE]
 *   hmmsim explore --list
 *
 * --trace writes the replayed counterexample (or the --schedule run) as
 * Chrome Trace Event JSON, --record as a recorded run for `hmmsim report`
 * (docs/REPORT.md).
 * A scenario file is an ES module whose default export (or `scenario`
 * export) is a Scenario (src/explore/engine.ts; `hmmsim/explore`).
 *
 * Exit 0 when nothing is found, 1 when a violation is, 2 on a usage error.
 * A progress bar is drawn on stderr when it is a terminal.
 */
import { type Command, Option } from 'commander';
import { writeFileSync } from 'node:fs';
import { applyConfigSetting, defaultConfig, defaultHistorical, type KernelConfig } from '../kernel/config.js';
import { hostBoundsError } from './config_check.js';
import { explore, formatTrace, runOnce, STRATEGIES, type ExploreResult, type RunResult, type Scenario, type StrategyName } from '../explore/engine.js';
import { SCENARIOS, findScenario } from '../../scenarios/index.js';
import { writeTrace } from '../trace/chrome.js';
import { RunRecorder } from '../trace/record.js';
import { UserModuleError, loadScenarioFile, looksLikePath } from './user_modules.js';

interface ExploreOpts {
  schedules: string;
  seed: string;
  strategy: StrategyName;
  bound: string;
  config?: string[];
  json?: boolean;
  schedule?: string;
  list?: boolean;
  fresh?: boolean;
  trace?: string;
  record?: string;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The settings given, applied on top of nothing else: the scenario picks its machine. */
function parseConfig(settings: readonly string[]): { cfg: Partial<KernelConfig>; flat: string[] } {
  const cfg = { historical: defaultHistorical() } as KernelConfig;
  const flat: string[] = [];
  for (const s of settings) {
    for (const one of s.split(',').filter((x) => x)) {
      const err = applyConfigSetting(cfg, one);
      if (err !== null) throw new Error(err);
      flat.push(one);
    }
  }
  // The scenario picks its machine's size; a RAM or swap size given here must still fit the host.
  const given = cfg as Partial<KernelConfig>;
  if (given.ramBytes !== undefined || given.swapMiB !== undefined) {
    const host = hostBoundsError(defaultConfig({ ramBytes: given.ramBytes ?? 4 << 20, swapMiB: given.swapMiB ?? 0 }), 1);
    if (host !== null) throw new Error(host);
  }
  return { cfg, flat };
}

function traceJson(r: RunResult): unknown[] {
  return r.trace.map((s, i) => ({ step: s.step, task: s.task, thread: s.taskName, event: s.what, arg: s.arg >= 0 ? s.arg : null, state: r.notes[i] || null }));
}

function listScenarios(write: (s: string) => void, json: boolean): void {
  if (json) {
    write(JSON.stringify(SCENARIOS.map((s) => ({ name: s.name, switch: s.bugSwitch, expect: s.expect, description: s.description, seed: s.seedRef })), null, 2) + '\n');
    return;
  }
  const w = Math.max(...SCENARIOS.map((s) => s.name.length));
  const ws = Math.max(...SCENARIOS.map((s) => s.bugSwitch.length));
  for (const s of SCENARIOS) write(`${s.name.padEnd(w)}  ${s.bugSwitch.padEnd(ws)}  ${s.description}\n`);
}

/** --trace / --record outputs of one recorded run. */
function writeOutputs(sc: Scenario, flat: string[], r: RunResult, rr: RunRecorder, o: ExploreOpts): void {
  const label = `explore ${sc.name}${flat.map((c) => ` --config ${c}`).join('')} --schedule ${r.schedule.join(',') || '0'}`;
  if (o.trace !== undefined) writeTrace(o.trace, rr.tracer!, { label });
  if (o.record !== undefined) writeFileSync(o.record, JSON.stringify(rr.finish(sc, flat, r)) + '\n');
}

export function registerExplore(program: Command, write: (s: string) => void, setCode: (c: number) => void): void {
  const err = (msg: string): void => {
    process.stderr.write(`hmmsim explore: ${msg}\n`);
    setCode(2);
  };
  program
    .command('explore')
    .description('explore the interleavings of a concurrency scenario; stop at the first violation and print a minimal trace')
    .argument('[scenario]', `scenario name (${SCENARIOS.map((s) => s.name).join(', ')}) or a scenario file (./my-scenario.js)`)
    .option('--schedules <n>', 'number of schedules to try', '10000')
    .option('--seed <s>', 'seed of the schedule generator (runs are replayable)', '1')
    .addOption(new Option('--strategy <name>', 'schedule generation strategy').choices([...STRATEGIES]).default('random'))
    .option('--bound <n>', 'PCT depth (pct) or preemption bound (bounded)', '3')
    .option('--config <name=value>', 'kernel configuration setting, e.g. fault_no_page_ref=on (repeatable, or comma-separated)', collect)
    .option('--schedule <choices>', 'replay one explicit schedule (the comma-separated choices printed after "replay:")')
    .option('--list', 'list the scenarios with their historical switch')
    .option('--json', 'print one JSON object')
    .option('--trace <file>', 'write a Chrome Trace Event JSON (Perfetto, chrome://tracing) of the counterexample\'s replay (or of the --schedule run; with nothing found, of the non-preemptive run)')
    .option('--record <file>', 'write the recorded run (steps, page maps per step) for hmmsim report --from-record')
    .option('--fresh', 'build a fresh machine for every schedule instead of restoring a snapshot (slow; for checking the explorer)')
    .addHelpText('after', `
Scenarios and the switch that breaks each:
${SCENARIOS.map((s) => `  ${s.name.padEnd(28)}--config ${`${s.bugSwitch}=on`.padEnd(34)}${s.expect}`).join('\n')}

Examples:
  hmmsim explore cve-2022-3523 --config fault_no_page_ref=on
  hmmsim explore cve-2022-3523                  # mainline: 10,000 schedules, nothing found
  hmmsim explore ./my-scenario.js              # a scenario of your own (see examples/)
  hmmsim explore --list`)
    .action(async (name: string | undefined, o: ExploreOpts) => {
      if (o.list) {
        listScenarios(write, o.json === true);
        setCode(0);
        return;
      }
      if (name === undefined) {
        err(`a scenario name is required (known: ${SCENARIOS.map((s) => s.name).join(', ')}; see --list)`);
        return;
      }
      let sc = findScenario(name);
      if (!sc && looksLikePath(name)) {
        try {
          sc = await loadScenarioFile(name);
        } catch (e) {
          if (e instanceof UserModuleError) return err(e.message);
          throw e;
        }
      }
      if (!sc) {
        err(`unknown scenario '${name}' (known: ${SCENARIOS.map((s) => s.name).join(', ')}; or a file: ./my-scenario.js)`);
        return;
      }
      let cfg: Partial<KernelConfig>;
      let flat: string[];
      try {
        ({ cfg, flat } = parseConfig(o.config ?? []));
      } catch (e) {
        err((e as Error).message);
        return;
      }
      const schedules = Number(o.schedules);
      const seed = Number(o.seed);
      const bound = Number(o.bound);
      if (!Number.isInteger(schedules) || schedules <= 0) return err(`--schedules: '${o.schedules}' is not a positive integer`);
      if (!Number.isInteger(seed)) return err(`--seed: '${o.seed}' is not an integer`);
      if (!Number.isInteger(bound) || bound < 0) return err(`--bound: '${o.bound}' is not a non-negative integer`);
      const cfgArgs = flat.map((c) => ` --config ${c}`).join('');
      if (o.schedule !== undefined) {
        const choices = o.schedule.split(',').filter((x) => x.trim() !== '').map(Number);
        if (choices.some((c) => !Number.isInteger(c) || c < 0)) return err('--schedule takes comma-separated non-negative integers');
        const rr = o.trace !== undefined || o.record !== undefined ? new RunRecorder() : null;
        const r = runOnce(sc, cfg, choices, { instrument: rr?.instrument });
        if (rr !== null) writeOutputs(sc, flat, r, rr, o);
        if (o.json) {
          write(JSON.stringify({ scenario: sc.name, config: flat, schedule: r.schedule, violation: r.violation, steps: r.steps, trace: traceJson(r) }, null, 2) + '\n');
        } else {
          write(`${sc.name}: replay of schedule [${choices.join(',')}]${cfgArgs ? ` with${cfgArgs}` : ''}\n${formatTrace(r)}\n`);
          write(`${r.violation ? `VIOLATION: ${r.violation.detector}` : 'no violation'} (${r.steps} steps)\n`);
        }
        setCode(r.violation ? 1 : 0);
        return;
      }
      let bar: { update(n: number): void; stop(): void } | null = null;
      if (process.stderr.isTTY) {
        const { SingleBar, Presets } = (await import('cli-progress')).default;
        const b = new SingleBar({ format: `explore ${sc.name} [{bar}] {value}/{total} schedules`, stream: process.stderr, clearOnComplete: true, hideCursor: true }, Presets.shades_classic);
        b.start(schedules, 0);
        bar = { update: (n) => b.update(n), stop: () => b.stop() };
      }
      const rr = o.trace !== undefined || o.record !== undefined ? new RunRecorder() : null;
      let res: ExploreResult;
      try {
        res = explore(sc, { schedules, seed, strategy: o.strategy, bound, config: cfg, snapshot: o.fresh !== true, onProgress: bar ? (n) => bar!.update(n) : undefined, instrument: rr?.instrument });
      } finally {
        bar?.stop();
      }
      const found = res.found;
      if (rr !== null) {
        if (found !== null) writeOutputs(sc, flat, found, rr, o);
        else {
          // Nothing found: trace the non-preemptive run (schedule 0), so there is something to look at.
          const rr0 = new RunRecorder();
          writeOutputs(sc, flat, runOnce(sc, cfg, [], { instrument: rr0.instrument }), rr0, o);
          process.stderr.write('hmmsim explore: no violation found; the trace/recording is of the non-preemptive run (schedule 0)\n');
        }
      }
      // A scenario file is replayed by its path, a built-in one by its name.
      const scArg = sc === findScenario(name) ? sc.name : name;
      const replay = res.schedule !== null ? `hmmsim explore ${scArg}${cfgArgs} --schedule ${res.schedule.join(',') || '0'}` : null;
      if (o.json) {
        write(JSON.stringify({
          scenario: sc.name, switch: sc.bugSwitch, config: flat, strategy: o.strategy, seed, schedules,
          schedulesRun: res.schedulesRun, shrinkRuns: res.shrinkRuns, secondsToFind: res.secondsToFind, seconds: res.seconds,
          schedulesPerSecond: found ? null : res.schedulesRun / res.seconds,
          violation: found?.violation ?? null, schedule: res.schedule, replay, steps: found?.steps ?? null,
          trace: found ? traceJson(found) : null,
        }, null, 2) + '\n');
      } else if (found) {
        const switches = res.schedule!.filter((c) => c !== 0).length;
        write(`${sc.name}: ${found.violation!.detector} after ${res.schedulesRun} schedule(s), ${res.secondsToFind!.toFixed(2)} s (${o.strategy}, seed ${seed}); shrunk in ${res.shrinkRuns} runs\n`);
        write(`minimal interleaving (${found.steps} steps, ${switches} forced context switch${switches === 1 ? '' : 'es'}):\n${formatTrace(found)}\n`);
        write(`replay: ${replay}\n`);
      } else {
        write(`${sc.name}: no violation in ${res.schedulesRun} schedules (${o.strategy}, seed ${seed}${cfgArgs ? `,${cfgArgs.trim()}` : ''}) in ${res.seconds.toFixed(2)} s (${(res.schedulesRun / res.seconds).toFixed(0)} schedules/s)\n`);
      }
      setCode(found ? 1 : 0);
    });
}
