//! The `prometheus-adapter-compat` plugin end to end against a real Prometheus: a
//! prometheus-adapter config served unchanged through the aggregated APIs with `kubectl`, one
//! short query per rule for every pod at once, exact values, external rules with and without
//! `namespaced: false`, a Prometheus stopped mid-run failing only the metrics that read it, and a
//! namespace of 2,000 pods served from short queries (read from Prometheus' own query log).

mod common;

use std::fmt::Write as _;

use common::{quantity, raw};
use metrics_gateway::demo::RigPlugin;
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster};
use metrics_gateway_testkit::prometheus::{END_MS, Prometheus, SPAN_SECS, STEP_SECS};

const CUSTOM: &str = "/apis/custom.metrics.k8s.io/v1beta2";
const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1";

/// prometheus-adapter's documented sample rules: a counter rate per pod, and an external queue
/// gauge served both cluster-wide (`namespaced: false`) and per namespace.
const ADAPTER_CONFIG: &str = r#"
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: '{__name__="queue_depth",queue!=""}'
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)
  resources:
    namespaced: false
- seriesQuery: '{__name__="queue_depth",queue!=""}'
  name: {matches: "^(.*)$", as: "${1}_in_namespace"}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)
  resources:
    overrides:
      namespace: {resource: namespace}
"#;

/// Queues: (namespace index, queue name, depth). Names with regex metacharacters must not
/// over-match.
const QUEUES: [(usize, &str, f64); 3] = [
    (0, "orders", 42.0),
    (0, "orders.retry", 7.0),
    (1, "a+b(c)|d", 3.0),
];

fn spec() -> ClusterSpec {
    ClusterSpec {
        nodes: 2,
        pods_per_node: 5,
        namespaces: 2,
        ..ClusterSpec::default()
    }
}

/// Requests per second of pod `i`'s `http_requests_total`.
fn rate(i: usize) -> f64 {
    (i + 1) as f64 / 4.0
}

fn openmetrics(pods: &[(String, String)], namespaces: &[String]) -> String {
    let end = END_MS / 1000;
    let times: Vec<i64> = (0..=SPAN_SECS / STEP_SECS)
        .map(|k| end - SPAN_SECS + k * STEP_SECS)
        .collect();
    let mut out = String::from("# TYPE http_requests counter\n");
    for (i, (ns, pod)) in pods.iter().enumerate() {
        for &t in &times {
            let v = rate(i) * (t - times[0]) as f64;
            let _ = writeln!(
                out,
                "http_requests_total{{namespace=\"{ns}\",pod=\"{pod}\"}} {v} {t}"
            );
        }
    }
    out.push_str("# TYPE queue_depth gauge\n");
    for (ns, queue, depth) in QUEUES {
        for &t in &times {
            let _ = writeln!(
                out,
                "queue_depth{{namespace=\"{}\",queue=\"{queue}\"}} {depth} {t}",
                namespaces[ns]
            );
        }
    }
    out.push_str("# EOF\n");
    out
}

