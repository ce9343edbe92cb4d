import fc from 'fast-check';
import { sequenceArbitrary, runSequence } from '/work/wt/nvfuzz/dist/src/fuzz/index.js';
import { nouveauDevice } from '/work/wt/nvfuzz/dist/src/drivers/nouveau/index.js';
const rc = {"settings":[],"devices":["private","coherent"],"thp":"madvise","drivers":["dmirror","nouveau"]};
const kinds = {}; let tot = 0;
const agg = { faults: 0, replayed: 0, cancelled: 0, toDevice: 0, toRam: 0, evicted: 0, timeouts: 0, atomicTimeouts: 0 };
for (let r = 0; r < 100; r++) {
  const [ops] = fc.sample(sequenceArbitrary(rc, 40, new Set()), { seed: 5000 + r, numRuns: 1 });
  for (const o of ops) { kinds[o.o] = (kinds[o.o] ?? 0) + 1; tot++; }
  let k;
  runSequence(ops, rc, { onMachine: (sys) => { k = sys.kernel; } });
  const d = nouveauDevice(k);
  if (d) { for (const x of ['faults','replayed','cancelled','timeouts','atomicTimeouts']) agg[x] += d.svm.stat[x]; agg.toDevice += d.dmem.stat.toDevice; agg.toRam += d.dmem.stat.toRam; agg.evicted += d.dmem.stat.evicted; }
}
console.log(tot, kinds, agg);
