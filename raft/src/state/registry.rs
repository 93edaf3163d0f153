//! The store registry: which StoreAPI endpoints serve which data, with leader-judged liveness.

use serde::{Deserialize, Serialize};

use super::{ClusterState, LabelSet, Rejection, Response};
use crate::types::NodeId;

/// What a store announces when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreInfo {
    /// Its StoreAPI address (the registry key).
    pub address: String,
    /// The member that runs it, if it is a cluster member.
    #[serde(default)]
    pub node_id: Option<NodeId>,
    /// The external label sets of its data.
    #[serde(default)]
    pub label_sets: Vec<LabelSet>,
    /// Earliest sample time it serves (ms).
    pub min_time_ms: i64,
    /// Latest sample time it serves (ms).
    pub max_time_ms: i64,
}

/// A registered store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreEntry {
    /// What it serves.
    pub info: StoreInfo,
    /// When it registered (ms).
    pub registered_at_ms: i64,
    /// Its last heartbeat (ms).
    pub last_heartbeat_ms: i64,
}

impl StoreEntry {
    /// Whether the store counts as alive at `now_ms` given the heartbeat age limit.
    pub fn is_live(&self, now_ms: i64, max_age_ms: i64) -> bool {
        now_ms.saturating_sub(self.last_heartbeat_ms) <= max_age_ms
    }
}

fn check_range(min: i64, max: i64) -> Result<(), Rejection> {
    if min > max {
        return Err(Rejection::Invalid {
            field: "time range".to_string(),
            reason: format!("min time {min} is after max time {max}"),
        });
    }
    Ok(())
}

impl ClusterState {
    pub(super) fn register_store(
        &mut self,
        store: &StoreInfo,
        now_ms: i64,
    ) -> Result<Response, Rejection> {
        check_range(store.min_time_ms, store.max_time_ms)?;
        if store.address.is_empty() {
            return Err(Rejection::Invalid {
                field: "address".to_string(),
                reason: "empty".to_string(),
            });
        }
        let registered_at_ms = self
            .stores
            .get(&store.address)
            .map_or(now_ms, |old| old.registered_at_ms);
        self.stores.insert(
            store.address.clone(),
            StoreEntry {
                info: store.clone(),
                registered_at_ms,
                last_heartbeat_ms: now_ms,
            },
        );
        Ok(Response::Ok)
    }

    pub(super) fn store_heartbeat(
        &mut self,
        address: &str,
        min_time_ms: i64,
        max_time_ms: i64,
        now_ms: i64,
    ) -> Result<Response, Rejection> {
        check_range(min_time_ms, max_time_ms)?;
        let entry = self
            .stores
            .get_mut(address)
            .ok_or_else(|| Rejection::UnknownStore {
                address: address.to_string(),
            })?;
        entry.info.min_time_ms = min_time_ms;
        entry.info.max_time_ms = max_time_ms;
        // A delayed heartbeat must not move liveness backwards.
        entry.last_heartbeat_ms = entry.last_heartbeat_ms.max(now_ms);
        Ok(Response::Ok)
    }

    pub(super) fn deregister_store(&mut self, address: &str) -> Result<Response, Rejection> {
        match self.stores.remove(address) {
            Some(_) => Ok(Response::Ok),
            None => Err(Rejection::UnknownStore {
                address: address.to_string(),
            }),
        }
    }

    pub(super) fn expire_stores(&mut self, now_ms: i64, max_age_ms: i64) -> Response {
        let dead: Vec<String> = self
            .stores
            .iter()
            .filter(|(_, s)| !s.is_live(now_ms, max_age_ms))
            .map(|(a, _)| a.clone())
            .collect();
        for a in &dead {
            self.stores.remove(a);
        }
        Response::Expired { ids: dead }
    }

    /// Stores alive at `now_ms` (heartbeat no older than `max_age_ms`): the leader's judgement,
    /// and what a querier uses as its store set from the registry.
    pub fn live_stores(&self, now_ms: i64, max_age_ms: i64) -> Vec<&StoreEntry> {
        self.stores
            .values()
            .filter(|s| s.is_live(now_ms, max_age_ms))
            .collect()
    }
}
