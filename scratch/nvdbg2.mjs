import { replay } from '/work/wt/nvfuzz/dist/src/fuzz/index.js';
const rc = {"settings":[],"devices":["private","coherent"],"thp":"madvise","drivers":["dmirror","nouveau"]};
console.log(JSON.stringify(replay(rc, JSON.parse(process.argv[2]))));
