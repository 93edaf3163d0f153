// The query page (/graph): expression box with completion, Graph (range) and Table (instant)
// tabs, time pickers, Thanos' dedup / partial response / resolution options, and the query in
// the URL with Prometheus' g0.* parameters so a link reproduces it.

import { api, el, fmtDuration, fmtSeries, fmtTime, markNav, notDone, pageBody, parseDuration, parseTime } from './common.js';
import { drawChart, fmtValue } from './chart.js';
import { Completer } from './complete.js';

const RESOLUTIONS = [['auto', 'Auto downsampling'], ['0s', 'Only raw data'], ['5m', 'Max 5m downsampling'], ['1h', 'Max 1h downsampling']];

/** The page's state from the URL (Prometheus' and Thanos' g0.* parameters). */
export function stateFromURL(search) {
  const q = new URLSearchParams(search);
  const g = (k, d) => (q.has(`g0.${k}`) ? q.get(`g0.${k}`) : d);
  return {
    expr: g('expr', ''),
    tab: g('tab', '0') === '1' ? 1 : 0, // Prometheus: 0 is Graph, 1 is Table
    range: g('range_input', '1h'),
    end: g('end_input', ''),
    step: g('step_input', ''),
    moment: g('moment_input', ''),
    dedup: g('deduplicate', '1') !== '0',
    partial: g('partial_response', '0') === '1',
    resolution: g('max_source_resolution', 'auto'),
  };
}

/** The URL query string for `s`. */
export function stateToURL(s) {
  const q = new URLSearchParams();
  q.set('g0.expr', s.expr);
  q.set('g0.tab', String(s.tab));
  q.set('g0.range_input', s.range);
  if (s.end) q.set('g0.end_input', s.end);
  if (s.step) q.set('g0.step_input', s.step);
  if (s.moment) q.set('g0.moment_input', s.moment);
  q.set('g0.deduplicate', s.dedup ? '1' : '0');
  q.set('g0.partial_response', s.partial ? '1' : '0');
  q.set('g0.max_source_resolution', s.resolution);
  return `?${q}`;
}

const ui = {};
let running = null;

function build() {
  const s = stateFromURL(location.search);
  ui.expr = el('textarea', { id: 'expr', rows: 1, placeholder: 'Expression (press Shift+Enter for newlines)', spellcheck: 'false', autocomplete: 'off' });
  ui.expr.value = s.expr;
  ui.completions = el('ul', { id: 'completions', hidden: true });
  ui.execute = el('button', { id: 'execute', class: 'primary', onclick: () => run() }, 'Execute');
  ui.cancel = el('button', { id: 'cancel', disabled: true, onclick: () => running && running.abort() }, 'Cancel');
  ui.loading = el('span', { id: 'loading', hidden: true }, 'Loading…');
  ui.error = el('div', { id: 'error', class: 'error', role: 'alert' });
  ui.warnings = el('div', { id: 'warnings', class: 'warning' });
  ui.dedup = el('input', { type: 'checkbox', id: 'dedup', checked: s.dedup });
  ui.partial = el('input', { type: 'checkbox', id: 'partial', checked: s.partial });
  ui.resolution = el('select', { id: 'resolution' }, RESOLUTIONS.map(([v, t]) => el('option', { value: v, selected: v === s.resolution }, t)));
  ui.range = el('input', { id: 'range', size: 6, value: s.range, title: 'Range, e.g. 1h, 30m, 2d' });
  ui.end = el('input', { id: 'end', size: 19, value: s.end || s.moment, placeholder: 'now (YYYY-MM-DD HH:MM:SS UTC)' });
  ui.step = el('input', { id: 'step', size: 6, value: s.step, placeholder: 'auto', title: 'Resolution step in seconds or as a duration' });
  ui.tabGraph = el('button', { id: 'tab-graph', onclick: () => setTab(0) }, 'Graph');
  ui.tabTable = el('button', { id: 'tab-table', onclick: () => setTab(1) }, 'Table');
  ui.stats = el('span', { id: 'stats', class: 'muted' });
  ui.result = el('div', { id: 'result', class: 'chart' });
  ui.tab = s.tab;
  pageBody().append(
    el('div', { class: 'panel' },
      el('div', { class: 'exprrow' }, ui.expr, ui.execute, ui.cancel, ui.completions),
      el('div', { class: 'controls' },
        el('label', {}, ui.dedup, ' deduplication'),
        el('label', {}, ui.partial, ' partial response'),
        el('label', {}, 'resolution ', ui.resolution),
        ui.loading),
      ui.error, ui.warnings,
      el('div', { class: 'tabs' }, ui.tabGraph, ui.tabTable),
      el('div', { class: 'controls' },
        el('label', {}, 'range ', ui.range), el('label', {}, 'end ', ui.end),
        el('label', {}, 'step ', ui.step), ui.stats),
      ui.result),
    notDone('one query panel per page; downsampled data is read only through StoreAPI ' +
      'endpoints (a querier reading the bucket itself answers from raw data at any ' +
      'max_source_resolution); no stacked graphs, no exemplars, no query history.'));
  new Completer(ui.expr, ui.completions);
  ui.expr.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); run(); }
  });
  paintTabs();
}

