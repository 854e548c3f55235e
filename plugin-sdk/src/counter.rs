//! Counters to per-second rates, reset-safe like Prometheus.

use serde::{Deserialize, Serialize};

use crate::idmap::IdMap;

/// How much a counter grew from `previous` to `current`: a decrease means the counter restarted
/// from 0, so the growth is `current` itself.
pub fn counter_increase(previous: f64, current: f64) -> f64 {
    if current < previous {
        current
    } else {
        current - previous
    }
}

/// A per-second rate computed from two samples of a counter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Growth per second over the window.
    pub per_second: f64,
    /// Timestamp of the newer sample, ms since the epoch.
    pub timestamp_ms: i64,
    /// Time between the two samples, ms.
    pub window_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Point {
    t: i64,
    v: f64,
}

/// One counter series: its last sample, turning each new sample into a [`Rate`] over the real
/// time since the previous one. Keep one per series (e.g. as [`crate::SeriesTable`] data);
/// [`CounterRate`] keeps them by series id.
///
/// The first sample yields nothing; a sample not newer than the last one, or not finite, is
/// ignored; a decrease means the counter restarted from 0. Serializable, so it can go into a
/// plugin's snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    last: Option<Point>,
}

impl Counter {
    /// Records a sample and returns the rate since the previous one.
    pub fn update(&mut self, timestamp_ms: i64, value: f64) -> Option<Rate> {
        if !value.is_finite() {
            return None;
        }
        let new = Point {
            t: timestamp_ms,
            v: value,
        };
        match &mut self.last {
            None => {
                self.last = Some(new);
                None
            }
            Some(old) if new.t <= old.t => None,
            Some(old) => {
                let window_ms = new.t.abs_diff(old.t);
                let per_second = counter_increase(old.v, new.v) * 1000.0 / window_ms as f64;
                *old = new;
                Some(Rate {
                    per_second,
                    timestamp_ms,
                    window_ms,
                })
            }
        }
    }
}

/// A [`Counter`] per series id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterRate {
    last: IdMap<Counter>,
}

impl CounterRate {
    /// No series yet.
    pub fn new() -> CounterRate {
        CounterRate::default()
    }

    /// Records a sample of series `id` and returns its rate since the previous sample.
    pub fn update(&mut self, id: u64, timestamp_ms: i64, value: f64) -> Option<Rate> {
        if !value.is_finite() {
            return None;
        }
        self.last.entry(id).or_default().update(timestamp_ms, value)
    }

    /// Takes the counter of series `id` out (e.g. to move restored state into a series table).
    pub fn take(&mut self, id: u64) -> Option<Counter> {
        self.last.remove(&id)
    }

    /// Puts the counter of series `id`.
    pub fn insert(&mut self, id: u64, counter: Counter) {
        self.last.insert(id, counter);
    }

    /// Forgets series `id` (call it for the ids of [`crate::CycleInput::removed`]).
    pub fn remove(&mut self, id: u64) {
        self.last.remove(&id);
    }

    /// Number of series tracked.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no series is tracked.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_yields_nothing_then_rates_over_the_real_window() {
        let mut c = CounterRate::new();
        assert_eq!(c.update(1, 10_000, 100.0), None);
        let r = c.update(1, 12_500, 150.0).unwrap();
        assert_eq!(r.per_second, 20.0);
        assert_eq!(r.window_ms, 2_500);
        assert_eq!(r.timestamp_ms, 12_500);
    }

    #[test]
    fn a_decrease_is_a_restart_from_zero() {
        let mut c = CounterRate::new();
        c.update(1, 0, 1_000.0);
        let r = c.update(1, 10_000, 30.0).unwrap();
        assert_eq!(r.per_second, 3.0);
        let r = c.update(1, 20_000, 50.0).unwrap();
        assert_eq!(r.per_second, 2.0);
    }

    #[test]
    fn old_equal_and_non_finite_samples_are_ignored() {
        let mut c = CounterRate::new();
        c.update(1, 10_000, 100.0);
        assert_eq!(c.update(1, 10_000, 200.0), None);
        assert_eq!(c.update(1, 5_000, 0.0), None);
        assert_eq!(c.update(1, 11_000, f64::NAN), None);
        assert_eq!(c.update(1, 11_000, f64::INFINITY), None);
        // The ignored samples did not replace the stored one.
        assert_eq!(c.update(1, 20_000, 110.0).unwrap().per_second, 1.0);
    }

    #[test]
    fn series_are_independent_and_removable() {
        let mut c = CounterRate::new();
        c.update(1, 0, 0.0);
        c.update(2, 0, 0.0);
        assert_eq!(c.update(2, 1_000, 5.0).unwrap().per_second, 5.0);
        c.remove(1);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.update(1, 1_000, 5.0),
            None,
            "a removed series starts over"
        );
    }

    #[test]
    fn survives_a_serde_round_trip() {
        let mut c = CounterRate::new();
        c.update(7, 0, 10.0);
        let restored: CounterRate =
            serde_json::from_slice(&serde_json::to_vec(&c).unwrap()).unwrap();
        assert_eq!(restored, c);
    }
}
