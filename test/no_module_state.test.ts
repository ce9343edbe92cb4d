// SPDX-License-Identifier: GPL-2.0-only
/**
 * No module-level mutable state in the simulated kernel and drivers: state
 * lives on the machine (Kernel) or in a per-call context, so two machines in
 * one process never share it and the explorer's snapshot restores it.
 *
 * The scan parses every source of src/kernel and src/drivers with the
 * TypeScript compiler API and reports, as file:line:
 *  - a top-level `let` or `var`;
 *  - a top-level `const` bound to a mutable container: `new Map/Set/WeakMap/
 *    WeakSet/Array(...)` (always: they exist to be mutated), or an array or
 *    object literal that the module mutates (`X[i] = `, `X.p = `, `X.push(`,
 *    `delete X[..]`, ...).
 * Allowed: `Object.freeze(...)`, `as const`, and a declared type that is
 * ReadonlyArray / ReadonlyMap / ReadonlySet / Readonly<...> / `readonly T[]`.
 * A declaration whose leading comment says `module-state-ok: <why>` is
 * allowed too: host resources that carry no simulated state (a pool of
 * discarded machines' buffers, a scratch array zeroed after every use).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sourceFiles } from './source_files.js';
import { join, relative } from 'node:path';
import ts from 'typescript';

const ROOT = join(import.meta.dirname, '..', '..');
const MUTATORS = new Set(['push', 'pop', 'shift', 'unshift', 'splice', 'sort', 'reverse', 'fill', 'copyWithin', 'set', 'delete', 'clear', 'add']);
const CONTAINERS = new Set(['Map', 'Set', 'WeakMap', 'WeakSet', 'Array']);

function sources(dir: string): string[] {
  return sourceFiles(dir, 'ts');
}

function readonlyType(t: ts.TypeNode | undefined): boolean {
  if (t === undefined) return false;
  if (ts.isTypeOperatorNode(t) && t.operator === ts.SyntaxKind.ReadonlyKeyword) return true;
  if (ts.isTypeReferenceNode(t)) return /^(ReadonlyArray|ReadonlyMap|ReadonlySet|Readonly)$/.test(t.typeName.getText());
  return false;
}

function stripParens(e: ts.Expression): ts.Expression {
  while (ts.isParenthesizedExpression(e)) e = e.expression;
  return e;
}

/** Names of module-level bindings that the file mutates (assignment, delete, ++/--, a mutating method call). */
function mutatedNames(sf: ts.SourceFile): Set<string> {
  const out = new Set<string>();
  const root = (e: ts.Expression): string | null => {
    e = stripParens(e);
    while (ts.isPropertyAccessExpression(e) || ts.isElementAccessExpression(e)) e = stripParens(e.expression);
    return ts.isIdentifier(e) ? e.text : null;
  };
  const visit = (n: ts.Node): void => {
    if (ts.isBinaryExpression(n) && n.operatorToken.kind >= ts.SyntaxKind.FirstAssignment && n.operatorToken.kind <= ts.SyntaxKind.LastAssignment) {
      const l = stripParens(n.left);
      if (ts.isPropertyAccessExpression(l) || ts.isElementAccessExpression(l)) {
        const r = root(l);
        if (r !== null) out.add(r);
      }
    } else if ((ts.isPrefixUnaryExpression(n) || ts.isPostfixUnaryExpression(n)) &&
      (n.operator === ts.SyntaxKind.PlusPlusToken || n.operator === ts.SyntaxKind.MinusMinusToken)) {
      const o = stripParens(n.operand);
      if (ts.isPropertyAccessExpression(o) || ts.isElementAccessExpression(o)) {
        const r = root(o);
        if (r !== null) out.add(r);
      }
    } else if (ts.isDeleteExpression(n)) {
      const r = root(n.expression);
      if (r !== null) out.add(r);
    } else if (ts.isCallExpression(n) && ts.isPropertyAccessExpression(n.expression) && MUTATORS.has(n.expression.name.text)) {
      const r = root(n.expression.expression);
      if (r !== null) out.add(r);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** The module-level mutable state of one source file, as "file:line: why". */
export function moduleStateOf(file: string, text: string): string[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const mutated = mutatedNames(sf);
  const out: string[] = [];
  const at = (n: ts.Node): string => `${file}:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}`;
  for (const st of sf.statements) {
    if (!ts.isVariableStatement(st)) continue;
    const comments = ts.getLeadingCommentRanges(text, st.getFullStart()) ?? [];
    if (comments.some((c) => /module-state-ok: \S/.test(text.slice(c.pos, c.end)))) continue;
    const list = st.declarationList;
    const isConst = (list.flags & ts.NodeFlags.Const) !== 0;
    for (const d of list.declarations) {
      const name = d.name.getText(sf);
      if (!isConst) {
        out.push(`${at(d)}: top-level ${list.flags & ts.NodeFlags.Let ? 'let' : 'var'} ${name}`);
        continue;
      }
      if (d.initializer === undefined || readonlyType(d.type)) continue;
      let init = stripParens(d.initializer);
      if (ts.isAsExpression(init) || ts.isSatisfiesExpression(init)) {
        if (ts.isAsExpression(init) && (init.type.getText(sf) === 'const' || readonlyType(init.type))) continue;
        init = stripParens(init.expression);
      }
      if (ts.isCallExpression(init) && init.expression.getText(sf) === 'Object.freeze') continue;
      if (ts.isNewExpression(init) && ts.isIdentifier(init.expression) && CONTAINERS.has(init.expression.text)) {
        out.push(`${at(d)}: top-level const ${name} = new ${init.expression.text}(...) (mutable container)`);
      } else if ((ts.isArrayLiteralExpression(init) || ts.isObjectLiteralExpression(init)) && ts.isIdentifier(d.name) && mutated.has(name)) {
        out.push(`${at(d)}: top-level const ${name} is a ${ts.isArrayLiteralExpression(init) ? 'array' : 'object'} literal the module mutates`);
      }
    }
  }
  return out;
}

test('the scanner finds what it must and allows frozen tables', () => {
  const src = [
    'let a = 0;',
    'var b = 1;',
    'const m = new Map<number, number>();',
    'const w = new WeakMap<object, number>();',
    'const arr: number[] = [];',
    'function f() { arr.push(1); }',
    'const obj = { n: 0 };',
    'function g() { obj.n++; }',
    'const table = { a: 1 };',
    'const frozen = Object.freeze([1, 2]);',
    'const tuple = [1, 2] as const;',
    'const ro: ReadonlyMap<number, number> = new Map([[1, 2]]);',
    'const ra: readonly number[] = [1];',
    'const n = 5;',
    'function h() { let local = 1; return local; }',
    '/* module-state-ok: a host buffer pool */',
    'const pool: Uint8Array[] = [];',
    'function p() { pool.push(new Uint8Array(1)); }',
    '/* module-state-ok:  */',
    'let noReason = 0;',
  ].join('\n');
  assert.deepEqual(moduleStateOf('x.ts', src), [
    'x.ts:1: top-level let a',
    'x.ts:2: top-level var b',
    'x.ts:3: top-level const m = new Map(...) (mutable container)',
    'x.ts:4: top-level const w = new WeakMap(...) (mutable container)',
    'x.ts:5: top-level const arr is a array literal the module mutates',
    'x.ts:7: top-level const obj is a object literal the module mutates',
    'x.ts:20: top-level let noReason',
  ]);
});

test('src/kernel and src/drivers keep no module-level mutable state', () => {
  const found: string[] = [];
  for (const dir of ['src/kernel', 'src/drivers']) {
    for (const f of sources(join(ROOT, dir))) found.push(...moduleStateOf(relative(ROOT, f), readFileSync(f, 'utf8')));
  }
  assert.deepEqual(found, [], `module-level mutable state (move it onto the Kernel or a per-call context):\n${found.join('\n')}`);
});
