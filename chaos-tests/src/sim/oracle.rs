//! The job-table oracle: replays the committed entries in log order and judges every job
//! command's outcome against leases and fencing tokens, independently of `raft::state::jobs`.
//!
//! The rule it guards: a renewal or result is accepted only under the job's current token, by
//! its assignee, before the lease ends; any other is refused (a deposed worker never wins).

use std::collections::BTreeMap;

use raft::{Command, FencingToken, NodeId, Response};

#[derive(Debug, Clone)]
struct OJob {
    attempts: u64,
    /// The current token, its assignee and lease end, while assigned.
    current: Option<(FencingToken, NodeId, i64)>,
    done: bool,
}

/// The oracle's view of the job table.
#[derive(Debug, Default)]
pub struct JobOracle {
    jobs: BTreeMap<String, OJob>,
    /// Results accepted so far (job, token).
    pub accepted_results: u64,
    /// Stale or foreign results refused so far.
    pub refused_results: u64,
}

impl JobOracle {
    /// Judges one committed command of `term` and its outcome; returns the violations.
    pub fn apply(&mut self, index: u64, term: u64, cmd: &Command, resp: &Response) -> Vec<String> {
        let mut v = Vec::new();
        let ok = !matches!(resp, Response::Rejected { .. });
        let mut bad = |msg: String| v.push(format!("entry {index}: {msg}"));
        match cmd {
            Command::CreateJob { job_id, .. } => {
                let exists = self.jobs.contains_key(job_id);
                if ok == exists {
                    bad(format!(
                        "create of job {job_id} (exists: {exists}) answered {resp:?}"
                    ));
                }
                if ok {
                    self.jobs.insert(
                        job_id.clone(),
                        OJob {
                            attempts: 0,
                            current: None,
                            done: false,
                        },
                    );
                }
            }
            Command::AssignJob {
                job_id,
                node_id,
                lease_expiry_ms,
                now_ms,
            } => {
                let Some(job) = self.jobs.get_mut(job_id) else {
                    if ok {
                        bad(format!("unknown job {job_id} assigned"));
                    }
                    return v;
                };
                let free = !job.done
                    && job
                        .current
                        .as_ref()
                        .is_none_or(|(_, _, end)| *end <= *now_ms)
                    && lease_expiry_ms > now_ms;
                match resp {
                    Response::Assigned { token } if free => {
                        let want = (term, job.attempts + 1);
                        if (token.term, token.attempt) != want || &token.job_id != job_id {
                            bad(format!(
                                "job {job_id} assigned token {token}, expected term {} attempt {}",
                                want.0, want.1
                            ));
                        }
                        job.attempts = token.attempt;
                        job.current = Some((token.clone(), *node_id, *lease_expiry_ms));
                    }
                    Response::Rejected { .. } if !free => {}
                    other => bad(format!(
                        "assignment of job {job_id} (assignable: {free}) answered {other:?}"
                    )),
                }
            }
            Command::RenewLease {
                token,
                node_id,
                lease_expiry_ms,
                now_ms,
            } => {
                let valid = self.valid(token, *node_id, *now_ms);
                if ok != valid {
                    bad(format!(
                        "renewal under {token} by node {node_id} at {now_ms} (valid: {valid}) answered {resp:?}"
                    ));
                }
                if let (true, Some(job)) = (ok, self.jobs.get_mut(&token.job_id)) {
                    if let Some((_, _, end)) = job.current.as_mut() {
                        *end = (*end).max(*lease_expiry_ms);
                    }
                }
            }
            Command::CompleteJob {
                token,
                node_id,
                now_ms,
                ..
            } => {
                let valid = self.valid(token, *node_id, *now_ms);
                if ok && !valid {
                    bad(format!(
                        "result under stale or foreign token {token} from node {node_id} at {now_ms} was accepted"
                    ));
                }
                if !ok && valid {
                    bad(format!(
                        "result under current token {token} from node {node_id} at {now_ms} was refused: {resp:?}"
                    ));
                }
                if ok {
                    self.accepted_results += 1;
                } else {
                    self.refused_results += 1;
                }
                if let (true, Some(job)) = (ok, self.jobs.get_mut(&token.job_id)) {
                    job.done = true;
                    job.current = None;
                }
            }
            Command::ExpireLeases { now_ms } => {
                let due: Vec<String> = self
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.current.as_ref().is_some_and(|(_, _, end)| end <= now_ms))
                    .map(|(id, _)| id.clone())
                    .collect();
                match resp {
                    Response::Expired { ids } if *ids == due => {}
                    other => bad(format!(
                        "lease expiry at {now_ms} answered {other:?}, expected {due:?}"
                    )),
                }
                for id in due {
                    if let Some(j) = self.jobs.get_mut(&id) {
                        j.current = None;
                    }
                }
            }
            Command::DeleteJob { job_id } => {
                let existed = self.jobs.remove(job_id).is_some();
                if ok != existed {
                    bad(format!(
                        "delete of job {job_id} (existed: {existed}) answered {resp:?}"
                    ));
                }
            }
            _ => {}
        }
        v
    }

    fn valid(&self, token: &FencingToken, node: NodeId, now_ms: i64) -> bool {
        self.jobs.get(&token.job_id).is_some_and(|j| {
            !j.done
                && j.current
                    .as_ref()
                    .is_some_and(|(t, n, end)| t == token && *n == node && now_ms < *end)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(term: u64, attempt: u64) -> FencingToken {
        FencingToken {
            term,
            job_id: "j".into(),
            attempt,
        }
    }

    #[test]
    fn accepted_stale_result_is_a_violation() {
        let mut o = JobOracle::default();
        let create = Command::CreateJob {
            job_id: "j".into(),
            kind: "compact".into(),
            spec: String::new(),
            now_ms: 0,
        };
        assert!(o.apply(1, 1, &create, &Response::Ok).is_empty());
        let assign = |now_ms| Command::AssignJob {
            job_id: "j".into(),
            node_id: 7,
            lease_expiry_ms: now_ms + 10,
            now_ms,
        };
        let first = Response::Assigned { token: token(1, 1) };
        assert!(o.apply(2, 1, &assign(0), &first).is_empty());
        let second = Response::Assigned { token: token(2, 2) };
        assert!(o.apply(3, 2, &assign(20), &second).is_empty());
        let stale = Command::CompleteJob {
            token: token(1, 1),
            node_id: 7,
            result: "r".into(),
            now_ms: 21,
        };
        let v = o.apply(4, 2, &stale, &Response::Ok);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("stale or foreign token"), "{v:?}");
    }
}
