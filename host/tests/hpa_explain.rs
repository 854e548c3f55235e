//! `metrics-gateway hpa explain`, the real binary, against the demo rig: a simulated cluster
//! whose fake kube-apiserver proxies the metrics APIs to the gateway with the demo user's
//! token, as kube-aggregator does for the HPA. Each case checks the stated cause; the working
//! HPA's proposal is checked against the calculator fed the cluster's ground truth.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_gateway::demo::{Rig, RigOptions};
use metrics_gateway::hpa::behavior::{self, History};
use metrics_gateway::hpa::decision::{self, DecisionInput};
use metrics_gateway::hpa::pods::{
    ContainerRequests, Phase, Pod, PodMetric, Readiness, ReadyCondition,
};
use metrics_gateway::hpa::replicas::{self, PodInputs, Tolerances};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock};
use serde_json::Value;

/// Runs `hpa explain` with `args`; (exit success, stdout, stderr).
async fn explain(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_metrics-gateway"))
            .arg("hpa")
            .arg("explain")
            .args(&args)
            .output()
            .expect("the binary runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

struct Setup {
    rig: Rig,
    clock: SimClock,
    kubeconfig: PathBuf,
    namespace: String,
    deployment: String,
}

impl Setup {
    async fn start() -> Setup {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let clock = SimClock::manual(start_ms);
        let spec = ClusterSpec {
            nodes: 4,
            pods_per_node: 25,
            containers_per_pod: (1, 2),
            namespaces: 1,
            kubelet_port: 24_000 + (std::process::id() % 4_000) as u16,
            ..ClusterSpec::default()
        };
        let rig = Rig::start(RigOptions {
            spec,
            clock: clock.clone(),
            timeout_secs: 2,
            ..RigOptions::default()
        })
        .await
        .expect("rig starts");
        // CPU rates need two scrapes.
        rig.gateway.collector.run_cycle().await;
        clock.advance(Duration::from_secs(15));
        let report = rig.gateway.collector.run_cycle().await;
        assert!(report.failed.is_empty(), "{report:?}");
        let kubeconfig = rig.dir().join("user.kubeconfig");
        rig.write_user_kubeconfig(&kubeconfig).unwrap();
        // The Deployment with the most pods.
        let (namespace, deployment) = rig
            .cluster
            .read()
            .deployments
            .iter()
            .max_by_key(|(_, d)| d.replicas)
            .map(|(key, _)| key.clone())
            .expect("the cluster has a Deployment");
        Setup {
            rig,
            clock,
            kubeconfig,
            namespace,
            deployment,
        }
    }

    fn now(&self) -> String {
        jiff::Timestamp::from_millisecond(self.clock.now_ms())
            .unwrap()
            .to_string()
    }

    /// Writes an HPA on the Deployment with `metrics` (YAML list items, indented 2).
    fn hpa(&self, name: &str, metrics: &str) -> PathBuf {
        let path = self.rig.dir().join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: {name}\n  namespace: {}\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: {}\n  minReplicas: 1\n  maxReplicas: 50\n  metrics:\n{metrics}",
                self.namespace, self.deployment
            ),
        )
        .unwrap();
        path
    }

    fn args(&self, file: &Path, output: &str) -> Vec<String> {
        vec![
            "-f".into(),
            file.display().to_string(),
            "--kubeconfig".into(),
            self.kubeconfig.display().to_string(),
            "--now".into(),
            self.now(),
            "--output".into(),
            output.into(),
        ]
    }

    /// The Deployment's pods as the calculator sees them, and their CPU usage (milli-cores
    /// per pod, each container rounded up as `Quantity.MilliValue()` does) from ground truth.
    fn ground_truth(&self) -> (Vec<Pod>, BTreeMap<String, PodMetric>) {
        let state = self.rig.cluster.read();
        let mut pods = Vec::new();
        let mut usage = BTreeMap::new();
        for pod in state.pods.values() {
            if pod.namespace != self.namespace || pod.labels.get("app") != Some(&self.deployment) {
                continue;
            }
            pods.push(Pod {
                name: pod.name.clone(),
                phase: if pod.phase == "Running" {
                    Phase::Running
                } else {
                    Phase::Pending
                },
                deleted: false,
                ready: Some(ReadyCondition {
                    ready: pod.ready,
                    last_transition_ms: pod.start_ms,
                }),
                start_ms: Some(pod.start_ms),
                containers: pod
                    .containers
                    .iter()
                    .map(|c| ContainerRequests {
                        name: c.name.clone(),
                        requests_milli: BTreeMap::from([(
                            "cpu".to_owned(),
                            c.cpu_request_millis as i64,
                        )]),
                    })
                    .collect(),
            });
            let milli: i64 = pod
                .containers
                .iter()
                .map(|c| c.cpu_nanocores.div_ceil(1_000_000) as i64)
                .sum();
            usage.insert(
                pod.name.clone(),
                PodMetric {
                    value_milli: milli,
                    timestamp_ms: self.clock.now_ms(),
                    window_ms: 15_000,
                },
            );
        }
        (pods, usage)
    }
}

