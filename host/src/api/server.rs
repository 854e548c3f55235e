//! HTTPS serving with rustls (HTTP/2 and HTTP/1.1), from certificate files or, when explicitly
//! allowed, a self-signed certificate made at start.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ServerConfig;

/// A certificate chain and key.
#[derive(Debug)]
pub struct ServingCert {
    /// Chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
}

impl ServingCert {
    /// Loads PEM files.
    pub fn from_files(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> anyhow::Result<ServingCert> {
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("reading serving certificate {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing serving certificate {}", cert.display()))?;
        anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("reading serving key {}", key.display()))?;
        Ok(ServingCert { chain, key })
    }

    /// A self-signed certificate for localhost and the given extra names.
    pub fn self_signed(extra_names: &[String]) -> anyhow::Result<ServingCert> {
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        names.extend(extra_names.iter().cloned());
        let cert = rcgen::generate_simple_self_signed(names)
            .context("generating a self-signed certificate")?;
        Ok(ServingCert {
            chain: vec![cert.cert.der().clone()],
            key: PrivateKeyDer::try_from(cert.signing_key.serialize_der())
                .map_err(|e| anyhow::anyhow!("self-signed key: {e}"))?,
        })
    }

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

    fn rustls_config(self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(self.chain, self.key)
            .context("serving certificate and key do not match or are unsupported")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
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

/// Serves `router` over TLS on `addr`.
pub async fn serve(
    addr: SocketAddr,
    cert: ServingCert,
    router: Router,
) -> anyhow::Result<RunningServer> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    let tls = RustlsConfig::from_config(cert.rustls_config()?);
    let handle = Handle::new();
    let server = axum_server::from_tcp_rustls(listener, tls)?.handle(handle.clone());
    let task = tokio::spawn(async move { server.serve(router.into_make_service()).await });
    tracing::info!(%local_addr, "serving HTTPS");
    Ok(RunningServer {
        local_addr,
        handle,
        task,
    })
}
