import { FuzzMachine } from '/work/wt/nvfuzz/dist/src/fuzz/index.js';
import { nouveauDevice } from '/work/wt/nvfuzz/dist/src/drivers/nouveau/index.js';
const rc = {"settings":[],"devices":["private","coherent"],"thp":"madvise","drivers":["dmirror","nouveau"]};
const ops = JSON.parse(process.argv[2]);
const m = new FuzzMachine(rc);
for (const op of ops) { try { m.apply(op); } catch (e) { console.log('ERR', e.message); } }
const drm = nouveauDevice(m.sys.kernel);
console.log(drm.svm.stat, drm.dmem.stat, [...drm.svmms()].map(s => [s.stat, [...s.pt]]));
