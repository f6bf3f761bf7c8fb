// No shell anywhere: every program cachenat (and its lab) starts is spawned
// with an argument array. This reads the syntax tree of every .ts file in
// src/, lab/ and bench/ and fails on anything that would hand a string to a
// shell, and first proves on a sample that it would catch each such form.
//
// The same way, it keeps the core pure: no module under src/core/ may import
// the file system, processes, the network, DNS, execa, the AWS SDK (types
// excepted) or any module of the shell (src/ outside src/core/).

import t from 'tap';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SHELLS = /^(?:\/(?:usr\/)?bin\/)?(?:sh|bash|dash|zsh|ksh|ash)$/;
const SHELL_IN_TEXT = /\b(?:sh|bash|dash|zsh)\s+-c\b/;
// From node:child_process only the forms that take an argument list are allowed.
const FORBIDDEN_IMPORTS = new Set(['exec', 'execSync']);
const FORBIDDEN_CALLS = new Set(['execaCommand', 'execaCommandSync']);

function shellUses(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  const at = (node: ts.Node, what: string) => {
    const { line } = source.getLineAndCharacterOfPosition(node.getStart());
    found.push(`${fileName}:${line + 1}: ${what}`);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier) && /^(node:)?child_process$/.test(node.moduleSpecifier.text)) {
      const bindings = node.importClause?.namedBindings;
      if (bindings && ts.isNamedImports(bindings)) {
        for (const el of bindings.elements) {
          const imported = (el.propertyName ?? el.name).text;
          if (FORBIDDEN_IMPORTS.has(imported)) at(el, `imports ${imported} from child_process (runs a shell)`);
        }
      } else if (bindings) at(node, 'imports all of child_process (use execa or spawn/execFile by name)');
    }
    if (ts.isPropertyAssignment(node) && node.name.getText(source) === 'shell' && node.initializer.kind !== ts.SyntaxKind.FalseKeyword) {
      at(node, `spawn option shell: ${node.initializer.getText(source)}`);
    }
    if (ts.isShorthandPropertyAssignment(node) && node.name.text === 'shell') at(node, 'spawn option shell');
    if (ts.isCallExpression(node)) {
      const callee = node.expression.getText(source);
      const name = callee.split('.').pop() ?? '';
      if (FORBIDDEN_CALLS.has(name)) at(node, `${name}() parses a command line string`);
      if ((name === 'exec' || name === 'execSync') && /child_process|cp\b|childProcess/.test(callee)) at(node, `${callee}() runs a shell`);
      const first = node.arguments[0];
      const programArgIndex = first && ts.isStringLiteralLike(first) && SHELLS.test(first.text) ? 0 : -1;
      if (programArgIndex === 0) at(node, `starts the shell ${(first as ts.StringLiteral).text}`);
    }
    if ((ts.isStringLiteralLike(node) || ts.isTemplateExpression(node)) && SHELL_IN_TEXT.test(node.getText(source))) {
      at(node, `"sh -c"-style text: ${node.getText(source).slice(0, 60)}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

t.test('the scanner catches every shell form it looks for', async (t) => {
  const sample = `
import { exec, execSync as run, spawn } from 'node:child_process';
import * as cp from 'child_process';
import { execa, execaCommand } from 'execa';
exec('iptables -F');
cp.exec('x');
spawn('iptables', ['-L'], { shell: true });
const shell = '/bin/bash';
spawn('iptables', [], { shell });
execa('sh', ['-c', 'iptables-save']);
execa('/bin/bash', ['x']);
execaCommand('iptables -L');
execa('ip', ['netns', 'exec', 'x', 'bash -c "id"']);
spawn('ls', [], { shell: false });
`;
  const found = shellUses('sample.ts', sample);
  const lines = new Set(found.map((f) => Number(f.split(':')[1])));
  t.same([...lines].sort((a, b) => a - b), [2, 3, 6, 7, 9, 10, 11, 12, 13], found.join('\n'));
});

t.test('src/, lab/ and bench/ start no shell', async (t) => {
  const files = ['src', 'lab', 'bench'].flatMap((d) => tsFiles(join(ROOT, d)));
  t.ok(files.length > 40, `${files.length} files scanned`);
  const found = files.flatMap((file) => shellUses(relative(ROOT, file), readFileSync(file, 'utf8')));
  t.same(found, [], 'no shell use');
});

// ── the pure core ──────────────────────────────────────────────────────────

const CORE = join(ROOT, 'src', 'core');
const IO_MODULES = /^(?:node:)?(?:fs|fs\/promises|child_process|dns|dns\/promises|net|tls|dgram|http|https|http2)$/;
const SDK = /^@aws-sdk\//;

/** Why this module may not be imported from the core file `fileName`, or undefined. */
function coreImportProblem(fileName: string, specifier: string, typeOnly: boolean): string | undefined {
  if (IO_MODULES.test(specifier)) return `imports ${specifier} (I/O belongs in the shell)`;
  if (specifier === 'execa') return 'imports execa (processes belong in the shell)';
  if (SDK.test(specifier)) return typeOnly ? undefined : `imports values from ${specifier} (only its types may be used in the core)`;
  if (specifier.startsWith('.')) {
    const target = resolve(dirname(fileName), specifier);
    if (target !== CORE && !target.startsWith(CORE + sep)) return `imports the shell module ${relative(ROOT, target)}`;
  }
  return undefined;
}

/** Every import, re-export, dynamic import() and require() in a core file that breaks the rule. */
function coreImportUses(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  const check = (node: ts.Node, specifier: ts.Expression | undefined, typeOnly: boolean) => {
    if (!specifier || !ts.isStringLiteralLike(specifier)) {
      if (specifier) found.push(`${relative(ROOT, fileName)}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}: imports a computed module name`);
      return;
    }
    const problem = coreImportProblem(fileName, specifier.text, typeOnly);
    if (problem) found.push(`${relative(ROOT, fileName)}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}: ${problem}`);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      const bindings = clause?.namedBindings;
      // `import type {…}`, or `import { type A, type B }` with nothing else, brings in no code.
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly || (clause.name === undefined && bindings !== undefined && ts.isNamedImports(bindings) && bindings.elements.every((e) => e.isTypeOnly)));
      check(node, node.moduleSpecifier, typeOnly);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      check(node, node.moduleSpecifier, node.isTypeOnly);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      check(node, node.moduleReference.expression, node.isTypeOnly);
    } else if (ts.isCallExpression(node) && (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require'))) {
      check(node, node.arguments[0], false);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

t.test('the core scanner catches every forbidden import form', async (t) => {
  const sample = `
