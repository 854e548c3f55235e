//! CPU and memory for `metrics.k8s.io`, computed from kubelet samples as metrics-server does,
//! plus its restart, fresh-container, zero-value and ordering rules.
//!
//! Each node has its own [`NodeSeries`], updated only by that node's scrape, so no locks are
//! taken on the hot path. CPU is `Δcumulative / Δtimestamp` between the last two accepted
//! points; memory is the last working set.

use std::collections::HashSet;
use std::sync::Arc;

use crate::sources::kubelet::resource::{RawPoint, ResourceScrape};

/// A container younger than this at its first sample is too fresh for a reliable rate
/// (metrics-server's `freshContainerMinMetricsResolution`).
pub const FRESH_CONTAINER_MIN_MS: i64 = 10_000;

/// Usage over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// End of the window (the newer CPU sample), ms since the epoch.
    pub timestamp_ms: i64,
    /// Window length, ms.
    pub window_ms: i64,
    /// CPU, nanocores.
    pub cpu_nanocores: u64,
    /// Memory working set, bytes.
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuPoint {
    ts_ms: i64,
    cpu_ns: u64,
}

/// A cumulative counter with its two last points.
#[derive(Debug, Clone, Default)]
struct Series {
    prev: Option<CpuPoint>,
    last: Option<CpuPoint>,
    memory_bytes: u64,
    start_ms: Option<i64>,
}

/// What happened to one new point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Appended after the last point.
    Next,
    /// The series began (first point, or after a restart).
    Reset,
    /// Not newer than the last point: ignored.
    OutOfOrder,
}

impl Series {
    /// Adds a point, applying restart and ordering rules. `fresh_window_ms` bounds how young a
    /// container may be for its start time to serve as the previous point.
    fn push(&mut self, p: &RawPoint, start_ms: Option<i64>, fresh_window_ms: i64) -> Accepted {
        let new = CpuPoint {
            ts_ms: p.cpu_ts_ms,
            cpu_ns: p.cpu_ns,
        };
        if let Some(last) = self.last {
            let new_start = matches!((self.start_ms, start_ms), (Some(a), Some(b)) if a != b);
            if !new_start && new.ts_ms <= last.ts_ms {
                // An old or repeated sample (its counter may well be lower): not a restart.
                return Accepted::OutOfOrder;
            }
            if !new_start && new.cpu_ns >= last.cpu_ns {
                self.prev = Some(last);
                self.last = Some(new);
                self.memory_bytes = p.memory_bytes;
                return Accepted::Next;
            }
        }
        self.prev = start_ms
            .filter(|&s| {
                let age = new.ts_ms - s;
                s < new.ts_ms && age < fresh_window_ms && age >= FRESH_CONTAINER_MIN_MS
            })
            .map(|s| CpuPoint {
                ts_ms: s,
                cpu_ns: 0,
            });
        self.last = Some(new);
        self.memory_bytes = p.memory_bytes;
        self.start_ms = start_ms;
        Accepted::Reset
    }

    fn usage(&self) -> Option<Usage> {
        let (prev, last) = (self.prev?, self.last?);
        let window_ms = last.ts_ms - prev.ts_ms;
        if window_ms <= 0 || last.cpu_ns < prev.cpu_ns {
            return None;
        }
        let cpu = (last.cpu_ns - prev.cpu_ns) as u128 * 1_000 / window_ms as u128;
        Some(Usage {
            timestamp_ms: last.ts_ms,
            window_ms,
            cpu_nanocores: u64::try_from(cpu).unwrap_or(u64::MAX),
            memory_bytes: self.memory_bytes,
        })
    }
}

/// One container's series, with its identity shared with the snapshot.
#[derive(Debug, Clone)]
pub struct ContainerSeries {
    /// Namespace.
    pub namespace: Arc<str>,
    /// Pod name.
    pub pod: Arc<str>,
    /// Container name.
    pub name: Arc<str>,
    series: Series,
    seen: u64,
}

