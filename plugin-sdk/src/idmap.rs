//! Hash maps keyed by series id, with a hash cheaper than the default SipHash (ids come from
//! the host or the plugin, not from an attacker).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A multiplicative hash for `u64` keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher(u64);

/// An odd constant close to 2^64 / φ, spreading consecutive ids over the table.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(SPREAD).rotate_left(5);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(SPREAD);
    }
}

/// A map keyed by series id.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
