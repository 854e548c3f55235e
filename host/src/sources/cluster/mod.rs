//! Cluster state from the Kubernetes API: watches on nodes, pods, namespaces, Deployments and
//! ReplicaSets, kept as small projections, plus metadata-only watches of the other resources
//! plugins publish metrics for ([`objects`]); [`samples`] turns it into kube-state-metrics
//! series.
//!
//! A relist (after a watch error or a too-old resource version) fills a fresh map that replaces
//! the served one only when complete, so the API never sees a half-listed cluster. Readiness
//! ([`ClusterCache::synced`]) waits for nodes and pods only: the other watches feed plugins and
//! object labels, and a cluster whose RBAC forbids them still serves resource metrics.

pub mod objects;
pub mod projection;
pub mod samples;
#[cfg(test)]
mod watch_tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::task::JoinHandle;

pub use projection::{
    ConditionStatus, ContainerStatusInfo, DeploymentInfo, Interners, LabelSet, NamespaceInfo,
    NodeInfo, ObjectInfo, OwnerRef, PodInfo, PodPhase, PodStatusInfo, ReplicaSetInfo,
};

use crate::config::KubernetesConfig;
use crate::store::custom::ObjectResource;
use crate::telemetry::{KindLabels, Telemetry};

/// Failure to set up the Kubernetes client.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig could not be read or used.
    #[error("loading kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No configuration could be inferred.
    #[error("no Kubernetes configuration found (in-cluster or kubeconfig): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    /// The client could not be built.
    #[error("building Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// Builds the kube client configuration from `[kubernetes]`.
pub async fn kube_config(cfg: &KubernetesConfig) -> Result<kube::Config, ClusterError> {
    let options = kube::config::KubeConfigOptions {
        context: cfg.context.clone(),
        ..Default::default()
    };
    let mut config = match &cfg.kubeconfig {
        Some(path) => {
            let err = |source| ClusterError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(err)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(err)?
        }
        None => kube::Config::infer().await?,
    };
    // kube-client retries a 429, 503 or 504 up to 15 times with exponential backoff: minutes
    // on one request. Each caller here has its own cadence (watchers back off and relist,
    // discovery refreshes on its interval, leader election on its retry period, authentication
    // answers the request), and a down aggregated API answers 503 to every discovery.
    config.default_retry = false;
    Ok(config)
}

/// Namespaced objects by namespace, then name.
pub type NamespacedMap<T> = HashMap<Arc<str>, HashMap<Arc<str>, Arc<T>>>;

/// Pods by namespace, then name.
pub type PodMap = NamespacedMap<PodInfo>;

/// The projected cluster state.
#[derive(Debug, Default)]
pub struct ClusterState {
    /// Nodes by name.
    pub nodes: HashMap<Arc<str>, Arc<NodeInfo>>,
    /// Pods by namespace and name.
    pub pods: PodMap,
    /// Namespaces by name.
    pub namespaces: HashMap<Arc<str>, Arc<NamespaceInfo>>,
    /// Deployments by namespace and name.
    pub deployments: NamespacedMap<DeploymentInfo>,
    /// ReplicaSets by namespace and name.
    pub replicasets: NamespacedMap<ReplicaSetInfo>,
    /// Objects of the other resources plugins publish metrics for, from the on-demand metadata
    /// watches ([`objects::ObjectWatches`]), by resource, then namespace (empty for
    /// cluster-scoped ones) and name. A resource is present once its first list completed.
    pub objects: HashMap<ObjectResource, NamespacedMap<ObjectInfo>>,
}

impl ClusterState {
    /// The pod `namespace/name`, if known.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(namespace)?.get(name)
    }

    /// The Deployment `namespace/name`, if known.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<&Arc<DeploymentInfo>> {
        self.deployments.get(namespace)?.get(name)
    }

    /// The ReplicaSet `namespace/name`, if known.
    pub fn replicaset(&self, namespace: &str, name: &str) -> Option<&Arc<ReplicaSetInfo>> {
        self.replicasets.get(namespace)?.get(name)
    }

    /// The name of the Deployment that controls `pod` through its ReplicaSet, when the pod's
    /// controller is a ReplicaSet known here whose controller is a Deployment.
    pub fn pod_deployment(&self, pod: &PodInfo) -> Option<&Arc<str>> {
        let owner = pod
            .status
            .controller()
            .filter(|o| &*o.kind == "ReplicaSet")?;
        let rs = self.replicaset(&pod.namespace, &owner.name)?;
        rs.controller()
            .filter(|o| &*o.kind == "Deployment")
            .map(|o| &o.name)
    }

    /// The object `namespace/name` of a resource watched on demand, if known.
    pub fn object(
        &self,
        resource: &ObjectResource,
        namespace: &str,
        name: &str,
    ) -> Option<&Arc<ObjectInfo>> {
        self.objects.get(resource)?.get(namespace)?.get(name)
    }

    /// Number of pods.
    pub fn pod_count(&self) -> usize {
        self.pods.values().map(HashMap::len).sum()
    }
}

