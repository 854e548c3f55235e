//! Interned series of Prometheus results: label names and values are shared strings, and a
//! series keeps its id across cycles while it keeps being returned, so plugins are told of it
//! once and of its disappearance once.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use crate::samples::{Label, Series};

/// The label that holds a series' metric name.
pub const NAME_LABEL: &str = "__name__";

/// Series of one Prometheus input (a query or a selector), interned across its runs.
#[derive(Debug, Default)]
pub struct SeriesTable {
    strings: HashSet<Arc<str>>,
    /// Series by a hash of their interned strings' addresses; the `u64` is the generation last
    /// seen in.
    series: HashMap<u64, Vec<(Arc<Series>, u64)>>,
    hasher: std::collections::hash_map::RandomState,
    generation: u64,
    scratch: Vec<Label>,
}

impl SeriesTable {
    /// The series of `labels` (`__name__` becomes the series' name, empty when absent): the
    /// one returned before when it exists, a new one (with a fresh id) otherwise.
    pub fn series<'a>(
        &mut self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Arc<Series> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut name: Arc<str> = self.intern("");
        for (k, v) in labels {
            if k == NAME_LABEL {
                name = self.intern(v);
            } else {
                scratch.push((self.intern(k), self.intern(v)));
            }
        }
        scratch.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut h = self.hasher.build_hasher();
        h.write_usize(Arc::as_ptr(&name).cast::<u8>() as usize);
        for (k, v) in &scratch {
            h.write_usize(Arc::as_ptr(k).cast::<u8>() as usize);
            h.write_usize(Arc::as_ptr(v).cast::<u8>() as usize);
        }
        let key = h.finish();
        let generation = self.generation;
        let bucket = self.series.entry(key).or_default();
        let same = |s: &Series| {
            Arc::ptr_eq(&s.name, &name)
                && s.labels.len() == scratch.len()
                && s.labels
                    .iter()
                    .zip(&scratch)
                    .all(|(a, b)| Arc::ptr_eq(&a.0, &b.0) && Arc::ptr_eq(&a.1, &b.1))
        };
        let found = match bucket.iter_mut().find(|(s, _)| same(s)) {
            Some((s, seen)) => {
                *seen = generation;
                s.clone()
            }
            None => {
                let s = Series::new(name, std::mem::take(&mut scratch));
                bucket.push((s.clone(), generation));
                s
            }
        };
        self.scratch = scratch;
        found
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        match self.strings.get(s) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = s.into();
                self.strings.insert(a.clone());
                a
            }
        }
    }

    /// Ends a run: forgets the series not returned since the previous `sweep`, and the strings
    /// only they used.
    pub fn sweep(&mut self) {
        let generation = self.generation;
        self.series.retain(|_, bucket| {
            bucket.retain(|(_, seen)| *seen == generation);
            !bucket.is_empty()
        });
        self.strings.retain(|s| Arc::strong_count(s) > 1);
        self.generation += 1;
    }

    /// Number of series held.
    pub fn len(&self) -> usize {
        self.series.values().map(Vec::len).sum()
    }

    /// No series held.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Number of distinct strings held (label names and values, metric names).
    pub fn strings(&self) -> usize {
        self.strings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_while_returned_and_strings_are_shared() {
        let mut t = SeriesTable::default();
        let a = t.series([("__name__", "up"), ("pod", "p"), ("namespace", "n")]);
        let b = t.series([("namespace", "n"), ("pod", "p"), ("__name__", "up")]);
        assert_eq!(a.id, b.id);
        assert_eq!(&*a.name, "up");
        assert_eq!(a.label("namespace"), Some("n"));
        let c = t.series([("__name__", "up"), ("pod", "q"), ("namespace", "n")]);
        assert_ne!(a.id, c.id);
        assert!(
            Arc::ptr_eq(&a.labels[0].1, &c.labels[0].1),
            "namespace value shared"
        );
        let a_id = a.id;
        drop((a, b));
        t.sweep();
        // Only `c` is returned in the next run: `a` is forgotten, and comes back with a new id.
        assert_eq!(
            t.series([("pod", "q"), ("namespace", "n"), ("__name__", "up")])
                .id,
            c.id
        );
        t.sweep();
        assert_eq!(t.len(), 1);
        assert!(
            t.strings() < 6,
            "the string \"p\" was dropped: {}",
            t.strings()
        );
        assert_ne!(
            t.series([("__name__", "up"), ("pod", "p"), ("namespace", "n")])
                .id,
            a_id
        );
        let scalar = t.series([]);
        assert_eq!(&*scalar.name, "");
        assert!(scalar.labels.is_empty());
    }
}
