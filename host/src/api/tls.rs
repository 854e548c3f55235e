//! Serving TLS: the certificate is re-read when its files change on disk (a Secret volume's
//! `..data` swap), versions and cipher suites come from `[server]`, and client certificates are
//! requested (not required) with both authentication CAs as hints. Chains are verified against
//! each CA right after the handshake (see `auth::client_cert`), so a bad certificate gets a
//! 401 `Status` instead of a TLS alert, as with kube-apiserver.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme, SupportedCipherSuite};

use crate::config::{ServerConfig, TlsVersion};
use crate::telemetry::{OutcomeLabels, Telemetry};

/// How often certificate files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Cipher suites by IANA name (TLS 1.3 first, then TLS 1.2 ECDHE suites).
const SUITES: [(&str, SupportedCipherSuite); 9] = [
    (
        "TLS_AES_128_GCM_SHA256",
        ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

fn is_tls13(suite: &SupportedCipherSuite) -> bool {
    matches!(suite, SupportedCipherSuite::Tls13(_))
}

/// Checks `server.tls_cipher_suites` against the known names and `tls_min_version`.
pub fn validate_cipher_suites(cfg: &ServerConfig) -> Result<(), (Range<usize>, String)> {
    for name in &cfg.tls_cipher_suites {
        if !SUITES.iter().any(|(n, _)| n == name.get_ref()) {
            let known: Vec<&str> = SUITES.iter().map(|(n, _)| *n).collect();
            return Err((
                name.span(),
                format!(
                    "server.tls_cipher_suites: unknown or unsupported suite {:?} (supported: {})",
                    name.get_ref(),
                    known.join(", ")
                ),
            ));
        }
    }
    let suites = cipher_suites(cfg);
    let usable = suites
        .iter()
        .any(|s| is_tls13(s) || cfg.tls_min_version == TlsVersion::Tls12);
    if !usable {
        let span = cfg
            .tls_cipher_suites
            .first()
            .map(|s| s.span())
            .unwrap_or(0..0);
        return Err((
            span,
            "server.tls_cipher_suites: no suite is usable with server.tls_min_version = \"1.3\" \
             (list at least one TLS 1.3 suite, e.g. TLS_AES_128_GCM_SHA256)"
                .into(),
        ));
    }
    Ok(())
}

fn cipher_suites(cfg: &ServerConfig) -> Vec<SupportedCipherSuite> {
    if cfg.tls_cipher_suites.is_empty() {
        return ring::DEFAULT_CIPHER_SUITES.to_vec();
    }
    cfg.tls_cipher_suites
        .iter()
        .filter_map(|n| {
            SUITES
                .iter()
                .find(|(name, _)| name == n.get_ref())
                .map(|(_, s)| *s)
        })
        .collect()
}

/// The crypto provider and protocol versions `[server]` asks for.
fn provider_and_versions(
    cfg: &ServerConfig,
) -> (
    Arc<CryptoProvider>,
    Vec<&'static rustls::SupportedProtocolVersion>,
) {
    let provider = CryptoProvider {
        cipher_suites: cipher_suites(cfg),
        ..ring::default_provider()
    };
    let versions = match cfg.tls_min_version {
        TlsVersion::Tls12 => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => vec![&rustls::version::TLS13],
    };
    (Arc::new(provider), versions)
}

/// A serving certificate and key.
pub struct ServingCert {
    /// Chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ServingCert {
    /// Parses PEM bytes of a chain and a key; errors name the files.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert: &Path,
        key: &Path,
    ) -> anyhow::Result<ServingCert> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing serving certificate {}", cert.display()))?;
        anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .with_context(|| format!("parsing serving key {}", key.display()))?;
        Ok(ServingCert { chain, key })
    }

    /// Reads PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> anyhow::Result<ServingCert> {
        let c = std::fs::read(cert)
            .with_context(|| format!("reading serving certificate {}", cert.display()))?;
        let k =
            std::fs::read(key).with_context(|| format!("reading serving key {}", key.display()))?;
        ServingCert::from_pem(&c, &k, cert, key)
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

    fn certified_key(self, provider: &CryptoProvider) -> anyhow::Result<Arc<CertifiedKey>> {
        CertifiedKey::from_der(self.chain, self.key, provider)
            .map(Arc::new)
            .context("serving certificate and key do not match or are unsupported")
    }
}

