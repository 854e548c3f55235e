//! The served state: one immutable [`Snapshot`] per collection cycle, swapped atomically, so API
//! reads never block the cycle and never see half of one.

pub mod custom;

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::core_metrics::Usage;
use crate::sources::cluster::LabelSet;

/// A node's metrics.
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    /// Node name.
    pub name: Arc<str>,
    /// Node labels at the time of the cycle.
    pub labels: Arc<LabelSet>,
    /// Usage.
    pub usage: Usage,
}

/// One container's usage.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    /// Container name.
    pub name: Arc<str>,
    /// CPU, nanocores.
    pub cpu_nanocores: u64,
    /// Memory working set, bytes.
    pub memory_bytes: u64,
}

/// A pod's metrics: every container of its spec has a value.
#[derive(Debug, Clone)]
pub struct PodMetrics {
    /// Namespace.
    pub namespace: Arc<str>,
    /// Name.
    pub name: Arc<str>,
    /// Pod labels at the time of the cycle.
    pub labels: Arc<LabelSet>,
    /// Timestamp of the oldest container sample, ms.
    pub timestamp_ms: i64,
    /// That sample's window, ms.
    pub window_ms: i64,
    /// Containers, in spec order.
    pub containers: Vec<ContainerUsage>,
}

/// Everything served, as of one cycle.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Cycle number that built it (0: nothing collected yet).
    pub cycle: u64,
    /// Nodes by name.
    pub nodes: BTreeMap<Arc<str>, NodeMetrics>,
    /// Pods by namespace, each namespace's sorted by name (built in bulk, searched by binary
    /// search: far cheaper per cycle than a tree of 150,000 entries).
    pub pods: BTreeMap<Arc<str>, Vec<PodMetrics>>,
    /// Custom and external metrics published by plugins.
    pub plugin_metrics: custom::PluginMetrics,
    /// Why nodes or pods have no metrics this cycle (plugins as the resource source only).
    pub unavailable: Unavailable,
}

/// Why `metrics.k8s.io` cannot answer for nodes or pods this cycle: the message names the
/// plugin and the cause. `None`: served (objects without values are simply left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unavailable {
    /// Nodes.
    pub nodes: Option<Arc<str>>,
    /// Pods.
    pub pods: Option<Arc<str>>,
}

impl Snapshot {
    /// Number of pods.
    pub fn pod_count(&self) -> usize {
        self.pods.values().map(Vec::len).sum()
    }

    /// The pods of `namespace`, sorted by name.
    pub fn pods_in(&self, namespace: &str) -> &[PodMetrics] {
        self.pods
            .get(namespace)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// One pod.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodMetrics> {
        let pods = self.pods_in(namespace);
        pods.binary_search_by(|p| (*p.name).cmp(name))
            .ok()
            .map(|i| &pods[i])
    }

    /// Adds a namespace's pods, sorting them by name (the first of duplicate names wins).
    pub fn set_namespace(&mut self, namespace: Arc<str>, mut pods: Vec<PodMetrics>) {
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        pods.dedup_by(|a, b| a.name == b.name);
        self.pods.insert(namespace, pods);
    }
}

/// The atomically swapped current snapshot.
#[derive(Debug, Default)]
pub struct Store {
    current: ArcSwap<Snapshot>,
}

impl Store {
    /// The current snapshot (a cheap, lock-free read).
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot; returns the previous one.
    pub fn publish(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        self.current.swap(Arc::new(snapshot))
    }
}
