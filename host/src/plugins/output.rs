//! Validates what a plugin's `process` returned: values for metrics of its plan, finite, about
//! objects that exist; derived series it declared. What fails is dropped and counted by reason.

use std::collections::HashMap;
use std::sync::Arc;

use super::input::IdMap;
use super::label_sets::LabelSets;
use super::plan::{MetricTarget, Plan};
use super::wit::types;
use crate::samples::{Batch, Series};
use crate::sources::cluster::{ClusterState, LabelSet, PodInfo};
use crate::store::custom::{ExternalValue, ObjectResource, ObjectValue, ResourceSample, Watched};

/// Why an output value was dropped (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its metric is not in the plan.
    UnknownMetric,
    /// Its metric is in the plan with the other kind (custom vs external).
    WrongKind,
    /// Custom: the object's resource is not the metric's.
    WrongResource,
    /// NaN or infinite.
    NonFinite,
    /// The object is not in the cluster state.
    UnknownObject,
    /// A namespace where none belongs, or none where one is needed.
    BadNamespace,
    /// A second value for the same object (or external labels) and series labels.
    Duplicate,
    /// A derived sample of a series never announced.
    UnknownSeries,
    /// A derived series whose name the plan does not declare.
    UndeclaredDerived,
    /// A negative resource value.
    Negative,
    /// A resource value of a pod without a container, or of a node with one.
    BadContainer,
}

impl DropReason {
    /// Every reason.
    pub const ALL: [DropReason; 11] = [
        DropReason::UnknownMetric,
        DropReason::WrongKind,
        DropReason::WrongResource,
        DropReason::NonFinite,
        DropReason::UnknownObject,
        DropReason::BadNamespace,
        DropReason::Duplicate,
        DropReason::UnknownSeries,
        DropReason::UndeclaredDerived,
        DropReason::Negative,
        DropReason::BadContainer,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::UnknownMetric => "unknown_metric",
            DropReason::WrongKind => "wrong_kind",
            DropReason::WrongResource => "wrong_resource",
            DropReason::NonFinite => "non_finite",
            DropReason::UnknownObject => "unknown_object",
            DropReason::BadNamespace => "bad_namespace",
            DropReason::Duplicate => "duplicate",
            DropReason::UnknownSeries => "unknown_series",
            DropReason::UndeclaredDerived => "undeclared_derived",
            DropReason::Negative => "negative",
            DropReason::BadContainer => "bad_container",
        }
    }
}

/// Values dropped in one call, per reason, with one example each for the log.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Drops {
    counts: [u64; DropReason::ALL.len()],
    examples: [Option<String>; DropReason::ALL.len()],
}

impl Drops {
    fn add(&mut self, reason: DropReason, example: impl FnOnce() -> String) {
        let i = reason as usize;
        self.counts[i] += 1;
        if self.examples[i].is_none() {
            self.examples[i] = Some(example());
        }
    }

    /// The reasons with drops: (reason, count, an example).
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64, &str)> + '_ {
        DropReason::ALL.into_iter().filter_map(|r| {
            let i = r as usize;
            (self.counts[i] > 0)
                .then(|| (r, self.counts[i], self.examples[i].as_deref().unwrap_or("")))
        })
    }

    /// Drops for `reason`.
    pub fn count(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize]
    }
}

/// Whether objects are checked against the cluster state.
#[derive(Debug, Clone, Copy)]
pub enum Objects<'a> {
    /// Checked; their labels come from here.
    Cluster(&'a ClusterState),
    /// Not checked, labels left empty (`plugin test` fixtures).
    Unchecked,
}

/// The accepted part of one output.
#[derive(Debug, Default)]
pub struct Accepted {
    /// Custom values per plan metric index, sorted by (namespace, name, labels).
    pub custom: Vec<Vec<ObjectValue>>,
    /// External values per plan metric index, sorted by (namespace, labels).
    pub external: Vec<Vec<ExternalValue>>,
    /// Resource values per plan metric index, sorted by (namespace, name, container).
    pub resource: Vec<Vec<ResourceSample>>,
    /// Derived samples, under host series.
    pub derived: Batch,
    /// Metrics of the plan the plugin could not compute: (metric name, its message).
    pub failed: Vec<(Arc<str>, Arc<str>)>,
    /// The plan the plugin asks for from the next cycle, not validated yet.
    pub replan: Option<types::Plan>,
    /// Dropped values.
    pub drops: Drops,
}

