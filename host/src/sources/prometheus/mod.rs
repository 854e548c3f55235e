//! Prometheus-compatible backends as a source: each cycle, the instant queries and the series
//! and label-name discoveries that plugins' plans name, deduplicated by (backend, query), run concurrently with
//! the kubelet scrapes (bounded per backend, a timeout per request, `time=` the cycle's time).
//! A failing backend fails only its own inputs: each failure is recorded for the cycle's plugins,
//! logged (rate-limited per backend) and counted; the next cycle tries again.
//!
//! A reload builds a new source with [`PrometheusSource::reconfigure`] (unchanged backends
//! shared, new or changed ones set up and their credential files read once) and, between
//! cycles, the running source hands its state over with [`PrometheusSource::hand_over`]: the
//! inputs of the backends the two share keep their series tables and discovery timers.

pub mod client;
pub mod query;
pub mod response;
pub mod series;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::{PrometheusConfig, prometheus_backend};
use crate::samples::{QueryKey, QueryResult, Series, Source};
use crate::telemetry::{BackendLabels, BackendOutcomeLabels, Telemetry};
use client::{BackendClient, RequestError, SetupError};
use series::{SeriesTable, Strings};

/// At most one failure log line per backend in this interval (the rest are counted in it).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// One configured backend.
#[derive(Debug)]
struct Backend {
    name: Arc<str>,
    /// Its config entry: a reload keeps the backend exactly when the entry is unchanged.
    config: PrometheusConfig,
    client: BackendClient,
    permits: Arc<Semaphore>,
    discovery_interval_ms: i64,
    max_series: usize,
    timeout_secs: u32,
    /// When a failure was last logged, and the failures not logged since.
    warned: Mutex<(Option<Instant>, u64)>,
}

/// A discovery's state between its runs (series, shapes or label names).
#[derive(Debug, Default)]
struct Discovery {
    table: SeriesTable,
    /// The last successful run.
    last: Option<LastRun>,
}

/// A discovery's last successful run.
#[derive(Debug)]
struct LastRun {
    /// Cycle time, ms.
    at_ms: i64,
    /// What it found: series, shapes or label names.
    found: Arc<[Arc<Series>]>,
    /// How many series (or label names) the backend returned.
    returned: usize,
}

/// What each input keeps across cycles.
#[derive(Debug, Default)]
struct State {
    /// The strings of every input's series, shared by their tables.
    strings: Strings,
    queries: HashMap<QueryKey, SeriesTable>,
    discoveries: HashMap<QueryKey, Discovery>,
}

/// One cycle's results.
#[derive(Debug, Default)]
pub struct Collected {
    /// Result or failure of every input asked for.
    pub results: HashMap<QueryKey, QueryResult>,
    /// The backend inputs with an empty backend name read.
    pub default_backend: Option<Arc<str>>,
}

/// The configured backends and the state of their inputs.
#[derive(Debug)]
pub struct PrometheusSource {
    backends: HashMap<Arc<str>, Arc<Backend>>,
    default: Option<Arc<str>>,
    telemetry: Telemetry,
    state: Mutex<State>,
}

impl PrometheusSource {
    /// The backends of `configs` (relative paths against `base_dir`); every credential file
    /// must be readable now (it is re-read for every request).
    pub fn new(
        configs: &[PrometheusConfig],
        base_dir: &Path,
        telemetry: Telemetry,
    ) -> Result<PrometheusSource, SetupError> {
        let mut backends = HashMap::new();
        for cfg in configs {
            let backend = Backend::new(cfg, base_dir)?;
            backends.insert(backend.name.clone(), Arc::new(backend));
        }
        Ok(PrometheusSource {
            backends,
            default: prometheus_backend(configs, "").map(|b| b.name.get_ref().as_str().into()),
            telemetry,
            state: Mutex::default(),
        })
    }

