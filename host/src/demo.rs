//! `metrics-gateway demo`: simulated kubelets, a fake kube-apiserver that also plays
//! kube-aggregator, and the real gateway behind it, in one process. The same [`Rig`] is what
//! integration tests and benchmarks start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_gateway_testkit::apiserver::{
    ApiServerConfig, FakeApiServer, UserInfo, hpa_controller_allows,
};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster};
use metrics_gateway_testkit::hpa_client::HPA_CONTROLLER_USER;
use metrics_gateway_testkit::kubelet_sim::{KubeletSimConfig, KubeletSimulator};

use crate::app::{Gateway, StartOptions};
use crate::clock::Clock;
use crate::config::TlsServerName;

/// `demo` options.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Simulated nodes (each gets its own 127.x.y.z address).
    #[arg(long, default_value_t = 20)]
    pub nodes: usize,
    /// Running pods per node.
    #[arg(long, default_value_t = 10)]
    pub pods_per_node: usize,
    /// Where to write the kubeconfig for kubectl.
    #[arg(long, default_value = "./demo.kubeconfig")]
    pub kubeconfig_out: PathBuf,
    /// Seconds between collection cycles.
    #[arg(long, default_value_t = 5)]
    pub interval_secs: u32,
    /// Port of the simulated kubelets.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Directory of the shipped plugins' components (`scripts/build-plugins.sh` writes them);
    /// the demo loads every one of them it finds.
    #[arg(long, default_value = "target/plugins")]
    pub plugins_dir: PathBuf,
}

/// A plugin the rig's gateway loads.
#[derive(Debug, Clone)]
pub struct RigPlugin {
    /// `name`.
    pub name: String,
    /// The component.
    pub file: PathBuf,
    /// `timeout_ms`, when not the default.
    pub timeout_ms: Option<u32>,
    /// `memory_mib`, when not the default.
    pub memory_mib: Option<u32>,
    /// The plugin's own `config` table.
    pub config: toml::Table,
}

impl RigPlugin {
    /// Plugin `name` from `file` with `config` (TOML text of its `config` table).
    pub fn new(name: &str, file: impl Into<PathBuf>, config: &str) -> RigPlugin {
        RigPlugin {
            name: name.to_owned(),
            file: file.into(),
            timeout_ms: None,
            memory_mib: None,
            config: toml::from_str(config).expect("a valid TOML table"),
        }
    }

    /// The `[[plugins]]` entry.
    fn to_toml(&self) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("name".into(), self.name.clone().into());
        t.insert(
            "file".into(),
            self.file.to_string_lossy().into_owned().into(),
        );
        if let Some(ms) = self.timeout_ms {
            t.insert("timeout_ms".into(), i64::from(ms).into());
        }
        if let Some(mib) = self.memory_mib {
            t.insert("memory_mib".into(), i64::from(mib).into());
        }
        t.insert("config".into(), self.config.clone().into());
        t
    }
}

/// The shipped plugins as the demo configures them (`config/demo-plugins.toml`), for those whose
/// component is in `dir`.
pub fn demo_plugins(dir: &Path) -> Vec<RigPlugin> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let entries = demo_plugin_entries(&dir);
    entries
        .into_iter()
        .filter_map(|entry| {
            let name = entry.get("name")?.as_str()?.to_owned();
            let file = PathBuf::from(entry.get("file")?.as_str()?);
            let config = match entry.get("config") {
                Some(toml::Value::Table(t)) => t.clone(),
                _ => toml::Table::new(),
            };
            let number = |key: &str| {
                entry
                    .get(key)
                    .and_then(toml::Value::as_integer)
                    .and_then(|n| u32::try_from(n).ok())
            };
            Some(RigPlugin {
                name,
                file,
                timeout_ms: number("timeout_ms"),
                memory_mib: number("memory_mib"),
                config,
            })
        })
        .filter(|p| p.file.exists())
        .collect()
}

