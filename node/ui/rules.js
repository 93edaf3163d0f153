// The rules page (/rules): recording and alerting rule groups with their health, like
// Prometheus', from /api/v1/rules.

import { api, el, fmtDuration, labelChips, markNav, notDone, notServed, pageBody } from './common.js';

function ruleRow(r) {
  const health = r.health || 'unknown';
  return el('tr', { 'data-rule': r.name },
    el('td', { class: 'mono' }, r.type === 'alerting' ? `alert: ${r.name}` : `record: ${r.name}`,
      el('div', {}, 'expr: ', el('code', {}, r.query)),
      r.duration ? el('div', {}, `for: ${fmtDuration(r.duration * 1000)}`) : null,
      el('div', {}, labelChips(r.labels))),
    el('td', { class: `state ${health === 'ok' ? 'up' : health === 'err' ? 'err' : 'unknown'}` }, health.toUpperCase()),
    el('td', { class: 'error' }, r.lastError || ''),
    el('td', { class: 'mono' }, r.lastEvaluation || ''),
    el('td', { class: 'num' }, r.evaluationTime !== undefined ? `${(r.evaluationTime * 1000).toFixed(1)}ms` : ''));
}

async function load(box) {
  const r = await api('/api/v1/rules');
  if (r.notServed) {
    box.replaceChildren(notServed('This process evaluates no rules (it runs no rule role), so it has no rules to show.'));
    return;
  }
  if (!r.ok) { box.replaceChildren(el('p', { class: 'error' }, r.error)); return; }
  const groups = r.data.groups || [];
  if (!groups.length) { box.replaceChildren(el('p', { class: 'muted' }, 'No rule groups are loaded.')); return; }
  box.replaceChildren(...groups.map((g) => el('div', { class: 'panel' },
    el('h2', {}, g.name, el('span', { class: 'muted' }, ` · ${g.file || ''} · every ${fmtDuration((g.interval || 0) * 1000)}`)),
    el('table', {}, el('tr', {}, ['Rule', 'State', 'Error', 'Last evaluation', 'Evaluation time'].map((h) => el('th', {}, h))),
      (g.rules || []).map(ruleRow)))));
}

markNav();
const box = el('div', { id: 'rules-box' }, el('p', { class: 'muted' }, 'Loading…'));
pageBody().append(box, notDone('no filtering by rule state or health; groups are shown as this process evaluates them, not cluster-wide.'));
load(box);
