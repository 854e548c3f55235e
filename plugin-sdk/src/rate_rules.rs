//! Counters to per-second rates, routed by [`Rule`]s: the whole of the shipped `rate` plugin,
//! reusable by any plugin whose rates follow fixed rules (e.g. `pod-network`).

use serde::{Deserialize, Serialize};

use crate::counter::{Counter, CounterRate};
use crate::derived::DerivedEmitter;
use crate::rules::{Router, Routes, Rule, RuleSet};
use crate::series::SeriesTable;
use crate::types::{CycleInput, CycleOutput, Plan};

/// Rates of the counters `rules` select, published where each rule says. Keeps each counter's
/// last sample with its series, so a sample costs one counter update and one addition.
#[derive(Debug)]
pub struct RateRules {
    router: Router,
    /// Live input series, each with its routes and its counter.
    series: SeriesTable<(Routes, Counter)>,
    /// Counters restored from a snapshot, moved into `series` as their series are announced.
    restored: CounterRate,
    derived: DerivedEmitter,
}

/// What survives an instance restart: the last sample of every counter.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    rates: CounterRate,
}

impl RateRules {
    /// Validates `rules`; returns the rates and the plan they need.
    pub fn new(rules: Vec<Rule>) -> Result<(RateRules, Plan), String> {
        let router = Router::new(RuleSet::new(rules)?);
        let plan = router.plan().clone();
        let rates = RateRules {
            router,
            series: SeriesTable::new(),
            restored: CounterRate::new(),
            derived: DerivedEmitter::new(),
        };
        Ok((rates, plan))
    }

    /// One cycle: every counter sample becomes a rate (from its second sample on), summed into
    /// the values its rules publish.
    pub fn process(&mut self, input: &CycleInput) -> CycleOutput {
        let (router, restored) = (&mut self.router, &mut self.restored);
        let attach = |s: &_| (router.route(s), restored.take(s.id).unwrap_or_default());
        for (_, (routes, _)) in self.series.apply_with(input, attach) {
            self.router.release(&routes);
        }
        let router = &mut self.router;
        self.series
            .for_each_sample(input, |sample, _, (routes, counter)| {
                if routes.is_empty() {
                    return;
                }
                if let Some(rate) = counter.update(sample.timestamp_ms, sample.value) {
                    router.add(routes, rate.timestamp_ms, rate.per_second, rate.window_ms);
                }
            });
        let mut out = CycleOutput::new();
        self.router.finish(&mut self.derived, &mut out);
        out
    }

    /// Number of live counter series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no counter series is live.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The last sample of every counter, for [`crate::Plugin::snapshot`].
    pub fn snapshot(&self) -> Vec<u8> {
        let mut rates = CounterRate::new();
        for (series, (_, counter)) in self.series.iter() {
            rates.insert(series.id, *counter);
        }
        serde_json::to_vec(&Snapshot { rates }).unwrap_or_default()
    }

    /// Restores a [`RateRules::snapshot`] into fresh rates, for [`crate::Plugin::restore`].
    pub fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let snapshot: Snapshot =
            serde_json::from_slice(state).map_err(|e| format!("invalid snapshot: {e}"))?;
        self.restored = snapshot.rates;
        Ok(())
    }
}
