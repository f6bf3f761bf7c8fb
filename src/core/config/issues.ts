// A schema problem as people read it: the key, what was expected, what was
// given. A wrong type is never called "required"; an unknown key gets the
// known key it most looks like. Pure.

import { z } from 'zod';
import { closest } from '../did-you-mean.js';
import { show } from '../grammar.js';
import { configSchema } from './schema.js';

export interface ConfigIssue {
  /** The key, e.g. forward.listenAddresses[0].public; '' for the document itself. */
  path: string;
  message: string;
}

export const keyPathOf = (path: readonly PropertyKey[]): string =>
  path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');

/** How a YAML value reads in a message: its type in words, and the value. */
export function describeValue(value: unknown): string {
  if (value === null) return 'nothing (an empty value)';
  if (Array.isArray(value)) return `a list ${show(value)}`;
  if (typeof value === 'object') return `a mapping ${show(value)}`;
  if (typeof value === 'string') return `the text ${show(value)}`;
  return show(value);
}

const TYPE_WORDS: Record<string, string> = { string: 'text', number: 'a number', boolean: 'true or false', array: 'a list', object: 'a mapping', int: 'a whole number' };

/** The schema's own wording, or for zod's defaults ("Invalid input: …") one in words. */
function expectation(issue: z.core.$ZodIssue): string {
  if (!issue.message.startsWith('Invalid input')) return issue.message;
  if (issue.code === 'invalid_type') return `expected ${TYPE_WORDS[issue.expected] ?? issue.expected}`;
  if (issue.code === 'invalid_value') return `expected ${issue.values.map((v) => show(v)).join(' or ')}`;
  return issue.message.replace(/^Invalid input:?\s*/, '') || 'invalid value';
}

export function describeIssue(issue: z.core.$ZodIssue): ConfigIssue[] {
  const path = keyPathOf(issue.path);
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => unknownKey(issue.path, key));
  const expected = expectation(issue);
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return [{ path, message: expected.startsWith('required') ? expected : `required: ${expected}` }];
  }
  if (/\bgot\b/.test(expected) || !('input' in issue)) return [{ path, message: expected }];
  // "6379" for a port: YAML read it as text because of the quotes.
  const quoted = issue.code === 'invalid_type' && issue.expected === 'number' && typeof issue.input === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(issue.input);
  return [{ path, message: `${expected}, got ${describeValue(issue.input)}${quoted ? '; write the number without quotes' : ''}` }];
}

// ── unknown keys ────────────────────────────────────────────────────────────

/** The object schema under wrappers (prefault, optional, pipe) and list elements, or undefined. */
function objectAt(schema: z.core.$ZodType | undefined, path: readonly PropertyKey[]): z.ZodObject | undefined {
  let current = schema;
  const unwrap = () => {
    for (let i = 0; i < 10 && current; i++) {
      const def = (current as { def?: { innerType?: z.core.$ZodType; in?: z.core.$ZodType } }).def;
      if (current instanceof z.ZodObject) return;
      current = def?.innerType ?? def?.in;
    }
  };
  for (const step of path) {
    unwrap();
    if (current instanceof z.ZodArray && typeof step === 'number') current = current.element as z.core.$ZodType;
    else if (current instanceof z.ZodObject && typeof step === 'string') current = current.shape[step] as z.core.$ZodType | undefined;
    else return undefined;
  }
  unwrap();
  return current instanceof z.ZodObject ? current : undefined;
}

/** Every key path of the schema (lists as [0]), for a key written at the wrong level. */
function allKeyPaths(schema: z.ZodObject, prefix: PropertyKey[] = []): PropertyKey[][] {
  return Object.keys(schema.shape).flatMap((key) => {
    const path = [...prefix, key];
    const child = objectAt(schema, [key]) ?? objectAt(schema, [key, 0]);
    const childPrefix = objectAt(schema, [key]) ? path : [...path, 0];
    return [path, ...(child ? allKeyPaths(child, childPrefix) : [])];
  });
}

function unknownKey(parent: readonly PropertyKey[], key: string): ConfigIssue {
  const path = keyPathOf([...parent, key]);
  const here = Object.keys(objectAt(configSchema, parent)?.shape ?? {});
  const near = closest(key, here);
  if (near !== undefined) return { path, message: `unknown key; did you mean ${keyPathOf([...parent, near])}?` };
  const elsewhere = allKeyPaths(configSchema).filter((p) => p[p.length - 1] === key);
  if (elsewhere.length > 0) return { path, message: `unknown key here; did you mean ${elsewhere.map(keyPathOf).join(' or ')}?` };
  return { path, message: `unknown key; expected one of ${here.join(', ')}` };
}
