//! Kahan-Neumaier compensated summation, the way Prometheus 2.42 adds floats in
//! `sum_over_time`, `avg_over_time` and the least-squares regression.

/// One compensated addition: returns the new sum and the new compensation term.
///
/// Mirrors Prometheus' `kahanSumInc` (Neumaier's variant: the larger magnitude keeps the
/// low-order bits of the smaller one in `c`).
pub fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// A running compensated sum.
#[derive(Debug, Clone, Copy, Default)]
pub struct KahanSum {
    sum: f64,
    c: f64,
}

impl KahanSum {
    /// Adds one value.
    pub fn add(&mut self, v: f64) {
        (self.sum, self.c) = kahan_sum_inc(v, self.sum, self.c);
    }

    /// The sum; an infinite sum is returned as is because the compensation would be NaN.
    pub fn value(&self) -> f64 {
        if self.sum.is_infinite() {
            self.sum
        } else {
            self.sum + self.c
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compensation_recovers_small_terms_lost_to_a_large_one() {
        let mut s = KahanSum::default();
        for v in [1e100, 1.0, -1e100] {
            s.add(v);
        }
        assert_eq!(s.value(), 1.0);
        let naive: f64 = [1e100, 1.0, -1e100].iter().sum();
        assert_eq!(naive, 0.0);
    }

    #[test]
    fn infinite_sum_is_not_turned_into_nan() {
        let mut s = KahanSum::default();
        s.add(f64::INFINITY);
        s.add(1.0);
        assert_eq!(s.value(), f64::INFINITY);
    }
}
