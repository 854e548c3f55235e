//! A fake kube-apiserver that also plays kube-aggregator, serving a [`SimCluster`] over HTTPS.
//!
//! It follows the documented protocol closely enough for kube-rs watchers and the real
//! `kubectl` to work unchanged:
//! - discovery (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}`; legacy JSON, which
//!   clients asking for aggregated discovery accept when the answer is plain `application/json`);
//! - `get` / `list` / `watch` of nodes, pods, namespaces, `apps/v1` deployments and replicasets
//!   and the `kube-system/extension-apiserver-authentication` ConfigMap, with label and field selectors,
//!   `limit` / `continue` pagination, resource versions, bookmarks, streaming lists
//!   (`sendInitialEvents`), and `410 Gone` for versions older than its bounded replay log;
//! - bearer-token authentication, `TokenReview` and `SubjectAccessReview`;
//! - stored objects written by clients and tests (`store`): Services, ConfigMaps, Secrets,
//!   Leases, Events, `MetricsPlugin`s and CustomResourceDefinitions, whose groups, versions and
//!   resources appear in discovery at once and whose custom objects are stored and served in
//!   turn (`crds`); list and watch with label and field selectors, and metadata-only answers
//!   (`PartialObjectMetadata(List)`) when `Accept` asks for them;
//! - the REST mapping of the deploy manifests' other kinds (ServiceAccount, RBAC,
//!   PodDisruptionBudget, APIService) in discovery, with no objects of them (a GET is 404), so
//!   `kubectl apply --dry-run=client` works against it;
//! - APIService proxying: the caller is authenticated and authorized, then the request goes to
//!   the backend over TLS with the front-proxy client certificate, `Authorization` and incoming
//!   `X-Remote-*` headers dropped, and the caller's identity in `X-Remote-User`,
//!   `X-Remote-Uid`, `X-Remote-Group` and `X-Remote-Extra-*`.
//!
//! - server-side printing (`meta.k8s.io` `Table`) for `get` / `list` when `Accept` asks for it,
//!   so `kubectl get` shows kube-apiserver's columns.
//!
//! The `authorizer` decides both the `SubjectAccessReview`s posted to it and the fake's own
//! requests (like RBAC does in a real cluster), including proxied ones.
//!
//! Known simplifications: the model keeps no history, so a watch event carries the object as it
//! is when the change is processed (two quick changes show the later state twice, each with its
//! own resource version); a list at an older `resourceVersion` or a continued list reads the
//! current state; a pod in a namespace that does not exist creates it, and the ReplicaSet and
//! Deployment controllers are modelled only as far as their status, which follows the pods (no
//! pod is created or deleted for a Deployment). A backend
//! the proxy cannot reach gives a plain-text 503, as kube-aggregator's `http.Error` does.

mod auth;
mod crds;
mod discovery;
mod objects;
mod proxy;
mod rbac;
mod resources;
mod selectors;
mod status;
mod store;
mod tables;
#[cfg(test)]
mod tests;
mod watch;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

pub use auth::{
    CREDENTIAL_ID_EXTRA, NonResourceAttributes, ResourceAttributes, SubjectAccessReviewSpec,
    UserInfo,
};
pub use crds::custom_resource_definition;
pub use rbac::hpa_controller_allows;

use auth::{RequestInfo, Subject, bearer_token};
use objects::{AuthBundles, Kind};
use proxy::Aggregator;
use resources::{ListQuery, RenderCtx, WatchSettings};
use status::{ApiError, ApiResult, json_response};
use store::{ObjectStore, Target};
use watch::WatchCache;

use crate::cluster::{Millis, SimCluster};
use crate::pki::{CertPair, TestCa, install_crypto_provider};

/// Decides access reviews: `true` allows.
pub type Authorizer = Arc<dyn Fn(&SubjectAccessReviewSpec) -> bool + Send + Sync>;

/// How to run a [`FakeApiServer`].
#[derive(Clone)]
pub struct ApiServerConfig {
    /// Listen address (default `127.0.0.1:0`, any free port).
    pub addr: SocketAddr,
    /// Bearer token → user. Requests without a known token get a 401 `Status`.
    pub tokens: BTreeMap<String, UserInfo>,
    /// Answers `SubjectAccessReview`s and authorizes the fake's own requests; default: allow all.
    pub authorizer: Authorizer,
    /// How often watches that asked for bookmarks get one (kube-apiserver: about a minute).
    pub bookmark_interval: Duration,
    /// How many changes the watch cache keeps for resuming watches; a watch from a version
    /// older than that gets `410 Gone`.
    pub watch_cache_capacity: usize,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        ApiServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tokens: BTreeMap::new(),
            authorizer: Arc::new(|_| true),
            bookmark_interval: Duration::from_secs(60),
            watch_cache_capacity: 4096,
        }
    }
}

