// The blocks page (/blocks): the bucket's blocks on a timeline per group (external labels)
// and resolution, a block's meta.json on click (Thanos' bucket web), from /api/v1/blocks.

import { api, el, fmtDuration, fmtTime, labelChips, markNav, notDone, notServed, pageBody } from './common.js';

const RES = { 0: 'raw', 300000: '5m', 3600000: '1h' };

function groupsOf(blocks) {
  const groups = new Map();
  for (const b of blocks) {
    const labels = (b.thanos && b.thanos.labels) || {};
    const res = (b.thanos && b.thanos.downsample && b.thanos.downsample.resolution) || 0;
    const key = JSON.stringify([Object.entries(labels).sort(), res]);
    if (!groups.has(key)) groups.set(key, { labels, res, blocks: [] });
    groups.get(key).blocks.push(b);
  }
  return [...groups.values()].sort((a, b) => JSON.stringify(a.labels).localeCompare(JSON.stringify(b.labels)) || a.res - b.res);
}

/** Lanes so that overlapping blocks of a group sit on separate rows (overlaps stay visible). */
function lanes(blocks) {
  const ends = [];
  return blocks.slice().sort((a, b) => a.minTime - b.minTime).map((b) => {
    let lane = ends.findIndex((e) => e <= b.minTime);
    if (lane < 0) { lane = ends.length; ends.push(0); }
    ends[lane] = b.maxTime;
    return [b, lane];
  });
}

function timeline(group, lo, hi, select) {
  const placed = lanes(group.blocks);
  const rows = Math.max(...placed.map(([, l]) => l)) + 1;
  const line = el('div', { class: 'timeline', style: `height:${rows * 16 + 4}px` });
  for (const [b, lane] of placed) {
    const left = ((b.minTime - lo) / (hi - lo)) * 100;
    const width = Math.max(((b.maxTime - b.minTime) / (hi - lo)) * 100, 0.3);
    const level = Math.min((b.compaction && b.compaction.level) || 1, 4);
    line.append(el('div', {
      class: `block l${level}`, 'data-ulid': b.ulid, style: `left:${left}%;width:${width}%;top:${lane * 16 + 2}px`,
      title: `${b.ulid}\n${fmtTime(b.minTime)} – ${fmtTime(b.maxTime)} (${fmtDuration(b.maxTime - b.minTime)})\nlevel ${level}, ${(b.stats && b.stats.numSeries) || 0} series`,
      onclick: (e) => select(b, e.target),
    }));
  }
  return el('div', { class: 'group' },
    el('h2', {}, labelChips(group.labels), Object.keys(group.labels).length ? '' : el('span', { class: 'muted' }, 'no external labels'),
      ' · resolution ', RES[group.res] || `${group.res}ms`, ` · ${group.blocks.length} blocks`),
    line);
}

function render(box, data) {
  const blocks = data.blocks || [];
  const meta = el('pre', { id: 'meta', hidden: true });
  const parts = [el('p', {}, el('span', { id: 'block-count' }, String(blocks.length)), ' blocks · refreshed ', data.refreshedAt || '')];
  if (blocks.length) {
    const lo = Math.min(...blocks.map((b) => b.minTime)), hi = Math.max(...blocks.map((b) => b.maxTime));
    parts.push(el('p', { class: 'muted' }, `${fmtTime(lo)} – ${fmtTime(hi)} UTC`));
    let selected = null;
    const select = (b, node) => {
      if (selected) selected.classList.remove('selected');
      selected = node;
      node.classList.add('selected');
      meta.hidden = false;
      meta.textContent = JSON.stringify(b, null, 2);
    };
    for (const g of groupsOf(blocks)) parts.push(timeline(g, lo, hi, select));
  } else {
    parts.push(el('p', { class: 'muted' }, 'The bucket holds no blocks.'));
  }
  if ((data.partial || []).length) parts.push(el('p', { class: 'warning' }, `Without meta.json (uploads in progress or abandoned): ${data.partial.join(', ')}`));
  for (const c of data.corrupt || []) parts.push(el('p', { class: 'error' }, `${c.ulid}: ${c.error}`));
  parts.push(meta);
  box.replaceChildren(...parts);
}

async function load(box) {
  const r = await api('/api/v1/blocks');
  if (r.notServed) {
    box.replaceChildren(notServed('This process has no bucket (a querier over --endpoint, a sidecar or a ruler), so there are no blocks to show. `strata tools bucket web` serves this page over any bucket.'));
    return;
  }
  if (!r.ok) { box.replaceChildren(el('p', { class: 'error' }, r.error)); return; }
  render(box, r.data);
}

markNav();
const box = el('div', { id: 'blocks-box' }, el('p', { class: 'muted' }, 'Loading…'));
pageBody().append(
  el('p', {}, el('button', { id: 'refresh', onclick: () => load(box) }, 'Refresh'), ' ',
    el('span', { class: 'muted' }, 'Colour deepens with the compaction level; click a block for its meta.json.')),
  box,
  notDone('deletion and no-compact marks are not shown, there is no label filter, and the planned compactions are not drawn; the listing is cached for 15 s.'));
load(box);
