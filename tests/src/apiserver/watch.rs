//! The watch cache: cluster changes turned into watch events, kept in a bounded replay log so a
//! watch can resume from a recent resource version, and streamed to watchers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::objects::{
    Kind, META_API_VERSION, deployment_attrs, deployment_json, deployment_key, namespace_attrs,
    namespace_json, namespace_key, node_attrs, node_json, node_key, partial_metadata, pod_attrs,
    pod_json_in, pod_key, replicaset_attrs, replicaset_json, replicaset_key,
};
use super::selectors::{Attrs, Filter};
use super::status::ApiError;
use crate::cluster::{ClusterEvent, ClusterState, Millis, SimCluster, SimNode, SimPod};

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    /// Created (or first seen).
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch event's `type`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as every watcher of its kind may see it.
#[derive(Debug)]
pub(crate) struct LogEntry {
    /// Resource version the change created.
    pub(crate) rv: u64,
    /// Kind of the changed object.
    pub(crate) kind: Kind,
    /// What happened.
    pub(crate) event: EventType,
    /// The object's attributes after the change (before it, for deletions).
    pub(crate) attrs: Attrs,
    /// The attributes before a modification, so a selector watch can see an object leave.
    pub(crate) old: Option<Attrs>,
    /// The object, serialized, with `metadata.resourceVersion` = `rv`.
    pub(crate) object: Bytes,
}

struct CacheState {
    entries: VecDeque<Arc<LogEntry>>,
    /// Every change after this version is in `entries`.
    floor: u64,
    /// The last change applied.
    last_rv: u64,
    /// Attributes of every object watchers have been told about, by version key.
    known: HashMap<String, Attrs>,
    live: broadcast::Sender<Arc<LogEntry>>,
}

/// The replay log and the live fan-out of changes.
pub(crate) struct WatchCache {
    state: Mutex<CacheState>,
    capacity: usize,
}

/// Where a new watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchStart {
    /// After this resource version (replaying the log from there).
    After(u64),
    /// At the current state, which the caller sends as synthetic `ADDED` events.
    Now,
}

/// A registered watch: what to replay, where live events come from, and what to skip.
pub(crate) struct Subscription {
    /// Logged changes after the start version.
    pub(crate) replay: Vec<Arc<LogEntry>>,
    /// Changes from now on.
    pub(crate) live: broadcast::Receiver<Arc<LogEntry>>,
}

const LIVE_CAPACITY: usize = 16_384;

impl WatchCache {
    /// An empty cache whose history starts at `cluster`'s current version. Call
    /// [`WatchCache::run`] with a receiver subscribed *before* this was built.
    pub(crate) fn new(cluster: &SimCluster, capacity: usize) -> WatchCache {
        WatchCache {
            state: Mutex::new(Self::fresh_state(cluster)),
            capacity: capacity.max(1),
        }
    }

