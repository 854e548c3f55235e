//! Interned series of Prometheus results: label names and values are shared strings, and a
//! series keeps its id across cycles while it keeps being returned, so plugins are told of it
//! once and of its disappearance once.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use crate::samples::{Label, Series};

/// The label that holds a series' metric name.
pub const NAME_LABEL: &str = "__name__";

/// The strings of the source's series, shared by the tables of all its inputs: the label values
/// that many queries return (pod names, namespaces) are held once, not once per query.
#[derive(Debug, Clone, Default)]
pub struct Strings(Arc<Mutex<HashSet<Arc<str>>>>);

impl Strings {
    /// The shared copy of `s`.
    fn intern(&self, s: &str) -> Arc<str> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match set.get(s) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = s.into();
                set.insert(a.clone());
                a
            }
        }
    }

    /// Forgets the strings no series holds any longer: once per cycle, after every table's
    /// [`SeriesTable::sweep`] (a pass over every string of the backend).
    pub fn sweep(&self) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.retain(|s| Arc::strong_count(s) > 1);
    }

    /// Number of distinct strings held.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// No strings held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The series of one hash, with the generation each was last seen in: nearly always one, so
/// without an allocation of its own.
#[derive(Debug)]
enum Bucket {
    One(Arc<Series>, u64),
    Many(Vec<(Arc<Series>, u64)>),
}

/// Series of one Prometheus input (a query or a selector), interned across its runs.
#[derive(Debug, Default)]
pub struct SeriesTable {
    strings: Strings,
    /// Series by a hash of their interned strings' addresses.
    series: HashMap<u64, Bucket>,
    hasher: std::collections::hash_map::RandomState,
    generation: u64,
    scratch: Vec<Label>,
    /// Every series hashes alike (tests of colliding hashes).
    #[cfg(test)]
    collide: bool,
}

impl SeriesTable {
    /// An empty table interning its strings in `strings`.
    pub fn new(strings: Strings) -> SeriesTable {
        SeriesTable {
            strings,
            ..SeriesTable::default()
        }
    }

    /// The series of `labels` (`__name__` becomes the series' name, empty when absent): the
    /// one returned before when it exists, a new one (with a fresh id) otherwise.
    pub fn series<'a>(
        &mut self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Arc<Series> {
        self.series_in_run(labels).0
    }

    /// [`SeriesTable::series`], and whether this is its first return since the last
    /// [`SeriesTable::sweep`].
    pub fn series_in_run<'a>(
        &mut self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (Arc<Series>, bool) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut name: Arc<str> = self.strings.intern("");
        for (k, v) in labels {
            if k == NAME_LABEL {
                name = self.strings.intern(v);
            } else {
                scratch.push((self.strings.intern(k), self.strings.intern(v)));
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
        #[cfg(test)]
        let key = if self.collide { 0 } else { key };
        let generation = self.generation;
        let same = |s: &Series| {
            Arc::ptr_eq(&s.name, &name)
                && s.labels.len() == scratch.len()
                && s.labels
                    .iter()
                    .zip(&scratch)
                    .all(|(a, b)| Arc::ptr_eq(&a.0, &b.0) && Arc::ptr_eq(&a.1, &b.1))
        };
        let bucket = self.series.get_mut(&key);
        let mark = |s: &Arc<Series>, seen: &mut u64| {
            let first = *seen != generation;
            *seen = generation;
            (s.clone(), first)
        };
        let found = match bucket {
            Some(Bucket::One(s, seen)) if same(s) => Some(mark(s, seen)),
            Some(Bucket::Many(list)) => list
                .iter_mut()
                .find(|(s, _)| same(s))
                .map(|(s, seen)| mark(s, seen)),
            _ => None,
        };
        let found = match found {
            Some(found) => found,
            None => {
                let s = Series::new(name, std::mem::take(&mut scratch));
                let entry = (s.clone(), generation);
                match self.series.entry(key) {
                    Entry::Vacant(e) => {
                        e.insert(Bucket::One(entry.0, entry.1));
                    }
                    Entry::Occupied(mut e) => match e.get_mut() {
                        Bucket::Many(list) => list.push(entry),
                        Bucket::One(other, seen) => {
                            let list = vec![(other.clone(), *seen), entry];
                            e.insert(Bucket::Many(list));
                        }
                    },
                }
                (s, true)
            }
        };
        self.scratch = scratch;
        found
    }

    /// Ends a run: forgets the series not returned since the previous `sweep` (their strings
    /// go at the next [`Strings::sweep`]).
    pub fn sweep(&mut self) {
        let generation = self.generation;
        self.series.retain(|_, bucket| match bucket {
            Bucket::One(_, seen) => *seen == generation,
            Bucket::Many(list) => {
                list.retain(|(_, seen)| *seen == generation);
                !list.is_empty()
            }
        });
        self.generation += 1;
    }

    /// Ends a run that failed part-way without forgetting anything: the series it returned
    /// count as not returned yet for the next run, and the next [`SeriesTable::sweep`] keeps
    /// only what that run returns.
    pub fn abandon(&mut self) {
        self.generation += 1;
    }

    /// Number of series held.
    pub fn len(&self) -> usize {
        self.series
            .values()
            .map(|b| match b {
                Bucket::One(..) => 1,
                Bucket::Many(list) => list.len(),
            })
            .sum()
    }

    /// No series held.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Number of distinct strings held by the table's [`Strings`] (label names and values,
    /// metric names).
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
        t.strings.sweep();
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

    #[test]
    fn series_of_colliding_hashes_keep_their_ids() {
        let strings = Strings::default();
        let mut t = SeriesTable {
            collide: true,
            ..SeriesTable::new(strings.clone())
        };
        let pods = ["a", "b", "c"];
        let first: Vec<u64> = pods.iter().map(|p| t.series([("pod", *p)]).id).collect();
        assert_eq!(t.len(), 3);
        t.sweep();
        let again: Vec<u64> = pods.iter().map(|p| t.series([("pod", *p)]).id).collect();
        assert_eq!(first, again);
        t.sweep();
        // Only "b" is returned: the others are forgotten, "b" keeps its id.
        assert_eq!(t.series([("pod", "b")]).id, first[1]);
        t.sweep();
        assert_eq!(t.len(), 1);
        assert_eq!(t.series([("pod", "b")]).id, first[1]);
        assert_ne!(t.series([("pod", "a")]).id, first[0]);
        // The strings are the tables' shared ones.
        let other = SeriesTable::new(strings.clone()).series([("pod", "b")]);
        assert!(Arc::ptr_eq(
            &other.labels[0].1,
            &t.series([("pod", "b")]).labels[0].1
        ));
    }
}
