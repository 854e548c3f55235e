//! `metrics-gateway demo`: simulated kubelets, a fake kube-apiserver that also plays
//! kube-aggregator, and the real gateway behind it, in one process. The same [`Rig`] is what
//! integration tests and benchmarks start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_gateway_testkit::apiserver::{ApiServerConfig, FakeApiServer, UserInfo};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster};
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
}

/// The token of the demo's kubectl user.
pub const USER_TOKEN: &str = "demo-admin-token";
const GATEWAY_TOKEN: &str = "demo-gateway-token";
const KUBELET_TOKEN: &str = "demo-kubelet-token";

/// How to start a [`Rig`].
#[derive(Debug, Clone)]
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
        let mut tokens = BTreeMap::new();
        for (token, user) in [
            (
                GATEWAY_TOKEN,
                "system:serviceaccount:kube-system:metrics-gateway",
            ),
            (USER_TOKEN, "admin"),
        ] {
            tokens.insert(
                token.to_string(),
                UserInfo {
                    username: user.into(),
                    groups: vec!["system:authenticated".into()],
                    uid: user.into(),
                },
            );
        }
        let apiserver = FakeApiServer::start(
            cluster.clone(),
            ApiServerConfig {
                tokens,
                ..ApiServerConfig::default()
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
        };
        let gateway = Gateway::start(config, start).await?;
        let backend = format!("https://{}", gateway.local_addr);
        apiserver.register_api_service("metrics.k8s.io", "v1beta1", 100, 100, &backend, None);
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
    let rig = Rig::start(RigOptions {
        spec,
        interval_secs: args.interval_secs,
        timeout_secs: args.interval_secs.min(10),
        jitter_ms: 200,
        collect_on_interval: true,
        ..RigOptions::default()
    })
    .await?;
    rig.write_user_kubeconfig(&args.kubeconfig_out)?;
    wait_until_serving(&rig.gateway).await;
    let kc = args.kubeconfig_out.display();
    let pods = rig.cluster.read().pods.len();
    println!(
        "metrics-gateway demo ready: {} nodes, {pods} pods, gateway on https://{} behind the API server at {}\n\
         Try:\n  kubectl --kubeconfig {kc} top nodes\n  kubectl --kubeconfig {kc} top pods -A\n  \
         kubectl --kubeconfig {kc} get --raw /apis/metrics.k8s.io/v1beta1/namespaces/default/pods\n  \
         curl -k https://{}/metrics\nPress Ctrl-C to stop.",
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
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten_addr = \"127.0.0.1:0\"\nself_signed = true\n\n\
             [kubernetes]\nkubeconfig = {kubeconfig:?}\n\n\
             [kubelet]\ninterval_secs = {}\ntimeout_secs = {}\njitter_ms = {}\nca_file = {ca:?}\n\
             token_file = {token:?}\ntls_server_name = \"{}\"\ninsecure_skip_tls_verify = {}\nkeep_alive = {}\n",
            options.interval_secs,
            options.timeout_secs,
            options.jitter_ms,
            match options.tls_server_name {
                TlsServerName::NodeName => "node-name",
                TlsServerName::Address => "address",
            },
            options.insecure_skip_tls_verify,
            options.keep_alive,
        ),
    )?;
    Ok(config)
}

async fn wait_until_serving(gateway: &Gateway) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let snap = gateway.store.load();
        if !snap.nodes.is_empty() && snap.pod_count() > 0 {
            return;
        }
    }
}
