//! `bench-adapter`: issue 4's figures for the `prometheus-adapter-compat` plugin, measured end
//! to end on this machine.
//!
//! Backfills a real Prometheus (the testkit's harness, with its query log) with data stamped
//! around the current time, starts the release `sim-cluster` (simulated kubelets and a fake
//! kube-apiserver holding `--pods` pods in namespace `default`) and `metrics-gateway serve`, each
//! as its own process, then measures:
//!
//! - **A**: the gateway with prometheus-adapter's documented counter-rate rule over the
//!   `--pods` pods: the queries Prometheus receives per collection cycle (from its own query
//!   log) and its series requests, then open-loop latency over TLS of the HPA's request
//!   `GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/METRIC?labelSelector=…`
//!   for every pod and for one Deployment's pods, counting the queries sent meanwhile;
//! - **B**: a new gateway process with a generic gauge rule whose `seriesQuery` matches
//!   `--series` series (`--series / (--pods × --fanout)` metric names, `--fanout` series per pod
//!   each, summed per pod): once every series is discovered and every metric served, the
//!   process' resident memory (`VmHWM`, `VmRSS` from `/proc/<pid>/status`).
//!
//! It prints a Markdown report (also written to `--out`), exits 1 when a check fails, and kills
//! its children on every exit path. Every address is on loopback.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use clap::Parser;
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster};
use metrics_gateway_testkit::loadgen::{self, LoadSpec, Percentiles, Session, Target, TlsTrust};
use metrics_gateway_testkit::procs::{
    CpuTimes, Fleet, Proc, WorkDir, bench_main, free_port, machine_summary, memory, sample,
};
use metrics_gateway_testkit::prometheus::Prometheus;

