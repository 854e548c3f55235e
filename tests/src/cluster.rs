//! The simulated cluster: one model of nodes, pods and containers (and the namespaces,
//! Deployments and ReplicaSets around them) that both the kubelet simulator and the fake
//! kube-apiserver serve, plus the ground truth tests compare against.
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
    /// Containers in the waiting state, by name, with the reason (`CrashLoopBackOff`, …); they
    /// are reported not ready.
    pub waiting: BTreeMap<String, String>,
    /// Kubelet-side faults.
    pub faults: PodFaults,
}

/// One simulated namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct SimNamespace {
    /// Name.
    pub name: String,
    /// Labels (`kubernetes.io/metadata.name` is added when rendered, as the API server does).
    pub labels: BTreeMap<String, String>,
    /// Creation time (ms since epoch).
    pub created_ms: Millis,
}

/// One simulated Deployment (`apps/v1`). Its status is derived from the pods of its
/// ReplicaSets, see [`ClusterState::deployment_status`].
#[derive(Clone, Debug, PartialEq)]
pub struct SimDeployment {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels (also its pods' selector: `app`).
    pub labels: BTreeMap<String, String>,
    /// `spec.replicas`.
    pub replicas: u32,
    /// `pod-template-hash` of the current template: pods of the ReplicaSet `{name}-{hash}` are
    /// the updated ones.
    pub template_hash: String,
    /// Creation time (ms since epoch).
    pub created_ms: Millis,
}

/// One simulated ReplicaSet (`apps/v1`), owned by a Deployment when `deployment` is set.
#[derive(Clone, Debug, PartialEq)]
pub struct SimReplicaSet {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The owning Deployment's name (its controller owner reference).
    pub deployment: Option<String>,
    /// `spec.replicas`.
    pub replicas: u32,
    /// Creation time (ms since epoch).
    pub created_ms: Millis,
}

/// A ReplicaSet's replica counts, from its pods (as the ReplicaSet controller reports them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaSetStatus {
    /// Pods that are neither Succeeded nor Failed.
    pub replicas: u32,
    /// Of those, Running and Ready.
    pub ready: u32,
    /// Ready pods (`minReadySeconds` is 0, so every ready pod is available).
    pub available: u32,
}

/// A Deployment's status, from its ReplicaSets' pods (as the Deployment controller reports it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeploymentStatus {
    /// `status.replicas`: pods of all its ReplicaSets.
    pub replicas: u32,
    /// `status.readyReplicas`.
    pub ready: u32,
    /// `status.availableReplicas`.
    pub available: u32,
    /// `status.unavailableReplicas`: `spec.replicas − available`, at least 0.
    pub unavailable: u32,
    /// `status.updatedReplicas`: pods of the current template's ReplicaSet.
    pub updated: u32,
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
    /// Condition overrides by type (`MemoryPressure` → `True`, `Ready` → `Unknown`, …); the
    /// pressure conditions are `False` and `Ready` follows `ready` unless set here.
    pub conditions: BTreeMap<String, String>,
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
    /// A namespace was added or changed.
    NamespaceUpserted(String),
    /// A Deployment was added or changed (also when its pods change its status):
    /// (namespace, name).
    DeploymentUpserted(String, String),
    /// A ReplicaSet was added or changed (also when its pods change its status):
    /// (namespace, name).
    ReplicaSetUpserted(String, String),
}

/// The cluster's contents; read through [`SimCluster::read`].
#[derive(Debug, Default)]
pub struct ClusterState {
    /// Nodes by name.
    pub nodes: BTreeMap<String, SimNode>,
    /// Pods by (namespace, name).
    pub pods: BTreeMap<(String, String), SimPod>,
    /// Namespaces by name.
    pub namespaces: BTreeMap<String, SimNamespace>,
    /// Deployments by (namespace, name).
    pub deployments: BTreeMap<(String, String), SimDeployment>,
    /// ReplicaSets by (namespace, name).
    pub replicasets: BTreeMap<(String, String), SimReplicaSet>,
    /// Monotonic resource version, bumped on every change.
    pub resource_version: u64,
    /// Resource version at which each object last changed, by kind/namespace/name key.
    pub object_versions: BTreeMap<String, u64>,
    /// Pod keys by node name, kept in step with `pods`.
    pods_by_node: BTreeMap<String, BTreeSet<(String, String)>>,
    /// Pod names by owning ReplicaSet (namespace, name), kept in step with `pods`.
    pods_by_replicaset: BTreeMap<(String, String), BTreeSet<String>>,
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

