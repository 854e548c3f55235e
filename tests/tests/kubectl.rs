//! The real `kubectl` against the fake kube-apiserver, which proxies `metrics.k8s.io` to the
//! gateway as kube-aggregator does: `kubectl top` and `kubectl get --raw` of every path.

mod common;

use common::{kubectl, raw};

use std::collections::BTreeMap;
use std::time::Duration;

use metrics_gateway_testkit::cluster::ClusterSpec;
use serde_json::Value;

/// `2738m` → 2738 millicores; `3098Mi` → bytes.
fn parse_display(v: &str) -> f64 {
    if let Some(m) = v.strip_suffix('m') {
        m.parse().unwrap()
    } else if let Some(mi) = v.strip_suffix("Mi") {
        mi.parse::<f64>().unwrap() * 1024.0 * 1024.0
    } else {
        v.parse::<f64>().unwrap() * 1000.0
    }
}

/// kubectl rounds to 1m and 1Mi; beyond that, within 1 %.
fn assert_close(what: &str, shown: f64, truth: f64, unit: f64) {
    let tolerance = (truth * 0.01).max(unit);
    assert!(
        (shown - truth).abs() <= tolerance,
        "{what}: kubectl shows {shown}, ground truth {truth}"
    );
}

/// Parses a canonical CPU quantity (`123n`, `5m`, `2`) to nanocores.
fn cpu_nanocores(q: &str) -> f64 {
    match q.as_bytes().last() {
        Some(b'n') => q[..q.len() - 1].parse().unwrap(),
        Some(b'u') => q[..q.len() - 1].parse::<f64>().unwrap() * 1e3,
        Some(b'm') => q[..q.len() - 1].parse::<f64>().unwrap() * 1e6,
        _ => q.parse::<f64>().unwrap() * 1e9,
    }
}