    /// The source of `configs` for a reload of a gateway running `running`: `running` itself
    /// when `configs` are its backends' entries in any order, else a new source sharing
    /// `running`'s backends whose entry is unchanged and setting up the others (a backend that
    /// cannot be set up, e.g. an unreadable CA or token file, is an error naming it). `None`
    /// without backends. Nothing changes in `running`.
    pub fn reconfigure(
        configs: &[PrometheusConfig],
        base_dir: &Path,
        telemetry: &Telemetry,
        running: Option<&Arc<PrometheusSource>>,
    ) -> Result<Option<Arc<PrometheusSource>>, SetupError> {
        if configs.is_empty() {
            return Ok(None);
        }
        let kept = |cfg: &PrometheusConfig| {
            running
                .and_then(|r| r.backends.get(cfg.name.get_ref().as_str()))
                .filter(|b| b.config == *cfg)
                .cloned()
        };
        if let Some(running) = running
            && running.backends.len() == configs.len()
            && configs.iter().all(|cfg| kept(cfg).is_some())
        {
            return Ok(Some(running.clone()));
        }
        let mut backends = HashMap::new();
        for cfg in configs {
            let backend = match kept(cfg) {
                Some(backend) => backend,
                None => Arc::new(Backend::new(cfg, base_dir)?),
            };
            backends.insert(backend.name.clone(), backend);
        }
        Ok(Some(Arc::new(PrometheusSource {
            backends,
            default: prometheus_backend(configs, "").map(|b| b.name.get_ref().as_str().into()),
            telemetry: telemetry.clone(),
            state: Mutex::default(),
        })))
    }

    /// Hands this source's input state (series tables, discoveries with their last run) for
    /// the backends it shares with `next` over to `next`, so those inputs neither re-discover
    /// nor renumber their series, and removes the per-backend gauges of the backends `next`
    /// lacks. Call between cycles, when `next` replaces this source.
    pub fn hand_over(&self, next: Option<&PrometheusSource>) {
        let taken = std::mem::take(&mut *self.state.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(next) = next {
            let shared = |name: &Arc<str>| match (self.backends.get(name), next.backends.get(name))
            {
                (Some(old), Some(new)) => Arc::ptr_eq(old, new),
                _ => false,
            };
            let mut state = next.state.lock().unwrap_or_else(|e| e.into_inner());
            state.strings = taken.strings;
            state.queries = taken
                .queries
                .into_iter()
                .filter(|(k, _)| shared(&k.backend))
                .collect();
            state.discoveries = taken
                .discoveries
                .into_iter()
                .filter(|(k, _)| shared(&k.backend))
                .collect();
        }
        for name in self.backends.keys() {
            if next.is_some_and(|n| n.backends.contains_key(name)) {
                continue;
            }
            let labels = BackendLabels {
                backend: name.to_string(),
            };
            self.telemetry.prometheus_backend_up.remove(&labels);
            self.telemetry.prometheus_discovered_series.remove(&labels);
        }
    }

    /// The inputs whose state the source holds, as `source backend query`, sorted (tests).
    #[cfg(test)]
    pub(crate) fn held(&self) -> Vec<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let keys = state.queries.keys().chain(state.discoveries.keys());
        let mut held: Vec<String> = keys
            .map(|k| format!("{} {} {}", k.source.as_str(), k.backend, k.query))
            .collect();
        held.sort();
        held
    }