impl Accepted {
    /// Why the plugin could not compute metric `name` this cycle, if it said so.
    pub fn failure(&self, name: &str) -> Option<&Arc<str>> {
        self.failed
            .iter()
            .find(|(metric, _)| **metric == *name)
            .map(|(_, message)| message)
    }
}

impl Accepted {
    /// Values accepted (custom, external and derived samples).
    pub fn published(&self) -> u64 {
        let n: usize = self.custom.iter().map(Vec::len).sum::<usize>()
            + self.external.iter().map(Vec::len).sum::<usize>()
            + self.resource.iter().map(Vec::len).sum::<usize>()
            + self.derived.len();
        n as u64
    }
}

/// Validates `output` against `plan`. `derived` maps the plugin's derived series ids to host
/// series across cycles; the values' labels are shared through `label_sets`. Fails as a whole when the output has more than `max_output` values or
/// malformed columns.
pub fn validate(
    output: types::CycleOutput,
    plan: &Plan,
    derived: &mut IdMap<Arc<Series>>,
    label_sets: &mut LabelSets,
    objects: Objects<'_>,
    max_output: usize,
) -> Result<Accepted, String> {
    let total = output.custom.len()
        + output.external.len()
        + output.resource.len()
        + output.derived_ids.len();
    if total > max_output {
        return Err(format!(
            "returned {total} values, more than its limit of {max_output} (max_output)"
        ));
    }
    let (n_ids, n_ts, n_values) = (
        output.derived_ids.len(),
        output.derived_timestamps_ms.len(),
        output.derived_values.len(),
    );
    if n_ids != n_ts || n_ids != n_values {
        return Err(format!(
            "derived columns differ in length (ids {n_ids}, timestamps {n_ts}, values {n_values})"
        ));
    }
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, m) in plan.metrics.iter().enumerate() {
        by_name.entry(&m.name).or_default().push(i);
    }
    let mut accepted = Accepted {
        custom: vec![Vec::new(); plan.metrics.len()],
        external: vec![Vec::new(); plan.metrics.len()],
        resource: vec![Vec::new(); plan.metrics.len()],
        replan: output.replan,
        ..Accepted::default()
    };
    for f in output.failed {
        match plan.metrics.iter().find(|m| *m.name == *f.metric) {
            Some(m) => accepted.failed.push((m.name.clone(), f.message.into())),
            None => accepted.drops.add(DropReason::UnknownMetric, || f.metric),
        }
    }
    for v in output.resource {
        let candidates = by_name
            .get(v.metric.as_str())
            .map_or(&[][..], Vec::as_slice);
        if let Some((index, sample)) =
            resource_sample(v, plan, candidates, objects, &mut accepted.drops)
        {
            accepted.resource[index].push(sample);
        }
    }
    for values in &mut accepted.resource {
        values.sort_by(|a, b| {
            (&a.namespace, &a.name, &a.container).cmp(&(&b.namespace, &b.name, &b.container))
        });
        let before = values.len();
        values.dedup_by(|b, a| {
            (&a.namespace, &a.name, &a.container) == (&b.namespace, &b.name, &b.container)
        });
        for _ in values.len()..before {
            accepted.drops.add(DropReason::Duplicate, String::new);
        }
    }
    let empty_labels = Arc::new(LabelSet::default());
    // Sets held by no published value any longer go; the published snapshot's stay shared.
    label_sets.sweep();
    let mut labels = |l: Vec<types::Label>| label_sets.get(l);

    // Each value's plan metric, found once per run of values with the same metric and resource
    // (a plugin returns them grouped), so that each metric's values are allocated once.
    let mut custom_index = CustomIndex {
        plan,
        by_name: &by_name,
        last: None,
    };
    let indices: Vec<Result<usize, DropReason>> = output
        .custom
        .iter()
        .map(|v| custom_index.get(&v.metric, &v.object.resource))
        .collect();
    let mut counts = vec![0; plan.metrics.len()];
    for &index in indices.iter().flatten() {
        counts[index] += 1;
    }
    for (values, count) in accepted.custom.iter_mut().zip(counts) {
        values.reserve_exact(count);
    }
    let mut pods = PodsOfNamespace::default();
    for (v, index) in output.custom.into_iter().zip(indices) {
        let index = match index {
            Ok(index) => index,
            Err(DropReason::UnknownMetric) => {
                accepted
                    .drops
                    .add(DropReason::UnknownMetric, || v.metric.clone());
                continue;
            }
            Err(reason) => {
                accepted
                    .drops
                    .add(reason, || format!("{} for {}", v.metric, v.object.resource));
                continue;
            }
        };
        let metric = &plan.metrics[index];
        let MetricTarget::Custom(resource) = &metric.target else {
            continue;
        };
        if !v.value.is_finite() {
            accepted.drops.add(DropReason::NonFinite, || {
                format!("{} = {}", v.metric, v.value)
            });
            continue;
        }
        let object = &v.object;
        if metric.namespaced == object.namespace.is_empty() {
            accepted.drops.add(DropReason::BadNamespace, || {
                format!("{resource} {:?}/{}", object.namespace, object.name)
            });
            continue;
        }
        let (namespace, name, object_labels) = match objects {
            Objects::Cluster(cluster) => {
                let found = match resource.watched() {
                    Some(Watched::Pods) => pods
                        .get(cluster, &object.namespace)
                        .and_then(|pods| pods.get(object.name.as_str()))
                        .map(|p| (p.namespace.clone(), p.name.clone(), p.labels.clone())),
                    _ => lookup(cluster, resource, &object.namespace, &object.name),
                };
                match found {
                    Some(found) => found,
                    None => {
                        accepted.drops.add(DropReason::UnknownObject, || {
                            format!("{resource} {}/{}", object.namespace, object.name)
                        });
                        continue;
                    }
                }
            }
            Objects::Unchecked => (
                object.namespace.as_str().into(),
                object.name.as_str().into(),
                empty_labels.clone(),
            ),
        };
        accepted.custom[index].push(ObjectValue {
            namespace,
            name,
            object_labels,
            metric_labels: labels(v.labels),
            value: v.value,
            timestamp_ms: v.timestamp_ms,
            window_ms: window(v.window_ms),
        });
    }

    for v in output.external {
        let candidates = by_name
            .get(v.metric.as_str())
            .map_or(&[][..], Vec::as_slice);
        let Some(&index) = candidates
            .iter()
            .find(|&&i| plan.metrics[i].target == MetricTarget::External)
        else {
            let reason = if candidates.is_empty() {
                DropReason::UnknownMetric
            } else {
                DropReason::WrongKind
            };
            accepted.drops.add(reason, || v.metric.clone());
            continue;
        };
        if !v.value.is_finite() {
            accepted.drops.add(DropReason::NonFinite, || {
                format!("{} = {}", v.metric, v.value)
            });
            continue;
        }
        if plan.metrics[index].namespaced == v.namespace.is_empty() {
            accepted.drops.add(DropReason::BadNamespace, || {
                format!("{} namespace {:?}", v.metric, v.namespace)
            });
            continue;
        }
        accepted.external[index].push(ExternalValue {
            namespace: v.namespace.into(),
            labels: labels(v.labels),
            value: v.value,
            timestamp_ms: v.timestamp_ms,
            window_ms: window(v.window_ms),
        });
    }

    for values in &mut accepted.custom {
        values.sort_by(|a, b| {
            (&a.namespace, &a.name, &a.metric_labels).cmp(&(
                &b.namespace,
                &b.name,
                &b.metric_labels,
            ))
        });
        let before = values.len();
        values.dedup_by(|b, a| {
            (&a.namespace, &a.name, &a.metric_labels) == (&b.namespace, &b.name, &b.metric_labels)
        });
        for _ in values.len()..before {
            accepted.drops.add(DropReason::Duplicate, String::new);
        }
    }
    for values in &mut accepted.external {
        values.sort_by(|a, b| (&a.namespace, &a.labels).cmp(&(&b.namespace, &b.labels)));
        let before = values.len();
        values.dedup_by(|b, a| (&a.namespace, &a.labels) == (&b.namespace, &b.labels));
        for _ in values.len()..before {
            accepted.drops.add(DropReason::Duplicate, String::new);
        }
    }

    for s in output.derived_added {
        if !plan.derived.iter().any(|d| **d == *s.name) {
            accepted
                .drops
                .add(DropReason::UndeclaredDerived, || s.name.clone());
            continue;
        }
        let same = derived.get(&s.id).is_some_and(|old| {
            *old.name == *s.name
                && old.labels.len() == s.labels.len()
                && old
                    .labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|l| *l.name == **k && *l.value == **v))
        });
        if !same {
            let labels = s
                .labels
                .into_iter()
                .map(|l| (l.name.into(), l.value.into()))
                .collect();
            derived.insert(s.id, Series::new(s.name.into(), labels));
        }
    }
    for ((id, ts), value) in output
        .derived_ids
        .into_iter()
        .zip(output.derived_timestamps_ms)
        .zip(output.derived_values)
    {
        let Some(series) = derived.get(&id) else {
            accepted.drops.add(DropReason::UnknownSeries, || {
                format!("derived series id {id}")
            });
            continue;
        };
        if !value.is_finite() {
            accepted.drops.add(DropReason::NonFinite, || {
                format!("{} = {value}", series.name)
            });
            continue;
        }
        accepted.derived.push(series.clone(), ts, value);
    }
    for id in output.derived_removed {
        derived.remove(&id);
    }
    Ok(accepted)
}

