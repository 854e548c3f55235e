//! `bench-collection`: issue 2's figures, measured end to end on this machine.
//!
//! Starts the release `sim-cluster` (simulated kubelets and a fake kube-apiserver),
//! `metrics-gateway serve` and a real Prometheus scraping the same kubelets, each as its own
//! process, then measures, in this order:
//!
//! 1. side by side with Prometheus, over the same window of `--cycles` collection cycles after
//!    `--warmup-cycles`: CPU-seconds per cycle of the gateway, Prometheus and the simulator (from
//!    `/proc/<pid>/stat`), and the gateway's cycle wall time;
//! 2. with Prometheus stopped: the gateway's cycle wall time and CPU alone;
//! 3. with Prometheus stopped: open-loop latency of a 1,000-pod namespace list and of a
//!    single-pod GET over TLS ([`metrics_gateway_testkit::loadgen`]);
//! 4. the gateway's resident memory (`VmRSS`, `VmHWM`).
//!
//! It prints a Markdown report (also written to `--out`), exits 1 when a process died or a
//! measurement is invalid (scrape failures, wrong list size, request errors), and kills its
//! children on every exit path, Ctrl-C and SIGTERM included. Every address is on loopback.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use metrics_gateway_testkit::cluster::node_address;
use metrics_gateway_testkit::loadgen::{
    self, LoadReport, LoadSpec, Percentiles, Session, Target, Timing, TlsTrust,
};
use metrics_gateway_testkit::procs::{
    CpuTimes, Fleet, Proc, WorkDir, bench_main, free_port, machine_summary, memory, sample,
};

/// Measures the gateway's collection cycle, CPU against a real Prometheus, memory and API
/// latency at issue 2's scale.
#[derive(Debug, Clone, Parser)]
#[command(name = "bench-collection", version)]
struct Args {
    /// Simulated nodes.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Running pods per node.
    #[arg(long, default_value_t = 30)]
    pods_per_node: usize,
    /// Containers per pod.
    #[arg(long, default_value_t = 2)]
    containers_per_pod: usize,
    /// Namespaces the pods are spread over (150 gives 1,000 pods each at the defaults).
    #[arg(long, default_value_t = 150)]
    namespaces: usize,
    /// Collection interval of the gateway and scrape interval of Prometheus, seconds.
    #[arg(long, default_value_t = 15)]
    interval_secs: u32,
    /// Per-scrape timeout of the gateway and Prometheus, seconds.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u32,
    /// The gateway's `kubelet.jitter_ms` (its default).
    #[arg(long, default_value_t = 500)]
    jitter_ms: u32,
    /// The gateway's `kubelet.concurrency` (unset: the gateway's default).
    #[arg(long)]
    concurrency: Option<u32>,
    /// The gateway's `kubelet.keep_alive` (unset: the gateway's default).
    #[arg(long)]
    keep_alive: Option<bool>,
    /// Cycles after everything is served before the measurement window opens.
    #[arg(long, default_value_t = 2)]
    warmup_cycles: u64,
    /// Cycles in the side-by-side measurement window.
    #[arg(long, default_value_t = 6)]
    cycles: u64,
    /// Cycles measured with Prometheus stopped.
    #[arg(long, default_value_t = 3)]
    alone_cycles: u64,
    /// Run without Prometheus (no CPU comparison).
    #[arg(long)]
    no_prometheus: bool,
    /// The `sim-cluster` binary.
    #[arg(long, default_value = "target/release/sim-cluster")]
    sim_bin: PathBuf,
    /// The `metrics-gateway` binary.
    #[arg(long, default_value = "target/release/metrics-gateway")]
    gateway_bin: PathBuf,
    /// The Prometheus binary (Debian package `prometheus`).
    #[arg(long, default_value = "prometheus")]
    prometheus_bin: PathBuf,
    /// Port every simulated kubelet listens on.
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Namespace whose pod list is loaded.
    #[arg(long, default_value = "ns-7")]
    list_namespace: String,
    /// Requests per second of the namespace list.
    #[arg(long, default_value_t = 100.0)]
    list_rate: f64,
    /// Requests per second of the single-pod GET.
    #[arg(long, default_value_t = 1000.0)]
    get_rate: f64,
    /// Seconds each latency run lasts.
    #[arg(long, default_value_t = 30)]
    load_secs: u64,
    /// Keep-alive connections of each latency run.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// How long the simulator and the gateway may take to serve everything, seconds.
    #[arg(long, default_value_t = 600)]
    startup_timeout_secs: u64,
    /// Working directory for configs, logs and Prometheus' TSDB (default: a new directory under
    /// the system temp dir, removed after a successful run).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the working directory after a successful run.
    #[arg(long)]
    keep_work_dir: bool,
    /// Also write the Markdown report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Load the shipped plugins as `config/demo-plugins.toml` configures them, from this
    /// directory of components (`target/plugins` after `scripts/build-plugins.sh`).
    #[arg(long)]
    plugins_dir: Option<PathBuf>,
    /// With `--plugins-dir`: load only this shipped plugin (repeatable; default: all), to
    /// measure what each one costs.
    #[arg(long = "plugin", requires = "plugins_dir")]
    plugins: Vec<String>,
}

