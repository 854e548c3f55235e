//! Small projections of Nodes, Pods, Namespaces, Deployments and ReplicaSets: only what the
//! gateway needs, with label sets, names, owner lists and statuses interned so thousands of
//! replicas of one Deployment share one copy.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

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
    /// `status.conditions` as (type, status), in the node's order.
    pub conditions: Arc<[(Arc<str>, ConditionStatus)]>,
}

/// The status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown` (or anything else).
    Unknown,
}

impl ConditionStatus {
    /// Every status, in kube-state-metrics' order.
    pub const ALL: [ConditionStatus; 3] = [
        ConditionStatus::True,
        ConditionStatus::False,
        ConditionStatus::Unknown,
    ];

    fn parse(status: &str) -> ConditionStatus {
        match status {
            "True" => ConditionStatus::True,
            "False" => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        }
    }

    /// Lower case, as kube-state-metrics labels it: `true`, `false`, `unknown`.
    pub fn as_label(self) -> &'static str {
        match self {
            ConditionStatus::True => "true",
            ConditionStatus::False => "false",
            ConditionStatus::Unknown => "unknown",
        }
    }
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
    /// Unknown.
    Unknown,
    /// Not set yet (or not a phase the API defines).
    Unset,
}

impl PodPhase {
    /// Every phase set on pods, in kube-state-metrics' order.
    pub const ALL: [PodPhase; 5] = [
        PodPhase::Pending,
        PodPhase::Succeeded,
        PodPhase::Failed,
        PodPhase::Unknown,
        PodPhase::Running,
    ];

    /// Its name in the API (`""` when unset).
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
            PodPhase::Unknown => "Unknown",
            PodPhase::Unset => "",
        }
    }
}

/// An owner reference: who controls or owns an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerRef {
    /// Owner kind (`ReplicaSet`, `Deployment`, `StatefulSet`, `Node`, …).
    pub kind: Arc<str>,
    /// Owner name (same namespace as the owned object).
    pub name: Arc<str>,
    /// `controller: true` (unset counts as false).
    pub controller: bool,
}

/// The status of one container of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerStatusInfo {
    /// Container name.
    pub name: Arc<str>,
    /// An init container (from `initContainerStatuses`).
    pub init: bool,
    /// Its readiness probe succeeded.
    pub ready: bool,
    /// Restarts so far.
    pub restart_count: u32,
    /// `state.waiting.reason`, when waiting (possibly empty).
    pub waiting_reason: Option<Arc<str>>,
    /// `state.terminated.reason`, when terminated (possibly empty).
    pub terminated_reason: Option<Arc<str>>,
}

/// What the gateway knows about a pod's owners and status, shared by pods in the same state
/// (the replicas of one ReplicaSet while all are healthy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PodStatusInfo {
    /// `metadata.ownerReferences`, in order.
    pub owners: Vec<OwnerRef>,
    /// The Ready condition's status, if the pod has that condition.
    pub ready_condition: Option<ConditionStatus>,
    /// Init container statuses, then regular container statuses, each in the pod's order.
    pub containers: Vec<ContainerStatusInfo>,
}

impl PodStatusInfo {
    /// The controller owner reference, if any.
    pub fn controller(&self) -> Option<&OwnerRef> {
        self.owners.iter().find(|o| o.controller)
    }
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
    /// `metadata.uid` (empty when unset).
    pub uid: Arc<str>,
    /// Owners and container statuses.
    pub status: Arc<PodStatusInfo>,
}

/// What the gateway knows about a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceInfo {
    /// Name.
    pub name: Arc<str>,
    /// Labels.
    pub labels: Arc<LabelSet>,
}

/// What the gateway knows about an object of a resource watched on demand (metadata only).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: Arc<str>,
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
    /// `spec.replicas`, when set.
    pub spec_replicas: Option<i32>,
    /// `status.replicas`.
    pub replicas: i32,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
    /// `status.availableReplicas`.
    pub available_replicas: i32,
    /// `status.unavailableReplicas`.
    pub unavailable_replicas: i32,
    /// `status.updatedReplicas`.
    pub updated_replicas: i32,
}

