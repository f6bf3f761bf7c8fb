// The inequalities the lease's safety and liveness rest on, for every lease
// the config accepts (3 s to 1 h).
import t from 'tap';
import { CLOCK_JUMP_SHARE, CONFIRMED_SHARE, EC2_TIMEOUT_MS, heartbeatEveryMs, MIN_ASSOCIATE_BUDGET_MS, peerLiveMs, renewEveryMs, renewRetryMs, storeTimeoutMs, watchEveryMs } from '../../../src/core/ha/timing.js';

const leases = [3000, 3001, 4000, 6000, 10_000, 30_000, 60_000, 600_000, 3_600_000];

t.test('two renewal attempts land before a standby could call the lease expired', async (t) => {
  for (const lease of leases) {
    // The first attempt lease/3 after the last accepted send; it times out; the next leaves after the retry spacing and may take its whole timeout.
    const secondLandsBy = renewEveryMs(lease) + storeTimeoutMs(lease) + renewRetryMs(lease) + storeTimeoutMs(lease);
    t.ok(secondLandsBy < lease, `lease ${lease}: the second attempt lands by ${secondLandsBy} ms`);
  }
});

t.test('a hold stops counting as confirmed before any standby can take over, with clocks 1% apart and a suspend under the jump tolerance', async (t) => {
  for (const lease of leases) {
    // Real time since the send of the last accepted write, at the latest the leader still counts it confirmed: its clock 1% slow, a suspend just under the tolerance.
    const leaderBelieves = (lease * CONFIRMED_SHARE) / 0.99 + lease * CLOCK_JUMP_SHARE;
    // The earliest a standby can take over: a whole lease on a clock 1% fast, from a sight that came after the write landed.
    const standbyMay = lease / 1.01;
    t.ok(leaderBelieves < standbyMay, `lease ${lease}: ${leaderBelieves.toFixed(0)} < ${standbyMay.toFixed(0)} ms`);
  }
});

t.test('every call fits the periods it serves', async (t) => {
  for (const lease of leases) {
    t.ok(storeTimeoutMs(lease) < renewEveryMs(lease), `lease ${lease}: a store call ends before the next renewal is due`);
    t.ok(watchEveryMs(lease) <= renewEveryMs(lease), `lease ${lease}: a standby looks at least as often as the leader renews`);
    t.ok(heartbeatEveryMs(lease) < peerLiveMs(lease), `lease ${lease}: a peer is seen several times before it counts as gone`);
    t.ok(MIN_ASSOCIATE_BUDGET_MS < lease * CONFIRMED_SHARE - renewEveryMs(lease) - storeTimeoutMs(lease), `lease ${lease}: right after a renewal, a hold leaves room for an association`);
  }
  t.ok(EC2_TIMEOUT_MS > MIN_ASSOCIATE_BUDGET_MS);
});
