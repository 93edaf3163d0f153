//! The node's data directory: an exclusive OS lock held for the process' life, and the node id
//! made once and kept in `<data-dir>/node-id`.

use anyhow::{bail, Context as _};
use std::fs::{File, OpenOptions, TryLockError};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const LOCK_FILE: &str = "lock";
const NODE_ID_FILE: &str = "node-id";

/// The locked data directory. The lock is released when this is dropped (or the process dies).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed and takes an exclusive lock on `<dir>/lock`; refuses
    /// (naming the holder's pid when it wrote one) if another process holds it.
    pub fn lock(path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("creating --data-dir {}", path.display()))?;
        let lock_path = path.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("opening lock file {}", lock_path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("another process (pid {holder})")
                };
                bail!(
                    "--data-dir {} is in use by {who}: its lock file {} is held; one strata node per data directory",
                    path.display(),
                    lock_path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()))
            }
        }
        // The pid is only for the refusal message above; the OS lock is what excludes.
        file.set_len(0).context("truncating the lock file")?;
        file.seek(SeekFrom::Start(0))
            .context("rewinding the lock file")?;
        write!(file, "{}", std::process::id()).context("writing the pid to the lock file")?;
        file.flush().context("writing the lock file")?;
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: file,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The node id from `<dir>/node-id`, made (random, non-zero) and written on first start.
    pub fn node_id(&self) -> anyhow::Result<u64> {
        let p = self.path.join(NODE_ID_FILE);
        match std::fs::read_to_string(&p) {
            Ok(s) => s.trim().parse::<u64>().with_context(|| {
                format!(
                    "{} holds {:?}, not a node id (a decimal u64); restore it or remove the data directory",
                    p.display(),
                    s.trim()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = random_node_id();
                let tmp = self.path.join(format!("{NODE_ID_FILE}.tmp"));
                std::fs::write(&tmp, format!("{id}\n"))
                    .with_context(|| format!("writing {}", tmp.display()))?;
                std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))?;
                tracing::info!(node_id = id, file = %p.display(), "new node id");
                Ok(id)
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }
}

/// A random non-zero u64 from std's per-process random hash keys, the clock and the pid (no
/// RNG crate needed for one number).
fn random_node_id() -> u64 {
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        let id = h.finish();
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = {
            let d = DataDir::lock(dir.path()).expect("lock");
            d.node_id().expect("id")
        };
        let d = DataDir::lock(dir.path()).expect("relock after drop");
        assert_eq!(d.node_id().expect("id"), first);
        assert_ne!(first, 0);
    }

    #[test]
    fn second_lock_on_the_same_directory_is_refused_naming_the_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _held = DataDir::lock(dir.path()).expect("lock");
        let e = DataDir::lock(dir.path()).expect_err("second lock refused");
        let msg = format!("{e:#}");
        assert!(msg.contains("in use by"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
    }

    #[test]
    fn garbage_node_id_is_an_error_not_a_new_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(NODE_ID_FILE), "not a number").expect("write");
        let d = DataDir::lock(dir.path()).expect("lock");
        assert!(format!("{:#}", d.node_id().expect_err("refused")).contains("not a node id"));
    }
}
