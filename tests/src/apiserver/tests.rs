//! Tests of the fake apiserver over real HTTPS: raw requests for exact wire shapes, kube-rs
//! watchers, a recording TLS backend behind the aggregator, and the real `kubectl`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;
use crate::cluster::{ClusterSpec, PodFaults, SimClock, SimContainer, SimPod};

const ADMIN: &str = "admin-token";
const GATEWAY: &str = "gateway-token";
const PLAIN: &str = "plain-token";
/// Upper bound on waiting for something that should happen promptly (not a synchronisation
/// sleep: every wait below returns as soon as its event arrives).
const PATIENCE: Duration = Duration::from_secs(20);

fn tokens() -> BTreeMap<String, UserInfo> {
    BTreeMap::from([
        (
            ADMIN.to_string(),
            UserInfo {
                username: "admin".into(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
                uid: "admin-uid".into(),
            },
        ),
        (
            PLAIN.to_string(),
            UserInfo {
                username: "plain".into(),
                groups: Vec::new(),
                uid: String::new(),
            },
        ),
        (
            GATEWAY.to_string(),
            UserInfo {
                username: "system:serviceaccount:kube-system:metrics-gateway".into(),
                groups: vec![
                    "system:serviceaccounts".into(),
                    "system:authenticated".into(),
                ],
                uid: String::new(),
            },
        ),
    ])
}

fn cluster() -> Arc<SimCluster> {
    let spec = ClusterSpec {
        nodes: 3,
        pods_per_node: 4,
        containers_per_pod: (1, 3),
        namespaces: 3,
        seed: 11,
        kubelet_port: 10250,
    };
    SimCluster::generate(&spec, SimClock::Real)
}

async fn start(config: ApiServerConfig) -> (Arc<SimCluster>, FakeApiServer, Http) {
    let cluster = cluster();
    let server = FakeApiServer::start(
        cluster.clone(),
        ApiServerConfig {
            tokens: tokens(),
            ..config
        },
    )
    .await
    .expect("starts");
    let http = Http::new(&server.url(), &server.ca_pem());
    (cluster, server, http)
}

fn tls_client_config(ca_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A bare HTTPS client for exact wire checks.
struct Http {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Http {
    fn new(base: &str, ca_pem: &str) -> Http {
        crate::pki::install_crypto_provider();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_client_config(ca_pem))
            .https_only()
            .enable_all_versions()
            .build();
        Http {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: base.to_string(),
        }
    }

    async fn open(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> http::Response<Incoming> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = body
            .map(|b| Bytes::from(serde_json::to_vec(&b).unwrap()))
            .unwrap_or_default();
        tokio::time::timeout(
            PATIENCE,
            self.client.request(req.body(Full::new(body)).unwrap()),
        )
        .await
        .expect("answer in time")
        .expect("request succeeds")
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let resp = self.open(method, path, token, headers, body).await;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(PATIENCE, body.collect())
            .await
            .expect("body in time")
            .expect("body")
            .to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Some(ADMIN), &[], None).await
    }
}

/// Reads newline-delimited JSON events off a watch response.
struct Lines {
    body: Incoming,
    buf: Vec<u8>,
}

impl Lines {
    fn new(resp: http::Response<Incoming>) -> Lines {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/json");
        Lines {
            body: resp.into_body(),
            buf: Vec::new(),
        }
    }

    /// The next event, or `None` when the server ended the stream.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("event is JSON"));
            }
            let frame = tokio::time::timeout(PATIENCE, self.body.frame())
                .await
                .expect("event in time")?;
            if let Ok(data) = frame.expect("stream intact").into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }

    /// The next event that isn't a bookmark.
    async fn next_change(&mut self) -> Value {
        loop {
            let event = self.next().await.expect("stream open");
            if event["type"] != "BOOKMARK" {
                return event;
            }
        }
    }
}

fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .parse()
        .expect("numeric")
}

fn new_pod(namespace: &str, name: &str, node: &str) -> SimPod {
    SimPod {
        namespace: namespace.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        node: node.into(),
        labels: BTreeMap::from([("app".into(), "added".into())]),
        owner_replicaset: None,
        phase: "Running".into(),
        ready: true,
        start_ms: 1_700_000_000_000,
        containers: vec![SimContainer {
            name: "main".into(),
            cpu_nanocores: 5_000_000,
            memory_bytes: 8 << 20,
            start_ms: 1_700_000_000_000,
            restart_count: 0,
            cpu_request_millis: 100,
            memory_request_bytes: 64 << 20,
        }],
        waiting: BTreeMap::new(),
        faults: PodFaults::default(),
    }
}

#[tokio::test]
async fn discovery_shapes() {
    let (_cluster, server, http) = start(ApiServerConfig::default()).await;
    server.register_api_service(
        "metrics.k8s.io",
        "v1beta1",
        100,
        100,
        "https://127.0.0.1:1",
        None,
    );
    server.register_api_service(
        "custom.metrics.k8s.io",
        "v1beta1",
        100,
        100,
        "https://127.0.0.1:1",
        None,
    );
    server.register_api_service(
        "custom.metrics.k8s.io",
        "v1beta2",
        100,
        200,
        "https://127.0.0.1:1",
        None,
    );

    let version = http.get("/version").await.json();
    assert_eq!(
        (version["major"].as_str(), version["minor"].as_str()),
        (Some("1"), Some("33"))
    );
    assert!(
        version["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.33.")
    );

    let api = http.get("/api").await.json();
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));

    // kubectl's Accept: aggregated discovery first. The answer must be plain JSON.
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let apis = http
        .send(
            Method::GET,
            "/apis",
            Some(ADMIN),
            &[("Accept", accept)],
            None,
        )
        .await;
    assert_eq!(apis.headers["content-type"], "application/json");
    let apis = apis.json();
    assert_eq!(apis["kind"], "APIGroupList");
    let names: Vec<&str> = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "apps",
            "authentication.k8s.io",
            "authorization.k8s.io",
            "apiregistration.k8s.io",
            "policy",
            "rbac.authorization.k8s.io",
            "apiextensions.k8s.io",
            "coordination.k8s.io",
            "events.k8s.io",
            "metrics-gateway.io",
            "custom.metrics.k8s.io",
            "metrics.k8s.io"
        ]
    );
    let custom = &apis["groups"][10];
    assert_eq!(
        custom["preferredVersion"]["version"], "v1beta2",
        "highest versionPriority is preferred"
    );
    assert_eq!(
        custom["versions"][0]["groupVersion"],
        "custom.metrics.k8s.io/v1beta2"
    );
    assert_eq!(
        custom["versions"][1]["groupVersion"],
        "custom.metrics.k8s.io/v1beta1"
    );

    let group = http.get("/apis/custom.metrics.k8s.io").await.json();
    assert_eq!(
        (group["kind"].as_str(), group["apiVersion"].as_str()),
        (Some("APIGroup"), Some("v1"))
    );
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        "custom.metrics.k8s.io/v1beta2"
    );

    let core = http.get("/api/v1").await.json();
    assert_eq!(
        (core["kind"].as_str(), core["groupVersion"].as_str()),
        (Some("APIResourceList"), Some("v1"))
    );
    let mut resources: Vec<(String, bool)> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect();
    resources.sort();
    assert_eq!(
        resources,
        [
            ("configmaps".into(), true),
            ("namespaces".into(), false),
            ("nodes".into(), false),
            ("pods".into(), true),
            ("secrets".into(), true),
            ("serviceaccounts".into(), true),
            ("services".into(), true)
        ]
    );

    let authz = http.get("/apis/authorization.k8s.io/v1").await.json();
    assert_eq!(authz["resources"][0]["name"], "subjectaccessreviews");
    let missing = http.get("/apis/nope.example.com").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["kind"], "Status");
    server.shutdown().await;
}

