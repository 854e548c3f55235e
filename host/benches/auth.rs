//! Cost of authentication and authorization (`cargo bench -p metrics-gateway --bench auth`):
//!
//! 1. the latency `Auth::check` adds to a request whose token review and access decision are
//!    cached, per call (p50/p99/max over many calls), for the aggregator's front-proxy identity
//!    and for a bearer token;
//! 2. end to end against the demo rig (fake kube-apiserver, simulated kubelets), with auth on
//!    and with `authentication.insecure_disable = true`: TLS handshakes per second (one request
//!    per connection, presenting the front-proxy certificate) and requests per second on
//!    keep-alive connections.
//!
//! Load generator and gateway share the machine: the end-to-end figures compare on vs off, they
//! are not the gateway's capacity.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use metrics_gateway::api::auth::client_cert::PeerCert;
use metrics_gateway::api::auth::{Auth, ConnectionPeer};
use metrics_gateway::clock::Clock;
use metrics_gateway::config::{self, KubernetesConfig};
use metrics_gateway::demo::{Rig, RigOptions};
use metrics_gateway::sources::cluster::kube_config;
use metrics_gateway::telemetry::Telemetry;
use metrics_gateway_testkit::apiserver::{ApiServerConfig, FakeApiServer, UserInfo};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster};
use metrics_gateway_testkit::pki::{AcceptAnyServerCert, CertPair, install_crypto_provider};
use rustls_pki_types::ServerName;

const PATH: &str = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods";
const TOKEN: &str = "bench-token";
const CALLS: usize = 200_000;
/// Calls when run as a test (`cargo test --benches`: no `--bench` argument), just to exercise it.
const SMOKE_CALLS: usize = 1_000;
const LOAD_SECS: u64 = 5;
const CONNECTIONS: usize = 4;

fn front_proxy_request() -> Request<Body> {
    Request::get(PATH)
        .header(
            "x-remote-user",
            "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        )
        .header("x-remote-uid", "5e3f0a2c-1b7d-4c61-9a7e-2f4b8d9c0e11")
        .header("x-remote-group", "system:serviceaccounts")
        .header("x-remote-group", "system:serviceaccounts:kube-system")
        .header("x-remote-group", "system:authenticated")
        .header(
            "x-remote-extra-authentication.kubernetes.io%2Fcredential-id",
            "JTI=0f3c2b1a-9d8e-4f7a-b6c5-d4e3f2a1b0c9",
        )
        .body(Body::empty())
        .expect("valid request")
}

fn token_request() -> Request<Body> {
    Request::get(PATH)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("valid request")
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<34} n={:<7} p50={:>6.2} µs  p99={:>6.2} µs  p99.9={:>6.2} µs  max={:>8.2} µs",
        samples.len(),
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(0.999).as_secs_f64() * 1e6,
        samples[samples.len() - 1].as_secs_f64() * 1e6,
    );
}

/// Per-call latency of `Auth::check` on cached requests.
async fn cached_check(calls: usize) -> anyhow::Result<()> {
    let cluster = SimCluster::generate(&ClusterSpec::default(), SimClock::Real);
    let user = UserInfo {
        username: "bench".into(),
        groups: vec!["system:authenticated".into()],
        uid: "bench".into(),
    };
    let apiserver = FakeApiServer::start(
        cluster,
        ApiServerConfig {
            tokens: [(TOKEN.to_string(), user)].into(),
            ..ApiServerConfig::default()
        },
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    apiserver.write_kubeconfig(&kubeconfig, TOKEN)?;
    let cfg = config::parse(
        &dir.path().join("gateway.toml"),
        &format!("[server]\nself_signed = true\n[kubernetes]\nkubeconfig = {kubeconfig:?}\n"),
    )?;
    let client = kube::Client::try_from(
        kube_config(&KubernetesConfig {
            kubeconfig: Some(kubeconfig),
            context: None,
            ..KubernetesConfig::default()
        })
        .await?,
    )?;
    let auth = Auth::new(&cfg, &client, &Clock::system(), &Telemetry::new()).await?;
    let front_proxy = ConnectionPeer(Arc::new(PeerCert {
        front_proxy_cn: Some("front-proxy-client".into()),
        ..PeerCert::default()
    }));
    for (name, make, peer) in [
        (
            "cached check, front-proxy identity",
            front_proxy_request as fn() -> Request<Body>,
            Some(front_proxy),
        ),
        (
            "cached check, bearer token",
            token_request as fn() -> Request<Body>,
            None,
        ),
    ] {
        let prepare = || {
            let mut req = make();
            if let Some(p) = &peer {
                req.extensions_mut().insert(p.clone());
            }
            req
        };
        // The first call reviews and fills the caches.
        auth.check(&mut prepare())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            let mut req = prepare();
            let t = Instant::now();
            let outcome = auth.check(&mut req).await;
            samples.push(t.elapsed());
            anyhow::ensure!(outcome.is_ok(), "a cached request was refused");
        }
        report(name, samples);
    }
    apiserver.shutdown().await;
    Ok(())
}

fn tls_config(cert: &CertPair) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
        .with_client_auth_cert(cert.cert_der(), cert.key_der())?;
    Ok(Arc::new(config))
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> anyhow::Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(ServerName::try_from("127.0.0.1")?.to_owned(), tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn one_request(sender: &mut Sender, addr: SocketAddr) -> anyhow::Result<()> {
    let req = Request::get(PATH)
        .header("host", addr.to_string())
        .header(
            "x-remote-user",
            "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        )
        .header("x-remote-group", "system:serviceaccounts")
        .header("x-remote-group", "system:authenticated")
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    resp.into_body().collect().await?;
    anyhow::ensure!(status.is_success(), "answered {status}");
    Ok(())
}

/// Runs `CONNECTIONS` closed loops for `LOAD_SECS`; `fresh` opens a connection per request.
async fn load(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    fresh: bool,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(LOAD_SECS);
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (tls, done) = (tls.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr, &tls).await?;
            while Instant::now() < until {
                if fresh {
                    sender = connect(addr, &tls).await?;
                }
                one_request(&mut sender, addr).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / LOAD_SECS as f64)
}

async fn end_to_end() -> anyhow::Result<()> {
    for (name, extra) in [
        ("auth on ", ""),
        ("auth off", "[authentication]\ninsecure_disable = true\n"),
    ] {
        let rig = Rig::start(RigOptions {
            spec: ClusterSpec {
                nodes: 10,
                pods_per_node: 10,
                kubelet_port: 24_250,
                ..ClusterSpec::default()
            },
            extra_config: extra.to_string(),
            ..RigOptions::default()
        })
        .await?;
        rig.gateway.collector.run_cycle().await;
        let addr = rig.gateway.local_addr;
        let tls = tls_config(&rig.apiserver.issue_front_proxy_cert("front-proxy-client")?)?;
        let handshakes = load(addr, tls.clone(), true).await?;
        let requests = load(addr, tls, false).await?;
        println!(
            "{name}: {handshakes:>8.0} handshakes/s (one request each)   {requests:>8.0} requests/s (keep-alive), {CONNECTIONS} connections"
        );
        rig.shutdown().await;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) only a short smoke run
    // of the cached check.
    let bench = std::env::args().any(|a| a == "--bench");
    install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        cached_check(if bench { CALLS } else { SMOKE_CALLS }).await?;
        if bench {
            end_to_end().await?;
        }
        Ok(())
    })
}
