//! `metrics.k8s.io` from a real Prometheus (`metrics.resource_source = "plugins"`): the
//! `prometheus-adapter-compat` plugin with prometheus-adapter's shipped `resourceRules` over
//! backfilled cAdvisor and kubelet series of every container and node of a simulated cluster.
//! Exact values through the real `kubectl top pods` (with and without `--containers`),
//! `kubectl top nodes` and `kubectl get --raw`; the HPA controller's client computes a CPU
//! utilization from them; no kubelet is ever contacted; a pod missing one container's value is
//! left out; Prometheus stopped mid-run turns pods and nodes into 500s naming the plugin while
//! another plugin's custom metric keeps serving, and its restart on the same port brings the
//! values back without a gateway restart.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use common::{kubectl, raw};
use metrics_gateway::demo::{HPA_TOKEN, Rig, RigPlugin};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster, SimPod};
use metrics_gateway_testkit::hpa_client::{HpaClientError, HpaMetricsClient};
use metrics_gateway_testkit::prometheus::{END_MS, Prometheus, SPAN_SECS, STEP_SECS};

const METRICS: &str = "/apis/metrics.k8s.io/v1beta1";
const CUSTOM: &str = "/apis/custom.metrics.k8s.io/v1beta2";
/// The name the compat plugin runs under (errors must name it).
const PLUGIN: &str = "adapter";
/// prometheus-adapter's shipped `resourceRules` (deploy/manifests/config-map.yaml), unchanged:
/// `irate` over 4 minutes of cAdvisor's container counters and the kubelet's node counters,
/// working-set gauges, a 5-minute window.
const SHIPPED_RESOURCE_RULES: &str =
    include_str!("../../plugins/prometheus-adapter-compat/testdata/shipped-resource-rules.yaml");

fn spec() -> ClusterSpec {
    ClusterSpec {
        nodes: 3,
        pods_per_node: 4,
        containers_per_pod: (1, 3),
        namespaces: 2,
        ..ClusterSpec::default()
    }
}

/// CPU (nanocores) and memory (bytes) of a container or node.
type Usage = (u64, u64);

/// The ground truth the data is written from: the simulated cluster's usage.
#[derive(Debug, Clone)]
struct Truth {
    /// (namespace, pod) → container → usage, in spec order.
    pods: BTreeMap<(String, String), Vec<(String, Usage)>>,
    /// node → usage.
    nodes: BTreeMap<String, Usage>,
    /// The pod whose last container has no memory series (left out of `metrics.k8s.io`).
    partial: (String, String),
}

impl Truth {
    fn of(cluster: &SimCluster) -> Truth {
        let state = cluster.read();
        let pods: BTreeMap<(String, String), Vec<(String, Usage)>> = state
            .pods
            .values()
            .map(|p| {
                let containers = p
                    .containers
                    .iter()
                    .map(|c| (c.name.clone(), (c.cpu_nanocores, c.memory_bytes)))
                    .collect();
                ((p.namespace.clone(), p.name.clone()), containers)
            })
            .collect();
        let nodes = state
            .nodes
            .values()
            .map(|n| (n.name.clone(), state.node_usage(n)))
            .collect();
        let partial = pods
            .iter()
            .find(|(_, cs)| cs.len() > 1)
            .map(|(k, _)| k.clone())
            .expect("a pod with two containers");
        Truth {
            pods,
            nodes,
            partial,
        }
    }

    /// The pods `metrics.k8s.io` serves: all but the partial one.
    fn served(&self) -> impl Iterator<Item = (&(String, String), &Vec<(String, Usage)>)> {
        self.pods.iter().filter(|(k, _)| **k != self.partial)
    }
}

/// The sample times of the data, seconds.
fn times() -> Vec<i64> {
    let end = END_MS / 1000;
    (0..=SPAN_SECS / STEP_SECS)
        .map(|k| end - SPAN_SECS + k * STEP_SECS)
        .collect()
}

/// One series: `value(t)` at every sample time.
fn series(out: &mut String, name: &str, labels: &str, value: impl Fn(i64) -> f64) {
    for t in times() {
        let _ = writeln!(out, "{name}{{{labels}}} {} {t}", value(t));
    }
}