/// The shared, watch-maintained cluster state.
#[derive(Debug)]
pub struct ClusterCache {
    state: RwLock<ClusterState>,
    interners: Interners,
    nodes_synced: AtomicBool,
    pods_synced: AtomicBool,
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for ClusterCache {
    fn default() -> Self {
        ClusterCache {
            state: RwLock::default(),
            interners: Interners::default(),
            nodes_synced: AtomicBool::new(false),
            pods_synced: AtomicBool::new(false),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl ClusterCache {
    /// Read access to the current state.
    pub fn read(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Both watches have completed their first list.
    pub fn synced(&self) -> bool {
        self.nodes_synced.load(Ordering::Acquire) && self.pods_synced.load(Ordering::Acquire)
    }

    /// Whether the node watch and the pod watch have synced, separately.
    pub fn sync_status(&self) -> (bool, bool) {
        (
            self.nodes_synced.load(Ordering::Acquire),
            self.pods_synced.load(Ordering::Acquire),
        )
    }

    fn write(&self) -> ChangeGuard<'_> {
        ChangeGuard {
            guard: Some(self.state.write().unwrap_or_else(|e| e.into_inner())),
            changes: &self.changes,
        }
    }

    /// Waits until `condition` holds for the state (checked after every change).
    pub async fn wait_for(&self, condition: impl Fn(&ClusterState) -> bool) {
        let mut rx = self.changes.subscribe();
        loop {
            if condition(&self.read()) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Applies one node event (also used by tests to drive the cache without an API server).
    pub fn apply_node(&self, node: &Node) {
        if let Some(info) = projection::project_node(node, &self.interners) {
            self.write().nodes.insert(info.name.clone(), Arc::new(info));
        }
    }

    /// Removes a node.
    pub fn delete_node(&self, node: &Node) {
        if let Some(name) = node.metadata.name.as_deref() {
            self.write().nodes.remove(name);
        }
    }

    /// Applies one pod event.
    pub fn apply_pod(&self, pod: &Pod) {
        if let Some(info) = projection::project_pod(pod, &self.interners) {
            self.write()
                .pods
                .entry(info.namespace.clone())
                .or_default()
                .insert(info.name.clone(), Arc::new(info));
        }
    }

    /// Removes a pod.
    pub fn delete_pod(&self, pod: &Pod) {
        let (Some(ns), Some(name)) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
        ) else {
            return;
        };
        let mut state = self.write();
        if let Some(pods) = state.pods.get_mut(ns) {
            pods.remove(name);
            if pods.is_empty() {
                state.pods.remove(ns);
            }
        }
    }

    /// Applies one namespace event (from its metadata).
    pub fn apply_namespace(&self, meta: &ObjectMeta) {
        if let Some(info) = projection::project_namespace(meta, &self.interners) {
            self.write()
                .namespaces
                .insert(info.name.clone(), Arc::new(info));
        }
    }

    /// Removes a namespace.
    pub fn delete_namespace(&self, meta: &ObjectMeta) {
        if let Some(name) = meta.name.as_deref() {
            self.write().namespaces.remove(name);
        }
    }

    /// Applies one Deployment event.
    pub fn apply_deployment(&self, deployment: &Deployment) {
        if let Some(info) = projection::project_deployment(deployment, &self.interners) {
            let (ns, name) = (info.namespace.clone(), info.name.clone());
            insert_namespaced(&mut self.write().deployments, ns, name, info);
        }
    }

    /// Removes a Deployment.
    pub fn delete_deployment(&self, deployment: &Deployment) {
        remove_namespaced(&mut self.write().deployments, &deployment.metadata);
    }

    /// Applies one ReplicaSet event (from its metadata).
    pub fn apply_replicaset(&self, meta: &ObjectMeta) {
        if let Some(info) = projection::project_replicaset(meta, &self.interners) {
            let (ns, name) = (info.namespace.clone(), info.name.clone());
            insert_namespaced(&mut self.write().replicasets, ns, name, info);
        }
    }

    /// Removes a ReplicaSet.
    pub fn delete_replicaset(&self, meta: &ObjectMeta) {
        remove_namespaced(&mut self.write().replicasets, meta);
    }

    /// Replaces one kind's objects after a complete (re)list.
    fn replace(&self, f: impl FnOnce(&mut ClusterState)) {
        f(&mut self.write());
        self.interners.sweep_all();
    }

    fn replace_nodes(&self, nodes: HashMap<Arc<str>, Arc<NodeInfo>>) {
        let mut state = self.write();
        state.nodes = nodes;
        self.nodes_synced.store(true, Ordering::Release);
        drop(state);
        self.interners.sweep_all();
    }

    fn replace_pods(&self, pods: PodMap) {
        let mut state = self.write();
        state.pods = pods;
        self.pods_synced.store(true, Ordering::Release);
        drop(state);
        self.interners.sweep_all();
    }
}

fn insert_namespaced<T>(map: &mut NamespacedMap<T>, namespace: Arc<str>, name: Arc<str>, value: T) {
    map.entry(namespace)
        .or_default()
        .insert(name, Arc::new(value));
}

fn remove_namespaced<T>(map: &mut NamespacedMap<T>, meta: &ObjectMeta) {
    let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return;
    };
    if let Some(objects) = map.get_mut(ns) {
        objects.remove(name);
        if objects.is_empty() {
            map.remove(ns);
        }
    }
}

/// A write lock that announces a change when released.
struct ChangeGuard<'a> {
    guard: Option<std::sync::RwLockWriteGuard<'a, ClusterState>>,
    changes: &'a tokio::sync::watch::Sender<u64>,
}

impl std::ops::Deref for ChangeGuard<'_> {
    type Target = ClusterState;
    fn deref(&self) -> &ClusterState {
        self.guard.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for ChangeGuard<'_> {
    fn deref_mut(&mut self) -> &mut ClusterState {
        self.guard.as_mut().expect("held until drop")
    }
}

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.changes.send_modify(|v| *v += 1);
    }
}

/// Handle of the running watches; dropping it does not stop them, [`ClusterWatch::abort`] does.
#[derive(Debug)]
pub struct ClusterWatch {
    tasks: Vec<JoinHandle<()>>,
}

impl ClusterWatch {
    /// Starts watching nodes, pods, namespaces, Deployments and ReplicaSets into `cache`.
    /// Namespaces and ReplicaSets are watched as metadata only (all the gateway reads of them).
    pub fn start(client: Client, cache: Arc<ClusterCache>, telemetry: Telemetry) -> ClusterWatch {
        let config = || watcher::Config::default().page_size(500);
        let c = || (cache.clone(), telemetry.clone());
        let tasks = vec![
            spawn_watch(
                watcher::watcher(Api::<Node>::all(client.clone()), config()),
                c(),
                "node",
                NodeSink,
            ),
            spawn_watch(
                watcher::watcher(Api::<Pod>::all(client.clone()), config()),
                c(),
                "pod",
                PodSink,
            ),
            spawn_watch(
                watcher::watcher(
                    Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                    config(),
                ),
                c(),
                "namespace",
                NamespaceSink,
            ),
            spawn_watch(
                watcher::watcher(Api::<Deployment>::all(client.clone()), config()),
                c(),
                "deployment",
                DeploymentSink,
            ),
            spawn_watch(
                watcher::watcher(Api::<PartialObjectMeta<ReplicaSet>>::all(client), config()),
                c(),
                "replicaset",
                ReplicaSetSink,
            ),
        ];
        ClusterWatch { tasks }
    }

