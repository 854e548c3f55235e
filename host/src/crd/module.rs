//! Reads a `MetricsPlugin`'s module: a ConfigMap or Secret key through the Kubernetes client, or
//! an HTTPS URL over rustls (the URL's CA from `caBundle`, else the system roots), always
//! size-capped. The sha256 is checked by the reload path before the module is used.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::spec::{HttpsSource, KeyRef, ModuleRef};
use crate::sources::prometheus::client::system_roots;

/// Reads modules for the resource source.
#[derive(Clone)]
pub struct ModuleFetcher {
    client: kube::Client,
    max_bytes: usize,
    timeout: Duration,
}

impl std::fmt::Debug for ModuleFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleFetcher")
            .field("max_bytes", &self.max_bytes)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ModuleFetcher {
    /// A fetcher reading objects with `client`, refusing modules over `max_bytes`.
    pub fn new(client: kube::Client, max_bytes: usize, timeout: Duration) -> ModuleFetcher {
        ModuleFetcher {
            client,
            max_bytes,
            timeout,
        }
    }

    /// The module's bytes, or why they cannot be had (naming the object or URL).
    pub async fn fetch(&self, module: &ModuleRef) -> Result<Vec<u8>, String> {
        let bytes = match module {
            ModuleRef::ConfigMap(r) => self.config_map(r).await?,
            ModuleRef::Secret(r) => self.secret(r).await?,
            ModuleRef::Https(h) => {
                tokio::time::timeout(self.timeout, fetch_https(h, self.max_bytes))
                    .await
                    .map_err(|_| {
                        format!("{}: no complete answer within {:?}", h.url, self.timeout)
                    })??
            }
        };
        self.capped(module, bytes)
    }

    fn capped(&self, module: &ModuleRef, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        if bytes.len() > self.max_bytes {
            return Err(format!(
                "{}: the module is {} bytes, over custom_resources.max_module_bytes ({})",
                module.describe(),
                bytes.len(),
                self.max_bytes
            ));
        }
        Ok(bytes)
    }

    async fn config_map(&self, r: &KeyRef) -> Result<Vec<u8>, String> {
        let what = format!("configmap {}/{}", r.namespace, r.name);
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &r.namespace);
        let cm = api
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("{what}: {e}"))?
            .ok_or_else(|| format!("{what}: not found"))?;
        if let Some(bytes) = cm.binary_data.as_ref().and_then(|d| d.get(&r.key)) {
            return Ok(bytes.0.clone());
        }
        if cm.data.as_ref().is_some_and(|d| d.contains_key(&r.key)) {
            return Err(format!(
                "{what}: key {} is in data (text), a module must be in binaryData",
                r.key
            ));
        }
        Err(format!("{what}: no key {} in binaryData", r.key))
    }

    async fn secret(&self, r: &KeyRef) -> Result<Vec<u8>, String> {
        let what = format!("secret {}/{}", r.namespace, r.name);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &r.namespace);
        let secret = api
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("{what}: {e}"))?
            .ok_or_else(|| format!("{what}: not found"))?;
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|b| b.0.clone())
            .ok_or_else(|| format!("{what}: no key {} in data", r.key))
    }
}

/// `GET` of an HTTPS URL, the body capped at `max_bytes`.
async fn fetch_https(source: &HttpsSource, max_bytes: usize) -> Result<Vec<u8>, String> {
    let url = &source.url;
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{url}: {what}: {e}");
    let uri: http::Uri = url.parse().map_err(|e| fail("not a URL", &e))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("{url}: not an https:// URL"));
    }
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
    let port = uri.port_u16().unwrap_or(443);
    let roots = roots(source.ca_bundle.as_deref()).map_err(|e| fail("caBundle", &e))?;
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|e| fail("server name", &e))?;
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| fail("connecting", &e))?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| fail("TLS", &e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| fail("HTTP", &e))?;
    let driver = tokio::spawn(conn);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    let request = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(
            http::header::USER_AGENT,
            concat!("metrics-gateway/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| fail("request", &e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| fail("HTTP", &e))?;
    if !response.status().is_success() {
        driver.abort();
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let body = Limited::new(response.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|e| {
            format!("{url}: reading the module (at most {max_bytes} bytes, custom_resources.max_module_bytes): {e}")
        })?;
    driver.abort();
    Ok(body.to_bytes().to_vec())
}

/// The roots that verify a module server: `ca_bundle`'s certificates, else the system's.
fn roots(ca_bundle: Option<&str>) -> Result<rustls::RootCertStore, String> {
    let Some(pem) = ca_bundle else {
        return Ok(system_roots());
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    use metrics_gateway_testkit::pki::{TestCa, install_crypto_provider};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTPS server on 127.0.0.1 answering every request with `body`; returns its URL and CA.
    async fn serve(body: &'static [u8]) -> (String, String) {
        install_crypto_provider();
        let ca = TestCa::new("module-server-ca").unwrap();
        let cert = ca.server_cert("modules", &["127.0.0.1".into()]).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config().unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut request = [0u8; 1024];
                let _ = tls.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(body).await;
                let _ = tls.shutdown().await;
            }
        });
        (format!("https://{addr}/plugins/p.wasm"), ca.cert_pem())
    }

    #[tokio::test]
    async fn https_modules_are_verified_with_the_ca_bundle_and_size_capped() {
        let (url, ca) = serve(b"module bytes").await;
        let source = HttpsSource {
            url: url.clone(),
            ca_bundle: Some(ca),
        };
        assert_eq!(fetch_https(&source, 1024).await.unwrap(), b"module bytes");
        let capped = fetch_https(&source, 4).await.unwrap_err();
        assert!(capped.contains("at most 4 bytes"), "{capped}");
        // Another CA does not verify the server.
        let other = TestCa::new("other-ca").unwrap().cert_pem();
        let untrusted = HttpsSource {
            url,
            ca_bundle: Some(other),
        };
        let refused = fetch_https(&untrusted, 1024).await.unwrap_err();
        assert!(refused.contains(": TLS: "), "{refused}");
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        assert_eq!(
            roots(Some("not pem")).unwrap_err(),
            "no PEM certificate in it"
        );
    }
}
