//! Postings lists: decoding and set operations on sorted series refs.

use crate::encoding::{Decbuf, DecodeError};

/// Decodes a postings list body (`BE32 #entries`, then the refs; the `len` and CRC already
/// stripped) found at absolute offset `base`. Refs must be strictly ascending.
pub(crate) fn decode_postings(body: &[u8], base: u64) -> Result<Vec<u32>, DecodeError> {
    let mut d = Decbuf::new(body, base);
    let n = d.be32()? as usize;
    if d.remaining() != n.saturating_mul(4) {
        return Err(d.error(format!(
            "postings list of {n} entries has {} bytes of refs",
            d.remaining()
        )));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let at = d.offset();
        let r = d.be32()?;
        if out.last().is_some_and(|&prev| prev >= r) {
            return Err(DecodeError {
                offset: at,
                reason: format!(
                    "postings not strictly ascending: {r} after {:?}",
                    out.last()
                ),
            });
        }
        out.push(r);
    }
    Ok(out)
}

/// Refs present in every list (sorted inputs, sorted output). No lists gives nothing.
pub fn intersect(lists: &[Vec<u32>]) -> Vec<u32> {
    let mut order: Vec<&Vec<u32>> = lists.iter().collect();
    // Start from the shortest list: the result can only shrink.
    order.sort_by_key(|l| l.len());
    let Some((first, rest)) = order.split_first() else {
        return Vec::new();
    };
    let mut acc: Vec<u32> = (*first).clone();
    for l in rest {
        acc = intersect2(&acc, l);
        if acc.is_empty() {
            break;
        }
    }
    acc
}

fn intersect2(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        match x.cmp(&y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(x);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Refs present in any list, sorted and unique.
pub fn merge_union(lists: Vec<Vec<u32>>) -> Vec<u32> {
    let mut lists = lists;
    match lists.len() {
        0 => Vec::new(),
        1 => lists.pop().unwrap_or_default(),
        _ => {
            let mut all: Vec<u32> = lists.into_iter().flatten().collect();
            all.sort_unstable();
            all.dedup();
            all
        }
    }
}

/// Refs of `a` that are not in `b` (both sorted).
pub fn without(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while b.get(j).is_some_and(|&y| y < x) {
            j += 1;
        }
        if b.get(j) != Some(&x) {
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn decodes_and_rejects_unsorted_or_misfit_lists() {
        let body = [0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 8];
        assert_eq!(decode_postings(&body, 100).unwrap(), vec![5, 8]);
        let body = [0, 0, 0, 2, 0, 0, 0, 8, 0, 0, 0, 8];
        assert_eq!(decode_postings(&body, 100).unwrap_err().offset, 108);
        let body = [0, 0, 0, 3, 0, 0, 0, 8];
        assert!(decode_postings(&body, 100).is_err());
    }

    fn sorted_set() -> impl Strategy<Value = Vec<u32>> {
        proptest::collection::btree_set(0u32..200, 0..60).prop_map(|s| s.into_iter().collect())
    }

    proptest! {
        #[test]
        fn set_operations_agree_with_btreeset(a in sorted_set(), b in sorted_set(), c in sorted_set()) {
            let sa: BTreeSet<u32> = a.iter().copied().collect();
            let sb: BTreeSet<u32> = b.iter().copied().collect();
            let sc: BTreeSet<u32> = c.iter().copied().collect();
            let want: Vec<u32> = sa.iter().filter(|x| sb.contains(x) && sc.contains(x)).copied().collect();
            prop_assert_eq!(intersect(&[a.clone(), b.clone(), c.clone()]), want);
            let want: Vec<u32> = sa.union(&sb).copied().collect();
            prop_assert_eq!(merge_union(vec![a.clone(), b.clone()]), want);
            let want: Vec<u32> = sa.difference(&sb).copied().collect();
            prop_assert_eq!(without(&a, &b), want);
        }
    }
}