    /// Stops the watches.
    pub fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// How one kind's events land in the cache.
trait Sink<K>: Send + 'static {
    type Buffer: Default + Send;
    fn buffer(&self, cache: &ClusterCache, buf: &mut Self::Buffer, obj: &K);
    fn commit(&self, cache: &ClusterCache, buf: Self::Buffer);
    fn apply(&self, cache: &ClusterCache, obj: &K);
    fn delete(&self, cache: &ClusterCache, obj: &K);
}

struct NodeSink;
impl Sink<Node> for NodeSink {
    type Buffer = HashMap<Arc<str>, Arc<NodeInfo>>;
    fn buffer(&self, cache: &ClusterCache, buf: &mut Self::Buffer, obj: &Node) {
        if let Some(info) = projection::project_node(obj, &cache.interners) {
            buf.insert(info.name.clone(), Arc::new(info));
        }
    }
    fn commit(&self, cache: &ClusterCache, buf: Self::Buffer) {
        cache.replace_nodes(buf);
    }
    fn apply(&self, cache: &ClusterCache, obj: &Node) {
        cache.apply_node(obj);
    }
    fn delete(&self, cache: &ClusterCache, obj: &Node) {
        cache.delete_node(obj);
    }
}

struct PodSink;
impl Sink<Pod> for PodSink {
    type Buffer = PodMap;
    fn buffer(&self, cache: &ClusterCache, buf: &mut Self::Buffer, obj: &Pod) {
        if let Some(info) = projection::project_pod(obj, &cache.interners) {
            let (ns, name) = (info.namespace.clone(), info.name.clone());
            insert_namespaced(buf, ns, name, info);
        }
    }
    fn commit(&self, cache: &ClusterCache, buf: Self::Buffer) {
        cache.replace_pods(buf);
    }
    fn apply(&self, cache: &ClusterCache, obj: &Pod) {
        cache.apply_pod(obj);
    }
    fn delete(&self, cache: &ClusterCache, obj: &Pod) {
        cache.delete_pod(obj);
    }
}

struct NamespaceSink;
impl Sink<PartialObjectMeta<Namespace>> for NamespaceSink {
    type Buffer = HashMap<Arc<str>, Arc<NamespaceInfo>>;
    fn buffer(
        &self,
        cache: &ClusterCache,
        buf: &mut Self::Buffer,
        obj: &PartialObjectMeta<Namespace>,
    ) {
        if let Some(info) = projection::project_namespace(&obj.metadata, &cache.interners) {
            buf.insert(info.name.clone(), Arc::new(info));
        }
    }
    fn commit(&self, cache: &ClusterCache, buf: Self::Buffer) {
        cache.replace(|s| s.namespaces = buf);
    }
    fn apply(&self, cache: &ClusterCache, obj: &PartialObjectMeta<Namespace>) {
        cache.apply_namespace(&obj.metadata);
    }
    fn delete(&self, cache: &ClusterCache, obj: &PartialObjectMeta<Namespace>) {
        cache.delete_namespace(&obj.metadata);
    }
}

struct DeploymentSink;
impl Sink<Deployment> for DeploymentSink {
    type Buffer = NamespacedMap<DeploymentInfo>;
    fn buffer(&self, cache: &ClusterCache, buf: &mut Self::Buffer, obj: &Deployment) {
        if let Some(info) = projection::project_deployment(obj, &cache.interners) {
            let (ns, name) = (info.namespace.clone(), info.name.clone());
            insert_namespaced(buf, ns, name, info);
        }
    }
    fn commit(&self, cache: &ClusterCache, buf: Self::Buffer) {
        cache.replace(|s| s.deployments = buf);
    }
    fn apply(&self, cache: &ClusterCache, obj: &Deployment) {
        cache.apply_deployment(obj);
    }
    fn delete(&self, cache: &ClusterCache, obj: &Deployment) {
        cache.delete_deployment(obj);
    }
}

struct ReplicaSetSink;
impl Sink<PartialObjectMeta<ReplicaSet>> for ReplicaSetSink {
    type Buffer = NamespacedMap<ReplicaSetInfo>;
    fn buffer(
        &self,
        cache: &ClusterCache,
        buf: &mut Self::Buffer,
        obj: &PartialObjectMeta<ReplicaSet>,
    ) {
        if let Some(info) = projection::project_replicaset(&obj.metadata, &cache.interners) {
            let (ns, name) = (info.namespace.clone(), info.name.clone());
            insert_namespaced(buf, ns, name, info);
        }
    }
    fn commit(&self, cache: &ClusterCache, buf: Self::Buffer) {
        cache.replace(|s| s.replicasets = buf);
    }
    fn apply(&self, cache: &ClusterCache, obj: &PartialObjectMeta<ReplicaSet>) {
        cache.apply_replicaset(&obj.metadata);
    }
    fn delete(&self, cache: &ClusterCache, obj: &PartialObjectMeta<ReplicaSet>) {
        cache.delete_replicaset(&obj.metadata);
    }
}

/// Applies one kind's watch events to the cache; a relist is buffered until complete.
struct EventHandler<K, S: Sink<K>> {
    sink: S,
    kind: &'static str,
    buffer: Option<S::Buffer>,
    /// The last event was an error: further errors are logged at debug level only, so a watch
    /// that RBAC forbids warns once per outage instead of at every retry.
    failing: bool,
    _kind: std::marker::PhantomData<fn(K)>,
}

impl<K, S: Sink<K>> EventHandler<K, S> {
    fn new(sink: S, kind: &'static str) -> Self {
        EventHandler {
            sink,
            kind,
            buffer: None,
            failing: false,
            _kind: std::marker::PhantomData,
        }
    }

