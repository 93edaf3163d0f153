//! The querier over StoreAPI endpoints: `--endpoint` specs and `--store.sd-files` targets
//! (`discover`), and the live stores of the cluster's registry, fanned out to, merged, and
//! reported as warnings when they fail (Thanos' partial response, on by default; the
//! `partial_response` parameter overrides it per request, `storeMatch[]` picks endpoints).
//!
//! Per request: the store set is listed (DNS re-resolved every `--store.sd-dns-interval`, SD
//! files re-read when changed), each store's Info (label sets, time range; cached 5 s) prunes
//! it as Thanos' `storeMatches` does, the survivors' `Series` run in parallel, chunks are
//! decoded, and series with equal labels from several stores are merged with identical
//! timestamps collapsed. With no store at all and a bucket at hand, the embedded block set
//! answers instead (a node whose registry is still empty). A node that is itself one of the
//! stores reads its own blocks in process rather than over gRPC.
//!
//! Replica deduplication happens per request above this (`super::dedup`).
//!
//! Downsampled data: a request's `max_source_resolution` goes to stores as
//! `max_resolution_window`, with the aggregates the selector's PromQL function needs (Thanos'
//! `aggrsFromFunc`), and their answers are decoded from those aggregates
//! (`crate::store::convert::decode_chunks_as`).
//!
//! The embedded block set (no store at all, or this node's own store read in process) reads
//! downsampled blocks the same way (`super::downsampled`).
//!
//! Unfinished: TLS, query hints to stores.

use super::blocks::BlockSet;
use super::merge::{match_external, merge_samples, ExternalMatch};
use crate::http::stores::StoreStatus;
use crate::http::SeriesSource;
use crate::store::client::{ClientError, StoreEndpoint, StoreMeta};
use crate::store::convert::Resolution;
use discover::{DiscoveryConfig, StoreDiscovery};
use promql::{QueryError, Queryable, SampleBudget, SeriesData};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use storage::labels::Labels;
use storage::matcher::Matcher;

/// The StoreAPI addresses of the cluster's registry.
pub type RegistryStoreList = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The registry as the query role sees it.
#[derive(Clone)]
pub struct RegistryStores {
    /// The registered stores' addresses.
    pub list: RegistryStoreList,
    /// This node's own StoreAPI address when the query role can read what it serves in
    /// process instead of over loopback gRPC: the bucket's blocks (the embedded block set,
    /// when `own_blocks`) and the rule role's results (`own_results`).
    pub own_address: Option<String>,
    /// Whether the node's own StoreAPI serves the bucket's blocks (the store role).
    pub own_blocks: bool,
    /// The node's rule role's results, read in process whether or not the node is listed yet.
    pub own_results: Option<Arc<dyn Queryable>>,
}

pub mod discover;
pub mod rules;
pub mod serve;
mod view;

pub use view::{FederatedSource, RequestCtx};

/// How long a store's Info answer is trusted (Thanos re-polls Info every 5 s).
const INFO_TTL: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Known {
    endpoint: StoreEndpoint,
    info: Option<(Instant, StoreMeta)>,
    /// What `/api/v1/stores` shows: when Info was last asked, its last error, and the last
    /// good answer (kept while the store fails, as Thanos keeps its label sets).
    last_check: Option<SystemTime>,
    last_error: Option<String>,
    last_meta: Option<StoreMeta>,
}

/// Where the querier reads: StoreAPI endpoints, falling back to the embedded block set.
pub struct Federation {
    endpoints: StoreDiscovery,
    registry: Option<RegistryStores>,
    known: Mutex<HashMap<String, Known>>,
    embedded: Option<Arc<BlockSet>>,
    partial_response: bool,
    response_timeout: Option<Duration>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("registry", &self.registry.is_some())
            .field("embedded", &self.embedded.is_some())
            .field("partial_response", &self.partial_response)
            .finish()
    }
}

/// One store to ask, with what its Info said.
struct Target {
    endpoint: StoreEndpoint,
    meta: StoreMeta,
}

/// The stores to ask: remote ones, this node's own blocks when it is one of the stores, and
/// its rule role's results.
struct Targets {
    remote: Vec<Target>,
    local: Option<Arc<BlockSet>>,
    results: Option<Arc<dyn Queryable>>,
}

/// Thanos' `storeMatches`: the store may hold data for the range and matchers. A label set
/// without the matcher's label never excludes; the store is skipped only if every set does.
fn store_matches(meta: &StoreMeta, matchers: &[Matcher], mint: i64, maxt: i64) -> bool {
    if meta.min_time > maxt || meta.max_time < mint {
        return false;
    }
    meta.label_sets.is_empty()
        || meta
            .label_sets
            .iter()
            .any(|ls| match_external(ls, matchers) != ExternalMatch::Excluded)
}

