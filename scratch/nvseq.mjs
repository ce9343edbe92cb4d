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
  if (op.o.startsWith('nv')) console.log(JSON.stringify(op), 'procs', m.procs.filter(p=>p.alive).map(p => p.nvfds.length + (p.nvfds.some(x=>x.file.mirror) ? 'i' : '')).join(','), 'toDev', d.dmem.stat.toDevice, 'faults', d.svm.stat.faults, err);
  if (err) break;
}
