#!/usr/bin/env node
// The `cachenat` executable: runs the command line against this process and
// the real machine. The only place that sets the process's exit code.

import { runCli } from './cli.js';
import { processIo } from './process-io.js';

process.exitCode = await runCli(process.argv.slice(2), processIo());
