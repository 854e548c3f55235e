//! The simulated cluster: one model of nodes, pods and containers that both the kubelet
//! simulator and the fake kube-apiserver serve, plus the ground truth tests compare against.
//!
//! Usage is modelled, not random per request: every container has a constant CPU rate and a
//! memory working set, so its cumulative CPU counter at time `t` is
//! `rate × (t − start)` and any two scrapes give back exactly `rate`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::broadcast;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The simulator's clock: the real wall clock, or a manual one that tests advance explicitly.
#[derive(Clone, Debug)]
pub enum SimClock {
    /// Wall-clock time.
    Real,
    /// Time that only moves when [`SimClock::advance`] is called.
    Manual(Arc<AtomicI64>),
}

impl SimClock {
    /// A manual clock starting at `start_ms`.
    pub fn manual(start_ms: Millis) -> Self {
        SimClock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Current time in milliseconds since the epoch.
    pub fn now_ms(&self) -> Millis {
        match self {
            SimClock::Real => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            SimClock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward; a no-op on the real clock.
    pub fn advance(&self, by: Duration) {
        if let SimClock::Manual(t) = self {
            t.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        }
    }
}

/// Shape of a generated cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Number of nodes.
    pub nodes: usize,
    /// Running pods per node.
    pub pods_per_node: usize,
    /// Containers per pod: each pod gets a count in this inclusive range.
    pub containers_per_pod: (usize, usize),
    /// Number of namespaces pods are spread over, round robin: `default`, `ns-1`, `ns-2`, …
    pub namespaces: usize,
    /// Seed for every generated value: the same spec always gives the same cluster.
    pub seed: u64,
    /// The port every simulated kubelet listens on (each node has its own address).
    pub kubelet_port: u16,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            nodes: 3,
            pods_per_node: 4,
            containers_per_pod: (1, 3),
            namespaces: 2,
            seed: 1,
            kubelet_port: 10250,
        }
    }
}

/// How a simulated kubelet answers.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum NodeBehavior {
    /// Serves correct metrics.
    #[default]
    Normal,
    /// Serves correct metrics after a delay.
    Slow(Duration),
    /// Answers with this HTTP status and a short error body.
    Fail(u16),
    /// Answers 200 with text that is not Prometheus exposition format.
    Garbage,
    /// Accepts the connection and never answers.
    Hang,
    /// Refuses connections (the listener is closed while in this state).
    Down,
}

/// One simulated container.
#[derive(Clone, Debug)]
pub struct SimContainer {
    /// Container name.
    pub name: String,
    /// Ground-truth CPU usage in nanocores (constant).
    pub cpu_nanocores: u64,
    /// Ground-truth memory working set in bytes (constant).
    pub memory_bytes: u64,
    /// When the current incarnation started (ms since epoch).
    pub start_ms: Millis,
    /// Restarts so far.
    pub restart_count: u32,
    /// CPU request in millicores (published in the pod spec).
    pub cpu_request_millis: u64,
    /// Memory request in bytes (published in the pod spec).
    pub memory_request_bytes: u64,
}

impl SimContainer {
    /// Cumulative CPU seconds at `now_ms`.
    pub fn cpu_seconds_at(&self, now_ms: Millis) -> f64 {
        let elapsed = (now_ms - self.start_ms).max(0) as f64 / 1000.0;
        self.cpu_nanocores as f64 / 1e9 * elapsed
    }
}

/// Per-pod deviations from a well-behaved kubelet report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodFaults {
    /// The kubelet leaves this pod out of its report (the API server still lists it).
    pub missing_from_kubelet: bool,
    /// The kubelet leaves this container out of its report.
    pub missing_container: Option<String>,
    /// The kubelet reports 0 CPU and 0 memory for every container.
    pub zero_values: bool,
    /// The kubelet stamps this pod's samples this many ms in the past (out-of-order timestamps).
    pub timestamp_skew_ms: Millis,
}

/// One simulated pod.
#[derive(Clone, Debug)]
pub struct SimPod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Node it runs on.
    pub node: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Owning ReplicaSet name, if any (its Deployment is the name without the hash suffix).
    pub owner_replicaset: Option<String>,
    /// `Pending`, `Running`, `Succeeded`, `Failed`.
    pub phase: String,
    /// The Ready condition.
    pub ready: bool,
    /// Pod creation / start time (ms since epoch).
    pub start_ms: Millis,
    /// Containers.
    pub containers: Vec<SimContainer>,
    /// Kubelet-side faults.
    pub faults: PodFaults,
}

/// One simulated node.
#[derive(Clone, Debug)]
pub struct SimNode {
    /// Name (`node-00000` …).
    pub name: String,
    /// Its own loopback address, where its kubelet listens.
    pub address: Ipv4Addr,
    /// Kubelet port.
    pub kubelet_port: u16,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Allocatable CPU in millicores.
    pub allocatable_cpu_millis: u64,
    /// Allocatable memory in bytes.
    pub allocatable_memory_bytes: u64,
    /// Node-level CPU usage in nanocores beyond its pods' (system daemons).
    pub system_cpu_nanocores: u64,
    /// Node-level memory beyond its pods'.
    pub system_memory_bytes: u64,
    /// When the node's cumulative counter started.
    pub boot_ms: Millis,
    /// The Ready condition.
    pub ready: bool,
    /// How its kubelet answers.
    pub behavior: NodeBehavior,
}