impl std::fmt::Debug for ApiServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerConfig")
            .field("addr", &self.addr)
            .field(
                "users",
                &self
                    .tokens
                    .values()
                    .map(|u| &u.username)
                    .collect::<Vec<_>>(),
            )
            .field("bookmark_interval", &self.bookmark_interval)
            .field("watch_cache_capacity", &self.watch_cache_capacity)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cluster: Arc<SimCluster>,
    tokens: BTreeMap<String, UserInfo>,
    authorizer: Authorizer,
    cache: Arc<WatchCache>,
    aggregator: Aggregator,
    serving_ca: TestCa,
    front_proxy_ca: TestCa,
    client_ca: TestCa,
    bundles: AuthBundles,
    counts: Mutex<BTreeMap<String, u64>>,
    created_ms: Millis,
    addr: SocketAddr,
    watch_settings: WatchSettings,
    store: Arc<ObjectStore>,
}

/// The fake kube-apiserver + kube-aggregator. See the [module docs](self).
pub struct FakeApiServer {
    inner: Arc<Inner>,
    stop: signal::Sender<bool>,
    server: Option<JoinHandle<()>>,
    cache_task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApiServer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl FakeApiServer {
    /// Starts serving `cluster` on `config.addr` (HTTPS; certificate for `127.0.0.1` and
    /// `localhost` from a fresh CA).
    pub async fn start(
        cluster: Arc<SimCluster>,
        config: ApiServerConfig,
    ) -> anyhow::Result<FakeApiServer> {
        install_crypto_provider();
        let serving_ca = TestCa::new("fake-kube-apiserver-ca")?;
        let front_proxy_ca = TestCa::new("front-proxy-ca")?;
        let client_ca = TestCa::new("kubernetes-client-ca")?;
        let serving = serving_ca
            .server_cert(
                "kube-apiserver",
                &["127.0.0.1".to_string(), "localhost".to_string()],
            )
            .context("issuing the apiserver serving certificate")?;
        let front_proxy_client = front_proxy_ca.client_cert("front-proxy-client", &[])?;
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let addr = listener.local_addr()?;

        // Subscribe before the cache reads the state, so no change falls in between.
        let changes = cluster.subscribe();
        let cache = Arc::new(WatchCache::new(&cluster, config.watch_cache_capacity));
        let cache_task = tokio::spawn(cache.clone().run(cluster.clone(), changes));

        let bundles = AuthBundles {
            client_ca: client_ca.cert_pem(),
            requestheader_ca: front_proxy_ca.cert_pem(),
        };
        // Namespaces and the ConfigMap date from when the cluster was set up.
        let now = cluster.clock.now_ms();
        let created_ms = cluster
            .read()
            .nodes
            .values()
            .map(|n| n.boot_ms)
            .min()
            .unwrap_or(now)
            .min(now);
        let inner = Arc::new(Inner {
            created_ms,
            cluster,
            tokens: config.tokens,
            authorizer: config.authorizer,
            cache,
            aggregator: Aggregator::new(front_proxy_client),
            serving_ca,
            front_proxy_ca,
            client_ca,
            bundles,
            counts: Mutex::new(BTreeMap::new()),
            addr,
            watch_settings: WatchSettings {
                bookmark_interval: config.bookmark_interval,
            },
            store: Arc::new(ObjectStore::new(config.watch_cache_capacity)),
        });
        let (stop, stopped) = signal::channel(false);
        let server = tokio::spawn(serve(
            listener,
            TlsAcceptor::from(serving.server_config()?),
            inner.clone(),
            stopped,
        ));
        tracing::info!(%addr, "fake kube-apiserver listening");
        Ok(FakeApiServer {
            inner,
            stop,
            server: Some(server),
            cache_task,
        })
    }

    /// Base URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.inner.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// PEM of the CA that issued its serving certificate.
    pub fn ca_pem(&self) -> String {
        self.inner.serving_ca.cert_pem()
    }

    /// PEM of the front-proxy CA (`requestheader-client-ca-file`).
    pub fn front_proxy_ca_pem(&self) -> String {
        self.inner.front_proxy_ca.cert_pem()
    }

    /// PEM of the client CA (`client-ca-file`).
    pub fn client_ca_pem(&self) -> String {
        self.inner.client_ca.cert_pem()
    }

    /// A client certificate from the client CA (CN = `user`, O = `groups`), for calling an
    /// extension server directly with x509 authentication.
    pub fn issue_client_cert(&self, user: &str, groups: &[&str]) -> anyhow::Result<CertPair> {
        self.inner.client_ca.client_cert(user, groups)
    }

    /// A certificate from the front-proxy CA with CN `common_name`, for calling an extension
    /// server directly as (or pretending to be) the aggregator.
    pub fn issue_front_proxy_cert(&self, common_name: &str) -> anyhow::Result<CertPair> {
        self.inner.front_proxy_ca.client_cert(common_name, &[])
    }

    /// An expired certificate from the client CA (CN = `user`).
    pub fn issue_expired_client_cert(&self, user: &str) -> anyhow::Result<CertPair> {
        self.inner.client_ca.expired_client_cert(user, &[])
    }

    /// An expired certificate from the front-proxy CA with CN `common_name`.
    pub fn issue_expired_front_proxy_cert(&self, common_name: &str) -> anyhow::Result<CertPair> {
        self.inner
            .front_proxy_ca
            .expired_client_cert(common_name, &[])
    }

    /// How many `SubjectAccessReview`s were posted (by extension servers delegating
    /// authorization).
    pub fn subject_access_reviews(&self) -> u64 {
        self.request_count("/apis/authorization.k8s.io/v1/subjectaccessreviews")
    }

    /// How many `TokenReview`s were posted.
    pub fn token_reviews(&self) -> u64 {
        self.request_count("/apis/authentication.k8s.io/v1/tokenreviews")
    }

    /// Registers an APIService: requests under `/apis/{group}/{version}` are proxied to
    /// `backend` (an `https://host:port` URL) the way kube-aggregator does.
    /// `backend_ca_pem: None` means `insecureSkipTLSVerify`; otherwise the backend's certificate
    /// must chain to it and match the URL's host.
    ///
    /// # Panics
    /// If `backend` is not an https URL or the CA PEM does not parse (a test setup error).
    pub fn register_api_service(
        &self,
        group: &str,
        version: &str,
        group_priority_minimum: u32,
        version_priority: u32,
        backend: &str,
        backend_ca_pem: Option<String>,
    ) {
        self.inner
            .aggregator
            .register(
                group,
                version,
                group_priority_minimum,
                version_priority,
                backend,
                backend_ca_pem,
            )
            .unwrap_or_else(|e| {
                panic!("registering APIService {version}.{group} → {backend}: {e:#}")
            });
    }

    /// Writes a kubeconfig for this server: CA data inline, `token` as the user's credential,
    /// current context set.
    pub fn write_kubeconfig(&self, path: &Path, token: &str) -> anyhow::Result<()> {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: sim-user\n  user:\n    token: {token}\n\
             contexts:\n- name: sim\n  context:\n    cluster: sim\n    user: sim-user\ncurrent-context: sim\n\
             preferences: {{}}\n",
            server = q(&self.url()),
            ca = q(&B64.encode(self.ca_pem())),
            token = q(token),
        );
        std::fs::write(path, config)
            .with_context(|| format!("writing kubeconfig {}", path.display()))
    }

