//! The cluster's status as JSON (`GET /api/v1/status/cluster`, `strata cluster status -o json`):
//! one shape whether it comes from the local node or from a peer's `Status` RPC.

use proto::raft_v1 as pb;
use raft::{now_ms, ClusterState, JobState, RaftNode};
use serde::{Deserialize, Serialize};

/// One node's view of the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The answering node.
    pub node_id: u64,
    /// "Leader", "Follower", "Candidate", "Learner" or "Shutdown".
    pub server_state: String,
    /// The leader, `null` while there is none.
    pub leader_id: Option<u64>,
    /// The current term.
    pub term: u64,
    /// Last index in the answering node's log.
    pub last_log_index: Option<u64>,
    /// Last committed index known to it.
    pub commit_index: Option<u64>,
    /// Last index applied to its state machine.
    pub applied_index: Option<u64>,
    /// Whether the Raft membership is in the joint phase of a change (old and new voter sets
    /// both needed for a quorum). Known only from the local node (false over the admin RPC).
    #[serde(default)]
    pub membership_joint: bool,
    /// Raft members and registered members.
    pub members: Vec<MemberStatus>,
    /// The store registry (absent when read over the admin RPC, which does not carry it).
    #[serde(default)]
    pub stores: Vec<StoreStatus>,
    /// The job table (absent over the admin RPC, like the stores).
    #[serde(default)]
    pub jobs: Vec<JobStatus>,
}

/// A job of the job table, as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobStatus {
    /// Job id.
    pub id: String,
    /// Kind ("compact", "downsample", "compact-sweep", "rule-group", ...).
    pub kind: String,
    /// What it is about (a rule group's `<file>;<group>`, a compaction's description).
    pub spec: String,
    /// "pending", "assigned" or "done".
    pub state: String,
    /// The assignee (or who finished it).
    pub owner: Option<u64>,
    /// Assignments so far.
    pub attempts: u64,
    /// The fencing token's term and attempt, when assigned or done.
    pub token: Option<String>,
    /// When the lease ends (ms since the epoch), when assigned.
    pub lease_expiry_ms: Option<i64>,
    /// The worker's result, when done.
    pub result: Option<String>,
}

impl JobStatus {
    fn of(job: &raft::Job) -> Self {
        let token = |t: &raft::FencingToken| format!("term {} attempt {}", t.term, t.attempt);
        let (state, owner, tok, lease, result) = match &job.state {
            JobState::Pending => ("pending", None, None, None, None),
            JobState::Assigned {
                node_id,
                token: t,
                lease_expiry_ms,
            } => (
                "assigned",
                Some(*node_id),
                Some(token(t)),
                Some(*lease_expiry_ms),
                None,
            ),
            JobState::Done {
                node_id,
                token: t,
                result,
                ..
            } => (
                "done",
                Some(*node_id),
                Some(token(t)),
                None,
                Some(result.clone()),
            ),
        };
        JobStatus {
            id: job.id.clone(),
            kind: job.kind.clone(),
            spec: job.spec.clone(),
            state: state.to_string(),
            owner,
            attempts: job.attempts,
            token: tok,
            lease_expiry_ms: lease,
            result,
        }
    }
}

/// A member as the answering node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: u64,
    /// gRPC (Raft, admin, StoreAPI) address.
    pub grpc_address: String,
    /// HTTP address.
    pub http_address: String,
    /// Roles it runs.
    pub roles: Vec<String>,
    /// Its software version.
    pub version: String,
    /// "voter", "learner" or "none" (in the member table, not in the Raft membership).
    pub raft_role: String,
    /// Highest index known replicated to it (known only on the leader).
    pub matched_index: Option<u64>,
    /// How far its log is behind the leader's (known only on the leader).
    pub lag: Option<u64>,
    /// When it joined (ms since the epoch).
    pub joined_at_ms: i64,
}

/// A registered store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreStatus {
    /// StoreAPI address.
    pub address: String,
    /// The member that runs it.
    pub node_id: Option<u64>,
    /// External label sets.
    pub label_sets: Vec<std::collections::BTreeMap<String, String>>,
    /// Earliest time served (ms).
    pub min_time_ms: i64,
    /// Latest time served (ms).
    pub max_time_ms: i64,
    /// Last heartbeat (ms since the epoch).
    pub last_heartbeat_ms: i64,
    /// Whether its heartbeat is recent enough (judged with the answering node's clock).
    pub live: bool,
}

