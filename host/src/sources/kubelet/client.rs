//! HTTP(S) to kubelets: one kept-alive HTTP/1.1 connection per node, reused across cycles.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::ScrapeError;
use crate::config::{Scheme, TlsServerName};

/// Read buffer of each kubelet connection.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// A kept-alive connection to one kubelet.
#[derive(Debug, Default)]
pub struct Connection {
    sender: Option<SendRequest<Empty<Bytes>>>,
    /// The address it was opened to; a changed node address opens a new one.
    target: Option<(String, u16)>,
}

/// Where and how to reach one kubelet.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// Node name.
    pub node: &'a str,
    /// Address (IP or host name).
    pub address: &'a str,
    /// Port.
    pub port: u16,
}

/// Shared settings of every kubelet connection.
#[derive(Clone)]
pub struct KubeletClient {
    tls: Option<TlsConnector>,
    server_name: TlsServerName,
    insecure: bool,
    max_body: usize,
    keep_alive: bool,
}

/// TLS sessions remembered for resumption: enough for the largest clusters.
const TLS_SESSION_CACHE: usize = 16_384;

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient")
            .field("tls", &self.tls.is_some())
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl KubeletClient {
    /// A client for `scheme`; `roots` verifies serving certificates unless `insecure`.
    pub fn new(
        scheme: Scheme,
        roots: rustls::RootCertStore,
        server_name: TlsServerName,
        insecure: bool,
        max_body: usize,
        keep_alive: bool,
    ) -> KubeletClient {
        let tls = (scheme == Scheme::Https).then(|| {
            let builder = rustls::ClientConfig::builder();
            let mut config = if insecure {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AcceptAnyCert::new()))
                    .with_no_client_auth()
            } else {
                builder.with_root_certificates(roots).with_no_client_auth()
            };
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            // Without kept-alive connections every scrape handshakes: resume sessions.
            config.resumption = rustls::client::Resumption::in_memory_sessions(TLS_SESSION_CACHE);
            TlsConnector::from(Arc::new(config))
        });
        KubeletClient {
            tls,
            server_name,
            insecure,
            max_body,
            keep_alive,
        }
    }

    /// `GET path` on the kubelet at `target`, reusing `conn` when it is still open.
    pub async fn get(
        &self,
        conn: &mut Connection,
        target: &Target<'_>,
        path: &str,
        token: Option<&str>,
    ) -> Result<Bytes, ScrapeError> {
        let key = (target.address.to_string(), target.port);
        if conn.target.as_ref() != Some(&key) {
            conn.sender = None;
        }
        conn.target = Some(key);
        let host = match target.address.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:{}", target.port),
            _ => format!("{}:{}", target.address, target.port),
        };
        // The Summary API answers JSON only; the metrics endpoints answer Prometheus text.
        let accept = if path.starts_with("/stats/") {
            "application/json"
        } else {
            "text/plain;version=0.0.4"
        };
        let request = || {
            let mut req = http::Request::get(path)
                .header(http::header::HOST, &host)
                .header(http::header::ACCEPT, accept)
                .header(
                    http::header::USER_AGENT,
                    concat!("metrics-gateway/", env!("CARGO_PKG_VERSION")),
                );
            if let Some(token) = token {
                req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
            }
            req.body(Empty::new())
                .map_err(|e| ScrapeError::Http(e.to_string()))
        };
        // A kept-alive connection the kubelet has closed fails before any response: the GET is
        // retried once on a fresh connection, as HTTP clients do.
        let reused = conn.sender.take().filter(|s| !s.is_closed());
        let (sender, resp) = match reused {
            Some(mut sender) => match send(&mut sender, request()?).await {
                Ok(resp) => (sender, resp),
                Err(_) => self.send_fresh(target, request()?).await?,
            },
            None => self.send_fresh(target, request()?).await?,
        };
        let status = resp.status();
        let body = Limited::new(resp.into_body(), self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ScrapeError::TooLarge(self.max_body)
                } else {
                    ScrapeError::Http(e.to_string())
                }
            })?
            .to_bytes();
        if self.keep_alive {
            conn.sender = Some(sender);
        }
        if !status.is_success() {
            let snippet = String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_string();
            return Err(ScrapeError::Status {
                status: status.as_u16(),
                body: snippet,
            });
        }
        Ok(body)
    }

    /// Sends `req` on a new connection.
    async fn send_fresh(
        &self,
        target: &Target<'_>,
        req: http::Request<Empty<Bytes>>,
    ) -> Result<
        (
            SendRequest<Empty<Bytes>>,
            http::Response<hyper::body::Incoming>,
        ),
        ScrapeError,
    > {
        let mut sender = self.connect(target).await?;
        let resp = send(&mut sender, req).await?;
        Ok((sender, resp))
    }

    async fn connect(&self, target: &Target<'_>) -> Result<SendRequest<Empty<Bytes>>, ScrapeError> {
        let tcp = TcpStream::connect((target.address, target.port))
            .await
            .map_err(|e| {
                ScrapeError::Connect(format!("{}:{}: {e}", target.address, target.port))
            })?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some(tls) => {
                let name = self.server_name(target)?;
                let stream = tls
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| self.tls_error(target, &name, e))?;
                handshake(stream).await
            }
        }
    }

    fn server_name(&self, target: &Target<'_>) -> Result<ServerName<'static>, ScrapeError> {
        let name = match self.server_name {
            TlsServerName::NodeName => target.node,
            TlsServerName::Address => target.address,
        };
        ServerName::try_from(name.to_string())
            .map_err(|_| ScrapeError::Tls(format!("{name:?} is not a valid TLS server name")))
    }

    fn tls_error(
        &self,
        target: &Target<'_>,
        name: &ServerName<'_>,
        e: std::io::Error,
    ) -> ScrapeError {
        let hint = match (self.server_name, name) {
            (_, _) if self.insecure => "",
            (TlsServerName::Address, ServerName::IpAddress(_)) => {
                " (kubelet serving certificates often lack IP SANs: set kubelet.tls_server_name = \
                 \"node-name\" to verify against the node name, provide the right kubelet.ca_file, or, \
                 insecurely, kubelet.insecure_skip_tls_verify = true)"
            }
            _ => {
                " (check kubelet.ca_file; kubelet.insecure_skip_tls_verify = true disables verification)"
            }
        };
        ScrapeError::Tls(format!(
            "TLS handshake with {}:{} verifying name {:?}: {e}{hint}",
            target.address,
            target.port,
            name.to_str()
        ))
    }
}

async fn send(
    sender: &mut SendRequest<Empty<Bytes>>,
    req: http::Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, ScrapeError> {
    sender
        .ready()
        .await
        .map_err(|e| ScrapeError::Http(e.to_string()))?;
    sender
        .send_request(req)
        .await
        .map_err(|e| ScrapeError::Http(e.to_string()))
}

async fn handshake<S>(io: S) -> Result<SendRequest<Empty<Bytes>>, ScrapeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Thousands of connections stay open between cycles: a fixed 8 KiB read buffer keeps each
    // idle one small (hyper's adaptive buffer would otherwise stay at the body's size).
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .read_buf_exact_size(Some(READ_BUFFER_BYTES))
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| ScrapeError::Http(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, "kubelet connection closed");
        }
    });
    Ok(sender)
}

/// Accepts any certificate: `kubelet.insecure_skip_tls_verify = true`.
#[derive(Debug)]
pub(crate) struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl AcceptAnyCert {
    pub(crate) fn new() -> Self {
        AcceptAnyCert(Arc::new(rustls::crypto::ring::default_provider()))
    }
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
