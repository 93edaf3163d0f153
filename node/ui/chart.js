// The query page's line chart: SVG, time and value axes, one colour per series, a legend, and
// a tooltip with the nearest series' labels and value.

import { el, fmtSeries } from './common.js';

const NS = 'http://www.w3.org/2000/svg';
const PALETTE = ['#2458c6', '#e0802b', '#1f9e5a', '#c8324b', '#7a4fc9', '#8c6d31',
  '#d94fa3', '#5b6b7f', '#a6b91a', '#17a2b8'];
const M = { left: 64, right: 16, top: 10, bottom: 28 };
const HEIGHT = 320;

/** The colour of series number i. */
export function colour(i) {
  return i < PALETTE.length ? PALETTE[i] : `hsl(${(i * 137.5) % 360}, 60%, 45%)`;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/** About `n` round numbers spanning [lo, hi]. */
export function valueTicks(lo, hi, n = 6) {
  if (lo === hi) { lo -= 1; hi += 1; }
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) || 10 * mag;
  const ticks = [];
  // From the last round number at or below lo to the first at or above hi, so the axis
  // ends on labelled values.
  const first = Math.floor(lo / step + 1e-9) * step;
  for (let v = first; v < hi + step * (1 - 1e-9); v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const TIME_STEPS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400, 172800, 604800]
  .map((s) => s * 1000);

/** Round times (UTC) covering [lo, hi] ms, about `n` of them. */
export function timeTicks(lo, hi, n = 6) {
  const step = TIME_STEPS.find((s) => (hi - lo) / s <= n) || TIME_STEPS[TIME_STEPS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) ticks.push(t);
  return ticks;
}

function fmtTick(ms, span) {
  const iso = new Date(ms).toISOString();
  return span > 86400000 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, span < 600000 ? 19 : 16);
}

/** A value as the axis and tooltip show it. */
export function fmtValue(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return String(Number(v.toPrecision(6)));
}

/** Parsed series: [{metric, points: [[ms, value], ...]}], non-finite values dropped. */
function parse(result) {
  return result.map((s) => ({
    metric: s.metric || {},
    points: (s.values || []).map(([t, v]) => [t * 1000, Number(v)]).filter(([, v]) => Number.isFinite(v)),
  }));
}

/**
 * Draws a range query's `result` (a matrix) into `container` for [start, end] ms with `step` ms.
 * The SVG carries data-series (how many series were drawn).
 */
export function drawChart(container, result, start, end, step) {
  container.replaceChildren();
  const series = parse(result);
  const width = Math.max(container.clientWidth || 900, 400);
  const w = width - M.left - M.right, h = HEIGHT - M.top - M.bottom;
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const [, v] of s.points) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  const vt = valueTicks(lo, hi);
  const vlo = Math.min(lo, vt[0]), vhi = Math.max(hi, vt[vt.length - 1]);
  const x = (t) => M.left + ((t - start) / Math.max(end - start, 1)) * w;
  const y = (v) => M.top + h - ((v - vlo) / (vhi - vlo || 1)) * h;

  const root = svg('svg', { id: 'chart-svg', viewBox: `0 0 ${width} ${HEIGHT}`, height: HEIGHT, 'data-series': series.length });
  const grid = svg('g', { class: 'grid' });
  const axis = svg('g', { class: 'axis' });
  for (const v of vt) {
    grid.append(svg('line', { x1: M.left, x2: M.left + w, y1: y(v), y2: y(v) }));
    const t = svg('text', { x: M.left - 6, y: y(v) + 4, 'text-anchor': 'end' });
    t.textContent = fmtValue(v);
    axis.append(t);
  }
  for (const ms of timeTicks(start, end)) {
    grid.append(svg('line', { x1: x(ms), x2: x(ms), y1: M.top, y2: M.top + h }));
    const t = svg('text', { x: x(ms), y: HEIGHT - 8, 'text-anchor': 'middle' });
    t.textContent = fmtTick(ms, end - start);
    axis.append(t);
  }
  axis.append(svg('line', { x1: M.left, x2: M.left + w, y1: M.top + h, y2: M.top + h, stroke: '#98a2b3' }));
  axis.append(svg('line', { x1: M.left, x2: M.left, y1: M.top, y2: M.top + h, stroke: '#98a2b3' }));
  root.append(grid, axis);

  series.forEach((s, i) => {
    let d = '', prev = null;
    for (const [t, v] of s.points) {
      // A gap longer than one and a half steps is a gap in the data, not a line.
      d += `${prev === null || t - prev > step * 1.5 ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      prev = t;
    }
    root.append(svg('path', { class: 'series', d: d || 'M0,0', stroke: colour(i), 'data-index': i }));
  });

  const cursor = svg('line', { y1: M.top, y2: M.top + h, stroke: '#98a2b3', visibility: 'hidden' });
  const dot = svg('circle', { r: 4, visibility: 'hidden' });
  const overlay = svg('rect', { x: M.left, y: M.top, width: w, height: h, fill: 'transparent' });
  root.append(cursor, dot, overlay);
  const tip = el('div', { class: 'tooltip', hidden: true });
  container.append(root, tip, legend(series));

  overlay.addEventListener('mousemove', (ev) => {
    const box = root.getBoundingClientRect();
    const scale = width / box.width;
    const mx = (ev.clientX - box.left) * scale, my = (ev.clientY - box.top) * scale;
    const near = nearest(series, start + ((mx - M.left) / w) * (end - start), (v) => Math.abs(y(v) - my));
    if (!near) return;
    const { i, t, v } = near;
    for (const [e, a] of [[cursor, { x1: x(t), x2: x(t) }], [dot, { cx: x(t), cy: y(v), fill: colour(i) }]]) {
      for (const [k, val] of Object.entries(a)) e.setAttribute(k, val);
      e.setAttribute('visibility', 'visible');
    }
    tip.replaceChildren(el('div', {}, new Date(t).toISOString()), el('div', {}, fmtSeries(series[i].metric)),
      el('div', {}, el('b', {}, fmtValue(v))));
    tip.hidden = false;
    tip.style.left = `${Math.min(x(t) / scale + 12, box.width - 300)}px`;
    tip.style.top = `${y(v) / scale + 12}px`;
  });
  overlay.addEventListener('mouseleave', () => {
    tip.hidden = true;
    cursor.setAttribute('visibility', 'hidden');
    dot.setAttribute('visibility', 'hidden');
  });
}

/** The sample nearest time `t` in each series, then the series whose sample is closest by `dist`. */
function nearest(series, t, dist) {
  let best = null;
  series.forEach((s, i) => {
    const p = s.points;
    if (!p.length) return;
    let a = 0, b = p.length - 1;
    while (a < b) { const m = (a + b) >> 1; if (p[m][0] < t) a = m + 1; else b = m; }
    if (a > 0 && Math.abs(p[a - 1][0] - t) < Math.abs(p[a][0] - t)) a -= 1;
    const d = dist(p[a][1]);
    if (!best || d < best.d) best = { i, t: p[a][0], v: p[a][1], d };
  });
  return best;
}

function legend(series) {
  return el('ul', { class: 'legend', id: 'legend' }, series.map((s, i) =>
    el('li', {}, el('span', { class: 'swatch', style: `background:${colour(i)}` }), fmtSeries(s.metric))));
}
