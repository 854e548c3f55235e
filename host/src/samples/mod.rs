//! Samples that sources produce for plugins: series with ids stable for their lifetime, grouped by
//! source and metric name, held as columns so a plugin's input is built by concatenation.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::{DefaultHashBuilder, HashTable};

/// Where samples come from (the WIT `source` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Kubelet `/metrics/resource`.
    KubeletResource,
    /// Kubelet `/stats/summary`.
    KubeletSummary,
    /// Kubelet `/metrics/cadvisor`.
    KubeletCadvisor,
    /// Cluster state, kube-state-metrics names.
    Cluster,
    /// PromQL instant queries.
    Prometheus,
    /// Prometheus series discovery (`/api/v1/series`): series without samples.
    PrometheusSeries,
    /// Prometheus label-name discovery (`/api/v1/labels`): one series per label name (named
    /// after it, without labels or samples).
    PrometheusLabels,
    /// Prometheus series discovery by shape (`/api/v1/series`): one series per distinct metric
    /// name and set of label names, its label values empty.
    PrometheusSeriesShapes,
    /// Plugins' derived series.
    Derived,
}

impl Source {
    /// Every source, in declaration order.
    pub const ALL: [Source; 9] = [
        Source::KubeletResource,
        Source::KubeletSummary,
        Source::KubeletCadvisor,
        Source::Cluster,
        Source::Prometheus,
        Source::PrometheusSeries,
        Source::PrometheusLabels,
        Source::PrometheusSeriesShapes,
        Source::Derived,
    ];

    /// Its name in config files, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::KubeletResource => "kubelet-resource",
            Source::KubeletSummary => "kubelet-summary",
            Source::KubeletCadvisor => "kubelet-cadvisor",
            Source::Cluster => "cluster",
            Source::Prometheus => "prometheus",
            Source::PrometheusSeries => "prometheus-series",
            Source::PrometheusLabels => "prometheus-labels",
            Source::PrometheusSeriesShapes => "prometheus-series-shapes",
            Source::Derived => "derived",
        }
    }

    /// Read from a Prometheus backend (a query or a discovery), by backend and query.
    pub fn is_prometheus(self) -> bool {
        self == Source::Prometheus || self.is_discovery()
    }

    /// A discovery: series without samples, re-run at the backend's discovery interval.
    pub fn is_discovery(self) -> bool {
        matches!(
            self,
            Source::PrometheusSeries | Source::PrometheusLabels | Source::PrometheusSeriesShapes
        )
    }

    /// Index into arrays indexed by source.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One label.
pub type Label = (Arc<str>, Arc<str>);

/// A series: a metric name and its labels (sorted by name), under a process-unique id.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Series {
    /// Id, unique in the process for the series' lifetime (never reused).
    pub id: u64,
    /// Metric name.
    pub name: Arc<str>,
    /// Labels, sorted by name.
    pub labels: Box<[Label]>,
}

static NEXT_SERIES_ID: AtomicU64 = AtomicU64::new(1);

impl Series {
    /// A new series with a fresh id; `labels` are sorted here.
    pub fn new(name: Arc<str>, mut labels: Vec<Label>) -> Arc<Series> {
        labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Arc::new(Series {
            id: NEXT_SERIES_ID.fetch_add(1, Ordering::Relaxed),
            name,
            labels: labels.into_boxed_slice(),
        })
    }

    /// Whether its labels are exactly `labels` (sorted by name, as a series holds them).
    pub fn has_labels(&self, labels: &[(&str, &str)]) -> bool {
        self.labels.len() == labels.len()
            && self
                .labels
                .iter()
                .zip(labels)
                .all(|((k, v), (k2, v2))| **k == **k2 && **v == **v2)
    }

    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| (**k).cmp(name))
            .ok()
            .map(|i| &*self.labels[i].1)
    }
}

/// The samples of one metric name, as columns (one row per sample).
#[derive(Debug, Default, Clone)]
pub struct Family {
    /// Series of each row.
    pub series: Vec<Arc<Series>>,
    /// Timestamps, ms since the epoch.
    pub timestamps_ms: Vec<i64>,
    /// Values.
    pub values: Vec<f64>,
}