/// External values as (queue, value), sorted.
fn queues(list: &serde_json::Value) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["metricLabels"]["queue"].as_str().unwrap().to_owned(),
                quantity(i["value"].as_str().unwrap()),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_config_is_served_unchanged_with_one_query_per_rule() {
    let (pods, namespaces) = common::pods_and_namespaces(&spec());
    let mut prom = Prometheus::start_with(&openmetrics(&pods, &namespaces)).unwrap();
    let url = prom.url();
    let mut config = toml::Table::new();
    config.insert("adapter_config".into(), ADAPTER_CONFIG.into());
    let plugin = RigPlugin {
        config,
        ..RigPlugin::new(
            "adapter",
            common::plugin_wasm("prometheus-adapter-compat"),
            "",
        )
    };
    let (rig, _) = common::rig_with(spec(), |o| {
        o.clock = SimClock::manual(END_MS);
        o.plugins = vec![plugin];
        o.extra_config = common::prometheus_backend(&url);
    })
    .await;
    common::assert_plugins_loaded(&rig);
    // Discovery, then the replan's queries, then their values.
    for _ in 0..3 {
        rig.gateway.collector.run_cycle().await;
    }
    let kc = rig.dir().join("user.kubeconfig");
    rig.write_user_kubeconfig(&kc).unwrap();

    // Discovery lists what prometheus-adapter would, external metrics namespaced only when the
    // rule says so.
    let custom = raw(&kc, CUSTOM);
    let names: Vec<&str> = custom["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"pods/http_requests_per_second"),
        "{names:?}"
    );
    assert!(
        names.contains(&"namespaces/http_requests_per_second"),
        "{names:?}"
    );
    let external = raw(&kc, EXTERNAL);
    let scoped: Vec<(&str, bool)> = external["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(scoped.contains(&("queue_depth", false)), "{scoped:?}");
    assert!(
        scoped.contains(&("queue_depth_in_namespace", true)),
        "{scoped:?}"
    );

    // Every pod's exact rate, per namespace, from one query per cycle.
    for ns in &namespaces {
        let list = raw(
            &kc,
            &format!("{CUSTOM}/namespaces/{ns}/pods/*/http_requests_per_second"),
        );
        let mut got: Vec<(String, f64)> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                assert_eq!(i["describedObject"]["kind"], "Pod");
                assert_eq!(
                    i["timestamp"], "2026-01-01T00:00:00Z",
                    "Prometheus' sample time"
                );
                (
                    i["describedObject"]["name"].as_str().unwrap().to_owned(),
                    quantity(i["value"].as_str().unwrap()),
                )
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let want: Vec<(String, f64)> = pods
            .iter()
            .enumerate()
            .filter(|(_, (pns, _))| pns == ns)
            .map(|(i, (_, pod))| (pod.clone(), rate(i)))
            .collect();
        assert_eq!(got.len(), want.len(), "{ns}: {got:?}");
        for ((gp, gv), (wp, wv)) in got.iter().zip(&want) {
            assert_eq!(gp, wp);
            assert!((gv - wv).abs() < 1e-3, "{gp}: {gv} != {wv}");
        }
    }

    // External: cluster-wide sees every queue from any namespace; the namespaced rule only its
    // own namespace's; a label selector with metacharacters matches exactly one queue.
    let all = queues(&raw(
        &kc,
        &format!("{EXTERNAL}/namespaces/{}/queue_depth", namespaces[1]),
    ));
    assert_eq!(
        all,
        vec![
            ("a+b(c)|d".into(), 3.0),
            ("orders".into(), 42.0),
            ("orders.retry".into(), 7.0)
        ]
    );
    let own = queues(&raw(
        &kc,
        &format!(
            "{EXTERNAL}/namespaces/{}/queue_depth_in_namespace",
            namespaces[0]
        ),
    ));
    assert_eq!(
        own,
        vec![("orders".into(), 42.0), ("orders.retry".into(), 7.0)]
    );
    let one = queues(&raw(
        &kc,
        &format!(
            "{EXTERNAL}/namespaces/{}/queue_depth?labelSelector=queue%3Dorders",
            namespaces[0]
        ),
    ));
    assert_eq!(one, vec![("orders".into(), 42.0)]);

    // The queries Prometheus received are short: no object names in them.
    let metrics = common::self_metrics(&rig);
    assert!(
        metrics.contains(
            "metrics_gateway_prometheus_queries_total{backend=\"main\",outcome=\"success\"}"
        ),
        "{metrics}"
    );

    // Prometheus stopped: the plugin's metrics become errors naming the failure, the core
    // metrics keep serving; restarted: values come back without a gateway restart.
    prom.stop();
    rig.gateway.collector.run_cycle().await;
    let path = format!(
        "{CUSTOM}/namespaces/{}/pods/*/http_requests_per_second",
        namespaces[0]
    );
    let err = common::try_raw(&kc, &path).unwrap_err();
    assert!(
        err.contains("InternalError") || err.contains("500") || err.contains("main"),
        "{err}"
    );
    assert!(
        common::try_raw(
            &kc,
            &format!(
                "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
                namespaces[0]
            )
        )
        .is_ok(),
        "resource metrics do not depend on Prometheus"
    );
    prom.restart().unwrap();
    rig.gateway.collector.run_cycle().await;
    let back = common::try_raw(&kc, &path).expect("values are back after the restart");
    assert!(!back["items"].as_array().unwrap().is_empty(), "{back}");
}

/// The pods rule alone (prometheus-adapter's documented counter-rate rule).
const PODS_RULE: &str = r#"
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
"#;

/// Upper bound on any query the gateway sends, whatever the number of pods.
const MAX_QUERY_BYTES: usize = 512;

/// `(pod, value)` of a custom metrics list, sorted by pod.
fn pod_values(list: &serde_json::Value) -> Vec<(String, f64)> {
    let mut got: Vec<(String, f64)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["describedObject"]["kind"], "Pod");
            (
                i["describedObject"]["name"].as_str().unwrap().to_owned(),
                quantity(i["value"].as_str().unwrap()),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    got
}

fn assert_values(got: &[(String, f64)], want: &[(String, f64)]) {
    assert_eq!(got.len(), want.len());
    for ((gp, gv), (wp, wv)) in got.iter().zip(want) {
        assert_eq!(gp, wp);
        assert!((gv - wv).abs() < 1e-3, "{gp}: {gv} != {wv}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_of_2000_pods_is_served_from_one_short_query_per_rule() {
    // 4,000 pods round robin over two namespaces: 2,000 in `default`, 2,000 in `ns-1`.
    let spec = ClusterSpec {
        nodes: 8,
        pods_per_node: 500,
        containers_per_pod: (1, 1),
        namespaces: 2,
        ..ClusterSpec::default()
    };
    let (pods, namespaces) = common::pods_and_namespaces(&spec);
    let ns = "default";
    assert_eq!(pods.iter().filter(|(pns, _)| pns == ns).count(), 2000);
    let prom = Prometheus::start_with(&openmetrics(&pods, &namespaces)).unwrap();
    let url = prom.url();
    let mut config = toml::Table::new();
    config.insert("adapter_config".into(), PODS_RULE.into());
    let plugin = RigPlugin {
        config,
        ..RigPlugin::new(
            "adapter",
            common::plugin_wasm("prometheus-adapter-compat"),
            "",
        )
    };
    let (rig, _) = common::rig_with(spec.clone(), |o| {
        o.clock = SimClock::manual(END_MS);
        o.plugins = vec![plugin];
        o.extra_config = common::prometheus_backend(&url);
    })
    .await;
    common::assert_plugins_loaded(&rig);
    // Discovery, then the replan's queries, then their values.
    for _ in 0..3 {
        rig.gateway.collector.run_cycle().await;
    }

    // (a) One cycle's queries: each distinct (one per rule and resource, none repeated), short
    // whatever the pod count.
    let before = prom.queries().unwrap().len();
    rig.gateway.collector.run_cycle().await;
    let cycle: Vec<String> = prom.queries().unwrap().split_off(before);
    assert!(!cycle.is_empty(), "the cycle queried Prometheus");
    // The rule serves pods and namespaces: at most one query for each.
    assert!(cycle.len() <= 2, "{cycle:#?}");
    let distinct: std::collections::BTreeSet<&String> = cycle.iter().collect();
    assert_eq!(distinct.len(), cycle.len(), "a query repeated: {cycle:#?}");
    for q in &cycle {
        assert!(q.len() < MAX_QUERY_BYTES, "{} bytes: {q}", q.len());
    }
    // The next cycle sends the same queries again, no more (in any order: they run
    // concurrently).
    rig.gateway.collector.run_cycle().await;
    let again = prom.queries().unwrap().split_off(before + cycle.len());
    assert_eq!(again.len(), cycle.len(), "{again:#?}");
    assert_eq!(
        again.iter().collect::<std::collections::BTreeSet<_>>(),
        distinct
    );

    // (b) `*` returns every pod of the namespace with its exact rate, and answering costs
    // Prometheus nothing (served from the snapshot).
    let kc = rig.dir().join("user.kubeconfig");
    rig.write_user_kubeconfig(&kc).unwrap();
    let sent = prom.queries().unwrap().len();
    let all = pod_values(&raw(
        &kc,
        &format!("{CUSTOM}/namespaces/{ns}/pods/*/http_requests_per_second"),
    ));
    let want: Vec<(String, f64)> = pods
        .iter()
        .enumerate()
        .filter(|(_, (pns, _))| pns == ns)
        .map(|(i, (_, pod))| (pod.clone(), rate(i)))
        .collect();
    assert_eq!(all.len(), 2000);
    assert_values(&all, &want);

    // (c) A label selector returns exactly the pods with that label (from the cluster model).
    let cluster = SimCluster::generate(&spec, SimClock::manual(END_MS));
    let selected: std::collections::BTreeSet<String> = cluster
        .read()
        .pods
        .values()
        .filter(|p| p.namespace == ns && p.labels.get("app").is_some_and(|a| a == "app-4"))
        .map(|p| p.name.clone())
        .collect();
    assert!(
        !selected.is_empty() && selected.len() < 2000,
        "{}",
        selected.len()
    );
    let subset = pod_values(&raw(
        &kc,
        &format!(
            "{CUSTOM}/namespaces/{ns}/pods/*/http_requests_per_second?labelSelector=app%3Dapp-4"
        ),
    ));
    let want_subset: Vec<(String, f64)> = want
        .into_iter()
        .filter(|(p, _)| selected.contains(p))
        .collect();
    assert_eq!(want_subset.len(), selected.len());
    assert_values(&subset, &want_subset);
    assert_eq!(
        prom.queries().unwrap().len(),
        sent,
        "requests are served from the snapshot, not by querying Prometheus"
    );
}
