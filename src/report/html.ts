// SPDX-License-Identifier: GPL-2.0-only
/**
 * `hmmsim report`: one self-contained HTML file (no network: the data and
 * Chart.js are inlined) showing
 *   - recorded explorer runs: the page map of every address space after
 *     every step, scrubbable (a range input, arrow keys, clicking a step),
 *     one cell per 4 KiB page (or per 2 MiB region when a space has more
 *     than MAX_CELLS pages: the region shows its most common mapped
 *     state), coloured by state; and the schedule as swim lanes (one
 *     column per simulated thread) with the page state beside each step;
 *   - a selftest summary (totals, per-case results);
 *   - bench figures as Chart.js charts (core round-trip bandwidth, scale).
 * The input is described in docs/REPORT.md; the DOM carries data-*
 * attributes (data-state on cells, data-step on the map) that the browser
 * test reads.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { RecordedRun } from '../trace/record.js';
import { DEVICE_PRIVATE_BASE, PS_COHERENT, PS_EXCLUSIVE, PS_HWPOISON, PS_MIGRATION, PS_NONE, PS_PRESENT, PS_SWAP, PS_THP, PS_ZERO, stateName } from '../trace/pagemap.js';

const require = createRequire(import.meta.url);

/** Selftest summary as the report shows it. */
export interface SelftestSummary {
  config: string[];
  totals: Record<string, number>;
  cases: Array<{ name: string; result: string; reason: string; ms: number; warnings: number }>;
}

export interface ReportInput {
  title?: string;
  runs: RecordedRun[];
  selftest: SelftestSummary | null;
  /** The JSON object of `hmmsim bench --json`. */
  bench: unknown;
}

/** A space with more pages than this is drawn one cell per 2 MiB region. */
export const MAX_CELLS = 4096;

/** Colour of each state code (device-private: one hue per pgmap). */
export function stateColour(code: number): string {
  switch (code) {
    case PS_NONE: return '#e8e8e8';
    case PS_PRESENT: return '#43a047';
    case PS_ZERO: return '#c5e1a5';
    case PS_THP: return '#1b5e20';
    case PS_COHERENT: return '#00acc1';
    case PS_MIGRATION: return '#fb8c00';
    case PS_EXCLUSIVE: return '#8e24aa';
    case PS_SWAP: return '#6d4c41';
    case PS_HWPOISON: return '#212121';
    default: {
      const g = code - DEVICE_PRIVATE_BASE;
      const hues = [220, 0, 260, 330, 190, 45];
      return `hsl(${hues[(g - 1 + hues.length) % hues.length]}, 70%, ${g <= hues.length ? 50 : 35}%)`;
    }
  }
}

function chartJsSource(): string {
  const main = require.resolve('chart.js');
  return readFileSync(path.join(path.dirname(main), 'chart.umd.min.js'), 'utf8');
}

