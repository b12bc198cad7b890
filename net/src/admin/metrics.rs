//! `GET /metrics`: the Prometheus text exposition format, version 0.0.4.
//!
//! Each family is written once, `# HELP` and `# TYPE` first, then its samples
//! for every shard (label `shard`). Latency comes from each shard's
//! hdrhistogram in microseconds and is exposed in seconds as the histogram
//! `lumadb_query_duration_seconds` with the fixed buckets of
//! [`LATENCY_BUCKETS_SECONDS`]; its `_sum` is the histogram's mean times its
//! count (hdrhistogram keeps no exact sum), accurate to the histogram's
//! precision.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::report::{memory_components, MetricsReport};

pub const CONTENT_TYPE_PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histogram buckets, in seconds (100 µs to 10 s).
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Renders the whole exposition.
pub fn render(report: &MetricsReport) -> String {
    let mut w = Exposition::default();
    let shards = &report.shards;
    let shard_label = |s: usize| s.to_string();

    w.family("lumadb_up", "gauge", "1 while the server answers scrapes.");
    w.sample("lumadb_up", &[], 1);
    w.family(
        "lumadb_build_info",
        "gauge",
        "Server version, as a label; the value is always 1.",
    );
    w.sample("lumadb_build_info", &[("version", &report.version)], 1);
    w.family("lumadb_uptime_seconds", "gauge", "Seconds since the server started.");
    w.sample("lumadb_uptime_seconds", &[], report.uptime_seconds);
    w.family(
        "lumadb_log_lines_dropped_total",
        "counter",
        "Log lines dropped because the log writer fell behind.",
    );
    w.sample("lumadb_log_lines_dropped_total", &[], report.log_lines_dropped);

    w.family(
        "lumadb_requests_total",
        "counter",
        "Requests by command (method), outcome (status: ok or error) and shard.",
    );
    for s in shards {
        for c in &s.commands {
            w.sample(
                "lumadb_requests_total",
                &[
                    ("method", &c.command),
                    ("status", c.status.as_str()),
                    ("shard", &shard_label(s.shard)),
                ],
                c.count,
            );
        }
    }

    w.family(
        "lumadb_query_duration_seconds",
        "histogram",
        "Request latency from the first byte read to the reply queued, per shard.",
    );
    for s in shards {
        w.histogram("lumadb_query_duration_seconds", &shard_label(s.shard), &s.latency_us);
    }

    w.family("lumadb_cache_hits", "counter", "Cache lookups that found the entry.");
    for s in shards {
        let shard = shard_label(s.shard);
        let e = &s.engine;
        w.sample(
            "lumadb_cache_hits",
            &[("cache", "block"), ("shard", &shard)],
            e.block_cache_hits,
        );
        w.sample(
            "lumadb_cache_hits",
            &[("cache", "row"), ("shard", &shard)],
            e.row_cache_hits,
        );
    }
    w.family("lumadb_cache_requests", "counter", "Cache lookups.");
    for s in shards {
        let shard = shard_label(s.shard);
        let e = &s.engine;
        w.sample(
            "lumadb_cache_requests",
            &[("cache", "block"), ("shard", &shard)],
            e.block_cache_requests,
        );
        w.sample(
            "lumadb_cache_requests",
            &[("cache", "row"), ("shard", &shard)],
            e.row_cache_requests,
        );
    }

    w.family("lumadb_memory_bytes", "gauge", "Memory in use by component.");
    for s in shards {
        let shard = shard_label(s.shard);
        for (component, bytes) in memory_components(&s.memory) {
            w.sample(
                "lumadb_memory_bytes",
                &[("component", component), ("shard", &shard)],
                bytes,
            );
        }
    }
    w.family(
        "lumadb_memory_limit_bytes",
        "gauge",
        "Memory budget of the shard (memtables and caches as configured).",
    );
    for s in shards {
        w.sample(
            "lumadb_memory_limit_bytes",
            &[("shard", &shard_label(s.shard))],
            s.memory_limit_bytes,
        );
    }

    w.family("lumadb_connections", "gauge", "Open client connections.");
    for s in shards {
        w.sample(
            "lumadb_connections",
            &[("shard", &shard_label(s.shard))],
            s.connections_current,
        );
    }
    w.family("lumadb_connections_total", "counter", "Client connections accepted.");
    for s in shards {
        w.sample(
            "lumadb_connections_total",
            &[("shard", &shard_label(s.shard))],
            s.connections_total,
        );
    }
    w.family("lumadb_keys", "gauge", "Keys stored (estimate).");
    for s in shards {
        w.sample("lumadb_keys", &[("shard", &shard_label(s.shard))], s.keys);
    }

    type CounterField = fn(&lumadb_engine::db::Counters) -> u64;
    let counters: [(&str, &str, CounterField); 11] = [
        ("lumadb_wal_syncs_total", "WAL fdatasync calls.", |c| c.wal_syncs),
        (
            "lumadb_wal_write_groups_total",
            "WAL writes, one per commit group; writes/groups is the mean group size.",
            |c| c.write_groups,
        ),
        (
            "lumadb_wal_writes_total",
            "Write batches committed through the WAL.",
            |c| c.writes,
        ),
        ("lumadb_wal_bytes_written_total", "Bytes written to the WAL.", |c| {
            c.wal_bytes_written
        }),
        ("lumadb_user_bytes_written_total", "Bytes of user data written.", |c| {
            c.user_bytes_written
        }),
        ("lumadb_flushes_total", "Memtable flushes.", |c| c.flushes),
        ("lumadb_flush_bytes_written_total", "Bytes written by flushes.", |c| {
            c.flush_bytes_written
        }),
        ("lumadb_compactions_total", "Compactions finished.", |c| c.compactions),
        (
            "lumadb_compaction_bytes_written_total",
            "Bytes written by compactions.",
            |c| c.compaction_bytes_written,
        ),
        (
            "lumadb_tables_dropped_by_range_delete_total",
            "Tables a range delete (FLUSHALL, a deleted collection) removed whole, unread.",
            |c| c.tables_dropped_by_range_delete,
        ),
        (
            "lumadb_write_stalls_total",
            "Writes that waited for a flush or compaction.",
            |c| c.write_stalls,
        ),
    ];
    for (name, help, field) in counters {
        w.family(name, "counter", help);
        for s in shards {
            w.sample(name, &[("shard", &shard_label(s.shard))], field(&s.engine.counters));
        }
    }

    w.family(
        "lumadb_compaction_pending_bytes",
        "gauge",
        "Bytes that compaction estimates it must rewrite to bring every level under its target.",
    );
    for s in shards {
        let pending: u64 = s.engine.keyspaces.iter().map(|k| k.pending_compaction_bytes).sum();
        w.sample(
            "lumadb_compaction_pending_bytes",
            &[("shard", &shard_label(s.shard))],
            pending,
        );
    }
    w.family(
        "lumadb_write_amplification",
        "gauge",
        "Bytes written to tables (flush and compaction) per byte of user data.",
    );
    for s in shards {
        w.sample_f64(
            "lumadb_write_amplification",
            &[("shard", &shard_label(s.shard))],
            s.engine.write_amplification,
        );
    }
    w.family("lumadb_wal_segments", "gauge", "Live WAL segment files.");
    for s in shards {
        w.sample(
            "lumadb_wal_segments",
            &[("shard", &shard_label(s.shard))],
            s.engine.wal_segments as u64,
        );
    }
    w.out
}

