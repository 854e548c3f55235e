//! Live config reload of a gateway serving a simulated cluster: under HPA-style load, through
//! `POST /-/reload` (authorized by the fake API server), from file changes in the layouts
//! Kubernetes ConfigMap volumes and editors produce, with plugin state kept, and with a
//! `[[prometheus]]` backend repointed live between two real Prometheus servers.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use metrics_gateway::demo::{Rig, RigPlugin, USER_TOKEN};
use metrics_gateway::reload::Trigger;
use metrics_gateway::store::custom::{MetricState, ObjectResource};
use metrics_gateway::telemetry::ReloadLabels;
use metrics_gateway_testkit::apiserver::{ApiServerConfig, UserInfo};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock};
use metrics_gateway_testkit::loadgen::{Session, Target, TlsTrust, client_tls};
use metrics_gateway_testkit::pki::AcceptAnyServerCert;
use metrics_gateway_testkit::prometheus::{END_MS, Prometheus, SPAN_SECS, STEP_SECS};
use rustls_pki_types::ServerName;
use serde_json::Value;

use common::{plugin_wasm, quantity, rig_with};

const DISCOVERY: &str = "/apis/custom.metrics.k8s.io/v1beta1";
const RESTARTS: &str =
    "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/container_restarts_per_minute";
const VIEWER_TOKEN: &str = "viewer-token";

fn small() -> ClusterSpec {
    ClusterSpec {
        nodes: 2,
        pods_per_node: 3,
        ..ClusterSpec::default()
    }
}

/// The rate plugin publishing pods/`metric` from the containers' CPU counters.
fn rate(metric: &str) -> RigPlugin {
    RigPlugin::new(
        "cpu",
        plugin_wasm("rate"),
        &format!(
            "[[rules]]\nsource = \"kubelet-resource\"\nseries = \"container_cpu_usage_seconds_total\"\n\
             metric = \"{metric}\"\ntarget = \"pods\"\nkeep_labels = [\"container\"]\n"
        ),
    )
}

fn restarts() -> RigPlugin {
    RigPlugin::new("restarts", plugin_wasm("restarts"), "")
}

/// A rig running `restarts` and `rate` publishing `cpu_a`, whose API server lets the viewer
/// read metrics but not reload.
async fn reload_rig() -> (Rig, SimClock) {
    let mut apiserver = ApiServerConfig::default();
    apiserver.tokens.insert(
        VIEWER_TOKEN.into(),
        UserInfo {
            username: "viewer".into(),
            groups: vec!["system:authenticated".into()],
            uid: "viewer".into(),
        },
    );
    apiserver.authorizer = Arc::new(|spec| {
        let reload = spec
            .non_resource_attributes
            .as_ref()
            .is_some_and(|n| n.path == "/-/reload" && n.verb == "post");
        spec.user != "viewer" || !reload
    });
    rig_with(small(), |o| {
        o.plugins = vec![restarts(), rate("cpu_a")];
        o.apiserver = apiserver;
    })
    .await
}

/// Replaces the config file atomically (write a temporary file, rename it over).
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config_text(rig: &Rig) -> String {
    std::fs::read_to_string(rig.config_path()).unwrap()
}

fn reloads(rig: &Rig, trigger: &'static str, outcome: &'static str) -> u64 {
    rig.gateway
        .telemetry
        .config_reloads
        .get_or_create(&ReloadLabels { trigger, outcome })
        .get()
}

async fn cycle(rig: &Rig, clock: &SimClock) {
    clock.advance(Duration::from_secs(15));
    let report = rig.gateway.collector.run_cycle().await;
    assert!(report.failed.is_empty(), "{report:?}");
}

/// The custom metrics served now (as `resource/name`).
fn served(rig: &Rig) -> Vec<String> {
    rig.gateway
        .store
        .load()
        .plugin_metrics
        .custom
        .keys()
        .map(|(r, n)| format!("{r}/{n}"))
        .collect()
}

