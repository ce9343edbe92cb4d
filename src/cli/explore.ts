// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim explore <scenario>`: run a scenario under many interleavings and
 * report the first violation with a minimal trace and the replay command.
 * Exit 0 when nothing is found, 1 when a violation is, 2 on a usage error.
 */
import { type Command, Option } from 'commander';
import { applyConfigSetting, defaultHistorical, type KernelConfig } from '../kernel/config.js';
import { explore, formatTrace, runOnce, type StrategyName } from '../explore/engine.js';
import { SCENARIOS, findScenario } from '../../scenarios/index.js';

interface ExploreOpts {
  schedules: string;
  seed: string;
  strategy: StrategyName;
  config?: string[];
  json?: boolean;
  schedule?: string;
  list?: boolean;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function parseConfig(settings: readonly string[]): Partial<KernelConfig> {
  // Only the settings given are passed on; the scenario picks its machine size.
  const cfg = { historical: defaultHistorical() } as KernelConfig;
  for (const s of settings) {
    for (const one of s.split(',').filter((x) => x)) {
      const err = applyConfigSetting(cfg, one);
      if (err !== null) throw new Error(err);
    }
  }
  return cfg;
}

export function registerExplore(program: Command, write: (s: string) => void, setCode: (c: number) => void): void {
  program
    .command('explore')
    .description('explore the interleavings of a concurrency scenario; stop at the first violation and print a minimal trace')
    .argument('[scenario]', `scenario name (${SCENARIOS.map((s) => s.name).join(', ')})`)
    .option('--schedules <n>', 'number of schedules to try', '10000')
    .option('--seed <s>', 'seed of the schedule generator (runs are replayable)', '1')
    .addOption(new Option('--strategy <name>', 'schedule generation strategy').choices(['random', 'pct', 'bounded']).default('random'))
    .option('--config <name=value>', 'kernel configuration setting, e.g. fault_no_page_ref=on (repeatable)', collect)
    .option('--schedule <choices>', 'replay one explicit schedule (comma-separated choices, as printed)')
    .option('--list', 'list the scenarios')
    .option('--json', 'print one JSON object')
    .action((name: string | undefined, o: ExploreOpts) => {
      if (o.list || name === undefined) {
        for (const s of SCENARIOS) write(`${s.name}\t${s.bugSwitch}\t${s.description}\n`);
        setCode(name === undefined && !o.list ? 2 : 0);
        return;
      }
      const sc = findScenario(name);
      if (!sc) {
        process.stderr.write(`hmmsim explore: unknown scenario '${name}' (known: ${SCENARIOS.map((s) => s.name).join(', ')})\n`);
        setCode(2);
        return;
      }
      let cfg: Partial<KernelConfig>;
      try {
        cfg = parseConfig(o.config ?? []);
      } catch (e) {
        process.stderr.write(`hmmsim explore: ${(e as Error).message}\n`);
        setCode(2);
        return;
      }
      const schedules = Number(o.schedules);
      const seed = Number(o.seed);
      if (!Number.isInteger(schedules) || schedules <= 0 || !Number.isInteger(seed)) {
        process.stderr.write('hmmsim explore: --schedules must be a positive integer and --seed an integer\n');
        setCode(2);
        return;
      }
      const cfgArgs = (o.config ?? []).map((c) => ` --config ${c}`).join('');
      if (o.schedule !== undefined) {
        const choices = o.schedule.split(',').filter((x) => x !== '').map(Number);
        if (choices.some((c) => !Number.isInteger(c) || c < 0)) {
          process.stderr.write('hmmsim explore: --schedule takes comma-separated non-negative integers\n');
          setCode(2);
          return;
        }
        const r = runOnce(sc, cfg, choices);
        if (o.json) write(JSON.stringify({ scenario: sc.name, violation: r.violation, schedule: r.schedule, trace: r.trace }, null, 2) + '\n');
        else write(`${formatTrace(r)}\n${r.violation ? 'VIOLATION' : 'no violation'} (${r.steps} steps)\n`);
        setCode(r.violation ? 1 : 0);
        return;
      }
      const tty = process.stderr.isTTY && !o.json;
      const res = explore(sc, {
        schedules, seed, strategy: o.strategy, config: cfg,
        onProgress: tty ? (n) => process.stderr.write(`\r  ${n}/${schedules} schedules`) : undefined,
      });
      if (tty) process.stderr.write('\r\x1b[K');
      const replay = res.schedule ? `hmmsim explore ${sc.name}${cfgArgs} --schedule ${res.schedule.join(',')}` : null;
      if (o.json) {
        write(JSON.stringify({
          scenario: sc.name, strategy: o.strategy, seed, schedulesRun: res.schedulesRun, seconds: res.seconds,
          schedulesPerSecond: res.schedulesRun / res.seconds, violation: res.found?.violation ?? null,
          schedule: res.schedule, replay, trace: res.found?.trace ?? null,
        }, null, 2) + '\n');
      } else if (res.found) {
        write(`${sc.name}: ${res.found.violation!.detector} after ${res.schedulesRun} schedule(s) in ${res.seconds.toFixed(2)} s\n`);
        write(`minimal interleaving (${res.found.steps} steps):\n${formatTrace(res.found)}\n`);
        write(`replay: ${replay}\n`);
      } else {
        write(`${sc.name}: no violation in ${res.schedulesRun} schedules (${o.strategy}, seed ${seed}) in ${res.seconds.toFixed(2)} s (${(res.schedulesRun / res.seconds).toFixed(0)} schedules/s)\n`);
      }
      setCode(res.found ? 1 : 0);
    });
}