/// What the gateway knows about a ReplicaSet: enough to find a pod's Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSetInfo {
    /// Namespace.
    pub namespace: Arc<str>,
    /// Name.
    pub name: Arc<str>,
    /// `metadata.ownerReferences`, in order.
    pub owners: Arc<[OwnerRef]>,
}

impl ReplicaSetInfo {
    /// The controller owner reference, if any.
    pub fn controller(&self) -> Option<&OwnerRef> {
        self.owners.iter().find(|o| o.controller)
    }
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
    /// Namespaces, node names, container names, address types, owner names, reasons.
    pub strings: Interner<str>,
    /// Label sets.
    pub labels: Interner<LabelSet>,
    /// Container name lists.
    pub containers: Interner<[Arc<str>]>,
    /// Pods' owners and statuses.
    pub pod_statuses: Interner<PodStatusInfo>,
    /// Owner lists of other objects.
    pub owners: Interner<[OwnerRef]>,
    /// Node condition lists.
    pub conditions: Interner<[(Arc<str>, ConditionStatus)]>,
}

impl Interners {
    fn labels(&self, labels: Option<&BTreeMap<String, String>>) -> Arc<LabelSet> {
        self.labels
            .intern_owned(LabelSet(labels.cloned().unwrap_or_default()))
    }

    fn owners(&self, meta: &ObjectMeta) -> Vec<OwnerRef> {
        meta.owner_references
            .iter()
            .flatten()
            .map(|o: &OwnerReference| OwnerRef {
                kind: self.strings.intern(o.kind.as_str()),
                name: self.strings.intern(o.name.as_str()),
                controller: o.controller.unwrap_or(false),
            })
            .collect()
    }

    fn container_status(&self, status: &ContainerStatus, init: bool) -> ContainerStatusInfo {
        let state = status.state.as_ref();
        let reason = |r: Option<&String>| self.strings.intern(r.map_or("", String::as_str));
        ContainerStatusInfo {
            name: self.strings.intern(status.name.as_str()),
            init,
            ready: status.ready,
            restart_count: u32::try_from(status.restart_count).unwrap_or(0),
            waiting_reason: state
                .and_then(|s| s.waiting.as_ref())
                .map(|w| reason(w.reason.as_ref())),
            terminated_reason: state
                .and_then(|s| s.terminated.as_ref())
                .map(|t| reason(t.reason.as_ref())),
        }
    }

    /// Forgets values no projection holds any more.
    pub(super) fn sweep_all(&self) {
        // Composite values first: they hold strings.
        self.pod_statuses.sweep();
        self.owners.sweep();
        self.conditions.sweep();
        self.containers.sweep();
        self.labels.sweep();
        self.strings.sweep();
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
    let conditions: Vec<(Arc<str>, ConditionStatus)> = status
        .and_then(|s| s.conditions.as_ref())
        .iter()
        .flat_map(|c| c.iter())
        .map(|c| {
            (
                interners.strings.intern(c.type_.as_str()),
                ConditionStatus::parse(&c.status),
            )
        })
        .collect();
    let ready = conditions
        .iter()
        .any(|(t, s)| &**t == "Ready" && *s == ConditionStatus::True);
    Some(NodeInfo {
        name: interners.strings.intern(name),
        labels: interners.labels(node.metadata.labels.as_ref()),
        addresses,
        kubelet_port,
        ready,
        conditions: interners.conditions.intern(conditions.as_slice()),
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
        Some("Unknown") => PodPhase::Unknown,
        _ => PodPhase::Unset,
    };
    let ready_condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| ConditionStatus::parse(&c.status));
    let ready = ready_condition == Some(ConditionStatus::True);
    let containers = status
        .into_iter()
        .flat_map(|s| {
            let init = s
                .init_container_statuses
                .iter()
                .flatten()
                .map(|c| (c, true));
            let regular = s.container_statuses.iter().flatten().map(|c| (c, false));
            init.chain(regular)
        })
        .map(|(c, init)| interners.container_status(c, init))
        .collect();
    let pod_status = PodStatusInfo {
        owners: interners.owners(&pod.metadata),
        ready_condition,
        containers,
    };
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
        uid: Arc::from(pod.metadata.uid.as_deref().unwrap_or_default()),
        status: interners.pod_statuses.intern_owned(pod_status),
    })
}

