//! Objects the fake stores as written by clients, unlike the simulated cluster's: `MetricsPlugin`
//! custom resources (with a status subresource), `coordination.k8s.io/v1` Leases,
//! `events.k8s.io/v1` Events, and core ConfigMaps and Secrets put there by tests.
//!
//! It keeps kube-apiserver's write protocol: `create` refuses an existing name (409
//! AlreadyExists); `update` needs the object's current `metadata.resourceVersion` (422 without
//! one, 409 Conflict on a stale one); JSON merge patches apply to the stored object (409 when
//! they carry a stale `resourceVersion`); for a kind with a status subresource, writes to the
//! object ignore `status`, writes to `/status` change only `status`, and `metadata.generation`
//! starts at 1 and moves only when `spec` changes. `list` returns the collection's resource
//! version and `watch` replays changes after a given one (older than the replay log: an
//! `ERROR` event with 410 Expired, as kube-apiserver's watch cache answers), then follows.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::auth::uuid_like;
use super::objects::rfc3339;
use super::status::{ApiError, ApiResult, json_response};
use super::watch::{error_line, event_line};

/// A kind the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredKind {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) resource: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) namespaced: bool,
    pub(crate) status_subresource: bool,
}

impl StoredKind {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The discovery entry.
    pub(crate) fn api_resource(&self) -> Value {
        json!({
            "name": self.resource,
            "singularName": self.kind.to_ascii_lowercase(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        })
    }
}

/// Every kind the store holds.
pub(crate) const STORED: [StoredKind; 5] = [
    StoredKind {
        group: "metrics-gateway.io",
        version: "v1alpha1",
        resource: "metricsplugins",
        kind: "MetricsPlugin",
        namespaced: false,
        status_subresource: true,
    },
    StoredKind {
        group: "coordination.k8s.io",
        version: "v1",
        resource: "leases",
        kind: "Lease",
        namespaced: true,
        status_subresource: false,
    },
    StoredKind {
        group: "events.k8s.io",
        version: "v1",
        resource: "events",
        kind: "Event",
        namespaced: true,
        status_subresource: false,
    },
    StoredKind {
        group: "",
        version: "v1",
        resource: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        status_subresource: false,
    },
    StoredKind {
        group: "",
        version: "v1",
        resource: "secrets",
        kind: "Secret",
        namespaced: true,
        status_subresource: false,
    },
];

/// The stored kind of `group`/`resource`.
pub(crate) fn stored_kind(group: &str, version: &str, resource: &str) -> Option<StoredKind> {
    STORED
        .iter()
        .find(|k| k.group == group && k.version == version && k.resource == resource)
        .copied()
}

/// The stored kind of `apiVersion` and `kind`.
pub(crate) fn stored_kind_of(api_version: &str, kind: &str) -> Option<StoredKind> {
    STORED
        .iter()
        .find(|k| k.api_version() == api_version && k.kind == kind)
        .copied()
}

type Key = (&'static str, String, String);

#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    resource: &'static str,
    namespace: String,
    type_: &'static str,
    object: Value,
}

#[derive(Debug, Default)]
struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    log: VecDeque<Change>,
    /// Changes at or below this version have left the log.
    floor: u64,
}

/// The store. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct ObjectStore {
    state: Mutex<State>,
    changes: broadcast::Sender<Change>,
    capacity: usize,
}

/// Where an object or collection is.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) kind: StoredKind,
    /// Empty for cluster-scoped kinds (or all namespaces).
    pub(crate) namespace: String,
    /// Empty for the collection.
    pub(crate) name: String,
    /// Addresses the status subresource.
    pub(crate) status: bool,
}

impl Target {
    fn key(&self) -> Key {
        (
            self.kind.resource,
            self.namespace.clone(),
            self.name.clone(),
        )
    }
}

