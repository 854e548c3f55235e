//! The gateway's own metrics, served on `/metrics`: one place that names them, with bounded
//! label values only (never node, pod or URL names).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// `outcome` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `success` or `error`.
    pub outcome: &'static str,
}

/// `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// A fixed failure reason (see `sources::kubelet::ScrapeError::reason`).
    pub reason: &'static str,
}

/// `kind` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `node` or `pod`.
    pub kind: &'static str,
}

/// `route` and `code` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route template, e.g. `/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods`.
    pub route: String,
    /// HTTP status code.
    pub code: u16,
}

/// `source` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// A plugin input source (`kubelet-summary`, `kubelet-cadvisor`, …).
    pub source: &'static str,
}

/// `plugin` label (a configured plugin name: bounded by the config).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    /// The plugin's name.
    pub plugin: String,
}

/// `plugin` and `call` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginCallLabels {
    /// The plugin's name.
    pub plugin: String,
    /// The export called: `configure`, `process`, `snapshot` or `restore`.
    pub call: &'static str,
}

/// `plugin`, `call` and `outcome` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginOutcomeLabels {
    /// The plugin's name.
    pub plugin: String,
    /// The export called.
    pub call: &'static str,
    /// `ok`, `error`, `trap`, `deadline` or `memory`.
    pub outcome: &'static str,
}

/// `plugin` and `reason` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginDropLabels {
    /// The plugin's name.
    pub plugin: String,
    /// Why values were dropped (see `plugins::output::DropReason`).
    pub reason: &'static str,
}

/// `method` and `result` labels of authentication outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthnLabels {
    /// `front-proxy`, `client-cert`, `token`, `anonymous`, or `none` when it failed.
    pub method: &'static str,
    /// `success`, `failure` (no valid credential) or `error` (a review could not be made).
    pub result: &'static str,
}

/// `decision` label of authorization outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthzLabels {
    /// `allowed`, `denied` or `error` (the review could not be made).
    pub decision: &'static str,
}

/// `cache` and `result` labels of review cache lookups.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthCacheLabels {
    /// `token` or `authorization`.
    pub cache: &'static str,
    /// `hit` or `miss`.
    pub result: &'static str,
}

/// `backend` label (a configured Prometheus backend name: bounded by the config).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// The backend's name.
    pub backend: String,
}

/// `backend` and `outcome` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendOutcomeLabels {
    /// The backend's name.
    pub backend: String,
    /// `success`, or why not (see `sources::prometheus::client::RequestError::outcome`).
    pub outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs … ~13 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 19))
}

fn plugin_call_histogram() -> Histogram {
    // 5 µs … ~10 s.
    Histogram::new(exponential_buckets(0.000005, 2.0, 22))
}

/// `trigger` and `outcome` labels of config reloads.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `file`, `sighup` or `http`.
    pub trigger: &'static str,
    /// `success` or `error`.
    pub outcome: &'static str,
}

