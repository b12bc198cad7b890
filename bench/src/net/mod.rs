//! `lumadb bench --target HOST:PORT`: the network load generator.
//!
//! It drives any server that speaks RESP, PostgreSQL or HTTP/1.1 (a
//! LumaDB, redis-server, PostgreSQL, a web service); nothing in it
//! assumes the target is LumaDB. The pieces:
//!
//! - [`dist`] key distributions and [`workload`] operation mixes, key
//!   names and values (pure, unit-tested);
//! - [`proto`] the codec seam with one sans-IO driver per protocol
//!   ([`resp`], [`http`], [`postgres`]);
//! - [`runner`] the executors, connections, closed and open loops (with
//!   coordinated-omission correction), on [`sock`], the io_uring client
//!   socket;
//! - [`report`] the live line, the summary and the result files
//!   (`.hgrm`, JSON, CSV), and [`plot`] the SVG latency-percentile plot.

pub mod dist;
pub mod http;
pub mod plot;
pub mod postgres;
pub mod proto;
pub mod report;
pub mod resp;
pub mod runner;
pub mod sock;
pub mod stats;
pub mod workload;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::dist::{Distribution, Zipfian};
use crate::net::http::{HttpCodec, Route};
use crate::net::postgres::PgCodec;
use crate::net::proto::Codec;
use crate::net::report::{RunResult, Series};
use crate::net::resp::RespCodec;
use crate::net::runner::{Pacing, Plan, Shared, Tick, TICK_QUEUE_MAX};
use crate::net::stats::Stats;
use crate::net::workload::{Mix, OpKind, ValueSize, Ycsb, OP_KINDS, VERIFY_HEADER_BYTES};
use crate::BenchError;

/// The protocols the generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Resp,
    Postgres,
    Http,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Resp => "resp",
            Protocol::Postgres => "postgres",
            Protocol::Http => "http",
        }
    }
}

