//! `--role`: which roles a node runs, and each role's component under the cluster. A new role
//! is one component plus one arm in [`component`].

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use raft::{RaftNode, Role};

use super::{query_args, registry_stores, NodeArgs};
use crate::compact::CompactRole;
use crate::query::{self, QueryRole};
use crate::rule::cluster::RuleRole;
use crate::server::Component;
use crate::sidecar::shipper::ShipperMetrics;
use crate::sidecar::Sidecar;
use crate::store::cli::StoreRole;
use crate::store::flags::StoreGatewayFlags;

/// Parses one `--role` value (a comma list is split by clap); only roles this binary runs.
pub fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}

/// The role set, refusing combinations one process cannot serve.
pub fn check_roles(roles: &[Role]) -> anyhow::Result<BTreeSet<Role>> {
    let set: BTreeSet<Role> = roles.iter().cloned().collect();
    if set.contains(&Role::Store) && set.contains(&Role::Sidecar) {
        bail!(
            "--role store and sidecar both serve the StoreAPI on the node's one gRPC port; run \
             them on two nodes"
        );
    }
    Ok(set)
}

/// The role components of a node running `roles`, and whether the node serves a StoreAPI the
/// others should find in the registry (store, sidecar, or rule results).
///
/// The rule role is built first: its results are served live, by the store role's StoreAPI
/// when the node runs one (a port carries one `thanos.Store`), else by its own; the node's
/// query role reads them in process.
pub fn components(
    roles: &BTreeSet<Role>,
    args: &NodeArgs,
    node: &RaftNode,
    registry: &prometheus::Registry,
) -> anyhow::Result<(Vec<Arc<dyn Component>>, bool)> {
    // Both ship blocks: one set of `thanos_shipper_*` counters in the node's registry.
    let shipper = if roles.contains(&Role::Sidecar) && roles.contains(&Role::Rule) {
        Some(ShipperMetrics::register(registry).context("registering shipper metrics")?)
    } else {
        None
    };
    let rule = if roles.contains(&Role::Rule) {
        let secret = crate::cluster::load_secret(args.secret_file.as_deref(), args.insecure)?;
        let role = RuleRole::new(
            args.rule.clone(),
            &args.objstore,
            rule_storage(args, registry, shipper.clone())?,
            args.sync_interval,
            node.clone(),
            secret,
            registry,
        )?;
        let own_store = !roles.contains(&Role::Store) && !roles.contains(&Role::Sidecar);
        let role = if own_store {
            role.serving_store_api()
        } else {
            role
        };
        Some(Arc::new(if roles.contains(&Role::Query) {
            role.without_rules_http()
        } else {
            role
        }))
    } else {
        None
    };
    let results = rule.clone().filter(|r| r.keeps_results());
    let shared = Shared {
        rule,
        results,
        shipper,
    };
    let mut out = Vec::new();
    for role in roles {
        if let Some(c) = component(role, roles, args, node, registry, &shared)? {
            out.push(c);
        }
    }
    let announce =
        roles.contains(&Role::Store) || roles.contains(&Role::Sidecar) || shared.results.is_some();
    Ok((out, announce))
}

/// What one role's component takes from another's.
struct Shared {
    /// The node's rule role, built first.
    rule: Option<Arc<RuleRole>>,
    /// The same when it keeps results (it has rule files).
    results: Option<Arc<RuleRole>>,
    /// The shipper metrics of a node whose sidecar and rule roles both ship blocks.
    shipper: Option<ShipperMetrics>,
}

