#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  // A checkout that was never built (the package builds on prepack; npm test builds too).
  process.stderr.write('hmmsim: not built yet: run `npm run build` (or `npm test`) in the checkout first\n');
  process.exit(2);
}
const { main } = await import(entry.href);
// `hmmsim ... | head`: a closed pipe ends the run quietly, as for a C program killed by SIGPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
