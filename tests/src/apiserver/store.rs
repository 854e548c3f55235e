//! Objects the fake stores as written by clients, unlike the simulated cluster's: `MetricsPlugin`
//! custom resources (with a status subresource), `coordination.k8s.io/v1` Leases,
//! `events.k8s.io/v1` Events, core ConfigMaps, Secrets and Services put there by tests,
//! CustomResourceDefinitions, and the objects of the resources those define (`crds`). Reads
//! honour `labelSelector` and `fieldSelector` (`metadata.name`, `metadata.namespace`) and answer
//! `PartialObjectMetadata(List)` to metadata-only clients.
//!
//! It keeps kube-apiserver's write protocol: `create` refuses an existing name (409
//! AlreadyExists); `update` needs the object's current `metadata.resourceVersion` (422 without
//! one, 409 Conflict on a stale one); JSON merge patches apply to the stored object (409 when
//! they carry a stale `resourceVersion`); for a kind with a status subresource, writes to the
//! object ignore `status`, writes to `/status` change only `status`, and `metadata.generation`
//! starts at 1 and moves only when `spec` changes. `list` returns the collection's resource
//! version and `watch` replays changes after a given one (older than the replay log: an
//! `ERROR` event with 410 Expired, as kube-apiserver's watch cache answers), then follows.

use std::borrow::Cow;
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
use super::crds::{self, CRD_GROUP, CRD_RESOURCE, CustomResource};
use super::objects::{META_API_VERSION, partial_metadata, rfc3339};
use super::selectors::{Attrs, FieldSelector, Filter, LabelSelector};
use super::status::{ApiError, ApiResult, json_response};
use super::watch::{EventType, error_line, event_line, seen_as};

/// A kind the store holds: built in ([`STORED`]) or defined by a stored CRD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredKind {
    pub(crate) group: Cow<'static, str>,
    pub(crate) version: Cow<'static, str>,
    pub(crate) resource: Cow<'static, str>,
    pub(crate) kind: Cow<'static, str>,
    pub(crate) namespaced: bool,
    pub(crate) status_subresource: bool,
}