/// RFC 7386: `patch` merged into `target`.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().expect("an object");
    for (key, value) in fields {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

impl ObjectStore {
    /// An empty store whose watches can resume from the last `capacity` changes.
    pub(crate) fn new(capacity: usize) -> ObjectStore {
        ObjectStore {
            state: Mutex::new(State::default()),
            changes: broadcast::channel(1024).0,
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the object exists.
    pub(crate) fn contains(&self, target: &Target) -> bool {
        self.lock().objects.contains_key(&target.key())
    }

    fn not_found(target: &Target) -> ApiError {
        ApiError::not_found(target.kind.group, target.kind.resource, &target.name)
    }

    fn record(&self, state: &mut State, target: &Target, type_: &'static str, object: Value) {
        let change = Change {
            rv: state.rv,
            resource: target.kind.resource,
            namespace: target.namespace.clone(),
            type_,
            object,
        };
        state.log.push_back(change.clone());
        while state.log.len() > self.capacity {
            if let Some(old) = state.log.pop_front() {
                state.floor = old.rv;
            }
        }
        // No receiver is fine: nobody watches.
        let _ = self.changes.send(change);
    }

    /// `GET` of one object.
    pub(crate) fn get(&self, target: &Target) -> ApiResult<Value> {
        self.lock()
            .objects
            .get(&target.key())
            .cloned()
            .ok_or_else(|| Self::not_found(target))
    }

    /// `GET` of the collection (in `target.namespace`, or everywhere when empty).
    pub(crate) fn list(&self, target: &Target) -> Value {
        let state = self.lock();
        let items: Vec<Value> = state
            .objects
            .iter()
            .filter(|((r, ns, _), _)| {
                *r == target.kind.resource
                    && (target.namespace.is_empty() || *ns == target.namespace)
            })
            .map(|(_, o)| o.clone())
            .collect();
        json!({
            "apiVersion": target.kind.api_version(),
            "kind": format!("{}List", target.kind.kind),
            "metadata": { "resourceVersion": state.rv.to_string() },
            "items": items,
        })
    }

    /// `POST` to the collection.
    pub(crate) fn create(
        &self,
        target: &Target,
        mut object: Value,
        now_ms: i64,
    ) -> ApiResult<Value> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            return Err(ApiError::invalid(
                target.kind.kind,
                "",
                "metadata.name: Required value: name is required",
            ));
        }
        let target = Target {
            name: name.clone(),
            ..target.clone()
        };
        let mut state = self.lock();
        if state.objects.contains_key(&target.key()) {
            return Err(ApiError::already_exists(
                target.kind.group,
                target.kind.resource,
                &name,
            ));
        }
        state.rv += 1;
        object["apiVersion"] = json!(target.kind.api_version());
        object["kind"] = json!(target.kind.kind);
        let meta = &mut object["metadata"];
        if target.kind.namespaced {
            meta["namespace"] = json!(target.namespace);
        }
        meta["uid"] = json!(uuid_like(&format!(
            "{}/{}/{name}/{}",
            target.kind.resource, target.namespace, state.rv
        )));
        meta["resourceVersion"] = json!(state.rv.to_string());
        meta["creationTimestamp"] = json!(rfc3339(now_ms));
        if target.kind.status_subresource {
            meta["generation"] = json!(1);
            if let Some(o) = object.as_object_mut() {
                o.remove("status");
            }
        }
        state.objects.insert(target.key(), object.clone());
        self.record(&mut state, &target, "ADDED", object.clone());
        Ok(object)
    }

    /// `PUT` (`replace`) or `PATCH` (`patch`, a JSON merge patch) of an object or its status.
    pub(crate) fn write(&self, target: &Target, body: Value, replace: bool) -> ApiResult<Value> {
        let mut state = self.lock();
        let current = state
            .objects
            .get(&target.key())
            .cloned()
            .ok_or_else(|| Self::not_found(target))?;
        let current_rv = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match body["metadata"]["resourceVersion"].as_str() {
            Some(rv) if rv != current_rv => {
                return Err(ApiError::conflict(
                    target.kind.group,
                    target.kind.resource,
                    &target.name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            None if replace => {
                return Err(ApiError::invalid(
                    target.kind.kind,
                    &target.name,
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                ));
            }
            _ => {}
        }
        let mut proposed = if replace {
            body
        } else {
            let mut merged = current.clone();
            merge_patch(&mut merged, &body);
            merged
        };
        let mut next = current.clone();
        if target.kind.status_subresource && target.status {
            next["status"] = proposed.get("status").cloned().unwrap_or(Value::Null);
        } else if target.kind.status_subresource {
            // The object's endpoint keeps the stored status and the server-owned metadata.
            if let Some(o) = proposed.as_object_mut() {
                o.remove("status");
            }
            for field in ["labels", "annotations"] {
                next["metadata"][field] = proposed["metadata"][field].clone();
            }
            if proposed.get("spec") != current.get("spec") {
                let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
                next["metadata"]["generation"] = json!(generation + 1);
                next["spec"] = proposed.get("spec").cloned().unwrap_or(Value::Null);
            }
        } else {
            let meta = current["metadata"].clone();
            next = proposed;
            for field in ["uid", "creationTimestamp", "namespace", "name"] {
                next["metadata"][field] = meta[field].clone();
            }
            next["apiVersion"] = current["apiVersion"].clone();
            next["kind"] = current["kind"].clone();
        }
        if let Some(o) = next.as_object_mut() {
            o.retain(|_, v| !v.is_null());
        }
        if next == current {
            return Ok(current);
        }
        state.rv += 1;
        next["metadata"]["resourceVersion"] = json!(state.rv.to_string());
        state.objects.insert(target.key(), next.clone());
        self.record(&mut state, target, "MODIFIED", next.clone());
        Ok(next)
    }

    /// `DELETE` of an object; returns it as it was.
    pub(crate) fn delete(&self, target: &Target) -> ApiResult<Value> {
        let mut state = self.lock();
        let mut object = state
            .objects
            .remove(&target.key())
            .ok_or_else(|| Self::not_found(target))?;
        state.rv += 1;
        object["metadata"]["resourceVersion"] = json!(state.rv.to_string());
        self.record(&mut state, target, "DELETED", object.clone());
        Ok(object)
    }

    /// `GET ?watch=true`: the changes after `from` (`None` or 0: every object as `ADDED`
    /// first), then every new one, as a stream of JSON lines.
    pub(crate) fn watch(&self, target: &Target, from: Option<u64>) -> Response {
        let state = self.lock();
        let receiver = self.changes.subscribe();
        let matches = {
            let (resource, namespace) = (target.kind.resource, target.namespace.clone());
            move |c: &Change| {
                c.resource == resource && (namespace.is_empty() || c.namespace == namespace)
            }
        };
        let mut backlog: Vec<Bytes> = Vec::new();
        match from.filter(|rv| *rv > 0) {
            Some(rv) if rv < state.floor => {
                let gone = ApiError::expired(format!(
                    "too old resource version: {rv} ({})",
                    state.floor + 1
                ));
                backlog.push(error_line(&gone.status_json()));
            }
            Some(rv) => backlog.extend(
                state
                    .log
                    .iter()
                    .filter(|c| c.rv > rv && matches(c))
                    .map(|c| {
                        event_line(c.type_, &serde_json::to_vec(&c.object).unwrap_or_default())
                    }),
            ),
            None => backlog.extend(
                state
                    .objects
                    .iter()
                    .filter(|((r, ns, _), _)| {
                        *r == target.kind.resource
                            && (target.namespace.is_empty() || *ns == target.namespace)
                    })
                    .map(|(_, o)| event_line("ADDED", &serde_json::to_vec(o).unwrap_or_default())),
            ),
        }
        let last = state.rv;
        drop(state);
        let live = futures::stream::unfold((receiver, last), move |(mut receiver, last)| {
            let matches = matches.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(c) if c.rv > last && matches(&c) => {
                            let line = event_line(
                                c.type_,
                                &serde_json::to_vec(&c.object).unwrap_or_default(),
                            );
                            return Some((line, (receiver, c.rv)));
                        }
                        Ok(_) => continue,
                        // A lagging watcher is closed; the client watches again from its version.
                        Err(_) => return None,
                    }
                }
            }
        });
        let body = futures::stream::iter(backlog)
            .chain(live)
            .map(Ok::<Bytes, Infallible>);
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(body))
            .unwrap_or_default()
    }
}

