//! `--role`: which roles a node runs.

use std::collections::BTreeSet;

/// The roles a node can run. `compact`, `rule` and `sidecar` are accepted and recorded in the
/// membership but do nothing yet (later issues build them).
pub const ALL_ROLES: [&str; 5] = ["query", "store", "compact", "rule", "sidecar"];

/// Parses one `--role` value (a comma list is split by clap).
pub fn parse_role(s: &str) -> Result<String, String> {
    let s = s.trim();
    if ALL_ROLES.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "unknown role {s:?} (roles: {})",
            ALL_ROLES.join(", ")
        ))
    }
}

/// The role set.
pub fn role_set(roles: &[String]) -> BTreeSet<String> {
    roles.iter().cloned().collect()
}
