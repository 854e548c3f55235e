//! Joins per-node series with the cluster state into a [`Snapshot`].

use std::collections::HashMap;
use std::sync::Arc;

use crate::core_metrics::{ContainerSeries, NodeSeries, Usage};
use crate::sources::cluster::{ClusterState, PodPhase};
use crate::store::{ContainerUsage, NodeMetrics, PodMetrics, Snapshot};

/// Builds the snapshot of cycle `cycle`. A node is served when the cluster knows it and its
/// usage exists; a pod when the cluster knows it, it is Running, and every container of its spec
/// has usage (as metrics-server, a partial pod is left out rather than under-reported).
pub fn build<'a>(
    cycle: u64,
    cluster: &ClusterState,
    series: impl Iterator<Item = (&'a Arc<str>, &'a NodeSeries)>,
) -> Snapshot {
    let mut snap = Snapshot {
        cycle,
        ..Snapshot::default()
    };
    let mut by_namespace: HashMap<Arc<str>, Vec<PodMetrics>> = HashMap::new();
    for (node_name, node_series) in series {
        if let (Some(node), Some(usage)) = (cluster.nodes.get(node_name), node_series.node_usage())
        {
            snap.nodes.insert(
                node.name.clone(),
                NodeMetrics {
                    name: node.name.clone(),
                    labels: node.labels.clone(),
                    usage,
                },
            );
        }
        for group in node_series.pods() {
            if let Some(pod) = pod_metrics(cluster, group) {
                by_namespace
                    .entry(pod.namespace.clone())
                    .or_default()
                    .push(pod);
            }
        }
    }
    for (namespace, pods) in by_namespace {
        snap.set_namespace(namespace, pods);
    }
    snap
}

/// One pod's metrics from its container series, if it is served.
fn pod_metrics(cluster: &ClusterState, group: &[ContainerSeries]) -> Option<PodMetrics> {
    let first = group.first()?;
    let pod = cluster.pod(&first.namespace, &first.pod)?;
    if pod.phase != PodPhase::Running || pod.containers.is_empty() {
        return None;
    }
    let mut containers = Vec::with_capacity(pod.containers.len());
    let mut oldest: Option<Usage> = None;
    for spec_name in pod.containers.iter() {
        let usage = group.iter().find(|c| &c.name == spec_name)?.usage()?;
        containers.push(ContainerUsage {
            name: spec_name.clone(),
            cpu_nanocores: usage.cpu_nanocores,
            memory_bytes: usage.memory_bytes,
        });
        if oldest.is_none_or(|o| usage.timestamp_ms < o.timestamp_ms) {
            oldest = Some(usage);
        }
    }
    let oldest = oldest?;
    Some(PodMetrics {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        labels: pod.labels.clone(),
        timestamp_ms: oldest.timestamp_ms,
        window_ms: oldest.window_ms,
        containers,
    })
}
