//! The versioned commands that change the replicated state, and their outcomes.
//!
//! A command is applied identically on every node: it carries every input it needs, including
//! the time (`now_ms`, read from the proposing leader's clock), so apply never looks at the
//! local clock. Commands are JSON, internally tagged by `type`; a tag this build does not know
//! decodes as [`Command::Unknown`] so that a newer node's command is refused, not misread.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FencingToken, Member, StoreInfo};
use crate::types::{NodeId, STATE_VERSION};

/// A command wrapped with the state version that introduced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The replicated-state version the command needs ([`Command::since_version`]).
    pub version: u32,
    /// The command.
    pub command: Command,
}

impl Request {
    /// Wraps a command with the version it needs.
    pub fn new(command: Command) -> Self {
        Request {
            version: command.since_version(),
            command,
        }
    }

    /// Whether this build can apply the request (known command, version not newer than ours).
    pub fn is_supported(&self) -> bool {
        self.version <= STATE_VERSION && !matches!(self.command, Command::Unknown)
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{} {}", self.version, self.command.name())
    }
}

/// A change to the replicated cluster state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Adds a member, or replaces the record of a member with the same node id.
    AddMember {
        /// The member; `joined_at_ms` is set by the proposer.
        member: Member,
    },
    /// Removes a member and the stores it registered.
    RemoveMember {
        /// The member to remove.
        node_id: NodeId,
    },
    /// Registers (or re-registers) a StoreAPI endpoint.
    RegisterStore {
        /// What the store serves.
        store: StoreInfo,
        /// Registration time; counts as the first heartbeat.
        now_ms: i64,
    },
    /// A store says it is alive, with its current time range.
    StoreHeartbeat {
        /// The store's StoreAPI address.
        address: String,
        /// Its current minimum time.
        min_time_ms: i64,
        /// Its current maximum time.
        max_time_ms: i64,
        /// Heartbeat time.
        now_ms: i64,
    },
    /// Removes a store from the registry.
    DeregisterStore {
        /// The store's StoreAPI address.
        address: String,
    },
    /// Removes every store whose last heartbeat is older than `max_age_ms` at `now_ms`.
    ExpireStores {
        /// The leader's time.
        now_ms: i64,
        /// Heartbeat age past which a store is dead.
        max_age_ms: i64,
    },
    /// Adds a pending job.
    CreateJob {
        /// Unique job id (e.g. the compaction group and its input blocks).
        job_id: String,
        /// What kind of job ("compact", "downsample", "rule-group", ...).
        kind: String,
        /// Opaque job description for the worker.
        spec: String,
        /// Creation time.
        now_ms: i64,
    },
    /// Assigns a pending job (or one whose lease has expired) to a node.
    AssignJob {
        /// The job.
        job_id: String,
        /// The assignee.
        node_id: NodeId,
        /// When the lease ends unless renewed.
        lease_expiry_ms: i64,
        /// Assignment time.
        now_ms: i64,
    },
    /// Extends the lease of a running job; refused unless the token is current.
    RenewLease {
        /// The token the assignee holds.
        token: FencingToken,
        /// The assignee.
        node_id: NodeId,
        /// The new lease end.
        lease_expiry_ms: i64,
        /// Renewal time.
        now_ms: i64,
    },
    /// Records a job's result; refused unless the token is current and its lease unexpired.
    CompleteJob {
        /// The token the assignee holds.
        token: FencingToken,
        /// The assignee.
        node_id: NodeId,
        /// Opaque result description.
        result: String,
        /// Completion time.
        now_ms: i64,
    },
    /// Records a running job's progress; refused unless the token is current and its lease
    /// unexpired.
    ReportJobProgress {
        /// The token the assignee holds.
        token: FencingToken,
        /// The assignee.
        node_id: NodeId,
        /// Opaque progress description (replaces the previous one).
        progress: String,
        /// Report time.
        now_ms: i64,
    },
    /// Returns every assigned job whose lease ended at or before `now_ms` to pending.
    ExpireLeases {
        /// The leader's time.
        now_ms: i64,
    },
    /// Removes a job (done or not) from the table.
    DeleteJob {
        /// The job.
        job_id: String,
    },
    /// A command from a newer version of Strata; never applied by this build.
    #[serde(other)]
    Unknown,
}

