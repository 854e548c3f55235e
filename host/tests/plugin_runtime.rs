//! The plugin runtime against the hostile test plugin: every fault is contained to that plugin,
//! reported with its name, and the plugin next to it keeps publishing.
//!
//! Needs the components under `target/plugins/` (built by `scripts/build-plugins.sh`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use metrics_gateway::config::{Config, PluginRuntimeConfig};
use metrics_gateway::plugins::{PluginRuntime, PluginSet};
use metrics_gateway::samples::{Batch, CycleSamples, SeriesCache, Source};
use metrics_gateway::sources::cluster::projection::project_pod;
use metrics_gateway::sources::cluster::{ClusterState, Interners};
use metrics_gateway::store::custom::{MetricState, ObjectResource, PluginMetrics};
use metrics_gateway::telemetry::Telemetry;

/// A component under `target/plugins/`; fails (never skips) when it has not been built.
fn wasm(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh first",
        path.display()
    );
    path
}

/// Pods `web/a` (Pending) and `web/b` (Running).
const PODS: [(&str, &str); 2] = [("a", "Pending"), ("b", "Running")];

struct Rig {
    telemetry: Telemetry,
    set: PluginSet,
    cluster: ClusterState,
    cache: SeriesCache,
    now_ms: i64,
}

impl Rig {
    /// The hostile plugin in `mode` (a JSON object's TOML form, e.g. `mode = "loop"`) with
    /// `limits`, followed by the pending-pods plugin.
    fn new(mode: &str, limits: &str) -> Rig {
        let toml = format!(
            "[[plugins]]\nname = \"hostile\"\nfile = {:?}\n{limits}\n[plugins.config]\n{mode}\n\n\
             [[plugins]]\nname = \"pending\"\nfile = {:?}\n",
            wasm("hostile-plugin"),
            wasm("pending-pods"),
        );
        let config: Config = toml::from_str(&toml).expect("config parses");
        let telemetry = Telemetry::new();
        let runtime = PluginRuntime::new(
            &PluginRuntimeConfig {
                cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
            },
            &telemetry,
        )
        .expect("runtime");
        let set = PluginSet::load(&runtime, &config);
        let interners = Interners::default();
        let mut cluster = ClusterState::default();
        for (name, phase) in PODS {
            let pod = project_pod(
                &Pod {
                    metadata: ObjectMeta {
                        namespace: Some("web".into()),
                        name: Some(name.into()),
                        labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                        ..ObjectMeta::default()
                    },
                    status: Some(PodStatus {
                        phase: Some(phase.into()),
                        ..PodStatus::default()
                    }),
                    ..Pod::default()
                },
                &interners,
            )
            .expect("pod projects");
            cluster
                .pods
                .entry(pod.namespace.clone())
                .or_default()
                .insert(pod.name.clone(), Arc::new(pod));
        }
        Rig {
            telemetry,
            set,
            cluster,
            cache: SeriesCache::default(),
            now_ms: 1_700_000_000_000,
        }
    }

    fn cycle(&mut self) -> PluginMetrics {
        let mut batch = Batch::default();
        for (pod, current) in PODS {
            for phase in ["Pending", "Running"] {
                let series = self.cache.series(
                    "kube_pod_status_phase",
                    &mut [("namespace", "web"), ("pod", pod), ("phase", phase)],
                );
                batch.push(series, self.now_ms, f64::from(u8::from(phase == current)));
            }
        }
        self.cache.sweep();
        let mut samples = CycleSamples::default();
        samples.add(Source::Cluster, Arc::new(batch));
        self.now_ms += 15_000;
        self.set
            .run_cycle(&samples, &self.cluster, self.now_ms, 15_000)
    }