/** JSON or script text safe inside a <script> element. */
function scriptSafe(s: string): string {
  return s.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** The report as one HTML document. */
export function renderReport(input: ReportInput): string {
  const codes = new Set<number>([PS_NONE, PS_PRESENT, PS_ZERO, PS_THP, PS_COHERENT, PS_MIGRATION, PS_EXCLUSIVE, PS_SWAP, PS_HWPOISON]);
  for (const r of input.runs) for (const c of Object.keys(r.states)) codes.add(Number(c));
  const palette: Record<string, { name: string; colour: string }> = {};
  for (const c of [...codes].sort((a, b) => a - b)) palette[String(c)] = { name: stateName(c), colour: stateColour(c) };
  const data = { runs: input.runs, selftest: input.selftest, bench: input.bench ?? null, palette, maxCells: MAX_CELLS };
  const title = input.title ?? 'hmmsim report';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${esc(title)}</h1>
<div id="app"></div>
<script id="report-data" type="application/json">${scriptSafe(JSON.stringify(data))}</script>
<script>${scriptSafe(chartJsSource())}</script>
<script>${scriptSafe(CLIENT)}</script>
</body>
</html>
`;
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ccc; } h3 { font-size: 15px; }
code, pre, .mono { font-family: ui-monospace, monospace; font-size: 12px; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
.violation { border-left: 4px solid #c62828; background: #fdecea; padding: 6px 10px; }
.ok { border-left: 4px solid #2e7d32; background: #edf7ed; padding: 6px 10px; }
.legend span.sw { display: inline-block; width: 12px; height: 12px; vertical-align: middle; margin: 0 4px 0 12px; border: 1px solid #999; }
.scrub { display: flex; align-items: center; gap: 10px; margin: 8px 0; }
.scrub input[type=range] { width: 360px; }
.pagemap { display: grid; gap: 1px; margin: 4px 0 12px; width: max-content; }
.pagemap div { width: 14px; height: 14px; border-radius: 2px; }
.pagemap.big div { width: 36px; height: 36px; border-radius: 4px; font-size: 9px; color: #fff; display: flex; align-items: flex-end; justify-content: center; overflow: hidden; }
.space { display: inline-block; vertical-align: top; margin-right: 24px; }
table { border-collapse: collapse; margin: 6px 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; vertical-align: top; text-align: left; }
table.lanes td.lane { min-width: 210px; }
table.lanes tr { cursor: pointer; }
table.lanes tr.current { outline: 2px solid #1565c0; background: #e3f2fd; }
table.lanes tr.bad td { background: #fdecea; }
td.note { color: #555; font-size: 12px; }
.mini { display: inline-flex; gap: 1px; } .mini i { display: inline-block; width: 8px; height: 12px; }
.FAIL, .ERROR { color: #c62828; font-weight: bold; } .PASS { color: #2e7d32; } .SKIP { color: #777; }
.chart { width: 720px; height: 320px; margin: 8px 0 20px; }
`;

/** Runs in the page: builds the DOM from #report-data. Plain ES2020, no dependencies but Chart.js. */
const CLIENT = String.raw`
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('report-data').textContent);
  const app = document.getElementById('app');
  const pal = data.palette;
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v; else if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const c of kids) if (c != null) e.append(c);
    return e;
  };
  const hex = (n) => n == null ? '' : '0x' + n.toString(16);
  const colourOf = (code) => (pal[String(code)] || { colour: '#f0f' }).colour;
  const nameOf = (code) => (pal[String(code)] || { name: 'state ' + code }).name;
  const legend = (codes) => el('div', { class: 'legend' }, ...codes.map((c) => el('span', {}, el('span', { class: 'sw', style: 'background:' + colourOf(c) }), nameOf(c))));

  /* cells of one space in one frame: per page, or per 2 MiB region (its most common mapped state) */
  function cellsOf(map, maxCells) {
    const n = map.length;
    if (n <= maxCells) { const out = new Array(n); for (let i = 0; i < n; i++) out[i] = parseInt(map[i], 36); return { cells: out, per: 1 }; }
    const out = [];
    for (let i = 0; i < n; i += 512) {
      const count = new Map();
      for (let j = i; j < Math.min(n, i + 512); j++) { const c = parseInt(map[j], 36); if (c !== 0) count.set(c, (count.get(c) || 0) + 1); }
      let best = 0, bn = 0;
      for (const [c, k] of count) if (k > bn) { best = c; bn = k; }
      out.push(best);
    }
    return { cells: out, per: 512 };
  }

  function renderRun(run, ri) {
    const sec = el('section', { class: 'run', 'data-scenario': run.scenario });
    sec.append(el('h2', { text: 'explore ' + run.scenario + (run.config.length ? ' --config ' + run.config.join(',') : '') }));
    sec.append(el('p', { text: run.description }));
    if (run.violation) {
      sec.append(el('div', { class: 'violation', 'data-detector': run.violation.detector }, el('b', { text: run.violation.detector + ': ' }), run.violation.rule,
        run.violation.state ? el('pre', { text: run.violation.state }) : null));
    } else sec.append(el('div', { class: 'ok', text: 'no violation in this schedule' }));
    sec.append(el('p', {}, 'replay: ', el('code', { text: run.replay })));
    const codes = Object.keys(run.states).map(Number);
    sec.append(legend(codes));

    /* page maps + scrubber */
    const frames = run.frames;
    const label = el('span', { class: 'mono' });
    const range = el('input', { type: 'range', min: '0', max: String(frames.length - 1), value: '0', 'aria-label': 'step' });
    const maps = el('div', { class: 'maps', 'data-step': '0' });
    const grids = run.spaces.map((sp, si) => {
      const first = cellsOf(frames[0].maps[si], data.maxCells);
      const big = first.cells.length <= 64;
      const cols = Math.min(big ? 16 : 64, first.cells.length);
      const grid = el('div', { class: 'pagemap' + (big ? ' big' : ''), 'data-mm': String(sp.mm), style: 'grid-template-columns: repeat(' + cols + ', ' + (big ? 36 : 14) + 'px)' });
      const starts = [];
      let idx = 0;
      for (const v of sp.vmas) { const np = (v.end - v.start) / 4096; for (let p = 0; p < np; p += first.per) starts.push(v.start + p * 4096); idx += np; }
      for (let i = 0; i < first.cells.length; i++) grid.append(el('div', { 'data-addr': hex(starts[i]), text: big ? (starts[i] / 4096).toString(16) : '' }));
      const title = 'mm #' + sp.mm + ': ' + sp.pages + (sp.pages === 1 ? ' page' : ' pages') + ' in ' + sp.vmas.length + (sp.vmas.length === 1 ? ' VMA' : ' VMAs') + (first.per > 1 ? ' (one cell per 2 MiB)' : ' (one cell per 4 KiB page)');
      maps.append(el('div', { class: 'space' }, el('h3', { text: title }), grid));
      return grid;
    });
    const laneRows = [];
    function show(f) {
      f = Math.max(0, Math.min(frames.length - 1, f));
      range.value = String(f);
      const fr = frames[f];
      maps.setAttribute('data-step', String(fr.step));
      const st = run.steps.find((s) => s.step === fr.step);
      label.textContent = 'step ' + fr.step + ' of ' + frames[frames.length - 1].step + (st ? ' — [' + st.task + ':' + st.thread + '] ' + st.what + (st.arg != null ? ' (' + hex(st.arg) + ')' : '') : ' — before the first step');
      run.spaces.forEach((sp, si) => {
        const { cells, per } = cellsOf(fr.maps[si], data.maxCells);
        const kids = grids[si].children;
        for (let i = 0; i < cells.length && i < kids.length; i++) {
          const c = cells[i];
          kids[i].style.background = colourOf(c);
          kids[i].setAttribute('data-state', nameOf(c));
          kids[i].title = kids[i].getAttribute('data-addr') + (per > 1 ? ' (2 MiB)' : '') + ': ' + nameOf(c);
        }
      });
      for (const tr of laneRows) tr.classList.toggle('current', Number(tr.getAttribute('data-step')) === fr.step);
    }
    range.addEventListener('input', () => show(Number(range.value)));
    const prev = el('button', { text: '◀', onclick: () => show(Number(range.value) - 1) });
    const next = el('button', { text: '▶', onclick: () => show(Number(range.value) + 1) });
    sec.append(el('h3', { text: 'Page map (scrub through the steps; ←/→ keys)' }), el('div', { class: 'scrub' }, prev, range, next, label), maps);
    /* pages per state over the steps (Chart.js) */
    const counts = frames.map((fr) => { const m = new Map(); for (const map of fr.maps) for (const ch of map) { const c = parseInt(ch, 36); if (c !== 0) m.set(c, (m.get(c) || 0) + 1); } return m; });
    const seen = codes.filter((c) => c !== 0 && counts.some((m) => m.has(c)));
    if (seen.length) {
      sec.append(el('h3', { text: 'Mapped pages per state after each step' }));
      chart(sec, 'states-' + ri, {
        type: 'line',
        data: { labels: frames.map((fr) => String(fr.step)), datasets: seen.map((c) => ({ label: nameOf(c), data: counts.map((m) => m.get(c) || 0), borderColor: colourOf(c), backgroundColor: colourOf(c), stepped: true, fill: false })) },
        options: { scales: { x: { title: { display: true, text: 'step' } }, y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: 'pages' } } } },
      });
    }
    sec.addEventListener('keydown', (e) => { if (e.key === 'ArrowLeft') show(Number(range.value) - 1); if (e.key === 'ArrowRight') show(Number(range.value) + 1); });
    sec.tabIndex = 0;

    /* swim lanes */
    const threads = run.threads;
    const head = el('tr', {}, el('th', { text: 'step' }), ...threads.map((t) => el('th', { text: '[' + t.id + '] ' + t.name })), el('th', { text: 'pages after the step' }));
    const body = [];
    const frameOfStep = new Map(frames.map((fr, i) => [fr.step, i]));
    run.steps.forEach((s, i) => {
      const f = frameOfStep.has(s.step) ? frameOfStep.get(s.step) : frames.length - 1;
      const mini = el('span', { class: 'mini' });
      const fr = frames[f];
      for (let si = 0; si < run.spaces.length; si++) {
        const { cells } = cellsOf(fr.maps[si], data.maxCells);
        for (const c of cells.slice(0, 32)) mini.append(el('i', { style: 'background:' + colourOf(c), title: nameOf(c) }));
      }
      const last = i === run.steps.length - 1 && run.violation;
      const tr = el('tr', { 'data-step': String(s.step), class: last ? 'bad' : '', onclick: () => show(f) },
        el('td', { class: 'mono', text: String(s.step) }),
        ...threads.map((t) => el('td', { class: 'lane mono', text: t.id === s.task ? s.what + (s.arg != null ? ' (' + hex(s.arg) + ')' : '') : '' })),
        el('td', { class: 'note' }, mini, s.note ? el('div', { class: 'mono', text: s.note }) : null));
      laneRows.push(tr);
      body.push(tr);
    });
    sec.append(el('h3', { text: 'Schedule as swim lanes (click a step to show its page map)' }), el('table', { class: 'lanes' }, el('thead', {}, head), el('tbody', {}, ...body)));
    show(0);
    return sec;
  }

  function renderSelftest(st) {
    const sec = el('section', { class: 'selftest' }, el('h2', { text: 'hmm-tests (selftest)' + (st.config.length ? ' --config ' + st.config.join(',') : '') }));
    sec.append(el('p', { 'data-totals': JSON.stringify(st.totals) }, ...Object.entries(st.totals).map(([k, v]) => el('span', { class: k.toUpperCase(), text: k + ': ' + v + '  ' }))));
    const rows = st.cases.map((c) => el('tr', {}, el('td', { class: 'mono', text: c.name }), el('td', { class: c.result.toUpperCase(), text: c.result.toUpperCase() }), el('td', { text: c.reason }), el('td', { text: c.ms.toFixed(1) + ' ms' }), el('td', { text: String(c.warnings) })));
    sec.append(el('table', {}, el('thead', {}, el('tr', {}, ...['case', 'result', 'reason', 'time', 'kernel WARNs'].map((h) => el('th', { text: h })))), el('tbody', {}, ...rows)));
    return sec;
  }

  function chart(parent, id, cfg) {
    const box = el('div', { class: 'chart' });
    const canvas = el('canvas', { id });
    box.append(canvas);
    parent.append(box);
    cfg.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, cfg.options || {});
    return new Chart(canvas, cfg);
  }

  function renderBench(b) {
    const sec = el('section', { class: 'bench' }, el('h2', { text: 'bench' }));
    if (b.machine) sec.append(el('p', { text: (b.machine.cpus || '?') + ' x ' + (b.machine.cpuModel || '?') + ', node ' + (b.machine.node || '?') + (b.machine.quick ? ' (quick: not target sizes)' : '') }));
    const core = Array.isArray(b.core) ? b.core : [];
    for (const thp of [false, true]) {
      const rows = core.filter((c) => !!c.thp === thp);
      if (!rows.length) continue;
      sec.append(el('h3', { text: 'core: system -> device-private -> system round trip, ' + (thp ? 'THP' : '4 KiB pages') + ' (GB/s, median)' }));
      chart(sec, 'core-' + (thp ? 'thp' : '4k'), {
        type: 'bar',
        data: { labels: rows.map((c) => (c.pages * 4096 / 1048576) + ' MiB'), datasets: [
          { label: 'system -> device', data: rows.map((c) => c.s2dGBps), backgroundColor: '#1e88e5' },
          { label: 'device -> system', data: rows.map((c) => c.d2sGBps), backgroundColor: '#e53935' },
          { label: 'memcpy', data: rows.map((c) => c.memcpyGBps), backgroundColor: '#9e9e9e' }] },
        options: { scales: { y: { beginAtZero: true, title: { display: true, text: 'GB/s' } } } },
      });
    }
    if (b.scale && Array.isArray(b.scale.rows)) {
      sec.append(el('h3', { text: 'scale: ns per page of a 4 KiB round trip (fingerprint mode)' }));
      chart(sec, 'scale', {
        type: 'line',
        data: { labels: b.scale.rows.map((r) => String(r.pages)), datasets: [{ label: 'ns/page', data: b.scale.rows.map((r) => r.nsPerPage), borderColor: '#1e88e5' }] },
        options: { scales: { x: { title: { display: true, text: 'pages' } }, y: { beginAtZero: true, title: { display: true, text: 'ns/page' } } } },
      });
    }
    if (b.targets) {
      const rows = Object.entries(b.targets).map(([n, t]) => el('tr', {}, el('td', { text: n }), el('td', { text: t.value == null ? 'not measured' : String(t.value) }), el('td', { text: t.target || '' }), el('td', { class: t.met === false ? 'FAIL' : 'PASS', text: t.met == null ? '' : t.met ? 'met' : 'NOT MET' })));
      sec.append(el('h3', { text: 'targets' }), el('table', {}, el('tbody', {}, ...rows)));
    }
    return sec;
  }

  if (!data.runs.length && !data.selftest && !data.bench) app.append(el('p', { text: 'empty report' }));
  data.runs.forEach((r, i) => app.append(renderRun(r, i)));
  if (data.selftest) app.append(renderSelftest(data.selftest));
  if (data.bench) app.append(renderBench(data.bench));
  document.body.setAttribute('data-ready', '1');
})();
`;
