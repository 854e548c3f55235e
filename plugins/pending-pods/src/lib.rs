//! `pending-pods`: the number of pods in a phase (default `Pending`) per namespace, and
//! optionally cluster-wide, as external metrics: the example of scaling on a backlog. See
//! README.md.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use metrics_gateway_sdk::{
    CycleInput, CycleOutput, InputSpec, MetricSpec, Plan, Plugin, SeriesTable, Source,
    export_plugin,
};
use serde::Deserialize;

/// The plugin's config; every key is optional.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The namespaced external metric (default `pending_pods`).
    pub metric: String,
    /// The pod phase counted (default `Pending`).
    pub phase: String,
    /// A cluster-wide external metric with the total, if wanted (default none).
    pub cluster_metric: Option<String>,
    /// How long a value stays servable after its timestamp, ms; 0 for the host's default.
    pub max_age_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            metric: "pending_pods".to_owned(),
            phase: "Pending".to_owned(),
            cluster_metric: None,
            max_age_ms: 0,
        }
    }
}

/// What a phase series counts toward, worked out once when it is announced: its namespace
/// and whether its phase is the one counted. `None` for a series without a namespace.
type Counted = Option<(Rc<str>, bool)>;

/// Pods in a phase, counted.
pub struct PendingPods {
    config: Config,
    series: SeriesTable<Counted>,
    /// Each namespace's name, shared by its series.
    namespaces: HashMap<String, Rc<str>>,
}

impl Plugin for PendingPods {
    type Config = Config;

    fn configure(config: Config) -> Result<(Self, Plan), String> {
        let mut plan = Plan::new();
        plan.add_input(InputSpec::new(Source::Cluster, "kube_pod_status_phase"));
        plan.add_metric(
            MetricSpec::external(&config.metric, true).with_max_age_ms(config.max_age_ms),
        )?;
        if let Some(cluster) = &config.cluster_metric {
            if *cluster == config.metric {
                return Err("cluster_metric must differ from metric".to_owned());
            }
            plan.add_metric(
                MetricSpec::external(cluster, false).with_max_age_ms(config.max_age_ms),
            )?;
        }
        Ok((
            PendingPods {
                config,
                series: SeriesTable::new(),
                namespaces: HashMap::new(),
            },
            plan,
        ))
    }

    fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
        let (phase, namespaces) = (self.config.phase.as_str(), &mut self.namespaces);
        self.series.apply_with(input, |series| {
            let namespace = series.label("namespace").filter(|n| !n.is_empty())?;
            let shared = namespaces
                .entry(namespace.to_owned())
                .or_insert_with(|| Rc::from(namespace))
                .clone();
            Some((shared, series.label("phase") == Some(phase)))
        });
        // Names no live series holds any more.
        self.namespaces.retain(|_, name| Rc::strong_count(name) > 1);
        // Every namespace with pods gets a value, 0 included: an empty answer is an error for
        // the HPA.
        let mut per_namespace: HashMap<Rc<str>, f64> = HashMap::new();
        self.series.for_each_sample(input, |sample, _, counted| {
            if let Some((namespace, counted_phase)) = counted {
                let count = per_namespace.entry(namespace.clone()).or_default();
                if *counted_phase && sample.value == 1.0 {
                    *count += 1.0;
                }
            }
        });
        let per_namespace: BTreeMap<Rc<str>, f64> = per_namespace.into_iter().collect();
        let mut out = CycleOutput::new();
        let t = input.timestamp_ms;
        for (namespace, count) in &per_namespace {
            out.push_external(&self.config.metric, &**namespace, *count, t);
        }
        if let Some(cluster) = &self.config.cluster_metric {
            out.push_external(cluster, "", per_namespace.values().sum(), t);
        }
        Ok(out)
    }
}

export_plugin!(PendingPods);

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_gateway_sdk::testing::{Cycle, Harness};

    const PHASE: &str = "kube_pod_status_phase";

    fn phase<'h>(
        c: Cycle<'h, PendingPods>,
        ns: &str,
        pod: &str,
        current: &str,
    ) -> Cycle<'h, PendingPods> {
        ["Pending", "Running", "Succeeded", "Failed", "Unknown"]
            .iter()
            .fold(c, |c, p| {
                let value = if *p == current { 1.0 } else { 0.0 };
                c.sample(
                    PHASE,
                    &[("namespace", ns), ("pod", pod), ("phase", p)],
                    value,
                )
            })
    }

    #[test]
    fn counts_pending_pods_per_namespace_and_in_the_cluster() {
        let mut h =
            Harness::<PendingPods>::new(r#"{"cluster_metric": "pending_pods_cluster"}"#).unwrap();
        assert_eq!(
            h.plan().metrics[0],
            MetricSpec::external("pending_pods", true)
        );
        assert_eq!(
            h.plan().metrics[1],
            MetricSpec::external("pending_pods_cluster", false)
        );
        let c = h.cycle(1_000);
        let c = phase(c, "jobs", "a", "Pending");
        let c = phase(c, "jobs", "b", "Pending");
        let c = phase(c, "jobs", "c", "Running");
        let c = phase(c, "web", "d", "Running");
        let c = phase(c, "batch", "e", "Pending");
        let out = c.run().unwrap();
        assert_eq!(out.external("pending_pods", "jobs"), Some(2.0));
        assert_eq!(
            out.external("pending_pods", "web"),
            Some(0.0),
            "zero, not missing"
        );
        assert_eq!(out.external("pending_pods", "batch"), Some(1.0));
        assert_eq!(out.external("pending_pods_cluster", ""), Some(3.0));
        let v = &out.external_values("pending_pods", "jobs")[0];
        assert!(v.labels.is_empty());
        assert_eq!((v.timestamp_ms, v.window_ms), (1_000, 0));

        // A pod got scheduled and another was deleted.
        let c = h.cycle(16_000);
        let c = phase(c, "jobs", "a", "Running");
        let c = phase(c, "jobs", "c", "Running");
        let out = c.run().unwrap();
        assert_eq!(out.external("pending_pods", "jobs"), Some(0.0));
        assert_eq!(out.external("pending_pods", "batch"), None);
        assert_eq!(out.external("pending_pods_cluster", ""), Some(0.0));
        // The names of namespaces without series are let go.
        assert_eq!(h.plugin().namespaces.len(), 1);
    }

    #[test]
    fn counts_another_phase_when_configured() {
        let mut h =
            Harness::<PendingPods>::new(r#"{"metric": "failed_pods", "phase": "Failed"}"#).unwrap();
        let out = phase(h.cycle(0), "jobs", "a", "Failed").run().unwrap();
        assert_eq!(out.external("failed_pods", "jobs"), Some(1.0));
        assert_eq!(h.plan().metrics.len(), 1);
    }
}
