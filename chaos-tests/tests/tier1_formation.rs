//! Tier 1, formation: three `strata node` processes, each in its own network namespace, each
//! given only `--cluster.peers dns+peers:10901` (dnsmasq answers `peers` with all three), form
//! one cluster of three voters with one leader, and `strata cluster status` shows it. Needs root
//! and Debian's iproute2, iptables and dnsmasq-base (else SKIPPED), and the `strata` binary.

use std::process::Command;
use std::time::Duration;

use chaos_tests::env::ready_or_skip;
use chaos_tests::strata::binary::strata_binary;
use chaos_tests::strata::node::NodeOptions;
use chaos_tests::strata::observer::{snapshot, targets};
use chaos_tests::strata::wait::wait_settled;
use chaos_tests::strata::HTTP_PORT;
use chaos_tests::Cluster;

fn strata_or_panic() -> std::path::PathBuf {
    strata_binary().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn three_nodes_form_one_cluster_from_one_dns_name() {
    if !ready_or_skip("three_nodes_form_one_cluster_from_one_dns_name") {
        return;
    }
    let bin = strata_or_panic();
    let mut c = Cluster::new("tier1-form", 3).unwrap_or_else(|e| panic!("cluster: {e}"));
    let opts = NodeOptions::new(bin.clone(), c.dir()).unwrap_or_else(|e| panic!("{e}"));
    c.start_all(|n| opts.command(n))
        .unwrap_or_else(|e| panic!("start: {e}"));
    let t = targets(&c);
    let settled = wait_settled(&t, 3, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "formed in {:.1}s: leader {} ({}) term {}, voters {:?}",
        settled.took.as_secs_f64(),
        settled.leader,
        settled.leader_node,
        settled.term,
        settled.voters
    );

    // Every node sees the same three voters, each at its bridge address, and distinct ids.
    let seen = snapshot(&t, Duration::from_secs(2));
    let mut ids: Vec<u64> = seen
        .iter()
        .filter_map(|(_, s)| s.as_ref().map(|s| s.node_id))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, settled.voters, "each node is one of the voters");
    for (id, s) in &seen {
        let s = s
            .as_ref()
            .unwrap_or_else(|| panic!("{id} stopped answering"));
        let mut grpc: Vec<String> = s.members.iter().map(|m| m.grpc_address.clone()).collect();
        grpc.sort();
        let mut want: Vec<String> = t.iter().map(|x| x.grpc.to_string()).collect();
        want.sort();
        assert_eq!(grpc, want, "{id}'s members advertise the bridge addresses");
    }

    // `strata cluster status` run from the test (root namespace) shows it, on every node.
    for x in &t {
        let out = Command::new(&bin)
            .args(["cluster", "status", "--http-address"])
            .arg(format!("{}:{HTTP_PORT}", x.http.ip()))
            .output()
            .unwrap_or_else(|e| panic!("running strata cluster status: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "strata cluster status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("$ strata cluster status --http-address {}\n{text}", x.http);
        assert!(
            text.contains(&format!(", leader {}, term ", settled.leader)),
            "{text}"
        );
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| t.iter().any(|y| l.contains(&y.grpc.to_string())))
            .collect();
        assert_eq!(rows.len(), 3, "one row per node:\n{text}");
        assert!(rows.iter().all(|r| r.contains(" voter ")), "{text}");
        let starred: Vec<&&str> = rows.iter().filter(|r| r.contains(" * ")).collect();
        assert_eq!(starred.len(), 1, "exactly one leader marked:\n{text}");
        assert!(
            starred[0].starts_with(&settled.leader.to_string()),
            "the marked row is the leader's:\n{text}"
        );
    }
    let json = Command::new(&bin)
        .args(["cluster", "status", "-o", "json", "--http-address"])
        .arg(t[0].http.to_string())
        .output()
        .unwrap_or_else(|e| panic!("running strata cluster status -o json: {e}"));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("cluster status -o json is not JSON: {e}"));
    assert_eq!(v["leader_id"].as_u64(), Some(settled.leader));
    assert_eq!(v["members"].as_array().map(Vec::len), Some(3));
}
