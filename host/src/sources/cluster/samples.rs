//! Cluster-state samples for plugins (source `cluster`), named, labelled and valued as
//! kube-state-metrics exposes them, computed from the watches' projections once per cycle.
//!
//! | family | labels | value |
//! |---|---|---|
//! | `kube_pod_status_phase` | `namespace`, `pod`, `uid`, `phase` | one series per phase (`Pending`, `Succeeded`, `Failed`, `Unknown`, `Running`): 1 for the current one, 0 for the others; none while the phase is unset |
//! | `kube_pod_status_ready` | `namespace`, `pod`, `uid`, `condition` | one series per `true`, `false`, `unknown`: 1 for the Ready condition's status, 0 otherwise; none without a Ready condition |
//! | `kube_pod_owner` | `namespace`, `pod`, `uid`, `owner_kind`, `owner_name`, `owner_is_controller` | 1 per owner reference; one series with empty owner labels when there is none |
//! | `kube_pod_container_status_restarts_total` | `namespace`, `pod`, `uid`, `container` | restart count |
//! | `kube_pod_container_status_ready` | `namespace`, `pod`, `uid`, `container` | 1 ready, 0 not |
//! | `kube_pod_container_status_waiting_reason` | `namespace`, `pod`, `uid`, `container`, `reason` | 1, only for waiting containers |
//! | `kube_pod_container_status_terminated_reason` | `namespace`, `pod`, `uid`, `container`, `reason` | 1, only for terminated containers |
//! | `kube_pod_init_container_status_restarts_total`, `…_ready`, `…_waiting_reason`, `…_terminated_reason` | as above | the same, for init containers |
//! | `kube_node_status_condition` | `node`, `condition`, `status` | one series per condition and status (`true`, `false`, `unknown`): 1 for the condition's status, 0 otherwise |
//! | `kube_deployment_spec_replicas` | `namespace`, `deployment` | `spec.replicas` (none when unset) |
//! | `kube_deployment_status_replicas` | `namespace`, `deployment` | `status.replicas` |
//! | `kube_deployment_status_replicas_ready` | `namespace`, `deployment` | `status.readyReplicas` |
//! | `kube_deployment_status_replicas_available` | `namespace`, `deployment` | `status.availableReplicas` |
//! | `kube_deployment_status_replicas_unavailable` | `namespace`, `deployment` | `status.unavailableReplicas` |
//! | `kube_deployment_status_replicas_updated` | `namespace`, `deployment` | `status.updatedReplicas` |
//! | `kube_replicaset_owner` | `namespace`, `replicaset`, `owner_kind`, `owner_name`, `owner_is_controller` | 1 per owner reference; one series with empty owner labels when there is none |
//!
//! Every sample is stamped with the cycle's time. Pod families cover every pod the watch knows,
//! whatever its phase, as kube-state-metrics does.

use std::sync::Arc;

use super::{ClusterState, ConditionStatus, OwnerRef, PodInfo, PodPhase};
use crate::samples::{Batch, Family, SeriesCache};

/// Every family [`build`] can emit.
pub const FAMILIES: [&str; Metric::COUNT] = [
    "kube_pod_status_phase",
    "kube_pod_status_ready",
    "kube_pod_owner",
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_status_ready",
    "kube_pod_container_status_waiting_reason",
    "kube_pod_container_status_terminated_reason",
    "kube_pod_init_container_status_restarts_total",
    "kube_pod_init_container_status_ready",
    "kube_pod_init_container_status_waiting_reason",
    "kube_pod_init_container_status_terminated_reason",
    "kube_node_status_condition",
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas",
    "kube_deployment_status_replicas_ready",
    "kube_deployment_status_replicas_available",
    "kube_deployment_status_replicas_unavailable",
    "kube_deployment_status_replicas_updated",
    "kube_replicaset_owner",
];

/// Index of a family in [`FAMILIES`].
#[derive(Debug, Clone, Copy)]
enum Metric {
    PodPhase,
    PodReady,
    PodOwner,
    Restarts,
    ContainerReady,
    Waiting,
    Terminated,
    InitRestarts,
    InitReady,
    InitWaiting,
    InitTerminated,
    NodeCondition,
    SpecReplicas,
    Replicas,
    ReadyReplicas,
    AvailableReplicas,
    UnavailableReplicas,
    UpdatedReplicas,
    ReplicaSetOwner,
}

impl Metric {
    const COUNT: usize = Metric::ReplicaSetOwner as usize + 1;