    /// Pods owned by the ReplicaSet `namespace/name`.
    pub fn pods_of_replicaset<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a SimPod> + 'a {
        self.pods_by_replicaset
            .get(&(namespace.to_string(), name.to_string()))
            .into_iter()
            .flatten()
            .filter_map(move |pod| self.pods.get(&(namespace.to_string(), pod.clone())))
    }

    /// The ReplicaSets a Deployment owns.
    pub fn replicasets_of<'a>(
        &'a self,
        deployment: &'a SimDeployment,
    ) -> impl Iterator<Item = &'a SimReplicaSet> + 'a {
        self.replicasets
            .range((deployment.namespace.clone(), String::new())..)
            .take_while(move |((ns, _), _)| *ns == deployment.namespace)
            .map(|(_, rs)| rs)
            .filter(move |rs| rs.deployment.as_deref() == Some(deployment.name.as_str()))
    }

    /// A ReplicaSet's status, counted from its pods.
    pub fn replicaset_status(&self, rs: &SimReplicaSet) -> ReplicaSetStatus {
        let mut status = ReplicaSetStatus::default();
        for pod in self.pods_of_replicaset(&rs.namespace, &rs.name) {
            if matches!(pod.phase.as_str(), "Succeeded" | "Failed") {
                continue;
            }
            status.replicas += 1;
            if pod.phase == "Running" && pod.ready {
                status.ready += 1;
                status.available += 1;
            }
        }
        status
    }

    /// A Deployment's status, counted from its ReplicaSets' pods.
    pub fn deployment_status(&self, deployment: &SimDeployment) -> DeploymentStatus {
        let current = format!("{}-{}", deployment.name, deployment.template_hash);
        let mut status = DeploymentStatus::default();
        for rs in self.replicasets_of(deployment) {
            let counts = self.replicaset_status(rs);
            status.replicas += counts.replicas;
            status.ready += counts.ready;
            status.available += counts.available;
            if rs.name == current {
                status.updated += counts.replicas;
            }
        }
        status.unavailable = deployment.replicas.saturating_sub(status.available);
        status
    }

    /// The statuses of the ReplicaSet `namespace/rs` and of its Deployment, as change events
    /// keyed like [`SimCluster`]'s version keys, to compare before and after a pod change.
    fn owner_statuses(
        &self,
        namespace: &str,
        rs: Option<&str>,
    ) -> Vec<(String, ClusterEvent, [u32; 5])> {
        let Some(rs) = rs.and_then(|rs| {
            self.replicasets
                .get(&(namespace.to_string(), rs.to_string()))
        }) else {
            return Vec::new();
        };
        let counts = self.replicaset_status(rs);
        let mut out = vec![(
            format!("replicaset/{namespace}/{}", rs.name),
            ClusterEvent::ReplicaSetUpserted(namespace.to_string(), rs.name.clone()),
            [counts.replicas, counts.ready, counts.available, 0, 0],
        )];
        if let Some(d) = rs
            .deployment
            .as_ref()
            .and_then(|d| self.deployments.get(&(namespace.to_string(), d.clone())))
        {
            let s = self.deployment_status(d);
            out.push((
                format!("deployment/{namespace}/{}", d.name),
                ClusterEvent::DeploymentUpserted(namespace.to_string(), d.name.clone()),
                [s.replicas, s.ready, s.available, s.unavailable, s.updated],
            ));
        }
        out
    }

    fn insert_pod(&mut self, pod: SimPod) {
        let key = (pod.namespace.clone(), pod.name.clone());
        self.pods_by_node
            .entry(pod.node.clone())
            .or_default()
            .insert(key.clone());
        if let Some(rs) = &pod.owner_replicaset {
            self.pods_by_replicaset
                .entry((pod.namespace.clone(), rs.clone()))
                .or_default()
                .insert(pod.name.clone());
        }
        if let Some(old) = self.pods.insert(key.clone(), pod) {
            let new = &self.pods[&key];
            let (node_moved, rs_changed) = (
                new.node != old.node,
                new.owner_replicaset != old.owner_replicaset,
            );
            if node_moved {
                self.unindex_node(&old.node, &key);
            }
            if rs_changed {
                self.unindex_replicaset(&old);
            }
        }
    }

    fn remove_pod(&mut self, key: &(String, String)) -> Option<SimPod> {
        let pod = self.pods.remove(key)?;
        self.unindex_node(&pod.node, key);
        self.unindex_replicaset(&pod);
        Some(pod)
    }

    fn unindex_node(&mut self, node: &str, key: &(String, String)) {
        if let Some(set) = self.pods_by_node.get_mut(node) {
            set.remove(key);
        }
    }

    fn unindex_replicaset(&mut self, pod: &SimPod) {
        if let Some(rs) = &pod.owner_replicaset
            && let Some(set) = self
                .pods_by_replicaset
                .get_mut(&(pod.namespace.clone(), rs.clone()))
        {
            set.remove(&pod.name);
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
    ///
    /// Pods are spread over the namespaces round robin and belong to Deployments named after
    /// their `app` label (one per namespace and app), each through one ReplicaSet
    /// `{app}-{pod-template-hash}`.
    pub fn generate(spec: &ClusterSpec, clock: SimClock) -> Arc<SimCluster> {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let now = clock.now_ms();
        let created_ms = now - 86_400_000;
        let mut state = ClusterState::default();
        let namespaces: Vec<String> = (0..spec.namespaces.max(1))
            .map(|i| match i {
                0 => "default".to_string(),
                i => format!("ns-{i}"),
            })
            .collect();
        for name in ["kube-node-lease", "kube-public", "kube-system"] {
            state.namespaces.insert(
                name.to_string(),
                SimNamespace {
                    name: name.to_string(),
                    labels: BTreeMap::new(),
                    created_ms,
                },
            );
        }
        for (i, name) in namespaces.iter().enumerate() {
            let labels = BTreeMap::from([
                ("team".to_string(), format!("team-{}", i % 3)),
                (
                    "environment".to_string(),
                    if i % 2 == 0 { "production" } else { "staging" }.to_string(),
                ),
            ]);
            state.namespaces.insert(
                name.clone(),
                SimNamespace {
                    name: name.clone(),
                    labels,
                    created_ms,
                },
            );
        }
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
                    boot_ms: created_ms,
                    ready: true,
                    conditions: BTreeMap::new(),
                    behavior: NodeBehavior::Normal,
                },
            );
            for p in 0..spec.pods_per_node {
                let index = n * spec.pods_per_node + p;
                let ns = &namespaces[index % namespaces.len()];
                let app_index = index % 50;
                let app = format!("app-{app_index}");
                let hash = template_hash(app_index);
                let rs = format!("{app}-{hash}");
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
                labels.insert("pod-template-hash".into(), hash.clone());
                labels.insert(
                    "tier".into(),
                    if p % 2 == 0 { "web" } else { "batch" }.into(),
                );
                let deployment = state
                    .deployments
                    .entry((ns.clone(), app.clone()))
                    .or_insert_with(|| SimDeployment {
                        namespace: ns.clone(),
                        name: app.clone(),
                        labels: BTreeMap::from([("app".to_string(), app.clone())]),
                        replicas: 0,
                        template_hash: hash.clone(),
                        created_ms,
                    });
                deployment.replicas += 1;
                let replicaset = state
                    .replicasets
                    .entry((ns.clone(), rs.clone()))
                    .or_insert_with(|| SimReplicaSet {
                        namespace: ns.clone(),
                        name: rs.clone(),
                        labels: BTreeMap::from([
                            ("app".to_string(), app.clone()),
                            ("pod-template-hash".to_string(), hash.clone()),
                        ]),
                        deployment: Some(app.clone()),
                        replicas: 0,
                        created_ms,
                    });
                replicaset.replicas += 1;
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
                    waiting: BTreeMap::new(),
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

    /// Applies a change; each (version key, event) it returns gets its own resource version.
    fn change(&self, f: impl FnOnce(&mut ClusterState) -> Vec<(String, ClusterEvent)>) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        for (key, event) in f(&mut state) {
            state.resource_version += 1;
            let rv = state.resource_version;
            state.object_versions.insert(key, rv);
            let _ = self.events.send((rv, event));
        }
    }

    /// Applies a change to pods: also announces the namespace a pod creates and the
    /// ReplicaSets and Deployments whose status it changes (as their controllers would).
    fn change_pods(
        &self,
        owners: &[(String, Option<String>)],
        f: impl FnOnce(&mut ClusterState) -> Vec<(String, ClusterEvent)>,
    ) {
        self.change(|s| {
            let before: Vec<_> = owners
                .iter()
                .flat_map(|(ns, rs)| s.owner_statuses(ns, rs.as_deref()))
                .collect();
            let mut events = f(s);
            if events.is_empty() {
                return events;
            }
            for (ns, _) in owners {
                let used = s
                    .pods
                    .range((ns.clone(), String::new())..)
                    .next()
                    .is_some_and(|((n, _), _)| n == ns);
                if used && !s.namespaces.contains_key(ns) {
                    s.namespaces.insert(
                        ns.clone(),
                        SimNamespace {
                            name: ns.clone(),
                            labels: BTreeMap::new(),
                            created_ms: self.clock.now_ms(),
                        },
                    );
                    events.push((
                        format!("namespace/{ns}"),
                        ClusterEvent::NamespaceUpserted(ns.clone()),
                    ));
                }
            }
            let after: Vec<_> = owners
                .iter()
                .flat_map(|(ns, rs)| s.owner_statuses(ns, rs.as_deref()))
                .collect();
            for (key, event, status) in after {
                let unchanged = before.iter().any(|(k, _, old)| *k == key && *old == status);
                if !unchanged && !events.iter().any(|(k, _)| *k == key) {
                    events.push((key, event));
                }
            }
            events
        });
    }

    /// Changes a node (e.g. its behavior or conditions) and notifies watchers.
    pub fn update_node(&self, name: &str, f: impl FnOnce(&mut SimNode)) {
        self.change(|s| {
            let Some(node) = s.nodes.get_mut(name) else {
                return Vec::new();
            };
            f(node);
            vec![(
                format!("node/{name}"),
                ClusterEvent::NodeUpserted(name.to_string()),
            )]
        });
    }

    /// Changes a pod and notifies watchers (of the pod, and of its ReplicaSet and Deployment
    /// when their status changes).
    pub fn update_pod(&self, namespace: &str, name: &str, f: impl FnOnce(&mut SimPod)) {
        let key = (namespace.to_string(), name.to_string());
        let Some(mut pod) = self.read().pods.get(&key).cloned() else {
            return;
        };
        let old_owner = pod.owner_replicaset.clone();
        f(&mut pod);
        let owners = [
            (namespace.to_string(), old_owner),
            (namespace.to_string(), pod.owner_replicaset.clone()),
        ];
        self.change_pods(&owners, |s| {
            if !s.pods.contains_key(&key) {
                return Vec::new();
            }
            s.insert_pod(pod);
            vec![(
                format!("pod/{namespace}/{name}"),
                ClusterEvent::PodUpserted(namespace.to_string(), name.to_string()),
            )]
        });
    }

    /// Adds (or replaces) a pod; its namespace is created if new.
    pub fn add_pod(&self, pod: SimPod) {
        let owners = [(pod.namespace.clone(), pod.owner_replicaset.clone())];
        self.change_pods(&owners, |s| {
            let event = ClusterEvent::PodUpserted(pod.namespace.clone(), pod.name.clone());
            let vkey = format!("pod/{}/{}", pod.namespace, pod.name);
            let old = s.remove_pod(&(pod.namespace.clone(), pod.name.clone()));
            let mut events = vec![(vkey, event)];
            // A replaced pod that belonged to another ReplicaSet changes that one's status too.
            if let Some(old) = old
                && old.owner_replicaset != pod.owner_replicaset
            {
                for (key, event, _) in
                    s.owner_statuses(&old.namespace, old.owner_replicaset.as_deref())
                {
                    events.push((key, event));
                }
            }
            s.insert_pod(pod);
            events
        });
    }

    /// Removes a pod.
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        let owner = self
            .read()
            .pods
            .get(&key)
            .and_then(|p| p.owner_replicaset.clone());
        self.change_pods(&[(namespace.to_string(), owner)], |s| {
            let Some(pod) = s.remove_pod(&key) else {
                return Vec::new();
            };
            vec![(
                format!("pod/{namespace}/{name}"),
                ClusterEvent::PodDeleted(pod),
            )]
        });
    }

    /// Adds (or replaces) a node and notifies watchers.
    pub fn add_node(&self, node: SimNode) {
        self.change(|s| {
            let name = node.name.clone();
            s.nodes.insert(name.clone(), node);
            vec![(format!("node/{name}"), ClusterEvent::NodeUpserted(name))]
        });
    }

    /// Removes a node (its pods stay until deleted, as in a real cluster).
    pub fn delete_node(&self, name: &str) {
        self.change(|s| match s.nodes.remove(name) {
            Some(node) => vec![(format!("node/{name}"), ClusterEvent::NodeDeleted(node))],
            None => Vec::new(),
        });
    }

    /// Adds (or replaces) a namespace and notifies watchers.
    pub fn add_namespace(&self, namespace: SimNamespace) {
        self.change(|s| {
            let name = namespace.name.clone();
            s.namespaces.insert(name.clone(), namespace);
            vec![(
                format!("namespace/{name}"),
                ClusterEvent::NamespaceUpserted(name),
            )]
        });
    }

    /// Changes a namespace (e.g. its labels) and notifies watchers.
    pub fn update_namespace(&self, name: &str, f: impl FnOnce(&mut SimNamespace)) {
        self.change(|s| {
            let Some(namespace) = s.namespaces.get_mut(name) else {
                return Vec::new();
            };
            f(namespace);
            vec![(
                format!("namespace/{name}"),
                ClusterEvent::NamespaceUpserted(name.to_string()),
            )]
        });
    }

    /// Changes a Deployment (e.g. `replicas`, labels) and notifies watchers.
    pub fn update_deployment(
        &self,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut SimDeployment),
    ) {
        self.change(|s| {
            let Some(deployment) = s
                .deployments
                .get_mut(&(namespace.to_string(), name.to_string()))
            else {
                return Vec::new();
            };
            f(deployment);
            vec![(
                format!("deployment/{namespace}/{name}"),
                ClusterEvent::DeploymentUpserted(namespace.to_string(), name.to_string()),
            )]
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

    /// Puts one container in the waiting state with `reason` (`None` clears it); the pod's
    /// Ready condition follows (ready only when no container waits).
    pub fn set_waiting_reason(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        reason: Option<&str>,
    ) {
        self.update_pod(namespace, pod, |p| {
            match reason {
                Some(reason) => p.waiting.insert(container.to_string(), reason.to_string()),
                None => p.waiting.remove(container),
            };
            p.ready = p.waiting.is_empty();
        });
    }

    /// A crash: the container restarts and then waits in `CrashLoopBackOff`, the pod turns
    /// unready (one change, as the kubelet reports it).
    pub fn crash_loop(&self, namespace: &str, pod: &str, container: &str) {
        let now = self.clock.now_ms();
        self.update_pod(namespace, pod, |p| {
            if let Some(c) = p.containers.iter_mut().find(|c| c.name == container) {
                c.start_ms = now;
                c.restart_count += 1;
                p.waiting
                    .insert(container.to_string(), "CrashLoopBackOff".to_string());
                p.ready = false;
            }
        });
    }
}

/// The `pod-template-hash` of the generated app `app_index` (stable, hex like the real ones).
fn template_hash(app_index: usize) -> String {
    format!(
        "{:x}",
        0x5d4c_3b2a_u32.wrapping_add(app_index as u32 * 0x9e37)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Arc<SimCluster> {
        let spec = ClusterSpec {
            nodes: 2,
            pods_per_node: 3,
            namespaces: 2,
            ..ClusterSpec::default()
        };
        SimCluster::generate(&spec, SimClock::manual(1_700_000_000_000))
    }

    #[test]
    fn pods_belong_to_deployments_through_replicasets() {
        let cluster = small();
        let state = cluster.read();
        assert_eq!(state.pods.len(), 6);
        for pod in state.pods.values() {
            let rs_name = pod.owner_replicaset.as_deref().expect("owned");
            let rs = &state.replicasets[&(pod.namespace.clone(), rs_name.to_string())];
            let deployment = rs.deployment.as_deref().expect("owned by a deployment");
            assert_eq!(Some(deployment), pod.labels.get("app").map(String::as_str));
            let d = &state.deployments[&(pod.namespace.clone(), deployment.to_string())];
            assert_eq!(rs.name, format!("{}-{}", d.name, d.template_hash));
            assert!(state.namespaces.contains_key(&pod.namespace));
        }
        let total: u32 = state.deployments.values().map(|d| d.replicas).sum();
        assert_eq!(total, 6);
        for d in state.deployments.values() {
            let status = state.deployment_status(d);
            assert_eq!(
                (
                    status.replicas,
                    status.ready,
                    status.updated,
                    status.unavailable
                ),
                (d.replicas, d.replicas, d.replicas, 0)
            );
        }
    }

    #[test]
    fn a_crash_loop_changes_the_pod_and_its_owners_statuses() {
        let cluster = small();
        let (ns, name, rs, app) = {
            let state = cluster.read();
            let pod = state.pods.values().next().unwrap();
            (
                pod.namespace.clone(),
                pod.name.clone(),
                pod.owner_replicaset.clone().unwrap(),
                pod.labels["app"].clone(),
            )
        };
        let mut events = cluster.subscribe();
        cluster.crash_loop(&ns, &name, "main");
        let mut seen = Vec::new();
        while let Ok((rv, event)) = events.try_recv() {
            seen.push((rv, format!("{event:?}")));
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen[0].1.starts_with("PodUpserted"));
        assert!(
            seen.iter()
                .any(|(_, e)| e.contains("ReplicaSetUpserted") && e.contains(&rs))
        );
        assert!(
            seen.iter()
                .any(|(_, e)| e.contains("DeploymentUpserted") && e.contains(&app))
        );
        assert!(seen.windows(2).all(|w| w[1].0 == w[0].0 + 1));
        let state = cluster.read();
        let pod = &state.pods[&(ns.clone(), name)];
        assert_eq!(pod.containers[0].restart_count, 1);
        assert_eq!(pod.waiting["main"], "CrashLoopBackOff");
        let d = &state.deployments[&(ns, app)];
        let status = state.deployment_status(d);
        assert_eq!(status.ready, d.replicas - 1);
        assert_eq!(status.unavailable, 1);
    }

    #[test]
    fn a_restart_alone_announces_only_the_pod() {
        let cluster = small();
        let (ns, name) = cluster.read().pods.keys().next().unwrap().clone();
        let mut events = cluster.subscribe();
        cluster.restart_container(&ns, &name, "main");
        let (_, event) = events.try_recv().unwrap();
        assert!(matches!(event, ClusterEvent::PodUpserted(..)));
        assert!(events.try_recv().is_err(), "owner statuses did not change");
    }

    #[test]
    fn a_pod_in_a_new_namespace_creates_it() {
        let cluster = small();
        let mut pod = cluster.read().pods.values().next().unwrap().clone();
        pod.namespace = "fresh".into();
        pod.owner_replicaset = None;
        let mut events = cluster.subscribe();
        cluster.add_pod(pod);
        let kinds: Vec<String> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|(_, e)| format!("{e:?}"))
            .collect();
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        assert!(kinds[1].starts_with("NamespaceUpserted(\"fresh\")"));
        assert!(cluster.read().namespaces.contains_key("fresh"));
    }
}
