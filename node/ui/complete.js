// Completion in the expression box: metric names, label names and values (from the API) and
// PromQL's functions and aggregations, chosen by where the cursor is.

import { api, el } from './common.js';

/** PromQL's functions (Prometheus 2.42) and aggregation operators. */
export const FUNCTIONS = ['abs', 'absent', 'absent_over_time', 'acos', 'acosh', 'asin', 'asinh',
  'atan', 'atanh', 'avg_over_time', 'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min', 'cos',
  'cosh', 'count_over_time', 'day_of_month', 'day_of_week', 'day_of_year', 'days_in_month', 'deg',
  'delta', 'deriv', 'exp', 'floor', 'histogram_count', 'histogram_fraction', 'histogram_quantile',
  'histogram_sum', 'holt_winters', 'hour', 'idelta', 'increase', 'irate', 'label_join',
  'label_replace', 'last_over_time', 'ln', 'log10', 'log2', 'max_over_time', 'min_over_time',
  'minute', 'month', 'pi', 'predict_linear', 'present_over_time', 'quantile_over_time', 'rad',
  'rate', 'resets', 'round', 'scalar', 'sgn', 'sin', 'sinh', 'sort', 'sort_desc', 'sqrt',
  'stddev_over_time', 'stdvar_over_time', 'sum_over_time', 'tan', 'tanh', 'time', 'timestamp',
  'vector', 'year'];
const AGGREGATIONS = ['avg', 'bottomk', 'count', 'count_values', 'group', 'max', 'min',
  'quantile', 'stddev', 'stdvar', 'sum', 'topk'];
const MAX_SHOWN = 50;

/** What to complete at `pos` in `text`: {kind, prefix, start, label?, metric?}. */
export function context(text, pos) {
  const before = text.slice(0, pos);
  const word = /[A-Za-z_:][A-Za-z0-9_:]*$/.exec(before);
  const prefix = word ? word[0] : '';
  const start = pos - prefix.length;
  // Inside a selector's braces?
  const open = before.lastIndexOf('{'), close = before.lastIndexOf('}');
  if (open > close) {
    const metric = (/([A-Za-z_:][A-Za-z0-9_:]*)\s*$/.exec(before.slice(0, open)) || [])[1];
    const inside = before.slice(open + 1);
    const value = /([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)$/.exec(inside);
    if (value) {
      return { kind: 'value', label: value[1], metric, prefix: value[3], start: pos - value[3].length };
    }
    if (/(^|,)\s*[A-Za-z0-9_]*$/.test(inside)) return { kind: 'label', metric, prefix, start };
    return null;
  }
  // After "by (" / "without (": label names.
  if (/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$/.test(before)) {
    return { kind: 'label', prefix, start };
  }
  if (!prefix || /"[^"]*$/.test(before.replace(/"[^"]*"/g, ''))) return null;
  return { kind: 'name', prefix, start };
}

/** Completion for `input`, its choices shown in `list`. */
export class Completer {
  constructor(input, list) {
    this.input = input;
    this.list = list;
    this.items = [];
    this.sel = 0;
    this.metrics = [];
    this.labels = [];
    this.values = new Map();
    // Names typed before the list arrived get their completion when it does.
    api('/api/v1/label/__name__/values').then((r) => {
      if (!r.ok) return;
      this.metrics = r.data;
      if (document.activeElement === input) this.update();
    });
    api('/api/v1/labels').then((r) => { if (r.ok) this.labels = r.data.filter((l) => l !== '__name__'); });
    input.addEventListener('input', () => this.update());
    input.addEventListener('keydown', (e) => this.key(e));
    // A click on a choice blurs the box first; close a little later, and not if the box has
    // the focus again by then (focus leaving and coming back must not lose the list).
    input.addEventListener('blur', () => setTimeout(() => {
      if (document.activeElement !== input) this.close();
    }, 150));
  }

  async candidates(ctx) {
    const p = ctx.prefix;
    const match = (xs, kind) => xs.filter((x) => x.startsWith(p) && x !== p).map((x) => ({ text: x, kind }));
    if (ctx.kind === 'label') return match(this.labels, 'label');
    if (ctx.kind === 'value') {
      const key = `${ctx.label}\u0000${ctx.metric || ''}`;
      if (!this.values.has(key)) {
        const params = ctx.metric ? { 'match[]': ctx.metric } : {};
        const r = await api(`/api/v1/label/${encodeURIComponent(ctx.label)}/values`, params);
        this.values.set(key, r.ok ? r.data : []);
      }
      return match(this.values.get(key), 'value');
    }
    return [...match(this.metrics, 'metric'), ...match(FUNCTIONS, 'function'), ...match(AGGREGATIONS, 'aggregation')];
  }

  async update() {
    const ctx = context(this.input.value, this.input.selectionStart);
    if (!ctx) return this.close();
    const items = (await this.candidates(ctx)).slice(0, MAX_SHOWN);
    this.ctx = ctx;
    this.items = items;
    this.sel = 0;
    this.render();
  }

  render() {
    if (!this.items.length) return this.close();
    this.list.hidden = false;
    this.list.replaceChildren(...this.items.map((it, i) => el('li', {
      class: i === this.sel ? 'sel' : undefined,
      'data-text': it.text,
      onmousedown: (e) => { e.preventDefault(); this.accept(i); },
    }, el('span', {}, it.text), el('span', { class: 'kind' }, it.kind))));
  }

  close() {
    this.items = [];
    this.list.hidden = true;
    this.list.replaceChildren();
  }

  accept(i) {
    const it = this.items[i];
    if (!it) return;
    const v = this.input.value, pos = this.input.selectionStart;
    const add = it.kind === 'function' || it.kind === 'aggregation' ? `${it.text}(` : it.text;
    this.input.value = v.slice(0, this.ctx.start) + add + v.slice(pos);
    const at = this.ctx.start + add.length;
    this.input.setSelectionRange(at, at);
    this.close();
    this.input.focus();
  }

  key(e) {
    if (!this.items.length) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      this.sel = (this.sel + (e.key === 'ArrowDown' ? 1 : this.items.length - 1)) % this.items.length;
      this.render();
    } else if (e.key === 'Tab' || (e.key === 'Enter' && !e.shiftKey)) {
      this.accept(this.sel);
    } else if (e.key === 'Escape') {
      this.close();
    } else {
      return;
    }
    e.preventDefault();
    e.stopImmediatePropagation();
  }
}
