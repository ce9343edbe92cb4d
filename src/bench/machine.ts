// SPDX-License-Identifier: GPL-2.0-only
/**
 * The benchmark machine: a simulated system sized for one buffer, a
 * process with that buffer mapped and populated, and the minimal driver
 * (src/drivers/testdrv) with enough device-private memory to take all of
 * it. Shared by the core, fault, scale and memory benchmarks.
 *
 * The buffer is populated through the process (CPU stores through the page
 * tables and the real fault path), every page with its own content, and the
 * content fingerprint of every page is recorded so that verify() can prove
 * no page was lost or swapped by the migrations in between.
 */
import { translate } from '../kernel/arch/fault.js';
import type { ContentMode } from '../kernel/config.js';
import { MADV_HUGEPAGE, MADV_NOHUGEPAGE } from '../kernel/mm/madvise.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mmap.js';
import { HPAGE_PMD_NR, HPAGE_PMD_SIZE, PAGE_SIZE } from '../kernel/mm/page.js';
import { pmdAlignUp } from '../kernel/mm/pgtable.js';
import { runSync, type K } from '../kernel/sched/sched.js';
import { TestDev } from '../drivers/testdrv/testdrv.js';
import type { Process } from '../user/process.js';
import { System } from '../user/system.js';

export interface MachineOptions {
  /** Buffer size in 4 KiB pages (a multiple of 512). */
  pages: number;
  /** Back the buffer with THPs (MADV_HUGEPAGE, 2 MiB aligned) instead of 4 KiB pages. */
  thp: boolean;
  contentMode?: ContentMode;
  /** Fill every byte (true) or one 8-byte word per page (false: faster, for the scale runs). */
  fullPages?: boolean;
  /** Create the device (default); the memory benchmark measures a machine without one. */
  device?: boolean;
  /** Device-private pages of the device (default: the buffer's pages + 512). */
  devicePages?: number;
}

export class BenchMachine {
  readonly sys: System;
  readonly proc: Process;
  private readonly device: TestDev | null;
  readonly start: number;
  readonly end: number;
  readonly bytes: number;
  /** Content fingerprint of every page after population. */
  private readonly sums: Float64Array;

  constructor(readonly opts: MachineOptions) {
    const { pages, thp } = opts;
    if (pages % HPAGE_PMD_NR !== 0) throw new RangeError(`bench: ${pages} pages is not a multiple of ${HPAGE_PMD_NR}`);
    this.bytes = pages * PAGE_SIZE;
    this.sys = new System({
      ramBytes: this.bytes + 16 * HPAGE_PMD_SIZE,
      nrHugepages: 0,
      contentMode: opts.contentMode ?? 'bytes',
      checked: false,
    });
    this.proc = this.sys.spawn('bench');
    this.device = opts.device === false ? null : new TestDev(this.sys.kernel, { privatePages: opts.devicePages ?? pages + HPAGE_PMD_NR, coherentPages: 0, name: 'bench-dev' });
    const p = this.proc;
    const raw = p.mmap(0, this.bytes + HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (raw < 0) throw new Error(`bench: mmap failed (${raw})`);
    this.start = pmdAlignUp(raw);
    this.end = this.start + this.bytes;
    if (p.madvise(this.start, this.bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) !== 0) throw new Error('bench: madvise failed');
    this.populate(opts.fullPages ?? true);
    this.sums = new Float64Array(pages);
    this.record();
  }

  get dev(): TestDev {
    if (this.device === null) throw new Error('bench: this machine has no device');
    return this.device;
  }

  private populate(full: boolean): void {
    const p = this.proc;
    if (full) {
      // A 2 MiB pattern, then each page's own index in its first word.
      const chunk = new Uint8Array(HPAGE_PMD_SIZE);
      for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 131 + (i >>> 12)) & 0xff;
      for (let a = this.start; a < this.end; a += HPAGE_PMD_SIZE) p.writeBytes(a, chunk);
    }
    for (let a = this.start, i = 1; a < this.end; a += PAGE_SIZE, i++) p.store64(a, BigInt(i));
  }

  /** The pfn mapping addr, faulting nothing (-1 if not present). */
  private pfnAt(addr: number): number {
    return translate(this.proc.mm!, addr, false);
  }

  private record(): void {
    const k = this.sys.kernel;
    for (let i = 0, a = this.start; a < this.end; i++, a += PAGE_SIZE) this.sums[i] = k.contents.checksum(this.pfnAt(a));
  }

  /** Run a driver operation to completion. */
  run<T>(g: K<T>): T {
    return runSync(this.sys.kernel.sched, g);
  }

  /** Migrate pages [first, first + n) of the buffer to device-private memory (or back to system memory); returns migrated entries. */
  private migrate(first: number, n: number, to: 'private' | 'system'): number {
    const a = this.start + first * PAGE_SIZE;
    return this.run(this.dev.migrateRange(this.proc.mm!, a, a + n * PAGE_SIZE, to, this.opts.thp));
  }

  /** Migrate the whole buffer to device-private memory; returns migrated entries. */
  toDevice(): number {
    return this.migrate(0, this.opts.pages, 'private');
  }

  /** Migrate the whole buffer back to system memory; returns migrated entries. */
  toSystem(): number {
    return this.migrate(0, this.opts.pages, 'system');
  }

  /** Migrate pages [first, first + n) of the buffer to device-private memory. */
  toDeviceRange(first: number, n: number): number {
    return this.migrate(first, n, 'private');
  }

  /** Migrate pages [first, first + n) of the buffer back to system memory. */
  toSystemRange(first: number, n: number): number {
    return this.migrate(first, n, 'system');
  }

  /**
   * The data-integrity check: every page of the buffer is in system memory,
   * mapped, and carries the fingerprint it had after population. Returns
   * the number of pages checked; throws naming the first bad page.
   */
  verify(): number {
    const k = this.sys.kernel;
    let n = 0;
    for (let i = 0, a = this.start; a < this.end; i++, a += PAGE_SIZE) {
      const pfn = this.pfnAt(a);
      if (pfn < 0) throw new Error(`bench: integrity: page ${i} (0x${a.toString(16)}) is not mapped in system memory`);
      const sum = k.contents.checksum(pfn);
      if (sum !== this.sums[i]) throw new Error(`bench: integrity: page ${i} (0x${a.toString(16)}) changed: fingerprint ${sum} != ${this.sums[i]}`);
      n++;
    }
    return n;
  }
}