    /// Runs the Prometheus inputs `inputs` — (source, backend as a plan names it, query or
    /// selector) — for the cycle at `now_ms`. Inputs not asked for are forgotten.
    pub async fn collect<'a>(
        &self,
        inputs: impl IntoIterator<Item = (Source, &'a str, &'a str)>,
        now_ms: i64,
    ) -> Collected {
        let mut collected = Collected {
            results: HashMap::new(),
            default_backend: self.default.clone(),
        };
        let mut state = std::mem::take(&mut *self.state.lock().unwrap_or_else(|e| e.into_inner()));
        let mut next = State {
            strings: state.strings.clone(),
            ..State::default()
        };
        let mut tasks = JoinSet::new();
        let mut seen = std::collections::HashSet::new();
        for (source, backend, query) in inputs {
            let resolved = if backend.is_empty() {
                self.default.clone()
            } else {
                self.backends.get(backend).map(|b| b.name.clone())
            };
            let Some(backend) = resolved.and_then(|name| self.backends.get(&name).cloned()) else {
                let key = QueryKey {
                    source,
                    backend: backend.into(),
                    query: query.into(),
                };
                let message = if backend.is_empty() {
                    format!(
                        "query {query:?}: no default prometheus backend (name one `default`, or configure only one)"
                    )
                } else {
                    format!(
                        "query {query:?}: no prometheus backend named {backend:?} is configured"
                    )
                };
                collected
                    .results
                    .insert(key, QueryResult::Failed(message.into()));
                continue;
            };
            let key = QueryKey {
                source,
                backend: backend.name.clone(),
                query: query.into(),
            };
            if !seen.insert(key.clone()) {
                continue;
            }
            match source {
                source if source.is_discovery() => {
                    let mut discovery =
                        state.discoveries.remove(&key).unwrap_or_else(|| Discovery {
                            table: SeriesTable::new(state.strings.clone()),
                            last: None,
                        });
                    match &discovery.last {
                        Some(last)
                            if now_ms - last.at_ms < backend.discovery_interval_ms
                                && now_ms >= last.at_ms =>
                        {
                            collected
                                .results
                                .insert(key.clone(), QueryResult::Series(last.found.clone()));
                            next.discoveries.insert(key, discovery);
                        }
                        _ => {
                            let telemetry = self.telemetry.clone();
                            tasks.spawn(async move {
                                let started = Instant::now();
                                let window = backend.discovery_interval_ms.max(query::LOOKBACK_MS);
                                let (client, table) = (&backend.client, &mut discovery.table);
                                let cap = backend.max_series;
                                let result = if source == Source::PrometheusLabels {
                                    backend
                                        .bounded(query::labels(
                                            client, &key.query, now_ms, window, cap, table,
                                        ))
                                        .await
                                } else {
                                    backend
                                        .bounded(query::series(
                                            client,
                                            &key.query,
                                            now_ms,
                                            window,
                                            cap,
                                            source == Source::PrometheusSeriesShapes,
                                            table,
                                        ))
                                        .await
                                };
                                observe(&telemetry, &backend, started, &result);
                                let result = match result {
                                    Ok((found, returned)) => {
                                        discovery.last = Some(LastRun {
                                            at_ms: now_ms,
                                            found: found.clone(),
                                            returned,
                                        });
                                        Ok(QueryResult::Series(found))
                                    }
                                    Err(e) => Err(e),
                                };
                                Slot::Discovery(key, discovery, backend, result)
                            });
                        }
                    }
                }
                _ => {
                    let mut table = state
                        .queries
                        .remove(&key)
                        .unwrap_or_else(|| SeriesTable::new(state.strings.clone()));
                    let telemetry = self.telemetry.clone();
                    tasks.spawn(async move {
                        let started = Instant::now();
                        let result = backend
                            .bounded(query::instant(
                                &backend.client,
                                &key.query,
                                now_ms,
                                &mut table,
                            ))
                            .await;
                        observe(&telemetry, &backend, started, &result);
                        let result = result.map(|f| QueryResult::Samples(Arc::new(f)));
                        Slot::Query(key, table, backend, result)
                    });
                }
            }
        }
        let mut answered: HashMap<Arc<str>, bool> = HashMap::new();
        while let Some(joined) = tasks.join_next().await {
            let Ok(slot) = joined else { continue };
            let (key, backend, result) = match slot {
                Slot::Query(key, table, backend, result) => {
                    next.queries.insert(key.clone(), table);
                    (key, backend, result)
                }
                Slot::Discovery(key, discovery, backend, result) => {
                    next.discoveries.insert(key.clone(), discovery);
                    (key, backend, result)
                }
            };
            let up = answered.entry(backend.name.clone()).or_default();
            *up |= result
                .as_ref()
                .map_or_else(RequestError::backend_answered, |_| true);
            let result = result.unwrap_or_else(|error| {
                let message = format!(
                    "prometheus {:?}: {} {:?}: {error}",
                    &*backend.name,
                    match key.source {
                        Source::PrometheusSeries => "series",
                        Source::PrometheusSeriesShapes => "series shapes of",
                        Source::PrometheusLabels => "labels of",
                        _ => "query",
                    },
                    &*key.query
                );
                warn_failure(&backend, &key, &error);
                QueryResult::Failed(message.into())
            });
            collected.results.insert(key, result);
        }
        for (name, up) in answered {
            self.telemetry
                .prometheus_backend_up
                .get_or_create(&BackendLabels {
                    backend: name.to_string(),
                })
                .set(i64::from(up));
        }
        for name in self.backends.keys() {
            let held: usize = next
                .discoveries
                .iter()
                .filter(|(k, _)| k.backend == *name)
                .map(|(_, d)| d.last.as_ref().map_or(0, |last| last.returned))
                .sum();
            self.telemetry
                .prometheus_discovered_series
                .get_or_create(&BackendLabels {
                    backend: name.to_string(),
                })
                .set(held as i64);
        }
        // Every table has swept its series: the strings only they held go now, in one pass.
        next.strings.sweep();
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = next;
        collected
    }
}

