//! What a run sends: operation mixes (YCSB core workloads A–F or a custom
//! `--mix`), key names, values (fixed or ranged sizes) and, for
//! `--verify`, self-checking values.

use crate::net::dist::Distribution;
use crate::BenchError;
use rand::Rng;

/// One kind of operation; each protocol driver maps it to its own request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// Read one key (RESP GET).
    Get,
    /// Overwrite one existing key (RESP SET).
    Set,
    /// Write a new key past the key space (RESP SET).
    Insert,
    /// Read a short range of keys (RESP MGET of consecutive keys).
    Scan,
    /// Read a key, then write it (one round trip).
    Rmw,
    /// Delete one key (RESP DEL).
    Del,
}

/// Every operation kind, in report order.
pub const OP_KINDS: [OpKind; 6] = [
    OpKind::Get,
    OpKind::Set,
    OpKind::Insert,
    OpKind::Scan,
    OpKind::Rmw,
    OpKind::Del,
];

impl OpKind {
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Set => "set",
            OpKind::Insert => "insert",
            OpKind::Scan => "scan",
            OpKind::Rmw => "rmw",
            OpKind::Del => "del",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    fn parse(s: &str) -> Option<OpKind> {
        Some(match s.to_ascii_lowercase().as_str() {
            "get" | "read" => OpKind::Get,
            "set" | "update" | "write" => OpKind::Set,
            "insert" => OpKind::Insert,
            "scan" => OpKind::Scan,
            "rmw" | "readmodifywrite" => OpKind::Rmw,
            "del" | "delete" => OpKind::Del,
            _ => return None,
        })
    }

    /// Whether the operation writes a value.
    pub fn writes(self) -> bool {
        matches!(self, OpKind::Set | OpKind::Insert | OpKind::Rmw)
    }
}

/// Weighted operation kinds.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// (kind, cumulative weight), weights summing to `total`.
    cumulative: Vec<(OpKind, u32)>,
    total: u32,
}

impl Mix {
    /// Parses `get:80,set:20` (weights are relative, any positive integers).
    pub fn parse(text: &str) -> Result<Mix, BenchError> {
        let mut cumulative = Vec::new();
        let mut total = 0u32;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once(':')
                .ok_or_else(|| BenchError::Invalid(format!("--mix: {part:?} is not OP:WEIGHT")))?;
            let kind = OpKind::parse(name.trim()).ok_or_else(|| {
                BenchError::Invalid(format!(
                    "--mix: unknown operation {name:?}; known: get, set, insert, scan, rmw, del"
                ))
            })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| BenchError::Invalid(format!("--mix: weight of {name:?} is not a number")))?;
            if weight == 0 {
                continue;
            }
            total = total
                .checked_add(weight)
                .ok_or_else(|| BenchError::Invalid("--mix: weights too large".into()))?;
            cumulative.push((kind, total));
        }
        if total == 0 {
            return Err(BenchError::Invalid(format!("--mix {text:?} has no operation")));
        }
        Ok(Mix { cumulative, total })
    }

    pub fn choose(&self, rng: &mut impl Rng) -> OpKind {
        if self.cumulative.len() == 1 {
            return self.cumulative[0].0;
        }
        let x = rng.gen_range(0..self.total);
        for &(kind, upto) in &self.cumulative {
            if x < upto {
                return kind;
            }
        }
        self.cumulative[self.cumulative.len() - 1].0
    }

    pub fn contains(&self, kind: OpKind) -> bool {
        self.cumulative.iter().any(|(k, _)| *k == kind)
    }

    /// `get:80,set:20`, normalized.
    pub fn describe(&self) -> String {
        let mut prev = 0;
        let mut parts = Vec::new();
        for &(kind, upto) in &self.cumulative {
            parts.push(format!("{}:{}", kind.name(), upto - prev));
            prev = upto;
        }
        parts.join(",")
    }
}

/// YCSB's core workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Ycsb {
    /// Update heavy: 50% reads, 50% updates, zipfian.
    A,
    /// Read mostly: 95% reads, 5% updates, zipfian.
    B,
    /// Read only, zipfian.
    C,
    /// Read latest: 95% reads, 5% inserts, latest.
    D,
    /// Short ranges: 95% scans (1–100 keys), 5% inserts, zipfian.
    E,
    /// Read-modify-write: 50% reads, 50% read-modify-writes, zipfian.
    F,
}

