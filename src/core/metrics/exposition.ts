// The Prometheus text exposition format (version 0.0.4), as node_exporter's
// textfile collector reads it. Pure: metric families in, text out.

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  labels?: Labels;
  value: number;
}

export interface HistogramSample {
  labels?: Labels;
  /** Upper bounds in ascending order, without +Inf. */
  bounds: readonly number[];
  /** Observations at or below each bound (cumulative), one per bound. */
  cumulative: readonly number[];
  count: number;
  sum: number;
}

export type MetricFamily =
  | { name: string; help: string; type: 'gauge' | 'counter'; samples: Sample[] }
  | { name: string; help: string; type: 'histogram'; samples: HistogramSample[] };

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Renders the families in the order given; a bad name is a programming error, so it throws. */
export function renderExposition(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const family of families) {
    if (!METRIC_NAME.test(family.name)) throw new Error(`invalid metric name ${JSON.stringify(family.name)}`);
    if (family.type === 'counter' && !family.name.endsWith('_total')) throw new Error(`counter ${family.name} must end in _total`);
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    if (family.type === 'histogram') {
      for (const h of family.samples) lines.push(...histogramLines(family.name, h));
    } else {
      for (const s of family.samples) lines.push(`${family.name}${labelText(s.labels)} ${numberText(s.value)}`);
    }
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

function histogramLines(name: string, h: HistogramSample): string[] {
  if (h.bounds.length !== h.cumulative.length) throw new Error(`histogram ${name}: ${h.bounds.length} bounds but ${h.cumulative.length} bucket counts`);
  const lines = h.bounds.map((bound, i) => `${name}_bucket${labelText({ ...h.labels, le: numberText(bound) })} ${numberText(h.cumulative[i]!)}`);
  lines.push(`${name}_bucket${labelText({ ...h.labels, le: '+Inf' })} ${numberText(h.count)}`);
  lines.push(`${name}_sum${labelText(h.labels)} ${numberText(h.sum)}`, `${name}_count${labelText(h.labels)} ${numberText(h.count)}`);
  return lines;
}

function labelText(labels: Labels | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return '';
  for (const [key] of entries) if (!LABEL_NAME.test(key) || key.startsWith('__')) throw new Error(`invalid label name ${JSON.stringify(key)}`);
  return `{${entries.map(([key, value]) => `${key}="${escapeLabelValue(value)}"`).join(',')}}`;
}

// The format's own escapes: backslash and newline everywhere, double quote in label values.
const escapeHelp = (text: string): string => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabelValue = (text: string): string => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

function numberText(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