/// A change to the cluster, as the fake API server's watches see it.
#[derive(Clone, Debug)]
pub enum ClusterEvent {
    /// A node was added or changed.
    NodeUpserted(String),
    /// A node was removed.
    NodeDeleted(SimNode),
    /// A pod was added or changed: (namespace, name).
    PodUpserted(String, String),
    /// A pod was removed.
    PodDeleted(SimPod),
}

/// The cluster's contents; read through [`SimCluster::read`].
#[derive(Debug, Default)]
pub struct ClusterState {
    /// Nodes by name.
    pub nodes: BTreeMap<String, SimNode>,
    /// Pods by (namespace, name).
    pub pods: BTreeMap<(String, String), SimPod>,
    /// Monotonic resource version, bumped on every change.
    pub resource_version: u64,
    /// Resource version at which each object last changed, by kind/namespace/name key.
    pub object_versions: BTreeMap<String, u64>,
    /// Pod keys by node name, kept in step with `pods`.
    pods_by_node: BTreeMap<String, BTreeSet<(String, String)>>,
}

impl ClusterState {
    /// Pods scheduled on `node`.
    pub fn pods_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a SimPod> + 'a {
        self.pods_by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|key| self.pods.get(key))
    }

    fn insert_pod(&mut self, pod: SimPod) {
        let key = (pod.namespace.clone(), pod.name.clone());
        self.pods_by_node
            .entry(pod.node.clone())
            .or_default()
            .insert(key.clone());
        if let Some(old) = self.pods.insert(key.clone(), pod)
            && self.pods[&key].node != old.node
        {
            self.unindex(&old.node, &key);
        }
    }

    fn remove_pod(&mut self, key: &(String, String)) -> Option<SimPod> {
        let pod = self.pods.remove(key)?;
        self.unindex(&pod.node, key);
        Some(pod)
    }

    fn unindex(&mut self, node: &str, key: &(String, String)) {
        if let Some(set) = self.pods_by_node.get_mut(node) {
            set.remove(key);
        }
    }

    /// Node usage ground truth: its pods' running containers plus system usage.
    pub fn node_usage(&self, node: &SimNode) -> (u64, u64) {
        let (mut cpu, mut mem) = (node.system_cpu_nanocores, node.system_memory_bytes);
        for pod in self.pods_on(&node.name).filter(|p| p.phase == "Running") {
            for c in &pod.containers {
                cpu += c.cpu_nanocores;
                mem += c.memory_bytes;
            }
        }
        (cpu, mem)
    }
}

/// The simulated cluster, shared by the kubelet simulator, the fake API server and tests.
#[derive(Debug)]
pub struct SimCluster {
    state: RwLock<ClusterState>,
    events: broadcast::Sender<(u64, ClusterEvent)>,
    /// The clock kubelet samples are stamped with.
    pub clock: SimClock,
}

/// Address of node `index`: 127.1.0.1, 127.1.0.2, … (250 per /24, never .0 or .255).
pub fn node_address(index: usize) -> Ipv4Addr {
    let block = index / 250;
    Ipv4Addr::new(
        127,
        1 + (block / 256) as u8,
        (block % 256) as u8,
        1 + (index % 250) as u8,
    )
}

