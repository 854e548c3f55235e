//! `metrics-gateway demo`: simulated kubelets, a fake kube-apiserver that also plays
//! kube-aggregator, and the real gateway behind it, in one process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use metrics_gateway_testkit::apiserver::{ApiServerConfig, FakeApiServer, UserInfo};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster};
use metrics_gateway_testkit::kubelet_sim::{KubeletSimConfig, KubeletSimulator};

use crate::app::{Gateway, StartOptions};

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

const GATEWAY_TOKEN: &str = "demo-gateway-token";
const USER_TOKEN: &str = "demo-admin-token";
const KUBELET_TOKEN: &str = "demo-kubelet-token";

/// Runs the demo until `shutdown` completes.
pub async fn run(args: DemoArgs, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    metrics_gateway_testkit::pki::install_crypto_provider();
    let spec = ClusterSpec {
        nodes: args.nodes,
        pods_per_node: args.pods_per_node,
        kubelet_port: args.kubelet_port,
        namespaces: 4,
        ..ClusterSpec::default()
    };
    let cluster = SimCluster::generate(&spec, SimClock::Real);
    let kubelets = KubeletSimulator::start(
        cluster.clone(),
        KubeletSimConfig { token: Some(KUBELET_TOKEN.into()), ..KubeletSimConfig::default() },
    )
    .await
    .context("starting simulated kubelets")?;
    let mut tokens = BTreeMap::new();
    for (token, user) in [(GATEWAY_TOKEN, "system:serviceaccount:kube-system:metrics-gateway"), (USER_TOKEN, "admin")] {
        tokens.insert(
            token.to_string(),
            UserInfo { username: user.into(), groups: vec!["system:authenticated".into()], uid: user.into() },
        );
    }
    let apiserver = FakeApiServer::start(cluster.clone(), ApiServerConfig { tokens, ..ApiServerConfig::default() })
        .await
        .context("starting the fake kube-apiserver")?;

    let dir = tempfile::tempdir().context("creating a work directory")?;
    let config_path = write_gateway_files(dir.path(), &apiserver, &kubelets, args.interval_secs)?;
    let config = crate::config::load(&config_path)?;
    let gateway = Gateway::start(config, StartOptions::default()).await?;
    let backend = format!("https://{}", gateway.local_addr);
    apiserver.register_api_service("metrics.k8s.io", "v1beta1", 100, 100, &backend, None);
    apiserver.write_kubeconfig(&args.kubeconfig_out, USER_TOKEN)?;

    wait_until_serving(&gateway).await;
    let kc = args.kubeconfig_out.display();
    let pods = cluster.read().pods.len();
    println!(
        "metrics-gateway demo ready: {} nodes, {pods} pods, gateway on https://{} behind the API server at {}\n\
         Try:\n  kubectl --kubeconfig {kc} top nodes\n  kubectl --kubeconfig {kc} top pods -A\n  \
         kubectl --kubeconfig {kc} get --raw /apis/metrics.k8s.io/v1beta1/namespaces/default/pods\n  \
         curl -k https://{}/metrics\nPress Ctrl-C to stop.",
        args.nodes,
        gateway.local_addr,
        apiserver.url(),
        gateway.local_addr,
    );
    shutdown.await;
    gateway.shutdown().await;
    apiserver.shutdown().await;
    kubelets.shutdown().await;
    Ok(())
}

/// Writes the gateway's kubeconfig, kubelet CA and token, and its gateway.toml; returns the
/// config's path.
fn write_gateway_files(dir: &Path, apiserver: &FakeApiServer, kubelets: &KubeletSimulator, interval: u32) -> anyhow::Result<PathBuf> {
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
             [kubelet]\ninterval_secs = {interval}\ntimeout_secs = {timeout}\nca_file = {ca:?}\n\
             token_file = {token:?}\ntls_server_name = \"node-name\"\n",
            timeout = interval.min(10),
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
