//! A real Prometheus (Debian's package) over deterministic backfilled data: the harness writes
//! OpenMetrics text, backfills it with `promtool tsdb create-blocks-from openmetrics`, starts
//! `prometheus` on a free loopback port, waits for `/-/ready`, can stop and restart it on the
//! same data and port, and kills it when dropped. Prometheus writes its query log
//! (`query_log_file`), so tests read the exact queries it was sent ([`Prometheus::queries`]).
//!
//! The data ends at [`END_MS`] (samples every [`STEP_SECS`] over [`SPAN_SECS`]); query at or
//! shortly after it (Prometheus looks back 5 minutes), e.g. with a fixed gateway clock.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The last sample time of the data: 2026-01-01T00:00:00Z, ms.
pub const END_MS: i64 = 1_767_225_600_000;
/// Seconds between two samples of a series.
pub const STEP_SECS: i64 = 15;
/// Seconds of data before [`END_MS`].
pub const SPAN_SECS: i64 = 600;
/// Pods in the namespace `big`.
pub const BIG_PODS: usize = 2000;
/// Namespaces with a few pods each, and their pod names (dots and dashes included).
pub const SMALL: [(&str, &[&str]); 3] = [
    ("shop", &["cart-0", "cart-1", "checkout.v2-0"]),
    ("web-front", &["nginx-a", "nginx-b"]),
    ("kube-system", &["coredns-1"]),
];
/// Queues of the external `queue_depth` gauge: (namespace, queue, depth).
pub const QUEUES: [(&str, &str, f64); 3] = [
    ("shop", "orders", 42.0),
    ("shop", "orders.retry", 7.0),
    ("web-front", "a+b(c)|d", 3.0),
];
/// A label value full of regex metacharacters, on the series `odd_label_value`.
pub const ODD_VALUE: &str = "/a.b*c?(d)|e[f]^$+{1}";

/// The requests-per-second of `http_requests_total` of the `i`-th small pod (in [`SMALL`] order).
pub fn http_rate(i: usize) -> f64 {
    (i + 1) as f64
}

/// The `memory_usage_bytes` gauge of the `i`-th small pod.
pub fn memory_bytes(i: usize) -> f64 {
    (i as f64 + 1.0) * 1_048_576.0
}

/// The CPU rate (cores) of `container_cpu_usage_seconds_total` of pod `i` of `big`.
pub fn big_cpu_rate(i: usize) -> f64 {
    0.001 * (i % 10 + 1) as f64
}

/// The name of pod `i` of `big`.
pub fn big_pod(i: usize) -> String {
    format!("big-{i:04}")
}

/// The deterministic data set, as OpenMetrics text (timestamps in seconds, `# EOF` last).
pub fn openmetrics() -> String {
    let end = END_MS / 1000;
    let times: Vec<i64> = (0..=SPAN_SECS / STEP_SECS)
        .map(|k| end - SPAN_SECS + k * STEP_SECS)
        .collect();
    let mut out = String::new();
    let small = || {
        SMALL
            .iter()
            .flat_map(|(ns, pods)| pods.iter().map(move |p| (*ns, *p)))
            .enumerate()
    };
    out.push_str("# TYPE http_requests counter\n");
    for (i, (ns, pod)) in small() {
        for &t in &times {
            let v = http_rate(i) * (t - times[0]) as f64;
            let _ = writeln!(
                out,
                "http_requests_total{{namespace=\"{ns}\",pod=\"{pod}\"}} {v} {t}"
            );
        }
    }
    out.push_str("# TYPE memory_usage_bytes gauge\n");
    for (i, (ns, pod)) in small() {
        for &t in &times {
            let _ = writeln!(
                out,
                "memory_usage_bytes{{namespace=\"{ns}\",pod=\"{pod}\"}} {} {t}",
                memory_bytes(i)
            );
        }
    }
    out.push_str("# TYPE queue_depth gauge\n");
    for (ns, queue, depth) in QUEUES {
        for &t in &times {
            let _ = writeln!(
                out,
                "queue_depth{{namespace=\"{ns}\",queue=\"{queue}\"}} {depth} {t}"
            );
        }
    }
    out.push_str("# TYPE special_value gauge\n");
    for (kind, value) in [("nan", "NaN"), ("inf", "+Inf"), ("neg_inf", "-Inf")] {
        for &t in &times {
            let _ = writeln!(out, "special_value{{kind=\"{kind}\"}} {value} {t}");
        }
    }
    out.push_str("# TYPE odd_label_value gauge\n");
    for &t in &times {
        let _ = writeln!(out, "odd_label_value{{path=\"{ODD_VALUE}\"}} 1 {t}");
    }
    out.push_str("# TYPE container_cpu_usage_seconds counter\n");
    for i in 0..BIG_PODS {
        let pod = big_pod(i);
        for &t in &times {
            let v = big_cpu_rate(i) * (t - times[0]) as f64;
            let _ = writeln!(
                out,
                "container_cpu_usage_seconds_total{{namespace=\"big\",pod=\"{pod}\",container=\"app\"}} {v} {t}"
            );
        }
    }
    out.push_str("# EOF\n");
    out
}

