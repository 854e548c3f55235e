//! Kubelet scraping: address choice, authenticated HTTPS, decoding of `/metrics/resource`, and
//! the samples plugins read from `/metrics/resource`, `/stats/summary` and `/metrics/cadvisor`.

pub mod cadvisor;
pub mod client;
pub mod promtext;
pub mod resource;
pub mod samples;
pub mod summary;
pub mod text;

use std::path::{Path, PathBuf};

use bytes::Bytes;

pub use client::{Connection, KubeletClient, Target};

use crate::config::{AddressType, KubeletConfig};
use crate::sources::cluster::NodeInfo;

/// The kubelet's resource-metrics endpoint (Prometheus text).
pub const RESOURCE_PATH: &str = "/metrics/resource";
/// The kubelet's Summary API endpoint (JSON).
pub const SUMMARY_PATH: &str = "/stats/summary";
/// The kubelet's embedded cAdvisor endpoint (Prometheus text).
pub const CADVISOR_PATH: &str = "/metrics/cadvisor";

/// Where the in-cluster service-account token lives.
pub const IN_CLUSTER_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Why one kubelet scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The node has no address of a configured type.
    #[error("node has no address of types {0}")]
    NoAddress(String),
    /// TCP connect failed.
    #[error("connecting to {0}")]
    Connect(String),
    /// TLS failed (the message says which name was verified and how to fix it).
    #[error("{0}")]
    Tls(String),
    /// HTTP protocol failure.
    #[error("HTTP: {0}")]
    Http(String),
    /// A non-2xx answer.
    #[error("kubelet answered HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The response exceeded `kubelet.max_response_bytes`.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The scrape did not finish within `kubelet.timeout_secs`.
    #[error("no complete answer within {0} s")]
    Timeout(u32),
    /// The body is not a resource-metrics exposition.
    #[error("decoding /metrics/resource: {0}")]
    Decode(String),
}

impl ScrapeError {
    /// A fixed, low-cardinality reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::NoAddress(_) => "no_address",
            ScrapeError::Connect(_) => "connect",
            ScrapeError::Tls(_) => "tls",
            ScrapeError::Http(_) => "http",
            ScrapeError::Status {
                status: 401 | 403, ..
            } => "unauthorized",
            ScrapeError::Status { .. } => "http_status",
            ScrapeError::TooLarge(_) => "too_large",
            ScrapeError::Timeout(_) => "timeout",
            ScrapeError::Decode(_) => "decode",
        }
    }
}

/// Picks the address to scrape: the first address of the first preferred type the node has.
pub fn node_address<'a>(node: &'a NodeInfo, preference: &[AddressType]) -> Option<&'a str> {
    preference.iter().find_map(|t| {
        node.addresses
            .iter()
            .find(|(ty, _)| &**ty == t.as_str())
            .map(|(_, a)| &**a)
    })
}

/// Scrapes kubelets as configured.
#[derive(Debug, Clone)]
pub struct KubeletScraper {
    client: KubeletClient,
    address_types: Vec<AddressType>,
    port: Option<u16>,
    token_file: Option<PathBuf>,
}

impl KubeletScraper {
    /// A scraper from `[kubelet]`; `default_roots` (the API server's CA) is used without `ca_file`.
    pub fn new(
        cfg: &KubeletConfig,
        default_roots: rustls::RootCertStore,
    ) -> anyhow::Result<KubeletScraper> {
        let roots = match &cfg.ca_file {
            Some(path) => load_roots(path)?,
            None => default_roots,
        };
        let token_file = cfg.token_file.clone().or_else(|| {
            Path::new(IN_CLUSTER_TOKEN)
                .exists()
                .then(|| PathBuf::from(IN_CLUSTER_TOKEN))
        });
        Ok(KubeletScraper {
            client: KubeletClient::new(
                cfg.scheme,
                roots,
                cfg.tls_server_name,
                cfg.insecure_skip_tls_verify,
                cfg.max_response_bytes,
                cfg.keep_alive,
            ),
            address_types: cfg.address_types.clone(),
            port: cfg.port,
            token_file,
        })
    }

    /// Reads the bearer token (once per cycle, so rotated tokens are picked up).
    pub fn read_token(&self) -> Option<String> {
        let path = self.token_file.as_ref()?;
        match std::fs::read_to_string(path) {
            Ok(t) => Some(t.trim().to_string()),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read kubelet token file; scraping without a token");
                None
            }
        }
    }

    /// Fetches [`RESOURCE_PATH`] from `node`.
    pub async fn fetch_resource(
        &self,
        conn: &mut Connection,
        node: &NodeInfo,
        token: Option<&str>,
    ) -> Result<Bytes, ScrapeError> {
        self.fetch(conn, node, token, RESOURCE_PATH).await
    }

    /// Fetches `path` (e.g. [`SUMMARY_PATH`], [`CADVISOR_PATH`]) from `node` on its kept
    /// connection, with the configured TLS, token, size limit and address choice.
    pub async fn fetch(
        &self,
        conn: &mut Connection,
        node: &NodeInfo,
        token: Option<&str>,
        path: &str,
    ) -> Result<Bytes, ScrapeError> {
        let address = node_address(node, &self.address_types).ok_or_else(|| {
            ScrapeError::NoAddress(
                self.address_types
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            )
        })?;
        let port = self.port.unwrap_or(if node.kubelet_port == 0 {
            10250
        } else {
            node.kubelet_port
        });
        let target = Target {
            node: &node.name,
            address,
            port,
        };
        self.client.get(conn, &target, path, token).await
    }
}

/// Loads a PEM CA bundle.
pub fn load_roots(path: &Path) -> anyhow::Result<rustls::RootCertStore> {
    use anyhow::Context;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading CA bundle {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing CA bundle {}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("CA bundle {} holds no certificates", path.display());
    }
    for cert in certs {
        roots
            .add(cert)
            .with_context(|| format!("adding a certificate from {}", path.display()))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::cluster::LabelSet;
    use std::sync::Arc;

    #[test]
    fn address_follows_type_preference_not_node_order() {
        let node = NodeInfo {
            name: "n".into(),
            labels: Arc::new(LabelSet::default()),
            addresses: vec![
                ("Hostname".into(), "n.local".into()),
                ("ExternalIP".into(), "1.2.3.4".into()),
                ("InternalIP".into(), "10.0.0.1".into()),
            ],
            kubelet_port: 10250,
            ready: true,
            conditions: Default::default(),
        };
        let pref = [
            AddressType::InternalIP,
            AddressType::ExternalIP,
            AddressType::Hostname,
        ];
        assert_eq!(node_address(&node, &pref), Some("10.0.0.1"));
        assert_eq!(
            node_address(&node, &[AddressType::Hostname]),
            Some("n.local")
        );
        assert_eq!(node_address(&node, &[AddressType::InternalDNS]), None);
    }
}