const CPU_60: &str = "  - type: Resource\n    resource:\n      name: cpu\n      target:\n        type: Utilization\n        averageUtilization: 60\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_states_the_proposal_or_the_cause() {
    let s = Setup::start().await;

    // A working HPA: the proposal and decision are the calculator's on the ground truth.
    let file = s.hpa("working", CPU_60);
    let (ok, out, err) = explain(s.args(&file, "json")).await;
    assert!(ok, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let (pods, usage) = s.ground_truth();
    let current = pods.len() as i32;
    let expected = replicas::utilization(
        current,
        60,
        "cpu",
        None,
        PodInputs {
            pods: &pods,
            metrics: &usage,
            now_ms: s.clock.now_ms(),
            readiness: Readiness::default(),
            tolerances: Tolerances::default(),
        },
    )
    .unwrap();
    let metric = &report["metrics"][0];
    assert_eq!(metric["result"]["status"], "proposal", "{metric:#}");
    assert_eq!(metric["result"]["current"], expected.current, "{metric:#}");
    assert_eq!(
        metric["result"]["replicas"], expected.replicas,
        "{metric:#}"
    );
    assert_eq!(report["target"]["spec_replicas"], current);
    assert_eq!(report["pod_count"], pods.len());
    assert!(pods.len() > 1, "a Deployment with several pods");
    let history = History::default();
    let decided = decision::decide(
        &DecisionInput {
            current,
            min: 1,
            max: 50,
            behavior: None,
            history: &history,
            now_ms: s.clock.now_ms(),
            downscale_window_ms: behavior::DOWNSCALE_STABILIZATION_MS,
        },
        &[Some(expected.replicas)],
    );
    assert_eq!(
        report["decision"]["normalized"]["replicas"].as_i64(),
        decided.replicas().map(i64::from),
        "{:#}",
        report["decision"]
    );
    // The request the HPA makes, through the API server's aggregated path.
    let path = metric["requests"][0]["path"].as_str().unwrap();
    assert_eq!(
        path,
        format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods?labelSelector=app%3D{}",
            s.namespace, s.deployment
        )
    );
    assert_eq!(metric["requests"][0]["status"], 200);

    // An External AverageValue target: the total over the target's replicas, ceil(total /
    // target) proposed, then capped by the default scale-up limit max(2 × current, 4).
    let file = s.hpa(
        "external",
        &format!(
            "  - type: External\n    external:\n      metric:\n        name: cluster_pods_served\n        selector:\n          matchLabels:\n            namespace: {}\n      target:\n        type: AverageValue\n        averageValue: \"1\"\n",
            s.namespace
        ),
    );
    let (ok, out, err) = explain(s.args(&file, "json")).await;
    assert!(ok, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let served = s
        .rig
        .cluster
        .read()
        .pods
        .values()
        .filter(|p| p.namespace == s.namespace && p.phase == "Running")
        .count() as i64;
    let result = &report["metrics"][0]["result"];
    assert_eq!(result["status"], "proposal", "{result:#}");
    assert_eq!(result["replicas"], served, "{result:#}");
    assert_eq!(
        result["current"],
        (served * 1000 + i64::from(current) - 1) / i64::from(current),
        "{result:#}"
    );
    let normalized = &report["decision"]["normalized"];
    assert_eq!(
        normalized["replicas"],
        (2 * current).max(4),
        "{normalized:#}"
    );
    assert_eq!(normalized["limit"], "ScaleUpLimit", "{normalized:#}");

    // A metric no one publishes: discovery (v1beta2, the preferred version) lacks it.
    let file = s.hpa(
        "missing",
        "  - type: Pods\n    pods:\n      metric:\n        name: no_such_metric\n      target:\n        type: AverageValue\n        averageValue: \"1\"\n",
    );
    let (ok, out, err) = explain(s.args(&file, "text")).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("FAILED (no such metric in discovery)"),
        "{out}"
    );
    assert!(
        out.contains("custom.metrics.k8s.io/v1beta2 discovery does not list pods/no_such_metric"),
        "{out}"
    );
    assert!(out.contains("HOLD at"), "{out}");

    // A series selector matching nothing: the HPA gets an empty list; explain says why.
    let file = s.hpa(
        "selector",
        "  - type: Pods\n    pods:\n      metric:\n        name: cpu_usage\n        selector:\n          matchLabels:\n            code: \"500\"\n      target:\n        type: AverageValue\n        averageValue: 100m\n",
    );
    let (ok, out, err) = explain(s.args(&file, "text")).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("FAILED (selector matched nothing)"), "{out}");
    assert!(out.contains("with selector code=500"), "{out}");
    assert!(out.contains("metricLabelSelector=code%3D500"), "{out}");

    // Stale values: no cycle for longer than the maximum age (3 × 15 s).
    s.clock.advance(Duration::from_secs(120));
    let file = s.hpa(
        "stale",
        &format!(
            "{CPU_60}  - type: Pods\n    pods:\n      metric:\n        name: cpu_usage\n      target:\n        type: AverageValue\n        averageValue: 100m\n"
        ),
    );
    let (ok, out, err) = explain(s.args(&file, "json")).await;
    assert!(ok, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    for metric in report["metrics"].as_array().unwrap() {
        assert_eq!(metric["result"]["status"], "failed", "{metric:#}");
        assert_eq!(metric["result"]["cause"], "stale", "{metric:#}");
        let message = metric["result"]["message"].as_str().unwrap();
        assert!(
            message.contains("older than the maximum age 45 s"),
            "{message}"
        );
    }
    assert_eq!(
        report["decision"]["kind"], "hold",
        "{:#}",
        report["decision"]
    );

    s.rig.shutdown().await;
}

#[tokio::test]
async fn a_file_that_is_not_an_hpa_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n").unwrap();
    let (ok, _, err) = explain(vec!["-f".into(), file.display().to_string()]).await;
    assert!(!ok);
    assert!(err.contains("pod.yaml"), "{err}");
    assert!(
        err.contains(
            "expected apiVersion autoscaling/v2 and kind HorizontalPodAutoscaler, found v1 Pod"
        ),
        "{err}"
    );
}
