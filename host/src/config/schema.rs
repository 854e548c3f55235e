//! The configuration schema. Every field here is documented for users in `docs/CONFIG.md`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// The whole `gateway.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTPS server that serves the metrics APIs.
    #[serde(default)]
    pub server: ServerConfig,
    /// How to reach the Kubernetes API.
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
    /// Kubelet scraping.
    #[serde(default)]
    pub kubelet: KubeletConfig,
    /// How core metrics are computed and served.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Who may call the API: client certificates, front-proxy headers, bearer tokens.
    #[serde(default)]
    pub authentication: AuthenticationConfig,
    /// What callers may do: delegated `SubjectAccessReview`s and their cache.
    #[serde(default)]
    pub authorization: AuthorizationConfig,
    /// The plugin runtime.
    #[serde(default)]
    pub plugin_runtime: PluginRuntimeConfig,
    /// Prometheus-compatible backends that plugins' queries run against, by name.
    #[serde(default)]
    pub prometheus: Vec<PrometheusConfig>,
    /// Plugins, run every cycle in this order (a plugin reads the derived series of those
    /// before it).
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// `MetricsPlugin` custom resources: watch, leader election, module fetching.
    #[serde(default)]
    pub custom_resources: CustomResourcesConfig,
    /// The directory relative paths are resolved against (the config file's).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTPS server listens on.
    #[serde(default = "default_listen_addr")]
    pub listen_addr: SocketAddr,
    /// PEM certificate chain for serving.
    pub tls_cert_file: Option<Spanned<PathBuf>>,
    /// PEM private key for serving.
    pub tls_key_file: Option<Spanned<PathBuf>>,
    /// Generate an in-memory self-signed certificate when no files are given (dev and demo only).
    #[serde(default)]
    pub self_signed: bool,
    /// Lowest TLS version accepted.
    #[serde(default)]
    pub tls_min_version: TlsVersion,
    /// Cipher suites by IANA name; empty means rustls' defaults.
    #[serde(default)]
    pub tls_cipher_suites: Vec<Spanned<String>>,
}

/// `server.tls_min_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// `[authentication]`: how callers are identified, in kube-apiserver's order. Unset keys take
/// their value from the `kube-system/extension-apiserver-authentication` ConfigMap.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationConfig {
    /// Unauthenticated requests become `system:anonymous` (instead of a 401).
    #[serde(default)]
    pub anonymous: bool,
    /// CA bundle for client certificates (overrides the ConfigMap's `client-ca-file`).
    pub client_ca_file: Option<Spanned<PathBuf>>,
    /// CA bundle for the front proxy's certificate (overrides `requestheader-client-ca-file`).
    pub requestheader_client_ca_file: Option<Spanned<PathBuf>>,
    /// Common names the front proxy's certificate may have; empty = any the CA signed.
    pub requestheader_allowed_names: Option<Vec<String>>,
    /// Headers carrying the user name from the front proxy.
    pub requestheader_username_headers: Option<Vec<Spanned<String>>>,
    /// Headers carrying groups from the front proxy.
    pub requestheader_group_headers: Option<Vec<Spanned<String>>>,
    /// Header prefixes carrying `extra` attributes from the front proxy.
    pub requestheader_extra_headers_prefix: Option<Vec<Spanned<String>>>,
    /// Authenticate bearer tokens with `TokenReview`s.
    #[serde(default = "default_true")]
    pub token_review: bool,
    /// Seconds a `TokenReview` answer is reused.
    #[serde(default = "default_auth_ttl")]
    pub token_cache_ttl_secs: u32,
    /// Development only: no authentication or authorization at all.
    #[serde(default)]
    pub insecure_disable: bool,
}

fn default_true() -> bool {
    true
}

fn default_auth_ttl() -> u32 {
    10
}

