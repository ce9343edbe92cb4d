import fc from 'fast-check';
import { sequenceArbitrary, FuzzMachine } from '/work/wt/nvfuzz/dist/src/fuzz/index.js';
import { nouveauDevice } from '/work/wt/nvfuzz/dist/src/drivers/nouveau/index.js';
const rc = {"settings":[],"devices":["private","coherent"],"thp":"madvise","drivers":["dmirror","nouveau"]};
const [ops] = fc.sample(sequenceArbitrary(rc, 40, new Set()), { seed: Number(process.argv[2]), numRuns: 1 });
const m = new FuzzMachine(rc);
for (const op of ops) {
  let err = '';
  try { m.apply(op); } catch (e) { err = 'ERR ' + e.message.split('\n')[0]; }
  const d = nouveauDevice(m.sys.kernel);
  const live = m.procs.filter(p=>p.alive);
  console.log(JSON.stringify(op), 'toDev', d.dmem.stat.toDevice, live.map(p => p.mm.vmas.map(v => `${v.kind}:${v.start}-${v.end}/${v.prot}`).join(' ')).join(' | '), err);
  if (err) break;
}
