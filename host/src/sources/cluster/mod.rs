//! Cluster state from the Kubernetes API: watches on nodes and pods, kept as small projections.
//!
//! A relist (after a watch error or a too-old resource version) fills a fresh map that replaces
//! the served one only when complete, so the API never sees a half-listed cluster.

pub mod projection;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

pub use projection::{
    DeploymentInfo, Interners, LabelSet, NamespaceInfo, NodeInfo, PodInfo, PodPhase,
};

use crate::config::KubernetesConfig;
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
    match &cfg.kubeconfig {
        Some(path) => {
            let err = |source| ClusterError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(err)?;
            Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(err)?)
        }
        None => Ok(kube::Config::infer().await?),
    }
}

/// Pods by namespace, then name.
pub type PodMap = HashMap<Arc<str>, HashMap<Arc<str>, Arc<PodInfo>>>;

/// The projected cluster state: nodes and pods.
#[derive(Debug, Default)]
pub struct ClusterState {
    /// Nodes by name.
    pub nodes: HashMap<Arc<str>, Arc<NodeInfo>>,
    /// Pods by namespace and name.
    pub pods: PodMap,
    /// Namespaces by name.
    pub namespaces: HashMap<Arc<str>, Arc<NamespaceInfo>>,
    /// Deployments by namespace and name.
    pub deployments: HashMap<Arc<str>, HashMap<Arc<str>, Arc<DeploymentInfo>>>,
}

impl ClusterState {
    /// The pod `namespace/name`, if known.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(namespace)?.get(name)
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

impl Interners {
    fn sweep_all(&self) {
        self.strings.sweep();
        self.labels.sweep();
        self.containers.sweep();
    }
}

/// Handle of the running watches; dropping it does not stop them, [`ClusterWatch::abort`] does.
#[derive(Debug)]
pub struct ClusterWatch {
    tasks: Vec<JoinHandle<()>>,
}

impl ClusterWatch {
    /// Starts watching nodes and pods into `cache`.
    pub fn start(client: Client, cache: Arc<ClusterCache>, telemetry: Telemetry) -> ClusterWatch {
        let nodes = tokio::spawn(run_watch::<Node, _>(
            Api::all(client.clone()),
            cache.clone(),
            telemetry.clone(),
            "node",
            NodeSink,
        ));
        let pods = tokio::spawn(run_watch::<Pod, _>(
            Api::all(client),
            cache,
            telemetry,
            "pod",
            PodSink,
        ));
        ClusterWatch {
            tasks: vec![nodes, pods],
        }
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
            buf.entry(info.namespace.clone())
                .or_default()
                .insert(info.name.clone(), Arc::new(info));
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

/// Applies one kind's watch events to the cache; a relist is buffered until complete.
struct EventHandler<K, S: Sink<K>> {
    sink: S,
    kind: &'static str,
    buffer: Option<S::Buffer>,
    _kind: std::marker::PhantomData<fn(K)>,
}

impl<K, S: Sink<K>> EventHandler<K, S> {
    fn new(sink: S, kind: &'static str) -> Self {
        EventHandler {
            sink,
            kind,
            buffer: None,
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
                tracing::warn!(kind, %error, "cluster watch failed; retrying with backoff, serving the last known state");
            }
        }
    }
}

async fn run_watch<K, S>(
    api: Api<K>,
    cache: Arc<ClusterCache>,
    telemetry: Telemetry,
    kind: &'static str,
    sink: S,
) where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    S: Sink<K>,
{
    let mut stream = watcher::watcher(api, watcher::Config::default().page_size(500))
        .default_backoff()
        .boxed();
    let mut handler = EventHandler::new(sink, kind);
    while let Some(event) = stream.next().await {
        handler.handle(&cache, &telemetry, event);
    }
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
