#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
import { main } from '../dist/src/cli/main.js';
// `hmmsim ... | head`: a closed pipe ends the run quietly, as for a C program killed by SIGPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
