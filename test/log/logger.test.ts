import t from 'tap';
import { createLogger, formatPretty, logFormatFor } from '../../src/log/logger.js';

const capture = () => {
  const lines: string[] = [];
  return { lines, destination: { write: (line: string) => void lines.push(line) } };
};

t.test('format follows where stdout goes', async (t) => {
  t.equal(logFormatFor({ JOURNAL_STREAM: '8:123' }, true), 'journal');
  t.equal(logFormatFor({ JOURNAL_STREAM: '8:123' }, false), 'journal');
  t.equal(logFormatFor({}, true), 'pretty');
  t.equal(logFormatFor({}, false), 'json');
});

t.test('json: plain pino lines', async (t) => {
  const { lines, destination } = capture();
  const log = createLogger({ level: 'info', destination });
  log.info({ cluster: 'c1' }, 'hello');
  log.debug('hidden');
  t.equal(lines.length, 1);
  const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.match(entry, { level: 30, msg: 'hello', cluster: 'c1' });
  t.type(entry.time, 'number');
});

t.test('journal: each line carries its sd-daemon priority', async (t) => {
  const { lines, destination } = capture();
  const log = createLogger({ level: 'trace', destination, format: 'journal' });
  log.trace('t');
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error('e');
  log.fatal('f');
  log.child({ component: 'loop' }).warn('child');
  t.same(
    lines.map((l) => l.slice(0, 3)),
    ['<7>', '<7>', '<6>', '<4>', '<3>', '<2>', '<4>'],
  );
  for (const line of lines) {
    t.ok(line.endsWith('\n'), 'one entry per line');
    JSON.parse(line.slice(3)); // the rest is still pino JSON
  }
  t.match(JSON.parse(lines[6]!.slice(3)), { component: 'loop', msg: 'child' });
});

t.test('pretty: time, level, message, key=value', async (t) => {
  const { lines, destination } = capture();
  const log = createLogger({ level: 'info', destination, format: 'pretty' });
  log.child({ component: 'loop' }).warn({ cluster: 'c1', ports: [6379], note: 'two words', err: new Error('boom') }, 'target moved');
  t.equal(lines.length, 1);
  t.match(lines[0], /^\d\d:\d\d:\d\d\.\d{3} WARN  target moved component=loop cluster=c1 ports=\[6379\] note="two words" err="boom"\n$/);
});

t.test('formatPretty', async (t) => {
  const at = new Date(2024, 0, 2, 3, 4, 5, 6).getTime();
  t.equal(formatPretty(30, at, 'pass done', { changed: 2, ok: true, gone: undefined }), '03:04:05.006 INFO  pass done changed=2 ok=true');
  t.equal(formatPretty(60, at, undefined, { a: 'x=y' }), '03:04:05.006 FATAL a="x=y"');
  t.match(formatPretty(99, Number.NaN, 'odd', {}), /^\d\d:\d\d:\d\d\.\d{3} 99    odd$/);
});