impl Command {
    /// The replicated-state version that introduced this command.
    pub fn since_version(&self) -> u32 {
        match self {
            // Every command so far is from version 1; a newer one must say its own version so
            // that older nodes refuse it instead of misapplying it.
            Command::Unknown => u32::MAX,
            _ => 1,
        }
    }

    /// The command's tag, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Command::AddMember { .. } => "add_member",
            Command::RemoveMember { .. } => "remove_member",
            Command::RegisterStore { .. } => "register_store",
            Command::StoreHeartbeat { .. } => "store_heartbeat",
            Command::DeregisterStore { .. } => "deregister_store",
            Command::ExpireStores { .. } => "expire_stores",
            Command::CreateJob { .. } => "create_job",
            Command::AssignJob { .. } => "assign_job",
            Command::RenewLease { .. } => "renew_lease",
            Command::CompleteJob { .. } => "complete_job",
            Command::ReportJobProgress { .. } => "report_job_progress",
            Command::ExpireLeases { .. } => "expire_leases",
            Command::DeleteJob { .. } => "delete_job",
            Command::Unknown => "unknown",
        }
    }
}

/// The outcome of applying a command. A rejection is a deterministic outcome recorded on every
/// node alike, not an error of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// The command changed (or confirmed) the state; also the answer to blank and membership
    /// entries.
    #[default]
    Ok,
    /// A job was assigned under this token.
    Assigned {
        /// The token the assignee must present to renew or complete.
        token: FencingToken,
    },
    /// The entries an expiry command removed (store addresses or job ids).
    Expired {
        /// What expired.
        ids: Vec<String>,
    },
    /// The command was refused; the state is unchanged.
    Rejected {
        /// Why.
        reason: Rejection,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Rejection {
    /// No member has this id.
    #[error("unknown member {node_id}")]
    UnknownMember {
        /// The id.
        node_id: NodeId,
    },
    /// No store has this address.
    #[error("unknown store {address}")]
    UnknownStore {
        /// The address.
        address: String,
    },
    /// No job has this id.
    #[error("unknown job {job_id}")]
    UnknownJob {
        /// The id.
        job_id: String,
    },
    /// A job with this id exists already.
    #[error("job {job_id} exists already")]
    DuplicateJob {
        /// The id.
        job_id: String,
    },
    /// The job is assigned under an unexpired lease, or done.
    #[error("job {job_id} is not assignable: {state}")]
    JobNotAssignable {
        /// The id.
        job_id: String,
        /// Its current state, described.
        state: String,
    },
    /// The token is not the job's current one (a deposed assignee, or a finished job).
    #[error("stale fencing token {presented} for job {job_id} (current: {current})")]
    StaleFencingToken {
        /// The id.
        job_id: String,
        /// The token presented.
        presented: FencingToken,
        /// The current token, or "none".
        current: String,
    },
    /// The token is current but its lease ended before the command's time.
    #[error("lease of job {job_id} expired at {lease_expiry_ms} ms (command time {now_ms} ms)")]
    LeaseExpired {
        /// The id.
        job_id: String,
        /// When the lease ended.
        lease_expiry_ms: i64,
        /// The command's time.
        now_ms: i64,
    },
    /// The node presenting the token is not the assignee.
    #[error("node {node_id} is not the assignee of job {job_id}")]
    NotAssignee {
        /// The id.
        job_id: String,
        /// The node that presented the token.
        node_id: NodeId,
    },
    /// The command needs a newer replicated-state version than this node applies.
    #[error("command {command} needs state version {needed}, this node applies up to {supported}")]
    UnsupportedCommand {
        /// The command's tag.
        command: String,
        /// The version it needs.
        needed: u32,
        /// The newest version this node applies.
        supported: u32,
    },
    /// A field is out of range (e.g. a time range whose min is past its max).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
}

/// Label sets as the registry stores them: one map of label name to value per set.
pub type LabelSet = BTreeMap<String, String>;
