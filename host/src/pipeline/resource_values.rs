//! `metrics.k8s.io` from plugins' resource values (`metrics.resource_source = "plugins"`): the
//! same [`NodeMetrics`] and [`PodMetrics`] the kubelet path builds, under the same rules.
//!
//! - A node is served when it is in the cluster state and has a fresh `cpu` and `memory` value.
//! - A pod is served when it is Running and *every container of its spec* has a fresh `cpu` and
//!   `memory` value (metrics-server's rule, and the kubelet path's: a partial pod would
//!   under-report, so it is left out and the HPA counts it as missing). Values of containers
//!   outside the spec (cAdvisor's `POD` pause container) are ignored.
//! - An object's timestamp and window are those of its oldest value.
//! - A value older than its metric's maximum age (the plugin's, default 3 intervals) is not
//!   used; the API's `metrics.max_sample_age_secs` applies on top at request time.
//! - When a metric needed for nodes (or pods) is not published, or its plugin failed or could
//!   not compute it this cycle, nodes (or pods) are unavailable: requests for them get an error
//!   naming the plugin and the cause, so the HPA holds.

use std::collections::HashMap;
use std::sync::Arc;

use crate::core_metrics::Usage;
use crate::sources::cluster::{ClusterState, PodPhase};
use crate::store::custom::{MetricState, ObjectResource, PluginMetrics, ResourceSample};
use crate::store::{ContainerUsage, NodeMetrics, PodMetrics, Snapshot};

/// Fills `snap`'s nodes and pods from `metrics`' resource values as of `now_ms`, or records
/// why they are unavailable.
pub fn fill(snap: &mut Snapshot, cluster: &ClusterState, metrics: &PluginMetrics, now_ms: i64) {
    match fresh_pair(metrics, ObjectResource::nodes(), now_ms) {
        Ok((cpu, memory)) => nodes(snap, cluster, &cpu, &memory),
        Err(message) => snap.unavailable.nodes = Some(message),
    }
    match fresh_pair(metrics, ObjectResource::pods(), now_ms) {
        Ok((cpu, memory)) => pods(snap, cluster, &cpu, &memory),
        Err(message) => snap.unavailable.pods = Some(message),
    }
}

type Values<'a> = Vec<&'a ResourceSample>;

/// The fresh `cpu` and `memory` values of `resource`, each sorted by (namespace, name,
/// container), or why they are unavailable.
fn fresh_pair(
    metrics: &PluginMetrics,
    resource: ObjectResource,
    now_ms: i64,
) -> Result<(Values<'_>, Values<'_>), Arc<str>> {
    Ok((
        fresh(metrics, &resource, "cpu", now_ms)?,
        fresh(metrics, &resource, "memory", now_ms)?,
    ))
}

fn fresh<'a>(
    metrics: &'a PluginMetrics,
    resource: &ObjectResource,
    name: &str,
    now_ms: i64,
) -> Result<Values<'a>, Arc<str>> {
    let what = format!("resource metric {name} of {}", resource);
    let Some(metric) = metrics.resource.get(&(resource.clone(), Arc::from(name))) else {
        return Err(
            format!("no plugin publishes {what} (metrics.resource_source = \"plugins\")").into(),
        );
    };
    match &metric.state {
        MetricState::Values(values) => {
            let oldest_ms = now_ms.saturating_sub(metric.max_age_ms);
            Ok(values
                .iter()
                .filter(|v| v.timestamp_ms >= oldest_ms)
                .collect())
        }
        MetricState::Failed(reason) => Err(format!("{what} is unavailable: {reason}").into()),
        MetricState::Unresolved(reason) => Err(format!("{what} is unavailable: {reason}").into()),
        MetricState::Unavailable(reason) => Err(format!(
            "{what} is unavailable: plugin {} could not compute it: {reason}",
            metric.plugin
        )
        .into()),
    }
}

/// The value of (namespace, name, container) in `values`.
fn find<'a>(
    values: &[&'a ResourceSample],
    namespace: &str,
    name: &str,
    container: &str,
) -> Option<&'a ResourceSample> {
    let i = values
        .binary_search_by(|v| {
            (&*v.namespace, &*v.name, &*v.container).cmp(&(namespace, name, container))
        })
        .ok()?;
    Some(values[i])
}

