// SPDX-License-Identifier: GPL-2.0-only
/**
 * Call-site location for the assertion macros: the first stack frame
 * outside the harness, mapped through the emitted source map to the .ts
 * line, and the macro's argument text read back from that source line
 * (kselftest prints the expressions of a failed ASSERT_*, which C gets
 * from the preprocessor).
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';


/* ------------------------------------------------------------------------ */
/* Call-site location: stack frame -> source map -> .ts line + expressions   */
/* ------------------------------------------------------------------------ */

/** The harness's own directory (compiled), and its .ts twin: frames there are skipped. */
const HARNESS_DIR = (() => {
  try {
    return dirname(fileURLToPath(import.meta.url));
  } catch {
    return '';
  }
})();
const HARNESS_DIR_TS = HARNESS_DIR.replace(/\/dist\//, '/');

/** A frame inside the harness (this directory, compiled or not; or the harness.ts re-export). */
function inHarness(file: string): boolean {
  if (HARNESS_DIR === '') return false;
  return file.startsWith(HARNESS_DIR + '/') || file.startsWith(HARNESS_DIR_TS + '/') || file === HARNESS_DIR + '.js' || file === HARNESS_DIR_TS + '.ts';
}

interface Frame {
  file: string;
  line: number;
  col: number;
}

function parseFrames(stack: string): Frame[] {
  const out: Frame[] = [];
  for (const raw of stack.split('\n').slice(1)) {
    const m = /\(?((?:file:\/\/)?[^()\s]+?):(\d+):(\d+)\)?\s*$/.exec(raw.trim());
    if (!m) continue;
    let file = m[1];
    if (file.startsWith('file://')) {
      try {
        file = fileURLToPath(file);
      } catch {
        /* keep */
      }
    }
    out.push({ file, line: Number(m[2]), col: Number(m[3]) });
  }
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64V = new Map<string, number>([...B64].map((c, i) => [c, i]));

interface MapSeg {
  genCol: number;
  src: number;
  line: number;
  col: number;
}

interface LoadedMap {
  sources: string[];
  lines: MapSeg[][];
}

const mapCache = new Map<string, LoadedMap | null>();

function decodeVlq(s: string, pos: { i: number }): number {
  let result = 0;
  let shift = 0;
  for (;;) {
    const c = B64V.get(s[pos.i++]);
    if (c === undefined) return 0;
    result += (c & 31) << shift;
    if (!(c & 32)) break;
    shift += 5;
  }
  return result & 1 ? -(result >>> 1) : result >>> 1;
}

function loadMap(jsFile: string): LoadedMap | null {
  if (mapCache.has(jsFile)) return mapCache.get(jsFile)!;
  let res: LoadedMap | null = null;
  try {
    const mapFile = jsFile + '.map';
    if (existsSync(mapFile)) {
      const raw = JSON.parse(readFileSync(mapFile, 'utf8')) as { sources: string[]; sourceRoot?: string; mappings: string };
      const base = resolve(dirname(mapFile), raw.sourceRoot ?? '');
      const sources = raw.sources.map((s) => resolve(base, s));
      const lines: MapSeg[][] = [];
      let src = 0;
      let oline = 0;
      let ocol = 0;
      for (const lineStr of raw.mappings.split(';')) {
        const segs: MapSeg[] = [];
        let gcol = 0;
        if (lineStr.length > 0) {
          for (const segStr of lineStr.split(',')) {
            if (!segStr) continue;
            const pos = { i: 0 };
            gcol += decodeVlq(segStr, pos);
            if (pos.i < segStr.length) {
              src += decodeVlq(segStr, pos);
              oline += decodeVlq(segStr, pos);
              ocol += decodeVlq(segStr, pos);
              segs.push({ genCol: gcol, src, line: oline, col: ocol });
            }
          }
        }
        lines.push(segs);
      }
      res = { sources, lines };
    }
  } catch {
    res = null;
  }
  mapCache.set(jsFile, res);
  return res;
}

/** Map a generated (1-based line, 1-based col) position to the original source. */
function mapPosition(f: Frame): Frame {
  if (!f.file.endsWith('.js')) return f;
  const m = loadMap(f.file);
  if (m === null) return f;
  const segs = m.lines[f.line - 1];
  if (!segs || segs.length === 0) return f;
  let best: MapSeg | null = null;
  for (const s of segs) {
    if (s.genCol <= f.col - 1) best = s;
    else break;
  }
  if (best === null) best = segs[0];
  return { file: m.sources[best.src] ?? f.file, line: best.line + 1, col: best.col + 1 };
}

const srcCache = new Map<string, string[] | null>();

function sourceLines(file: string): string[] | null {
  if (srcCache.has(file)) return srcCache.get(file)!;
  let lines: string[] | null = null;
  try {
    if (existsSync(file)) lines = readFileSync(file, 'utf8').split('\n');
  } catch {
    lines = null;
  }
  srcCache.set(file, lines);
  return lines;
}

/** Split the argument list of a call that starts at `text[open]` === '('. */
function splitArgs(text: string, open: number): string[] | null {
  const args: string[] = [];
  let depth = 0;
  let cur = '';
  let quote: string | null = null;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (quote !== null) {
      cur += c;
      if (c === '\\') {
        cur += text[++i] ?? '';
      } else if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') {
      quote = c;
      cur += c;
      continue;
    }
    if (c === '(' || c === '[' || c === '{') {
      depth++;
      if (depth === 1 && c === '(') continue;
    } else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth === 0) {
        args.push(cur.trim());
        return args;
      }
    } else if (c === ',' && depth === 1) {
      args.push(cur.trim());
      cur = '';
      continue;
    }
    cur += c;
  }
  return null;
}

