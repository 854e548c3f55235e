//! End-to-end tests: real TLS listeners on 127.1.x addresses, scraped by a rustls client that
//! trusts only the simulator's CA and verifies the node name.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use super::*;
use crate::cluster::{ClusterSpec, Millis, PodFaults, SimClock, SimNode, SimPod, node_address};

const START_MS: Millis = 1_700_000_000_123;

/// A port no other test of this process uses, free on the first node address right now.
fn free_port() -> u16 {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let probe = std::net::TcpListener::bind((node_address(0), 0)).expect("probe bind");
        let port = probe.local_addr().expect("probe addr").port();
        let mut taken = TAKEN.lock().unwrap();
        if taken.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

fn spec(nodes: usize, containers: (usize, usize)) -> ClusterSpec {
    ClusterSpec {
        nodes,
        pods_per_node: 4,
        containers_per_pod: containers,
        namespaces: 2,
        seed: 7,
        kubelet_port: free_port(),
    }
}

struct Harness {
    cluster: Arc<SimCluster>,
    sim: KubeletSimulator,
    ca: String,
    token: Option<String>,
}

impl Harness {
    async fn start(spec: ClusterSpec, config: KubeletSimConfig) -> Harness {
        let cluster = SimCluster::generate(&spec, SimClock::manual(START_MS));
        let token = config.token.clone();
        let sim = KubeletSimulator::start(cluster.clone(), config)
            .await
            .expect("simulator starts");
        let ca = sim.ca_pem();
        Harness {
            cluster,
            sim,
            ca,
            token,
        }
    }

    fn addr(&self, node: &str) -> SocketAddr {
        let state = self.cluster.read();
        let n = &state.nodes[node];
        SocketAddr::from((n.address, n.kubelet_port))
    }

    fn now(&self) -> Millis {
        self.cluster.clock.now_ms()
    }

    async fn connect(&self, node: &str, h2: bool) -> anyhow::Result<Conn> {
        Conn::open(&self.ca, node, self.addr(node), h2).await
    }

    async fn get(&self, node: &str, path: &str) -> Reply {
        let mut conn = self.connect(node, false).await.expect("connects");
        conn.get(path, self.token.as_deref())
            .await
            .expect("answers")
    }

    async fn metrics(&self, node: &str) -> Exposition {
        let reply = self.get(node, "/metrics/resource").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        parse_exposition(&reply.body).expect("valid exposition")
    }

    async fn summary(&self, node: &str) -> Value {
        let reply = self.get(node, "/stats/summary").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        serde_json::from_str(&reply.body).expect("valid JSON")
    }

    fn running_pods(&self, node: &str) -> Vec<SimPod> {
        self.cluster
            .read()
            .pods_on(node)
            .filter(|p| p.phase == "Running")
            .cloned()
            .collect()
    }

    fn node(&self, node: &str) -> SimNode {
        self.cluster.read().nodes[node].clone()
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    version: Version,
    content_type: String,
    body: String,
}

enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

/// One client connection (TLS, node name verified against the simulator's CA).
struct Conn {
    sender: Sender,
    authority: String,
    driver: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn tls_connector(ca_pem: &str, alpn: &[u8]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.expect("CA PEM parses"))
            .expect("CA is valid");
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

impl Conn {
    async fn open(
        ca_pem: &str,
        server_name: &str,
        addr: SocketAddr,
        h2: bool,
    ) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect(addr).await?;
        let connector = tls_connector(ca_pem, if h2 { b"h2" } else { b"http/1.1" });
        let tls = connector
            .connect(ServerName::try_from(server_name.to_string())?, tcp)
            .await?;
        let io = TokioIo::new(tls);
        let (sender, driver) = if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
            (
                Sender::H2(sender),
                tokio::spawn(async move { drop(conn.await) }),
            )
        } else {
            let (sender, conn) = http1::handshake(io).await?;
            (
                Sender::H1(sender),
                tokio::spawn(async move { drop(conn.await) }),
            )
        };
        Ok(Conn {
            sender,
            authority: format!("{server_name}:{}", addr.port()),
            driver,
        })
    }

    async fn get(&mut self, path: &str, token: Option<&str>) -> anyhow::Result<Reply> {
        let mut req = Request::get(format!("https://{}{path}", self.authority));
        if matches!(self.sender, Sender::H1(_)) {
            req = Request::get(path).header(http::header::HOST, &self.authority);
        }
        if let Some(token) = token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req.body(Empty::new())?;
        let resp = match &mut self.sender {
            Sender::H1(s) => s.send_request(req).await?,
            Sender::H2(s) => s.send_request(req).await?,
        };
        let (status, version) = (resp.status(), resp.version());
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            version,
            content_type,
            body: String::from_utf8(body.to_vec())?,
        })
    }
}

// ---- a tiny Prometheus text-format parser (the gateway's own parser is not available here) ----

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
    ts: Option<i64>,
}

