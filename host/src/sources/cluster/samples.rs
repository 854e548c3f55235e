//! Cluster-state samples for plugins (source `cluster`), named, labelled and valued as
//! kube-state-metrics exposes them, computed from the watches' projections once per cycle:
//! incrementally, only for the objects the watches changed since the previous cycle
//! ([`ClusterSeries`]).
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

use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable, hash_table};

use super::{
    ClusterState, ConditionStatus, DeploymentInfo, NodeInfo, OwnerRef, PodInfo, PodPhase,
    ReplicaSetInfo,
};
use crate::samples::{Batch, Family, Series};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// The cluster-state series of the previous cycles, by object, to call [`build`] with once per
/// cycle.
///
/// An object the watches left alone since the previous cycle (the same `Arc` in the state)
/// gives its rows again: no label set is built and no series hashed. A changed, new or
/// re-listed object is rebuilt against its own previous rows, so its series that remain keep
/// their ids (a restart count goes up on the series the plugin already knows). An object gone
/// from the state is forgotten with its series.
#[derive(Debug, Default)]
pub struct ClusterSeries {
    /// The families wanted in the previous cycle; a change rebuilds every object.
    wanted: [bool; Metric::COUNT],
    /// The families' names, shared by their series.
    names: Names,
    pods: Memo<PodInfo>,
    nodes: Memo<NodeInfo>,
    deployments: Memo<DeploymentInfo>,
    replicasets: Memo<ReplicaSetInfo>,
    generation: u64,
}

impl ClusterSeries {
    /// Number of series held.
    pub fn len(&self) -> usize {
        self.pods.held() + self.nodes.held() + self.deployments.held() + self.replicasets.held()
    }

    /// No series held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// [`FAMILIES`] as shared strings.
#[derive(Debug)]
struct Names([Arc<str>; Metric::COUNT]);

impl Default for Names {
    fn default() -> Self {
        Names(FAMILIES.map(Arc::from))
    }
}

/// One sample of an object, its series kept across cycles.
#[derive(Debug)]
struct Row {
    metric: Metric,
    series: Arc<Series>,
    value: f64,
}

/// An object's rows as of the object they were built from.
#[derive(Debug)]
struct Entry<T> {
    object: Arc<T>,
    /// The generation of the last cycle that saw the object.
    seen: u64,
    rows: Box<[Row]>,
}

/// An object's namespace (empty for cluster-scoped ones) and name.
trait Keyed {
    fn key(&self) -> (&str, &str);
}

impl Keyed for PodInfo {
    fn key(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }
}

impl Keyed for NodeInfo {
    fn key(&self) -> (&str, &str) {
        ("", &self.name)
    }
}

impl Keyed for DeploymentInfo {
    fn key(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }
}

impl Keyed for ReplicaSetInfo {
    fn key(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }
}

/// The entries of one kind of object, found by namespace and name.
#[derive(Debug)]
struct Memo<T> {
    table: HashTable<Entry<T>>,
    hasher: DefaultHashBuilder,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo {
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<T: Keyed> Memo<T> {
    /// The rows of `object` this cycle: the held ones when it is unchanged and the cycle does
    /// not rebuild every object, else those `build` pushes.
    fn rows(
        &mut self,
        object: &Arc<T>,
        cycle: &Cycle,
        build: impl FnOnce(&mut Rows<'_>, &T),
    ) -> &[Row] {
        let (namespace, name) = object.key();
        let hash = key_hash(&self.hasher, namespace, name);
        let hasher = &self.hasher;
        let entry = self.table.entry(
            hash,
            |e| e.object.key() == (namespace, name),
            |e| {
                let (namespace, name) = e.object.key();
                key_hash(hasher, namespace, name)
            },
        );
        let entry = match entry {
            hash_table::Entry::Occupied(held) => {
                let entry = held.into_mut();
                if cycle.rebuild || !Arc::ptr_eq(&entry.object, object) {
                    entry.rows = cycle.rows(&entry.rows, &**object, build);
                    entry.object = object.clone();
                }
                entry
            }
            hash_table::Entry::Vacant(vacant) => {
                let rows = cycle.rows(&[], &**object, build);
                vacant
                    .insert(Entry {
                        object: object.clone(),
                        seen: 0,
                        rows,
                    })
                    .into_mut()
            }
        };
        entry.seen = cycle.generation;
        &entry.rows
    }

    /// Forgets the objects not seen in `generation`.
    fn sweep(&mut self, generation: u64) {
        self.table.retain(|e| e.seen == generation);
    }

    /// Number of rows held.
    fn held(&self) -> usize {
        self.table.iter().map(|e| e.rows.len()).sum()
    }
}

fn key_hash(hasher: &DefaultHashBuilder, namespace: &str, name: &str) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(namespace.as_bytes());
    h.write_u8(0xff);
    h.write(name.as_bytes());
    h.finish()
}

/// What every object's rows are built with this cycle.
struct Cycle<'a> {
    wanted: [bool; Metric::COUNT],
    names: &'a Names,
    /// Rebuild every object, unchanged ones included (the wanted families changed).
    rebuild: bool,
    generation: u64,
}

impl Cycle<'_> {
    fn rows<T>(
        &self,
        old: &[Row],
        object: &T,
        build: impl FnOnce(&mut Rows<'_>, &T),
    ) -> Box<[Row]> {
        let mut rows = Rows {
            cycle: self,
            old,
            rows: Vec::new(),
        };
        build(&mut rows, object);
        rows.rows.into_boxed_slice()
    }
}

/// The rows of one object being built, reusing the series of its previous rows.
struct Rows<'a> {
    cycle: &'a Cycle<'a>,
    old: &'a [Row],
    rows: Vec<Row>,
}

impl Rows<'_> {
    fn push(&mut self, metric: Metric, labels: &mut [(&str, &str)], value: f64) {
        if !self.cycle.wanted[metric as usize] {
            return;
        }
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let held = self
            .old
            .iter()
            .find(|row| row.metric == metric && row.series.has_labels(labels));
        let series = match held {
            Some(row) => row.series.clone(),
            None => Series::new(
                self.cycle.names.0[metric as usize].clone(),
                labels
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            ),
        };
        self.rows.push(Row {
            metric,
            series,
            value,
        });
    }
}

