//! One collection cycle: scrape every kubelet (bounded concurrency, jitter, timeout), update each
//! node's series, join with the cluster state, run the plugins over the samples they asked for,
//! publish a snapshot.

pub mod resource_values;
pub mod snapshot;
pub mod wanted;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::config::{KubeletConfig, ResourceSource};
use crate::core_metrics::NodeSeries;
use crate::plugins::PluginSet;
use crate::samples::{Batch, CycleSamples, Source};
use crate::sources::cluster::objects::ObjectWatches;
use crate::sources::cluster::samples::ClusterSeries;
use crate::sources::cluster::{ClusterCache, NodeInfo};
use crate::sources::discovery::Discovery;
use crate::sources::kubelet::resource::decode;
use crate::sources::kubelet::samples::NodeSamples;
use crate::sources::kubelet::{
    CADVISOR_PATH, Connection, KubeletScraper, SUMMARY_PATH, ScrapeError,
};
use crate::sources::prometheus::PrometheusSource;
use crate::store::{Snapshot, Store};
use crate::telemetry::{KindLabels, OutcomeLabels, ReasonLabels, SourceLabels, Telemetry};
use wanted::Wanted;

/// A node's scrape state, owned by the collector between cycles.
#[derive(Debug, Default)]
struct NodeSlot {
    conn: Connection,
    series: NodeSeries,
    /// Interned series of the endpoints plugins read.
    samples: NodeSamples,
    /// This cycle's samples for plugins.
    batches: Vec<(Source, Arc<Batch>)>,
}

/// Liveness and readiness facts published by the collector.
#[derive(Debug)]
pub struct CollectionHealth {
    /// When the latest cycle started, ms (the process start until the first cycle).
    pub last_cycle_start_ms: AtomicI64,
    /// At least one cycle has completed.
    pub first_cycle_done: AtomicBool,
    /// Completed cycles.
    pub cycles: AtomicU64,
}

impl CollectionHealth {
    /// No cycle yet, as of `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        CollectionHealth {
            last_cycle_start_ms: AtomicI64::new(now_ms),
            first_cycle_done: AtomicBool::new(false),
            cycles: AtomicU64::new(0),
        }
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Cycle number.
    pub cycle: u64,
    /// Nodes scraped successfully.
    pub scraped: usize,
    /// Nodes whose scrape failed, with the reason.
    pub failed: Vec<(String, &'static str)>,
    /// Nodes in the published snapshot.
    pub nodes_served: usize,
    /// Pods in the published snapshot.
    pub pods_served: usize,
}

/// Runs collection cycles.
#[derive(Debug)]
pub struct Collector {
    config: KubeletConfig,
    scraper: KubeletScraper,
    cluster: Arc<ClusterCache>,
    store: Arc<Store>,
    telemetry: Telemetry,
    clock: Clock,
    health: Arc<CollectionHealth>,
    slots: Mutex<HashMap<Arc<str>, NodeSlot>>,
    /// The plugins run every cycle, and the cluster-state series they read.
    plugins: Mutex<Option<PluginStage>>,
    /// The snapshot replaced by the latest cycle, freed when the next one starts.
    retired: Mutex<Option<Arc<Snapshot>>>,
    cycle_lock: tokio::sync::Mutex<()>,
    /// Wakes [`Collector::run`] for a cycle now (after a reload).
    cycle_now: tokio::sync::Notify,
    /// The Prometheus backends plugins' queries run against; replaced with the plugins.
    prometheus: Mutex<Option<Arc<PrometheusSource>>>,
    /// Where `metrics.k8s.io` comes from: kubelets are scraped for it, or not at all unless a
    /// plugin reads them.
    resource_source: ResourceSource,
    /// The cluster's API resources (the built-in table without a cluster).
    discovery: Arc<Discovery>,
    /// Metadata watches of the resources plugins' custom metrics describe, when there is a
    /// cluster.
    objects: Option<Arc<ObjectWatches>>,
}

/// The plugin part of a cycle.
#[derive(Debug)]
struct PluginStage {
    set: PluginSet,
    cluster_series: ClusterSeries,
}

