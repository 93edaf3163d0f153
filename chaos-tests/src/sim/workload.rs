//! The client workload: registry and job commands drawn from the seed, including job results
//! under stale tokens (which the cluster must refuse) beside fresh ones.

use std::collections::BTreeMap;

use raft::state::LabelSet;
use raft::{Command, FencingToken, NodeId, Response, StoreInfo};

use crate::rng::Rng;

/// What the workload knows of the cluster from its acknowledged writes.
#[derive(Debug, Default)]
pub struct Workload {
    stores: Vec<String>,
    jobs: Vec<String>,
    /// Tokens issued per job, oldest first, with their assignee.
    tokens: BTreeMap<String, Vec<(FencingToken, NodeId)>>,
    next: u64,
}

impl Workload {
    /// The next command; `now_ms` is the virtual time, `members` the nodes to name.
    pub fn next(&mut self, rng: &mut Rng, now_ms: i64, members: &[NodeId]) -> Command {
        self.next += 1;
        let n = self.next;
        let member = rng.pick(members).copied().unwrap_or(1);
        let lease = now_ms + 1000 + rng.below(9000) as i64;
        match rng.below(100) {
            0..=14 => {
                let address = format!("store-{n}:10901");
                self.stores.push(address.clone());
                Command::RegisterStore {
                    store: StoreInfo {
                        address,
                        node_id: Some(member),
                        label_sets: vec![LabelSet::from([("replica".into(), format!("r{n}"))])],
                        min_time_ms: now_ms - 3_600_000,
                        max_time_ms: now_ms,
                    },
                    now_ms,
                }
            }
            15..=29 => match rng.pick(&self.stores).cloned() {
                Some(address) => Command::StoreHeartbeat {
                    address,
                    min_time_ms: now_ms - 3_600_000,
                    max_time_ms: now_ms,
                    now_ms,
                },
                None => Command::ExpireStores {
                    now_ms,
                    max_age_ms: 10_000,
                },
            },
            30..=33 => match rng.pick(&self.stores).cloned() {
                Some(address) => Command::DeregisterStore { address },
                None => Command::ExpireLeases { now_ms },
            },
            34..=38 => Command::ExpireStores {
                now_ms,
                max_age_ms: 10_000,
            },
            39..=50 => {
                let job_id = format!("job-{n}");
                self.jobs.push(job_id.clone());
                Command::CreateJob {
                    job_id,
                    kind: "compact".into(),
                    spec: format!("group {n}"),
                    now_ms,
                }
            }
            51..=64 => Command::AssignJob {
                job_id: rng.pick(&self.jobs).cloned().unwrap_or_default(),
                node_id: member,
                lease_expiry_ms: lease,
                now_ms,
            },
            65..=72 => match self.token(rng, false) {
                Some((token, node_id)) => Command::RenewLease {
                    token,
                    node_id,
                    lease_expiry_ms: lease,
                    now_ms,
                },
                None => Command::ExpireLeases { now_ms },
            },
            73..=90 => {
                let stale = rng.below(3) == 0;
                match self.token(rng, stale) {
                    Some((token, node_id)) => Command::CompleteJob {
                        token,
                        node_id,
                        result: format!("blocks of {n}"),
                        now_ms,
                    },
                    None => Command::ExpireLeases { now_ms },
                }
            }
            91..=96 => Command::ExpireLeases { now_ms },
            _ => Command::DeleteJob {
                job_id: rng.pick(&self.jobs).cloned().unwrap_or_default(),
            },
        }
    }

    /// A token to present: the newest issued for a job, or (`stale`) an older one, a forged
    /// newer one, or the right token from the wrong node.
    fn token(&self, rng: &mut Rng, stale: bool) -> Option<(FencingToken, NodeId)> {
        let jobs: Vec<&String> = self.tokens.keys().collect();
        let job = *rng.pick(&jobs)?;
        let issued = self.tokens.get(job)?;
        let (newest, node) = issued.last()?.clone();
        if !stale {
            return Some((newest, node));
        }
        Some(match rng.below(3) {
            0 if issued.len() > 1 => issued[rng.below(issued.len() - 1)].clone(),
            0 | 1 => (
                FencingToken {
                    attempt: newest.attempt + 1,
                    ..newest
                },
                node,
            ),
            _ => (newest, node + 100),
        })
    }

    /// Learns from an acknowledged write.
    pub fn acked(&mut self, cmd: &Command, resp: &Response) {
        if let (
            Command::AssignJob {
                job_id, node_id, ..
            },
            Response::Assigned { token },
        ) = (cmd, resp)
        {
            self.tokens
                .entry(job_id.clone())
                .or_default()
                .push((token.clone(), *node_id));
        }
    }
}
