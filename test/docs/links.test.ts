// Every relative link in the Markdown the repository ships (README, docs/,
// RELIABILITY, BENCHMARKS, deploy/README) points at a file that exists, and
// every #anchor at a heading of that file, as GitHub renders it.
import t from 'tap';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const pages = ['README.md', 'RELIABILITY.md', 'BENCHMARKS.md', 'deploy/README.md', ...readdirSync(join(repo, 'docs'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const withoutCode = markdown.replace(/^```[\s\S]*?^```/gm, '');
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const [, heading] of withoutCode.matchAll(/^#{1,6} (.+)$/gm)) {
    const base = heading!.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

t.test('relative links resolve', async (t) => {
  let checked = 0;
  for (const page of pages) {
    const text = readFileSync(join(repo, page), 'utf8').replace(/^```[\s\S]*?^```/gm, '');
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue; // https:, mailto:
      const [path, anchor] = target!.split('#') as [string, string | undefined];
      const file = path === '' ? join(repo, page) : join(repo, dirname(page), path);
      const where = `${page} → ${target}`;
      if (!existsSync(file)) {
        t.fail(`${where}: ${relative(repo, file)} does not exist`);
        continue;
      }
      if (anchor !== undefined && file.endsWith('.md')) {
        t.ok(anchors(readFileSync(file, 'utf8')).has(anchor), `${where}: #${anchor} is a heading there`);
      }
      checked++;
    }
  }
  t.ok(checked >= 50, `${checked} links checked in ${pages.length} pages`);
});
