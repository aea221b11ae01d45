//! Percentiles of latency samples.

use std::time::Duration;

pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn new(mut v: Vec<Duration>) -> Self {
        v.sort_unstable();
        Samples(v)
    }

    pub fn pct(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.0.len() - 1) as f64 * p / 100.0).round() as usize;
        self.0[i.min(self.0.len() - 1)]
    }

    pub fn us(&self, p: f64) -> String {
        format!("{:.1}", self.pct(p).as_secs_f64() * 1e6)
    }

    pub fn ms(&self, p: f64) -> String {
        format!("{:.1}", self.pct(p).as_secs_f64() * 1e3)
    }
}