impl Family {
    /// Appends one sample.
    pub fn push(&mut self, series: Arc<Series>, timestamp_ms: i64, value: f64) {
        self.series.push(series);
        self.timestamps_ms.push(timestamp_ms);
        self.values.push(value);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// No samples.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Samples of one producer (a node's scrape, the cluster state, a query), by metric name.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// Families by metric name.
    pub families: HashMap<Arc<str>, Family>,
}

impl Batch {
    /// Appends one sample of `series`.
    pub fn push(&mut self, series: Arc<Series>, timestamp_ms: i64, value: f64) {
        match self.families.get_mut(&series.name) {
            Some(f) => f.push(series, timestamp_ms, value),
            None => {
                let mut f = Family::default();
                let name = series.name.clone();
                f.push(series, timestamp_ms, value);
                self.families.insert(name, f);
            }
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.families.values().map(Family::len).sum()
    }

    /// No samples.
    pub fn is_empty(&self) -> bool {
        self.families.values().all(Family::is_empty)
    }
}

/// Interns the series of one producer (a node's scrape) across cycles, so a series keeps its
/// id while it exists and a plugin is sent its labels only once.
///
/// Series are found by a hash of their name and labels, compared with the held series' own
/// strings: no key is built per lookup and none is held beside the series.
#[derive(Debug, Default)]
pub struct SeriesCache {
    /// Each series with the generation that last asked for it.
    table: HashTable<(Arc<Series>, u64)>,
    hasher: DefaultHashBuilder,
    generation: u64,
}

impl SeriesCache {
    /// The series `name{labels}`: the cached one when it exists, a new one otherwise. `labels` are
    /// sorted in place.
    pub fn series(&mut self, name: &str, labels: &mut [(&str, &str)]) -> Arc<Series> {
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let hash = hash_series(&self.hasher, name, labels.iter().copied());
        let generation = self.generation;
        let same =
            |(series, _): &(Arc<Series>, u64)| *series.name == *name && series.has_labels(labels);
        if let Some((series, seen)) = self.table.find_mut(hash, same) {
            *seen = generation;
            return series.clone();
        }
        // Built in the order hashed, so that rehashing a held series gives the same hash.
        let series = Arc::new(Series {
            id: NEXT_SERIES_ID.fetch_add(1, Ordering::Relaxed),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        });
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, (series.clone(), generation), |(s, _)| {
                hash_series(hasher, &s.name, s.labels.iter().map(|(k, v)| (&**k, &**v)))
            });
        series
    }

    /// Ends a cycle: forgets the series not asked for since the previous `sweep`.
    pub fn sweep(&mut self) {
        let generation = self.generation;
        self.table.retain(|(_, seen)| *seen == generation);
        self.generation += 1;
    }

