//! The tombstones file: deleted time ranges per series.
//!
//! Layout (Prometheus 2.42 code, not its older format doc): `BE32 magic 0x0130BA30`, `u8
//! version 1`, then entries `uvarint series ref, varint mint, varint maxt` until the trailing
//! `BE32 CRC-32C`, which covers the entries only (not the version byte). Intervals are closed.

use super::error::{BlockError, FileLocation};
use super::source::RangeSource;
use crate::encoding::{crc32c, Decbuf, Encbuf};
use std::collections::BTreeMap;
use std::path::Path;

/// Magic number at the start of a tombstones file.
pub const TOMBSTONES_MAGIC: u32 = 0x0130_BA30;
/// The only tombstones format version.
pub const TOMBSTONES_VERSION: u8 = 1;
/// Magic plus version.
const HEADER_LEN: usize = 5;

/// A closed time range `[min_time, max_time]` in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    /// First deleted timestamp (inclusive).
    pub min_time: i64,
    /// Last deleted timestamp (inclusive).
    pub max_time: i64,
}

impl Interval {
    /// An interval; callers keep `min_time <= max_time`.
    pub fn new(min_time: i64, max_time: i64) -> Self {
        Interval { min_time, max_time }
    }

    /// True when `t` is inside the interval.
    pub fn contains(&self, t: i64) -> bool {
        self.min_time <= t && t <= self.max_time
    }
}

/// Disjoint, non-adjacent intervals sorted by time, as Prometheus' `Intervals.Add` keeps them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intervals(Vec<Interval>);

impl Intervals {
    /// No intervals.
    pub fn new() -> Self {
        Intervals::default()
    }

    /// Adds `iv`, merging it with every interval it overlaps or touches (`maxt + 1 == mint`).
    pub fn add(&mut self, iv: Interval) {
        let mut merged = iv;
        // Keep the ones entirely before or after; fold the rest into `merged`.
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for cur in self.0.drain(..) {
            if cur.max_time.saturating_add(1) < merged.min_time {
                out.push(cur);
            } else if merged.max_time.saturating_add(1) < cur.min_time {
                if !placed {
                    out.push(merged);
                    placed = true;
                }
                out.push(cur);
            } else {
                merged.min_time = merged.min_time.min(cur.min_time);
                merged.max_time = merged.max_time.max(cur.max_time);
            }
        }
        if !placed {
            out.push(merged);
        }
        self.0 = out;
    }

    /// True when `t` falls in one of the intervals.
    pub fn contains(&self, t: i64) -> bool {
        let i = self.0.partition_point(|iv| iv.max_time < t);
        self.0.get(i).is_some_and(|iv| iv.contains(t))
    }

    /// The intervals, sorted.
    pub fn as_slice(&self) -> &[Interval] {
        &self.0
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// All tombstones of a block: series ref -> deleted intervals.
///
/// Series refs are `u64` as stored; the index's refs are `u32` and convert losslessly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tombstones {
    series: BTreeMap<u64, Intervals>,
}

impl Tombstones {
    /// No tombstones.
    pub fn new() -> Self {
        Tombstones::default()
    }

    /// Marks `iv` deleted for `series_ref`, merging with what is there.
    pub fn add(&mut self, series_ref: u64, iv: Interval) {
        self.series.entry(series_ref).or_default().add(iv);
    }

    /// The deleted intervals of one series, if any.
    pub fn get(&self, series_ref: u64) -> Option<&Intervals> {
        self.series.get(&series_ref)
    }

    /// True when the sample of `series_ref` at `t` is deleted.
    pub fn is_deleted(&self, series_ref: u64, t: i64) -> bool {
        self.get(series_ref).is_some_and(|ivs| ivs.contains(t))
    }

    /// True when nothing is deleted.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Number of intervals after merging (what `meta.json` `stats.numTombstones` counts).
    pub fn num_intervals(&self) -> u64 {
        self.series.values().map(|ivs| ivs.0.len() as u64).sum()
    }

    /// Iterates series refs in ascending order with their intervals.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Intervals)> {
        self.series.iter().map(|(r, ivs)| (*r, ivs))
    }

    /// Parses a whole tombstones file; errors name `loc` and the offset.
    pub fn decode(data: &[u8], loc: &FileLocation) -> Result<Self, BlockError> {
        if data.len() < HEADER_LEN + 4 {
            return Err(loc.corrupt_at(
                0,
                format!("file is {} bytes, shorter than the minimum 9", data.len()),
            ));
        }
        let mut d = Decbuf::new(data, 0);
        let magic = d.be32().map_err(|e| loc.decode(e))?;
        if magic != TOMBSTONES_MAGIC {
            return Err(loc.corrupt_at(0, format!("bad magic {magic:#010x}")));
        }
        let version = d.u8().map_err(|e| loc.decode(e))?;
        if version != TOMBSTONES_VERSION {
            return Err(loc.unsupported(format!("tombstones version {version}")));
        }
        let crc_at = data.len() - 4;
        let entries = &data[HEADER_LEN..crc_at];
        let mut c = Decbuf::new(&data[crc_at..], crc_at as u64);
        let want = c.be32().map_err(|e| loc.decode(e))?;
        let got = crc32c(entries);
        if want != got {
            return Err(loc.corrupt_at(
                crc_at as u64,
                format!("CRC mismatch: stored {want:#010x}, computed {got:#010x}"),
            ));
        }
        let mut out = Tombstones::new();
        let mut d = Decbuf::new(entries, HEADER_LEN as u64);
        while d.remaining() > 0 {
            let at = d.offset();
            let series_ref = d.uvarint().map_err(|e| loc.decode(e))?;
            let min_time = d.varint().map_err(|e| loc.decode(e))?;
            let max_time = d.varint().map_err(|e| loc.decode(e))?;
            if min_time > max_time {
                return Err(loc.corrupt_at(
                    at,
                    format!("interval [{min_time}, {max_time}] ends before it starts"),
                ));
            }
            out.add(series_ref, Interval::new(min_time, max_time));
        }
        Ok(out)
    }