impl Ycsb {
    pub fn mix(self) -> &'static str {
        match self {
            Ycsb::A => "get:50,set:50",
            Ycsb::B => "get:95,set:5",
            Ycsb::C => "get:100",
            Ycsb::D => "get:95,insert:5",
            Ycsb::E => "scan:95,insert:5",
            Ycsb::F => "get:50,rmw:50",
        }
    }

    pub fn distribution(self) -> Distribution {
        match self {
            Ycsb::D => Distribution::Latest,
            _ => Distribution::Zipfian,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Ycsb::A => "ycsb-a",
            Ycsb::B => "ycsb-b",
            Ycsb::C => "ycsb-c",
            Ycsb::D => "ycsb-d",
            Ycsb::E => "ycsb-e",
            Ycsb::F => "ycsb-f",
        }
    }
}

/// Value sizes: `100` or `100-1000` (uniform in the range, bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSize {
    pub min: usize,
    pub max: usize,
}

/// The largest value a run sends.
pub const VALUE_SIZE_BYTES_MAX: usize = 64 << 20;

impl ValueSize {
    pub fn parse(text: &str) -> Result<ValueSize, BenchError> {
        let bad = || BenchError::Invalid(format!("--value-size {text:?}: expected BYTES or MIN-MAX"));
        let (min, max) = match text.split_once('-') {
            Some((a, b)) => (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ),
            None => {
                let n = text.trim().parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        if min > max || max > VALUE_SIZE_BYTES_MAX {
            return Err(BenchError::Invalid(format!(
                "--value-size {text:?}: need MIN <= MAX <= {VALUE_SIZE_BYTES_MAX}"
            )));
        }
        Ok(ValueSize { min, max })
    }

    pub fn choose(&self, rng: &mut impl Rng) -> usize {
        if self.min == self.max {
            self.min
        } else {
            rng.gen_range(self.min..=self.max)
        }
    }

    pub fn describe(&self) -> String {
        if self.min == self.max {
            format!("{} B", self.min)
        } else {
            format!("{}-{} B", self.min, self.max)
        }
    }
}

/// Appends the name of key `id`: the prefix, then at least 12 digits
/// (redis-benchmark's `key:000000000042` shape).
pub fn write_key(out: &mut Vec<u8>, prefix: &[u8], id: u64) {
    out.extend_from_slice(prefix);
    let digits = decimal_digits(id);
    out.resize(out.len() + KEY_DIGITS_MIN.saturating_sub(digits), b'0');
    crate::net::resp::push_decimal(out, id);
}

/// Fewest digits of a key name's number (zero-padded).
const KEY_DIGITS_MIN: usize = 12;

/// Digits of `n` in decimal.
fn decimal_digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Length of the name of key `id`.
pub fn key_len(prefix: &[u8], id: u64) -> usize {
    prefix.len() + decimal_digits(id).max(KEY_DIGITS_MIN)
}

/// Bytes of the self-checking header: `#` + 16 hex key id + 8 hex stamp + `#`.
pub const VERIFY_HEADER_BYTES: usize = 26;

/// Values: slices of one random printable buffer, or, with `--verify`,
/// values that carry their key and a stamp and whose filler is derived
/// from both, so a read can check it got what some writer of that key
/// wrote.
#[derive(Debug)]
pub struct Values {
    filler: Vec<u8>,
}

fn filler_byte(state: &mut u64) -> u8 {
    // xorshift64*
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    let x = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
    b'a' + ((x >> 59) as u8 % 26)
}

fn seed_of(key: u64, stamp: u32) -> u64 {
    crate::net::dist::fnv1a64(key ^ ((stamp as u64) << 32 | stamp as u64)) | 1
}

/// Why a value read back is not one that was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadValue {
    Short,
    Header,
    OtherKey { expected: u64, found: u64 },
    Filler { offset: usize },
    Size { len: usize },
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadValue::Short => write!(f, "value too short to carry the verify header"),
            BadValue::Header => write!(f, "value does not start with the verify header"),
            BadValue::OtherKey { expected, found } => {
                write!(f, "value written for key {found}, read as key {expected}")
            }
            BadValue::Filler { offset } => write!(f, "value corrupted at byte {offset}"),
            BadValue::Size { len } => write!(f, "value of {len} bytes does not match its recorded size"),
        }
    }
}

impl Values {
    pub fn new(max: usize, rng: &mut impl Rng) -> Values {
        let mut state: u64 = rng.gen::<u64>() | 1;
        Values {
            filler: (0..max.max(1)).map(|_| filler_byte(&mut state)).collect(),
        }
    }