    fn counter(&self, prefix: &str) -> u64 {
        self.telemetry
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// The pending-pods plugin still publishes: one pending pod in `web`.
fn assert_neighbour_fine(rig: &Rig, metrics: &PluginMetrics) {
    let pending = &metrics.external[&Arc::<str>::from("pending_pods")];
    match &pending.state {
        MetricState::Values(values) => {
            let web: Vec<f64> = values
                .iter()
                .filter(|v| &*v.namespace == "web")
                .map(|v| v.value)
                .collect();
            assert_eq!(web, [1.0]);
        }
        MetricState::Failed(e) | MetricState::Unavailable(e) | MetricState::Unresolved(e) => {
            panic!("the neighbour plugin failed: {e}")
        }
    }
    assert!(
        rig.set.errors().iter().all(|(p, _)| p != "pending"),
        "{:?}",
        rig.set.errors()
    );
}

fn hostile_failure(metrics: &PluginMetrics) -> String {
    let m = &metrics.custom[&(ObjectResource::pods(), Arc::<str>::from("hostile_ok"))];
    match &m.state {
        MetricState::Failed(e) => e.to_string(),
        MetricState::Values(v) => panic!("expected hostile_ok to fail, got {v:?}"),
        MetricState::Unavailable(e) | MetricState::Unresolved(e) => {
            panic!("expected hostile_ok to fail, got unavailable: {e}")
        }
    }
}

fn custom_names(metrics: &PluginMetrics, metric: &str, resource: ObjectResource) -> Vec<String> {
    match &metrics.custom[&(resource, Arc::<str>::from(metric))].state {
        MetricState::Values(v) => v
            .iter()
            .map(|v| format!("{}/{}={}", v.namespace, v.name, v.value))
            .collect(),
        MetricState::Failed(e) | MetricState::Unavailable(e) | MetricState::Unresolved(e) => {
            panic!("{metric} failed: {e}")
        }
    }
}

#[test]
fn an_infinite_loop_is_stopped_by_the_deadline() {
    let mut rig = Rig::new("mode = \"loop\"", "timeout_ms = 200");
    let metrics = rig.cycle();
    let e = hostile_failure(&metrics);
    assert!(
        e.starts_with("plugin hostile: process ran past its deadline"),
        "{e}"
    );
    assert_neighbour_fine(&rig, &metrics);
    assert_eq!(
        rig.counter(
            "metrics_gateway_plugin_calls_total{plugin=\"hostile\",call=\"process\",outcome=\"deadline\"}"
        ),
        1
    );
}

#[test]
fn unbounded_allocation_is_stopped_by_the_memory_limit() {
    let mut rig = Rig::new("mode = \"alloc\"", "memory_mib = 32");
    let metrics = rig.cycle();
    let e = hostile_failure(&metrics);
    assert!(e.contains("exceeded its memory limit"), "{e}");
    assert_neighbour_fine(&rig, &metrics);
}

#[test]
fn a_trap_in_configure_fails_the_plugin_and_is_retried() {
    let mut rig = Rig::new("mode = \"trap-configure\"", "");
    let errors = rig.set.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].1.contains("plugin hostile"), "{}", errors[0].1);
    assert!(errors[0].1.contains("configure trapped"), "{}", errors[0].1);
    let metrics = rig.cycle();
    assert!(!metrics.custom.keys().any(|(_, n)| n.starts_with("hostile")));
    assert_neighbour_fine(&rig, &metrics);
    assert_eq!(
        rig.counter(
            "metrics_gateway_plugin_calls_total{plugin=\"hostile\",call=\"configure\",outcome=\"trap\"}"
        ),
        2
    );
}

#[test]
fn a_trap_in_process_fails_every_metric_of_the_plugin() {
    let mut rig = Rig::new("mode = \"trap-process\"", "");
    let metrics = rig.cycle();
    assert!(hostile_failure(&metrics).contains("process trapped"));
    let ext = &metrics.external[&Arc::<str>::from("hostile_external")];
    assert!(matches!(ext.state, MetricState::Failed(_)));
    assert_neighbour_fine(&rig, &metrics);
}

#[test]
fn values_for_objects_that_do_not_exist_are_dropped() {
    let mut rig = Rig::new("mode = \"ghost-objects\"", "");
    let metrics = rig.cycle();
    assert_eq!(
        custom_names(&metrics, "hostile_ok", ObjectResource::pods()),
        ["web/a=1", "web/b=1"]
    );
    assert!(custom_names(&metrics, "hostile_node", ObjectResource::nodes()).is_empty());
    let ok = &metrics.custom[&(ObjectResource::pods(), Arc::<str>::from("hostile_ok"))];
    let MetricState::Values(values) = &ok.state else {
        unreachable!()
    };
    assert_eq!(values[0].object_labels.0["app"], "web");
    assert_eq!(
        rig.counter(
            "metrics_gateway_plugin_values_dropped_total{plugin=\"hostile\",reason=\"unknown_object\"}"
        ),
        4
    );
    assert_neighbour_fine(&rig, &metrics);
}

#[test]
fn nan_and_infinite_values_are_dropped() {
    let mut rig = Rig::new("mode = \"nan\"", "");
    let metrics = rig.cycle();
    assert!(custom_names(&metrics, "hostile_ok", ObjectResource::pods()).is_empty());
    let ext = &metrics.external[&Arc::<str>::from("hostile_external")];
    assert_eq!(ext.state, MetricState::Values(vec![]));
    assert_eq!(
        rig.counter(
            "metrics_gateway_plugin_values_dropped_total{plugin=\"hostile\",reason=\"non_finite\"}"
        ),
        3
    );
    assert_neighbour_fine(&rig, &metrics);
}

#[test]
fn a_huge_output_is_refused() {
    let mut rig = Rig::new("mode = \"huge\"", "");
    let metrics = rig.cycle();
    let e = hostile_failure(&metrics);
    assert!(
        e.contains("returned 2000000 values, more than its limit of 1000000"),
        "{e}"
    );
    assert_neighbour_fine(&rig, &metrics);
}