/// The plan metric of custom values, remembering the last (metric, resource) asked.
struct CustomIndex<'a> {
    plan: &'a Plan,
    /// The plan's metric indices by name.
    by_name: &'a HashMap<&'a str, Vec<usize>>,
    last: Option<(String, String, Result<usize, DropReason>)>,
}

impl CustomIndex<'_> {
    /// The index of the plan's custom metric `metric` of `resource`, or why there is none.
    fn get(&mut self, metric: &str, resource: &str) -> Result<usize, DropReason> {
        if let Some((m, r, found)) = &self.last
            && m == metric
            && r == resource
        {
            return *found;
        }
        let candidates = self.by_name.get(metric).map_or(&[][..], Vec::as_slice);
        let metrics = &self.plan.metrics;
        let found = if candidates.is_empty() {
            Err(DropReason::UnknownMetric)
        } else {
            ObjectResource::parse(resource)
                .ok()
                .and_then(|r| {
                    candidates
                        .iter()
                        .find(|&&i| metrics[i].target == MetricTarget::Custom(r.clone()))
                })
                .copied()
                .ok_or_else(|| {
                    if candidates
                        .iter()
                        .any(|&i| matches!(metrics[i].target, MetricTarget::Custom(_)))
                    {
                        DropReason::WrongResource
                    } else {
                        DropReason::WrongKind
                    }
                })
        };
        self.last = Some((metric.to_owned(), resource.to_owned(), found));
        found
    }
}

