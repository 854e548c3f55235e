//! `get`, `list` (selectors, pagination, resource versions) and `watch` of the core/v1
//! resources.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::{StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::objects::{
    AUTH_CONFIGMAP, AuthBundles, Kind, META_API_VERSION, auth_configmap_attrs, auth_configmap_json,
    deployment_attrs, deployment_json, deployment_key, namespace_attrs, namespace_json,
    namespace_key, node_attrs, node_json, node_key, object_rv, partial_metadata, pod_attrs,
    pod_json_in, replicaset_attrs, replicaset_json, replicaset_key,
};
use super::selectors::{Attrs, FieldSelector, Filter, LabelSelector};
use super::status::{ApiError, ApiResult, json_response};
use super::tables::{IncludeObject, table};
use super::watch::{
    WatchCache, WatchParams, WatchStart, bookmark_line, error_line, event_line, stream,
};
use crate::cluster::{
    ClusterState, Millis, SimCluster, SimDeployment, SimNamespace, SimNode, SimPod, SimReplicaSet,
};

/// Query parameters of get / list / watch requests.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ListQuery {
    label_selector: Option<String>,
    field_selector: Option<String>,
    limit: Option<u64>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
    resource_version: Option<String>,
    resource_version_match: Option<String>,
    allow_watch_bookmarks: Option<String>,
    timeout_seconds: Option<u64>,
    send_initial_events: Option<String>,
    include_object: Option<String>,
}

fn truthy(v: &Option<String>) -> bool {
    v.as_deref()
        .is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | ""))
}

impl ListQuery {
    /// Parses a raw query string.
    pub(crate) fn parse(query: &str) -> ApiResult<ListQuery> {
        serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
    }

    /// What Table rows carry (`includeObject`).
    pub(crate) fn include_object(&self) -> IncludeObject {
        IncludeObject::parse(self.include_object.as_deref())
    }

    fn filter(&self, kind: Kind, namespace: Option<&str>) -> ApiResult<Filter> {
        let labels = LabelSelector::parse(self.label_selector.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(
            self.field_selector.as_deref().unwrap_or(""),
            kind.selectable_fields(),
        )
        .map_err(ApiError::bad_request)?;
        Ok(Filter {
            namespace: namespace.map(str::to_string),
            labels,
            fields,
        })
    }

    fn parsed_rv(&self) -> ApiResult<Option<u64>> {
        match self.resource_version.as_deref() {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "resourceVersion: Invalid value: \"{v}\": must be an integer"
                ))
            }),
        }
    }
}

/// Whether a raw query asks to watch (`watch=true`, `watch=1`, …; the first value counts).
pub(crate) fn is_watch(query: &str) -> bool {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let first = pairs
        .into_iter()
        .find(|(k, _)| k == "watch")
        .map(|(_, v)| v);
    truthy(&first)
}

/// Whether `Accept` asks for `PartialObjectMetadata` (or its list) instead of whole objects, as
/// metadata-only clients (kube-rs `Api<PartialObjectMeta<K>>`, client-go's metadata informers) do.
pub(crate) fn wants_metadata_only(headers: &http::HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accept.split(',').any(|range| {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        params.contains(&"g=meta.k8s.io")
            && params.contains(&"v=v1")
            && (params.contains(&"as=PartialObjectMetadata")
                || params.contains(&"as=PartialObjectMetadataList"))
    })
}

/// What rendering needs besides the cluster state.
pub(crate) struct RenderCtx<'a> {
    /// The Table version to answer with instead of objects, and what rows include.
    pub(crate) table: Option<(&'static str, IncludeObject)>,
    /// Answer with `PartialObjectMetadata` instead of objects.
    pub(crate) metadata_only: bool,
    /// Now, for node heartbeats.
    pub(crate) now_ms: Millis,
    /// When the fake apiserver started (creation time of the ConfigMap).
    pub(crate) created_ms: Millis,
    /// The CA bundles the authentication ConfigMap publishes.
    pub(crate) bundles: &'a AuthBundles,
}