    /// Reads and parses the tombstones file from `source`.
    pub async fn read(source: &dyn RangeSource, loc: &FileLocation) -> Result<Self, BlockError> {
        let data = source
            .read_range(0..source.size())
            .await
            .map_err(|e| loc.io(e))?;
        Tombstones::decode(&data, loc)
    }

    /// The file's bytes: entries sorted by series ref, then by time.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encbuf::new();
        e.put_be32(TOMBSTONES_MAGIC);
        e.put_u8(TOMBSTONES_VERSION);
        for (series_ref, ivs) in self.iter() {
            for iv in ivs.as_slice() {
                e.put_uvarint(series_ref);
                e.put_varint(iv.min_time);
                e.put_varint(iv.max_time);
            }
        }
        e.put_crc32c_since(HEADER_LEN);
        e.into_inner()
    }

    /// Writes the file to `path` (written whole, then synced).
    pub fn write(&self, path: &Path, loc: &FileLocation) -> Result<(), BlockError> {
        use std::io::Write;
        let mut f = std::fs::File::create(path).map_err(|e| loc.io(e))?;
        f.write_all(&self.encode()).map_err(|e| loc.io(e))?;
        f.sync_all().map_err(|e| loc.io(e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn loc() -> FileLocation {
        FileLocation::new("01TEST", "tombstones")
    }

    #[test]
    fn empty_file_is_exactly_nine_bytes() {
        let bytes = Tombstones::new().encode();
        assert_eq!(bytes, [0x01, 0x30, 0xba, 0x30, 0x01, 0, 0, 0, 0]);
        assert!(Tombstones::decode(&bytes, &loc()).unwrap().is_empty());
    }

    #[test]
    fn overlapping_and_adjacent_intervals_merge() {
        let mut ivs = Intervals::new();
        ivs.add(Interval::new(10, 20));
        ivs.add(Interval::new(30, 40));
        ivs.add(Interval::new(21, 25)); // adjacent to the first
        assert_eq!(
            ivs.as_slice(),
            &[Interval::new(10, 25), Interval::new(30, 40)]
        );
        ivs.add(Interval::new(0, 5));
        ivs.add(Interval::new(24, 31)); // bridges two
        assert_eq!(
            ivs.as_slice(),
            &[Interval::new(0, 5), Interval::new(10, 40)]
        );
        assert!(ivs.contains(0) && ivs.contains(5) && !ivs.contains(6) && ivs.contains(40));
        assert!(!ivs.contains(41) && !ivs.contains(-1));
        ivs.add(Interval::new(i64::MIN, i64::MAX));
        assert_eq!(ivs.as_slice(), &[Interval::new(i64::MIN, i64::MAX)]);
    }

    #[test]
    fn round_trips_and_answers_is_deleted() {
        let mut t = Tombstones::new();
        t.add(5, Interval::new(100, 200));
        t.add(5, Interval::new(150, 300));
        t.add(9, Interval::new(-50, -10));
        let bytes = t.encode();
        let back = Tombstones::decode(&bytes, &loc()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.num_intervals(), 2);
        assert!(back.is_deleted(5, 300) && !back.is_deleted(5, 301));
        assert!(back.is_deleted(9, -10) && !back.is_deleted(8, -10));
    }

    #[test]
    fn corruption_names_the_file_and_offset() {
        let mut t = Tombstones::new();
        t.add(5, Interval::new(100, 200));
        let good = t.encode();

        let mut bad = good.clone();
        bad[6] ^= 0x01;
        let msg = Tombstones::decode(&bad, &loc()).unwrap_err().to_string();
        assert!(
            msg.contains("tombstones") && msg.contains("offset"),
            "{msg}"
        );

        let mut bad = good.clone();
        bad[0] = 0;
        let msg = Tombstones::decode(&bad, &loc()).unwrap_err().to_string();
        assert!(msg.contains("magic") && msg.contains("offset 0"), "{msg}");

        let msg = Tombstones::decode(&good[..7], &loc())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("tombstones") && msg.contains("offset"),
            "{msg}"
        );

        let mut bad = good.clone();
        bad[4] = 2;
        let e = Tombstones::decode(&bad, &loc()).unwrap_err();
        assert!(matches!(e, BlockError::Unsupported { .. }), "{e}");
    }

    #[tokio::test]
    async fn reads_through_a_range_source() {
        let mut t = Tombstones::new();
        t.add(1, Interval::new(1, 2));
        let src = crate::block::source::InMemory(bytes::Bytes::from(t.encode()));
        assert_eq!(Tombstones::read(&src, &loc()).await.unwrap(), t);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(data: Vec<u8>) {
            let _ = Tombstones::decode(&data, &loc());
            let mut framed = vec![0x01, 0x30, 0xba, 0x30, 0x01];
            framed.extend_from_slice(&data);
            let _ = Tombstones::decode(&framed, &loc());
        }

        #[test]
        fn random_tombstones_round_trip(
            entries in proptest::collection::vec((0u64..50, -1000i64..1000, 0i64..100), 0..40)
        ) {
            let mut t = Tombstones::new();
            for (r, mint, len) in entries {
                t.add(r, Interval::new(mint, mint + len));
            }
            let back = Tombstones::decode(&t.encode(), &loc()).unwrap();
            prop_assert_eq!(back, t);
        }
    }
}
