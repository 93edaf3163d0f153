//! Joining a cluster, and the rule that decides who bootstraps one.
//!
//! The bootstrap rule (also in `strata node --help`): a node bootstraps a new cluster only
//! 1. with `--cluster.bootstrap`, or
//! 2. as the *agreed seed*: its advertise address is among the resolved `--cluster.peers`
//!    addresses and is the lowest of them, and every other resolved peer answered `Status` as
//!    uninitialized (no log, no members). A peer that is unreachable, refuses our credentials or
//!    belongs to a cluster prevents it.
//!
//! Every other node waits and retries joining. Two seeds cannot arise from one peer list: the
//! lowest address is unique, and once the seed has bootstrapped it answers as initialized, so
//! the others join it. The rule assumes the nodes resolve the same set (a DNS name that lists
//! every node); with a partially propagated name, start one node with `--cluster.bootstrap`.
//! A node started with `--cluster.bootstrap` next to an existing cluster forms a separate
//! one-node cluster and stays alone (it never joins or disturbs the other, whose members do not
//! know it): the flag means "make a new cluster".

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use raft::{AdminClient, AdminError, ClusterSecret, Member, RaftNode};
use tokio::sync::watch;

use super::discovery::{Discovery, PeerAddr};

/// What a peer said about itself when asked for its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerState {
    /// Answered: no log, no members.
    Uninitialized,
    /// Answered: part of a cluster (leader, if it knows one).
    Initialized,
    /// Did not answer usably (unreachable, refused our credentials, another protocol).
    Unknown,
}

/// Whether this node (at `me`) is the agreed seed among `peers` given their answers.
pub fn is_agreed_seed(
    me: &str,
    peers: &BTreeSet<PeerAddr>,
    survey: &[(PeerAddr, PeerState)],
) -> bool {
    let Some(lowest) = peers.iter().next() else {
        return false;
    };
    if !lowest.same_as(me) {
        return false;
    }
    peers.iter().filter(|p| !p.same_as(me)).all(|p| {
        survey
            .iter()
            .any(|(a, s)| a == p && *s == PeerState::Uninitialized)
    })
}

/// Joins (or bootstraps) the cluster for one node.
pub struct Joiner {
    /// The local Raft node.
    pub node: RaftNode,
    /// This node's member record.
    pub me: Member,
    /// Where peers are.
    pub discovery: Arc<Discovery>,
    /// The cluster secret.
    pub secret: ClusterSecret,
    /// `--cluster.bootstrap`.
    pub bootstrap: bool,
}

