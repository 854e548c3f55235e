//! The Prometheus source inside the gateway's cycle, against a real Prometheus: the queries that
//! plugins' plans name run every cycle, once however many plugins read them, a plugin reads a
//! backend's label names (`prometheus-labels`) and serves them, and a plan naming a backend that
//! is not configured is refused.

mod common;

use metrics_gateway::demo::RigPlugin;
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock};
use metrics_gateway_testkit::prometheus::{END_MS, Prometheus};

const QUERY: &str = "sum by (namespace, queue) (queue_depth)";

fn rate_reading(metric: &str) -> RigPlugin {
    RigPlugin::new(
        metric,
        common::plugin_wasm("rate"),
        &format!(
            "[[rules]]\nsource = \"prometheus\"\nseries = \"{QUERY}\"\nmetric = \"{metric}\"\n\
             target = \"external\"\nnamespaced = true\n"
        ),
    )
}

fn spec() -> ClusterSpec {
    ClusterSpec {
        nodes: 1,
        pods_per_node: 1,
        ..ClusterSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_sharing_a_query_cause_one_request_per_cycle() {
    let prom = Prometheus::start().unwrap();
    let url = prom.url();
    let (rig, _) = common::rig_with(spec(), |o| {
        // The cycle's time is the data's end, so the queries see it.
        o.clock = SimClock::manual(END_MS);
        o.plugins = vec![rate_reading("queue_rate_a"), rate_reading("queue_rate_b")];
        o.extra_config = common::prometheus_backend(&url);
    })
    .await;
    common::assert_plugins_loaded(&rig);
    let before = prom.requests_to("/api/v1/query").unwrap();
    rig.gateway.collector.run_cycle().await;
    rig.gateway.collector.run_cycle().await;
    let after = prom.requests_to("/api/v1/query").unwrap();
    assert_eq!(
        after - before,
        2.0,
        "one request per cycle for both plugins"
    );
    let metrics = common::self_metrics(&rig);
    for line in [
        "metrics_gateway_prometheus_queries_total{backend=\"main\",outcome=\"success\"} 2",
        "metrics_gateway_prometheus_backend_up{backend=\"main\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

/// Contract 0.3.0's `prometheus-labels` through the whole gateway: the hostile test plugin's
/// `labels` mode publishes external `hostile_external` once per label name of `queue_depth`'s
/// series; the names are exactly the backfilled ones, `/api/v1/labels` is asked once and reused
/// until the discovery interval, and `labelSelector` (the external API's series selector) picks
/// one name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_serves_the_label_names_it_reads() {
    let prom = Prometheus::start().unwrap();
    let url = prom.url();
    let (rig, _) = common::rig_with(spec(), |o| {
        o.clock = SimClock::manual(END_MS);
        o.plugins = vec![RigPlugin::new(
            "hostile",
            common::plugin_wasm("hostile-plugin"),
            "mode = \"labels\"\nselector = \"queue_depth\"",
        )];
        o.extra_config = common::prometheus_backend(&url);
    })
    .await;
    common::assert_plugins_loaded(&rig);
    let before = prom.requests_to("/api/v1/labels").unwrap();
    for _ in 0..3 {
        rig.gateway.collector.run_cycle().await;
    }
    assert_eq!(
        prom.requests_to("/api/v1/labels").unwrap() - before,
        1.0,
        "label names are discovered once per discovery interval"
    );
    let kc = rig.dir().join("user.kubeconfig");
    rig.write_user_kubeconfig(&kc).unwrap();
    let path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/hostile_external";
    let names = |list: serde_json::Value| -> Vec<String> {
        let mut names: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                assert_eq!(i["value"], "1");
                i["metricLabels"]["label_name"].as_str().unwrap().to_owned()
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(common::raw(&kc, path)),
        ["__name__", "namespace", "queue"]
    );
    assert_eq!(
        names(common::raw(
            &kc,
            &format!("{path}?labelSelector=label_name%3Dqueue")
        )),
        ["queue"]
    );
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_reading_an_unconfigured_backend_is_refused() {
    let (rig, _) = common::rig_with(spec(), |o| {
        o.plugins = vec![rate_reading("queue_rate_a")];
    })
    .await;
    let errors = format!("{:?}", rig.gateway.plugin_errors);
    assert!(
        errors.contains(
            "invalid plan: input 0 (prometheus \\\"sum by (namespace, queue) (queue_depth)\\\") \
             reads the default prometheus backend"
        ),
        "{errors}"
    );
}
