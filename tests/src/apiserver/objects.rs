//! The API objects the fake apiserver serves, rendered from the cluster model as realistic
//! `v1` Node, Pod, Namespace and ConfigMap JSON and `apps/v1` Deployment and ReplicaSet JSON.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::auth::{hex_digest, uuid_like};
use super::selectors::Attrs;
use crate::cluster::{
    ClusterState, Millis, SimDeployment, SimNamespace, SimNode, SimPod, SimReplicaSet,
};

/// The Kubernetes version the fake apiserver and its nodes report.
pub(crate) const KUBE_VERSION: &str = "v1.33.1";

/// Name of the ConfigMap that publishes the request-header authentication settings.
pub(crate) const AUTH_CONFIGMAP: &str = "extension-apiserver-authentication";

/// The resources served: core/v1 and apps/v1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// `nodes`
    Node,
    /// `pods`
    Pod,
    /// `namespaces`
    Namespace,
    /// `configmaps` (only the authentication one)
    ConfigMap,
    /// `deployments.apps`
    Deployment,
    /// `replicasets.apps`
    ReplicaSet,
}

impl Kind {
    /// The kind serving a plural resource name of an API group (`""` for core).
    pub(crate) fn from_resource(group: &str, resource: &str) -> Option<Kind> {
        match (group, resource) {
            ("", "nodes") => Some(Kind::Node),
            ("", "pods") => Some(Kind::Pod),
            ("", "namespaces") => Some(Kind::Namespace),
            ("", "configmaps") => Some(Kind::ConfigMap),
            ("apps", "deployments") => Some(Kind::Deployment),
            ("apps", "replicasets") => Some(Kind::ReplicaSet),
            _ => None,
        }
    }

    /// Its API group (`""` for core).
    pub(crate) fn group(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::ReplicaSet => "apps",
            _ => "",
        }
    }

    /// `apiVersion` of its objects.
    pub(crate) fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::ReplicaSet => "apps/v1",
            _ => "v1",
        }
    }

    /// Plural resource name.
    pub(crate) fn resource(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::Pod => "pods",
            Kind::Namespace => "namespaces",
            Kind::ConfigMap => "configmaps",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
        }
    }

    /// Kind name.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::Namespace => "Namespace",
            Kind::ConfigMap => "ConfigMap",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub(crate) fn namespaced(self) -> bool {
        matches!(
            self,
            Kind::Pod | Kind::ConfigMap | Kind::Deployment | Kind::ReplicaSet
        )
    }

    /// Field selector labels beyond `metadata.name` / `metadata.namespace`.
    pub(crate) fn selectable_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Node => &["spec.unschedulable"],
            Kind::Pod => &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "status.phase",
                "status.podIP",
            ],
            Kind::Namespace => &["status.phase"],
            Kind::ConfigMap | Kind::Deployment | Kind::ReplicaSet => &[],
        }
    }

    /// APIResource entry for `/api/v1` or `/apis/apps/v1`.
    pub(crate) fn api_resource(self) -> Value {
        let (singular, short) = match self {
            Kind::Node => ("node", "no"),
            Kind::Pod => ("pod", "po"),
            Kind::Namespace => ("namespace", "ns"),
            Kind::ConfigMap => ("configmap", "cm"),
            Kind::Deployment => ("deployment", "deploy"),
            Kind::ReplicaSet => ("replicaset", "rs"),
        };
        let mut r = json!({
            "name": self.resource(),
            "singularName": singular,
            "namespaced": self.namespaced(),
            "kind": self.kind(),
            "verbs": ["get", "list", "watch"],
            "shortNames": [short],
            "storageVersionHash": &hex_digest(self.resource(), 16)[..11],
        });
        if matches!(self, Kind::Pod | Kind::Deployment | Kind::ReplicaSet) {
            r["categories"] = json!(["all"]);
        }
        r
    }
}

