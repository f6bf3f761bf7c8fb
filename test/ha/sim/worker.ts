// Runs a range of seeds off the test's main thread (whose async hooks, kept
// by the test runner for every promise, would slow the simulation's
// millions of promises by half), and reports each outcome back.

import { parentPort, workerData } from 'node:worker_threads';
import { runSeed } from './run.js';

const { from, runs, late } = workerData as { from: number; runs: number; late?: boolean };
for (let seed = from; seed < from + runs; seed++) {
  const outcome = await runSeed(seed, undefined, undefined, late);
  parentPort!.postMessage(outcome.ok ? { seed, ok: true, result: outcome.result } : { seed, ok: false, failure: outcome.failure });
  if (!outcome.ok) break;
}
parentPort!.postMessage({ done: true });
