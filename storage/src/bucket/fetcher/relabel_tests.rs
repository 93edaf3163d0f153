use super::*;
use crate::block::meta::{BlockMeta, META_FILENAME};
use crate::bucket::fetcher::MetaFetcher;
use crate::bucket::ObjectStoreBucket;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::sync::Arc;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn shard(n: u64) -> RelabelConfig {
    RelabelConfig::parse(&format!(
        "- action: hashmod\n  source_labels: [__block_id]\n  target_label: shard\n  modulus: 2\n- action: keep\n  source_labels: [shard]\n  regex: {n}\n"
    ))
    .unwrap()
}

#[test]
fn hashmod_matches_prometheus() {
    // Prometheus' relabel_test.go: "baz" with modulus 1000 hashes to 976.
    assert_eq!(hash_mod("baz", 1000), 976);
    let c = RelabelConfig::parse(
        "- source_labels: [c]\n  target_label: d\n  action: HashMod\n  modulus: 1000\n- source_labels: [d]\n  regex: '976'\n  action: keep\n",
    )
    .unwrap();
    assert!(c.keeps(&labels(&[("c", "baz")])));
    assert!(!c.keeps(&labels(&[("c", "foo")])));
}

#[test]
fn keep_and_drop_use_anchored_regexes_over_joined_source_labels() {
    let keep =
        RelabelConfig::parse("- action: keep\n  source_labels: [region, replica]\n  regex: eu;a\n")
            .unwrap();
    assert!(keep.keeps(&labels(&[("region", "eu"), ("replica", "a")])));
    assert!(!keep.keeps(&labels(&[("region", "eu-west"), ("replica", "a")])));
    // A missing label joins as "".
    assert!(!keep.keeps(&labels(&[("region", "eu")])));
    let drop =
        RelabelConfig::parse("- action: drop\n  source_labels: [region]\n  regex: us.*\n").unwrap();
    assert!(!drop.keeps(&labels(&[("region", "us-east")])));
    assert!(drop.keeps(&labels(&[("region", "eu")])));
    assert!(drop.keeps(&labels(&[])));
}

#[test]
fn two_hashmod_shards_partition_blocks_exactly() {
    let (zero, one) = (shard(0), shard(1));
    let mut counts = [0usize; 2];
    for n in 0..200u128 {
        let id = Ulid::from_parts(1_700_000_000_000 + n as u64, n * 7919);
        let ext = labels(&[("region", "eu")]);
        let (a, b) = (zero.keeps_block(id, &ext), one.keeps_block(id, &ext));
        assert!(a != b, "block {id}: shard 0 keeps {a}, shard 1 keeps {b}");
        counts[usize::from(b)] += 1;
    }
    // Both shards get a fair part (the hash is uniform; 200 blocks).
    assert!(counts[0] > 50 && counts[1] > 50, "{counts:?}");
}

#[test]
fn bad_configs_are_refused_naming_the_problem() {
    let e = RelabelConfig::parse("- action: replace\n  target_label: x\n").unwrap_err();
    assert!(
        matches!(&e, RelabelError::UnsupportedAction { index: 0, action } if action == "replace"),
        "{e}"
    );
    // Prometheus' default action is replace, which does not select blocks.
    assert!(RelabelConfig::parse("- source_labels: [a]\n").is_err());
    let e = RelabelConfig::parse("- action: keep\n  regex: '('\n").unwrap_err();
    assert!(e.to_string().contains("invalid regex"), "{e}");
    let e = RelabelConfig::parse("- action: hashmod\n  target_label: s\n").unwrap_err();
    assert!(e.to_string().contains("modulus"), "{e}");
    let e = RelabelConfig::parse("- action: hashmod\n  modulus: 2\n").unwrap_err();
    assert!(e.to_string().contains("target_label"), "{e}");
    let e = RelabelConfig::parse("- action: keep\n  source_label: [a]\n").unwrap_err();
    assert!(e.to_string().contains("source_label"), "{e}");
    assert!(RelabelConfig::parse("action: keep").is_err());
    assert!(RelabelConfig::parse("  \n").unwrap().is_empty());
}

#[tokio::test]
async fn relabel_filter_selects_blocks_of_one_shard_from_the_bucket() {
    let b: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
    let mut all = BTreeSet::new();
    for n in 0..20u128 {
        let id = Ulid::from_parts(1_700_000_000_000 + n as u64, n);
        let m = BlockMeta::new_level1(id, 0, 10);
        b.put(&format!("{id}/{META_FILENAME}"), Bytes::from(m.to_json()))
            .await
            .unwrap();
        all.insert(id);
    }
    let mut union = BTreeSet::new();
    for n in 0..2 {
        let f = MetaFetcher::new(b.clone())
            .with_filter(RelabelFilter { config: shard(n) })
            .fetch()
            .await
            .unwrap();
        assert!(f.excluded.values().all(|r| *r == "label-excluded"));
        assert_eq!(f.metas.len() + f.excluded.len(), all.len());
        for id in f.metas.keys() {
            assert!(union.insert(*id), "block {id} in both shards");
        }
    }
    assert_eq!(union, all);
}
