// The cluster page (/cluster): the Raft group as this node sees it — members, roles, leader,
// term, replication lag — the store registry and the job table (compaction jobs and rule group
// assignments, with owner, state and lease), from /api/v1/status/cluster.

import { api, el, fmtDuration, fmtTime, labelChips, markNav, notDone, notServed, pageBody } from './common.js';

const dash = (v) => (v === null || v === undefined ? '–' : v);

function summary(s) {
  const leader = s.members.find((m) => m.id === s.leader_id);
  const rows = [
    ['This node', s.node_id], ['State', s.server_state],
    ['Leader', s.leader_id === null ? 'none (election in progress?)' : `${s.leader_id}${leader ? ` (${leader.grpc_address})` : ''}`],
    ['Term', s.term], ['Last log index', dash(s.last_log_index)], ['Committed', dash(s.commit_index)],
    ['Applied', dash(s.applied_index)], ['Membership change in progress', s.membership_joint ? 'yes' : 'no'],
  ];
  return el('table', { id: 'cluster-summary' }, rows.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', { 'data-key': k }, String(v)))));
}

function members(s) {
  return el('table', { id: 'members' },
    el('tr', {}, ['Node', 'gRPC', 'HTTP', 'Roles', 'Raft', 'Version', 'Matched', 'Lag', 'Joined'].map((h) => el('th', {}, h))),
    s.members.map((m) => el('tr', { 'data-node': m.id, class: m.id === s.leader_id ? 'leader' : undefined },
      el('td', {}, `${m.id}${m.id === s.leader_id ? ' ★ leader' : ''}`),
      el('td', { class: 'mono' }, m.grpc_address),
      el('td', { class: 'mono' }, m.http_address ? el('a', { href: `http://${m.http_address}/cluster` }, m.http_address) : ''),
      el('td', {}, m.roles.join(', ')), el('td', {}, m.raft_role), el('td', {}, m.version),
      el('td', { class: 'num' }, dash(m.matched_index)), el('td', { class: 'num' }, dash(m.lag)),
      el('td', { class: 'mono' }, m.joined_at_ms > 0 ? fmtTime(m.joined_at_ms) : '–'))));
}

function stores(s) {
  if (!s.stores || !s.stores.length) return el('p', { class: 'muted' }, 'No store is registered.');
  return el('table', { id: 'registry' },
    el('tr', {}, ['Address', 'Node', 'Labels', 'Min time', 'Max time', 'Last heartbeat', 'Live'].map((h) => el('th', {}, h))),
    s.stores.map((st) => el('tr', {},
      el('td', { class: 'mono' }, st.address), el('td', {}, dash(st.node_id)),
      el('td', {}, st.label_sets.map((l) => el('div', {}, labelChips(l)))),
      el('td', { class: 'mono' }, fmtTime(st.min_time_ms)), el('td', { class: 'mono' }, fmtTime(st.max_time_ms)),
      el('td', { class: 'mono' }, fmtTime(st.last_heartbeat_ms)),
      el('td', { class: st.live ? 'up' : 'down' }, st.live ? 'live' : 'stale'))));
}

/** Rule groups first, then compaction and the rest; within a kind, by what the job is about. */
function jobOrder(a, b) {
  const rank = (j) => (j.kind === 'rule-group' ? 0 : 1);
  return rank(a) - rank(b) || a.kind.localeCompare(b.kind) || a.spec.localeCompare(b.spec);
}

function lease(j) {
  if (j.lease_expiry_ms === null || j.lease_expiry_ms === undefined) return '–';
  const left = j.lease_expiry_ms - Date.now();
  return left > 0 ? `${fmtDuration(left)} left` : `expired ${fmtDuration(-left)} ago`;
}

function jobs(s) {
  const list = (s.jobs || []).slice().sort(jobOrder);
  if (!list.length) {
    return el('p', { class: 'muted', id: 'no-jobs' }, 'No jobs: the leader has planned no compaction and assigned no rule group yet (or the node runs neither role).');
  }
  return el('table', { id: 'jobs' },
    el('tr', {}, ['Kind', 'What', 'State', 'Owner', 'Lease', 'Attempts', 'Token', 'Result'].map((h) => el('th', {}, h))),
    list.map((j) => el('tr', { 'data-job': j.id, 'data-kind': j.kind, 'data-state': j.state },
      el('td', {}, j.kind), el('td', { class: 'mono' }, j.spec),
      el('td', { class: `state ${j.state === 'assigned' ? 'up' : j.state === 'pending' ? 'pending' : 'muted'}` }, j.state),
      el('td', {}, j.owner === null || j.owner === undefined ? '–' : `node ${j.owner}`),
      el('td', { class: 'mono' }, lease(j)), el('td', { class: 'num' }, j.attempts),
      el('td', { class: 'mono' }, dash(j.token)), el('td', { class: 'mono' }, dash(j.result)))));
}

async function load(box) {
  const r = await api('/api/v1/status/cluster', {}, undefined, ['node_id', 'leader_id', 'id', 'owner']);
  if (r.notServed) {
    box.replaceChildren(notServed('This process is not part of a cluster: only `strata node` runs the Raft group. Standalone commands (query, store, sidecar, compact, rule) have no cluster to show.'));
    return;
  }
  if (!r.ok) { box.replaceChildren(el('p', { class: 'error' }, r.error)); return; }
  const s = r.data;
  box.replaceChildren(summary(s), el('h2', {}, `Members (${s.members.length})`), members(s),
    el('h2', {}, 'Store registry'), stores(s),
    el('h2', {}, `Jobs (${(s.jobs || []).length})`), jobs(s));
}

markNav();
const box = el('div', { id: 'cluster-box' }, el('p', { class: 'muted' }, 'Loading…'));
pageBody().append(
  el('p', {}, el('button', { id: 'refresh', onclick: () => load(box) }, 'Refresh')), box,
  notDone('lag and matched index are known only when this node is the leader; the job table is shown as this node last applied it, without its history.'));
load(box);
