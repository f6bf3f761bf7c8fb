// kill -9 during continuous topology churn. `npm test` runs a short round
// (CHAOS_KILLS, default 15); `npm run test:chaos` runs the long one (200+).

import t from 'tap';
import { runChaos, summarize } from './kill-churn.js';

const kills = Number(process.env.CHAOS_KILLS ?? 15);
const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 2 ** 31);
const skip = process.getuid?.() !== 0 ? 'needs root for the namespace lab' : false;

t.test(`${kills} × kill -9 during topology churn (seed ${seed})`, { skip, timeout: Math.max(300_000, kills * 20_000) }, async (t) => {
  const report = await runChaos({ kills, seed, log: process.env.CHAOS_VERBOSE ? (line) => t.comment(line) : undefined });
  t.same(report.violations, [], 'no duplicate rule, no port moved, converged within one interval, state readable, client served');
  t.equal(report.kills, kills);
  t.comment(
    [
      `seed ${report.seed}: ${report.kills} kills (${report.killsBeforeReady} before ready), ${report.topologyChanges} topology changes, ${report.kernelChecks} kernel checks, ${report.keysSeen} targets tracked, ${Math.round(report.elapsedMs / 1000)} s`,
      `restart to ready: ${summarize(report.restartMs)}`,
      `converged after ready (or after the last change): ${summarize(report.convergeMs)}`,
      `slowest pass in each convergence window: ${summarize(report.passMs)}`,
      `load average per core at the checks (bounds are stretched by it, 1 = not loaded): ${Math.min(...report.loadFactors).toFixed(1)}–${Math.max(...report.loadFactors).toFixed(1)}`,
    ].join('\n'),
  );
});
