//! openraft's storage suite over the sled stores, and refusal of foreign or corrupt directories.

use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};

use super::*;
use crate::types::{StorageError, TypeConfig};

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SledBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let err = |e: &dyn std::fmt::Display| {
            StorageError::from(StorageIOError::read(AnyError::error(e)))
        };
        let dir = tempfile::tempdir().map_err(|e| err(&e))?;
        let (log, sm) = open(&dir.path().join("raft")).map_err(|e| err(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn sled_stores_pass_openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(SledBuilder)
}

#[test]
fn reopening_keeps_the_format_marker_and_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raft");
    drop(open(&path).expect("first open"));
    open(&path).expect("a Strata database reopens");
}

#[test]
fn non_sled_directory_is_refused_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), "hello").expect("write");
    let err = open(dir.path())
        .err()
        .expect("a foreign directory must be refused");
    let msg = err.to_string();
    assert!(matches!(err, OpenError::Foreign { .. }), "{msg}");
    assert!(
        msg.contains(&dir.path().display().to_string()) && msg.contains("notes.txt"),
        "{msg}"
    );
}

#[test]
fn sled_database_of_another_program_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = sled::open(dir.path()).expect("sled");
        db.insert("user", "data").expect("insert");
        db.flush().expect("flush");
    }
    let err = open(dir.path())
        .err()
        .expect("a foreign sled db must be refused");
    assert!(matches!(err, OpenError::Foreign { .. }), "{err}");
    assert!(
        err.to_string().contains("without Strata's format marker"),
        "{err}"
    );
}

#[test]
fn garbage_in_sled_files_gives_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raft");
    drop(open(&path).expect("create"));
    for name in ["db", "conf"] {
        let mut junk = vec![0xA5u8; 4096];
        junk[..8].copy_from_slice(b"garbage!");
        std::fs::write(path.join(name), junk).expect("overwrite");
    }
    let err = open(&path)
        .err()
        .expect("a corrupted database must be refused");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn database_held_open_elsewhere_is_refused_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raft");
    let held = open(&path).expect("first open");
    let err = open(&path)
        .err()
        .expect("a locked database must be refused");
    assert!(matches!(err, OpenError::Sled { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    drop(held);
}

#[test]
fn reopening_while_the_previous_handle_is_still_closing_waits_for_the_lock() {
    // Regression: the retry never fired because sled reports the held lock as ErrorKind::Other,
    // so a reopen right after a drop (under load) failed with "could not acquire lock".
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raft");
    let held = open(&path).expect("first open");
    let closer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(held);
    });
    let reopened = open(&path);
    closer.join().expect("closer");
    assert!(
        reopened.is_ok(),
        "{:?}",
        reopened.err().map(|e| e.to_string())
    );
}