/// The `[[plugins]]` entries of `config/demo-plugins.toml`, their components in `dir`; only
/// those named in `only` unless it is empty.
fn shipped_plugins(dir: &Path, only: &[String]) -> anyhow::Result<String> {
    let mut shipped: toml::Table = include_str!("../../../config/demo-plugins.toml").parse()?;
    let Some(toml::Value::Array(entries)) = shipped.get_mut("plugins") else {
        anyhow::bail!("config/demo-plugins.toml has no [[plugins]]");
    };
    let name = |entry: &toml::Value| {
        entry
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_owned)
    };
    for wanted in only {
        if !entries.iter().any(|e| name(e).as_deref() == Some(wanted)) {
            anyhow::bail!("--plugin {wanted}: not a plugin of config/demo-plugins.toml");
        }
    }
    entries.retain(|e| only.is_empty() || name(e).is_some_and(|n| only.contains(&n)));
    for entry in entries.iter_mut() {
        if let Some(toml::Value::String(file)) = entry.get_mut("file") {
            *file = dir.join(&*file).display().to_string();
        }
    }
    Ok(toml::to_string(&shipped)?)
}

const KUBELET_TOKEN: &str = "bench-kubelet-token";
const ADMIN_TOKEN: &str = "bench-admin-token";
const POLL: Duration = Duration::from_secs(1);
/// Decimal megabyte, the unit of issue 2's memory targets.
const MB: f64 = 1e6;

fn main() -> ExitCode {
    let args = Args::parse();
    // Dropping `run` on a signal drops its children and Prometheus, which kills them.
    bench_main(
        "bench_collection=info,warn",
        "the run is invalid (see the checks in the report)",
        run(&args),
    )
}

/// CPU time of a process (all threads, user + system), in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the parenthesised command name start at field 3 (state); utime and stime are
    // fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("no ')' in /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("short /proc/<pid>/stat")?
            .parse::<u64>()
            .context("parsing /proc/<pid>/stat")
    };
    Ok(field(11)? + field(12)?)
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux; asked of `getconf`).
fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// The sum of every sample of metric `name`, whatever its labels.
fn sample_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                return None;
            }
            let value = rest.rsplit_once('}').map_or(rest, |(_, v)| v);
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// The gateway's self-metrics that the benchmark follows.
#[derive(Debug, Clone, Copy, Default)]
struct GatewayStats {
    cycles: u64,
    last_cycle_secs: f64,
    nodes: u64,
    pods: u64,
    scrape_failures: u64,
}

async fn gateway_stats(metrics: &mut Session) -> anyhow::Result<GatewayStats> {
    let (status, body) = metrics.get("/metrics").await?;
    ensure!(status.is_success(), "gateway /metrics answered {status}");
    let text = std::str::from_utf8(&body).context("gateway /metrics is not UTF-8")?;
    Ok(GatewayStats {
        cycles: sample(text, "metrics_gateway_cycles_total").unwrap_or(0.0) as u64,
        last_cycle_secs: sample(text, "metrics_gateway_cycle_last_duration_seconds").unwrap_or(0.0),
        nodes: sample(text, "metrics_gateway_objects_served{kind=\"node\"}").unwrap_or(0.0) as u64,
        pods: sample(text, "metrics_gateway_objects_served{kind=\"pod\"}").unwrap_or(0.0) as u64,
        scrape_failures: sample_sum(text, "metrics_gateway_kubelet_scrape_failures_total") as u64,
    })
}

/// Total seconds spent so far in each plugin's `process` and `snapshot` calls, by plugin, from
/// the gateway's `plugin_call_duration` histogram.
async fn plugin_call_secs(metrics: &mut Session) -> anyhow::Result<BTreeMap<String, [f64; 2]>> {
    let (status, body) = metrics.get("/metrics").await?;
    ensure!(status.is_success(), "gateway /metrics answered {status}");
    let text = std::str::from_utf8(&body).context("gateway /metrics is not UTF-8")?;
    let mut secs: BTreeMap<String, [f64; 2]> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("metrics_gateway_plugin_call_duration_seconds_sum{")
        else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let call = if labels.contains("call=\"process\"") {
            0
        } else if labels.contains("call=\"snapshot\"") {
            1
        } else {
            continue;
        };
        let plugin = labels
            .split_once("plugin=\"")
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(p, _)| p.to_string())
            .context("a plugin call duration without a plugin label")?;
        let value = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("unreadable plugin call duration `{line}`"))?;
        secs.entry(plugin).or_default()[call] = value;
    }
    Ok(secs)
}

/// Polls the gateway every second until its cycle counter reaches `until`; returns the
/// `cycle_last_duration` seen after each new cycle, and the last stats.
async fn follow_cycles(
    metrics: &mut Session,
    until: u64,
) -> anyhow::Result<(Vec<f64>, GatewayStats)> {
    let mut durations = Vec::new();
    let mut seen = gateway_stats(metrics).await?.cycles;
    let mut tick = tokio::time::interval(POLL);
    loop {
        tick.tick().await;
        let stats = gateway_stats(metrics).await?;
        if stats.cycles > seen {
            if stats.cycles > seen + 1 {
                tracing::warn!(
                    missed = stats.cycles - seen - 1,
                    "cycles completed between two polls"
                );
            }
            durations.push(stats.last_cycle_secs);
            seen = stats.cycles;
            tracing::info!(cycle = stats.cycles, secs = stats.last_cycle_secs, "cycle");
        }
        if stats.cycles >= until {
            return Ok((durations, stats));
        }
    }
}

