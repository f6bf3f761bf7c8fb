// BENCHMARKS.md is generated from bench/results, except the sections that
// come from benchmarks of their own (metrics cost, HA failover): a
// regeneration must keep those as they are.

import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { benchmarksMarkdown, OWN_SECTIONS, ownSectionsOf } from '../../bench/report.js';
import type { BenchResults } from '../../bench/results.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const current = readFileSync(`${root}BENCHMARKS.md`, 'utf8');

t.test('the kept block: from its start marker to its end marker, or nothing', async (t) => {
  t.equal(ownSectionsOf('no markers here'), '');
  t.equal(ownSectionsOf(`a\n${OWN_SECTIONS.start}\n## 9. Mine\nfigures\n${OWN_SECTIONS.end}\nb`), `${OWN_SECTIONS.start}\n## 9. Mine\nfigures\n${OWN_SECTIONS.end}\n\n`);
  t.equal(ownSectionsOf(`${OWN_SECTIONS.end}\n${OWN_SECTIONS.start}`), '', 'markers out of order keep nothing');
});

t.test('BENCHMARKS.md holds the metrics-cost and failover sections inside the kept block', async (t) => {
  const kept = ownSectionsOf(current);
  t.match(kept, /## 5\. Metrics cost/);
  t.match(kept, /## 6\. Failover \(HA pair\)/);
});

const latest = `${root}bench/results/latest.json`;
const meta = `${root}bench/results/latest.meta.json`;
t.test('regenerating from the last results keeps the kept block word for word', { skip: existsSync(latest) && existsSync(meta) ? false : 'no bench/results/latest.json to render' }, async (t) => {
  const results = { ...JSON.parse(readFileSync(latest, 'utf8')), meta: JSON.parse(readFileSync(meta, 'utf8')) } as BenchResults;
  const kept = ownSectionsOf(current);
  const rendered = benchmarksMarkdown(results, kept);
  t.ok(rendered.includes(kept), 'the block is in the output');
  t.ok(rendered.indexOf(kept) < rendered.indexOf('## Where the time goes'), 'before the closing analysis');
  t.equal(ownSectionsOf(rendered), kept, 'and reads back the same');
});