/// Formats `ms` as an RFC 3339 UTC time with seconds precision, as `metav1.Time` does.
pub(crate) fn rfc3339(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Millicores as a canonical Quantity (`8`, `250m`).
pub(crate) fn cpu_quantity(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Bytes as a canonical BinarySI Quantity (`32Gi`, `1536Ki`, `1000`).
pub(crate) fn memory_quantity(bytes: u64) -> String {
    const SUFFIXES: [&str; 6] = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];
    let (mut value, mut i) = (bytes, 0);
    while value != 0 && value.is_multiple_of(1024) && i + 1 < SUFFIXES.len() {
        value /= 1024;
        i += 1;
    }
    format!("{value}{}", SUFFIXES[i])
}

/// The resource version an object last changed at (objects never changed are at version 1).
pub(crate) fn object_rv(state: &ClusterState, key: &str) -> u64 {
    state.object_versions.get(key).copied().unwrap_or(1)
}

/// Version key of a node in `ClusterState::object_versions`.
pub(crate) fn node_key(name: &str) -> String {
    format!("node/{name}")
}

/// Version key of a pod in `ClusterState::object_versions`.
pub(crate) fn pod_key(namespace: &str, name: &str) -> String {
    format!("pod/{namespace}/{name}")
}

/// Version key of a namespace in `ClusterState::object_versions`.
pub(crate) fn namespace_key(name: &str) -> String {
    format!("namespace/{name}")
}

/// Version key of a Deployment in `ClusterState::object_versions`.
pub(crate) fn deployment_key(namespace: &str, name: &str) -> String {
    format!("deployment/{namespace}/{name}")
}

/// Version key of a ReplicaSet in `ClusterState::object_versions`.
pub(crate) fn replicaset_key(namespace: &str, name: &str) -> String {
    format!("replicaset/{namespace}/{name}")
}

/// Selector attributes of a node.
pub(crate) fn node_attrs(node: &SimNode) -> Attrs {
    Attrs {
        namespace: String::new(),
        name: node.name.clone(),
        labels: node.labels.clone(),
        fields: vec![("spec.unschedulable", "false".into())],
    }
}

/// Selector attributes of a pod.
pub(crate) fn pod_attrs(pod: &SimPod) -> Attrs {
    Attrs {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        labels: pod.labels.clone(),
        fields: vec![
            ("spec.nodeName", pod.node.clone()),
            ("spec.restartPolicy", "Always".into()),
            ("spec.schedulerName", "default-scheduler".into()),
            ("spec.serviceAccountName", "default".into()),
            ("status.phase", pod.phase.clone()),
            ("status.podIP", pod_ip(pod)),
        ],
    }
}

/// Selector attributes of a namespace.
pub(crate) fn namespace_attrs(namespace: &SimNamespace) -> Attrs {
    Attrs {
        namespace: String::new(),
        name: namespace.name.clone(),
        labels: namespace_labels(namespace),
        fields: vec![("status.phase", "Active".into())],
    }
}

/// A namespace's labels, with the `kubernetes.io/metadata.name` label the API server sets.
fn namespace_labels(namespace: &SimNamespace) -> BTreeMap<String, String> {
    let mut labels = namespace.labels.clone();
    labels.insert(
        "kubernetes.io/metadata.name".to_string(),
        namespace.name.clone(),
    );
    labels
}

/// Selector attributes of a Deployment.
pub(crate) fn deployment_attrs(deployment: &SimDeployment) -> Attrs {
    Attrs {
        namespace: deployment.namespace.clone(),
        name: deployment.name.clone(),
        labels: deployment.labels.clone(),
        fields: Vec::new(),
    }
}

/// Selector attributes of a ReplicaSet.
pub(crate) fn replicaset_attrs(rs: &SimReplicaSet) -> Attrs {
    Attrs {
        namespace: rs.namespace.clone(),
        name: rs.name.clone(),
        labels: rs.labels.clone(),
        fields: Vec::new(),
    }
}

/// Renders a node at resource version `rv`; `now_ms` stamps the heartbeat times.
pub(crate) fn node_json(node: &SimNode, rv: u64, now_ms: Millis) -> Value {
    let resources = json!({
        "cpu": cpu_quantity(node.allocatable_cpu_millis),
        "memory": memory_quantity(node.allocatable_memory_bytes),
        "ephemeral-storage": "100Gi",
        "pods": "110",
    });
    let heartbeat = rfc3339(now_ms);
    let since = rfc3339(node.boot_ms);
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind,
            "status": status,
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        })
    };
    // Each condition: its type, its default status, and the kubelet's reason and message for
    // the healthy (first) and unhealthy (second) state.
    let defaults = [
        (
            "MemoryPressure",
            "False",
            (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
        ),
        (
            "DiskPressure",
            "False",
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
        ),
        (
            "PIDPressure",
            "False",
            (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
        ),
        (
            "Ready",
            if node.ready { "True" } else { "False" },
            ("KubeletReady", "kubelet is posting ready status"),
            ("KubeletNotReady", "container runtime network not ready"),
        ),
    ];
    let conditions: Vec<Value> = defaults
        .iter()
        .map(|(kind, default, healthy, unhealthy)| {
            let status = node.conditions.get(*kind).map_or(*default, String::as_str);
            let healthy_status = if *kind == "Ready" { "True" } else { "False" };
            let (reason, message) = match status {
                "Unknown" => ("NodeStatusUnknown", "Kubelet stopped posting node status."),
                s if s == healthy_status => *healthy,
                _ => *unhealthy,
            };
            condition(kind, status, reason, message)
        })
        .collect();
    let seed = format!("node/{}", node.name);
    json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": node.name,
            "uid": uuid_like(&seed),
            "resourceVersion": rv.to_string(),
            "creationTimestamp": since,
            "labels": node.labels,
            "annotations": { "node.alpha.kubernetes.io/ttl": "0" },
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": conditions,
            "addresses": [
                { "type": "InternalIP", "address": node.address.to_string() },
                { "type": "Hostname", "address": node.name },
            ],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": node.kubelet_port } },
            "nodeInfo": {
                "machineID": hex_digest(&format!("{seed}/machine"), 32),
                "systemUUID": uuid_like(&format!("{seed}/system")),
                "bootID": uuid_like(&format!("{seed}/boot/{}", node.boot_ms)),
                "kernelVersion": "6.1.0-31-amd64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://2.0.5",
                "kubeletVersion": KUBE_VERSION,
                "kubeProxyVersion": KUBE_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

/// The pod's IP: 10.(node address bytes 3–4).x, stable per pod.
pub(crate) fn pod_ip(pod: &SimPod) -> String {
    let h = u64::from_str_radix(
        &hex_digest(&format!("{}/{}", pod.namespace, pod.name), 8),
        16,
    )
    .unwrap_or(0);
    let node = u64::from_str_radix(&hex_digest(&pod.node, 4), 16).unwrap_or(0);
    format!(
        "10.{}.{}.{}",
        64 + node % 64,
        (node >> 6) % 256,
        2 + h % 250
    )
}

fn app_name(pod: &SimPod) -> String {
    pod.labels
        .get("app")
        .cloned()
        .unwrap_or_else(|| pod.name.clone())
}

/// Renders a pod at resource version `rv`; `host_ip` is its node's address, if the node exists.
pub(crate) fn pod_json(pod: &SimPod, rv: u64, host_ip: Option<String>) -> Value {
    let app = app_name(pod);
    let started = rfc3339(pod.start_ms);
    let running = pod.phase == "Running";
    let ready_since = pod
        .containers
        .iter()
        .map(|c| c.start_ms)
        .max()
        .unwrap_or(pod.start_ms)
        .max(pod.start_ms);
    let ready = running && pod.ready;
    let condition = |kind: &str, ok: bool, at: Millis| {
        json!({
            "type": kind,
            "status": if ok { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": rfc3339(at),
        })
    };
    let containers: Vec<Value> = pod
        .containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "image": format!("registry.example.com/{app}/{}:1.0", c.name),
                "imagePullPolicy": "IfNotPresent",
                "resources": { "requests": {
                    "cpu": cpu_quantity(c.cpu_request_millis),
                    "memory": memory_quantity(c.memory_request_bytes),
                } },
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            })
        })
        .collect();
    let statuses: Vec<Value> = pod
        .containers
        .iter()
        .map(|c| {
            let waiting = pod.waiting.get(&c.name);
            let state = match pod.phase.as_str() {
                "Running" => match waiting {
                    Some(reason) => json!({ "waiting": {
                        "reason": reason,
                        "message": format!("back-off restarting failed container {} in pod {}_{}({})", c.name, pod.name, pod.namespace, pod.uid),
                    } }),
                    None => json!({ "running": { "startedAt": rfc3339(c.start_ms) } }),
                },
                "Pending" => json!({ "waiting": { "reason": "ContainerCreating" } }),
                phase => json!({ "terminated": {
                    "exitCode": if phase == "Succeeded" { 0 } else { 1 },
                    "reason": if phase == "Succeeded" { "Completed" } else { "Error" },
                    "startedAt": rfc3339(c.start_ms),
                    "finishedAt": rfc3339(c.start_ms.max(pod.start_ms)),
                    "containerID": format!("containerd://{}", hex_digest(&format!("{}/{}/{}", pod.uid, c.name, c.restart_count), 64)),
                } }),
            };
            let mut status = json!({
                "name": c.name,
                "state": state,
                "lastState": {},
                "ready": ready && waiting.is_none(),
                "restartCount": c.restart_count,
                "image": format!("registry.example.com/{app}/{}:1.0", c.name),
                "imageID": format!("registry.example.com/{app}/{}@sha256:{}", c.name, hex_digest(&format!("{app}/{}", c.name), 64)),
                "started": running && waiting.is_none(),
            });
            if pod.phase != "Pending" {
                status["containerID"] =
                    json!(format!("containerd://{}", hex_digest(&format!("{}/{}/{}", pod.uid, c.name, c.restart_count), 64)));
            }
            if c.restart_count > 0 {
                status["lastState"] = json!({ "terminated": {
                    "exitCode": 137,
                    "reason": "Error",
                    "startedAt": started,
                    "finishedAt": rfc3339(c.start_ms),
                    "containerID": format!("containerd://{}", hex_digest(&format!("{}/{}/{}", pod.uid, c.name, c.restart_count - 1), 64)),
                } });
            }
            status
        })
        .collect();
    let scheduled = condition("PodScheduled", true, pod.start_ms);
    let conditions = if pod.phase == "Pending" {
        vec![
            condition("PodReadyToStartContainers", false, pod.start_ms),
            condition("Initialized", true, pod.start_ms),
            condition("Ready", false, pod.start_ms),
            condition("ContainersReady", false, pod.start_ms),
            scheduled,
        ]
    } else {
        vec![
            condition("PodReadyToStartContainers", running, pod.start_ms),
            condition("Initialized", true, pod.start_ms),
            condition("Ready", ready, ready_since),
            condition("ContainersReady", ready, ready_since),
            scheduled,
        ]
    };
    let mut metadata = json!({
        "name": pod.name,
        "namespace": pod.namespace,
        "uid": pod.uid,
        "resourceVersion": rv.to_string(),
        "creationTimestamp": started,
        "labels": pod.labels,
    });
    if let Some(rs) = &pod.owner_replicaset {
        metadata["generateName"] = json!(format!("{rs}-"));
        metadata["ownerReferences"] = json!([{
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": rs,
            "uid": replicaset_uid(&pod.namespace, rs),
            "controller": true,
            "blockOwnerDeletion": true,
        }]);
    }
    let mut status = json!({
        "phase": pod.phase,
        "conditions": conditions,
        "startTime": started,
        "containerStatuses": statuses,
        "qosClass": "Burstable",
    });
    if let Some(host_ip) = host_ip {
        status["hostIP"] = json!(host_ip);
        status["hostIPs"] = json!([{ "ip": host_ip }]);
    }
    if pod.phase != "Pending" {
        let ip = pod_ip(pod);
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{ "ip": ip }]);
    }
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": {
            "containers": containers,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "nodeName": pod.node,
            "schedulerName": "default-scheduler",
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": status,
    })
}

