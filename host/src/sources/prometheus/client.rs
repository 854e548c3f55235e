//! HTTP(S) to one Prometheus-compatible backend: rustls with the configured CA, client
//! certificate or no verification, bearer token or basic auth (files re-read per request, so
//! rotated secrets are picked up), extra headers, a per-request timeout, GET or POST.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::response::{ResponseError, error_body};
use crate::config::{PrometheusConfig, QueryMethod};

/// A backend that cannot be set up from its config.
#[derive(Debug, thiserror::Error)]
#[error("prometheus {backend:?}: {message}")]
pub struct SetupError {
    /// The backend's name.
    pub backend: String,
    /// What is wrong.
    pub message: String,
}

/// Why one request to a backend failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A credential file could not be read.
    #[error("reading {path}: {message}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// No answer within the timeout.
    #[error("no answer within {0} s")]
    Timeout(u32),
    /// Connecting or sending failed.
    #[error("{0}")]
    Unreachable(String),
    /// The answer exceeded [`MAX_BODY_BYTES`].
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    /// A non-2xx answer that is not a Prometheus error body.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The answer could not be used.
    #[error(transparent)]
    Response(#[from] ResponseError),
}

impl RequestError {
    /// A fixed, low-cardinality outcome for self-metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            RequestError::Credentials { .. } => "credentials",
            RequestError::Timeout(_) => "timeout",
            RequestError::Unreachable(_) => "unreachable",
            RequestError::Status { .. } => "http_error",
            RequestError::TooLarge(_) => "too_large",
            RequestError::Response(ResponseError::Prometheus { .. }) => "prometheus_error",
            RequestError::Response(
                ResponseError::TooManySeries(_) | ResponseError::TooManyLabels(_),
            ) => "too_many_series",
            RequestError::Response(_) => "bad_result",
        }
    }
}

/// Largest answer read from a backend; a larger one fails its input (memory stays bounded
/// whatever a query or selector matches).
pub const MAX_BODY_BYTES: usize = 256 << 20;

/// Requests to one backend.
#[derive(Debug)]
pub struct BackendClient {
    url: reqwest::Url,
    http: reqwest::Client,
    method: QueryMethod,
    timeout_secs: u32,
    bearer_token_file: Option<PathBuf>,
    basic_auth: Option<(String, PathBuf)>,
}

impl BackendClient {
    /// A client for `cfg`, relative paths resolved against `base_dir`.
    pub fn new(cfg: &PrometheusConfig, base_dir: &Path) -> Result<BackendClient, SetupError> {
        let fail = |message: String| SetupError {
            backend: cfg.name.get_ref().clone(),
            message,
        };
        let mut url = reqwest::Url::parse(cfg.url.get_ref())
            .map_err(|e| fail(format!("url {:?}: {e}", cfg.url.get_ref())))?;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(format!("TLS: {e}")))?;
        let builder = if cfg.insecure_skip_tls_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(
                    crate::sources::kubelet::client::AcceptAnyCert::new(),
                ))
        } else {
            let roots = match &cfg.ca_file {
                Some(path) => crate::sources::kubelet::load_roots(&base_dir.join(path))
                    .map_err(|e| fail(format!("{e:#}")))?,
                None => system_roots(),
            };
            builder.with_root_certificates(roots)
        };
        let tls = match (&cfg.client_cert_file, &cfg.client_key_file) {
            (Some(cert), Some(key)) => {
                let cert_path = base_dir.join(cert.get_ref());
                let key_path = base_dir.join(key.get_ref());
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
                    .and_then(|it| it.collect::<Result<_, _>>())
                    .map_err(|e| fail(format!("client_cert_file {}: {e}", cert_path.display())))?;
                let key = PrivateKeyDer::from_pem_file(&key_path)
                    .map_err(|e| fail(format!("client_key_file {}: {e}", key_path.display())))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| fail(format!("client certificate: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in cfg.headers.get_ref() {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| fail(format!("header {name:?}: {e}")))?;
            let mut value =
                HeaderValue::from_str(value).map_err(|e| fail(format!("header {name}: {e}")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .default_headers(headers)
            .pool_max_idle_per_host(cfg.max_concurrency.get() as usize)
            .build()
            .map_err(|e| fail(format!("HTTP client: {e}")))?;
        Ok(BackendClient {
            url,
            http,
            method: cfg.method,
            timeout_secs: cfg.timeout_secs.get(),
            bearer_token_file: cfg.bearer_token_file.as_ref().map(|p| base_dir.join(p)),
            basic_auth: cfg
                .basic_auth_username
                .as_ref()
                .zip(cfg.basic_auth_password_file.as_ref())
                .map(|(u, p)| (u.get_ref().clone(), base_dir.join(p.get_ref()))),
        })
    }

    /// Reads the credential files once: an error names the file that cannot be read.
    pub fn check_credentials(&self) -> Result<(), RequestError> {
        let files = self.bearer_token_file.iter();
        for path in files.chain(self.basic_auth.iter().map(|(_, p)| p)) {
            read_secret(path)?;
        }
        Ok(())
    }

    /// Calls API endpoint `path` (e.g. `api/v1/query`) with `params`: in the URL for GET, as a
    /// form body for POST. Answers other than 2xx become errors (Prometheus' own error body
    /// when it sent one).
    pub async fn call(&self, path: &str, params: &[(&str, &str)]) -> Result<Bytes, RequestError> {
        let url = self
            .url
            .join(path)
            .map_err(|e| RequestError::Unreachable(format!("URL: {e}")))?;
        let request = match self.method {
            QueryMethod::Get => self.http.get(url).query(params),
            QueryMethod::Post => self.http.post(url).form(params),
        };
        let mut request = request.timeout(Duration::from_secs(self.timeout_secs.into()));
        if let Some(path) = &self.bearer_token_file {
            request = request.bearer_auth(read_secret(path)?);
        }
        if let Some((user, path)) = &self.basic_auth {
            request = request.basic_auth(user, Some(read_secret(path)?));
        }
        let mut response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(RequestError::TooLarge(MAX_BODY_BYTES));
            }
            body.extend_from_slice(&chunk);
        }
        let body = Bytes::from(body);
        if status.is_success() {
            return Ok(body);
        }
        Err(match error_body(&body) {
            Some(e) => RequestError::Response(e),
            None => RequestError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned(),
            },
        })
    }

    fn transport(&self, e: reqwest::Error) -> RequestError {
        if e.is_timeout() {
            return RequestError::Timeout(self.timeout_secs);
        }
        RequestError::Unreachable(error_chain(&e))
    }
}

/// An error with its causes, innermost last: the innermost says what happened (connection
/// refused, certificate unknown…).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
}

fn read_secret(path: &Path) -> Result<String, RequestError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| RequestError::Credentials {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// The system's trusted roots (empty when none can be read: then only a configured CA works).
pub(crate) fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "reading the system's CA certificates");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}