/// The `[[plugins]]` entries of `config/demo-plugins.toml`, each `file` resolved against `dir`.
pub fn demo_plugin_entries(dir: &Path) -> Vec<toml::Table> {
    let doc: toml::Table = toml::from_str(include_str!("../../config/demo-plugins.toml"))
        .expect("config/demo-plugins.toml is valid TOML");
    let Some(toml::Value::Array(plugins)) = doc.get("plugins") else {
        return Vec::new();
    };
    plugins
        .iter()
        .filter_map(|p| p.as_table().cloned())
        .map(|mut entry| {
            if let Some(file) = entry.get("file").and_then(|f| f.as_str()) {
                let path = dir.join(file).to_string_lossy().into_owned();
                entry.insert("file".into(), path.into());
            }
            entry
        })
        .collect()
}

/// The token of the demo's kubectl user.
pub const USER_TOKEN: &str = "demo-admin-token";
/// The token of the HPA controller's service account (`HPA_CONTROLLER_USER`), which the rig's
/// API server authorizes with the HPA's bootstrap RBAC role only.
pub const HPA_TOKEN: &str = "demo-hpa-controller-token";
const GATEWAY_TOKEN: &str = "demo-gateway-token";
/// The user the rig's gateway authenticates as to the fake API server.
pub const GATEWAY_USER: &str = "system:serviceaccount:kube-system:metrics-gateway";
const KUBELET_TOKEN: &str = "demo-kubelet-token";

/// How to start a [`Rig`].
#[derive(Clone)]
pub struct RigOptions {
    /// The simulated cluster.
    pub spec: ClusterSpec,
    /// The clock shared by kubelets and gateway (manual in tests).
    pub clock: SimClock,
    /// `kubelet.interval_secs`.
    pub interval_secs: u32,
    /// `kubelet.timeout_secs`.
    pub timeout_secs: u32,
    /// `kubelet.jitter_ms`.
    pub jitter_ms: u32,
    /// Collect on the interval (demo) or only when told (tests).
    pub collect_on_interval: bool,
    /// `kubelet.tls_server_name` (the simulated kubelets' certificates name only the node).
    pub tls_server_name: TlsServerName,
    /// `kubelet.insecure_skip_tls_verify`.
    pub insecure_skip_tls_verify: bool,
    /// `kubelet.keep_alive`.
    pub keep_alive: bool,
    /// Plugins, in order.
    pub plugins: Vec<RigPlugin>,
    /// The fake API server's settings: its authorizer (the HPA controller's identity is
    /// further limited to its bootstrap ClusterRole), and tokens besides the rig's own (the
    /// gateway's, the kubelets', the HPA controller's and the demo user's are added).
    pub apiserver: ApiServerConfig,
    /// Serving certificate and key files for the gateway (default: self-signed).
    pub serving_cert: Option<(PathBuf, PathBuf)>,
    /// More gateway configuration, appended to its `gateway.toml` (e.g. `[authorization]`).
    pub extra_config: String,
}

impl Default for RigOptions {
    fn default() -> Self {
        RigOptions {
            spec: ClusterSpec::default(),
            clock: SimClock::Real,
            interval_secs: 15,
            timeout_secs: 10,
            jitter_ms: 0,
            collect_on_interval: false,
            tls_server_name: TlsServerName::NodeName,
            insecure_skip_tls_verify: false,
            keep_alive: true,
            plugins: Vec::new(),
            apiserver: ApiServerConfig::default(),
            serving_cert: None,
            extra_config: String::new(),
        }
    }
}

/// A simulated cluster with the gateway registered behind its aggregator.
#[derive(Debug)]
pub struct Rig {
    /// The cluster model (ground truth, fault injection).
    pub cluster: Arc<SimCluster>,
    /// The simulated kubelets.
    pub kubelets: KubeletSimulator,
    /// The fake kube-apiserver and aggregator.
    pub apiserver: FakeApiServer,
    /// The gateway under test.
    pub gateway: Gateway,
    dir: tempfile::TempDir,
}

