//! Writer -> reader round trips, the reference example byte for byte, corruption handling,
//! matcher semantics and property tests. The promtool cross-check is in `promtool_tests.rs`.

use super::*;
use crate::block::error::{BlockError, FileLocation};
use crate::block::source::InMemory;
use crate::labels::Labels;
use crate::matcher::Matcher;
use bytes::Bytes;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

pub(super) fn loc() -> FileLocation {
    FileLocation::new("01TESTBLOCK", "index")
}

pub(super) type Series = (Labels, Vec<ChunkMeta>);

pub(super) fn symbols_of(series: &[Series]) -> BTreeSet<String> {
    series
        .iter()
        .flat_map(|(l, _)| l.iter().flat_map(|l| [l.name.clone(), l.value.clone()]))
        .collect()
}

/// Writes `series` (already sorted) to `dir/index` and returns the file's bytes.
pub(super) fn write_index(dir: &Path, series: &[Series]) -> Vec<u8> {
    let path = dir.join("index");
    let mut w = IndexWriter::create(&path, loc(), &symbols_of(series)).unwrap();
    for (l, c) in series {
        w.add_series(l, c).unwrap();
    }
    let size = w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(size, bytes.len() as u64);
    bytes
}

pub(super) async fn open_bytes(b: Vec<u8>) -> Result<IndexReader, BlockError> {
    IndexReader::open(Arc::new(InMemory(Bytes::from(b))), loc()).await
}

fn cm(min_time: i64, max_time: i64, chunk_ref: u64) -> ChunkMeta {
    ChunkMeta {
        min_time,
        max_time,
        chunk_ref,
    }
}