/// cAdvisor's and the kubelet's series as Prometheus scrapes them, for `truth`: per container
/// (with cAdvisor's pod-level `container=""` and pause `container="POD"` series, which must
/// not count), per node, and for a pod and a node that no longer exist.
fn openmetrics(truth: &Truth) -> String {
    let t0 = times()[0];
    let counter = |nanocores: u64| move |t: i64| nanocores as f64 / 1e9 * (t - t0) as f64;
    let gauge = |bytes: u64| move |_| bytes as f64;
    let gone = (
        "default".to_owned(),
        "deleted-pod".to_owned(),
        vec![("app".to_owned(), (7_000_000, 7 << 20))],
    );
    let pods = || {
        truth
            .pods
            .iter()
            .map(|((ns, pod), cs)| (ns, pod, cs))
            .chain(std::iter::once((&gone.0, &gone.1, &gone.2)))
    };
    let mut out = String::from("# TYPE container_cpu_usage_seconds counter\n");
    for (ns, pod, containers) in pods() {
        let at = |c: &str| format!("namespace=\"{ns}\",pod=\"{pod}\",container=\"{c}\"");
        let total: u64 = containers.iter().map(|(_, (cpu, _))| cpu).sum();
        for (name, (cpu, _)) in containers {
            series(
                &mut out,
                "container_cpu_usage_seconds_total",
                &at(name),
                counter(*cpu),
            );
        }
        series(
            &mut out,
            "container_cpu_usage_seconds_total",
            &at(""),
            counter(total),
        );
        series(
            &mut out,
            "container_cpu_usage_seconds_total",
            &at("POD"),
            counter(1_000),
        );
    }
    out.push_str("# TYPE container_memory_working_set_bytes gauge\n");
    for (ns, pod, containers) in pods() {
        let at = |c: &str| format!("namespace=\"{ns}\",pod=\"{pod}\",container=\"{c}\"");
        let partial = (ns, pod) == (&truth.partial.0, &truth.partial.1);
        let measured = containers.len() - usize::from(partial);
        let total: u64 = containers.iter().map(|(_, (_, mem))| mem).sum();
        for (name, (_, mem)) in &containers[..measured] {
            series(
                &mut out,
                "container_memory_working_set_bytes",
                &at(name),
                gauge(*mem),
            );
        }
        series(
            &mut out,
            "container_memory_working_set_bytes",
            &at(""),
            gauge(total),
        );
        series(
            &mut out,
            "container_memory_working_set_bytes",
            &at("POD"),
            gauge(4096),
        );
    }
    let nodes = || {
        truth
            .nodes
            .iter()
            .map(|(n, u)| (n.as_str(), *u))
            .chain(std::iter::once(("node-gone", (5_000_000, 5 << 30))))
    };
    out.push_str("# TYPE node_cpu_usage_seconds counter\n");
    for (node, (cpu, _)) in nodes() {
        let labels = format!("node=\"{node}\"");
        series(
            &mut out,
            "node_cpu_usage_seconds_total",
            &labels,
            counter(cpu),
        );
    }
    out.push_str("# TYPE node_memory_working_set_bytes gauge\n");
    for (node, (_, mem)) in nodes() {
        let labels = format!("node=\"{node}\"");
        series(
            &mut out,
            "node_memory_working_set_bytes",
            &labels,
            gauge(mem),
        );
    }
    out.push_str("# EOF\n");
    out
}

/// kubectl's CPU column: `Quantity.MilliValue()`, which rounds up.
fn top_cpu(nanocores: u64) -> String {
    format!("{}m", nanocores.div_ceil(1_000_000))
}

/// kubectl's memory column: whole MiB, rounded down.
fn top_memory(bytes: u64) -> String {
    format!("{}Mi", bytes >> 20)
}

/// The rows of a `kubectl top … --no-headers` output, split on whitespace, sorted.
fn rows(out: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = out
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    rows.sort();
    rows
}

/// Parses a canonical CPU quantity (`123n`, `5m`, `2`) to nanocores.
fn cpu_nanocores(q: &str) -> u64 {
    let (n, factor) = match q.as_bytes().last() {
        Some(b'n') => (&q[..q.len() - 1], 1),
        Some(b'u') => (&q[..q.len() - 1], 1_000),
        Some(b'm') => (&q[..q.len() - 1], 1_000_000),
        _ => (q, 1_000_000_000),
    };
    n.parse::<u64>().unwrap_or_else(|e| panic!("{q:?}: {e}")) * factor
}

