//! The shipped plugins, built from source by `metrics-gateway plugin build`, loaded by the
//! gateway and served through the fake aggregator to the real `kubectl`: custom metrics on both
//! API versions with their exact shapes, both selectors, external metrics, discovery, and values
//! checked against the simulated cluster's ground truth.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{plugin_wasm, quantity, raw};
use metrics_gateway::demo::RigPlugin;
use metrics_gateway_testkit::cluster::ClusterSpec;
use metrics_gateway_testkit::kubelet_sim::pod_network_rate;
use serde_json::Value;

const CUSTOM: &str = "/apis/custom.metrics.k8s.io";
const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1";

fn shipped_plugins() -> Vec<RigPlugin> {
    vec![
        RigPlugin::new(
            "rate",
            plugin_wasm("rate"),
            r#"
[[rules]]
source = "kubelet-resource"
series = "container_cpu_usage_seconds_total"
metric = "container_cpu_cores"
target = "pods"
keep_labels = ["container"]
[[rules]]
source = "kubelet-resource"
series = "container_cpu_usage_seconds_total"
metric = "container_cpu_cores"
target = "derived"
"#,
        ),
        RigPlugin::new(
            "ewma",
            plugin_wasm("ewma"),
            r#"
half_life_secs = 60
[[rules]]
source = "derived"
series = "container_cpu_cores"
metric = "cpu_cores_smoothed"
target = "pods"
"#,
        ),
        RigPlugin::new("pod-network", plugin_wasm("pod-network"), ""),
        RigPlugin::new("restarts", plugin_wasm("restarts"), ""),
        RigPlugin::new(
            "pending-pods",
            plugin_wasm("pending-pods"),
            "cluster_metric = \"pending_pods_cluster\"",
        ),
    ]
}