    fn handle(
        &mut self,
        cache: &ClusterCache,
        telemetry: &Telemetry,
        event: watcher::Result<Event<K>>,
    ) {
        let kind = self.kind;
        self.failing = self.failing && event.is_err();
        match event {
            Ok(Event::Init) => self.buffer = Some(S::Buffer::default()),
            Ok(Event::InitApply(obj)) => self.sink.buffer(
                cache,
                self.buffer.get_or_insert_with(Default::default),
                &obj,
            ),
            Ok(Event::InitDone) => {
                self.sink
                    .commit(cache, self.buffer.take().unwrap_or_default());
                tracing::info!(kind, "cluster watch synced");
            }
            Ok(Event::Apply(obj)) => self.sink.apply(cache, &obj),
            Ok(Event::Delete(obj)) => self.sink.delete(cache, &obj),
            Err(error) => {
                telemetry
                    .watch_restarts
                    .get_or_create(&KindLabels { kind })
                    .inc();
                if self.failing {
                    tracing::debug!(kind, %error, "cluster watch still failing");
                } else {
                    tracing::warn!(kind, %error, "cluster watch failed; retrying with backoff, serving the last known state");
                }
                self.failing = true;
            }
        }
    }
}

/// Runs one watch (with kube-runtime's default backoff) into the cache on a new task.
fn spawn_watch<K, S>(
    stream: impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
    (cache, telemetry): (Arc<ClusterCache>, Telemetry),
    kind: &'static str,
    sink: S,
) -> JoinHandle<()>
where
    K: Send + 'static,
    S: Sink<K>,
{
    tokio::spawn(async move {
        let mut stream = stream.default_backoff().boxed();
        let mut handler = EventHandler::new(sink, kind);
        while let Some(event) = stream.next().await {
            handler.handle(&cache, &telemetry, event);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running"}
        }))
        .unwrap()
    }

