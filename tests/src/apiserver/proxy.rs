//! The kube-aggregator part: registered APIServices and the proxy that forwards their requests
//! to the backend with the front-proxy client certificate and `X-Remote-*` identity headers.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::auth::Subject;
use crate::pki::{AcceptAnyServerCert, CertPair};

/// One registered `APIService` (group/version served by a backend).
pub(crate) struct ApiService {
    /// API group.
    pub(crate) group: String,
    /// API version.
    pub(crate) version: String,
    /// `spec.groupPriorityMinimum`.
    pub(crate) group_priority_minimum: u32,
    /// `spec.versionPriority`.
    pub(crate) version_priority: u32,
    backend: Uri,
    client: Client<HttpsConnector<HttpConnector>, Body>,
}

/// The registered APIServices and the identity the aggregator proxies with.
pub(crate) struct Aggregator {
    services: RwLock<BTreeMap<(String, String), Arc<ApiService>>>,
    front_proxy_client: CertPair,
}

/// Orders Kubernetes versions the way discovery does: GA before beta before alpha, higher
/// numbers first, anything else last alphabetically.
pub(crate) fn kube_version_order(a: &str, b: &str) -> Ordering {
    fn rank(v: &str) -> (u8, u64, u64, String) {
        let parse = |s: &str| -> Option<(u64, u8, u64)> {
            let rest = s.strip_prefix('v')?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let major: u64 = digits.parse().ok()?;
            let tail = &rest[digits.len()..];
            if tail.is_empty() {
                return Some((major, 3, 0));
            }
            for (prefix, level) in [("beta", 2u8), ("alpha", 1u8)] {
                if let Some(n) = tail.strip_prefix(prefix) {
                    return Some((major, level, n.parse().ok()?));
                }
            }
            None
        };
        match parse(v) {
            Some((major, level, minor)) => (level, major, minor, String::new()),
            None => (0, 0, 0, v.to_string()),
        }
    }
    let (ra, rb) = (rank(a), rank(b));
    (rb.0, rb.1, rb.2)
        .cmp(&(ra.0, ra.1, ra.2))
        .then_with(|| ra.3.cmp(&rb.3))
}

impl Aggregator {
    /// An aggregator that presents `front_proxy_client` to backends.
    pub(crate) fn new(front_proxy_client: CertPair) -> Aggregator {
        Aggregator {
            services: RwLock::new(BTreeMap::new()),
            front_proxy_client,
        }
    }

