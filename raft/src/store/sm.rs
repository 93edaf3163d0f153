//! The state machine: the cluster state applied from committed entries, persisted in sled with
//! its last applied log id, plus the current snapshot.

use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::FlushMode;
use crate::state::{ClusterState, Response};
use crate::types::{Entry, NodeId, StorageError, TypeConfig, STATE_VERSION};

const APPLIED: &str = "applied";
const SNAPSHOT_META: &str = "snapshot_meta";
const SNAPSHOT_DATA: &str = "snapshot_data";

/// The applied state with the log position it reflects.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    /// The last entry applied.
    pub last_applied: Option<LogId<NodeId>>,
    /// The last membership applied.
    pub last_membership: StoredMembership<NodeId, BasicNode>,
    /// The cluster state.
    pub state: ClusterState,
}

/// A snapshot's data: the state with the version of its format.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    state_version: u32,
    state: ClusterState,
}

/// A read handle on the applied state, shared with [`crate::RaftNode`] for local reads.
#[derive(Clone, Debug, Default)]
pub struct SharedState(Arc<RwLock<Applied>>);

impl SharedState {
    /// Reads the applied state (a poisoned lock still holds a consistent value: every writer
    /// replaces the state whole).
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Applied> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// openraft's state machine over sled tree `sm`.
pub struct StateMachineStore {
    db: sled::Db,
    flush: FlushMode,
    tree: sled::Tree,
    shared: SharedState,
}

fn sm_read(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(&e).into()
}

fn sm_write(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

impl StateMachineStore {
    pub(super) fn new(db: &sled::Db, flush: FlushMode) -> Result<Self, String> {
        let tree = db.open_tree("sm").map_err(|e| e.to_string())?;
        let applied = match tree.get(APPLIED).map_err(|e| e.to_string())? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| format!("applied state: {e}"))?,
            None => Applied::default(),
        };
        Ok(StateMachineStore {
            db: db.clone(),
            flush,
            tree,
            shared: SharedState(Arc::new(RwLock::new(applied))),
        })
    }

    /// The handle through which the node reads the applied state.
    pub fn shared(&self) -> SharedState {
        self.shared.clone()
    }

    fn persist(&self, applied: &Applied) -> Result<(), StorageError> {
        let v = serde_json::to_vec(applied).map_err(sm_write)?;
        self.tree.insert(APPLIED, v).map_err(sm_write)?;
        Ok(())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError> {
        let a = self.shared.read();
        Ok((a.last_applied, a.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.shared.read().clone();
        let mut responses = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::Ok,
                EntryPayload::Normal(req) => {
                    // The transport refuses entries this build cannot apply, so this is a last
                    // line of defence: stopping is safer than applying differently from newer
                    // nodes.
                    if !req.is_supported() {
                        let msg = format!(
                            "entry {} carries command {req}, which this node (state version {STATE_VERSION}) cannot apply; upgrade this node",
                            entry.log_id
                        );
                        tracing::error!("{msg}");
                        return Err(
                            StorageIOError::apply(entry.log_id, AnyError::error(msg)).into()
                        );
                    }
                    applied.state.apply(entry.log_id.leader_id.term, &req)
                }
                EntryPayload::Membership(m) => {
                    applied.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    Response::Ok
                }
            };
            responses.push(response);
        }
        self.persist(&applied)?;
        *self.shared.write() = applied;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            flush: self.flush,
            tree: self.tree.clone(),
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let sig = Some(meta.signature());
        let body: SnapshotBody = serde_json::from_slice(&data)
            .map_err(|e| StorageError::from(StorageIOError::read_snapshot(sig.clone(), &e)))?;
        if body.state_version > STATE_VERSION {
            let msg = format!(
                "snapshot {} has state version {}, this node applies up to {STATE_VERSION}; upgrade this node",
                meta.snapshot_id, body.state_version
            );
            return Err(StorageIOError::read_snapshot(sig, AnyError::error(msg)).into());
        }
        let applied = Applied {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            state: body.state,
        };
        store_snapshot(&self.tree, meta, &data, Some(&applied))?;
        self.flush.flush(&self.db).await.map_err(sm_write)?;
        *self.shared.write() = applied;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(meta) = self.tree.get(SNAPSHOT_META).map_err(sm_read)? else {
            return Ok(None);
        };
        let meta: SnapshotMeta<NodeId, BasicNode> =
            serde_json::from_slice(&meta).map_err(sm_read)?;
        let data = self
            .tree
            .get(SNAPSHOT_DATA)
            .map_err(sm_read)?
            .map(|v| v.to_vec())
            .unwrap_or_default();
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Writes a snapshot (and optionally the state it installs) atomically.
fn store_snapshot(
    tree: &sled::Tree,
    meta: &SnapshotMeta<NodeId, BasicNode>,
    data: &[u8],
    applied: Option<&Applied>,
) -> Result<(), StorageError> {
    let sig = Some(meta.signature());
    let werr = |e: &dyn std::fmt::Display| -> StorageError {
        StorageIOError::write_snapshot(sig.clone(), AnyError::error(e)).into()
    };
    let mut batch = sled::Batch::default();
    batch.insert(
        SNAPSHOT_META,
        serde_json::to_vec(meta).map_err(|e| werr(&e))?,
    );
    batch.insert(SNAPSHOT_DATA, data);
    if let Some(a) = applied {
        batch.insert(APPLIED, serde_json::to_vec(a).map_err(|e| werr(&e))?);
    }
    tree.apply_batch(batch).map_err(|e| werr(&e))
}

/// Builds a snapshot of the applied state.
pub struct SnapshotBuilder {
    db: sled::Db,
    flush: FlushMode,
    tree: sled::Tree,
    shared: SharedState,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let applied = self.shared.read().clone();
        let body = SnapshotBody {
            state_version: STATE_VERSION,
            state: applied.state,
        };
        let data = serde_json::to_vec(&body).map_err(sm_read)?;
        let seq = self.db.generate_id().map_err(sm_write)?;
        let snapshot_id = match applied.last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
            None => format!("0-0-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.last_membership,
            snapshot_id,
        };
        store_snapshot(&self.tree, &meta, &data, None)?;
        self.flush.flush(&self.db).await.map_err(sm_write)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
