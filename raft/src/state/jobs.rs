//! The job table: work the leader assigns under leases, fenced by tokens.
//!
//! A token is `(term, job id, attempt)`: the term of the entry that assigned the job, and a
//! counter bumped on every assignment, so that a job re-assigned in the same term still gets a
//! new token. Only the current token renews or completes a job, and only while its lease is
//! unexpired at the command's time: a deposed assignee's result is refused.

use serde::{Deserialize, Serialize};

use super::{ClusterState, Rejection, Response};
use crate::types::NodeId;

/// Proof of a job assignment, presented with renewals and results.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FencingToken {
    /// Term of the Raft entry that made the assignment.
    pub term: u64,
    /// The job.
    pub job_id: String,
    /// How many times the job had been assigned, this assignment included.
    pub attempt: u64,
}

impl std::fmt::Display for FencingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "(term {}, job {}, attempt {})",
            self.term, self.job_id, self.attempt
        )
    }
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for an assignee.
    Pending,
    /// Running on a node under a lease.
    Assigned {
        /// The assignee.
        node_id: NodeId,
        /// The current token.
        token: FencingToken,
        /// When the lease ends unless renewed (ms).
        lease_expiry_ms: i64,
    },
    /// Finished, with the result its assignee reported.
    Done {
        /// The assignee that finished it.
        node_id: NodeId,
        /// The token it finished under.
        token: FencingToken,
        /// Its result.
        result: String,
        /// When (ms).
        completed_at_ms: i64,
    },
}

/// A node whose lease on a job ran out, and when. Kept in the job (so replicated): a new leader
/// still knows which node let the job lapse and does not hand it straight back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lapse {
    /// The assignee whose lease ran out.
    pub node_id: NodeId,
    /// When the lease ended (ms).
    pub at_ms: i64,
}

/// Lapses kept per job (the newest).
pub const MAX_LAPSES: usize = 8;

/// A job in the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Unique id.
    pub id: String,
    /// Kind ("compact", "downsample", "rule-group", ...).
    pub kind: String,
    /// Opaque description for the worker.
    pub spec: String,
    /// Creation time (ms).
    pub created_at_ms: i64,
    /// Assignments so far.
    pub attempts: u64,
    /// Where it stands.
    pub state: JobState,
    /// The assignee's latest progress report (opaque; e.g. a rule group's alert `for` state),
    /// kept across re-assignments so that the next assignee resumes from it.
    #[serde(default)]
    pub progress: String,
    /// Leases that ran out, oldest first (at most [`MAX_LAPSES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lapses: Vec<Lapse>,
}

impl Job {
    /// Records that the current assignment's lease ran out (no-op unless assigned).
    fn record_lapse(&mut self) {
        if let JobState::Assigned {
            node_id,
            lease_expiry_ms,
            ..
        } = &self.state
        {
            self.lapses.push(Lapse {
                node_id: *node_id,
                at_ms: *lease_expiry_ms,
            });
            let extra = self.lapses.len().saturating_sub(MAX_LAPSES);
            self.lapses.drain(..extra);
        }
    }
}

impl ClusterState {
    pub(super) fn create_job(
        &mut self,
        job_id: &str,
        kind: &str,
        spec: &str,
        now_ms: i64,
    ) -> Result<Response, Rejection> {
        if self.jobs.contains_key(job_id) {
            return Err(Rejection::DuplicateJob {
                job_id: job_id.to_string(),
            });
        }
        self.jobs.insert(
            job_id.to_string(),
            Job {
                id: job_id.to_string(),
                kind: kind.to_string(),
                spec: spec.to_string(),
                created_at_ms: now_ms,
                attempts: 0,
                state: JobState::Pending,
                progress: String::new(),
                lapses: Vec::new(),
            },
        );
        Ok(Response::Ok)
    }