/// Renders a pod from the state it lives in (looks up its node's address and its version).
pub(crate) fn pod_json_in(state: &ClusterState, pod: &SimPod, rv: Option<u64>) -> Value {
    let host_ip = state.nodes.get(&pod.node).map(|n| n.address.to_string());
    let rv = rv.unwrap_or_else(|| object_rv(state, &pod_key(&pod.namespace, &pod.name)));
    pod_json(pod, rv, host_ip)
}

/// Renders a namespace at resource version `rv`.
pub(crate) fn namespace_json(namespace: &SimNamespace, rv: u64) -> Value {
    json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": namespace.name,
            "uid": uuid_like(&format!("namespace/{}", namespace.name)),
            "resourceVersion": rv.to_string(),
            "creationTimestamp": rfc3339(namespace.created_ms),
            "labels": namespace_labels(namespace),
        },
        "spec": { "finalizers": ["kubernetes"] },
        "status": { "phase": "Active" },
    })
}

/// `apiVersion` of `PartialObjectMetadata` and its list.
pub(crate) const META_API_VERSION: &str = "meta.k8s.io/v1";

/// An object reduced to its metadata, as served to clients that accept
/// `as=PartialObjectMetadata;g=meta.k8s.io;v=v1`.
pub(crate) fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": META_API_VERSION,
        "metadata": object["metadata"],
    })
}