/// The current serving certificate, swapped when the files change.
#[derive(Debug)]
struct ReloadingResolver(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Requests a client certificate without requiring one and accepts any chain whose holder
/// proves its key; which CA (if any) signed it is decided after the handshake.
#[derive(Debug)]
struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server's TLS configuration, rebuilt when the client-CA hints change; every new
/// connection uses the latest.
pub struct ServingTls {
    provider: Arc<CryptoProvider>,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    resolver: Arc<ReloadingResolver>,
    request_client_certs: bool,
    config: ArcSwap<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingTls").finish_non_exhaustive()
    }
}

impl ServingTls {
    /// TLS for `[server]` presenting `cert`; `request_client_certs` asks clients for one.
    pub fn new(
        cfg: &ServerConfig,
        cert: ServingCert,
        request_client_certs: bool,
    ) -> anyhow::Result<ServingTls> {
        let (provider, versions) = provider_and_versions(cfg);
        let key = cert.certified_key(&provider)?;
        let resolver = Arc::new(ReloadingResolver(ArcSwap::new(key)));
        let config = build(
            &provider,
            &versions,
            &resolver,
            request_client_certs,
            Vec::new(),
        )?;
        Ok(ServingTls {
            provider,
            versions,
            resolver,
            request_client_certs,
            config: ArcSwap::new(config),
        })
    }

    /// The configuration for the next connection.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.load_full()
    }

    /// Requests client certificates with these CA subjects as hints from now on.
    pub fn set_client_ca_hints(&self, hints: Vec<DistinguishedName>) {
        match build(
            &self.provider,
            &self.versions,
            &self.resolver,
            self.request_client_certs,
            hints,
        ) {
            Ok(config) => self.config.store(config),
            Err(error) => tracing::error!(%error, "keeping the previous TLS configuration"),
        }
    }

    /// Serves `cert` from the next handshake on.
    pub fn set_cert(&self, cert: ServingCert) -> anyhow::Result<()> {
        self.resolver.0.store(cert.certified_key(&self.provider)?);
        Ok(())
    }

    /// Re-reads `cert` and `key` every `interval` and serves them once both parse and match;
    /// a half-written or mismatched pair keeps the previous certificate.
    pub fn watch_files(
        self: Arc<Self>,
        cert: PathBuf,
        key: PathBuf,
        interval: Duration,
        telemetry: Telemetry,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let read = |cert: &Path, key: &Path| {
                Some((std::fs::read(cert).ok()?, std::fs::read(key).ok()?))
            };
            // The last pair tried: a pair that failed is retried only once a file changes again.
            let mut last = read(&cert, &key);
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let current = read(&cert, &key);
                if current.is_none() || current == last {
                    continue;
                }
                last = current;
                let Some((c, k)) = &last else { continue };
                let outcome =
                    ServingCert::from_pem(c, k, &cert, &key).and_then(|pair| self.set_cert(pair));
                match outcome {
                    Ok(()) => {
                        tracing::info!(cert = %cert.display(), "serving certificate reloaded");
                        telemetry
                            .tls_cert_reloads
                            .get_or_create(&OutcomeLabels { outcome: "success" })
                            .inc();
                    }
                    Err(error) => {
                        // Tried again when a file changes: the other half of the pair may be on its way.
                        tracing::warn!(
                            error = format!("{error:#}"),
                            "serving certificate files changed but cannot be used; keeping the previous certificate"
                        );
                        telemetry
                            .tls_cert_reloads
                            .get_or_create(&OutcomeLabels { outcome: "error" })
                            .inc();
                    }
                }
            }
        })
    }
}

fn build(
    provider: &Arc<CryptoProvider>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    resolver: &Arc<ReloadingResolver>,
    request_client_certs: bool,
    hints: Vec<DistinguishedName>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .context("no cipher suite matches the TLS versions")?;
    let builder = if request_client_certs {
        builder.with_client_cert_verifier(Arc::new(RequestClientCert {
            hints,
            provider: provider.clone(),
        }))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
