// SPDX-License-Identifier: GPL-2.0-only
/**
 * Loading the user's own files: a driver (`--driver ./my-driver.js`), a
 * scenario (`hmmsim explore ./my-scenario.js`), a program
 * (`hmmsim run ./my-program.js`). Each is an ES module (a .js/.mjs file, or
 * TypeScript compiled to it), resolved against the current directory. A
 * file that cannot be loaded or has the wrong shape is a usage error with
 * a message saying what was expected.
 *
 * Shapes:
 *   driver    exports init(k) (and optionally exit(k), name) — or a default
 *             export object with them (KernelModule, src/kernel/module.ts)
 *   scenario  default export (or `scenario` export) with name, setup(cfg)
 *             (Scenario, src/explore/engine.ts)
 *   program   default export (or `main` export): main(ctx) -> exit status
 *             (ProgramMain, src/user/program.ts)
 */
import { existsSync } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { KernelModule } from '../kernel/module.js';
import type { Scenario } from '../explore/engine.js';
import type { ProgramMain } from '../user/program.js';

export class UserModuleError extends Error {}

/** True when the argument names a file rather than a built-in (it has a slash or a .js/.mjs/.cjs extension). */
export function looksLikePath(arg: string): boolean {
  return arg.includes('/') || arg.includes('\\') || /\.(m|c)?js$/.test(arg);
}

/** The file URL of a user path (relative to the current directory). */
export function userFileUrl(path: string): string {
  const abs = resolve(process.cwd(), path);
  if (!existsSync(abs)) throw new UserModuleError(`${path}: no such file`);
  return pathToFileURL(abs).href;
}

async function importUser(path: string, what: string): Promise<Record<string, unknown>> {
  const url = userFileUrl(path);
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (e) {
    throw new UserModuleError(`${what} ${path}: cannot be loaded: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** A driver module: { name, module } (name: the module's own, else the file's base name). */
export async function loadDriverFile(path: string): Promise<{ name: string; module: KernelModule; url: string }> {
  const ns = await importUser(path, 'driver');
  const obj = (typeof ns.init === 'function' ? ns : ns.default) as Partial<KernelModule> | undefined;
  if (obj === undefined || obj === null || typeof obj.init !== 'function') {
    throw new UserModuleError(`driver ${path}: expected a module exporting init(k) (and optionally exit(k), name), or a default export { init, exit }`);
  }
  if (obj.exit !== undefined && typeof obj.exit !== 'function') throw new UserModuleError(`driver ${path}: exit is not a function`);
  const name = typeof obj.name === 'string' && obj.name ? obj.name : basename(path, extname(path));
  return { name, module: obj as KernelModule, url: userFileUrl(path) };
}

/** A scenario module. */
export async function loadScenarioFile(path: string): Promise<Scenario> {
  const ns = await importUser(path, 'scenario');
  const sc = (ns.default ?? ns.scenario) as Partial<Scenario> | undefined;
  if (sc === undefined || sc === null || typeof sc.setup !== 'function' || typeof sc.name !== 'string') {
    throw new UserModuleError(`scenario ${path}: expected a default export (or 'scenario' export) { name, description, setup(cfg) } returning { k, threads }`);
  }
  return {
    description: '(user scenario)', seedRef: path, bugSwitch: '-', expect: '-', ...sc,
  } as Scenario;
}

/** A program module's main(). */
export async function loadProgramFile(path: string): Promise<ProgramMain> {
  const ns = await importUser(path, 'program');
  const main = (typeof ns.default === 'function' ? ns.default : ns.main) as ProgramMain | undefined;
  if (typeof main !== 'function') {
    throw new UserModuleError(`program ${path}: expected a default export (or 'main' export) main({ sys, proc, libc, argv }) returning the exit status`);
  }
  return main;
}