/// The uid of the ReplicaSet `namespace/name` (pods' owner references point at it).
fn replicaset_uid(namespace: &str, name: &str) -> String {
    uuid_like(&format!("replicaset/{namespace}/{name}"))
}

/// The uid of the Deployment `namespace/name`.
fn deployment_uid(namespace: &str, name: &str) -> String {
    uuid_like(&format!("deployment/{namespace}/{name}"))
}

/// A pod template whose containers are named as the workload's first pod's (or `main`).
fn pod_template(
    state: &ClusterState,
    namespace: &str,
    replicasets: &[&SimReplicaSet],
    labels: &BTreeMap<String, String>,
) -> Value {
    let app = labels.get("app").map_or("app", String::as_str);
    let names: Vec<String> = replicasets
        .iter()
        .find_map(|rs| state.pods_of_replicaset(namespace, &rs.name).next())
        .map(|p| p.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_else(|| vec!["main".to_string()]);
    let containers: Vec<Value> = names
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "image": format!("registry.example.com/{app}/{name}:1.0"),
                "imagePullPolicy": "IfNotPresent",
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            })
        })
        .collect();
    json!({
        "metadata": { "labels": labels, "creationTimestamp": null },
        "spec": {
            "containers": containers,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
            "securityContext": {},
        },
    })
}

