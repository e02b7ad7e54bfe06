//! The one hash of everything named across processes (Redis entry keys, partition stripes): XXH3 with a
//! fixed seed over an explicit little-endian byte encoding, so every build, Rust version and platform
//! computes the same value. (std's `DefaultHasher` promises no stable algorithm, and derived `Hash` impls
//! promise no stable byte stream.) Changing the encoding means bumping the Redis format version.

use xxhash_rust::xxh3::{xxh3_64_with_seed, xxh3_128_with_seed};

/// The fixed seed ("botdb" in ASCII).
const SEED: u64 = 0x62_6f_74_64_62;

/// Bytes to be hashed, written field by field in a fixed encoding.
#[derive(Debug, Default)]
pub(crate) struct StableHasher {
    buf: Vec<u8>,
}

/// Values with a specified byte encoding for [`StableHasher`].
pub(crate) trait StableHash {
    /// Appends this value's encoding.
    fn stable_hash(&self, h: &mut StableHasher);
}

impl StableHasher {
    /// An empty encoder.
    pub(crate) fn new() -> StableHasher {
        StableHasher { buf: Vec::with_capacity(128) }
    }

    /// One byte (tags, booleans).
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// A 64-bit integer, little-endian.
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A length-prefixed string (so `"ab","c"` and `"a","bc"` differ).
    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    /// A value with a stable encoding.
    pub(crate) fn add(&mut self, v: &impl StableHash) -> &mut Self {
        v.stable_hash(self);
        self
    }

    /// The 128-bit hash of everything written.
    pub(crate) fn finish128(&self) -> u128 {
        xxh3_128_with_seed(&self.buf, SEED)
    }
}

/// The 64-bit hash of `bytes`.
pub(crate) fn hash64(bytes: &[u8]) -> u64 {
    xxh3_64_with_seed(bytes, SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_pinned() {
        // XXH3 is specified: these values may never change without a new Redis format version.
        assert_eq!(hash64(b"chat-1"), 0xdc46_9d21_398c_e2e8);
        let mut h = StableHasher::new();
        h.u8(1).u64(7).str("messages");
        assert_eq!(h.finish128(), 0x3de0_4f71_ac07_dd8d_80b4_adcf_7f96_37c4);
    }
}
