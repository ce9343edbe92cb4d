// SPDX-License-Identifier: GPL-2.0-only
/**
 * nouveau's copy channel: the DMA copy engine the device-memory code
 * migrates through (drivers/gpu/drm/nouveau/nouveau_dmem.c nvc0b5_migrate_copy()
 * pushing into drm->dmem->migrate.chan, nouveau_fence.c for completion).
 *
 * The model: a ring of commands (copies and fence releases) consumed in
 * order by the "GPU", which is a simulated thread (copyEngineThread()) when
 * a test or scenario spawns one, so a copy in flight is a real state the
 * explorer can interleave with CPU faults, munmap, fork and device removal.
 * Without such a thread (selftests, run-to-completion ioctls) the GPU is
 * infinitely fast: nouveau_fence_wait() executes the ring up to the fence
 * inline. Either way a command's effect (the bytes moving) happens when it
 * executes, never at submission.
 *
 * Addresses: the kernel passes byte addresses per aperture (VRAM offset of
 * the chunk's buffer object, or a DMA address of a host page). The model
 * uses page numbers: VRAM page index into the device's VRAM store, and for
 * NOUVEAU_APER_HOST the pfn (dma_map_page() is the identity here).
 *
 * Device memory contents live in the device's own store (`vram`, a
 * PageContents of the machine's content mode indexed by VRAM page), never in
 * the content slots of device-private pfns: those pages are not CPU
 * addressable.
 *
 * Simulated time (with a clock on the machine, docs/COST_MODEL.md): each
 * copy or clear is charged at submission with chargeDeviceCopy(), the
 * helper dmirror's copies use: device.copySetupNs on the submitting CPU
 * (the push-buffer methods and the kick), then link latency + bytes over
 * the link queued on copy engine track `ce0` (the command's `durationNs`
 * records that engine time). Commands complete in ring order, so a fence
 * signals in simulated time when the engine has run everything before it:
 * nouveau_fence_wait() advances the waiting CPU to the end of `ce0`
 * (chargeCopyFenceWait(), "copy fence wait"). Which simulated thread
 * executes the bytes, and when it is scheduled, does not change the
 * figures: scheduling decides the data's fate, the clock decides time.
 * Deliberate difference: a clear (nvc0b5_migrate_clear) fills VRAM and
 * never crosses the link; the profile has no VRAM fill bandwidth, so it is
 * charged as a copy of as many pages over the link (an upper bound).
 */
import type { Kernel } from '../../kernel/kernel.js';
import { KernelBug } from '../../kernel/printk.js';
import { pageBug } from '../../kernel/mm/debug.js';
import type { PageContents } from '../../kernel/mm/contents.js';
import { type K, waitUntil } from '../../kernel/sched/sched.js';
import { EBUSY, ENODEV } from '../../kernel/errno.js';
import { chargeCopyFenceWait, chargeDeviceCopy } from '../../kernel/cost/charges.js';

/** enum nouveau_aper */
export const NOUVEAU_APER_VIRT = 0;
export const NOUVEAU_APER_VRAM = 1;
export const NOUVEAU_APER_HOST = 2;
export type NouveauAper = 0 | 1 | 2;

/** Ring capacity in commands (RING_SPACE() fails when the GPU does not drain it). */
export const CE_RING_SIZE = 1024;

/** One command on the ring. */
interface CeCmd {
  /** 'copy': npages from (srcAper, src) to (dstAper, dst); 'clear': zero npages at (dstAper, dst); 'fence': release fence seq. */
  kind: 'copy' | 'clear' | 'fence';
  npages: number;
  dstAper: NouveauAper;
  dst: number;
  srcAper: NouveauAper;
  src: number;
  seq: number;
  /** Simulated time: ns the command occupies copy engine `ce0` (0 without a clock, or for a fence). */
  durationNs: number;
}

/** struct nouveau_fence: signalled when the ring has executed up to `seq`. */
export class NouveauFence {
  /** Set when the channel was killed before the fence signalled (dma_fence error). */
  error = 0;
  constructor(readonly chan: NouveauChannel, readonly seq: number) {}
  /** nouveau_fence_done() */
  done(): boolean {
    return this.chan.completed >= this.seq;
  }
}