/// One instant-vector query of Prometheus' HTTP API, summed (0 when the result is empty).
async fn prom_query(api: &Target, query: &str) -> anyhow::Result<f64> {
    let (status, body) =
        loadgen::fetch(&api.with_path(&format!("/api/v1/query?query={query}"))).await?;
    ensure!(
        status.is_success(),
        "Prometheus query {query} answered {status}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&body).context("Prometheus answer is not JSON")?;
    let mut sum = 0.0;
    for item in json["data"]["result"]
        .as_array()
        .context("no data.result")?
    {
        let value = item["value"][1].as_str().context("no value")?;
        sum += value.parse::<f64>().context("value is not a number")?;
    }
    Ok(sum)
}

/// CPU ticks of each running child, of this process (`bench`) and of the whole machine
/// (`machine`).
fn cpu_sample(fleet: &Fleet) -> anyhow::Result<BTreeMap<&'static str, u64>> {
    let mut ticks: BTreeMap<&'static str, u64> = fleet
        .lock()
        .iter()
        .map(|p| Ok((p.name(), cpu_ticks(p.pid())?)))
        .collect::<anyhow::Result<_>>()?;
    ticks.insert("bench", cpu_ticks(std::process::id())?);
    let machine = CpuTimes::read()?;
    ticks.insert("machine", machine.busy);
    ticks.insert("steal", machine.steal);
    Ok(ticks)
}

/// Cores used during a load run by the gateway, the load generator (this process), the
/// simulator and everything else, and the cores' worth of time the hypervisor stole.
fn load_cores(
    before: &BTreeMap<&'static str, u64>,
    after: &BTreeMap<&'static str, u64>,
    window: Duration,
    hz: f64,
) -> [f64; 5] {
    let secs = window.as_secs_f64().max(f64::EPSILON);
    let cores = |name: &str| {
        after
            .get(name)
            .zip(before.get(name))
            .map_or(0.0, |(a, b)| a.saturating_sub(*b) as f64 / hz / secs)
    };
    [
        cores("gateway"),
        cores("bench"),
        cores("sim-cluster"),
        other_load(before, after, window, hz),
        cores("steal"),
    ]
}

/// CPU-seconds per second used by processes other than ours over the window (a sign of
/// interference from whatever else runs on the machine).
fn other_load(
    before: &BTreeMap<&'static str, u64>,
    after: &BTreeMap<&'static str, u64>,
    window: Duration,
    hz: f64,
) -> f64 {
    let delta = |name: &str| {
        after
            .get(name)
            .zip(before.get(name))
            .map_or(0, |(a, b)| a.saturating_sub(*b))
    };
    let ours: u64 = before
        .keys()
        .filter(|k| !matches!(**k, "machine" | "steal"))
        .map(|k| delta(k))
        .sum();
    delta("machine").saturating_sub(ours) as f64 / hz / window.as_secs_f64().max(f64::EPSILON)
}

/// CPU-seconds per cycle of each child over a window of `cycles` cycles.
fn cpu_per_cycle(
    before: &BTreeMap<&'static str, u64>,
    after: &BTreeMap<&'static str, u64>,
    cycles: u64,
    hz: f64,
) -> BTreeMap<&'static str, f64> {
    before
        .iter()
        .filter_map(|(name, t0)| {
            let t1 = after.get(name)?;
            Some((*name, t1.saturating_sub(*t0) as f64 / hz / cycles as f64))
        })
        .collect()
}

/// Pods the simulator puts in namespace `ns` (pods are dealt round-robin over `default`,
/// `ns-1`, `ns-2`, …).
fn pods_in_namespace(args: &Args, ns: &str) -> Option<usize> {
    let index = match ns {
        "default" => 0,
        other => other.strip_prefix("ns-")?.parse::<usize>().ok()?,
    };
    let total = args.nodes * args.pods_per_node;
    let n = args.namespaces.max(1);
    (index < n).then(|| total / n + usize::from(index < total % n))
}

fn min_mean_max(values: &[f64]) -> Option<(f64, f64, f64)> {
    let min = values.iter().copied().reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    Some((min, values.iter().sum::<f64>() / values.len() as f64, max))
}

/// Everything measured.
#[derive(Default)]
struct Results {
    started_in: Duration,
    side_window: Option<Duration>,
    side_cycles: Vec<f64>,
    side_cpu: BTreeMap<&'static str, f64>,
    side_other_load: f64,
    alone_other_load: f64,
    alone_cycles: Vec<f64>,
    alone_cpu: BTreeMap<&'static str, f64>,
    /// Seconds per cycle spent in each plugin's `process` and `snapshot` calls, gateway alone.
    alone_plugin_secs: BTreeMap<String, [f64; 2]>,
    scrape_failures: u64,
    prom_up: Option<(f64, f64)>,
    prom_samples_per_scrape: Option<f64>,
    prom_head_series: Option<f64>,
    prom_hwm: Option<u64>,
    list_items: usize,
    expected_items: Option<usize>,
    list: Option<LoadRun>,
    get: Option<LoadRun>,
    list_cores: [f64; 5],
    get_cores: [f64; 5],
    pod_path: String,
    rss: u64,
    hwm: u64,
}

