//! Builds one instance's `cycle-input` from the cycle's samples: the columns of every input's
//! families, and the series the instance has not been sent yet (or no longer gets). The series
//! announced are borrowed from the cycle's samples, never copied on the host: the contract's
//! bindings lower them into the instance straight from the interned strings.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::plan::Input;
use super::wit::types;
use crate::samples::{CycleSamples, Family, QueryResult, Series};

/// Hashes series ids (sequential counters) by one multiplication: far cheaper than SipHash on
/// the per-sample path, and ids are not attacker-chosen.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by series id.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// One cycle's `cycle-input` for an instance, its announced series borrowed from the cycle's
/// samples and its API resources from the plugin set.
#[derive(Debug, Clone, Default)]
pub struct CycleInput<'a> {
    /// When the cycle started, ms since the epoch.
    pub timestamp_ms: i64,
    /// The collection interval, ms.
    pub interval_ms: u64,
    /// Series first seen by the instance this cycle, with the index of the input they answer.
    pub added: Vec<(&'a Series, u32)>,
    /// Ids of the series gone since the previous cycle.
    pub removed: Vec<u64>,
    /// The samples' series ids, one row per index.
    pub ids: Vec<u64>,
    /// The samples' timestamps, ms.
    pub timestamps_ms: Vec<i64>,
    /// The samples' values.
    pub values: Vec<f64>,
    /// Inputs that could not be read this cycle.
    pub failures: Vec<types::InputFailure>,
    /// The cluster's API resources, when the instance is to be sent them.
    pub api_resources: Option<&'a [types::ApiResource]>,
}

/// The series one instance has been sent, with the cycle each was last seen in and its input.
#[derive(Debug, Default)]
pub struct InputState {
    sent: IdMap<(u64, u32)>,
    cycle: u64,
}