/// Inserts `value` under `key` unless it is 0 (Go's `omitempty` on replica counts).
fn set_count(status: &mut Value, key: &str, value: u32) {
    if value != 0 {
        status[key] = json!(value);
    }
}

/// Renders a Deployment at resource version `rv`, its status counted from its pods.
pub(crate) fn deployment_json(state: &ClusterState, d: &SimDeployment, rv: u64) -> Value {
    let status = state.deployment_status(d);
    let selector = BTreeMap::from([(
        "app".to_string(),
        d.labels
            .get("app")
            .cloned()
            .unwrap_or_else(|| d.name.clone()),
    )]);
    let replicasets: Vec<&SimReplicaSet> = state.replicasets_of(d).collect();
    let mut template_labels = selector.clone();
    template_labels.insert("pod-template-hash".into(), d.template_hash.clone());
    let created = rfc3339(d.created_ms);
    let available = status.available >= d.replicas;
    let mut body = json!({
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Available",
                "status": if available { "True" } else { "False" },
                "lastUpdateTime": created,
                "lastTransitionTime": created,
                "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                "message": if available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
            },
            {
                "type": "Progressing",
                "status": "True",
                "lastUpdateTime": created,
                "lastTransitionTime": created,
                "reason": "NewReplicaSetAvailable",
                "message": format!("ReplicaSet \"{}-{}\" has successfully progressed.", d.name, d.template_hash),
            },
        ],
    });
    set_count(&mut body, "replicas", status.replicas);
    set_count(&mut body, "updatedReplicas", status.updated);
    set_count(&mut body, "readyReplicas", status.ready);
    set_count(&mut body, "availableReplicas", status.available);
    set_count(&mut body, "unavailableReplicas", status.unavailable);
    let mut template = pod_template(state, &d.namespace, &replicasets, &selector);
    template["metadata"]["labels"] = json!(selector);
    json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": d.name,
            "namespace": d.namespace,
            "uid": deployment_uid(&d.namespace, &d.name),
            "resourceVersion": rv.to_string(),
            "generation": 1,
            "creationTimestamp": created,
            "labels": d.labels,
            "annotations": { "deployment.kubernetes.io/revision": "1" },
        },
        "spec": {
            "replicas": d.replicas,
            "selector": { "matchLabels": selector },
            "template": template,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": { "maxUnavailable": "25%", "maxSurge": "25%" },
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": body,
    })
}

