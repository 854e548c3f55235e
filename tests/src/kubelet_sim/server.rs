//! The per-node HTTPS servers: a TLS listener per kubelet, hyper (HTTP/1.1 and h2 by ALPN) on
//! each connection, and the request handler that applies the node's behavior.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::cadvisor::render_metrics_cadvisor;
use super::resource::render_metrics_resource;
use super::summary::{SummaryDetail, render_stats_summary};
use crate::cluster::{ClusterState, Millis, NodeBehavior, SimCluster, SimNode};
use crate::pki::TestCa;

/// What a [`NodeBehavior::Garbage`] kubelet answers with status 200.
const GARBAGE: &str = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\
<body><h1>Bad Gateway</h1><p>The proxy received an invalid response.</p></body></html>\n";

/// Initial body buffer size before a node's real response sizes are known.
const INITIAL_BODY_CAPACITY: usize = 16 * 1024;

/// State shared by the reconciler and every listener.
pub(super) struct Shared {
    pub(super) cluster: Arc<SimCluster>,
    pub(super) ca: Arc<TestCa>,
    /// The exact `Authorization` header value required, if any.
    bearer: Option<Vec<u8>>,
    ip_sans: bool,
    /// Per-node counters, kept across restarts and deletion.
    stats: RwLock<HashMap<String, Arc<NodeStats>>>,
    /// Serving TLS setup per node, issued once; the IP is the SAN it was issued for.
    tls: Mutex<HashMap<String, (IpAddr, TlsAcceptor)>>,
}

/// Paths whose answers are counted one by one; every other path counts under "other".
const COUNTED_PATHS: [&str; 4] = [
    "/metrics/resource",
    "/stats/summary",
    "/metrics/cadvisor",
    "/healthz",
];

/// Index into [`NodeStats::by_path`] of `path`.
fn path_index(path: &str) -> usize {
    COUNTED_PATHS
        .iter()
        .position(|p| *p == path)
        .unwrap_or(COUNTED_PATHS.len())
}

/// Counters of one node's kubelet.
struct NodeStats {
    answered: AtomicU64,
    /// Answers per [`COUNTED_PATHS`] entry, then every other path.
    by_path: [AtomicU64; COUNTED_PATHS.len() + 1],
    open: watch::Sender<usize>,
    metrics_size: AtomicUsize,
    summary_size: AtomicUsize,
    cadvisor_size: AtomicUsize,
}

impl Shared {
    pub(super) fn new(
        cluster: Arc<SimCluster>,
        ca: Arc<TestCa>,
        token: Option<String>,
        ip_sans: bool,
    ) -> Shared {
        Shared {
            cluster,
            ca,
            bearer: token.map(|t| format!("Bearer {t}").into_bytes()),
            ip_sans,
            stats: RwLock::default(),
            tls: Mutex::default(),
        }
    }

    fn stats(&self, node: &str) -> Option<Arc<NodeStats>> {
        self.stats
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .cloned()
    }

    fn stats_or_insert(&self, node: &str) -> Arc<NodeStats> {
        let mut map = self.stats.write().unwrap_or_else(|e| e.into_inner());
        map.entry(node.to_string())
            .or_insert_with(|| {
                Arc::new(NodeStats {
                    answered: AtomicU64::new(0),
                    by_path: Default::default(),
                    open: watch::Sender::new(0),
                    metrics_size: AtomicUsize::new(INITIAL_BODY_CAPACITY),
                    summary_size: AtomicUsize::new(INITIAL_BODY_CAPACITY),
                    cadvisor_size: AtomicUsize::new(INITIAL_BODY_CAPACITY),
                })
            })
            .clone()
    }

    pub(super) fn answered(&self, node: &str) -> u64 {
        self.stats(node)
            .map_or(0, |s| s.answered.load(Ordering::Relaxed))
    }