import { readFile } from 'node:fs/promises';
import * as fs from 'fs';
import { execa } from 'execa';
import { ElastiCacheClient } from '@aws-sdk/client-elasticache';
import type { CacheCluster } from '@aws-sdk/client-elasticache';
import { type CacheNode } from '@aws-sdk/client-elasticache';
import { type Endpoint, DescribeCacheClustersCommand } from '@aws-sdk/client-elasticache';
import { lookup } from 'node:dns';
import net from 'net';
import { spawn } from 'child_process';
import { StateStore } from '../../ports/state-store.js';
import type { Edges } from '../../cli/edges.js';
export { IptablesNetfilter } from '../../netfilter/iptables.js';
const lazy = await import('node:fs');
const old = require('child_process');
import '../../daemon/run-daemon.js';
import { z } from 'zod';
import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { parseSave } from './parse-save.js';
import cp = require('node:child_process');
const which = await import(name);
`;
  const found = coreImportUses(join(CORE, 'netfilter', 'sample.ts'), sample);
  const lines = new Set(found.map((f) => Number(f.split(':')[1])));
  t.same([...lines].sort((a, b) => a - b), [2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 22, 23], found.join('\n'));
});

t.test('src/core/ imports no I/O, no SDK values and nothing from the shell', async (t) => {
  const files = tsFiles(CORE);
  t.ok(files.length > 20, `${files.length} core files scanned`);
  const found = files.flatMap((file) => coreImportUses(file, readFileSync(file, 'utf8')));
  t.same(found, [], 'the core is pure');
});
