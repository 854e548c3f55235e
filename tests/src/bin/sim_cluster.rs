//! `sim-cluster`: a simulated cluster for demos and manual tests. Simulated kubelets and the
//! fake kube-apiserver (+ aggregator) serve one generated cluster until Ctrl-C.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use metrics_gateway_testkit::apiserver::{ApiServerConfig, FakeApiServer, UserInfo};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster};
use metrics_gateway_testkit::kubelet_sim::{KubeletSimConfig, KubeletSimulator};
use metrics_gateway_testkit::pki::install_crypto_provider;

/// Runs simulated kubelets and a fake kube-apiserver on one generated cluster.
#[derive(Debug, Parser)]
#[command(name = "sim-cluster", version)]
struct Args {
    /// Number of nodes (node i listens on its own 127.x.y.z address).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Running pods per node.
    #[arg(long, default_value_t = 4)]
    pods_per_node: usize,
    /// Containers per pod, as an inclusive range MIN-MAX.
    #[arg(long, default_value = "1-3", value_parser = parse_range)]
    containers: (usize, usize),
    /// Namespaces the pods are spread over.
    #[arg(long, default_value_t = 2)]
    namespaces: usize,
    /// Seed: the same seed gives the same cluster.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Port every simulated kubelet listens on.
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Address of the fake kube-apiserver.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Bearer token the kubeconfig user (and any other client) authenticates with; it maps to
    /// user `admin` in group `system:masters`.
    #[arg(long, default_value = "sim-admin-token")]
    token: String,
    /// Write a kubeconfig for the API server here.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Token the simulated kubelets require (none: no authentication).
    #[arg(long)]
    kubelet_token: Option<String>,
    /// Write the kubelets' serving CA (PEM) here.
    #[arg(long)]
    kubelet_ca_out: Option<PathBuf>,
    /// Write the front-proxy CA (requestheader-client-ca-file, PEM) here.
    #[arg(long)]
    front_proxy_ca_out: Option<PathBuf>,
    /// Register metrics.k8s.io/v1beta1 as an APIService served by this https URL.
    #[arg(long)]
    aggregate_to: Option<String>,
    /// CA (PEM file) of the aggregated backend's serving certificate; without it the
    /// APIService has insecureSkipTLSVerify.
    #[arg(long, requires = "aggregate_to")]
    aggregate_ca: Option<PathBuf>,
}

fn parse_range(s: &str) -> Result<(usize, usize), String> {
    let (min, max) = s.split_once('-').unwrap_or((s, s));
    let min: usize = min.trim().parse().map_err(|e| format!("{min:?}: {e}"))?;
    let max: usize = max.trim().parse().map_err(|e| format!("{max:?}: {e}"))?;
    if min == 0 || min > max {
        return Err(format!("need 1 <= MIN <= MAX, got {min}-{max}"));
    }
    Ok((min, max))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    install_crypto_provider();
    let args = Args::parse();
    let spec = ClusterSpec {
        nodes: args.nodes,
        pods_per_node: args.pods_per_node,
        containers_per_pod: args.containers,
        namespaces: args.namespaces,
        seed: args.seed,
        kubelet_port: args.kubelet_port,
    };
    let cluster = SimCluster::generate(&spec, SimClock::Real);
    let kubelets = KubeletSimulator::start(
        cluster.clone(),
        KubeletSimConfig {
            token: args.kubelet_token.clone(),
            ..KubeletSimConfig::default()
        },
    )
    .await
    .context("starting the simulated kubelets")?;
    let admin = UserInfo {
        username: "admin".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
        uid: "sim-admin".into(),
    };
    let config = ApiServerConfig {
        addr: args.listen,
        tokens: BTreeMap::from([(args.token.clone(), admin)]),
        ..ApiServerConfig::default()
    };
    let apiserver = FakeApiServer::start(Arc::clone(&cluster), config)
        .await
        .context("starting the fake kube-apiserver")?;

    if let Some(url) = &args.aggregate_to {
        let ca = match &args.aggregate_ca {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            ),
            None => None,
        };
        apiserver.register_api_service("metrics.k8s.io", "v1beta1", 100, 100, url, ca);
    }
    if let Some(path) = &args.kubeconfig_out {
        apiserver.write_kubeconfig(path, &args.token)?;
    }
    if let Some(path) = &args.kubelet_ca_out {
        std::fs::write(path, kubelets.ca_pem())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.front_proxy_ca_out {
        std::fs::write(path, apiserver.front_proxy_ca_pem())
            .with_context(|| format!("writing {}", path.display()))?;
    }

    let pods = cluster.read().pods.len();
    let kubeconfig = args
        .kubeconfig_out
        .as_ref()
        .map(|p| format!(" kubeconfig={}", p.display()))
        .unwrap_or_default();
    println!(
        "sim-cluster ready: apiserver={} nodes={} pods={pods}{kubeconfig}",
        apiserver.url(),
        args.nodes
    );

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    apiserver.shutdown().await;
    kubelets.shutdown().await;
    Ok(())
}
