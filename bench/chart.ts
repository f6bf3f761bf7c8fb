// Renders the results as one SVG with three panels: reconcile time against
// fleet size (log-log), data-path throughput relative to direct routing, and
// convergence times against their targets. Plain SVG text, no dependencies.

import type { BenchResults } from './results.js';

const W = 1200;
const H = 440;
const FONT = 'font-family="Helvetica, Arial, sans-serif"';
const COLORS = { full: '#1f77b4', noop: '#2ca02c', change: '#9467bd', baseline: '#d62728', cachenat: '#1f77b4', socat: '#ff7f0e', haproxy: '#8c564b', target: '#d62728' };

const esc = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const text = (x: number, y: number, body: string, extra = ''): string =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${FONT}${extra.includes('font-size') ? '' : ' font-size="11"'} ${extra}>${esc(body)}</text>`;

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

function frame(box: Box, title: string): string {
  return [
    `<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" fill="none" stroke="#444"/>`,
    text(box.x + box.w / 2, box.y - 12, title, 'text-anchor="middle" font-size="13" font-weight="bold"'),
  ].join('\n');
}

function reconcilePanel(results: BenchResults, box: Box): string {
  const rows = results.reconcile;
  if (rows.length === 0) return frame(box, 'Reconcile (no data)');
  const xs = rows.map((r) => r.nodes);
  const ys = rows.flatMap((r) => [r.fullApplyMs, r.noopPassMs, r.oneChangeMs, r.perRuleBaselineMs]).filter((v) => v > 0);
  const [x0, x1] = [Math.log10(Math.min(...xs)), Math.log10(Math.max(...xs))];
  const [y0, y1] = [Math.floor(Math.log10(Math.min(...ys))), Math.ceil(Math.log10(Math.max(...ys)))];
  const px = (n: number) => box.x + ((Math.log10(n) - x0) / (x1 - x0 || 1)) * box.w;
  const py = (ms: number) => box.y + box.h - ((Math.log10(ms) - y0) / (y1 - y0 || 1)) * box.h;
  const out = [frame(box, 'Reconcile time vs nodes (ms, log-log)')];
  for (let e = y0; e <= y1; e++) {
    const y = py(10 ** e);
    out.push(`<line x1="${box.x}" y1="${y}" x2="${box.x + box.w}" y2="${y}" stroke="#ddd"/>`, text(box.x - 6, y + 4, e >= 3 ? `${10 ** (e - 3)} s` : `${10 ** e} ms`, 'text-anchor="end"'));
  }
  for (const n of xs) out.push(text(px(n), box.y + box.h + 16, String(n), 'text-anchor="middle"'));
  const series = [
    { label: 'per-rule baseline', color: COLORS.baseline, get: (r: (typeof rows)[number]) => r.perRuleBaselineMs },
    { label: 'full apply', color: COLORS.full, get: (r: (typeof rows)[number]) => r.fullApplyMs },
    { label: 'one change', color: COLORS.change, get: (r: (typeof rows)[number]) => r.oneChangeMs },
    { label: 'no-op pass', color: COLORS.noop, get: (r: (typeof rows)[number]) => r.noopPassMs },
  ];
  series.forEach((s, i) => {
    const points = rows.map((r) => `${px(r.nodes).toFixed(1)},${py(s.get(r)).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${points}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const r of rows) out.push(`<circle cx="${px(r.nodes).toFixed(1)}" cy="${py(s.get(r)).toFixed(1)}" r="3" fill="${s.color}"/>`);
    out.push(`<rect x="${box.x + 8}" y="${box.y + 8 + i * 15}" width="10" height="10" fill="${s.color}"/>`, text(box.x + 22, box.y + 17 + i * 15, s.label));
  });
  out.push(text(box.x + box.w / 2, box.y + box.h + 32, 'nodes', 'text-anchor="middle"'));
  return out.join('\n');
}

function datapathPanel(results: BenchResults, box: Box): string {
  const workloads = [...new Set(results.datapath.map((r) => r.workload))];
  const out = [frame(box, 'Throughput relative to direct routing (%)')];
  if (workloads.length === 0) return out.join('\n');
  const max = 120;
  const py = (pct: number) => box.y + box.h - (Math.min(pct, max) / max) * box.h;
  for (const pct of [0, 25, 50, 75, 95, 100]) {
    const y = py(pct);
    out.push(`<line x1="${box.x}" y1="${y}" x2="${box.x + box.w}" y2="${y}" stroke="${pct === 95 ? COLORS.target : '#ddd'}" ${pct === 95 ? 'stroke-dasharray="4 3"' : ''}/>`, text(box.x - 6, y + 4, `${pct}`, 'text-anchor="end"'));
  }
  const kinds = [
    { label: 'cachenat', color: COLORS.cachenat, match: (r: BenchResults['datapath'][number]) => r.path === 'cachenat' },
    { label: 'HAProxy', color: COLORS.haproxy, match: (r: BenchResults['datapath'][number]) => r.path === 'userspace-proxy' && r.proxy === 'haproxy' },
    { label: 'socat', color: COLORS.socat, match: (r: BenchResults['datapath'][number]) => r.path === 'userspace-proxy' && r.proxy === 'socat' },
  ];
  const group = box.w / workloads.length;
  const bar = (group * 0.8) / kinds.length;
  workloads.forEach((w, i) => {
    const direct = results.datapath.find((r) => r.workload === w && r.path === 'direct');
    kinds.forEach((k, j) => {
      const row = results.datapath.find((r) => r.workload === w && k.match(r));
      if (!direct || !row) return;
      const pct = (row.opsPerSec / direct.opsPerSec) * 100;
      const x = box.x + i * group + group * 0.1 + j * bar;
      out.push(`<rect x="${x.toFixed(1)}" y="${py(pct).toFixed(1)}" width="${(bar - 1).toFixed(1)}" height="${(box.y + box.h - py(pct)).toFixed(1)}" fill="${k.color}"/>`);
    });
    out.push(text(box.x + i * group + group / 2, box.y + box.h + 14, w.replace('memcached', 'mc'), `text-anchor="end" transform="rotate(-35 ${(box.x + i * group + group / 2).toFixed(1)} ${(box.y + box.h + 14).toFixed(1)})" font-size="10"`));
  });
  kinds.forEach((k, j) => out.push(`<rect x="${box.x + 8 + j * 90}" y="${box.y + 8}" width="10" height="10" fill="${k.color}"/>`, text(box.x + 22 + j * 90, box.y + 17, k.label)));
  out.push(text(box.x + box.w - 4, py(95) - 4, 'target 95%', `text-anchor="end" fill="${COLORS.target}"`));
  return out.join('\n');
}

function convergencePanel(results: BenchResults, box: Box): string {
  const c = results.convergence;
  const dns5 = c.dns?.find((d) => d.intervalMs === 5000);
  const bars = [
    { label: 'DNS, 1 s interval', ms: c.dnsChangeMs, target: 1500 },
    ...(dns5 ? [{ label: 'DNS, 5 s interval', ms: dns5.medianMs, target: 5500 }] : []),
    { label: `API, ${(c.api?.discoveryIntervalMs ?? 0) / 1000} s interval`, ms: c.apiChangeMs, target: (c.api?.discoveryIntervalMs ?? 0) + 500 },
    { label: 'restart → READY', ms: c.restartToReadyMs, target: undefined as number | undefined },
  ];
  const max = Math.max(...bars.map((b) => Math.max(b.ms, b.target ?? 0))) * 1.1 || 1;
  const out = [frame(box, 'Convergence (ms; red tick = target)')];
  const row = box.h / bars.length;
  const px = (ms: number) => box.x + 110 + (ms / max) * (box.w - 120);
  bars.forEach((b, i) => {
    const y = box.y + i * row + row * 0.25;
    out.push(text(box.x + 104, y + row * 0.3, b.label, 'text-anchor="end" font-size="10"'));
    out.push(`<rect x="${box.x + 110}" y="${y.toFixed(1)}" width="${(px(b.ms) - box.x - 110).toFixed(1)}" height="${(row * 0.5).toFixed(1)}" fill="${COLORS.cachenat}"/>`);
    out.push(text(px(b.ms) + 4, y + row * 0.3, `${Math.round(b.ms)}`, 'font-size="10"'));
    if (b.target !== undefined) out.push(`<line x1="${px(b.target).toFixed(1)}" y1="${(y - 4).toFixed(1)}" x2="${px(b.target).toFixed(1)}" y2="${(y + row * 0.5 + 4).toFixed(1)}" stroke="${COLORS.target}" stroke-width="2"/>`);
  });
  if (c.restart) out.push(text(box.x + 110, box.y + box.h - 6, `restart: ${c.restart.failedProbes} of ${c.restart.probes} probes failed`, 'font-size="10"'));
  return out.join('\n');
}

export function renderChart(results: BenchResults): string {
  const top = 50;
  const h = H - top - 70;
  const panels = [
    reconcilePanel(results, { x: 70, y: top, w: 300, h }),
    datapathPanel(results, { x: 450, y: top, w: 370, h }),
    convergencePanel(results, { x: 860, y: top, w: 320, h }),
  ];
  const subtitle = `cachenat benchmarks${results.meta.quick ? ' (quick run)' : ''}: ${results.meta.machine.cpus} CPUs, ${results.meta.machine.kernel}, ${results.meta.machine.iptables}, ${results.meta.date}`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">
<rect width="100%" height="100%" fill="white"/>
${text(W / 2, 18, subtitle, 'text-anchor="middle" font-size="12" fill="#555"')}
${panels.join('\n')}
</svg>
`;
}