/// One namespace's pods by name.
type Pods = HashMap<Arc<str>, Arc<PodInfo>>;

/// The pods of the last namespace asked (values of one namespace come together).
#[derive(Default)]
struct PodsOfNamespace<'c> {
    last: Option<(String, Option<&'c Pods>)>,
}

impl<'c> PodsOfNamespace<'c> {
    fn get(&mut self, cluster: &'c ClusterState, namespace: &str) -> Option<&'c Pods> {
        match &self.last {
            Some((ns, pods)) if ns == namespace => *pods,
            _ => {
                let pods = cluster.pods.get(namespace);
                self.last = Some((namespace.to_owned(), pods));
                pods
            }
        }
    }
}

/// A resource value checked against the plan (`candidates`: the indices of the plan's metrics
/// of its name) and the cluster, in the metric's unit: nanocores for `cpu`, bytes for `memory`.
fn resource_sample(
    v: types::ResourceValue,
    plan: &Plan,
    candidates: &[usize],
    objects: Objects<'_>,
    drops: &mut Drops,
) -> Option<(usize, ResourceSample)> {
    let object = &v.object;
    let found = ObjectResource::parse(&object.resource).ok().and_then(|r| {
        candidates
            .iter()
            .find(|&&i| plan.metrics[i].target == MetricTarget::Resource(r.clone()))
            .map(|&i| (i, r))
    });
    let Some((index, resource)) = found else {
        let reason = if candidates.is_empty() {
            DropReason::UnknownMetric
        } else if candidates
            .iter()
            .any(|&i| matches!(plan.metrics[i].target, MetricTarget::Resource(_)))
        {
            DropReason::WrongResource
        } else {
            DropReason::WrongKind
        };
        drops.add(reason, || format!("{} for {}", v.metric, object.resource));
        return None;
    };
    if !v.value.is_finite() {
        drops.add(DropReason::NonFinite, || {
            format!("{} = {}", v.metric, v.value)
        });
        return None;
    }
    if v.value < 0.0 {
        drops.add(DropReason::Negative, || {
            format!("{} = {}", v.metric, v.value)
        });
        return None;
    }
    let namespaced = resource.watched() == Some(Watched::Pods);
    if namespaced == object.namespace.is_empty() {
        drops.add(DropReason::BadNamespace, || {
            format!("{} {:?}/{}", resource, object.namespace, object.name)
        });
        return None;
    }
    if namespaced == v.container.is_empty() {
        drops.add(DropReason::BadContainer, || {
            format!(
                "{} {}/{} container {:?}",
                resource, object.namespace, object.name, v.container
            )
        });
        return None;
    }
    let (namespace, name) = match objects {
        Objects::Cluster(cluster) => {
            match lookup(cluster, &resource, &object.namespace, &object.name) {
                Some((namespace, name, _)) => (namespace, name),
                None => {
                    drops.add(DropReason::UnknownObject, || {
                        format!("{} {}/{}", resource, object.namespace, object.name)
                    });
                    return None;
                }
            }
        }
        Objects::Unchecked => (
            object.namespace.as_str().into(),
            object.name.as_str().into(),
        ),
    };
    // Cores to nanocores; bytes stay bytes. Both saturate at u64::MAX.
    let scale = if *plan.metrics[index].name == *"cpu" {
        1e9
    } else {
        1.0
    };
    Some((
        index,
        ResourceSample {
            namespace,
            name,
            container: v.container.into(),
            value: (v.value * scale).round() as u64,
            timestamp_ms: v.timestamp_ms,
            window_ms: i64::try_from(v.window_ms).unwrap_or(i64::MAX),
        },
    ))
}

fn window(ms: u64) -> Option<i64> {
    (ms > 0).then(|| i64::try_from(ms).unwrap_or(i64::MAX))
}

/// The object's namespace, name and labels from the cluster state: the gateway's own watches
/// for the resources they cover, the on-demand metadata watches for the others.
fn lookup(
    cluster: &ClusterState,
    resource: &ObjectResource,
    namespace: &str,
    name: &str,
) -> Option<(Arc<str>, Arc<str>, Arc<LabelSet>)> {
    match resource.watched() {
        Some(Watched::Pods) => cluster
            .pod(namespace, name)
            .map(|p| (p.namespace.clone(), p.name.clone(), p.labels.clone())),
        Some(Watched::Deployments) => cluster
            .deployment(namespace, name)
            .map(|d| (d.namespace.clone(), d.name.clone(), d.labels.clone())),
        Some(Watched::Nodes) => cluster
            .nodes
            .get(name)
            .map(|n| (Arc::from(""), n.name.clone(), n.labels.clone())),
        Some(Watched::Namespaces) => cluster
            .namespaces
            .get(name)
            .map(|n| (Arc::from(""), n.name.clone(), n.labels.clone())),
        None => cluster
            .object(resource, namespace, name)
            .map(|o| (o.namespace.clone(), o.name.clone(), o.labels.clone())),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{Node, Pod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::sources::cluster::Interners;
    use crate::sources::cluster::projection::{project_node, project_pod};

    fn cluster() -> ClusterState {
        let interners = Interners::default();
        let meta = |ns: Option<&str>, name: &str| ObjectMeta {
            namespace: ns.map(Into::into),
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("app".to_owned(), name.to_owned())])),
            ..ObjectMeta::default()
        };
        let mut state = ClusterState::default();
        let pod = project_pod(
            &Pod {
                metadata: meta(Some("default"), "web"),
                ..Pod::default()
            },
            &interners,
        )
        .unwrap();
        state
            .pods
            .entry(pod.namespace.clone())
            .or_default()
            .insert(pod.name.clone(), Arc::new(pod));
        let node = project_node(
            &Node {
                metadata: meta(None, "n1"),
                ..Node::default()
            },
            &interners,
        )
        .unwrap();
        state.nodes.insert(node.name.clone(), Arc::new(node));
        state
    }

