//! Emitting derived series: stable ids, `derived-added` and `derived-removed` kept for the
//! plugin.

use std::collections::{HashMap, HashSet};

use crate::types::{CycleOutput, Label, Series};

/// Assigns ids to the derived series a plugin emits and fills the derived columns of its
/// output. A series keeps its id while it is emitted every cycle; a series not emitted in a
/// cycle is announced as removed at [`DerivedEmitter::finish`] and gets a new id if it comes
/// back. Ids are never reused.
#[derive(Debug, Default)]
pub struct DerivedEmitter {
    /// Ids by name, then by labels (sorted).
    ids: HashMap<String, HashMap<Vec<Label>, u64>>,
    /// Name and labels by id, for removal.
    keys: HashMap<u64, (String, Vec<Label>)>,
    /// Row in the output columns of each series emitted this cycle.
    this_cycle: HashMap<u64, usize>,
    next_id: u64,
}

impl DerivedEmitter {
    /// No series yet.
    pub fn new() -> DerivedEmitter {
        DerivedEmitter::default()
    }

    /// Emits a sample of derived series `name{labels}` into `out`, announcing the series in
    /// `derived_added` the first time. `labels` must be sorted by name (see
    /// [`crate::labels`]). Emitting one series twice in a cycle replaces the earlier sample.
    pub fn emit(
        &mut self,
        out: &mut CycleOutput,
        name: &str,
        labels: &[Label],
        timestamp_ms: i64,
        value: f64,
    ) {
        let known = self
            .ids
            .get(name)
            .and_then(|by_labels| by_labels.get(labels))
            .copied();
        let id = match known {
            Some(id) => id,
            None => {
                self.next_id += 1;
                let id = self.next_id;
                self.ids
                    .entry(name.to_owned())
                    .or_default()
                    .insert(labels.to_vec(), id);
                self.keys.insert(id, (name.to_owned(), labels.to_vec()));
                out.derived_added.push(Series {
                    id,
                    input: 0,
                    name: name.to_owned(),
                    labels: labels.to_vec(),
                });
                id
            }
        };
        match self.this_cycle.get(&id) {
            Some(&row) if out.derived_ids.get(row) == Some(&id) => {
                out.derived_timestamps_ms[row] = timestamp_ms;
                out.derived_values[row] = value;
            }
            _ => {
                self.this_cycle.insert(id, out.derived_ids.len());
                out.derived_ids.push(id);
                out.derived_timestamps_ms.push(timestamp_ms);
                out.derived_values.push(value);
            }
        }
    }

    /// Ends the cycle: every series emitted before but not since the last `finish` goes into
    /// `out.derived_removed` and is forgotten.
    pub fn finish(&mut self, out: &mut CycleOutput) {
        let emitted: HashSet<u64> = self.this_cycle.drain().map(|(id, _)| id).collect();
        let gone: Vec<u64> = self
            .keys
            .keys()
            .filter(|id| !emitted.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some((name, labels)) = self.keys.remove(&id)
                && let Some(by_labels) = self.ids.get_mut(&name)
            {
                by_labels.remove(&labels);
                if by_labels.is_empty() {
                    self.ids.remove(&name);
                }
            }
            out.derived_removed.push(id);
        }
        out.derived_removed.sort_unstable();
    }

    /// Number of live derived series.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no derived series is live.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::labels;

    #[test]
    fn ids_are_stable_while_emitted_and_removed_when_not() {
        let mut e = DerivedEmitter::new();
        let (a, b) = (labels(&[("pod", "a")]), labels(&[("pod", "b")]));

        let mut out = CycleOutput::new();
        e.emit(&mut out, "x", &a, 1, 1.0);
        e.emit(&mut out, "x", &b, 1, 2.0);
        e.finish(&mut out);
        assert_eq!(out.derived_added.len(), 2);
        let id_a = out.derived_added[0].id;
        let id_b = out.derived_added[1].id;
        assert_ne!(id_a, id_b);
        assert_eq!(out.derived_ids, vec![id_a, id_b]);
        assert!(out.derived_removed.is_empty());

        let mut out = CycleOutput::new();
        e.emit(&mut out, "x", &a, 2, 3.0);
        e.finish(&mut out);
        assert!(
            out.derived_added.is_empty(),
            "a known series is not announced again"
        );
        assert_eq!(out.derived_ids, vec![id_a]);
        assert_eq!(out.derived_removed, vec![id_b]);

        let mut out = CycleOutput::new();
        e.emit(&mut out, "x", &b, 3, 4.0);
        e.finish(&mut out);
        assert_eq!(out.derived_added.len(), 1);
        assert!(out.derived_added[0].id > id_b, "ids are never reused");
        assert_eq!(out.derived_removed, vec![id_a]);
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn emitting_twice_in_a_cycle_replaces_the_sample() {
        let mut e = DerivedEmitter::new();
        let mut out = CycleOutput::new();
        e.emit(&mut out, "x", &[], 1, 1.0);
        e.emit(&mut out, "x", &[], 2, 5.0);
        e.finish(&mut out);
        assert_eq!(out.derived_ids.len(), 1);
        assert_eq!(out.derived_values, vec![5.0]);
        assert_eq!(out.derived_timestamps_ms, vec![2]);
    }
}