/// Parses a memory quantity (`12240Ki`, `1Mi`, `1k`, `4620`) to bytes.
fn memory_bytes(q: &str) -> f64 {
    for (suffix, factor) in [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ] {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<f64>().unwrap() * factor;
        }
    }
    q.parse().unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_top_and_raw_paths_match_ground_truth() {
    let spec = ClusterSpec {
        nodes: 6,
        pods_per_node: 5,
        containers_per_pod: (1, 3),
        namespaces: 3,
        ..ClusterSpec::default()
    };
    let (rig, clock) = common::rig(spec).await;
    rig.gateway.collector.run_cycle().await;
    clock.advance(Duration::from_secs(10));
    let report = rig.gateway.collector.run_cycle().await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!((report.nodes_served, report.pods_served), (6, 30));

    let kubeconfig = rig.dir().join("user.kubeconfig");
    rig.write_user_kubeconfig(&kubeconfig).unwrap();
    let (truth_nodes, truth_pods) = {
        let state = rig.cluster.read();
        let nodes: BTreeMap<String, (u64, u64)> = state
            .nodes
            .values()
            .map(|n| (n.name.clone(), state.node_usage(n)))
            .collect();
        let pods: BTreeMap<(String, String), (u64, u64)> = state
            .pods
            .values()
            .map(|p| {
                let cpu = p.containers.iter().map(|c| c.cpu_nanocores).sum();
                let mem = p.containers.iter().map(|c| c.memory_bytes).sum();
                ((p.namespace.clone(), p.name.clone()), (cpu, mem))
            })
            .collect();
        (nodes, pods)
    };

    // kubectl top nodes: every node, values within 1 %.
    let out = kubectl(&kubeconfig, &["top", "nodes", "--no-headers"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), truth_nodes.len(), "{out}");
    for row in &rows {
        let (cpu, mem) = truth_nodes[row[0]];
        assert_close(
            &format!("{} cpu", row[0]),
            parse_display(row[1]),
            cpu as f64 / 1e6,
            1.0,
        );
        assert_close(
            &format!("{} memory", row[0]),
            parse_display(row[3]),
            mem as f64,
            1048576.0,
        );
    }

    // kubectl top pods -A: every running pod.
    let out = kubectl(&kubeconfig, &["top", "pods", "-A", "--no-headers"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), truth_pods.len(), "{out}");
    for row in &rows {
        let (cpu, mem) = truth_pods[&(row[0].to_string(), row[1].to_string())];
        assert_close(
            &format!("{}/{} cpu", row[0], row[1]),
            parse_display(row[2]),
            cpu as f64 / 1e6,
            1.0,
        );
        assert_close(
            &format!("{}/{} memory", row[0], row[1]),
            parse_display(row[3]),
            mem as f64,
            1048576.0,
        );
    }

    // get --raw of every path, exact shapes, values within 0.1 % of ground truth.
    let nodes = raw(&kubeconfig, "/apis/metrics.k8s.io/v1beta1/nodes");
    assert_eq!(keys(&nodes), ["apiVersion", "items", "kind", "metadata"]);
    assert_eq!(
        (nodes["kind"].as_str(), nodes["apiVersion"].as_str()),
        (Some("NodeMetricsList"), Some("metrics.k8s.io/v1beta1"))
    );
    assert_eq!(nodes["items"].as_array().unwrap().len(), 6);
    for item in nodes["items"].as_array().unwrap() {
        assert_eq!(keys(item), ["metadata", "timestamp", "usage", "window"]);
        assert_eq!(
            keys(&item["metadata"]),
            ["creationTimestamp", "labels", "name"]
        );
        assert_eq!(item["window"], "10s");
        let (cpu, mem) = truth_nodes[item["metadata"]["name"].as_str().unwrap()];
        let got_cpu = cpu_nanocores(item["usage"]["cpu"].as_str().unwrap());
        assert!((got_cpu - cpu as f64).abs() <= cpu as f64 * 0.001, "{item}");
        assert_eq!(
            memory_bytes(item["usage"]["memory"].as_str().unwrap()),
            mem as f64,
            "{item}"
        );
    }
    let one = raw(&kubeconfig, "/apis/metrics.k8s.io/v1beta1/nodes/node-00003");
    assert_eq!(
        keys(&one),
        [
            "apiVersion",
            "kind",
            "metadata",
            "timestamp",
            "usage",
            "window"
        ]
    );
    assert_eq!(one["kind"], "NodeMetrics");

    let all = raw(&kubeconfig, "/apis/metrics.k8s.io/v1beta1/pods");
    assert_eq!(all["kind"], "PodMetricsList");
    assert_eq!(all["items"].as_array().unwrap().len(), 30);
    for item in all["items"].as_array().unwrap() {
        assert_eq!(
            keys(item),
            ["containers", "metadata", "timestamp", "window"]
        );
        assert_eq!(
            keys(&item["metadata"]),
            ["creationTimestamp", "labels", "name", "namespace"]
        );
        let key = (
            item["metadata"]["namespace"].as_str().unwrap().to_string(),
            item["metadata"]["name"].as_str().unwrap().to_string(),
        );
        let (cpu, mem) = truth_pods[&key];
        let containers = item["containers"].as_array().unwrap();
        let got_cpu: f64 = containers
            .iter()
            .map(|c| cpu_nanocores(c["usage"]["cpu"].as_str().unwrap()))
            .sum();
        let got_mem: f64 = containers
            .iter()
            .map(|c| memory_bytes(c["usage"]["memory"].as_str().unwrap()))
            .sum();
        assert!((got_cpu - cpu as f64).abs() <= cpu as f64 * 0.001, "{item}");
        assert_eq!(got_mem, mem as f64, "{item}");
        for c in containers {
            assert_eq!(keys(c), ["name", "usage"]);
            assert_eq!(keys(&c["usage"]), ["cpu", "memory"]);
        }
    }
    let default = raw(
        &kubeconfig,
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
    );
    let names: Vec<&str> = default["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = truth_pods
        .keys()
        .filter(|(ns, _)| ns == "default")
        .map(|(_, n)| n.as_str())
        .collect();
    assert_eq!(names, want, "namespace list is complete and sorted");
    let pod = raw(
        &kubeconfig,
        &format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{}",
            want[0]
        ),
    );
    assert_eq!(
        keys(&pod),
        [
            "apiVersion",
            "containers",
            "kind",
            "metadata",
            "timestamp",
            "window"
        ]
    );
    assert_eq!(pod["kind"], "PodMetrics");

    // Selectors through the aggregator.
    let web = raw(
        &kubeconfig,
        "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=tier%3Dweb",
    );
    assert!(
        web["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["metadata"]["labels"]["tier"] == "web")
    );
    assert!(!web["items"].as_array().unwrap().is_empty());

    // Discovery through the aggregator.
    let resources = raw(&kubeconfig, "/apis/metrics.k8s.io/v1beta1");
    assert_eq!(resources["kind"], "APIResourceList");

    // A pod that does not exist: kubectl reports the 404 Status.
    let err = common::try_raw(
        &kubeconfig,
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope",
    )
    .expect_err("no such pod");
    assert!(err.contains("NotFound"), "{err}");
    rig.shutdown().await;
}
