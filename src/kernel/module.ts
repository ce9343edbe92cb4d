// SPDX-License-Identifier: GPL-2.0-only
/**
 * Loadable modules (kernel/module/main.c, reduced): a driver is an object
 * with module_init() and module_exit() functions, loaded into one
 * simulated machine. This is the shape of a user-written driver
 * (`hmmsim selftest --driver ./my-driver.js`, `hmmsim run --driver ...`):
 *
 *   export const name = 'mydrv';
 *   export function init(k: Kernel): number { ...; return 0; }   // module_init
 *   export function exit(k: Kernel): void { ... }                // module_exit
 *
 * init() returns 0 or -errno, as an init function does (a failing init
 * leaves the module unloaded: do_init_module()). The driver uses only
 * what a kernel module could: the `hmmsim/kernel` entry point.
 */
import type { Kernel } from './kernel.js';
import { EEXIST, EINVAL, ENOENT } from './errno.js';

/** A kernel module: module_init / module_exit. */
export interface KernelModule {
  /** The module's name (lsmod); defaults to the file name when loaded by the CLI. */
  name?: string;
  /** module_init(): 0 or -errno. */
  init(k: Kernel): number;
  /** module_exit() (optional, as for a module that cannot be unloaded). */
  exit?(k: Kernel): void;
}

/**
 * load_module() + do_init_module(): run `mod.init(k)` and record the
 * module as loaded under `name`. Returns init's result; -EEXIST when a
 * module of that name is loaded; -EINVAL when `mod` has no init function.
 * An init that throws (a KernelBug, or a bare exception in the driver)
 * propagates: the machine is then in the state the oops left it.
 */
export function loadModule(k: Kernel, mod: KernelModule, name = mod.name ?? 'module'): number {
  if (typeof mod?.init !== 'function') return -EINVAL;
  if (k.modules.has(name)) return -EEXIST;
  const r = mod.init(k);
  if (typeof r !== 'number' || !Number.isInteger(r) || r > 0) {
    k.printk.warn(`do_init_module: ${name}: init returned ${String(r)}, not 0 or -errno`, '');
    return -EINVAL;
  }
  if (r === 0) k.modules.set(name, mod);
  else k.printk.info(`${name}: module_init failed: ${r}`);
  return r;
}

/** delete_module(): module_exit() and forget it. -ENOENT when not loaded. */
export function unloadModule(k: Kernel, name: string): number {
  const mod = k.modules.get(name) as KernelModule | undefined;
  if (mod === undefined) return -ENOENT;
  mod.exit?.(k);
  k.modules.delete(name);
  return 0;
}
