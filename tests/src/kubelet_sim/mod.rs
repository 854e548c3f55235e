//! Simulated kubelets: one TLS listener per node of a [`SimCluster`], at the node's own
//! loopback address, serving `/metrics/resource`, `/stats/summary`, `/metrics/cadvisor` and
//! `/healthz` from the cluster model as a real kubelet would.
//!
//! The simulator follows the cluster: it starts a listener when a node appears, closes it when
//! the node is deleted or its behavior becomes [`NodeBehavior::Down`](crate::cluster::NodeBehavior)
//! (connections are then refused and open ones dropped), and reopens it when the node comes
//! back. Every other behavior and all pod faults are read from the model on each request.

mod cadvisor;
mod format;
mod model;
mod resource;
mod server;
mod summary;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use cadvisor::render_metrics_cadvisor;
pub use model::{
    NODE_STAMP_LAG_MS, NetworkRate, POD_STAMP_LAG_MS, container_stamp_ms, node_network_rate,
    node_stamp_ms, pod_network_rate, pod_stamp_ms,
};
pub use resource::render_metrics_resource;
pub use summary::{SummaryDetail, render_stats_summary};

use crate::cluster::{ClusterEvent, NodeBehavior, SimCluster};
use crate::pki::{self, TestCa};
use server::{Listener, Shared};

/// Open files below which the simulator warns: 5,000 listeners plus their connections.
const NOFILE_WANTED: u64 = 10_240;

/// How the simulated kubelets authenticate clients and present themselves.
#[derive(Clone, Debug, Default)]
pub struct KubeletSimConfig {
    /// When set, requests without `Authorization: Bearer <token>` get 401.
    pub token: Option<String>,
    /// Serving certificates also carry the node's IP address as a SAN. Off by default: like
    /// real kubelets' self-issued certificates, they name only the node (a DNS SAN).
    pub ip_sans: bool,
    /// The CA that issues the serving certificates; a fresh one when `None`.
    pub ca: Option<Arc<TestCa>>,
}

/// A running set of simulated kubelets; dropping it stops them too (without waiting).
pub struct KubeletSimulator {
    shared: Arc<Shared>,
    processed: watch::Receiver<u64>,
    stop: oneshot::Sender<()>,
    watcher: JoinHandle<()>,
}

impl std::fmt::Debug for KubeletSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletSimulator")
            .field("processed_resource_version", &*self.processed.borrow())
            .finish_non_exhaustive()
    }
}

impl KubeletSimulator {
    /// Starts a kubelet for every node of `cluster` that is not Down and follows the cluster's
    /// changes from then on. Fails if a listener cannot be bound.
    pub async fn start(
        cluster: Arc<SimCluster>,
        config: KubeletSimConfig,
    ) -> anyhow::Result<KubeletSimulator> {
        pki::install_crypto_provider();
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) if n < NOFILE_WANTED => {
                tracing::warn!(limit = n, "open-file limit is low for many kubelets")
            }
            Ok(n) => tracing::debug!(limit = n, "raised open-file limit"),
            Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
        }
        let ca = match config.ca {
            Some(ca) => ca,
            None => Arc::new(TestCa::new("kubelet-sim-ca").context("creating the kubelet CA")?),
        };
        let shared = Arc::new(Shared::new(
            cluster.clone(),
            ca,
            config.token,
            config.ip_sans,
        ));
        // Subscribe before reading the state so no change falls between the two.
        let events = cluster.subscribe();
        let mut reconciler = Reconciler {
            shared: shared.clone(),
            running: HashMap::new(),
        };
        let rv = match reconciler.resync().await {
            Ok(rv) => rv,
            Err(e) => {
                reconciler.stop_all().await;
                return Err(e);
            }
        };
        tracing::info!(
            kubelets = reconciler.running.len(),
            "kubelet simulator started"
        );
        let (processed_tx, processed) = watch::channel(rv);
        let (stop, stop_rx) = oneshot::channel();
        let watcher = tokio::spawn(reconciler.run(events, processed_tx, stop_rx));
        Ok(KubeletSimulator {
            shared,
            processed,
            stop,
            watcher,
        })
    }

    /// The CA certificate (PEM) that signed every serving certificate.
    pub fn ca_pem(&self) -> String {
        self.shared.ca.cert_pem()
    }

    /// Requests answered so far by `node`'s kubelet, on any path and with any status
    /// (hanging requests are not counted); 0 for an unknown node.
    pub fn scrape_count(&self, node: &str) -> u64 {
        self.shared.answered(node)
    }

    /// Requests to `path` (e.g. `/metrics/cadvisor`, without query) answered so far by
    /// `node`'s kubelet, with any status; 0 for an unknown node or an uncounted path (only
    /// `/metrics/resource`, `/stats/summary`, `/metrics/cadvisor` and `/healthz` are counted).
    pub fn scrape_count_path(&self, node: &str, path: &str) -> u64 {
        self.shared.answered_path(node, path)
    }

    /// Client connections currently open to `node`'s kubelet (TLS handshakes included).
    pub fn open_connections(&self, node: &str) -> usize {
        self.shared.open_connections(node)
    }

    /// Waits until the listeners reflect every cluster change made before this call (e.g. a
    /// node set Down really refuses connections once this returns).
    pub async fn synced(&self) {
        let target = self.shared.cluster.read().resource_version;
        let mut processed = self.processed.clone();
        let _ = processed.wait_for(|&rv| rv >= target).await;
    }

    /// Stops every kubelet: listeners are closed and open connections dropped on return.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.watcher.await;
    }
}