/**
 * struct nouveau_channel used as drm->dmem->migrate.chan, with the copy
 * class's copy_func (nvc0b5_migrate_copy()).
 */
export class NouveauChannel {
  readonly ring: CeCmd[] = [];
  /** Last fence seq emitted / completed (fctx->sequence, the semaphore value). */
  emitted = 0;
  completed = 0;
  /** nouveau_channel_kill(): the channel is dead; the ring no longer drains. */
  killed = false;
  /** A copy-engine thread runs in the current scheduled run (copyEngineThread). */
  threadRunning = false;
  /** Statistics (model): commands and pages executed, waits that blocked. */
  readonly stat = { copies: 0, pages: 0, fences: 0, blockedWaits: 0, dropped: 0 };

  constructor(readonly k: Kernel, readonly vram: PageContents, readonly name = 'nouveau-ce') {}

  /**
   * nvc0b5_migrate_copy(drm, npages, dst_aper, dst_addr, src_aper, src_addr):
   * push one copy of npages onto the ring (RING_SPACE, then the method
   * writes). Returns 0, or -EBUSY when there is no ring space (a killed
   * channel never drains: nouveau_dma_wait() times out). The copy happens
   * later, when the engine executes it; the caller orders it with a fence.
   */
  copy(npages: number, dstAper: NouveauAper, dst: number, srcAper: NouveauAper, src: number): number {
    if (this.killed || this.ring.length >= CE_RING_SIZE) return -EBUSY;
    if (npages <= 0) throw new KernelBug('BUG', `${this.name}: copy of ${npages} pages`);
    const durationNs = this.k.clock !== null ? chargeDeviceCopy(this.k, npages, 'nouveau copy') : 0;
    this.ring.push({ kind: 'copy', npages, dstAper, dst, srcAper, src, seq: 0, durationNs });
    return 0;
  }

  /**
   * nvc0b5_migrate_clear(drm, length, dst_aper, dst_addr): push a fill of
   * npages with zeroes (a hole migrated to VRAM). 0 or -EBUSY, as copy().
   */
  clear(npages: number, dstAper: NouveauAper, dst: number): number {
    if (this.killed || this.ring.length >= CE_RING_SIZE) return -EBUSY;
    const durationNs = this.k.clock !== null ? chargeDeviceCopy(this.k, npages, 'nouveau clear') : 0;
    this.ring.push({ kind: 'clear', npages, dstAper, dst, srcAper: 0, src: 0, seq: 0, durationNs });
    return 0;
  }

  /**
   * nouveau_fence_new(&fence, chan) (allocate + nouveau_fence_emit()): a
   * fence released after every command already on the ring. Returns the
   * fence, or -ENODEV on a killed channel (nouveau_fence_emit fails).
   */
  fenceNew(): NouveauFence | number {
    if (this.killed) return -ENODEV;
    const seq = ++this.emitted;
    this.ring.push({ kind: 'fence', npages: 0, dstAper: 0, dst: 0, srcAper: 0, src: 0, seq, durationNs: 0 });
    return new NouveauFence(this, seq);
  }

  /**
   * nouveau_fence_wait(fence, lazy, intr=false): sleep until the fence
   * signals (or the channel is killed: nouveau_fence_context_kill()
   * signals every pending fence with an error). With no copy-engine thread
   * in the run the ring executes inline up to the fence. With a clock the
   * waiting CPU's time advances to the end of the work queued on copy
   * engine `ce0` (chargeCopyFenceWait()), whichever way the fence signals
   * (model simplification: to the end of everything queued, which is the
   * fence's own point unless another CPU submitted after it).
   */
  *fenceWait(fence: NouveauFence): K<void> {
    if (this.k.clock !== null) chargeCopyFenceWait(this.k.clock);
    if (fence.done()) return;
    const s = this.k.sched;
    if (s.exploring && this.threadRunning) {
      this.stat.blockedWaits++;
      yield* waitUntil(s, `nouveau_fence_wait(${this.name} seq ${fence.seq})`, () => fence.done() || this.killed, fence.seq);
    } else {
      while (!fence.done() && !this.killed) this.execOne();
    }
    if (!fence.done()) fence.error = -ENODEV;
  }

  /** Commands waiting to execute (copies and fences). */
  pending(): number {
    return this.ring.length;
  }

