#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
import { main } from '../dist/src/cli/main.js';
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
