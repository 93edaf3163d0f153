//! Rule files from outside: parsing and validating any bytes as a rule file never panics, and
//! every alert template a valid file holds also parses on its own and executes without
//! panicking.
//!
//! node is a binary crate, so its `rule/{yaml,file,template,funcs}.rs` and `http/params.rs`
//! are compiled into this target with `#[path]` includes under the module names node uses.
#![no_main]

#[allow(dead_code)]
#[path = "common/query_input.rs"]
mod query_input;

use libfuzzer_sys::fuzz_target;
use query_input::within_bounds;

/// node's `http` module, reduced to `params` and what it uses.
#[allow(dead_code)]
#[path = "../../node/src/http"]
mod http {
    /// node's `http::FORM_LIMIT`.
    pub const FORM_LIMIT: usize = 10 << 20;

    /// params.rs's `super::response`.
    pub mod response {
        /// node's `ApiError`, reduced to what params.rs builds.
        #[derive(Debug)]
        pub struct ApiError {
            pub message: String,
        }

        impl ApiError {
            pub fn bad_data(message: impl Into<String>) -> Self {
                ApiError {
                    message: message.into(),
                }
            }

            pub fn internal(message: impl Into<String>) -> Self {
                ApiError {
                    message: message.into(),
                }
            }
        }

        /// node's quoting bound: at most `max` characters, then `...`.
        pub fn bounded(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
            match s.char_indices().nth(max) {
                None => std::borrow::Cow::Borrowed(s),
                Some((at, _)) => std::borrow::Cow::Owned(format!("{}...", &s[..at])),
            }
        }
    }

    pub mod params;
}

/// node's `rule` module, the parts that read files.
#[allow(dead_code)]
#[path = "../../node/src/rule"]
mod rule {
    pub mod file;
    pub mod funcs;
    pub mod template;
    pub mod yaml;
}

fuzz_target!(|input: &[u8]| {
    // Expressions beyond these bounds reach promql-parser's known panic, which Strata catches
    // but libFuzzer reports (see common/query_input.rs).
    if !within_bounds(&String::from_utf8_lossy(input)) {
        return;
    }
    let Ok(groups) = rule::file::parse(input) else {
        return;
    };
    let env = rule::funcs::Env::default();
    for r in groups.groups.iter().flat_map(|g| &g.rules) {
        if r.alert.is_empty() {
            continue;
        }
        let data = rule::template::alert_data(&r.labels, &r.labels, "http://x/", 1.5);
        for text in r.labels.values().chain(r.annotations.values()) {
            let text = format!("{}{text}", rule::template::ALERT_DEFS);
            let t = rule::template::Template::parse("__alert_fuzz", &text)
                .expect("a template that validated parses again");
            let _ = t.execute(&data, &env);
        }
    }
});