#[tokio::test]
async fn objects_are_realistic_and_unknown_ones_are_404() {
    let (cluster, server, http) = start(ApiServerConfig::default()).await;
    let (node, pod) = {
        let state = cluster.read();
        let node = state.nodes.values().next().unwrap().clone();
        let pod = state.pods_on(&node.name).next().unwrap().clone();
        (node, pod)
    };

    let n = http
        .get(&format!("/api/v1/nodes/{}", node.name))
        .await
        .json();
    assert_eq!(
        (n["kind"].as_str(), n["apiVersion"].as_str()),
        (Some("Node"), Some("v1"))
    );
    assert_eq!(
        n["status"]["addresses"][0],
        json!({ "type": "InternalIP", "address": node.address.to_string() })
    );
    assert_eq!(
        n["status"]["addresses"][1],
        json!({ "type": "Hostname", "address": node.name })
    );
    assert_eq!(
        n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        node.kubelet_port
    );
    assert_eq!(n["status"]["allocatable"]["cpu"], "8");
    assert_eq!(n["status"]["allocatable"]["memory"], "32Gi");
    assert_eq!(
        n["metadata"]["labels"]["kubernetes.io/hostname"],
        node.name.as_str()
    );
    let ready = n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    // k8s-openapi (what the gateway decodes with) accepts it.
    let typed: Node = serde_json::from_value(n).expect("decodes as a k8s-openapi Node");
    assert_eq!(typed.metadata.name.as_deref(), Some(node.name.as_str()));

    let p = http
        .get(&format!(
            "/api/v1/namespaces/{}/pods/{}",
            pod.namespace, pod.name
        ))
        .await
        .json();
    assert_eq!(p["spec"]["nodeName"], node.name.as_str());
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
    assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        p["metadata"]["ownerReferences"][0]["name"],
        pod.owner_replicaset.as_deref().unwrap()
    );
    assert_eq!(p["status"]["hostIP"], node.address.to_string());
    assert_eq!(p["status"]["phase"], "Running");
    let statuses = p["status"]["containerStatuses"].as_array().unwrap();
    assert_eq!(statuses.len(), pod.containers.len());
    assert_eq!(
        statuses[0]["state"]["running"]["startedAt"],
        objects::rfc3339(pod.containers[0].start_ms),
        "started at the container's start"
    );
    let conditions: Vec<&str> = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    for wanted in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(conditions.contains(&wanted), "{wanted} in {conditions:?}");
    }
    let typed: Pod = serde_json::from_value(p).expect("decodes as a k8s-openapi Pod");
    let requests = typed.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap()
        .requests
        .unwrap();
    assert_eq!(
        requests["cpu"].0,
        objects::cpu_quantity(pod.containers[0].cpu_request_millis)
    );

    let missing = http
        .get(&format!("/api/v1/namespaces/{}/pods/nope", pod.namespace))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let status = missing.json();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("NotFound"))
    );
    assert_eq!(status["message"], "pods \"nope\" not found");
    assert_eq!(
        http.get("/api/v1/nodes/nope").await.status,
        StatusCode::NOT_FOUND
    );

    let cm = http
        .get("/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication")
        .await
        .json();
    assert_eq!(
        cm["data"]["requestheader-client-ca-file"],
        server.front_proxy_ca_pem()
    );
    assert_eq!(cm["data"]["client-ca-file"], server.client_ca_pem());
    assert_eq!(
        cm["data"]["requestheader-allowed-names"],
        "[\"front-proxy-client\"]"
    );
    assert_eq!(
        cm["data"]["requestheader-username-headers"],
        "[\"X-Remote-User\"]"
    );
    assert_eq!(
        cm["data"]["requestheader-group-headers"],
        "[\"X-Remote-Group\"]"
    );
    assert_eq!(
        cm["data"]["requestheader-extra-headers-prefix"],
        "[\"X-Remote-Extra-\"]"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn lists_filter_and_paginate() {
    let (cluster, server, http) = start(ApiServerConfig::default()).await;
    let (all, rv, some_node, web) = {
        let state = cluster.read();
        let web = state
            .pods
            .values()
            .filter(|p| p.labels["tier"] == "web")
            .count();
        (
            state.pods.len(),
            state.resource_version,
            state.nodes.keys().next().unwrap().clone(),
            web,
        )
    };

    let list = http.get("/api/v1/pods").await.json();
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"].as_array().unwrap().len(), all);
    assert_eq!(rv_of(&list), rv);
    assert!(
        list["items"][0].get("kind").is_none(),
        "list items carry no kind"
    );

    // Pagination: pages of 5 cover every pod exactly once, all at the first page's version.
    let mut names = Vec::new();
    let mut next = "/api/v1/pods?limit=5".to_string();
    let mut pages = 0;
    loop {
        let page = http.get(&next).await.json();
        pages += 1;
        assert_eq!(rv_of(&page), rv);
        names.extend(page["items"].as_array().unwrap().iter().map(|p| {
            format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap(),
                p["metadata"]["name"].as_str().unwrap()
            )
        }));
        match page["metadata"]["continue"].as_str() {
            Some(token) => {
                assert_eq!(
                    page["metadata"]["remainingItemCount"],
                    all as u64 - names.len() as u64
                );
                next = format!("/api/v1/pods?limit=5&continue={token}");
            }
            None => break,
        }
    }
    assert_eq!(pages, all.div_ceil(5));
    let expected: Vec<String> = cluster
        .read()
        .pods
        .keys()
        .map(|(ns, name)| format!("{ns}/{name}"))
        .collect();
    assert_eq!(names, expected, "complete, unique, in storage order");

    // Selective pages: a continue token but no remainingItemCount.
    let web_page = http
        .get("/api/v1/pods?limit=2&labelSelector=tier%3Dweb")
        .await
        .json();
    assert_eq!(web_page["items"].as_array().unwrap().len(), 2);
    assert!(web_page["metadata"]["continue"].is_string());
    assert!(web_page["metadata"].get("remainingItemCount").is_none());
    let token = web_page["metadata"]["continue"].as_str().unwrap();
    let rest = http
        .get(&format!(
            "/api/v1/pods?limit=500&labelSelector=tier%3Dweb&continue={token}"
        ))
        .await
        .json();
    assert_eq!(rest["items"].as_array().unwrap().len(), web - 2);
    assert!(rest["metadata"].get("continue").is_none());

    let by_label = http
        .get("/api/v1/pods?labelSelector=tier%3Dweb")
        .await
        .json();
    assert_eq!(by_label["items"].as_array().unwrap().len(), web);
    let not_web = http
        .get("/api/v1/pods?labelSelector=tier!%3Dweb,app")
        .await
        .json();
    assert_eq!(not_web["items"].as_array().unwrap().len(), all - web);

    let on_node = http
        .get(&format!(
            "/api/v1/pods?fieldSelector=spec.nodeName%3D{some_node}"
        ))
        .await
        .json();
    let items = on_node["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert!(
        items
            .iter()
            .all(|p| p["spec"]["nodeName"] == some_node.as_str())
    );

    let in_default = http.get("/api/v1/namespaces/default/pods").await.json();
    let expected = cluster
        .read()
        .pods
        .keys()
        .filter(|(ns, _)| ns == "default")
        .count();
    assert_eq!(in_default["items"].as_array().unwrap().len(), expected);

    let one_node = http
        .get(&format!(
            "/api/v1/nodes?fieldSelector=metadata.name%3D{some_node}"
        ))
        .await
        .json();
    assert_eq!(one_node["items"].as_array().unwrap().len(), 1);

    let bad = http.get("/api/v1/pods?fieldSelector=spec.bogus%3D1").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json()["message"],
        "field label not supported: spec.bogus"
    );

    let too_new = http
        .get(&format!("/api/v1/pods?resourceVersion={}", rv + 100))
        .await;
    assert_eq!(too_new.status, StatusCode::GATEWAY_TIMEOUT);

    // Server-side printing, as kubectl asks for it.
    let accept = [(
        "Accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )];
    let table = http
        .send(
            Method::GET,
            "/api/v1/pods?limit=500",
            Some(ADMIN),
            &accept,
            None,
        )
        .await
        .json();
    assert_eq!(
        (table["kind"].as_str(), table["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &columns[..5],
        ["Name", "Ready", "Status", "Restarts", "Age"]
    );
    assert_eq!(table["rows"].as_array().unwrap().len(), all);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(table["rows"][0]["cells"][2], "Running");

    let namespaces = http.get("/api/v1/namespaces").await.json();
    let ns: Vec<&str> = namespaces["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        ns.contains(&"kube-system") && ns.contains(&"ns-1") && ns.contains(&"default"),
        "{ns:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn watch_sees_added_modified_deleted_in_order() {
    let (cluster, server, http) = start(ApiServerConfig::default()).await;
    let node = cluster.read().nodes.keys().next().unwrap().clone();
    let list = http.get("/api/v1/namespaces/default/pods").await.json();
    let rv = rv_of(&list);

    let resp = http
        .open(Method::GET, &format!("/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true"), Some(ADMIN), &[], None)
        .await;
    let mut events = Lines::new(resp);
    // A change in another namespace must not show up in this namespaced watch.
    cluster.add_pod(new_pod("ns-1", "elsewhere", &node));
    cluster.add_pod(new_pod("default", "watched", &node));
    cluster.update_pod("default", "watched", |p| {
        p.ready = false;
    });
    cluster.delete_pod("default", "watched");

    let added = events.next_change().await;
    let modified = events.next_change().await;
    let deleted = events.next_change().await;
    let kinds: Vec<&str> = [&added, &modified, &deleted]
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
    for e in [&added, &modified, &deleted] {
        assert_eq!(e["object"]["metadata"]["name"], "watched");
        assert_eq!(e["object"]["kind"], "Pod");
    }
    let rvs: Vec<u64> = [&added, &modified, &deleted]
        .iter()
        .map(|e| rv_of(&e["object"]))
        .collect();
    assert!(
        rv < rvs[0] && rvs[0] < rvs[1] && rvs[1] < rvs[2],
        "{rv} {rvs:?}"
    );
    let ready = modified["object"]["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "False");

    // Resuming from the ADDED event's version replays exactly what came after it.
    let resp = http
        .open(
            Method::GET,
            &format!(
                "/api/v1/namespaces/default/pods?watch=true&resourceVersion={}",
                rvs[0]
            ),
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    let mut resumed = Lines::new(resp);
    assert_eq!(resumed.next_change().await["type"], "MODIFIED");
    assert_eq!(resumed.next_change().await["type"], "DELETED");
    server.shutdown().await;
}

#[tokio::test]
async fn watch_bookmarks_timeout_and_initial_events() {
    let config = ApiServerConfig {
        bookmark_interval: Duration::from_millis(50),
        ..ApiServerConfig::default()
    };
    let (cluster, server, http) = start(config).await;
    let nodes = cluster.read().nodes.len();
    let rv = cluster.read().resource_version;

    // Bookmarks come when asked for, carry the version, and the stream ends at timeoutSeconds.
    let resp = http
        .open(Method::GET, &format!("/api/v1/nodes?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1"), Some(ADMIN), &[], None)
        .await;
    let mut events = Lines::new(resp);
    let first = events.next().await.expect("a bookmark");
    assert_eq!(first["type"], "BOOKMARK");
    assert_eq!(first["object"]["kind"], "Node");
    assert_eq!(rv_of(&first["object"]), rv);
    while let Some(event) = events.next().await {
        assert_eq!(event["type"], "BOOKMARK");
    }

    // Streaming list: every object as ADDED, then the initial-events-end bookmark.
    let resp = http
        .open(Method::GET, "/api/v1/nodes?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", Some(ADMIN), &[], None)
        .await;
    let mut events = Lines::new(resp);
    for _ in 0..nodes {
        assert_eq!(events.next().await.unwrap()["type"], "ADDED");
    }
    let end = events.next().await.unwrap();
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn watch_from_a_compacted_version_gets_410() {
    let config = ApiServerConfig {
        watch_cache_capacity: 2,
        ..ApiServerConfig::default()
    };
    let (cluster, server, http) = start(config).await;
    let rv = cluster.read().resource_version;
    let node = cluster.read().nodes.keys().next().unwrap().clone();
    for i in 0..5 {
        cluster.add_pod(new_pod("default", &format!("churn-{i}"), &node));
    }
    // The cache applies changes asynchronously: watch from the newest version to know it caught up.
    let last = cluster.read().resource_version;
    let mut tail = Lines::new(
        http.open(
            Method::GET,
            &format!("/api/v1/pods?watch=true&resourceVersion={}", last - 1),
            Some(ADMIN),
            &[],
            None,
        )
        .await,
    );
    assert_eq!(rv_of(&tail.next_change().await["object"]), last);

    let resp = http
        .open(
            Method::GET,
            &format!("/api/v1/pods?watch=true&resourceVersion={rv}"),
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    let mut events = Lines::new(resp);
    let error = events.next().await.expect("an ERROR event");
    assert_eq!(error["type"], "ERROR");
    assert_eq!(error["object"]["kind"], "Status");
    assert_eq!(error["object"]["code"], 410);
    assert_eq!(error["object"]["reason"], "Expired");
    assert!(
        events.next().await.is_none(),
        "the stream ends after the error"
    );

    // A continue token from before the window is refused the same way.
    let token = resources::encode_continue(rv, "default/a");
    let page = http
        .get(&format!("/api/v1/pods?limit=1&continue={token}"))
        .await;
    assert_eq!(page.status, StatusCode::GONE);
    server.shutdown().await;
}

async fn kube_client(server: &FakeApiServer, dir: &tempfile::TempDir) -> kube::Client {
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path, GATEWAY).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Drives a kube-rs watcher until it has delivered a complete initial list; returns its names.
async fn initial_list<K>(
    stream: &mut (impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin),
) -> Vec<String>
where
    K: kube::Resource,
{
    let mut names = Vec::new();
    loop {
        let event = tokio::time::timeout(PATIENCE, stream.try_next())
            .await
            .expect("event in time")
            .expect("no error")
            .expect("open");
        match event {
            watcher::Event::Init => names.clear(),
            watcher::Event::InitApply(obj) => names.push(obj.meta().name.clone().unwrap()),
            watcher::Event::InitDone => return names,
            other => panic!(
                "unexpected event before InitDone: {:?}",
                std::mem::discriminant(&other)
            ),
        }
    }
}

async fn next_change<K: kube::Resource + Clone>(
    stream: &mut (impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin),
) -> (bool, String) {
    loop {
        let event = tokio::time::timeout(PATIENCE, stream.try_next())
            .await
            .expect("event in time")
            .expect("no error")
            .expect("open");
        match event {
            watcher::Event::Apply(obj) => return (true, obj.meta().name.clone().unwrap()),
            watcher::Event::Delete(obj) => return (false, obj.meta().name.clone().unwrap()),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn kube_rs_watchers_work_unchanged() {
    let (cluster, server, _http) = start(ApiServerConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = kube_client(&server, &dir).await;
    let node = cluster.read().nodes.keys().next().unwrap().clone();
    let all_pods = cluster.read().pods.len();

    // Default config: paginated list (small pages here) then watch with bookmarks.
    let pods: kube::Api<Pod> = kube::Api::all(client.clone());
    let mut paged = watcher(pods.clone(), watcher::Config::default().page_size(5)).boxed();
    assert_eq!(initial_list(&mut paged).await.len(), all_pods);

    // Streaming list (sendInitialEvents) mode.
    let mut streamed = watcher(pods, watcher::Config::default().streaming_lists()).boxed();
    assert_eq!(initial_list(&mut streamed).await.len(), all_pods);

    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    let mut node_watch = watcher(
        nodes,
        watcher::Config::default().labels("kubernetes.io/os=linux"),
    )
    .boxed();
    assert_eq!(
        initial_list(&mut node_watch).await.len(),
        cluster.read().nodes.len()
    );

    cluster.add_pod(new_pod("ns-1", "kube-rs-sees-me", &node));
    cluster.delete_pod("ns-1", "kube-rs-sees-me");
    for stream in [&mut paged, &mut streamed] {
        assert_eq!(
            next_change(stream).await,
            (true, "kube-rs-sees-me".to_string())
        );
        assert_eq!(
            next_change(stream).await,
            (false, "kube-rs-sees-me".to_string())
        );
    }
    cluster.update_node(&node, |n| n.ready = false);
    assert_eq!(next_change(&mut node_watch).await, (true, node.clone()));
    server.shutdown().await;
}

#[tokio::test]
async fn kube_rs_watcher_relists_after_410() {
    let config = ApiServerConfig {
        watch_cache_capacity: 1,
        ..ApiServerConfig::default()
    };
    let (cluster, server, _http) = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let client = kube_client(&server, &dir).await;
    let node = cluster.read().nodes.keys().next().unwrap().clone();
    // Pretend the watch cache moved past the list's version: churn before kube-rs watches.
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, "default");
    let list = pods.list(&Default::default()).await.unwrap();
    let old_rv = list.metadata.resource_version.unwrap();
    for i in 0..3 {
        cluster.add_pod(new_pod("default", &format!("burst-{i}"), &node));
    }
    let http = Http::new(&server.url(), &server.ca_pem());
    let last = cluster.read().resource_version;
    let mut tail = Lines::new(
        http.open(
            Method::GET,
            &format!("/api/v1/pods?watch=true&resourceVersion={}", last - 1),
            Some(ADMIN),
            &[],
            None,
        )
        .await,
    );
    assert_eq!(rv_of(&tail.next_change().await["object"]), last);

    let mut stream = pods
        .watch(&kube::api::WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        kube::api::WatchEvent::Error(status) => assert_eq!(status.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // The watcher relists and ends up with the burst included.
    let mut w = watcher(pods, watcher::Config::default()).boxed();
    let names = initial_list(&mut w).await;
    assert!(names.iter().any(|n| n == "burst-2"), "{names:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn token_auth_and_authorization() {
    let config = ApiServerConfig {
        authorizer: Arc::new(|spec: &SubjectAccessReviewSpec| {
            spec.user != "system:serviceaccount:kube-system:metrics-gateway"
                || spec
                    .resource_attributes
                    .as_ref()
                    .is_none_or(|r| r.resource != "nodes")
        }),
        ..ApiServerConfig::default()
    };
    let (_cluster, server, http) = start(config).await;
    for token in [None, Some("wrong")] {
        let reply = http
            .send(Method::GET, "/api/v1/pods", token, &[], None)
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let status = reply.json();
        assert_eq!(
            (
                status["kind"].as_str(),
                status["reason"].as_str(),
                status["code"].as_u64()
            ),
            (Some("Status"), Some("Unauthorized"), Some(401))
        );
    }
    assert_eq!(
        http.send(Method::GET, "/healthz", None, &[], None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        http.send(Method::GET, "/api/v1/pods", Some(GATEWAY), &[], None)
            .await
            .status,
        StatusCode::OK
    );
    let denied = http
        .send(Method::GET, "/api/v1/nodes", Some(GATEWAY), &[], None)
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(
        denied.json()["message"],
        "nodes is forbidden: User \"system:serviceaccount:kube-system:metrics-gateway\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    assert_eq!(server.request_count("/api/v1/"), 4);
    assert_eq!(server.request_count("/api/v1/nodes"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn token_review_and_subject_access_review_round_trip() {
    let config = ApiServerConfig {
        authorizer: Arc::new(|spec: &SubjectAccessReviewSpec| spec.user != "mallory"),
        ..ApiServerConfig::default()
    };
    let (_cluster, server, http) = start(config).await;
    let review = |token: &str| json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": { "token": token } });
    let path = "/apis/authentication.k8s.io/v1/tokenreviews";
    let ok = http
        .send(Method::POST, path, Some(GATEWAY), &[], Some(review(ADMIN)))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let ok = ok.json();
    assert_eq!(ok["kind"], "TokenReview");
    assert_eq!(ok["status"]["authenticated"], true);
    assert_eq!(ok["status"]["user"]["username"], "admin");
    assert_eq!(ok["status"]["user"]["uid"], "admin-uid");
    assert_eq!(
        ok["status"]["user"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
    assert!(
        ok["status"]["user"]["extra"][CREDENTIAL_ID_EXTRA][0]
            .as_str()
            .unwrap()
            .starts_with("JTI=")
    );
    // Every authenticated user is in system:authenticated, listed or not.
    let plain = http
        .send(Method::POST, path, Some(GATEWAY), &[], Some(review(PLAIN)))
        .await
        .json();
    assert_eq!(
        plain["status"]["user"]["groups"],
        json!(["system:authenticated"])
    );
    let bad = http
        .send(
            Method::POST,
            path,
            Some(GATEWAY),
            &[],
            Some(review("forged")),
        )
        .await
        .json();
    assert!(bad["status"]["authenticated"].as_bool() != Some(true));
    // The caller itself must authenticate.
    assert_eq!(
        http.send(Method::POST, path, None, &[], Some(review(ADMIN)))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let sar = |user: &str| {
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "resourceAttributes": { "verb": "list", "group": "metrics.k8s.io", "version": "v1beta1", "resource": "pods", "namespace": "default" },
                "user": user,
                "groups": ["system:authenticated"],
                "extra": { "scopes": ["a", "b"] },
            }
        })
    };
    let path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let allowed = http
        .send(Method::POST, path, Some(GATEWAY), &[], Some(sar("alice")))
        .await
        .json();
    assert_eq!(allowed["kind"], "SubjectAccessReview");
    assert_eq!(allowed["status"]["allowed"], true);
    assert_eq!(allowed["spec"]["resourceAttributes"]["resource"], "pods");
    assert_eq!(allowed["spec"]["extra"]["scopes"], json!(["a", "b"]));
    let denied = http
        .send(Method::POST, path, Some(GATEWAY), &[], Some(sar("mallory")))
        .await
        .json();
    assert_eq!(denied["status"]["allowed"], false);
    let invalid = json!({ "kind": "SubjectAccessReview", "spec": { "user": "x" } });
    assert_eq!(
        http.send(Method::POST, path, Some(GATEWAY), &[], Some(invalid))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(
        server.request_count("/apis/authentication.k8s.io/v1/tokenreviews"),
        4
    );
    assert_eq!(
        server.request_count("/apis/authorization.k8s.io/v1/subjectaccessreviews"),
        3
    );
    server.shutdown().await;
}

/// What the recording backend saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
    client_cert: Vec<u8>,
}

/// A tiny extension API server: TLS that requires a client certificate from `client_ca_pem`,
/// records every request, and answers with `answer`.
struct Backend {
    url: String,
    ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = Arc<dyn Fn(&Seen) -> (StatusCode, Value) + Send + Sync>;

impl Backend {
    async fn start(client_ca_pem: &str, answer: Answer) -> Backend {
        let ca = crate::pki::TestCa::new("backend-ca").unwrap();
        let cert = ca
            .server_cert("backend", &["127.0.0.1".to_string()])
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let mut tls = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(cert.cert_der(), cert.key_der())
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, recorded, answer) =
                    (acceptor.clone(), recorded.clone(), answer.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client_cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.to_vec())
                        .unwrap_or_default();
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (recorded, answer, client_cert) =
                            (recorded.clone(), answer.clone(), client_cert.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let seen = Seen {
                                method: parts.method,
                                path_and_query: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body,
                                client_cert,
                            };
                            let (status, value) = answer(&seen);
                            recorded.lock().unwrap().push(seen);
                            let resp = http::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(serde_json::to_vec(&value).unwrap())))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend {
            url: format!("https://{addr}"),
            ca_pem: ca.cert_pem(),
            seen,
            task,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn all(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn proxy_forwards_with_front_proxy_identity() {
    let (_cluster, server, http) = start(ApiServerConfig::default()).await;
    let backend = Backend::start(
        &server.front_proxy_ca_pem(),
        Arc::new(|_: &Seen| {
            (
                StatusCode::OK,
                json!({ "kind": "NodeMetricsList", "items": [] }),
            )
        }),
    )
    .await;
    server.register_api_service(
        "metrics.k8s.io",
        "v1beta1",
        100,
        100,
        &backend.url,
        Some(backend.ca_pem.clone()),
    );

    let spoofed = [
        ("X-Remote-User", "system:admin"),
        ("X-Remote-Group", "system:masters"),
        ("X-Remote-Extra-Scopes", "everything"),
        ("X-Remote-Uid", "0"),
        ("Accept", "application/json"),
    ];
    let path = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dweb";
    let reply = http
        .send(Method::GET, path, Some(GATEWAY), &spoofed, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json()["kind"],
        "NodeMetricsList",
        "the backend's answer comes back"
    );

    let post = http
        .send(
            Method::POST,
            "/apis/metrics.k8s.io/v1beta1/things",
            Some(ADMIN),
            &[],
            Some(json!({ "x": 1 })),
        )
        .await;
    assert_eq!(post.status, StatusCode::OK);

    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    let get = &seen[0];
    assert_eq!(get.method, Method::GET);
    assert_eq!(get.path_and_query, path);
    assert!(
        get.headers.get("authorization").is_none(),
        "the caller's token is not forwarded"
    );
    assert_eq!(
        all(&get.headers, "x-remote-user"),
        ["system:serviceaccount:kube-system:metrics-gateway"]
    );
    assert_eq!(
        all(&get.headers, "x-remote-group"),
        ["system:serviceaccounts", "system:authenticated"]
    );
    assert!(
        get.headers.get("x-remote-uid").is_none(),
        "no uid, no header; the spoofed one is gone"
    );
    assert!(get.headers.get("x-remote-extra-scopes").is_none());
    let credential = all(
        &get.headers,
        "x-remote-extra-authentication.kubernetes.io%2fcredential-id",
    );
    assert_eq!(credential.len(), 1);
    assert!(credential[0].starts_with("JTI="));
    assert_eq!(all(&get.headers, "accept"), ["application/json"]);
    // The client certificate is the front-proxy one: verified against its CA by the TLS layer,
    // and its subject names front-proxy-client.
    let cn = b"front-proxy-client";
    assert!(get.client_cert.windows(cn.len()).any(|w| w == cn));

    let post = &seen[1];
    assert_eq!(post.method, Method::POST);
    assert_eq!(
        serde_json::from_slice::<Value>(&post.body).unwrap(),
        json!({ "x": 1 })
    );
    assert_eq!(all(&post.headers, "x-remote-user"), ["admin"]);
    assert_eq!(all(&post.headers, "x-remote-uid"), ["admin-uid"]);

    // Unauthenticated callers never reach the backend.
    assert_eq!(
        http.send(Method::GET, path, None, &[], None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(backend.seen().len(), 2);

    // Queries are the backend's business: forwarded verbatim, even ones the fake would refuse.
    let odd = "/apis/metrics.k8s.io/v1beta1/nodes?limit=lots&watch=0";
    let reply = http.send(Method::GET, odd, Some(ADMIN), &[], None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(backend.seen()[2].path_and_query, odd);

    // A backend that is gone: 503, as the aggregator answers.
    drop(backend);
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("https://{}", gone.local_addr().unwrap());
    drop(gone);
    server.register_api_service("metrics.k8s.io", "v1beta1", 100, 100, &dead, None);
    let unavailable = http.get("/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    server.shutdown().await;
}

#[tokio::test]
async fn proxy_rejected_by_a_backend_that_trusts_another_ca() {
    let (_cluster, server, http) = start(ApiServerConfig::default()).await;
    // This backend only trusts the client CA, not the front-proxy CA.
    let backend = Backend::start(
        &server.client_ca_pem(),
        Arc::new(|_: &Seen| (StatusCode::OK, json!({}))),
    )
    .await;
    server.register_api_service(
        "metrics.k8s.io",
        "v1beta1",
        100,
        100,
        &backend.url,
        Some(backend.ca_pem.clone()),
    );
    let reply = http.get("/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(backend.seen().is_empty());
    server.shutdown().await;
}

fn kubectl() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/kubectl");
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: /usr/bin/kubectl is not installed");
        None
    }
}

async fn run_kubectl(kubectl: PathBuf, dir: PathBuf, args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(dir.join("kubeconfig"))
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .args(&args)
            .env("HOME", &dir)
            .output()
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn kubectl_get_works() {
    let Some(kubectl) = kubectl() else { return };
    let (cluster, server, _http) = start(ApiServerConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    server
        .write_kubeconfig(&dir.path().join("kubeconfig"), ADMIN)
        .unwrap();
    let d = dir.path().to_path_buf();
    let node_names: Vec<String> = cluster.read().nodes.keys().cloned().collect();

    let (ok, out, err) = run_kubectl(
        kubectl.clone(),
        d.clone(),
        &["get", "--raw", "/api/v1/nodes"],
    )
    .await;
    assert!(ok, "kubectl get --raw failed: {err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), node_names.len());

    let (ok, out, err) = run_kubectl(kubectl.clone(), d.clone(), &["get", "nodes"]).await;
    assert!(ok, "kubectl get nodes failed: {err}");
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "server-side Table columns"
    );
    for name in &node_names {
        let line = out
            .lines()
            .find(|l| l.starts_with(name.as_str()))
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"));
        assert!(
            line.contains(" Ready ") && line.contains("v1.33.1"),
            "{line}"
        );
    }

    let (ok, out, err) = run_kubectl(
        kubectl.clone(),
        d.clone(),
        &["get", "pods", "-A", "-l", "tier=web"],
    )
    .await;
    assert!(ok, "kubectl get pods failed: {err}");
    let web = cluster
        .read()
        .pods
        .values()
        .filter(|p| p.labels["tier"] == "web")
        .count();
    assert_eq!(
        out.lines().count(),
        web + 1,
        "header + one line per pod:\n{out}"
    );
    assert!(
        out.lines().skip(1).all(|l| l.contains(" Running ")),
        "{out}"
    );

    let (ok, out, err) = run_kubectl(kubectl, d, &["get", "pod", "-n", "nope", "missing"]).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn kubectl_top_goes_through_the_aggregator() {
    let Some(kubectl) = kubectl() else { return };
    let (cluster, server, _http) = start(ApiServerConfig::default()).await;
    let names: Vec<String> = cluster.read().nodes.keys().cloned().collect();
    let items: Vec<Value> = names
        .iter()
        .map(|n| {
            json!({
                "metadata": { "name": n, "creationTimestamp": "2025-01-27T18:48:43Z" },
                "timestamp": "2025-01-27T18:48:33Z",
                "window": "30s",
                "usage": { "cpu": "487558164n", "memory": "732212Ki" },
            })
        })
        .collect();
    let answer: Answer = Arc::new(move |seen: &Seen| {
        match seen.path_and_query.split('?').next().unwrap() {
            "/apis/metrics.k8s.io/v1beta1" => (
                StatusCode::OK,
                json!({
                    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metrics.k8s.io/v1beta1",
                    "resources": [
                        { "name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"] },
                        { "name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"] },
                    ],
                }),
            ),
            "/apis/metrics.k8s.io/v1beta1/nodes" => (
                StatusCode::OK,
                json!({
                    "kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items.clone(),
                }),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404 }),
            ),
        }
    });
    let backend = Backend::start(&server.front_proxy_ca_pem(), answer).await;
    server.register_api_service(
        "metrics.k8s.io",
        "v1beta1",
        100,
        100,
        &backend.url,
        Some(backend.ca_pem.clone()),
    );
    let dir = tempfile::tempdir().unwrap();
    server
        .write_kubeconfig(&dir.path().join("kubeconfig"), ADMIN)
        .unwrap();

    let (ok, out, err) = run_kubectl(kubectl, dir.path().to_path_buf(), &["top", "nodes"]).await;
    assert!(ok, "kubectl top nodes failed: {err}");
    for name in &names {
        let line = out
            .lines()
            .find(|l| l.starts_with(name.as_str()))
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"));
        assert!(line.contains("488m") && line.contains("715Mi"), "{line}");
        // 488m of 8 cores = 6%; 715Mi of 32Gi = 2%.
        assert!(line.contains("6%") && line.contains("2%"), "{line}");
    }
    assert!(
        backend
            .seen()
            .iter()
            .all(|s| all(&s.headers, "x-remote-user") == ["admin"])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn apps_resources_and_namespaces_follow_the_model() {
    let (cluster, server, http) = start(ApiServerConfig::default()).await;
    let apps = http.get("/apis/apps/v1").await.json();
    let names: Vec<&str> = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["deployments", "replicasets"]);
    assert_eq!(apps["resources"][0]["namespaced"], true);
    let groups = http.get("/apis").await.json();
    assert_eq!(
        groups["groups"][0]["name"], "apps",
        "highest group priority first"
    );

    let (ns, pod, rs, app, replicas) = {
        let state = cluster.read();
        let p = state.pods.values().next().unwrap();
        let app = p.labels["app"].clone();
        let d = &state.deployments[&(p.namespace.clone(), app.clone())];
        (
            p.namespace.clone(),
            p.name.clone(),
            p.owner_replicaset.clone().unwrap(),
            app,
            d.replicas,
        )
    };
    let deployments = http
        .get(&format!("/apis/apps/v1/namespaces/{ns}/deployments"))
        .await
        .json();
    assert_eq!(deployments["kind"], "DeploymentList");
    assert_eq!(deployments["apiVersion"], "apps/v1");
    let d = deployments["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["metadata"]["name"] == app.as_str())
        .expect("the pod's deployment is listed")
        .clone();
    assert_eq!(d["spec"]["replicas"], replicas);
    assert_eq!(d["status"]["readyReplicas"], replicas);
    assert!(
        d["status"].get("unavailableReplicas").is_none(),
        "omitempty"
    );
    let rs_obj = http
        .get(&format!("/apis/apps/v1/namespaces/{ns}/replicasets/{rs}"))
        .await
        .json();
    let owner = &rs_obj["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str()),
        (Some("Deployment"), Some(app.as_str()))
    );
    assert_eq!(owner["uid"], d["metadata"]["uid"]);
    let pod_obj = http
        .get(&format!("/api/v1/namespaces/{ns}/pods/{pod}"))
        .await
        .json();
    assert_eq!(
        pod_obj["metadata"]["ownerReferences"][0]["uid"],
        rs_obj["metadata"]["uid"]
    );
    let missing = http
        .get(&format!("/apis/apps/v1/namespaces/{ns}/deployments/nope"))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json()["message"],
        "deployments.apps \"nope\" not found"
    );
    let namespace = http.get(&format!("/api/v1/namespaces/{ns}")).await.json();
    assert_eq!(
        namespace["metadata"]["labels"]["kubernetes.io/metadata.name"],
        ns.as_str()
    );
    assert!(namespace["metadata"]["labels"]["team"].is_string());

    // A crash loop: the container waits, the pod and the deployment lose readiness.
    let rv = rv_of(&deployments);
    let watch = http
        .open(
            Method::GET,
            &format!("/apis/apps/v1/namespaces/{ns}/deployments?watch=1&resourceVersion={rv}"),
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    let mut lines = Lines::new(watch);
    cluster.crash_loop(&ns, &pod, "main");
    let modified = lines.next_change().await;
    assert_eq!(modified["type"], "MODIFIED");
    assert_eq!(modified["object"]["metadata"]["name"], app.as_str());
    assert_eq!(modified["object"]["status"]["unavailableReplicas"], 1);
    let pod_obj = http
        .get(&format!("/api/v1/namespaces/{ns}/pods/{pod}"))
        .await
        .json();
    let main = &pod_obj["status"]["containerStatuses"][0];
    assert_eq!(main["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert_eq!(
        (main["ready"].as_bool(), main["restartCount"].as_u64()),
        (Some(false), Some(1))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn metadata_only_lists_and_watches() {
    let (cluster, server, http) = start(ApiServerConfig::default()).await;
    let accept = [(
        "Accept",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )];
    let list = http
        .send(
            Method::GET,
            "/apis/apps/v1/replicasets",
            Some(ADMIN),
            &accept,
            None,
        )
        .await
        .json();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), cluster.read().replicasets.len());
    assert_eq!(items[0]["kind"], "PartialObjectMetadata");
    assert!(items[0].get("spec").is_none() && items[0]["metadata"]["ownerReferences"].is_array());

    let dir = tempfile::tempdir().unwrap();
    let client = kube_client(&server, &dir).await;
    let namespaces: kube::Api<
        kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Namespace>,
    > = kube::Api::all(client.clone());
    let mut ns_watch = watcher(namespaces, watcher::Config::default()).boxed();
    let mut names = initial_list(&mut ns_watch).await;
    names.sort();
    let want: Vec<String> = cluster.read().namespaces.keys().cloned().collect();
    assert_eq!(names, want);
    cluster.update_namespace("default", |n| {
        n.labels.insert("team".into(), "renamed".into());
    });
    let event = tokio::time::timeout(PATIENCE, ns_watch.try_next())
        .await
        .expect("event in time")
        .expect("no error")
        .expect("open");
    match event {
        watcher::Event::Apply(ns) => {
            assert_eq!(ns.metadata.labels.unwrap()["team"], "renamed");
        }
        _ => panic!("expected an Apply"),
    }

    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> = kube::Api::all(client);
    let mut d_watch = watcher(deployments, watcher::Config::default()).boxed();
    assert_eq!(
        initial_list(&mut d_watch).await.len(),
        cluster.read().deployments.len()
    );
    server.shutdown().await;
}

/// Names of a `List` or `PartialObjectMetadataList`'s items, sorted.
fn item_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_crd_created_at_runtime_is_discovered_and_its_objects_listed_and_watched_as_metadata() {
    let (_cluster, server, http) = start(ApiServerConfig::default()).await;
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    assert!(
        !http.get("/apis").await.json()["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "example.com")
    );
    assert_eq!(
        http.get("/apis/example.com/v1/widgets").await.status,
        StatusCode::NOT_FOUND
    );
    // A misnamed CRD is refused, as kube-apiserver's validation does.
    let mut misnamed = custom_resource_definition("example.com", "v1", "widgets", "Widget", true);
    misnamed["metadata"]["name"] = json!("gadgets.example.com");
    let refused = http
        .send(Method::POST, crds, Some(ADMIN), &[], Some(misnamed))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);

    let crd = custom_resource_definition("example.com", "v1", "widgets", "Widget", true);
    let created = http
        .send(Method::POST, crds, Some(ADMIN), &[], Some(crd))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let established = created.json()["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{}", created.json());

    // Discovery: the group after the built-in ones, its version, the resource and its status.
    let groups = http.get("/apis").await.json();
    let group = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "example.com")
        .expect("the CRD's group in /apis")
        .clone();
    assert_eq!(group["preferredVersion"]["groupVersion"], "example.com/v1");
    let resources = http.get("/apis/example.com/v1").await.json();
    assert_eq!(resources["groupVersion"], "example.com/v1");
    let entries: Vec<(String, bool, String)> = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["namespaced"].as_bool().unwrap(),
                r["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("widgets".to_string(), true, "Widget".to_string()),
            ("widgets/status".to_string(), true, "Widget".to_string()),
        ]
    );
    assert_eq!(resources["resources"][0]["singularName"], "widget");

    // A metadata-only watch (as the gateway's) from an empty collection sees objects arrive,
    // their labels change, and go.
    let dir = tempfile::tempdir().unwrap();
    let client = kube_client(&server, &dir).await;
    let ar = kube::api::ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let api: kube::Api<kube::core::PartialObjectMeta<kube::api::DynamicObject>> =
        kube::Api::all_with(client, &ar);
    let mut watch = watcher(api, watcher::Config::default().page_size(500)).boxed();
    assert!(initial_list(&mut watch).await.is_empty());
    let widget = |name: &str, tier: &str| {
        json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": "ns-0", "labels": {"tier": tier}},
            "spec": {"size": 3},
        })
    };
    server.put_object(widget("w1", "gold"));
    server.put_object(widget("w2", "silver"));
    for want in ["w1", "w2"] {
        let event = tokio::time::timeout(PATIENCE, watch.try_next())
            .await
            .expect("event in time")
            .expect("no error")
            .expect("open");
        match event {
            watcher::Event::Apply(w) => {
                assert_eq!(w.metadata.name.as_deref(), Some(want));
                assert_eq!(w.types.as_ref().unwrap().kind, "PartialObjectMetadata");
            }
            _ => panic!("expected an Apply of {want}"),
        }
    }

    // Lists: whole objects, metadata only, by label, by field.
    let path = "/apis/example.com/v1/namespaces/ns-0/widgets";
    let list = http.get(path).await.json();
    assert_eq!(
        (list["kind"].as_str(), list["apiVersion"].as_str()),
        (Some("WidgetList"), Some("example.com/v1"))
    );
    assert_eq!(list["items"][0]["spec"]["size"], 3);
    let accept = [(
        "Accept",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )];
    let partial = http
        .send(Method::GET, path, Some(ADMIN), &accept, None)
        .await
        .json();
    assert_eq!(partial["kind"], "PartialObjectMetadataList");
    assert_eq!(partial["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(partial["items"][0]["kind"], "PartialObjectMetadata");
    assert!(partial["items"][0].get("spec").is_none());
    assert_eq!(partial["items"][0]["metadata"]["labels"]["tier"], "gold");
    let gold = http.get(&format!("{path}?labelSelector=tier%3Dgold")).await;
    assert_eq!(item_names(&gold.json()), ["w1"]);
    let named = http
        .get(&format!("{path}?fieldSelector=metadata.name%3Dw2"))
        .await;
    assert_eq!(item_names(&named.json()), ["w2"]);
    assert_eq!(
        http.get(&format!("{path}?labelSelector=%3D%3D"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    // A selector watch sees an object leave when its labels stop matching.
    let watch_path = format!("{path}?watch=true&labelSelector=tier%3Dgold");
    let mut gold_watch = Lines::new(
        http.open(Method::GET, &watch_path, Some(ADMIN), &[], None)
            .await,
    );
    assert_eq!(
        gold_watch.next_change().await["object"]["metadata"]["name"],
        "w1"
    );
    server.put_object(widget("w1", "bronze"));
    let left = gold_watch.next_change().await;
    assert_eq!(
        (
            left["type"].as_str(),
            left["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("w1"))
    );

    // Deleting the CRD deletes its objects and takes it out of discovery.
    let deleted = http
        .send(
            Method::DELETE,
            &format!("{crds}/widgets.example.com"),
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    let mut gone = Vec::new();
    while gone.len() < 2 {
        match tokio::time::timeout(PATIENCE, watch.try_next())
            .await
            .expect("event in time")
            .expect("no error")
            .expect("open")
        {
            watcher::Event::Delete(w) => gone.push(w.metadata.name.unwrap()),
            watcher::Event::Apply(_) => {}
            _ => panic!("expected deletions"),
        }
    }
    gone.sort();
    assert_eq!(gone, ["w1", "w2"]);
    assert_eq!(
        http.get("/apis/example.com/v1").await.status,
        StatusCode::NOT_FOUND
    );
    server.shutdown().await;
}

#[tokio::test]
async fn services_are_stored_listed_by_label_and_watched_as_metadata() {
    let (_cluster, server, http) = start(ApiServerConfig::default()).await;
    for (ns, name, app) in [
        ("ns-0", "web", "web"),
        ("ns-0", "db", "db"),
        ("ns-1", "web", "web"),
    ] {
        server.put_object(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
            "spec": {"ports": [{"port": 80}]},
        }));
    }
    let all = http.get("/api/v1/services").await.json();
    assert_eq!(all["kind"], "ServiceList");
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    let web = http
        .get("/api/v1/namespaces/ns-0/services?labelSelector=app%20in%20(web)")
        .await
        .json();
    assert_eq!(item_names(&web), ["web"]);
    let one = http
        .get("/api/v1/namespaces/ns-1/services/web")
        .await
        .json();
    assert_eq!(one["spec"]["ports"][0]["port"], 80);

    let dir = tempfile::tempdir().unwrap();
    let client = kube_client(&server, &dir).await;
    let api: kube::Api<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Service>> =
        kube::Api::all(client);
    let mut watch = watcher(api, watcher::Config::default()).boxed();
    let mut names = initial_list(&mut watch).await;
    names.sort();
    assert_eq!(names, ["db", "web", "web"]);
    assert!(server.delete_object("v1", "Service", "ns-0", "db"));
    match tokio::time::timeout(PATIENCE, watch.try_next())
        .await
        .expect("event in time")
        .expect("no error")
        .expect("open")
    {
        watcher::Event::Delete(s) => assert_eq!(s.metadata.name.as_deref(), Some("db")),
        _ => panic!("expected the deletion"),
    }
    server.shutdown().await;
}
