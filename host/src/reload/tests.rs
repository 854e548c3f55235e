//! The reload path over a real collector and the shipped plugins (no cluster: plugins publish
//! their metrics with no values, which is enough to see which set produced a snapshot).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::trigger::ReloadHandle;
use super::*;
use crate::config::PluginRuntimeConfig;
use crate::sources::cluster::ClusterCache;
use crate::sources::kubelet::KubeletScraper;
use crate::store::Store;

fn wasm(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins.sh",
        path.display()
    );
    path
}

/// A `[[plugins]]` entry of the rate plugin publishing pods/`metric`.
fn rate(name: &str, metric: &str) -> String {
    format!(
        "[[plugins]]\nname = \"{name}\"\nfile = {:?}\n[[plugins.config.rules]]\n\
         source = \"kubelet-resource\"\nseries = \"container_cpu_usage_seconds_total\"\n\
         metric = \"{metric}\"\ntarget = \"pods\"\n\n",
        wasm("rate")
    )
}

/// A `[[prometheus]]` entry (`extra`: more keys).
fn backend(name: &str, url: &str, extra: &str) -> String {
    format!("[[prometheus]]\nname = \"{name}\"\nurl = \"{url}\"\n{extra}\n")
}

/// A `[[plugins]]` entry of the prometheus-adapter-compat plugin serving an external metric
/// from backend `backend` (a series discovery, then a query per cycle).
fn adapter(name: &str, backend: &str) -> String {
    format!(
        "[[plugins]]\nname = \"{name}\"\nfile = {:?}\n[plugins.config]\nbackend = \"{backend}\"\n\
         adapter_config = '''\nexternalRules:\n- seriesQuery: '{{__name__=\"queue_depth\"}}'\n  \
         metricsQuery: sum(<<.Series>>{{<<.LabelMatchers>>}}) by (queue)\n'''\n\n",
        wasm("prometheus-adapter-compat")
    )
}

/// A `[[plugins]]` entry of the rate plugin reading the default backend.
fn default_reader(name: &str) -> String {
    format!(
        "[[plugins]]\nname = \"{name}\"\nfile = {:?}\n[[plugins.config.rules]]\n\
         source = \"prometheus\"\nseries = \"sum by (queue) (jobs_total)\"\n\
         metric = \"jobs_rate\"\ntarget = \"external\"\n\n",
        wasm("rate")
    )
}

fn config(plugins: &str) -> String {
    format!("[server]\nself_signed = true\n\n{plugins}")
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    reloader: Arc<Reloader>,
    collector: Arc<Collector>,
    store: Arc<Store>,
    telemetry: Telemetry,
    max_age: Arc<AtomicI64>,
}

