//! Time-aware exponentially weighted moving averages.

use serde::{Deserialize, Serialize};

use crate::idmap::IdMap;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Point {
    t: i64,
    v: f64,
}

/// An exponentially weighted moving average per series id, weighted by real time: a sample
/// `dt` after the previous one gets weight `1 - 2^(-dt / half_life)`, so irregular intervals
/// smooth the same as regular ones.
///
/// The first sample of a series is its average; a sample not newer than the last one, or not
/// finite, is ignored. Serializable for snapshots ([`Ewma::restore`] keeps the configured
/// half-life).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    half_life_ms: f64,
    state: IdMap<Point>,
}

impl Ewma {
    /// Averages with the given half-life (0: no smoothing).
    pub fn new(half_life_ms: u64) -> Ewma {
        Ewma {
            half_life_ms: half_life_ms as f64,
            state: IdMap::default(),
        }
    }

    /// The weight of a new sample `dt_ms` after the previous one.
    pub fn alpha(&self, dt_ms: f64) -> f64 {
        if self.half_life_ms <= 0.0 {
            1.0
        } else {
            1.0 - (-dt_ms / self.half_life_ms).exp2()
        }
    }

    /// Records a sample of series `id` and returns its new average.
    pub fn update(&mut self, id: u64, timestamp_ms: i64, value: f64) -> Option<f64> {
        if !value.is_finite() {
            return None;
        }
        match self.state.get(&id).copied() {
            None => {
                self.state.insert(
                    id,
                    Point {
                        t: timestamp_ms,
                        v: value,
                    },
                );
                Some(value)
            }
            Some(old) if timestamp_ms <= old.t => None,
            Some(old) => {
                let alpha = self.alpha(timestamp_ms.abs_diff(old.t) as f64);
                let v = old.v + alpha * (value - old.v);
                self.state.insert(id, Point { t: timestamp_ms, v });
                Some(v)
            }
        }
    }

    /// The current average of series `id`.
    pub fn get(&self, id: u64) -> Option<f64> {
        self.state.get(&id).map(|p| p.v)
    }

    /// Forgets series `id`.
    pub fn remove(&mut self, id: u64) {
        self.state.remove(&id);
    }

    /// Takes the per-series averages of `saved` (from a snapshot), keeping this half-life.
    pub fn restore(&mut self, saved: Ewma) {
        self.state = saved.state;
    }

    /// Number of series tracked.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Whether no series is tracked.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_half_life_moves_halfway() {
        let mut e = Ewma::new(60_000);
        assert_eq!(e.update(1, 0, 0.0), Some(0.0));
        assert_eq!(e.update(1, 60_000, 100.0), Some(50.0));
        // Two steps of half a half-life move as far as one whole half-life.
        let mut f = Ewma::new(60_000);
        f.update(1, 0, 0.0);
        f.update(1, 30_000, 100.0);
        let v = f.update(1, 60_000, 100.0).unwrap();
        assert!((v - 50.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn ignores_old_and_non_finite_samples() {
        let mut e = Ewma::new(1_000);
        e.update(1, 5_000, 10.0);
        assert_eq!(e.update(1, 5_000, 20.0), None);
        assert_eq!(e.update(1, 4_000, 20.0), None);
        assert_eq!(e.update(1, 6_000, f64::NAN), None);
        assert_eq!(e.get(1), Some(10.0));
    }

    #[test]
    fn zero_half_life_follows_the_input() {
        let mut e = Ewma::new(0);
        e.update(1, 0, 1.0);
        assert_eq!(e.update(1, 1, 7.0), Some(7.0));
    }

    #[test]
    fn restore_keeps_the_configured_half_life() {
        let mut old = Ewma::new(1_000);
        old.update(1, 0, 10.0);
        let saved: Ewma = serde_json::from_slice(&serde_json::to_vec(&old).unwrap()).unwrap();
        let mut new = Ewma::new(2_000);
        new.restore(saved);
        assert_eq!(new.get(1), Some(10.0));
        assert_eq!(new.update(1, 2_000, 20.0), Some(15.0));
    }
}