impl Default for AuthenticationConfig {
    fn default() -> Self {
        AuthenticationConfig {
            anonymous: false,
            client_ca_file: None,
            requestheader_client_ca_file: None,
            requestheader_allowed_names: None,
            requestheader_username_headers: None,
            requestheader_group_headers: None,
            requestheader_extra_headers_prefix: None,
            token_review: true,
            token_cache_ttl_secs: default_auth_ttl(),
            insecure_disable: false,
        }
    }
}

/// `[authorization]`: delegated `SubjectAccessReview`s and their cache.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// Paths served to anyone (exact, or a prefix ending in `*`).
    #[serde(default = "default_always_allow_paths")]
    pub always_allow_paths: Vec<Spanned<String>>,
    /// Seconds an allowed decision is reused.
    #[serde(default = "default_auth_ttl")]
    pub allowed_ttl_secs: u32,
    /// Seconds a denied decision is reused.
    #[serde(default = "default_auth_ttl")]
    pub denied_ttl_secs: u32,
    /// Most decisions (and token reviews) kept.
    #[serde(default = "default_cache_size")]
    pub cache_size: AtLeastOne,
}

fn default_always_allow_paths() -> Vec<Spanned<String>> {
    ["/healthz", "/livez", "/readyz"]
        .into_iter()
        .map(|p| Spanned::new(0..0, p.to_string()))
        .collect()
}

fn default_cache_size() -> AtLeastOne {
    AtLeastOne::new(10_000)
}

impl Default for AuthorizationConfig {
    fn default() -> Self {
        AuthorizationConfig {
            always_allow_paths: default_always_allow_paths(),
            allowed_ttl_secs: default_auth_ttl(),
            denied_ttl_secs: default_auth_ttl(),
            cache_size: default_cache_size(),
        }
    }
}

fn default_listen_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 6443))
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen_addr: default_listen_addr(),
            tls_cert_file: None,
            tls_key_file: None,
            self_signed: false,
            tls_min_version: TlsVersion::default(),
            tls_cipher_suites: Vec::new(),
        }
    }
}

/// `[kubernetes]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Path of a kubeconfig file; when absent: in-cluster config, then `$KUBECONFIG` or
    /// `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Context to use from the kubeconfig (default: its current context).
    pub context: Option<String>,
    /// Seconds between reads of the cluster's API discovery (the resources custom metrics may
    /// describe, handed to plugins).
    #[serde(default = "default_discovery_refresh")]
    pub discovery_refresh_secs: AtLeastOne,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            kubeconfig: None,
            context: None,
            discovery_refresh_secs: default_discovery_refresh(),
        }
    }
}

fn default_discovery_refresh() -> AtLeastOne {
    AtLeastOne::new(300)
}

/// The node address types, in `status.addresses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AddressType {
    /// `InternalIP`.
    InternalIP,
    /// `ExternalIP`.
    ExternalIP,
    /// `Hostname`.
    Hostname,
    /// `InternalDNS`.
    InternalDNS,
    /// `ExternalDNS`.
    ExternalDNS,
}

impl AddressType {
    /// The name used in `status.addresses[].type`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressType::InternalIP => "InternalIP",
            AddressType::ExternalIP => "ExternalIP",
            AddressType::Hostname => "Hostname",
            AddressType::InternalDNS => "InternalDNS",
            AddressType::ExternalDNS => "ExternalDNS",
        }
    }
}

/// Which name a kubelet's serving certificate is verified against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsServerName {
    /// The address connected to (an IP needs an IP SAN, which kubelet certs often lack).
    #[default]
    Address,
    /// The node's name, while connecting to its address.
    NodeName,
}

