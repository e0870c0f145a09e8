//! Percentiles over latency samples, and the load window that collects them from many threads.

use std::time::{Duration, Instant};

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

/// One thread per item, all started together, each calling `call` back to back: after `warmup`,
/// for `measure`. Returns the latencies of the calls completed in the window, how many of them
/// `call` judged failed, and the items.
pub fn window<T: Send>(
    items: Vec<T>,
    warmup: Duration,
    measure: Duration,
    call: impl Fn(&mut T) -> Result<(Duration, bool), String> + Sync,
) -> Result<(Vec<Duration>, usize, Vec<T>), String> {
    let barrier = std::sync::Barrier::new(items.len());
    type Outcome<T> = Result<(Vec<Duration>, usize, T), String>;
    let results: Vec<Outcome<T>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .into_iter()
            .map(|mut item| {
                let (barrier, call) = (&barrier, &call);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now() + warmup;
                    let end = start + measure;
                    let mut samples = Vec::new();
                    let mut failed = 0;
                    loop {
                        let (t, ok) = call(&mut item)?;
                        let now = Instant::now();
                        if now >= end {
                            break;
                        }
                        if now >= start {
                            samples.push(t);
                            failed += usize::from(!ok);
                        }
                    }
                    Ok((samples, failed, item))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a client thread panicked".into()))
            })
            .collect()
    });
    let mut all = Vec::new();
    let mut items = Vec::new();
    let mut failed = 0;
    for result in results {
        let (samples, errors, item) = result?;
        all.extend(samples);
        failed += errors;
        items.push(item);
    }
    Ok((all, failed, items))
}
