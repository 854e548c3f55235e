//! Child processes and `/proc` readings for the end-to-end benchmark binaries
//! (`bench-collection`, `bench-adapter`): children killed on every exit path and watched for
//! unexpected exits, a working directory removed after a valid run, resident memory, free
//! ports, self-metrics samples, the CPU time a hypervisor stole, and a one-line description of
//! the machine.

use std::future::Future;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// A benchmark binary's `main`: logs to stderr (`RUST_LOG`, else `default_filter`), the rustls
/// crypto provider, a multi-threaded runtime, then `run` until it ends or the process gets
/// Ctrl-C or SIGTERM (dropping `run` kills its children). `Ok(false)` (a check failed) prints
/// `failed`; an error prints its chain.
pub fn bench_main<F>(default_filter: &str, failed: &str, run: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<bool>>,
{
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    crate::pki::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("installing a SIGTERM handler")?;
        tokio::select! {
            result = run => result,
            _ = tokio::signal::ctrl_c() => bail!("interrupted (Ctrl-C)"),
            _ = terminate.recv() => bail!("terminated (SIGTERM)"),
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: {failed}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How often [`Fleet::guard`] checks that every child still runs.
const POLL: Duration = Duration::from_secs(1);

/// A child process, killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` as `name`, its stderr to `log`, its stdout as given, stdin closed.
    pub fn spawn(
        name: &'static str,
        mut cmd: Command,
        log: PathBuf,
        stdout: Stdio,
    ) -> anyhow::Result<Proc> {
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(file);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        tracing::info!(name, pid = child.id(), log = %log.display(), "started");
        Ok(Proc { name, child, log })
    }

    /// The name it was started as.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stdout, when started with [`Stdio::piped`] (once).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Kills and reaps it.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        tracing::info!(name = self.name, "stopped");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The children, watched for unexpected exits.
#[derive(Debug, Default)]
pub struct Fleet {
    procs: Mutex<Vec<Proc>>,
}

impl Fleet {
    /// Adds a child.
    pub fn add(&self, proc: Proc) {
        self.lock().push(proc);
    }

    /// The children.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Proc>> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The process id of child `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.lock().iter().find(|p| p.name == name).map(Proc::pid)
    }

    /// Kills and reaps `name` on purpose.
    pub fn stop(&self, name: &str) {
        let mut procs = self.lock();
        if let Some(i) = procs.iter().position(|p| p.name == name) {
            procs.remove(i).stop();
        }
    }

    /// An error naming the first child that has exited.
    pub fn check_alive(&self) -> anyhow::Result<()> {
        for proc in self.lock().iter_mut() {
            if let Some(status) = proc.child.try_wait().context("checking a child")? {
                bail!(
                    "{} exited unexpectedly ({status}); its log {} ends with:\n{}",
                    proc.name,
                    proc.log.display(),
                    log_tail(&proc.log, 8)
                );
            }
        }
        Ok(())
    }

    /// Resolves with an error as soon as a child exits.
    async fn watchdog(&self) -> anyhow::Error {
        let mut tick = tokio::time::interval(POLL);
        loop {
            tick.tick().await;
            if let Err(e) = self.check_alive() {
                return e;
            }
        }
    }

    /// Spawns `command` as child `name` (its output in `log`), and waits, within `limit`, for a
    /// line of its stdout starting with `ready`, which it returns. Its stdout is read to the end
    /// on a thread of its own, so the pipe never fills.
    pub async fn spawn_until_ready(
        &self,
        name: &'static str,
        command: Command,
        log: PathBuf,
        ready: &str,
        limit: Duration,
    ) -> anyhow::Result<String> {
        let mut proc = Proc::spawn(name, command, log.clone(), Stdio::piped())?;
        let stdout = proc
            .take_stdout()
            .with_context(|| format!("{name} stdout"))?;
        self.add(proc);
        let (line_tx, mut line_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = line_tx.send(line);
            }
        });
        let what = format!("waiting for {name} to be ready");
        self.guard(&what, limit, async {
            while let Some(line) = line_rx.recv().await {
                if line.starts_with(ready) {
                    return Ok(line);
                }
            }
            bail!(
                "{name} closed its output before it was ready; its log ends with:\n{}",
                log_tail(&log, 8)
            )
        })
        .await
    }

    /// `fut`, failed early if a child dies or `limit` passes.
    pub async fn guard<T>(
        &self,
        what: &str,
        limit: Duration,
        fut: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        tokio::select! {
            result = fut => result.with_context(|| what.to_string()),
            error = self.watchdog() => Err(error.context(what.to_string())),
            _ = tokio::time::sleep(limit) => bail!("{what}: not done within {limit:?}"),
        }
    }
}