/// `[kubelet]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeletConfig {
    /// Seconds between collection cycles.
    #[serde(default = "default_interval")]
    pub interval_secs: AtLeastOne,
    /// Per-node timeout for one scrape (connect, TLS, request and body), seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: Spanned<AtLeastOne>,
    /// Scrapes in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: AtLeastOne,
    /// Threads of the collection runtime, separate from the API's threads.
    #[serde(default = "default_collector_threads")]
    pub collector_threads: AtLeastOne,
    /// Scheduling niceness of the collection threads (plugins included), so that on a busy
    /// machine API requests run ahead of a cycle's work.
    #[serde(default = "default_collector_nice")]
    pub collector_nice: Niceness,
    /// Each scrape starts after a random delay up to this many milliseconds, spreading load.
    #[serde(default = "default_jitter_ms")]
    pub jitter_ms: u32,
    /// Address types to try, in order; the first type a node has wins.
    #[serde(default = "default_address_types")]
    pub address_types: Vec<AddressType>,
    /// Port to use instead of the node's `status.daemonEndpoints.kubeletEndpoint.Port`.
    pub port: Option<u16>,
    /// `https` (default) or `http`.
    #[serde(default)]
    pub scheme: Scheme,
    /// File holding the bearer token sent to kubelets (re-read every cycle, so rotated tokens
    /// are picked up). Default: the in-cluster service-account token when it exists.
    pub token_file: Option<PathBuf>,
    /// CA bundle that kubelet serving certificates are verified against. Default: the CA of the
    /// Kubernetes API connection.
    pub ca_file: Option<PathBuf>,
    /// Which name serving certificates are verified against.
    #[serde(default)]
    pub tls_server_name: TlsServerName,
    /// Skip verification of kubelet serving certificates entirely (insecure).
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    /// Keep each kubelet's connection open between cycles (no handshake per scrape, but
    /// ~40–50 KB of connection state per node); when false, each scrape connects anew and
    /// resumes the TLS session.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: bool,
    /// Largest response accepted from one kubelet, bytes.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

/// `https` or `http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// TLS.
    #[default]
    Https,
    /// Plain text (a kubelet's read-only port; tests).
    Http,
}

fn default_interval() -> AtLeastOne {
    AtLeastOne(NonZeroU32::new(15).expect("non-zero"))
}
fn default_timeout() -> Spanned<AtLeastOne> {
    Spanned::new(0..0, AtLeastOne(NonZeroU32::new(10).expect("non-zero")))
}
fn default_concurrency() -> AtLeastOne {
    AtLeastOne(NonZeroU32::new(256).expect("non-zero"))
}
fn default_collector_threads() -> AtLeastOne {
    AtLeastOne(NonZeroU32::new(1).expect("non-zero"))
}
fn default_collector_nice() -> Niceness {
    Niceness(10)
}
fn default_jitter_ms() -> u32 {
    500
}
fn default_address_types() -> Vec<AddressType> {
    vec![
        AddressType::InternalIP,
        AddressType::ExternalIP,
        AddressType::Hostname,
    ]
}
fn default_keep_alive() -> bool {
    true
}
fn default_max_response_bytes() -> usize {
    16 << 20
}

impl Default for KubeletConfig {
    fn default() -> Self {
        KubeletConfig {
            interval_secs: default_interval(),
            timeout_secs: default_timeout(),
            concurrency: default_concurrency(),
            collector_threads: default_collector_threads(),
            collector_nice: default_collector_nice(),
            jitter_ms: default_jitter_ms(),
            address_types: default_address_types(),
            port: None,
            scheme: Scheme::default(),
            token_file: None,
            ca_file: None,
            tls_server_name: TlsServerName::default(),
            insecure_skip_tls_verify: false,
            keep_alive: default_keep_alive(),
            max_response_bytes: default_max_response_bytes(),
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// A value whose sample is older than this many seconds is not served (the HPA then holds
    /// instead of acting on old data). Default: 3 cycles.
    pub max_sample_age_secs: Option<AtLeastOne>,
    /// Where `metrics.k8s.io` (CPU and memory of nodes and pods) comes from. Changing it takes a
    /// restart (a live reload that changes it is refused).
    #[serde(default)]
    pub resource_source: ResourceSource,
}

/// Where `metrics.k8s.io` comes from (`metrics.resource_source`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceSource {
    /// Every kubelet's `/metrics/resource`, scraped each cycle (metrics-server's way).
    #[default]
    Kubelets,
    /// Plugins' resource values (metric kind `resource`), e.g. from a Prometheus-compatible
    /// backend through `prometheus-adapter-compat`'s `resourceRules`; kubelets are scraped only
    /// when some plugin reads them.
    Plugins,
}

impl ResourceSource {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceSource::Kubelets => "kubelets",
            ResourceSource::Plugins => "plugins",
        }
    }
}

