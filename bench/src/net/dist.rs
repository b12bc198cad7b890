//! Key distributions, as YCSB defines them: uniform, zipfian (scrambled
//! or not), latest, sequential. Pure and seeded; the statistical tests at
//! the bottom check each against its formula.

use rand::Rng;

/// Which keys a run touches, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every key equally often.
    Uniform,
    /// Zipfian over the key space, hot keys scattered by a hash (YCSB's ScrambledZipfian).
    Zipfian,
    /// Zipfian with the hot keys at the start of the key space (not scrambled).
    ZipfianRanked,
    /// The most recently inserted keys most often (YCSB's SkewedLatest).
    Latest,
    /// Each connection walks the key space in order.
    Sequential,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
            Distribution::ZipfianRanked => "zipfian-ranked",
            Distribution::Latest => "latest",
            Distribution::Sequential => "sequential",
        }
    }
}

/// `sum(1 / i^theta)` for `i` in `from+1 ..= to`.
fn zeta_range(from: u64, to: u64, theta: f64) -> f64 {
    let mut sum = 0.0;
    for i in from..to {
        sum += 1.0 / ((i + 1) as f64).powf(theta);
    }
    sum
}

/// YCSB's ZipfianGenerator (Gray et al., "Quickly generating
/// billion-record synthetic databases"): rank 0 is the most popular, with
/// probability `1 / zeta(n, theta)`; rank `i` is `(i+1)^-theta` as likely.
/// The item count can grow (for `latest`); the zeta sum is extended, not
/// recomputed.
#[derive(Debug, Clone)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zeta2: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    /// Panics unless `items >= 1` and `0 < theta < 1` (callers validate input).
    pub fn new(items: u64, theta: f64) -> Zipfian {
        assert!(items >= 1, "a zipfian needs at least one item");
        assert!(theta > 0.0 && theta < 1.0, "zipfian theta must be in (0, 1)");
        let zeta2 = zeta_range(0, 2, theta);
        let zetan = zeta_range(0, items, theta);
        let mut z = Zipfian {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta2,
            zetan,
            eta: 0.0,
        };
        z.eta = z.eta_for();
        z
    }

    fn eta_for(&self) -> f64 {
        (1.0 - (2.0 / self.items as f64).powf(1.0 - self.theta)) / (1.0 - self.zeta2 / self.zetan)
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    /// Grows the item count to `items` (never shrinks).
    pub fn grow(&mut self, items: u64) {
        if items > self.items {
            self.zetan += zeta_range(self.items, items, self.theta);
            self.items = items;
            self.eta = self.eta_for();
        }
    }

    /// The probability of rank 0.
    pub fn top_probability(&self) -> f64 {
        1.0 / self.zetan
    }

    /// A rank in `0..items`.
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.gen();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        let r = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.items - 1)
    }
}

/// FNV-1a over the 8 bytes of `x` (YCSB scrambles zipfian ranks with FNV).
pub fn fnv1a64(x: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in x.to_le_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Chooses keys for one connection.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    dist: Distribution,
    /// Keys `0..keyspace` exist from the start (or after preload).
    keyspace: u64,
    zipf: Option<Zipfian>,
    /// Sequential: the next key and the stride (connections interleave).
    next: u64,
    stride: u64,
}

impl KeyChooser {
    /// `zipf` is built once per run (its zeta sum costs O(keyspace)) and
    /// cloned per connection. `conn_index`/`conn_count` interleave the
    /// sequential walks.
    pub fn new(
        dist: Distribution,
        keyspace: u64,
        zipf: Option<Zipfian>,
        conn_index: u64,
        conn_count: u64,
    ) -> KeyChooser {
        assert!(keyspace >= 1, "a key space of at least one key");
        if matches!(
            dist,
            Distribution::Zipfian | Distribution::ZipfianRanked | Distribution::Latest
        ) {
            assert!(zipf.is_some(), "skewed distributions come with their zipfian");
        }
        KeyChooser {
            dist,
            keyspace,
            zipf,
            next: conn_index % keyspace,
            stride: conn_count.max(1),
        }
    }

