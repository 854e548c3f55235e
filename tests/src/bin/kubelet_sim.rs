//! `kubelet-sim`: serves simulated kubelets for a generated cluster until interrupted.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, bail};
use clap::Parser;
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster, node_address};
use metrics_gateway_testkit::kubelet_sim::{KubeletSimConfig, KubeletSimulator};

/// Serves one simulated kubelet per node of a generated cluster, each on its own 127.x address.
#[derive(Debug, Parser)]
#[command(name = "kubelet-sim", version)]
struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Running pods per node.
    #[arg(long, default_value_t = 10)]
    pods_per_node: usize,
    /// Containers per pod, `N` or `MIN-MAX`.
    #[arg(long, default_value = "1-3")]
    containers: ContainerRange,
    /// Number of namespaces pods are spread over.
    #[arg(long, default_value_t = 3)]
    namespaces: usize,
    /// Seed of the generated cluster.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Kubelet port (every node listens on it at its own address).
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// Require `Authorization: Bearer TOKEN`.
    #[arg(long, env = "KUBELET_SIM_TOKEN")]
    token: Option<String>,
    /// Also put the node IP in serving certificates.
    #[arg(long)]
    ip_sans: bool,
    /// Write the CA certificate (PEM) that signed the serving certificates here.
    #[arg(long)]
    ca_out: Option<PathBuf>,
}

/// An inclusive range of containers per pod.
#[derive(Clone, Copy, Debug)]
struct ContainerRange(usize, usize);

impl FromStr for ContainerRange {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (min, max) = s.split_once('-').unwrap_or((s, s));
        let (min, max): (usize, usize) = (min.trim().parse()?, max.trim().parse()?);
        if min == 0 || min > max {
            bail!("expected N or MIN-MAX with 1 <= MIN <= MAX, got {s:?}");
        }
        Ok(ContainerRange(min, max))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let spec = ClusterSpec {
        nodes: args.nodes,
        pods_per_node: args.pods_per_node,
        containers_per_pod: (args.containers.0, args.containers.1),
        namespaces: args.namespaces,
        seed: args.seed,
        kubelet_port: args.port,
    };
    let cluster = SimCluster::generate(&spec, SimClock::Real);
    let config = KubeletSimConfig {
        token: args.token,
        ip_sans: args.ip_sans,
        ca: None,
    };
    let sim = KubeletSimulator::start(cluster, config).await?;
    if let Some(path) = &args.ca_out {
        std::fs::write(path, sim.ca_pem())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "kubelet-sim ready: {} nodes x {} pods at {}..{} port {}",
        args.nodes,
        args.pods_per_node,
        node_address(0),
        node_address(args.nodes - 1),
        args.port
    );
    wait_for_signal().await?;
    sim.shutdown().await;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