#[derive(Debug, Default)]
struct Exposition {
    /// Family names in order of their TYPE lines.
    families: Vec<String>,
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn family(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        self.samples.iter().find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    fn container(&self, name: &str, pod: &SimPod, container: &str) -> Option<&Sample> {
        self.find(
            name,
            &[
                ("container", container),
                ("namespace", &pod.namespace),
                ("pod", &pod.name),
            ],
        )
    }

    fn pod(&self, name: &str, pod: &SimPod) -> Option<&Sample> {
        self.find(name, &[("namespace", &pod.namespace), ("pod", &pod.name)])
    }
}

fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    if !text.ends_with('\n') {
        return Err("no trailing newline".into());
    }
    for (i, line) in text.lines().enumerate() {
        let err = |what: &str| format!("line {}: {what}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').ok_or_else(|| err("bad HELP"))?;
            out.help.insert(name.into(), help.into());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| err("bad TYPE"))?;
            if !matches!(
                kind,
                "counter" | "gauge" | "untyped" | "summary" | "histogram"
            ) {
                return Err(err("unknown type"));
            }
            out.types.insert(name.into(), kind.into());
            out.families.push(name.into());
        } else if line.starts_with('#') {
            continue;
        } else {
            let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
            let name = &line[..name_end];
            let valid = |c: char, first: bool| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
            };
            if name.is_empty() || !name.chars().enumerate().all(|(i, c)| valid(c, i == 0)) {
                return Err(err("bad metric name"));
            }
            if out.families.last().map(String::as_str) != Some(name) {
                return Err(err("sample outside its family"));
            }
            let mut rest = &line[name_end..];
            let mut labels = BTreeMap::new();
            if let Some(mut l) = rest.strip_prefix('{') {
                while !l.starts_with('}') {
                    let (key, after) = l.split_once("=\"").ok_or_else(|| err("bad label"))?;
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars
                            .next()
                            .ok_or_else(|| err("unterminated label value"))?
                        {
                            (j, '"') => break j,
                            (_, '\\') => match chars.next().ok_or_else(|| err("bad escape"))?.1 {
                                'n' => value.push('\n'),
                                c => value.push(c),
                            },
                            (_, c) => value.push(c),
                        }
                    };
                    labels.insert(key.to_string(), value);
                    l = &after[end + 1..];
                    l = l.strip_prefix(',').unwrap_or(l);
                }
                rest = &l[1..];
            }
            let mut parts = rest
                .strip_prefix(' ')
                .ok_or_else(|| err("no space before value"))?
                .split(' ');
            let value = match parts.next().ok_or_else(|| err("no value"))? {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().map_err(|_| err("bad value"))?,
            };
            let ts = parts
                .next()
                .map(|t| t.parse().map_err(|_| err("bad timestamp")))
                .transpose()?;
            if parts.next().is_some() {
                return Err(err("trailing fields"));
            }
            out.samples.push(Sample {
                name: name.into(),
                labels,
                value,
                ts,
            });
        }
    }
    Ok(out)
}

fn seconds(ms: Millis) -> f64 {
    ms as f64 / 1000.0
}