fn ls(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// The three series of the reference's real example (section 4), with chunk metas chosen to
/// give the same entry sizes: the known prefix of the first entry and every offset match.
fn reference_series() -> Vec<Series> {
    let t = 1_700_000_000_000;
    let metas = |r: u64| {
        vec![
            cm(t, t + 2_130_000, r),
            cm(t + 2_145_000, t + 4_260_000, r + 229),
            cm(t + 4_275_000, t + 4_485_000, r + 458),
        ]
    };
    vec![
        (
            ls(&[
                ("__name__", "http_requests_total"),
                ("code", "200"),
                ("job", "api"),
            ]),
            metas(8),
        ),
        (
            ls(&[
                ("__name__", "http_requests_total"),
                ("code", "500"),
                ("job", "api"),
            ]),
            metas(695),
        ),
        (ls(&[("__name__", "temp"), ("room", "a")]), metas(1382)),
    ]
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn reproduces_the_reference_example_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let b = write_index(dir.path(), &reference_series());

    let mut symbols = hex("00000043 0000000b 00");
    for s in [
        "200",
        "500",
        "__name__",
        "a",
        "api",
        "code",
        "http_requests_total",
        "job",
        "room",
        "temp",
    ] {
        symbols.push(s.len() as u8);
        symbols.extend_from_slice(s.as_bytes());
    }
    symbols.extend(hex("e32ddd4d"));
    assert_eq!(&b[..5], hex("baaad700 02"));
    assert_eq!(&b[5..80], symbols);
    let series1 = hex("22 03 0307 0601 0805 03 80a0abfef962 d0808201 08 9875 b88b8101 ca03");
    assert_eq!(&b[0x50..0x50 + series1.len()], series1);

    let r = open_bytes(b.clone()).await.unwrap();
    let toc = *r.toc();
    assert_eq!(toc.slots(), [5, 80, 214, 432, 304, 479]);
    assert_eq!(&b[b.len() - 52..], toc.encode());
    let offsets: Vec<u64> = r.table_order.iter().map(|e| e.2).collect();
    assert_eq!(offsets, [304, 328, 348, 364, 380, 396, 416]);
    assert_eq!(r.all_postings().await.unwrap(), [5, 8, 11]);
    assert_eq!(
        r.postings("__name__", "http_requests_total").await.unwrap(),
        [5, 8]
    );
    assert_eq!(r.postings("room", "a").await.unwrap(), [11]);
    assert_eq!(r.series(11).await.unwrap(), reference_series()[2].clone());
    assert!(r.verify().await.unwrap().is_empty());
}

/// A few hundred node-exporter-like series with varying label names, sorted.
fn many_series() -> Vec<Series> {
    let mut out = Vec::new();
    let mut chunk_ref = 8u64;
    for n in 0..300u64 {
        let mut pairs = vec![
            ("__name__".to_string(), format!("metric_{}", n % 10)),
            ("instance".to_string(), format!("host-{}:9100", n / 10)),
            ("job".to_string(), format!("job{}", n % 3)),
        ];
        if n % 4 == 0 {
            pairs.push((
                "mode".into(),
                ["idle", "user", "system"][(n % 3) as usize].into(),
            ));
        }
        if n % 7 == 0 {
            pairs.push(("zone".into(), String::new()));
        }
        out.push((Labels::from_pairs(pairs), Vec::new()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (_, chunks)) in out.iter_mut().enumerate() {
        let mut t = -5_000 + i as i64;
        for _ in 0..i % 5 {
            chunks.push(cm(t, t + 100, chunk_ref));
            t += 101 + (i as i64 % 3);
            chunk_ref += 100 + i as u64;
        }
    }
    out
}

fn brute_force(series: &[Series], matchers: &[Matcher]) -> Vec<u32> {
    series
        .iter()
        .enumerate()
        .filter(|(_, (l, _))| {
            !matchers.is_empty()
                && matchers
                    .iter()
                    .all(|m| m.matches(l.get(m.name()).unwrap_or("")))
        })
        .map(|(i, _)| i as u32)
        .collect()
}

#[tokio::test]
async fn round_trips_hundreds_of_series() {
    let dir = tempfile::tempdir().unwrap();
    let series = many_series();
    let b = write_index(dir.path(), &series);
    let r = IndexReader::open(
        Arc::new(crate::block::source::LocalFile::open(&dir.path().join("index")).unwrap()),
        loc(),
    )
    .await
    .unwrap();
    assert_eq!(r.symbols()[0], "");
    assert_eq!(
        r.label_names(),
        ["__name__", "instance", "job", "mode", "zone"]
    );
    assert_eq!(r.label_values("job"), ["job0", "job1", "job2"]);
    assert_eq!(r.label_values("zone"), [""]);
    assert!(r.label_values("nope").is_empty());

    let refs = r.all_postings().await.unwrap();
    assert_eq!(refs.len(), series.len());
    for (i, (l, c)) in series.iter().enumerate() {
        assert_eq!(
            r.series(refs[i]).await.unwrap(),
            (l.clone(), c.clone()),
            "series {i}"
        );
    }
    let mcount = r.postings("mode", "idle").await.unwrap().len();
    assert_eq!(
        mcount,
        series
            .iter()
            .filter(|(l, _)| l.get("mode") == Some("idle"))
            .count()
    );
    assert!(r.postings("mode", "nope").await.unwrap().is_empty());
    assert!(r.verify().await.unwrap().is_empty());
    drop(b);
}

#[tokio::test]
async fn postings_for_matchers_follow_prometheus_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let series = many_series();
    let b = write_index(dir.path(), &series);
    let r = open_bytes(b).await.unwrap();
    let refs = r.all_postings().await.unwrap();
    let cases: Vec<Vec<Matcher>> = vec![
        vec![Matcher::equal("__name__", "metric_3")],
        vec![
            Matcher::equal("__name__", "metric_3"),
            Matcher::equal("job", "job0"),
        ],
        vec![Matcher::equal("mode", "")],
        vec![Matcher::not_equal("mode", "")],
        vec![Matcher::regex("mode", ".*").unwrap()],
        vec![Matcher::regex("mode", ".+").unwrap()],
        vec![Matcher::not_regex("mode", "idle|user").unwrap()],
        vec![
            Matcher::not_equal("job", "job1"),
            Matcher::regex("mode", ".+").unwrap(),
        ],
        vec![Matcher::not_equal("job", "job1")],
        vec![Matcher::regex("instance", "host-1:9100|host-2:9100").unwrap()],
        vec![
            Matcher::regex("instance", "host-1.*").unwrap(),
            Matcher::not_regex("job", "job[01]").unwrap(),
        ],
        vec![Matcher::regex("instance", "host-1").unwrap()],
        vec![Matcher::equal("zone", "")],
        vec![Matcher::equal("zone", ""), Matcher::equal("job", "job2")],
        vec![Matcher::equal("absent", "x")],
        vec![Matcher::not_equal("absent", "x")],
        vec![],
    ];
    for ms in cases {
        let want: Vec<u32> = brute_force(&series, &ms)
            .into_iter()
            .map(|i| refs[i as usize])
            .collect();
        let got = r.postings_for_matchers(&ms).await.unwrap();
        assert_eq!(got, want, "matchers {ms:?}");
    }
    // The anchored regex: "host-1" alone matches only that exact value, which does not exist.
    assert!(r
        .postings_for_matchers(&[Matcher::regex("instance", "host-1").unwrap()])
        .await
        .unwrap()
        .is_empty());
}

#[test]
fn writer_rejects_bad_input_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let series = reference_series();
    let syms = symbols_of(&series);

    let mut w = IndexWriter::create(&path, loc(), &syms).unwrap();
    w.add_series(&series[1].0, &series[1].1).unwrap();
    let e = w.add_series(&series[0].0, &series[0].1).unwrap_err();
    assert!(e.to_string().contains("out-of-order"), "{e}");
    let e = w.add_series(&series[1].0, &series[1].1).unwrap_err();
    assert!(e.to_string().contains("out-of-order"), "{e}");
    let e = w.add_series(&ls(&[("zzz", "a")]), &[]).unwrap_err();
    assert!(e.to_string().contains("not in the symbol table"), "{e}");
    let e = w
        .add_series(&series[2].0, &[cm(10, 5, 99_999)])
        .unwrap_err();
    assert!(e.to_string().contains("below mint"), "{e}");
    let e = w
        .add_series(&series[2].0, &[cm(0, 5, 99_999), cm(5, 6, 100_000)])
        .unwrap_err();
    assert!(e.to_string().contains("not after"), "{e}");
    let e = w.add_series(&series[2].0, &[cm(0, 5, 7)]).unwrap_err();
    assert!(e.to_string().contains("below previous"), "{e}");
    // Rejected input leaves the writer usable.
    w.add_series(&series[2].0, &series[2].1).unwrap();
    w.finish().unwrap();
}

#[test]
fn writer_refuses_to_exceed_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let series = many_series();
    let mut w =
        IndexWriter::create(&dir.path().join("index"), loc(), &symbols_of(&series)).unwrap();
    w.set_limit(4096);
    let err = series
        .iter()
        .find_map(|(l, c)| w.add_series(l, c).err())
        .expect("limit reached");
    assert!(matches!(err, BlockError::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("limit"), "{err}");
    assert!(w.finish().is_err(), "a writer that failed must not finish");
}

fn assert_names_index_and_offset(e: &BlockError) {
    let msg = e.to_string();
    assert!(
        msg.contains("01TESTBLOCK") && msg.contains("index") && msg.contains("offset"),
        "{msg}"
    );
}

#[tokio::test]
async fn corruption_is_an_error_naming_index_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_index(dir.path(), &reference_series());
    let flip = |at: usize| {
        let mut b = good.clone();
        b[at] ^= 0x10;
        b
    };
    let n = good.len();

    // Sections read at open: symbols, postings offset table, TOC; plus header and truncation.
    for (what, bytes) in [
        ("symbols", flip(5 + 8 + 3)),
        ("symbol table length", flip(7)),
        ("offset table", flip(479 + 12)),
        ("TOC", flip(n - 52 + 7)),
        ("TOC CRC", flip(n - 1)),
        ("magic", flip(0)),
        ("truncated", good[..n - 10].to_vec()),
        ("tiny", good[..20].to_vec()),
    ] {
        let e = open_bytes(bytes).await.expect_err(what);
        assert!(e.is_corrupt(), "{what}: {e}");
        assert_names_index_and_offset(&e);
    }
    let e = open_bytes(flip(0)).await.unwrap_err();
    assert!(
        e.to_string().contains("magic") && e.to_string().contains("offset 0"),
        "{e}"
    );

    let mut v1 = good.clone();
    v1[4] = 1;
    let e = open_bytes(v1).await.unwrap_err();
    assert!(matches!(e, BlockError::Unsupported { .. }), "{e}");
    assert!(
        e.to_string().contains("version 1") && e.to_string().contains("offset 4"),
        "{e}"
    );
    assert!(e.to_string().contains("index"), "{e}");

    // Sections read on demand: a series entry and a postings list.
    let r = open_bytes(flip(0x50 + 5)).await.unwrap();
    let e = r.series(5).await.unwrap_err();
    assert_names_index_and_offset(&e);
    assert!(r.series(8).await.is_ok(), "other series stay readable");
    assert!(!r.verify().await.unwrap().is_empty());

    let r = open_bytes(flip(328 + 9)).await.unwrap();
    assert_names_index_and_offset(
        &r.postings("__name__", "http_requests_total")
            .await
            .unwrap_err(),
    );
    assert_names_index_and_offset(
        &r.postings_for_matchers(&[Matcher::equal("__name__", "http_requests_total")])
            .await
            .unwrap_err(),
    );
    assert_eq!(r.all_postings().await.unwrap(), [5, 8, 11]);

    // Refs that point outside the series section.
    let r = open_bytes(good.clone()).await.unwrap();
    assert_names_index_and_offset(&r.series(1).await.unwrap_err());
    assert_names_index_and_offset(&r.series(u32::MAX).await.unwrap_err());
    // A ref inside the section but not at an entry start decodes garbage, never panics.
    assert!(r.series(6).await.is_err());
}

