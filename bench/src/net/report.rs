//! What a run prints and writes: the header (which mode ran), a live line
//! per second, the summary (throughput, percentile spectrum per operation
//! kind, errors by kind), the `--compare` table, and the result files:
//! HdrHistogram `.hgrm`, JSON, CSV and the SVG plot.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::net::runner::{Pacing, Plan, Shared, Tick};
use crate::net::stats::{histogram, Stats};
use crate::net::workload::OP_KINDS;
use crate::net::{NetBenchArgs, Protocol};
use crate::BenchError;

/// The percentiles of the summary, JSON and comparison.
pub const SPECTRUM: [(&str, f64); 6] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
    ("max", 100.0),
];

/// The figures of one run against one target.
#[derive(Debug)]
pub struct RunResult {
    pub target: String,
    pub plan: std::sync::Arc<Plan>,
    /// Measured operations only (warm-up and preload excluded).
    pub stats: Stats,
    /// The measured window.
    pub seconds: f64,
    pub series: Vec<Point>,
    /// CPU time of this process over the run (warm-up included).
    pub client_cpu_s: f64,
    /// Every answered operation of the run, warm-up included.
    pub completed_all: u64,
    pub preload_errors: u64,
}

impl RunResult {
    pub fn answered(&self) -> u64 {
        self.stats.all.len()
    }