/**
 * Load (and cache) the source map and source of the module calling the
 * harness now, so that a later failure is mapped with the map that matches
 * the code actually loaded, even if the tree is rebuilt meanwhile.
 */
export function preloadCaller(): void {
  const frames = parseFrames(new Error().stack ?? '');
  for (const fr of frames) {
    if (inHarness(fr.file) || fr.file.startsWith('node:')) continue;
    const m = loadMap(fr.file);
    if (m !== null) for (const src of m.sources) sourceLines(src);
    else sourceLines(fr.file);
    return;
  }
}

export interface CallSite {
  /** Basename of the port's source file: "hmm_tests.ts". */
  file: string;
  line: number;
  /** Source text of the macro's arguments, when the source is readable. */
  args: string[] | null;
}

/** Where `macro` was called from: the first stack frame outside the harness. */
export function callSite(macro: string): CallSite {
  const stack = new Error().stack ?? '';
  const frames = parseFrames(stack);
  let f: Frame | undefined;
  for (const fr of frames) {
    if (inHarness(fr.file) || fr.file.startsWith('node:')) continue;
    f = fr;
    break;
  }
  if (f === undefined) return { file: '?', line: 0, args: null };
  const m = mapPosition(f);
  let args: string[] | null = null;
  const lines = sourceLines(m.file);
  if (lines !== null && m.line >= 1 && m.line <= lines.length) {
    // The call may span lines: search forward from the reported line.
    const text = lines.slice(m.line - 1, m.line + 12).join('\n');
    const needle = `${macro}(`;
    // Prefer the occurrence nearest to the reported column on the first line.
    let best = -1;
    let bestDist = Infinity;
    for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) {
      if (at > 0 && /[\w$.]/.test(text[at - 1]) && text[at - 1] !== '.') continue;
      const dist = Math.abs(at - (m.col - 1));
      if (dist < bestDist) {
        best = at;
        bestDist = dist;
      }
      if (at > lines[m.line - 1].length) break;
    }
    if (best >= 0) args = splitArgs(text, best + macro.length)?.map((a) => a.replace(/\s+/g, ' ')) ?? null;
  }
  return { file: basename(m.file), line: m.line, args };
}
