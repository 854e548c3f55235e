//! `pod-network`: network receive and transmit rates of pods, from the kubelet Summary API
//! counters, as custom metrics on pods. See README.md.

use metrics_gateway_sdk::{
    CycleInput, CycleOutput, Plan, Plugin, RateRules, Rule, Selector, Source, Target, export_plugin,
};
use serde::Deserialize;

/// The plugin's config; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long a value stays servable after its timestamp, ms; 0 for the host's default.
    pub max_age_ms: u64,
}

/// Counter series read from the Summary API and the metric each one becomes.
const METRICS: [(&str, &str); 2] = [
    (
        "pod_network_receive_bytes_total",
        "network_receive_bytes_per_second",
    ),
    (
        "pod_network_transmit_bytes_total",
        "network_transmit_bytes_per_second",
    ),
];

/// Pod network rates.
pub struct PodNetwork {
    rates: RateRules,
}

impl Plugin for PodNetwork {
    type Config = Config;

    fn configure(config: Config) -> Result<(Self, Plan), String> {
        let rules = METRICS
            .iter()
            .map(|(series, metric)| Rule {
                source: Source::KubeletSummary,
                series: (*series).to_owned(),
                backend: String::new(),
                matcher: Selector::default(),
                metric: (*metric).to_owned(),
                target: Target::Object("pods".to_owned()),
                keep_labels: None,
                namespaced: false,
                max_age_ms: config.max_age_ms,
            })
            .collect();
        let (rates, plan) = RateRules::new(rules)?;
        Ok((PodNetwork { rates }, plan))
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

export_plugin!(PodNetwork);

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_gateway_sdk::testing::Harness;
    use metrics_gateway_sdk::{MetricSpec, ObjectRef};

    const RX: &str = "pod_network_receive_bytes_total";
    const TX: &str = "pod_network_transmit_bytes_total";
    const POD: [(&str, &str); 3] = [("namespace", "web"), ("node", "n1"), ("pod", "api-1")];

    #[test]
    fn publishes_both_metrics_on_pods() {
        let h = Harness::<PodNetwork>::new(r#"{"max_age_ms": 60000}"#).unwrap();
        let plan = h.plan();
        assert!(
            plan.inputs
                .iter()
                .all(|i| i.source == Source::KubeletSummary)
        );
        assert_eq!(
            plan.metrics,
            vec![
                MetricSpec::custom("network_receive_bytes_per_second", "pods")
                    .with_max_age_ms(60_000),
                MetricSpec::custom("network_transmit_bytes_per_second", "pods")
                    .with_max_age_ms(60_000),
            ]
        );
    }

    #[test]
    fn rates_over_the_real_window_between_samples() {
        let mut h = Harness::<PodNetwork>::new("").unwrap();
        let pod = ObjectRef::pod("web", "api-1");
        h.cycle(15_000)
            .sample_at(RX, &POD, 12_000, 1_000.0)
            .sample_at(TX, &POD, 12_000, 500.0)
            .run()
            .unwrap();
        let out = h
            .cycle(30_000)
            .sample_at(RX, &POD, 28_000, 9_000.0)
            .sample_at(TX, &POD, 28_000, 100.0)
            .run()
            .unwrap();
        let rx = out
            .custom_value("network_receive_bytes_per_second", &pod)
            .unwrap();
        assert_eq!(
            (rx.value, rx.window_ms, rx.timestamp_ms),
            (500.0, 16_000, 28_000)
        );
        // The transmit counter went down: the pod restarted, counting from 0.
        assert_eq!(
            out.custom("network_transmit_bytes_per_second", &pod),
            Some(6.25)
        );
    }

    #[test]
    fn a_deleted_pod_is_forgotten() {
        let mut h = Harness::<PodNetwork>::new("{}").unwrap();
        h.cycle(0).sample(RX, &POD, 0.0).run().unwrap();
        let out = h.cycle(10_000).run().unwrap();
        assert!(out.raw().custom.is_empty());
        assert!(h.plugin().rates.is_empty());
    }
}