impl Rig {
    /// Starts kubelets, API server and gateway, registers the gateway for `metrics.k8s.io`, and
    /// waits for the gateway's cluster watches to sync.
    pub async fn start(options: RigOptions) -> anyhow::Result<Rig> {
        metrics_gateway_testkit::pki::install_crypto_provider();
        let cluster = SimCluster::generate(&options.spec, options.clock.clone());
        let kubelets = KubeletSimulator::start(
            cluster.clone(),
            KubeletSimConfig {
                token: Some(KUBELET_TOKEN.into()),
                ..KubeletSimConfig::default()
            },
        )
        .await
        .context("starting simulated kubelets")?;
        let mut tokens = options.apiserver.tokens.clone();
        for (token, user) in [(GATEWAY_TOKEN, GATEWAY_USER), (USER_TOKEN, "admin")] {
            tokens.insert(
                token.to_string(),
                UserInfo {
                    username: user.into(),
                    groups: vec!["system:authenticated".into()],
                    uid: user.into(),
                },
            );
        }
        tokens.insert(
            HPA_TOKEN.to_string(),
            UserInfo {
                username: HPA_CONTROLLER_USER.into(),
                groups: vec![
                    "system:serviceaccounts".into(),
                    "system:serviceaccounts:kube-system".into(),
                    "system:authenticated".into(),
                ],
                uid: HPA_CONTROLLER_USER.into(),
            },
        );
        let apiserver = FakeApiServer::start(
            cluster.clone(),
            ApiServerConfig {
                tokens,
                // The HPA controller's identity may do only what its ClusterRole grants.
                authorizer: {
                    let inner = options.apiserver.authorizer.clone();
                    Arc::new(move |spec| {
                        (spec.user != HPA_CONTROLLER_USER || hpa_controller_allows(spec))
                            && inner(spec)
                    })
                },
                ..options.apiserver.clone()
            },
        )
        .await
        .context("starting the fake kube-apiserver")?;
        let dir = tempfile::tempdir().context("creating a work directory")?;
        let config_path = write_gateway_files(dir.path(), &apiserver, &kubelets, &options)?;
        let config = crate::config::load(&config_path)?;
        let sim_clock = options.clock.clone();
        let start = StartOptions {
            clock: Clock::from_fn(move || sim_clock.now_ms()),
            collect_on_interval: options.collect_on_interval,
            config_path: Some(config_path.clone()),
        };
        let gateway = Gateway::start(config, start).await?;
        let backend = format!("https://{}", gateway.local_addr);
        apiserver.register_api_service("metrics.k8s.io", "v1beta1", 100, 100, &backend, None);
        // As the shipped APIServices: custom v1beta2 preferred over v1beta1.
        apiserver.register_api_service(
            "custom.metrics.k8s.io",
            "v1beta1",
            100,
            100,
            &backend,
            None,
        );
        apiserver.register_api_service(
            "custom.metrics.k8s.io",
            "v1beta2",
            100,
            200,
            &backend,
            None,
        );
        apiserver.register_api_service(
            "external.metrics.k8s.io",
            "v1beta1",
            100,
            100,
            &backend,
            None,
        );
        let cache = gateway.cluster.clone();
        tokio::time::timeout(Duration::from_secs(60), cache.wait_for(|_| cache.synced()))
            .await
            .context("the gateway's cluster watches did not sync within 60 s")?;
        Ok(Rig {
            cluster,
            kubelets,
            apiserver,
            gateway,
            dir,
        })
    }

    /// Writes a kubeconfig for the demo user (kubectl's view of the cluster).
    pub fn write_user_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        self.apiserver.write_kubeconfig(path, USER_TOKEN)
    }

    /// The gateway's config file (reloads read it).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    /// The rig's work directory (gateway config, kubeconfigs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops everything.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
        self.apiserver.shutdown().await;
        self.kubelets.shutdown().await;
    }
}

