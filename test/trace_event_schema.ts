// SPDX-License-Identifier: GPL-2.0-only
/**
 * A JSON Schema (draft 2020-12 subset that ajv checks) of the Chrome Trace
 * Event Format, JSON-array form, for the event phases hmmsim writes and the
 * rules Perfetto's JSON importer applies to them: every event has a name, a
 * phase, a non-negative numeric ts (microseconds) and integer pid / tid;
 * instants ('i'/'I') have scope s in g|p|t; counters ('C') carry only
 * numeric args; metadata ('M') is one of process_name / thread_name (args.name
 * a string) or process_sort_index / thread_sort_index (args.sort_index an
 * integer); complete events ('X') have a non-negative dur. Pairing of B/E
 * per thread is checked by the tests (a schema cannot).
 */
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import type { TraceEventJson } from '../src/trace/chrome.js';

export const TRACE_EVENT_SCHEMA = {
  $id: 'https://hmmsim.invalid/trace-event-array.json',
  type: 'array',
  minItems: 1,
  items: {
    type: 'object',
    required: ['name', 'ph', 'ts', 'pid', 'tid'],
    properties: {
      name: { type: 'string', minLength: 1 },
      ph: { enum: ['B', 'E', 'X', 'i', 'I', 'C', 'M', 'b', 'e', 'n', 's', 't', 'f', 'P', 'O', 'N', 'D'] },
      ts: { type: 'number', minimum: 0 },
      dur: { type: 'number', minimum: 0 },
      pid: { type: 'integer', minimum: 0 },
      tid: { type: 'integer', minimum: 0 },
      cat: { type: 'string' },
      s: { enum: ['g', 'p', 't'] },
      args: { type: 'object' },
    },
    allOf: [
      { if: { properties: { ph: { const: 'C' } } }, then: { required: ['args'], properties: { args: { type: 'object', minProperties: 1, additionalProperties: { type: 'number' } } } } },
      { if: { properties: { ph: { const: 'X' } } }, then: { required: ['dur'] } },
      { if: { properties: { ph: { enum: ['i', 'I'] } } }, then: { properties: { s: { enum: ['g', 'p', 't'] } } } },
      {
        if: { properties: { ph: { const: 'M' } } },
        then: {
          required: ['args'],
          oneOf: [
            { properties: { name: { enum: ['process_name', 'thread_name'] }, args: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } },
            { properties: { name: { enum: ['process_sort_index', 'thread_sort_index'] }, args: { type: 'object', required: ['sort_index'], properties: { sort_index: { type: 'integer' } } } } },
          ],
        },
      },
    ],
  },
} as const;

const validate = new Ajv({ allErrors: true }).compile(TRACE_EVENT_SCHEMA);

/**
 * Parse and validate a trace: the schema above, then B/E pairing per
 * (pid, tid) and per-thread time order, as Perfetto's JSON importer needs.
 * Returns the events.
 */
export function parseTrace(text: string): TraceEventJson[] {
  const events = JSON.parse(text) as TraceEventJson[];
  assert.ok(validate(events), `schema: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
  const stacks = new Map<string, string[]>();
  const lastTs = new Map<string, number>();
  for (const e of events) {
    if (e.ph === 'M') continue;
    const key = `${e.pid}/${e.tid}`;
    assert.ok(e.ts >= (lastTs.get(key) ?? 0), `time goes backwards on ${key} at ${e.name}`);
    lastTs.set(key, e.ts);
    if (e.ph === 'B') {
      if (!stacks.has(key)) stacks.set(key, []);
      stacks.get(key)!.push(e.name);
    } else if (e.ph === 'E') {
      assert.equal(stacks.get(key)?.pop(), e.name, `E ${e.name} on ${key} closes the innermost open span`);
    }
  }
  for (const [key, st] of stacks) assert.deepEqual(st, [], `spans left open on ${key}`);
  return events;
}