    /// Registers (or replaces) the APIService for `group`/`version`.
    pub(crate) fn register(
        &self,
        group: &str,
        version: &str,
        group_priority_minimum: u32,
        version_priority: u32,
        backend: &str,
        backend_ca_pem: Option<String>,
    ) -> anyhow::Result<()> {
        let backend: Uri = backend.parse()?;
        anyhow::ensure!(
            backend.scheme_str() == Some("https"),
            "APIService backend must be https: {backend}"
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match backend_ca_pem {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    roots.add(cert?)?;
                }
                builder.with_root_certificates(roots)
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider))),
        };
        let tls = builder.with_client_auth_cert(
            self.front_proxy_client.cert_der(),
            self.front_proxy_client.key_der(),
        )?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_all_versions()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let service = ApiService {
            group: group.to_string(),
            version: version.to_string(),
            group_priority_minimum,
            version_priority,
            backend,
            client,
        };
        self.services
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((group.to_string(), version.to_string()), Arc::new(service));
        Ok(())
    }

    /// The APIService that serves `path` (`/apis/{group}/{version}[/…]`), if any.
    pub(crate) fn route(&self, path: &str) -> Option<Arc<ApiService>> {
        let mut parts = path.strip_prefix("/apis/")?.split('/');
        let (group, version) = (parts.next()?, parts.next()?);
        self.services
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(group.to_string(), version.to_string()))
            .cloned()
    }

    /// Registered groups: (name, group priority, versions in preference order).
    pub(crate) fn groups(&self) -> Vec<(String, u32, Vec<String>)> {
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        let mut by_group: BTreeMap<&str, Vec<&ApiService>> = BTreeMap::new();
        for svc in services.values() {
            by_group.entry(&svc.group).or_default().push(svc);
        }
        by_group
            .into_iter()
            .map(|(group, mut versions)| {
                versions.sort_by(|a, b| {
                    b.version_priority
                        .cmp(&a.version_priority)
                        .then_with(|| kube_version_order(&a.version, &b.version))
                });
                let priority = versions
                    .iter()
                    .map(|v| v.group_priority_minimum)
                    .max()
                    .unwrap_or(0);
                (
                    group.to_string(),
                    priority,
                    versions.iter().map(|v| v.version.clone()).collect(),
                )
            })
            .collect()
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Escapes an `extra` key for an `X-Remote-Extra-` header name as client-go does: bytes that
/// are not HTTP token characters, and `%`, become `%XX`.
pub(crate) fn escape_extra_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        let token = b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b);
        if token {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Forwards `req` to `service`'s backend as `subject` and streams the answer back. Failing to
/// reach the backend gives a 503, as kube-aggregator's proxy does.
pub(crate) async fn forward(
    service: &ApiService,
    subject: &Subject,
    req: Request<Body>,
    remote: SocketAddr,
) -> Response {
    let (parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri = format!(
        "{}://{}{path_and_query}",
        service.backend.scheme_str().unwrap_or("https"),
        service
            .backend
            .authority()
            .map(|a| a.as_str())
            .unwrap_or_default()
    );
    let mut out = Request::builder().method(parts.method.clone()).uri(uri);
    if let Some(headers) = out.headers_mut() {
        for (name, value) in &parts.headers {
            let lower = name.as_str();
            if is_hop_by_hop(name)
                || name == header::HOST
                || name == header::AUTHORIZATION
                || lower.starts_with("x-remote-")
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        let mut add = |name: &str, value: &str| {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                headers.append(n, v);
            }
        };
        add("X-Remote-User", &subject.info.username);
        if !subject.info.uid.is_empty() {
            add("X-Remote-Uid", &subject.info.uid);
        }
        for group in &subject.info.groups {
            add("X-Remote-Group", group);
        }
        for (key, values) in &subject.extra {
            for value in values {
                add(&format!("X-Remote-Extra-{}", escape_extra_key(key)), value);
            }
        }
        add("X-Forwarded-For", &remote.ip().to_string());
    }
    let request = match out.body(body) {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    match service.client.request(request).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            let hop: Vec<HeaderName> = parts
                .headers
                .keys()
                .filter(|n| is_hop_by_hop(n))
                .cloned()
                .collect();
            for name in hop {
                parts.headers.remove(name);
            }
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message = format!("{message}: {cause}");
                source = cause.source();
            }
            tracing::debug!(group = %service.group, version = %service.version, error = %message, "proxying to APIService backend failed");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("error trying to reach service: {message}"),
            )
        }
    }
}

/// A plain-text error, as Go's `http.Error` writes it (the aggregator's proxy errors are these).
fn plain(status: StatusCode, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("X-Content-Type-Options", "nosniff")
        .body(Body::from(format!("{message}\n")))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_keys_are_escaped_like_client_go() {
        assert_eq!(escape_extra_key("scopes"), "scopes");
        assert_eq!(
            escape_extra_key("authentication.kubernetes.io/credential-id"),
            "authentication.kubernetes.io%2Fcredential-id"
        );
        assert_eq!(escape_extra_key("a%b c"), "a%25b%20c");
    }

    #[test]
    fn versions_order_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v1beta1", "v2", "v1", "v1beta2", "foo"];
        v.sort_by(|a, b| kube_version_order(a, b));
        assert_eq!(v, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }
}
