// SPDX-License-Identifier: GPL-2.0-only
/**
 * The memory benchmark: model bytes per simulated page frame, metadata
 * only (struct page arrays, page tables, rmap, the content store's own
 * bookkeeping; not the contents), on a machine with `pages` populated
 * pages. Measured, not computed: the growth of the V8 heap and of
 * ArrayBuffer memory across building and populating the machine, after a
 * full GC, minus the page-contents storage (the fingerprint arrays here).
 * Reported per page frame (the kernel's struct page is 64 bytes per frame;
 * the model's frames are RAM plus the device pfns it covers from boot) and
 * per populated page.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { MADV_NOHUGEPAGE } from '../kernel/mm/madvise.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/mm/mmap.js';
import { HPAGE_PMD_NR, PAGE_SIZE, PageArrays } from '../kernel/mm/page.js';
import { System } from '../user/system.js';
import { round } from './stats.js';

export interface MemoryResult {
  populatedPages: number;
  pageFrames: number;
  /** Measured: (heap + ArrayBuffer growth - contents) / page frames (RAM and the device pfns covered from boot). */
  bytesPerPage: number;
  /** The same total / populated pages. */
  bytesPerPopulatedPage: number;
  /** The struct page arrays alone, per frame. */
  structPageBytes: number;
  /** Everything else (page tables, VMAs, rmap, content-store bookkeeping), per frame. */
  otherBytes: number;
}

let gcFn: (() => void) | null = null;

/** A full garbage collection (enables --expose-gc at run time if needed). */
export function fullGc(): void {
  if (gcFn === null) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) gcFn = g;
    else {
      v8.setFlagsFromString('--expose-gc');
      gcFn = vm.runInNewContext('gc') as () => void;
    }
  }
  // ArrayBuffer backing stores of collected objects are freed by V8's
  // concurrent sweeper, after gc() returns: a measurement taken at once
  // can still count a dead machine's typed arrays (a test saw -1,592
  // bytes per page). Collect until the array-buffer total stops falling,
  // sleeping briefly between rounds so the sweeper runs.
  const pause = new Int32Array(new SharedArrayBuffer(4));
  let prev = Infinity;
  for (let round = 0; round < 20; round++) {
    gcFn();
    const ab = process.memoryUsage().arrayBuffers;
    if (ab >= prev) break;
    prev = ab;
    Atomics.wait(pause, 0, 0, 10);
  }
}

function used(): number {
  const u = process.memoryUsage();
  return u.heapUsed + u.arrayBuffers;
}

/** Build a machine of `pages` RAM pages (plus slack) and populate them all from a process. */
function populatedMachine(pages: number): System {
  const sys = new System({ ramBytes: (pages + 16 * HPAGE_PMD_NR) * PAGE_SIZE, nrHugepages: 0, contentMode: 'fingerprint', checked: false });
  const p = sys.spawn('bench-memory');
  const bytes = pages * PAGE_SIZE;
  const a = p.mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  if (a < 0) throw new Error(`bench memory: mmap failed (${a})`);
  if (p.madvise(a, bytes, MADV_NOHUGEPAGE) !== 0) throw new Error('bench memory: madvise failed');
  for (let x = a, i = 1; x < a + bytes; x += PAGE_SIZE, i++) p.store64(x, BigInt(i));
  if (sys.kernel.contents.bytesInUse() !== pages * 8) throw new Error('bench memory: population incomplete');
  return sys;
}

export function runMemory(pages: number): MemoryResult {
  populatedMachine(4 * HPAGE_PMD_NR); /* warm up: compiled code is not per-page memory */
  fullGc();
  const before = used();
  const sys = populatedMachine(pages);
  fullGc();
  const after = used();
  const k = sys.kernel;
  const frames = k.pages.capacity;
  const total = after - before - k.contents.storageBytes();
  const structPage = PageArrays.bytesPerPfn();
  return {
    populatedPages: pages,
    pageFrames: frames,
    bytesPerPage: round(total / frames, 1),
    bytesPerPopulatedPage: round(total / pages, 1),
    structPageBytes: structPage,
    otherBytes: round(total / frames - structPage, 1),
  };
}
