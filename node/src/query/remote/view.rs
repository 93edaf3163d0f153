//! The federation as the HTTP API sees it: a [`RequestView`] per request collects that
//! request's warnings; [`FederatedSource`] is what the API holds.

use super::{lock, Federation};
use crate::http::store_params::StoreOptions;
use crate::http::stores::StoreStatus;
use crate::http::SeriesSource;
use crate::store::convert::{AggrRead, Resolution};
use async_trait::async_trait;
use promql::{QueryError, Queryable, SampleBudget, SelectHints, SeriesData};
use std::sync::{Arc, Mutex};
use storage::labels::Labels;
use storage::matcher::Matcher;

/// One request: its warnings and its StoreAPI options (`partial_response`, `storeMatch[]`).
#[derive(Debug, Default)]
pub struct RequestCtx {
    warnings: Mutex<Vec<String>>,
    pub(super) opts: StoreOptions,
}

impl RequestCtx {
    pub(super) fn push(&self, w: String) {
        let mut v = lock(&self.warnings);
        if !v.contains(&w) {
            v.push(w);
        }
    }

    pub(super) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.warnings))
    }
}

/// The federation as one request sees it: it records the request's warnings.
#[derive(Debug)]
pub struct RequestView {
    federation: Arc<Federation>,
    warnings: RequestCtx,
}

/// The source the HTTP API holds: hands each request a [`RequestView`].
#[derive(Debug, Clone)]
pub struct FederatedSource(pub Arc<Federation>);

#[async_trait]
impl Queryable for RequestView {
    async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        self.select_within(matchers, mint, maxt, &SampleBudget::unlimited())
            .await
    }

    async fn select_within(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: &SampleBudget,
    ) -> Result<Vec<SeriesData>, QueryError> {
        self.select_hinted(matchers, mint, maxt, budget, SelectHints::default())
            .await
    }

    async fn select_hinted(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: &SampleBudget,
        hints: SelectHints,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let f = &self.federation;
        let res = Resolution {
            max_window: self.warnings.opts.max_source_resolution,
            read: AggrRead::for_func(hints.func),
        };
        match f
            .select_with(matchers, mint, maxt, false, &self.warnings, budget, res)
            .await?
        {
            Some(s) => Ok(s),
            None => match f.no_store(mint, maxt, &self.warnings)? {
                Some(b) => b.select_at(matchers, mint, maxt, budget, res).await,
                None => Ok(Vec::new()),
            },
        }
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let f = &self.federation;
        match f
            .label_names_with(matchers, mint, maxt, &self.warnings)
            .await?
        {
            Some(n) => Ok(n),
            None => match f.no_store(mint, maxt, &self.warnings)? {
                Some(b) => b.label_names(matchers, mint, maxt).await,
                None => Ok(Vec::new()),
            },
        }
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let f = &self.federation;
        match f
            .label_values_with(name, matchers, mint, maxt, &self.warnings)
            .await?
        {
            Some(v) => Ok(v),
            None => match f.no_store(mint, maxt, &self.warnings)? {
                Some(b) => b.label_values(name, matchers, mint, maxt).await,
                None => Ok(Vec::new()),
            },
        }
    }
}

#[async_trait]
impl SeriesSource for RequestView {
    async fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        let f = &self.federation;
        match f
            .select_with(
                matchers,
                mint,
                maxt,
                true,
                &self.warnings,
                &SampleBudget::unlimited(),
                Resolution {
                    max_window: self.warnings.opts.max_source_resolution,
                    read: AggrRead::Average,
                },
            )
            .await?
        {
            Some(s) => Ok(s.into_iter().map(|s| s.labels).collect()),
            None => match f.no_store(mint, maxt, &self.warnings)? {
                Some(b) => b.series(matchers, mint, maxt).await,
                None => Ok(Vec::new()),
            },
        }
    }

    fn is_ready(&self) -> bool {
        self.federation
            .embedded
            .as_ref()
            .is_none_or(|b| b.is_ready())
    }

    fn take_warnings(&self) -> Vec<String> {
        self.warnings.take()
    }

    async fn stores(&self) -> Vec<StoreStatus> {
        self.federation.store_statuses().await
    }
}

impl FederatedSource {
    pub(super) fn view(&self, opts: &StoreOptions) -> RequestView {
        RequestView {
            federation: self.0.clone(),
            warnings: RequestCtx {
                warnings: Mutex::default(),
                opts: opts.clone(),
            },
        }
    }

    /// Logs warnings of a request made without a view (only the API's own requests have one).
    fn log(view: &RequestView) {
        for w in view.warnings.take() {
            tracing::warn!(warning = %w, "partial answer");
        }
    }
}

#[async_trait]
impl Queryable for FederatedSource {
    async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let v = self.view(&StoreOptions::default());
        let r = v.select(matchers, mint, maxt).await;
        Self::log(&v);
        r
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let v = self.view(&StoreOptions::default());
        let r = v.label_names(matchers, mint, maxt).await;
        Self::log(&v);
        r
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let v = self.view(&StoreOptions::default());
        let r = v.label_values(name, matchers, mint, maxt).await;
        Self::log(&v);
        r
    }
}

#[async_trait]
impl SeriesSource for FederatedSource {
    async fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        let v = self.view(&StoreOptions::default());
        let r = v.series(matchers, mint, maxt).await;
        Self::log(&v);
        r
    }

    fn is_ready(&self) -> bool {
        self.0.embedded.as_ref().is_none_or(|b| b.is_ready())
    }

    fn for_request(&self, opts: &StoreOptions) -> Option<Arc<dyn SeriesSource>> {
        Some(Arc::new(self.view(opts)))
    }

    async fn stores(&self) -> Vec<StoreStatus> {
        self.0.store_statuses().await
    }
}
