//! Copies blocks with every timestamp moved by a whole number of 2 h windows, so a fixed data
//! set (the query suite's day) can sit around now for benchmarks that evaluate at now (the
//! ruler's): SHIFT is rounded down to 2 h, which keeps the copies aligned as promtool cut them.
//!
//! ```sh
//! cargo run --release -p storage --example shift_blocks -- SRC_DIR DST_DIR SHIFT_SECONDS
//! ```

use storage::block::{write_block, Block, BlockWriterOptions};

const WINDOW_MS: i64 = 2 * 3600 * 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(src), Some(dst), Some(shift)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: shift_blocks SRC_DIR DST_DIR SHIFT_SECONDS".into());
    };
    let shift_ms = shift.parse::<i64>()? * 1000 / WINDOW_MS * WINDOW_MS;
    let dst = std::path::PathBuf::from(dst);
    std::fs::create_dir_all(&dst)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let mut dirs: Vec<_> = std::fs::read_dir(&src)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let block = runtime.block_on(Block::open_dir(&dir))?;
        let series = runtime.block_on(block.all_series())?;
        let shifted = series
            .into_iter()
            .map(|s| {
                let samples = s.samples.iter().map(|&(t, v)| (t + shift_ms, v)).collect();
                (s.labels, samples)
            })
            .collect();
        let (out, meta) = write_block(
            &dst,
            shifted,
            block.meta().thanos.clone(),
            BlockWriterOptions::default(),
        )?;
        println!(
            "{} -> {} [{}, {})",
            dir.display(),
            out.display(),
            meta.min_time,
            meta.max_time
        );
    }
    Ok(())
}
