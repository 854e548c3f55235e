//! The served state: one immutable [`Snapshot`] per collection cycle, swapped atomically, so API
//! reads never block the cycle and never see half of one.

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
    /// Pods by namespace, then name.
    pub pods: BTreeMap<Arc<str>, BTreeMap<Arc<str>, PodMetrics>>,
}

impl Snapshot {
    /// Number of pods.
    pub fn pod_count(&self) -> usize {
        self.pods.values().map(BTreeMap::len).sum()
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

    /// Replaces the snapshot.
    pub fn publish(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}