/// Keeps the set of running listeners equal to the cluster's nodes that are not Down.
struct Reconciler {
    shared: Arc<Shared>,
    running: HashMap<String, Listener>,
}

impl Reconciler {
    async fn run(
        mut self,
        mut events: tokio::sync::broadcast::Receiver<(u64, ClusterEvent)>,
        processed: watch::Sender<u64>,
        mut stop: oneshot::Receiver<()>,
    ) {
        loop {
            let rv = tokio::select! {
                _ = &mut stop => break,
                event = events.recv() => match event {
                    Ok((rv, ClusterEvent::NodeUpserted(name))) => {
                        self.reconcile_logged(&name).await;
                        rv
                    }
                    Ok((rv, ClusterEvent::NodeDeleted(node))) => {
                        self.reconcile_logged(&node.name).await;
                        rv
                    }
                    Ok((rv, _)) => rv,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "kubelet simulator fell behind cluster events; resyncing");
                        match self.resync().await {
                            Ok(rv) => rv,
                            Err(e) => {
                                tracing::warn!(error = %format!("{e:#}"), "kubelet resync incomplete");
                                self.shared.cluster.read().resource_version
                            }
                        }
                    }
                    Err(RecvError::Closed) => break,
                },
            };
            processed.send_if_modified(|seen| {
                let advanced = rv > *seen;
                *seen = (*seen).max(rv);
                advanced
            });
        }
        self.stop_all().await;
    }

    /// Where `node`'s kubelet should listen, or `None` when it should not.
    fn desired(&self, node: &str) -> Option<SocketAddr> {
        let state = self.shared.cluster.read();
        let node = state.nodes.get(node)?;
        (node.behavior != NodeBehavior::Down)
            .then(|| SocketAddr::from((node.address, node.kubelet_port)))
    }

    async fn reconcile(&mut self, node: &str) -> anyhow::Result<()> {
        let want = self.desired(node);
        if want == self.running.get(node).map(Listener::addr) {
            return Ok(());
        }
        if let Some(listener) = self.running.remove(node) {
            listener.stop().await;
            tracing::debug!(node, "kubelet stopped");
        }
        if let Some(addr) = want {
            let listener = server::start_listener(&self.shared, node, addr).await?;
            self.running.insert(node.to_string(), listener);
            tracing::debug!(node, %addr, "kubelet listening");
        }
        Ok(())
    }

    async fn reconcile_logged(&mut self, node: &str) {
        if let Err(e) = self.reconcile(node).await {
            tracing::warn!(node, error = %format!("{e:#}"), "could not start kubelet");
        }
    }

    /// Reconciles every node, known or running; returns the resource version it caught up to.
    async fn resync(&mut self) -> anyhow::Result<u64> {
        let (rv, mut names) = {
            let state = self.shared.cluster.read();
            (
                state.resource_version,
                state.nodes.keys().cloned().collect::<BTreeSet<_>>(),
            )
        };
        names.extend(self.running.keys().cloned());
        let mut first_error = None;
        for name in &names {
            if let Err(e) = self.reconcile(name).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(rv),
        }
    }

    async fn stop_all(&mut self) {
        for (_, listener) in self.running.drain() {
            listener.stop().await;
        }
    }
}
