//! `MetricsPlugin` custom resources on a gateway serving a simulated cluster: created, updated
//! and deleted through the fake API server; bad ones refused alone while the running config
//! keeps serving; status and Events written by the Lease holder only, and taken over when its
//! Lease expires.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use metrics_gateway::app::{Gateway, StartOptions};
use metrics_gateway::clock::Clock;
use metrics_gateway::demo::{Rig, RigPlugin};
use metrics_gateway::reload::resources::ResourceOutcome;
use metrics_gateway::telemetry::PluginLabels;
use metrics_gateway_testkit::apiserver::{ApiServerConfig, UserInfo};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock};
use serde_json::{Value, json};

use common::{plugin_wasm, rig_with};

const PLUGIN_API: &str = "metrics-gateway.io/v1alpha1";
const LEASE_NAMESPACE: &str = "metrics-gateway";
const LEASE_NAME: &str = "metrics-gateway-leader";
const REPLICA_B_TOKEN: &str = "replica-b-token";
const REPLICA_B_USER: &str = "system:serviceaccount:metrics-gateway:replica-b";

fn small() -> ClusterSpec {
    ClusterSpec {
        nodes: 2,
        pods_per_node: 3,
        ..ClusterSpec::default()
    }
}

/// `[custom_resources]` with lease timing short enough for a takeover within a test.
fn resources_config(identity: &str) -> String {
    format!(
        "[custom_resources]\nenabled = true\nidentity = \"{identity}\"\n\
         lease_duration_ms = 1500\nrenew_deadline_ms = 1000\nretry_period_ms = 100\n"
    )
}

/// Writes of the status subresource and Event creations, by user.
type Writes = Arc<Mutex<Vec<(String, String)>>>;

/// A rig whose gateway (`replica-a`) runs `restarts` from its file and watches
/// `MetricsPlugin`s; the API server knows `replica-b`'s token and records who writes status
/// and Events.
async fn crd_rig() -> (Rig, SimClock, Writes) {
    let writes: Writes = Arc::default();
    let mut apiserver = ApiServerConfig::default();
    apiserver.tokens.insert(
        REPLICA_B_TOKEN.into(),
        UserInfo {
            username: REPLICA_B_USER.into(),
            groups: vec!["system:authenticated".into()],
            uid: "replica-b".into(),
        },
    );
    apiserver.authorizer = {
        let writes = writes.clone();
        Arc::new(move |spec| {
            if let Some(a) = &spec.resource_attributes {
                let write = match (a.resource.as_str(), a.subresource.as_str(), a.verb.as_str()) {
                    ("metricsplugins", "status", "patch") => Some(format!("status {}", a.name)),
                    ("events", "", "create") => Some("event".to_string()),
                    _ => None,
                };
                if let Some(write) = write {
                    writes.lock().unwrap().push((spec.user.clone(), write));
                }
            }
            true
        })
    };
    let (rig, clock) = rig_with(small(), |o| {
        o.plugins = vec![RigPlugin::new("restarts", plugin_wasm("restarts"), "")];
        o.extra_config = resources_config("replica-a");
        o.apiserver = apiserver;
    })
    .await;
    (rig, clock, writes)
}

fn rate_config(metric: &str) -> Value {
    json!({"rules": [{
        "source": "kubelet-resource",
        "series": "container_cpu_usage_seconds_total",
        "metric": metric,
        "target": "pods",
        "keep_labels": ["container"],
    }]})
}

/// Stores `bytes` as `binaryData[key]` of ConfigMap `plugins/name`.
fn put_module(rig: &Rig, name: &str, key: &str, bytes: &[u8]) {
    rig.apiserver.put_object(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"namespace": "plugins", "name": name},
        "binaryData": {key: B64.encode(bytes)},
    }));
}

fn rate_module(rig: &Rig) {
    put_module(
        rig,
        "modules",
        "rate.wasm",
        &std::fs::read(plugin_wasm("rate")).unwrap(),
    );
}

fn put_plugin(rig: &Rig, name: &str, spec: Value) -> Value {
    rig.apiserver.put_object(json!({
        "apiVersion": PLUGIN_API,
        "kind": "MetricsPlugin",
        "metadata": {"name": name},
        "spec": spec,
    }))
}

fn rate_spec(metric: &str) -> Value {
    json!({
        "module": {"configMap": {"namespace": "plugins", "name": "modules", "key": "rate.wasm"}},
        "config": rate_config(metric),
    })
}