/// Renders a ReplicaSet at resource version `rv`, its status counted from its pods.
pub(crate) fn replicaset_json(state: &ClusterState, rs: &SimReplicaSet, rv: u64) -> Value {
    let status = state.replicaset_status(rs);
    let mut metadata = json!({
        "name": rs.name,
        "namespace": rs.namespace,
        "uid": replicaset_uid(&rs.namespace, &rs.name),
        "resourceVersion": rv.to_string(),
        "generation": 1,
        "creationTimestamp": rfc3339(rs.created_ms),
        "labels": rs.labels,
        "annotations": {
            "deployment.kubernetes.io/desired-replicas": rs.replicas.to_string(),
            "deployment.kubernetes.io/max-replicas": (rs.replicas + rs.replicas.div_ceil(4)).to_string(),
            "deployment.kubernetes.io/revision": "1",
        },
    });
    if let Some(d) = &rs.deployment {
        metadata["ownerReferences"] = json!([{
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": d,
            "uid": deployment_uid(&rs.namespace, d),
            "controller": true,
            "blockOwnerDeletion": true,
        }]);
    }
    let mut body = json!({ "observedGeneration": 1 });
    // `replicas` has no omitempty in ReplicaSetStatus.
    body["replicas"] = json!(status.replicas);
    set_count(&mut body, "fullyLabeledReplicas", status.replicas);
    set_count(&mut body, "readyReplicas", status.ready);
    set_count(&mut body, "availableReplicas", status.available);
    json!({
        "kind": "ReplicaSet",
        "apiVersion": "apps/v1",
        "metadata": metadata,
        "spec": {
            "replicas": rs.replicas,
            "selector": { "matchLabels": rs.labels },
            "template": pod_template(state, &rs.namespace, &[rs], &rs.labels),
        },
        "status": body,
    })
}

/// The CA bundles published in the authentication ConfigMap.
#[derive(Clone, Debug)]
pub(crate) struct AuthBundles {
    /// `client-ca-file`.
    pub(crate) client_ca: String,
    /// `requestheader-client-ca-file`.
    pub(crate) requestheader_ca: String,
}

/// Renders `kube-system/extension-apiserver-authentication`.
pub(crate) fn auth_configmap_json(bundles: &AuthBundles, created_ms: Millis) -> Value {
    let list = |v: &[&str]| serde_json::to_string(v).unwrap_or_default();
    json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": AUTH_CONFIGMAP,
            "namespace": "kube-system",
            "uid": uuid_like("configmap/kube-system/extension-apiserver-authentication"),
            "resourceVersion": "1",
            "creationTimestamp": rfc3339(created_ms),
        },
        "data": {
            "client-ca-file": bundles.client_ca,
            "requestheader-allowed-names": list(&["front-proxy-client"]),
            "requestheader-client-ca-file": bundles.requestheader_ca,
            "requestheader-extra-headers-prefix": list(&["X-Remote-Extra-"]),
            "requestheader-group-headers": list(&["X-Remote-Group"]),
            "requestheader-uid-headers": list(&["X-Remote-Uid"]),
            "requestheader-username-headers": list(&["X-Remote-User"]),
        },
    })
}

/// Selector attributes of the authentication ConfigMap.
pub(crate) fn auth_configmap_attrs() -> Attrs {
    Attrs {
        namespace: "kube-system".into(),
        name: AUTH_CONFIGMAP.into(),
        ..Attrs::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_canonical() {
        assert_eq!(cpu_quantity(8000), "8");
        assert_eq!(cpu_quantity(250), "250m");
        assert_eq!(memory_quantity(32 << 30), "32Gi");
        assert_eq!(memory_quantity(384 << 20), "384Mi");
        assert_eq!(memory_quantity(1536 * 1024), "1536Ki");
        assert_eq!(memory_quantity(1000), "1000");
        assert_eq!(memory_quantity(0), "0");
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        assert_eq!(rfc3339(1_736_430_364_999), "2025-01-09T13:46:04Z");
    }
}