    /// A key id for a read, update, delete or scan start. `inserted` is
    /// how many keys were inserted past the key space so far (for `latest`).
    pub fn choose(&mut self, rng: &mut impl Rng, inserted: u64) -> u64 {
        match self.dist {
            Distribution::Uniform => rng.gen_range(0..self.keyspace),
            Distribution::Zipfian => {
                let rank = self.zipf.as_ref().map_or(0, |z| z.sample(rng));
                fnv1a64(rank) % self.keyspace
            }
            Distribution::ZipfianRanked => self.zipf.as_ref().map_or(0, |z| z.sample(rng)),
            Distribution::Latest => {
                let max = self.keyspace + inserted;
                let Some(z) = self.zipf.as_mut() else { return max - 1 };
                z.grow(max);
                max - 1 - z.sample(rng).min(max - 1)
            }
            Distribution::Sequential => {
                let k = self.next;
                self.next = (self.next + self.stride) % self.keyspace;
                k
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    const SAMPLES: usize = 400_000;

    fn counts(chooser: &mut KeyChooser, n: usize, inserted: u64) -> Vec<u64> {
        let mut rng = SmallRng::seed_from_u64(42);
        let mut c = vec![0u64; n];
        for _ in 0..SAMPLES {
            c[chooser.choose(&mut rng, inserted) as usize] += 1;
        }
        c
    }

    fn close(actual: f64, expected: f64, rel: f64) -> bool {
        (actual - expected).abs() <= rel * expected
    }

    #[test]
    fn zipfian_ranks_follow_the_power_law() {
        let n = 1000u64;
        let theta = 0.99;
        let z = Zipfian::new(n, theta);
        let zetan: f64 = (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum();
        assert!(close(z.top_probability(), 1.0 / zetan, 1e-9));
        let mut k = KeyChooser::new(Distribution::ZipfianRanked, n, Some(z), 0, 1);
        let c = counts(&mut k, n as usize, 0);
        // Ranks 0 and 1 are exact by construction (Gray et al.).
        for rank in [0usize, 1] {
            let expected = SAMPLES as f64 / ((rank + 1) as f64).powf(theta) / zetan;
            assert!(
                close(c[rank] as f64, expected, 0.05),
                "rank {rank}: {} samples, expected about {expected:.0}",
                c[rank]
            );
        }
        // Beyond them the generator approximates the power law: each decade
        // of ranks carries about its share of the mass.
        let mass = |from: usize, to: usize| (from + 1..=to).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>() / zetan;
        for (from, to) in [(2usize, 10usize), (10, 100), (100, 1000)] {
            let seen = c[from..to].iter().sum::<u64>() as f64 / SAMPLES as f64;
            let expected = mass(from, to);
            assert!(
                close(seen, expected, 0.2),
                "ranks {from}..{to}: {seen:.4} of the samples, expected about {expected:.4}"
            );
        }
        // And popularity falls with rank.
        assert!(c[0] > c[1] && c[1] > c[5] && c[5] > c[50] && c[50] > c[500]);
    }

    #[test]
    fn zipfian_theta_changes_the_skew() {
        let n = 1000u64;
        for theta in [0.5, 0.8] {
            let z = Zipfian::new(n, theta);
            let zetan: f64 = (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum();
            let mut k = KeyChooser::new(Distribution::ZipfianRanked, n, Some(z), 0, 1);
            let c = counts(&mut k, n as usize, 0);
            let expected = SAMPLES as f64 / zetan;
            assert!(
                close(c[0] as f64, expected, 0.1),
                "theta {theta}: {} vs {expected:.0}",
                c[0]
            );
        }
    }

    #[test]
    fn scrambled_zipfian_keeps_the_skew_and_scatters_hot_keys() {
        let n = 1000u64;
        let z = Zipfian::new(n, 0.99);
        let top = z.top_probability();
        let mut k = KeyChooser::new(Distribution::Zipfian, n, Some(z), 0, 1);
        let mut c = counts(&mut k, n as usize, 0);
        let hottest = c.iter().enumerate().max_by_key(|(_, n)| **n).map(|(i, _)| i);
        assert_eq!(
            hottest,
            Some((fnv1a64(0) % n) as usize),
            "rank 0 hashes to the hottest key"
        );
        c.sort_unstable_by(|a, b| b.cmp(a));
        // Hash collisions can only add to the hottest key.
        assert!(c[0] as f64 >= 0.94 * top * SAMPLES as f64);
        // Hot keys are scattered, not the first few ids.
        let mut rng = SmallRng::seed_from_u64(1);
        let firsts: Vec<u64> = (0..10).map(|_| k.choose(&mut rng, 0)).collect();
        assert!(firsts.iter().any(|&key| key >= 10), "{firsts:?}");
    }

    #[test]
    fn latest_prefers_the_newest_keys_and_follows_inserts() {
        let n = 1000u64;
        let z = Zipfian::new(n, 0.99);
        let top = z.top_probability();
        let mut k = KeyChooser::new(Distribution::Latest, n, Some(z), 0, 1);
        let c = counts(&mut k, n as usize, 0);
        assert!(
            close(c[999] as f64, top * SAMPLES as f64, 0.06),
            "{} samples of the newest",
            c[999]
        );
        assert!(c[998] > c[990] && c[990] > c[900], "popularity falls with age");
        // After 500 inserts the newest key is 1499.
        let c = counts(&mut k, 1500, 500);
        let hottest = c.iter().enumerate().max_by_key(|(_, n)| **n).map(|(i, _)| i);
        assert_eq!(hottest, Some(1499));
    }

    #[test]
    fn uniform_covers_the_key_space_evenly() {
        let n = 100u64;
        let mut k = KeyChooser::new(Distribution::Uniform, n, None, 0, 1);
        let c = counts(&mut k, n as usize, 0);
        let expected = SAMPLES as f64 / n as f64;
        let chi2: f64 = c.iter().map(|&o| (o as f64 - expected).powi(2) / expected).sum();
        // 99 degrees of freedom: the 99.99th percentile is about 160.
        assert!(chi2 < 160.0, "chi-square {chi2}");
    }

    #[test]
    fn sequential_connections_interleave_and_wrap() {
        let mut rng = SmallRng::seed_from_u64(0);
        let mut a = KeyChooser::new(Distribution::Sequential, 5, None, 0, 2);
        let mut b = KeyChooser::new(Distribution::Sequential, 5, None, 1, 2);
        let ka: Vec<u64> = (0..4).map(|_| a.choose(&mut rng, 0)).collect();
        let kb: Vec<u64> = (0..3).map(|_| b.choose(&mut rng, 0)).collect();
        assert_eq!(ka, [0, 2, 4, 1]);
        assert_eq!(kb, [1, 3, 0]);
    }
}