    pub fn throughput(&self) -> f64 {
        if self.seconds > 0.0 {
            self.answered() as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Client CPU microseconds per answered operation.
    pub fn cpu_us_per_op(&self) -> f64 {
        if self.completed_all == 0 {
            0.0
        } else {
            self.client_cpu_s * 1e6 / self.completed_all as f64
        }
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn pct(h: &Histogram<u64>, p: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    if p >= 100.0 {
        ms(h.max())
    } else {
        ms(h.value_at_percentile(p))
    }
}

/// One second of the run, all cores together.
#[derive(Debug, Clone)]
pub struct Point {
    pub second: u64,
    pub warmup: bool,
    pub ops: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
}

/// Gathers the cores' ticks into per-second points.
pub struct Series {
    cores: usize,
    warmup: Duration,
    pending: BTreeMap<u64, (usize, Histogram<u64>, u64)>,
    pub points: Vec<Point>,
}

impl Series {
    pub fn new(cores: usize, warmup: Duration) -> Series {
        Series {
            cores,
            warmup,
            pending: BTreeMap::new(),
            points: Vec::new(),
        }
    }

    fn point(&self, second: u64, h: &Histogram<u64>, errors: u64) -> Point {
        Point {
            second,
            warmup: Duration::from_secs(second) < self.warmup,
            ops: h.len(),
            p50_ms: pct(h, 50.0),
            p99_ms: pct(h, 99.0),
            p999_ms: pct(h, 99.9),
            max_ms: pct(h, 100.0),
            errors,
        }
    }

    /// Adds one core's tick; returns the seconds now complete.
    pub fn add(&mut self, tick: Tick) -> Vec<Point> {
        let e = self.pending.entry(tick.second).or_insert_with(|| (0, histogram(), 0));
        e.0 += 1;
        let _ = e.1.add(&tick.hist);
        e.2 += tick.errors;
        let mut done = Vec::new();
        while let Some((&second, (n, _, _))) = self.pending.iter().next() {
            if *n < self.cores {
                break;
            }
            if let Some((_, h, errors)) = self.pending.remove(&second) {
                let p = self.point(second, &h, errors);
                self.points.push(p.clone());
                done.push(p);
            }
        }
        done
    }

    /// The seconds some core never finished (the run's end).
    pub fn flush(&mut self) -> Vec<Point> {
        let pending = std::mem::take(&mut self.pending);
        let mut done = Vec::new();
        for (second, (_, h, errors)) in pending {
            if h.is_empty() && errors == 0 {
                continue;
            }
            let p = self.point(second, &h, errors);
            self.points.push(p.clone());
            done.push(p);
        }
        done
    }
}

fn mode(plan: &Plan) -> String {
    match plan.pacing {
        Pacing::Closed => format!(
            "closed loop: {} connections x pipeline {}",
            plan.connections, plan.pipeline
        ),
        Pacing::Open { rate } => format!(
            "open loop at {rate:.0} ops/s over {} connections (up to {} in flight each); latency from intended send times (coordinated omission corrected)",
            plan.connections, plan.pipeline
        ),
    }
}

fn mode_name(plan: &Plan) -> &'static str {
    match plan.pacing {
        Pacing::Closed => "closed",
        Pacing::Open { .. } => "open",
    }
}

fn cpus_text(plan: &Plan) -> String {
    let list: Vec<String> = plan
        .cpus
        .iter()
        .map(|c| c.map_or("any".to_string(), |c| c.to_string()))
        .collect();
    format!("{} load core(s) (CPU {})", plan.cpus.len(), list.join(","))
}

pub fn header(plan: &Plan, target: &str, protocol: Protocol) {
    println!("lumadb bench: {} to {target}", protocol.name());
    println!("mode: {} on {}", mode(plan), cpus_text(plan));
    let length = match (plan.duration, plan.requests) {
        (Some(d), _) => format!("{:.1} s", d.as_secs_f64()),
        (None, Some(n)) => format!("{n} operations"),
        (None, None) => String::new(),
    };
    println!(
        "workload: {}, {} keys over {}, values {}; {length} after {:.1} s warm-up{}{}; seed {}",
        plan.mix.describe(),
        plan.distribution.name(),
        plan.keyspace,
        plan.value_size.describe(),
        plan.warmup.as_secs_f64(),
        if plan.preload { ", preloaded" } else { "" },
        if plan.verify { ", verifying answers" } else { "" },
        plan.seed
    );
}

pub fn live_line(p: &Point) {
    println!(
        "[{:>4}s{}] {:>10} ops/s  p50 {:>8.3} ms  p99 {:>8.3} ms  p99.9 {:>8.3} ms  errors {}",
        p.second + 1,
        if p.warmup { " warm-up" } else { "" },
        p.ops,
        p.p50_ms,
        p.p99_ms,
        p.p999_ms,
        p.errors
    );
}

/// Prints a progress bar until every core has preloaded.
pub fn preload_progress(shared: &Shared, keys: u64, cores: usize) {
    let mut err = std::io::stderr();
    let width = 40u64;
    loop {
        let done = shared.preload_done.load(Ordering::Relaxed).min(keys);
        let fill = (done * width).checked_div(keys).unwrap_or(width);
        let _ = write!(
            err,
            "\rpreload [{}{}] {done}/{keys}",
            "#".repeat(fill as usize),
            " ".repeat((width - fill) as usize)
        );
        let _ = err.flush();
        if shared.preload_cores_done.load(Ordering::SeqCst) >= cores {
            let _ = writeln!(err);
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn spectrum_row(name: &str, h: &Histogram<u64>) -> String {
    let mut s = format!("  {name:<8}{:>12}", h.len());
    for (_, p) in SPECTRUM {
        s.push_str(&format!("{:>10.3}", pct(h, p)));
    }
    s.push_str(&format!("{:>10.3}", if h.is_empty() { 0.0 } else { h.mean() / 1e6 }));
    s
}

pub fn summary(r: &RunResult) {
    let s = &r.stats;
    println!("--- {} ({})", r.target, mode_name(&r.plan));
    println!(
        "throughput: {:.0} ops/s ({} operations in {:.2} s)",
        r.throughput(),
        r.answered(),
        r.seconds
    );
    if let Pacing::Open { rate } = r.plan.pacing {
        if s.unsent > 0 || r.throughput() < rate * 0.95 {
            println!(
                "warning: the requested {rate:.0} ops/s was not reached ({:.0} ops/s; {} requests due in the window were never sent)",
                r.throughput(),
                s.unsent
            );
        }
    }
    let mut head = format!("  {:<8}{:>12}", "latency", "count");
    for (name, _) in SPECTRUM {
        head.push_str(&format!("{name:>10}"));
    }
    head.push_str(&format!("{:>10}", "mean"));
    println!("{head}   (ms)");
    println!("{}", spectrum_row("all", &s.all));
    for op in OP_KINDS {
        let h = &s.per_op[op.index()];
        if !h.is_empty() {
            println!("{}", spectrum_row(op.name(), h));
        }
    }
    let errors = if s.errors.is_empty() {
        "none".to_string()
    } else {
        s.errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("errors: {errors}; timeouts: {}; misses: {}", s.timeouts, s.misses);
    if s.unsent > 0 {
        println!(
            "not sent: {} operations fell due before the end but the server was still behind at end + --timeout",
            s.unsent
        );
    }
    if r.plan.verify {
        println!("wrong answers: {}", s.wrong);
        for w in &s.wrong_examples {
            println!("  {w}");
        }
    }
    if r.preload_errors > 0 {
        println!("preload errors: {}", r.preload_errors);
    }
    println!(
        "client CPU: {:.2} us per operation ({:.2} CPU-s over {} operations, warm-up included)",
        r.cpu_us_per_op(),
        r.client_cpu_s,
        r.completed_all
    );
}

fn latency_json(h: &Histogram<u64>) -> Value {
    let mut m = serde_json::Map::new();
    for (name, p) in SPECTRUM {
        m.insert(name.to_string(), json!(pct(h, p)));
    }
    m.insert("mean".into(), json!(if h.is_empty() { 0.0 } else { h.mean() / 1e6 }));
    Value::Object(m)
}

/// (percentile, latency in ms) points for plots, HdrHistogram's spacing.
pub fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| (v.quantile_iterated_to() * 100.0, ms(v.value_iterated_to())))
        .collect();
    out.push((100.0, ms(h.max())));
    out
}

/// The result as JSON (also the input of `lumadb bench plot`).
pub fn to_json(r: &RunResult) -> Value {
    let s = &r.stats;
    let plan = &r.plan;
    let mut ops = serde_json::Map::new();
    for op in OP_KINDS {
        let h = &s.per_op[op.index()];
        if !h.is_empty() {
            ops.insert(
                op.name().to_string(),
                json!({
                    "count": h.len(),
                    "throughput_ops": if r.seconds > 0.0 { h.len() as f64 / r.seconds } else { 0.0 },
                    "latency_ms": latency_json(h),
                }),
            );
        }
    }
    json!({
        "tool": "lumadb bench",
        "target": r.target,
        "mode": mode_name(plan),
        "rate_ops": match plan.pacing { Pacing::Open { rate } => json!(rate), Pacing::Closed => Value::Null },
        "connections": plan.connections,
        "pipeline": plan.pipeline,
        "load_cores": plan.cpus.len(),
        "mix": plan.mix.describe(),
        "distribution": plan.distribution,
        "keyspace": plan.keyspace,
        "value_size": plan.value_size.describe(),
        "warmup_s": plan.warmup.as_secs_f64(),
        "seed": plan.seed,
        "seconds": r.seconds,
        "operations": r.answered(),
        "throughput_ops": r.throughput(),
        "latency_ms": latency_json(&s.all),
        "ops": ops,
        "errors": s.errors,
        "timeouts": s.timeouts,
        "unsent": s.unsent,
        "misses": s.misses,
        "verify": plan.verify,
        "wrong_answers": s.wrong,
        "client_cpu_us_per_op": r.cpu_us_per_op(),
        "percentiles": percentile_points(&s.all).iter().map(|(p, v)| json!([p, v])).collect::<Vec<_>>(),
        "series": r.series.iter().map(|p| json!({
            "second": p.second + 1, "warmup": p.warmup, "ops": p.ops,
            "p50_ms": p.p50_ms, "p99_ms": p.p99_ms, "p999_ms": p.p999_ms, "max_ms": p.max_ms, "errors": p.errors,
        })).collect::<Vec<_>>(),
    })
}

/// HdrHistogram's percentile distribution text (values in milliseconds),
/// as `HistogramLogProcessor`/wrk2 print it and the HdrHistogram plotter
/// reads it.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    ));
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            out.push_str(&format!(
                "{:>12.3} {:>2.12} {:>10} {:>14.2}\n",
                ms(v.value_iterated_to()),
                q,
                total,
                1.0 / (1.0 - q)
            ));
        } else {
            out.push_str(&format!(
                "{:>12.3} {:>2.12} {:>10}\n",
                ms(v.value_iterated_to()),
                q,
                total
            ));
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / 1e6, h.stdev() / 1e6, ms(h.max()))
    };
    out.push_str(&format!("#[Mean    = {mean:>12.3}, StdDeviation   = {stdev:>12.3}]\n"));
    out.push_str(&format!("#[Max     = {max:>12.3}, Total count    = {:>12}]\n", h.len()));
    out.push_str(&format!(
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]\n",
        h.buckets(),
        h.distinct_values()
    ));
    out
}

pub fn csv(r: &RunResult) -> String {
    let mut out = String::from("second,phase,ops,p50_ms,p99_ms,p999_ms,max_ms,errors\n");
    for p in &r.series {
        out.push_str(&format!(
            "{},{},{},{:.3},{:.3},{:.3},{:.3},{}\n",
            p.second + 1,
            if p.warmup { "warmup" } else { "measure" },
            p.ops,
            p.p50_ms,
            p.p99_ms,
            p.p999_ms,
            p.max_ms,
            p.errors
        ));
    }
    out
}

fn write(path: &std::path::Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(|cause| BenchError::Io {
        path: path.display().to_string(),
        cause,
    })
}

pub fn write_files(r: &RunResult, args: &NetBenchArgs) -> Result<(), BenchError> {
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&to_json(r)).map_err(|e| BenchError::Invalid(e.to_string()))?;
        write(p, &text)?;
    }
    if let Some(p) = &args.hgrm {
        write(p, &hgrm(&r.stats.all))?;
    }
    if let Some(p) = &args.csv {
        write(p, &csv(r))?;
    }
    if let Some(p) = &args.plot {
        let series = vec![crate::net::plot::Line {
            label: format!("{} ({})", r.target, mode_name(&r.plan)),
            points: percentile_points(&r.stats.all),
        }];
        write(p, &crate::net::plot::svg("Latency by percentile", &series))?;
    }
    Ok(())
}

