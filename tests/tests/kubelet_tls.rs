//! Kubelet TLS: verification against the node name, the failure (and its hint) when verifying an
//! IP against a certificate without IP SANs, and the explicit insecure mode.

mod common;

use metrics_gateway::config::TlsServerName;
use metrics_gateway_testkit::cluster::ClusterSpec;

fn spec() -> ClusterSpec {
    ClusterSpec {
        nodes: 2,
        pods_per_node: 1,
        containers_per_pod: (1, 1),
        ..ClusterSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifying_the_node_name_succeeds() {
    let (rig, _) = common::rig_with(spec(), |o| o.tls_server_name = TlsServerName::NodeName).await;
    let r = rig.gateway.collector.run_cycle().await;
    assert_eq!((r.scraped, r.failed.len()), (2, 0), "{r:?}");
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifying_an_ip_without_ip_sans_fails_with_a_hint() {
    let (rig, _) = common::rig_with(spec(), |o| o.tls_server_name = TlsServerName::Address).await;
    let r = rig.gateway.collector.run_cycle().await;
    assert_eq!(r.scraped, 0, "{r:?}");
    assert!(r.failed.iter().all(|(_, reason)| *reason == "tls"), "{r:?}");
    let logs = common::logs();
    let line = logs
        .lines()
        .find(|l| {
            l.contains("kubelet scrape failed") && l.contains("node-00000") && l.contains("tls")
        })
        .expect("the failure is logged with the node name");
    assert!(line.contains("verifying name \"127.1.0.1\""), "{line}");
    assert!(
        line.contains("set kubelet.tls_server_name = \"node-name\""),
        "{line}"
    );
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_mode_skips_verification() {
    let (rig, _) = common::rig_with(spec(), |o| {
        o.tls_server_name = TlsServerName::Address;
        o.insecure_skip_tls_verify = true;
    })
    .await;
    let r = rig.gateway.collector.run_cycle().await;
    assert_eq!((r.scraped, r.failed.len()), (2, 0), "{r:?}");
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraping_works_without_keep_alive() {
    let (rig, clock) = common::rig_with(spec(), |o| o.keep_alive = false).await;
    rig.gateway.collector.run_cycle().await;
    clock.advance(std::time::Duration::from_secs(10));
    let r = rig.gateway.collector.run_cycle().await;
    assert_eq!(
        (r.scraped, r.nodes_served, r.pods_served),
        (2, 2, 2),
        "{r:?}"
    );
    for node in ["node-00000", "node-00001"] {
        assert_eq!(rig.kubelets.scrape_count(node), 2);
    }
    rig.shutdown().await;
}
