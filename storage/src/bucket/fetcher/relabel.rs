//! Thanos' selector relabelling (`--selector.relabel-config(-file)`, `docs/sharding.md`): a
//! Prometheus relabel config evaluated over a block's external labels plus `__block_id` (its
//! ULID); a block the rules drop is not this process's. Only `keep`, `drop` and `hashmod`, the
//! actions Thanos accepts for block selection, are allowed, so that shards partition blocks.

use super::{Fetched, MetaFilter};
use crate::bucket::{Bucket, BucketError};
use async_trait::async_trait;
use md5::{Digest, Md5};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use ulid::Ulid;

/// The label holding the block's ULID during selector relabelling.
pub const BLOCK_ID_LABEL: &str = "__block_id";

/// A selector relabel config that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelabelError {
    /// The YAML does not parse as a list of relabel rules.
    #[error("parsing relabel config: {0}")]
    Yaml(String),
    /// A rule's action is not one block selection supports.
    #[error("relabel rule {index}: unsupported action {action:?} (only keep, drop and hashmod select blocks)")]
    UnsupportedAction {
        /// Position of the rule, from 0.
        index: usize,
        /// The action as written.
        action: String,
    },
    /// A rule's regex does not compile.
    #[error("relabel rule {index}: invalid regex {regex:?}: {reason}")]
    Regex {
        /// Position of the rule, from 0.
        index: usize,
        /// The regex as written.
        regex: String,
        /// Why it does not compile.
        reason: String,
    },
    /// A hashmod rule lacks its modulus or target label.
    #[error("relabel rule {index}: {reason}")]
    Invalid {
        /// Position of the rule, from 0.
        index: usize,
        /// What is missing.
        reason: &'static str,
    },
}

/// One rule as written in YAML (Prometheus' field names and defaults).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    source_labels: Vec<String>,
    separator: Option<String>,
    regex: Option<String>,
    #[serde(default)]
    modulus: u64,
    #[serde(default)]
    target_label: String,
    /// Accepted for compatibility; keep, drop and hashmod do not use it.
    #[allow(dead_code)]
    replacement: Option<String>,
    action: Option<String>,
}

#[derive(Debug, Clone)]
enum Action {
    Keep,
    Drop,
    HashMod { modulus: u64, target: String },
}

#[derive(Debug, Clone)]
struct Rule {
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    action: Action,
}

/// Parsed selector relabel rules, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct RelabelConfig {
    rules: Vec<Rule>,
}

impl RelabelConfig {
    /// Parses Prometheus relabel YAML (a list of rules); empty text means no rules.
    pub fn parse(yaml: &str) -> Result<Self, RelabelError> {
        if yaml.trim().is_empty() {
            return Ok(RelabelConfig::default());
        }
        let raw: Option<Vec<RawRule>> =
            serde_yaml_ng::from_str(yaml).map_err(|e| RelabelError::Yaml(e.to_string()))?;
        let rules = raw
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, r)| Rule::new(index, r))
            .collect::<Result<_, _>>()?;
        Ok(RelabelConfig { rules })
    }

    /// Whether there are no rules (every block kept).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether the rules keep a block with these `labels` (external labels and `__block_id`).
    pub fn keeps(&self, labels: &BTreeMap<String, String>) -> bool {
        let mut labels = labels.clone();
        self.rules.iter().all(|r| r.apply(&mut labels))
    }

    /// Whether the rules keep block `id` with external labels `external`.
    pub fn keeps_block(&self, id: Ulid, external: &BTreeMap<String, String>) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let mut labels = external.clone();
        labels.insert(BLOCK_ID_LABEL.to_string(), id.to_string());
        self.keeps(&labels)
    }
}

impl Rule {
    fn new(index: usize, r: RawRule) -> Result<Self, RelabelError> {
        let written = r.action.unwrap_or_else(|| "replace".into());
        let regex_text = r.regex.unwrap_or_else(|| "(.*)".into());
        // Prometheus anchors relabel regexes at both ends.
        let regex =
            Regex::new(&format!("^(?s:{regex_text})$")).map_err(|e| RelabelError::Regex {
                index,
                regex: regex_text.clone(),
                reason: e.to_string(),
            })?;
        let action = match written.to_ascii_lowercase().as_str() {
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "hashmod" => {
                if r.modulus == 0 {
                    return Err(RelabelError::Invalid {
                        index,
                        reason: "hashmod requires a non-zero modulus",
                    });
                }
                if r.target_label.is_empty() {
                    return Err(RelabelError::Invalid {
                        index,
                        reason: "hashmod requires a target_label",
                    });
                }
                Action::HashMod {
                    modulus: r.modulus,
                    target: r.target_label,
                }
            }
            _ => {
                return Err(RelabelError::UnsupportedAction {
                    index,
                    action: written,
                })
            }
        };
        Ok(Rule {
            source_labels: r.source_labels,
            separator: r.separator.unwrap_or_else(|| ";".into()),
            regex,
            action,
        })
    }

    /// Applies the rule; false when it drops the block.
    fn apply(&self, labels: &mut BTreeMap<String, String>) -> bool {
        let value = self
            .source_labels
            .iter()
            .map(|n| labels.get(n).map(String::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&self.separator);
        match &self.action {
            Action::Keep => self.regex.is_match(&value),
            Action::Drop => !self.regex.is_match(&value),
            Action::HashMod { modulus, target } => {
                let shard = hash_mod(&value, *modulus);
                labels.insert(target.clone(), shard.to_string());
                true
            }
        }
    }
}

/// Prometheus' hashmod: the last 8 bytes of the value's MD5, big-endian, modulo `modulus`.
fn hash_mod(value: &str, modulus: u64) -> u64 {
    let sum = Md5::digest(value.as_bytes());
    let mut last = [0u8; 8];
    last.copy_from_slice(&sum[8..16]);
    u64::from_be_bytes(last) % modulus
}

/// Drops the blocks the selector relabel rules drop (reason `label-excluded`, Thanos' name).
#[derive(Debug, Clone)]
pub struct RelabelFilter {
    /// The rules.
    pub config: RelabelConfig,
}

#[async_trait]
impl MetaFilter for RelabelFilter {
    async fn filter(&self, _: &dyn Bucket, fetched: &mut Fetched) -> Result<(), BucketError> {
        let out: Vec<Ulid> = fetched
            .metas
            .values()
            .filter(|m| !self.config.keeps_block(m.ulid, &m.external_labels()))
            .map(|m| m.ulid)
            .collect();
        for id in out {
            fetched.exclude(id, "label-excluded");
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "relabel_tests.rs"]
mod tests;
