//! Thanos' dynamic lookback (`--query.dynamic-lookback-delta`, on by default): a query reading
//! downsampled data looks back as far as one sample of its coarsest resolution, so an instant
//! selector over 1h data finds the last window's sample instead of nothing.

use storage::downsample::{RES_1H, RES_5M, RES_RAW};

/// The lookback (ms) of a query reading up to `max_source_resolution` ms, given
/// `--query.lookback-delta` `base` (ms): Thanos' `LookbackDeltaFactory`. Each resolution gets
/// the larger of `base` and the resolution itself; a query gets the delta of the coarsest
/// resolution whose lower neighbour (or `base`, if larger) is below its `max_source_resolution`.
/// Without `dynamic`, always `base`.
pub fn lookback_delta_ms(base: i64, dynamic: bool, max_source_resolution: i64) -> i64 {
    let resolutions: &[i64] = if dynamic {
        &[RES_RAW, RES_5M, RES_1H]
    } else {
        &[RES_RAW]
    };
    let mut deltas = Vec::with_capacity(resolutions.len());
    let mut delta = base;
    for &r in resolutions {
        if base < r {
            delta = r;
        }
        deltas.push(delta);
    }
    for i in (1..resolutions.len()).rev() {
        if resolutions[i - 1].max(base) < max_source_resolution {
            return deltas[i];
        }
    }
    deltas[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    #[test]
    fn the_default_lookback_widens_to_an_hour_above_five_minutes_of_resolution() {
        let ld = |msr| lookback_delta_ms(5 * M, true, msr);
        assert_eq!(ld(0), 5 * M);
        assert_eq!(ld(5 * M), 5 * M);
        // Above the 5m lookback itself the next level, 1h, applies (Thanos compares with
        // the larger of the resolution below and the base lookback).
        assert_eq!(ld(5 * M + 1), 60 * M);
        assert_eq!(ld(12 * M), 60 * M);
        assert_eq!(ld(60 * M), 60 * M);
        assert_eq!(ld(i64::MAX), 60 * M);
    }

    #[test]
    fn a_short_lookback_widens_to_each_resolution_in_turn() {
        let ld = |msr| lookback_delta_ms(M, true, msr);
        assert_eq!(ld(0), M);
        assert_eq!(ld(M), M);
        assert_eq!(ld(2 * M), 5 * M);
        assert_eq!(ld(5 * M), 5 * M);
        assert_eq!(ld(5 * M + 1), 60 * M);
    }

    #[test]
    fn a_lookback_longer_than_an_hour_and_a_disabled_flag_keep_the_base() {
        for msr in [0, 5 * M, 60 * M, 600 * M] {
            assert_eq!(lookback_delta_ms(120 * M, true, msr), 120 * M);
            assert_eq!(lookback_delta_ms(5 * M, false, msr), 5 * M);
        }
    }
}
