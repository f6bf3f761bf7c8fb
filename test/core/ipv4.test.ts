// parseIpv4 reads addresses character by character; it must accept exactly
// what the rule it replaced accepted (four dot-separated octets matching
// OCTET below), and give the same number (AUDIT_RUNS cases, default 20,000).

import t from 'tap';
import fc from 'fast-check';
import { parseIpv4 } from '../../src/core/ipv4.js';

const RUNS = Number(process.env.AUDIT_RUNS ?? 20_000);
const SEED = process.env.AUDIT_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.AUDIT_SEED);

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
function oracle(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((v, p) => v * 256 + Number(p), 0);
}

t.test('examples', async (t) => {
  t.equal(parseIpv4('10.0.1.231'), 0x0a0001e7);
  t.equal(parseIpv4('255.255.255.255'), 0xffffffff);
  t.equal(parseIpv4('0.0.0.0'), 0);
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '1.2.3.04', '01.2.3.4', '1.2.3.256', '1..2.3', '.1.2.3', '1.2.3.', '1.2.3.4 ', ' 1.2.3.4', '1.2.3.-4', '1.2.3.1000', '١.٢.٣.٤', '1.2.3.4/32']) {
    t.equal(parseIpv4(bad), undefined, JSON.stringify(bad));
  }
});

t.test(`the same answers as the regular expression (${RUNS} cases, seed ${SEED})`, async (t) => {
  let cases = 0;
  const near = fc.array(fc.constantFrom('0', '1', '2', '5', '9', '.', '.', '25', '255', '256', '00', ' ', 'x', '-'), { maxLength: 12 }).map((parts) => parts.join(''));
  const addressLike = fc.tuple(fc.nat(300), fc.nat(300), fc.nat(300), fc.nat(300), fc.boolean()).map(([a, b, c, d, zero]) => `${zero ? '0' : ''}${a}.${b}.${c}.${d}`);
  const result = fc.check(
    fc.property(fc.oneof(near, addressLike, fc.string()), (text) => {
      cases++;
      return parseIpv4(text) === oracle(text);
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.notOk(result.failed, result.failed ? `${fc.defaultReportMessage(result)}\nreplay: AUDIT_SEED=${SEED} npx tap ${import.meta.filename}` : 'same answers');
  t.equal(cases, RUNS);
});