/// Arguments of `lumadb bench --target HOST:PORT ...`.
#[derive(Debug, Clone, clap::Args)]
pub struct NetBenchArgs {
    /// The server to load, HOST:PORT.
    #[arg(long, required = true)]
    pub target: Option<String>,
    /// The protocol it speaks.
    #[arg(long, value_enum, default_value = "resp")]
    pub protocol: Protocol,
    /// Connections, spread over the load cores.
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Requests in flight per connection (closed loop: sent together, as redis-benchmark -P).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Load cores: one pinned executor each (the first CPUs this process may use).
    #[arg(long, default_value_t = 1)]
    pub cores: usize,
    /// CPUs to pin the load executors to, e.g. `0` or `2,3` (overrides --cores).
    #[arg(long)]
    pub cpuset: Option<String>,
    /// Open loop at this total rate (operations per second); latency counts from each request's intended send time. Without it: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds to measure (default 10 unless --requests is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Operations to measure instead of a duration.
    #[arg(long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Seconds of load before measuring (not counted).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Write every key of the key space once before the run.
    #[arg(long)]
    pub preload: bool,
    /// A YCSB core workload (sets the mix and the distribution).
    #[arg(long, value_enum)]
    pub workload: Option<Ycsb>,
    /// Operation mix, e.g. `get:80,set:20` (get, set, insert, scan, rmw, del).
    #[arg(long)]
    pub mix: Option<String>,
    /// Key distribution (default uniform, or the YCSB workload's).
    #[arg(long, value_enum)]
    pub distribution: Option<Distribution>,
    /// Zipfian skew, in (0, 1).
    #[arg(long, default_value_t = 0.99)]
    pub zipf_theta: f64,
    /// Keys in the key space.
    #[arg(long, default_value_t = 100_000)]
    pub keyspace: u64,
    /// Value size in bytes: `100`, or a range `100-1000`.
    #[arg(long, default_value = "100")]
    pub value_size: String,
    /// Keys a scan reads at most (its length is uniform in 1..=this).
    #[arg(long, default_value_t = 100)]
    pub scan_max: u32,
    /// Prefix of every key name (followed by at least 12 digits).
    #[arg(long, default_value = "key:")]
    pub key_prefix: String,
    /// Check that reads return what was written; count wrong answers apart from errors.
    #[arg(long)]
    pub verify: bool,
    /// Seconds a request may wait for its answer before it counts as a timeout.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Seed of the key and operation choices (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Redis password (`--protocol resp`): each connection sends
    /// `AUTH <password>` first, as `redis-benchmark -a` does.
    #[arg(long)]
    pub password: Option<String>,
    /// PostgreSQL user.
    #[arg(long, default_value = "postgres")]
    pub pg_user: String,
    /// PostgreSQL password (cleartext authentication).
    #[arg(long)]
    pub pg_password: Option<String>,
    /// PostgreSQL database.
    #[arg(long, default_value = "postgres")]
    pub pg_database: String,
    /// File of `op: SQL` lines ($1 the key, $2 the value or scan length); default: a two-column table the run creates.
    #[arg(long)]
    pub pg_query_file: Option<PathBuf>,
    /// HTTP request for reads: `METHOD /path` with {key}.
    #[arg(long, default_value = "GET /kv/{key}")]
    pub http_read: String,
    /// HTTP request for writes.
    #[arg(long, default_value = "PUT /kv/{key}")]
    pub http_write: String,
    /// HTTP body of writes ({key}, {value}).
    #[arg(long, default_value = "{value}")]
    pub http_body: String,
    /// HTTP request for deletes.
    #[arg(long, default_value = "DELETE /kv/{key}")]
    pub http_delete: String,
    /// HTTP request for scans ({key}, {count}).
    #[arg(long, default_value = "GET /kv?from={key}&count={count}")]
    pub http_scan: String,
    /// Extra HTTP header, `Name: value` (repeatable).
    #[arg(long)]
    pub http_header: Vec<String>,
    /// Write the result as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the latency percentile distribution (HdrHistogram .hgrm, milliseconds).
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write the per-second time series as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write a latency-by-percentile plot (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Also run against this second target, alternating A B A B ..., and print ratios.
    #[arg(long)]
    pub compare: Option<String>,
    /// Rounds of --compare (each runs A then B).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// No live lines.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `lumadb bench plot`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlotArgs {
    /// JSON results of `lumadb bench --json` (one line each on the plot).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The SVG file to write.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Plot title.
    #[arg(long, default_value = "Latency by percentile")]
    pub title: String,
}

fn resolve(target: &str) -> Result<SocketAddr, BenchError> {
    target
        .to_socket_addrs()
        .map_err(|e| BenchError::Invalid(format!("--target {target:?}: {e} (expected HOST:PORT)")))?
        .next()
        .ok_or_else(|| BenchError::Invalid(format!("--target {target:?} resolves to no address")))
}

/// CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the set we pass, of its own size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

fn cpus(args: &NetBenchArgs) -> Result<Vec<Option<usize>>, BenchError> {
    if let Some(list) = &args.cpuset {
        let mut out = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                BenchError::Invalid(format!(
                    "--cpuset {list:?}: expected CPU numbers and ranges, e.g. 0,2-3"
                ))
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                    if a > b {
                        return Err(bad());
                    }
                    out.extend((a..=b).map(Some));
                }
                None => out.push(Some(part.parse().map_err(|_| bad())?)),
            }
        }
        if out.is_empty() {
            return Err(BenchError::Invalid("--cpuset names no CPU".into()));
        }
        return Ok(out);
    }
    let allowed = allowed_cpus();
    if args.cores == 0 || args.cores > allowed.len() {
        return Err(BenchError::Invalid(format!(
            "--cores {}: this process may use {} CPUs",
            args.cores,
            allowed.len()
        )));
    }
    Ok(allowed.into_iter().take(args.cores).map(Some).collect())
}

/// Most requests in flight on one connection.
pub const PIPELINE_MAX: usize = 65_536;

/// Longest `--duration`, `--warmup` or `--timeout`: a year.
const SECONDS_MAX: f64 = 365.0 * 86_400.0;