    /// Answers to `path` (query string excluded), with any status.
    pub(super) fn answered_path(&self, node: &str, path: &str) -> u64 {
        let Some(stats) = self.stats(node) else {
            return 0;
        };
        let i = path_index(path);
        if i == COUNTED_PATHS.len() {
            return 0;
        }
        stats.by_path[i].load(Ordering::Relaxed)
    }

    pub(super) fn open_connections(&self, node: &str) -> usize {
        self.stats(node).map_or(0, |s| *s.open.borrow())
    }

    /// Waits until `node` has exactly `n` open connections.
    #[cfg(test)]
    pub(super) async fn wait_open_connections(&self, node: &str, n: usize) {
        let mut rx = self.stats_or_insert(node).open.subscribe();
        let _ = rx.wait_for(|&open| open == n).await;
    }

    /// The TLS acceptor of `node`, issuing its serving certificate on first use.
    fn acceptor(&self, node: &str, ip: IpAddr) -> anyhow::Result<TlsAcceptor> {
        let mut cache = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((issued_for, acceptor)) = cache.get(node)
            && (!self.ip_sans || *issued_for == ip)
        {
            return Ok(acceptor.clone());
        }
        let mut names = vec![node.to_string()];
        if self.ip_sans {
            names.push(ip.to_string());
        }
        let pair = self
            .ca
            .server_cert(node, &names)
            .with_context(|| format!("issuing {node}'s serving certificate"))?;
        let acceptor = TlsAcceptor::from(pair.server_config()?);
        cache.insert(node.to_string(), (ip, acceptor.clone()));
        Ok(acceptor)
    }
}

/// A running kubelet listener.
pub(super) struct Listener {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Listener {
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener and drops its connections; both are gone when this returns.
    pub(super) async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Binds `node`'s kubelet at `addr` and starts serving.
pub(super) async fn start_listener(
    shared: &Arc<Shared>,
    node: &str,
    addr: SocketAddr,
) -> anyhow::Result<Listener> {
    let acceptor = shared.acceptor(node, addr.ip())?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {node}'s kubelet at {addr}"))?;
    let ctx = Arc::new(NodeCtx {
        name: node.to_string(),
        shared: shared.clone(),
        stats: shared.stats_or_insert(node),
    });
    let task = tokio::spawn(accept_loop(listener, acceptor, ctx));
    Ok(Listener { addr, task })
}

/// What every connection of one kubelet shares.
struct NodeCtx {
    name: String,
    shared: Arc<Shared>,
    stats: Arc<NodeStats>,
}

/// Accepts connections until aborted; aborting drops the listener and, with the `JoinSet`,
/// every connection task.
async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, ctx: Arc<NodeCtx>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    connections.spawn(serve_connection(tcp, acceptor.clone(), ctx.clone()));
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(node = %ctx.name, error = %e, "kubelet accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Counts a connection as open for as long as it lives.
struct OpenGuard(Arc<NodeCtx>);

impl OpenGuard {
    fn new(ctx: Arc<NodeCtx>) -> OpenGuard {
        ctx.stats.open.send_modify(|n| *n += 1);
        OpenGuard(ctx)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.stats.open.send_modify(|n| *n -= 1);
    }
}

async fn serve_connection(tcp: TcpStream, acceptor: TlsAcceptor, ctx: Arc<NodeCtx>) {
    let _open = OpenGuard::new(ctx.clone());
    let _ = tcp.set_nodelay(true);
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::debug!(node = %ctx.name, error = %e, "kubelet TLS handshake failed");
            return;
        }
    };
    let name = ctx.name.clone();
    let service = service_fn(move |req| handle(ctx.clone(), req));
    if let Err(e) = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(node = %name, error = %e, "kubelet connection ended");
    }
}

/// Returned by the handler when the node is down or gone: hyper then drops the connection.
#[derive(Debug, thiserror::Error)]
#[error("simulated node is down")]
struct NodeDown;

type Body = Full<Bytes>;