/// The component of `role` in a node running `roles`; `None` for a role accepted but not
/// built yet.
fn component(
    role: &Role,
    roles: &BTreeSet<Role>,
    args: &NodeArgs,
    node: &RaftNode,
    registry: &prometheus::Registry,
    shared: &Shared,
) -> anyhow::Result<Option<Arc<dyn Component>>> {
    let results = &shared.results;
    Ok(Some(match role {
        Role::Query => {
            let qargs = query_args(args);
            let stores = registry_stores(
                node,
                roles.contains(&Role::Store),
                // A sidecar's StoreAPI does not carry the results: they are read in process
                // only (other nodes do not see them yet).
                results.as_ref().map(|r| r.results_source()),
                !roles.contains(&Role::Sidecar),
            );
            let embedded = query::build(&qargs, registry.clone(), Some(stores))?;
            // With the rule role too, /api/v1/rules and /api/v1/alerts aggregate every node's
            // thanos.Rules (this node's included): the cluster's groups, each from its owner.
            Arc::new(QueryRole::new(embedded, qargs.sync_interval, false))
        }
        Role::Store => {
            // A node that only reads the bucket must not conjure up an empty one from a typo.
            let bucket = if roles.contains(&Role::Compact) {
                args.objstore.open()?
            } else {
                args.objstore.open_existing()?
            };
            let gateway = StoreGatewayFlags::for_node(args.sync_interval, &args.store)?;
            let role =
                StoreRole::with_gateway(bucket, &args.objstore.data_dir, registry, &gateway)?;
            Arc::new(match results {
                Some(r) => role.with_rule_results(r.results_store()),
                None => role,
            })
        }
        Role::Sidecar => {
            let bucket = args.objstore.open()?;
            let sidecar = Sidecar::new(args.sidecar.clone(), i64::MIN, Some(bucket), registry)?;
            Arc::new(match &shared.shipper {
                Some(m) => sidecar.with_shipper_metrics(m.clone()),
                None => sidecar,
            })
        }
        Role::Rule => match &shared.rule {
            Some(r) => r.clone(),
            None => return Ok(None),
        },
        Role::Compact => {
            let secret = crate::cluster::load_secret(args.secret_file.as_deref(), args.insecure)?;
            Arc::new(CompactRole::cluster(
                args.objstore.open()?,
                &args.compact,
                &args.objstore.data_dir,
                node.clone(),
                secret,
                registry,
            )?)
        }
        Role::Unknown(name) => bail!("unknown role {name:?}"),
    }))
}

/// The rule role's results go to `<data-dir>/rule`, uploaded to the node's bucket when it has
/// one: an objstore flag, or an existing `<data-dir>/bucket`.
fn rule_storage(
    args: &NodeArgs,
    registry: &prometheus::Registry,
    shared_shipper: Option<ShipperMetrics>,
) -> anyhow::Result<crate::rule::cluster::RuleStorage> {
    let flagged = args.objstore.config_file.is_some() || args.objstore.config.is_some();
    let upload = if flagged {
        Some(args.objstore.open()?)
    } else {
        // The default bucket is not created for the results alone: a node without one keeps
        // them local, as `strata rule` without objstore flags.
        args.objstore.open_existing().ok()
    };
    if upload.is_none() {
        tracing::info!("no bucket: the rule role's blocks stay in <data-dir>/rule");
    }
    let upload = match upload {
        Some(bucket) => Some((
            bucket,
            match shared_shipper {
                Some(m) => m,
                None => {
                    ShipperMetrics::register(registry).context("registering shipper metrics")?
                }
            },
        )),
        None => None,
    };
    Ok(crate::rule::cluster::RuleStorage {
        dir: args.objstore.data_dir.join("rule"),
        upload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_sidecar_together_are_refused_with_the_reason() {
        let e = check_roles(&[Role::Query, Role::Store, Role::Sidecar]).unwrap_err();
        assert!(e.to_string().contains("one gRPC port"), "{e}");
        let ok = check_roles(&[Role::Query, Role::Sidecar, Role::Query]).expect("allowed");
        assert_eq!(ok, [Role::Query, Role::Sidecar].into());
    }

    #[test]
    fn node_flags_are_unique_with_the_compact_roles_flags() {
        use clap::CommandFactory as _;
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: NodeArgs,
        }
        // clap checks that no two flags share a name or id.
        Cli::command().debug_assert();
    }

    #[test]
    fn role_flag_names_the_bad_value() {
        assert_eq!(parse_role("sidecar"), Ok(Role::Sidecar));
        let e = parse_role("gateway").unwrap_err();
        assert!(e.contains("\"gateway\""), "{e}");
    }
}
