// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim run <program.js> [args...]`: run a user-space program on a booted
 * machine (test_hmm and gup_test loaded, plus --driver modules) and print
 * what it prints.
 *
 *   hmmsim run ./my-program.js [args...] [--config name=value ...] [--driver ./drv.js ...] [--json] [--trace FILE]
 *
 * The program module's default export (or `main` export) is main({ sys,
 * proc, libc, argv, kernel }) returning its exit status (src/user/program.ts).
 * The exit status of `hmmsim run` is the program's; 128 + n when signal n
 * killed it (as a shell reports it); 2 on a usage error (no such file, no
 * main, a bad --config, a driver that does not load); 1 with the report
 * when the model raised a kernel BUG (KernelBug) during the run. With
 * --json, the program's output is captured and one JSON object is printed.
 * With --trace, the run (also one that ends in a kernel BUG) is written as
 * Chrome Trace Event JSON (src/trace/chrome.ts), one tick per event.
 */
import { Option, type Command } from 'commander';
import { KernelBug } from '../kernel/printk.js';
import { EventClock, Tracer, attachTracer } from '../kernel/trace.js';
import { writeTrace } from '../trace/chrome.js';
import { ConfigError, contentModeError, hostBoundsError, parseConfig } from './config_check.js';
import { UserModuleError, loadDriverFile, loadProgramFile } from './user_modules.js';

interface RunOpts {
  config?: string[];
  driver?: string[];
  json?: boolean;
  trace?: string;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function registerRun(program: Command, write: (s: string) => void, setCode: (c: number) => void): void {
  const usage = (msg: string): void => {
    process.stderr.write(`hmmsim run: ${msg}\n`);
    setCode(2);
  };
  program
    .command('run')
    .description('run a user-space program (an ES module whose default export is main({ sys, proc, libc, argv })) on a booted machine')
    .argument('<program>', 'the program file (.js/.mjs), relative to the current directory')
    .argument('[args...]', 'arguments (argv[1..]); put them after -- when they start with -')
    .addOption(new Option('--config <name=value>', 'kernel configuration setting (repeatable, or comma-separated)').argParser(collect))
    .option('--driver <file>', 'a driver module (exports init(k), exit(k)) loaded after test_hmm; repeatable', collect)
    .option('--json', 'capture the program\'s output and print one JSON object (exit status, signal, stdout, stderr)')
    .option('--trace <file>', 'write the run as Chrome Trace Event JSON (Perfetto; docs/REPORT.md)')
    .addHelpText('after', `
The program module:
  export default function main({ sys, proc, libc, argv }) {
    const p = libc.malloc(4096);
    libc.printf('hello from pid %d: %p\\n', libc.getpid(), p);
    return 0;                              // the exit status
  }

Examples:
  hmmsim run examples/port-malloc.mjs
  hmmsim run ./prog.js --config thp=always -- -v input`)
    .action(async (file: string, args: string[], o: RunOpts) => {
      let cfg;
      try {
        cfg = parseConfig(o.config ?? []);
      } catch (e) {
        if (e instanceof ConfigError) return usage(e.message);
        throw e;
      }
      const refuse = contentModeError(cfg, 'run', "the program's stdio and loads read page bytes") ?? hostBoundsError(cfg, 1);
      if (refuse !== null) return usage(refuse);
      let main;
      const modules = [];
      try {
        main = await loadProgramFile(file);
        for (const d of o.driver ?? []) modules.push(await loadDriverFile(d));
      } catch (e) {
        if (e instanceof UserModuleError) return usage(e.message);
        throw e;
      }
      const { runProgram, ModuleLoadError } = await import('../user/program.js');
      const captured = { stdout: '', stderr: '' };
      const stdio = o.json
        ? (fd: number, text: string) => {
          if (fd === 2) captured.stderr += text;
          else captured.stdout += text;
        }
        : (fd: number, text: string) => (fd === 2 ? process.stderr.write(text) : write(text));
      let res;
      let tracer: Tracer | null = null;
      const onMachine = o.trace === undefined ? undefined : (sys: { kernel: Parameters<typeof attachTracer>[0] }) => {
        tracer = attachTracer(sys.kernel, new Tracer(new EventClock()));
      };
      const flushTrace = (): void => {
        if (o.trace !== undefined && tracer !== null) writeTrace(o.trace, tracer, { label: `hmmsim run ${file}` });
      };
      try {
        res = await runProgram(main, { config: cfg, modules, argv: [file, ...args], stdio, onMachine, name: file.replace(/^.*\//, '').replace(/\.(m|c)?js$/, '') });
      } catch (e) {
        flushTrace();
        if (e instanceof ModuleLoadError) return usage(`--driver: ${e.message}`);
        if (e instanceof KernelBug) {
          const report = `kernel ${e.kind}: ${e.rule}${e.state ? '\n' + e.state : ''}`;
          if (o.json) write(JSON.stringify({ program: file, argv: [file, ...args], exitCode: null, signal: null, kernelBug: { kind: e.kind, rule: e.rule }, ...captured }, null, 2) + '\n');
          else process.stderr.write(`hmmsim run: ${file}: ${report}\n`);
          setCode(1);
          return;
        }
        // An exception the program's own code threw (a bug in the program, not a simulated signal).
        process.stderr.write(`hmmsim run: ${file}: the program threw ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
        setCode(1);
        return;
      }
      flushTrace();
      const warnings = res.sys.kernel.printk.warnings.map((w) => w.rule);
      if (o.json) {
        write(JSON.stringify({ program: file, argv: [file, ...args], exitCode: res.exitCode, signal: res.signal, kernelWarnings: warnings, ...captured }, null, 2) + '\n');
      } else {
        for (const w of warnings) process.stderr.write(`# kernel: WARNING: ${w}\n`);
        if (res.signal !== null) process.stderr.write(`hmmsim run: ${file}: killed by signal ${res.signal}\n`);
      }
      setCode(res.signal !== null ? 128 + res.signal : res.exitCode ?? 0);
    });
}