    /// A plain value of `len` bytes.
    pub fn plain(&self, len: usize) -> &[u8] {
        &self.filler[..len.min(self.filler.len())]
    }

    /// Appends the self-checking value of `len` bytes for `key`, `stamp`.
    pub fn write_checked(out: &mut Vec<u8>, key: u64, stamp: u32, len: usize) {
        assert!(len >= VERIFY_HEADER_BYTES, "checked values hold their header");
        let start = out.len();
        use std::io::Write;
        let _ = write!(out, "#{key:016x}{stamp:08x}#");
        debug_assert_eq!(out.len() - start, VERIFY_HEADER_BYTES);
        let mut state = seed_of(key, stamp);
        for _ in VERIFY_HEADER_BYTES..len {
            out.push(filler_byte(&mut state));
        }
    }

    /// Checks a value read for `key`.
    pub fn check(value: &[u8], key: u64, size: ValueSize) -> Result<(), BadValue> {
        if value.len() < VERIFY_HEADER_BYTES {
            return Err(BadValue::Short);
        }
        if value[0] != b'#' || value[VERIFY_HEADER_BYTES - 1] != b'#' {
            return Err(BadValue::Header);
        }
        let hex = |b: &[u8]| {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| u64::from_str_radix(s, 16).ok())
        };
        let found = hex(&value[1..17]).ok_or(BadValue::Header)?;
        let stamp = hex(&value[17..25]).ok_or(BadValue::Header)? as u32;
        if found != key {
            return Err(BadValue::OtherKey { expected: key, found });
        }
        if value.len() < size.min || value.len() > size.max {
            return Err(BadValue::Size { len: value.len() });
        }
        let mut state = seed_of(key, stamp);
        for (i, &b) in value[VERIFY_HEADER_BYTES..].iter().enumerate() {
            if b != filler_byte(&mut state) {
                return Err(BadValue::Filler {
                    offset: VERIFY_HEADER_BYTES + i,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn mix_parses_and_keeps_its_proportions() {
        let mix = Mix::parse("get:80, set:20").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mix.describe(), "get:80,set:20");
        let mut rng = SmallRng::seed_from_u64(7);
        let gets = (0..100_000).filter(|_| mix.choose(&mut rng) == OpKind::Get).count();
        assert!((78_000..82_000).contains(&gets), "{gets}");
        assert!(Mix::parse("get:1,frob:2").is_err());
        assert!(Mix::parse("get").is_err());
        assert!(Mix::parse("get:0").is_err());
        for w in [Ycsb::A, Ycsb::B, Ycsb::C, Ycsb::D, Ycsb::E, Ycsb::F] {
            assert!(Mix::parse(w.mix()).is_ok());
        }
    }

    #[test]
    fn keys_are_zero_padded_like_redis_benchmark() {
        let mut out = Vec::new();
        write_key(&mut out, b"key:", 42);
        assert_eq!(out, b"key:000000000042");
        assert_eq!(key_len(b"key:", 42), out.len());
        out.clear();
        write_key(&mut out, b"k", 1_234_567_890_123);
        assert_eq!(out, b"k1234567890123");
        assert_eq!(key_len(b"k", 1_234_567_890_123), out.len());
        out.clear();
        write_key(&mut out, b"", 0);
        assert_eq!(out, b"000000000000");
    }

    #[test]
    fn value_sizes_parse() {
        assert_eq!(ValueSize::parse("100").ok(), Some(ValueSize { min: 100, max: 100 }));
        assert_eq!(ValueSize::parse("10-20").ok(), Some(ValueSize { min: 10, max: 20 }));
        assert!(ValueSize::parse("20-10").is_err());
        assert!(ValueSize::parse("x").is_err());
    }

    #[test]
    fn checked_values_round_trip_and_catch_damage() {
        let size = ValueSize { min: 26, max: 200 };
        let mut v = Vec::new();
        Values::write_checked(&mut v, 77, 0xdead_beef, 100);
        assert_eq!(v.len(), 100);
        assert_eq!(Values::check(&v, 77, size), Ok(()));
        assert_eq!(
            Values::check(&v, 78, size),
            Err(BadValue::OtherKey {
                expected: 78,
                found: 77
            })
        );
        let mut bad = v.clone();
        bad[50] = if bad[50] == b'a' { b'b' } else { b'a' };
        assert_eq!(Values::check(&bad, 77, size), Err(BadValue::Filler { offset: 50 }));
        assert_eq!(Values::check(b"hello", 77, size), Err(BadValue::Short));
    }
}
