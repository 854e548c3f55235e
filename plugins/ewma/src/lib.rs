//! `ewma`: smooths any input series (including `derived` ones from an earlier plugin) with a
//! time-aware exponentially weighted moving average. See README.md.

use metrics_gateway_sdk::{
    CycleInput, CycleOutput, DerivedEmitter, Ewma, Plan, Plugin, Router, Routes, Rule, RuleSet,
    SeriesTable, export_plugin,
};
use serde::{Deserialize, Serialize};

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Time after which a step in the input is half reflected in the average, seconds.
    pub half_life_secs: f64,
    /// The series to smooth and where each average goes.
    pub rules: Vec<Rule>,
}

/// Moving averages of gauges.
pub struct EwmaPlugin {
    router: Router,
    half_life_ms: u64,
    /// Live input series, each with its routes.
    series: SeriesTable<Routes>,
    /// The average of every input series.
    averages: Ewma,
    derived: DerivedEmitter,
}

/// What survives an instance restart: the averages.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    averages: Ewma,
}

impl Plugin for EwmaPlugin {
    type Config = Config;

    fn configure(config: Config) -> Result<(Self, Plan), String> {
        if !(config.half_life_secs.is_finite() && config.half_life_secs >= 0.0) {
            return Err(format!(
                "half_life_secs must be a non-negative number, not {}",
                config.half_life_secs
            ));
        }
        let half_life_ms = (config.half_life_secs * 1000.0).round() as u64;
        let router = Router::new(RuleSet::new(config.rules)?);
        let plan = router.plan().clone();
        let plugin = EwmaPlugin {
            router,
            half_life_ms,
            series: SeriesTable::new(),
            averages: Ewma::new(half_life_ms),
            derived: DerivedEmitter::new(),
        };
        Ok((plugin, plan))
    }

    fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
        let router = &mut self.router;
        for (series, routes) in self.series.apply_with(input, |s| router.route(s)) {
            router.release(&routes);
            self.averages.remove(series.id);
        }
        for sample in input.samples() {
            let Some((_, routes)) = self.series.entry(sample.id) else {
                continue;
            };
            if routes.is_empty() {
                continue;
            }
            if let Some(average) =
                self.averages
                    .update(sample.id, sample.timestamp_ms, sample.value)
            {
                self.router
                    .add(routes, sample.timestamp_ms, average, self.half_life_ms);
            }
        }
        let mut out = CycleOutput::new();
        self.router.finish(&mut self.derived, &mut out);
        Ok(out)
    }

    fn snapshot(&self) -> Vec<u8> {
        let snapshot = Snapshot {
            averages: self.averages.clone(),
        };
        serde_json::to_vec(&snapshot).unwrap_or_default()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let snapshot: Snapshot =
            serde_json::from_slice(state).map_err(|e| format!("invalid snapshot: {e}"))?;
        self.averages.restore(snapshot.averages);
        Ok(())
    }
}

export_plugin!(EwmaPlugin);

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_gateway_sdk::ObjectRef;
    use metrics_gateway_sdk::testing::Harness;

    const POD: [(&str, &str); 2] = [("namespace", "web"), ("pod", "api-1")];

    fn harness() -> Harness<EwmaPlugin> {
        Harness::new(
            r#"{"half_life_secs": 60, "rules": [
                {"source": "derived", "series": "cpu_cores", "metric": "cpu_cores_smoothed",
                 "target": "pods"},
                {"source": "derived", "series": "cpu_cores", "metric": "cpu_cores_ewma",
                 "target": "derived"}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn smooths_with_the_real_time_step() {
        let mut h = harness();
        let pod = ObjectRef::pod("web", "api-1");
        let out = h.cycle(0).sample("cpu_cores", &POD, 0.0).run().unwrap();
        assert_eq!(out.custom("cpu_cores_smoothed", &pod), Some(0.0));
        // One half-life later, halfway to the new value.
        let out = h
            .cycle(60_000)
            .sample("cpu_cores", &POD, 100.0)
            .run()
            .unwrap();
        let v = out.custom_value("cpu_cores_smoothed", &pod).unwrap();
        assert_eq!((v.value, v.window_ms), (50.0, 60_000));
        assert_eq!(out.derived("cpu_cores_ewma", &POD), Some(50.0));
        // Two more half-lives in one step: a quarter of the remaining distance is left.
        let out = h
            .cycle(180_000)
            .sample("cpu_cores", &POD, 100.0)
            .run()
            .unwrap();
        assert_eq!(out.custom("cpu_cores_smoothed", &pod), Some(87.5));
    }

    #[test]
    fn averages_survive_an_instance_restart() {
        let mut h = harness();
        let pod = ObjectRef::pod("web", "api-1");
        h.cycle(0).sample("cpu_cores", &POD, 0.0).run().unwrap();
        h.restart().unwrap();
        let out = h
            .cycle(60_000)
            .sample("cpu_cores", &POD, 100.0)
            .run()
            .unwrap();
        assert_eq!(out.custom("cpu_cores_smoothed", &pod), Some(50.0));
    }

    #[test]
    fn a_removed_series_starts_over() {
        let mut h = harness();
        let pod = ObjectRef::pod("web", "api-1");
        h.cycle(0).sample("cpu_cores", &POD, 0.0).run().unwrap();
        let out = h.cycle(15_000).run().unwrap();
        assert_eq!(out.raw().derived_removed.len(), 1);
        let out = h
            .cycle(30_000)
            .sample("cpu_cores", &POD, 8.0)
            .run()
            .unwrap();
        assert_eq!(out.custom("cpu_cores_smoothed", &pod), Some(8.0));
    }

    #[test]
    fn rejects_a_bad_half_life() {
        let config = r#"{"half_life_secs": -1, "rules": [
            {"source": "derived", "series": "x", "metric": "y", "target": "derived"}]}"#;
        assert!(Harness::<EwmaPlugin>::new(config).is_err());
    }
}