/// One servable object, not yet rendered.
enum ObjRef<'a> {
    Node(&'a SimNode),
    Pod(&'a SimPod),
    Namespace(&'a SimNamespace),
    Deployment(&'a SimDeployment),
    ReplicaSet(&'a SimReplicaSet),
    AuthConfigMap,
}

impl ObjRef<'_> {
    /// Storage order key (`namespace/name` or `name`), which continue tokens point into.
    fn key(&self) -> String {
        match self {
            ObjRef::Node(n) => n.name.clone(),
            ObjRef::Pod(p) => format!("{}/{}", p.namespace, p.name),
            ObjRef::Namespace(n) => n.name.clone(),
            ObjRef::Deployment(d) => format!("{}/{}", d.namespace, d.name),
            ObjRef::ReplicaSet(r) => format!("{}/{}", r.namespace, r.name),
            ObjRef::AuthConfigMap => format!("kube-system/{AUTH_CONFIGMAP}"),
        }
    }

    fn attrs(&self) -> Attrs {
        match self {
            ObjRef::Node(n) => node_attrs(n),
            ObjRef::Pod(p) => pod_attrs(p),
            ObjRef::Namespace(n) => namespace_attrs(n),
            ObjRef::Deployment(d) => deployment_attrs(d),
            ObjRef::ReplicaSet(r) => replicaset_attrs(r),
            ObjRef::AuthConfigMap => auth_configmap_attrs(),
        }
    }

    fn render(&self, state: &ClusterState, ctx: &RenderCtx<'_>) -> Value {
        let object = self.render_object(state, ctx);
        if ctx.metadata_only && ctx.table.is_none() {
            partial_metadata(&object)
        } else {
            object
        }
    }

    fn render_object(&self, state: &ClusterState, ctx: &RenderCtx<'_>) -> Value {
        match self {
            ObjRef::Node(n) => node_json(n, object_rv(state, &node_key(&n.name)), ctx.now_ms),
            ObjRef::Pod(p) => pod_json_in(state, p, None),
            ObjRef::Namespace(n) => namespace_json(n, object_rv(state, &namespace_key(&n.name))),
            ObjRef::Deployment(d) => deployment_json(
                state,
                d,
                object_rv(state, &deployment_key(&d.namespace, &d.name)),
            ),
            ObjRef::ReplicaSet(r) => replicaset_json(
                state,
                r,
                object_rv(state, &replicaset_key(&r.namespace, &r.name)),
            ),
            ObjRef::AuthConfigMap => auth_configmap_json(ctx.bundles, ctx.created_ms),
        }
    }
}

/// The values of a map keyed by (namespace, name) in key order: those of `namespace` if set,
/// starting after the `namespace/name` key `after`.
fn namespaced<'a, T>(
    map: &'a BTreeMap<(String, String), T>,
    namespace: Option<&'a str>,
    after: Option<&str>,
) -> impl Iterator<Item = &'a T> + 'a {
    let start = match (after.and_then(|a| a.split_once('/')), namespace) {
        (Some((ns, name)), _) => Bound::Excluded((ns.to_string(), name.to_string())),
        (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
        (None, None) => Bound::Unbounded,
    };
    map.range((start, Bound::Unbounded))
        .take_while(move |((ns, _), _)| namespace.is_none_or(|want| ns == want))
        .map(|(_, v)| v)
}

/// The objects of `kind` (in `namespace`, if set) in storage order, starting after the key
/// `after` (see [`ObjRef::key`]). Namespaced objects are in (namespace, name) order.
fn objects<'a>(
    state: &'a ClusterState,
    kind: Kind,
    namespace: Option<&'a str>,
    after: Option<&str>,
) -> Box<dyn Iterator<Item = ObjRef<'a>> + 'a> {
    let from = || match after {
        Some(after) => Bound::Excluded(after.to_string()),
        None => Bound::Unbounded,
    };
    match kind {
        Kind::Node => Box::new(
            state
                .nodes
                .range((from(), Bound::Unbounded))
                .map(|(_, n)| ObjRef::Node(n)),
        ),
        Kind::Pod => Box::new(namespaced(&state.pods, namespace, after).map(ObjRef::Pod)),
        Kind::Deployment => {
            Box::new(namespaced(&state.deployments, namespace, after).map(ObjRef::Deployment))
        }
        Kind::ReplicaSet => {
            Box::new(namespaced(&state.replicasets, namespace, after).map(ObjRef::ReplicaSet))
        }
        Kind::Namespace => Box::new(
            state
                .namespaces
                .range((from(), Bound::Unbounded))
                .map(|(_, n)| ObjRef::Namespace(n)),
        ),
        Kind::ConfigMap => {
            let here = namespace.is_none_or(|ns| ns == "kube-system") && after.is_none();
            Box::new(here.then_some(ObjRef::AuthConfigMap).into_iter())
        }
    }
}

/// `GET` of one object.
pub(crate) fn get(
    state: &ClusterState,
    ctx: &RenderCtx<'_>,
    kind: Kind,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult {
    let found = match kind {
        Kind::Node => state.nodes.get(name).map(ObjRef::Node),
        Kind::Pod => state
            .pods
            .get(&namespaced_key(namespace, name))
            .map(ObjRef::Pod),
        Kind::Deployment => state
            .deployments
            .get(&namespaced_key(namespace, name))
            .map(ObjRef::Deployment),
        Kind::ReplicaSet => state
            .replicasets
            .get(&namespaced_key(namespace, name))
            .map(ObjRef::ReplicaSet),
        Kind::Namespace => state.namespaces.get(name).map(ObjRef::Namespace),
        Kind::ConfigMap => (namespace == Some("kube-system") && name == AUTH_CONFIGMAP)
            .then_some(ObjRef::AuthConfigMap),
    };
    match found {
        Some(obj) => {
            let object = obj.render(state, ctx);
            let body = match ctx.table {
                Some((version, include)) => {
                    table(version, kind, &[object], json!({}), include, ctx.now_ms)
                }
                None => object,
            };
            Ok(json_response(StatusCode::OK, &body))
        }
        None => Err(ApiError::not_found(kind.group(), kind.resource(), name)),
    }
}

fn namespaced_key(namespace: Option<&str>, name: &str) -> (String, String) {
    (namespace.unwrap_or_default().to_string(), name.to_string())
}

#[derive(Deserialize)]
struct ContinueToken {
    rv: u64,
    start: String,
}

/// An opaque continue token for a page that ended at `last_key`, for a list at `rv`.
pub(crate) fn encode_continue(rv: u64, last_key: &str) -> String {
    let token = json!({ "v": "meta.k8s.io/v1", "rv": rv, "start": format!("{last_key}\u{0}") });
    B64.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_continue(token: &str) -> ApiResult<ContinueToken> {
    let invalid = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion")
    };
    let raw = B64.decode(token).map_err(|_| invalid())?;
    let mut token: ContinueToken = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    if token.start.ends_with('\u{0}') {
        token.start.pop();
    }
    Ok(token)
}

/// `list`: selectors, `limit` / `continue` pagination and `resourceVersion` semantics.
pub(crate) fn list(
    state: &ClusterState,
    ctx: &RenderCtx<'_>,
    cache: &WatchCache,
    kind: Kind,
    namespace: Option<&str>,
    query: &ListQuery,
) -> ApiResult {
    let filter = query.filter(kind, namespace)?;
    let current = state.resource_version;
    let (list_rv, after_key) = match &query.continue_token {
        Some(token) if !token.is_empty() => {
            let token = decode_continue(token)?;
            if token.rv < cache.floor() {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a \
                     new list without the continue parameter.",
                ));
            }
            (token.rv, Some(token.start))
        }
        _ => {
            match (query.parsed_rv()?, query.resource_version_match.as_deref()) {
                (Some(rv), Some("Exact")) if rv != current => {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rv} ({current})"
                    )));
                }
                (Some(rv), _) if rv > current => {
                    return Err(ApiError::resource_version_too_large(rv, current));
                }
                _ => {}
            }
            (current, None)
        }
    };
    let limit = query.limit.filter(|l| *l > 0).map(|l| l as usize);
    let selective = !filter.has_no_selectors();
    let mut items = Vec::new();
    let mut last_key = None;
    let (mut more, mut remaining) = (false, 0u64);
    for obj in objects(state, kind, namespace, after_key.as_deref()) {
        if selective && !filter.matches(&obj.attrs()) {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            more = true;
            if selective {
                // kube-apiserver gives no remainingItemCount for selective lists.
                break;
            }
            remaining += 1;
            continue;
        }
        let mut item = obj.render(state, ctx);
        if let Some(map) = item.as_object_mut()
            && !ctx.metadata_only
        {
            // Items of a typed list carry no kind / apiVersion of their own (a
            // PartialObjectMetadataList's items do).
            map.remove("kind");
            map.remove("apiVersion");
        }
        items.push(item);
        last_key = Some(obj.key());
    }
    let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
    if more {
        metadata["continue"] = json!(encode_continue(list_rv, last_key.as_deref().unwrap_or("")));
        if !selective {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    if let Some((version, include)) = ctx.table {
        let body = table(version, kind, &items, metadata, include, ctx.now_ms);
        return Ok(json_response(StatusCode::OK, &body));
    }
    let (list_kind, api_version) = if ctx.metadata_only {
        ("PartialObjectMetadataList".to_string(), META_API_VERSION)
    } else {
        (format!("{}List", kind.kind()), kind.api_version())
    };
    let body = json!({
        "kind": list_kind,
        "apiVersion": api_version,
        "metadata": metadata,
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// How a watch is tuned by the server.
pub(crate) struct WatchSettings {
    /// Interval between `BOOKMARK` events.
    pub(crate) bookmark_interval: Duration,
}

/// `watch`: a chunked stream of JSON event lines.
pub(crate) fn watch(
    cluster: &SimCluster,
    ctx: &RenderCtx<'_>,
    cache: &WatchCache,
    kind: Kind,
    namespace: Option<&str>,
    query: &ListQuery,
    settings: &WatchSettings,
) -> ApiResult {
    let filter = query.filter(kind, namespace)?;
    let requested = query.parsed_rv()?;
    let initial_events = match &query.send_initial_events {
        Some(_) => truthy(&query.send_initial_events),
        None => requested.unwrap_or(0) == 0,
    };
    let start = match requested {
        Some(rv) if rv > 0 && !initial_events => WatchStart::After(rv),
        _ => WatchStart::Now,
    };
    let bookmarks = truthy(&query.allow_watch_bookmarks);
    // Without timeoutSeconds kube-apiserver picks 30–60 minutes.
    let timeout = Duration::from_secs(query.timeout_seconds.unwrap_or(1800));
    let mut initial = Vec::new();
    let subscribed = cache.subscribe(start, || {
        let state = cluster.read();
        if initial_events {
            for obj in objects(&state, kind, namespace, None) {
                if filter.matches(&obj.attrs()) {
                    let object = serde_json::to_vec(&obj.render(&state, ctx)).unwrap_or_default();
                    initial.push(event_line("ADDED", &object));
                }
            }
        }
        state.resource_version
    });
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    match subscribed {
        Err(gone) => {
            let _ = tx.try_send(error_line(&gone.status_json()));
        }
        Ok((sub, rv)) => {
            if initial_events && query.send_initial_events.is_some() && bookmarks {
                initial.push(bookmark_line(kind, ctx.metadata_only, rv, true));
            }
            let params = WatchParams {
                kind,
                metadata_only: ctx.metadata_only,
                filter,
                bookmarks,
                bookmark_interval: settings.bookmark_interval,
                deadline: Instant::now() + timeout,
            };
            tokio::spawn(stream(params, sub, rv, initial, tx));
        }
    }
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), rx))
    }));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(42, "ns-1/pod-a");
        let decoded = decode_continue(&token).unwrap();
        assert_eq!((decoded.rv, decoded.start.as_str()), (42, "ns-1/pod-a"));
        assert!(decode_continue("!!!").is_err());
    }
}
