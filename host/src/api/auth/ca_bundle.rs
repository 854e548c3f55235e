//! The CA bundles and front-proxy header names authentication uses: read from the
//! `kube-system/extension-apiserver-authentication` ConfigMap, kept current by a watch, with
//! `[authentication]` keys overriding it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::StreamExt;
use http::HeaderName;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Api, Client};
use rustls::DistinguishedName;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use tokio::sync::watch;

use crate::config::AuthenticationConfig;

/// Namespace of the authentication ConfigMap.
pub const CONFIGMAP_NAMESPACE: &str = "kube-system";
/// Name of the authentication ConfigMap.
pub const CONFIGMAP_NAME: &str = "extension-apiserver-authentication";

/// A CA bundle that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The PEM holds no certificate or a certificate rustls rejects.
    #[error("{source_name}: {reason}")]
    Invalid {
        /// Where the bundle came from (file path or ConfigMap key).
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// An override file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Certificates of one CA bundle, and a verifier of client chains against them.
pub struct CaPool {
    verifier: Arc<dyn ClientCertVerifier>,
    subjects: Vec<DistinguishedName>,
}

impl std::fmt::Debug for CaPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaPool")
            .field("certificates", &self.subjects.len())
            .finish()
    }
}

impl CaPool {
    /// Parses a PEM bundle; `source_name` names it in errors.
    pub fn from_pem(pem: &[u8], source_name: &str) -> Result<CaPool, BundleError> {
        let invalid = |reason: String| BundleError::Invalid {
            source_name: source_name.to_string(),
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| invalid(format!("not a PEM certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| invalid(format!("unusable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(invalid("holds no certificate".into()));
        }
        let subjects = roots.subjects();
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| invalid(e.to_string()))?;
        Ok(CaPool { verifier, subjects })
    }

    /// Verifies a client chain (leaf first) against this bundle at the current time.
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<(), rustls::Error> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or(rustls::Error::NoCertificatesPresented)?;
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
    }

    /// Distinguished names of the bundle's certificates (TLS `certificate_authorities` hints).
    pub fn subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }
}

/// Everything authentication reads that can change at run time.
#[derive(Debug)]
pub struct AuthSources {
    /// CA for client certificates (CN = user, O = groups).
    pub client_ca: Option<CaPool>,
    /// CA for the front proxy's certificate.
    pub requestheader_ca: Option<CaPool>,
    /// Common names allowed for the front proxy; empty = any the CA signed.
    pub allowed_names: Vec<String>,
    /// Headers with the user name (first present wins).
    pub username_headers: Vec<HeaderName>,
    /// Headers with groups (every value of each).
    pub group_headers: Vec<HeaderName>,
    /// Lower-case header prefixes of `extra` attributes.
    pub extra_prefixes: Vec<String>,
}

impl AuthSources {
    /// Subjects of both CAs, for the TLS layer's certificate request.
    pub fn hint_subjects(&self) -> Vec<DistinguishedName> {
        let mut out = Vec::new();
        for pool in [&self.requestheader_ca, &self.client_ca]
            .into_iter()
            .flatten()
        {
            for s in pool.subjects() {
                if !out
                    .iter()
                    .any(|o: &DistinguishedName| o.as_ref() == s.as_ref())
                {
                    out.push(s.clone());
                }
            }
        }
        out
    }
}

/// The ConfigMap's `data`, or nothing when it could not be read.
type ConfigMapData = BTreeMap<String, String>;

/// Config overrides, resolved to absolute paths and header names.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    client_ca_file: Option<PathBuf>,
    requestheader_ca_file: Option<PathBuf>,
    allowed_names: Option<Vec<String>>,
    username_headers: Option<Vec<String>>,
    group_headers: Option<Vec<String>>,
    extra_prefixes: Option<Vec<String>>,
}

impl Overrides {
    /// From `[authentication]`; relative paths are resolved with `resolve`.
    pub fn from_config(
        cfg: &AuthenticationConfig,
        resolve: impl Fn(&std::path::Path) -> PathBuf,
    ) -> Overrides {
        let names = |v: &Option<Vec<toml::Spanned<String>>>| {
            v.as_ref()
                .map(|v| v.iter().map(|s| s.get_ref().clone()).collect())
        };
        Overrides {
            client_ca_file: cfg.client_ca_file.as_ref().map(|p| resolve(p.get_ref())),
            requestheader_ca_file: cfg
                .requestheader_client_ca_file
                .as_ref()
                .map(|p| resolve(p.get_ref())),
            allowed_names: cfg.requestheader_allowed_names.clone(),
            username_headers: names(&cfg.requestheader_username_headers),
            group_headers: names(&cfg.requestheader_group_headers),
            extra_prefixes: names(&cfg.requestheader_extra_headers_prefix),
        }
    }
}

fn json_list(data: &ConfigMapData, key: &str) -> Option<Vec<String>> {
    let raw = data.get(key)?;
    match serde_json::from_str::<Vec<String>>(raw) {
        Ok(v) => Some(v),
        Err(error) => {
            tracing::warn!(key, %error, "ignoring a malformed list in the authentication ConfigMap");
            None
        }
    }
}