impl Fixture {
    async fn start(text: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, text).unwrap();
        let config = config::load(&path).unwrap();
        let telemetry = Telemetry::new();
        let store = Arc::new(Store::default());
        let clock = Clock::from_fn(|| 1_000_000);
        let collector = Collector::new(
            config.kubelet.clone(),
            KubeletScraper::new(&config.kubelet, rustls::RootCertStore::empty()).unwrap(),
            Arc::new(ClusterCache::default()),
            store.clone(),
            telemetry.clone(),
            clock.clone(),
        );
        let collector = Arc::new(if config.prometheus.is_empty() {
            collector
        } else {
            let source =
                PrometheusSource::new(&config.prometheus, &config.base_dir, telemetry.clone());
            collector.with_prometheus(Arc::new(source.unwrap()))
        });
        let runtime = PluginRuntime::new(&PluginRuntimeConfig::default(), &telemetry).unwrap();
        let set = PluginSet::load(&runtime, &config);
        assert!(set.errors().is_empty(), "{:?}", set.errors());
        let fingerprints = set.fingerprints();
        collector.set_plugins(set);
        let max_age = Arc::new(AtomicI64::new(
            i64::from(config.max_sample_age_secs()) * 1000,
        ));
        let reloader = Arc::new(Reloader::new(ReloaderParts {
            path: path.clone(),
            config,
            fingerprints,
            runtime: Some(runtime),
            collector: collector.clone(),
            telemetry: telemetry.clone(),
            clock,
            max_sample_age_ms: max_age.clone(),
            cycle_after: false,
        }));
        Fixture {
            _dir: dir,
            path,
            reloader,
            collector,
            store,
            telemetry,
            max_age,
        }
    }

    async fn reload_to(&self, text: &str) -> ReloadReport {
        std::fs::write(&self.path, text).unwrap();
        self.reloader.reload(Trigger::Http).await
    }

    /// The custom metrics the current snapshot serves.
    fn served(&self) -> Vec<String> {
        let snapshot = self.store.load();
        snapshot
            .plugin_metrics
            .custom
            .keys()
            .map(|(_, name)| name.to_string())
            .collect()
    }

    /// Runs a cycle and returns what it serves.
    async fn cycle(&self) -> Vec<String> {
        self.collector.run_cycle().await;
        self.served()
    }

    fn gauge(&self, name: &str) -> String {
        self.telemetry
            .encode()
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing"))
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_added_removed_changed_and_kept() {
    let f = Fixture::start(&config(&(rate("a", "metric_a") + &rate("b", "metric_b")))).await;
    assert_eq!(f.cycle().await, ["metric_a", "metric_b"]);
    let report = f
        .reload_to(&config(&(rate("a", "metric_a") + &rate("c", "metric_c"))))
        .await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.plugins.unchanged, ["a"]);
    assert_eq!(report.plugins.added, ["c"]);
    assert_eq!(report.plugins.removed, ["b"]);
    // Until the next cycle, the snapshot is wholly the old set's.
    assert_eq!(f.served(), ["metric_a", "metric_b"]);
    assert_eq!(f.cycle().await, ["metric_a", "metric_c"]);
    let report = f
        .reload_to(&config(&(rate("a", "metric_a2") + &rate("c", "metric_c"))))
        .await;
    assert_eq!(report.plugins.changed, ["a"]);
    assert_eq!(report.plugins.unchanged, ["c"]);
    assert_eq!(f.cycle().await, ["metric_a2", "metric_c"]);
    let report = f.reload_to(&config("")).await;
    assert_eq!(report.plugins.removed, ["a", "c"]);
    assert!(f.cycle().await.is_empty());
    assert_eq!(
        f.gauge("metrics_gateway_config_last_reload_successful"),
        "metrics_gateway_config_last_reload_successful 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configs_keep_the_running_set_and_say_where() {
    let good = config(&rate("a", "metric_a"));
    let f = Fixture::start(&good).await;
    assert_eq!(f.cycle().await, ["metric_a"]);
    let garbage = f.path.with_file_name("garbage.wasm");
    std::fs::write(&garbage, b"\0asm not really").unwrap();
    let sha = format!(
        "[[plugins]]\nname = \"b\"\nfile = {:?}\nsha256 = \"{}\"\n",
        wasm("rate"),
        "0".repeat(64)
    );
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "syntax",
            config("[[plugins]\n"),
            ":4:11:",
            "unclosed array table",
        ),
        (
            "unknown key",
            config("[metrics]\nmax_age = 3\n"),
            ":5:1:",
            "unknown field `max_age`",
        ),
        (
            "compile",
            config("[[plugins]]\nname = \"b\"\nfile = \"garbage.wasm\"\n"),
            ":6:8:",
            "plugin b: ",
        ),
        (
            "configure",
            config(&format!(
                "[[plugins]]\nname = \"b\"\nfile = {:?}\nconfig = {{ rules = 5 }}\n",
                wasm("rate")
            )),
            ":5:8:",
            "configure returned an error",
        ),
        (
            "missing module",
            config("[[plugins]]\nname = \"b\"\nfile = \"nope.wasm\"\n"),
            ":6:8:",
            "nope.wasm: No such file",
        ),
        (
            "sha256",
            config(&sha),
            ":7:10:",
            "but the config expects 0000",
        ),
        (
            "duplicate metric",
            config(&(rate("b", "metric_x") + &rate("c", "metric_x"))),
            ":14:8:",
            "plugin c: custom metric metric_x of pods is already published by plugin b",
        ),
    ];
    for (case, text, at, message) in cases {
        let report = f.reload_to(&text).await;
        let error = report
            .error
            .as_deref()
            .unwrap_or_else(|| panic!("{case}: accepted"));
        let prefix = format!("{}{at}", f.path.display());
        assert!(
            error.starts_with(&prefix),
            "{case}: {error} (want {prefix})"
        );
        assert!(error.contains(message), "{case}: {error}");
        assert_eq!(report.outcome, "error");
        assert_eq!(
            f.gauge("metrics_gateway_config_last_reload_successful"),
            "metrics_gateway_config_last_reload_successful 0",
            "{case}"
        );
        assert_eq!(
            f.cycle().await,
            ["metric_a"],
            "{case}: the old set stopped serving"
        );
    }
    let metrics = f.telemetry.encode();
    assert!(
        metrics.contains("metrics_gateway_config_plugin_load_errors_total{plugin=\"b\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("metrics_gateway_config_reloads_total{trigger=\"http\",outcome=\"error\"} 7"),
        "{metrics}"
    );
    // The good config is applied again with the running instance untouched.
    let report = f.reload_to(&good).await;
    assert_eq!(report.plugins.unchanged, ["a"], "{report:?}");
    assert_eq!(
        f.gauge("metrics_gateway_config_last_reload_successful"),
        "metrics_gateway_config_last_reload_successful 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_apply_or_are_reported_as_needing_a_restart() {
    let f = Fixture::start(&config("")).await;
    assert_eq!(f.max_age.load(Ordering::Acquire), 45_000);
    let report = f
        .reload_to(
            "[server]\nself_signed = true\nlisten_addr = \"127.0.0.1:9\"\n\
             [metrics]\nmax_sample_age_secs = 7\n",
        )
        .await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.settings.applied, ["metrics"]);
    assert_eq!(report.settings.needs_restart, ["server"]);
    assert_eq!(f.max_age.load(Ordering::Acquire), 7_000);
    // Not applied, so still reported on the next reload.
    let report = f
        .reload_to("[server]\nself_signed = true\nlisten_addr = \"127.0.0.1:9\"\n")
        .await;
    assert_eq!(report.settings.applied, ["metrics"]);
    assert_eq!(report.settings.needs_restart, ["server"]);
    assert_eq!(f.max_age.load(Ordering::Acquire), 45_000);
    // Where metrics.k8s.io comes from cannot switch live: refused, the running config kept.
    let report = f
        .reload_to(
            "[server]\nself_signed = true\n[metrics]\nmax_sample_age_secs = 9\n\
             resource_source = \"plugins\"\n",
        )
        .await;
    let error = report.error.as_deref().expect("refused");
    assert!(
        error.contains(
            "metrics.resource_source changed from \"kubelets\" to \"plugins\": where \
             metrics.k8s.io comes from cannot change by live reload; restart the gateway"
        ),
        "{error}"
    );
    assert_eq!(f.max_age.load(Ordering::Acquire), 45_000, "nothing applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_coalesce_into_at_most_one_more_reload() {
    let f = Fixture::start(&config(&rate("a", "metric_a"))).await;
    let (handle, task) = ReloadHandle::spawn(f.reloader.clone());
    // Hold reloads back while ten requests arrive: at most one of them has started.
    let serial = f.reloader.serial.lock().await;
    std::fs::write(&f.path, config(&rate("a", "metric_final"))).unwrap();
    let mut last = 0;
    for _ in 0..10 {
        last = handle.request(Trigger::Http);
    }
    drop(serial);
    assert!(handle.wait_for(last).await.succeeded());
    let reloads = f
        .telemetry
        .config_reloads
        .get_or_create(&ReloadLabels {
            trigger: "http",
            outcome: "success",
        })
        .get();
    assert!(
        (1..=2).contains(&reloads),
        "{reloads} reloads for 10 requests"
    );
    // The reload covering the last request started after it, so it read the final file.
    assert_eq!(f.cycle().await, ["metric_final"]);
    task.abort();
}

/// A reload error's text, asserting where it points.
fn refusal(f: &Fixture, report: &ReloadReport, case: &str, at: &str) -> String {
    let error = report
        .error
        .clone()
        .unwrap_or_else(|| panic!("{case}: accepted"));
    let prefix = format!("{}{at}", f.path.display());
    assert!(
        error.starts_with(&prefix),
        "{case}: {error} (want {prefix})"
    );
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_backends_reload_live_keeping_unchanged_ones() {
    // Nothing listens on port 9: inputs fail, but their state is kept all the same.
    let main = backend("main", "http://127.0.0.1:9", "");
    let other = backend("other", "http://127.0.0.1:9", "");
    let f = Fixture::start(&config(&(main.clone() + &adapter("a", "main")))).await;
    let first = f.collector.prometheus().expect("backends");
    f.cycle().await;
    let held = first.held();
    assert_eq!(
        held,
        ["prometheus-series-shapes main {__name__=\"queue_depth\"}"],
        "the adapter's series discovery"
    );

    // Same backends, reformatted: the running source stays as it is.
    let report = f
        .reload_to(&config(&(main.replace(" = ", "=") + &adapter("a", "main"))))
        .await;
    assert!(report.succeeded(), "{report:?}");
    assert!(report.settings.applied.is_empty(), "{report:?}");
    assert!(Arc::ptr_eq(&first, &f.collector.prometheus().unwrap()));

    // A backend added: applied live; `main` is shared, its inputs keep their state (no new
    // discovery before its interval), and the plugin reading it is kept.
    let report = f
        .reload_to(&config(&(main.clone() + &other + &adapter("a", "main"))))
        .await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.settings.applied, ["prometheus"]);
    assert!(report.settings.needs_restart.is_empty(), "{report:?}");
    assert_eq!(report.plugins.unchanged, ["a"]);
    let second = f.collector.prometheus().unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(second.held(), held, "main's state handed over");
    assert!(first.held().is_empty());
    f.cycle().await;
    assert!(
        f.telemetry
            .encode()
            .contains("metrics_gateway_prometheus_discovered_series{backend=\"other\"} 0"),
    );

    // `main` moved and `other` removed: main's inputs start afresh, other's gauges go.
    let moved = backend("main", "http://127.0.0.1:10", "");
    let report = f
        .reload_to(&config(&(moved.clone() + &adapter("a", "main"))))
        .await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.settings.applied, ["prometheus"]);
    let third = f.collector.prometheus().unwrap();
    assert!(third.held().is_empty(), "{:?}", third.held());
    let metrics = f.telemetry.encode();
    assert!(!metrics.contains("backend=\"other\""), "{metrics}");
    f.cycle().await;
    assert_eq!(third.held(), held);

    // No backends and no plugin reading one: the source goes.
    let report = f.reload_to(&config("")).await;
    assert!(report.succeeded(), "{report:?}");
    assert!(f.collector.prometheus().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_or_still_read_backends_are_refused_keeping_the_running_ones() {
    let main = backend("main", "http://127.0.0.1:9", "");
    let running = config(&(main.clone() + &adapter("a", "main") + &default_reader("r")));
    let f = Fixture::start(&running).await;
    let first = f.collector.prometheus().expect("backends");
    f.cycle().await;
    let held = first.held();
    let plugins = adapter("a", "main") + &default_reader("r");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "unreadable token",
            config(
                &(backend(
                    "main",
                    "http://127.0.0.1:10",
                    "bearer_token_file = \"nope\"",
                ) + &plugins),
            ),
            ":5:8:",
            "prometheus \"main\": reading ",
        ),
        (
            "missing CA",
            config(&(backend("main", "http://127.0.0.1:10", "ca_file = \"no-ca.pem\"") + &plugins)),
            ":5:8:",
            "no-ca.pem",
        ),
        (
            "missing client certificate",
            config(
                &(main.clone()
                    + &backend(
                        "x",
                        "https://127.0.0.1:9",
                        "client_cert_file = \"no.crt\"\nclient_key_file = \"no.key\"",
                    )
                    + &plugins),
            ),
            ":9:8:",
            "prometheus \"x\": client_cert_file ",
        ),
        (
            "backend removed",
            config(&(backend("other", "http://127.0.0.1:9", "") + &plugins)),
            ":9:8:",
            "plugin a: the running plugin's plan no longer fits the new config: input 0 \
             (prometheus-series-shapes \"{__name__=\\\"queue_depth\\\"}\") reads prometheus backend \
             \"main\", which is not configured (configured: [other])",
        ),
        (
            "no default any more",
            config(&(main.clone() + &backend("other", "http://127.0.0.1:9", "") + &plugins)),
            ":24:8:",
            "plugin r: the running plugin's plan no longer fits the new config: input 0 \
             (prometheus \"sum by (queue) (jobs_total)\") reads the default prometheus backend",
        ),
    ];
    for (case, text, at, message) in cases {
        let report = f.reload_to(&text).await;
        let error = refusal(&f, &report, case, at);
        assert!(error.contains(message), "{case}: {error}");
        let now = f.collector.prometheus().unwrap();
        assert!(Arc::ptr_eq(&first, &now), "{case}: backends replaced");
        f.cycle().await;
        assert_eq!(first.held(), held, "{case}: state lost");
    }
    // The running config is still the applied one: reloading it changes nothing.
    let report = f.reload_to(&running).await;
    assert!(report.succeeded(), "{report:?}");
    assert!(report.settings.applied.is_empty(), "{report:?}");
    assert_eq!(report.plugins.unchanged, ["a", "r"]);
}
