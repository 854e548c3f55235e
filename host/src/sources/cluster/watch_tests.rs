//! The watches against the fake kube-apiserver: every kind reaches the cache, changes in the
//! simulated cluster show up in the samples, and forbidden optional watches leave readiness alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use metrics_gateway_testkit::apiserver::{ApiServerConfig, FakeApiServer, UserInfo};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster};

use super::samples;
use super::{ClusterCache, ClusterState, ClusterWatch, kube_config};
use crate::api::selector::Labels as _;
use crate::config::KubernetesConfig;
use crate::samples::Batch;
use crate::sources::cluster::samples::ClusterSeries;
use crate::telemetry::Telemetry;

const TOKEN: &str = "gateway-token";
/// Upper bound on waiting for a change that should arrive promptly (every wait returns as soon
/// as its condition holds).
const PATIENCE: Duration = Duration::from_secs(30);

struct Setup {
    cluster: Arc<SimCluster>,
    apiserver: FakeApiServer,
    cache: Arc<ClusterCache>,
    watch: ClusterWatch,
    _dir: tempfile::TempDir,
}

async fn start(authorizer: metrics_gateway_testkit::apiserver::Authorizer) -> Setup {
    metrics_gateway_testkit::pki::install_crypto_provider();
    let spec = ClusterSpec {
        nodes: 2,
        pods_per_node: 4,
        namespaces: 2,
        ..ClusterSpec::default()
    };
    let cluster = SimCluster::generate(&spec, SimClock::manual(1_700_000_000_000));
    let tokens = BTreeMap::from([(
        TOKEN.to_string(),
        UserInfo {
            username: "system:serviceaccount:kube-system:metrics-gateway".into(),
            groups: vec!["system:authenticated".into()],
            uid: String::new(),
        },
    )]);
    let apiserver = FakeApiServer::start(
        cluster.clone(),
        ApiServerConfig {
            tokens,
            authorizer,
            ..ApiServerConfig::default()
        },
    )
    .await
    .expect("fake apiserver starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    apiserver
        .write_kubeconfig(&kubeconfig, TOKEN)
        .expect("kubeconfig");
    let config = kube_config(&KubernetesConfig {
        kubeconfig: Some(kubeconfig),
        context: None,
        ..KubernetesConfig::default()
    })
    .await
    .expect("kube config");
    let client = kube::Client::try_from(config).expect("client");
    let cache = Arc::new(ClusterCache::default());
    let watch = ClusterWatch::start(client, cache.clone(), Telemetry::new());
    Setup {
        cluster,
        apiserver,
        cache,
        watch,
        _dir: dir,
    }
}

async fn wait(cache: &ClusterCache, what: &str, condition: impl Fn(&ClusterState) -> bool) {
    tokio::time::timeout(PATIENCE, cache.wait_for(condition))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn count<T>(map: &super::NamespacedMap<T>) -> usize {
    map.values().map(|m| m.len()).sum()
}

/// The value of the sample of `family` whose labels include all of `labels`.
fn value(batch: &Batch, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let f = batch.families.get(family)?;
    (0..f.len())
        .find(|&i| labels.iter().all(|(k, v)| f.series[i].label(k) == Some(v)))
        .map(|i| f.values[i])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_fill_the_cache_and_follow_the_cluster() {
    let s = start(Arc::new(|_| true)).await;
    let (namespaces, deployments, replicasets, pods) = {
        let sim = s.cluster.read();
        (
            sim.namespaces.len(),
            sim.deployments.len(),
            sim.replicasets.len(),
            sim.pods.len(),
        )
    };
    wait(&s.cache, "every kind listed", |st| {
        st.namespaces.len() == namespaces
            && count(&st.deployments) == deployments
            && count(&st.replicasets) == replicasets
            && st.pod_count() == pods
    })
    .await;
    let (ns, pod, app) = {
        let sim = s.cluster.read();
        let p = sim.pods.values().next().expect("a pod");
        (p.namespace.clone(), p.name.clone(), p.labels["app"].clone())
    };
    {
        let state = s.cache.read();
        let team = &s.cluster.read().namespaces[&ns].labels["team"];
        assert_eq!(
            state.namespaces[ns.as_str()].labels.get("team"),
            Some(team.as_str())
        );
        let info = state.pod(&ns, &pod).expect("pod known");
        assert_eq!(state.pod_deployment(info).map(|d| &**d), Some(app.as_str()));
        let d = state.deployment(&ns, &app).expect("deployment known");
        assert_eq!(d.spec_replicas, Some(d.ready_replicas));
    }

    let mut series = ClusterSeries::default();
    let before = samples::build(&s.cache.read(), 1, |_| true, &mut series);
    let container = [
        ("namespace", ns.as_str()),
        ("pod", pod.as_str()),
        ("container", "main"),
    ];
    let deployment = [("namespace", ns.as_str()), ("deployment", app.as_str())];
    let restarts = "kube_pod_container_status_restarts_total";
    assert_eq!(value(&before, restarts, &container), Some(0.0));
    assert_eq!(
        value(
            &before,
            "kube_deployment_status_replicas_unavailable",
            &deployment
        ),
        Some(0.0)
    );

    // A crash: the restart count, the waiting reason and the Deployment's status follow.
    s.cluster.crash_loop(&ns, &pod, "main");
    wait(&s.cache, "the crash and the deployment status", |st| {
        st.pod(&ns, &pod)
            .is_some_and(|p| p.status.containers.iter().any(|c| c.restart_count == 1))
            && st
                .deployment(&ns, &app)
                .is_some_and(|d| d.unavailable_replicas == 1)
    })
    .await;
    let after = samples::build(&s.cache.read(), 2, |_| true, &mut series);
    assert_eq!(value(&after, restarts, &container), Some(1.0));
    let waiting = [
        ("pod", pod.as_str()),
        ("container", "main"),
        ("reason", "CrashLoopBackOff"),
    ];
    assert_eq!(
        value(&after, "kube_pod_container_status_waiting_reason", &waiting),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "kube_pod_status_ready",
            &[("pod", pod.as_str()), ("condition", "false")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "kube_deployment_status_replicas_unavailable",
            &deployment
        ),
        Some(1.0)
    );

    // Namespace labels and node conditions follow too.
    s.cluster.update_namespace(&ns, |n| {
        drop(n.labels.insert("team".into(), "moved".into()))
    });
    let node = s
        .cluster
        .read()
        .nodes
        .keys()
        .next()
        .expect("a node")
        .clone();
    s.cluster.update_node(&node, |n| {
        n.conditions.insert("MemoryPressure".into(), "True".into());
    });
    wait(&s.cache, "namespace labels and node conditions", |st| {
        st.namespaces
            .get(ns.as_str())
            .is_some_and(|n| n.labels.get("team") == Some("moved"))
            && st.nodes.get(node.as_str()).is_some_and(|n| {
                n.conditions
                    .iter()
                    .any(|(t, c)| &**t == "MemoryPressure" && *c == super::ConditionStatus::True)
            })
    })
    .await;
    let last = samples::build(&s.cache.read(), 3, |_| true, &mut series);
    let pressure = [
        ("node", node.as_str()),
        ("condition", "MemoryPressure"),
        ("status", "true"),
    ];
    assert_eq!(
        value(&last, "kube_node_status_condition", &pressure),
        Some(1.0)
    );
    s.watch.abort();
    s.apiserver.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_optional_watches_do_not_hold_readiness() {
    let s = start(Arc::new(|review| {
        review.resource_attributes.as_ref().is_none_or(|r| {
            !matches!(
                r.resource.as_str(),
                "namespaces" | "deployments" | "replicasets"
            )
        })
    }))
    .await;
    wait(&s.cache, "readiness", |_| s.cache.synced()).await;
    let pods = s.cluster.read().pods.len();
    {
        let state = s.cache.read();
        assert_eq!(state.pod_count(), pods);
        assert!(state.namespaces.is_empty() && state.deployments.is_empty());
    }
    // Pod samples are served without the forbidden kinds.
    let batch = samples::build(&s.cache.read(), 1, |_| true, &mut ClusterSeries::default());
    assert_eq!(batch.families["kube_pod_owner"].len(), pods);
    assert!(
        !batch
            .families
            .contains_key("kube_deployment_status_replicas")
    );
    s.watch.abort();
    s.apiserver.shutdown().await;
}