    fn plan() -> Plan {
        let spec = |name: &str, kind, resource: &str, namespaced| types::MetricSpec {
            name: name.into(),
            kind,
            resource: resource.into(),
            namespaced,
            max_age_ms: 0,
        };
        Plan::validate(types::Plan {
            inputs: vec![],
            metrics: vec![
                spec("rate", types::MetricKind::Custom, "pods", true),
                spec("rate", types::MetricKind::Custom, "nodes", false),
                spec("queue", types::MetricKind::External, "", false),
            ],
            derived: vec!["smooth".into()],
        })
        .unwrap()
    }

    fn custom(
        metric: &str,
        resource: &str,
        ns: &str,
        name: &str,
        value: f64,
    ) -> types::CustomValue {
        types::CustomValue {
            metric: metric.into(),
            object: types::ObjectRef {
                resource: resource.into(),
                namespace: ns.into(),
                name: name.into(),
            },
            labels: vec![],
            value,
            timestamp_ms: 5,
            window_ms: 0,
        }
    }

    fn external(metric: &str, ns: &str, queue: &str, value: f64) -> types::ExternalValue {
        types::ExternalValue {
            metric: metric.into(),
            namespace: ns.into(),
            labels: vec![types::Label {
                name: "queue".into(),
                value: queue.into(),
            }],
            value,
            timestamp_ms: 5,
            window_ms: 30_000,
        }
    }

