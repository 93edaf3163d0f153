//! Selecting series by label matchers, with Prometheus 2.42's `PostingsForMatchers` semantics.
//!
//! Positive matchers intersect; a matcher that also matches `""` selects series *without* the
//! label too, so it is applied by subtracting the series whose value it rejects; with nothing
//! positive to start from, the all-series list is the base.

use super::postings::{intersect, merge_union, without};
use super::reader::IndexReader;
use crate::block::error::BlockError;
use crate::matcher::{MatchKind, Matcher};
use futures::{stream, StreamExt, TryStreamExt};
use std::collections::HashSet;

/// Postings lists read concurrently for one matcher: enough to hide bucket latency, few
/// enough not to flood it.
const CONCURRENT_READS: usize = 16;

impl IndexReader {
    /// Series refs (ascending) of the series that every matcher selects. No matchers select
    /// nothing, as in Prometheus.
    pub async fn postings_for_matchers(
        &self,
        matchers: &[Matcher],
    ) -> Result<Vec<u32>, BlockError> {
        // Names some matcher requires to be present with a non-empty value.
        let must_be_set: HashSet<&str> = matchers
            .iter()
            .filter(|m| !m.matches(""))
            .map(|m| m.name())
            .collect();
        let mut its: Vec<Vec<u32>> = Vec::new();
        let mut not_its: Vec<Vec<u32>> = Vec::new();
        for m in matchers {
            if m.name().is_empty() && m.value().is_empty() {
                its.push(self.all_postings().await?);
            } else if must_be_set.contains(m.name()) {
                let negative = m.kind().is_negative();
                let matches_empty = m.matches("");
                if negative && matches_empty {
                    // l!="foo" where l must be set elsewhere: subtract l="foo" at the end.
                    not_its.push(self.postings_for_matcher(&m.inverse()).await?);
                } else if negative {
                    // l!="" : the series with l set to a value the inverse rejects.
                    let it = self.inverse_postings_for_matcher(&m.inverse()).await?;
                    if it.is_empty() {
                        return Ok(Vec::new());
                    }
                    its.push(it);
                } else {
                    let it = self.postings_for_matcher(m).await?;
                    if it.is_empty() {
                        return Ok(Vec::new());
                    }
                    its.push(it);
                }
            } else {
                // l="" or l=~".*": also selects series without l, so remove the ones with a
                // value the matcher rejects.
                not_its.push(self.inverse_postings_for_matcher(m).await?);
            }
        }
        if its.is_empty() && !not_its.is_empty() {
            its.push(self.all_postings().await?);
        }
        let mut out = intersect(&its);
        for n in &not_its {
            if out.is_empty() {
                break;
            }
            out = without(&out, n);
        }
        Ok(out)
    }

    /// Series with label `m.name()` set to a value `m` matches.
    async fn postings_for_matcher(&self, m: &Matcher) -> Result<Vec<u32>, BlockError> {
        if m.kind() == MatchKind::Equal {
            return self.postings(m.name(), m.value()).await;
        }
        if let Some(set) = m.set_matches() {
            // `a|b|c`: look the literals up instead of testing every value.
            let set: Vec<&str> = set.iter().map(String::as_str).collect();
            return self.union_of(m.name(), &set).await;
        }
        let values: Vec<&str> = self
            .label_values(m.name())
            .into_iter()
            .filter(|v| m.matches(v))
            .collect();
        self.union_of(m.name(), &values).await
    }

    /// Series with label `m.name()` set to a value `m` rejects.
    async fn inverse_postings_for_matcher(&self, m: &Matcher) -> Result<Vec<u32>, BlockError> {
        let values: Vec<&str> = self
            .label_values(m.name())
            .into_iter()
            .filter(|v| !m.matches(v))
            .collect();
        self.union_of(m.name(), &values).await
    }

    /// Union of the lists of `name=v` for each `v` (absent values skipped), a few read at once.
    async fn union_of(&self, name: &str, values: &[&str]) -> Result<Vec<u32>, BlockError> {
        let present: Vec<&str> = values
            .iter()
            .copied()
            .filter(|v| self.postings_offset(name, v).is_some())
            .collect();
        // The futures are made first: a lazy `map` in the stream trips the compiler's `Send`
        // inference for the async trait methods above this.
        let reads: Vec<_> = present.iter().map(|v| self.postings(name, v)).collect();
        let lists: Vec<Vec<u32>> = stream::iter(reads)
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        Ok(merge_union(lists))
    }
}