/// Discovery entries as (name, namespaced).
fn discovery(kc: &Path, path: &str) -> Vec<(String, bool)> {
    let list = raw(kc, path);
    assert_eq!(list["kind"], "APIResourceList", "{path}");
    list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["verbs"], serde_json::json!(["get"]), "{r}");
            (
                r["name"].as_str().unwrap().to_owned(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn items(list: &Value) -> &Vec<Value> {
    list["items"].as_array().unwrap()
}

fn sorted_keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_plugins_serve_custom_and_external_metrics() {
    let spec = ClusterSpec {
        nodes: 3,
        pods_per_node: 4,
        containers_per_pod: (1, 3),
        namespaces: 2,
        ..ClusterSpec::default()
    };
    let (rig, clock) = common::rig_with(spec, |o| o.plugins = shipped_plugins()).await;
    common::assert_plugins_loaded(&rig);
    rig.gateway.collector.run_cycle().await;
    clock.advance(Duration::from_secs(15));
    let report = rig.gateway.collector.run_cycle().await;
    assert!(report.failed.is_empty(), "{report:?}");
    let kc = rig.dir().join("user.kubeconfig");
    rig.write_user_kubeconfig(&kc).unwrap();

    // Discovery: exactly what the plugins publish, on both versions, plus the built-ins.
    for version in ["v1beta1", "v1beta2"] {
        let entries = discovery(&kc, &format!("{CUSTOM}/{version}"));
        for (name, namespaced) in [
            ("pods/container_cpu_cores", true),
            ("pods/cpu_cores_smoothed", true),
            ("pods/network_receive_bytes_per_second", true),
            ("pods/network_transmit_bytes_per_second", true),
            ("pods/container_restarts_per_minute", true),
            ("deployments.apps/container_restarts_per_minute", true),
        ] {
            assert!(
                entries.contains(&(name.to_owned(), namespaced)),
                "{version} discovery lacks {name}: {entries:?}"
            );
        }
    }
    let external = discovery(&kc, EXTERNAL);
    assert!(
        external.contains(&("pending_pods".to_owned(), true)),
        "{external:?}"
    );
    assert!(
        external.contains(&("pending_pods_cluster".to_owned(), false)),
        "{external:?}"
    );

    let pods: Vec<_> = rig
        .cluster
        .read()
        .pods
        .values()
        .filter(|p| p.phase == "Running")
        .cloned()
        .collect();
    let namespace = pods[0].namespace.clone();
    let in_namespace: Vec<_> = pods.iter().filter(|p| p.namespace == namespace).collect();

    // Network rates from the Summary API, exact against the simulated counters, v1beta2 shape.
    let path =
        format!("{CUSTOM}/v1beta2/namespaces/{namespace}/pods/*/network_receive_bytes_per_second");
    let list = raw(&kc, &path);
    assert_eq!(list["kind"], "MetricValueList");
    assert_eq!(list["apiVersion"], "custom.metrics.k8s.io/v1beta2");
    assert_eq!(items(&list).len(), in_namespace.len(), "{list}");
    for item in items(&list) {
        assert_eq!(
            sorted_keys(item),
            [
                "describedObject",
                "metric",
                "timestamp",
                "value",
                "windowSeconds"
            ]
        );
        let object = &item["describedObject"];
        assert_eq!(object["kind"], "Pod");
        assert_eq!(object["apiVersion"], "/v1");
        assert_eq!(object["namespace"], namespace.as_str());
        assert_eq!(item["metric"]["name"], "network_receive_bytes_per_second");
        assert_eq!(item["windowSeconds"], 15);
        let pod = in_namespace
            .iter()
            .find(|p| p.name == object["name"].as_str().unwrap())
            .expect("a pod of the cluster");
        let truth = pod_network_rate(&pod.uid).rx_bytes_per_second as f64;
        let got = quantity(item["value"].as_str().unwrap());
        assert!((got - truth).abs() < 0.5, "{}: {got} vs {truth}", pod.name);
    }

    // The same on v1beta1, with its own shape.
    let one = &in_namespace[0];
    let list = raw(
        &kc,
        &format!(
            "{CUSTOM}/v1beta1/namespaces/{namespace}/pods/{}/network_transmit_bytes_per_second",
            one.name
        ),
    );
    assert_eq!(list["apiVersion"], "custom.metrics.k8s.io/v1beta1");
    let item = &items(&list)[0];
    assert_eq!(
        sorted_keys(item),
        [
            "describedObject",
            "metricName",
            "selector",
            "timestamp",
            "value",
            "window"
        ]
    );
    assert_eq!(item["metricName"], "network_transmit_bytes_per_second");
    assert_eq!(item["window"], 15);
    assert!(item["selector"].is_null());
    let truth = pod_network_rate(&one.uid).tx_bytes_per_second as f64;
    assert!((quantity(item["value"].as_str().unwrap()) - truth).abs() < 0.5);

    // labelSelector selects objects by their labels from the cluster watch.
    let (key, value) = one
        .labels
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .expect("simulated pods have labels");
    let selected: Vec<&str> = in_namespace
        .iter()
        .filter(|p| p.labels.get(&key) == Some(&value))
        .map(|p| p.name.as_str())
        .collect();
    for (selector, expect_selected) in [
        (format!("{key} in ({value},no-such-value)"), true),
        (format!("{key} notin ({value})"), false),
    ] {
        let list = raw(
            &kc,
            &format!(
                "{CUSTOM}/v1beta2/namespaces/{namespace}/pods/*/network_receive_bytes_per_second?labelSelector={}",
                urlencode(&selector)
            ),
        );
        let mut names: Vec<&str> = items(&list)
            .iter()
            .map(|i| i["describedObject"]["name"].as_str().unwrap())
            .collect();
        names.sort();
        let mut expected: Vec<&str> = in_namespace
            .iter()
            .map(|p| p.name.as_str())
            .filter(|n| selected.contains(n) == expect_selected)
            .collect();
        expected.sort();
        assert_eq!(names, expected, "labelSelector {selector}");
    }
    let none = raw(
        &kc,
        &format!(
            "{CUSTOM}/v1beta2/namespaces/{namespace}/pods/*/network_receive_bytes_per_second?labelSelector=!{key}"
        ),
    );
    assert!(items(&none).is_empty(), "{none}");

    // metricLabelSelector selects series: one container's CPU rate out of a pod's.
    let pod = pods
        .iter()
        .find(|p| p.containers.len() > 1)
        .expect("a pod with several containers");
    let container = &pod.containers[1];
    let path = format!(
        "{CUSTOM}/v1beta2/namespaces/{}/pods/{}/container_cpu_cores",
        pod.namespace, pod.name
    );
    let all = raw(&kc, &path);
    let sum: f64 = pod
        .containers
        .iter()
        .map(|c| c.cpu_nanocores as f64)
        .sum::<f64>()
        / 1e9;
    let got = quantity(items(&all)[0]["value"].as_str().unwrap());
    assert!((got - sum).abs() < 1e-3, "all containers: {got} vs {sum}");
    let selector = format!("container={}", container.name);
    let one = raw(
        &kc,
        &format!("{path}?metricLabelSelector={}", urlencode(&selector)),
    );
    let item = &items(&one)[0];
    let truth = container.cpu_nanocores as f64 / 1e9;
    let got = quantity(item["value"].as_str().unwrap());
    assert!((got - truth).abs() < 1e-3, "{selector}: {got} vs {truth}");
    assert_eq!(
        item["metric"]["selector"]["matchLabels"]["container"],
        container.name.as_str()
    );

    // A derived series smoothed by a later plugin (ewma reads rate's derived output).
    let smoothed = raw(
        &kc,
        &format!(
            "{CUSTOM}/v1beta2/namespaces/{}/pods/{}/cpu_cores_smoothed",
            pod.namespace, pod.name
        ),
    );
    let got = quantity(items(&smoothed)[0]["value"].as_str().unwrap());
    assert!((got - sum).abs() < 1e-3, "smoothed: {got} vs {sum}");

    // Restarts per minute, per pod and per owning Deployment, from the cluster watch.
    let victim = pods
        .iter()
        .find(|p| p.owner_replicaset.is_some())
        .expect("pods belong to deployments");
    let deployment = {
        let state = rig.cluster.read();
        state
            .replicasets
            .get(&(
                victim.namespace.clone(),
                victim.owner_replicaset.clone().unwrap(),
            ))
            .and_then(|rs| rs.deployment.clone())
            .expect("the ReplicaSet has a Deployment")
    };
    let container = victim.containers[0].name.clone();
    rig.cluster
        .restart_container(&victim.namespace, &victim.name, &container);
    // And another pod of that namespace turns Pending.
    let (ns, name) = (victim.namespace.clone(), victim.name.clone());
    let pending_pod = pods
        .iter()
        .find(|p| p.namespace == ns && p.name != name)
        .expect("two pods in the namespace")
        .name
        .clone();
    rig.cluster
        .update_pod(&ns, &pending_pod, |p| p.phase = "Pending".into());
    let cache = rig.gateway.cluster.clone();
    tokio::time::timeout(
        Duration::from_secs(10),
        cache.wait_for(|s| {
            s.pod(&ns, &pending_pod)
                .is_some_and(|p| p.phase == metrics_gateway::sources::cluster::PodPhase::Pending)
                && s.pod(&ns, &name)
                    .is_some_and(|p| p.status.containers.iter().any(|c| c.restart_count == 1))
        }),
    )
    .await
    .expect("the restart and the phase change reach the gateway's watch");
    clock.advance(Duration::from_secs(15));
    rig.gateway.collector.run_cycle().await;
    // One restart between the samples at 15 s and 30 s, over the 30 s the samples span.
    let pod_value = raw(
        &kc,
        &format!("{CUSTOM}/v1beta2/namespaces/{ns}/pods/{name}/container_restarts_per_minute"),
    );
    let got = quantity(items(&pod_value)[0]["value"].as_str().unwrap());
    assert!((got - 2.0).abs() < 1e-6, "pod restarts/min: {got}");
    let deploy_value = raw(
        &kc,
        &format!(
            "{CUSTOM}/v1beta2/namespaces/{ns}/deployments.apps/{deployment}/container_restarts_per_minute"
        ),
    );
    let item = &items(&deploy_value)[0];
    assert_eq!(item["describedObject"]["kind"], "Deployment");
    assert_eq!(item["describedObject"]["apiVersion"], "apps/v1");
    assert!((quantity(item["value"].as_str().unwrap()) - 2.0).abs() < 1e-6);

    // External: pending pods per namespace, and the cluster-wide total in every namespace.
    let pending = raw(&kc, &format!("{EXTERNAL}/namespaces/{ns}/pending_pods"));
    assert_eq!(pending["kind"], "ExternalMetricValueList");
    let item = &items(&pending)[0];
    assert_eq!(
        sorted_keys(item),
        ["metricLabels", "metricName", "timestamp", "value"]
    );
    assert_eq!(quantity(item["value"].as_str().unwrap()), 1.0, "{pending}");
    let cluster_wide = raw(
        &kc,
        &format!("{EXTERNAL}/namespaces/default/pending_pods_cluster"),
    );
    assert_eq!(
        quantity(items(&cluster_wide)[0]["value"].as_str().unwrap()),
        1.0
    );

    // Unknown metric and unknown object: 404 through the aggregator.
    for path in [
        format!("{CUSTOM}/v1beta2/namespaces/{ns}/pods/*/no_such_metric"),
        format!("{CUSTOM}/v1beta2/namespaces/{ns}/pods/no-such-pod/container_cpu_cores"),
        format!("{EXTERNAL}/namespaces/{ns}/no_such_metric"),
    ] {
        let err = common::try_raw(&kc, &path).expect_err(&path);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "{path}: {err}"
        );
    }
    // Plugins' self-metrics name them.
    let metrics = common::self_metrics(&rig);
    assert!(
        metrics.contains("plugin=\"pod-network\""),
        "self-metrics lack per-plugin series"
    );
    rig.shutdown().await;
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).unwrap()[1..].to_owned()
}