/// `[plugin_runtime]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRuntimeConfig {
    /// Directory of compiled plugin artifacts (default: `metrics-gateway/plugins` in the user's
    /// cache directory, else in the system temporary directory).
    pub cache_dir: Option<PathBuf>,
}

/// One `[[plugins]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique name, used in logs, metrics and errors.
    pub name: Spanned<String>,
    /// The component file (`.wasm`), relative to the config file's directory.
    pub file: Spanned<PathBuf>,
    /// Expected sha256 of the file, hex; the plugin is refused when it differs.
    pub sha256: Option<Spanned<String>>,
    /// Deadline of one call into the plugin, ms.
    #[serde(default = "default_plugin_timeout_ms")]
    pub timeout_ms: AtLeastOne,
    /// Memory limit of one instance, MiB.
    #[serde(default = "default_plugin_memory_mib")]
    pub memory_mib: AtLeastOne,
    /// Most values (custom + external + derived samples) accepted from one call.
    #[serde(default = "default_plugin_max_output")]
    pub max_output: AtLeastOne,
    /// The plugin's own configuration, passed to it as JSON.
    #[serde(default)]
    pub config: toml::Table,
}

/// `[custom_resources]`: plugins from `MetricsPlugin` objects, applied by every replica; the
/// leader (a `coordination.k8s.io/v1` Lease) writes their status and Events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomResourcesConfig {
    /// Watch `MetricsPlugin` objects and run their plugins after the file's.
    #[serde(default)]
    pub enabled: bool,
    /// Namespace of the leader-election Lease.
    #[serde(default = "default_lease_namespace")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[serde(default = "default_lease_name")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: `$POD_NAME`, else the host name).
    pub identity: Option<String>,
    /// How long a Lease not renewed stays held, ms (others wait this long before taking over).
    #[serde(default = "default_lease_duration_ms")]
    pub lease_duration_ms: AtLeastOne,
    /// The leader gives up when it could not renew for this long, ms (less than the duration).
    #[serde(default = "default_renew_deadline_ms")]
    pub renew_deadline_ms: AtLeastOne,
    /// Time between attempts to acquire or renew, ms.
    #[serde(default = "default_retry_period_ms")]
    pub retry_period_ms: AtLeastOne,
    /// Largest module accepted from a ConfigMap, a Secret or a URL, bytes.
    #[serde(default = "default_max_module_bytes")]
    pub max_module_bytes: AtLeastOne,
    /// Deadline of fetching one module from a URL, ms.
    #[serde(default = "default_fetch_timeout_ms")]
    pub fetch_timeout_ms: AtLeastOne,
}

impl Default for CustomResourcesConfig {
    fn default() -> Self {
        CustomResourcesConfig {
            enabled: false,
            lease_namespace: default_lease_namespace(),
            lease_name: default_lease_name(),
            identity: None,
            lease_duration_ms: default_lease_duration_ms(),
            renew_deadline_ms: default_renew_deadline_ms(),
            retry_period_ms: default_retry_period_ms(),
            max_module_bytes: default_max_module_bytes(),
            fetch_timeout_ms: default_fetch_timeout_ms(),
        }
    }
}

fn default_lease_namespace() -> String {
    "metrics-gateway".into()
}

fn default_lease_name() -> String {
    "metrics-gateway-leader".into()
}

fn default_lease_duration_ms() -> AtLeastOne {
    AtLeastOne::new(15_000)
}

fn default_renew_deadline_ms() -> AtLeastOne {
    AtLeastOne::new(10_000)
}

fn default_retry_period_ms() -> AtLeastOne {
    AtLeastOne::new(2_000)
}

fn default_max_module_bytes() -> AtLeastOne {
    AtLeastOne::new(32 << 20)
}