/// Metrics compared by `--compare`: name, value, whether higher is better.
fn metrics(r: &RunResult) -> Vec<(&'static str, f64)> {
    let h = &r.stats.all;
    vec![
        ("throughput ops/s", r.throughput()),
        ("p50 ms", pct(h, 50.0)),
        ("p99 ms", pct(h, 99.0)),
        ("p99.9 ms", pct(h, 99.9)),
        ("max ms", pct(h, 100.0)),
        ("client CPU us/op", r.cpu_us_per_op()),
    ]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Per metric: A's median, B's median, and B/A's min, median, max over rounds.
pub fn comparison_rows(rounds: &[(RunResult, RunResult)]) -> Vec<(&'static str, f64, f64, f64, f64, f64)> {
    let Some((a0, _)) = rounds.first() else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for (i, (name, _)) in metrics(a0).into_iter().enumerate() {
        let mut a: Vec<f64> = rounds.iter().map(|(a, _)| metrics(a)[i].1).collect();
        let mut b: Vec<f64> = rounds.iter().map(|(_, b)| metrics(b)[i].1).collect();
        let mut ratio: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(a, b)| if *a > 0.0 { b / a } else { f64::NAN })
            .collect();
        ratio.sort_by(|x, y| x.total_cmp(y));
        let (lo, hi) = (
            ratio.first().copied().unwrap_or(f64::NAN),
            ratio.last().copied().unwrap_or(f64::NAN),
        );
        rows.push((name, median(&mut a), median(&mut b), lo, median(&mut ratio), hi));
    }
    rows
}

