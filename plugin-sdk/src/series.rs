//! The live input series of a plugin instance, kept from cycle to cycle.

use crate::idmap::IdMap;
use crate::types::{CycleInput, Series};

/// The input series a plugin has been told about, by id, each with data `T` the plugin
/// attaches when the series appears (e.g. the rules it matches), so per-sample work is a lookup.
#[derive(Debug, Clone)]
pub struct SeriesTable<T = ()> {
    series: IdMap<(Series, T)>,
}

impl<T> Default for SeriesTable<T> {
    fn default() -> Self {
        SeriesTable {
            series: IdMap::default(),
        }
    }
}

impl SeriesTable<()> {
    /// Applies a cycle's `removed` then `added` series.
    pub fn apply(&mut self, input: &CycleInput) {
        self.apply_with(input, |_| ());
    }
}

impl<T> SeriesTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        SeriesTable {
            series: IdMap::default(),
        }
    }

    /// Applies a cycle's `removed` then `added` series, attaching `attach(series)` to each new
    /// one; returns the removed series with their data (also a series replaced by one announced
    /// again under its id).
    pub fn apply_with(
        &mut self,
        input: &CycleInput,
        mut attach: impl FnMut(&Series) -> T,
    ) -> Vec<(Series, T)> {
        let mut removed: Vec<(Series, T)> = input
            .removed
            .iter()
            .filter_map(|id| self.series.remove(id))
            .collect();
        for series in &input.added {
            let data = attach(series);
            // An id announced again without a removal replaces the old series.
            if let Some(old) = self.series.insert(series.id, (series.clone(), data)) {
                removed.push(old);
            }
        }
        removed
    }

    /// The series with id `id`.
    pub fn get(&self, id: u64) -> Option<&Series> {
        self.series.get(&id).map(|(s, _)| s)
    }

    /// The series with id `id` and its attached data.
    pub fn entry(&self, id: u64) -> Option<(&Series, &T)> {
        self.series.get(&id).map(|(s, d)| (s, d))
    }

    /// Every live series with its data, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Series, &T)> {
        self.series.values().map(|(s, d)| (s, d))
    }

    /// Number of live series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series is live.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::labels;

    fn series(id: u64, name: &str) -> Series {
        Series {
            id,
            input: 0,
            name: name.into(),
            labels: labels(&[("pod", name)]),
        }
    }

    #[test]
    fn applies_added_and_removed_and_attaches_data() {
        let mut t = SeriesTable::new();
        let first = CycleInput {
            added: vec![series(1, "a"), series(2, "bb")],
            ..CycleInput::default()
        };
        t.apply_with(&first, |s| s.name.len());
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.entry(2).map(|(s, d)| (s.label("pod"), *d)),
            Some((Some("bb"), 2))
        );
        let second = CycleInput {
            removed: vec![1],
            added: vec![series(3, "ccc")],
            ..CycleInput::default()
        };
        t.apply_with(&second, |s| s.name.len());
        assert!(t.get(1).is_none());
        assert_eq!(t.entry(3).map(|(_, d)| *d), Some(3));
        assert_eq!(t.len(), 2);
    }
}