impl InputState {
    /// This cycle's input for `inputs`: every sample of every matching family, once (a family
    /// matched by two inputs is sent for the first), new series in `added` and vanished ones in
    /// `removed`. An input that failed this cycle ([`CycleSamples::failure`]) is reported in
    /// `failures`, and its series are neither sent nor removed. A Prometheus query's result is
    /// sent as any family; a series discovery's series are announced and carry no samples.
    /// `api-resources` is left `none` for the caller to fill.
    pub fn build<'a>(
        &mut self,
        inputs: &'a [Input],
        samples: &'a CycleSamples,
        timestamp_ms: i64,
        interval_ms: u64,
    ) -> CycleInput<'a> {
        self.cycle += 1;
        let cycle = self.cycle;
        let mut families: Vec<(u32, &'a Family)> = Vec::new();
        // One input cannot match a family twice; several may.
        let dedup = inputs.len() > 1;
        let mut seen: HashSet<*const Family> = HashSet::new();
        let mut failures = Vec::new();
        let mut discovered: Vec<(u32, &'a [Arc<Series>])> = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            if let Some(message) = samples.failure(input.source, &input.backend, &input.name) {
                failures.push(types::InputFailure {
                    input: i as u32,
                    message: message.to_owned(),
                });
                continue;
            }
            if input.source.is_prometheus() {
                match samples.query(input.source, &input.backend, &input.name) {
                    Some(QueryResult::Samples(family)) => {
                        if !dedup || seen.insert(Arc::as_ptr(family)) {
                            families.push((i as u32, family));
                        }
                    }
                    Some(QueryResult::Series(series)) => discovered.push((i as u32, series)),
                    Some(QueryResult::Failed(_)) | None => {}
                }
                continue;
            }
            for family in samples.matching(input.source, &input.name) {
                if !dedup || seen.insert(std::ptr::from_ref(family)) {
                    families.push((i as u32, family));
                }
            }
        }
        let rows = families.iter().map(|(_, f)| f.len()).sum();
        let mut input = CycleInput {
            timestamp_ms,
            interval_ms,
            added: Vec::new(),
            removed: Vec::new(),
            ids: Vec::with_capacity(rows),
            timestamps_ms: Vec::with_capacity(rows),
            values: Vec::with_capacity(rows),
            failures,
            api_resources: None,
        };
        for (index, family) in families {
            for series in &family.series {
                input.ids.push(series.id);
                match self.sent.entry(series.id) {
                    Entry::Occupied(mut seen) => seen.get_mut().0 = cycle,
                    Entry::Vacant(new) => {
                        new.insert((cycle, index));
                        input.added.push((&**series, index));
                    }
                }
            }
            input.timestamps_ms.extend_from_slice(&family.timestamps_ms);
            input.values.extend_from_slice(&family.values);
        }
        for (index, series) in discovered {
            for series in series {
                match self.sent.entry(series.id) {
                    Entry::Occupied(mut seen) => seen.get_mut().0 = cycle,
                    Entry::Vacant(new) => {
                        new.insert((cycle, index));
                        input.added.push((&**series, index));
                    }
                }
            }
        }
        let failed = |index: u32| input.failures.iter().any(|f| f.input == index);
        let mut removed = Vec::new();
        self.sent.retain(|id, (seen, index)| {
            let live = *seen == cycle || failed(*index);
            if !live {
                removed.push(*id);
            }
            live
        });
        input.removed = removed;
        input
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::samples::{Batch, SeriesCache, Source};

    fn input(source: Source, name: &str) -> Input {
        Input {
            source,
            name: name.into(),
            backend: String::new(),
        }
    }

    fn cycle(cache: &mut SeriesCache, rows: &[(&str, &str, f64)]) -> CycleSamples {
        let mut batch = Batch::default();
        for (name, pod, value) in rows {
            batch.push(cache.series(name, &mut [("pod", pod)]), 1000, *value);
        }
        cache.sweep();
        let mut samples = CycleSamples::default();
        samples.add(Source::KubeletSummary, Arc::new(batch));
        samples
    }

    #[test]
    fn series_are_announced_once_and_removed_when_gone() {
        let inputs = [
            input(Source::KubeletSummary, "rx_total"),
            input(Source::KubeletSummary, "*"),
            input(Source::Prometheus, "up"),
        ];
        let mut cache = SeriesCache::default();
        let mut state = InputState::default();

        let samples = cycle(
            &mut cache,
            &[("rx_total", "a", 1.0), ("tx_total", "a", 2.0)],
        );
        let first = state.build(&inputs, &samples, 5, 15_000);
        assert_eq!((first.timestamp_ms, first.interval_ms), (5, 15_000));
        // rx_total is matched by inputs 0 and 1 but sent once, for input 0.
        assert_eq!(first.ids.len(), 2);
        let mut added: Vec<(&str, u32)> = first
            .added
            .iter()
            .map(|(s, input)| (&*s.name, *input))
            .collect();
        added.sort();
        assert_eq!(added, [("rx_total", 0), ("tx_total", 1)]);
        assert_eq!(&*first.added[0].0.labels[0].0, "pod");
        assert!(first.removed.is_empty());
        let id = |name: &str| {
            first
                .added
                .iter()
                .find(|(s, _)| &*s.name == name)
                .unwrap()
                .0
                .id
        };
        let (rx, tx) = (id("rx_total"), id("tx_total"));

        let samples = cycle(
            &mut cache,
            &[("rx_total", "a", 3.0), ("rx_total", "b", 4.0)],
        );
        let second = state.build(&inputs, &samples, 6, 15_000);
        assert_eq!(second.added.len(), 1);
        assert_eq!(&*second.added[0].0.labels[0].1, "b");
        assert_eq!(second.removed, [tx]);
        let row = second.ids.iter().position(|&id| id == rx).unwrap();
        assert_eq!(second.values[row], 3.0);
        assert_eq!(second.timestamps_ms[row], 1000);

        let empty = CycleSamples::default();
        let third = state.build(&inputs, &empty, 7, 15_000);
        assert!(third.added.is_empty() && third.ids.is_empty());
        assert_eq!(third.removed.len(), 2);
    }

    #[test]
    fn a_failed_inputs_series_are_neither_sent_nor_removed() {
        let inputs = [
            input(Source::KubeletSummary, "rx_total"),
            input(Source::KubeletSummary, "tx_total"),
        ];
        let mut cache = SeriesCache::default();
        let mut state = InputState::default();
        let rows = [("rx_total", "a", 1.0), ("tx_total", "a", 2.0)];
        let samples = cycle(&mut cache, &rows);
        let first = state.build(&inputs, &samples, 5, 15_000);
        let tx = first
            .added
            .iter()
            .find(|(_, input)| *input == 1)
            .unwrap()
            .0
            .id;
        assert!(first.failures.is_empty() && first.api_resources.is_none());

        let mut failing = cycle(&mut cache, &rows[..1]);
        failing.fail(Source::KubeletSummary, "", "tx_total", "scrape failed");
        let second = state.build(&inputs, &failing, 6, 15_000);
        assert_eq!(second.failures.len(), 1);
        assert_eq!(
            (
                second.failures[0].input,
                second.failures[0].message.as_str()
            ),
            (1, "scrape failed")
        );
        assert!(second.removed.is_empty(), "{:?}", second.removed);
        assert_eq!(second.ids.len(), 1);

        // Back, without the series: now it is removed; had it been there, not announced again.
        let samples = cycle(&mut cache, &rows[..1]);
        let third = state.build(&inputs, &samples, 7, 15_000);
        assert_eq!(third.removed, [tx]);
        assert!(third.failures.is_empty());
    }
}
