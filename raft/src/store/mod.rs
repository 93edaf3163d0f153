//! Durable Raft storage in one sled database at `<data-dir>/raft`, through openraft 0.9's
//! storage v2 traits (cargo feature `storage-v2`): [`LogStore`] (`RaftLogStorage`: log, vote,
//! committed index) and [`StateMachineStore`] (`RaftStateMachine`: cluster state and snapshots).
//!
//! Trees: `strata` (format marker), `log` (entries keyed by big-endian index, JSON),
//! `log_meta` (vote, committed, last purged), `sm` (applied state and the current snapshot).

mod log;
mod sm;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

pub use log::LogStore;
pub use sm::{SharedState, StateMachineStore};

/// What the `strata` tree's `format` key holds in a database this crate made.
const FORMAT: &[u8] = b"strata-raft-v1";

/// A failure to open the Raft database.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// sled could not open the directory (permissions, lock held by another process, I/O).
    #[error("cannot open Raft database {path}: {source}")]
    Sled {
        /// The directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// The directory holds something that is not a Strata Raft database.
    #[error("{path} is not a Strata Raft database: {reason}")]
    Foreign {
        /// The directory.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The database is damaged.
    #[error("Raft database {path} is corrupt: {reason}")]
    Corrupt {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Opens (or creates) the Raft database in `dir` and returns its two stores.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), OpenError> {
    let db = open_db(dir)?;
    let log = LogStore::new(&db).map_err(|e| corrupt(dir, e))?;
    let sm = StateMachineStore::new(&db).map_err(|e| corrupt(dir, e))?;
    Ok((log, sm))
}

fn corrupt(dir: &Path, e: impl std::fmt::Display) -> OpenError {
    OpenError::Corrupt {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    }
}

fn open_db(dir: &Path) -> Result<sled::Db, OpenError> {
    check_not_foreign_dir(dir)?;
    // sled 0.34 can panic on some damaged files instead of returning an error; a damaged
    // directory must give the operator an error naming it, not a crash.
    let db = match open_with_lock_retry(dir) {
        Ok(Ok(db)) => db,
        Ok(Err(sled::Error::Corruption { at, .. })) => {
            return Err(corrupt(dir, format!("sled reports corruption at {at:?}")));
        }
        Ok(Err(source)) => {
            return Err(OpenError::Sled {
                path: dir.to_path_buf(),
                source,
            })
        }
        Err(_) => return Err(corrupt(dir, "sled panicked while reading it")),
    };
    check_marker(dir, &db)?;
    Ok(db)
}

/// sled releases its file lock only when its background flusher lets go of the database, a
/// moment after the last handle is dropped; a restart in the same process (or right after the
/// previous process exited) waits for that, up to a deadline, instead of failing.
fn open_with_lock_retry(dir: &Path) -> std::thread::Result<sled::Result<sled::Db>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let opened = std::panic::catch_unwind(AssertUnwindSafe(|| sled::open(dir)));
        let locked = matches!(&opened, Ok(Err(sled::Error::Io(e))) if is_lock_error(e));
        if !locked || std::time::Instant::now() >= deadline {
            return opened;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// sled 0.34 reports a held file lock as an `ErrorKind::Other` error whose text names it (the
/// `WouldBlock` from flock is only in that text), so the kind alone never matches.
fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// A non-empty directory without sled's files is someone else's data: refuse to write into it.
fn check_not_foreign_dir(dir: &Path) -> Result<(), OpenError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(OpenError::Sled {
                path: dir.to_path_buf(),
                source: sled::Error::Io(e),
            })
        }
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() || names.iter().any(|n| n == "db") && names.iter().any(|n| n == "conf") {
        return Ok(());
    }
    let mut shown: Vec<&str> = names.iter().map(String::as_str).take(5).collect();
    shown.sort_unstable();
    Err(OpenError::Foreign {
        path: dir.to_path_buf(),
        reason: format!("non-empty and without sled's `db` and `conf` files (found {shown:?})"),
    })
}

/// A sled database of another program has trees of its own and no Strata marker.
fn check_marker(dir: &Path, db: &sled::Db) -> Result<(), OpenError> {
    let sled_err = |source| OpenError::Sled {
        path: dir.to_path_buf(),
        source,
    };
    let meta = db.open_tree("strata").map_err(sled_err)?;
    match meta.get("format").map_err(sled_err)? {
        Some(v) if v.as_ref() == FORMAT => Ok(()),
        Some(v) => Err(OpenError::Foreign {
            path: dir.to_path_buf(),
            reason: format!(
                "format marker is {:?}, expected {:?}",
                String::from_utf8_lossy(&v),
                String::from_utf8_lossy(FORMAT)
            ),
        }),
        None => {
            let foreign = db
                .tree_names()
                .into_iter()
                .any(|n| n.as_ref() != b"__sled__default" && n.as_ref() != b"strata")
                || !db.is_empty();
            if foreign {
                return Err(OpenError::Foreign {
                    path: dir.to_path_buf(),
                    reason: "a sled database without Strata's format marker".to_string(),
                });
            }
            meta.insert("format", FORMAT).map_err(sled_err)?;
            db.flush().map_err(sled_err)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
