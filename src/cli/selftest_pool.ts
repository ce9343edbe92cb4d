// SPDX-License-Identifier: GPL-2.0-only
/**
 * The worker pool of `hmmsim selftest --jobs N`. Cases are independent
 * (each builds its own simulated machine), so N worker threads run them
 * concurrently; the longest cases (benchmark_thp_migration) are handed out
 * first so the pool finishes together. Results come back as CaseResults
 * and the harness prints the TAP in case order (Suite.runWith).
 */
import { Worker } from 'node:worker_threads';
import type { CaseInfo, CaseResult } from '../selftests/harness.js';
import type { HmmSuiteOptions } from '../selftests/hmm_tests.js';

interface Job {
  id: number;
  info: CaseInfo;
  resolve: (r: CaseResult) => void;
  reject: (e: Error) => void;
}

/** Cases known to run long: dispatched first. */
function weight(c: CaseInfo): number {
  return c.test === 'benchmark_thp_migration' ? 2 : /multiple|teardown|child|remap/.test(c.test) ? 1 : 0;
}

export class SelftestPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Job[] = [];
  private readonly running = new Map<Worker, Job>();
  private nextId = 0;
  private scheduled = false;

  private closing = false;

  constructor(jobs: number, private readonly opts: HmmSuiteOptions & { driverUrls?: Array<{ name: string; url: string }> }) {
    for (let i = 0; i < jobs; i++) this.idle.push(this.spawn());
  }

  private spawn(): Worker {
    const w = new Worker(new URL('./selftest_worker.js', import.meta.url), { workerData: this.opts });
    w.on('message', (m: { id: number; result?: CaseResult; error?: string }) => this.done(w, m));
    w.on('error', (e) => this.fail(w, e));
    w.on('exit', (code) => {
      if (this.running.has(w)) this.fail(w, new Error(`selftest worker exited with code ${code}`));
    });
    this.workers.push(w);
    return w;
  }

  /** Run one case in some worker. */
  exec(info: CaseInfo): Promise<CaseResult> {
    return new Promise<CaseResult>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, info, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // Dispatch once every case of this turn is queued, longest first.
        setImmediate(() => {
          this.scheduled = false;
          this.queue.sort((a, b) => weight(b.info) - weight(a.info) || a.id - b.id);
          this.dispatch();
        });
      }
    });
  }

  private dispatch(): void {
    while (this.idle.length && this.queue.length) {
      const w = this.idle.pop()!;
      const job = this.queue.shift()!;
      this.running.set(w, job);
      w.postMessage({ id: job.id, name: job.info.fullName });
    }
  }

  private done(w: Worker, m: { id: number; result?: CaseResult; error?: string }): void {
    const job = this.running.get(w);
    this.running.delete(w);
    this.idle.push(w);
    if (job !== undefined) {
      if (m.result) job.resolve(m.result);
      else job.reject(new Error(m.error ?? 'selftest worker: no result'));
    }
    this.dispatch();
  }

  /** A worker died (an uncaught exception escaped the model): fail its case, replace it. */
  private fail(w: Worker, e: Error): void {
    const job = this.running.get(w);
    this.running.delete(w);
    job?.reject(e);
    if (this.closing) return;
    void w.terminate();
    this.idle.push(this.spawn());
    this.dispatch();
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
