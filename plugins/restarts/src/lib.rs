//! `restarts`: container restarts per minute over a window, per pod and per owning Deployment,
//! from the cluster state's kube-state-metrics series. See README.md.

use std::collections::{BTreeMap, HashMap, VecDeque};

use metrics_gateway_sdk::{
    CycleInput, CycleOutput, InputSpec, MetricSpec, ObjectRef, Plan, Plugin, SeriesTable, Source,
    counter_increase, export_plugin,
};
use serde::{Deserialize, Serialize};

/// The plugin's config; every key is optional.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The window restarts are counted over, seconds (default 300).
    pub window_secs: u64,
    /// The published metric (default `container_restarts_per_minute`).
    pub metric: String,
    /// How long a value stays servable after its timestamp, ms; 0 for the host's default.
    pub max_age_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            window_secs: 300,
            metric: "container_restarts_per_minute".to_owned(),
            max_age_ms: 0,
        }
    }
}

const RESTARTS: &str = "kube_pod_container_status_restarts_total";
const POD_OWNER: &str = "kube_pod_owner";
const REPLICASET_OWNER: &str = "kube_replicaset_owner";

/// One sample of a restart counter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Point {
    t: i64,
    v: f64,
}

/// The restart counter samples of one container within the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct History(VecDeque<Point>);

impl History {
    /// Records a sample (ignored unless newer than the last and finite), drops samples older
    /// than `window_ms` before it, and returns restarts per minute over the kept samples with
    /// their time span and the newest timestamp, once there are two.
    fn record(&mut self, t: i64, v: f64, window_ms: u64) -> Option<(f64, u64, i64)> {
        if v.is_finite() && self.0.back().is_none_or(|last| t > last.t) {
            self.0.push_back(Point { t, v });
            let oldest = t.saturating_sub_unsigned(window_ms);
            while self.0.front().is_some_and(|p| p.t < oldest) {
                self.0.pop_front();
            }
        }
        let (first, last) = (self.0.front()?, self.0.back()?);
        let span_ms = last.t.abs_diff(first.t);
        if span_ms == 0 {
            return None;
        }
        let restarts: f64 = self
            .0
            .iter()
            .zip(self.0.iter().skip(1))
            .map(|(a, b)| counter_increase(a.v, b.v))
            .sum();
        Some((restarts * 60_000.0 / span_ms as f64, span_ms, last.t))
    }
}

/// A sum of per-minute rates, with the oldest timestamp and the shortest window.
#[derive(Debug, Clone, Copy)]
struct Sum {
    value: f64,
    timestamp_ms: i64,
    window_ms: u64,
}

impl Sum {
    fn add(entry: Option<&mut Sum>, value: f64, timestamp_ms: i64, window_ms: u64) -> Option<Sum> {
        match entry {
            Some(s) => {
                s.value += value;
                s.timestamp_ms = s.timestamp_ms.min(timestamp_ms);
                s.window_ms = s.window_ms.min(window_ms);
                None
            }
            None => Some(Sum {
                value,
                timestamp_ms,
                window_ms,
            }),
        }
    }
}

/// Container restarts per minute.
pub struct Restarts {
    metric: String,
    window_ms: u64,
    /// Input indices of the three series.
    inputs: [u32; 3],
    series: SeriesTable,
    /// Restart counter history by series id.
    history: HashMap<u64, History>,
}

/// What survives an instance restart: the counter histories.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    history: HashMap<u64, History>,
}

fn add_to(map: &mut BTreeMap<ObjectRef, Sum>, object: ObjectRef, value: f64, t: i64, w: u64) {
    if let Some(new) = Sum::add(map.get_mut(&object), value, t, w) {
        map.insert(object, new);
    }
}

impl Plugin for Restarts {
    type Config = Config;

