#!/usr/bin/env node
// The `cachenat` executable: runs the command line against this process and
// the real machine. The only place that sets the process's exit code.

import { setFlagsFromString } from 'node:v8';

// `cachenat run` repeats the same small passes every few seconds for months.
// V8's optimising compiler costs it about 12 MB of RSS and more CPU in
// compiling than its faster code saves (BENCHMARKS.md, footprint); the
// interpreter and the baseline compiler carry it. Set before any module
// loads: loading alone makes some functions hot enough to be optimised.
if (process.argv[2] === 'run') setFlagsFromString('--no-opt');

const { runCli } = await import('./cli.js');
const { processIo } = await import('./process-io.js');
process.exitCode = await runCli(process.argv.slice(2), processIo());
