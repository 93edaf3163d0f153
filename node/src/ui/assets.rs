//! The UI's files, compiled into the binary from `node/ui/`.

/// The shell every page shares.
pub const PAGE_HTML: &str = include_str!("../../ui/page.html");

/// One file served under `/static/`.
pub struct Asset {
    /// Its bytes.
    pub body: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `/static/`, by name.
const FILES: &[(&str, &str, &str)] = &[
    (
        "style.css",
        include_str!("../../ui/style.css"),
        "text/css; charset=utf-8",
    ),
    ("common.js", include_str!("../../ui/common.js"), JS),
    ("chart.js", include_str!("../../ui/chart.js"), JS),
    ("complete.js", include_str!("../../ui/complete.js"), JS),
    ("graph.js", include_str!("../../ui/graph.js"), JS),
    ("stores.js", include_str!("../../ui/stores.js"), JS),
    ("blocks.js", include_str!("../../ui/blocks.js"), JS),
    ("cluster.js", include_str!("../../ui/cluster.js"), JS),
    ("rules.js", include_str!("../../ui/rules.js"), JS),
    ("alerts.js", include_str!("../../ui/alerts.js"), JS),
];

/// The file called `name`, if the UI has one.
pub fn find(name: &str) -> Option<Asset> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, body, content_type)| Asset { body, content_type })
}