    /// How many requests arrived for paths starting with `path_prefix` (all methods, counted
    /// before authentication).
    pub fn request_count(&self, path_prefix: &str) -> u64 {
        let counts = self.inner.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .range(path_prefix.to_string()..)
            .take_while(|(p, _)| p.starts_with(path_prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Creates or replaces a stored object (a `MetricsPlugin`, Lease, Event, ConfigMap or
    /// Secret, by its `apiVersion` and `kind`) as a client's `create` or `update` would, whatever
    /// its `resourceVersion`; returns it as stored.
    ///
    /// # Panics
    /// For a kind the fake does not store, or an object it refuses (a test setup error).
    pub fn put_object(&self, object: Value) -> Value {
        let target = self.target_of(&object);
        let now = self.inner.cluster.clock.now_ms();
        let result = if self.inner.store.contains(&target) {
            let mut object = object;
            object["metadata"]["resourceVersion"] = self.inner.store.get(&target).expect("exists")
                ["metadata"]["resourceVersion"]
                .clone();
            self.inner.store.write(&target, object, true)
        } else {
            self.inner.store.create(&target, object, now)
        };
        result.unwrap_or_else(|e| panic!("storing {}: {e}", target.name))
    }

    /// A stored object, if it exists.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let target = self.target_of(&serde_json::json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": { "namespace": namespace, "name": name },
        }));
        self.inner.store.get(&target).ok()
    }