    fn output() -> types::CycleOutput {
        types::CycleOutput {
            custom: vec![],
            external: vec![],
            derived_added: vec![],
            derived_removed: vec![],
            derived_ids: vec![],
            derived_timestamps_ms: vec![],
            derived_values: vec![],
            resource: vec![],
            failed: vec![],
            replan: None,
        }
    }

    #[test]
    fn values_are_checked_sorted_and_drops_counted_by_reason() {
        let cluster = cluster();
        let mut out = output();
        out.custom = vec![
            custom("rate", "pods", "default", "web", 1.0),
            custom("rate", "pods", "default", "web", 9.0),
            custom("rate", "nodes", "", "n1", 2.0),
            custom("rate", "pods", "default", "ghost", 1.0),
            custom("rate", "pods", "", "web", 1.0),
            custom("rate", "deployments.apps", "default", "web", 1.0),
            custom("rate", "pods", "default", "web", f64::NAN),
            custom("queue", "pods", "default", "web", 1.0),
            custom("nope", "pods", "default", "web", 1.0),
        ];
        out.external = vec![
            external("queue", "", "b", 3.0),
            external("queue", "", "a", 4.0),
            external("queue", "ns", "a", 4.0),
            external("queue", "", "c", f64::INFINITY),
            external("rate", "", "a", 1.0),
        ];
        let mut derived = IdMap::default();
        let accepted = validate(
            out,
            &plan(),
            &mut derived,
            &mut LabelSets::default(),
            Objects::Cluster(&cluster),
            100,
        )
        .unwrap();
        let pods = &accepted.custom[0];
        assert_eq!(pods.len(), 1);
        assert_eq!(
            (&*pods[0].name, pods[0].value, pods[0].window_ms),
            ("web", 1.0, None)
        );
        assert_eq!(pods[0].object_labels.0["app"], "web");
        assert_eq!(&*accepted.custom[1][0].name, "n1");
        let queues: Vec<&str> = accepted.external[2]
            .iter()
            .map(|v| v.labels.0["queue"].as_str())
            .collect();
        assert_eq!(queues, ["a", "b"]);
        assert_eq!(accepted.external[2][0].window_ms, Some(30_000));
        let d = &accepted.drops;
        assert_eq!(d.count(DropReason::Duplicate), 1);
        assert_eq!(d.count(DropReason::UnknownObject), 1);
        assert_eq!(d.count(DropReason::BadNamespace), 2);
        assert_eq!(d.count(DropReason::WrongResource), 1);
        assert_eq!(d.count(DropReason::NonFinite), 2);
        assert_eq!(d.count(DropReason::WrongKind), 2);
        assert_eq!(d.count(DropReason::UnknownMetric), 1);
        assert_eq!(accepted.published(), 4);
        let (reason, count, example) = d
            .iter()
            .find(|(r, ..)| *r == DropReason::UnknownObject)
            .unwrap();
        assert_eq!(
            (reason.as_str(), count, example),
            ("unknown_object", 1, "pods default/ghost")
        );
    }

