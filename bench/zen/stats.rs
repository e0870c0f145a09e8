//! Percentiles over latency samples.

use std::time::Duration;

#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// Percentiles (nearest rank) of `samples`, in seconds.
    pub fn of(samples: &[Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
        secs.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p / 100.0) * secs.len() as f64).ceil() as usize;
            secs[i.clamp(1, secs.len()) - 1]
        };
        Self {
            n: secs.len(),
            min: secs[0],
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: secs[secs.len() - 1],
            mean: secs.iter().sum::<f64>() / secs.len() as f64,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.n,
            "min_s": self.min,
            "p50_s": self.p50,
            "p95_s": self.p95,
            "p99_s": self.p99,
            "max_s": self.max,
            "mean_s": self.mean,
        })
    }
}
