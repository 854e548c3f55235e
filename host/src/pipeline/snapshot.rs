//! Joins per-node series with the cluster state into a [`Snapshot`].

use std::collections::HashMap;
use std::sync::Arc;

use crate::core_metrics::{NodeSeries, Usage};
use crate::sources::cluster::{ClusterState, PodPhase};
use crate::store::{ContainerUsage, NodeMetrics, PodMetrics, Snapshot};

/// A container's name and usage.
type ContainerValue<'a> = (&'a Arc<str>, Usage);

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
    let mut by_pod: HashMap<(&str, &str), Vec<ContainerValue<'_>>> = HashMap::new();
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
        for c in node_series.containers() {
            if let Some(u) = c.usage() {
                by_pod
                    .entry((&c.namespace, &c.pod))
                    .or_default()
                    .push((&c.name, u));
            }
        }
    }
    for ((ns, name), usages) in by_pod {
        let Some(pod) = cluster.pod(ns, name) else {
            continue;
        };
        if pod.phase != PodPhase::Running || pod.containers.is_empty() {
            continue;
        }
        let mut containers = Vec::with_capacity(pod.containers.len());
        let mut oldest: Option<Usage> = None;
        for spec_name in pod.containers.iter() {
            let Some((_, u)) = usages.iter().find(|(n, _)| n == &spec_name) else {
                break;
            };
            containers.push(ContainerUsage {
                name: spec_name.clone(),
                cpu_nanocores: u.cpu_nanocores,
                memory_bytes: u.memory_bytes,
            });
            if oldest.is_none_or(|o| u.timestamp_ms < o.timestamp_ms) {
                oldest = Some(*u);
            }
        }
        let Some(oldest) = oldest.filter(|_| containers.len() == pod.containers.len()) else {
            continue;
        };
        snap.pods.entry(pod.namespace.clone()).or_default().insert(
            pod.name.clone(),
            PodMetrics {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                labels: pod.labels.clone(),
                timestamp_ms: oldest.timestamp_ms,
                window_ms: oldest.window_ms,
                containers,
            },
        );
    }
    snap
}
