//! `rate`: any counter to a per-second rate, reset-safe, published as a custom metric on the
//! objects its labels name, as an external metric, or as a derived series. See README.md.

use metrics_gateway_sdk::{CycleInput, CycleOutput, Plan, Plugin, RateRules, Rule, export_plugin};
use serde::Deserialize;

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The counters to turn into rates and where each rate goes.
    pub rules: Vec<Rule>,
}

/// Per-second rates of counters.
pub struct RatePlugin {
    rates: RateRules,
}

impl Plugin for RatePlugin {
    type Config = Config;

    fn configure(config: Config) -> Result<(Self, Plan), String> {
        let (rates, plan) = RateRules::new(config.rules)?;
        Ok((RatePlugin { rates }, plan))
    }

    fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
        Ok(self.rates.process(input))
    }

    fn snapshot(&self) -> Vec<u8> {
        self.rates.snapshot()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        self.rates.restore(state)
    }
}

export_plugin!(RatePlugin);

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_gateway_sdk::testing::Harness;
    use metrics_gateway_sdk::{MetricSpec, ObjectRef};

    const CPU: &str = "container_cpu_usage_seconds_total";

    fn harness() -> Harness<RatePlugin> {
        Harness::new(
            r#"{"rules": [
                {"source": "kubelet-resource", "series": "container_cpu_usage_seconds_total",
                 "match": "container!=POD", "metric": "cpu_cores", "target": "pods"},
                {"source": "kubelet-resource", "series": "node_cpu_usage_seconds_total",
                 "metric": "node_cpu_cores", "target": "nodes"},
                {"source": "kubelet-resource", "series": "container_cpu_usage_seconds_total",
                 "metric": "container_cpu_cores", "target": "derived"}
            ]}"#,
        )
        .unwrap()
    }

    fn container(c: &str) -> [(&str, &str); 3] {
        [("namespace", "web"), ("pod", "api-1"), ("container", c)]
    }

    #[test]
    fn plan_lists_inputs_metrics_and_derived() {
        let h = harness();
        assert_eq!(h.plan().inputs.len(), 2);
        assert_eq!(
            h.plan().metrics,
            vec![
                MetricSpec::custom("cpu_cores", "pods"),
                MetricSpec::custom("node_cpu_cores", "nodes")
            ]
        );
        assert_eq!(h.plan().derived, vec!["container_cpu_cores".to_owned()]);
    }

    #[test]
    fn sums_containers_of_a_pod_and_skips_excluded_ones() {
        let mut h = harness();
        let pod = ObjectRef::pod("web", "api-1");
        let first = h
            .cycle(0)
            .sample(CPU, &container("app"), 10.0)
            .sample(CPU, &container("side"), 5.0)
            .sample(CPU, &container("POD"), 0.0)
            .run()
            .unwrap();
        assert_eq!(
            first.custom("cpu_cores", &pod),
            None,
            "one sample gives no rate"
        );

        let out = h
            .cycle(10_000)
            .sample(CPU, &container("app"), 30.0)
            .sample(CPU, &container("side"), 10.0)
            .sample(CPU, &container("POD"), 1_000.0)
            .run()
            .unwrap();
        let v = out.custom_value("cpu_cores", &pod).unwrap();
        assert_eq!(
            (v.value, v.window_ms, v.timestamp_ms),
            (2.5, 10_000, 10_000)
        );
        assert_eq!(
            out.derived("container_cpu_cores", &container("app")),
            Some(2.0)
        );
        assert_eq!(
            out.derived("container_cpu_cores", &container("POD")),
            Some(100.0)
        );
    }

    #[test]
    fn a_counter_reset_is_a_restart_not_a_negative_rate() {
        let mut h = harness();
        let node = ObjectRef::node("n1");
        let cpu = |h: &mut Harness<RatePlugin>, t, v| {
            h.cycle(t)
                .sample("node_cpu_usage_seconds_total", &[("node", "n1")], v)
                .run()
                .unwrap()
                .custom("node_cpu_cores", &node)
        };
        cpu(&mut h, 0, 500.0);
        assert_eq!(cpu(&mut h, 10_000, 520.0), Some(2.0));
        assert_eq!(cpu(&mut h, 20_000, 4.0), Some(0.4));
        assert_eq!(cpu(&mut h, 30_000, 14.0), Some(1.0));
    }

    #[test]
    fn uses_the_real_sample_window() {
        let mut h = harness();
        let pod = ObjectRef::pod("web", "api-1");
        h.cycle(15_000)
            .sample_at(CPU, &container("app"), 14_000, 0.0)
            .run()
            .unwrap();
        let out = h
            .cycle(30_000)
            .sample_at(CPU, &container("app"), 34_000, 40.0)
            .run()
            .unwrap();
        let v = out.custom_value("cpu_cores", &pod).unwrap();
        assert_eq!(
            (v.value, v.window_ms, v.timestamp_ms),
            (2.0, 20_000, 34_000)
        );
    }

    #[test]
    fn removed_series_lose_their_state_and_derived_series() {
        let mut h = harness();
        h.cycle(0)
            .sample(CPU, &container("app"), 0.0)
            .run()
            .unwrap();
        let out = h
            .cycle(10_000)
            .sample(CPU, &container("app"), 10.0)
            .run()
            .unwrap();
        assert_eq!(out.derived_live(), 1);
        let out = h.cycle(20_000).run().unwrap();
        assert_eq!(out.raw().derived_removed.len(), 1);
        assert_eq!(out.derived_live(), 0);
        // Back again: a new series, so the first sample gives no rate.
        let out = h
            .cycle(30_000)
            .sample(CPU, &container("app"), 50.0)
            .run()
            .unwrap();
        assert!(out.raw().custom.is_empty());
    }

    #[test]
    fn state_survives_an_instance_restart() {
        let mut h = harness();
        let node = ObjectRef::node("n1");
        h.cycle(0)
            .sample("node_cpu_usage_seconds_total", &[("node", "n1")], 100.0)
            .run()
            .unwrap();
        h.restart().unwrap();
        let out = h
            .cycle(10_000)
            .sample("node_cpu_usage_seconds_total", &[("node", "n1")], 150.0)
            .run()
            .unwrap();
        assert_eq!(out.custom("node_cpu_cores", &node), Some(5.0));
    }

    #[test]
    fn external_targets_keep_labels_and_namespace() {
        let mut h = Harness::<RatePlugin>::new(
            r#"{"rules": [{"source": "prometheus", "series": "sum by (namespace, queue) (jobs_total)",
                "metric": "jobs_per_second", "target": "external", "namespaced": true}]}"#,
        )
        .unwrap();
        let labels = [("namespace", "batch"), ("queue", "q1")];
        h.cycle(0).sample("jobs_total", &labels, 0.0).run().unwrap();
        let out = h
            .cycle(5_000)
            .sample("jobs_total", &labels, 10.0)
            .run()
            .unwrap();
        let values = out.external_values("jobs_per_second", "batch");
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].value, 2.0);
        assert_eq!(values[0].labels, metrics_gateway_sdk::labels(&labels));
    }

    #[test]
    fn config_errors_are_reported() {
        assert!(Harness::<RatePlugin>::new(r#"{"rules": []}"#).is_err());
        let err = Harness::<RatePlugin>::new(r#"{"rulez": []}"#)
            .err()
            .unwrap();
        assert!(err.contains("rulez"), "{err}");
    }
}
