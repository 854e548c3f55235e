//! Small projections of Nodes and Pods: only what the gateway needs, with label sets and names
//! interned so thousands of replicas of one Deployment share one copy.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::api::selector::Labels;

/// A sorted, immutable label set.
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelSet(pub BTreeMap<String, String>);

impl Labels for LabelSet {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// What the gateway knows about a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// Name.
    pub name: Arc<str>,
    /// Labels.
    pub labels: Arc<LabelSet>,
    /// `status.addresses` as (type, address), in the node's order.
    pub addresses: Vec<(Arc<str>, Arc<str>)>,
    /// `status.daemonEndpoints.kubeletEndpoint.Port` (0 when unset).
    pub kubelet_port: u16,
    /// The Ready condition is True.
    pub ready: bool,
}

/// A pod's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    /// Pending.
    Pending,
    /// Running.
    Running,
    /// Succeeded.
    Succeeded,
    /// Failed.
    Failed,
    /// Unknown or unset.
    Unknown,
}

/// What the gateway knows about a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: Arc<str>,
    /// Name.
    pub name: Arc<str>,
    /// Labels.
    pub labels: Arc<LabelSet>,
    /// The node it is scheduled to.
    pub node_name: Option<Arc<str>>,
    /// Phase.
    pub phase: PodPhase,
    /// The Ready condition is True.
    pub ready: bool,
    /// Names of the containers in the spec (not init containers).
    pub containers: Arc<[Arc<str>]>,
    /// `status.startTime`, ms since the epoch.
    pub start_time_ms: Option<i64>,
}

/// What the gateway knows about a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceInfo {
    /// Name.
    pub name: Arc<str>,
    /// Labels.
    pub labels: Arc<LabelSet>,
}

/// What the gateway knows about a Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentInfo {
    /// Namespace.
    pub namespace: Arc<str>,
    /// Name.
    pub name: Arc<str>,
    /// Labels.
    pub labels: Arc<LabelSet>,
}

/// Deduplicates immutable values: equal values share one `Arc`.
#[derive(Debug)]
pub struct Interner<T: ?Sized> {
    set: Mutex<HashSet<Arc<T>>>,
}

impl<T: ?Sized + Eq + Hash> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            set: Mutex::new(HashSet::new()),
        }
    }
}

impl<T: ?Sized + Eq + Hash> Interner<T> {
    /// The shared copy of `value`.
    pub fn intern<Q>(&self, value: &Q) -> Arc<T>
    where
        Q: ?Sized + Eq + Hash,
        Arc<T>: std::borrow::Borrow<Q> + for<'a> From<&'a Q>,
    {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = set.get(value) {
            return v.clone();
        }
        let v: Arc<T> = Arc::from(value);
        set.insert(v.clone());
        v
    }

    /// The shared copy of an owned value.
    pub fn intern_owned(&self, value: T) -> Arc<T>
    where
        T: Sized,
    {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = set.get(&value) {
            return v.clone();
        }
        let v = Arc::new(value);
        set.insert(v.clone());
        v
    }

    /// Forgets values nobody else holds.
    pub fn sweep(&self) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        set.retain(|v| Arc::strong_count(v) > 1);
    }
}

/// The interners shared by every projection.
#[derive(Debug, Default)]
pub struct Interners {
    /// Namespaces, node names, container names, address types.
    pub strings: Interner<str>,
    /// Label sets.
    pub labels: Interner<LabelSet>,
    /// Container name lists.
    pub containers: Interner<[Arc<str>]>,
}

impl Interners {
    fn labels(&self, labels: Option<&BTreeMap<String, String>>) -> Arc<LabelSet> {
        self.labels
            .intern_owned(LabelSet(labels.cloned().unwrap_or_default()))
    }
}

fn parse_time_ms(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    t.0.as_millisecond()
}

/// Projects a Node; `None` when it has no name.
pub fn project_node(node: &Node, interners: &Interners) -> Option<NodeInfo> {
    let name = node.metadata.name.as_deref()?;
    let status = node.status.as_ref();
    let addresses = status
        .and_then(|s| s.addresses.as_ref())
        .map(|a| {
            a.iter()
                .map(|a| {
                    (
                        interners.strings.intern(a.type_.as_str()),
                        Arc::from(a.address.as_str()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let kubelet_port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|e| u16::try_from(e.port).unwrap_or(0))
        .unwrap_or(0);
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some(NodeInfo {
        name: interners.strings.intern(name),
        labels: interners.labels(node.metadata.labels.as_ref()),
        addresses,
        kubelet_port,
        ready,
    })
}

/// Projects a Pod; `None` when it has no name or namespace.
pub fn project_pod(pod: &Pod, interners: &Interners) -> Option<PodInfo> {
    let name = pod.metadata.name.as_deref()?;
    let namespace = pod.metadata.namespace.as_deref()?;
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Pending") => PodPhase::Pending,
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        _ => PodPhase::Unknown,
    };
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let names: Vec<Arc<str>> = pod
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| interners.strings.intern(c.name.as_str()))
                .collect()
        })
        .unwrap_or_default();
    Some(PodInfo {
        namespace: interners.strings.intern(namespace),
        name: Arc::from(name),
        labels: interners.labels(pod.metadata.labels.as_ref()),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .map(|n| interners.strings.intern(n)),
        phase,
        ready,
        containers: interners.containers.intern(names.as_slice()),
        start_time_ms: status
            .and_then(|s| s.start_time.as_ref())
            .map(parse_time_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, app: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
            "spec": {"nodeName": "n1", "containers": [{"name": "main"}, {"name": "side"}]},
            "status": {"phase": "Running", "startTime": "2025-01-09T13:46:04Z",
                        "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap()
    }

    #[test]
    fn projects_pods_and_shares_equal_parts() {
        let i = Interners::default();
        let a = project_pod(&pod("a", "web"), &i).unwrap();
        let b = project_pod(&pod("b", "web"), &i).unwrap();
        assert_eq!(a.phase, PodPhase::Running);
        assert!(a.ready);
        assert_eq!(&*a.containers[1], "side");
        assert_eq!(a.start_time_ms, Some(1_736_430_364_000));
        assert!(Arc::ptr_eq(&a.labels, &b.labels));
        assert!(Arc::ptr_eq(&a.containers, &b.containers));
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
        drop((a, b));
        i.sweep_all();
        assert!(i.labels.set.lock().unwrap().is_empty());
    }

    #[test]
    fn projects_node_addresses_and_port() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"zone": "a"}},
            "status": {
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "conditions": [{"type": "Ready", "status": "False"}]
            }
        }))
        .unwrap();
        let n = project_node(&node, &Interners::default()).unwrap();
        assert_eq!(n.kubelet_port, 10250);
        assert!(!n.ready);
        assert_eq!(&*n.addresses[1].1, "10.0.0.1");
    }
}