/// Highest `--rate` (operations a second over all connections).
const RATE_MAX: f64 = 1e9;

/// Checks the arguments and builds the plan for `target`.
pub fn plan(args: &NetBenchArgs, target: &str) -> Result<Plan, BenchError> {
    let addr = resolve(target)?;
    if args.connections == 0 || args.pipeline == 0 {
        return Err(BenchError::Invalid(
            "--connections and --pipeline must be at least 1".into(),
        ));
    }
    if args.pipeline > PIPELINE_MAX {
        return Err(BenchError::Invalid(format!(
            "--pipeline {} is more than {PIPELINE_MAX} requests in flight per connection",
            args.pipeline
        )));
    }
    let cpus = cpus(args)?;
    if args.connections < cpus.len() {
        return Err(BenchError::Invalid(format!(
            "--connections {} is fewer than the {} load cores",
            args.connections,
            cpus.len()
        )));
    }
    if args.keyspace == 0 {
        return Err(BenchError::Invalid("--keyspace must be at least 1".into()));
    }
    let mix_text = match (&args.mix, args.workload) {
        (Some(m), _) => m.clone(),
        (None, Some(w)) => w.mix().to_string(),
        (None, None) => "get:90,set:10".to_string(),
    };
    let mix = Mix::parse(&mix_text)?;
    let distribution = args
        .distribution
        .or(args.workload.map(Ycsb::distribution))
        .unwrap_or(Distribution::Uniform);
    if !(args.zipf_theta > 0.0 && args.zipf_theta < 1.0) {
        return Err(BenchError::Invalid(format!(
            "--zipf-theta {} must be in (0, 1)",
            args.zipf_theta
        )));
    }
    let zipf = match distribution {
        Distribution::Zipfian | Distribution::ZipfianRanked | Distribution::Latest => {
            Some(Zipfian::new(args.keyspace, args.zipf_theta))
        }
        _ => None,
    };
    let value_size = ValueSize::parse(&args.value_size)?;
    if args.verify && value_size.min < VERIFY_HEADER_BYTES {
        return Err(BenchError::Invalid(format!(
            "--verify needs values of at least {VERIFY_HEADER_BYTES} bytes (they carry their key and a checksum)"
        )));
    }
    let pacing = match args.rate {
        Some(r) if r > 0.0 && r <= RATE_MAX => Pacing::Open { rate: r },
        Some(r) => {
            return Err(BenchError::Invalid(format!(
                "--rate {r} must be a positive number of operations a second, at most {RATE_MAX:e}"
            )))
        }
        None => Pacing::Closed,
    };
    let secs = |name: &str, v: f64| {
        if (0.0..=SECONDS_MAX).contains(&v) {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(BenchError::Invalid(format!(
                "--{name} {v} must be a number of seconds from 0 to {SECONDS_MAX} (a year)"
            )))
        }
    };
    let duration = match (args.duration, args.requests) {
        (_, Some(0)) => return Err(BenchError::Invalid("--requests must be at least 1".into())),
        (_, Some(_)) => None,
        (Some(d), None) => Some(secs("duration", d)?),
        (None, None) => Some(Duration::from_secs(10)),
    };
    if duration.is_some_and(|d| d.is_zero()) {
        return Err(BenchError::Invalid("--duration must be more than 0".into()));
    }
    let prefix = args.key_prefix.as_bytes();
    let codec = match args.protocol {
        Protocol::Resp => Codec::Resp(RespCodec::new(prefix, args.password.as_deref())),
        Protocol::Http => {
            let route = |t: &str, body: Option<&str>| Route::parse(t, body);
            Codec::Http(Box::new(HttpCodec::new(
                route(&args.http_read, None)?,
                route(&args.http_write, Some(&args.http_body))?,
                route(&args.http_delete, None)?,
                route(&args.http_scan, None)?,
                target,
                &args.http_header,
                prefix,
            )?))
        }
        Protocol::Postgres => {
            let text = match &args.pg_query_file {
                Some(p) => Some(std::fs::read_to_string(p).map_err(|e| BenchError::Input {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?),
                None => None,
            };
            let pg = PgCodec::new(
                &args.pg_user,
                args.pg_password.as_deref(),
                &args.pg_database,
                text.as_deref(),
                prefix,
            )?;
            for op in OP_KINDS {
                if mix.contains(op) && !pg.supports(op) {
                    return Err(BenchError::Invalid(format!(
                        "the mix has {} but the query file has no statement for it",
                        op.name()
                    )));
                }
            }
            if args.preload && !pg.supports(OpKind::Set) {
                return Err(BenchError::Invalid(
                    "--preload needs a `set:` statement in the query file".into(),
                ));
            }
            Codec::Postgres(pg)
        }
    };
    Ok(Plan {
        target: addr,
        codec,
        connections: args.connections,
        pipeline: args.pipeline,
        cpus,
        pacing,
        duration,
        requests: args.requests,
        warmup: secs("warmup", args.warmup)?,
        preload: args.preload,
        mix,
        distribution,
        zipf,
        keyspace: args.keyspace,
        value_size,
        scan_max: args.scan_max,
        verify: args.verify,
        timeout: secs("timeout", args.timeout)?.max(Duration::from_millis(1)),
        seed: args.seed.unwrap_or_else(rand::random),
    })
}

/// Process CPU time (user + system, all threads), in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(u.ru_utime) + tv(u.ru_stime)
    }
}

