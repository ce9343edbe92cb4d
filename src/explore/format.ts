// SPDX-License-Identifier: GPL-2.0-only
/** The explorer's text output: a run's numbered trace. */
import type { RunResult } from './scenario.js';

/** The numbered trace of a run, as the explorer prints it. */
export function formatTrace(r: RunResult): string {
  const lines: string[] = [];
  const w = Math.max(8, ...r.trace.map((s) => `[${s.task}:${s.taskName}]`.length));
  for (let i = 0; i < r.trace.length; i++) {
    const s = r.trace[i];
    const who = `[${s.task}:${s.taskName}]`.padEnd(w);
    const arg = s.arg >= 0 ? ` (0x${s.arg.toString(16)})` : '';
    const note = r.notes[i] ? `\n${' '.repeat(6 + w + 2)}| ${r.notes[i]}` : '';
    lines.push(`${String(s.step).padStart(4)}  ${who}  ${s.what}${arg}${note}`);
  }
  if (r.violation) {
    lines.push(`  !!  ${r.violation.detector}: ${r.violation.rule}`);
    if (r.violation.state) lines.push(...r.violation.state.split('\n').map((l) => `      ${l}`));
  }
  return lines.join('\n');
}