    fn name(self) -> &'static str {
        FAMILIES[self as usize]
    }
}

/// The families being filled, by [`Metric`].
struct Families<'c> {
    families: [Family; Metric::COUNT],
    /// The families some plugin reads; the others are not built.
    wanted: [bool; Metric::COUNT],
    cache: &'c mut SeriesCache,
    now_ms: i64,
}

impl Families<'_> {
    fn push(&mut self, metric: Metric, labels: &mut [(&str, &str)], value: f64) {
        if !self.wanted[metric as usize] {
            return;
        }
        let series = self.cache.series(metric.name(), labels);
        self.families[metric as usize].push(series, self.now_ms, value);
    }
}

/// The cluster-state samples of `state` at `now_ms` of the families whose name `want` accepts
/// (see the [module docs](self) for the families). Series keep their ids across cycles through
/// `cache`, which is swept at the end: call this once per cycle with the same cache.
pub fn build(
    state: &ClusterState,
    now_ms: i64,
    want: impl Fn(&str) -> bool,
    cache: &mut SeriesCache,
) -> Batch {
    let mut out = Families {
        families: Default::default(),
        wanted: FAMILIES.map(want),
        cache,
        now_ms,
    };
    for pods in state.pods.values() {
        for pod in pods.values() {
            pod_samples(&mut out, pod);
        }
    }
    for node in state.nodes.values() {
        for (condition, status) in node.conditions.iter() {
            for s in ConditionStatus::ALL {
                out.push(
                    Metric::NodeCondition,
                    &mut [
                        ("node", &node.name),
                        ("condition", condition),
                        ("status", s.as_label()),
                    ],
                    bool_value(*status == s),
                );
            }
        }
    }
    for deployments in state.deployments.values() {
        for d in deployments.values() {
            let labels = [("namespace", &*d.namespace), ("deployment", &*d.name)];
            if let Some(replicas) = d.spec_replicas {
                out.push(Metric::SpecReplicas, &mut labels.clone(), replicas.into());
            }
            for (metric, value) in [
                (Metric::Replicas, d.replicas),
                (Metric::ReadyReplicas, d.ready_replicas),
                (Metric::AvailableReplicas, d.available_replicas),
                (Metric::UnavailableReplicas, d.unavailable_replicas),
                (Metric::UpdatedReplicas, d.updated_replicas),
            ] {
                out.push(metric, &mut labels.clone(), value.into());
            }
        }
    }
    for replicasets in state.replicasets.values() {
        for rs in replicasets.values() {
            owner_samples(
                &mut out,
                Metric::ReplicaSetOwner,
                [("namespace", &rs.namespace), ("replicaset", &rs.name)],
                &rs.owners,
            );
        }
    }
    let Families {
        families, cache, ..
    } = out;
    cache.sweep();
    let mut batch = Batch::default();
    for (name, family) in FAMILIES.iter().zip(families) {
        if !family.is_empty() {
            batch.families.insert(Arc::from(*name), family);
        }
    }
    batch
}

fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn pod_samples(out: &mut Families<'_>, pod: &PodInfo) {
    let (ns, name, uid) = (&*pod.namespace, &*pod.name, &*pod.uid);
    if pod.phase != PodPhase::Unset {
        for phase in PodPhase::ALL {
            out.push(
                Metric::PodPhase,
                &mut [
                    ("namespace", ns),
                    ("pod", name),
                    ("uid", uid),
                    ("phase", phase.as_str()),
                ],
                bool_value(pod.phase == phase),
            );
        }
    }
    let status = &*pod.status;
    if let Some(ready) = status.ready_condition {
        for s in ConditionStatus::ALL {
            out.push(
                Metric::PodReady,
                &mut [
                    ("namespace", ns),
                    ("pod", name),
                    ("uid", uid),
                    ("condition", s.as_label()),
                ],
                bool_value(ready == s),
            );
        }
    }
    owner_samples(
        out,
        Metric::PodOwner,
        [("namespace", ns), ("pod", name), ("uid", uid)],
        &status.owners,
    );
    for c in &status.containers {
        let [restarts, ready, waiting, terminated] = if c.init {
            [
                Metric::InitRestarts,
                Metric::InitReady,
                Metric::InitWaiting,
                Metric::InitTerminated,
            ]
        } else {
            [
                Metric::Restarts,
                Metric::ContainerReady,
                Metric::Waiting,
                Metric::Terminated,
            ]
        };
        let labels = [
            ("namespace", ns),
            ("pod", name),
            ("uid", uid),
            ("container", &*c.name),
        ];
        out.push(restarts, &mut labels.clone(), c.restart_count.into());
        out.push(ready, &mut labels.clone(), bool_value(c.ready));
        for (metric, reason) in [
            (waiting, &c.waiting_reason),
            (terminated, &c.terminated_reason),
        ] {
            if let Some(reason) = reason {
                let [a, b, c, d] = labels;
                out.push(metric, &mut [a, b, c, d, ("reason", reason)], 1.0);
            }
        }
    }
}