/// The last `n` lines of a log file (empty when unreadable).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A working directory, removed when dropped unless [`WorkDir::remove`] is false.
#[derive(Debug)]
pub struct WorkDir {
    /// The directory.
    pub path: PathBuf,
    /// Remove it when dropped (otherwise its path is printed).
    pub remove: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            eprintln!("work directory kept: {}", self.path.display());
        }
    }
}

/// `VmRSS` and `VmHWM` of a process, bytes.
pub fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kb = |key: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .with_context(|| format!("no {key} in {path}"))?;
        let n = line.trim().trim_end_matches("kB").trim();
        Ok(n.parse::<u64>()
            .with_context(|| format!("parsing {key} {n:?}"))?
            * 1024)
    };
    Ok((kb("VmRSS:")?, kb("VmHWM:")?))
}

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The value of the sample `series` (name plus label set, exactly as exposed) in Prometheus
/// text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Cores, CPU model, memory and kernel of this machine, and the version of `prometheus_bin`.
pub fn machine_summary(prometheus_bin: &Path) -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim())
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let prometheus = Command::new(prometheus_bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().map(str::to_string)
        })
        .unwrap_or_else(|| "not found".into());
    format!(
        "Machine: {cores} cores ({model}), {mem_gib:.1} GiB memory, Linux {}; {prometheus}.",
        kernel.trim()
    )
}

/// The machine's CPU time counters, all CPUs together (the `cpu` line of `/proc/stat`), in
/// clock ticks: enough to tell how much of a run's CPU time a hypervisor gave to other guests
/// (steal), which on a virtual machine shows up as latency no process here caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + idle + iowait + irq + softirq + steal.
    pub total: u64,
    /// Time this machine's CPUs ran something: user + nice + system + irq + softirq (guest
    /// time is already in user).
    pub busy: u64,
    /// Time this machine's CPUs were ready to run but the hypervisor ran something else.
    pub steal: u64,
}

impl CpuTimes {
    /// Reads `/proc/stat`.
    pub fn read() -> anyhow::Result<CpuTimes> {
        let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        CpuTimes::parse(&text).context("no `cpu` line with 8 counters in /proc/stat")
    }

    /// The counters of `/proc/stat`'s text.
    pub fn parse(text: &str) -> Option<CpuTimes> {
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        (fields.len() == 8).then(|| CpuTimes {
            total: fields.iter().sum(),
            busy: fields[0] + fields[1] + fields[2] + fields[5] + fields[6],
            steal: fields[7],
        })
    }

    /// The share of the CPU time from `self` to `later` that was stolen, percent.
    pub fn steal_percent(&self, later: &CpuTimes) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        later.steal.saturating_sub(self.steal) as f64 * 100.0 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_by_series() {
        let text = "# TYPE metrics_gateway_cycles counter\n\
            metrics_gateway_cycles_total 7\n\
            metrics_gateway_objects_served{kind=\"pod\"} 150000\n";
        assert_eq!(sample(text, "metrics_gateway_cycles_total"), Some(7.0));
        assert_eq!(
            sample(text, "metrics_gateway_objects_served{kind=\"pod\"}"),
            Some(150_000.0)
        );
        assert_eq!(sample(text, "metrics_gateway_cycles"), None);
    }

    #[test]
    fn reads_the_stolen_share_of_cpu_time() {
        let before = "cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 50 0 25 400 5 0 0 20 0 0\n";
        let after = "cpu  150 5 70 900 10 1 4 60 7 0\n";
        let (a, b) = (CpuTimes::parse(before), CpuTimes::parse(after));
        assert_eq!(
            a,
            Some(CpuTimes {
                total: 1000,
                busy: 150,
                steal: 40
            })
        );
        // 200 ticks passed (guest time is already counted in user), 20 of them stolen.
        assert_eq!(a.unwrap().steal_percent(&b.unwrap()), 10.0);
        assert_eq!(a.unwrap().steal_percent(&a.unwrap()), 0.0);
        assert_eq!(CpuTimes::parse("cpu  1 2 3\n"), None);
        assert!(CpuTimes::read().is_ok());
    }

    #[test]
    fn reads_the_memory_of_this_process() {
        let (rss, hwm) = memory(std::process::id()).expect("status");
        assert!(rss > 0 && hwm >= rss);
    }
}
