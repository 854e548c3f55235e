//! Per-node interning of the kubelet samples offered to plugins, kept in the node's slot
//! across cycles so every series keeps its id while it exists.

use super::promtext::Sample;
use super::summary::{self, SummaryError};
use super::text::{TextError, text_batch};
use super::{RESOURCE_PATH, cadvisor};
use crate::samples::{Batch, SeriesCache, Source};

/// The series of one node's kubelet endpoints, one cache per endpoint.
///
/// Each decode method sweeps its cache after a successful decode, so a series missing from
/// the latest answer (a deleted pod, a statistic no longer wanted) is forgotten and a series
/// still present keeps its id. A failed decode sweeps nothing: the next success does.
#[derive(Debug, Default)]
pub struct NodeSamples {
    /// Series of `/metrics/resource`.
    pub resource: SeriesCache,
    /// Series of `/stats/summary`.
    pub summary: SeriesCache,
    /// Series of `/metrics/cadvisor`.
    pub cadvisor: SeriesCache,
}

impl NodeSamples {
    /// `/metrics/resource` as samples, metric names filtered by `want`.
    pub fn resource(
        &mut self,
        text: &str,
        node: &str,
        default_ts_ms: i64,
        want: impl Fn(&str) -> bool,
    ) -> Result<Batch, TextError> {
        let keep = |s: &Sample<'_>| want(s.name);
        let batch = text_batch(
            text,
            node,
            RESOURCE_PATH,
            default_ts_ms,
            keep,
            &mut self.resource,
        )?;
        self.resource.sweep();
        Ok(batch)
    }

    /// `/stats/summary` as samples (see [`summary::Metric`]), filtered by `want`.
    pub fn summary(
        &mut self,
        body: &[u8],
        node: &str,
        want: impl Fn(&str) -> bool,
    ) -> Result<Batch, SummaryError> {
        let batch = summary::decode_wanted(body, node, want, &mut self.summary)?;
        self.summary.sweep();
        Ok(batch)
    }

    /// `/metrics/cadvisor` as samples (see [`cadvisor`] for the series kept), filtered by
    /// `want`.
    pub fn cadvisor(
        &mut self,
        text: &str,
        node: &str,
        default_ts_ms: i64,
        want: impl Fn(&str) -> bool,
    ) -> Result<Batch, TextError> {
        let batch = cadvisor::decode_wanted(text, node, default_ts_ms, want, &mut self.cadvisor)?;
        self.cadvisor.sweep();
        Ok(batch)
    }

    /// Forgets every series of `source` (call when it stops being scraped, so an endpoint no
    /// plugin reads holds no memory). Other sources are ignored.
    pub fn clear(&mut self, source: Source) {
        let cache = match source {
            Source::KubeletResource => &mut self.resource,
            Source::KubeletSummary => &mut self.summary,
            Source::KubeletCadvisor => &mut self.cadvisor,
            _ => return,
        };
        *cache = SeriesCache::default();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    use metrics_gateway_testkit::cluster::{ClusterSpec, SimClock, SimCluster, node_address};
    use metrics_gateway_testkit::kubelet_sim::{
        KubeletSimConfig, KubeletSimulator, pod_network_rate,
    };

    use super::*;
    use crate::config::{KubeletConfig, TlsServerName};
    use crate::sources::cluster::{LabelSet, NodeInfo};
    use crate::sources::kubelet::client::Connection;
    use crate::sources::kubelet::{CADVISOR_PATH, KubeletScraper, SUMMARY_PATH};

    /// Through the real client against a simulated kubelet: the Summary's pod network counters
    /// give each pod's exact model rate over two scrapes, and cAdvisor is fetched only when
    /// asked for.
    #[tokio::test]
    async fn summary_counters_over_two_scrapes_give_the_model_rates() {
        let port = std::net::TcpListener::bind((node_address(0), 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let spec = ClusterSpec {
            nodes: 1,
            pods_per_node: 3,
            containers_per_pod: (1, 2),
            namespaces: 2,
            seed: 11,
            kubelet_port: port,
        };
        let cluster = SimCluster::generate(&spec, SimClock::manual(1_750_000_000_000));
        let sim = KubeletSimulator::start(cluster.clone(), KubeletSimConfig::default())
            .await
            .expect("simulator starts");
        let mut roots = rustls::RootCertStore::empty();
        let pem = sim.ca_pem();
        roots.add_parsable_certificates(CertificateDer::pem_slice_iter(pem.as_bytes()).flatten());
        let config = KubeletConfig {
            tls_server_name: TlsServerName::NodeName,
            ..KubeletConfig::default()
        };
        let scraper = KubeletScraper::new(&config, roots).expect("scraper");
        let node = NodeInfo {
            name: "node-00000".into(),
            labels: Arc::new(LabelSet::default()),
            addresses: vec![("InternalIP".into(), node_address(0).to_string().into())],
            kubelet_port: port,
            ready: true,
            conditions: Default::default(),
        };
        let mut conn = Connection::default();
        let mut samples = NodeSamples::default();
        let want = |name: &str| name.starts_with("pod_network_");
        let mut scrape = async |samples: &mut NodeSamples| {
            let body = scraper
                .fetch(&mut conn, &node, None, SUMMARY_PATH)
                .await
                .expect("summary fetched");
            samples
                .summary(&body, &node.name, want)
                .expect("summary decoded")
        };
        let first = scrape(&mut samples).await;
        cluster.clock.advance(Duration::from_secs(15));
        let second = scrape(&mut samples).await;

        let pods: Vec<_> = cluster
            .read()
            .pods_on("node-00000")
            .filter(|p| p.phase == "Running")
            .cloned()
            .collect();
        let (rx1, rx2) = (
            &first.families["pod_network_receive_bytes_total"],
            &second.families["pod_network_receive_bytes_total"],
        );
        assert_eq!(rx1.len(), pods.len());
        for (i, series) in rx2.series.iter().enumerate() {
            let j = rx1
                .series
                .iter()
                .position(|s| s.id == series.id)
                .expect("same id");
            let pod = pods
                .iter()
                .find(|p| Some(p.name.as_str()) == series.label("pod"))
                .expect("a simulated pod");
            let rate = (rx2.values[i] - rx1.values[j]) * 1000.0
                / (rx2.timestamps_ms[i] - rx1.timestamps_ms[j]) as f64;
            assert_eq!(rate, pod_network_rate(&pod.uid).rx_bytes_per_second as f64);
        }
        assert_eq!(samples.summary.len(), 4 * pods.len());
        assert_eq!(sim.scrape_count_path("node-00000", CADVISOR_PATH), 0);

        let text = scraper
            .fetch(&mut conn, &node, None, CADVISOR_PATH)
            .await
            .expect("cadvisor fetched");
        let text = std::str::from_utf8(&text).expect("UTF-8");
        let batch = samples
            .cadvisor(text, &node.name, 0, |n| {
                n == "container_network_receive_bytes_total"
            })
            .expect("cadvisor decoded");
        // One sandbox per pod plus the node's root cgroup.
        assert_eq!(batch.len(), pods.len() + 1);
        assert_eq!(sim.scrape_count_path("node-00000", CADVISOR_PATH), 1);
        assert_eq!(sim.scrape_count_path("node-00000", SUMMARY_PATH), 2);
        sim.shutdown().await;
    }
}
