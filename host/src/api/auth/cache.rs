//! A bounded cache of review answers with a deadline per entry, keyed by a SHA-256 digest of
//! what was asked (so a cached lookup allocates nothing and no token is kept).

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::clock::Millis;

/// A cache key: SHA-256 of the length-prefixed fields fed to a [`KeyHasher`].
pub type Key = [u8; 32];

/// Builds a [`Key`] from fields; each field is length-prefixed so `("ab", "c")` and
/// `("a", "bc")` differ.
#[derive(Default)]
pub struct KeyHasher(Sha256);

impl KeyHasher {
    /// Adds one field.
    pub fn field(&mut self, value: &str) -> &mut Self {
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value.as_bytes());
        self
    }

    /// The key.
    pub fn finish(self) -> Key {
        self.0.finalize().into()
    }
}

/// Entries expire at their own deadline; when full, expired entries go first, then the one
/// closest to expiring.
#[derive(Debug)]
pub struct TtlCache<V> {
    entries: Mutex<HashMap<Key, (Millis, V)>>,
    capacity: usize,
}

impl<V: Clone> TtlCache<V> {
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> TtlCache<V> {
        TtlCache {
            entries: Mutex::new(HashMap::with_capacity(capacity.min(1024))),
            capacity: capacity.max(1),
        }
    }

    /// The value for `key` if it has not expired at `now`.
    pub fn get(&self, key: &Key, now: Millis) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(deadline, _)| *deadline > now)
            .map(|(_, v)| v.clone())
    }

    /// Stores `value` until `deadline`.
    pub fn insert(&self, key: Key, value: V, deadline: Millis, now: Millis) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (d, _)| *d > now);
            if entries.len() >= self.capacity {
                let soonest = entries.iter().min_by_key(|(_, (d, _))| *d).map(|(k, _)| *k);
                if let Some(k) = soonest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, (deadline, value));
    }

    /// Entries held (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        let mut h = KeyHasher::default();
        h.field(s);
        h.finish()
    }

    #[test]
    fn fields_are_delimited() {
        let mut a = KeyHasher::default();
        a.field("ab").field("c");
        let mut b = KeyHasher::default();
        b.field("a").field("bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn entries_expire_at_their_deadline() {
        let cache = TtlCache::new(10);
        cache.insert(key("a"), true, 1_000, 0);
        cache.insert(key("b"), false, 500, 0);
        assert_eq!(cache.get(&key("a"), 499), Some(true));
        assert_eq!(cache.get(&key("b"), 499), Some(false));
        assert_eq!(cache.get(&key("b"), 500), None);
        assert_eq!(cache.get(&key("a"), 999), Some(true));
        assert_eq!(cache.get(&key("a"), 1_000), None);
    }

    #[test]
    fn size_is_bounded() {
        let cache = TtlCache::new(3);
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            cache.insert(key(name), i, 100 + i as i64, 0);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(
            cache.get(&key("a"), 0),
            None,
            "the entry closest to expiring goes"
        );
        assert_eq!(cache.get(&key("d"), 0), Some(3));
        // Expired entries are dropped before live ones.
        cache.insert(key("e"), 9, 1_000, 101);
        assert_eq!(cache.get(&key("b"), 100), None, "expired at 101, evicted");
        assert_eq!(cache.get(&key("c"), 101), Some(2));
        assert_eq!(cache.get(&key("e"), 101), Some(9));
    }
}
