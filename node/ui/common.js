// Helpers every page shares: the API client, element building, time and label formatting.

/** Marks the current page's link in the navigation bar. */
export function markNav() {
  for (const a of document.querySelectorAll('nav a')) {
    if (!a.classList.contains('brand') && a.getAttribute('href') === location.pathname) {
      a.classList.add('active');
    }
  }
}

/** Builds an element: el('td', {class: 'num'}, 'text', childNode). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

/**
 * Calls a Prometheus-style JSON API. Resolves to {ok, data, warnings, error, errorType,
 * notServed}; notServed is true when this process does not serve the path (404).
 */
export async function api(path, params = {}, signal = undefined, bigIntKeys = []) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.append(k, v);
  }
  const url = q.toString() ? `${path}?${q}` : path;
  let resp;
  try {
    resp = await fetch(url, { signal, headers: { Accept: 'application/json' } });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    return { ok: false, error: `cannot reach ${path}: ${e.message}`, errorType: 'network' };
  }
  let body = null;
  try {
    body = parseJSON(await resp.text(), bigIntKeys);
  } catch (e) {
    if (resp.status === 404) return { ok: false, notServed: true, error: `${path} is not served here` };
    return { ok: false, error: `${path} answered ${resp.status} without JSON`, errorType: 'bad_response' };
  }
  if (resp.status === 404 && body && body.errorType === 'not_found') {
    return { ok: false, notServed: true, error: `${path} is not served by this process` };
  }
  if (!resp.ok || !body || body.status !== 'success') {
    return {
      ok: false,
      error: (body && body.error) || `${path} answered ${resp.status}`,
      errorType: (body && body.errorType) || String(resp.status),
      warnings: (body && body.warnings) || [],
    };
  }
  return { ok: true, data: body.data, warnings: body.warnings || [] };
}

/**
 * JSON.parse, with the integers under `keys` kept as strings: node ids are 64-bit and lose
 * their low digits as JavaScript numbers.
 */
export function parseJSON(text, keys = []) {
  if (keys.length) {
    const re = new RegExp(`("(?:${keys.join('|')})"\\s*:\\s*)(-?\\d+)(?=\\s*[,}\\]])`, 'g');
    text = text.replace(re, '$1"$2"');
  }
  return JSON.parse(text);
}

/** A time in ms since the epoch as "2006-01-02 15:04:05" UTC (Prometheus' URL format). */
export function fmtTime(ms) {
  if (!Number.isFinite(ms)) return '';
  // Outside what Date can hold: the "no bound" extremes (math.MinInt64 / MaxInt64).
  if (ms <= -8.64e15) return '-∞';
  if (ms >= 8.64e15) return '+∞';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
}

/** Parses "2006-01-02 15:04:05" (UTC) or an RFC 3339 time; NaN when it is neither. */
export function parseTime(s) {
  const t = s.trim();
  if (!t) return NaN;
  if (/^\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(t)) return Date.parse(t.replace(' ', 'T') + 'Z');
  return Date.parse(t);
}

const UNITS = { y: 31536000000, w: 604800000, d: 86400000, h: 3600000, m: 60000, s: 1000, ms: 1 };

/** Parses a Prometheus duration ("1h30m", "15s", "2d") to ms; NaN when malformed. */
export function parseDuration(s) {
  const t = String(s).trim();
  if (!t) return NaN;
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
  const re = /(\d+)(ms|y|w|d|h|m|s)/g;
  let total = 0, used = 0, m;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * UNITS[m[2]];
    used += m[0].length;
  }
  return used === t.length ? total : NaN;
}

/** A duration in ms as Prometheus writes it ("1h30m"). */
export function fmtDuration(ms) {
  if (!Number.isFinite(ms) || ms <= 0) return '0s';
  let out = '';
  for (const [u, n] of Object.entries(UNITS)) {
    if (u === 'ms' && out) break;
    const k = Math.floor(ms / n);
    if (k > 0) { out += k + u; ms -= k * n; }
  }
  return out;
}

/** A label set as `{a="1", b="2"}` (with the metric name in front when present). */
export function fmtSeries(metric) {
  const name = metric.__name__ || '';
  const rest = Object.entries(metric).filter(([k]) => k !== '__name__')
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return rest.length ? `${name}{${rest.join(', ')}}` : (name || '{}');
}

/** Label chips for a label set. */
export function labelChips(labels) {
  return Object.entries(labels || {}).map(([k, v]) => el('span', { class: 'label' }, `${k}="${v}"`));
}

/** The part of the page under its title. */
export function pageBody() {
  return document.getElementById('main');
}

/** A plain statement of what this part of Strata does not do yet. */
export function notDone(text) {
  return el('p', { class: 'notdone' }, 'Not done yet: ', text);
}

/** The paragraph a page shows when this process does not serve its API. */
export function notServed(what) {
  return el('p', { class: 'notserved', id: 'not-served' }, what);
}
