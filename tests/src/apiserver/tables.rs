//! Server-side printing: `meta.k8s.io` `Table` answers for clients that ask for them in
//! `Accept` (as `kubectl get` does), with the columns kube-apiserver prints.

use http::HeaderMap;
use http::header::ACCEPT;
use serde_json::{Value, json};

use super::objects::Kind;
use crate::cluster::Millis;

/// The `meta.k8s.io` version of the Table a request accepts, if it accepts one.
pub(crate) fn wanted(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(ACCEPT)?.to_str().ok()?;
    for range in accept.split(',') {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        if !params.contains(&"as=Table") || !params.contains(&"g=meta.k8s.io") {
            continue;
        }
        if params.contains(&"v=v1") {
            return Some("meta.k8s.io/v1");
        }
        if params.contains(&"v=v1beta1") {
            return Some("meta.k8s.io/v1beta1");
        }
    }
    None
}

/// What a row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter.
    pub(crate) fn parse(value: Option<&str>) -> IncludeObject {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// kubectl's `HumanDuration`: `45s`, `3m20s`, `5h10m`, `3d4h`, `400d`, `2y30d`.
pub(crate) fn human_duration(ms: Millis) -> String {
    let seconds = ms / 1000;
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    let (minutes, hours) = (seconds / 60, seconds / 3600);
    let with = |a: i64, ua: &str, b: i64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua}{b}{ub}")
        }
    };
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        with(minutes, "m", seconds % 60, "s")
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        with(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        with(hours / 24, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        with(hours / 24 / 365, "y", (hours / 24) % 365, "d")
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

fn parse_time(v: &Value) -> Option<Millis> {
    v.as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

fn age(obj: &Value, now_ms: Millis) -> String {
    match parse_time(&obj["metadata"]["creationTimestamp"]) {
        Some(created) => human_duration(now_ms - created),
        None => "<unknown>".into(),
    }
}

fn column(name: &str, kind: &str, priority: u8, description: &str) -> Value {
    let mut c = json!({ "name": name, "type": kind, "format": "", "description": description, "priority": priority });
    if name == "Name" {
        c["format"] = json!("name");
    }
    c
}

fn columns(kind: Kind) -> Vec<Value> {
    let name = column(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age = column(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match kind {
        Kind::Node => vec![
            name,
            column("Status", "string", 0, "The status of the node"),
            column("Roles", "string", 0, "The roles of the node"),
            age,
            column(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            column(
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            column(
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            column(
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            column(
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            column(
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        Kind::Pod => vec![
            name,
            column(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            column(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            column(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
            column(
                "IP",
                "string",
                1,
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            column(
                "Node",
                "string",
                1,
                "NodeName is a request to schedule this pod onto a specific node.",
            ),
            column(
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set when this pod preempts other pods on the node.",
            ),
            column(
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        Kind::Namespace => vec![
            name,
            column("Status", "string", 0, "The status of the namespace"),
            age,
        ],
        Kind::ConfigMap => vec![
            name,
            column("Data", "string", 0, "Number of entries in the data"),
            age,
        ],
        Kind::Deployment => vec![
            name,
            column("Ready", "string", 0, "Number of the pod with ready state"),
            column(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            column(
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age,
            column(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            column(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            column(
                "Selector",
                "string",
                1,
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
            ),
        ],
        Kind::ReplicaSet => vec![
            name,
            column(
                "Desired",
                "integer",
                0,
                "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1.",
            ),
            column(
                "Current",
                "integer",
                0,
                "Replicas is the most recently observed number of replicas.",
            ),
            column(
                "Ready",
                "integer",
                0,
                "The number of ready replicas for this replica set.",
            ),
            age,
            column(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            column(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            column(
                "Selector",
                "string",
                1,
                "Selector is a label query over pods that should match the replica count.",
            ),
        ],
    }
}

/// The Containers, Images and Selector cells of a workload (`kubectl get -o wide`).
fn template_cells(obj: &Value) -> [Value; 3] {
    let containers = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let join = |field: &str| {
        containers
            .iter()
            .filter_map(|c| c[field].as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    [json!(join("name")), json!(join("image")), json!(selector)]
}

fn address(obj: &Value, kind: &str) -> String {
    obj["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == kind))
        .and_then(|a| a["address"].as_str())
        .unwrap_or("<none>")
        .to_string()
}

fn cells(kind: Kind, obj: &Value, now_ms: Millis) -> Vec<Value> {
    let name = json!(obj["metadata"]["name"]);
    match kind {
        Kind::Node => {
            let ready = obj["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .is_some_and(|c| c["status"] == "True");
            let roles: Vec<&str> = obj["metadata"]["labels"]
                .as_object()
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect()
                })
                .unwrap_or_default();
            let info = &obj["status"]["nodeInfo"];
            vec![
                name,
                json!(if ready { "Ready" } else { "NotReady" }),
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                }),
                json!(age(obj, now_ms)),
                info["kubeletVersion"].clone(),
                json!(address(obj, "InternalIP")),
                json!(address(obj, "ExternalIP")),
                info["osImage"].clone(),
                info["kernelVersion"].clone(),
                info["containerRuntimeVersion"].clone(),
            ]
        }
        Kind::Pod => {
            let statuses = obj["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = obj["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|s| s["ready"] == true).count();
            let mut status = obj["status"]["phase"]
                .as_str()
                .unwrap_or("Unknown")
                .to_string();
            for s in &statuses {
                if let Some(reason) = s["state"]["waiting"]["reason"]
                    .as_str()
                    .or(s["state"]["terminated"]["reason"].as_str())
                {
                    status = reason.to_string();
                }
            }
            let restarts: u64 = statuses
                .iter()
                .filter_map(|s| s["restartCount"].as_u64())
                .sum();
            let last_restart = statuses
                .iter()
                .filter_map(|s| parse_time(&s["lastState"]["terminated"]["finishedAt"]))
                .max();
            let restarts = match last_restart {
                Some(at) if restarts > 0 => {
                    format!("{restarts} ({} ago)", human_duration(now_ms - at))
                }
                _ => restarts.to_string(),
            };
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts),
                json!(age(obj, now_ms)),
                json!(obj["status"]["podIP"].as_str().unwrap_or("<none>")),
                json!(obj["spec"]["nodeName"].as_str().unwrap_or("<none>")),
                json!("<none>"),
                json!("<none>"),
            ]
        }
        Kind::Namespace => vec![
            name,
            obj["status"]["phase"].clone(),
            json!(age(obj, now_ms)),
        ],
        Kind::ConfigMap => {
            let data = obj["data"].as_object().map_or(0, |d| d.len());
            vec![name, json!(data), json!(age(obj, now_ms))]
        }
        Kind::Deployment => {
            let status = &obj["status"];
            let count = |v: &Value| v.as_u64().unwrap_or(0);
            let mut row = vec![
                name,
                json!(format!(
                    "{}/{}",
                    count(&status["readyReplicas"]),
                    count(&obj["spec"]["replicas"])
                )),
                json!(count(&status["updatedReplicas"])),
                json!(count(&status["availableReplicas"])),
                json!(age(obj, now_ms)),
            ];
            row.extend(template_cells(obj));
            row
        }
        Kind::ReplicaSet => {
            let status = &obj["status"];
            let count = |v: &Value| v.as_u64().unwrap_or(0);
            let mut row = vec![
                name,
                json!(count(&obj["spec"]["replicas"])),
                json!(count(&status["replicas"])),
                json!(count(&status["readyReplicas"])),
                json!(age(obj, now_ms)),
            ];
            row.extend(template_cells(obj));
            row
        }
    }
}

/// A Table of `objects` (full objects, as rendered for a list or get).
pub(crate) fn table(
    api_version: &str,
    kind: Kind,
    objects: &[Value],
    list_metadata: Value,
    include: IncludeObject,
    now_ms: Millis,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = json!({ "cells": cells(kind, obj, now_ms) });
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj["metadata"],
                    });
                }
                IncludeObject::Object => {
                    let mut full = obj.clone();
                    full["kind"] = json!(kind.kind());
                    full["apiVersion"] = json!(kind.api_version());
                    row["object"] = full;
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": list_metadata,
        "columnDefinitions": columns(kind),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_kubectl() {
        let s = 1000;
        let cases = [
            (45 * s, "45s"),
            (119 * s, "119s"),
            (200 * s, "3m20s"),
            (240 * s, "4m"),
            (30 * 60 * s, "30m"),
            (5 * 3600 * s + 600 * s, "5h10m"),
            (20 * 3600 * s, "20h"),
            (3 * 86400 * s + 4 * 3600 * s, "3d4h"),
            (400 * 86400 * s, "400d"),
            (800 * 86400 * s, "2y70d"),
        ];
        for (ms, want) in cases {
            assert_eq!(human_duration(ms), want, "{ms}");
        }
    }

    #[test]
    fn accept_negotiation() {
        let mut h = HeaderMap::new();
        h.insert(
            ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(wanted(&h), Some("meta.k8s.io/v1"));
        h.insert(ACCEPT, "application/json".parse().unwrap());
        assert_eq!(wanted(&h), None);
    }
}