/// The cluster-state samples of `state` at `now_ms` of the families whose name `want` accepts
/// (see the [module docs](self) for the families). Series keep their ids across cycles through
/// `held`: call this once per cycle with the same [`ClusterSeries`].
pub fn build(
    state: &ClusterState,
    now_ms: i64,
    want: impl Fn(&str) -> bool,
    held: &mut ClusterSeries,
) -> Batch {
    let wanted = FAMILIES.map(want);
    let cycle = Cycle {
        wanted,
        names: &held.names,
        rebuild: wanted != held.wanted,
        generation: held.generation,
    };
    let mut families: [Family; Metric::COUNT] = Default::default();
    let mut emit = |rows: &[Row]| {
        for row in rows {
            families[row.metric as usize].push(row.series.clone(), now_ms, row.value);
        }
    };
    for pods in state.pods.values() {
        for pod in pods.values() {
            emit(held.pods.rows(pod, &cycle, pod_samples));
        }
    }
    for node in state.nodes.values() {
        emit(held.nodes.rows(node, &cycle, node_samples));
    }
    for deployments in state.deployments.values() {
        for d in deployments.values() {
            emit(held.deployments.rows(d, &cycle, deployment_samples));
        }
    }
    for replicasets in state.replicasets.values() {
        for rs in replicasets.values() {
            emit(held.replicasets.rows(rs, &cycle, |rows, rs| {
                owner_samples(
                    rows,
                    Metric::ReplicaSetOwner,
                    [("namespace", &rs.namespace), ("replicaset", &rs.name)],
                    &rs.owners,
                )
            }));
        }
    }
    let generation = held.generation;
    held.pods.sweep(generation);
    held.nodes.sweep(generation);
    held.deployments.sweep(generation);
    held.replicasets.sweep(generation);
    held.generation += 1;
    held.wanted = wanted;
    let mut batch = Batch::default();
    for (name, family) in held.names.0.iter().zip(families) {
        if !family.is_empty() {
            batch.families.insert(name.clone(), family);
        }
    }
    batch
}