/// The older of two samples' (timestamp, window).
fn oldest(a: &ResourceSample, b: &ResourceSample) -> (i64, i64) {
    let older = if b.timestamp_ms < a.timestamp_ms {
        b
    } else {
        a
    };
    (older.timestamp_ms, older.window_ms)
}

fn nodes(
    snap: &mut Snapshot,
    cluster: &ClusterState,
    cpu: &[&ResourceSample],
    memory: &[&ResourceSample],
) {
    for c in cpu {
        let (Some(node), Some(m)) = (cluster.nodes.get(&c.name), find(memory, "", &c.name, ""))
        else {
            continue;
        };
        let (timestamp_ms, window_ms) = oldest(c, m);
        snap.nodes.insert(
            node.name.clone(),
            NodeMetrics {
                name: node.name.clone(),
                labels: node.labels.clone(),
                usage: Usage {
                    timestamp_ms,
                    window_ms,
                    cpu_nanocores: c.value,
                    memory_bytes: m.value,
                },
            },
        );
    }
}

fn pods(
    snap: &mut Snapshot,
    cluster: &ClusterState,
    cpu: &[&ResourceSample],
    memory: &[&ResourceSample],
) {
    let mut by_namespace: HashMap<Arc<str>, Vec<PodMetrics>> = HashMap::new();
    for group in cpu.chunk_by(|a, b| a.namespace == b.namespace && a.name == b.name) {
        if let Some(pod) = pod_metrics(cluster, group, memory) {
            by_namespace
                .entry(pod.namespace.clone())
                .or_default()
                .push(pod);
        }
    }
    for (namespace, pods) in by_namespace {
        snap.set_namespace(namespace, pods);
    }
}