fn default_fetch_timeout_ms() -> AtLeastOne {
    AtLeastOne::new(30_000)
}

/// `timeout_ms` of a plugin that does not set it.
pub const DEFAULT_PLUGIN_TIMEOUT_MS: u32 = 1000;
/// `memory_mib` of a plugin that does not set it.
pub const DEFAULT_PLUGIN_MEMORY_MIB: u32 = 256;
/// `max_output` of a plugin that does not set it.
pub const DEFAULT_PLUGIN_MAX_OUTPUT: u32 = 1_000_000;

fn default_plugin_timeout_ms() -> AtLeastOne {
    AtLeastOne::new(DEFAULT_PLUGIN_TIMEOUT_MS)
}

fn default_plugin_memory_mib() -> AtLeastOne {
    AtLeastOne::new(DEFAULT_PLUGIN_MEMORY_MIB)
}

fn default_plugin_max_output() -> AtLeastOne {
    AtLeastOne::new(DEFAULT_PLUGIN_MAX_OUTPUT)
}

/// One `[[prometheus]]` entry: a Prometheus-compatible backend (Prometheus, Thanos, Mimir,
/// VictoriaMetrics) that plugins' instant queries and series discovery run against.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Unique name; plugin inputs name it (an empty name means the default backend: the one
    /// named `default`, or the only one).
    pub name: Spanned<String>,
    /// Base URL, `http://` or `https://`, without `/api/v1` (a path prefix is kept).
    pub url: Spanned<String>,
    /// File holding a bearer token (re-read every cycle, so rotated tokens are picked up).
    pub bearer_token_file: Option<PathBuf>,
    /// Basic-auth user name; needs `basic_auth_password_file`.
    pub basic_auth_username: Option<Spanned<String>>,
    /// File holding the basic-auth password (re-read every cycle).
    pub basic_auth_password_file: Option<Spanned<PathBuf>>,
    /// CA bundle the backend's certificate is verified against (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS; needs `client_key_file`.
    pub client_cert_file: Option<Spanned<PathBuf>>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<Spanned<PathBuf>>,
    /// Skip verification of the backend's certificate (insecure).
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    /// Extra HTTP headers sent with every request (e.g. `X-Scope-OrgID` for Mimir).
    #[serde(default = "no_headers")]
    pub headers: Spanned<std::collections::BTreeMap<String, String>>,
    /// Timeout of one query or discovery request, seconds.
    #[serde(default = "default_prometheus_timeout")]
    pub timeout_secs: AtLeastOne,
    /// HTTP method of queries: `GET` or `POST` (form-encoded: no URL length limit).
    #[serde(default)]
    pub method: QueryMethod,
    /// Requests in flight at once to this backend.
    #[serde(default = "default_prometheus_concurrency")]
    pub max_concurrency: AtLeastOne,
    /// Seconds between two runs of a discovery (`prometheus-series`, `prometheus-series-shapes`
    /// and `prometheus-labels` inputs); the last result is reused in between.
    #[serde(default = "default_discovery_interval")]
    pub discovery_interval_secs: AtLeastOne,
    /// Most series one discovery may return; beyond it the discovery fails (naming the backend,
    /// the selector and this cap) rather than holding an unbounded list.
    #[serde(default = "default_max_series")]
    pub max_series: AtLeastOne,
}

/// `prometheus.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum QueryMethod {
    /// Parameters in the URL.
    #[default]
    #[serde(rename = "GET")]
    Get,
    /// Parameters in a form-encoded body.
    #[serde(rename = "POST")]
    Post,
}

fn no_headers() -> Spanned<std::collections::BTreeMap<String, String>> {
    Spanned::new(0..0, Default::default())
}

fn default_prometheus_timeout() -> AtLeastOne {
    AtLeastOne::new(10)
}

fn default_prometheus_concurrency() -> AtLeastOne {
    AtLeastOne::new(8)
}

fn default_discovery_interval() -> AtLeastOne {
    AtLeastOne::new(600)
}

fn default_max_series() -> AtLeastOne {
    AtLeastOne::new(100_000)
}