fn plugin(rig: &Rig, name: &str) -> Value {
    rig.apiserver
        .object(PLUGIN_API, "MetricsPlugin", "", name)
        .unwrap_or_else(|| panic!("MetricsPlugin {name} exists"))
}

fn condition<'a>(object: &'a Value, type_: &str) -> &'a Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after 30 s with `what` and the
/// last state it saw.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match check() {
            Ok(v) => return v,
            Err(state) if Instant::now() > deadline => panic!("{what}: {state}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Waits until the leader has written status for generation `generation` of `name` with
/// `Ready` = `ready`; returns the object.
async fn status_written(rig: &Rig, name: &str, generation: i64, ready: &str) -> Value {
    eventually(&format!("status of {name} generation {generation}"), || {
        let object = plugin(rig, name);
        let fresh = object["status"]["observedGeneration"] == generation
            && condition(&object, "Ready")["status"] == ready;
        if fresh {
            Ok(object)
        } else {
            Err(object["status"].to_string())
        }
    })
    .await
}

fn outcome(gateway: &Gateway, name: &str) -> Option<ResourceOutcome> {
    let watch = gateway
        .resources
        .as_ref()
        .expect("custom resources enabled");
    watch.outcomes.borrow().get(name).cloned()
}

/// The custom metrics served now (as `resource/name`): what discovery lists.
fn served(gateway: &Gateway) -> Vec<String> {
    gateway
        .store
        .load()
        .plugin_metrics
        .custom
        .keys()
        .map(|(r, n)| format!("{r}/{n}"))
        .collect()
}

/// Runs cycles until `done` holds for what is served.
async fn cycle_until(
    gateway: &Gateway,
    clock: &SimClock,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        clock.advance(Duration::from_secs(15));
        gateway.collector.run_cycle().await;
        let now = served(gateway);
        if done(&now) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still serving {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn events_about(rig: &Rig, name: &str) -> Vec<Value> {
    rig.apiserver
        .objects("events.k8s.io/v1", "Event")
        .into_iter()
        .filter(|e| e["regarding"]["name"] == name)
        .collect()
}

/// Waits until an Event about `name` satisfies `wanted` (the leader records it just after
/// writing the status).
async fn event_recorded(rig: &Rig, name: &str, wanted: impl Fn(&Value) -> bool) {
    eventually(&format!("an Event about {name}"), || {
        let events = events_about(rig, name);
        if events.iter().any(&wanted) {
            Ok(())
        } else {
            Err(format!("{events:?}"))
        }
    })
    .await
}

fn load_errors(gateway: &Gateway, plugin: &str) -> u64 {
    gateway
        .telemetry
        .config_plugin_load_errors
        .get_or_create(&PluginLabels {
            plugin: plugin.into(),
        })
        .get()
}

async fn wait_leading(gateway: &Gateway, leading: bool) {
    let watch = gateway.resources.as_ref().unwrap();
    eventually("leadership", || {
        if *watch.leading.borrow() == leading {
            Ok(())
        } else {
            Err(format!("leading != {leading}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_metrics_plugin_is_added_reconfigured_and_removed_with_its_status() {
    let (rig, clock, _) = crd_rig().await;
    let gw = &rig.gateway;
    wait_leading(gw, true).await;
    rate_module(&rig);

    let created = put_plugin(&rig, "cpu", rate_spec("cpu_a"));
    assert_eq!(created["metadata"]["generation"], 1);
    cycle_until(gw, &clock, "the resource's metric", |s| {
        s.contains(&"pods/cpu_a".to_string())
    })
    .await;
    // The file's plugin keeps running beside it.
    assert!(served(gw).contains(&"pods/container_restarts_per_minute".to_string()));
    let object = status_written(&rig, "cpu", 1, "True").await;
    assert_eq!(object["status"]["metrics"], json!(["pods/cpu_a"]));
    let ready = condition(&object, "Ready");
    assert_eq!(ready["reason"], "Applied");
    assert_eq!(ready["observedGeneration"], 1);
    assert_eq!(condition(&object, "Degraded")["status"], "False");
    event_recorded(&rig, "cpu", |e| {
        e["reason"] == "Applied" && e["type"] == "Normal" && e["reportingInstance"] == "replica-a"
    })
    .await;

    // A new spec: generation 2, the plugin reconfigured and its new metric served instead.
    let updated = put_plugin(&rig, "cpu", rate_spec("cpu_b"));
    assert_eq!(updated["metadata"]["generation"], 2);
    cycle_until(gw, &clock, "the reconfigured metric", |s| {
        s.contains(&"pods/cpu_b".to_string()) && !s.contains(&"pods/cpu_a".to_string())
    })
    .await;
    let object = status_written(&rig, "cpu", 2, "True").await;
    assert_eq!(object["status"]["metrics"], json!(["pods/cpu_b"]));
    assert_eq!(condition(&object, "Ready")["observedGeneration"], 2);

    // The leader's status writes are no spec change: the generation stays.
    assert_eq!(plugin(&rig, "cpu")["metadata"]["generation"], 2);

    assert!(
        rig.apiserver
            .delete_object(PLUGIN_API, "MetricsPlugin", "", "cpu")
    );
    cycle_until(
        gw,
        &clock,
        "the deleted resource's metric leaving discovery",
        |s| !s.iter().any(|m| m.starts_with("pods/cpu_")),
    )
    .await;
    assert!(outcome(gw, "cpu").is_none(), "{:?}", outcome(gw, "cpu"));
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_metrics_plugins_are_refused_alone_and_the_running_config_keeps_serving() {
    let (rig, clock, _) = crd_rig().await;
    let gw = &rig.gateway;
    wait_leading(gw, true).await;
    rate_module(&rig);
    put_plugin(&rig, "cpu", rate_spec("cpu_a"));
    status_written(&rig, "cpu", 1, "True").await;
    cycle_until(gw, &clock, "the good resource", |s| {
        s.contains(&"pods/cpu_a".to_string())
    })
    .await;

    // Wrong sha256 on a new generation: refused, generation 1 keeps running.
    let mut wrong = rate_spec("cpu_x");
    wrong["module"]["sha256"] = json!("0".repeat(64));
    put_plugin(&rig, "cpu", wrong);
    let object = status_written(&rig, "cpu", 2, "False").await;
    let ready = condition(&object, "Ready");
    assert_eq!(ready["reason"], "Sha256Mismatch");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("configmap plugins/modules key rate.wasm has sha256")
            && message.contains(&"0".repeat(64))
            && message.ends_with("generation 1 keeps running"),
        "{message}"
    );
    assert_eq!(condition(&object, "Degraded")["status"], "True");
    assert_eq!(object["status"]["metrics"], json!(["pods/cpu_a"]));

    // Missing module, a module that does not compile, a config the plugin refuses.
    put_plugin(
        &rig,
        "missing",
        json!({"module": {"configMap": {"namespace": "plugins", "name": "nope", "key": "x.wasm"}}}),
    );
    put_module(&rig, "junk", "junk.wasm", b"not a component");
    put_plugin(
        &rig,
        "broken",
        json!({"module": {"configMap": {"namespace": "plugins", "name": "junk", "key": "junk.wasm"}}}),
    );
    put_plugin(
        &rig,
        "badconf",
        json!({
            "module": {"configMap": {"namespace": "plugins", "name": "modules", "key": "rate.wasm"}},
            "config": {"rulez": []},
        }),
    );
    let cases = [
        (
            "missing",
            "ModuleUnavailable",
            "plugin missing: configmap plugins/nope: not found",
        ),
        (
            "broken",
            "CompileFailed",
            "plugin broken: configmap plugins/junk key junk.wasm:",
        ),
        ("badconf", "ConfigureFailed", "rulez"),
    ];
    for (name, reason, detail) in cases {
        let object = status_written(&rig, name, 1, "False").await;
        let ready = condition(&object, "Ready");
        assert_eq!(ready["reason"], reason, "{name}: {ready}");
        let message = ready["message"].as_str().unwrap();
        assert!(message.contains(detail), "{name}: {message}");
        assert!(
            message.ends_with("nothing runs for this resource"),
            "{message}"
        );
        event_recorded(&rig, name, |e| {
            e["type"] == "Warning"
                && e["reason"] == reason
                && e["note"].as_str().is_some_and(|n| n.contains(detail))
        })
        .await;
        assert!(load_errors(gw, name) >= 1, "{name}: no load error counted");
    }
    assert!(load_errors(gw, "cpu") >= 1);
    event_recorded(&rig, "cpu", |e| e["reason"] == "Sha256Mismatch").await;
    // The file config and the last good resource keep serving; the file reload path is fine.
    cycle_until(gw, &clock, "the last good version", |s| {
        s.contains(&"pods/cpu_a".to_string()) && !s.contains(&"pods/cpu_x".to_string())
    })
    .await;
    assert_eq!(gw.telemetry.config_last_reload_successful.get(), 1);
    assert!(common::logs().contains("MetricsPlugin refused"));

    // Fixing the module of `missing` (a new generation) applies it.
    put_plugin(&rig, "missing", rate_spec("cpu_m"));
    status_written(&rig, "missing", 2, "True").await;
    cycle_until(gw, &clock, "the fixed resource", |s| {
        s.contains(&"pods/cpu_m".to_string())
    })
    .await;
    rig.shutdown().await;
}

/// A second replica against the same API server, authenticating as `replica-b`.
async fn second_replica(rig: &Rig, clock: &SimClock) -> Gateway {
    let dir = rig.dir();
    let kubeconfig = dir.join("replica-b.kubeconfig");
    rig.apiserver
        .write_kubeconfig(&kubeconfig, REPLICA_B_TOKEN)
        .unwrap();
    let text = std::fs::read_to_string(rig.config_path()).unwrap();
    let text = text
        .replace(
            &format!("{:?}", dir.join("gateway.kubeconfig")),
            &format!("{kubeconfig:?}"),
        )
        .replace("identity = \"replica-a\"", "identity = \"replica-b\"");
    assert!(text.contains("replica-b.kubeconfig") && text.contains("replica-b\""));
    let path = dir.join("replica-b.toml");
    std::fs::write(&path, text).unwrap();
    let config = metrics_gateway::config::load(&path).unwrap();
    let sim = clock.clone();
    Gateway::start(
        config,
        StartOptions {
            clock: Clock::from_fn(move || sim.now_ms()),
            collect_on_interval: false,
            config_path: Some(path),
        },
    )
    .await
    .unwrap()
}

fn lease(rig: &Rig) -> Value {
    rig.apiserver
        .object(
            "coordination.k8s.io/v1",
            "Lease",
            LEASE_NAMESPACE,
            LEASE_NAME,
        )
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_writes_status_and_another_replica_takes_over_an_expired_lease() {
    let (rig, clock, writes) = crd_rig().await;
    wait_leading(&rig.gateway, true).await;
    assert_eq!(lease(&rig)["spec"]["holderIdentity"], "replica-a");
    let b = second_replica(&rig, &clock).await;
    rate_module(&rig);
    put_plugin(&rig, "cpu", rate_spec("cpu_a"));

    // Both replicas apply the resource; only the leader writes.
    status_written(&rig, "cpu", 1, "True").await;
    for gateway in [&rig.gateway, &b] {
        eventually("both replicas apply the resource", || {
            match outcome(gateway, "cpu") {
                Some(o) if o.generation == 1 && o.refused.is_none() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        cycle_until(gateway, &clock, "each replica serving it", |s| {
            s.contains(&"pods/cpu_a".to_string())
        })
        .await;
    }
    assert!(!*b.resources.as_ref().unwrap().leading.borrow());
    let by_b = |writes: &Writes| -> Vec<String> {
        writes
            .lock()
            .unwrap()
            .iter()
            .filter(|(u, _)| u == REPLICA_B_USER)
            .map(|(_, w)| w.clone())
            .collect()
    };
    assert!(
        by_b(&writes).is_empty(),
        "the follower wrote {:?}",
        by_b(&writes)
    );
    assert!(
        writes
            .lock()
            .unwrap()
            .iter()
            .any(|(_, w)| w == "status cpu"),
        "{:?}",
        writes.lock().unwrap()
    );

    // replica-a stops renewing (as a crashed pod would); replica-b takes over once the Lease
    // has not changed for lease_duration_ms.
    for task in &rig.gateway.resources.as_ref().unwrap().tasks {
        task.abort();
    }
    wait_leading(&b, true).await;
    let held = lease(&rig);
    assert_eq!(held["spec"]["holderIdentity"], "replica-b");
    assert_eq!(held["spec"]["leaseTransitions"], 1);

    // The new leader writes the next generation's status and Event.
    put_plugin(&rig, "cpu", rate_spec("cpu_b"));
    status_written(&rig, "cpu", 2, "True").await;
    assert!(
        by_b(&writes).contains(&"status cpu".to_string()),
        "{:?}",
        writes.lock().unwrap()
    );
    event_recorded(&rig, "cpu", |e| e["reportingInstance"] == "replica-b").await;
    b.shutdown().await;
    rig.shutdown().await;
}