/// Parses a memory quantity (`12240Ki`, `1Mi`, `4620`) to bytes.
fn memory_bytes(q: &str) -> u64 {
    for (suffix, factor) in [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)] {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap() * factor;
        }
    }
    q.parse().unwrap_or_else(|e| panic!("{q:?}: {e}"))
}

/// RFC 3339 seconds of `ms`, as the API serves timestamps.
fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Checks every value `kubectl top` and `kubectl get --raw` show against `truth`, stamped `now`.
fn assert_exact(kc: &Path, truth: &Truth, now_ms: i64) {
    // kubectl top pods -A: every pod but the partial one, containers summed.
    let want: Vec<Vec<String>> = truth
        .served()
        .map(|((ns, pod), cs)| {
            let cpu = cs.iter().map(|(_, (c, _))| c).sum();
            let mem = cs.iter().map(|(_, (_, m))| m).sum();
            vec![ns.clone(), pod.clone(), top_cpu(cpu), top_memory(mem)]
        })
        .collect();
    let got = rows(&kubectl(kc, &["top", "pods", "-A", "--no-headers"]));
    assert_eq!(got, want, "kubectl top pods -A");

    // kubectl top pods -A --containers: each container on its own.
    let mut want: Vec<Vec<String>> = truth
        .served()
        .flat_map(|((ns, pod), cs)| {
            cs.iter().map(move |(c, (cpu, mem))| {
                vec![
                    ns.clone(),
                    pod.clone(),
                    c.clone(),
                    top_cpu(*cpu),
                    top_memory(*mem),
                ]
            })
        })
        .collect();
    want.sort();
    let got = rows(&kubectl(
        kc,
        &["top", "pods", "-A", "--containers", "--no-headers"],
    ));
    assert_eq!(got, want, "kubectl top pods -A --containers");

    // Raw pod lists: nanocore precision, exact bytes, Prometheus' sample time, the rules'
    // window; no `POD` container.
    for ns in ["default", "ns-1"] {
        let list = raw(kc, &format!("{METRICS}/namespaces/{ns}/pods"));
        assert_eq!(list["kind"], "PodMetricsList");
        let got: BTreeMap<String, Vec<(String, Usage)>> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                assert_eq!(item["timestamp"], rfc3339(now_ms), "{item}");
                assert_eq!(item["window"], "5m0s", "{item}");
                let containers = item["containers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap().to_owned(),
                            (
                                cpu_nanocores(c["usage"]["cpu"].as_str().unwrap()),
                                memory_bytes(c["usage"]["memory"].as_str().unwrap()),
                            ),
                        )
                    })
                    .collect();
                (
                    item["metadata"]["name"].as_str().unwrap().to_owned(),
                    containers,
                )
            })
            .collect();
        let want: BTreeMap<String, Vec<(String, Usage)>> = truth
            .served()
            .filter(|((pns, _), _)| pns == ns)
            .map(|((_, pod), cs)| (pod.clone(), cs.clone()))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(got, want, "{METRICS}/namespaces/{ns}/pods");
    }

    // kubectl top nodes and the raw node list: every node of the cluster, none else.
    let want: Vec<Vec<String>> = truth
        .nodes
        .iter()
        .map(|(n, (cpu, mem))| vec![n.clone(), top_cpu(*cpu), top_memory(*mem)])
        .collect();
    let got: Vec<Vec<String>> = rows(&kubectl(kc, &["top", "nodes", "--no-headers"]))
        .into_iter()
        // NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)
        .map(|r| vec![r[0].clone(), r[1].clone(), r[3].clone()])
        .collect();
    assert_eq!(got, want, "kubectl top nodes");
    let nodes = raw(kc, &format!("{METRICS}/nodes"));
    let got: BTreeMap<String, Usage> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert_eq!(item["timestamp"], rfc3339(now_ms), "{item}");
            assert_eq!(item["window"], "5m0s", "{item}");
            (
                item["metadata"]["name"].as_str().unwrap().to_owned(),
                (
                    cpu_nanocores(item["usage"]["cpu"].as_str().unwrap()),
                    memory_bytes(item["usage"]["memory"].as_str().unwrap()),
                ),
            )
        })
        .collect();
    assert_eq!(got, truth.nodes, "{METRICS}/nodes");
}