    /// Number of series held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// No series held.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// The hash of the series `name{labels}` (labels in their sorted order). `0xff`, which UTF-8
/// never contains, ends each string, so different series do not feed the same bytes.
fn hash_series<'a>(
    hasher: &DefaultHashBuilder,
    name: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(name.as_bytes());
    h.write_u8(0xff);
    for (k, v) in labels {
        h.write(k.as_bytes());
        h.write_u8(0xff);
        h.write(v.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

/// A Prometheus input: an instant query ([`Source::Prometheus`]) or a series selector
/// ([`Source::PrometheusSeries`], [`Source::PrometheusLabels`],
/// [`Source::PrometheusSeriesShapes`]) on a named backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryKey {
    /// A source for which [`Source::is_prometheus`] holds.
    pub source: Source,
    /// The backend's configured name (the default one resolved).
    pub backend: Arc<str>,
    /// The PromQL query or series selector (empty: every series, labels only).
    pub query: Arc<str>,
}

/// What one Prometheus input yielded this cycle.
#[derive(Debug, Clone)]
pub enum QueryResult {
    /// An instant query's samples (Prometheus' own sample timestamps; a scalar result is one
    /// series without name or labels).
    Samples(Arc<Family>),
    /// A discovery's series (no samples): the series found, one per label name, or one per
    /// shape.
    Series(Arc<[Arc<Series>]>),
    /// The input could not be read this cycle: why, naming the backend and the query.
    Failed(Arc<str>),
}

/// Everything one cycle offers plugins: per source, the batches of every producer, and the
/// results of Prometheus inputs by backend and query.
#[derive(Debug, Default, Clone)]
pub struct CycleSamples {
    /// Batches per source, indexed by [`Source::index`].
    pub sources: [Vec<Arc<Batch>>; Source::ALL.len()],
    /// Results (or failures) of Prometheus inputs.
    pub queries: HashMap<QueryKey, QueryResult>,
    /// The backend an input with an empty backend name reads.
    pub default_backend: Option<Arc<str>>,
}

impl CycleSamples {
    /// The result of the Prometheus input (`source`, `backend`, `query`) of a plan, where an
    /// empty `backend` means the default one; `None` when it was not run this cycle.
    pub fn query(&self, source: Source, backend: &str, query: &str) -> Option<&QueryResult> {
        let backend: Arc<str> = if backend.is_empty() {
            self.default_backend.clone().unwrap_or_else(|| "".into())
        } else {
            backend.into()
        };
        self.queries.get(&QueryKey {
            source,
            backend,
            query: query.into(),
        })
    }

    /// Adds a producer's batch.
    pub fn add(&mut self, source: Source, batch: Arc<Batch>) {
        self.sources[source.index()].push(batch);
    }

    /// Records that the Prometheus input (`source`, `backend`, `query`) could not be read this
    /// cycle.
    pub fn fail(
        &mut self,
        source: Source,
        backend: &str,
        query: &str,
        message: impl Into<Arc<str>>,
    ) {
        self.queries.insert(
            QueryKey {
                source,
                backend: backend.into(),
                query: query.into(),
            },
            QueryResult::Failed(message.into()),
        );
    }

    /// Why the Prometheus input (`source`, `backend`, `query`) could not be read this cycle, if
    /// it failed.
    pub fn failure(&self, source: Source, backend: &str, query: &str) -> Option<&str> {
        match self.query(source, backend, query)? {
            QueryResult::Failed(message) => Some(message),
            _ => None,
        }
    }

    /// The families of `source` whose metric name matches `pattern` (exact, or a prefix ending
    /// in `*`), across every producer.
    pub fn matching<'a>(
        &'a self,
        source: Source,
        pattern: &'a str,
    ) -> impl Iterator<Item = &'a Family> + 'a {
        let prefix = pattern.strip_suffix('*');
        self.sources[source.index()].iter().flat_map(
            move |batch| -> Box<dyn Iterator<Item = &'a Family> + 'a> {
                match prefix {
                    Some(p) => Box::new(
                        batch
                            .families
                            .iter()
                            .filter(move |(name, _)| name.starts_with(p))
                            .map(|(_, f)| f),
                    ),
                    None => Box::new(batch.families.get(pattern).into_iter()),
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, labels: &[(&str, &str)]) -> Arc<Series> {
        Series::new(
            name.into(),
            labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    #[test]
    fn labels_are_sorted_and_found() {
        let s = series("m", &[("pod", "p"), ("namespace", "n"), ("container", "c")]);
        let names: Vec<&str> = s.labels.iter().map(|(k, _)| &**k).collect();
        assert_eq!(names, ["container", "namespace", "pod"]);
        assert_eq!(s.label("namespace"), Some("n"));
        assert_eq!(s.label("node"), None);
        assert_ne!(s.id, series("m", &[]).id);
    }

    #[test]
    fn matching_is_exact_or_prefix_across_batches() {
        let mut a = Batch::default();
        a.push(series("x_total", &[]), 1, 1.0);
        a.push(series("x_bytes", &[]), 1, 2.0);
        let mut b = Batch::default();
        b.push(series("x_total", &[]), 2, 3.0);
        let mut cycle = CycleSamples::default();
        cycle.add(Source::KubeletSummary, Arc::new(a));
        cycle.add(Source::KubeletSummary, Arc::new(b));
        let exact: Vec<f64> = cycle
            .matching(Source::KubeletSummary, "x_total")
            .flat_map(|f| f.values.clone())
            .collect();
        assert_eq!(exact, [1.0, 3.0]);
        assert_eq!(cycle.matching(Source::KubeletSummary, "x_*").count(), 3);
        assert_eq!(cycle.matching(Source::Cluster, "x_*").count(), 0);
    }
    #[test]
    fn cache_keeps_ids_while_seen_and_forgets_the_rest() {
        let mut cache = SeriesCache::default();
        let a = cache.series("m", &mut [("pod", "p"), ("namespace", "n")]);
        let b = cache.series("m", &mut [("namespace", "n"), ("pod", "q")]);
        cache.sweep();
        assert_eq!(
            cache
                .series("m", &mut [("namespace", "n"), ("pod", "p")])
                .id,
            a.id
        );
        cache.sweep();
        assert_eq!(cache.len(), 1);
        assert_ne!(
            cache
                .series("m", &mut [("namespace", "n"), ("pod", "q")])
                .id,
            b.id
        );
        assert_eq!(a.label("pod"), Some("p"));
    }

    #[test]
    fn cache_tells_series_apart_by_every_name_and_value() {
        let mut cache = SeriesCache::default();
        // Pairs that would feed the same bytes without a separator ending each string.
        let ids = [
            cache.series("m", &mut [("ab", "c")]).id,
            cache.series("m", &mut [("a", "bc")]).id,
            cache.series("ma", &mut [("b", "c")]).id,
            cache.series("m", &mut [("a", "b"), ("c", "")]).id,
            cache.series("m", &mut [("a", "b")]).id,
            cache.series("m", &mut []).id,
        ];
        let unique: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len());
        assert_eq!(cache.len(), ids.len());
        // Enough series to grow the table several times: each is still found by its labels.
        let names: Vec<String> = (0..5000).map(|i| format!("pod-{i}")).collect();
        let first: Vec<u64> = names
            .iter()
            .map(|n| cache.series("x", &mut [("pod", n), ("namespace", "d")]).id)
            .collect();
        let again: Vec<u64> = names
            .iter()
            .map(|n| cache.series("x", &mut [("namespace", "d"), ("pod", n)]).id)
            .collect();
        assert_eq!(first, again);
        assert_eq!(cache.len(), ids.len() + names.len());
    }

    #[test]
    fn query_results_are_found_by_backend_with_the_default_resolved() {
        let key = |source, backend: &str, query: &str| QueryKey {
            source,
            backend: backend.into(),
            query: query.into(),
        };
        let mut family = Family::default();
        family.push(series("up", &[]), 5, 1.0);
        let mut cycle = CycleSamples {
            default_backend: Some("main".into()),
            ..CycleSamples::default()
        };
        cycle.queries.insert(
            key(Source::Prometheus, "main", "up"),
            QueryResult::Samples(Arc::new(family)),
        );
        cycle.queries.insert(
            key(Source::Prometheus, "other", "up"),
            QueryResult::Failed("prometheus \"other\": query \"up\": down".into()),
        );
        for backend in ["", "main"] {
            match cycle.query(Source::Prometheus, backend, "up") {
                Some(QueryResult::Samples(f)) => assert_eq!(f.values, [1.0]),
                other => panic!("{backend:?}: {other:?}"),
            }
        }
        assert!(matches!(
            cycle.query(Source::Prometheus, "other", "up"),
            Some(QueryResult::Failed(m)) if m.contains("down")
        ));
        assert!(cycle.query(Source::PrometheusSeries, "", "up").is_none());
        // Without a default backend, the failure recorded under the empty name is found.
        cycle.default_backend = None;
        cycle.queries.insert(
            key(Source::Prometheus, "", "up"),
            QueryResult::Failed("no default".into()),
        );
        assert!(matches!(
            cycle.query(Source::Prometheus, "", "up"),
            Some(QueryResult::Failed(_))
        ));
    }
}