    /// Every stored object of a kind (in every namespace).
    pub fn objects(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let kind = self
            .inner
            .store
            .kind_of(api_version, kind)
            .unwrap_or_else(|| panic!("the fake does not store {api_version} {kind}"));
        let list = self.inner.store.list(
            &Target {
                kind,
                namespace: String::new(),
                name: String::new(),
                status: false,
            },
            &selectors::Filter::default(),
        );
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Deletes a stored object; false when there was none.
    pub fn delete_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> bool {
        let target = self.target_of(&serde_json::json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": { "namespace": namespace, "name": name },
        }));
        self.inner.store.delete(&target).is_ok()
    }

    fn target_of(&self, object: &Value) -> Target {
        let (api_version, kind) = (
            object["apiVersion"].as_str().unwrap_or_default(),
            object["kind"].as_str().unwrap_or_default(),
        );
        let kind = self
            .inner
            .store
            .kind_of(api_version, kind)
            .unwrap_or_else(|| panic!("the fake does not store {api_version} {kind}"));
        let meta = &object["metadata"];
        let namespace = if kind.namespaced {
            meta["namespace"].as_str().unwrap_or("default").to_string()
        } else {
            String::new()
        };
        Target {
            kind,
            namespace,
            name: meta["name"].as_str().unwrap_or_default().to_string(),
            status: false,
        }
    }

    /// Stops listening and closes every connection (open watches end).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.cache_task.abort();
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.cache_task.abort();
    }
}

async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    inner: Arc<Inner>,
    mut stopped: signal::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let (tcp, remote) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let (tls, inner) = (tls.clone(), inner.clone());
                connections.spawn(async move {
                    let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let inner = inner.clone();
                        async move { Ok::<_, Infallible>(handle(inner, req, remote).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

fn is_health_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz")
}

impl Inner {
    fn count(&self, path: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(path.to_string()).or_default() += 1;
    }

    fn lookup_token(&self, token: &str) -> Option<Subject> {
        self.tokens
            .get(token)
            .map(|info| Subject::for_token(info, token))
    }
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>, remote: SocketAddr) -> Response {
    let path = req.uri().path().to_string();
    inner.count(&path);
    let response = match route(&inner, req, &path, remote).await {
        Ok(response) => response,
        Err(e) => {
            if e.code() >= 500 {
                tracing::warn!(path, error = %e, "fake apiserver request failed");
            }
            e.into_response()
        }
    };
    tracing::debug!(
        path,
        status = response.status().as_u16(),
        "fake apiserver request"
    );
    response
}

async fn route(inner: &Inner, req: Request<Incoming>, path: &str, remote: SocketAddr) -> ApiResult {
    if is_health_path(path) {
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "ok",
        )
            .into_response());
    }
    let subject = bearer_token(req.headers())
        .and_then(|token| inner.lookup_token(token))
        .ok_or_else(ApiError::unauthorized)?;
    let query = req.uri().query().unwrap_or("").to_string();
    let info = RequestInfo::parse(req.method(), path, resources::is_watch(&query))
        .named_by_field_selector(&query);
    if !(inner.authorizer)(&info.review_spec(&subject)) {
        return Err(info.forbidden(&subject));
    }
    if let Some(service) = inner.aggregator.route(path) {
        let req = req.map(Body::new);
        return Ok(proxy::forward(&service, &subject, req, remote).await);
    }
    let method = req.method().clone();
    if let Some(target) = stored_target(inner, &info) {
        let metadata_only = resources::wants_metadata_only(req.headers());
        let body = match method {
            Method::POST | Method::PUT | Method::PATCH => {
                let bytes = read_body(req).await?;
                Some(serde_json::from_slice(&bytes).map_err(|e| {
                    ApiError::bad_request(format!("the request body is not JSON: {e}"))
                })?)
            }
            _ => None,
        };
        let verb = info
            .resource
            .as_ref()
            .map(|a| a.verb.as_str())
            .unwrap_or_default();
        let now = inner.cluster.clock.now_ms();
        return store::handle(
            &inner.store,
            &target,
            verb,
            &query,
            body,
            now,
            metadata_only,
        );
    }
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, parts.as_slice()) {
        (&Method::GET, ["version"]) => ok(discovery::version()),
        (&Method::GET, ["api"]) => ok(discovery::core_versions(&inner.addr.to_string())),
        (&Method::GET, ["api", "v1"]) => ok(discovery::core_resources()),
        (&Method::GET, ["apis"]) => ok(discovery::group_list(
            &inner.aggregator,
            &inner.store.custom_resources(),
        )),
        (&Method::GET, ["apis", group]) => {
            discovery::group(&inner.aggregator, &inner.store.custom_resources(), group)
                .map_or_else(|| Err(ApiError::no_such_path()), ok)
        }
        (&Method::GET, ["apis", group, version]) => {
            discovery::group_resources(&inner.store.custom_resources(), group, version)
                .map_or_else(|| Err(ApiError::no_such_path()), ok)
        }
        (&Method::POST, ["apis", "authentication.k8s.io", "v1", "tokenreviews"]) => {
            let body = read_body(req).await?;
            ok(auth::token_review(&body, |t| inner.lookup_token(t))?)
        }
        (&Method::POST, ["apis", "authorization.k8s.io", "v1", "subjectaccessreviews"]) => {
            let body = read_body(req).await?;
            ok(auth::subject_access_review(&body, |spec| {
                (inner.authorizer)(spec)
            })?)
        }
        (_, ["api", "v1", ..] | ["apis", "apps", "v1", ..]) => {
            let query = ListQuery::parse(&query)?;
            let table = tables::wanted(req.headers()).map(|v| (v, query.include_object()));
            resource(inner, &method, req.headers(), &info, &query, table)
        }
        (
            _,
            [
                "apis",
                "authentication.k8s.io" | "authorization.k8s.io",
                "v1",
                _,
            ],
        ) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::no_such_path()),
    }
}

