//! Label pairs and sorted label sets, ordered the way Prometheus orders them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The label holding a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Label {
    /// Label name.
    pub name: String,
    /// Label value.
    pub value: String,
}

impl Label {
    /// A label from a name and a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A label set sorted by name with unique names.
///
/// The derived ordering is Prometheus' `labels.Compare`: pair by pair, name then value, bytewise,
/// and a prefix sorts first. Series in an index are sorted by it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// An empty label set.
    pub fn empty() -> Self {
        Labels(Vec::new())
    }

    /// Builds a label set from pairs in any order; a later duplicate name wins.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let map: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(n, v)| (n.into(), v.into()))
            .collect();
        Labels(
            map.into_iter()
                .map(|(name, value)| Label { name, value })
                .collect(),
        )
    }

    /// Wraps labels that the caller guarantees are sorted by name and unique.
    pub fn from_sorted(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        Labels(labels)
    }

    /// Returns true when the labels are sorted by name with no duplicate names.
    pub fn is_sorted_unique(labels: &[Label]) -> bool {
        labels.windows(2).all(|w| w[0].name < w[1].name)
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// Iterates the pairs in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs as a slice.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// Consumes the set into its sorted pairs.
    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// A copy with `other`'s pairs added; `other` wins where both have a name.
    pub fn merged(&self, other: &Labels) -> Labels {
        Labels::from_pairs(
            self.iter()
                .chain(other.iter())
                .map(|l| (l.name.clone(), l.value.clone())),
        )
    }

    /// The labels as a name -> value map.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect()
    }
}

impl From<&BTreeMap<String, String>> for Labels {
    fn from(map: &BTreeMap<String, String>) -> Self {
        Labels(
            map.iter()
                .map(|(n, v)| Label::new(n.clone(), v.clone()))
                .collect(),
        )
    }
}

impl fmt::Display for Labels {
    /// Prints `{a="1", b="2"}` like Prometheus.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_like_prometheus_labels_compare() {
        let a = Labels::from_pairs([("a", "1")]);
        let ab = Labels::from_pairs([("a", "1"), ("b", "1")]);
        let a2 = Labels::from_pairs([("a", "2")]);
        let b = Labels::from_pairs([("b", "0")]);
        assert!(a < ab, "a prefix sorts first");
        assert!(ab < a2, "value decides before length");
        assert!(a2 < b, "name decides first");
    }

    #[test]
    fn from_pairs_sorts_and_later_duplicate_wins() {
        let l = Labels::from_pairs([("z", "1"), ("a", "2"), ("z", "3")]);
        assert_eq!(l.to_string(), r#"{a="2", z="3"}"#);
        assert_eq!(l.get("z"), Some("3"));
        assert_eq!(l.get("y"), None);
    }
}