impl Federation {
    /// A federation over the discovered endpoints (`--endpoint`, `--store.sd-files`) and the
    /// `registry`'s stores, with `embedded` answering when there is no store;
    /// `partial_response` turns a failing store into a warning instead of an error.
    pub fn new(
        discovery: DiscoveryConfig,
        registry: Option<RegistryStores>,
        embedded: Option<Arc<BlockSet>>,
        partial_response: bool,
    ) -> anyhow::Result<Self> {
        Ok(Federation {
            endpoints: StoreDiscovery::new(discovery)?,
            registry,
            known: Mutex::new(HashMap::new()),
            embedded,
            partial_response,
            response_timeout: None,
        })
    }

    /// Gives up on a store call after `timeout` (`--store.response-timeout`; zero: never).
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// `call` to the store at `address`, bounded by the response timeout.
    async fn bounded<T>(
        &self,
        address: &str,
        call: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let Some(limit) = self.response_timeout else {
            return call.await;
        };
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(ClientError::Rpc {
                address: address.to_string(),
                status: tonic::Status::deadline_exceeded(format!(
                    "no answer within --store.response-timeout {}",
                    humantime::format_duration(limit)
                )),
            })
        })
    }

    /// Every store address now: discovered endpoints and the registry's live stores.
    async fn addresses(&self) -> Vec<String> {
        let mut out: BTreeSet<String> = self.endpoints.addresses().await.into_iter().collect();
        if let Some(r) = &self.registry {
            out.extend((r.list)());
        }
        out.into_iter().collect()
    }

    /// The store's Info, cached for [`INFO_TTL`].
    async fn meta(&self, address: &str) -> Result<(StoreEndpoint, StoreMeta), ClientError> {
        let endpoint = {
            let mut known = lock(&self.known);
            if let Some(k) = known.get(address) {
                if let Some((at, meta)) = &k.info {
                    if at.elapsed() < INFO_TTL {
                        return Ok((k.endpoint.clone(), meta.clone()));
                    }
                }
                k.endpoint.clone()
            } else {
                let endpoint = StoreEndpoint::new(address)?;
                known.insert(
                    address.to_string(),
                    Known {
                        endpoint: endpoint.clone(),
                        info: None,
                        last_check: None,
                        last_error: None,
                        last_meta: None,
                    },
                );
                endpoint
            }
        };
        let answer = self.bounded(address, endpoint.info()).await;
        if let Some(k) = lock(&self.known).get_mut(address) {
            k.last_check = Some(SystemTime::now());
            match &answer {
                Ok(meta) => {
                    k.info = Some((Instant::now(), meta.clone()));
                    k.last_meta = Some(meta.clone());
                    k.last_error = None;
                }
                Err(e) => k.last_error = Some(e.to_string()),
            }
        }
        Ok((endpoint, answer?))
    }

    /// Every endpoint's health for `/api/v1/stores`, asking Info of those not checked within
    /// [`INFO_TTL`].
    pub async fn store_statuses(&self) -> Vec<StoreStatus> {
        let addresses = self.addresses().await;
        let answers = futures::future::join_all(addresses.iter().map(|a| self.meta(a))).await;
        let known = lock(&self.known);
        addresses
            .iter()
            .zip(answers)
            .map(|(a, answer)| {
                let k = known.get(a);
                let meta = k.and_then(|k| k.last_meta.clone());
                StoreStatus {
                    name: a.clone(),
                    last_check: k.and_then(|k| k.last_check).unwrap_or_else(SystemTime::now),
                    last_error: answer.err().map(|e| e.to_string()),
                    label_sets: meta
                        .as_ref()
                        .map(|m| m.label_sets.clone())
                        .unwrap_or_default(),
                    min_time: meta.as_ref().map_or(0, |m| m.min_time),
                    max_time: meta.as_ref().map_or(0, |m| m.max_time),
                    component_type: meta.map_or_else(|| "unknown".into(), |m| m.component_type),
                }
            })
            .collect()
    }

    /// The stores to ask for `matchers` over `[mint, maxt]`; `None` when there is no store at
    /// all. Stores whose Info fails are reported through `fail`.
    async fn targets(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        warn: &RequestCtx,
    ) -> Result<Option<Targets>, QueryError> {
        let mut addresses = self.addresses().await;
        let results = self.registry.as_ref().and_then(|r| r.own_results.clone());
        if addresses.is_empty() && results.is_none() {
            return Ok(None);
        }
        // No store listed yet but this node's results: the bucket through the embedded set.
        let unlisted = addresses.is_empty();
        addresses.retain(|a| warn.opts.selects(a));
        let own = self.registry.as_ref().and_then(|r| r.own_address.as_ref());
        let own_blocks = self.registry.as_ref().is_some_and(|r| r.own_blocks);
        let listed = own.is_some_and(|own| addresses.contains(own));
        if let Some(own) = own.filter(|_| listed) {
            addresses.retain(|a| a != own);
        }
        let local = self
            .embedded
            .clone()
            .filter(|_| unlisted || (listed && own_blocks));
        if let Some(b) = &local {
            b.skip_warnings(mint, maxt)
                .into_iter()
                .for_each(|w| warn.push(w));
        }
        let metas = futures::future::join_all(addresses.iter().map(|a| self.meta(a))).await;
        let mut out = Vec::new();
        for r in metas {
            match r {
                Ok((endpoint, meta)) => {
                    if store_matches(&meta, matchers, mint, maxt) {
                        out.push(Target { endpoint, meta });
                    }
                }
                Err(e) => self.fail(e, warn)?,
            }
        }
        Ok(Some(Targets {
            remote: out,
            local,
            results,
        }))
    }

    /// A failing store: a warning under partial response, else the query's error.
    fn fail(&self, e: ClientError, warn: &RequestCtx) -> Result<(), QueryError> {
        tracing::warn!(error = %e, "StoreAPI endpoint failed");
        if warn.opts.partial_response.unwrap_or(self.partial_response) {
            warn.push(e.to_string());
            Ok(())
        } else {
            Err(QueryError::Storage(e.to_string()))
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn select_with(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
        warn: &RequestCtx,
        budget: &SampleBudget,
        res: Resolution,
    ) -> Result<Option<Vec<SeriesData>>, QueryError> {
        let Some(Targets {
            remote: targets,
            local,
            results,
        }) = self.targets(matchers, mint, maxt, warn).await?
        else {
            return Ok(None);
        };
        let own_results = async {
            match &results {
                None => Ok(Vec::new()),
                Some(r) => r.select(matchers, mint, maxt).await,
            }
        };
        let local = async {
            match &local {
                None => Ok(Vec::new()),
                Some(b) if skip_chunks => Ok(b
                    .series(matchers, mint, maxt)
                    .await?
                    .into_iter()
                    .map(|labels| SeriesData {
                        labels,
                        samples: Vec::new(),
                    })
                    .collect()),
                Some(b) => b.select_at(matchers, mint, maxt, budget, res).await,
            }
        };
        let (answers, local, own_results) = futures::future::join3(
            futures::future::join_all(targets.iter().map(|t| {
                self.bounded(
                    t.endpoint.address(),
                    t.endpoint.series_at(matchers, mint, maxt, skip_chunks, res),
                )
            })),
            local,
            own_results,
        )
        .await;
        // Each source's series come sorted by labels; one source alone (the usual case) needs
        // no merge.
        let mut sources: Vec<Vec<SeriesData>> = Vec::with_capacity(targets.len() + 2);
        let local = local?;
        if !local.is_empty() {
            sources.push(local);
        }
        let mut own_results = own_results?;
        if !own_results.is_empty() {
            budget.charge(own_results.iter().map(|s| s.samples.len()).sum())?;
            if skip_chunks {
                own_results.iter_mut().for_each(|s| s.samples.clear());
            }
            sources.push(own_results);
        }
        for (t, answer) in targets.iter().zip(answers) {
            match answer {
                Ok(a) => {
                    budget.charge(a.series.iter().map(|s| s.samples.len()).sum())?;
                    for w in a.warnings {
                        warn.push(format!("store {}: {w}", t.endpoint.address()));
                    }
                    if !a.series.is_empty() {
                        sources.push(a.series);
                    }
                }
                Err(e) => self.fail(e, warn)?,
            }
        }
        tracing::debug!(stores = targets.len(), sources = sources.len(), ranges = ?targets.iter().map(|t| (t.meta.min_time, t.meta.max_time)).collect::<Vec<_>>(), "StoreAPI fan-out");
        if sources.len() <= 1 {
            let only = sources.pop().unwrap_or_default();
            if only.windows(2).all(|w| w[0].labels < w[1].labels) {
                return Ok(Some(
                    only.into_iter()
                        .filter(|s| skip_chunks || !s.samples.is_empty())
                        .collect(),
                ));
            }
            sources.push(only);
        }
        let mut by_series: BTreeMap<Labels, Vec<Vec<(i64, f64)>>> = BTreeMap::new();
        for source in sources {
            for s in source {
                by_series.entry(s.labels).or_default().push(s.samples);
            }
        }
        Ok(Some(
            by_series
                .into_iter()
                .map(|(labels, runs)| SeriesData {
                    labels,
                    samples: merge_samples(runs),
                })
                .filter(|s| skip_chunks || !s.samples.is_empty())
                .collect(),
        ))
    }

    async fn label_names_with(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        warn: &RequestCtx,
    ) -> Result<Option<Vec<String>>, QueryError> {
        self.label_strings(None, matchers, mint, maxt, warn).await
    }

    async fn label_values_with(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        warn: &RequestCtx,
    ) -> Result<Option<Vec<String>>, QueryError> {
        self.label_strings(Some(name), matchers, mint, maxt, warn)
            .await
    }

    /// Label names (`name` is `None`) or the values of label `name`, from every store that may
    /// hold matching series, merged and sorted; `None` when there is no store at all.
    async fn label_strings(
        &self,
        name: Option<&str>,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        warn: &RequestCtx,
    ) -> Result<Option<Vec<String>>, QueryError> {
        let Some(Targets {
            remote: targets,
            local,
            results,
        }) = self.targets(matchers, mint, maxt, warn).await?
        else {
            return Ok(None);
        };
        let answers = futures::future::join_all(targets.iter().map(|t| async move {
            let call = async {
                match name {
                    None => t.endpoint.label_names(matchers, mint, maxt).await,
                    Some(n) => t.endpoint.label_values(n, matchers, mint, maxt).await,
                }
            };
            self.bounded(t.endpoint.address(), call).await
        }))
        .await;
        let mut out = BTreeSet::new();
        if let Some(b) = &local {
            out.extend(match name {
                None => b.label_names(matchers, mint, maxt).await?,
                Some(n) => b.label_values(n, matchers, mint, maxt).await?,
            });
        }
        if let Some(r) = &results {
            out.extend(match name {
                None => r.label_names(matchers, mint, maxt).await?,
                Some(n) => r.label_values(n, matchers, mint, maxt).await?,
            });
        }
        for a in answers {
            match a {
                Ok((strings, warnings)) => {
                    out.extend(strings);
                    warnings.into_iter().for_each(|w| warn.push(w));
                }
                Err(e) => self.fail(e, warn)?,
            }
        }
        Ok(Some(out.into_iter().collect()))
    }

    fn no_store(
        &self,
        mint: i64,
        maxt: i64,
        warn: &RequestCtx,
    ) -> Result<Option<&Arc<BlockSet>>, QueryError> {
        match &self.embedded {
            Some(b) => {
                // Blocks the embedded set could not read make its answer partial.
                b.skip_warnings(mint, maxt)
                    .into_iter()
                    .for_each(|w| warn.push(w));
                Ok(Some(b))
            }
            None => {
                warn.push("no StoreAPI endpoint is known: the answer is empty".to_string());
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(sets: &[&[(&str, &str)]], min: i64, max: i64) -> StoreMeta {
        StoreMeta {
            label_sets: sets
                .iter()
                .map(|s| Labels::from_pairs(s.iter().copied()))
                .collect(),
            min_time: min,
            max_time: max,
            component_type: "store".into(),
        }
    }

    #[test]
    fn stores_outside_the_time_range_are_pruned() {
        let m = meta(&[], 100, 200);
        let up = [Matcher::equal("__name__", "up")];
        assert!(store_matches(&m, &up, 150, 300));
        assert!(store_matches(&m, &up, 0, 100));
        assert!(!store_matches(&m, &up, 201, 300));
        assert!(!store_matches(&m, &up, 0, 99));
    }

    #[test]
    fn stores_are_pruned_only_when_every_label_set_rules_them_out() {
        let m = meta(&[&[("region", "eu")], &[("region", "us")]], 0, 10);
        assert!(store_matches(&m, &[Matcher::equal("region", "us")], 0, 10));
        assert!(!store_matches(
            &m,
            &[Matcher::equal("region", "asia")],
            0,
            10
        ));
        // A set without the label never excludes.
        let m = meta(&[&[("region", "eu")], &[("zone", "a")]], 0, 10);
        assert!(store_matches(
            &m,
            &[Matcher::equal("region", "asia")],
            0,
            10
        ));
        // No label sets: unknown, never excluded.
        assert!(store_matches(
            &meta(&[], 0, 10),
            &[Matcher::equal("region", "x")],
            0,
            10
        ));
    }
}
