// SPDX-License-Identifier: GPL-2.0-only
/**
 * A worker thread of `hmmsim selftest --jobs N`: builds the suite with the
 * options it was given and runs the cases it is sent, one at a time, each
 * on its own fresh simulated machine (as in the serial run), posting each
 * CaseResult back. See selftest_pool.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { HmmSuiteOptions } from '../selftests/hmm_tests.js';

const { buildHmmSuite } = await import('../selftests/hmm_tests.js');
// User drivers (--driver) come as file URLs: modules cannot cross threads.
const { driverUrls = [], ...opts } = workerData as HmmSuiteOptions & { driverUrls?: Array<{ name: string; url: string }> };
const modules: NonNullable<HmmSuiteOptions['modules']> = [];
for (const d of driverUrls) {
  const ns = (await import(d.url)) as Record<string, unknown>;
  modules.push({ name: d.name, module: (typeof ns.init === 'function' ? ns : ns.default) as NonNullable<HmmSuiteOptions['modules']>[number]['module'] });
}
const suite = buildHmmSuite({ ...opts, modules });
const byName = new Map(suite.cases().map((c) => [c.fullName, c]));

parentPort!.on('message', (m: { id: number; name: string }) => {
  const info = byName.get(m.name);
  if (info === undefined) {
    parentPort!.postMessage({ id: m.id, error: `no case named ${m.name}` });
    return;
  }
  const result = suite.runCase(info, null);
  parentPort!.postMessage({ id: m.id, result });
});
