//! HTTPS serving (HTTP/2 and HTTP/1.1): each connection's TLS handshake uses the latest
//! [`ServingTls`] configuration, and its client certificate is checked once, right after the
//! handshake, into a [`ConnectionPeer`] every request on the connection carries.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum_server::Handle;
use axum_server::accept::Accept;
use http::Request;
use hyper::body::Incoming;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tower::Service;

use super::auth::ConnectionPeer;
use super::auth::ca_bundle::Bundles;
use super::auth::client_cert::PeerCert;
pub use super::tls::ServingCert;
use super::tls::ServingTls;
use crate::config::ServerConfig;

/// Longest a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl ServingCert {
    /// The certificate `[server]` asks for.
    pub fn from_config(cfg: &ServerConfig) -> anyhow::Result<ServingCert> {
        match (&cfg.tls_cert_file, &cfg.tls_key_file) {
            (Some(c), Some(k)) => ServingCert::from_files(c.get_ref(), k.get_ref()),
            _ => {
                tracing::warn!(
                    "serving with a self-signed certificate (server.self_signed = true): for development only"
                );
                ServingCert::self_signed(&[])
            }
        }
    }
}

/// A running HTTPS server.
#[derive(Debug)]
pub struct RunningServer {
    /// The address it listens on (the real port when 0 was asked for).
    pub local_addr: SocketAddr,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish (up to 10 s), and waits.
    pub async fn shutdown(self) {
        self.handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        let _ = self.task.await;
    }
}

/// TLS handshake, then the connection's client-certificate facts.
#[derive(Clone, Debug)]
struct TlsPeerAcceptor {
    tls: Arc<ServingTls>,
    /// `None` when authentication is disabled (no client certificate is classified).
    bundles: Option<Arc<Bundles>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S: Send + 'static> Accept<TcpStream, S> for TlsPeerAcceptor {
    type Stream = TlsStream<TcpStream>;
    type Service = WithPeer<S>;
    type Future = BoxFuture<std::io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.config());
        let bundles = self.bundles.clone();
        Box::pin(async move {
            let _ = stream.set_nodelay(true);
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
            let peer = match (&bundles, tls.get_ref().1.peer_certificates()) {
                (Some(bundles), Some(chain)) => PeerCert::classify(chain, &bundles.load()),
                _ => PeerCert::default(),
            };
            Ok((
                tls,
                WithPeer {
                    inner: service,
                    peer: ConnectionPeer(Arc::new(peer)),
                },
            ))
        })
    }
}

/// Adds the connection's [`ConnectionPeer`] to each request.
#[derive(Clone, Debug)]
struct WithPeer<S> {
    inner: S,
    peer: ConnectionPeer,
}

impl<S: Service<Request<Incoming>>> Service<Request<Incoming>> for WithPeer<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.peer.clone());
        self.inner.call(req)
    }
}

/// Serves `router` over TLS on `addr`; `bundles` (when authentication is on) classifies each
/// connection's client certificate.
pub async fn serve(
    addr: SocketAddr,
    tls: Arc<ServingTls>,
    bundles: Option<Arc<Bundles>>,
    router: Router,
) -> anyhow::Result<RunningServer> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    let handle = Handle::new();
    let server = axum_server::from_tcp(listener)?
        .acceptor(TlsPeerAcceptor { tls, bundles })
        .handle(handle.clone());
    let task = tokio::spawn(async move { server.serve(router.into_make_service()).await });
    tracing::info!(%local_addr, "serving HTTPS");
    Ok(RunningServer {
        local_addr,
        handle,
        task,
    })
}
