//! Thanos' per-request StoreAPI parameters: `partial_response` (overrides
//! `--query.partial-response`), `storeMatch[]` (only the endpoints whose `__address__`
//! matches one of the selectors are asked) and `max_source_resolution` (how coarse the
//! downsampled data read may be).

use super::params::{parse_series_selector, Form};
use super::response::ApiError;
use storage::matcher::Matcher;

/// The StoreAPI options of one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreOptions {
    /// `partial_response`, when given.
    pub partial_response: Option<bool>,
    /// `storeMatch[]` selectors; empty: every endpoint.
    pub store_match: Vec<Vec<Matcher>>,
    /// `max_source_resolution` as given.
    pub requested_resolution: SourceResolution,
    /// The coarsest resolution read, in ms (0: raw data only), once
    /// [`StoreOptions::resolve_resolution`] applied the request's default.
    pub max_source_resolution: i64,
}

/// The `max_source_resolution` parameter as the request gives it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SourceResolution {
    /// Not given.
    #[default]
    Absent,
    /// `auto`: the request's default (a range query's step / 5).
    Auto,
    /// A duration, in ms.
    Millis(i64),
}

/// Parses `max_source_resolution` with Thanos' messages.
fn parse_source_resolution(raw: &str) -> Result<SourceResolution, ApiError> {
    match raw {
        "" => Ok(SourceResolution::Absent),
        "auto" => Ok(SourceResolution::Auto),
        _ => {
            let ns = super::params::parse_duration(raw).map_err(|e| {
                ApiError::bad_data(format!("'max_source_resolution' parameter: {e}"))
            })?;
            if ns < 0 {
                return Err(ApiError::bad_data(
                    "negative 'max_source_resolution' is not accepted. Try a positive integer",
                ));
            }
            Ok(SourceResolution::Millis(ns / 1_000_000))
        }
    }
}

impl StoreOptions {
    /// Reads the parameters from `form`, with Thanos' errors for bad values.
    pub fn from_form(form: &Form) -> Result<Self, ApiError> {
        let raw = form.value("partial_response");
        let partial_response = if raw.is_empty() {
            None
        } else {
            Some(parse_go_bool(raw).ok_or_else(|| {
                ApiError::bad_data(format!(
                    "'partial_response' parameter: strconv.ParseBool: parsing {}: invalid syntax",
                    super::params::go_quote(raw)
                ))
            })?)
        };
        let store_match = form
            .values("storeMatch[]")
            .into_iter()
            .map(|s| parse_series_selector(s).map_err(ApiError::bad_data))
            .collect::<Result<Vec<_>, _>>()?;
        let requested_resolution = parse_source_resolution(form.value("max_source_resolution"))?;
        let mut opts = StoreOptions {
            partial_response,
            store_match,
            requested_resolution,
            max_source_resolution: 0,
        };
        opts.resolve_resolution(0, false);
        Ok(opts)
    }

    /// Sets the resolution read as Thanos' `parseDownsamplingParamMillis` does: `default_ms`
    /// when the request says `auto` or `--query.auto-downsampling` is on, a given duration
    /// always wins, and raw data otherwise.
    pub fn resolve_resolution(&mut self, default_ms: i64, auto_downsampling: bool) {
        self.max_source_resolution = match self.requested_resolution {
            SourceResolution::Millis(ms) => ms,
            SourceResolution::Auto => default_ms,
            SourceResolution::Absent if auto_downsampling => default_ms,
            SourceResolution::Absent => 0,
        };
    }

    /// As [`StoreOptions::from_form`], with `storeMatch[]` selectors parsed off the async
    /// runtime (see [`super::params::off_runtime`]).
    pub async fn read(form: &Form) -> Result<Self, ApiError> {
        if form.values("storeMatch[]").is_empty() {
            return Self::from_form(form);
        }
        let form = form.clone();
        super::params::off_runtime(move || Self::from_form(&form)).await?
    }

    /// Whether the endpoint at `address` is asked (Thanos' `storeMatchDebugMetadata`: a
    /// selector's labels other than `__address__` are matched as empty).
    pub fn selects(&self, address: &str) -> bool {
        self.store_match.is_empty()
            || self.store_match.iter().any(|set| {
                set.iter().all(|m| {
                    m.matches(if m.name() == "__address__" {
                        address
                    } else {
                        ""
                    })
                })
            })
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(q: &str) -> Result<StoreOptions, ApiError> {
        StoreOptions::from_form(&Form::new(None, Some(q)))
    }

    #[test]
    fn partial_response_parses_as_go_bools_and_bad_values_are_refused() {
        assert_eq!(opts("").expect("none").partial_response, None);
        assert_eq!(
            opts("partial_response=false").expect("f").partial_response,
            Some(false)
        );
        assert_eq!(
            opts("partial_response=1").expect("t").partial_response,
            Some(true)
        );
        let e = opts("partial_response=maybe").expect_err("refused");
        assert_eq!(
            e.message,
            "'partial_response' parameter: strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
    }

    #[test]
    fn max_source_resolution_takes_durations_auto_and_thanos_defaults() {
        let resolved = |q: &str, default_ms: i64, auto: bool| {
            let mut o = opts(q).expect("parses");
            o.resolve_resolution(default_ms, auto);
            o.max_source_resolution
        };
        assert_eq!(resolved("", 60_000, false), 0);
        assert_eq!(resolved("", 60_000, true), 60_000);
        assert_eq!(
            resolved("max_source_resolution=auto", 60_000, false),
            60_000
        );
        assert_eq!(resolved("max_source_resolution=5m", 60_000, true), 300_000);
        assert_eq!(resolved("max_source_resolution=1h", 0, false), 3_600_000);
        assert_eq!(resolved("max_source_resolution=300", 0, false), 300_000);
        assert_eq!(resolved("max_source_resolution=0s", 60_000, true), 0);
        let e = opts("max_source_resolution=fast").expect_err("refused");
        assert!(
            e.message.starts_with("'max_source_resolution' parameter: "),
            "{}",
            e.message
        );
        let e = opts("max_source_resolution=-5").expect_err("refused");
        assert_eq!(
            e.message,
            "negative 'max_source_resolution' is not accepted. Try a positive integer"
        );
    }

    #[test]
    fn store_match_selects_endpoints_by_address() {
        let o = opts("storeMatch[]=%7B__address__%3D~%22127.0.0.1%3A1.*%22%7D").expect("ok");
        assert!(o.selects("127.0.0.1:10901"));
        assert!(!o.selects("127.0.0.1:20901"));
        let two = opts(
            "storeMatch[]=%7B__address__%3D%22a%3A1%22%7D&storeMatch[]=%7B__address__%3D%22b%3A1%22%7D",
        )
        .expect("ok");
        assert!(two.selects("a:1") && two.selects("b:1") && !two.selects("c:1"));
        // A label other than the address is matched as empty.
        assert!(!opts("storeMatch[]=%7Bzone%3D%22x%22%7D")
            .expect("ok")
            .selects("a:1"));
        assert!(opts("").expect("none").selects("anything:1"));
        assert!(opts("storeMatch[]=%7B").is_err());
    }
}
