//! Authentication and authorization of the gateway behind the fake kube-apiserver: the
//! aggregator's front-proxy path, client certificates, bearer tokens, the decision cache,
//! health paths, serving-certificate rotation, and failing closed.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use metrics_gateway::demo::Rig;
use metrics_gateway_testkit::apiserver::{ApiServerConfig, FakeApiServer, UserInfo};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock};
use metrics_gateway_testkit::pki::{AcceptAnyServerCert, CertPair, TestCa};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;

use common::{capture_logs, logs, rig_with};

const NODES: &str = "/apis/metrics.k8s.io/v1beta1/nodes";
const PODS: &str = "/apis/metrics.k8s.io/v1beta1/pods";

/// Users the tests' fake API server knows, by token.
const USERS: [(&str, &str); 3] = [
    ("alice-secret-token", "alice"),
    ("bob-secret-token", "bob"),
    ("carol-secret-token", "carol"),
];

/// Users the fake API server's authorizer denies (changeable while a test runs).
type Denied = Arc<Mutex<HashSet<String>>>;

fn apiserver_config(denied: &Denied) -> ApiServerConfig {
    let denied = denied.clone();
    ApiServerConfig {
        tokens: USERS
            .iter()
            .map(|(token, user)| {
                (
                    token.to_string(),
                    UserInfo {
                        username: user.to_string(),
                        groups: vec!["system:authenticated".into()],
                        uid: format!("uid-{user}"),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
        authorizer: Arc::new(move |spec| !denied.lock().unwrap().contains(&spec.user)),
        ..ApiServerConfig::default()
    }
}

async fn auth_rig(denied: &Denied, extra_config: &str) -> (Rig, SimClock) {
    let config = apiserver_config(denied);
    let extra = extra_config.to_string();
    rig_with(small(), move |o| {
        o.apiserver = config;
        o.extra_config = extra;
    })
    .await
}

fn small() -> ClusterSpec {
    ClusterSpec {
        nodes: 2,
        pods_per_node: 2,
        ..ClusterSpec::default()
    }
}

/// One direct request to the gateway: its credentials and extra headers.
#[derive(Default)]
struct Call<'a> {
    cert: Option<CertPair>,
    token: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
    /// Trust only this CA for the gateway's certificate (default: accept any).
    roots: Option<rustls::RootCertStore>,
}

struct Answer {
    status: StatusCode,
    body: Bytes,
    /// The serving certificate the gateway presented.
    served: CertificateDer<'static>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// GETs `path` from `addr` on a fresh TLS connection.
async fn get(addr: SocketAddr, path: &str, call: Call<'_>) -> anyhow::Result<Answer> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match call.roots {
        Some(roots) => builder.with_root_certificates(roots),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider))),
    };
    let config = match &call.cert {
        Some(c) => builder.with_client_auth_cert(c.cert_der(), c.key_der())?,
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1")?.to_owned(), tcp)
        .await?;
    let served = tls.get_ref().1.peer_certificates().expect("server cert")[0].clone();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", addr.to_string());
    if let Some(token) = call.token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    for (k, v) in &call.headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new())?)
        .await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        body,
        served,
    })
}

async fn must_get(addr: SocketAddr, path: &str, call: Call<'_>) -> Answer {
    get(addr, path, call)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e:#}"))
}

fn assert_status(answer: &Answer, code: u16, reason: &str) -> Value {
    assert_eq!(
        answer.status.as_u16(),
        code,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let status = answer.json();
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["code"], code, "{status}");
    assert_eq!(status["reason"], reason, "{status}");
    status
}

/// Through the fake aggregator with a user's token.
async fn via_aggregator(apiserver: &FakeApiServer, token: &str, path: &str) -> StatusCode {
    let target = metrics_gateway_testkit::loadgen::Target::from_url(
        &format!("{}{path}", apiserver.url()),
        Some(
            metrics_gateway_testkit::loadgen::client_tls(
                metrics_gateway_testkit::loadgen::TlsTrust::AcceptAny,
            )
            .unwrap(),
        ),
    )
    .await
    .unwrap()
    .with_bearer_token(token);
    metrics_gateway_testkit::loadgen::fetch(&target)
        .await
        .unwrap()
        .0
}