/// Every self-metric, cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    registry: Arc<Registry>,
    /// Kubelet scrape duration by outcome.
    pub scrape_duration: HistogramFamily<OutcomeLabels>,
    /// Kubelet scrape failures by reason.
    pub scrape_failures: Family<ReasonLabels, Counter>,
    /// Collection cycle duration.
    pub cycle_duration: Histogram,
    /// Completed collection cycles.
    pub cycles: Counter,
    /// Duration of the latest cycle.
    pub last_cycle_duration: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Objects with metrics in the current snapshot, by kind.
    pub objects_served: Family<KindLabels, Gauge>,
    /// Objects known from the cluster watch, by kind.
    pub cluster_objects: Family<KindLabels, Gauge>,
    /// Watch streams restarted after an error, by kind.
    pub watch_restarts: Family<KindLabels, Counter>,
    /// API request latency by route and status code.
    pub api_request_duration: HistogramFamily<RouteLabels>,
    /// Calls into plugins by plugin, export and outcome.
    pub plugin_calls: Family<PluginOutcomeLabels, Counter>,
    /// Duration of calls into plugins by plugin and export.
    pub plugin_call_duration: HistogramFamily<PluginCallLabels>,
    /// Values plugins published (custom, external and derived samples) that were accepted.
    pub plugin_values_published: Family<PluginLabels, Counter>,
    /// Values plugins returned that were dropped, by reason.
    pub plugin_values_dropped: Family<PluginDropLabels, Counter>,
    /// Plugin instances created again after a fault discarded the previous one.
    pub plugin_restarts: Family<PluginLabels, Counter>,
    /// Replans refused (invalid, or taking another plugin's metric); the old plan is kept.
    pub plugin_replans_refused: Family<PluginLabels, Counter>,
    /// Per-node fetches or decodes of plugin inputs that failed, by source.
    pub plugin_input_failures: Family<SourceLabels, Counter>,
    /// Prometheus requests (queries and series discoveries) by backend and outcome.
    pub prometheus_queries: Family<BackendOutcomeLabels, Counter>,
    /// Duration of Prometheus requests by backend.
    pub prometheus_query_duration: HistogramFamily<BackendLabels>,
    /// 1 when a backend answered in the latest cycle that asked it anything, else 0.
    pub prometheus_backend_up: Family<BackendLabels, Gauge>,
    /// Series held from the latest series discoveries, by backend.
    pub prometheus_discovered_series: Family<BackendLabels, Gauge>,
    /// Authentication outcomes by method and result.
    pub authn_requests: Family<AuthnLabels, Counter>,
    /// Authorization decisions.
    pub authz_decisions: Family<AuthzLabels, Counter>,
    /// Token-review and authorization cache lookups, by cache and hit or miss.
    pub auth_cache_lookups: Family<AuthCacheLabels, Counter>,
    /// Serving certificate reloads by outcome.
    pub tls_cert_reloads: Family<OutcomeLabels, Counter>,
    /// 1 when the latest config reload succeeded (or none was tried), else 0.
    pub config_last_reload_successful: Gauge,
    /// When the running config was last applied (start or successful reload), Unix seconds.
    pub config_last_reload_success_timestamp: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Duration of config reloads (trigger to new set installed).
    pub config_reload_duration: Histogram,
    /// Config reloads by trigger and outcome.
    pub config_reloads: Family<ReloadLabels, Counter>,
    /// Plugins that failed to load or configure during a reload (or at start), by plugin.
    pub config_plugin_load_errors: Family<PluginLabels, Counter>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    /// Creates and registers every metric.
    pub fn new() -> Telemetry {
        let mut registry = Registry::with_prefix("metrics_gateway");
        let scrape_duration: HistogramFamily<OutcomeLabels> =
            Family::new_with_constructor(latency_histogram);
        let scrape_failures = Family::<ReasonLabels, Counter>::default();
        let cycle_duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let cycles = Counter::default();
        let last_cycle_duration = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let objects_served = Family::<KindLabels, Gauge>::default();
        let cluster_objects = Family::<KindLabels, Gauge>::default();
        let watch_restarts = Family::<KindLabels, Counter>::default();
        let api_request_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "kubelet_scrape_duration",
            "Duration of one kubelet scrape, by outcome",
            Unit::Seconds,
            scrape_duration.clone(),
        );
        registry.register(
            "kubelet_scrape_failures",
            "Kubelet scrapes that failed, by reason",
            scrape_failures.clone(),
        );
        registry.register_with_unit(
            "cycle_duration",
            "Duration of one collection cycle",
            Unit::Seconds,
            cycle_duration.clone(),
        );
        registry.register("cycles", "Completed collection cycles", cycles.clone());
        registry.register_with_unit(
            "cycle_last_duration",
            "Duration of the latest collection cycle",
            Unit::Seconds,
            last_cycle_duration.clone(),
        );
        registry.register(
            "objects_served",
            "Objects with metrics in the current snapshot, by kind",
            objects_served.clone(),
        );
        registry.register(
            "cluster_objects",
            "Objects known from the cluster watch, by kind",
            cluster_objects.clone(),
        );
        registry.register(
            "cluster_watch_restarts",
            "Cluster watch streams restarted after an error, by kind",
            watch_restarts.clone(),
        );
        let plugin_calls = Family::<PluginOutcomeLabels, Counter>::default();
        let plugin_call_duration: HistogramFamily<PluginCallLabels> =
            Family::new_with_constructor(plugin_call_histogram);
        let plugin_values_published = Family::<PluginLabels, Counter>::default();
        let plugin_values_dropped = Family::<PluginDropLabels, Counter>::default();
        let plugin_restarts = Family::<PluginLabels, Counter>::default();
        let plugin_replans_refused = Family::<PluginLabels, Counter>::default();
        registry.register(
            "plugin_calls",
            "Calls into plugins, by plugin, export and outcome",
            plugin_calls.clone(),
        );
        registry.register_with_unit(
            "plugin_call_duration",
            "Duration of one call into a plugin, by plugin and export",
            Unit::Seconds,
            plugin_call_duration.clone(),
        );
        registry.register(
            "plugin_values_published",
            "Values returned by plugins and accepted",
            plugin_values_published.clone(),
        );
        registry.register(
            "plugin_values_dropped",
            "Values returned by plugins and dropped, by reason",
            plugin_values_dropped.clone(),
        );
        registry.register(
            "plugin_instance_restarts",
            "Plugin instances created again after a fault discarded the previous one",
            plugin_restarts.clone(),
        );
        registry.register(
            "plugin_replans_refused",
            "Plans a plugin returned in replan and the host refused (invalid, or taking another plugin's metric)",
            plugin_replans_refused.clone(),
        );
        let plugin_input_failures = Family::<SourceLabels, Counter>::default();
        registry.register(
            "plugin_input_failures",
            "Kubelet endpoints read for plugins whose fetch or decode failed on a node, by source",
            plugin_input_failures.clone(),
        );
        let prometheus_queries = Family::<BackendOutcomeLabels, Counter>::default();
        let prometheus_query_duration: HistogramFamily<BackendLabels> =
            Family::new_with_constructor(latency_histogram);
        let prometheus_backend_up = Family::<BackendLabels, Gauge>::default();
        let prometheus_discovered_series = Family::<BackendLabels, Gauge>::default();
        registry.register(
            "prometheus_queries",
            "Requests to Prometheus backends (instant queries and series discoveries), by backend and outcome",
            prometheus_queries.clone(),
        );
        registry.register_with_unit(
            "prometheus_query_duration",
            "Duration of one request to a Prometheus backend, by backend",
            Unit::Seconds,
            prometheus_query_duration.clone(),
        );
        registry.register(
            "prometheus_backend_up",
            "Whether the backend answered in the latest cycle that asked it anything (1) or not (0)",
            prometheus_backend_up.clone(),
        );
        registry.register(
            "prometheus_discovered_series",
            "Series (and label names) the latest discoveries returned, by backend; a discovery by shape counts its series, not its shapes",
            prometheus_discovered_series.clone(),
        );
        registry.register_with_unit(
            "api_request_duration",
            "API request latency by route and status code",
            Unit::Seconds,
            api_request_duration.clone(),
        );
        let authn_requests = Family::<AuthnLabels, Counter>::default();
        let authz_decisions = Family::<AuthzLabels, Counter>::default();
        let auth_cache_lookups = Family::<AuthCacheLabels, Counter>::default();
        let tls_cert_reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "authn_requests",
            "API requests authenticated, by method and result",
            authn_requests.clone(),
        );
        registry.register(
            "authz_decisions",
            "API requests authorized, by decision",
            authz_decisions.clone(),
        );
        registry.register(
            "auth_cache_lookups",
            "Token-review and authorization cache lookups, by cache and result",
            auth_cache_lookups.clone(),
        );
        registry.register(
            "tls_cert_reloads",
            "Serving certificate reloads after the files changed, by outcome",
            tls_cert_reloads.clone(),
        );
        let config_last_reload_successful = Gauge::default();
        config_last_reload_successful.set(1);
        let config_last_reload_success_timestamp =
            Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let config_reload_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        let config_plugin_load_errors = Family::<PluginLabels, Counter>::default();
        registry.register(
            "config_last_reload_successful",
            "Whether the latest config reload succeeded (1) or failed (0)",
            config_last_reload_successful.clone(),
        );
        registry.register_with_unit(
            "config_last_reload_success_timestamp",
            "When the running config was applied, Unix time",
            Unit::Seconds,
            config_last_reload_success_timestamp.clone(),
        );
        registry.register_with_unit(
            "config_reload_duration",
            "Duration of one config reload, from trigger to the new plugin set installed",
            Unit::Seconds,
            config_reload_duration.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads, by trigger and outcome",
            config_reloads.clone(),
        );
        registry.register(
            "config_plugin_load_errors",
            "Plugins that failed to load or configure from a new config, by plugin",
            config_plugin_load_errors.clone(),
        );
        Telemetry {
            registry: Arc::new(registry),
            config_last_reload_successful,
            config_last_reload_success_timestamp,
            config_reload_duration,
            config_reloads,
            config_plugin_load_errors,
            authn_requests,
            authz_decisions,
            auth_cache_lookups,
            tls_cert_reloads,
            scrape_duration,
            scrape_failures,
            cycle_duration,
            cycles,
            last_cycle_duration,
            objects_served,
            cluster_objects,
            watch_restarts,
            api_request_duration,
            plugin_calls,
            plugin_call_duration,
            plugin_values_published,
            plugin_values_dropped,
            plugin_restarts,
            plugin_replans_refused,
            plugin_input_failures,
            prometheus_queries,
            prometheus_query_duration,
            prometheus_backend_up,
            prometheus_discovered_series,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