const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);
const MIN_BACKOFF: Duration = Duration::from_millis(300);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Joiner {
    /// Runs until the node is a member (or `stop`). An initialized node only refreshes its
    /// member record if the replicated one is missing or stale (a restart with new flags, or
    /// after it was removed).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let initialized = self.node.is_initialized().await.unwrap_or(false);
        if !initialized && self.bootstrap {
            self.bootstrap_explicitly().await;
            return;
        }
        let mut backoff = MIN_BACKOFF;
        loop {
            let done = if initialized || self.node.is_initialized().await.unwrap_or(false) {
                self.refresh().await
            } else {
                self.round().await
            };
            if done {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn bootstrap_explicitly(&self) {
        for (peer, state) in self.survey(&self.discovery.resolve().await).await {
            if state == PeerState::Initialized {
                tracing::warn!(%peer, "--cluster.bootstrap: peer already belongs to a cluster; bootstrapping a separate one-node cluster as told (it will not join that one)");
            }
        }
        self.initialize("--cluster.bootstrap").await;
    }

    async fn initialize(&self, why: &str) {
        match self.node.initialize(self.me.clone()).await {
            Ok(()) => tracing::info!(reason = why, "bootstrapped a new cluster"),
            Err(e) => tracing::error!(error = %e, "bootstrap failed"),
        }
    }

    /// One attempt of an uninitialized node; true when it is a member afterwards.
    async fn round(&self) -> bool {
        let peers = self.discovery.resolve().await;
        let me = self.node.advertise_address().to_string();
        if peers.iter().all(|p| p.same_as(&me)) {
            tracing::info!("no peers resolved yet (only this node); waiting (use --cluster.bootstrap to start a new cluster)");
            return false;
        }
        let survey = self.survey(&peers).await;
        for (peer, state) in &survey {
            if *state == PeerState::Initialized && self.try_join(peer.as_str()).await {
                return true;
            }
        }
        if is_agreed_seed(&me, &peers, &survey) {
            tracing::info!(
                peers = peers.len(),
                "this node is the agreed seed (lowest address, every peer uninitialized)"
            );
            self.initialize("agreed seed").await;
            return self.node.is_initialized().await.unwrap_or(false);
        }
        tracing::info!(
            peers = %peers.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","),
            "no cluster to join yet; waiting for the seed or a leader"
        );
        false
    }

    /// An initialized node makes sure the replicated member record is its current one.
    async fn refresh(&self) -> bool {
        let state = self.node.local_state();
        let current = state.members.get(&self.me.node_id).map(|m| Member {
            joined_at_ms: 0,
            ..m.clone()
        });
        let wanted = Member {
            joined_at_ms: 0,
            ..self.me.clone()
        };
        let in_raft = self
            .node
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&self.me.node_id)
            .is_some();
        if current.as_ref() == Some(&wanted) && in_raft {
            return true;
        }
        let m = self.node.metrics().await;
        if m.leader_id == Some(self.me.node_id) {
            return self.node.admit(self.me.clone()).await.is_ok();
        }
        let mut targets: Vec<String> = m
            .leader_id
            .and_then(|l| m.nodes.iter().find(|n| n.node_id == l))
            .map(|n| vec![n.address.clone()])
            .unwrap_or_default();
        let me = self.node.advertise_address().to_string();
        targets.extend(
            self.discovery
                .resolve()
                .await
                .iter()
                .filter(|p| !p.same_as(&me))
                .map(|p| p.to_string()),
        );
        for t in targets {
            if self.try_join(&t).await {
                return true;
            }
        }
        false
    }

    async fn try_join(&self, address: &str) -> bool {
        match AdminClient::join(address, &self.secret, JOIN_TIMEOUT, &self.me).await {
            Ok(j) => {
                tracing::info!(via = address, leader_id = j.leader_id, leader = %j.leader_address, voter = j.voter, "joined the cluster");
                true
            }
            Err(e @ AdminError::Unauthenticated { .. }) => {
                tracing::error!(peer = address, error = %e, "peer refused this node: is --cluster.secret-file the cluster's secret?");
                false
            }
            Err(e) => {
                tracing::info!(peer = address, error = %e, "join attempt failed; retrying");
                false
            }
        }
    }

    /// Asks every peer but this node for its status.
    async fn survey(&self, peers: &BTreeSet<PeerAddr>) -> Vec<(PeerAddr, PeerState)> {
        let me = self.node.advertise_address().to_string();
        let asks = peers.iter().filter(|p| !p.same_as(&me)).map(|p| async move {
            let state = match AdminClient::new(p.as_str(), &self.secret, STATUS_TIMEOUT) {
                Ok(mut c) => match c.status().await {
                    Ok(s) if s.last_log_index.is_none() && s.members.is_empty() => {
                        PeerState::Uninitialized
                    }
                    Ok(_) => PeerState::Initialized,
                    Err(e @ AdminError::Unauthenticated { .. }) => {
                        tracing::error!(peer = %p, error = %e, "peer refused this node: is --cluster.secret-file the cluster's secret?");
                        PeerState::Unknown
                    }
                    Err(e) => {
                        tracing::debug!(peer = %p, error = %e, "peer status unavailable");
                        PeerState::Unknown
                    }
                },
                Err(e) => {
                    tracing::warn!(peer = %p, error = %e, "unusable peer address");
                    PeerState::Unknown
                }
            };
            (p.clone(), state)
        });
        futures::future::join_all(asks).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(addrs: &[&str]) -> BTreeSet<PeerAddr> {
        addrs.iter().map(|a| PeerAddr::new(a.to_string())).collect()
    }

    fn survey(peers: &[(&str, PeerState)]) -> Vec<(PeerAddr, PeerState)> {
        peers
            .iter()
            .map(|(a, s)| (PeerAddr::new(a.to_string()), s.clone()))
            .collect()
    }

    const A: &str = "10.0.0.9:10901";
    const B: &str = "10.0.0.10:10901";
    const C: &str = "10.0.0.11:10901";

    #[test]
    fn only_the_lowest_address_is_the_seed_and_only_when_all_peers_are_blank() {
        let peers = set(&[A, B, C]);
        let blank = survey(&[
            (A, PeerState::Uninitialized),
            (B, PeerState::Uninitialized),
            (C, PeerState::Uninitialized),
        ]);
        assert!(is_agreed_seed(A, &peers, &blank));
        assert!(!is_agreed_seed(B, &peers, &blank));
        assert!(!is_agreed_seed(C, &peers, &blank));
    }

    #[test]
    fn an_unanswering_or_initialized_peer_prevents_bootstrap() {
        let peers = set(&[A, B, C]);
        for other in [PeerState::Unknown, PeerState::Initialized] {
            let s = survey(&[(B, PeerState::Uninitialized), (C, other.clone())]);
            assert!(!is_agreed_seed(A, &peers, &s), "{other:?}");
        }
        let missing = survey(&[(B, PeerState::Uninitialized)]);
        assert!(!is_agreed_seed(A, &peers, &missing));
    }

    #[test]
    fn a_node_outside_the_peer_list_is_never_the_seed() {
        let peers = set(&[B, C]);
        let s = survey(&[(B, PeerState::Uninitialized), (C, PeerState::Uninitialized)]);
        assert!(!is_agreed_seed("10.0.0.1:10901", &peers, &s));
        assert!(!is_agreed_seed(A, &set(&[]), &[]));
    }
}
