//! Faults a test injects into a [`Cluster`], and how they are undone.
//!
//! Network faults are iptables rules in the nodes' own namespaces (the root namespace is
//! never touched), on INPUT and only for peer addresses: the test process at .254 and the DNS
//! server at .1 stay reachable, as Jepsen's control node does. The kernel here has no netem,
//! so there is no delay fault (see build-and-env.md section 4). Clock faults rewrite the
//! libfaketime control files of nodes started under it (see `clock`).

pub mod clock;
mod grudge;
pub mod schedule;

use serde::Serialize;
use serde_json::{json, Value};

pub use grudge::Grudge;
pub use schedule::{FaultKind, Schedule};

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::history::{Actor, History, OpKind};
use crate::net::NodeId;

/// One fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fault")]
pub enum Fault {
    /// Drop packets as the grudge says.
    Partition {
        /// Who drops whose packets.
        grudge: Grudge,
    },
    /// Drop each packet from a peer with this probability, on these nodes.
    Loss {
        /// Nodes that lose incoming peer packets.
        nodes: Vec<NodeId>,
        /// Drop probability in (0, 1].
        probability: f64,
    },
    /// SIGKILL these nodes (healing restarts them).
    Kill {
        /// Victims.
        nodes: Vec<NodeId>,
    },
    /// SIGSTOP these nodes (healing resumes them).
    Pause {
        /// Victims.
        nodes: Vec<NodeId>,
    },
    /// Each node's wall clock jumps by its offset (ms, forward or back) and stays there until
    /// healed (Jepsen's clock bump). Nodes must run under libfaketime.
    ClockBump {
        /// (node, offset in ms).
        offsets: Vec<(NodeId, i64)>,
    },
    /// These nodes' wall clocks flip between `+delta_ms` and true time every `period_ms`
    /// until healed (Jepsen's clock strobe).
    ClockStrobe {
        /// Victims.
        nodes: Vec<NodeId>,
        /// The offset of the skewed half of each period (ms, may be negative).
        delta_ms: i64,
        /// How long each half lasts (ms).
        period_ms: u64,
    },
}

impl Fault {
    /// The short name used as the history's `f`.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::Loss { .. } => "loss",
            Fault::Kill { .. } => "kill",
            Fault::Pause { .. } => "pause",
            Fault::ClockBump { .. } => "clock-bump",
            Fault::ClockStrobe { .. } => "clock-strobe",
        }
    }
}

/// Adds `fault` to the cluster (on top of any fault already in force).
pub fn apply(cluster: &mut Cluster, fault: &Fault) -> Result<()> {
    match fault {
        Fault::Partition { grudge } => {
            for (target, sources) in &grudge.0 {
                for source in sources {
                    let from = cluster.net().host(*source)?.addr.to_string();
                    cluster
                        .net()
                        .iptables(*target, &["-A", "INPUT", "-s", &from, "-j", "DROP"])?;
                }
            }
        }
        Fault::Loss { nodes, probability } => {
            if !(*probability > 0.0 && *probability <= 1.0) {
                return Err(Error::InvalidFault(format!(
                    "loss probability {probability}"
                )));
            }
            let p = format!("{probability:.4}");
            let all = cluster.ids();
            for target in nodes {
                for source in all.iter().filter(|s| *s != target) {
                    let from = cluster.net().host(*source)?.addr.to_string();
                    let rule = [
                        "-A",
                        "INPUT",
                        "-s",
                        &from,
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                    ];
                    let rule: Vec<&str> = rule
                        .into_iter()
                        .chain(["--probability", &p, "-j", "DROP"])
                        .collect();
                    cluster.net().iptables(*target, &rule)?;
                }
            }
        }
        Fault::Kill { nodes } => {
            for n in nodes {
                cluster.kill(*n)?;
            }
        }
        Fault::Pause { nodes } => {
            for n in nodes {
                cluster.pause(*n)?;
            }
        }
        Fault::ClockBump { offsets } => {
            for (n, offset_ms) in offsets {
                clock::set_offset(&faked_control(cluster, *n)?, *offset_ms)?;
            }
        }
        Fault::ClockStrobe {
            nodes,
            delta_ms,
            period_ms,
        } => {
            for n in nodes {
                let control = faked_control(cluster, *n)?;
                // Bounded so a strobe outlives no test; heal stops it sooner.
                let period = std::time::Duration::from_millis(*period_ms);
                clock::start_strobe(&control, *delta_ms, period, STROBE_AT_MOST);
            }
        }
    }
    Ok(())
}

/// The longest a strobe runs when nothing heals it.
const STROBE_AT_MOST: std::time::Duration = std::time::Duration::from_secs(600);

/// Node `id`'s clock control file, refused when its process does not run under libfaketime
/// (a skew written there would silently change nothing).
fn faked_control(cluster: &mut Cluster, id: NodeId) -> Result<std::path::PathBuf> {
    let control = clock::control_file(cluster.dir(), id);
    let faked = cluster.process(id)?.spec().env.iter().any(|(k, v)| {
        k == "FAKETIME_TIMESTAMP_FILE" && std::path::Path::new(v) == control.as_path()
    });
    if faked {
        Ok(control)
    } else {
        Err(Error::InvalidFault(format!(
            "node {id} was not started under libfaketime with control file {}",
            control.display()
        )))
    }
}

/// Removes every iptables rule in every node's namespace.
pub fn heal_network(cluster: &Cluster) -> Result<()> {
    for id in cluster.ids() {
        cluster.net().iptables(id, &["-F", "INPUT"])?;
        cluster.net().iptables(id, &["-F", "OUTPUT"])?;
    }
    Ok(())
}

/// Undoes every fault: network healed, clocks back to true time, paused nodes resumed, killed
/// nodes restarted.
pub fn heal_all(cluster: &mut Cluster) -> Result<()> {
    heal_network(cluster)?;
    clock::reset(cluster.dir(), &cluster.ids())?;
    cluster.revive_all()
}

/// Applies `fault` and records it in `history` as the nemesis (`info` invoke and completion,
/// the completion's value being the fault or the error).
pub fn apply_recorded(cluster: &mut Cluster, history: &History, fault: &Fault) -> Result<()> {
    let value = serde_json::to_value(fault).unwrap_or(Value::Null);
    history.record(
        Actor::Nemesis,
        OpKind::Invoke,
        fault.name(),
        value.clone(),
        None,
    );
    let result = apply(cluster, fault);
    let done = match &result {
        Ok(()) => value,
        Err(e) => json!({"error": e.to_string()}),
    };
    history.record(Actor::Nemesis, OpKind::Info, fault.name(), done, None);
    result
}

/// [`heal_all`], recorded in `history` as the nemesis' `heal`.
pub fn heal_recorded(cluster: &mut Cluster, history: &History) -> Result<()> {
    history.record(Actor::Nemesis, OpKind::Invoke, "heal", Value::Null, None);
    let result = heal_all(cluster);
    let done = match &result {
        Ok(()) => json!("healed"),
        Err(e) => json!({"error": e.to_string()}),
    };
    history.record(Actor::Nemesis, OpKind::Info, "heal", done, None);
    result
}