/// A running (or stopped) Prometheus over backfilled data, killed when dropped.
#[derive(Debug)]
pub struct Prometheus {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Prometheus {
    /// Backfills [`openmetrics`] and starts Prometheus on it.
    pub fn start() -> anyhow::Result<Prometheus> {
        Prometheus::start_with(&openmetrics())
    }

    /// Backfills `data` (OpenMetrics text) and starts Prometheus on it.
    pub fn start_with(data: &str) -> anyhow::Result<Prometheus> {
        let dir = tempfile::tempdir().context("creating a Prometheus directory")?;
        let input = dir.path().join("data.om");
        std::fs::write(&input, data).context("writing OpenMetrics data")?;
        let tsdb = dir.path().join("tsdb");
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(&tsdb)
            .output()
            .context("running promtool (install Debian's `prometheus` package)")?;
        if !out.status.success() {
            bail!(
                "promtool create-blocks-from openmetrics failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  query_log_file: {}\n",
                dir.path().join("queries.log").display()
            ),
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut prometheus = Prometheus {
            dir,
            port,
            child: None,
        };
        prometheus.restart()?;
        Ok(prometheus)
    }

    /// The base URL, e.g. `http://127.0.0.1:39123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Stops Prometheus (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts Prometheus (again) on the same data and port, and waits until it is ready.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let log = std::fs::File::create(self.dir.path().join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                self.file("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.file("tsdb").display()
            ))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting prometheus (install Debian's `prometheus` package)")?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(60))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = std::fs::read_to_string(self.file("prometheus.log")).unwrap_or_default();
                bail!("prometheus exited with {status}: {}", tail(&log));
            }
            if self.get("/-/ready").is_ok_and(|(code, _)| code == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.file("prometheus.log")).unwrap_or_default();
                bail!("prometheus not ready within {within:?}: {}", tail(&log));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A plain HTTP/1.0 GET (no chunked body): the status code and the body.
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let code = response
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("no HTTP status line")?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((code, body))
    }

    /// Every PromQL query Prometheus has evaluated so far (instant and range), in order, from
    /// its own query log.
    pub fn queries(&self) -> anyhow::Result<Vec<String>> {
        let log = std::fs::read_to_string(self.file("queries.log")).unwrap_or_default();
        log.lines()
            .map(|line| {
                let entry: serde_json::Value = serde_json::from_str(line)
                    .with_context(|| format!("query log line {line:?}"))?;
                entry["params"]["query"]
                    .as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("query log line without params.query: {line}"))
            })
            .collect()
    }

    /// Prometheus' own count of answered requests to API handler `handler` (e.g.
    /// `/api/v1/query`), from its `/metrics`.
    pub fn requests_to(&self, handler: &str) -> anyhow::Result<f64> {
        let (_, body) = self.get("/metrics")?;
        let needle = format!("handler=\"{handler}\"");
        Ok(body
            .lines()
            .filter(|l| l.starts_with("prometheus_http_requests_total{") && l.contains(&needle))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }
}

fn tail(log: &str) -> &str {
    &log[log.len().saturating_sub(2000)..]
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}
