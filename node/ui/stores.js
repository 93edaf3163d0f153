// The stores page (/stores): every StoreAPI endpoint the querier reads, its health, labels,
// time range and last error, from /api/v1/stores.

import { api, el, fmtTime, labelChips, markNav, notDone, notServed, pageBody } from './common.js';


function endpointRow(typ, s) {
  const healthy = s.lastError === null || s.lastError === undefined || s.lastError === '';
  const known = healthy || s.minTime !== 0 || s.maxTime !== 0;
  return el('tr', { class: healthy ? 'healthy' : 'unhealthy', 'data-endpoint': s.name },
    el('td', { class: 'mono' }, s.name),
    el('td', { class: `state ${healthy ? 'up' : 'down'}` }, healthy ? 'UP' : 'DOWN'),
    el('td', {}, typ),
    el('td', {}, (s.labelSets || []).map((ls) => el('div', {}, labelChips(ls)))),
    // An endpoint that never answered Info has no time range (zeros), not one at 1970.
    el('td', { class: 'mono' }, known ? fmtTime(s.minTime) : '–'),
    el('td', { class: 'mono' }, known ? fmtTime(s.maxTime) : '–'),
    el('td', { class: 'mono' }, s.lastCheck ? s.lastCheck.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : ''),
    el('td', { class: 'error' }, healthy ? '' : s.lastError));
}

async function load(box) {
  const r = await api('/api/v1/stores');
  if (r.notServed) {
    box.replaceChildren(notServed('This process does not query StoreAPI endpoints (it runs no query role), so it has no stores to show.'));
    return;
  }
  if (!r.ok) { box.replaceChildren(el('p', { class: 'error' }, r.error)); return; }
  const rows = [];
  for (const [typ, list] of Object.entries(r.data || {})) for (const s of list) rows.push(endpointRow(typ, s));
  if (!rows.length) {
    box.replaceChildren(el('p', { class: 'muted', id: 'no-stores' }, 'No StoreAPI endpoints: this querier answers from the bucket\'s blocks directly (embedded mode).'));
    return;
  }
  box.replaceChildren(el('table', { id: 'stores' },
    el('tr', {}, ['Endpoint', 'Health', 'Type', 'Labels', 'Min time', 'Max time', 'Last check', 'Last error'].map((h) => el('th', {}, h))),
    rows));
}

markNav();
const box = el('div', { id: 'stores-box' }, el('p', { class: 'muted' }, 'Loading…'));
pageBody().append(
  el('p', {}, el('button', { id: 'refresh', onclick: () => load(box) }, 'Refresh')),
  box,
  notDone('stores the cluster registry announces are listed on the Cluster page, not here; there is no per-store latency or filtering.'));
load(box);