/// A plugin stuck in a loop, and one that traps every other cycle, next to a well-behaved one:
/// through the aggregator, the faulty plugin's metrics are errors naming it, the neighbour's
/// metrics and the core metrics keep serving, and the trapping plugin resumes its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_plugins_fail_alone_through_the_api() {
    let spec = ClusterSpec {
        nodes: 2,
        pods_per_node: 3,
        namespaces: 1,
        ..ClusterSpec::default()
    };
    for mode in ["mode = \"loop\"", "mode = \"trap-every\"\nevery = 2"] {
        let (rig, clock) = common::rig_with(spec.clone(), |o| {
            let mut hostile = RigPlugin::new("hostile", plugin_wasm("hostile-plugin"), mode);
            hostile.timeout_ms = Some(200);
            o.plugins = vec![
                hostile,
                RigPlugin::new("pod-network", plugin_wasm("pod-network"), ""),
            ];
        })
        .await;
        let kc = rig.dir().join("user.kubeconfig");
        rig.write_user_kubeconfig(&kc).unwrap();
        let ns = rig
            .cluster
            .read()
            .pods
            .values()
            .next()
            .unwrap()
            .namespace
            .clone();
        let network =
            format!("{CUSTOM}/v1beta2/namespaces/{ns}/pods/*/network_receive_bytes_per_second");
        let hostile_path = format!("{EXTERNAL}/namespaces/{ns}/hostile_cycles");
        let mut served_counts = Vec::new();
        for cycle in 1..=4 {
            rig.gateway.collector.run_cycle().await;
            clock.advance(Duration::from_secs(15));
            if cycle > 1 {
                // Rates need two samples: from the second cycle on, the neighbour and the core
                // metrics serve every pod and node.
                assert_eq!(items(&raw(&kc, &network)).len(), 6, "{mode}: cycle {cycle}");
                let nodes = raw(&kc, "/apis/metrics.k8s.io/v1beta1/nodes");
                assert_eq!(items(&nodes).len(), 2, "{mode}: core metrics keep serving");
            }
            match common::try_raw(&kc, &hostile_path) {
                Ok(list) => {
                    served_counts.push(quantity(items(&list)[0]["value"].as_str().unwrap()));
                }
                Err(err) => {
                    assert!(err.contains("plugin hostile"), "{mode}: {err}");
                    served_counts.push(-1.0);
                }
            }
        }
        if mode.contains("loop") {
            assert_eq!(served_counts, [-1.0; 4], "a looping plugin never serves");
            let metrics = common::self_metrics(&rig);
            assert!(
                metrics.contains("plugin=\"hostile\",call=\"process\",outcome=\"deadline\""),
                "deadline faults are counted per plugin"
            );
        } else {
            // Traps on its 2nd call, restarts restored from its snapshot, traps again on the
            // new instance's 2nd call: the count resumes where it was, never from zero.
            assert_eq!(served_counts, [1.0, -1.0, 2.0, -1.0]);
        }
        assert!(
            common::logs().contains("hostile"),
            "faults are logged with the plugin name"
        );
        rig.shutdown().await;
    }
}