/// A finished request with the state it carried.
enum Slot {
    Query(
        QueryKey,
        SeriesTable,
        Arc<Backend>,
        Result<QueryResult, RequestError>,
    ),
    Discovery(
        QueryKey,
        Discovery,
        Arc<Backend>,
        Result<QueryResult, RequestError>,
    ),
}

impl Backend {
    /// The backend of `cfg`, its credential files read once to check them.
    fn new(cfg: &PrometheusConfig, base_dir: &Path) -> Result<Backend, SetupError> {
        let client = BackendClient::new(cfg, base_dir)?;
        client.check_credentials().map_err(|e| SetupError {
            backend: cfg.name.get_ref().clone(),
            message: e.to_string(),
        })?;
        Ok(Backend {
            name: cfg.name.get_ref().as_str().into(),
            config: cfg.clone(),
            client,
            permits: Arc::new(Semaphore::new(cfg.max_concurrency.get() as usize)),
            discovery_interval_ms: i64::from(cfg.discovery_interval_secs.get()) * 1000,
            max_series: cfg.max_series.get() as usize,
            timeout_secs: cfg.timeout_secs.get(),
            warned: Mutex::new((None, 0)),
        })
    }

    /// Runs `request` when a slot of the backend is free, all within the backend's timeout: a
    /// request still waiting for a slot then fails too, so a slow backend holds the cycle no
    /// longer than its timeout.
    async fn bounded<T>(
        &self,
        request: impl Future<Output = Result<T, RequestError>>,
    ) -> Result<T, RequestError> {
        let limit = Duration::from_secs(self.timeout_secs.into());
        tokio::time::timeout(limit, async {
            let _permit = self.permits.acquire().await.expect("never closed");
            request.await
        })
        .await
        .unwrap_or(Err(RequestError::Timeout(self.timeout_secs)))
    }
}

impl RequestError {
    /// The backend answered (it is up), even if the answer was an error.
    fn backend_answered(&self) -> bool {
        matches!(self, RequestError::Response(_))
    }
}

fn observe<T>(
    telemetry: &Telemetry,
    backend: &Backend,
    started: Instant,
    result: &Result<T, RequestError>,
) {
    let backend_name = backend.name.to_string();
    telemetry
        .prometheus_query_duration
        .get_or_create(&BackendLabels {
            backend: backend_name.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    let outcome = match result {
        Ok(_) => "success",
        Err(e) => e.outcome(),
    };
    telemetry
        .prometheus_queries
        .get_or_create(&BackendOutcomeLabels {
            backend: backend_name,
            outcome,
        })
        .inc();
}

/// Logs a failed input, at most once per backend per [`WARN_EVERY`].
fn warn_failure(backend: &Backend, key: &QueryKey, error: &RequestError) {
    let mut warned = backend.warned.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if warned
        .0
        .is_some_and(|at| now.duration_since(at) < WARN_EVERY)
    {
        warned.1 += 1;
        return;
    }
    let suppressed = std::mem::take(&mut warned.1);
    warned.0 = Some(now);
    tracing::warn!(
        backend = &*backend.name,
        query = &*key.query,
        source = key.source.as_str(),
        outcome = error.outcome(),
        suppressed,
        %error,
        "prometheus input failed; the metrics that depend on it fail this cycle"
    );
}