pub fn comparison(rounds: &[(RunResult, RunResult)]) {
    let (Some((a, b)), n) = (rounds.first(), rounds.len()) else {
        return;
    };
    println!(
        "=== compare over {n} rounds: A = {}, B = {} (ratio B/A)",
        a.target, b.target
    );
    println!(
        "  {:<18}{:>14}{:>14}{:>10}{:>10}{:>10}",
        "metric", "A median", "B median", "min", "median", "max"
    );
    for (name, am, bm, lo, med, hi) in comparison_rows(rounds) {
        println!("  {name:<18}{am:>14.3}{bm:>14.3}{lo:>10.3}{med:>10.3}{hi:>10.3}");
    }
}

pub fn write_comparison(rounds: &[(RunResult, RunResult)], args: &NetBenchArgs) -> Result<(), BenchError> {
    if let Some(p) = &args.json {
        let rows: Vec<Value> = comparison_rows(rounds)
            .into_iter()
            .map(|(name, am, bm, lo, med, hi)| {
                json!({"metric": name, "a_median": am, "b_median": bm, "ratio_min": lo, "ratio_median": med, "ratio_max": hi})
            })
            .collect();
        let doc = json!({
            "tool": "lumadb bench",
            "compare": rows,
            "rounds": rounds.iter().map(|(a, b)| json!({"a": to_json(a), "b": to_json(b)})).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| BenchError::Invalid(e.to_string()))?;
        write(p, &text)?;
    }
    if let Some(p) = &args.plot {
        let mut lines = Vec::new();
        if let Some((a, b)) = rounds.last() {
            for r in [a, b] {
                lines.push(crate::net::plot::Line {
                    label: r.target.clone(),
                    points: percentile_points(&r.stats.all),
                });
            }
        }
        write(p, &crate::net::plot::svg("Latency by percentile (last round)", &lines))?;
    }
    Ok(())
}