/// kube-state-metrics' owner convention: one series per owner, or one with empty owner labels.
fn owner_samples<const N: usize>(
    out: &mut Families<'_>,
    metric: Metric,
    object: [(&str, &str); N],
    owners: &[OwnerRef],
) {
    let mut push = |kind: &str, name: &str, controller: &str| {
        // No allocation: at most 3 object labels and the 3 owner labels.
        let mut labels = [("", ""); 6];
        labels[..N].copy_from_slice(&object);
        labels[N..N + 3].copy_from_slice(&[
            ("owner_kind", kind),
            ("owner_name", name),
            ("owner_is_controller", controller),
        ]);
        out.push(metric, &mut labels[..N + 3], 1.0);
    };
    if owners.is_empty() {
        push("", "", "");
    }
    for o in owners {
        push(
            &o.kind,
            &o.name,
            if o.controller { "true" } else { "false" },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::cluster::ClusterCache;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// The batch as sorted `name{labels} value @ts` lines.
    fn lines(batch: &Batch) -> Vec<String> {
        let mut out: Vec<String> = batch
            .families
            .iter()
            .flat_map(|(name, f)| {
                assert!(f.series.iter().all(|s| s.name == *name));
                (0..f.len()).map(move |i| {
                    let labels: Vec<String> = f.series[i]
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{v}\""))
                        .collect();
                    format!(
                        "{name}{{{}}} {} @{}",
                        labels.join(","),
                        f.values[i],
                        f.timestamps_ms[i]
                    )
                })
            })
            .collect();
        out.sort();
        out
    }

    fn state() -> ClusterCache {
        let cache = ClusterCache::default();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": "web-5f7", "uid": "r", "controller": true}]},
            "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "app"}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
                "initContainerStatuses": [{"name": "init", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                                           "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                "containerStatuses": [{"name": "app", "ready": false, "restartCount": 2, "image": "", "imageID": "",
                                       "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
            }
        }))
        .unwrap();
        cache.apply_pod(&pod);
        // No owner, no Ready condition, no phase yet.
        let bare: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bare", "namespace": "shop", "uid": "u2"},
            "spec": {"containers": [{"name": "c"}]}
        }))
        .unwrap();
        cache.apply_pod(&bare);
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "status": {"conditions": [{"type": "Ready", "status": "True"},
                                      {"type": "DiskPressure", "status": "Unknown"}]}
        }))
        .unwrap();
        cache.apply_node(&node);
        let deployment: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2,
                       "unavailableReplicas": 1, "updatedReplicas": 3}
        }))
        .unwrap();
        cache.apply_deployment(&deployment);
        let rs: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "web-5f7", "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                 "uid": "d", "controller": true}]
        }))
        .unwrap();
        cache.apply_replicaset(&rs);
        cache
    }

    #[test]
    fn emits_kube_state_metrics_series_and_values() {
        let cache = state();
        let mut series = SeriesCache::default();
        let batch = build(&cache.read(), 1_000, |_| true, &mut series);
        let pod = |rest: &str| format!("namespace=\"shop\",pod=\"web-1\",{rest}uid=\"u1\"");
        let mut want = vec![
            format!("kube_deployment_spec_replicas{{deployment=\"web\",namespace=\"shop\"}} 3 @1000"),
            format!("kube_deployment_status_replicas{{deployment=\"web\",namespace=\"shop\"}} 3 @1000"),
            format!("kube_deployment_status_replicas_available{{deployment=\"web\",namespace=\"shop\"}} 2 @1000"),
            format!("kube_deployment_status_replicas_ready{{deployment=\"web\",namespace=\"shop\"}} 2 @1000"),
            format!("kube_deployment_status_replicas_unavailable{{deployment=\"web\",namespace=\"shop\"}} 1 @1000"),
            format!("kube_deployment_status_replicas_updated{{deployment=\"web\",namespace=\"shop\"}} 3 @1000"),
            format!("kube_pod_container_status_ready{{container=\"app\",{}}} 0 @1000", pod("")),
            format!("kube_pod_container_status_restarts_total{{container=\"app\",{}}} 2 @1000", pod("")),
            format!("kube_pod_container_status_waiting_reason{{container=\"app\",{}}} 1 @1000", pod("reason=\"CrashLoopBackOff\",")),
            format!("kube_pod_init_container_status_ready{{container=\"init\",{}}} 1 @1000", pod("")),
            format!("kube_pod_init_container_status_restarts_total{{container=\"init\",{}}} 0 @1000", pod("")),
            format!("kube_pod_init_container_status_terminated_reason{{container=\"init\",{}}} 1 @1000", pod("reason=\"Completed\",")),
            format!("kube_pod_owner{{namespace=\"shop\",owner_is_controller=\"true\",owner_kind=\"ReplicaSet\",owner_name=\"web-5f7\",pod=\"web-1\",uid=\"u1\"}} 1 @1000"),
            "kube_pod_owner{namespace=\"shop\",owner_is_controller=\"\",owner_kind=\"\",owner_name=\"\",pod=\"bare\",uid=\"u2\"} 1 @1000".to_string(),
            "kube_replicaset_owner{namespace=\"shop\",owner_is_controller=\"true\",owner_kind=\"Deployment\",owner_name=\"web\",replicaset=\"web-5f7\"} 1 @1000".to_string(),
        ];
        for (phase, v) in [
            ("Failed", 0),
            ("Pending", 0),
            ("Running", 1),
            ("Succeeded", 0),
            ("Unknown", 0),
        ] {
            want.push(format!(
                "kube_pod_status_phase{{namespace=\"shop\",phase=\"{phase}\",pod=\"web-1\",uid=\"u1\"}} {v} @1000"
            ));
        }
        for (condition, v) in [("false", 1), ("true", 0), ("unknown", 0)] {
            want.push(format!(
                "kube_pod_status_ready{{condition=\"{condition}\",namespace=\"shop\",pod=\"web-1\",uid=\"u1\"}} {v} @1000"
            ));
        }
        for (condition, status, v) in [
            ("DiskPressure", "false", 0),
            ("DiskPressure", "true", 0),
            ("DiskPressure", "unknown", 1),
            ("Ready", "false", 0),
            ("Ready", "true", 1),
            ("Ready", "unknown", 0),
        ] {
            want.push(format!(
                "kube_node_status_condition{{condition=\"{condition}\",node=\"n1\",status=\"{status}\"}} {v} @1000"
            ));
        }
        want.sort();
        assert_eq!(lines(&batch), want);
        assert!(
            batch
                .families
                .keys()
                .all(|name| FAMILIES.contains(&&**name))
        );
    }

    #[test]
    fn only_wanted_families_are_built() {
        let cache = state();
        let mut series = SeriesCache::default();
        let batch = build(
            &cache.read(),
            1_000,
            |name| name == "kube_pod_status_phase",
            &mut series,
        );
        let names: Vec<&str> = batch.families.keys().map(|k| &**k).collect();
        assert_eq!(names, ["kube_pod_status_phase"]);
        assert_eq!(
            series.len(),
            batch.len(),
            "unwanted families hold no series"
        );
    }

    #[test]
    fn series_keep_their_ids_while_they_exist() {
        let cache = state();
        let mut series = SeriesCache::default();
        let restarts = |batch: &Batch| {
            let f = &batch.families["kube_pod_container_status_restarts_total"];
            (f.series[0].id, f.values[0])
        };
        let first = build(&cache.read(), 1_000, |_| true, &mut series);
        let second = build(&cache.read(), 2_000, |_| true, &mut series);
        assert_eq!(restarts(&first).0, restarts(&second).0);
        assert_eq!(
            second.families["kube_pod_status_phase"].timestamps_ms[0],
            2_000
        );
        // The deployment goes away: its series leave the batch and the cache.
        let held = series.len();
        cache.delete_deployment(
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web", "namespace": "shop"}
            }))
            .unwrap(),
        );
        let third = build(&cache.read(), 3_000, |_| true, &mut series);
        assert!(
            !third
                .families
                .contains_key("kube_deployment_status_replicas")
        );
        assert_eq!(series.len(), held - 6);
    }
}