/// Runs cycles until `done` holds for what is served, or panics after 30 s.
async fn cycle_until(rig: &Rig, clock: &SimClock, what: &str, done: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        cycle(rig, clock).await;
        let now = served(rig);
        if done(&now) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still serving {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A session to the gateway itself with the demo user's token.
async fn session(rig: &Rig, token: &str) -> Session {
    let target = Target::from_url(
        &format!("https://{}/", rig.gateway.local_addr),
        Some(client_tls(TlsTrust::AcceptAny).unwrap()),
    )
    .await
    .unwrap()
    .with_bearer_token(token);
    Session::new(target)
}

/// `POST path` to the gateway on a fresh TLS connection.
async fn post(rig: &Rig, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
        .with_no_client_auth();
    let addr = rig.gateway.local_addr;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap().to_owned(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::post(path).header("host", addr.to_string());
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, json)
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    config_a: AtomicU64,
    config_b: AtomicU64,
}

/// Loops discovery and value requests until `stop`; panics on any failure or any discovery
/// answer that is not wholly config A's or wholly config B's.
async fn client(mut session: Session, stop: Arc<AtomicBool>, seen: Arc<Seen>) {
    while !stop.load(Ordering::Acquire) {
        let (status, body) = session.get(DISCOVERY).await.expect("discovery answered");
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let list: Value = serde_json::from_slice(&body).unwrap();
        let mut names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        names.sort();
        let a = names.contains(&"pods/cpu_a");
        let b = names.contains(&"pods/cpu_b");
        assert!(a != b, "discovery mixes or lacks both configs: {names:?}");
        assert!(
            names.contains(&"pods/container_restarts_per_minute"),
            "{names:?}"
        );
        assert_eq!(
            names.len(),
            7,
            "built-ins, restarts and one cpu metric: {names:?}"
        );
        if a { &seen.config_a } else { &seen.config_b }.fetch_add(1, Ordering::Relaxed);
        let (status, body) = session.get(RESTARTS).await.expect("values answered");
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        seen.requests.fetch_add(2, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_reloads_under_load_serve_one_config_or_the_other() {
    let (rig, clock) = reload_rig().await;
    common::assert_plugins_loaded(&rig);
    cycle(&rig, &clock).await;
    let config_a = config_text(&rig);
    let config_b = config_a.replace("cpu_a", "cpu_b");
    assert_ne!(config_a, config_b);
    let handle = rig.gateway.reload.clone().expect("started from a file");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let mut clients = Vec::new();
    for _ in 0..4 {
        let session = session(&rig, USER_TOKEN).await;
        clients.push(tokio::spawn(client(session, stop.clone(), seen.clone())));
    }
    let started = Instant::now();
    for i in 0..100 {
        let to_b = i % 2 == 0;
        replace(&rig.config_path(), if to_b { &config_b } else { &config_a });
        let report = handle.reload(Trigger::Http).await;
        assert!(report.succeeded(), "reload {i}: {report:?}");
        cycle(&rig, &clock).await;
        let cpu = if to_b { "pods/cpu_b" } else { "pods/cpu_a" };
        assert!(
            served(&rig).iter().any(|m| m == cpu),
            "reload {i}: {:?}",
            served(&rig)
        );
    }
    stop.store(true, Ordering::Release);
    for c in clients {
        c.await.expect("no client saw a failure or a mixed answer");
    }
    let elapsed = started.elapsed();
    let (requests, a, b) = (
        seen.requests.load(Ordering::Relaxed),
        seen.config_a.load(Ordering::Relaxed),
        seen.config_b.load(Ordering::Relaxed),
    );
    println!(
        "{requests} requests in {elapsed:?} ({:.0}/s) during 100 reloads; {a} answers from A, {b} from B",
        requests as f64 / elapsed.as_secs_f64()
    );
    assert!(a > 0 && b > 0, "both configs served: A {a}, B {b}");
    assert!(
        requests >= 400,
        "{requests} requests overlapped the reloads"
    );
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_endpoint_is_authorized_and_reports_errors_with_location() {
    let (rig, clock) = reload_rig().await;
    cycle(&rig, &clock).await;
    let (status, body) = post(&rig, "/-/reload", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = post(&rig, "/-/reload", Some(VIEWER_TOKEN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot post path \"/-/reload\""),
        "{body}"
    );
    // The viewer may still read.
    let mut viewer = session(&rig, VIEWER_TOKEN).await;
    assert_eq!(viewer.get(DISCOVERY).await.unwrap().0, StatusCode::OK);

    let good = config_text(&rig);
    let bad = good.replace("keep_labels", "keep_labelz");
    replace(&rig.config_path(), &bad);
    let (status, body) = post(&rig, "/-/reload", Some(USER_TOKEN)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["outcome"], "error");
    let error = body["error"].as_str().unwrap();
    let line = bad
        .lines()
        .position(|l| l.starts_with("name = \"cpu\""))
        .unwrap()
        + 1;
    let at = format!("{}:{line}:8: plugin cpu: ", rig.config_path().display());
    assert!(error.starts_with(&at), "{error} (want {at})");
    assert!(error.contains("configure returned an error"), "{error}");
    let metrics = rig.gateway.telemetry.encode();
    assert!(
        metrics.contains("metrics_gateway_config_last_reload_successful 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("metrics_gateway_config_plugin_load_errors_total{plugin=\"cpu\"} 1"),
        "{metrics}"
    );
    assert!(common::logs().contains("config reload failed; the running config keeps serving"));
    cycle(&rig, &clock).await;
    assert!(
        served(&rig).contains(&"pods/cpu_a".to_string()),
        "{:?}",
        served(&rig)
    );

    replace(&rig.config_path(), &good.replace("cpu_a", "cpu_c"));
    let (status, body) = post(&rig, "/-/reload", Some(USER_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "success");
    assert_eq!(body["trigger"], "http");
    assert_eq!(body["plugins"]["changed"], serde_json::json!(["cpu"]));
    assert_eq!(
        body["plugins"]["unchanged"],
        serde_json::json!(["restarts"])
    );
    cycle(&rig, &clock).await;
    let now = served(&rig);
    assert!(
        now.contains(&"pods/cpu_c".to_string()) && !now.contains(&"pods/cpu_a".to_string()),
        "{now:?}"
    );
    let metrics = rig.gateway.telemetry.encode();
    assert!(
        metrics.contains("metrics_gateway_config_last_reload_successful 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("metrics_gateway_config_reload_duration_seconds_count"),
        "{metrics}"
    );
    rig.shutdown().await;
}

/// The values of pods/`metric` in the current snapshot (0 when absent or failed).
fn values(rig: &Rig, metric: &str) -> usize {
    let snapshot = rig.gateway.store.load();
    match snapshot
        .plugin_metrics
        .custom
        .get(&(ObjectResource::pods(), metric.into()))
        .map(|m| &m.state)
    {
        Some(MetricState::Values(v)) => v.len(),
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_plugin_keeps_its_state_and_changed_one_starts_fresh() {
    let (rig, clock) = reload_rig().await;
    let handle = rig.gateway.reload.clone().unwrap();
    cycle(&rig, &clock).await;
    assert_eq!(values(&rig, "cpu_a"), 0, "a rate needs two samples");
    cycle(&rig, &clock).await;
    assert!(values(&rig, "cpu_a") > 0);
    // Add a plugin: `cpu` is unchanged and has a rate on the very next cycle.
    let text = config_text(&rig);
    let pending = format!(
        "\n[[plugins]]\nname = \"pending\"\nfile = {:?}\n[plugins.config]\ncluster_metric = \"pending_pods_cluster\"\n",
        plugin_wasm("pending-pods")
    );
    replace(&rig.config_path(), &(text.clone() + &pending));
    let report = handle.reload(Trigger::Http).await;
    assert_eq!(report.plugins.added, ["pending"], "{report:?}");
    assert_eq!(report.plugins.unchanged, ["restarts", "cpu"]);
    cycle(&rig, &clock).await;
    assert!(values(&rig, "cpu_a") > 0, "state lost across the reload");
    assert!(
        rig.gateway
            .store
            .load()
            .plugin_metrics
            .external
            .contains_key("pending_pods_cluster")
    );
    // Change `cpu`: a fresh instance has no previous sample, so no rate on the next cycle.
    replace(&rig.config_path(), &text.replace("cpu_a", "cpu_fresh"));
    let report = handle.reload(Trigger::Http).await;
    assert_eq!(report.plugins.changed, ["cpu"], "{report:?}");
    assert_eq!(report.plugins.removed, ["pending"], "{report:?}");
    cycle(&rig, &clock).await;
    assert_eq!(values(&rig, "cpu_fresh"), 0);
    assert!(
        !rig.gateway
            .store
            .load()
            .plugin_metrics
            .external
            .contains_key("pending_pods_cluster")
    );
    cycle(&rig, &clock).await;
    assert!(values(&rig, "cpu_fresh") > 0);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_symlink_swap_is_detected() {
    let (rig, clock) = reload_rig().await;
    let dir = rig.dir().to_path_buf();
    let path = rig.config_path();
    let text = config_text(&rig);
    // The kubelet's layout: gateway.toml -> ..data/gateway.toml, ..data -> ..<timestamp>.
    std::fs::create_dir(dir.join("..2026_12_01_00_00_00.1")).unwrap();
    std::fs::write(dir.join("..2026_12_01_00_00_00.1/gateway.toml"), &text).unwrap();
    std::os::unix::fs::symlink("..2026_12_01_00_00_00.1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/gateway.toml", dir.join("gateway.toml.link")).unwrap();
    std::fs::rename(dir.join("gateway.toml.link"), &path).unwrap();
    // An update: a new timestamped directory, then `..data` swapped by renaming a new link.
    std::fs::create_dir(dir.join("..2026_12_01_00_01_00.2")).unwrap();
    std::fs::write(
        dir.join("..2026_12_01_00_01_00.2/gateway.toml"),
        text.replace("cpu_a", "cpu_b"),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_12_01_00_01_00.2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    cycle_until(&rig, &clock, "ConfigMap update", |m| {
        m.iter().any(|m| m == "pods/cpu_b")
    })
    .await;
    assert!(reloads(&rig, "file", "success") >= 1);
    assert_eq!(reloads(&rig, "file", "error"), 0);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_write_rename_is_detected() {
    let (rig, clock) = reload_rig().await;
    let path = rig.config_path();
    let text = config_text(&rig);
    // As vim does with `backupcopy=no`: write a new file, rename it over the old one.
    let swap = path.with_file_name(".gateway.toml.swp");
    std::fs::write(&swap, text.replace("cpu_a", "cpu_b")).unwrap();
    std::fs::rename(&swap, &path).unwrap();
    cycle_until(&rig, &clock, "editor save", |m| {
        m.iter().any(|m| m == "pods/cpu_b")
    })
    .await;
    assert_eq!(reloads(&rig, "file", "success"), 1);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_fifty_writes_yields_a_few_reloads_ending_in_the_final_content() {
    let (rig, clock) = reload_rig().await;
    let path = rig.config_path();
    let text = config_text(&rig);
    for i in 0..50 {
        std::fs::write(&path, text.replace("cpu_a", &format!("cpu_{i}"))).unwrap();
    }
    cycle_until(&rig, &clock, "burst", |m| {
        m.iter().any(|m| m == "pods/cpu_49")
    })
    .await;
    let ok = reloads(&rig, "file", "success");
    let failed = reloads(&rig, "file", "error");
    assert!(
        (1..=5).contains(&(ok + failed)),
        "50 writes made {ok} reloads and {failed} failed ones"
    );
    rig.shutdown().await;
}

const QUEUE_DEPTH: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_depth";

/// OpenMetrics data: one queue whose depth is `depth` all along the backfilled span.
fn queue_data(depth: f64) -> String {
    let end = END_MS / 1000;
    let mut out = String::from("# TYPE queue_depth gauge\n");
    for k in 0..=SPAN_SECS / STEP_SECS {
        let t = end - SPAN_SECS + k * STEP_SECS;
        out.push_str(&format!("queue_depth{{queue=\"orders\"}} {depth} {t}\n"));
    }
    out + "# EOF\n"
}

/// The prometheus-adapter-compat plugin serving external `queue_depth` from backend `main`.
fn adapter_on_main() -> RigPlugin {
    let mut config = toml::Table::new();
    config.insert("backend".into(), "main".into());
    config.insert(
        "adapter_config".into(),
        "externalRules:\n- seriesQuery: 'queue_depth{queue!=\"\"}'\n  \
         metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)\n  \
         resources:\n    namespaced: false\n"
            .into(),
    );
    RigPlugin {
        config,
        ..RigPlugin::new("adapter", plugin_wasm("prometheus-adapter-compat"), "")
    }
}

/// The `[[prometheus]]` entry of backend `main` at `url`.
fn main_backend(url: &str) -> String {
    common::prometheus_backend(url)
}

/// The orders queue's depth as served (panics on anything but one value).
async fn queue_depth(session: &mut Session) -> f64 {
    let (status, body) = session.get(QUEUE_DEPTH).await.expect("answered");
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let list: Value = serde_json::from_slice(&body).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    quantity(items[0]["value"].as_str().unwrap())
}

/// Reloads through `POST /-/reload`; the report.
async fn post_reload(rig: &Rig) -> (StatusCode, Value) {
    post(rig, "/-/reload", Some(USER_TOKEN)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_backend_is_repointed_live_and_broken_or_still_read_backends_are_refused() {
    let one = Prometheus::start_with(&queue_data(42.0)).unwrap();
    let two = Prometheus::start_with(&queue_data(7.0)).unwrap();
    let (rig, _) = rig_with(small(), |o| {
        // Cycles query at the data's end.
        o.clock = SimClock::manual(END_MS);
        o.plugins = vec![adapter_on_main()];
        o.extra_config = main_backend(&one.url());
    })
    .await;
    common::assert_plugins_loaded(&rig);
    let collector = rig.gateway.collector.clone();
    // Series discovery, then the replan's query, then its value.
    let mut probe = session(&rig, USER_TOKEN).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        collector.run_cycle().await;
        let (status, body) = probe.get(QUEUE_DEPTH).await.unwrap();
        let list: Value = serde_json::from_slice(&body).unwrap();
        if status == StatusCode::OK && list["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "never served: {list}");
    }
    assert_eq!(queue_depth(&mut probe).await, 42.0);

    // Clients read the value all along: every answer is 42 (the first backend) until it is 7
    // (the second), never an error, never back.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<Vec<f64>>::new()));
    let mut clients = Vec::new();
    for i in 0..2 {
        let mut session = session(&rig, USER_TOKEN).await;
        let (stop, seen) = (stop.clone(), seen.clone());
        seen.lock().unwrap().push(Vec::new());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let value = queue_depth(&mut session).await;
                seen.lock().unwrap()[i].push(value);
            }
        }));
    }
    let text = config_text(&rig);
    let repointed = text.replace(&main_backend(&one.url()), &main_backend(&two.url()));
    assert_ne!(text, repointed);
    replace(&rig.config_path(), &repointed);
    let (status, report) = post_reload(&rig).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    // (The file watch may have applied the change first: then this reload finds none.)
    assert_eq!(report["settings"]["needs_restart"], serde_json::json!([]));
    assert_eq!(
        report["plugins"]["unchanged"],
        serde_json::json!(["adapter"])
    );
    // The first cycle after the swap reads the second backend: discovery and query at once.
    let series_before = two.requests_to("/api/v1/series").unwrap();
    collector.run_cycle().await;
    assert_eq!(queue_depth(&mut probe).await, 7.0);
    assert_eq!(
        two.requests_to("/api/v1/series").unwrap() - series_before,
        1.0
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().iter().any(|v| v.last() != Some(&7.0)) {
        assert!(Instant::now() < deadline, "a client never saw 7");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Release);
    for client in clients {
        client.await.expect("no request failed");
    }
    for values in seen.lock().unwrap().iter() {
        let switch = values.iter().position(|v| *v == 7.0).unwrap();
        assert!(switch > 0, "the first value read is the first backend's");
        assert!(values[..switch].iter().all(|v| *v == 42.0), "{values:?}");
        assert!(values[switch..].iter().all(|v| *v == 7.0), "{values:?}");
    }

    // An added backend leaves `main` as it was: no new discovery.
    let spare = format!(
        "[[prometheus]]\nname = \"spare\"\nurl = \"{}\"\n",
        one.url()
    );
    replace(&rig.config_path(), &(repointed.clone() + &spare));
    let (status, report) = post_reload(&rig).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    for _ in 0..3 {
        collector.run_cycle().await;
    }
    assert_eq!(
        two.requests_to("/api/v1/series").unwrap() - series_before,
        1.0
    );
    assert_eq!(queue_depth(&mut probe).await, 7.0);

    // Refused, the running backends keep serving: a backend that cannot be set up, and the
    // removal of a backend a running plugin reads.
    let broken = repointed.replace(
        &main_backend(&two.url()),
        &(main_backend(&one.url()) + "bearer_token_file = \"missing-token\"\n"),
    );
    let removed = repointed.replace(&main_backend(&two.url()), "");
    for (case, text, message) in [
        ("broken", broken, "prometheus \"main\": reading "),
        (
            "removed",
            removed,
            "plugin adapter: the running plugin's plan no longer fits the new config: input 0 \
             (prometheus-series-shapes \"queue_depth{queue!=\\\"\\\"}\") reads prometheus backend \"main\", \
             which is not configured (configured: [])",
        ),
    ] {
        replace(&rig.config_path(), &text);
        let (status, report) = post_reload(&rig).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{case}: {report}"
        );
        let error = report["error"].as_str().unwrap();
        assert!(error.contains(message), "{case}: {error}");
        collector.run_cycle().await;
        assert_eq!(queue_depth(&mut probe).await, 7.0, "{case}");
    }
    assert_eq!(
        two.requests_to("/api/v1/series").unwrap() - series_before,
        1.0
    );
    rig.shutdown().await;
}