/// Runs the demo until `shutdown` completes.
pub async fn run(
    args: DemoArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let spec = ClusterSpec {
        nodes: args.nodes,
        pods_per_node: args.pods_per_node,
        kubelet_port: args.kubelet_port,
        namespaces: 4,
        ..ClusterSpec::default()
    };
    let plugins = demo_plugins(&args.plugins_dir);
    if plugins.is_empty() {
        tracing::warn!(dir = %args.plugins_dir.display(), "no plugin components found: serving metrics.k8s.io only (run scripts/build-plugins.sh)");
    }
    let plugin_count = plugins.len();
    let rig = Rig::start(RigOptions {
        spec,
        plugins,
        interval_secs: args.interval_secs,
        timeout_secs: args.interval_secs.min(10),
        jitter_ms: 200,
        collect_on_interval: true,
        ..RigOptions::default()
    })
    .await?;
    rig.write_user_kubeconfig(&args.kubeconfig_out)?;
    // Rates need two samples: with plugins, wait for the second cycle.
    wait_until_serving(&rig.gateway, if plugin_count > 0 { 2 } else { 1 }).await;
    let kc = args.kubeconfig_out.display();
    let pods = rig.cluster.read().pods.len();
    println!(
        "metrics-gateway demo ready: {} nodes, {pods} pods, gateway on https://{} behind the API server at {}\n\
         Try:\n  kubectl --kubeconfig {kc} top nodes\n  kubectl --kubeconfig {kc} top pods -A\n  \
         kubectl --kubeconfig {kc} get --raw /apis/metrics.k8s.io/v1beta1/namespaces/default/pods\n  \
         kubectl --kubeconfig {kc} get --raw /apis/custom.metrics.k8s.io/v1beta2\n  \
         kubectl --kubeconfig {kc} get --raw '/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/network_receive_bytes_per_second'\n  \
         kubectl --kubeconfig {kc} get --raw /apis/external.metrics.k8s.io/v1beta1/namespaces/default/pending_pods\n  \
         curl -k -H 'Authorization: Bearer {USER_TOKEN}' https://{}/metrics\nPress Ctrl-C to stop.",
        args.nodes,
        rig.gateway.local_addr,
        rig.apiserver.url(),
        rig.gateway.local_addr,
    );
    shutdown.await;
    rig.shutdown().await;
    Ok(())
}

/// Writes the gateway's kubeconfig, kubelet CA and token, and its gateway.toml; returns the
/// config's path.
fn write_gateway_files(
    dir: &Path,
    apiserver: &FakeApiServer,
    kubelets: &KubeletSimulator,
    options: &RigOptions,
) -> anyhow::Result<PathBuf> {
    let kubeconfig = dir.join("gateway.kubeconfig");
    apiserver.write_kubeconfig(&kubeconfig, GATEWAY_TOKEN)?;
    let ca = dir.join("kubelet-ca.crt");
    std::fs::write(&ca, kubelets.ca_pem())?;
    let token = dir.join("kubelet-token");
    std::fs::write(&token, KUBELET_TOKEN)?;
    let config = dir.join("gateway.toml");
    let mut plugins = toml::Table::new();
    if !options.plugins.is_empty() {
        plugins.insert(
            "plugins".into(),
            toml::Value::Array(options.plugins.iter().map(|p| p.to_toml().into()).collect()),
        );
    }
    let serving = match &options.serving_cert {
        Some((cert, key)) => format!("tls_cert_file = {cert:?}\ntls_key_file = {key:?}"),
        None => "self_signed = true".to_string(),
    };
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten_addr = \"127.0.0.1:0\"\n{serving}\n\n\
             [kubernetes]\nkubeconfig = {kubeconfig:?}\n\n\
             [kubelet]\ninterval_secs = {}\ntimeout_secs = {}\njitter_ms = {}\nca_file = {ca:?}\n\
             token_file = {token:?}\ntls_server_name = \"{}\"\ninsecure_skip_tls_verify = {}\nkeep_alive = {}\n\n{}",
            options.interval_secs,
            options.timeout_secs,
            options.jitter_ms,
            match options.tls_server_name {
                TlsServerName::NodeName => "node-name",
                TlsServerName::Address => "address",
            },
            options.insecure_skip_tls_verify,
            options.keep_alive,
            toml::to_string(&plugins)?,
        ) + "\n"
            + &options.extra_config,
    )?;
    Ok(config)
}

async fn wait_until_serving(gateway: &Gateway, cycles: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let snap = gateway.store.load();
        if !snap.nodes.is_empty() && snap.pod_count() > 0 && snap.cycle >= cycles {
            return;
        }
    }
}