impl ContainerSeries {
    /// Current usage, when two points allow it.
    pub fn usage(&self) -> Option<Usage> {
        self.series.usage()
    }
}

/// Counts of what one ingest did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Containers with a usable new point.
    pub accepted: usize,
    /// Containers whose series began again (first sight or restart).
    pub resets: usize,
    /// Points not newer than the stored ones, ignored.
    pub out_of_order: usize,
    /// Pods left out because a container reported 0 or lacked a sample.
    pub incomplete_pods: usize,
    /// Whether the node's own point was unusable.
    pub node_incomplete: bool,
}

/// Every series of one node.
#[derive(Debug, Default)]
pub struct NodeSeries {
    node: Series,
    /// Sorted by (namespace, pod, container), so a pod's containers are adjacent; a sorted
    /// vector is a quarter of a hash map's memory at the 30–110 pods a node runs.
    containers: Vec<ContainerSeries>,
    /// Namespace, pod and container names, shared by this node's series.
    names: HashSet<Arc<str>>,
    generation: u64,
}

fn intern(names: &mut HashSet<Arc<str>>, s: &str) -> Arc<str> {
    if let Some(v) = names.get(s) {
        return v.clone();
    }
    let v: Arc<str> = Arc::from(s);
    names.insert(v.clone());
    v
}

impl NodeSeries {
    /// Takes in one scrape. Containers absent from it are forgotten; a pod with any incomplete
    /// container (0 CPU or memory, or a missing sample) is left out of this scrape entirely.
    pub fn ingest(&mut self, scrape: &ResourceScrape<'_>, fresh_window_ms: i64) -> IngestReport {
        self.generation += 1;
        let generation = self.generation;
        let mut report = IngestReport::default();
        if scrape.node.is_complete() {
            self.node.push(&scrape.node, None, fresh_window_ms);
        } else {
            report.node_incomplete = true;
        }
        let incomplete: std::collections::HashSet<(&str, &str)> = scrape
            .containers
            .iter()
            .filter(|c| !c.point.is_complete())
            .map(|c| (&*c.namespace, &*c.pod))
            .collect();
        report.incomplete_pods = incomplete.len();
        for c in &scrape.containers {
            if incomplete.contains(&(&*c.namespace, &*c.pod)) {
                continue;
            }
            let key = (&*c.namespace, &*c.pod, &*c.container);
            let i = match self
                .containers
                .binary_search_by(|s| (&*s.namespace, &*s.pod, &*s.name).cmp(&key))
            {
                Ok(i) => i,
                Err(i) => {
                    let series = ContainerSeries {
                        namespace: intern(&mut self.names, &c.namespace),
                        pod: intern(&mut self.names, &c.pod),
                        name: intern(&mut self.names, &c.container),
                        series: Series::default(),
                        seen: 0,
                    };
                    self.containers.insert(i, series);
                    i
                }
            };
            let entry = &mut self.containers[i];
            entry.seen = generation;
            match entry.series.push(&c.point, c.start_ms, fresh_window_ms) {
                Accepted::Next => report.accepted += 1,
                Accepted::Reset => {
                    report.accepted += 1;
                    report.resets += 1;
                }
                Accepted::OutOfOrder => report.out_of_order += 1,
            }
        }
        let before = self.containers.len();
        self.containers.retain(|c| c.seen == generation);
        if self.containers.len() < before {
            self.names.retain(|n| Arc::strong_count(n) > 1);
        }
        report
    }

    /// The node's own usage.
    pub fn node_usage(&self) -> Option<Usage> {
        self.node.usage()
    }

    /// Every container series, sorted by namespace, pod and name.
    pub fn containers(&self) -> impl Iterator<Item = &ContainerSeries> {
        self.containers.iter()
    }