fn header_names(list: Vec<String>, what: &str) -> Vec<HeaderName> {
    list.into_iter()
        .filter_map(|name| match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                tracing::warn!(header = name, what, "ignoring an invalid header name");
                None
            }
        })
        .collect()
}

fn pool(
    file: Option<&PathBuf>,
    data: &ConfigMapData,
    key: &str,
) -> Result<Option<CaPool>, BundleError> {
    match file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| BundleError::Read {
                path: path.clone(),
                source,
            })?;
            CaPool::from_pem(&pem, &path.display().to_string()).map(Some)
        }
        None => match data.get(key).filter(|v| !v.trim().is_empty()) {
            Some(pem) => {
                CaPool::from_pem(pem.as_bytes(), &format!("{CONFIGMAP_NAME} {key}")).map(Some)
            }
            None => Ok(None),
        },
    }
}

/// Combines the ConfigMap's data with the overrides.
pub fn resolve(overrides: &Overrides, data: &ConfigMapData) -> Result<AuthSources, BundleError> {
    let or_default = |over: &Option<Vec<String>>, key: &str, default: &str| {
        over.clone()
            .or_else(|| json_list(data, key))
            .unwrap_or_else(|| vec![default.to_string()])
    };
    Ok(AuthSources {
        client_ca: pool(overrides.client_ca_file.as_ref(), data, "client-ca-file")?,
        requestheader_ca: pool(
            overrides.requestheader_ca_file.as_ref(),
            data,
            "requestheader-client-ca-file",
        )?,
        allowed_names: overrides
            .allowed_names
            .clone()
            .or_else(|| json_list(data, "requestheader-allowed-names"))
            .unwrap_or_default(),
        username_headers: header_names(
            or_default(
                &overrides.username_headers,
                "requestheader-username-headers",
                "X-Remote-User",
            ),
            "username",
        ),
        group_headers: header_names(
            or_default(
                &overrides.group_headers,
                "requestheader-group-headers",
                "X-Remote-Group",
            ),
            "group",
        ),
        extra_prefixes: or_default(
            &overrides.extra_prefixes,
            "requestheader-extra-headers-prefix",
            "X-Remote-Extra-",
        )
        .into_iter()
        .map(|p| p.to_ascii_lowercase())
        .collect(),
    })
}

/// The current [`AuthSources`], replaced whenever the ConfigMap changes.
#[derive(Debug)]
pub struct Bundles {
    current: ArcSwap<AuthSources>,
    overrides: Overrides,
    changed: watch::Sender<u64>,
}

impl Bundles {
    /// Sources from the overrides alone (the ConfigMap not read yet).
    pub fn new(overrides: Overrides) -> Result<Bundles, BundleError> {
        let initial = resolve(&overrides, &ConfigMapData::new())?;
        Ok(Bundles {
            current: ArcSwap::from_pointee(initial),
            overrides,
            changed: watch::channel(0).0,
        })
    }

    /// The current sources.
    pub fn load(&self) -> arc_swap::Guard<Arc<AuthSources>> {
        self.current.load()
    }

    /// Notified with a new generation number after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Applies the ConfigMap's data; a bundle that does not parse keeps the previous sources.
    pub fn apply(&self, data: &ConfigMapData) {
        match resolve(&self.overrides, data) {
            Ok(sources) => {
                tracing::info!(
                    client_ca = sources.client_ca.is_some(),
                    requestheader_ca = sources.requestheader_ca.is_some(),
                    allowed_names = ?sources.allowed_names,
                    "authentication sources updated"
                );
                self.current.store(Arc::new(sources));
                self.changed.send_modify(|g| *g += 1);
            }
            Err(error) => {
                tracing::error!(%error, "keeping the previous authentication sources");
            }
        }
    }

    /// Reads the ConfigMap once (start-up); failures are logged and leave the overrides alone.
    pub async fn load_once(&self, client: &Client) {
        let api = Api::<ConfigMap>::namespaced(client.clone(), CONFIGMAP_NAMESPACE);
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            api.get_opt(CONFIGMAP_NAME),
        );
        match read.await {
            Ok(Ok(Some(cm))) => self.apply(&cm.data.unwrap_or_default()),
            Ok(Ok(None)) => tracing::warn!(
                "ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} does not exist: only \
                 [authentication] overrides and bearer tokens authenticate"
            ),
            Ok(Err(error)) => {
                tracing::warn!(%error, "reading {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} failed; the watch retries")
            }
            Err(_) => tracing::warn!(
                "reading {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} timed out; the watch retries"
            ),
        }
    }

    /// Watches the ConfigMap and applies every change, until aborted.
    pub fn watch(self: Arc<Self>, client: Client) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let api = Api::<ConfigMap>::namespaced(client, CONFIGMAP_NAMESPACE);
            let config =
                watcher::Config::default().fields(&format!("metadata.name={CONFIGMAP_NAME}"));
            let mut stream = std::pin::pin!(
                watcher::watcher(api, config)
                    .default_backoff()
                    .applied_objects()
            );
            while let Some(item) = stream.next().await {
                match item {
                    Ok(cm) => self.apply(&cm.data.unwrap_or_default()),
                    Err(error) => tracing::warn!(%error, "watching the authentication ConfigMap"),
                }
            }
        })
    }
}