    fn names(cache: &ClusterCache) -> Vec<String> {
        let mut n: Vec<String> = cache
            .read()
            .pods
            .values()
            .flat_map(|p| p.keys().map(|k| k.to_string()))
            .collect();
        n.sort();
        n
    }

    #[test]
    fn relist_replaces_state_only_when_complete_and_errors_keep_it() {
        let cache = ClusterCache::default();
        let telemetry = Telemetry::new();
        let mut h = EventHandler::new(PodSink, "pod");
        h.handle(&cache, &telemetry, Ok(Event::Init));
        h.handle(&cache, &telemetry, Ok(Event::InitApply(pod("a"))));
        h.handle(&cache, &telemetry, Ok(Event::InitApply(pod("b"))));
        assert!(
            names(&cache).is_empty(),
            "nothing served before the first list completes"
        );
        assert!(!cache.synced());
        h.handle(&cache, &telemetry, Ok(Event::InitDone));
        assert_eq!(names(&cache), ["a", "b"]);
        assert_eq!(cache.sync_status(), (false, true));
        h.handle(&cache, &telemetry, Ok(Event::Apply(pod("c"))));
        h.handle(&cache, &telemetry, Ok(Event::Delete(pod("a"))));
        assert_eq!(names(&cache), ["b", "c"]);
        // The watch breaks: served state stays, the restart is counted.
        h.handle(&cache, &telemetry, Err(watcher::Error::NoResourceVersion));
        assert_eq!(names(&cache), ["b", "c"]);
        assert!(
            telemetry
                .encode()
                .contains("metrics_gateway_cluster_watch_restarts_total{kind=\"pod\"} 1")
        );
        // The relist after it: the old state is served until the new list is complete.
        h.handle(&cache, &telemetry, Ok(Event::Init));
        h.handle(&cache, &telemetry, Ok(Event::InitApply(pod("d"))));
        assert_eq!(names(&cache), ["b", "c"]);
        h.handle(&cache, &telemetry, Ok(Event::InitDone));
        assert_eq!(names(&cache), ["d"]);
    }
}
