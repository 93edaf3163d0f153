//! Many small blocks for the store start-up bench: COUNT consecutive 2 h blocks of SERIES
//! series (one sample a minute), each with meta.json's `thanos` section as Thanos' shipper
//! writes it (external labels, `files` with sizes), so the store opens them without listing.
//!
//! ```sh
//! cargo run --release -p storage --example gen_small_blocks -- DIR COUNT [SERIES]
//! ```

use std::collections::BTreeMap;
use storage::block::meta::{BlockFile, ThanosMeta};
use storage::block::{write_block, BlockWriterOptions};
use storage::labels::Labels;

const BLOCK_MS: i64 = 2 * 3600 * 1000;
const STEP_MS: i64 = 60_000;
/// 2024-01-01T00:00:00Z, 2 h aligned.
const START_MS: i64 = 1_704_067_200_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(count)) = (args.next(), args.next()) else {
        return Err("usage: gen_small_blocks DIR COUNT [SERIES]".into());
    };
    let count: i64 = count.parse()?;
    let series: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(6);
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    for b in 0..count {
        let mint = START_MS + b * BLOCK_MS;
        let data = (0..series)
            .map(|i| {
                let labels = Labels::from_pairs([
                    ("__name__", "demo_num_cpus"),
                    ("instance", &format!("host-{i}:9100")),
                    ("job", "demo"),
                ]);
                let samples = (0..BLOCK_MS / STEP_MS)
                    .map(|k| (mint + k * STEP_MS, (i + 1) as f64))
                    .collect();
                (labels, samples)
            })
            .collect();
        let thanos = ThanosMeta {
            version: 1,
            labels: BTreeMap::from([("cluster".to_string(), "bench".to_string())]),
            source: "sidecar".into(),
            ..Default::default()
        };
        let (block_dir, mut meta) =
            write_block(&dir, data, Some(thanos), BlockWriterOptions::default())?;
        // As Thanos' shipper uploads it: no tombstones, every file with its size, meta.json
        // without one.
        std::fs::remove_file(block_dir.join("tombstones"))?;
        let mut files = Vec::new();
        for rel in ["chunks/000001", "index"] {
            let size = std::fs::metadata(block_dir.join(rel))?.len();
            files.push(BlockFile {
                rel_path: rel.into(),
                size_bytes: Some(size),
                hash: None,
            });
        }
        files.push(BlockFile {
            rel_path: "meta.json".into(),
            size_bytes: None,
            hash: None,
        });
        if let Some(t) = meta.thanos.as_mut() {
            t.files = files;
        }
        meta.write_to_dir(&block_dir)?;
        if (b + 1) % 1000 == 0 {
            eprintln!("gen_small_blocks: {} blocks", b + 1);
        }
    }
    Ok(())
}
