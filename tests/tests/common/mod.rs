//! Shared helpers of the integration tests.

#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use metrics_gateway::demo::{Rig, RigOptions};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock};

/// A kubelet port no other test of this process uses (every rig binds the same 127.1.x.y
/// addresses, so tests running in parallel need different ports).
pub fn next_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 2_000) as u16 * 10;
    base + NEXT.fetch_add(1, Ordering::SeqCst)
}

/// A manual clock starting now (so timestamps look real).
pub fn manual_clock() -> SimClock {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    SimClock::manual(now)
}

/// Starts a rig with a manual clock and cycles driven by the test.
pub async fn rig(spec: ClusterSpec) -> (Rig, SimClock) {
    rig_with(spec, |_| {}).await
}

/// Like [`rig`], with options adjusted by `tune`.
pub async fn rig_with(
    mut spec: ClusterSpec,
    tune: impl FnOnce(&mut RigOptions),
) -> (Rig, SimClock) {
    capture_logs();
    spec.kubelet_port = next_port();
    let clock = manual_clock();
    let mut options = RigOptions {
        spec,
        clock: clock.clone(),
        interval_secs: 15,
        timeout_secs: 2,
        ..RigOptions::default()
    };
    tune(&mut options);
    (Rig::start(options).await.expect("rig starts"), clock)
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Routes this process's logs into a buffer [`logs`] reads.
pub fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_env_filter("info,metrics_gateway=debug")
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .init();
    });
}

/// Everything logged so far.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// The gateway's `/metrics` text.
pub fn self_metrics(rig: &Rig) -> String {
    rig.gateway.telemetry.encode()
}

/// The component of plugin `name`, as `scripts/build-plugins.sh` (run by `scripts/test.sh`)
/// writes it with `metrics-gateway plugin build`.
pub fn plugin_wasm(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins.sh (scripts/test.sh does)",
        path.display()
    );
    path.canonicalize().unwrap()
}

/// A Kubernetes Quantity (`1500m`, `2k`, `12Ki`, `3`, `1.5`, `2e3`) as a number.
pub fn quantity(q: &str) -> f64 {
    for (suffix, factor) in [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ] {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<f64>().unwrap() * factor;
        }
    }
    q.parse()
        .unwrap_or_else(|e| panic!("{q:?} is not a quantity: {e}"))
}

/// Runs the real `kubectl` with `kubeconfig`: its stdout on success, its stderr otherwise.
pub fn try_kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl is installed (scripts/test.sh installs it)");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs the real `kubectl` with `kubeconfig`; its stdout (panics on failure with its output).
pub fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    try_kubectl(kubeconfig, args).unwrap_or_else(|e| panic!("kubectl {args:?} failed: {e}"))
}

/// `kubectl get --raw PATH`: the JSON on success, kubectl's error output otherwise.
pub fn try_raw(kubeconfig: &std::path::Path, path: &str) -> Result<serde_json::Value, String> {
    try_kubectl(kubeconfig, &["get", "--raw", path]).map(|out| serde_json::from_str(&out).unwrap())
}

/// `kubectl get --raw PATH`, as JSON.
pub fn raw(kubeconfig: &std::path::Path, path: &str) -> serde_json::Value {
    try_raw(kubeconfig, path).unwrap_or_else(|e| panic!("kubectl get --raw {path} failed: {e}"))
}

/// The pods (namespace, name), sorted, and the namespaces, sorted, of the cluster `spec`
/// generates at the Prometheus fixtures' end time: the tests write their data for them.
pub fn pods_and_namespaces(spec: &ClusterSpec) -> (Vec<(String, String)>, Vec<String>) {
    let cluster = metrics_gateway_testkit::cluster::SimCluster::generate(
        spec,
        SimClock::manual(metrics_gateway_testkit::prometheus::END_MS),
    );
    let state = cluster.read();
    let pods: Vec<(String, String)> = state.pods.keys().cloned().collect();
    let mut namespaces: Vec<String> = pods.iter().map(|(ns, _)| ns.clone()).collect();
    namespaces.dedup();
    (pods, namespaces)
}

/// Fails the test unless every plugin of `rig` loaded.
pub fn assert_plugins_loaded(rig: &Rig) {
    assert!(
        rig.gateway.plugin_errors.is_empty(),
        "{:?}",
        rig.gateway.plugin_errors
    );
}

/// The `gateway.toml` lines of one Prometheus backend `main` at `url`.
pub fn prometheus_backend(url: &str) -> String {
    format!("[[prometheus]]\nname = \"main\"\nurl = \"{url}\"\n")
}