impl Collector {
    /// A collector publishing into `store`.
    pub fn new(
        config: KubeletConfig,
        scraper: KubeletScraper,
        cluster: Arc<ClusterCache>,
        store: Arc<Store>,
        telemetry: Telemetry,
        clock: Clock,
    ) -> Collector {
        let health = Arc::new(CollectionHealth::new(clock.now_ms()));
        Collector {
            config,
            scraper,
            cluster,
            store,
            telemetry,
            clock,
            health,
            slots: Mutex::default(),
            plugins: Mutex::default(),
            retired: Mutex::default(),
            cycle_lock: tokio::sync::Mutex::new(()),
            cycle_now: tokio::sync::Notify::new(),
            prometheus: Mutex::default(),
            resource_source: ResourceSource::default(),
            discovery: Arc::default(),
            objects: None,
        }
    }

    /// Resolves plugins' custom metrics against `discovery`'s API resources (handing them to
    /// plugins when they change) and, when `objects` is given, watches the objects of the
    /// resources they describe.
    pub fn with_discovery(
        mut self,
        discovery: Arc<Discovery>,
        objects: Option<Arc<ObjectWatches>>,
    ) -> Collector {
        self.discovery = discovery;
        self.objects = objects;
        self
    }

    /// The API resources in use.
    pub fn discovery(&self) -> &Arc<Discovery> {
        &self.discovery
    }

    /// Builds `metrics.k8s.io` from `source` (default: the kubelets).
    pub fn with_resource_source(mut self, source: ResourceSource) -> Collector {
        self.resource_source = source;
        self
    }

    /// Runs plugins' Prometheus inputs against `source`'s backends.
    pub fn with_prometheus(self, source: Arc<PrometheusSource>) -> Collector {
        *self.prometheus.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
        self
    }