async fn run(args: &Args) -> anyhow::Result<bool> {
    ensure!(
        args.cycles > 0 && args.alone_cycles > 0,
        "--cycles and --alone-cycles must be positive"
    );
    let hz = clock_ticks_per_sec();
    let mut work = WorkDir {
        path: match &args.work_dir {
            Some(p) => p.clone(),
            None => std::env::temp_dir().join(format!("bench-collection-{}", std::process::id())),
        },
        remove: false,
    };
    std::fs::create_dir_all(&work.path)
        .with_context(|| format!("creating {}", work.path.display()))?;
    let fleet = Fleet::default();
    let begun = Instant::now();
    let startup = Duration::from_secs(args.startup_timeout_secs);

    // The simulated cluster.
    let dir = work.path.clone();
    let kubeconfig = dir.join("admin.kubeconfig");
    let kubelet_ca = dir.join("kubelet-ca.crt");
    let token_file = dir.join("kubelet-token");
    std::fs::write(&token_file, KUBELET_TOKEN)?;
    let mut sim_cmd = Command::new(&args.sim_bin);
    sim_cmd
        .arg(format!("--nodes={}", args.nodes))
        .arg(format!("--pods-per-node={}", args.pods_per_node))
        .arg(format!("--containers={0}-{0}", args.containers_per_pod))
        .arg(format!("--namespaces={}", args.namespaces))
        .arg(format!("--kubelet-port={}", args.kubelet_port))
        .arg("--listen=127.0.0.1:0")
        .arg(format!("--token={ADMIN_TOKEN}"))
        .arg(format!("--kubelet-token={KUBELET_TOKEN}"))
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .arg("--kubelet-ca-out")
        .arg(&kubelet_ca);
    let line = fleet
        .spawn_until_ready(
            "sim-cluster",
            sim_cmd,
            dir.join("sim-cluster.log"),
            "sim-cluster ready",
            startup,
        )
        .await?;
    tracing::info!(%line);

    // The gateway.
    let gateway_port = free_port()?;
    let gateway_toml = dir.join("gateway.toml");
    let mut config = format!(
        "[server]\nlisten_addr = \"127.0.0.1:{gateway_port}\"\nself_signed = true\n\n\
         [kubernetes]\nkubeconfig = {kubeconfig:?}\n\n\
         [kubelet]\ninterval_secs = {}\ntimeout_secs = {}\njitter_ms = {}\nca_file = {kubelet_ca:?}\n\
         token_file = {token_file:?}\ntls_server_name = \"node-name\"\n",
        args.interval_secs, args.timeout_secs, args.jitter_ms,
    );
    if let Some(c) = args.concurrency {
        writeln!(config, "concurrency = {c}")?;
    }
    if let Some(k) = args.keep_alive {
        writeln!(config, "keep_alive = {k}")?;
    }
    if let Some(plugins) = &args.plugins_dir {
        let plugins = plugins
            .canonicalize()
            .with_context(|| format!("--plugins-dir {}", plugins.display()))?;
        writeln!(config, "\n{}", shipped_plugins(&plugins, &args.plugins)?)?;
    }
    std::fs::write(&gateway_toml, config)?;
    let mut gw_cmd = Command::new(&args.gateway_bin);
    gw_cmd.arg("serve").arg("--config").arg(&gateway_toml);
    fleet.add(Proc::spawn(
        "gateway",
        gw_cmd,
        dir.join("gateway.log"),
        Stdio::null(),
    )?);

    // Prometheus, scraping the same kubelets.
    let prom_api = if args.no_prometheus {
        None
    } else {
        let port = free_port()?;
        let config = prometheus_config(args, &token_file);
        let prom_yml = dir.join("prometheus.yml");
        std::fs::write(&prom_yml, config)?;
        let tsdb = dir.join("tsdb");
        let mut cmd = Command::new(&args.prometheus_bin);
        cmd.arg(format!("--config.file={}", prom_yml.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        fleet.add(Proc::spawn(
            "prometheus",
            cmd,
            dir.join("prometheus.log"),
            Stdio::null(),
        )?);
        Some(Target::from_url(&format!("http://127.0.0.1:{port}/"), None).await?)
    };

    let tls = loadgen::client_tls(TlsTrust::AcceptAny)?;
    // The gateway authenticates the admin token with a TokenReview and authorizes it.
    let gateway = Target::from_url(
        &format!("https://127.0.0.1:{gateway_port}/metrics"),
        Some(tls),
    )
    .await?
    .with_bearer_token(ADMIN_TOKEN);
    let mut metrics = Session::new(gateway.clone());
    let expected_pods = (args.nodes * args.pods_per_node) as u64;
    let ready = fleet
        .guard(
            "waiting for the gateway to serve every node and pod",
            startup,
            async {
                let mut tick = tokio::time::interval(POLL);
                loop {
                    tick.tick().await;
                    let Ok(stats) = gateway_stats(&mut metrics).await else {
                        continue;
                    };
                    if stats.nodes == args.nodes as u64 && stats.pods == expected_pods {
                        return Ok(stats);
                    }
                    tracing::debug!(?stats, "not serving everything yet");
                }
            },
        )
        .await?;
    tracing::info!(
        cycles = ready.cycles,
        "the gateway serves every node and pod"
    );
    if let Some(api) = &prom_api {
        let nodes = args.nodes as f64;
        fleet
            .guard(
                "waiting for Prometheus to scrape every target",
                startup,
                async {
                    let mut tick = tokio::time::interval(POLL * 2);
                    loop {
                        tick.tick().await;
                        if prom_query(api, "count(up==1)").await.unwrap_or(0.0) >= nodes {
                            return Ok(());
                        }
                    }
                },
            )
            .await?;
        tracing::info!("Prometheus scrapes every target");
    }
    let mut results = Results {
        started_in: begun.elapsed(),
        ..Results::default()
    };

    // 1. Side by side: the same window for every process.
    let interval = Duration::from_secs(args.interval_secs.into());
    let window_limit = |cycles: u64| interval * (cycles as u32 + 4) + Duration::from_secs(60);
    let warm_until = gateway_stats(&mut metrics).await?.cycles + args.warmup_cycles;
    fleet
        .guard(
            "warming up",
            window_limit(args.warmup_cycles),
            follow_cycles(&mut metrics, warm_until),
        )
        .await?;
    let (cpu0, t0) = (cpu_sample(&fleet)?, Instant::now());
    let (durations, _) = fleet
        .guard(
            "measuring side by side",
            window_limit(args.cycles),
            follow_cycles(&mut metrics, warm_until + args.cycles),
        )
        .await?;
    let (cpu1, t1) = (cpu_sample(&fleet)?, Instant::now());
    results.side_window = Some(t1 - t0);
    results.side_cycles = durations;
    results.side_cpu = cpu_per_cycle(&cpu0, &cpu1, args.cycles, hz);
    results.side_other_load = other_load(&cpu0, &cpu1, t1 - t0, hz);
    if let Some(api) = &prom_api {
        results.prom_up = Some((
            prom_query(api, "count(up==1)").await?,
            prom_query(api, "count(up==0)").await?,
        ));
        results.prom_samples_per_scrape =
            Some(prom_query(api, "avg(scrape_samples_scraped)").await?);
        let (_, body) = loadgen::fetch(&api.with_path("/metrics")).await?;
        results.prom_head_series = sample(
            &String::from_utf8_lossy(&body),
            "prometheus_tsdb_head_series",
        );
        if let Some(pid) = fleet.pid("prometheus") {
            results.prom_hwm = Some(memory(pid)?.1);
        }
        fleet.stop("prometheus");
    }

    // 2. The gateway's cycle without Prometheus competing for the CPU. The first cycle after
    // the stop may have started while Prometheus still ran: skip it.
    let skip_until = gateway_stats(&mut metrics).await?.cycles + 1;
    fleet
        .guard(
            "waiting for a cycle without Prometheus",
            window_limit(1),
            follow_cycles(&mut metrics, skip_until),
        )
        .await?;
    let (cpu0, t0) = (cpu_sample(&fleet)?, Instant::now());
    let calls0 = plugin_call_secs(&mut metrics).await?;
    let (durations, _) = fleet
        .guard(
            "measuring the gateway alone",
            window_limit(args.alone_cycles),
            follow_cycles(&mut metrics, skip_until + args.alone_cycles),
        )
        .await?;
    let cpu1 = cpu_sample(&fleet)?;
    results.alone_plugin_secs = plugin_call_secs(&mut metrics)
        .await?
        .into_iter()
        .map(|(plugin, secs)| {
            let before = calls0.get(&plugin).copied().unwrap_or_default();
            let per_cycle = |i: usize| (secs[i] - before[i]) / args.alone_cycles as f64;
            (plugin, [per_cycle(0), per_cycle(1)])
        })
        .collect();
    results.alone_cycles = durations;
    results.alone_cpu = cpu_per_cycle(&cpu0, &cpu1, args.alone_cycles, hz);
    results.alone_other_load = other_load(&cpu0, &cpu1, t0.elapsed(), hz);

    // 3. API latency, open loop, over TLS.
    let list_path = format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
        args.list_namespace
    );
    let list_target = gateway.with_path(&list_path);
    let (status, body) = loadgen::fetch(&list_target).await?;
    ensure!(status.is_success(), "GET {list_path} answered {status}");
    let list: serde_json::Value =
        serde_json::from_slice(&body).context("the pod list is not JSON")?;
    let items = list["items"]
        .as_array()
        .context("the pod list has no items")?;
    results.list_items = items.len();
    results.expected_items = pods_in_namespace(args, &args.list_namespace);
    let pod = items
        .get(items.len() / 2)
        .and_then(|p| p["metadata"]["name"].as_str())
        .context("no pod in the list to GET")?;
    results.pod_path = format!("{list_path}/{pod}");
    let load = |rate: f64| LoadSpec {
        rate_per_sec: rate,
        duration: Duration::from_secs(args.load_secs),
        connections: args.connections,
        timeout: Duration::from_secs(10),
    };
    let load_limit = Duration::from_secs(args.load_secs + 60);
    tracing::info!(path = %list_path, rate = args.list_rate, "list latency run");
    let cpu0 = cpu_sample(&fleet)?;
    let run = fleet
        .guard(
            "loading the namespace list",
            load_limit,
            load_during_cycles(&list_target, &load(args.list_rate), &mut metrics),
        )
        .await?;
    results.list_cores = load_cores(&cpu0, &cpu_sample(&fleet)?, run.report.elapsed, hz);
    results.list = Some(run);
    let get_target = gateway.with_path(&results.pod_path);
    tracing::info!(path = %results.pod_path, rate = args.get_rate, "single-pod latency run");
    let cpu0 = cpu_sample(&fleet)?;
    let run = fleet
        .guard(
            "loading the single-pod GET",
            load_limit,
            load_during_cycles(&get_target, &load(args.get_rate), &mut metrics),
        )
        .await?;
    results.get_cores = load_cores(&cpu0, &cpu_sample(&fleet)?, run.report.elapsed, hz);
    results.get = Some(run);

    // 4. Memory, after everything, and the final failure count.
    fleet.check_alive()?;
    results.scrape_failures = gateway_stats(&mut metrics).await?.scrape_failures;
    let gateway_pid = fleet.pid("gateway").context("the gateway is gone")?;
    (results.rss, results.hwm) = memory(gateway_pid)?;

    let (report, valid) = render(args, &results);
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

/// A load run with the gateway's collection cycles that overlapped it.
struct LoadRun {
    report: LoadReport,
    /// Spans (from the start of the schedule) that contain a whole collection cycle each.
    cycles: Vec<(Duration, Duration)>,
}

impl LoadRun {
    /// Latency percentiles of the requests that overlapped a cycle, and of the others.
    fn split_by_cycles(&self) -> (Option<Percentiles>, Option<Percentiles>) {
        let (during, between): (Vec<Timing>, Vec<Timing>) =
            self.report.timings.iter().partition(|t| {
                let end = t.due + t.latency;
                self.cycles
                    .iter()
                    .any(|(from, to)| t.due < *to && end > *from)
            });
        (
            Percentiles::of_timings(during.iter()).0,
            Percentiles::of_timings(between.iter()).0,
        )
    }
}

/// Runs `spec` against `target` while polling the gateway every 100 ms, to learn which
/// requests overlapped a collection cycle.
async fn load_during_cycles(
    target: &Target,
    spec: &LoadSpec,
    metrics: &mut Session,
) -> anyhow::Result<LoadRun> {
    let mut last = (Instant::now(), gateway_stats(metrics).await?.cycles);
    let mut spans: Vec<(Instant, Instant)> = Vec::new();
    let load = loadgen::run(target, spec);
    tokio::pin!(load);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let report = loop {
        tokio::select! {
            report = &mut load => break report?,
            _ = tick.tick() => {
                let stats = gateway_stats(metrics).await?;
                let now = Instant::now();
                if stats.cycles > last.1 {
                    // The cycle ended between the two polls and lasted `last_cycle_secs`.
                    let from = last.0.checked_sub(Duration::from_secs_f64(stats.last_cycle_secs)).unwrap_or(last.0);
                    spans.push((from, now));
                }
                last = (now, stats.cycles);
            }
        }
    };
    let cycles = spans
        .iter()
        .map(|(from, to)| {
            (
                from.saturating_duration_since(report.started),
                to.saturating_duration_since(report.started),
            )
        })
        .collect();
    Ok(LoadRun { report, cycles })
}

/// A Prometheus configuration scraping every simulated kubelet's `/metrics/resource`.
fn prometheus_config(args: &Args, token_file: &Path) -> String {
    let mut out = format!(
        "global:\n  scrape_interval: {0}s\n  scrape_timeout: {1}s\n  evaluation_interval: {0}s\n\
         scrape_configs:\n  - job_name: kubelet-resource\n    scheme: https\n    \
         metrics_path: /metrics/resource\n    authorization:\n      type: Bearer\n      \
         credentials_file: {2:?}\n    tls_config:\n      insecure_skip_verify: true\n    \
         static_configs:\n      - targets:\n",
        args.interval_secs,
        args.timeout_secs,
        token_file.display().to_string(),
    );
    for i in 0..args.nodes {
        let _ = writeln!(
            out,
            "          - '{}:{}'",
            node_address(i),
            args.kubelet_port
        );
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn pass(ok: bool) -> &'static str {
    if ok { "**pass**" } else { "**FAIL**" }
}

fn percentiles_row(name: &str, counts: [String; 3], p: Option<Percentiles>) -> String {
    let [scheduled, ok, errors] = counts;
    match p {
        Some(p) => format!(
            "| {name} | {scheduled} | {ok} | {errors} | {} | {} | {} | {} | {} |\n",
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.p999),
            ms(p.max)
        ),
        None => format!("| {name} | {scheduled} | {ok} | {errors} | – | – | – | – | – |\n"),
    }
}

/// The Markdown report and whether the run is valid.
fn render(args: &Args, r: &Results) -> (String, bool) {
    let mut out = String::new();
    let mut checks: Vec<(String, bool)> = Vec::new();
    let _ = writeln!(out, "## bench-collection results\n");
    let _ = writeln!(out, "{}\n", machine_summary(&args.prometheus_bin));
    let _ = writeln!(
        out,
        "Command: `{}`  \nCluster: {} nodes × {} pods × {} containers, {} namespaces; interval {} s, \
         jitter {} ms. Everything served {:.0} s after start.\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        args.nodes,
        args.pods_per_node,
        args.containers_per_pod,
        args.namespaces,
        args.interval_secs,
        args.jitter_ms,
        r.started_in.as_secs_f64()
    );

    let _ = writeln!(
        out,
        "| Figure | Target | Measured | Result |\n|---|---|---|---|"
    );
    let cycle_cell = |v: &[f64]| match min_mean_max(v) {
        Some((lo, mean, hi)) => (
            format!(
                "{lo:.2} / {mean:.2} / {hi:.2} s (min / mean / max of {})",
                v.len()
            ),
            hi < 5.0,
        ),
        None => ("no cycle seen".into(), false),
    };
    let (text, ok) = cycle_cell(&r.side_cycles);
    let _ = writeln!(
        out,
        "| Cycle wall time, {} | < 5 s | {text} | {} |",
        if args.no_prometheus {
            "first window (no Prometheus)"
        } else {
            "Prometheus running"
        },
        pass(ok)
    );
    let (text, ok) = cycle_cell(&r.alone_cycles);
    let _ = writeln!(
        out,
        "| Cycle wall time, gateway alone | < 5 s | {text} | {} |",
        pass(ok)
    );
    let gw = r.side_cpu.get("gateway").copied();
    let prom = r.side_cpu.get("prometheus").copied();
    match (gw, prom) {
        (Some(g), Some(p)) if p > 0.0 => {
            let ratio = g / p;
            let _ = writeln!(
                out,
                "| Gateway CPU per cycle vs Prometheus | ≤ 1/3 (0.333) | {g:.2} vs {p:.2} CPU-s: ratio {ratio:.3} | {} |",
                pass(ratio <= 1.0 / 3.0)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "| Gateway CPU per cycle vs Prometheus | ≤ 1/3 | not measured | – |"
            );
        }
    }
    let per_node = |b: u64| b as f64 / args.nodes.max(1) as f64 / 1e3;
    let _ = writeln!(
        out,
        "| Gateway resident memory (peak) | ≤ 250 MB, ≤ 50 KB/node | VmHWM {:.1} MB ({:.1} KB/node); VmRSS {:.1} MB ({:.1} KB/node) | {} |",
        r.hwm as f64 / MB,
        per_node(r.hwm),
        r.rss as f64 / MB,
        per_node(r.rss),
        pass(r.hwm as f64 <= 250.0 * MB && per_node(r.hwm) <= 50.0)
    );
    let p99_cell =
        |run: &Option<LoadRun>, limit_ms: f64| match run.as_ref().and_then(|l| l.report.latency) {
            Some(p) => (
                format!(
                    "p99 {} ms (p50 {}, max {})",
                    ms(p.p99),
                    ms(p.p50),
                    ms(p.max)
                ),
                p.p99.as_secs_f64() * 1e3 < limit_ms,
            ),
            None => ("no successful request".into(), false),
        };
    let (text, ok) = p99_cell(&r.list, 10.0);
    let _ = writeln!(
        out,
        "| `GET …/namespaces/{}/pods` ({} pods) at {} req/s | p99 < 10 ms | {text} | {} |",
        args.list_namespace,
        r.list_items,
        args.list_rate,
        pass(ok)
    );
    let (text, ok) = p99_cell(&r.get, 2.0);
    let _ = writeln!(
        out,
        "| Single-pod GET at {} req/s | p99 < 2 ms | {text} | {} |\n",
        args.get_rate,
        pass(ok)
    );

    let _ = writeln!(out, "### CPU-seconds per {}-s cycle\n", args.interval_secs);
    let _ = writeln!(
        out,
        "| Process | Side by side | Gateway alone |\n|---|---|---|"
    );
    for name in ["gateway", "prometheus", "sim-cluster", "bench"] {
        let cell =
            |m: &BTreeMap<&str, f64>| m.get(name).map_or("–".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(
            out,
            "| {name} | {} | {} |",
            cell(&r.side_cpu),
            cell(&r.alone_cpu)
        );
    }
    if !r.alone_plugin_secs.is_empty() {
        let _ = writeln!(
            out,
            "\nSeconds per cycle in calls into each plugin, gateway alone: `process` (lowering its \
             input into the guest, the guest's work, lifting its output; not the host's input \
             building or output checks) and `snapshot` (the state it returns after each cycle):\n\n\
             | Plugin | process | snapshot |\n|---|---|---|"
        );
        for (plugin, [process, snapshot]) in &r.alone_plugin_secs {
            let _ = writeln!(out, "| {plugin} | {process:.3} | {snapshot:.3} |");
        }
        let total = |i: usize| r.alone_plugin_secs.values().map(|s| s[i]).sum::<f64>();
        let _ = writeln!(out, "| all | {:.3} | {:.3} |", total(0), total(1));
    }
    if let Some(w) = r.side_window {
        let _ = writeln!(
            out,
            "\nSide-by-side window: {} cycles after {} warm-up cycles, {:.1} s wall; gateway alone: {} cycles. \
             CPU used by other processes on the machine: {:.2} cores side by side, {:.2} cores alone.",
            args.cycles,
            args.warmup_cycles,
            w.as_secs_f64(),
            args.alone_cycles,
            r.side_other_load,
            r.alone_other_load,
        );
    }
    if let Some((up, down)) = r.prom_up {
        let _ = writeln!(
            out,
            "Prometheus: {up:.0} targets up, {down:.0} down; {:.0} samples per scrape; {:.0} head series; peak RSS {:.0} MB.",
            r.prom_samples_per_scrape.unwrap_or(0.0),
            r.prom_head_series.unwrap_or(0.0),
            r.prom_hwm.unwrap_or(0) as f64 / MB
        );
        checks.push((
            format!("Prometheus scrapes every target ({up:.0} up, {down:.0} down)"),
            up as usize == args.nodes && down == 0.0,
        ));
    }
    let list = |v: &[f64]| {
        v.iter()
            .map(|d| format!("{d:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "Cycle wall times (s), side by side: {}; alone: {}.\n",
        list(&r.side_cycles),
        list(&r.alone_cycles)
    );

    let _ = writeln!(
        out,
        "### API latency (ms; open loop over TLS, HTTP/1.1 keep-alive, {} connections, {} s; latency from each request's scheduled time)\n",
        args.connections, args.load_secs
    );
    let _ = writeln!(
        out,
        "| Request | Scheduled | OK | Errors | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (name, report) in [
        (
            format!("list {} at {}/s", args.list_namespace, args.list_rate),
            &r.list,
        ),
        (format!("single pod at {}/s", args.get_rate), &r.get),
    ] {
        if let Some(run) = report {
            let l = &run.report;
            let counts = [
                l.scheduled.to_string(),
                l.ok.to_string(),
                l.errors.to_string(),
            ];
            out.push_str(&percentiles_row(&name, counts.clone(), l.latency));
            out.push_str(&percentiles_row(
                &format!("{name}, service time"),
                counts,
                l.service,
            ));
            let (during, between) = run.split_by_cycles();
            let subset = |p: Option<Percentiles>| {
                [
                    "".to_string(),
                    p.map_or(0, |p| p.count).to_string(),
                    "".to_string(),
                ]
            };
            out.push_str(&percentiles_row(
                &format!("{name}, overlapping one of {} cycles", run.cycles.len()),
                subset(during),
                during,
            ));
            out.push_str(&percentiles_row(
                &format!("{name}, between cycles"),
                subset(between),
                between,
            ));
            checks.push((
                format!(
                    "{name}: no request failed ({})",
                    l.first_error.as_deref().unwrap_or("none")
                ),
                l.errors == 0,
            ));
        }
    }
    let _ = writeln!(out, "\nSingle pod: `{}`.", r.pod_path);
    for (name, [gw, bench, sim, other, steal]) in
        [("list", r.list_cores), ("single-pod", r.get_cores)]
    {
        let _ = writeln!(
            out,
            "Cores used during the {name} run: gateway {gw:.2}, load generator {bench:.2}, simulator {sim:.2}, other processes {other:.2}; stolen by the hypervisor {steal:.2}."
        );
    }
    out.push('\n');

    if let Some(expected) = r.expected_items {
        checks.push((
            format!("the list has {expected} items (got {})", r.list_items),
            r.list_items == expected,
        ));
    }
    checks.push((
        format!(
            "no kubelet scrape failed in the gateway (got {})",
            r.scrape_failures
        ),
        r.scrape_failures == 0,
    ));
    let _ = writeln!(out, "### Validity checks\n");
    for (what, ok) in &checks {
        let _ = writeln!(out, "- [{}] {what}", if *ok { "x" } else { " " });
    }
    let valid = checks.iter().all(|(_, ok)| *ok);
    (out, valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP metrics_gateway_cycles Completed collection cycles\n\
        # TYPE metrics_gateway_cycles counter\n\
        metrics_gateway_cycles_total 7\n\
        metrics_gateway_cycle_last_duration_seconds 1.25\n\
        metrics_gateway_objects_served{kind=\"node\"} 5000\n\
        metrics_gateway_objects_served{kind=\"pod\"} 150000\n\
        metrics_gateway_kubelet_scrape_failures_total{reason=\"timeout\"} 2\n\
        metrics_gateway_kubelet_scrape_failures_total{reason=\"decode\"} 3\n\
        metrics_gateway_kubelet_scrape_failures_total_other 9\n\
        # EOF\n";

    #[test]
    fn reads_samples_by_series_and_sums_families() {
        assert_eq!(sample(TEXT, "metrics_gateway_cycles_total"), Some(7.0));
        assert_eq!(
            sample(TEXT, "metrics_gateway_cycle_last_duration_seconds"),
            Some(1.25)
        );
        assert_eq!(
            sample(TEXT, "metrics_gateway_objects_served{kind=\"pod\"}"),
            Some(150_000.0)
        );
        assert_eq!(sample(TEXT, "metrics_gateway_cycles"), None);
        assert_eq!(
            sample_sum(TEXT, "metrics_gateway_kubelet_scrape_failures_total"),
            5.0
        );
        assert_eq!(sample_sum(TEXT, "absent"), 0.0);
    }

    #[test]
    fn namespace_sizes_follow_the_simulator() {
        let args = Args::parse_from(["bench-collection"]);
        assert_eq!(pods_in_namespace(&args, "ns-7"), Some(1000));
        assert_eq!(pods_in_namespace(&args, "default"), Some(1000));
        assert_eq!(pods_in_namespace(&args, "ns-150"), None);
        let small = Args::parse_from([
            "bench-collection",
            "--nodes=3",
            "--pods-per-node=4",
            "--namespaces=5",
        ]);
        // 12 pods over 5 namespaces: 3, 3, 2, 2, 2.
        let sizes: Vec<_> = ["default", "ns-1", "ns-2", "ns-3", "ns-4"]
            .iter()
            .map(|ns| pods_in_namespace(&small, ns))
            .collect();
        assert_eq!(sizes, [Some(3), Some(3), Some(2), Some(2), Some(2)]);
    }

    #[test]
    fn cpu_per_cycle_divides_ticks_by_cycles() {
        let before = BTreeMap::from([("gateway", 100), ("prometheus", 1000)]);
        let after = BTreeMap::from([("gateway", 400), ("prometheus", 4000)]);
        let per = cpu_per_cycle(&before, &after, 6, 100.0);
        assert_eq!(per["gateway"], 0.5);
        assert_eq!(per["prometheus"], 5.0);
    }

    #[test]
    fn prometheus_config_lists_every_kubelet() {
        let args = Args::parse_from(["bench-collection", "--nodes=251"]);
        let config = prometheus_config(&args, Path::new("/tmp/token"));
        assert!(config.contains("- '127.1.0.1:10250'"));
        assert!(
            config.contains("- '127.1.1.1:10250'"),
            "node 250 starts the next /24"
        );
        assert_eq!(config.matches(":10250'").count(), 251);
        assert!(config.contains("credentials_file: \"/tmp/token\""));
        assert!(config.contains("insecure_skip_verify: true"));
    }

    #[test]
    fn reads_cpu_and_memory_of_this_process() {
        let pid = std::process::id();
        assert!(cpu_ticks(pid).is_ok());
        let (rss, hwm) = memory(pid).expect("status");
        assert!(rss > 0 && hwm >= rss);
    }
}