/// Writes families and samples; keeps no state but the text.
#[derive(Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn labels(&mut self, labels: &[(&str, &str)]) {
        if labels.is_empty() {
            return;
        }
        self.out.push('{');
        for (i, (name, value)) in labels.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{name}=\"{}\"", escape_label_value(value));
        }
        self.out.push('}');
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(name);
        self.labels(labels);
        let _ = writeln!(self.out, " {value}");
    }

    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels);
        let _ = writeln!(self.out, " {}", format_f64(value));
    }

    /// Cumulative buckets, `+Inf`, `_sum` and `_count` of one shard's latency.
    fn histogram(&mut self, name: &str, shard: &str, latency_us: &Histogram<u64>) {
        let mut counts = [0u64; LATENCY_BUCKETS_SECONDS.len()];
        for v in latency_us.iter_recorded() {
            // The highest value equivalent to this one, in seconds: a value
            // lands in the first bucket whose bound covers its whole range.
            let seconds = v.value_iterated_to() as f64 / 1e6;
            if let Some(i) = LATENCY_BUCKETS_SECONDS.iter().position(|&le| seconds <= le) {
                counts[i] += v.count_since_last_iteration();
            }
        }
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (le, count) in LATENCY_BUCKETS_SECONDS.iter().zip(counts) {
            cumulative += count;
            self.sample(&bucket, &[("shard", shard), ("le", &format_f64(*le))], cumulative);
        }
        let total = latency_us.len();
        self.sample(&bucket, &[("shard", shard), ("le", "+Inf")], total);
        let sum_seconds = latency_us.mean() * total as f64 / 1e6;
        self.sample_f64(&format!("{name}_sum"), &[("shard", shard)], sum_seconds);
        self.sample(&format!("{name}_count"), &[("shard", shard)], total);
    }
}

fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Go's `strconv.ParseFloat` accepts what this writes: plain decimals (Rust
/// never uses an exponent in `Display`), `+Inf`, `-Inf` and `NaN`.
fn format_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// A checker for the text format, for tests: every line is a comment or a
/// sample that parses; every sample's family has `# TYPE` before it; a family
/// is typed once and its samples are contiguous; histogram buckets per label
/// set are cumulative, end in `+Inf`, and `+Inf` equals `_count`.
#[cfg(test)]
pub(crate) mod check {
    use std::collections::{BTreeMap, HashMap, HashSet};

    #[derive(Debug, Clone, PartialEq)]
    pub struct Sample {
        pub name: String,
        pub labels: Vec<(String, String)>,
        pub value: f64,
    }

    impl Sample {
        pub fn label(&self, name: &str) -> Option<&str> {
            self.labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    fn valid_name(s: &str) -> bool {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn parse_value(s: &str) -> Result<f64, String> {
        match s {
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            _ => s.parse::<f64>().map_err(|e| format!("bad value {s:?}: {e}")),
        }
    }

    fn parse_sample(line: &str) -> Result<Sample, String> {
        let name_end = line.find(['{', ' ']).ok_or("sample without value")?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(format!("bad metric name {name:?}"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let mut consumed = None;
            loop {
                let Some(&(i, c)) = chars.peek() else {
                    return Err("unterminated labels".into());
                };
                if c == '}' {
                    consumed = consumed.or(Some(i + 1));
                    break;
                }
                let start = i;
                while chars.peek().is_some_and(|&(_, c)| c != '=') {
                    chars.next();
                }
                let eq = chars.next().ok_or("label without =")?.0;
                let lname = &after[start..eq];
                if !valid_name(lname) || lname.starts_with("__") {
                    return Err(format!("bad label name {lname:?}"));
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err("label value not quoted".into());
                }
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        None => return Err("unterminated label value".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => return Err(format!("bad escape {other:?}")),
                        },
                        Some('\n') => return Err("raw newline in label value".into()),
                        Some(c) => value.push(c),
                    }
                }
                labels.push((lname.to_string(), value));
                match chars.next() {
                    Some((_, ',')) => continue,
                    Some((i, '}')) => {
                        consumed = Some(i + 1);
                        break;
                    }
                    other => return Err(format!("expected , or }} after label, got {other:?}")),
                }
            }
            rest = &after[consumed.ok_or("labels")?..];
        }
        let mut parts = rest.split(' ').filter(|p| !p.is_empty());
        let value = parse_value(parts.next().ok_or("sample without value")?)?;
        if let Some(ts) = parts.next() {
            ts.parse::<i64>().map_err(|_| format!("bad timestamp {ts:?}"))?;
        }
        if parts.next().is_some() {
            return Err("trailing text".into());
        }
        let mut seen = HashSet::new();
        for (n, _) in &labels {
            if !seen.insert(n.clone()) {
                return Err(format!("label {n} repeated"));
            }
        }
        Ok(Sample {
            name: name.to_string(),
            labels,
            value,
        })
    }

    /// Checks `text` and returns its samples, or the first problem with its
    /// line number.
    pub fn validate(text: &str) -> Result<Vec<Sample>, String> {
        let mut types: HashMap<String, String> = HashMap::new();
        let mut finished: HashSet<String> = HashSet::new();
        let mut current: Option<String> = None;
        let mut samples = Vec::new();
        if !text.ends_with('\n') {
            return Err("exposition does not end with a newline".into());
        }
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
            if let Some(comment) = line.strip_prefix('#') {
                let mut parts = comment.trim_start().splitn(3, ' ');
                match parts.next() {
                    Some("TYPE") => {
                        let name = parts.next().ok_or_else(|| at("TYPE without name".into()))?;
                        let kind = parts.next().ok_or_else(|| at("TYPE without type".into()))?;
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                            return Err(at(format!("unknown type {kind}")));
                        }
                        if types.insert(name.to_string(), kind.to_string()).is_some() {
                            return Err(at(format!("family {name} typed twice")));
                        }
                        if let Some(prev) = current.replace(name.to_string()) {
                            finished.insert(prev);
                        }
                    }
                    Some("HELP") => {
                        let name = parts.next().ok_or_else(|| at("HELP without name".into()))?;
                        if !valid_name(name) {
                            return Err(at("bad name in HELP".into()));
                        }
                    }
                    _ => {}
                }
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            let sample = parse_sample(line).map_err(at)?;
            let family = family_of(&sample.name, &types).ok_or_else(|| at("sample before its TYPE".into()))?;
            if finished.contains(&family) || current.as_deref() != Some(family.as_str()) {
                return Err(at(format!("samples of {family} are not contiguous")));
            }
            if types[&family] == "counter" && sample.value < 0.0 {
                return Err(at("negative counter".into()));
            }
            samples.push(sample);
        }
        check_histograms(&samples, &types)?;
        Ok(samples)
    }