fn rfc3339(ms: Millis) -> String {
    let mut out = Vec::new();
    format::write_json_time(&mut out, ms);
    String::from_utf8(out)
        .unwrap()
        .trim_matches('"')
        .to_string()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

// ---- tests ----

#[tokio::test]
async fn metrics_resource_matches_ground_truth() {
    let h = Harness::start(spec(2, (1, 3)), KubeletSimConfig::default()).await;
    let pending = h.running_pods("node-00000")[1].clone();
    h.cluster
        .update_pod(&pending.namespace, &pending.name, |p| {
            p.phase = "Pending".into()
        });
    let now = h.now();
    let reply = h.get("node-00000", "/metrics/resource").await;
    assert_eq!(
        reply.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let m = parse_exposition(&reply.body).expect("valid exposition");

    assert_eq!(
        m.families,
        [
            "container_cpu_usage_seconds_total",
            "container_memory_working_set_bytes",
            "container_start_time_seconds",
            "node_cpu_usage_seconds_total",
            "node_memory_working_set_bytes",
            "pod_cpu_usage_seconds_total",
            "pod_memory_working_set_bytes",
            "resource_scrape_error",
        ]
    );
    assert_eq!(
        m.help["container_cpu_usage_seconds_total"],
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds"
    );
    assert_eq!(
        m.help["node_memory_working_set_bytes"],
        "[STABLE] Current working set of the node in bytes"
    );
    assert_eq!(m.types["container_cpu_usage_seconds_total"], "counter");
    assert_eq!(m.types["pod_memory_working_set_bytes"], "gauge");

    let pods = h.running_pods("node-00000");
    assert_eq!(pods.len(), 3);
    let containers: usize = pods.iter().map(|p| p.containers.len()).sum();
    assert_eq!(
        m.family("container_cpu_usage_seconds_total").len(),
        containers
    );
    assert_eq!(m.family("container_start_time_seconds").len(), containers);
    assert_eq!(m.family("pod_cpu_usage_seconds_total").len(), pods.len());
    assert!(
        m.find(
            "pod_cpu_usage_seconds_total",
            &[("namespace", &pending.namespace), ("pod", &pending.name)]
        )
        .is_none()
    );

    for pod in &pods {
        for c in &pod.containers {
            let cpu = m
                .container("container_cpu_usage_seconds_total", pod, &c.name)
                .expect("cpu sample");
            assert_eq!(cpu.value, c.cpu_seconds_at(now), "{}/{}", pod.name, c.name);
            assert_eq!(cpu.ts, Some(now));
            let mem = m
                .container("container_memory_working_set_bytes", pod, &c.name)
                .expect("memory sample");
            assert_eq!(mem.value, c.memory_bytes as f64);
            assert_eq!(mem.ts, Some(now));
            let start = m
                .container("container_start_time_seconds", pod, &c.name)
                .expect("start sample");
            assert_eq!(start.value, seconds(c.start_ms));
            assert_eq!(start.ts, None);
        }
        let pt = now - POD_STAMP_LAG_MS;
        let cpu = m.pod("pod_cpu_usage_seconds_total", pod).expect("pod cpu");
        let want: f64 = pod.containers.iter().map(|c| c.cpu_seconds_at(pt)).sum();
        assert_eq!((cpu.value, cpu.ts), (want, Some(pt)));
        let mem = m
            .pod("pod_memory_working_set_bytes", pod)
            .expect("pod memory");
        assert_eq!(
            mem.value,
            pod.containers.iter().map(|c| c.memory_bytes).sum::<u64>() as f64
        );
    }

    let node = h.node("node-00000");
    let (cpu, mem) = h.cluster.read().node_usage(&node);
    let nt = now - NODE_STAMP_LAG_MS;
    let node_cpu = &m.family("node_cpu_usage_seconds_total")[0];
    assert!(node_cpu.labels.is_empty());
    assert_eq!(
        (node_cpu.value, node_cpu.ts),
        (cpu as f64 / 1e9 * seconds(nt - node.boot_ms), Some(nt))
    );
    let node_mem = &m.family("node_memory_working_set_bytes")[0];
    assert_eq!((node_mem.value, node_mem.ts), (mem as f64, Some(nt)));
    assert_ne!(
        node_cpu.ts,
        m.family("container_cpu_usage_seconds_total")[0].ts
    );
    let scrape_error = &m.family("resource_scrape_error")[0];
    assert_eq!((scrape_error.value, scrape_error.ts), (0.0, None));

    // Samples are sorted by label values (container, namespace, pod), as client_golang does.
    let keys: Vec<_> = m
        .family("container_cpu_usage_seconds_total")
        .iter()
        .map(|s| {
            (
                s.labels["container"].clone(),
                s.labels["namespace"].clone(),
                s.labels["pod"].clone(),
            )
        })
        .collect();
    assert!(keys.is_sorted(), "{keys:?}");
    // Go float formatting: large gauges use exponent form.
    assert!(reply.body.contains(&format!(
        "node_memory_working_set_bytes {} ",
        go_float(mem as f64)
    )));
    assert!(go_float(mem as f64).contains("e+"));
    h.sim.shutdown().await;
}

fn go_float(v: f64) -> String {
    let mut out = Vec::new();
    format::write_go_float(&mut out, v);
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn counters_advance_by_rate_times_elapsed() {
    let h = Harness::start(spec(1, (1, 2)), KubeletSimConfig::default()).await;
    let (m1, s1) = (h.metrics("node-00000").await, h.summary("node-00000").await);
    h.cluster.clock.advance(Duration::from_secs(10));
    let (m2, s2) = (h.metrics("node-00000").await, h.summary("node-00000").await);

    let pods = h.running_pods("node-00000");
    for pod in &pods {
        for c in &pod.containers {
            let (a, b) = (
                m1.container("container_cpu_usage_seconds_total", pod, &c.name)
                    .unwrap(),
                m2.container("container_cpu_usage_seconds_total", pod, &c.name)
                    .unwrap(),
            );
            assert_eq!(b.ts.unwrap() - a.ts.unwrap(), 10_000);
            let want = c.cpu_nanocores as f64 / 1e9 * 10.0;
            assert!(
                ((b.value - a.value) - want).abs() <= want * 1e-9,
                "{} vs {want}",
                b.value - a.value
            );
        }
    }
    let node = h.node("node-00000");
    let (node_cpu, _) = h.cluster.read().node_usage(&node);
    assert_eq!(
        u(&s2["node"]["cpu"]["usageCoreNanoSeconds"])
            - u(&s1["node"]["cpu"]["usageCoreNanoSeconds"]),
        node_cpu * 10
    );
    let mut node_rx = node_network_rate(&node.name).rx_bytes_per_second;
    for (i, pod) in pods.iter().enumerate() {
        let (a, b) = (&s1["pods"][i], &s2["pods"][i]);
        assert_eq!(b["podRef"]["uid"], pod.uid.as_str());
        for (j, c) in pod.containers.iter().enumerate() {
            let d = u(&b["containers"][j]["cpu"]["usageCoreNanoSeconds"])
                - u(&a["containers"][j]["cpu"]["usageCoreNanoSeconds"]);
            assert_eq!(d, c.cpu_nanocores * 10);
        }
        let rate = pod_network_rate(&pod.uid);
        assert_eq!(
            u(&b["network"]["rxBytes"]) - u(&a["network"]["rxBytes"]),
            rate.rx_bytes_per_second * 10
        );
        assert_eq!(
            u(&b["network"]["txBytes"]) - u(&a["network"]["txBytes"]),
            rate.tx_bytes_per_second * 10
        );
        assert_eq!(
            b["network"]["interfaces"][0]["txBytes"],
            b["network"]["txBytes"]
        );
        node_rx += rate.rx_bytes_per_second;
    }
    assert_eq!(
        u(&s2["node"]["network"]["rxBytes"]) - u(&s1["node"]["network"]["rxBytes"]),
        node_rx * 10
    );
    h.sim.shutdown().await;
}

#[tokio::test]
async fn stats_summary_matches_ground_truth() {
    let h = Harness::start(spec(1, (1, 3)), KubeletSimConfig::default()).await;
    let now = h.now();
    let reply = h.get("node-00000", "/stats/summary").await;
    assert_eq!(reply.content_type, "application/json");
    let s: Value = serde_json::from_str(&reply.body).unwrap();
    let node = h.node("node-00000");
    let (cpu, mem) = h.cluster.read().node_usage(&node);
    let n = &s["node"];
    assert_eq!(n["nodeName"], "node-00000");
    assert_eq!(n["startTime"], rfc3339(node.boot_ms).as_str());
    assert_eq!(n["cpu"]["time"], rfc3339(now - NODE_STAMP_LAG_MS).as_str());
    assert_eq!(u(&n["cpu"]["usageNanoCores"]), cpu);
    assert_eq!(u(&n["memory"]["workingSetBytes"]), mem);
    assert!(u(&n["memory"]["usageBytes"]) >= mem && u(&n["memory"]["rssBytes"]) <= mem);
    let system: Vec<_> = n["systemContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(system, ["kubelet", "runtime", "pods"]);
    let system_cpu: u64 = n["systemContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| u(&c["cpu"]["usageNanoCores"]))
        .sum();
    assert_eq!(system_cpu, cpu);
    assert_eq!(n["network"]["name"], "eth0");
    for key in [
        "availableBytes",
        "capacityBytes",
        "usedBytes",
        "inodesFree",
        "inodes",
        "inodesUsed",
    ] {
        assert!(n["fs"][key].is_u64(), "node fs {key}");
    }
    assert!(n["runtime"]["imageFs"]["usedBytes"].is_u64());

    let pods = h.running_pods("node-00000");
    let got = s["pods"].as_array().unwrap();
    assert_eq!(got.len(), pods.len());
    for (p, pod) in got.iter().zip(&pods) {
        assert_eq!(p["podRef"]["name"], pod.name.as_str());
        assert_eq!(p["podRef"]["namespace"], pod.namespace.as_str());
        assert_eq!(p["podRef"]["uid"], pod.uid.as_str());
        assert_eq!(p["startTime"], rfc3339(pod.start_ms).as_str());
        let containers = p["containers"].as_array().unwrap();
        assert_eq!(containers.len(), pod.containers.len());
        for (c, sim) in containers.iter().zip(&pod.containers) {
            assert_eq!(c["name"], sim.name.as_str());
            assert_eq!(c["startTime"], rfc3339(sim.start_ms).as_str());
            assert_eq!(u(&c["cpu"]["usageNanoCores"]), sim.cpu_nanocores);
            let t = now / 1000 * 1000;
            assert_eq!(c["cpu"]["time"], rfc3339(t).as_str());
            assert_eq!(
                u(&c["cpu"]["usageCoreNanoSeconds"]),
                sim.cpu_nanocores * ((t - sim.start_ms) as u64) / 1000
            );
            assert_eq!(u(&c["memory"]["workingSetBytes"]), sim.memory_bytes);
            assert!(c["rootfs"]["usedBytes"].is_u64() && c["logs"]["usedBytes"].is_u64());
        }
        assert_eq!(
            u(&p["cpu"]["usageNanoCores"]),
            pod.containers.iter().map(|c| c.cpu_nanocores).sum::<u64>()
        );
        assert_eq!(
            u(&p["memory"]["workingSetBytes"]),
            pod.containers.iter().map(|c| c.memory_bytes).sum::<u64>()
        );
        let pt = (now - POD_STAMP_LAG_MS) / 1000 * 1000;
        assert_eq!(p["network"]["time"], rfc3339(pt).as_str());
        assert_eq!(
            u(&p["network"]["rxBytes"]),
            pod_network_rate(&pod.uid).bytes_at(pod.start_ms, pt).0
        );
        assert!(
            p["volume"][0]["name"]
                .as_str()
                .unwrap()
                .starts_with("kube-api-access-")
        );
        let used: u64 = containers
            .iter()
            .map(|c| u(&c["rootfs"]["usedBytes"]) + u(&c["logs"]["usedBytes"]))
            .sum();
        assert_eq!(u(&p["ephemeral-storage"]["usedBytes"]), used);
        assert!(p["process_stats"]["process_count"].is_u64());
    }

    // metrics-server's query: CPU and memory only.
    let reply = h
        .get("node-00000", "/stats/summary?only_cpu_and_memory=true")
        .await;
    let s: Value = serde_json::from_str(&reply.body).unwrap();
    assert!(
        s["node"]["cpu"].is_object()
            && s["node"].get("network").is_none()
            && s["node"].get("fs").is_none()
    );
    let p = &s["pods"][0];
    assert!(
        p["memory"].is_object()
            && p.get("network").is_none()
            && p.get("ephemeral-storage").is_none()
    );
    assert!(p["containers"][0]["cpu"].is_object() && p["containers"][0].get("rootfs").is_none());
    h.sim.shutdown().await;
}

#[tokio::test]
async fn metrics_cadvisor_matches_ground_truth_and_is_counted_per_path() {
    let h = Harness::start(spec(1, (1, 3)), KubeletSimConfig::default()).await;
    let node = "node-00000";
    let reply = h.get(node, "/metrics/resource").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(h.sim.scrape_count_path(node, "/metrics/cadvisor"), 0);
    assert_eq!(h.sim.scrape_count_path(node, "/metrics/resource"), 1);

    let now = h.now();
    let reply = h.get(node, "/metrics/cadvisor").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let m = parse_exposition(&reply.body).expect("valid exposition");
    assert_eq!(h.sim.scrape_count_path(node, "/metrics/cadvisor"), 1);
    assert_eq!(h.sim.scrape_count_path(node, "/stats/summary"), 0);
    assert_eq!(h.sim.scrape_count_path(node, "/nope"), 0);
    assert_eq!(h.sim.scrape_count(node), 2);

    let mut sorted = m.families.clone();
    sorted.sort();
    assert_eq!(m.families, sorted, "families sorted by name");
    let cpu = m.family("container_cpu_usage_seconds_total");
    for s in &cpu {
        let names: Vec<&str> = s.labels.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "container",
                "cpu",
                "id",
                "image",
                "name",
                "namespace",
                "pod"
            ]
        );
    }
    let root = cpu
        .iter()
        .find(|s| s.labels["id"] == "/")
        .expect("root cgroup");
    assert_eq!(root.ts, Some(now - NODE_STAMP_LAG_MS));
    assert!(
        cpu.iter().any(
            |s| s.labels["id"] == "/system.slice/kubelet.service" && s.labels["pod"].is_empty()
        )
    );

    let pods = h.running_pods(node);
    for pod in &pods {
        let pod_cpu: Vec<_> = cpu
            .iter()
            .filter(|s| s.labels["pod"] == pod.name && s.labels["namespace"] == pod.namespace)
            .collect();
        // The pod cgroup, its sandbox and each container.
        assert_eq!(pod_cpu.len(), 2 + pod.containers.len());
        for c in &pod.containers {
            let s = pod_cpu
                .iter()
                .find(|s| s.labels["container"] == c.name)
                .expect("container series");
            assert_eq!(s.ts, Some(now));
            let want = c.cpu_seconds_at(now);
            assert!(
                (s.value - want).abs() <= want * 1e-9,
                "{} vs {want}",
                s.value
            );
            assert!(
                s.labels["id"].ends_with(&format!("cri-containerd-{}.scope", s.labels["name"]))
            );
            assert!(!s.labels["image"].is_empty());
            let mem = m
                .find(
                    "container_memory_working_set_bytes",
                    &[
                        ("container", &c.name),
                        ("id", &s.labels["id"]),
                        ("image", &s.labels["image"]),
                        ("name", &s.labels["name"]),
                        ("namespace", &pod.namespace),
                        ("pod", &pod.name),
                    ],
                )
                .expect("memory series");
            assert_eq!(mem.value, c.memory_bytes as f64);
        }
        let rx: Vec<_> = m
            .family("container_network_receive_bytes_total")
            .into_iter()
            .filter(|s| s.labels["pod"] == pod.name)
            .collect();
        assert_eq!(rx.len(), 1, "one sandbox per pod carries eth0");
        let sandbox = rx[0];
        assert_eq!(sandbox.labels["container"], "");
        assert_eq!(sandbox.labels["interface"], "eth0");
        assert!(sandbox.labels["image"].starts_with("registry.k8s.io/pause:"));
        let pt = now - POD_STAMP_LAG_MS;
        assert_eq!(sandbox.ts, Some(pt));
        let (want_rx, _) = pod_network_rate(&pod.uid).bytes_at(pod.start_ms, pt);
        assert_eq!(sandbox.value, want_rx as f64);
    }
    let fs = m.family("container_fs_usage_bytes");
    assert_eq!(
        fs.len(),
        pods.iter().map(|p| p.containers.len()).sum::<usize>()
    );
    assert_eq!(m.family("machine_memory_bytes").len(), 1);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn metrics_cadvisor_network_counters_grow_at_the_model_rate() {
    let h = Harness::start(spec(1, (1, 2)), KubeletSimConfig::default()).await;
    let node = "node-00000";
    let m1 = parse_exposition(&h.get(node, "/metrics/cadvisor").await.body).unwrap();
    h.cluster.clock.advance(Duration::from_secs(15));
    let m2 = parse_exposition(&h.get(node, "/metrics/cadvisor").await.body).unwrap();
    for pod in h.running_pods(node) {
        let tx = |m: &Exposition| {
            let s = m
                .family("container_network_transmit_bytes_total")
                .into_iter()
                .find(|s| s.labels["pod"] == pod.name)
                .expect("sandbox series");
            (s.value, s.ts.unwrap())
        };
        let ((a, ta), (b, tb)) = (tx(&m1), tx(&m2));
        assert_eq!(tb - ta, 15_000);
        assert_eq!(
            b - a,
            (pod_network_rate(&pod.uid).tx_bytes_per_second * 15) as f64
        );
    }
    h.sim.shutdown().await;
}

#[tokio::test]
async fn pod_faults_are_applied() {
    let h = Harness::start(spec(1, (2, 3)), KubeletSimConfig::default()).await;
    let pods = h.running_pods("node-00000");
    let [gone, partial, zero, skewed] = [&pods[0], &pods[1], &pods[2], &pods[3]];
    let dropped = partial.containers[1].name.clone();
    let set = |pod: &SimPod, faults: PodFaults| {
        h.cluster
            .update_pod(&pod.namespace, &pod.name, |p| p.faults = faults)
    };
    set(
        gone,
        PodFaults {
            missing_from_kubelet: true,
            ..Default::default()
        },
    );
    set(
        partial,
        PodFaults {
            missing_container: Some(dropped.clone()),
            ..Default::default()
        },
    );
    set(
        zero,
        PodFaults {
            zero_values: true,
            ..Default::default()
        },
    );
    set(
        skewed,
        PodFaults {
            timestamp_skew_ms: 30_000,
            ..Default::default()
        },
    );
    let now = h.now();
    let m = h.metrics("node-00000").await;
    let s = h.summary("node-00000").await;

    assert!(m.pod("pod_cpu_usage_seconds_total", gone).is_none());
    assert!(
        m.container("container_cpu_usage_seconds_total", gone, "main")
            .is_none()
    );
    assert!(
        s["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["podRef"]["name"] != gone.name.as_str())
    );

    assert!(
        m.container("container_cpu_usage_seconds_total", partial, &dropped)
            .is_none()
    );
    assert!(
        m.container("container_memory_working_set_bytes", partial, &dropped)
            .is_none()
    );
    assert!(
        m.container("container_cpu_usage_seconds_total", partial, "main")
            .is_some()
    );
    // The pod cgroup still includes the unreported container.
    let pod_mem = m
        .pod("pod_memory_working_set_bytes", partial)
        .unwrap()
        .value;
    assert_eq!(
        pod_mem,
        partial
            .containers
            .iter()
            .map(|c| c.memory_bytes)
            .sum::<u64>() as f64
    );
    let sp = s["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == partial.name.as_str())
        .unwrap();
    assert!(
        sp["containers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != dropped.as_str())
    );

    for c in &zero.containers {
        assert_eq!(
            m.container("container_cpu_usage_seconds_total", zero, &c.name)
                .unwrap()
                .value,
            0.0
        );
        assert_eq!(
            m.container("container_memory_working_set_bytes", zero, &c.name)
                .unwrap()
                .value,
            0.0
        );
    }
    assert_eq!(
        m.pod("pod_cpu_usage_seconds_total", zero).unwrap().value,
        0.0
    );
    let sz = s["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == zero.name.as_str())
        .unwrap();
    assert_eq!(u(&sz["containers"][0]["cpu"]["usageNanoCores"]), 0);
    assert_eq!(u(&sz["containers"][0]["memory"]["workingSetBytes"]), 0);

    let c = &skewed.containers[0];
    let sample = m
        .container("container_cpu_usage_seconds_total", skewed, &c.name)
        .unwrap();
    assert_eq!(
        (sample.ts, sample.value),
        (Some(now - 30_000), c.cpu_seconds_at(now - 30_000))
    );
    assert_eq!(
        m.pod("pod_cpu_usage_seconds_total", skewed).unwrap().ts,
        Some(now - 30_000 - POD_STAMP_LAG_MS)
    );
    // Faults never change the node's ground truth.
    let node = h.node("node-00000");
    assert_eq!(
        m.family("node_memory_working_set_bytes")[0].value,
        h.cluster.read().node_usage(&node).1 as f64
    );
    h.sim.shutdown().await;
}

#[tokio::test]
async fn container_restart_resets_its_counter() {
    let h = Harness::start(spec(1, (1, 1)), KubeletSimConfig::default()).await;
    let pod = h.running_pods("node-00000")[0].clone();
    let before = h.metrics("node-00000").await;
    let old = before
        .container("container_cpu_usage_seconds_total", &pod, "main")
        .unwrap()
        .value;
    h.cluster.clock.advance(Duration::from_secs(5));
    let restarted_at = h.now();
    h.cluster
        .restart_container(&pod.namespace, &pod.name, "main");
    h.cluster.clock.advance(Duration::from_secs(2));
    let m = h.metrics("node-00000").await;
    let cpu = m
        .container("container_cpu_usage_seconds_total", &pod, "main")
        .unwrap()
        .value;
    let c = &pod.containers[0];
    assert!(cpu < old);
    assert_eq!(cpu, c.cpu_nanocores as f64 / 1e9 * 2.0);
    let start = m
        .container("container_start_time_seconds", &pod, "main")
        .unwrap()
        .value;
    assert_eq!(start, seconds(restarted_at));
    h.sim.shutdown().await;
}

#[tokio::test]
async fn node_behaviors() {
    let h = Harness::start(spec(5, (1, 1)), KubeletSimConfig::default()).await;
    let behave = |node: &str, b: NodeBehavior| h.cluster.update_node(node, |n| n.behavior = b);
    behave("node-00000", NodeBehavior::Slow(Duration::from_millis(300)));
    behave("node-00001", NodeBehavior::Fail(503));
    behave("node-00002", NodeBehavior::Garbage);
    behave("node-00003", NodeBehavior::Hang);
    behave("node-00004", NodeBehavior::Down);
    h.sim.synced().await;

    let started = Instant::now();
    let m = h.metrics("node-00000").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(m.family("pod_cpu_usage_seconds_total").len(), 4);

    let reply = h.get("node-00001", "/metrics/resource").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!reply.body.is_empty() && reply.body.len() < 100);
    assert_eq!(h.sim.scrape_count("node-00001"), 1);

    let reply = h.get("node-00002", "/metrics/resource").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(parse_exposition(&reply.body).is_err());
    let reply = h.get("node-00002", "/stats/summary").await;
    assert!(serde_json::from_str::<Value>(&reply.body).is_err());

    let mut conn = h.connect("node-00003", false).await.unwrap();
    let hung = tokio::time::timeout(
        Duration::from_millis(300),
        conn.get("/metrics/resource", None),
    )
    .await;
    assert!(hung.is_err(), "a hanging kubelet answered: {hung:?}");
    assert_eq!(h.sim.scrape_count("node-00003"), 0);
    assert_eq!(h.sim.open_connections("node-00003"), 1);
    drop(conn);
    // The server lets go of the connection once the client has gone.
    tokio::time::timeout(
        Duration::from_secs(5),
        h.sim.shared.wait_open_connections("node-00003", 0),
    )
    .await
    .expect("hung connection released after the client left");

    let refused = h
        .connect("node-00004", false)
        .await
        .err()
        .expect("down node refuses");
    let io = refused
        .downcast_ref::<std::io::Error>()
        .expect("an I/O error");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    behave("node-00004", NodeBehavior::Normal);
    h.sim.synced().await;
    assert_eq!(h.get("node-00004", "/healthz").await.body, "ok");

    // Going Down also drops open connections.
    let mut conn = h.connect("node-00004", false).await.unwrap();
    assert_eq!(
        conn.get("/healthz", None).await.unwrap().status,
        StatusCode::OK
    );
    behave("node-00004", NodeBehavior::Down);
    h.sim.synced().await;
    assert!(conn.get("/healthz", None).await.is_err());
    assert_eq!(h.sim.open_connections("node-00004"), 0);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn token_is_enforced_and_routes_answer() {
    let config = KubeletSimConfig {
        token: Some("s3cret".into()),
        ..Default::default()
    };
    let h = Harness::start(spec(1, (1, 1)), config).await;
    let mut conn = h.connect("node-00000", false).await.unwrap();
    for token in [None, Some("wrong")] {
        let reply = conn.get("/metrics/resource", token).await.unwrap();
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "token {token:?}");
    }
    assert_eq!(
        conn.get("/metrics/resource", Some("s3cret"))
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );
    let health = conn.get("/healthz", Some("s3cret")).await.unwrap();
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok")
    );
    assert_eq!(
        conn.get("/metrics/cadvisorx", Some("s3cret"))
            .await
            .unwrap()
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(h.sim.scrape_count("node-00000"), 5);
    assert_eq!(h.sim.scrape_count("no-such-node"), 0);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn follows_nodes_added_and_deleted() {
    let h = Harness::start(spec(2, (1, 1)), KubeletSimConfig::default()).await;
    let mut node = h.node("node-00001");
    node.name = "node-extra".into();
    node.address = node_address(7);
    h.cluster.add_node(node);
    h.sim.synced().await;
    let m = h.metrics("node-extra").await;
    assert_eq!(m.family("node_cpu_usage_seconds_total").len(), 1);
    assert!(
        m.family("pod_cpu_usage_seconds_total").is_empty(),
        "no pods scheduled there"
    );

    h.cluster.delete_node("node-extra");
    h.cluster.delete_node("node-00000");
    h.sim.synced().await;
    for addr in [
        SocketAddr::from((node_address(7), h.addr("node-00001").port())),
        SocketAddr::from((node_address(0), h.addr("node-00001").port())),
    ] {
        let err = TcpStream::connect(addr)
            .await
            .expect_err("deleted node's kubelet is gone");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }
    assert_eq!(h.get("node-00001", "/healthz").await.status, StatusCode::OK);
    let addr = h.addr("node-00001");
    h.sim.shutdown().await;
    let err = TcpStream::connect(addr).await.expect_err("shut down");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn h2_by_alpn_on_one_connection() {
    let h = Harness::start(spec(1, (1, 2)), KubeletSimConfig::default()).await;
    let mut conn = h.connect("node-00000", true).await.unwrap();
    for path in ["/metrics/resource", "/stats/summary"] {
        let reply = conn.get(path, None).await.unwrap();
        assert_eq!(
            (reply.status, reply.version),
            (StatusCode::OK, Version::HTTP_2)
        );
    }
    assert_eq!(h.sim.open_connections("node-00000"), 1);
    assert_eq!(h.sim.scrape_count("node-00000"), 2);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn serving_certs_name_the_node_and_optionally_its_ip() {
    let h = Harness::start(spec(1, (1, 1)), KubeletSimConfig::default()).await;
    let addr = h.addr("node-00000");
    let by_ip = Conn::open(&h.ca, &addr.ip().to_string(), addr, false).await;
    assert!(
        by_ip.is_err(),
        "certificate must not carry the IP by default"
    );
    let other_ca = crate::pki::TestCa::new("other").unwrap().cert_pem();
    assert!(
        Conn::open(&other_ca, "node-00000", addr, false)
            .await
            .is_err()
    );
    h.sim.shutdown().await;

    let ca = Arc::new(crate::pki::TestCa::new("given").unwrap());
    let config = KubeletSimConfig {
        ip_sans: true,
        ca: Some(ca.clone()),
        ..Default::default()
    };
    let h = Harness::start(spec(1, (1, 1)), config).await;
    assert_eq!(h.ca, ca.cert_pem());
    let addr = h.addr("node-00000");
    let mut conn = Conn::open(&h.ca, &addr.ip().to_string(), addr, false)
        .await
        .expect("IP SAN present");
    assert_eq!(conn.get("/healthz", None).await.unwrap().body, "ok");
    h.sim.shutdown().await;
}

/// Load check at the target scale: 5,000 kubelets × 30 pods × 2 containers, every node scraped
/// over fresh TLS connections, then again over kept-alive ones. Run explicitly:
/// `cargo test -p metrics-gateway-testkit --lib load_5000_nodes -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: ~10k sockets and a minute of CPU"]
async fn load_5000_nodes() {
    use futures::StreamExt;
    const NODES: usize = 5_000;
    let spec = ClusterSpec {
        nodes: NODES,
        pods_per_node: 30,
        containers_per_pod: (2, 2),
        ..spec(1, (2, 2))
    };
    let cluster = SimCluster::generate(&spec, SimClock::Real);

    print_render_cost(&cluster);

    let started = Instant::now();
    let sim = KubeletSimulator::start(cluster.clone(), KubeletSimConfig::default())
        .await
        .unwrap();
    println!("start of {NODES} kubelets: {:?}", started.elapsed());
    let ca = sim.ca_pem();
    let nodes: Vec<(String, SocketAddr)> = cluster
        .read()
        .nodes
        .values()
        .map(|n| {
            (
                n.name.clone(),
                SocketAddr::from((n.address, n.kubelet_port)),
            )
        })
        .collect();

    let started = Instant::now();
    let conns: Vec<Conn> = futures::stream::iter(&nodes)
        .map(|(name, addr)| {
            let ca = ca.clone();
            async move {
                let mut conn = Conn::open(&ca, name, *addr, false).await.expect("connects");
                let reply = conn.get("/metrics/resource", None).await.expect("answers");
                assert_eq!(reply.status, StatusCode::OK);
                conn
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    println!(
        "scrape of {NODES} nodes, new TLS connection each (64 in flight): {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    futures::stream::iter(conns)
        .map(|mut conn| async move {
            let reply = conn.get("/metrics/resource", None).await.expect("answers");
            assert_eq!(reply.status, StatusCode::OK);
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    println!(
        "scrape of {NODES} nodes over kept-alive connections (64 in flight): {:?}",
        started.elapsed()
    );
    assert!(nodes.iter().all(|(name, _)| sim.scrape_count(name) == 2));
    let started = Instant::now();
    sim.shutdown().await;
    println!("shutdown: {:?}", started.elapsed());
}

/// Prints how long rendering one node's bodies takes (no network involved).
fn print_render_cost(cluster: &SimCluster) {
    let state = cluster.read();
    let node = &state.nodes["node-00000"];
    let mut buf = Vec::new();
    let started = Instant::now();
    for _ in 0..1_000 {
        buf.clear();
        render_metrics_resource(&state, node, START_MS, &mut buf);
    }
    let (metrics, metrics_len) = (started.elapsed() / 1_000, buf.len());
    let started = Instant::now();
    for _ in 0..1_000 {
        buf.clear();
        render_stats_summary(&state, node, START_MS, SummaryDetail::Full, &mut buf);
    }
    let summary = started.elapsed() / 1_000;
    println!(
        "render of one node: /metrics/resource {metrics:?} ({metrics_len} B), /stats/summary {summary:?} ({} B)",
        buf.len()
    );
}