    fn configure(config: Config) -> Result<(Self, Plan), String> {
        if config.window_secs == 0 {
            return Err("window_secs must be at least 1".to_owned());
        }
        let mut plan = Plan::new();
        let inputs = [RESTARTS, POD_OWNER, REPLICASET_OWNER]
            .map(|name| plan.add_input(InputSpec::new(Source::Cluster, name)));
        for resource in ["pods", "deployments.apps"] {
            plan.add_metric(
                MetricSpec::custom(&config.metric, resource).with_max_age_ms(config.max_age_ms),
            )?;
        }
        let plugin = Restarts {
            metric: config.metric,
            window_ms: config.window_secs.saturating_mul(1000),
            inputs,
            series: SeriesTable::new(),
            history: HashMap::new(),
        };
        Ok((plugin, plan))
    }

    fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
        self.series.apply(input);
        for id in &input.removed {
            self.history.remove(id);
        }
        let [restarts, pod_owner, replicaset_owner] = self.inputs;
        let mut pods = BTreeMap::new();
        // (namespace, pod) → ReplicaSet, and (namespace, ReplicaSet) → Deployment.
        let mut pod_replicaset = HashMap::new();
        let mut replicaset_deployment = HashMap::new();
        for sample in input.samples() {
            let Some(series) = self.series.get(sample.id) else {
                continue;
            };
            if series.input == restarts {
                let Some(pod) = ObjectRef::from_labels("pods", &series.labels) else {
                    continue;
                };
                let history = self.history.entry(sample.id).or_default();
                if let Some((per_minute, span, t)) =
                    history.record(sample.timestamp_ms, sample.value, self.window_ms)
                {
                    add_to(&mut pods, pod, per_minute, t, span);
                }
                continue;
            }
            // Owner series: value 1 for the current owner.
            let labels = ["namespace", "owner_kind", "owner_name"].map(|l| series.label(l));
            let [Some(namespace), Some(kind), Some(owner)] = labels else {
                continue;
            };
            if sample.value <= 0.0 || owner.is_empty() {
                continue;
            }
            if series.input == pod_owner
                && kind == "ReplicaSet"
                && let Some(pod) = series.label("pod")
            {
                pod_replicaset.insert((namespace, pod), owner);
            } else if series.input == replicaset_owner
                && kind == "Deployment"
                && let Some(replicaset) = series.label("replicaset")
            {
                replicaset_deployment.insert((namespace, replicaset), owner);
            }
        }

        let mut deployments = BTreeMap::new();
        for (pod, sum) in &pods {
            let deployment = pod_replicaset
                .get(&(pod.namespace.as_str(), pod.name.as_str()))
                .and_then(|rs| replicaset_deployment.get(&(pod.namespace.as_str(), *rs)));
            if let Some(deployment) = deployment {
                let object = ObjectRef::deployment(&pod.namespace, *deployment);
                add_to(
                    &mut deployments,
                    object,
                    sum.value,
                    sum.timestamp_ms,
                    sum.window_ms,
                );
            }
        }

        let mut out = CycleOutput::new();
        for (object, sum) in pods.into_iter().chain(deployments) {
            out.push_custom(&self.metric, object, sum.value, sum.timestamp_ms)
                .window_ms = sum.window_ms;
        }
        Ok(out)
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&Snapshot {
            history: self.history.clone(),
        })
        .unwrap_or_default()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let snapshot: Snapshot =
            serde_json::from_slice(state).map_err(|e| format!("invalid snapshot: {e}"))?;
        self.history = snapshot.history;
        Ok(())
    }
}