    pub(super) fn assign_job(
        &mut self,
        term: u64,
        job_id: &str,
        node_id: NodeId,
        lease_expiry_ms: i64,
        now_ms: i64,
    ) -> Result<Response, Rejection> {
        let job = self.job_mut(job_id)?;
        let assignable = match &job.state {
            JobState::Pending => true,
            JobState::Assigned {
                lease_expiry_ms: end,
                ..
            } => *end <= now_ms,
            JobState::Done { .. } => false,
        };
        if !assignable {
            return Err(Rejection::JobNotAssignable {
                job_id: job_id.to_string(),
                state: describe(&job.state),
            });
        }
        if lease_expiry_ms <= now_ms {
            return Err(Rejection::Invalid {
                field: "lease_expiry_ms".to_string(),
                reason: format!("lease ends at {lease_expiry_ms}, not after {now_ms}"),
            });
        }
        job.record_lapse();
        job.attempts += 1;
        let token = FencingToken {
            term,
            job_id: job_id.to_string(),
            attempt: job.attempts,
        };
        job.state = JobState::Assigned {
            node_id,
            token: token.clone(),
            lease_expiry_ms,
        };
        Ok(Response::Assigned { token })
    }

    pub(super) fn renew_lease(
        &mut self,
        token: &FencingToken,
        node_id: NodeId,
        lease_expiry_ms: i64,
        now_ms: i64,
    ) -> Result<Response, Rejection> {
        let job = self.job_mut(&token.job_id)?;
        check_token(job, token, node_id, now_ms)?;
        if let JobState::Assigned {
            lease_expiry_ms: end,
            ..
        } = &mut job.state
        {
            // A renewal never shortens a lease: a delayed renewal must not cut a newer one.
            *end = (*end).max(lease_expiry_ms);
        }
        Ok(Response::Ok)
    }

    pub(super) fn complete_job(
        &mut self,
        token: &FencingToken,
        node_id: NodeId,
        result: &str,
        now_ms: i64,
    ) -> Result<Response, Rejection> {
        let job = self.job_mut(&token.job_id)?;
        check_token(job, token, node_id, now_ms)?;
        job.state = JobState::Done {
            node_id,
            token: token.clone(),
            result: result.to_string(),
            completed_at_ms: now_ms,
        };
        Ok(Response::Ok)
    }

    pub(super) fn expire_leases(&mut self, now_ms: i64) -> Response {
        let mut ids = Vec::new();
        for job in self.jobs.values_mut() {
            if let JobState::Assigned {
                lease_expiry_ms, ..
            } = &job.state
            {
                if *lease_expiry_ms <= now_ms {
                    job.record_lapse();
                    job.state = JobState::Pending;
                    ids.push(job.id.clone());
                }
            }
        }
        Response::Expired { ids }
    }

    pub(super) fn delete_job(&mut self, job_id: &str) -> Result<Response, Rejection> {
        match self.jobs.remove(job_id) {
            Some(_) => Ok(Response::Ok),
            None => Err(Rejection::UnknownJob {
                job_id: job_id.to_string(),
            }),
        }
    }

    pub(super) fn job_mut(&mut self, job_id: &str) -> Result<&mut Job, Rejection> {
        self.jobs
            .get_mut(job_id)
            .ok_or_else(|| Rejection::UnknownJob {
                job_id: job_id.to_string(),
            })
    }
}

/// The token must be the job's current one, held by `node_id`, with its lease unexpired.
pub(super) fn check_token(
    job: &Job,
    token: &FencingToken,
    node_id: NodeId,
    now_ms: i64,
) -> Result<(), Rejection> {
    let JobState::Assigned {
        node_id: assignee,
        token: current,
        lease_expiry_ms,
    } = &job.state
    else {
        return Err(Rejection::StaleFencingToken {
            job_id: job.id.clone(),
            presented: token.clone(),
            current: "none".to_string(),
        });
    };
    if current != token {
        return Err(Rejection::StaleFencingToken {
            job_id: job.id.clone(),
            presented: token.clone(),
            current: current.to_string(),
        });
    }
    if *assignee != node_id {
        return Err(Rejection::NotAssignee {
            job_id: job.id.clone(),
            node_id,
        });
    }
    if *lease_expiry_ms <= now_ms {
        return Err(Rejection::LeaseExpired {
            job_id: job.id.clone(),
            lease_expiry_ms: *lease_expiry_ms,
            now_ms,
        });
    }
    Ok(())
}

fn describe(state: &JobState) -> String {
    match state {
        JobState::Pending => "pending".to_string(),
        JobState::Assigned {
            node_id,
            token,
            lease_expiry_ms,
        } => {
            format!("assigned to node {node_id} under {token} until {lease_expiry_ms} ms")
        }
        JobState::Done { node_id, .. } => format!("done by node {node_id}"),
    }
}