async fn handle(ctx: Arc<NodeCtx>, req: Request<Incoming>) -> Result<Response<Body>, NodeDown> {
    let path = path_index(req.uri().path());
    if let Some(bearer) = &ctx.shared.bearer
        && req
            .headers()
            .get(AUTHORIZATION)
            .is_none_or(|v| v.as_bytes() != bearer.as_slice())
    {
        return Ok(ctx.answered(
            path,
            text(
                StatusCode::UNAUTHORIZED,
                "text/plain; charset=utf-8",
                "Unauthorized\n",
            ),
        ));
    }
    let behavior = {
        let state = ctx.shared.cluster.read();
        state.nodes.get(&ctx.name).map(|n| n.behavior.clone())
    };
    match behavior.ok_or(NodeDown)? {
        NodeBehavior::Normal => {}
        NodeBehavior::Slow(delay) => tokio::time::sleep(delay).await,
        NodeBehavior::Fail(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = "simulated kubelet failure\n";
            return Ok(ctx.answered(path, text(status, "text/plain; charset=utf-8", body)));
        }
        NodeBehavior::Garbage => {
            return Ok(ctx.answered(path, text(StatusCode::OK, "text/html", GARBAGE)));
        }
        // Pending until hyper drops the request because the client went away.
        NodeBehavior::Hang => return std::future::pending().await,
        NodeBehavior::Down => return Err(NodeDown),
    }
    let response = route(&ctx, &req)?;
    Ok(ctx.answered(path, response))
}

fn route(ctx: &NodeCtx, req: &Request<Incoming>) -> Result<Response<Body>, NodeDown> {
    let path = req.uri().path();
    let known = path_index(path) < COUNTED_PATHS.len();
    if known && req.method() != Method::GET {
        return Ok(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "405: Method Not Allowed\n",
        ));
    }
    Ok(match path {
        "/metrics/resource" => {
            let body = ctx.render(&ctx.stats.metrics_size, |state, node, now, out| {
                render_metrics_resource(state, node, now, out);
            })?;
            bytes(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                body,
            )
        }
        "/stats/summary" => {
            let only_cpu_and_memory = req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv == "only_cpu_and_memory=true"));
            let detail = if only_cpu_and_memory {
                SummaryDetail::CpuAndMemory
            } else {
                SummaryDetail::Full
            };
            let body = ctx.render(&ctx.stats.summary_size, |state, node, now, out| {
                render_stats_summary(state, node, now, detail, out);
            })?;
            bytes(StatusCode::OK, "application/json", body)
        }
        "/metrics/cadvisor" => {
            let body = ctx.render(&ctx.stats.cadvisor_size, |state, node, now, out| {
                render_metrics_cadvisor(state, node, now, out);
            })?;
            bytes(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                body,
            )
        }
        "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok"),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found\n",
        ),
    })
}

impl NodeCtx {
    /// Counts an answer to the path with index `path` and passes it through.
    fn answered(&self, path: usize, response: Response<Body>) -> Response<Body> {
        self.stats.answered.fetch_add(1, Ordering::Relaxed);
        self.stats.by_path[path].fetch_add(1, Ordering::Relaxed);
        response
    }

    /// Renders a body under the cluster read lock into a buffer sized from the last one; the
    /// lock is released before anything is written to the socket.
    fn render(
        &self,
        size_hint: &AtomicUsize,
        f: impl FnOnce(&ClusterState, &SimNode, Millis, &mut Vec<u8>),
    ) -> Result<Vec<u8>, NodeDown> {
        let now = self.shared.cluster.clock.now_ms();
        let mut out = Vec::with_capacity(size_hint.load(Ordering::Relaxed));
        {
            let state = self.shared.cluster.read();
            let node = state.nodes.get(&self.name).ok_or(NodeDown)?;
            f(&state, node, now, &mut out);
        }
        size_hint.store(out.len() + out.len() / 8, Ordering::Relaxed);
        Ok(out)
    }
}

fn text(status: StatusCode, content_type: &'static str, body: &'static str) -> Response<Body> {
    bytes(status, content_type, Bytes::from_static(body.as_bytes()))
}

fn bytes(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
