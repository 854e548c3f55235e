//! Decoding of the kubelet's `/metrics/resource` payload into raw usage points.

use std::borrow::Cow;
use std::collections::HashMap;

use super::promtext::{self, ParseError};

/// A cumulative CPU counter and a memory gauge as one kubelet sample pair.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RawPoint {
    /// Timestamp of the CPU sample, ms since the epoch.
    pub cpu_ts_ms: i64,
    /// Cumulative CPU time, nanoseconds.
    pub cpu_ns: u64,
    /// Working set, bytes.
    pub memory_bytes: u64,
    /// Whether a CPU sample was present.
    pub has_cpu: bool,
    /// Whether a memory sample was present.
    pub has_memory: bool,
}

impl RawPoint {
    /// Both samples present and non-zero (a kubelet reporting 0 has no real data yet).
    pub fn is_complete(&self) -> bool {
        self.has_cpu && self.has_memory && self.cpu_ns > 0 && self.memory_bytes > 0
    }
}

/// One container's samples.
#[derive(Debug, Clone, PartialEq)]
pub struct RawContainer<'a> {
    /// Namespace label.
    pub namespace: Cow<'a, str>,
    /// Pod label.
    pub pod: Cow<'a, str>,
    /// Container label.
    pub container: Cow<'a, str>,
    /// CPU and memory.
    pub point: RawPoint,
    /// `container_start_time_seconds`, in ms.
    pub start_ms: Option<i64>,
}

/// One decoded scrape, borrowing label values from the payload.
#[derive(Debug, Default)]
pub struct ResourceScrape<'a> {
    /// The node's own usage.
    pub node: RawPoint,
    /// Containers, in first-seen order.
    pub containers: Vec<RawContainer<'a>>,
}

/// A payload that is not a kubelet resource-metrics exposition.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A line could not be parsed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A container sample lacks its identifying labels.
    #[error("line {line}: {metric} sample without namespace, pod and container labels")]
    MissingLabels {
        /// 1-based line.
        line: usize,
        /// The metric.
        metric: &'static str,
    },
    /// Not a single known metric in the payload.
    #[error("no node or container resource metrics in the response")]
    Empty,
}

const NODE_CPU: &str = "node_cpu_usage_seconds_total";
const NODE_MEMORY: &str = "node_memory_working_set_bytes";
const CONTAINER_CPU: &str = "container_cpu_usage_seconds_total";
const CONTAINER_MEMORY: &str = "container_memory_working_set_bytes";
const CONTAINER_START: &str = "container_start_time_seconds";

/// Namespace, pod and container labels.
type ContainerKey<'a> = (Cow<'a, str>, Cow<'a, str>, Cow<'a, str>);

/// Decodes a `/metrics/resource` payload. `default_ts_ms` stamps samples without timestamps.
pub fn decode(text: &str, default_ts_ms: i64) -> Result<ResourceScrape<'_>, DecodeError> {
    let mut out = ResourceScrape::default();
    let mut index: HashMap<ContainerKey<'_>, usize> = HashMap::new();
    let mut known = 0usize;
    let mut parser = promtext::parse(text);
    while let Some(sample) = parser.next() {
        let sample = sample?;
        let ts = sample.timestamp_ms.unwrap_or(default_ts_ms);
        let metric = match sample.name {
            NODE_CPU => {
                out.node.cpu_ns = seconds_to_ns(sample.value);
                out.node.cpu_ts_ms = ts;
                out.node.has_cpu = true;
                known += 1;
                continue;
            }
            NODE_MEMORY => {
                out.node.memory_bytes = to_u64(sample.value);
                out.node.has_memory = true;
                known += 1;
                continue;
            }
            CONTAINER_CPU => CONTAINER_CPU,
            CONTAINER_MEMORY => CONTAINER_MEMORY,
            CONTAINER_START => CONTAINER_START,
            _ => continue,
        };
        known += 1;
        let labels = &sample.labels;
        let (Some(ns), Some(pod), Some(container)) = (
            labels.get("namespace"),
            labels.get("pod"),
            labels.get("container"),
        ) else {
            return Err(DecodeError::MissingLabels {
                line: parser.line(),
                metric,
            });
        };
        let next = out.containers.len();
        let i = *index
            .entry((ns.clone(), pod.clone(), container.clone()))
            .or_insert(next);
        if i == next {
            out.containers.push(RawContainer {
                namespace: ns,
                pod,
                container,
                point: RawPoint::default(),
                start_ms: None,
            });
        }
        let c = &mut out.containers[i];
        match metric {
            CONTAINER_CPU => {
                c.point.cpu_ns = seconds_to_ns(sample.value);
                c.point.cpu_ts_ms = ts;
                c.point.has_cpu = true;
            }
            CONTAINER_MEMORY => {
                c.point.memory_bytes = to_u64(sample.value);
                c.point.has_memory = true;
            }
            _ => c.start_ms = Some((sample.value * 1000.0).round() as i64),
        }
    }
    if known == 0 {
        return Err(DecodeError::Empty);
    }
    Ok(out)
}

