//! Assembles a running gateway from a [`Config`]: cluster watches, the collector, the store and
//! the HTTPS API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use anyhow::Context;

use crate::api::auth::ca_bundle::Bundles;
use crate::api::auth::{Auth, guard};
use crate::api::server::{RunningServer, ServingCert, serve};
use crate::api::tls::{RELOAD_INTERVAL, ServingTls};
use crate::api::{ApiState, router};
use crate::clock::Clock;
use crate::config::Config;
use crate::crd::ResourceWatch;
use crate::pipeline::Collector;
use crate::plugins::{PluginRuntime, PluginSet};
use crate::reload::trigger::ReloadHandle;
use crate::reload::watch::watch_config;
use crate::reload::{Reloader, ReloaderParts};
use crate::sources::cluster::objects::ObjectWatches;
use crate::sources::cluster::{ClusterCache, ClusterWatch, kube_config};
use crate::sources::discovery::Discovery;
use crate::sources::kubelet::KubeletScraper;
use crate::sources::prometheus::PrometheusSource;
use crate::store::Store;
use crate::telemetry::{PluginLabels, Telemetry};

/// How to start.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Time source (tests share a manual clock with the kubelet simulator).
    pub clock: Clock,
    /// Run collection cycles on the configured interval; when false, only
    /// [`Collector::run_cycle`] calls collect (tests drive cycles explicitly).
    pub collect_on_interval: bool,
    /// The file the config was read from: enables reloads (file watch, SIGHUP via
    /// [`Gateway::reload`], `POST /-/reload`).
    pub config_path: Option<PathBuf>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            clock: Clock::system(),
            collect_on_interval: true,
            config_path: None,
        }
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// Where the API listens.
    pub local_addr: SocketAddr,
    /// The served snapshot.
    pub store: Arc<Store>,
    /// The collector (tests call `run_cycle`).
    pub collector: Arc<Collector>,
    /// Cluster state from the watches.
    pub cluster: Arc<ClusterCache>,
    /// The cluster's API resources, refreshed every `kubernetes.discovery_refresh_secs`.
    pub discovery: Arc<Discovery>,
    /// Metadata watches of the resources plugins' custom metrics describe.
    pub objects: Arc<ObjectWatches>,
    /// The Kubernetes client (discovery refreshes on demand).
    client: KubeClient,
    /// Self-metrics.
    pub telemetry: Telemetry,
    /// Plugins not running after loading, with the reason (those that failed only in
    /// `configure` are retried every cycle).
    pub plugin_errors: Vec<(String, String)>,
    /// Reload requests, when started from a config file.
    pub reload: Option<ReloadHandle>,
    /// `MetricsPlugin` watch, leader election and status, when `custom_resources.enabled`.
    pub resources: Option<ResourceWatch>,
    server: RunningServer,
    watch: ClusterWatch,
    /// Background tasks of the API (CA bundle watch, certificate reload), aborted on shutdown.
    api_tasks: Vec<tokio::task::JoinHandle<()>>,
    collection: Option<CollectionRuntime>,
}

/// The Kubernetes client, which has no `Debug` of its own.
struct KubeClient(kube::Client);

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("kube::Client")
    }
}

/// The collection runtime; stopped without blocking when dropped (also from async code).
#[derive(Debug)]
struct CollectionRuntime(Option<tokio::runtime::Runtime>);