function setTab(t) {
  ui.tab = t;
  paintTabs();
  if (ui.expr.value.trim()) run();
}

function paintTabs() {
  ui.tabGraph.classList.toggle('selected', ui.tab === 0);
  ui.tabTable.classList.toggle('selected', ui.tab === 1);
  ui.range.disabled = ui.step.disabled = ui.tab === 1;
}

/** The request the form describes, or an error naming the bad field. */
function request() {
  const expr = ui.expr.value.trim();
  if (!expr) return { error: 'Enter an expression.' };
  const endText = ui.end.value.trim();
  const end = endText ? parseTime(endText) : Date.now();
  if (Number.isNaN(end)) return { error: `Invalid end time ${JSON.stringify(endText)}: use YYYY-MM-DD HH:MM:SS (UTC).` };
  const common = {
    query: expr,
    dedup: String(ui.dedup.checked),
    partial_response: String(ui.partial.checked),
    max_source_resolution: ui.resolution.value,
  };
  if (ui.tab === 1) return { path: '/api/v1/query', params: { ...common, time: end / 1000 }, end };
  const range = parseDuration(ui.range.value);
  if (!(range > 0)) return { error: `Invalid range ${JSON.stringify(ui.range.value)}: use a duration such as 1h.` };
  let step = ui.step.value.trim() ? parseDuration(ui.step.value) : Math.max(Math.floor(range / 250000), 1) * 1000;
  if (!(step > 0)) return { error: `Invalid step ${JSON.stringify(ui.step.value)}: use seconds or a duration such as 15s.` };
  return { path: '/api/v1/query_range', params: { ...common, start: (end - range) / 1000, end: end / 1000, step: step / 1000 }, start: end - range, end, step };
}

function saveURL() {
  const s = {
    expr: ui.expr.value, tab: ui.tab, range: ui.range.value, end: ui.end.value.trim(), step: ui.step.value.trim(),
    dedup: ui.dedup.checked, partial: ui.partial.checked, resolution: ui.resolution.value,
  };
  history.replaceState(null, '', `/graph${stateToURL(s)}`);
}

function setBusy(busy) {
  ui.loading.hidden = !busy;
  ui.cancel.disabled = !busy;
  ui.execute.disabled = busy;
  ui.result.setAttribute('aria-busy', String(busy));
}

async function run() {
  if (running) running.abort();
  ui.error.textContent = '';
  ui.warnings.replaceChildren();
  const req = request();
  if (req.error) { ui.error.textContent = req.error; return; }
  saveURL();
  const ctrl = new AbortController();
  running = ctrl;
  setBusy(true);
  const began = performance.now();
  let r;
  try {
    r = await api(req.path, req.params, ctrl.signal);
  } catch (e) {
    // A newer query aborted this one: that query owns the page now.
    if (running !== ctrl) return;
    running = null;
    setBusy(false);
    ui.error.textContent = e.name === 'AbortError' ? 'Query cancelled.' : `Error executing query: ${e.message}`;
    return;
  }
  if (running !== ctrl) return;
  running = null;
  setBusy(false);
  ui.warnings.replaceChildren(...(r.warnings || []).map((w) => el('div', { class: 'warning' }, `Warning: ${w}`)));
  if (!r.ok) {
    ui.error.textContent = `Error executing query: ${r.error}`;
    ui.result.replaceChildren();
    return;
  }
  const took = Math.round(performance.now() - began);
  show(r.data, req);
  ui.stats.textContent = `Load time: ${took}ms · Result series: ${seriesCount(r.data)}`;
}

function seriesCount(d) {
  return Array.isArray(d.result) ? d.result.length : 1;
}

function show(data, req) {
  if (ui.tab === 0) {
    if (data.resultType !== 'matrix') {
      ui.result.replaceChildren(el('p', { class: 'muted' }, `The expression is a ${data.resultType}: only range vectors are graphed; see the Table tab.`));
      return;
    }
    if (!data.result.length) { ui.result.replaceChildren(el('p', { class: 'muted', id: 'empty' }, 'Empty query result')); return; }
    drawChart(ui.result, data.result, req.start, req.end, req.step);
    return;
  }
  ui.result.replaceChildren(table(data));
}

function table(data) {
  const rows = [];
  if (data.resultType === 'vector') {
    for (const s of data.result) rows.push([fmtSeries(s.metric), fmtValue(Number(s.value[1]))]);
  } else if (data.resultType === 'matrix') {
    for (const s of data.result) rows.push([fmtSeries(s.metric), s.values.map(([t, v]) => `${v} @${t}`).join('\n')]);
  } else {
    rows.push([data.resultType, String(data.result[1])]);
  }
  if (!rows.length) return el('p', { class: 'muted', id: 'empty' }, 'Empty query result');
  return el('table', { id: 'result-table' },
    el('tr', {}, el('th', {}, 'Series'), el('th', {}, 'Value')),
    rows.map(([a, b]) => el('tr', {}, el('td', { class: 'mono' }, a), el('td', { class: 'num mono', style: 'white-space:pre' }, b))));
}

markNav();
build();
if (ui.expr.value.trim()) run();

// Exposed for the browser tests and for debugging in the console.
window.strataGraph = { stateFromURL, stateToURL, fmtDuration, fmtTime };