    /// The Prometheus backends in use.
    pub fn prometheus(&self) -> Option<Arc<PrometheusSource>> {
        self.prometheus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `plugins` from the next cycle on (replacing any set before).
    pub fn set_plugins(&self, plugins: PluginSet) {
        *self.plugins.lock().unwrap_or_else(|e| e.into_inner()) = Some(PluginStage {
            set: plugins,
            cluster_series: ClusterSeries::default(),
        });
    }

    /// Replaces the plugin set and the Prometheus backends between cycles: waits for a cycle in
    /// flight to finish, then hands the current set (if any) and the backends' slot to `f`,
    /// and installs the set it returns (with whatever it left in the slot). The next cycle is
    /// the first to run the new set, so every snapshot holds the metrics of exactly one set,
    /// read from one set of backends.
    pub async fn replace_plugins<R>(
        &self,
        f: impl FnOnce(Option<PluginSet>, &mut Option<Arc<PrometheusSource>>) -> (Option<PluginSet>, R),
    ) -> R {
        let _guard = self.cycle_lock.lock().await;
        let mut slot = self.plugins.lock().unwrap_or_else(|e| e.into_inner());
        let (set, cluster_series) = match slot.take() {
            Some(stage) => (Some(stage.set), stage.cluster_series),
            None => (None, ClusterSeries::default()),
        };
        let mut backends = self.prometheus.lock().unwrap_or_else(|e| e.into_inner());
        let (set, result) = f(set, &mut backends);
        *slot = set.map(|set| PluginStage {
            set,
            cluster_series,
        });
        result
    }

    /// Asks [`Collector::run`] for a cycle now instead of at the next tick.
    pub fn request_cycle(&self) {
        self.cycle_now.notify_one();
    }

    /// Liveness and readiness facts.
    pub fn health(&self) -> Arc<CollectionHealth> {
        self.health.clone()
    }

    /// Runs cycles every `interval_secs` until the task is dropped. A cycle that overruns delays
    /// the next one rather than overlapping it.
    pub async fn run(self: Arc<Self>) {
        let mut ticker =
            tokio::time::interval(Duration::from_secs(self.config.interval_secs.get().into()));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.cycle_now.notified() => ticker.reset(),
            }
            self.run_cycle().await;
        }
    }

    /// Runs one cycle now (cycles never overlap) and publishes its snapshot.
    pub async fn run_cycle(&self) -> CycleReport {
        let _guard = self.cycle_lock.lock().await;
        let started = Instant::now();
        // The snapshot replaced a cycle ago goes before this one is built, off the async
        // workers, so no more than two (the published one and the new) are held at a time.
        let retired = self
            .retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if retired.is_some() {
            tokio::task::spawn_blocking(move || drop(retired));
        }
        let now = self.clock.now_ms();
        self.health
            .last_cycle_start_ms
            .store(now, Ordering::Release);
        let cycle = self.health.cycles.load(Ordering::Acquire) + 1;
        let mut slots = std::mem::take(&mut *self.slots.lock().unwrap_or_else(|e| e.into_inner()));
        let mut stage = self
            .plugins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(stage) = stage.as_mut() {
            stage.set.set_api_table(self.discovery.table());
        }
        if let Some(objects) = &self.objects {
            objects.set(
                stage
                    .as_ref()
                    .map(|s| s.set.described_resources())
                    .unwrap_or_default(),
            );
        }
        let wanted = Arc::new(
            stage
                .as_ref()
                .map(|s| Wanted::of(&s.set))
                .unwrap_or_default(),
        );
        // With plugins as the resource source, kubelets are scraped only for plugins' inputs.
        let core = self.resource_source == ResourceSource::Kubelets;
        let nodes: Vec<Arc<NodeInfo>> = if core || wanted.wants_kubelets() {
            self.cluster.read().nodes.values().cloned().collect()
        } else {
            Vec::new()
        };
        // Prometheus inputs run beside the kubelet scrapes, on their own task.
        let queries = match self.prometheus() {
            Some(source) if wanted.queries().next().is_some() => {
                let wanted = wanted.clone();
                Some(tokio::spawn(async move {
                    source.collect(wanted.queries(), now).await
                }))
            }
            _ => None,
        };
        let token: Option<Arc<str>> = self.scraper.read_token().map(Arc::from);
        let semaphore = Arc::new(Semaphore::new(self.config.concurrency.get() as usize));
        let timeout_secs = self.config.timeout_secs.get_ref().get();
        let fresh_window_ms = i64::from(self.config.interval_secs.get()) * 1000;
        let jitter_ms = self.config.jitter_ms;
        let mut tasks = JoinSet::new();
        for node in nodes {
            let mut slot = slots.remove(&node.name).unwrap_or_default();
            slot.batches.clear();
            let (scraper, semaphore, token, clock, wanted, telemetry) = (
                self.scraper.clone(),
                semaphore.clone(),
                token.clone(),
                self.clock.clone(),
                wanted.clone(),
                self.telemetry.clone(),
            );
            tasks.spawn(async move {
                if jitter_ms > 0 {
                    let delay = rand::rng().random_range(0..=jitter_ms);
                    tokio::time::sleep(Duration::from_millis(delay.into())).await;
                }
                let _permit = semaphore.acquire_owned().await.expect("never closed");
                let began = Instant::now();
                let result = tokio::time::timeout(
                    Duration::from_secs(timeout_secs.into()),
                    scrape_node(
                        &scraper,
                        &mut slot,
                        core,
                        &node,
                        token.as_deref(),
                        &clock,
                        fresh_window_ms,
                        &wanted,
                        &telemetry,
                    ),
                )
                .await
                .unwrap_or(Err(ScrapeError::Timeout(timeout_secs)));
                if result.is_err() {
                    // A connection left mid-request is unusable.
                    slot.conn = Connection::default();
                }
                (node, slot, result, began.elapsed())
            });
        }
        let mut report = CycleReport {
            cycle,
            ..CycleReport::default()
        };
        while let Some(joined) = tasks.join_next().await {
            let Ok((node, slot, result, elapsed)) = joined else {
                continue;
            };
            let outcome = if result.is_ok() { "success" } else { "error" };
            self.telemetry
                .scrape_duration
                .get_or_create(&OutcomeLabels { outcome })
                .observe(elapsed.as_secs_f64());
            match result {
                Ok(()) => report.scraped += 1,
                Err(error) => {
                    let reason = error.reason();
                    self.telemetry
                        .scrape_failures
                        .get_or_create(&ReasonLabels { reason })
                        .inc();
                    tracing::warn!(node = %node.name, reason, %error, "kubelet scrape failed; keeping its last values until they expire");
                    report.failed.push((node.name.to_string(), reason));
                }
            }
            slots.insert(node.name.clone(), slot);
        }
        let queries = match queries {
            Some(task) => task.await.ok(),
            None => None,
        };
        // The join is CPU-heavy (every pod of the cluster): it runs on a blocking thread so the
        // async workers keep answering API requests meanwhile.
        let (cluster, telemetry) = (self.cluster.clone(), self.telemetry.clone());
        let interval_ms = u64::from(self.config.interval_secs.get()) * 1000;
        let (slots, snapshot, stage) = tokio::task::spawn_blocking(move || {
            let state = cluster.read();
            let set = |kind, n: usize| {
                telemetry
                    .cluster_objects
                    .get_or_create(&KindLabels { kind })
                    .set(n as i64)
            };
            set("node", state.nodes.len());
            set("pod", state.pod_count());
            slots.retain(|name, _| state.nodes.contains_key(name));
            let mut snapshot = if core {
                snapshot::build(cycle, &state, slots.iter().map(|(n, s)| (n, &s.series)))
            } else {
                Snapshot {
                    cycle,
                    ..Snapshot::default()
                }
            };
            if let Some(stage) = stage.as_mut() {
                let mut samples = CycleSamples::default();
                if let Some(collected) = queries {
                    samples.queries = collected.results;
                    samples.default_backend = collected.default_backend;
                }
                for (source, batch) in slots.values().flat_map(|s| &s.batches) {
                    samples.add(*source, batch.clone());
                }
                if wanted.wants(Source::Cluster) {
                    let batch = crate::sources::cluster::samples::build(
                        &state,
                        now,
                        |name| wanted.matches(Source::Cluster, name),
                        &mut stage.cluster_series,
                    );
                    samples.add(Source::Cluster, Arc::new(batch));
                }
                snapshot.plugin_metrics = stage.set.run_cycle(&samples, &state, now, interval_ms);
            }
            if !core {
                let metrics = std::mem::take(&mut snapshot.plugin_metrics);
                resource_values::fill(&mut snapshot, &state, &metrics, now);
                snapshot.plugin_metrics = metrics;
                let unavailable = &snapshot.unavailable;
                for (kind, message) in [("nodes", &unavailable.nodes), ("pods", &unavailable.pods)]
                {
                    if let Some(message) = message {
                        tracing::warn!(
                            kind,
                            "metrics.k8s.io {kind} unavailable this cycle: {message}"
                        );
                    }
                }
            }
            drop(state);
            (slots, snapshot, stage)
        })
        .await
        .expect("snapshot build does not panic");
        *self.slots.lock().unwrap_or_else(|e| e.into_inner()) = slots;
        if let Some(stage) = stage {
            // A set installed during the cycle wins over the one that ran.
            self.plugins
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(stage);
        }
        report.nodes_served = snapshot.nodes.len();
        report.pods_served = snapshot.pod_count();
        self.telemetry
            .objects_served
            .get_or_create(&KindLabels { kind: "node" })
            .set(report.nodes_served as i64);
        self.telemetry
            .objects_served
            .get_or_create(&KindLabels { kind: "pod" })
            .set(report.pods_served as i64);
        // Readers may still hold the snapshot just replaced; it is kept until the next cycle
        // starts and freed then, off the async workers, so no API request pays for freeing a
        // whole cluster.
        let replaced = self.store.publish(snapshot);
        *self.retired.lock().unwrap_or_else(|e| e.into_inner()) = Some(replaced);
        self.health.cycles.store(cycle, Ordering::Release);
        self.health.first_cycle_done.store(true, Ordering::Release);
        self.telemetry.cycles.inc();
        let elapsed = started.elapsed().as_secs_f64();
        self.telemetry.cycle_duration.observe(elapsed);
        self.telemetry.last_cycle_duration.set(elapsed);
        tracing::debug!(
            cycle,
            scraped = report.scraped,
            failed = report.failed.len(),
            nodes = report.nodes_served,
            pods = report.pods_served,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "collection cycle done"
        );
        report
    }
}