    fn family_of(name: &str, types: &HashMap<String, String>) -> Option<String> {
        if types.contains_key(name) {
            return Some(name.to_string());
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if types.get(base).is_some_and(|t| t == "histogram") {
                    return Some(base.to_string());
                }
            }
        }
        None
    }

    fn check_histograms(samples: &[Sample], types: &HashMap<String, String>) -> Result<(), String> {
        type Key = (String, Vec<(String, String)>);
        let mut buckets: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
        let mut counts: BTreeMap<Key, f64> = BTreeMap::new();
        for s in samples {
            let Some(base) = s.name.strip_suffix("_bucket").or(s.name.strip_suffix("_count")) else {
                continue;
            };
            if types.get(base).is_none_or(|t| t != "histogram") {
                continue;
            }
            let others: Vec<(String, String)> = s.labels.iter().filter(|(n, _)| n != "le").cloned().collect();
            let key = (base.to_string(), others);
            if s.name.ends_with("_bucket") {
                let le = s.label("le").ok_or(format!("{} without le", s.name))?;
                let le = parse_value(le)?;
                buckets.entry(key).or_default().push((le, s.value));
            } else {
                counts.insert(key, s.value);
            }
        }
        for (key, bs) in &buckets {
            for pair in bs.windows(2) {
                if pair[1].0 <= pair[0].0 {
                    return Err(format!("{key:?}: bucket bounds not increasing"));
                }
                if pair[1].1 < pair[0].1 {
                    return Err(format!("{key:?}: buckets not cumulative"));
                }
            }
            let last = bs.last().ok_or("no buckets")?;
            if last.0 != f64::INFINITY {
                return Err(format!("{key:?}: last bucket is not +Inf"));
            }
            if counts.get(key) != Some(&last.1) {
                return Err(format!("{key:?}: +Inf bucket differs from _count"));
            }
        }
        Ok(())
    }

    #[test]
    fn checker_rejects_bad_expositions() {
        let ok = "# HELP a x\n# TYPE a counter\na{s=\"1\"} 2\n";
        assert!(validate(ok).is_ok());
        for bad in [
            "a 1\n",                                                                                                // no TYPE
            "# TYPE a counter\na{s=\"1} 2\n",                    // unterminated
            "# TYPE a counter\na{s=\"x\\q\"} 2\n",               // bad escape
            "# TYPE a counter\na 1\n# TYPE b gauge\nb 1\na 2\n", // not contiguous
            "# TYPE a counter\n# TYPE a counter\n",              // typed twice
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n", // not cumulative
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_count 2\n", // no +Inf
            "# TYPE a counter\na one\n",                             // bad value
            "# TYPE a counter\na 1",                                 // no final newline
        ] {
            assert!(validate(bad).is_err(), "accepted {bad:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_help() {
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("x\\y\nz"), "x\\\\y\\nz");
        assert_eq!(format_f64(0.0001), "0.0001");
        assert_eq!(format_f64(f64::INFINITY), "+Inf");
        assert_eq!(format_f64(1.0), "1");
    }

    #[test]
    fn latency_histogram_buckets() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        h.record(50).unwrap(); // 50 µs: first bucket
        h.record(800).unwrap(); // 0.8 ms: le=0.001
        h.record(2_000_000).unwrap(); // 2 s: le=2.5
        h.record(60_000_000).unwrap(); // 60 s: only +Inf
        let mut w = Exposition::default();
        w.family("t_seconds", "histogram", "test");
        w.histogram("t_seconds", "0", &h);
        let samples = check::validate(&w.out).unwrap();
        let bucket = |le: &str| {
            samples
                .iter()
                .find(|s| s.name == "t_seconds_bucket" && s.label("le") == Some(le))
                .map(|s| s.value)
                .unwrap()
        };
        assert_eq!(bucket("0.0001"), 1.0);
        assert_eq!(bucket("0.0005"), 1.0);
        assert_eq!(bucket("0.001"), 2.0);
        assert_eq!(bucket("1"), 2.0);
        assert_eq!(bucket("2.5"), 3.0);
        assert_eq!(bucket("10"), 3.0);
        assert_eq!(bucket("+Inf"), 4.0);
        let sum = samples.iter().find(|s| s.name == "t_seconds_sum").unwrap().value;
        assert!((sum - 62.00085).abs() < 62.0 * 0.002, "sum {sum}");
    }
}
