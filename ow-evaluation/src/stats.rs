//! Summaries of latency samples.

use serde::Serialize;
use std::time::Duration;

/// Percentiles of a set of samples, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Smallest.
    pub min_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// The `q` quantile (0..=1) of sorted samples, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarise durations.
pub fn summarize(samples: &[Duration]) -> Summary {
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    Summary {
        n: us.len(),
        p50_us: quantile(&us, 0.5),
        p90_us: quantile(&us, 0.9),
        p99_us: quantile(&us, 0.99),
        min_us: us.first().copied().unwrap_or(f64::NAN),
        max_us: us.last().copied().unwrap_or(f64::NAN),
    }
}

/// Points of the empirical CDF (latency in us, fraction), at most `points`.
pub fn cdf(samples: &[Duration], points: usize) -> Vec<(f64, f64)> {
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let step = (us.len() / points.max(1)).max(1);
    let mut out: Vec<(f64, f64)> = us
        .iter()
        .enumerate()
        .step_by(step)
        .map(|(i, &v)| (v, (i + 1) as f64 / us.len() as f64))
        .collect();
    if let Some(&last) = us.last() {
        out.push((last, 1.0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = summarize(&samples);
        assert_eq!((s.p50_us, s.p90_us, s.p99_us), (50.0, 90.0, 99.0));
        assert_eq!((s.min_us, s.max_us, s.n), (1.0, 100.0, 100));
        let c = cdf(&samples, 10);
        assert_eq!(c.last(), Some(&(100.0, 1.0)));
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }
}
