//! `restarts`: container restarts per minute over a window, per pod and per owning Deployment,
//! from the cluster state's kube-state-metrics series. See README.md.

use std::collections::{HashMap, VecDeque};

use metrics_gateway_sdk::{
    CycleInput, CycleOutput, InputSpec, MetricSpec, ObjectRef, Plan, Plugin, Series, SeriesTable,
    Source, counter_increase, export_plugin,
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

/// What a series is to the plugin, worked out once when it is announced.
enum Role {
    /// A container's restart counter: its pod (index into [`Pods`]) and recent samples.
    Counter { pod: u32, history: History },
    /// A pod's ReplicaSet owner; `seen` is the last cycle its value was positive.
    PodOwner {
        pod: u32,
        replicaset: String,
        seen: u64,
    },
    /// A ReplicaSet's Deployment owner; `seen` as above.
    ReplicaSetOwner {
        namespace: String,
        replicaset: String,
        deployment: String,
        seen: u64,
    },
    /// Nothing this plugin uses (no object, another owner kind).
    Other,
}

impl Role {
    fn of(
        series: &Series,
        [restarts, pod_owner, replicaset_owner]: [u32; 3],
        pods: &mut Pods,
        restored: &mut HashMap<u64, History>,
    ) -> Role {
        if series.input == restarts {
            return match ObjectRef::from_labels("pods", &series.labels) {
                Some(pod) => Role::Counter {
                    pod: pods.acquire(pod),
                    history: restored.remove(&series.id).unwrap_or_default(),
                },
                None => Role::Other,
            };
        }
        let labels = ["namespace", "owner_kind", "owner_name"].map(|l| series.label(l));
        let [Some(namespace), Some(kind), Some(owner)] = labels else {
            return Role::Other;
        };
        if owner.is_empty() {
            return Role::Other;
        }
        if series.input == pod_owner
            && kind == "ReplicaSet"
            && let Some(pod) = series.label("pod")
        {
            Role::PodOwner {
                pod: pods.acquire(ObjectRef::pod(namespace, pod)),
                replicaset: owner.to_owned(),
                seen: 0,
            }
        } else if series.input == replicaset_owner
            && kind == "Deployment"
            && let Some(replicaset) = series.label("replicaset")
        {
            Role::ReplicaSetOwner {
                namespace: namespace.to_owned(),
                replicaset: replicaset.to_owned(),
                deployment: owner.to_owned(),
                seen: 0,
            }
        } else {
            Role::Other
        }
    }

    /// Lets go of the pod the series named, when it leaves.
    fn release(&self, pods: &mut Pods) {
        if let Role::Counter { pod, .. } | Role::PodOwner { pod, .. } = self {
            pods.release(*pod);
        }
    }
}

/// The pods the live series name, by index, each with the number of series naming it (a pod
/// leaves with its last series).
#[derive(Default)]
struct Pods {
    index: HashMap<ObjectRef, u32>,
    slots: Vec<(ObjectRef, u32)>,
    free: Vec<u32>,
}

impl Pods {
    fn acquire(&mut self, pod: ObjectRef) -> u32 {
        if let Some(&i) = self.index.get(&pod) {
            self.slots[i as usize].1 += 1;
            return i;
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = (pod.clone(), 1);
                i
            }
            None => {
                self.slots.push((pod.clone(), 1));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(pod, i);
        i
    }

    fn release(&mut self, i: u32) {
        let (pod, count) = &mut self.slots[i as usize];
        *count -= 1;
        if *count == 0 {
            self.index.remove(pod);
            self.free.push(i);
        }
    }
}

/// Container restarts per minute.
pub struct Restarts {
    metric: String,
    window_ms: u64,
    /// Input indices of the three series.
    inputs: [u32; 3],
    series: SeriesTable<Role>,
    pods: Pods,
    /// Histories from a snapshot, until their series are announced to this instance.
    restored: HashMap<u64, History>,
    /// Cycles processed.
    cycle: u64,
}

/// What survives an instance restart: the counter histories by series id.
#[derive(Serialize)]
struct Snapshot<'a> {
    history: HashMap<u64, &'a History>,
}

/// A [`Snapshot`] read back.
#[derive(Deserialize)]
struct Restored {
    history: HashMap<u64, History>,
}

fn add_to<K: Eq + std::hash::Hash>(map: &mut HashMap<K, Sum>, key: K, sum: &Sum) {
    if let Some(new) = Sum::add(
        map.get_mut(&key),
        sum.value,
        sum.timestamp_ms,
        sum.window_ms,
    ) {
        map.insert(key, new);
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
            pods: Pods::default(),
            restored: HashMap::new(),
            cycle: 0,
        };
        Ok((plugin, plan))
    }

    fn process(&mut self, input: &CycleInput) -> Result<CycleOutput, String> {
        let (inputs, pods, restored) = (self.inputs, &mut self.pods, &mut self.restored);
        let removed = self
            .series
            .apply_with(input, |series| Role::of(series, inputs, pods, restored));
        for (_, role) in &removed {
            role.release(&mut self.pods);
        }
        self.restored.clear();
        self.cycle += 1;
        let (cycle, window_ms) = (self.cycle, self.window_ms);

        // Each pod's sum over its containers; the owners seen this cycle.
        let mut sums: Vec<Option<Sum>> = vec![None; self.pods.slots.len()];
        self.series
            .for_each_sample(input, |sample, _, role| match role {
                Role::Counter { pod, history } => {
                    if let Some((per_minute, span, t)) =
                        history.record(sample.timestamp_ms, sample.value, window_ms)
                    {
                        let slot = &mut sums[*pod as usize];
                        if let Some(new) = Sum::add(slot.as_mut(), per_minute, t, span) {
                            *slot = Some(new);
                        }
                    }
                }
                Role::PodOwner { seen, .. } | Role::ReplicaSetOwner { seen, .. } => {
                    if sample.value > 0.0 {
                        *seen = cycle;
                    }
                }
                Role::Other => {}
            });

        // (pod) → ReplicaSet, and (namespace, ReplicaSet) → Deployment.
        let mut pod_replicaset: Vec<Option<&str>> = vec![None; self.pods.slots.len()];
        let mut replicaset_deployment = HashMap::new();
        for (_, role) in self.series.iter() {
            match role {
                Role::PodOwner {
                    pod,
                    replicaset,
                    seen,
                } if *seen == cycle => pod_replicaset[*pod as usize] = Some(replicaset.as_str()),
                Role::ReplicaSetOwner {
                    namespace,
                    replicaset,
                    deployment,
                    seen,
                } if *seen == cycle => {
                    replicaset_deployment.insert(
                        (namespace.as_str(), replicaset.as_str()),
                        deployment.as_str(),
                    );
                }
                _ => {}
            }
        }

        let mut out = CycleOutput::new();
        let mut deployments = HashMap::new();
        for (i, sum) in sums.iter().enumerate() {
            let Some(sum) = sum else { continue };
            let pod = &self.pods.slots[i].0;
            out.push_custom(&self.metric, pod.clone(), sum.value, sum.timestamp_ms)
                .window_ms = sum.window_ms;
            let deployment = pod_replicaset[i]
                .and_then(|rs| replicaset_deployment.get(&(pod.namespace.as_str(), rs)));
            if let Some(deployment) = deployment {
                add_to(&mut deployments, (pod.namespace.as_str(), *deployment), sum);
            }
        }
        for ((namespace, deployment), sum) in deployments {
            out.push_custom(
                &self.metric,
                ObjectRef::deployment(namespace, deployment),
                sum.value,
                sum.timestamp_ms,
            )
            .window_ms = sum.window_ms;
        }
        Ok(out)
    }

    fn snapshot(&self) -> Vec<u8> {
        let history = self
            .series
            .iter()
            .filter_map(|(series, role)| match role {
                Role::Counter { history, .. } => Some((series.id, history)),
                _ => None,
            })
            .collect();
        serde_json::to_vec(&Snapshot { history }).unwrap_or_default()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        let restored: Restored =
            serde_json::from_slice(state).map_err(|e| format!("invalid snapshot: {e}"))?;
        self.restored = restored.history;
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
    fn a_deleted_pods_slot_goes_to_the_next_pod_without_its_counts() {
        let mut h = Harness::<Restarts>::new("{}").unwrap();
        let a = [("namespace", "web"), ("pod", "a"), ("container", "c")];
        let b = [("namespace", "web"), ("pod", "b"), ("container", "c")];
        h.cycle(0).sample(RESTARTS, &a, 0.0).run().unwrap();
        let out = h.cycle(MIN).sample(RESTARTS, &a, 4.0).run().unwrap();
        assert_eq!(out.custom(METRIC, &ObjectRef::pod("web", "a")), Some(4.0));
        // a is deleted and b created: its series are new, its counts its own.
        h.cycle(2 * MIN).sample(RESTARTS, &b, 1.0).run().unwrap();
        let out = h.cycle(3 * MIN).sample(RESTARTS, &b, 2.0).run().unwrap();
        assert_eq!(out.custom(METRIC, &ObjectRef::pod("web", "b")), Some(1.0));
        assert_eq!(out.raw().custom.len(), 1);
        // a's slot was freed (b's series came in the same cycle, so b took another).
        let pods = &h.plugin().pods;
        assert_eq!((pods.index.len(), pods.free.len()), (1, 1));
    }

    #[test]
    fn rejects_an_empty_window() {
        assert!(Harness::<Restarts>::new(r#"{"window_secs": 0}"#).is_err());
    }
}
