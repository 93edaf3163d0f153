//! The roles a member runs, as the replicated state records them.
//!
//! On the wire and in the state a role is its name (a JSON string), so state written by an
//! older or newer binary decodes: a name this binary does not know becomes [`Role::Unknown`]
//! and is kept, not refused, so a mixed-version cluster keeps applying the same log.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One role of a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Role {
    /// The PromQL querier with Prometheus' HTTP API.
    Query,
    /// The store gateway over the bucket's blocks.
    Store,
    /// Compaction, downsampling and retention.
    Compact,
    /// Recording and alerting rules.
    Rule,
    /// Next to one Prometheus: uploads its blocks, serves its recent data.
    Sidecar,
    /// A role named by another version of Strata; kept as named.
    Unknown(String),
}

impl Role {
    /// Every role this binary knows, in `--role` order.
    pub const KNOWN: [Role; 5] = [
        Role::Query,
        Role::Store,
        Role::Compact,
        Role::Rule,
        Role::Sidecar,
    ];

    /// The role's name (`--role` value and wire form).
    pub fn name(&self) -> &str {
        match self {
            Role::Query => "query",
            Role::Store => "store",
            Role::Compact => "compact",
            Role::Rule => "rule",
            Role::Sidecar => "sidecar",
            Role::Unknown(name) => name,
        }
    }

    /// The role named `name`; any other name is [`Role::Unknown`].
    pub fn from_name(name: &str) -> Role {
        Role::KNOWN
            .iter()
            .find(|r| r.name() == name)
            .cloned()
            .unwrap_or_else(|| Role::Unknown(name.to_string()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<String> for Role {
    fn from(name: String) -> Role {
        match Role::from_name(&name) {
            Role::Unknown(_) => Role::Unknown(name),
            known => known,
        }
    }
}

impl From<Role> for String {
    fn from(r: Role) -> String {
        match r {
            Role::Unknown(name) => name,
            known => known.name().to_string(),
        }
    }
}

/// Parsing accepts only the roles this binary knows (for flags); decoding state accepts any.
impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        match Role::from_name(s.trim()) {
            Role::Unknown(name) => Err(UnknownRole(name)),
            known => Ok(known),
        }
    }
}

/// A role name this binary does not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (roles: query, store, compact, rule, sidecar)")]
pub struct UnknownRole(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn roles_encode_as_their_names() {
        let roles: BTreeSet<Role> = [Role::Store, Role::Query, Role::Sidecar].into();
        let json = serde_json::to_string(&roles).expect("encode");
        assert_eq!(json, r#"["query","store","sidecar"]"#);
        let back: BTreeSet<Role> = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, roles);
    }

    #[test]
    fn unknown_role_name_round_trips_without_failing_decoding() {
        let json = r#"["query","ingest-v9"]"#;
        let roles: BTreeSet<Role> = serde_json::from_str(json).expect("decode");
        assert!(roles.contains(&Role::Query));
        assert!(roles.contains(&Role::Unknown("ingest-v9".into())));
        assert_eq!(serde_json::to_string(&roles).expect("encode"), json);
    }

    #[test]
    fn flag_parsing_refuses_unknown_names_and_names_them() {
        assert_eq!(" rule ".parse::<Role>(), Ok(Role::Rule));
        let err = "querier".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("\"querier\""), "{err}");
    }
}