fn node_samples(out: &mut Rows<'_>, node: &NodeInfo) {
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

fn deployment_samples(out: &mut Rows<'_>, d: &DeploymentInfo) {
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

fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn pod_samples(out: &mut Rows<'_>, pod: &PodInfo) {
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
    out: &mut Rows<'_>,
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

    /// The pod `shop/web-1` of a ReplicaSet, its init container done, its `app` container
    /// ready or not with `restarts` and in `state`.
    fn web_1(ready: bool, restarts: i32, state: serde_json::Value) -> Pod {
        let condition = if ready { "True" } else { "False" };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": "web-5f7", "uid": "r", "controller": true}]},
            "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "app"}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": condition}],
                "initContainerStatuses": [{"name": "init", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                                           "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                "containerStatuses": [{"name": "app", "ready": ready, "restartCount": restarts, "image": "", "imageID": "",
                                       "state": state}]
            }
        }))
        .unwrap()
    }

    fn state() -> ClusterCache {
        let cache = ClusterCache::default();
        let waiting = serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}});
        cache.apply_pod(&web_1(false, 2, waiting));
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
        let mut series = ClusterSeries::default();
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
        let mut series = ClusterSeries::default();
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
        let mut series = ClusterSeries::default();
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

    /// The id and value of the first series of `family` whose label `key` is `value`.
    fn find(batch: &Batch, family: &str, key: &str, value: &str) -> (u64, f64) {
        let f = &batch.families[family];
        let i = (0..f.len())
            .find(|&i| f.series[i].label(key) == Some(value))
            .unwrap_or_else(|| panic!("no {family}{{{key}={value:?}}}"));
        (f.series[i].id, f.values[i])
    }

    #[test]
    fn a_changed_object_keeps_the_ids_of_its_remaining_series() {
        let cache = state();
        let mut series = ClusterSeries::default();
        let first = build(&cache.read(), 1_000, |_| true, &mut series);
        // The app container restarts once more and is Running now; the pod becomes Ready.
        let pod = web_1(true, 3, serde_json::json!({"running": {}}));
        cache.apply_pod(&pod);
        let second = build(&cache.read(), 2_000, |_| true, &mut series);
        let restarts = "kube_pod_container_status_restarts_total";
        let (id1, v1) = find(&first, restarts, "container", "app");
        let (id2, v2) = find(&second, restarts, "container", "app");
        assert_eq!((id1, v1, v2), (id2, 2.0, 3.0));
        let ready = "kube_pod_status_ready";
        assert_eq!(
            find(&first, ready, "condition", "true").0,
            find(&second, ready, "condition", "true").0
        );
        assert_eq!(find(&second, ready, "condition", "true").1, 1.0);
        // The waiting reason went away with the wait; the other pod's series are untouched.
        assert!(
            !second
                .families
                .contains_key("kube_pod_container_status_waiting_reason")
        );
        assert_eq!(series.len(), second.len());
        assert_eq!(
            find(&first, "kube_pod_owner", "pod", "bare"),
            find(&second, "kube_pod_owner", "pod", "bare")
        );
        assert_eq!(
            lines(&build(&cache.read(), 3_000, |_| true, &mut series)),
            lines(&second)
                .iter()
                .map(|l| l.replace("@2000", "@3000"))
                .collect::<Vec<_>>()
        );

        // Recreated under the same name: a new uid, so new series.
        let mut recreated = pod.clone();
        recreated.metadata.uid = Some("u3".into());
        cache.apply_pod(&recreated);
        let third = build(&cache.read(), 4_000, |_| true, &mut series);
        let (id3, _) = find(&third, restarts, "container", "app");
        assert_ne!(id3, id1);
        assert_eq!(find(&third, restarts, "container", "app").1, 3.0);
        assert_eq!(series.len(), third.len());
    }

    #[test]
    fn wanting_more_families_keeps_the_ids_of_those_already_wanted() {
        let cache = state();
        let mut series = ClusterSeries::default();
        let phase = "kube_pod_status_phase";
        let first = build(&cache.read(), 1_000, |name| name == phase, &mut series);
        let all = build(&cache.read(), 2_000, |_| true, &mut series);
        assert_eq!(
            find(&first, phase, "phase", "Running"),
            find(&all, phase, "phase", "Running")
        );
        assert_eq!(series.len(), all.len());
        let fewer = build(&cache.read(), 3_000, |name| name == phase, &mut series);
        assert_eq!(fewer.families.len(), 1);
        assert_eq!(series.len(), first.len());
    }
}