fn arb_series() -> impl Strategy<Value = Vec<Series>> {
    let label_set = proptest::collection::btree_map("[a-d_]{1,3}", "[a-c0-9]{0,3}", 1..5);
    proptest::collection::btree_set(label_set, 1..40).prop_map(|sets| {
        let mut out: Vec<Series> = sets.iter().map(|m| (Labels::from(m), Vec::new())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        let mut chunk_ref = 8u64;
        for (i, (_, c)) in out.iter_mut().enumerate() {
            let mut t = i64::from(i as u32) * 1_000 - 20_000;
            for k in 0..(i % 4) {
                c.push(cm(t, t + k as i64 * 7, chunk_ref));
                t += k as i64 * 7 + 1 + i as i64;
                chunk_ref += 1 + (i * 31 % 500) as u64;
            }
        }
        out
    })
}

fn arb_matcher() -> impl Strategy<Value = Matcher> {
    let name = "[a-d_]{1,2}";
    let value = prop_oneof![Just(String::new()), "[a-c0-9]{0,2}".prop_map(|s| s)];
    let re = prop_oneof![
        Just(".*".to_string()),
        Just(".+".to_string()),
        "[a-c0-9]{1,2}",
        Just("a.*|1".to_string())
    ];
    prop_oneof![
        (name, value.clone()).prop_map(|(n, v)| Matcher::equal(n, v)),
        (name, value).prop_map(|(n, v)| Matcher::not_equal(n, v)),
        (name, re.clone()).prop_map(|(n, v)| Matcher::regex(n, v).unwrap()),
        (name, re).prop_map(|(n, v)| Matcher::not_regex(n, v).unwrap()),
    ]
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_label_sets_round_trip_and_select_like_brute_force(
        series in arb_series(),
        matchers in proptest::collection::vec(arb_matcher(), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let b = write_index(dir.path(), &series);
        block_on(async {
            let r = open_bytes(b).await.unwrap();
            let refs = r.all_postings().await.unwrap();
            prop_assert_eq!(refs.len(), series.len());
            for (i, s) in series.iter().enumerate() {
                prop_assert_eq!(&r.series(refs[i]).await.unwrap(), s);
            }
            let want: Vec<u32> = brute_force(&series, &matchers).into_iter().map(|i| refs[i as usize]).collect();
            prop_assert_eq!(r.postings_for_matchers(&matchers).await.unwrap(), want, "{:?}", matchers);
            prop_assert!(r.verify().await.unwrap().is_empty());
            Ok(())
        })?;
    }

    #[test]
    fn opening_arbitrary_bytes_never_panics(data: Vec<u8>, framed: bool) {
        let mut b = if framed { hex("baaad700 02") } else { Vec::new() };
        b.extend_from_slice(&data);
        block_on(async {
            if let Ok(r) = open_bytes(b).await {
                let _ = r.verify().await;
            }
        });
    }

    #[test]
    fn damaged_indexes_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let mut b = write_index(dir.path(), &many_series()[..40]);
        for (i, x) in flips {
            let at = i.index(b.len());
            b[at] ^= x;
        }
        block_on(async {
            if let Ok(r) = open_bytes(b).await {
                let _ = r.verify().await;
                for s in 0..64 {
                    let _ = r.series(s).await;
                }
                for name in r.label_names() {
                    for v in r.label_values(name) {
                        let _ = r.postings(name, v).await;
                    }
                }
                let _ = r.postings_for_matchers(&[Matcher::not_equal("job", "job1")]).await;
            }
        });
    }
}

/// A range source that counts its reads.
#[derive(Debug)]
struct CountingSource {
    inner: InMemory,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl crate::block::source::RangeSource for CountingSource {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    async fn read_range(
        &self,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.read_range(range).await
    }
}

#[tokio::test]
async fn series_many_reads_neighbouring_entries_together_and_equals_series() {
    let dir = tempfile::tempdir().unwrap();
    let mut series = many_series();
    // Long entries (over the 512-byte first read), one of them the last of the index.
    for (i, at) in [(0usize, 40usize), (1, 299)] {
        series[at].1 = (0..300)
            .map(|k| cm(k * 10, k * 10 + 5, 8 + (i as u64 * 1000 + k as u64) * 64))
            .collect();
    }
    // Chunk refs ascend through the index, as a writer demands.
    let mut next = 8u64;
    for (_, chunks) in series.iter_mut() {
        for c in chunks.iter_mut() {
            c.chunk_ref = next;
            next += 64;
        }
    }
    let bytes = write_index(dir.path(), &series);
    let source = Arc::new(CountingSource {
        inner: InMemory(Bytes::from(bytes)),
        reads: Default::default(),
    });
    let r = IndexReader::open(source.clone(), loc()).await.unwrap();
    let all = r.all_postings().await.unwrap();
    let subsets: Vec<Vec<u32>> = vec![
        all.clone(),
        all.iter().copied().step_by(3).collect(),
        all.iter().copied().rev().collect(),
        vec![all[299], all[0], all[40], all[41]],
        Vec::new(),
    ];
    for refs in subsets {
        let mut want = Vec::new();
        for &s in &refs {
            want.push(r.series(s).await.unwrap());
        }
        assert_eq!(r.series_many(&refs).await.unwrap(), want, "refs {refs:?}");
    }
    // Ascending refs: a few reads for all 300 entries (plus the two long ones read again).
    let before = source.reads.load(std::sync::atomic::Ordering::Relaxed);
    let got = r.series_many(&all).await.unwrap();
    let reads = source.reads.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert_eq!(got.len(), 300);
    assert_eq!(got[40], series[40]);
    assert_eq!(got[299], series[299]);
    assert!(reads <= 4, "{reads} reads for 300 neighbouring entries");
}

#[tokio::test]
async fn series_many_names_a_corrupt_entry_or_a_bad_ref() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_index(dir.path(), &reference_series());
    let mut bad = good.clone();
    bad[0x50 + 5] ^= 0x10;
    let r = open_bytes(bad).await.unwrap();
    let e = r.series_many(&[5, 8, 11]).await.unwrap_err();
    assert_names_index_and_offset(&e);
    assert!(
        r.series_many(&[8, 11]).await.is_ok(),
        "other series stay readable"
    );

    let r = open_bytes(good).await.unwrap();
    assert_names_index_and_offset(&r.series_many(&[1, 5]).await.unwrap_err());
    assert_names_index_and_offset(&r.series_many(&[5, u32::MAX]).await.unwrap_err());
}