/// The stored object or collection `info` addresses, if the store serves it: every request for
/// its custom resources, Leases, Events and Secrets; for ConfigMaps, reads of the ones it holds
/// (the simulated cluster serves the rest).
fn stored_target(inner: &Inner, info: &RequestInfo) -> Option<Target> {
    let attrs = info.resource.as_ref()?;
    let kind = inner
        .store
        .kind(&attrs.group, &attrs.version, &attrs.resource)?;
    if !matches!(attrs.subresource.as_str(), "" | "status")
        || (attrs.subresource == "status" && !kind.status_subresource)
    {
        return None;
    }
    let target = Target {
        kind,
        namespace: attrs.namespace.clone(),
        name: attrs.name.clone(),
        status: attrs.subresource == "status",
    };
    if target.kind.resource == "configmaps"
        && !(attrs.verb == "get" && inner.store.contains(&target))
    {
        return None;
    }
    Some(target)
}

async fn read_body(req: Request<Incoming>) -> ApiResult<bytes::Bytes> {
    let limited = http_body_util::Limited::new(req.into_body(), 3 << 20);
    limited
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))
}

/// A request for an object or a collection of a built-in resource (core/v1 or apps/v1).
fn resource(
    inner: &Inner,
    method: &Method,
    headers: &http::HeaderMap,
    info: &RequestInfo,
    query: &ListQuery,
    table: Option<(&'static str, tables::IncludeObject)>,
) -> ApiResult {
    let attrs = info.resource.as_ref().ok_or_else(ApiError::no_such_path)?;
    let kind =
        Kind::from_resource(&attrs.group, &attrs.resource).ok_or_else(ApiError::no_such_path)?;
    if !attrs.subresource.is_empty() {
        return Err(ApiError::no_such_path());
    }
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Err(ApiError::method_not_allowed());
    }
    // `/api/v1/namespaces/{ns}` names a namespace; elsewhere the namespace scopes the request.
    let namespace =
        (kind.namespaced() && !attrs.namespace.is_empty()).then_some(attrs.namespace.as_str());
    if !kind.namespaced() && kind != Kind::Namespace && !attrs.namespace.is_empty() {
        return Err(ApiError::no_such_path());
    }
    let ctx = RenderCtx {
        // Watches stream objects; Tables are for get and list.
        table: table.filter(|_| attrs.verb != "watch"),
        metadata_only: resources::wants_metadata_only(headers),
        now_ms: inner.cluster.clock.now_ms(),
        created_ms: inner.created_ms,
        bundles: &inner.bundles,
    };
    match attrs.verb.as_str() {
        "get" => resources::get(&inner.cluster.read(), &ctx, kind, namespace, &attrs.name),
        "list" => resources::list(
            &inner.cluster.read(),
            &ctx,
            &inner.cache,
            kind,
            namespace,
            query,
        ),
        "watch" => resources::watch(
            &inner.cluster,
            &ctx,
            &inner.cache,
            kind,
            namespace,
            query,
            &inner.watch_settings,
        ),
        _ => Err(ApiError::method_not_allowed()),
    }
}