    /// The container series grouped by pod.
    pub fn pods(&self) -> impl Iterator<Item = &[ContainerSeries]> {
        self.containers
            .chunk_by(|a, b| a.pod == b.pod && a.namespace == b.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::kubelet::resource::RawContainer;
    use std::borrow::Cow;

    const WINDOW: i64 = 15_000;

    fn point(ts: i64, cpu_s: f64, mem: u64) -> RawPoint {
        RawPoint {
            cpu_ts_ms: ts,
            cpu_ns: (cpu_s * 1e9).round() as u64,
            memory_bytes: mem,
            has_cpu: true,
            has_memory: true,
        }
    }

    fn scrape(
        node: RawPoint,
        containers: &[(&'static str, &'static str, RawPoint, i64)],
    ) -> ResourceScrape<'static> {
        ResourceScrape {
            node,
            containers: containers
                .iter()
                .map(|&(pod, name, point, start)| RawContainer {
                    namespace: Cow::Borrowed("ns"),
                    pod: Cow::Borrowed(pod),
                    container: Cow::Borrowed(name),
                    point,
                    start_ms: Some(start),
                })
                .collect(),
        }
    }

    fn usage_of(s: &NodeSeries, pod: &str, name: &str) -> Option<Usage> {
        s.containers()
            .find(|c| &*c.pod == pod && &*c.name == name)?
            .usage()
    }

    #[test]
    fn rate_is_delta_over_real_window() {
        let mut s = NodeSeries::default();
        s.ingest(
            &scrape(
                point(1_000_000, 100.0, 5),
                &[("p", "c", point(1_000_000, 10.0, 7), 0)],
            ),
            WINDOW,
        );
        assert_eq!(s.node_usage(), None, "one point gives no rate");
        s.ingest(
            &scrape(
                point(1_017_913, 101.0, 6),
                &[("p", "c", point(1_017_913, 10.5, 9), 0)],
            ),
            WINDOW,
        );
        let n = s.node_usage().unwrap();
        assert_eq!(
            (n.window_ms, n.cpu_nanocores, n.memory_bytes),
            (17_913, 55_825_378, 6)
        );
        let c = usage_of(&s, "p", "c").unwrap();
        assert_eq!(
            (c.timestamp_ms, c.window_ms, c.cpu_nanocores, c.memory_bytes),
            (1_017_913, 17_913, 27_912_689, 9)
        );
    }

    #[test]
    fn restart_drops_the_old_point_instead_of_a_negative_rate() {
        let mut s = NodeSeries::default();
        let n = point(1, 1.0, 1);
        s.ingest(
            &scrape(n, &[("p", "c", point(100_000, 50.0, 1), 1_000)]),
            WINDOW,
        );
        s.ingest(
            &scrape(n, &[("p", "c", point(115_000, 51.0, 1), 1_000)]),
            WINDOW,
        );
        assert!(usage_of(&s, "p", "c").is_some());
        // Counter went down and start time moved: a restart 60 s ago (too old to be "fresh").
        let r = s.ingest(
            &scrape(n, &[("p", "c", point(130_000, 2.0, 1), 70_000)]),
            WINDOW,
        );
        assert_eq!(r.resets, 1);
        assert_eq!(usage_of(&s, "p", "c"), None);
        s.ingest(
            &scrape(n, &[("p", "c", point(145_000, 3.5, 1), 70_000)]),
            WINDOW,
        );
        assert_eq!(usage_of(&s, "p", "c").unwrap().cpu_nanocores, 100_000_000);
    }

    #[test]
    fn counter_decrease_without_start_time_change_is_a_restart() {
        let mut s = NodeSeries::default();
        let n = point(1, 1.0, 1);
        s.ingest(
            &scrape(n, &[("p", "c", point(100_000, 50.0, 1), 1_000)]),
            WINDOW,
        );
        s.ingest(
            &scrape(n, &[("p", "c", point(115_000, 40.0, 1), 1_000)]),
            WINDOW,
        );
        assert_eq!(usage_of(&s, "p", "c"), None);
    }

    #[test]
    fn fresh_container_is_served_after_one_scrape() {
        let mut s = NodeSeries::default();
        // Started 12 s before the sample: inside [10 s, window): start time is the previous point.
        s.ingest(
            &scrape(
                point(1, 1.0, 1),
                &[("p", "c", point(112_000, 0.6, 1), 100_000)],
            ),
            WINDOW,
        );
        let u = usage_of(&s, "p", "c").unwrap();
        assert_eq!((u.window_ms, u.cpu_nanocores), (12_000, 50_000_000));
        // Younger than 10 s: too fresh to trust; older than the window: not fresh.
        for start in [105_000, 90_000] {
            let mut s = NodeSeries::default();
            s.ingest(
                &scrape(
                    point(1, 1.0, 1),
                    &[("p", "c", point(112_000, 0.6, 1), start)],
                ),
                WINDOW,
            );
            assert_eq!(usage_of(&s, "p", "c"), None, "start {start}");
        }
    }

    #[test]
    fn out_of_order_point_is_ignored() {
        let mut s = NodeSeries::default();
        let n = point(1, 1.0, 1);
        s.ingest(
            &scrape(n, &[("p", "c", point(100_000, 50.0, 1), 1_000)]),
            WINDOW,
        );
        s.ingest(
            &scrape(n, &[("p", "c", point(115_000, 51.5, 1), 1_000)]),
            WINDOW,
        );
        let before = usage_of(&s, "p", "c").unwrap();
        let r = s.ingest(
            &scrape(n, &[("p", "c", point(110_000, 51.6, 1), 1_000)]),
            WINDOW,
        );
        assert_eq!(r.out_of_order, 1);
        assert_eq!(usage_of(&s, "p", "c").unwrap(), before);
        // An old sample carries an old, lower counter: still not a restart.
        let r = s.ingest(
            &scrape(n, &[("p", "c", point(105_000, 50.5, 1), 1_000)]),
            WINDOW,
        );
        assert_eq!((r.out_of_order, r.resets), (1, 0));
        assert_eq!(usage_of(&s, "p", "c").unwrap(), before);
    }

    #[test]
    fn zero_value_voids_the_whole_pod_and_the_node() {
        let mut s = NodeSeries::default();
        let r = s.ingest(
            &scrape(
                point(1, 0.0, 1),
                &[
                    ("p", "a", point(100_000, 5.0, 1), 0),
                    ("p", "b", point(100_000, 5.0, 0), 0),
                    ("q", "a", point(100_000, 5.0, 1), 0),
                ],
            ),
            WINDOW,
        );
        assert!(r.node_incomplete);
        assert_eq!(r.incomplete_pods, 1);
        let pods: Vec<_> = s.containers().map(|c| &*c.pod).collect();
        assert_eq!(pods, ["q"]);
    }

    #[test]
    fn series_are_grouped_by_pod_whatever_the_kubelet_order() {
        let mut s = NodeSeries::default();
        let p = point(100_000, 5.0, 1);
        s.ingest(
            &scrape(
                point(1, 1.0, 1),
                &[
                    ("q", "b", p, 0),
                    ("p", "b", p, 0),
                    ("q", "a", p, 0),
                    ("p", "a", p, 0),
                ],
            ),
            WINDOW,
        );
        let groups: Vec<Vec<(&str, &str)>> = s
            .pods()
            .map(|g| g.iter().map(|c| (&*c.pod, &*c.name)).collect())
            .collect();
        assert_eq!(
            groups,
            [vec![("p", "a"), ("p", "b")], vec![("q", "a"), ("q", "b")]]
        );
    }

    #[test]
    fn vanished_containers_are_forgotten() {
        let mut s = NodeSeries::default();
        let n = point(1, 1.0, 1);
        s.ingest(
            &scrape(
                n,
                &[
                    ("p", "a", point(100_000, 5.0, 1), 0),
                    ("p", "b", point(100_000, 5.0, 1), 0),
                ],
            ),
            WINDOW,
        );
        s.ingest(&scrape(n, &[("p", "a", point(115_000, 6.0, 1), 0)]), WINDOW);
        assert_eq!(s.containers().count(), 1);
        // Names are shared between a pod's containers, and forgotten with them.
        assert_eq!(s.names.len(), 3);
        s.ingest(&scrape(n, &[]), WINDOW);
        assert!(s.names.is_empty());
    }
}
