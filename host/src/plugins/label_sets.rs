//! The label sets of one plugin's published values, shared between values and across cycles.
//!
//! A plugin sends each value's labels as its own list; most repeat: every metric's value of one
//! object usually carries the same labels (a query grouped `by (namespace, pod)`), and so does
//! the same value one cycle later. Held as one map per value, 100,000 values cost ~800 bytes
//! each, twice while the new snapshot is built beside the published one; shared, each distinct
//! set is held once.

use std::collections::HashSet;
use std::sync::Arc;

use super::wit::types;
use crate::sources::cluster::LabelSet;

/// Distinct label sets of a plugin's values, each held once.
#[derive(Debug, Default)]
pub struct LabelSets {
    sets: HashSet<Arc<LabelSet>>,
}

impl LabelSets {
    /// The shared set of `labels` (a later name repeated wins, as in a map).
    pub fn get(&mut self, labels: Vec<types::Label>) -> Arc<LabelSet> {
        let set = LabelSet(labels.into_iter().map(|l| (l.name, l.value)).collect());
        if let Some(shared) = self.sets.get(&set) {
            return shared.clone();
        }
        let set = Arc::new(set);
        self.sets.insert(set.clone());
        set
    }

    /// Forgets the sets that no value holds any longer.
    pub fn sweep(&mut self) {
        self.sets.retain(|set| Arc::strong_count(set) > 1);
    }

    /// Number of distinct sets held.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// No set held.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<types::Label> {
        pairs
            .iter()
            .map(|(name, value)| types::Label {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect()
    }

    #[test]
    fn equal_sets_are_shared_until_no_value_holds_them() {
        let mut sets = LabelSets::default();
        let a = sets.get(labels(&[("pod", "p"), ("namespace", "n")]));
        let b = sets.get(labels(&[("namespace", "n"), ("pod", "p")]));
        assert!(Arc::ptr_eq(&a, &b), "the same labels in another order");
        assert_eq!(a.0["pod"], "p");
        let c = sets.get(labels(&[("namespace", "n"), ("pod", "q")]));
        assert!(!Arc::ptr_eq(&a, &c));
        let empty = sets.get(Vec::new());
        assert!(empty.0.is_empty());
        assert_eq!(sets.len(), 3);

        drop((b, c, empty));
        sets.sweep();
        assert_eq!(sets.len(), 1, "only `a` is still held");
        assert!(Arc::ptr_eq(
            &sets.get(labels(&[("namespace", "n"), ("pod", "p")])),
            &a
        ));
        drop(a);
        sets.sweep();
        assert!(sets.is_empty());
    }
}
