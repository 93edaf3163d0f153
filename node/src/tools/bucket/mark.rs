//! `strata tools bucket mark`: Thanos' `tools bucket mark`, writing a deletion or no-compact
//! mark for chosen blocks (the compactor then deletes them after `--delete-delay`, or leaves
//! them out of compaction).

use crate::flags::ObjstoreFlags;
use anyhow::{bail, Context as _};
use std::process::ExitCode;
use storage::bucket::marks::{
    mark_for_deletion, mark_no_compact, DELETION_MARK_FILENAME, NO_COMPACT_MARK_FILENAME,
};
use ulid::Ulid;

/// No-compact reason of a mark an operator asked for (Thanos' `ManualNoCompactReason`).
pub const REASON_MANUAL: &str = "manual";

/// Marks every block of `ids` with `marker`; fails (naming it) on a bad id, an unknown marker
/// or a block that does not exist, before writing anything for a bad argument.
pub async fn run(
    objstore: &ObjstoreFlags,
    ids: &[String],
    marker: &str,
    details: &str,
) -> anyhow::Result<ExitCode> {
    if ids.is_empty() {
        bail!("--id is required: the ULID of a block to mark (repeatable)");
    }
    let ids: Vec<Ulid> = ids
        .iter()
        .map(|s| Ulid::from_string(s).with_context(|| format!("--id {s:?} is not a block ULID")))
        .collect::<anyhow::Result<_>>()?;
    if marker != DELETION_MARK_FILENAME && marker != NO_COMPACT_MARK_FILENAME {
        bail!(
            "--marker {marker:?} is not one of {DELETION_MARK_FILENAME}, {NO_COMPACT_MARK_FILENAME}"
        );
    }
    let bucket = objstore.open_existing()?;
    for id in ids {
        let written = if marker == DELETION_MARK_FILENAME {
            mark_for_deletion(bucket.as_ref(), id, details).await
        } else {
            mark_no_compact(bucket.as_ref(), id, REASON_MANUAL, details).await
        }
        .with_context(|| format!("marking block {id} with {marker}"))?;
        if written {
            tracing::info!(block = %id, marker, details, "block marked");
        } else {
            tracing::info!(block = %id, marker, "block already marked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