/// Runs one workload against one target and gathers its result.
pub fn run_once(plan: &Plan, target: &str, live: bool, preload: bool) -> Result<RunResult, BenchError> {
    let mut plan = plan.clone();
    plan.preload = preload;
    let plan = Arc::new(plan);
    let cores = plan.cpus.len();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Tick>(TICK_QUEUE_MAX);
    let shared = Arc::new(Shared::new(&plan, tx));
    let mut handles = Vec::new();
    for core in 0..cores {
        let conns: Vec<usize> = (0..plan.connections).filter(|g| g % cores == core).collect();
        let (plan, shared) = (plan.clone(), shared.clone());
        let h = std::thread::Builder::new()
            .name(format!("lumadb-load-{core}"))
            .spawn(move || runner::run_core(plan, shared, core, conns))
            .map_err(|e| BenchError::Executor(e.to_string()))?;
        handles.push(h);
    }
    shared.wait(); // set-up done
    shared.wait(); // connected
    if preload && !shared.failed() {
        report::preload_progress(&shared, plan.keyspace, cores);
    }
    while shared.preload_cores_done.load(Ordering::SeqCst) < cores {
        std::thread::sleep(Duration::from_millis(5));
    }
    let t0 = Instant::now();
    let _ = shared.t0.set(t0);
    let cpu_start = cpu_seconds();
    shared.wait(); // go
    let mut series = Series::new(cores, plan.warmup);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(tick) => {
                for point in series.add(tick) {
                    if live {
                        report::live_line(&point);
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if handles.iter().all(|h| h.is_finished()) {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    while let Ok(tick) = rx.try_recv() {
        for point in series.add(tick) {
            if live {
                report::live_line(&point);
            }
        }
    }
    for point in series.flush() {
        if live {
            report::live_line(&point);
        }
    }
    let cpu_s = cpu_seconds() - cpu_start;
    let mut stats = Stats::default();
    let mut completed_all = 0;
    let mut last_done: Option<Instant> = None;
    let mut preload_errors = 0;
    let mut first_error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => {
                stats.merge(&r.stats);
                completed_all += r.completed_all;
                last_done = last_done.max(r.last_done);
                preload_errors += r.preload_errors;
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(BenchError::Invalid("a load core panicked".into()));
            }
        }
    }
    if let Some(e) = shared.take_failure().or(first_error) {
        return Err(e);
    }
    let warmup_end = t0 + plan.warmup;
    // Throughput is over the time the operations really took: a server
    // (or an open loop) that fell behind finishes after the window.
    let answered_for = last_done.map_or(0.0, |l| l.saturating_duration_since(warmup_end).as_secs_f64());
    let seconds = match plan.duration {
        Some(d) => d.as_secs_f64().max(answered_for),
        None => answered_for,
    };
    Ok(RunResult {
        target: target.to_string(),
        plan: plan.clone(),
        stats,
        seconds,
        series: series.points,
        client_cpu_s: cpu_s,
        completed_all,
        preload_errors,
    })
}

/// `lumadb bench --target ...`: runs, reports, writes the files asked for.
/// Returns whether the run saw no wrong answers.
pub fn run(args: &NetBenchArgs) -> Result<bool, BenchError> {
    let target = args
        .target
        .clone()
        .ok_or_else(|| BenchError::Invalid("--target HOST:PORT is required".into()))?;
    let plan_a = plan(args, &target)?;
    if args.compare.is_some() {
        if args.csv.is_some() || args.hgrm.is_some() {
            return Err(BenchError::Invalid(
                "--csv and --hgrm describe one run; with --compare write --json (every round of both targets) or --plot"
                    .into(),
            ));
        }
        if args.rounds == 0 {
            return Err(BenchError::Invalid("--rounds must be at least 1".into()));
        }
    }
    let plan_b = match &args.compare {
        Some(other) => Some(plan(args, other)?),
        None => None,
    };
    // Find out now, not after the run, that a result file cannot be written.
    for path in [&args.json, &args.csv, &args.hgrm, &args.plot].into_iter().flatten() {
        std::fs::File::create(path).map_err(|cause| BenchError::Io {
            path: path.display().to_string(),
            cause,
        })?;
    }
    report::header(&plan_a, &target, args.protocol);
    let (Some(other), Some(plan_b)) = (&args.compare, plan_b) else {
        let r = run_once(&plan_a, &target, !args.quiet, args.preload)?;
        report::summary(&r);
        report::write_files(&r, args)?;
        nothing_succeeded(&r)?;
        return Ok(r.stats.wrong == 0);
    };
    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        eprintln!("--- round {}/{}: A = {target}", round + 1, args.rounds);
        let a = run_once(&plan_a, &target, !args.quiet, args.preload && round == 0)?;
        report::summary(&a);
        eprintln!("--- round {}/{}: B = {other}", round + 1, args.rounds);
        let b = run_once(&plan_b, other, !args.quiet, args.preload && round == 0)?;
        report::summary(&b);
        rounds.push((a, b));
    }
    report::comparison(&rounds);
    report::write_comparison(&rounds, args)?;
    for (a, b) in &rounds {
        nothing_succeeded(a)?;
        nothing_succeeded(b)?;
    }
    Ok(rounds.iter().all(|(a, b)| a.stats.wrong == 0 && b.stats.wrong == 0))
}

/// A run in which no operation succeeded measured nothing: it fails, after
/// its report and files are out.
fn nothing_succeeded(r: &RunResult) -> Result<(), BenchError> {
    if !r.stats.all.is_empty() || r.stats.misses > 0 {
        return Ok(());
    }
    let errors: u64 = r.stats.errors.values().sum();
    Err(BenchError::Invalid(format!(
        "no operation against {} succeeded ({errors} errors, {} timeouts, {} unsent): is it the right address and --protocol?",
        r.target, r.stats.timeouts, r.stats.unsent
    )))
}

/// `lumadb bench plot`: overlays the percentile spectra of JSON results.
pub fn plot_files(args: &PlotArgs) -> Result<(), BenchError> {
    let mut series = Vec::new();
    for path in &args.inputs {
        let text = std::fs::read_to_string(path).map_err(|e| BenchError::Input {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        series.extend(plot::series_from_json(&text).map_err(|message| BenchError::Input {
            path: path.display().to_string(),
            message,
        })?);
    }
    let svg = plot::svg(&args.title, &series);
    std::fs::write(&args.output, svg).map_err(|cause| BenchError::Io {
        path: args.output.display().to_string(),
        cause,
    })
}
