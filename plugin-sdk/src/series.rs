//! The live input series of a plugin instance, kept from cycle to cycle.

use crate::idmap::IdMap;
use crate::types::{CycleInput, Sample, Series};

/// The input series a plugin has been told about, by id, each with data `T` the plugin
/// attaches when the series appears (e.g. the rules it matches, a counter's last sample), so
/// per-sample work is a lookup.
///
/// Series live in a dense slab; [`SeriesTable::for_each_sample`] remembers which slot each
/// sample position held last cycle, so while the host sends samples in the same order (it does
/// as long as the series set is unchanged) a sample costs no hash lookup at all.
#[derive(Debug, Clone)]
pub struct SeriesTable<T = ()> {
    index: IdMap<u32>,
    slots: Vec<Option<(Series, T)>>,
    free: Vec<u32>,
    /// (id, slot) at each sample position of the previous cycle.
    order: Vec<(u64, u32)>,
}

impl<T> Default for SeriesTable<T> {
    fn default() -> Self {
        SeriesTable {
            index: IdMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            order: Vec::new(),
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
        SeriesTable::default()
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
            .filter_map(|id| self.remove(*id))
            .collect();
        for series in &input.added {
            // An id announced again without a removal replaces the old series.
            if let Some(old) = self.remove(series.id) {
                removed.push(old);
            }
            let data = attach(series);
            let slot = match self.free.pop() {
                Some(slot) => {
                    self.slots[slot as usize] = Some((series.clone(), data));
                    slot
                }
                None => {
                    self.slots.push(Some((series.clone(), data)));
                    (self.slots.len() - 1) as u32
                }
            };
            self.index.insert(series.id, slot);
        }
        removed
    }

    fn remove(&mut self, id: u64) -> Option<(Series, T)> {
        let slot = self.index.remove(&id)?;
        self.free.push(slot);
        self.slots[slot as usize].take()
    }

    /// The series with id `id`.
    pub fn get(&self, id: u64) -> Option<&Series> {
        self.entry(id).map(|(s, _)| s)
    }

    /// The series with id `id` and its attached data.
    pub fn entry(&self, id: u64) -> Option<(&Series, &T)> {
        let slot = *self.index.get(&id)?;
        self.slots[slot as usize].as_ref().map(|(s, d)| (s, d))
    }

    /// Calls `f` with every sample of `input` whose series is live, its series and its data
    /// (call [`SeriesTable::apply_with`] first). The fast path for per-sample work.
    pub fn for_each_sample(
        &mut self,
        input: &CycleInput,
        mut f: impl FnMut(Sample, &Series, &mut T),
    ) {
        self.order.resize(input.ids.len(), (u64::MAX, 0));
        for (position, sample) in input.samples().enumerate() {
            let (id, remembered) = self.order[position];
            // The remembered slot is valid while it still holds that series (a freed slot may
            // have been reused by another).
            let hit = id == sample.id
                && self.slots[remembered as usize]
                    .as_ref()
                    .is_some_and(|(series, _)| series.id == id);
            let slot = if hit {
                remembered
            } else {
                let Some(&slot) = self.index.get(&sample.id) else {
                    continue;
                };
                self.order[position] = (sample.id, slot);
                slot
            };
            if let Some((series, data)) = self.slots[slot as usize].as_mut() {
                f(sample, series, data);
            }
        }
    }

    /// Every live series with its data, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Series, &T)> {
        self.slots.iter().flatten().map(|(s, d)| (s, d))
    }

    /// The names of the live series of plan input `input`, sorted. For a `prometheus-labels`
    /// input these are the label names the backend lists.
    pub fn names_of(&self, input: u32) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .iter()
            .filter(|(s, _)| s.input == input)
            .map(|(s, _)| s.name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// Number of live series.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no series is live.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
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
    #[test]
    fn for_each_sample_follows_ids_when_the_order_changes() {
        let mut t: SeriesTable<f64> = SeriesTable::new();
        let cycle = |added: Vec<Series>, removed: Vec<u64>, ids: Vec<u64>| CycleInput {
            added,
            removed,
            timestamps_ms: vec![0; ids.len()],
            values: ids.iter().map(|&id| id as f64).collect(),
            ids,
            ..CycleInput::default()
        };
        let sum = |t: &mut SeriesTable<f64>, input: &CycleInput| {
            t.apply_with(input, |_| 0.0);
            let mut seen = Vec::new();
            t.for_each_sample(input, |sample, series, total| {
                assert_eq!(sample.id, series.id);
                *total += sample.value;
                seen.push(series.id);
            });
            seen
        };
        let first = cycle(vec![series(1, "a"), series(2, "b")], vec![], vec![1, 2, 9]);
        assert_eq!(sum(&mut t, &first), [1, 2], "unknown ids are skipped");
        let same = cycle(vec![], vec![], vec![1, 2]);
        assert_eq!(sum(&mut t, &same), [1, 2]);
        // Series 1 leaves, 3 takes its slot, and the order changes.
        let changed = cycle(vec![series(3, "c")], vec![1], vec![2, 3, 1]);
        assert_eq!(sum(&mut t, &changed), [2, 3]);
        assert_eq!(t.entry(2).map(|(_, d)| *d), Some(6.0));
        assert_eq!(t.entry(3).map(|(_, d)| *d), Some(3.0));
        assert!(t.entry(1).is_none());
        assert_eq!(t.iter().count(), 2);
    }
}