export_plugin!(Restarts);

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_gateway_sdk::testing::{Cycle, Harness};

    const MIN: i64 = 60_000;
    const METRIC: &str = "container_restarts_per_minute";

    fn container(pod: &str, c: &str) -> [(&'static str, String); 3] {
        [
            ("namespace", "web".into()),
            ("pod", pod.into()),
            ("container", c.into()),
        ]
    }

    /// One cycle with the owner chain api-1, api-2 → ReplicaSet api-7f → Deployment api, and
    /// the given restart counters of (pod, container).
    fn cycle<'h>(
        h: &'h mut Harness<Restarts>,
        t: i64,
        counters: &[(&str, &str, f64)],
    ) -> Cycle<'h, Restarts> {
        let mut c = h.cycle(t);
        for pod in ["api-1", "api-2"] {
            c = c.sample(
                POD_OWNER,
                &[
                    ("namespace", "web"),
                    ("pod", pod),
                    ("owner_kind", "ReplicaSet"),
                    ("owner_name", "api-7f"),
                ],
                1.0,
            );
        }
        c = c.sample(
            REPLICASET_OWNER,
            &[
                ("namespace", "web"),
                ("replicaset", "api-7f"),
                ("owner_kind", "Deployment"),
                ("owner_name", "api"),
            ],
            1.0,
        );
        for (pod, name, v) in counters {
            let l = container(pod, name);
            let pairs: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            c = c.sample(RESTARTS, &pairs, *v);
        }
        c
    }

    #[test]
    fn counts_restarts_over_the_window_per_pod_and_deployment() {
        let mut h = Harness::<Restarts>::new(r#"{"window_secs": 300}"#).unwrap();
        let (p1, p2, dep) = (
            ObjectRef::pod("web", "api-1"),
            ObjectRef::pod("web", "api-2"),
            ObjectRef::deployment("web", "api"),
        );
        let out = cycle(&mut h, 0, &[("api-1", "app", 3.0), ("api-2", "app", 0.0)])
            .run()
            .unwrap();
        assert!(
            out.raw().custom.is_empty(),
            "one sample tells nothing about recent restarts"
        );

        // api-1 restarts twice in the first minute, then stays up.
        let out = cycle(&mut h, MIN, &[("api-1", "app", 5.0), ("api-2", "app", 0.0)])
            .run()
            .unwrap();
        assert_eq!(out.custom(METRIC, &p1), Some(2.0));
        assert_eq!(out.custom(METRIC, &p2), Some(0.0));
        assert_eq!(out.custom(METRIC, &dep), Some(2.0));
        for minute in 2..5 {
            cycle(
                &mut h,
                minute * MIN,
                &[("api-1", "app", 5.0), ("api-2", "app", 0.0)],
            )
            .run()
            .unwrap();
        }
        // At 5 min the window still holds the two restarts: 2 over 5 minutes.
        let out = cycle(
            &mut h,
            5 * MIN,
            &[("api-1", "app", 5.0), ("api-2", "app", 0.0)],
        )
        .run()
        .unwrap();
        assert_eq!(out.custom(METRIC, &p1), Some(0.4));
        assert_eq!(out.custom_value(METRIC, &p1).unwrap().window_ms, 300_000);
        // At 6 min they have left it.
        let out = cycle(
            &mut h,
            6 * MIN,
            &[("api-1", "app", 5.0), ("api-2", "app", 0.0)],
        )
        .run()
        .unwrap();
        assert_eq!(out.custom(METRIC, &p1), Some(0.0));
        assert_eq!(out.custom(METRIC, &dep), Some(0.0));
    }

    #[test]
    fn sums_containers_and_survives_counter_resets_and_restarts() {
        let mut h = Harness::<Restarts>::new("{}").unwrap();
        let p1 = ObjectRef::pod("web", "api-1");
        cycle(&mut h, 0, &[("api-1", "app", 4.0), ("api-1", "side", 1.0)])
            .run()
            .unwrap();
        h.restart().unwrap();
        // The app counter went down (the pod's status was reset): counted from 0.
        let out = cycle(
            &mut h,
            MIN,
            &[("api-1", "app", 1.0), ("api-1", "side", 2.0)],
        )
        .run()
        .unwrap();
        assert_eq!(out.custom(METRIC, &p1), Some(2.0));
    }

    #[test]
    fn pods_without_a_deployment_are_served_alone() {
        let mut h = Harness::<Restarts>::new("{}").unwrap();
        let labels = [("namespace", "db"), ("pod", "pg-0"), ("container", "pg")];
        h.cycle(0).sample(RESTARTS, &labels, 0.0).run().unwrap();
        let out = h.cycle(MIN).sample(RESTARTS, &labels, 1.0).run().unwrap();
        assert_eq!(out.custom(METRIC, &ObjectRef::pod("db", "pg-0")), Some(1.0));
        assert_eq!(out.raw().custom.len(), 1);
    }

    #[test]
    fn rejects_an_empty_window() {
        assert!(Harness::<Restarts>::new(r#"{"window_secs": 0}"#).is_err());
    }
}
