//! Custom metrics for any resource the cluster's discovery lists: the
//! `prometheus-adapter-compat` plugin against a real Prometheus, with a rule whose resource
//! overrides map one label to `service` and others to custom resources. Through `kubectl` on
//! both custom metrics versions: discovery lists `services/…` and `widgets.example.com/…`,
//! values are exact and only for objects the cluster has, `labelSelector` selects by the
//! objects' own labels, `describedObject` names the right kind and apiVersion; a CRD created
//! after start is picked up at the next discovery refresh (driven by the test).

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{quantity, raw};
use metrics_gateway::demo::{GATEWAY_USER, Rig, RigPlugin};
use metrics_gateway::store::custom::ObjectResource;
use metrics_gateway_testkit::apiserver::custom_resource_definition;
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock};
use metrics_gateway_testkit::prometheus::{END_MS, Prometheus, SPAN_SECS, STEP_SECS};
use serde_json::{Value, json};

const CUSTOM: &str = "/apis/custom.metrics.k8s.io";
const METRIC: &str = "app_backlog";

/// One rule: its series carry a namespace and a service, a widget or a gadget label, each
/// overridden to a resource (`gadgets` has no CRD when the gateway starts).
const ADAPTER_CONFIG: &str = r#"
rules:
- seriesQuery: 'app_backlog{namespace!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      service: {resource: service}
      widget: {group: example.com, resource: widgets}
      gadget: {group: example.com, resource: gadget}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;

/// The backlog series: (namespace index, label, value, other label, value, backlog).
/// `ghost` is a Service the cluster does not have.
const SERIES: [(usize, &str, &str, &str, &str, f64); 6] = [
    (0, "service", "web", "widget", "w1", 5.0),
    (0, "service", "web", "widget", "w2", 7.0),
    (0, "service", "db", "widget", "w1", 11.0),
    (1, "service", "web", "widget", "w3", 13.0),
    (0, "service", "ghost", "widget", "w2", 1.0),
    (0, "gadget", "g1", "widget", "w1", 17.0),
];

fn spec() -> ClusterSpec {
    ClusterSpec {
        nodes: 1,
        pods_per_node: 2,
        namespaces: 2,
        ..ClusterSpec::default()
    }
}

fn openmetrics(namespaces: &[String]) -> String {
    let end = END_MS / 1000;
    let mut out = String::from("# TYPE app_backlog gauge\n");
    for (ns, l1, v1, l2, v2, value) in SERIES {
        for k in 0..=SPAN_SECS / STEP_SECS {
            let t = end - SPAN_SECS + k * STEP_SECS;
            let _ = writeln!(
                out,
                "app_backlog{{namespace=\"{}\",{l1}=\"{v1}\",{l2}=\"{v2}\"}} {value} {t}",
                namespaces[ns]
            );
        }
    }
    out.push_str("# EOF\n");
    out
}

fn service(namespace: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"ports": [{"port": 80}]},
    })
}

fn custom_object(kind: &str, namespace: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "example.com/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {},
    })
}