impl StoredKind {
    const fn builtin(
        group: &'static str,
        version: &'static str,
        resource: &'static str,
        kind: &'static str,
        namespaced: bool,
        status_subresource: bool,
    ) -> StoredKind {
        StoredKind {
            group: Cow::Borrowed(group),
            version: Cow::Borrowed(version),
            resource: Cow::Borrowed(resource),
            kind: Cow::Borrowed(kind),
            namespaced,
            status_subresource,
        }
    }

    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural(.group)`: what objects are keyed by, whatever the version.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn is_crd(&self) -> bool {
        self.group == CRD_GROUP && self.resource == CRD_RESOURCE
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

/// Every built-in kind the store holds.
pub(crate) const STORED: [StoredKind; 7] = [
    StoredKind::builtin(
        "metrics-gateway.io",
        "v1alpha1",
        "metricsplugins",
        "MetricsPlugin",
        false,
        true,
    ),
    StoredKind::builtin("coordination.k8s.io", "v1", "leases", "Lease", true, false),
    StoredKind::builtin("events.k8s.io", "v1", "events", "Event", true, false),
    StoredKind::builtin("", "v1", "configmaps", "ConfigMap", true, false),
    StoredKind::builtin("", "v1", "secrets", "Secret", true, false),
    StoredKind::builtin("", "v1", "services", "Service", true, false),
    StoredKind::builtin(
        CRD_GROUP,
        "v1",
        CRD_RESOURCE,
        "CustomResourceDefinition",
        false,
        true,
    ),
];

/// `(plural(.group), namespace, name)`.
type Key = (String, String, String);

#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    /// `plural(.group)`.
    resource: String,
    namespace: String,
    event: EventType,
    /// What selectors see of the object after the change (before it, for a deletion).
    attrs: Attrs,
    /// What they saw before a modification.
    old: Option<Attrs>,
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
            self.kind.qualified(),
            self.namespace.clone(),
            self.name.clone(),
        )
    }
}

/// What selectors look at of a stored object.
fn attrs_of(object: &Value) -> Attrs {
    let meta = &object["metadata"];
    Attrs {
        namespace: meta["namespace"].as_str().unwrap_or_default().to_string(),
        name: meta["name"].as_str().unwrap_or_default().to_string(),
        labels: meta["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        fields: Vec::new(),
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

    /// The resources the stored CRDs define (those naming a built-in kind's resource are
    /// left out, as kube-apiserver refuses them), by CRD name.
    pub(crate) fn custom_resources(&self) -> Vec<CustomResource> {
        let crds = STORED[6].qualified();
        self.lock()
            .objects
            .iter()
            .filter(|((r, _, _), _)| *r == crds)
            .filter_map(|(_, crd)| CustomResource::of(crd))
            .filter(|c| {
                !STORED
                    .iter()
                    .any(|k| k.group == c.group && k.resource == c.plural)
            })
            .collect()
    }

    /// The kind stored at `group`/`version`/`resource`: built in, or a served version of a
    /// stored CRD's resource.
    pub(crate) fn kind(&self, group: &str, version: &str, resource: &str) -> Option<StoredKind> {
        STORED
            .iter()
            .find(|k| k.group == group && k.version == version && k.resource == resource)
            .cloned()
            .or_else(|| {
                self.custom_resources()
                    .iter()
                    .find(|c| c.group == group && c.plural == resource)?
                    .kind_at(version)
            })
    }

    /// The kind of objects with `apiVersion` and `kind`.
    pub(crate) fn kind_of(&self, api_version: &str, kind: &str) -> Option<StoredKind> {
        STORED
            .iter()
            .find(|k| k.api_version() == api_version && k.kind == kind)
            .cloned()
            .or_else(|| {
                let (group, version) = api_version.split_once('/')?;
                self.custom_resources()
                    .iter()
                    .filter_map(|c| c.kind_at(version))
                    .find(|k| k.group == group && k.kind == kind)
            })
    }

    /// Whether the object exists.
    pub(crate) fn contains(&self, target: &Target) -> bool {
        self.lock().objects.contains_key(&target.key())
    }

    fn not_found(target: &Target) -> ApiError {
        ApiError::not_found(&target.kind.group, &target.kind.resource, &target.name)
    }

    fn record(
        &self,
        state: &mut State,
        target: &Target,
        event: EventType,
        old: Option<Attrs>,
        object: Value,
    ) {
        let change = Change {
            rv: state.rv,
            resource: target.kind.qualified(),
            namespace: target.namespace.clone(),
            event,
            attrs: attrs_of(&object),
            old,
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

    /// `GET` of the collection (in `target.namespace`, or everywhere when empty), the objects
    /// `filter` selects.
    pub(crate) fn list(&self, target: &Target, filter: &Filter) -> Value {
        let state = self.lock();
        let resource = target.kind.qualified();
        let items: Vec<Value> = state
            .objects
            .iter()
            .filter(|((r, ns, _), o)| {
                *r == resource
                    && (target.namespace.is_empty() || *ns == target.namespace)
                    && filter.matches(&attrs_of(o))
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
                &target.kind.kind,
                "",
                "metadata.name: Required value: name is required",
            ));
        }
        if target.kind.is_crd()
            && let Some(why) = crds::invalid(&object)
        {
            return Err(ApiError::invalid(&target.kind.kind, &name, &why));
        }
        let target = Target {
            name: name.clone(),
            ..target.clone()
        };
        let mut state = self.lock();
        if state.objects.contains_key(&target.key()) {
            return Err(ApiError::already_exists(
                &target.kind.group,
                &target.kind.resource,
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
        if target.kind.is_crd() {
            // The apiextensions controllers accept the names and establish it at once.
            object["status"] = crds::established_status(&object, now_ms);
        }
        state.objects.insert(target.key(), object.clone());
        self.record(&mut state, &target, EventType::Added, None, object.clone());
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
                    &target.kind.group,
                    &target.kind.resource,
                    &target.name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            None if replace => {
                return Err(ApiError::invalid(
                    &target.kind.kind,
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
        let old = Some(attrs_of(&current));
        self.record(&mut state, target, EventType::Modified, old, next.clone());
        Ok(next)
    }

    /// `DELETE` of an object; returns it as it was. Deleting a CRD deletes its objects.
    pub(crate) fn delete(&self, target: &Target) -> ApiResult<Value> {
        let mut state = self.lock();
        let mut object = state
            .objects
            .remove(&target.key())
            .ok_or_else(|| Self::not_found(target))?;
        if target.kind.is_crd()
            && let Some(custom) = CustomResource::of(&object)
            && let Some(kind) = custom.versions().next().and_then(|v| custom.kind_at(v))
        {
            let resource = kind.qualified();
            let keys: Vec<Key> = state
                .objects
                .keys()
                .filter(|(r, _, _)| *r == resource)
                .cloned()
                .collect();
            for key in keys {
                let Some(mut instance) = state.objects.remove(&key) else {
                    continue;
                };
                state.rv += 1;
                instance["metadata"]["resourceVersion"] = json!(state.rv.to_string());
                let instance_target = Target {
                    kind: kind.clone(),
                    namespace: key.1,
                    name: key.2,
                    status: false,
                };
                self.record(
                    &mut state,
                    &instance_target,
                    EventType::Deleted,
                    None,
                    instance,
                );
            }
        }
        state.rv += 1;
        object["metadata"]["resourceVersion"] = json!(state.rv.to_string());
        self.record(&mut state, target, EventType::Deleted, None, object.clone());
        Ok(object)
    }

    /// `GET ?watch=true`: the changes after `from` (`None` or 0: every object as `ADDED`
    /// first), then every new one, as `filter` sees them (an object whose labels stop matching
    /// is `DELETED`, one that starts to is `ADDED`), as a stream of JSON lines rendered by
    /// `render`.
    fn watch(
        &self,
        target: &Target,
        from: Option<u64>,
        filter: Filter,
        render: impl Fn(&Value) -> Value + Send + Sync + Clone + 'static,
    ) -> Response {
        let state = self.lock();
        let receiver = self.changes.subscribe();
        let line = {
            let (resource, namespace) = (target.kind.qualified(), target.namespace.clone());
            move |c: &Change| -> Option<Bytes> {
                if c.resource != resource || !(namespace.is_empty() || c.namespace == namespace) {
                    return None;
                }
                let event = seen_as(c.event, &c.attrs, c.old.as_ref(), &filter)?;
                let object = serde_json::to_vec(&render(&c.object)).unwrap_or_default();
                Some(event_line(event.as_str(), &object))
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
            Some(rv) => backlog.extend(state.log.iter().filter(|c| c.rv > rv).filter_map(&line)),
            None => {
                let resource = target.kind.qualified();
                backlog.extend(
                    state
                        .objects
                        .iter()
                        .filter(|((r, _, _), _)| *r == resource)
                        .filter_map(|((_, ns, _), o)| {
                            line(&Change {
                                rv: 0,
                                resource: resource.clone(),
                                namespace: ns.clone(),
                                event: EventType::Added,
                                attrs: attrs_of(o),
                                old: None,
                                object: o.clone(),
                            })
                        }),
                );
            }
        }
        let last = state.rv;
        drop(state);
        let live = futures::stream::unfold((receiver, last), move |(mut receiver, last)| {
            let line = line.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(c) if c.rv > last => match line(&c) {
                            Some(l) => return Some((l, (receiver, c.rv))),
                            None => continue,
                        },
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

/// The query parameters stored kinds honour: selectors and the watch's starting version.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct StoreQuery {
    label_selector: Option<String>,
    field_selector: Option<String>,
    resource_version: Option<String>,
}

impl StoreQuery {
    fn parse(query: &str) -> ApiResult<StoreQuery> {
        serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
    }

    /// `labelSelector` and `fieldSelector` (`metadata.name`, `metadata.namespace` only).
    fn filter(&self) -> ApiResult<Filter> {
        Ok(Filter {
            namespace: None,
            labels: LabelSelector::parse(self.label_selector.as_deref().unwrap_or_default())
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
            fields: FieldSelector::parse(self.field_selector.as_deref().unwrap_or_default(), &[])
                .map_err(ApiError::bad_request)?,
        })
    }
}

/// How objects of `kind` are sent: at the requested version (no conversion), or as
/// `PartialObjectMetadata` when `metadata_only`.
fn renderer(kind: &StoredKind, metadata_only: bool) -> impl Fn(&Value) -> Value + Clone + use<> {
    let api_version = kind.api_version();
    move |object: &Value| {
        if metadata_only {
            partial_metadata(object)
        } else {
            let mut object = object.clone();
            object["apiVersion"] = json!(api_version);
            object
        }
    }
}

/// Serves a request for a stored kind: `verb` as RBAC names it; reads answer with
/// `PartialObjectMetadata(List)` when `metadata_only` (`Accept: …;as=PartialObjectMetadata…`).
pub(crate) fn handle(
    store: &Arc<ObjectStore>,
    target: &Target,
    verb: &str,
    query: &str,
    body: Option<Value>,
    now_ms: i64,
    metadata_only: bool,
) -> ApiResult {
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    let render = renderer(&target.kind, metadata_only);
    match verb {
        "get" => ok(render(&store.get(target)?)),
        "list" => {
            let mut list = store.list(target, &StoreQuery::parse(query)?.filter()?);
            if let Some(items) = list["items"].as_array_mut() {
                for item in items {
                    *item = render(item);
                }
            }
            if metadata_only {
                list["kind"] = json!("PartialObjectMetadataList");
                list["apiVersion"] = json!(META_API_VERSION);
            }
            ok(list)
        }
        "watch" => {
            let query = StoreQuery::parse(query)?;
            let from = query
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok());
            Ok(store.watch(target, from, query.filter()?, render))
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
            kind: STORED[0].clone(),
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