/// Serves a request for a stored kind: `verb` as RBAC names it.
pub(crate) fn handle(
    store: &Arc<ObjectStore>,
    target: &Target,
    verb: &str,
    query: &str,
    body: Option<Value>,
    now_ms: i64,
) -> ApiResult {
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match verb {
        "get" => ok(store.get(target)?),
        "list" => ok(store.list(target)),
        "watch" => {
            let from = serde_urlencoded::from_str::<BTreeMap<String, String>>(query)
                .ok()
                .and_then(|q| q.get("resourceVersion").and_then(|v| v.parse().ok()));
            Ok(store.watch(target, from))
        }
        "create" => Ok(json_response(
            StatusCode::CREATED,
            &store.create(target, body.unwrap_or_default(), now_ms)?,
        )),
        "update" => ok(store.write(target, body.unwrap_or_default(), true)?),
        "patch" => ok(store.write(target, body.unwrap_or_default(), false)?),
        "delete" => ok(store.delete(target)?),
        _ => Err(ApiError::method_not_allowed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin_target(name: &str, status: bool) -> Target {
        Target {
            kind: STORED[0],
            namespace: String::new(),
            name: name.into(),
            status,
        }
    }

    #[test]
    fn generation_moves_with_spec_only_and_status_goes_through_its_subresource() {
        let store = ObjectStore::new(16);
        let created = store
            .create(
                &plugin_target("", false),
                json!({"metadata": {"name": "p"}, "spec": {"order": 1}, "status": {"x": 1}}),
                0,
            )
            .unwrap();
        assert_eq!(created["metadata"]["generation"], 1);
        assert!(created.get("status").is_none(), "create ignores status");
        let t = plugin_target("p", false);
        let rv = created["metadata"]["resourceVersion"].clone();
        // Status through the object's endpoint is ignored; spec bumps the generation.
        let patched = store
            .write(&t, json!({"spec": {"order": 2}, "status": {"x": 2}}), false)
            .unwrap();
        assert_eq!(patched["metadata"]["generation"], 2);
        assert!(patched.get("status").is_none());
        // Status through /status changes only the status.
        let status = store
            .write(
                &plugin_target("p", true),
                json!({"spec": {"order": 9}, "status": {"x": 3}}),
                false,
            )
            .unwrap();
        assert_eq!(status["metadata"]["generation"], 2);
        assert_eq!(status["spec"]["order"], 2);
        assert_eq!(status["status"]["x"], 3);
        // A stale resourceVersion conflicts; none on a PUT is invalid.
        let stale = json!({"metadata": {"name": "p", "resourceVersion": rv}, "spec": {}});
        assert_eq!(store.write(&t, stale, true).unwrap_err().code(), 409);
        assert_eq!(
            store
                .write(&t, json!({"spec": {}}), true)
                .unwrap_err()
                .code(),
            422
        );
        assert_eq!(
            store
                .create(
                    &plugin_target("", false),
                    json!({"metadata": {"name": "p"}}),
                    0
                )
                .unwrap_err()
                .code(),
            409
        );
    }

    #[test]
    fn merge_patch_removes_nulls_and_replaces_arrays() {
        let mut v = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        merge_patch(&mut v, &json!({"a": {"b": null, "c": [3]}, "e": "x"}));
        assert_eq!(v, json!({"a": {"c": [3]}, "d": 1, "e": "x"}));
    }
}