/// Scrapes one node: `/metrics/resource` for the core metrics when `core` (its failure fails
/// the node) or for plugins, then the endpoints plugins read (their failures are logged and
/// counted, and leave those samples out of this cycle).
#[allow(clippy::too_many_arguments)]
async fn scrape_node(
    scraper: &KubeletScraper,
    slot: &mut NodeSlot,
    core: bool,
    node: &NodeInfo,
    token: Option<&str>,
    clock: &Clock,
    fresh_window_ms: i64,
    wanted: &Wanted,
    telemetry: &Telemetry,
) -> Result<(), ScrapeError> {
    let body = if core || wanted.wants(Source::KubeletResource) {
        scraper.fetch_resource(&mut slot.conn, node, token).await?
    } else {
        Default::default()
    };
    let text = std::str::from_utf8(&body)
        .map_err(|e| ScrapeError::Decode(format!("body is not UTF-8: {e}")))?;
    let now_ms = clock.now_ms();
    if core {
        let scrape = decode(text, now_ms).map_err(|e| ScrapeError::Decode(e.to_string()))?;
        let report = slot.series.ingest(&scrape, fresh_window_ms);
        if report.incomplete_pods > 0 || report.node_incomplete || report.out_of_order > 0 {
            tracing::debug!(node = %node.name, ?report, "kubelet reported incomplete or out-of-order samples");
        }
    }
    if wanted.wants(Source::KubeletResource) {
        let want = |name: &str| wanted.matches(Source::KubeletResource, name);
        match slot.samples.resource(text, &node.name, now_ms, want) {
            Ok(batch) => slot
                .batches
                .push((Source::KubeletResource, Arc::new(batch))),
            Err(error) => plugin_input_failed(telemetry, node, Source::KubeletResource, &error),
        }
    } else {
        slot.samples.clear(Source::KubeletResource);
    }
    for (source, path) in [
        (Source::KubeletSummary, SUMMARY_PATH),
        (Source::KubeletCadvisor, CADVISOR_PATH),
    ] {
        if !wanted.wants(source) {
            slot.samples.clear(source);
            continue;
        }
        let body = match scraper.fetch(&mut slot.conn, node, token, path).await {
            Ok(body) => body,
            Err(error) => {
                // A connection left mid-request is unusable.
                slot.conn = Connection::default();
                plugin_input_failed(telemetry, node, source, &error);
                continue;
            }
        };
        let want = |name: &str| wanted.matches(source, name);
        let decoded = if source == Source::KubeletSummary {
            slot.samples
                .summary(&body, &node.name, want)
                .map_err(|e| e.to_string())
        } else {
            std::str::from_utf8(&body)
                .map_err(|e| format!("body is not UTF-8: {e}"))
                .and_then(|text| {
                    slot.samples
                        .cadvisor(text, &node.name, clock.now_ms(), want)
                        .map_err(|e| e.to_string())
                })
        };
        match decoded {
            Ok(batch) => slot.batches.push((source, Arc::new(batch))),
            Err(error) => plugin_input_failed(telemetry, node, source, &error),
        }
    }
    Ok(())
}

fn plugin_input_failed(
    telemetry: &Telemetry,
    node: &NodeInfo,
    source: Source,
    error: &dyn std::fmt::Display,
) {
    telemetry
        .plugin_input_failures
        .get_or_create(&SourceLabels {
            source: source.as_str(),
        })
        .inc();
    tracing::warn!(node = %node.name, source = source.as_str(), %error, "kubelet endpoint for plugins failed; its samples are left out of this cycle");
}
