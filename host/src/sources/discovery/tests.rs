//! Discovery against the fake kube-apiserver: the table from its discovery documents, the
//! gateway's own metrics groups skipped, and a failing group that loses nothing else.

use std::collections::BTreeMap;

use metrics_gateway_testkit::apiserver::{ApiServerConfig, FakeApiServer, UserInfo};
use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster};

use super::{ApiTable, Discovery, ResourceInfo, TableSource, read};
use crate::config::KubernetesConfig;
use crate::sources::cluster::kube_config;
use crate::store::custom::ObjectResource;

const TOKEN: &str = "gateway-token";

async fn start() -> (FakeApiServer, kube::Client, tempfile::TempDir) {
    metrics_gateway_testkit::pki::install_crypto_provider();
    let cluster = SimCluster::generate(
        &ClusterSpec {
            nodes: 1,
            pods_per_node: 1,
            namespaces: 1,
            ..ClusterSpec::default()
        },
        SimClock::manual(1_700_000_000_000),
    );
    let tokens = BTreeMap::from([(
        TOKEN.to_string(),
        UserInfo {
            username: "system:serviceaccount:kube-system:metrics-gateway".into(),
            groups: vec!["system:authenticated".into()],
            uid: String::new(),
        },
    )]);
    let apiserver = FakeApiServer::start(
        cluster,
        ApiServerConfig {
            tokens,
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
        ..KubernetesConfig::default()
    })
    .await
    .expect("kube config");
    (
        apiserver,
        kube::Client::try_from(config).expect("client"),
        dir,
    )
}

/// A closed loopback port: an aggregated API there is down.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("https://127.0.0.1:{port}")
}

#[tokio::test]
async fn the_table_is_built_from_the_servers_discovery() {
    let (apiserver, client, _dir) = start().await;
    // The gateway's own groups are never asked (their backend is down here).
    apiserver.register_api_service(
        "custom.metrics.k8s.io",
        "v1beta2",
        100,
        200,
        &closed_port(),
        None,
    );
    let discovery = Discovery::default();
    assert!(!discovery.table().is_discovered());
    let read = read(&client, &discovery.table()).await.unwrap();
    assert!(read.failed.is_empty(), "{:?}", read.failed);
    let table = read.table;
    assert!(table.is_discovered());
    let get = |g: &str, p: &str| table.get(&ObjectResource::new(g, p)).cloned();
    let services = get("", "services").expect("core services");
    assert_eq!(
        (&*services.kind, &*services.singular, services.namespaced),
        ("Service", "service", true)
    );
    assert_eq!(services.api_version(), "/v1");
    let deployments = get("apps", "deployments").expect("apps deployments");
    assert_eq!(deployments.api_version(), "apps/v1");
    let plugins = get("metrics-gateway.io", "metricsplugins").expect("the CRD's resource");
    assert_eq!((&*plugins.version, plugins.namespaced), ("v1alpha1", false));
    assert!(table.group("custom.metrics.k8s.io").next().is_none());
    // Subresources are not resources.
    assert!(table.iter().all(|r| !r.resource.plural().contains('/')));
    assert!(discovery.replace(table.clone()));
    assert!(!discovery.replace(table), "an equal table is no change");
}

#[tokio::test]
async fn a_failing_group_keeps_its_last_resources_and_loses_no_other() {
    let (apiserver, client, _dir) = start().await;
    apiserver.register_api_service("broken.example.io", "v1", 100, 100, &closed_port(), None);
    let mut entries: Vec<ResourceInfo> =
        ApiTable::builtin().iter().map(|r| (**r).clone()).collect();
    entries.push(ResourceInfo::new(
        "broken.example.io",
        "v1",
        "widgets",
        "widget",
        "Widget",
        true,
    ));
    let previous = ApiTable::new(entries, TableSource::Discovered);
    // The aggregator answers 503 at once: the read fails that group without retrying it for
    // minutes (kube-client's default retries are off).
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), read(&client, &previous))
        .await
        .expect("a down aggregated API fails its group at once")
        .unwrap();
    assert_eq!(
        read.failed
            .iter()
            .map(|(g, _)| g.as_str())
            .collect::<Vec<_>>(),
        ["broken.example.io"]
    );
    let widgets = read
        .table
        .get(&ObjectResource::new("broken.example.io", "widgets"))
        .expect("the failing group's last resources are kept");
    assert!(widgets.namespaced);
    for (group, plural) in [
        ("", "pods"),
        ("apps", "deployments"),
        ("coordination.k8s.io", "leases"),
    ] {
        assert!(
            read.table
                .get(&ObjectResource::new(group, plural))
                .is_some(),
            "{plural}.{group}"
        );
    }
}