impl Drop for CollectionRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Gateway {
    /// Starts everything; returns once the API is listening (before the first cycle).
    pub async fn start(config: Config, options: StartOptions) -> anyhow::Result<Gateway> {
        let kube = kube_config(&config.kubernetes).await?;
        let default_roots = kube_roots(&kube);
        let client = kube::Client::try_from(kube).context("building Kubernetes client")?;
        let telemetry = Telemetry::new();
        let cluster = Arc::new(ClusterCache::default());
        let store = Arc::new(Store::default());
        let scraper = KubeletScraper::new(&config.kubelet, default_roots)
            .context("setting up kubelet scraping")?;
        let discovery = Arc::new(Discovery::default());
        let objects = Arc::new(ObjectWatches::new(
            client.clone(),
            cluster.clone(),
            telemetry.clone(),
        ));
        let collector = Collector::new(
            config.kubelet.clone(),
            scraper,
            cluster.clone(),
            store.clone(),
            telemetry.clone(),
            options.clock.clone(),
        )
        .with_resource_source(config.metrics.resource_source)
        .with_discovery(discovery.clone(), Some(objects.clone()));
        let collector = Arc::new(if config.prometheus.is_empty() {
            collector
        } else {
            let source =
                PrometheusSource::new(&config.prometheus, &config.base_dir, telemetry.clone())
                    .context("setting up the Prometheus backends")?;
            collector.with_prometheus(Arc::new(source))
        });
        let (runtime, plugin_errors, fingerprints) = if config.plugins.is_empty() {
            (None, Vec::new(), HashMap::new())
        } else {
            let runtime = PluginRuntime::new(&config.plugin_runtime, &telemetry)
                .context("starting the plugin runtime")?;
            let (rt, config) = (runtime.clone(), config.clone());
            // Compiling components is CPU-bound: off the async workers.
            let set = tokio::task::spawn_blocking(move || PluginSet::load(&rt, &config))
                .await
                .context("loading plugins")?;
            let errors = set.errors();
            for (plugin, _) in &errors {
                telemetry
                    .config_plugin_load_errors
                    .get_or_create(&PluginLabels {
                        plugin: plugin.clone(),
                    })
                    .inc();
            }
            let fingerprints = set.fingerprints();
            tracing::info!(plugins = set.len(), failed = errors.len(), "plugins loaded");
            collector.set_plugins(set);
            (Some(runtime), errors, fingerprints)
        };
        let max_sample_age_ms = Arc::new(AtomicI64::new(
            i64::from(config.max_sample_age_secs()) * 1000,
        ));
        let mut api_tasks = Vec::new();
        let mut resources = None;
        let reload = match &options.config_path {
            Some(path) => {
                let reloader = Arc::new(Reloader::new(ReloaderParts {
                    path: path.clone(),
                    config: config.clone(),
                    fingerprints,
                    runtime,
                    collector: collector.clone(),
                    telemetry: telemetry.clone(),
                    clock: options.clock.clone(),
                    max_sample_age_ms: max_sample_age_ms.clone(),
                    cycle_after: options.collect_on_interval,
                }));
                let (handle, task) = ReloadHandle::spawn(reloader.clone());
                api_tasks.push(task);
                api_tasks.push(watch_config(path, handle.clone())?);
                if config.custom_resources.enabled {
                    resources = Some(crate::crd::start(
                        client.clone(),
                        &config.custom_resources,
                        reloader,
                        handle.clone(),
                    ));
                }
                Some(handle)
            }
            None if config.custom_resources.enabled => anyhow::bail!(
                "custom_resources.enabled needs the gateway started from a config file \
                 (MetricsPlugins are applied through its reload path)"
            ),
            None => None,
        };
        let watch = ClusterWatch::start(client.clone(), cluster.clone(), telemetry.clone());
        let refresh = Duration::from_secs(config.kubernetes.discovery_refresh_secs.get().into());
        api_tasks.push(discovery.clone().spawn(client.clone(), refresh));
        let interval_ms = i64::from(config.kubelet.interval_secs.get()) * 1000;
        let state = ApiState {
            store: store.clone(),
            cluster: cluster.clone(),
            health: collector.health(),
            telemetry: telemetry.clone(),
            clock: options.clock.clone(),
            max_sample_age_ms,
            liveness_limit_ms: 3 * interval_ms
                + i64::from(config.kubelet.timeout_secs.get_ref().get()) * 1000,
            reload: reload.clone(),
        };
        let cert = ServingCert::from_config(&config.server)?;
        let auth = if config.authentication.insecure_disable {
            tracing::error!(
                "authentication.insecure_disable = true: NO AUTHENTICATION OR AUTHORIZATION, \
                 anyone who reaches the port reads every metric (development only)"
            );
            None
        } else {
            Some(Auth::new(&config, &client, &options.clock, &telemetry).await?)
        };
        let tls = Arc::new(ServingTls::new(&config.server, cert, auth.is_some())?);
        if let (Some(c), Some(k)) = (&config.server.tls_cert_file, &config.server.tls_key_file) {
            api_tasks.push(tls.clone().watch_files(
                config.resolve(c.get_ref()),
                config.resolve(k.get_ref()),
                RELOAD_INTERVAL,
                telemetry.clone(),
            ));
        }
        let app = router(state);
        let (app, bundles) = match auth {
            Some(auth) => {
                let bundles = auth.bundles.clone();
                tls.set_client_ca_hints(bundles.load().hint_subjects());
                api_tasks.push(bundles.clone().watch(client.clone()));
                api_tasks.push(follow_hints(bundles.clone(), tls.clone()));
                (
                    app.layer(axum::middleware::from_fn_with_state(Arc::new(auth), guard)),
                    Some(bundles),
                )
            }
            None => (app, None),
        };
        let server = serve(config.server.listen_addr, tls, bundles, app).await?;
        let collection = if options.collect_on_interval {
            // Collection has its own runtime and threads: a cycle's burst of thousands of
            // scrape tasks never queues ahead of API requests on the API's workers, and, at a
            // lower priority, its CPU work (plugins, the snapshot) yields the cores to them.
            let nice = config.kubelet.collector_nice.get();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.kubelet.collector_threads.get() as usize)
                .thread_name("collector")
                .on_thread_start(move || lower_thread_priority(nice))
                .enable_all()
                .build()
                .context("starting the collection runtime")?;
            let (collector, cluster) = (collector.clone(), cluster.clone());
            runtime.spawn(async move {
                // The first cycle waits for the cluster lists, so it scrapes every node.
                cluster.wait_for(|_| cluster.synced()).await;
                collector.run().await
            });
            Some(CollectionRuntime(Some(runtime)))
        } else {
            None
        };
        Ok(Gateway {
            local_addr: server.local_addr,
            store,
            collector,
            cluster,
            discovery,
            objects,
            client: KubeClient(client),
            telemetry,
            plugin_errors,
            reload,
            resources,
            server,
            watch,
            api_tasks,
            collection,
        })
    }

    /// Reads the cluster's API discovery now (besides every `kubernetes.discovery_refresh_secs`);
    /// the next cycle hands a changed table to the plugins.
    pub async fn refresh_discovery(&self) {
        self.discovery.refresh(&self.client.0).await;
    }

    /// Stops collecting and watching, and shuts the server down gracefully.
    pub async fn shutdown(self) {
        drop(self.collection);
        self.watch.abort();
        self.objects.abort();
        for task in &self.api_tasks {
            task.abort();
        }
        for task in self.resources.iter().flat_map(|r| &r.tasks) {
            task.abort();
        }
        self.server.shutdown().await;
    }
}

/// Sets the calling thread's niceness (`kubelet.collector_nice`); on failure the thread keeps
/// its priority, with a warning.
fn lower_thread_priority(nice: i32) {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::warn!(nice, error = %e, "could not lower a collection thread's priority");
    }
}

/// Keeps the TLS layer's client-CA hints in step with the bundles.
fn follow_hints(bundles: Arc<Bundles>, tls: Arc<ServingTls>) -> tokio::task::JoinHandle<()> {
    let mut changed = bundles.subscribe();
    tokio::spawn(async move {
        while changed.changed().await.is_ok() {
            tls.set_client_ca_hints(bundles.load().hint_subjects());
        }
    })
}

/// The API server's CA as a root store: kubelet serving certificates are verified against it
/// unless `kubelet.ca_file` says otherwise.
fn kube_roots(config: &kube::Config) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for der in config.root_cert.iter().flatten() {
        if let Err(error) = roots.add(der.clone().into()) {
            tracing::warn!(%error, "ignoring an unusable certificate in the Kubernetes CA bundle");
        }
    }
    roots
}