/// One pod from its containers' `cpu` values (`group`) and every `memory` value, if served.
fn pod_metrics(
    cluster: &ClusterState,
    group: &[&ResourceSample],
    memory: &[&ResourceSample],
) -> Option<PodMetrics> {
    let first = group.first()?;
    let pod = cluster.pod(&first.namespace, &first.name)?;
    if pod.phase != PodPhase::Running || pod.containers.is_empty() {
        return None;
    }
    let mut containers = Vec::with_capacity(pod.containers.len());
    let mut time: Option<(i64, i64)> = None;
    for spec_name in pod.containers.iter() {
        let c = group.iter().find(|v| v.container == *spec_name)?;
        let m = find(memory, &pod.namespace, &pod.name, spec_name)?;
        containers.push(ContainerUsage {
            name: spec_name.clone(),
            cpu_nanocores: c.value,
            memory_bytes: m.value,
        });
        let t = oldest(c, m);
        if time.is_none_or(|o| t.0 < o.0) {
            time = Some(t);
        }
    }
    let (timestamp_ms, window_ms) = time?;
    Some(PodMetrics {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        labels: pod.labels.clone(),
        timestamp_ms,
        window_ms,
        containers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::cluster::Interners;
    use crate::sources::cluster::projection::{project_node, project_pod};
    use crate::store::custom::{PublishedMetric, ResourceMetric};

    fn cluster() -> ClusterState {
        let interners = Interners::default();
        let mut state = ClusterState::default();
        for (name, containers, phase) in [
            ("full", vec!["a", "b"], "Running"),
            ("partial", vec!["a", "b"], "Running"),
            ("pending", vec!["a"], "Pending"),
        ] {
            let spec: Vec<_> = containers
                .iter()
                .map(|c| serde_json::json!({"name": c}))
                .collect();
            let pod = serde_json::from_value(serde_json::json!({
                "metadata": {"namespace": "web", "name": name, "labels": {"app": "x"}},
                "spec": {"containers": spec},
                "status": {"phase": phase},
            }))
            .unwrap();
            let pod = project_pod(&pod, &interners).unwrap();
            state
                .pods
                .entry(pod.namespace.clone())
                .or_default()
                .insert(pod.name.clone(), Arc::new(pod));
        }
        let node = serde_json::from_value(serde_json::json!({"metadata": {"name": "n1"}})).unwrap();
        let node = project_node(&node, &interners).unwrap();
        state.nodes.insert(node.name.clone(), Arc::new(node));
        state
    }

    fn sample(ns: &str, name: &str, container: &str, value: u64, ts: i64) -> ResourceSample {
        ResourceSample {
            namespace: ns.into(),
            name: name.into(),
            container: container.into(),
            value,
            timestamp_ms: ts,
            window_ms: ts / 10,
        }
    }

    fn metric(state: MetricState<ResourceSample>) -> ResourceMetric {
        PublishedMetric {
            name: "cpu".into(),
            plugin: "adapter".into(),
            namespaced: true,
            max_age_ms: 500,
            described: None,
            state,
        }
    }

    #[test]
    fn pods_need_every_spec_container_and_nodes_both_metrics() {
        let mut metrics = PluginMetrics::default();
        let cpu = [
            sample("", "n1", "", 2_000_000_000, 1000),
            sample("web", "full", "POD", 1, 1000),
            sample("web", "full", "a", 10, 1000),
            sample("web", "full", "b", 20, 900),
            sample("web", "partial", "a", 10, 1000),
            sample("web", "partial", "b", 10, 1000),
            sample("web", "pending", "a", 10, 1000),
        ];
        let memory = [
            sample("", "n1", "", 4096, 800),
            sample("web", "full", "a", 100, 1000),
            sample("web", "full", "b", 200, 1000),
            sample("web", "partial", "a", 100, 1000),
            // Too old for the metric's 500 ms: as if missing.
            sample("web", "partial", "b", 100, 400),
            sample("web", "pending", "a", 100, 1000),
        ];
        for (resource, name, values) in [
            (ObjectResource::nodes(), "cpu", cpu[..1].to_vec()),
            (ObjectResource::pods(), "cpu", cpu[1..].to_vec()),
            (ObjectResource::nodes(), "memory", memory[..1].to_vec()),
            (ObjectResource::pods(), "memory", memory[1..].to_vec()),
        ] {
            metrics.resource.insert(
                (resource, Arc::from(name)),
                metric(MetricState::Values(values)),
            );
        }
        let mut snap = Snapshot::default();
        fill(&mut snap, &cluster(), &metrics, 1000);
        assert_eq!(snap.unavailable, Default::default());
        let node = &snap.nodes["n1"].usage;
        assert_eq!(
            (
                node.cpu_nanocores,
                node.memory_bytes,
                node.timestamp_ms,
                node.window_ms
            ),
            (2_000_000_000, 4096, 800, 80),
            "the older sample's time"
        );
        let pods: Vec<&str> = snap.pods_in("web").iter().map(|p| &*p.name).collect();
        assert_eq!(pods, ["full"]);
        let full = snap.pod("web", "full").unwrap();
        let containers: Vec<(&str, u64, u64)> = full
            .containers
            .iter()
            .map(|c| (&*c.name, c.cpu_nanocores, c.memory_bytes))
            .collect();
        assert_eq!(containers, [("a", 10, 100), ("b", 20, 200)]);
        assert_eq!((full.timestamp_ms, full.window_ms), (900, 90));
        assert_eq!(full.labels.0["app"], "x");

        // A failed metric makes its resource unavailable, naming the plugin; the other serves.
        metrics.resource.insert(
            (ObjectResource::pods(), Arc::from("memory")),
            metric(MetricState::Unavailable(
                "prometheus \"main\": connection refused".into(),
            )),
        );
        let mut snap = Snapshot::default();
        fill(&mut snap, &cluster(), &metrics, 1000);
        assert_eq!(
            snap.unavailable.pods.as_deref(),
            Some(
                "resource metric memory of pods is unavailable: plugin adapter could not \
                 compute it: prometheus \"main\": connection refused"
            )
        );
        assert!(snap.pods.is_empty());
        assert_eq!(snap.nodes.len(), 1);

        // Nothing published: both unavailable, saying so.
        let mut snap = Snapshot::default();
        fill(&mut snap, &cluster(), &PluginMetrics::default(), 1000);
        assert_eq!(
            snap.unavailable.nodes.as_deref(),
            Some(
                "no plugin publishes resource metric cpu of nodes (metrics.resource_source = \"plugins\")"
            )
        );
    }
}