/// What the HPA scales in the test: the pods of one `tier` in one namespace, all served.
struct HpaTarget {
    namespace: String,
    /// The label selector (`tier=…`).
    selector: String,
    /// Its pods, sorted.
    pods: Vec<String>,
    /// The pods' summed CPU requests, millicores.
    requests_millis: u64,
    /// The CPU utilization (%) the HPA controller computes: per container `MilliValue()`
    /// summed, × 100, divided by the summed requests (integer division).
    utilization: i64,
}

impl HpaTarget {
    fn find(rig: &Rig, truth: &Truth) -> HpaTarget {
        let state = rig.cluster.read();
        let mut groups: BTreeMap<(String, String), Vec<&SimPod>> = BTreeMap::new();
        for pod in state.pods.values() {
            groups
                .entry((pod.namespace.clone(), pod.labels["tier"].clone()))
                .or_default()
                .push(pod);
        }
        let ((namespace, tier), pods) = groups
            .into_iter()
            .find(|(_, pods)| {
                pods.len() > 1
                    && pods
                        .iter()
                        .all(|p| (p.namespace.clone(), p.name.clone()) != truth.partial)
            })
            .expect("a tier of several fully measured pods in a namespace");
        let containers = || pods.iter().flat_map(|p| &p.containers);
        let usage: u64 = containers()
            .map(|c| c.cpu_nanocores.div_ceil(1_000_000))
            .sum();
        let requests_millis: u64 = containers().map(|c| c.cpu_request_millis).sum();
        let mut names: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
        names.sort();
        HpaTarget {
            namespace,
            selector: format!("tier={tier}"),
            pods: names,
            requests_millis,
            utilization: (usage * 100 / requests_millis) as i64,
        }
    }

    /// The utilization and pods the HPA client reads from `metrics.k8s.io`, or its error.
    async fn read(&self, hpa: &HpaMetricsClient) -> Result<(i64, Vec<String>), HpaClientError> {
        let list = hpa
            .resource_metrics(&self.namespace, &self.selector)
            .await?;
        let mut names = Vec::new();
        let mut usage = 0;
        for pod in &list.items {
            names.push(pod.metadata.name.clone().unwrap());
            usage += pod
                .containers
                .iter()
                .map(|c| c.usage["cpu"].milli_value())
                .sum::<i64>();
        }
        names.sort();
        Ok((usage * 100 / self.requests_millis as i64, names))
    }
}

