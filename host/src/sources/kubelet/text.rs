//! Prometheus text expositions (`/metrics/resource`, `/metrics/cadvisor`) as samples for
//! plugins: every sample under its metric name, with its labels plus `node`.

use std::borrow::Cow;

use super::promtext::{self, ParseError, Sample};
use crate::samples::{Batch, SeriesCache};

/// Labels held on the stack per sample; samples with more take a heap path.
const STACK_LABELS: usize = 16;

/// Why an exposition could not be turned into samples.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A line is not valid Prometheus text.
    #[error("node {node}: invalid {path} answer: {error}")]
    Parse {
        /// The node whose kubelet answered.
        node: String,
        /// The endpoint, e.g. `/metrics/cadvisor`.
        path: &'static str,
        /// The bad line and what is wrong with it.
        error: ParseError,
    },
}

/// Turns `text` (from `path` of `node`'s kubelet) into samples: each kept sample (`keep` sees
/// it first) under its name, with its labels plus `node` (replacing any `node` label of its
/// own); `default_ts_ms` stamps samples without a timestamp. Any malformed line fails the
/// whole exposition, naming the line.
pub fn text_batch(
    text: &str,
    node: &str,
    path: &'static str,
    default_ts_ms: i64,
    keep: impl Fn(&Sample<'_>) -> bool,
    cache: &mut SeriesCache,
) -> Result<Batch, TextError> {
    let mut batch = Batch::default();
    for sample in promtext::parse(text) {
        let sample = sample.map_err(|error| TextError::Parse {
            node: node.to_string(),
            path,
            error,
        })?;
        if !keep(&sample) {
            continue;
        }
        let series = if sample.labels.len() < STACK_LABELS {
            let mut values: [(&str, Cow<'_, str>); STACK_LABELS] =
                std::array::from_fn(|_| ("", Cow::Borrowed("")));
            let n = collect_labels(&sample, &mut values);
            let mut labels: [(&str, &str); STACK_LABELS] = [("", ""); STACK_LABELS];
            for (to, (k, v)) in labels.iter_mut().zip(&values[..n]) {
                *to = (k, v);
            }
            labels[n] = ("node", node);
            cache.series(sample.name, &mut labels[..=n])
        } else {
            let values: Vec<(&str, Cow<'_, str>)> =
                sample.labels.iter().filter(|(k, _)| *k != "node").collect();
            let mut labels: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, &**v)).collect();
            labels.push(("node", node));
            cache.series(sample.name, &mut labels)
        };
        batch.push(
            series,
            sample.timestamp_ms.unwrap_or(default_ts_ms),
            sample.value,
        );
    }
    Ok(batch)
}

/// Copies the labels of `sample` except `node` into `out` (which has room for all of them);
/// returns how many.
fn collect_labels<'a>(sample: &Sample<'a>, out: &mut [(&'a str, Cow<'a, str>)]) -> usize {
    let mut n = 0;
    for (k, v) in sample.labels.iter().filter(|(k, _)| *k != "node") {
        out[n] = (k, v);
        n += 1;
    }
    n
}

/// `/metrics/resource` as samples: every sample is kept (`resource_scrape_error` included).
pub fn resource_samples(
    text: &str,
    node: &str,
    default_ts_ms: i64,
    cache: &mut SeriesCache,
) -> Result<Batch, TextError> {
    text_batch(
        text,
        node,
        super::RESOURCE_PATH,
        default_ts_ms,
        |_| true,
        cache,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_keep_their_labels_plus_node() {
        let mut cache = SeriesCache::default();
        let text = "# TYPE x gauge\n\
                    x{pod=\"p\",namespace=\"n\",node=\"liar\"} 1.5 1000\n\
                    y 2\n\
                    z{a=\"q\\\"uote\"} 3 7\n";
        let batch = text_batch(text, "node-1", "/x", 42, |_| true, &mut cache).unwrap();
        assert_eq!(batch.len(), 3);
        let x = &batch.families["x"];
        let labels: Vec<(&str, &str)> = x.series[0]
            .labels
            .iter()
            .map(|(k, v)| (&**k, &**v))
            .collect();
        assert_eq!(
            labels,
            [("namespace", "n"), ("node", "node-1"), ("pod", "p")]
        );
        assert_eq!((x.timestamps_ms[0], x.values[0]), (1000, 1.5));
        assert_eq!(batch.families["y"].timestamps_ms, [42]);
        assert_eq!(batch.families["z"].series[0].label("a"), Some("q\"uote"));
    }

    #[test]
    fn many_labels_take_the_heap_path() {
        let labels: Vec<String> = (0..20).map(|i| format!("l{i:02}=\"v{i}\"")).collect();
        let text = format!("m{{{}}} 1 5\n", labels.join(","));
        let mut cache = SeriesCache::default();
        let batch = text_batch(&text, "n", "/x", 0, |_| true, &mut cache).unwrap();
        let series = &batch.families["m"].series[0];
        assert_eq!(series.labels.len(), 21);
        assert_eq!(series.label("l19"), Some("v19"));
        assert_eq!(series.label("node"), Some("n"));
    }

    #[test]
    fn a_bad_line_names_node_path_and_line() {
        let mut cache = SeriesCache::default();
        let e = resource_samples("ok 1\nnot valid {\n", "node-7", 0, &mut cache)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("node-7") && e.contains("/metrics/resource"),
            "{e}"
        );
        assert!(e.contains("line 2"), "{e}");
    }
}