/// Projects a Namespace from its metadata (all the gateway reads); `None` when it has no name.
pub fn project_namespace(meta: &ObjectMeta, interners: &Interners) -> Option<NamespaceInfo> {
    Some(NamespaceInfo {
        name: interners.strings.intern(meta.name.as_deref()?),
        labels: interners.labels(meta.labels.as_ref()),
    })
}

/// Projects any object's metadata; `None` when it has no name.
pub fn project_object(meta: &ObjectMeta, interners: &Interners) -> Option<ObjectInfo> {
    Some(ObjectInfo {
        namespace: interners
            .strings
            .intern(meta.namespace.as_deref().unwrap_or_default()),
        name: interners.strings.intern(meta.name.as_deref()?),
        labels: interners.labels(meta.labels.as_ref()),
    })
}

/// Projects a Deployment; `None` when it has no name or namespace.
pub fn project_deployment(
    deployment: &Deployment,
    interners: &Interners,
) -> Option<DeploymentInfo> {
    let meta = &deployment.metadata;
    let status = deployment.status.as_ref();
    let count = |f: fn(&k8s_openapi::api::apps::v1::DeploymentStatus) -> Option<i32>| {
        status.and_then(f).unwrap_or(0)
    };
    Some(DeploymentInfo {
        namespace: interners.strings.intern(meta.namespace.as_deref()?),
        name: interners.strings.intern(meta.name.as_deref()?),
        labels: interners.labels(meta.labels.as_ref()),
        spec_replicas: deployment.spec.as_ref().and_then(|s| s.replicas),
        replicas: count(|s| s.replicas),
        ready_replicas: count(|s| s.ready_replicas),
        available_replicas: count(|s| s.available_replicas),
        unavailable_replicas: count(|s| s.unavailable_replicas),
        updated_replicas: count(|s| s.updated_replicas),
    })
}

