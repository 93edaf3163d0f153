//! Differential test against Prometheus 2.42 itself: `promtool tsdb create-blocks-from
//! openmetrics` writes blocks; every chunk it wrote must decode to the samples we fed it and
//! re-encode with `XorAppender` to exactly the same bytes. Skipped when promtool is absent.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use storage::block::segments::{list_local_segments, parse_record, SEGMENT_HEADER_SIZE};
use storage::block::FileLocation;
use storage::chunkenc::{Encoding, XorAppender};

type Samples = BTreeMap<(i64, u64), usize>;

fn series(rng: &mut StdRng, kind: usize, n: usize) -> Vec<(i64, f64)> {
    let mut t: i64 = 1_700_000_000_000 + rng.random_range(0..1000);
    let mut v = 100.0;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push((t, v));
        t += match (kind, i % 37) {
            (0, _) => 15_000,
            (_, 0) => rng.random_range(1..4_000_000),
            (_, 1) => rng.random_range(1..200_000),
            _ => 15_000 + rng.random_range(-3_000..3_000),
        };
        v = match kind {
            0 => 42.0,
            1 => v + f64::from(rng.random_range(0u32..=5)),
            2 => rng.random::<f64>() * 1e6,
            _ => match i % 7 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                3 => -0.0,
                _ => rng.random::<f64>() - 0.5,
            },
        };
    }
    out
}

fn openmetrics(all: &[Vec<(i64, f64)>]) -> String {
    let mut s = String::new();
    for (k, samples) in all.iter().enumerate() {
        let _ = writeln!(s, "# TYPE m{k} gauge");
        for &(t, v) in samples {
            let v = if v.is_nan() {
                "NaN".to_string()
            } else if v.is_infinite() {
                if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
            } else {
                format!("{v}")
            };
            let _ = writeln!(s, "m{k} {v} {}.{:03}", t / 1000, t % 1000);
        }
    }
    s.push_str("# EOF\n");
    s
}

fn key(t: i64, v: f64) -> (i64, u64) {
    // Prometheus' text parser yields its own NaN bits; compare NaNs as one value.
    let bits = if v.is_nan() {
        0x7ff8_0000_0000_0001
    } else {
        v.to_bits()
    };
    (t, bits)
}

/// Reads every record of every segment in `block`, re-encodes it and counts its samples.
fn check_block(block: &Path, seen: &mut Samples) -> usize {
    let mut chunks = 0;
    for path in list_local_segments(block).unwrap() {
        let bytes = Bytes::from(std::fs::read(&path).unwrap());
        let loc = FileLocation::new("promtool", path.display().to_string());
        let mut off = SEGMENT_HEADER_SIZE as usize;
        while off < bytes.len() {
            let (chunk, len) = parse_record(&bytes.slice(off..), off as u64, &loc).unwrap();
            assert_eq!(chunk.encoding, Encoding::Xor);
            let samples = chunk.samples().unwrap();
            let mut a = XorAppender::new();
            for &(t, v) in &samples {
                a.append(t, v).unwrap();
                *seen.entry(key(t, v)).or_default() += 1;
            }
            assert_eq!(
                a.finish().data,
                chunk.data,
                "chunk at {off} of {} re-encodes differently ({} samples)",
                path.display(),
                samples.len()
            );
            off += len;
            chunks += 1;
        }
    }
    chunks
}

#[test]
fn chunks_written_by_promtool_decode_and_reencode_byte_identically() {
    if Command::new("promtool").arg("--version").output().is_err() {
        eprintln!("promtool not installed; skipping");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let all: Vec<_> = (0..12).map(|k| series(&mut rng, k % 4, 400)).collect();
    let input = tmp.path().join("in.om");
    std::fs::write(&input, openmetrics(&all)).unwrap();
    let out = tmp.path().join("out");
    let res = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );

    let mut seen = Samples::new();
    let mut chunks = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        chunks += check_block(&entry.unwrap().path(), &mut seen);
    }
    let mut want = Samples::new();
    for &(t, v) in all.iter().flatten() {
        *want.entry(key(t, v)).or_default() += 1;
    }
    assert!(chunks > all.len(), "only {chunks} chunks");
    assert_eq!(seen, want);
}
