//! The store gateway's own flags (Thanos' `thanos store` names and defaults), shared by
//! `strata store` and the store role of `strata node`.

use std::time::Duration;

/// Store-gateway flags beyond the bucket and listen addresses.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreGatewayFlags {
    /// How often the store looks for new or removed blocks in the bucket.
    #[arg(long = "sync-block-duration", default_value = "15m", value_parser = humantime::parse_duration)]
    pub sync_interval: Duration,
}