    #[test]
    fn resource_values_are_checked_converted_and_sorted() {
        let spec = |name: &str, resource: &str| types::MetricSpec {
            name: name.into(),
            kind: types::MetricKind::Resource,
            resource: resource.into(),
            namespaced: resource == "pods",
            max_age_ms: 0,
        };
        let plan = Plan::validate(types::Plan {
            inputs: vec![],
            metrics: vec![
                spec("cpu", "pods"),
                spec("memory", "pods"),
                spec("cpu", "nodes"),
                types::MetricSpec {
                    kind: types::MetricKind::Custom,
                    ..spec("rate", "pods")
                },
            ],
            derived: vec![],
        })
        .unwrap();
        let value = |metric: &str, resource: &str, ns: &str, name: &str, container: &str, value| {
            types::ResourceValue {
                metric: metric.into(),
                object: types::ObjectRef {
                    resource: resource.into(),
                    namespace: ns.into(),
                    name: name.into(),
                },
                container: container.into(),
                value,
                timestamp_ms: 7,
                window_ms: 60_000,
            }
        };
        let mut out = output();
        out.resource = vec![
            value("cpu", "pods", "default", "web", "b", 0.25),
            value("cpu", "pods", "default", "web", "a", 0.000_000_001_4),
            value("cpu", "pods", "default", "web", "a", 9.0),
            value("memory", "pods", "default", "web", "a", 1536.4),
            value("cpu", "nodes", "", "n1", "", 1.5),
            value("memory", "nodes", "", "n1", "", 1.0),
            value("cpu", "pods", "default", "web", "", 1.0),
            value("cpu", "nodes", "", "n1", "c", 1.0),
            value("cpu", "pods", "", "web", "a", 1.0),
            value("cpu", "pods", "default", "ghost", "a", 1.0),
            value("cpu", "pods", "default", "web", "c", -1.0),
            value("cpu", "pods", "default", "web", "c", f64::NAN),
            value("rate", "pods", "default", "web", "c", 1.0),
            value("swap", "pods", "default", "web", "c", 1.0),
        ];
        let cluster = cluster();
        let a = validate(
            out,
            &plan,
            &mut IdMap::default(),
            &mut LabelSets::default(),
            Objects::Cluster(&cluster),
            100,
        )
        .unwrap();
        let pods: Vec<(&str, u64)> = a.resource[0]
            .iter()
            .map(|s| (&*s.container, s.value))
            .collect();
        assert_eq!(pods, [("a", 1), ("b", 250_000_000)], "cores to nanocores");
        assert_eq!(a.resource[1][0].value, 1536, "bytes, rounded");
        assert_eq!(
            (
                &*a.resource[2][0].name,
                a.resource[2][0].value,
                a.resource[2][0].window_ms
            ),
            ("n1", 1_500_000_000, 60_000)
        );
        let d = &a.drops;
        assert_eq!(d.count(DropReason::Duplicate), 1);
        assert_eq!(d.count(DropReason::WrongResource), 1, "memory of nodes");
        assert_eq!(d.count(DropReason::BadContainer), 2);
        assert_eq!(d.count(DropReason::BadNamespace), 1);
        assert_eq!(d.count(DropReason::UnknownObject), 1);
        assert_eq!(d.count(DropReason::Negative), 1);
        assert_eq!(d.count(DropReason::NonFinite), 1);
        assert_eq!(d.count(DropReason::WrongKind), 1);
        assert_eq!(d.count(DropReason::UnknownMetric), 1);
        assert_eq!(a.published(), 4);
    }