impl SimCluster {
    /// Generates a cluster from `spec`, deterministic for a given seed.
    pub fn generate(spec: &ClusterSpec, clock: SimClock) -> Arc<SimCluster> {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let now = clock.now_ms();
        let mut state = ClusterState::default();
        let namespaces: Vec<String> = (0..spec.namespaces.max(1))
            .map(|i| match i {
                0 => "default".to_string(),
                i => format!("ns-{i}"),
            })
            .collect();
        for n in 0..spec.nodes {
            let name = format!("node-{n:05}");
            let mut labels = BTreeMap::new();
            labels.insert("kubernetes.io/hostname".into(), name.clone());
            labels.insert("kubernetes.io/os".into(), "linux".into());
            labels.insert(
                "topology.kubernetes.io/zone".into(),
                format!("zone-{}", (b'a' + (n % 3) as u8) as char),
            );
            state.nodes.insert(
                name.clone(),
                SimNode {
                    name: name.clone(),
                    address: node_address(n),
                    kubelet_port: spec.kubelet_port,
                    labels,
                    allocatable_cpu_millis: 8000,
                    allocatable_memory_bytes: 32 << 30,
                    system_cpu_nanocores: rng.random_range(50_000_000..400_000_000),
                    system_memory_bytes: rng.random_range(200 << 20..800 << 20),
                    boot_ms: now - 86_400_000,
                    ready: true,
                    behavior: NodeBehavior::Normal,
                },
            );
            for p in 0..spec.pods_per_node {
                let ns = &namespaces[(n * spec.pods_per_node + p) % namespaces.len()];
                let app = format!("app-{}", (n * spec.pods_per_node + p) % 50);
                let rs = format!("{app}-{:x}", 0x5d4c3b2a_u32.wrapping_add((p % 7) as u32));
                let name = format!("{rs}-{n:05}{p:03}");
                let ncontainers =
                    rng.random_range(spec.containers_per_pod.0..=spec.containers_per_pod.1);
                let start_ms = now - rng.random_range(600_000..86_400_000);
                let containers = (0..ncontainers)
                    .map(|c| SimContainer {
                        name: if c == 0 {
                            "main".into()
                        } else {
                            format!("sidecar-{c}")
                        },
                        cpu_nanocores: rng.random_range(1_000_000..900_000_000),
                        memory_bytes: rng.random_range(4 << 20..900 << 20),
                        start_ms,
                        restart_count: 0,
                        cpu_request_millis: 100 * rng.random_range(1..10),
                        memory_request_bytes: (128 << 20) * rng.random_range(1..8),
                    })
                    .collect();
                let mut labels = BTreeMap::new();
                labels.insert("app".into(), app.clone());
                labels.insert(
                    "pod-template-hash".into(),
                    rs.rsplit('-').next().unwrap_or("").into(),
                );
                labels.insert(
                    "tier".into(),
                    if p % 2 == 0 { "web" } else { "batch" }.into(),
                );
                let pod = SimPod {
                    namespace: ns.clone(),
                    name: name.clone(),
                    uid: format!("{:08x}-0000-4000-8000-{:012x}", n, p),
                    node: format!("node-{n:05}"),
                    labels,
                    owner_replicaset: Some(rs),
                    phase: "Running".into(),
                    ready: true,
                    start_ms,
                    containers,
                    faults: PodFaults::default(),
                };
                state.insert_pod(pod);
            }
        }
        state.resource_version = 1;
        let (events, _) = broadcast::channel(65_536);
        Arc::new(SimCluster {
            state: RwLock::new(state),
            events,
            clock,
        })
    }

    /// Read access to the whole state.
    pub fn read(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to changes; each event carries the resource version it created.
    pub fn subscribe(&self) -> broadcast::Receiver<(u64, ClusterEvent)> {
        self.events.subscribe()
    }

    fn change(&self, f: impl FnOnce(&mut ClusterState) -> Option<(String, ClusterEvent)>) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some((key, event)) = f(&mut state) {
            state.resource_version += 1;
            let rv = state.resource_version;
            state.object_versions.insert(key, rv);
            let _ = self.events.send((rv, event));
        }
    }

    /// Changes a node (e.g. its behavior) and notifies watchers.
    pub fn update_node(&self, name: &str, f: impl FnOnce(&mut SimNode)) {
        self.change(|s| {
            let node = s.nodes.get_mut(name)?;
            f(node);
            Some((
                format!("node/{name}"),
                ClusterEvent::NodeUpserted(name.to_string()),
            ))
        });
    }

    /// Changes a pod and notifies watchers.
    pub fn update_pod(&self, namespace: &str, name: &str, f: impl FnOnce(&mut SimPod)) {
        self.change(|s| {
            let key = (namespace.to_string(), name.to_string());
            let mut pod = s.pods.get(&key)?.clone();
            f(&mut pod);
            s.insert_pod(pod);
            Some((
                format!("pod/{namespace}/{name}"),
                ClusterEvent::PodUpserted(namespace.to_string(), name.to_string()),
            ))
        });
    }

    /// Adds (or replaces) a pod.
    pub fn add_pod(&self, pod: SimPod) {
        self.change(|s| {
            let event = ClusterEvent::PodUpserted(pod.namespace.clone(), pod.name.clone());
            let vkey = format!("pod/{}/{}", pod.namespace, pod.name);
            s.insert_pod(pod);
            Some((vkey, event))
        });
    }

    /// Removes a pod.
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        self.change(|s| {
            let pod = s.remove_pod(&(namespace.to_string(), name.to_string()))?;
            Some((
                format!("pod/{namespace}/{name}"),
                ClusterEvent::PodDeleted(pod),
            ))
        });
    }

    /// Adds (or replaces) a node and notifies watchers.
    pub fn add_node(&self, node: SimNode) {
        self.change(|s| {
            let name = node.name.clone();
            s.nodes.insert(name.clone(), node);
            Some((format!("node/{name}"), ClusterEvent::NodeUpserted(name)))
        });
    }

    /// Removes a node (its pods stay until deleted, as in a real cluster).
    pub fn delete_node(&self, name: &str) {
        self.change(|s| {
            let node = s.nodes.remove(name)?;
            Some((format!("node/{name}"), ClusterEvent::NodeDeleted(node)))
        });
    }

    /// Restarts one container: its counter resets and its start time becomes now.
    pub fn restart_container(&self, namespace: &str, pod: &str, container: &str) {
        let now = self.clock.now_ms();
        self.update_pod(namespace, pod, |p| {
            if let Some(c) = p.containers.iter_mut().find(|c| c.name == container) {
                c.start_ms = now;
                c.restart_count += 1;
            }
        });
    }
}