/// Requests to every simulated kubelet so far.
fn kubelet_requests(rig: &Rig) -> u64 {
    let nodes: Vec<String> = rig.cluster.read().nodes.keys().cloned().collect();
    nodes.iter().map(|n| rig.kubelets.scrape_count(n)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_k8s_io_is_served_from_prometheus_resource_rules() {
    let truth = Truth::of(&SimCluster::generate(&spec(), SimClock::manual(END_MS)));
    let mut prom = Prometheus::start_with(&openmetrics(&truth)).unwrap();
    let url = prom.url();
    let mut config = toml::Table::new();
    config.insert("adapter_config".into(), SHIPPED_RESOURCE_RULES.into());
    let adapter = RigPlugin {
        config,
        ..RigPlugin::new(PLUGIN, common::plugin_wasm("prometheus-adapter-compat"), "")
    };
    // Another plugin's custom metric, from the cluster state: it must not depend on Prometheus.
    let restarts = RigPlugin::new("restarts", common::plugin_wasm("restarts"), "");
    // The gateway's clock, at the data's end (Prometheus evaluates the queries at its time).
    let clock = SimClock::manual(END_MS);
    let (rig, _) = common::rig_with(spec(), |o| {
        o.clock = clock.clone();
        o.plugins = vec![adapter, restarts];
        o.extra_config = format!(
            "[metrics]\nresource_source = \"plugins\"\n\n\
             [[prometheus]]\nname = \"main\"\nurl = \"{url}\"\n"
        );
    })
    .await;
    common::assert_plugins_loaded(&rig);
    assert_eq!(
        Truth::of(&rig.cluster).pods,
        truth.pods,
        "the data was written for the rig's cluster"
    );
    let kc = rig.dir().join("user.kubeconfig");
    rig.write_user_kubeconfig(&kc).unwrap();

    // Two cycles 15 s apart (restarts needs two samples); the values are those of the last.
    rig.gateway.collector.run_cycle().await;
    clock.advance(Duration::from_secs(15));
    rig.gateway.collector.run_cycle().await;
    assert_exact(&kc, &truth, clock.now_ms());

    // The partial pod is not served: a pod with a container unmeasured would under-report.
    let (ns, pod) = &truth.partial;
    let err = common::try_kubectl(
        &kc,
        &[
            "get",
            "--raw",
            &format!("{METRICS}/namespaces/{ns}/pods/{pod}"),
        ],
    )
    .unwrap_err();
    assert!(err.contains("NotFound"), "{err}");

    // The HPA controller's client computes the exact utilization.
    let hpa = HpaMetricsClient::new(&rig.apiserver.url(), &rig.apiserver.ca_pem(), HPA_TOKEN)
        .expect("a client for the fake API server");
    let target = HpaTarget::find(&rig, &truth);
    let want = (target.utilization, target.pods.clone());
    assert_eq!(
        target.read(&hpa).await.unwrap(),
        want,
        "HPA CPU utilization"
    );

    // Upstream load: one query per metric and scope per cycle (cpu and memory of containers
    // and of nodes), whatever the number of pods and requests.
    let before = prom.queries().unwrap().len();
    rig.gateway.collector.run_cycle().await;
    let cycle = prom.queries().unwrap().split_off(before);
    assert_eq!(cycle.len(), 4, "{cycle:#?}");
    assert_eq!(cycle.iter().collect::<BTreeSet<_>>().len(), 4, "{cycle:#?}");

    // The other plugin's custom metric is served.
    let restarts_path = format!("{CUSTOM}/namespaces/default/pods/*/container_restarts_per_minute");
    let served = raw(&kc, &restarts_path);
    assert!(!served["items"].as_array().unwrap().is_empty(), "{served}");

    // Prometheus stopped: pods and nodes become 500s naming the plugin and the backend, the
    // HPA client gets the error (so the HPA holds), the other plugin keeps serving.
    prom.stop();
    clock.advance(Duration::from_secs(15));
    rig.gateway.collector.run_cycle().await;
    for path in [
        format!("{METRICS}/namespaces/default/pods"),
        format!("{METRICS}/pods"),
        format!("{METRICS}/nodes"),
    ] {
        let err = common::try_kubectl(&kc, &["get", "--raw", &path]).unwrap_err();
        assert!(err.contains("InternalError"), "{path}: {err}");
        assert!(err.contains(&format!("plugin {PLUGIN}")), "{path}: {err}");
        assert!(err.contains("main"), "{path}: the backend: {err}");
    }
    let err = common::try_kubectl(&kc, &["top", "pods", "-A"]).unwrap_err();
    assert!(err.contains(PLUGIN), "kubectl top pods: {err}");
    match target.read(&hpa).await {
        Err(HpaClientError::Status {
            status, message, ..
        }) => {
            assert_eq!(status, 500);
            assert!(message.contains(&format!("plugin {PLUGIN}")), "{message}");
        }
        other => panic!("the HPA client must see the failure: {other:?}"),
    }
    let served = raw(&kc, &restarts_path);
    assert!(!served["items"].as_array().unwrap().is_empty(), "{served}");
    let telemetry = common::self_metrics(&rig);
    assert!(
        telemetry.contains("metrics_gateway_prometheus_backend_up{backend=\"main\"} 0"),
        "{telemetry}"
    );

    // Restarted on the same port: the next cycle brings every value back, no gateway restart.
    prom.restart().unwrap();
    clock.advance(Duration::from_secs(15));
    rig.gateway.collector.run_cycle().await;
    assert_exact(&kc, &truth, clock.now_ms());
    assert_eq!(
        target.read(&hpa).await.unwrap(),
        want,
        "HPA after the restart"
    );

    // Not one request reached a kubelet, in any cycle.
    assert_eq!(kubelet_requests(&rig), 0, "kubelets were contacted");
    rig.shutdown().await;
}
