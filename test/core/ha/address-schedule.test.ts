import t from 'tap';
import { afterAssociate, afterVerify, keeperFor, nextKeeperStep, type HoldView, type KeeperMemory } from '../../../src/core/ha/address-schedule.js';
import { ASSOCIATE_RETRY, EC2_TIMEOUT_MS, MIN_ASSOCIATE_BUDGET_MS, VERIFY_EVERY_LEASES, firstVerifyMs } from '../../../src/core/ha/timing.js';
import { retryDelay } from '../../../src/core/daemon/backoff.js';

const LEASE = 6000;
const EIP = 'eipalloc-0123456789abcdef0';
const OTHER = 'eipalloc-0123456789abcdef1';
const ENI = 'eni-0aaaaaaaaaaaaaaaa';
const wanted = [{ allocationId: EIP, privateIp: '10.0.1.10' }];
const hold = (term: number, until: number): HoldView => ({ term, until });

t.test('a new term: every address due at once, checked one lease later', async (t) => {
  t.equal(keeperFor(undefined, undefined, wanted, 0, LEASE), undefined, 'no hold, nothing kept');
  const memory = keeperFor(undefined, hold(3, 5000), wanted, 100, LEASE)!;
  t.same(memory, { term: 3, addresses: [{ allocationId: EIP, privateIp: '10.0.1.10', state: 'associating', attempts: 0, retryAt: 100 }], verifyAt: 100 + firstVerifyMs(LEASE) });
  t.equal(keeperFor(memory, hold(3, 9000), wanted, 200, LEASE), memory, 'the same term: the same memory');
  t.equal(keeperFor(memory, hold(4, 9000), wanted, 200, LEASE)!.term, 4, 'a new term starts afresh');
  t.equal(keeperFor(memory, undefined, wanted, 200, LEASE), memory, 'a lapsed hold keeps the memory (the role may come back)');
});

t.test('an association is due only under a confirmed hold of its term, with enough of it left, and ends with it', async (t) => {
  const memory = keeperFor(undefined, hold(3, 5000), wanted, 0, LEASE)!;
  t.same(nextKeeperStep(memory, hold(3, 5000), 0), { kind: 'associate', allocationId: EIP, deadline: Math.min(EC2_TIMEOUT_MS, 5000) }, 'the deadline is the end of the hold');
  t.same(nextKeeperStep(memory, hold(3, 60_000), 0), { kind: 'associate', allocationId: EIP, deadline: EC2_TIMEOUT_MS }, 'or the EC2 budget, the sooner');
  t.same(nextKeeperStep(memory, undefined, 0), { kind: 'wait' }, 'no confirmed hold: nothing');
  t.same(nextKeeperStep(memory, hold(4, 5000), 0), { kind: 'wait' }, 'a hold of another term: nothing');
  t.same(nextKeeperStep(memory, hold(3, MIN_ASSOCIATE_BUDGET_MS - 1), 0), { kind: 'wait' }, 'too little of the hold left: wait for the next renewal');
});

t.test('failures back off with the daemon\'s one rule; success holds, then checks come every few leases', async (t) => {
  let memory: KeeperMemory = keeperFor(undefined, hold(1, 5000), wanted, 0, LEASE)!;
  memory = afterAssociate(memory, EIP, { error: 'RequestLimitExceeded' }, 10, 0.5);
  t.match(memory.addresses[0], { state: 'failed', error: 'RequestLimitExceeded', attempts: 1, retryAt: 10 + retryDelay(1, ASSOCIATE_RETRY.firstMs, ASSOCIATE_RETRY.capMs, 0.5) });
  t.same(nextKeeperStep(memory, hold(1, 5000), 20), { kind: 'wait', until: memory.addresses[0]!.retryAt });
  memory = afterAssociate(memory, EIP, { error: 'again' }, 600, 0.5);
  t.equal(memory.addresses[0]!.retryAt - 600, retryDelay(2, ASSOCIATE_RETRY.firstMs, ASSOCIATE_RETRY.capMs, 0.5), 'doubling');
  memory = afterAssociate(memory, EIP, { ok: true }, 2000, 0.5);
  t.match(memory.addresses[0], { state: 'held', attempts: 0, heldAt: 2000 });
  t.equal(memory.addresses[0]!.error, undefined);
  t.same(nextKeeperStep(memory, hold(1, 5000), 2000), { kind: 'wait', until: memory.verifyAt });
  t.same(nextKeeperStep(memory, hold(1, 99_000), memory.verifyAt), { kind: 'verify', deadline: memory.verifyAt + EC2_TIMEOUT_MS });
});

t.test('a check: an address found elsewhere is associated again (under the same rule); one found here counts as held', async (t) => {
  const two = [...wanted, { allocationId: OTHER, privateIp: '10.0.1.11' }];
  let memory: KeeperMemory = keeperFor(undefined, hold(1, 5000), two, 0, LEASE)!;
  memory = afterAssociate(memory, EIP, { ok: true }, 10, 0.5);
  const checked = afterVerify(memory, [{ allocationId: EIP, networkInterfaceId: 'eni-0bbbbbbbbbbbbbbbb', privateIp: '10.0.2.10' }, { allocationId: OTHER, networkInterfaceId: ENI, privateIp: '10.0.1.11' }], ENI, 7000, LEASE);
  t.same(checked.elsewhere, [{ allocationId: EIP, networkInterfaceId: 'eni-0bbbbbbbbbbbbbbbb', privateIp: '10.0.2.10' }]);
  t.match(checked.memory.addresses, [{ allocationId: EIP, state: 'associating', retryAt: 7000 }, { allocationId: OTHER, state: 'held', heldAt: 7000 }], 'the one whose answer was lost turns out to be here');
  t.equal(checked.memory.verifyAt, 7000 + VERIFY_EVERY_LEASES * LEASE);
  t.same(nextKeeperStep(checked.memory, undefined, 7000), { kind: 'wait' }, 'and only a confirmed hold moves it back');
  const failed = afterVerify(memory, undefined, ENI, 7000, LEASE);
  t.same([failed.elsewhere, failed.memory.addresses], [[], memory.addresses], 'a check that failed changes nothing');
});