/// `(name, namespace, kind, apiVersion, value)` of a metric list's items, sorted; asserts each
/// item's shape for `version`.
fn values(list: &Value, version: &str) -> Vec<(String, String, String, String, f64)> {
    let mut out: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            match version {
                "v1beta1" => assert_eq!(i["metricName"], METRIC, "{i}"),
                _ => assert_eq!(i["metric"]["name"], METRIC, "{i}"),
            }
            assert_eq!(
                i["timestamp"], "2026-01-01T00:00:00Z",
                "Prometheus' sample time"
            );
            let o = &i["describedObject"];
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                s(&o["name"]),
                s(&o["namespace"]),
                s(&o["kind"]),
                s(&o["apiVersion"]),
                quantity(i["value"].as_str().unwrap()),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `resource/metric` names discovery lists for `version`.
fn listed(kc: &Path, version: &str) -> Vec<String> {
    raw(kc, &format!("{CUSTOM}/{version}"))["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs cycles until the gateway's metadata watch of every one of `resources` has listed
/// `count` objects, then one more (whose values then only name objects the cluster has). The
/// clock stays at the data's end, so values carry Prometheus' sample time.
async fn cycle_until_watched(rig: &Rig, resources: &[(&ObjectResource, usize)]) {
    let synced = || {
        let state = rig.gateway.cluster.read();
        resources.iter().all(|(r, count)| {
            state
                .objects
                .get(*r)
                .is_some_and(|by_ns| by_ns.values().map(|m| m.len()).sum::<usize>() == *count)
        })
    };
    // Series discovery, then the plan naming the resources, starts the watches.
    for _ in 0..3 {
        rig.gateway.collector.run_cycle().await;
        if synced() {
            break;
        }
    }
    tokio::time::timeout(
        Duration::from_secs(30),
        rig.gateway.cluster.wait_for(|_| synced()),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the gateway did not list the objects of {:?}; watching {:?}",
            resources
                .iter()
                .map(|r| r.0.to_string())
                .collect::<Vec<_>>(),
            rig.gateway.objects.watching()
        )
    });
    rig.gateway.collector.run_cycle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_custom_resources_are_described_from_discovery() {
    let (_, namespaces) = common::pods_and_namespaces(&spec());
    let (ns0, ns1) = (namespaces[0].as_str(), namespaces[1].as_str());
    let prom = Prometheus::start_with(&openmetrics(&namespaces)).unwrap();
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
    // The gateway's requests for the described resources, as the API server authorizes them.
    let requests: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let recorded = requests.clone();
    let (rig, _) = common::rig_with(spec(), |o| {
        o.apiserver.authorizer = Arc::new(move |spec| {
            if let Some(a) = &spec.resource_attributes
                && spec.user == GATEWAY_USER
                && ["services", "widgets", "gadgets"].contains(&a.resource.as_str())
            {
                let _ = recorded.lock().unwrap().insert(format!(
                    "{} {}.{} {:?}",
                    a.verb, a.resource, a.group, a.namespace
                ));
            }
            true
        });
        o.clock = SimClock::manual(END_MS);
        o.plugins = vec![plugin];
        o.extra_config = common::prometheus_backend(&url);
    })
    .await;
    common::assert_plugins_loaded(&rig);
    // The first discovery read (at start) is done before the test adds to the cluster, so
    // the refreshes below are the only ones (the next timed one is minutes away).
    tokio::time::timeout(
        Duration::from_secs(30),
        rig.gateway.discovery.wait_for(|t| t.is_discovered()),
    )
    .await
    .expect("the gateway read the cluster's discovery");

    let api = &rig.apiserver;
    api.put_object(custom_resource_definition(
        "example.com",
        "v1",
        "widgets",
        "Widget",
        true,
    ));
    api.put_object(service(ns0, "web", json!({"app": "web", "tier": "front"})));
    api.put_object(service(ns0, "db", json!({"app": "db", "tier": "back"})));
    api.put_object(service(ns1, "web", json!({"app": "web", "tier": "front"})));
    for (ns, name, tier) in [
        (ns0, "w1", "gold"),
        (ns0, "w2", "silver"),
        (ns1, "w3", "gold"),
    ] {
        api.put_object(custom_object("Widget", ns, name, json!({"tier": tier})));
    }
    rig.gateway.refresh_discovery().await;
    let services = ObjectResource::new("", "services");
    let widgets = ObjectResource::new("example.com", "widgets");
    let gadgets = ObjectResource::new("example.com", "gadgets");
    assert!(rig.gateway.discovery.table().get(&widgets).is_some());
    cycle_until_watched(&rig, &[(&services, 3), (&widgets, 3)]).await;

    let kc = rig.dir().join("user.kubeconfig");
    rig.write_user_kubeconfig(&kc).unwrap();
    for version in ["v1beta1", "v1beta2"] {
        let names = listed(&kc, version);
        for want in [
            "services/app_backlog",
            "widgets.example.com/app_backlog",
            "namespaces/app_backlog",
        ] {
            assert!(names.iter().any(|n| n == want), "{version}: {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.starts_with("gadget")),
            "no CRD for gadgets yet: {names:?}"
        );

        // Services: per namespace, exact sums, no value for the Service the cluster lacks.
        let svc = |ns: &str, name: &str, v: f64| {
            (
                name.to_owned(),
                ns.to_owned(),
                "Service".to_owned(),
                "/v1".to_owned(),
                v,
            )
        };
        let path = format!("{CUSTOM}/{version}/namespaces/{ns0}/services/*/{METRIC}");
        assert_eq!(
            values(&raw(&kc, &path), version),
            vec![svc(ns0, "db", 11.0), svc(ns0, "web", 12.0)]
        );
        let path = format!("{CUSTOM}/{version}/namespaces/{ns1}/services/web/{METRIC}");
        let one = raw(&kc, &path);
        assert_eq!(
            one["kind"], "MetricValueList",
            "a named object's value is a list"
        );
        assert_eq!(values(&one, version), vec![svc(ns1, "web", 13.0)]);
        // labelSelector selects by the Services' own labels.
        let path = format!(
            "{CUSTOM}/{version}/namespaces/{ns0}/services/*/{METRIC}?labelSelector=tier%3Dfront"
        );
        assert_eq!(
            values(&raw(&kc, &path), version),
            vec![svc(ns0, "web", 12.0)]
        );

        // Widgets: the custom resource's kind and group version.
        let widget = |ns: &str, name: &str, v: f64| {
            (
                name.to_owned(),
                ns.to_owned(),
                "Widget".to_owned(),
                "example.com/v1".to_owned(),
                v,
            )
        };
        let path = format!("{CUSTOM}/{version}/namespaces/{ns0}/widgets.example.com/*/{METRIC}");
        assert_eq!(
            values(&raw(&kc, &path), version),
            vec![widget(ns0, "w1", 33.0), widget(ns0, "w2", 8.0)]
        );
        let path = format!(
            "{CUSTOM}/{version}/namespaces/{ns1}/widgets.example.com/*/{METRIC}?labelSelector=tier%20in%20(gold)"
        );
        assert_eq!(
            values(&raw(&kc, &path), version),
            vec![widget(ns1, "w3", 13.0)]
        );
    }

    // A CRD created after start: nothing until discovery is read again, then its metric.
    api.put_object(custom_resource_definition(
        "example.com",
        "v1",
        "gadgets",
        "Gadget",
        true,
    ));
    api.put_object(custom_object("Gadget", ns0, "g1", json!({})));
    for _ in 0..2 {
        rig.gateway.collector.run_cycle().await;
    }
    assert!(rig.gateway.discovery.table().get(&gadgets).is_none());
    assert!(
        !listed(&kc, "v1beta2")
            .iter()
            .any(|n| n.starts_with("gadgets")),
        "before the refresh"
    );
    rig.gateway.refresh_discovery().await;
    cycle_until_watched(&rig, &[(&gadgets, 1)]).await;
    for version in ["v1beta1", "v1beta2"] {
        let names = listed(&kc, version);
        assert!(
            names.iter().any(|n| n == "gadgets.example.com/app_backlog"),
            "{version}: {names:?}"
        );
        let path = format!("{CUSTOM}/{version}/namespaces/{ns0}/gadgets.example.com/*/{METRIC}");
        assert_eq!(
            values(&raw(&kc, &path), version),
            vec![(
                "g1".to_owned(),
                ns0.to_owned(),
                "Gadget".to_owned(),
                "example.com/v1".to_owned(),
                17.0
            )]
        );
    }
    // Cluster-wide list and watch only: what the shipped RBAC (and docs/PLUGINS.md) grants.
    let mut want: Vec<String> = ["gadgets.example.com", "services.", "widgets.example.com"]
        .iter()
        .flat_map(|r| ["list", "watch"].map(|v| format!("{v} {r} \"\"")))
        .collect();
    want.sort();
    assert_eq!(
        requests.lock().unwrap().iter().cloned().collect::<Vec<_>>(),
        want
    );
    assert_eq!(
        rig.gateway.objects.watching(),
        vec![gadgets.clone(), services.clone(), widgets.clone()]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    rig.shutdown().await;
}