fn assert_no_secrets(logs: &str) {
    for (token, _) in USERS {
        assert!(!logs.contains(token), "a token was logged");
    }
    assert!(!logs.contains("forged-token-"), "a token was logged");
    assert!(
        !logs.contains("BEGIN CERTIFICATE"),
        "a certificate was logged"
    );
    assert!(!logs.contains("PRIVATE KEY"), "a key was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregator_path_is_allowed_exactly_when_sar_allows() {
    let denied: Denied = Arc::new(Mutex::new(HashSet::from(["bob".to_string()])));
    let (rig, clock) = auth_rig(&denied, "").await;
    let addr = rig.gateway.local_addr;
    let front_proxy = rig
        .apiserver
        .issue_front_proxy_cert("front-proxy-client")
        .unwrap();

    // Through the aggregator: the gateway asks the API server about alice and serves her.
    let before = rig.apiserver.subject_access_reviews();
    assert_eq!(
        via_aggregator(&rig.apiserver, "alice-secret-token", NODES).await,
        StatusCode::OK
    );
    assert_eq!(rig.apiserver.subject_access_reviews(), before + 1);

    // As the aggregator, directly: the same front-proxy certificate and headers.
    let as_aggregator = |user: &'static str| Call {
        cert: Some(front_proxy.clone()),
        headers: vec![
            ("X-Remote-User", user),
            ("X-Remote-Group", "system:authenticated"),
        ],
        ..Call::default()
    };
    let ok = must_get(addr, NODES, as_aggregator("alice")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json()["kind"], "NodeMetricsList");
    let no = must_get(addr, NODES, as_aggregator("bob")).await;
    let status = assert_status(&no, 403, "Forbidden");
    assert_eq!(
        status["message"],
        "nodes.metrics.k8s.io is forbidden: User \"bob\" cannot list resource \"nodes\" in API group \"metrics.k8s.io\" at the cluster scope"
    );
    assert_eq!(status["details"]["group"], "metrics.k8s.io");

    // The decision follows the authorizer once cached answers expire.
    denied.lock().unwrap().insert("alice".into());
    denied.lock().unwrap().remove("bob");
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        must_get(addr, NODES, as_aggregator("alice")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        must_get(addr, NODES, as_aggregator("bob")).await.status,
        StatusCode::OK
    );
    assert!(logs().contains("request denied"));
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_get_a_status_and_leave_no_secret_in_logs() {
    capture_logs();
    let denied: Denied = Arc::new(Mutex::new(HashSet::from(["carol".to_string()])));
    let (rig, _clock) = auth_rig(&denied, "").await;
    let addr = rig.gateway.local_addr;
    let api = &rig.apiserver;
    let rogue = TestCa::new("rogue-ca").unwrap();
    let spoof = vec![
        ("X-Remote-User", "system:admin"),
        ("X-Remote-Group", "system:masters"),
    ];
    let cases: Vec<(&str, Call)> = vec![
        ("no credentials", Call::default()),
        (
            "certificate from another CA",
            Call {
                cert: Some(rogue.client_cert("admin", &["system:masters"]).unwrap()),
                ..Call::default()
            },
        ),
        (
            "front-proxy certificate with a CN not allowed",
            Call {
                cert: Some(api.issue_front_proxy_cert("not-the-aggregator").unwrap()),
                headers: spoof.clone(),
                ..Call::default()
            },
        ),
        (
            "expired client certificate",
            Call {
                cert: Some(api.issue_expired_client_cert("alice").unwrap()),
                ..Call::default()
            },
        ),
        (
            "expired front-proxy certificate",
            Call {
                cert: Some(
                    api.issue_expired_front_proxy_cert("front-proxy-client")
                        .unwrap(),
                ),
                headers: spoof.clone(),
                ..Call::default()
            },
        ),
        (
            "spoofed X-Remote-* without a certificate",
            Call {
                headers: spoof.clone(),
                ..Call::default()
            },
        ),
        (
            "forged bearer token",
            Call {
                token: Some("forged-token-0123456789"),
                ..Call::default()
            },
        ),
    ];
    for (what, call) in cases {
        let answer = must_get(addr, NODES, call).await;
        let status = assert_status(&answer, 401, "Unauthorized");
        assert_eq!(status["message"], "Unauthorized", "{what}");
    }

    // A valid client certificate with spoofed headers: the certificate's user is the one
    // authorized (carol, denied), never the header's.
    let carol = api.issue_client_cert("carol", &["devs"]).unwrap();
    let answer = must_get(
        addr,
        NODES,
        Call {
            cert: Some(carol.clone()),
            headers: spoof.clone(),
            ..Call::default()
        },
    )
    .await;
    let status = assert_status(&answer, 403, "Forbidden");
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("User \"carol\""), "{message}");
    // And the same with a token: alice's token, bob's headers.
    let answer = must_get(
        addr,
        PODS,
        Call {
            token: Some("alice-secret-token"),
            headers: vec![("X-Remote-User", "carol")],
            ..Call::default()
        },
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "alice is served, not carol");

    let logs = logs();
    assert!(
        logs.contains("request not authenticated"),
        "denials are logged"
    );
    assert!(
        logs.contains("unknown issuer") || logs.contains("UnknownIssuer"),
        "the reason is logged"
    );
    assert!(logs.contains("not in requestheader-allowed-names"));
    assert!(logs.contains("expired") || logs.contains("Expired"));
    assert_no_secrets(&logs);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_reviewed_and_fail_closed_when_the_reviewer_is_down() {
    capture_logs();
    let denied: Denied = Arc::default();
    let (rig, _clock) = auth_rig(&denied, "").await;
    let addr = rig.gateway.local_addr;
    let with = |token| Call {
        token: Some(token),
        ..Call::default()
    };
    let reviews = rig.apiserver.token_reviews();
    assert_eq!(
        must_get(addr, NODES, with("alice-secret-token"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        must_get(addr, NODES, with("alice-secret-token"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        rig.apiserver.token_reviews(),
        reviews + 1,
        "the review is cached"
    );
    let invalid = must_get(addr, NODES, with("forged-token-1")).await;
    assert_status(&invalid, 401, "Unauthorized");

    // The API server goes away: a token not reviewed yet is refused with a clear reason; a
    // cached user with a cached decision is still served; a new decision fails closed.
    let Rig {
        apiserver,
        gateway,
        kubelets,
        ..
    } = rig;
    apiserver.shutdown().await;
    let down = must_get(addr, NODES, with("bob-secret-token")).await;
    let status = assert_status(&down, 401, "Unauthorized");
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("TokenReview failed"), "{message}");
    assert_eq!(
        must_get(addr, NODES, with("alice-secret-token"))
            .await
            .status,
        StatusCode::OK
    );
    let unavailable = must_get(addr, PODS, with("alice-secret-token")).await;
    let status = assert_status(&unavailable, 503, "ServiceUnavailable");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("SubjectAccessReview failed"),
        "{status}"
    );
    let logs = logs();
    assert!(logs.contains("authorization unavailable: request refused"));
    assert_no_secrets(&logs);
    gateway.shutdown().await;
    kubelets.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_cached_with_separate_ttls() {
    let denied: Denied = Arc::new(Mutex::new(HashSet::from(["bob".to_string()])));
    let (rig, clock) = auth_rig(
        &denied,
        "[authorization]\nallowed_ttl_secs = 30\ndenied_ttl_secs = 5\n",
    )
    .await;
    let addr = rig.gateway.local_addr;
    let sars = || rig.apiserver.subject_access_reviews();
    let call = |token| Call {
        token: Some(token),
        ..Call::default()
    };
    let alice = || async {
        must_get(addr, NODES, call("alice-secret-token"))
            .await
            .status
    };
    let bob = || async { must_get(addr, NODES, call("bob-secret-token")).await.status };

    let start = sars();
    for _ in 0..3 {
        assert_eq!(alice().await, StatusCode::OK);
        assert_eq!(bob().await, StatusCode::FORBIDDEN);
    }
    assert_eq!(sars(), start + 2, "one review per user within the TTLs");

    // Past the denied TTL, not the allowed one: only bob is reviewed again.
    clock.advance(Duration::from_secs(6));
    assert_eq!(alice().await, StatusCode::OK);
    assert_eq!(bob().await, StatusCode::FORBIDDEN);
    assert_eq!(sars(), start + 3);
    // Past the allowed TTL: alice is reviewed again too.
    clock.advance(Duration::from_secs(25));
    assert_eq!(alice().await, StatusCode::OK);
    assert_eq!(bob().await, StatusCode::FORBIDDEN);
    assert_eq!(
        sars(),
        start + 5,
        "alice again, and bob's second denial expired too"
    );
    let metrics = common::self_metrics(&rig);
    assert!(
        metrics.contains(
            "metrics_gateway_auth_cache_lookups_total{cache=\"authorization\",result=\"hit\"}"
        ),
        "{metrics}"
    );
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_open_and_self_metrics_need_authorization() {
    let denied: Denied = Arc::new(Mutex::new(HashSet::from(["bob".to_string()])));
    let (rig, _clock) = auth_rig(&denied, "").await;
    rig.gateway.collector.run_cycle().await;
    let addr = rig.gateway.local_addr;
    for path in ["/healthz", "/livez", "/readyz"] {
        let answer = must_get(addr, path, Call::default()).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {:?}", answer.body);
        assert_eq!(&answer.body[..], b"ok");
    }
    let anonymous = must_get(addr, "/metrics", Call::default()).await;
    assert_status(&anonymous, 401, "Unauthorized");
    let bob = must_get(
        addr,
        "/metrics",
        Call {
            token: Some("bob-secret-token"),
            ..Call::default()
        },
    )
    .await;
    let status = assert_status(&bob, 403, "Forbidden");
    assert_eq!(
        status["message"],
        "forbidden: User \"bob\" cannot get path \"/metrics\""
    );
    let alice = must_get(
        addr,
        "/metrics",
        Call {
            token: Some("alice-secret-token"),
            ..Call::default()
        },
    )
    .await;
    assert_eq!(alice.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&alice.body);
    assert!(
        text.contains("metrics_gateway_authz_decisions_total{decision=\"denied\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("metrics_gateway_authn_requests_total{method=\"token\",result=\"success\"}"),
        "{text}"
    );
    rig.shutdown().await;
}

/// Writes a certificate pair the way the kubelet projects a Secret volume: files in a
/// timestamped directory, `..data` pointing at it, and `tls.crt`/`tls.key` pointing into
/// `..data`; a new version is swapped in with one atomic rename of `..data`.
fn project_secret(dir: &Path, version: &str, pair: &CertPair) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&versioned).unwrap();
    std::fs::write(versioned.join("tls.crt"), &pair.cert_pem).unwrap();
    std::fs::write(versioned.join("tls.key"), &pair.key_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{file}"), &link).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_certificate_rotation_needs_no_restart_and_fails_no_request() {
    let ca = TestCa::new("gateway-serving-ca").unwrap();
    let names = ["127.0.0.1".to_string()];
    let first = ca.server_cert("gateway-v1", &names).unwrap();
    let second = ca.server_cert("gateway-v2", &names).unwrap();
    let secret = tempfile::tempdir().unwrap();
    project_secret(secret.path(), "2026_01_01", &first);
    let denied: Denied = Arc::default();
    let config = apiserver_config(&denied);
    let files = (secret.path().join("tls.crt"), secret.path().join("tls.key"));
    let (rig, _clock) = rig_with(small(), move |o| {
        o.apiserver = config;
        o.serving_cert = Some(files);
    })
    .await;
    let addr = rig.gateway.local_addr;
    let call = || Call {
        token: Some("alice-secret-token"),
        roots: Some(ca.root_store()),
        ..Call::default()
    };
    let v1 = first.cert_der()[0].clone();
    let v2 = second.cert_der()[0].clone();
    assert_eq!(must_get(addr, NODES, call()).await.served, v1);

    project_secret(secret.path(), "2026_02_01", &second);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut requests = 0;
    loop {
        let answer = must_get(addr, NODES, call()).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "request {requests} failed during rotation"
        );
        requests += 1;
        if answer.served == v2 {
            break;
        }
        assert_eq!(answer.served, v1);
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 30 s"
        );
        tokio::task::yield_now().await;
    }
    // Every later connection gets the new certificate.
    for _ in 0..5 {
        assert_eq!(must_get(addr, NODES, call()).await.served, v2);
    }
    assert!(
        common::self_metrics(&rig)
            .contains("metrics_gateway_tls_cert_reloads_total{outcome=\"success\"} 1")
    );
    rig.shutdown().await;
}
