// The alerts page (/alerts): active alerts grouped by alert name and state, like Prometheus',
// from /api/v1/alerts.

import { api, el, labelChips, markNav, notDone, notServed, pageBody } from './common.js';

async function load(box) {
  const r = await api('/api/v1/alerts');
  if (r.notServed) {
    box.replaceChildren(notServed('This process evaluates no alerting rules (it runs no rule role), so it has no alerts to show.'));
    return;
  }
  if (!r.ok) { box.replaceChildren(el('p', { class: 'error' }, r.error)); return; }
  const alerts = r.data.alerts || [];
  if (!alerts.length) { box.replaceChildren(el('p', { class: 'muted', id: 'no-alerts' }, 'No alerts are pending or firing.')); return; }
  const byName = new Map();
  for (const a of alerts) {
    const name = (a.labels && a.labels.alertname) || '(no alertname)';
    if (!byName.has(name)) byName.set(name, []);
    byName.get(name).push(a);
  }
  box.replaceChildren(...[...byName].sort().map(([name, list]) => {
    const firing = list.filter((a) => a.state === 'firing').length;
    return el('div', { class: 'panel' },
      el('h2', {}, name, el('span', { class: firing ? 'firing' : 'pending' }, ` (${firing} firing, ${list.length - firing} pending)`)),
      el('table', {}, el('tr', {}, ['Labels', 'State', 'Active since', 'Value', 'Annotations'].map((h) => el('th', {}, h))),
        list.map((a) => el('tr', {},
          el('td', {}, labelChips(a.labels)), el('td', { class: `state ${a.state}` }, a.state.toUpperCase()),
          el('td', { class: 'mono' }, a.activeAt || ''), el('td', { class: 'num' }, a.value || ''),
          el('td', {}, Object.entries(a.annotations || {}).map(([k, v]) => el('div', {}, el('b', {}, `${k}: `), v)))))));
  }));
}

markNav();
const box = el('div', { id: 'alerts-box' }, el('p', { class: 'muted' }, 'Loading…'));
pageBody().append(box, notDone('inactive alerting rules are listed on the Rules page only; no silencing from here (that is Alertmanager\'s).'));
load(box);