impl ClusterStatus {
    /// From a `Status` reply (no stores).
    pub fn from_reply(r: &pb::StatusReply) -> Self {
        let members = r
            .members
            .iter()
            .map(|ms| {
                let m = ms.member.clone().unwrap_or_default();
                MemberStatus {
                    id: m.node_id,
                    grpc_address: m.grpc_address,
                    http_address: m.http_address,
                    roles: m.roles,
                    version: m.software_version,
                    raft_role: ms.raft_role.clone(),
                    matched_index: ms.matched_index,
                    lag: ms.lag,
                    joined_at_ms: m.joined_at_ms,
                }
            })
            .collect();
        ClusterStatus {
            node_id: r.node_id,
            server_state: r.server_state.clone(),
            leader_id: r.leader_id,
            term: r.term,
            last_log_index: r.last_log_index,
            commit_index: r.committed_index,
            applied_index: r.applied_index,
            membership_joint: false,
            members,
            stores: Vec::new(),
            jobs: Vec::new(),
        }
    }

    /// The local node's view, with its copy of the store registry.
    pub async fn local(node: &RaftNode, store_max_age_ms: i64) -> Self {
        let state: ClusterState = node.local_state();
        let mut s = Self::from_reply(&node.metrics().await.to_pb(&state));
        s.membership_joint = node
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_joint_config()
            .len()
            > 1;
        let now = now_ms();
        s.stores = state
            .stores
            .values()
            .map(|e| StoreStatus {
                address: e.info.address.clone(),
                node_id: e.info.node_id,
                label_sets: e.info.label_sets.clone(),
                min_time_ms: e.info.min_time_ms,
                max_time_ms: e.info.max_time_ms,
                last_heartbeat_ms: e.last_heartbeat_ms,
                live: e.is_live(now, store_max_age_ms),
            })
            .collect();
        s.jobs = state.jobs.values().map(JobStatus::of).collect();
        s
    }

    /// A fixed-width table for `strata cluster status`.
    pub fn table(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let mut out = format!(
            "node {} ({}), leader {}, term {}, commit index {}, applied index {}\n\n",
            self.node_id,
            self.server_state,
            opt(self.leader_id),
            self.term,
            opt(self.commit_index),
            opt(self.applied_index)
        );
        let mut rows = vec![[
            "ID".to_string(),
            "GRPC".to_string(),
            "HTTP".to_string(),
            "ROLES".to_string(),
            "RAFT".to_string(),
            "LEADER".to_string(),
            "MATCHED".to_string(),
            "LAG".to_string(),
            "VERSION".to_string(),
        ]];
        for m in &self.members {
            rows.push([
                m.id.to_string(),
                m.grpc_address.clone(),
                m.http_address.clone(),
                m.roles.join(","),
                m.raft_role.clone(),
                if Some(m.id) == self.leader_id {
                    "*"
                } else {
                    ""
                }
                .to_string(),
                opt(m.matched_index),
                opt(m.lag),
                m.version.clone(),
            ]);
        }
        let widths: Vec<usize> = (0..9)
            .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
            .collect();
        for r in &rows {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        if !self.stores.is_empty() {
            out.push_str("\nSTORES\n");
            for s in &self.stores {
                out.push_str(&format!(
                    "{}  node {}  {}  last heartbeat {} ms\n",
                    s.address,
                    s.node_id.map_or("-".to_string(), |n| n.to_string()),
                    if s.live { "live" } else { "stale" },
                    s.last_heartbeat_ms
                ));
            }
        }
        if !self.jobs.is_empty() {
            out.push_str("\nJOBS\n");
            let now = now_ms();
            for j in &self.jobs {
                let owner = j.owner.map_or("-".to_string(), |n| format!("node {n}"));
                let lease = j.lease_expiry_ms.map_or(String::new(), |e| {
                    format!("  lease {} ms left", e.saturating_sub(now))
                });
                out.push_str(&format!(
                    "{}  {}  {}  {}  attempts {}{}\n",
                    j.id, j.kind, j.state, owner, j.attempts, lease
                ));
            }
        }
        if self.leader_id != Some(self.node_id) && self.members.iter().all(|m| m.lag.is_none()) {
            out.push_str("\n(lag is known only on the leader; ask the leader's address for it)\n");
        }
        out
    }
}