/// A positive whole number (rejected at its position in the file when 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct AtLeastOne(NonZeroU32);

impl AtLeastOne {
    /// `n`, which must not be 0.
    pub const fn new(n: u32) -> AtLeastOne {
        match NonZeroU32::new(n) {
            Some(n) => AtLeastOne(n),
            None => panic!("AtLeastOne::new(0)"),
        }
    }

    /// The value.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

/// A Linux niceness a process may set without privileges: 0 (the default priority) to 19
/// (the lowest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Niceness(u8);

impl Niceness {
    /// The value.
    pub fn get(self) -> i32 {
        i32::from(self.0)
    }
}

impl TryFrom<i64> for Niceness {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        u8::try_from(v)
            .ok()
            .filter(|n| *n <= 19)
            .map(Niceness)
            .ok_or_else(|| format!("must be from 0 to 19, got {v}"))
    }
}

impl TryFrom<i64> for AtLeastOne {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        u32::try_from(v)
            .ok()
            .and_then(NonZeroU32::new)
            .map(AtLeastOne)
            .ok_or_else(|| format!("must be at least 1 and at most {}, got {v}", u32::MAX))
    }
}

impl Config {
    /// Checks rules that span several fields; the error carries the span to report.
    pub(super) fn validate(&self) -> Result<(), (Range<usize>, String)> {
        let k = &self.kubelet;
        if k.timeout_secs.get_ref().get() > k.interval_secs.get() {
            return Err((
                k.timeout_secs.span(),
                format!(
                    "kubelet.timeout_secs ({}) must not exceed kubelet.interval_secs ({})",
                    k.timeout_secs.get_ref().get(),
                    k.interval_secs.get()
                ),
            ));
        }
        let s = &self.server;
        match (&s.tls_cert_file, &s.tls_key_file) {
            (Some(_), Some(_)) => {}
            (Some(c), None) => {
                return Err((
                    c.span(),
                    "server.tls_cert_file is set but server.tls_key_file is not".into(),
                ));
            }
            (None, Some(k)) => {
                return Err((
                    k.span(),
                    "server.tls_key_file is set but server.tls_cert_file is not".into(),
                ));
            }
            (None, None) if !s.self_signed => {
                return Err((
                    0..0,
                    "server.tls_cert_file and server.tls_key_file are required unless \
                     server.self_signed = true (development only)"
                        .into(),
                ));
            }
            (None, None) => {}
        }
        crate::api::tls::validate_cipher_suites(s)?;
        let cr = &self.custom_resources;
        if cr.renew_deadline_ms.get() >= cr.lease_duration_ms.get() {
            return Err((
                0..0,
                format!(
                    "custom_resources.renew_deadline_ms ({}) must be less than \
                     custom_resources.lease_duration_ms ({})",
                    cr.renew_deadline_ms.get(),
                    cr.lease_duration_ms.get()
                ),
            ));
        }
        self.validate_auth()?;
        self.validate_prometheus()?;
        let mut names = std::collections::HashSet::new();
        for p in &self.plugins {
            let name = p.name.get_ref();
            let valid = !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid {
                return Err((
                    p.name.span(),
                    format!(
                        "plugin name {name:?} must be 1-63 characters of a-z, 0-9, '-' and '_'"
                    ),
                ));
            }
            if !names.insert(name.as_str()) {
                return Err((p.name.span(), format!("plugin name {name:?} is used twice")));
            }
            if let Some(sha) = &p.sha256 {
                let s = sha.get_ref();
                if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err((sha.span(), "sha256 must be 64 hexadecimal digits".into()));
                }
            }
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), (Range<usize>, String)> {
        let a = &self.authentication;
        let headers = [
            (
                "requestheader_username_headers",
                &a.requestheader_username_headers,
            ),
            (
                "requestheader_group_headers",
                &a.requestheader_group_headers,
            ),
            (
                "requestheader_extra_headers_prefix",
                &a.requestheader_extra_headers_prefix,
            ),
        ];
        for (key, names) in headers {
            for name in names.iter().flatten() {
                if http::HeaderName::from_bytes(name.get_ref().as_bytes()).is_err() {
                    return Err((
                        name.span(),
                        format!(
                            "authentication.{key}: {:?} is not a valid HTTP header name",
                            name.get_ref()
                        ),
                    ));
                }
            }
        }
        for path in &self.authorization.always_allow_paths {
            let p = path.get_ref();
            let star = p.find('*');
            if !p.starts_with('/') || star.is_some_and(|i| i != p.len() - 1) {
                return Err((
                    path.span(),
                    format!(
                        "authorization.always_allow_paths: {p:?} must start with '/' and may \
                         only end in '*'"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_prometheus(&self) -> Result<(), (Range<usize>, String)> {
        let mut names = std::collections::HashSet::new();
        for b in &self.prometheus {
            let name = b.name.get_ref();
            if name.is_empty() || name.len() > 63 || name.chars().any(char::is_whitespace) {
                return Err((
                    b.name.span(),
                    format!("prometheus name {name:?} must be 1-63 characters without spaces"),
                ));
            }
            if !names.insert(name.as_str()) {
                return Err((
                    b.name.span(),
                    format!("prometheus name {name:?} is used twice"),
                ));
            }
            let url = b.url.get_ref();
            let scheme_ok = reqwest::Url::parse(url)
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .unwrap_or(false);
            if !scheme_ok {
                return Err((
                    b.url.span(),
                    format!("prometheus {name:?}: url {url:?} is not an http:// or https:// URL"),
                ));
            }
            match (&b.basic_auth_username, &b.basic_auth_password_file) {
                (Some(u), None) => {
                    return Err((
                        u.span(),
                        format!(
                            "prometheus {name:?}: basic_auth_username needs basic_auth_password_file"
                        ),
                    ));
                }
                (None, Some(p)) => {
                    return Err((
                        p.span(),
                        format!(
                            "prometheus {name:?}: basic_auth_password_file needs basic_auth_username"
                        ),
                    ));
                }
                _ => {}
            }
            match (&b.client_cert_file, &b.client_key_file) {
                (Some(c), None) => {
                    return Err((
                        c.span(),
                        format!("prometheus {name:?}: client_cert_file needs client_key_file"),
                    ));
                }
                (None, Some(k)) => {
                    return Err((
                        k.span(),
                        format!("prometheus {name:?}: client_key_file needs client_cert_file"),
                    ));
                }
                _ => {}
            }
            for (header, value) in b.headers.get_ref() {
                if http::HeaderName::from_bytes(header.as_bytes()).is_err()
                    || http::HeaderValue::from_str(value).is_err()
                {
                    return Err((
                        b.headers.span(),
                        format!(
                            "prometheus {name:?}: header {header:?} is not a valid HTTP header"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The backend a plugin input names: `name`, or the default one when `name` is empty (the
    /// backend named `default`, else the only one).
    pub fn prometheus_backend(&self, name: &str) -> Option<&PrometheusConfig> {
        prometheus_backend(&self.prometheus, name)
    }

    /// `path` resolved against the config file's directory.
    pub fn resolve(&self, path: &std::path::Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// Seconds after which a sample is too old to serve.
    pub fn max_sample_age_secs(&self) -> u32 {
        self.metrics
            .max_sample_age_secs
            .map(AtLeastOne::get)
            .unwrap_or(self.kubelet.interval_secs.get() * 3)
    }
}

/// The backend of `backends` that an input naming `name` reads: `name`, or the default one when
/// `name` is empty (the backend named `default`, else the only one).
pub fn prometheus_backend<'a>(
    backends: &'a [PrometheusConfig],
    name: &str,
) -> Option<&'a PrometheusConfig> {
    if name.is_empty() {
        return backends
            .iter()
            .find(|b| b.name.get_ref() == "default")
            .or(match backends {
                [only] => Some(only),
                _ => None,
            });
    }
    backends.iter().find(|b| b.name.get_ref() == name)
}