  /**
   * nouveau_channel_kill() + nouveau_fence_context_kill(): the channel dies
   * (GPU error recovery, device removal). Commands not yet executed are
   * dropped: their copies never happen. Pending fences count as signalled
   * with an error; the driver's waits return.
   */
  kill(): void {
    this.killed = true;
    this.stat.dropped += this.ring.length;
    this.ring.length = 0;
    this.completed = this.emitted;
  }

  /** Execute the command at the head of the ring (the GPU's work). */
  execOne(): void {
    const c = this.ring.shift();
    if (c === undefined) return;
    if (c.kind === 'fence') {
      this.completed = c.seq;
      this.stat.fences++;
      return;
    }
    const k = this.k;
    if (c.kind === 'clear') {
      for (let i = 0; i < c.npages; i++) {
        if (c.dstAper === NOUVEAU_APER_HOST) {
          this.checkHostPage(c.dst + i, 'write');
          k.contents.zero(c.dst + i);
        } else this.vram.zero(c.dst + i);
      }
      this.stat.copies++;
      this.stat.pages += c.npages;
      return;
    }
    for (let i = 0; i < c.npages; i++) {
      const d = c.dst + i;
      const sp = c.src + i;
      if (c.srcAper === NOUVEAU_APER_HOST) this.checkHostPage(sp, 'read');
      if (c.dstAper === NOUVEAU_APER_HOST) this.checkHostPage(d, 'write');
      if (c.srcAper === NOUVEAU_APER_HOST && c.dstAper === NOUVEAU_APER_VRAM) k.contents.copyTo(this.vram, d, sp);
      else if (c.srcAper === NOUVEAU_APER_VRAM && c.dstAper === NOUVEAU_APER_HOST) this.vram.copyTo(k.contents, d, sp);
      else if (c.srcAper === NOUVEAU_APER_VRAM && c.dstAper === NOUVEAU_APER_VRAM) this.vram.copy(d, sp);
      else k.contents.copy(d, sp);
    }
    this.stat.copies++;
    this.stat.pages += c.npages;
  }

  /**
   * A DMA to or from a host page that was freed meanwhile is memory
   * corruption (the IOMMU would not catch it: the DMA mapping is still
   * live): report it as KASAN would report the CPU doing it.
   */
  private checkHostPage(pfn: number, op: string): void {
    if (this.k.pages.refcount[this.k.pages.folioPfn(pfn)] === 0) pageBug(this.k, 'KASAN', `${this.name}: copy engine DMA ${op} of a freed page`, pfn, 'use-after-free by DMA');
  }
}

/**
 * The GPU's copy engine as a simulated thread: execute ring commands one
 * per scheduling step until the ring is empty and `quiesced()` says no one
 * will submit more (the other threads of the run have finished). Spawn it
 * with the threads that use the channel.
 */
export function* copyEngineThread(chan: NouveauChannel, quiesced: () => boolean): K<void> {
  const s = chan.k.sched;
  chan.threadRunning = true;
  try {
    for (;;) {
      yield* waitUntil(s, `${chan.name} idle`, () => chan.ring.length > 0 || quiesced());
      if (chan.ring.length === 0) return;
      if (s.exploring) yield s.point(`${chan.name} exec`, chan.ring[0].seq);
      chan.execOne();
    }
  } finally {
    chan.threadRunning = false;
  }
}

/** Name prefix of the GPU's own threads (copy engine, fault handler). */
export const GPU_THREAD_PREFIX = 'nouveau-';

/**
 * quiesced() for the GPU threads: every task of the run that is not a GPU
 * thread (its name does not start with GPU_THREAD_PREFIX) has ended or is
 * blocked, so nothing will submit work the GPU threads could serve (a task
 * waiting for a fence or a fault replay keeps the GPU thread's queue
 * non-empty, and the thread does not stop while its queue has work). A
 * wait no CPU thread can finish then ends as a HANG naming that wait, not
 * a DEADLOCK with an idle GPU. (Evaluated by the scheduler between steps,
 * so it cannot ask which task is current.)
 */
export function othersDone(k: Kernel): () => boolean {
  return () => k.sched.tasks.every((t) => t.name.startsWith(GPU_THREAD_PREFIX) || t.state !== 'runnable');
}