/// Measures the compat plugin's HPA request latency, upstream queries and memory.
#[derive(Debug, Clone, Parser)]
#[command(name = "bench-adapter", version)]
struct Args {
    /// Pods in namespace `default`, each with one series per metric.
    #[arg(long, default_value_t = 2000)]
    pods: usize,
    /// Simulated nodes the pods are spread over (must divide `--pods`).
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Series the memory phase's rule discovers (a multiple of `--pods` × `--fanout`).
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Series per pod and metric in the memory phase (a `path` label with this many values,
    /// summed per pod by the rule). The default, 25, is issue 4's figure: 100,000 discovered
    /// series (2 metrics × 2,000 pods × 25), 4,000 values served. 1 makes every discovered
    /// series a served value (50 metrics, 100,000 values): the memory then goes to the values.
    #[arg(long, default_value_t = 25)]
    fanout: usize,
    /// Collection interval of the gateway, seconds (cycles overlap the latency runs).
    #[arg(long, default_value_t = 10)]
    interval_secs: u32,
    /// Cycles over which queries per cycle are counted (in each phase).
    #[arg(long, default_value_t = 2)]
    count_cycles: u64,
    /// Requests per second of each latency run.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Seconds each latency run lasts.
    #[arg(long, default_value_t = 20)]
    load_secs: u64,
    /// Keep-alive connections of each latency run.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// The `sim-cluster` binary.
    #[arg(long, default_value = "target/release/sim-cluster")]
    sim_bin: PathBuf,
    /// The `metrics-gateway` binary.
    #[arg(long, default_value = "target/release/metrics-gateway")]
    gateway_bin: PathBuf,
    /// The `prometheus-adapter-compat` component.
    #[arg(long, default_value = "target/plugins/prometheus-adapter-compat.wasm")]
    plugin: PathBuf,
    /// How long each gateway may take to serve its metrics, seconds.
    #[arg(long, default_value_t = 120)]
    startup_timeout_secs: u64,
    /// Working directory for configs and logs (default: a new directory under the system temp
    /// dir, removed after a successful run).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the working directory after a successful run.
    #[arg(long)]
    keep_work_dir: bool,
    /// Also write the Markdown report here.
    #[arg(long)]
    out: Option<PathBuf>,
}

const KUBELET_TOKEN: &str = "bench-kubelet-token";
const ADMIN_TOKEN: &str = "bench-admin-token";
const CUSTOM: &str = "/apis/custom.metrics.k8s.io/v1beta2";
/// The namespace every pod is in (the simulator's first).
const NAMESPACE: &str = "default";
/// The metric of phase A, and the series it is computed from.
const METRIC: &str = "http_requests_per_second";
/// Phase A: prometheus-adapter's documented counter-rate rule.
const RATE_RULE: &str = r#"rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
"#;
/// Phase B: prometheus-adapter's documented generic gauge rule, over every `bench_gauge_*`.
const GAUGE_RULE: &str = r#"rules:
- seriesQuery: '{__name__=~"bench_gauge_.*",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;
/// Seconds between two samples of `http_requests_total`.
const RATE_STEP_SECS: i64 = 15;
/// Seconds between two samples of the gauges (under Prometheus' 5-minute lookback).
const GAUGE_STEP_SECS: i64 = 240;
/// The data spans this long before the start of the run…
const DATA_BEFORE_SECS: i64 = 600;
/// …and this long after it (the run must end before).
const DATA_AFTER_SECS: i64 = 1800;
/// Latency target of issue 4, ms.
const P99_TARGET_MS: f64 = 5.0;
/// Memory target of issue 4, decimal MB.
const MEMORY_TARGET_MB: f64 = 200.0;
const MB: f64 = 1e6;

fn main() -> ExitCode {
    let args = Args::parse();
    // Dropping `run` on a signal drops its children and Prometheus, which kills them.
    bench_main(
        "bench_adapter=info,warn",
        "a check failed (see the report)",
        run(&args),
    )
}

/// The requests-per-second of pod `i`'s `http_requests_total`.
fn pod_rate(i: usize) -> f64 {
    (i % 20 + 1) as f64 / 4.0
}

/// The OpenMetrics data: `http_requests_total` of every pod every 15 s, and `families` gauges
/// `bench_gauge_NNN` of every pod, `fanout` series each (label `path`), every 240 s, from
/// `DATA_BEFORE_SECS` before `now_secs` to `DATA_AFTER_SECS` after it.
fn openmetrics(pods: &[String], families: usize, fanout: usize, now_secs: i64) -> String {
    let start = now_secs - DATA_BEFORE_SECS;
    let end = now_secs + DATA_AFTER_SECS;
    let times = |step: i64| (0..=(end - start) / step).map(move |k| start + k * step);
    let mut out = String::with_capacity(pods.len() * (families * fanout * 8 + 200) * 110);
    out.push_str("# TYPE http_requests counter\n");
    for (i, pod) in pods.iter().enumerate() {
        for t in times(RATE_STEP_SECS) {
            let v = pod_rate(i) * (t - start) as f64;
            let _ = writeln!(
                out,
                "http_requests_total{{namespace=\"{NAMESPACE}\",pod=\"{pod}\"}} {v} {t}"
            );
        }
    }
    for f in 0..families {
        let _ = writeln!(out, "# TYPE bench_gauge_{f:03} gauge");
        for (i, pod) in pods.iter().enumerate() {
            for path in 0..fanout {
                for t in times(GAUGE_STEP_SECS) {
                    let _ = writeln!(
                        out,
                        "bench_gauge_{f:03}{{namespace=\"{NAMESPACE}\",pod=\"{pod}\",container=\"main\",job=\"app\",path=\"/api/v{path}\"}} {} {t}",
                        (i + f) % 1000
                    );
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The `metrics-gateway serve` configuration of one phase.
struct GatewayConfig<'a> {
    port: u16,
    dir: &'a Path,
    prometheus_url: &'a str,
    max_series: usize,
    adapter_config: &'a str,
}

fn gateway_toml(args: &Args, c: &GatewayConfig<'_>, plugin: &Path) -> String {
    let dir = c.dir;
    format!(
        "[server]\nlisten_addr = \"127.0.0.1:{port}\"\nself_signed = true\n\n\
         [kubernetes]\nkubeconfig = {kubeconfig:?}\n\n\
         [kubelet]\ninterval_secs = {interval}\ntimeout_secs = {interval}\nca_file = {ca:?}\n\
         token_file = {token:?}\ntls_server_name = \"node-name\"\n\n\
         [[prometheus]]\nname = \"main\"\nurl = \"{url}\"\nmax_series = {max_series}\n\n\
         [[plugins]]\nname = \"adapter\"\nfile = {plugin:?}\nmemory_mib = 1024\ntimeout_ms = 5000\n\
         [plugins.config]\nadapter_config = '''\n{rules}'''\n",
        port = c.port,
        kubeconfig = dir.join("admin.kubeconfig"),
        interval = args.interval_secs,
        ca = dir.join("kubelet-ca.crt"),
        token = dir.join("kubelet-token"),
        url = c.prometheus_url,
        max_series = c.max_series,
        rules = c.adapter_config,
    )
}

/// What was measured.
#[derive(Default)]
struct Results {
    backfill: Duration,
    prometheus_samples: usize,
    /// Phase A.
    rate_queries_per_cycle: f64,
    rate_queries: Vec<String>,
    rate_series_requests: f64,
    all_pods_items: usize,
    subset_items: usize,
    subset_expected: usize,
    all_pods: Option<LoadRun>,
    subset: Option<LoadRun>,
    /// `/proc/loadavg` before the latency runs.
    loadavg: String,
    rate_hwm: u64,
    /// Phase B.
    discovered: f64,
    gauge_metrics: usize,
    gauge_queries_per_cycle: f64,
    gauge_max_query_bytes: usize,
    gauge_served_in: Duration,
    gauge_rss: u64,
    gauge_hwm: u64,
}

/// One latency run and the Prometheus queries sent while it ran.
struct LoadRun {
    path: String,
    latency: Percentiles,
    service: Percentiles,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    /// Mean response body, bytes.
    body_bytes: u64,
    cycles: u64,
    queries: usize,
    /// The share of the machine's CPU time a hypervisor stole during the run, percent.
    steal_percent: f64,
}

/// Sets everything up, measures both phases and prints the report; whether every check passed.
async fn run(args: &Args) -> anyhow::Result<bool> {
    ensure!(
        args.nodes > 0 && args.pods.is_multiple_of(args.nodes),
        "--nodes must divide --pods"
    );
    ensure!(
        args.pods > 0 && args.fanout > 0 && args.series.is_multiple_of(args.pods * args.fanout),
        "--series must be a multiple of --pods × --fanout"
    );
    ensure!(args.count_cycles > 0, "--count-cycles must be positive");
    let plugin = args.plugin.canonicalize().with_context(|| {
        format!(
            "--plugin {} (scripts/build-plugins.sh)",
            args.plugin.display()
        )
    })?;
    let mut work = WorkDir {
        path: match &args.work_dir {
            Some(p) => p.clone(),
            None => std::env::temp_dir().join(format!("bench-adapter-{}", std::process::id())),
        },
        remove: false,
    };
    std::fs::create_dir_all(&work.path)
        .with_context(|| format!("creating {}", work.path.display()))?;
    let dir = work.path.clone();
    let startup = Duration::from_secs(args.startup_timeout_secs);
    let fleet = Fleet::default();
    let mut results = Results::default();

    // The pods, named as the simulator names them.
    let spec = ClusterSpec {
        nodes: args.nodes,
        pods_per_node: args.pods / args.nodes,
        containers_per_pod: (1, 1),
        namespaces: 1,
        ..ClusterSpec::default()
    };
    let cluster = SimCluster::generate(&spec, SimClock::manual(0));
    let (pods, subset_expected): (Vec<String>, usize) = {
        let state = cluster.read();
        let pods = state.pods.keys().map(|(_, name)| name.clone()).collect();
        let subset = state
            .pods
            .values()
            .filter(|p| p.labels.get("app").is_some_and(|a| a == "app-4"))
            .count();
        (pods, subset)
    };
    results.subset_expected = subset_expected;

    // Prometheus with the data stamped around now.
    let families = args.series / (args.pods * args.fanout);
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs() as i64;
    let data = openmetrics(&pods, families, args.fanout, now_secs);
    results.prometheus_samples = data.lines().filter(|l| !l.starts_with('#')).count();
    let begun = Instant::now();
    let prometheus = tokio::task::spawn_blocking(move || Prometheus::start_with(&data))
        .await
        .context("backfilling Prometheus")??;
    results.backfill = begun.elapsed();
    tracing::info!(url = %prometheus.url(), secs = results.backfill.as_secs_f64(), "Prometheus ready");
    let deadline = Instant::now() + Duration::from_secs(DATA_AFTER_SECS as u64 - 60);

    // The simulated cluster.
    std::fs::write(dir.join("kubelet-token"), KUBELET_TOKEN)?;
    let mut sim_cmd = Command::new(&args.sim_bin);
    sim_cmd
        .arg(format!("--nodes={}", spec.nodes))
        .arg(format!("--pods-per-node={}", spec.pods_per_node))
        .arg("--containers=1-1")
        .arg("--namespaces=1")
        .arg(format!("--kubelet-port={}", free_port()?))
        .arg("--listen=127.0.0.1:0")
        .arg(format!("--token={ADMIN_TOKEN}"))
        .arg(format!("--kubelet-token={KUBELET_TOKEN}"))
        .arg("--kubeconfig-out")
        .arg(dir.join("admin.kubeconfig"))
        .arg("--kubelet-ca-out")
        .arg(dir.join("kubelet-ca.crt"));
    fleet
        .spawn_until_ready(
            "sim-cluster",
            sim_cmd,
            dir.join("sim-cluster.log"),
            "sim-cluster ready",
            startup,
        )
        .await?;

    // Phase A: the counter-rate rule, 2,000 pods.
    let prometheus_url = prometheus.url();
    let port = free_port()?;
    let gateway = start_gateway(
        args,
        &fleet,
        &dir,
        "gateway-rate",
        &GatewayConfig {
            port,
            dir: &dir,
            prometheus_url: &prometheus_url,
            max_series: args.pods * 2,
            adapter_config: RATE_RULE,
        },
        &plugin,
    )
    .await?;
    let mut session = Session::new(gateway.clone());
    let all_path = format!("{CUSTOM}/namespaces/{NAMESPACE}/pods/*/{METRIC}?labelSelector=tier");
    let subset_path =
        format!("{CUSTOM}/namespaces/{NAMESPACE}/pods/*/{METRIC}?labelSelector=app%3Dapp-4");
    let list = fleet
        .guard(
            "waiting for the gateway to serve every pod's rate",
            startup,
            wait_items(&mut session, &all_path, args.pods),
        )
        .await?;
    results.all_pods_items = items(&list)?.len();
    check_rates(&list, &pods)?;
    results.subset_items = items(&get_json(&mut session, &subset_path).await?)?.len();
    let series_before = prometheus.requests_to("/api/v1/series")?;
    let (per_cycle, queries) = fleet
        .guard(
            "counting queries per cycle",
            cycles_limit(args, args.count_cycles),
            count_queries(&mut session, &prometheus, args.count_cycles),
        )
        .await?;
    results.rate_queries_per_cycle = per_cycle;
    results.rate_queries = queries;
    results.rate_series_requests = prometheus.requests_to("/api/v1/series")? - series_before;
    results.loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for (path, slot) in [
        (&all_path, &mut results.all_pods),
        (&subset_path, &mut results.subset),
    ] {
        tracing::info!(%path, rate = args.rate, "latency run");
        let run = fleet
            .guard(
                "latency run",
                Duration::from_secs(args.load_secs + 60),
                load(args, &gateway, path, &mut session, &prometheus),
            )
            .await?;
        *slot = Some(run);
    }
    let pid = fleet.pid("gateway-rate").context("the gateway is gone")?;
    results.rate_hwm = memory(pid)?.1;
    fleet.stop("gateway-rate");

    // Phase B: the gauge rule over `--series` series.
    let port = free_port()?;
    let begun = Instant::now();
    let gateway = start_gateway(
        args,
        &fleet,
        &dir,
        "gateway-gauges",
        &GatewayConfig {
            port,
            dir: &dir,
            prometheus_url: &prometheus_url,
            max_series: args.series * 2,
            adapter_config: GAUGE_RULE,
        },
        &plugin,
    )
    .await?;
    let mut session = Session::new(gateway.clone());
    let last = format!(
        "{CUSTOM}/namespaces/{NAMESPACE}/pods/*/bench_gauge_{:03}",
        families - 1
    );
    fleet
        .guard(
            "waiting for the gateway to serve every gauge",
            startup,
            wait_items(&mut session, &last, args.pods),
        )
        .await?;
    results.gauge_served_in = begun.elapsed();
    let (status, body) = session.get("/metrics").await?;
    ensure!(status.is_success(), "gateway /metrics answered {status}");
    results.discovered = sample(
        &String::from_utf8_lossy(&body),
        "metrics_gateway_prometheus_discovered_series{backend=\"main\"}",
    )
    .unwrap_or(0.0);
    let discovery = get_json(&mut session, CUSTOM).await?;
    results.gauge_metrics = discovery["resources"]
        .as_array()
        .context("custom metrics discovery has no resources")?
        .iter()
        .filter(|r| {
            r["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("pods/bench_gauge_"))
        })
        .count();
    let (per_cycle, queries) = fleet
        .guard(
            "counting queries per cycle",
            cycles_limit(args, args.count_cycles),
            count_queries(&mut session, &prometheus, args.count_cycles),
        )
        .await?;
    results.gauge_queries_per_cycle = per_cycle;
    results.gauge_max_query_bytes = queries.iter().map(String::len).max().unwrap_or(0);
    fleet.check_alive()?;
    let pid = fleet.pid("gateway-gauges").context("the gateway is gone")?;
    (results.gauge_rss, results.gauge_hwm) = memory(pid)?;
    ensure!(
        Instant::now() < deadline,
        "the run outlasted the backfilled data"
    );

    let (report, valid) = render(args, &results, families);
    println!("{report}");
    if let Some(out) = &args.out {
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("report written to {}", out.display());
    }
    drop(fleet);
    work.remove = valid && !args.keep_work_dir;
    Ok(valid)
}

/// Starts `metrics-gateway serve` as `name` with `config`; its API as a target with the admin
/// token.
async fn start_gateway(
    args: &Args,
    fleet: &Fleet,
    dir: &Path,
    name: &'static str,
    config: &GatewayConfig<'_>,
    plugin: &Path,
) -> anyhow::Result<Target> {
    let toml = dir.join(format!("{name}.toml"));
    std::fs::write(&toml, gateway_toml(args, config, plugin))?;
    let mut cmd = Command::new(&args.gateway_bin);
    cmd.arg("serve").arg("--config").arg(&toml);
    fleet.add(Proc::spawn(
        name,
        cmd,
        dir.join(format!("{name}.log")),
        Stdio::null(),
    )?);
    let tls = loadgen::client_tls(TlsTrust::AcceptAny)?;
    Ok(Target::from_url(
        &format!("https://127.0.0.1:{}/metrics", config.port),
        Some(tls),
    )
    .await?
    .with_bearer_token(ADMIN_TOKEN))
}

/// A generous limit for `cycles` collection cycles.
fn cycles_limit(args: &Args, cycles: u64) -> Duration {
    Duration::from_secs(u64::from(args.interval_secs) * (cycles + 3) + 30)
}

/// `GET path` as JSON; an error on a non-2xx status.
async fn get_json(session: &mut Session, path: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = session.get(path).await?;
    ensure!(
        status.is_success(),
        "GET {path}: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
}

/// The items of a list.
fn items(list: &serde_json::Value) -> anyhow::Result<&Vec<serde_json::Value>> {
    list["items"].as_array().context("a list without items")
}

/// Polls `path` every 200 ms until its list holds `count` items (errors while the gateway
/// starts are expected); the list.
async fn wait_items(
    session: &mut Session,
    path: &str,
    count: usize,
) -> anyhow::Result<serde_json::Value> {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        match get_json(session, path).await {
            Ok(list) if items(&list).is_ok_and(|i| i.len() == count) => return Ok(list),
            Ok(list) => tracing::debug!(items = ?items(&list).map(Vec::len).ok(), "not yet"),
            Err(e) => tracing::debug!("not yet: {e:#}"),
        }
    }
}

/// Every pod's value is its rate in the data, within 5 % (Prometheus extrapolates `rate()` to
/// the window's edges, and the query time is not aligned with the samples).
fn check_rates(list: &serde_json::Value, pods: &[String]) -> anyhow::Result<()> {
    for item in items(list)? {
        let pod = item["describedObject"]["name"]
            .as_str()
            .context("an item without describedObject.name")?;
        let i = pods
            .iter()
            .position(|p| p == pod)
            .with_context(|| format!("unknown pod {pod}"))?;
        let value = quantity(item["value"].as_str().context("an item without value")?)?;
        ensure!(
            (value - pod_rate(i)).abs() < 0.05 * pod_rate(i),
            "{pod}: {value}, want {}",
            pod_rate(i)
        );
    }
    Ok(())
}

/// A Kubernetes quantity with a decimal suffix (`250m`, `1500u`, `3`, `2k`), as the gateway
/// writes custom metric values.
fn quantity(q: &str) -> anyhow::Result<f64> {
    let (number, scale) = [
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
    ]
    .iter()
    .find_map(|(suffix, scale)| Some((q.strip_suffix(suffix)?, *scale)))
    .unwrap_or((q, 1.0));
    Ok(number
        .parse::<f64>()
        .with_context(|| format!("quantity {q:?}"))?
        * scale)
}

/// The gateway's completed collection cycles.
async fn cycles(session: &mut Session) -> anyhow::Result<u64> {
    let (status, body) = session.get("/metrics").await?;
    ensure!(status.is_success(), "gateway /metrics answered {status}");
    Ok(sample(
        &String::from_utf8_lossy(&body),
        "metrics_gateway_cycles_total",
    )
    .unwrap_or(0.0) as u64)
}

/// Waits (polling every 50 ms) for the end of the cycle in progress; the new cycle count.
async fn next_cycle_end(session: &mut Session) -> anyhow::Result<u64> {
    let start = cycles(session).await?;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let now = cycles(session).await?;
        if now > start {
            return Ok(now);
        }
    }
}

/// Queries Prometheus logged per cycle over `n` whole cycles (from the end of the cycle in
/// progress), and those of the last cycle.
async fn count_queries(
    session: &mut Session,
    prometheus: &Prometheus,
    n: u64,
) -> anyhow::Result<(f64, Vec<String>)> {
    let first = next_cycle_end(session).await?;
    let before = prometheus.queries()?.len();
    let mut last_start = before;
    loop {
        let now = next_cycle_end(session).await?;
        let logged = prometheus.queries()?;
        if now - first >= n {
            let per_cycle = (logged.len() - before) as f64 / (now - first) as f64;
            return Ok((per_cycle, logged[last_start..].to_vec()));
        }
        last_start = logged.len();
    }
}

/// One open-loop latency run of `GET path`, with the cycles it spanned and the queries
/// Prometheus received meanwhile.
async fn load(
    args: &Args,
    gateway: &Target,
    path: &str,
    session: &mut Session,
    prometheus: &Prometheus,
) -> anyhow::Result<LoadRun> {
    let (cycles0, queries0) = (cycles(session).await?, prometheus.queries()?.len());
    let spec = LoadSpec {
        rate_per_sec: args.rate,
        duration: Duration::from_secs(args.load_secs),
        connections: args.connections,
        timeout: Duration::from_secs(10),
    };
    let cpu0 = CpuTimes::read()?;
    let report = loadgen::run(&gateway.with_path(path), &spec).await?;
    let steal_percent = cpu0.steal_percent(&CpuTimes::read()?);
    let (cycles1, queries1) = (cycles(session).await?, prometheus.queries()?.len());
    Ok(LoadRun {
        path: path.to_owned(),
        latency: report.latency.context("no request succeeded")?,
        service: report.service.context("no request succeeded")?,
        ok: report.ok,
        errors: report.errors,
        first_error: report.first_error,
        body_bytes: report.body_bytes / report.ok.max(1),
        cycles: cycles1 - cycles0,
        queries: queries1 - queries0,
        steal_percent,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The Markdown report and whether every check passed.
fn render(args: &Args, r: &Results, families: usize) -> (String, bool) {
    let mut out = String::new();
    let mut checks: Vec<(String, bool)> = Vec::new();
    let _ = writeln!(out, "## bench-adapter\n");
    let _ = writeln!(out, "{}\n", machine_summary(Path::new("prometheus")));
    let _ = writeln!(
        out,
        "{} pods in namespace `{NAMESPACE}` on {} simulated nodes; Prometheus backfilled with {} \
         samples in {:.1} s; gateway interval {} s.\n",
        args.pods,
        args.nodes,
        r.prometheus_samples,
        r.backfill.as_secs_f64(),
        args.interval_secs
    );

    let _ = writeln!(out, "### A. Counter-rate rule over {} pods\n", args.pods);
    let _ = writeln!(
        out,
        "Queries per cycle (Prometheus' query log, {} cycles): **{:.2}**; series requests in \
         those cycles: {}. One cycle's queries:\n",
        args.count_cycles, r.rate_queries_per_cycle, r.rate_series_requests
    );
    for q in &r.rate_queries {
        let _ = writeln!(out, "- `{q}` ({} bytes)", q.len());
    }
    let _ = writeln!(
        out,
        "\nLoad average before the latency runs (`/proc/loadavg`): {}. \"CPU stolen\" is the share \
         of the machine's CPU time its hypervisor gave elsewhere during a run (`/proc/stat`'s \
         steal): on a virtual machine it delays requests whatever they cost, so the second, \
         cheap request is the machine's floor.",
        r.loadavg.trim()
    );
    let _ = writeln!(
        out,
        "\n| request ({} req/s, {} s, {} connections) | items | body bytes | ok | errors | p50 | p90 | p99 | p99.9 | max | service p99 | cycles | queries meanwhile | CPU stolen |",
        args.rate, args.load_secs, args.connections
    );
    let _ = writeln!(
        out,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (run, items) in [(&r.all_pods, r.all_pods_items), (&r.subset, r.subset_items)] {
        let Some(run) = run else { continue };
        let l = &run.latency;
        let _ = writeln!(
            out,
            "| `{}` | {items} | {} | {} | {} | {:.2} | {:.2} | **{:.2}** | {:.2} | {:.2} | {:.2} | {} | {} | {:.1} % |",
            run.path,
            run.body_bytes,
            run.ok,
            run.errors,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            ms(run.service.p99),
            run.cycles,
            run.queries,
            run.steal_percent,
        );
        if let Some(e) = &run.first_error {
            let _ = writeln!(out, "\nfirst error: {e}\n");
        }
        checks.push((
            format!("no request to {} failed (got {})", run.path, run.errors),
            run.errors == 0,
        ));
        checks.push((
            format!(
                "p99 of {} < {P99_TARGET_MS} ms (got {:.2}; {:.1} % of the CPU time stolen)",
                run.path,
                ms(l.p99),
                run.steal_percent
            ),
            ms(l.p99) < P99_TARGET_MS,
        ));
        let bound = (run.cycles + 1) as f64 * r.rate_queries_per_cycle;
        checks.push((
            format!(
                "requests sent Prometheus nothing: {} queries over {} cycles (≤ {bound})",
                run.queries, run.cycles
            ),
            run.queries as f64 <= bound,
        ));
    }
    let _ = writeln!(
        out,
        "\nGateway peak RSS (VmHWM) in this phase: {:.1} MB.\n",
        r.rate_hwm as f64 / MB
    );
    checks.push((
        format!(
            "every pod served with its exact rate ({} items)",
            r.all_pods_items
        ),
        r.all_pods_items == args.pods,
    ));
    checks.push((
        format!(
            "the Deployment's selector returns its {} pods (got {})",
            r.subset_expected, r.subset_items
        ),
        r.subset_items == r.subset_expected,
    ));
    checks.push((
        format!(
            "at most one query per rule and resource per cycle: {:.2} ≤ 2",
            r.rate_queries_per_cycle
        ),
        r.rate_queries_per_cycle > 0.0 && r.rate_queries_per_cycle <= 2.0,
    ));

    let _ = writeln!(
        out,
        "### B. Generic gauge rule over {} series ({families} metrics × {} pods × {} series per \
         pod)\n",
        args.series, args.pods, args.fanout
    );
    let _ = writeln!(
        out,
        "| | |\n|---|---|\n\
         | discovered series (`metrics_gateway_prometheus_discovered_series`) | {} |\n\
         | pods metrics listed in discovery | {} |\n\
         | start to every metric served | {:.1} s |\n\
         | queries per cycle | {:.2} (longest {} bytes) |\n\
         | gateway VmHWM (peak RSS) | **{:.1} MB** |\n\
         | gateway VmRSS at the end | {:.1} MB |\n",
        r.discovered,
        r.gauge_metrics,
        r.gauge_served_in.as_secs_f64(),
        r.gauge_queries_per_cycle,
        r.gauge_max_query_bytes,
        r.gauge_hwm as f64 / MB,
        r.gauge_rss as f64 / MB,
    );
    checks.push((
        format!(
            "every series discovered ({} of {})",
            r.discovered, args.series
        ),
        r.discovered as usize == args.series,
    ));
    checks.push((
        format!("every metric listed ({} of {families})", r.gauge_metrics),
        r.gauge_metrics == families,
    ));
    checks.push((
        format!(
            "gateway VmHWM < {MEMORY_TARGET_MB} MB (got {:.1})",
            r.gauge_hwm as f64 / MB
        ),
        (r.gauge_hwm as f64 / MB) < MEMORY_TARGET_MB,
    ));

    let _ = writeln!(out, "### Checks\n");
    for (what, ok) in &checks {
        let _ = writeln!(out, "- [{}] {what}", if *ok { "x" } else { " " });
    }
    let valid = checks.iter().all(|(_, ok)| *ok);
    (out, valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_has_every_series_and_spans_the_run() {
        let pods = vec!["a".to_string(), "b".to_string()];
        let text = openmetrics(&pods, 3, 2, 1_000_000);
        assert!(text.ends_with("# EOF\n"));
        let series: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(' ').map(|(s, _)| s))
            .collect();
        assert_eq!(series.len(), 2 + 2 * 3 * 2);
        let rate_samples = text
            .lines()
            .filter(|l| l.starts_with("http_requests_total{") && l.contains("pod=\"a\""))
            .count() as i64;
        assert_eq!(
            rate_samples,
            (DATA_BEFORE_SECS + DATA_AFTER_SECS) / RATE_STEP_SECS + 1
        );
        let last = text
            .lines()
            .filter(|l| l.starts_with("bench_gauge_002{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
            .max();
        assert!(last.is_some_and(|t| t >= 1_000_000 + DATA_AFTER_SECS - GAUGE_STEP_SECS));
    }

    #[test]
    fn quantities_parse_as_the_gateway_writes_them() {
        assert_eq!(quantity("250m").unwrap(), 0.25);
        assert_eq!(quantity("5").unwrap(), 5.0);
        assert!((quantity("1500u").unwrap() - 0.0015).abs() < 1e-12);
        assert!(quantity("5Ki").is_err());
    }

    #[test]
    fn the_gateway_config_names_the_backend_and_the_rules() {
        let args = Args::parse_from(["bench-adapter"]);
        let toml = gateway_toml(
            &args,
            &GatewayConfig {
                port: 8443,
                dir: Path::new("/w"),
                prometheus_url: "http://127.0.0.1:9",
                max_series: 200_000,
                adapter_config: GAUGE_RULE,
            },
            Path::new("/p/compat.wasm"),
        );
        let doc: toml::Table = toml::from_str(&toml).expect("valid TOML");
        assert_eq!(
            doc["prometheus"][0]["max_series"].as_integer(),
            Some(200_000)
        );
        assert_eq!(
            doc["plugins"][0]["config"]["adapter_config"].as_str(),
            Some(GAUGE_RULE)
        );
    }
}