    fn fresh_state(cluster: &SimCluster) -> CacheState {
        let state = cluster.read();
        let mut known = HashMap::with_capacity(state.nodes.len() + state.pods.len());
        for node in state.nodes.values() {
            known.insert(node_key(&node.name), node_attrs(node));
        }
        for pod in state.pods.values() {
            known.insert(pod_key(&pod.namespace, &pod.name), pod_attrs(pod));
        }
        for ns in state.namespaces.values() {
            known.insert(namespace_key(&ns.name), namespace_attrs(ns));
        }
        for d in state.deployments.values() {
            known.insert(deployment_key(&d.namespace, &d.name), deployment_attrs(d));
        }
        for rs in state.replicasets.values() {
            known.insert(
                replicaset_key(&rs.namespace, &rs.name),
                replicaset_attrs(rs),
            );
        }
        CacheState {
            entries: VecDeque::new(),
            floor: state.resource_version,
            last_rv: state.resource_version,
            known,
            live: broadcast::channel(LIVE_CAPACITY).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The oldest version a watch can resume from.
    pub(crate) fn floor(&self) -> u64 {
        self.lock().floor
    }

    /// Applies cluster changes until the cluster goes away.
    pub(crate) async fn run(
        self: Arc<Self>,
        cluster: Arc<SimCluster>,
        mut rx: broadcast::Receiver<(u64, ClusterEvent)>,
    ) {
        loop {
            let first = match rx.recv().await {
                Ok(change) => change,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.reset(&cluster, missed);
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            // The model announces each change under its write lock, so with the read lock held
            // the channel holds exactly the changes not yet seen that `state` reflects. Render
            // them together: an object changed and then deleted is rendered from its deletion.
            // The cache lock is never taken while the cluster lock is held here, so watch
            // registration (cache, then cluster) can't deadlock with this.
            let rendered = {
                let state = cluster.read();
                let mut batch = vec![first];
                let mut lagged = None;
                loop {
                    match rx.try_recv() {
                        Ok(change) => batch.push(change),
                        Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                            lagged = Some(missed);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                match lagged {
                    Some(missed) => Err(missed),
                    None => Ok(render_batch(&state, &batch, cluster.clock.now_ms())),
                }
            };
            match rendered {
                Ok(rendered) => self.record(rendered),
                Err(missed) => self.reset(&cluster, missed),
            }
        }
    }

    fn reset(&self, cluster: &SimCluster, missed: u64) {
        tracing::warn!(
            missed,
            "watch cache fell behind the cluster; resetting its history"
        );
        // Dropping the old sender ends every watch; clients resume, get 410, and relist.
        *self.lock() = Self::fresh_state(cluster);
    }

    fn record(&self, batch: Vec<(u64, Option<Rendered>)>) {
        let mut cache = self.lock();
        for (rv, rendered) in batch {
            if rv <= cache.last_rv {
                continue;
            }
            cache.last_rv = rv;
            let Some(Rendered {
                kind,
                key,
                attrs,
                object,
                deleted,
            }) = rendered
            else {
                continue;
            };
            let (event, old) = if deleted {
                match cache.known.remove(&key) {
                    Some(_) => (EventType::Deleted, None),
                    None => continue,
                }
            } else {
                match cache.known.insert(key, attrs.clone()) {
                    None => (EventType::Added, None),
                    Some(old) => (EventType::Modified, Some(old)),
                }
            };
            let entry = Arc::new(LogEntry {
                rv,
                kind,
                event,
                attrs,
                old,
                object,
            });
            cache.entries.push_back(entry.clone());
            while cache.entries.len() > self.capacity {
                if let Some(evicted) = cache.entries.pop_front() {
                    cache.floor = evicted.rv;
                }
            }
            let _ = cache.live.send(entry);
        }
    }

    /// Registers a watch. `at_now` runs under the cache lock for [`WatchStart::Now`] watches, so
    /// the state it renders and the live events that follow neither overlap nor leave a gap; it
    /// returns the resource version it rendered at.
    pub(crate) fn subscribe(
        &self,
        start: WatchStart,
        at_now: impl FnOnce() -> u64,
    ) -> Result<(Subscription, u64), ApiError> {
        let cache = self.lock();
        match start {
            WatchStart::After(rv) if rv < cache.floor => Err(ApiError::expired(format!(
                "too old resource version: {rv} ({})",
                cache.floor
            ))),
            WatchStart::After(rv) => {
                let replay = cache
                    .entries
                    .iter()
                    .filter(|e| e.rv > rv)
                    .cloned()
                    .collect();
                Ok((
                    Subscription {
                        replay,
                        live: cache.live.subscribe(),
                    },
                    rv,
                ))
            }
            WatchStart::Now => {
                let live = cache.live.subscribe();
                let rv = at_now();
                Ok((
                    Subscription {
                        replay: Vec::new(),
                        live,
                    },
                    rv,
                ))
            }
        }
    }
}

/// A change rendered for the log.
struct Rendered {
    kind: Kind,
    key: String,
    attrs: Attrs,
    object: Bytes,
    deleted: bool,
}

fn rendered(kind: Kind, key: String, attrs: Attrs, object: &Value, deleted: bool) -> Rendered {
    Rendered {
        kind,
        key,
        attrs,
        object: Bytes::from(serde_json::to_vec(object).unwrap_or_default()),
        deleted,
    }
}

/// Renders a batch of changes against the state that reflects all of them. An upsert whose
/// object is gone by now is rendered from the deletion later in the batch.
fn render_batch(
    state: &ClusterState,
    batch: &[(u64, ClusterEvent)],
    now_ms: Millis,
) -> Vec<(u64, Option<Rendered>)> {
    let deleted_node = |from: usize, name: &str| {
        batch[from..].iter().find_map(|(_, e)| match e {
            ClusterEvent::NodeDeleted(node) if node.name == name => Some(node),
            _ => None,
        })
    };
    let deleted_pod = |from: usize, ns: &str, name: &str| {
        batch[from..].iter().find_map(|(_, e)| match e {
            ClusterEvent::PodDeleted(pod) if pod.namespace == ns && pod.name == name => Some(pod),
            _ => None,
        })
    };
    let node = |node: &SimNode, rv: u64, deleted: bool| {
        rendered(
            Kind::Node,
            node_key(&node.name),
            node_attrs(node),
            &node_json(node, rv, now_ms),
            deleted,
        )
    };
    let pod = |pod: &SimPod, rv: u64, deleted: bool| {
        let object = pod_json_in(state, pod, Some(rv));
        rendered(
            Kind::Pod,
            pod_key(&pod.namespace, &pod.name),
            pod_attrs(pod),
            &object,
            deleted,
        )
    };
    batch
        .iter()
        .enumerate()
        .map(|(i, (rv, event))| {
            let rv = *rv;
            let out = match event {
                ClusterEvent::NodeUpserted(name) => state
                    .nodes
                    .get(name)
                    .or_else(|| deleted_node(i + 1, name))
                    .map(|n| node(n, rv, false)),
                ClusterEvent::NodeDeleted(n) => Some(node(n, rv, true)),
                ClusterEvent::PodUpserted(ns, name) => state
                    .pods
                    .get(&(ns.clone(), name.clone()))
                    .or_else(|| deleted_pod(i + 1, ns, name))
                    .map(|p| pod(p, rv, false)),
                ClusterEvent::PodDeleted(p) => Some(pod(p, rv, true)),
                ClusterEvent::NamespaceUpserted(name) => state.namespaces.get(name).map(|n| {
                    rendered(
                        Kind::Namespace,
                        namespace_key(name),
                        namespace_attrs(n),
                        &namespace_json(n, rv),
                        false,
                    )
                }),
                ClusterEvent::DeploymentUpserted(ns, name) => {
                    state.deployments.get(&(ns.clone(), name.clone())).map(|d| {
                        rendered(
                            Kind::Deployment,
                            deployment_key(ns, name),
                            deployment_attrs(d),
                            &deployment_json(state, d, rv),
                            false,
                        )
                    })
                }
                ClusterEvent::ReplicaSetUpserted(ns, name) => state
                    .replicasets
                    .get(&(ns.clone(), name.clone()))
                    .map(|rs| {
                        rendered(
                            Kind::ReplicaSet,
                            replicaset_key(ns, name),
                            replicaset_attrs(rs),
                            &replicaset_json(state, rs, rv),
                            false,
                        )
                    }),
            };
            (rv, out)
        })
        .collect()
}

/// One watch request's parameters.
pub(crate) struct WatchParams {
    /// Which kind.
    pub(crate) kind: Kind,
    /// Objects are sent as `PartialObjectMetadata`.
    pub(crate) metadata_only: bool,
    /// Which objects.
    pub(crate) filter: Filter,
    /// Whether `BOOKMARK` events were asked for.
    pub(crate) bookmarks: bool,
    /// How often to send one.
    pub(crate) bookmark_interval: Duration,
    /// When the server ends the watch.
    pub(crate) deadline: Instant,
}

/// A `{"type":…,"object":…}` line.
pub(crate) fn event_line(kind: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// A `BOOKMARK` line at `rv` for a watch of `kind` (of its metadata only, if
/// `metadata_only`); `initial_end` marks the end of a streaming list's initial events.
pub(crate) fn bookmark_line(kind: Kind, metadata_only: bool, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({ "resourceVersion": rv.to_string(), "creationTimestamp": null });
    if initial_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    let (kind, api_version) = if metadata_only {
        ("PartialObjectMetadata", META_API_VERSION)
    } else {
        (kind.kind(), kind.api_version())
    };
    let object = json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata });
    event_line("BOOKMARK", &serde_json::to_vec(&object).unwrap_or_default())
}

/// An `ERROR` line carrying `status`.
pub(crate) fn error_line(status: &Value) -> Bytes {
    event_line("ERROR", &serde_json::to_vec(status).unwrap_or_default())
}

/// What a watcher with `filter` sees of `entry`, if anything.
fn visible(entry: &LogEntry, filter: &Filter) -> Option<EventType> {
    seen_as(entry.event, &entry.attrs, entry.old.as_ref(), filter)
}

/// What a watcher with `filter` sees of a change (`attrs` after it, `old` before a
/// modification): a modification into the selection is `ADDED`, out of it `DELETED`.
pub(crate) fn seen_as(
    event: EventType,
    attrs: &Attrs,
    old: Option<&Attrs>,
    filter: &Filter,
) -> Option<EventType> {
    let now = filter.matches(attrs);
    match event {
        EventType::Added | EventType::Deleted => now.then_some(event),
        EventType::Modified => {
            let before = old.is_none_or(|old| filter.matches(old));
            match (before, now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            }
        }
    }
}

/// Streams a watch into `tx`: `initial` lines first, then logged and live changes after `rv`,
/// bookmarks if asked, until the deadline, the client leaving, or the watcher falling behind.
pub(crate) async fn stream(
    params: WatchParams,
    sub: Subscription,
    mut rv: u64,
    initial: Vec<Bytes>,
    tx: mpsc::Sender<Bytes>,
) {
    let Subscription { replay, mut live } = sub;
    for line in initial {
        if tx.send(line).await.is_err() {
            return;
        }
    }
    let deliver = async |entry: &LogEntry, rv: &mut u64| -> bool {
        if entry.rv <= *rv {
            return true;
        }
        *rv = entry.rv;
        if entry.kind != params.kind {
            return true;
        }
        match visible(entry, &params.filter) {
            Some(event) if params.metadata_only => {
                let object: Value = serde_json::from_slice(&entry.object).unwrap_or_default();
                let partial = serde_json::to_vec(&partial_metadata(&object)).unwrap_or_default();
                tx.send(event_line(event.as_str(), &partial)).await.is_ok()
            }
            Some(event) => tx
                .send(event_line(event.as_str(), &entry.object))
                .await
                .is_ok(),
            None => true,
        }
    };
    for entry in replay {
        if !deliver(&entry, &mut rv).await {
            return;
        }
    }
    let mut ticker = tokio::time::interval_at(
        Instant::now() + params.bookmark_interval,
        params.bookmark_interval,
    );
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(entry) => {
                    if !deliver(&entry, &mut rv).await {
                        return;
                    }
                }
                // Fell behind, or the cache was reset: end the watch; the client resumes.
                Err(_) => return,
            },
            _ = ticker.tick(), if params.bookmarks => {
                if tx.send(bookmark_line(params.kind, params.metadata_only, rv, false)).await.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(params.deadline) => {
                if params.bookmarks {
                    let _ = tx.send(bookmark_line(params.kind, params.metadata_only, rv, false)).await;
                }
                return;
            }
            () = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::selectors::LabelSelector;
    use std::collections::BTreeMap;

    fn attrs(app: &str) -> Attrs {
        Attrs {
            name: "p".into(),
            labels: BTreeMap::from([("app".into(), app.into())]),
            ..Attrs::default()
        }
    }

    #[test]
    fn selector_watch_sees_objects_enter_and_leave() {
        let filter = Filter {
            labels: LabelSelector::parse("app=web").unwrap(),
            ..Filter::default()
        };
        let entry = |old: &str, new: &str| LogEntry {
            rv: 2,
            kind: Kind::Pod,
            event: EventType::Modified,
            attrs: attrs(new),
            old: Some(attrs(old)),
            object: Bytes::new(),
        };
        assert_eq!(
            visible(&entry("web", "web"), &filter),
            Some(EventType::Modified)
        );
        assert_eq!(
            visible(&entry("db", "web"), &filter),
            Some(EventType::Added)
        );
        assert_eq!(
            visible(&entry("web", "db"), &filter),
            Some(EventType::Deleted)
        );
        assert_eq!(visible(&entry("db", "db"), &filter), None);
    }

    #[test]
    fn bookmark_marks_initial_events_end() {
        let line = bookmark_line(Kind::Pod, false, 7, true);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["type"], "BOOKMARK");
        assert_eq!(v["object"]["metadata"]["resourceVersion"], "7");
        assert_eq!(
            v["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
    }
}