fn seconds_to_ns(v: f64) -> u64 {
    to_u64((v * 1e9).round())
}

/// Non-finite and negative values become 0, which marks the point invalid.
fn to_u64(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The captured kind-cluster payload from REFERENCE.md §1.
    const CAPTURED: &str = r#"container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 4.710169 1633253812125
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.253376e+07 1633253812125
container_start_time_seconds{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.633252712e+9 1633253812125
node_cpu_usage_seconds_total 357.35491 1633253809720
node_memory_working_set_bytes 1.616273408e+09 1633253809720
pod_cpu_usage_seconds_total{namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 4.67812 1633253803935
scrape_error 0
"#;

    #[test]
    fn decodes_the_captured_kubelet_payload() {
        let s = decode(CAPTURED, 0).unwrap();
        assert_eq!(
            s.node,
            RawPoint {
                cpu_ts_ms: 1_633_253_809_720,
                cpu_ns: 357_354_910_000,
                memory_bytes: 1_616_273_408,
                has_cpu: true,
                has_memory: true
            }
        );
        assert_eq!(s.containers.len(), 1);
        let c = &s.containers[0];
        assert_eq!(
            (&*c.namespace, &*c.pod, &*c.container),
            ("kube-system", "coredns-558bd4d5db-4dpjz", "coredns")
        );
        assert_eq!(c.point.cpu_ns, 4_710_169_000);
        assert_eq!(c.point.cpu_ts_ms, 1_633_253_812_125);
        assert_eq!(c.point.memory_bytes, 12_533_760);
        assert_eq!(c.start_ms, Some(1_633_252_712_000));
        assert!(c.point.is_complete());
    }

    #[test]
    fn zero_and_missing_values_are_incomplete() {
        let s = decode(
            "container_cpu_usage_seconds_total{container=\"c\",namespace=\"n\",pod=\"p\"} 0 1\n\
             container_memory_working_set_bytes{container=\"c\",namespace=\"n\",pod=\"p\"} 10 1\n\
             container_cpu_usage_seconds_total{container=\"d\",namespace=\"n\",pod=\"p\"} 3 1\n",
            0,
        )
        .unwrap();
        assert!(!s.containers[0].point.is_complete());
        assert!(!s.containers[1].point.is_complete());
        assert!(!s.node.is_complete());
    }

    #[test]
    fn garbage_is_an_error_with_a_line() {
        let e = decode("<html>\n<body>oops</body>\n", 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(matches!(
            decode("# only comments\n", 0),
            Err(DecodeError::Empty)
        ));
        let e = decode("container_cpu_usage_seconds_total{pod=\"p\"} 1 1\n", 0).unwrap_err();
        assert!(
            matches!(e, DecodeError::MissingLabels { line: 1, .. }),
            "{e}"
        );
    }
}