/// Projects a ReplicaSet from its metadata (all the gateway reads); `None` when it has no name
/// or namespace.
pub fn project_replicaset(meta: &ObjectMeta, interners: &Interners) -> Option<ReplicaSetInfo> {
    Some(ReplicaSetInfo {
        namespace: interners.strings.intern(meta.namespace.as_deref()?),
        name: interners.strings.intern(meta.name.as_deref()?),
        owners: interners.owners.intern(interners.owners(meta).as_slice()),
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

    /// A pod as the API serves it: owned by a ReplicaSet, one init container that completed,
    /// one container crash-looping after 3 restarts, one running.
    fn crashing_pod(name: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                "labels": {"app": "cart", "pod-template-hash": "7d4b9c8f5"},
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "cart-7d4b9c8f5",
                     "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true},
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "cart-config", "uid": "cm-uid"}
                ]
            },
            "spec": {"nodeName": "n1", "initContainers": [{"name": "migrate"}],
                     "containers": [{"name": "app"}, {"name": "proxy"}]},
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
                ],
                "initContainerStatuses": [{
                    "name": "migrate", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}
                }],
                "containerStatuses": [
                    {"name": "app", "ready": false, "restartCount": 3, "image": "i", "imageID": "",
                     "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                     "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}},
                    {"name": "proxy", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                     "state": {"running": {"startedAt": "2025-01-09T13:46:04Z"}}}
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn projects_owners_and_container_statuses() {
        let i = Interners::default();
        let p = project_pod(&crashing_pod("cart-1"), &i).unwrap();
        assert_eq!(&*p.uid, "uid-cart-1");
        assert!(!p.ready);
        let status = &*p.status;
        assert_eq!(status.ready_condition, Some(ConditionStatus::False));
        assert_eq!(
            status.owners,
            [
                OwnerRef {
                    kind: "ReplicaSet".into(),
                    name: "cart-7d4b9c8f5".into(),
                    controller: true
                },
                OwnerRef {
                    kind: "ConfigMap".into(),
                    name: "cart-config".into(),
                    controller: false
                },
            ]
        );
        assert_eq!(&*status.controller().unwrap().name, "cart-7d4b9c8f5");
        let summary: Vec<_> = status
            .containers
            .iter()
            .map(|c| {
                (
                    &*c.name,
                    c.init,
                    c.ready,
                    c.restart_count,
                    c.waiting_reason.as_deref(),
                    c.terminated_reason.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("migrate", true, true, 0, None, Some("Completed")),
                ("app", false, false, 3, Some("CrashLoopBackOff"), None),
                ("proxy", false, true, 0, None, None),
            ]
        );
        // A second replica in the same state shares the status; a restart splits it off.
        let q = project_pod(&crashing_pod("cart-2"), &i).unwrap();
        assert!(Arc::ptr_eq(&p.status, &q.status));
        let mut restarted = crashing_pod("cart-3");
        if let Some(s) = restarted
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
        {
            s[0].restart_count = 4;
        }
        let r = project_pod(&restarted, &i).unwrap();
        assert!(!Arc::ptr_eq(&p.status, &r.status));
        assert_eq!(r.status.containers[1].restart_count, 4);
    }

    #[test]
    fn pod_phase_unset_is_not_unknown() {
        let i = Interners::default();
        let mut pod = pod("a", "web");
        pod.status.as_mut().unwrap().phase = Some("Unknown".into());
        assert_eq!(project_pod(&pod, &i).unwrap().phase, PodPhase::Unknown);
        pod.status.as_mut().unwrap().phase = None;
        let p = project_pod(&pod, &i).unwrap();
        assert_eq!(p.phase, PodPhase::Unset);
        assert_eq!(&*p.uid, "");
        assert_eq!(p.status.owners, []);
    }

    #[test]
    fn projects_deployments_and_replicaset_owners() {
        let i = Interners::default();
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "cart", "namespace": "shop", "labels": {"app": "cart"}},
            "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "cart"}},
                     "template": {"spec": {"containers": [{"name": "app"}]}}},
            // Zero counts are omitted on the wire (omitempty).
            "status": {"replicas": 5, "updatedReplicas": 5, "readyReplicas": 4, "availableReplicas": 4,
                       "unavailableReplicas": 1}
        }))
        .unwrap();
        let info = project_deployment(&d, &i).unwrap();
        assert_eq!(
            (
                info.spec_replicas,
                info.replicas,
                info.ready_replicas,
                info.available_replicas,
                info.unavailable_replicas,
                info.updated_replicas
            ),
            (Some(5), 5, 4, 4, 1, 5)
        );
        assert_eq!(info.labels.get("app"), Some("cart"));
        let rs: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "cart-7d4b9c8f5", "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart", "uid": "d", "controller": true}]
        }))
        .unwrap();
        let rs = project_replicaset(&rs, &i).unwrap();
        assert_eq!(&*rs.controller().unwrap().name, "cart");
        let ns: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "shop", "labels": {"team": "payments"}
        }))
        .unwrap();
        assert_eq!(
            project_namespace(&ns, &i).unwrap().labels.get("team"),
            Some("payments")
        );
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
        assert_eq!(
            n.conditions
                .iter()
                .map(|(t, s)| (&**t, *s))
                .collect::<Vec<_>>(),
            [("Ready", ConditionStatus::False)]
        );
        assert_eq!(&*n.addresses[1].1, "10.0.0.1");
    }
}
