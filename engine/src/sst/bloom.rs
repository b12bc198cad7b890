//! A whole-table bloom filter over user keys (RocksDB's "full filter").
//!
//! ```text
//! +----------------------------+------------+
//! | bit array (m/8 bytes)      | k: u8      |
//! +----------------------------+------------+
//! ```
//!
//! Each key is hashed once with xxh3-64; the `k` probe positions come from
//! double hashing (Kirsch-Mitzenmacher): `h1 + i * h2 mod m`, with `h1`
//! and `h2` the low and high halves of the hash.

/// Most probes per key.
pub const PROBES_MAX: u8 = 30;

/// Smallest filter (bits), so tiny tables do not get a degenerate filter.
const BITS_MIN: usize = 64;

fn key_hash(user_key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(user_key)
}

/// Probes per key for `bits_per_key`: round(bits_per_key * ln 2), clamped.
pub fn probes(bits_per_key: u32) -> u8 {
    let k = (f64::from(bits_per_key) * std::f64::consts::LN_2).round();
    k.clamp(1.0, f64::from(PROBES_MAX)) as u8
}

/// Collects key hashes and builds the filter.
#[derive(Debug, Default)]
pub struct BloomBuilder {
    bits_per_key: u32,
    hashes: Vec<u64>,
}

impl BloomBuilder {
    pub fn new(bits_per_key: u32) -> Self {
        assert!(bits_per_key > 0, "a bloom filter needs at least one bit per key");
        BloomBuilder {
            bits_per_key,
            hashes: Vec::new(),
        }
    }

    /// Adds a user key; consecutive duplicates are added once.
    pub fn add_key(&mut self, user_key: &[u8]) {
        let h = key_hash(user_key);
        if self.hashes.last() != Some(&h) {
            self.hashes.push(h);
        }
    }

    /// Bytes held while building.
    pub fn memory_bytes(&self) -> usize {
        self.hashes.capacity() * 8
    }

    /// The encoded filter.
    pub fn finish(&self) -> Vec<u8> {
        let k = probes(self.bits_per_key);
        let bits = (self.hashes.len() * self.bits_per_key as usize).max(BITS_MIN);
        let bytes = bits.div_ceil(8);
        let bits = bytes * 8;
        let mut out = vec![0u8; bytes + 1];
        for &h in &self.hashes {
            for bit in probe_positions(h, k, bits) {
                out[bit / 8] |= 1 << (bit % 8);
            }
        }
        out[bytes] = k;
        out
    }
}

fn probe_positions(h: u64, k: u8, bits: usize) -> impl Iterator<Item = usize> {
    let h1 = h & 0xffff_ffff;
    let h2 = (h >> 32) | 1;
    let m = bits as u64;
    (0..u64::from(k)).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
}

/// A decoded filter.
#[derive(Debug, Clone)]
pub struct BloomFilter {
    bits: Vec<u8>,
    k: u8,
}

impl BloomFilter {
    /// Decodes a filter; `None` if the bytes cannot be one.
    pub fn decode(mut data: Vec<u8>) -> Option<BloomFilter> {
        let k = data.pop()?;
        if k == 0 || k > PROBES_MAX || data.is_empty() {
            return None;
        }
        Some(BloomFilter { bits: data, k })
    }

    /// False means the key is certainly absent.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        let bits = self.bits.len() * 8;
        probe_positions(key_hash(user_key), self.k, bits).all(|bit| self.bits[bit / 8] & (1 << (bit % 8)) != 0)
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.bits.len() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_count() {
        assert_eq!(probes(10), 7);
        assert_eq!(probes(1), 1);
        assert_eq!(probes(100), PROBES_MAX);
    }

    #[test]
    fn no_false_negatives_and_fpr_near_theory() {
        for (bits_per_key, expected) in [(10u32, 0.0082f64), (5, 0.094)] {
            let n = 20_000;
            let mut b = BloomBuilder::new(bits_per_key);
            for i in 0..n {
                b.add_key(format!("key-{i}").as_bytes());
            }
            let f = BloomFilter::decode(b.finish()).unwrap();
            for i in 0..n {
                assert!(f.may_contain(format!("key-{i}").as_bytes()));
            }
            let probes = 100_000;
            let fp = (0..probes)
                .filter(|i| f.may_contain(format!("other-{i}").as_bytes()))
                .count();
            let rate = fp as f64 / probes as f64;
            assert!(
                rate < expected * 1.5 && rate > expected / 2.0,
                "{bits_per_key} bits/key: fpr {rate}, theory {expected}"
            );
        }
    }

    #[test]
    fn hostile_filters() {
        assert!(BloomFilter::decode(vec![]).is_none());
        assert!(BloomFilter::decode(vec![7]).is_none());
        assert!(BloomFilter::decode(vec![0xff, 0]).is_none());
        assert!(BloomFilter::decode(vec![0xff, 31]).is_none());
        let f = BloomFilter::decode(vec![0xff, 3]).unwrap();
        assert!(f.may_contain(b"anything"));
    }
}