    #[test]
    fn too_much_output_fails_the_call() {
        let mut out = output();
        out.custom = (0..3)
            .map(|i| custom("rate", "pods", "default", &format!("p{i}"), 1.0))
            .collect();
        let err = validate(
            out,
            &plan(),
            &mut IdMap::default(),
            &mut LabelSets::default(),
            Objects::Unchecked,
            2,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "returned 3 values, more than its limit of 2 (max_output)"
        );
    }

    #[test]
    fn derived_series_are_declared_mapped_and_forgotten() {
        let series = |id, name: &str| types::Series {
            id,
            input: 0,
            name: name.into(),
            labels: vec![],
        };
        // Plugin ids far from the host's (a process-wide counter), so they cannot coincide.
        const P: u64 = 1 << 40;
        let mut out = output();
        out.derived_added = vec![series(P, "smooth"), series(P + 1, "undeclared")];
        out.derived_ids = vec![P, P + 1, P + 2, P];
        out.derived_timestamps_ms = vec![1, 1, 1, 1];
        out.derived_values = vec![0.5, 1.0, 1.0, f64::NAN];
        let mut derived = IdMap::default();
        let a = validate(
            out,
            &plan(),
            &mut derived,
            &mut LabelSets::default(),
            Objects::Unchecked,
            100,
        )
        .unwrap();
        assert_eq!(a.derived.len(), 1);
        let host_id = a.derived.families["smooth"].series[0].id;
        assert_ne!(host_id, P);
        assert_eq!(a.drops.count(DropReason::UndeclaredDerived), 1);
        assert_eq!(a.drops.count(DropReason::UnknownSeries), 2);
        assert_eq!(a.drops.count(DropReason::NonFinite), 1);

        // Announced again after a restart: same host series. Removed: forgotten.
        let mut out = output();
        out.derived_added = vec![series(P, "smooth")];
        out.derived_ids = vec![P];
        out.derived_timestamps_ms = vec![2];
        out.derived_values = vec![0.7];
        out.derived_removed = vec![P];
        let b = validate(
            out,
            &plan(),
            &mut derived,
            &mut LabelSets::default(),
            Objects::Unchecked,
            100,
        )
        .unwrap();
        assert_eq!(b.derived.families["smooth"].series[0].id, host_id);
        assert!(derived.is_empty());

        let mut out = output();
        out.derived_ids = vec![1];
        let err = validate(
            out,
            &plan(),
            &mut derived,
            &mut LabelSets::default(),
            Objects::Unchecked,
            100,
        )
        .unwrap_err();
        assert!(err.contains("ids 1, timestamps 0, values 0"), "{err}");
    }
}