#[test]
fn state_survives_a_trap_restart() {
    let mut rig = Rig::new("mode = \"trap-every\"\nevery = 3", "");
    let cycles = |metrics: &PluginMetrics| -> Option<f64> {
        match &metrics.external[&Arc::<str>::from("hostile_cycles")].state {
            MetricState::Values(v) => Some(v[0].value),
            MetricState::Failed(_) | MetricState::Unavailable(_) | MetricState::Unresolved(_) => {
                None
            }
        }
    };
    let seen: Vec<Option<f64>> = (0..6)
        .map(|_| {
            let metrics = rig.cycle();
            assert_neighbour_fine(&rig, &metrics);
            cycles(&metrics)
        })
        .collect();
    // Calls 1, 2 of each instance succeed, call 3 traps; the count resumes from the snapshot.
    assert_eq!(
        seen,
        [Some(1.0), Some(2.0), None, Some(3.0), Some(4.0), None]
    );
    assert_eq!(
        rig.counter("metrics_gateway_plugin_instance_restarts_total{plugin=\"hostile\"}"),
        1
    );
}

#[test]
fn plugin_test_prints_the_plan_and_each_cycle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = dir.path().join("cycle.prom");
    std::fs::write(
        &fixture,
        "# timestamp_ms: 1700000000000\n# source: cluster\n\
         kube_pod_status_phase{namespace=\"web\",pod=\"a\",phase=\"Pending\"} 1\n\
         kube_pod_status_phase{namespace=\"web\",pod=\"b\",phase=\"Pending\"} 0\n",
    )
    .expect("fixture written");
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"cluster_metric": "pending_total"}"#).expect("config written");
    // The second cycle has no timestamp: one interval after the first.
    let second = dir.path().join("second.json");
    std::fs::write(
        &second,
        r#"{"samples": [{"source": "cluster", "name": "kube_pod_status_phase",
            "labels": {"namespace": "web", "pod": "a", "phase": "Pending"}, "value": 0}]}"#,
    )
    .expect("fixture written");
    let mut out = Vec::new();
    metrics_gateway::plugins::fixture::run(
        &wasm("pending-pods"),
        Some(&config),
        &[fixture, second],
        &mut out,
    )
    .expect("runs");
    let out = String::from_utf8(out).expect("UTF-8");
    for want in [
        "plugin pending-pods",
        "[0] cluster kube_pod_status_phase",
        "external pending_total",
        "object existence is not checked",
        "cycle ",
        "    namespace web = 1 @1700000000000\n",
        "    (all namespaces) = 1 @1700000000000\n",
        "(timestamp_ms 1700000015000, interval_ms 15000)",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn a_metric_the_plugin_reports_failed_is_unavailable_and_the_others_serve() {
    let mut rig = Rig::new("mode = \"fail-metric\"", "");
    let metrics = rig.cycle();
    let ok = &metrics.custom[&(ObjectResource::pods(), Arc::<str>::from("hostile_ok"))];
    assert_eq!(
        ok.state,
        MetricState::Unavailable("hostile plugin: its input is unusable".into())
    );
    let ext = &metrics.external[&Arc::<str>::from("hostile_external")];
    assert!(
        matches!(&ext.state, MetricState::Values(v) if v.len() == 1),
        "{:?}",
        ext.state
    );
    assert!(rig.set.errors().is_empty(), "{:?}", rig.set.errors());
    assert_neighbour_fine(&rig, &metrics);
}

#[test]
fn a_replan_applies_from_the_next_cycle_and_announces_every_series_again() {
    let mut rig = Rig::new("mode = \"replan\"", "");
    let replanned = Arc::<str>::from("hostile_replanned");
    let first = rig.cycle();
    assert!(!first.external.contains_key(&replanned));
    let value = |metrics: &PluginMetrics| match &metrics.external[&replanned].state {
        MetricState::Values(v) => v[0].value,
        other => panic!("hostile_replanned: {other:?}"),
    };
    let second = rig.cycle();
    // Every phase series (2 pods x 2 phases) is announced again, under input 1.
    assert_eq!(value(&second), 4.0);
    assert_eq!(
        custom_names(&second, "hostile_ok", ObjectResource::pods()),
        ["web/a=1", "web/b=1"]
    );
    let third = rig.cycle();
    assert_eq!(value(&third), 0.0);
    assert_neighbour_fine(&rig, &third);
    assert_eq!(
        rig.counter("metrics_gateway_plugin_replans_refused_total{plugin=\"hostile\"}"),
        0
    );
}

#[test]
fn a_replan_taking_another_plugins_metric_is_refused_whole() {
    let mut rig = Rig::new("mode = \"replan-conflict\"", "");
    for _ in 0..3 {
        let metrics = rig.cycle();
        assert_eq!(
            metrics.external[&Arc::<str>::from("pending_pods")].plugin,
            Arc::<str>::from("pending")
        );
        assert_neighbour_fine(&rig, &metrics);
        assert_eq!(
            custom_names(&metrics, "hostile_ok", ObjectResource::pods()).len(),
            2
        );
    }
    assert_eq!(
        rig.counter("metrics_gateway_plugin_replans_refused_total{plugin=\"hostile\"}"),
        1
    );
}
