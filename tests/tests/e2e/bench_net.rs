//! `lumadb bench --target ...`, the network load generator, against real
//! servers (LumaDB, redis-server, PostgreSQL when installed) and against
//! tiny misbehaving servers written here: one that stalls once (the stall
//! must show in the open loop's tail: coordinated omission corrected) and
//! one that answers wrong values (`--verify` must count them).
//!
//! Runs are short (requests or a second or two) and no assertion is an
//! upper bound on a time: a slow machine only makes latencies larger.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lumadb_tests::lumadb_bin;
use lumadb_tests::server::{free_ports, LumaServer, RedisServer, ServerOptions, CLIENT_TIMEOUT_ARGS};
use serde_json::Value;

/// Runs `lumadb bench <args>` under `timeout`.
fn bench(args: &[&str]) -> Output {
    Command::new("timeout")
        .args(CLIENT_TIMEOUT_ARGS)
        .arg(lumadb_bin())
        .arg("bench")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running lumadb bench: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout:\n{}\n--- stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a bench that must succeed and returns its JSON result.
fn bench_ok(args: &[&str], json: &Path) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    let json_arg = json.to_str().expect("utf-8 path");
    all.extend(["--json", json_arg, "--quiet"]);
    let out = bench(&all);
    assert!(out.status.success(), "lumadb bench {all:?} failed: {}", text(&out));
    let doc = std::fs::read_to_string(json).unwrap_or_else(|e| panic!("reading {json:?}: {e}\n{}", text(&out)));
    serde_json::from_str(&doc).unwrap_or_else(|e| panic!("result is not JSON ({e}): {doc}"))
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut at = v;
    for p in path {
        at = at.get(p).unwrap_or_else(|| panic!("no {path:?} in {v}"));
    }
    at.as_f64().unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

fn assert_clean(v: &Value) {
    assert!(num(v, &["operations"]) > 0.0, "no operations: {v}");
    assert_eq!(v["errors"], serde_json::json!({}), "errors: {v}");
    assert_eq!(num(v, &["timeouts"]), 0.0, "timeouts: {v}");
    assert_eq!(num(v, &["wrong_answers"]), 0.0, "wrong answers: {v}");
}

fn target(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

#[test]
fn resp_closed_loop_against_lumadb_writes_every_result_file() {
    let server = LumaServer::start(ServerOptions::default().sync_mode("none"));
    let dir = tempfile::tempdir().expect("temporary folder");
    let f = |name: &str| dir.path().join(name);
    let t = target(server.redis_port());
    let (hgrm, csv, svg) = (f("r.hgrm"), f("r.csv"), f("r.svg"));
    let v = bench_ok(
        &[
            "--target",
            &t,
            "--connections",
            "4",
            "--pipeline",
            "8",
            "--duration",
            "1.5",
            "--warmup",
            "0.5",
            "--preload",
            "--keyspace",
            "2000",
            "--verify",
            "--mix",
            "get:70,set:30",
            "--hgrm",
            hgrm.to_str().expect("path"),
            "--csv",
            csv.to_str().expect("path"),
            "--plot",
            svg.to_str().expect("path"),
        ],
        &f("r.json"),
    );
    assert_clean(&v);
    assert_eq!(v["mode"], "closed");
    assert_eq!(num(&v, &["pipeline"]), 8.0);
    assert!(
        num(&v, &["ops", "get", "count"]) > 0.0 && num(&v, &["ops", "set", "count"]) > 0.0,
        "{v}"
    );
    for p in ["p50", "p90", "p99", "p99.9", "p99.99", "max"] {
        assert!(num(&v, &["latency_ms", p]) > 0.0, "{p}: {v}");
    }
    assert!(num(&v, &["latency_ms", "p50"]) <= num(&v, &["latency_ms", "max"]));
    // After preload, every read finds its key.
    assert_eq!(num(&v, &["misses"]), 0.0);

    // .hgrm: HdrHistogram's percentile distribution, ending at 100%.
    let h = std::fs::read_to_string(&hgrm).expect("hgrm");
    let rows: Vec<Vec<f64>> = h
        .lines()
        .skip(2)
        .take_while(|l| !l.starts_with('#'))
        .map(|l| {
            l.split_whitespace()
                .map(|x| x.parse().unwrap_or_else(|_| panic!("{l:?}")))
                .collect()
        })
        .collect();
    assert!(rows.len() > 10, "{h}");
    assert!(rows.windows(2).all(|w| w[0][0] <= w[1][0] && w[0][1] <= w[1][1]), "{h}");
    let last = rows.last().expect("rows");
    assert_eq!(last[1], 1.0, "{h}");
    assert_eq!(last[2], num(&v, &["operations"]), "{h}");
    assert!(h.contains("#[Mean") && h.contains("Total count"), "{h}");

    // CSV: one row a second, warm-up marked.
    let c = std::fs::read_to_string(&csv).expect("csv");
    let mut lines = c.lines();
    assert_eq!(
        lines.next(),
        Some("second,phase,ops,p50_ms,p99_ms,p999_ms,max_ms,errors")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.len() >= 2, "{c}");
    assert!(rows.iter().all(|r| r.len() == 8 && r[2].parse::<u64>().is_ok()), "{c}");
    assert_eq!(rows[0][1], "warmup", "{c}");
    assert!(rows.iter().any(|r| r[1] == "measure"), "{c}");

    // The plot renders: an SVG document with one line.
    let s = std::fs::read_to_string(&svg).expect("svg");
    assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"), "{s}");
    assert_eq!(s.matches("class=\"series\"").count(), 1);
}

#[test]
fn ycsb_workloads_run_against_redis_server() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temporary folder");
    let t = target(redis.port());
    for (i, w) in ["a", "b", "c", "d", "e", "f"].into_iter().enumerate() {
        let v = bench_ok(
            &[
                "--target",
                &t,
                "--workload",
                w,
                "--requests",
                "3000",
                "--connections",
                "4",
                "--pipeline",
                "4",
                "--keyspace",
                "1000",
                "--verify",
                "--preload",
                "--seed",
                "7",
            ],
            &dir.path().join(format!("{w}.json")),
        );
        assert_clean(&v);
        assert_eq!(num(&v, &["operations"]), 3000.0, "workload {w}: {v}");
        let expected_ops: &[&str] = match i {
            0 => &["get", "set"],
            1 => &["get", "set"],
            2 => &["get"],
            3 => &["get", "insert"],
            4 => &["scan", "insert"],
            _ => &["get", "rmw"],
        };
        let ops = v["ops"].as_object().expect("ops");
        let mut names: Vec<&str> = ops.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut want = expected_ops.to_vec();
        want.sort_unstable();
        assert_eq!(names, want, "workload {w}: {v}");
        let dist = if w == "d" { "latest" } else { "zipfian" };
        assert_eq!(v["distribution"], dist);
    }
}

/// A RESP server that answers `+OK` to every command (or a fixed wrong
/// value to GET), and stalls once for `stall` after `stall_after` commands.
struct TinyResp {
    port: u16,
    answered: Arc<AtomicU64>,
}

#[derive(Clone, Copy)]
struct TinyOptions {
    stall_after: u64,
    stall: Duration,
    wrong_gets: bool,
}

/// Complete RESP commands at the front of `buf`: (command name, bytes).
fn commands(buf: &[u8]) -> (Vec<Vec<u8>>, usize) {
    fn line(buf: &[u8], at: usize) -> Option<(usize, usize)> {
        let p = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let n: usize = std::str::from_utf8(&buf[at + 1..at + p]).ok()?.parse().ok()?;
        Some((n, at + p + 2))
    }
    let mut out = Vec::new();
    let mut at = 0;
    'outer: while at < buf.len() {
        let Some((argc, mut p)) = line(buf, at) else { break };
        let mut name = Vec::new();
        for i in 0..argc {
            let Some((len, data)) = line(buf, p) else { break 'outer };
            if buf.len() < data + len + 2 {
                break 'outer;
            }
            if i == 0 {
                name = buf[data..data + len].to_ascii_uppercase();
            }
            p = data + len + 2;
        }
        out.push(name);
        at = p;
    }
    (out, at)
}

impl TinyResp {
    fn start(opts: TinyOptions) -> TinyResp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let answered = Arc::new(AtomicU64::new(0));
        let stalled = Arc::new(AtomicBool::new(false));
        let count = answered.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                let (count, stalled) = (count.clone(), stalled.clone());
                std::thread::spawn(move || {
                    let _ = s.set_nodelay(true);
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 16384];
                    loop {
                        let n = match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        let (cmds, used) = commands(&buf);
                        buf.drain(..used);
                        if cmds.is_empty() {
                            continue;
                        }
                        let before = count.fetch_add(cmds.len() as u64, Ordering::SeqCst);
                        if before >= opts.stall_after && !stalled.swap(true, Ordering::SeqCst) {
                            std::thread::sleep(opts.stall);
                        }
                        let mut reply = Vec::new();
                        for c in cmds {
                            if opts.wrong_gets && c == b"GET" {
                                reply.extend_from_slice(b"$5\r\nhello\r\n");
                            } else {
                                reply.extend_from_slice(b"+OK\r\n");
                            }
                        }
                        if s.write_all(&reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TinyResp { port, answered }
    }
}

#[test]
fn open_loop_charges_a_server_stall_to_every_request_it_delayed() {
    let stall = Duration::from_millis(500);
    let server = TinyResp::start(TinyOptions {
        stall_after: 300,
        stall,
        wrong_gets: false,
    });
    let dir = tempfile::tempdir().expect("temporary folder");
    let t = target(server.port);
    // 1000 requests a second over 2 connections for 2 s: the stall holds
    // one connection for 500 ms, during which ~250 of its requests fall
    // due. Measured from their intended send times they wait 0-500 ms,
    // so ~12% of all requests are late: p99 and p99.9 must show it.
    let v = bench_ok(
        &[
            "--target",
            &t,
            "--rate",
            "1000",
            "--duration",
            "2",
            "--connections",
            "2",
            "--mix",
            "set:100",
        ],
        &dir.path().join("open.json"),
    );
    assert_eq!(v["mode"], "open");
    assert_clean(&v);
    let stall_ms = stall.as_secs_f64() * 1e3;
    let (p90, p99, p999, max) = (
        num(&v, &["latency_ms", "p90"]),
        num(&v, &["latency_ms", "p99"]),
        num(&v, &["latency_ms", "p99.9"]),
        num(&v, &["latency_ms", "max"]),
    );
    assert!(max >= 0.9 * stall_ms, "the stall is the maximum: max {max} ms");
    assert!(p999 >= 0.8 * stall_ms, "the stall shows at p99.9: {p999} ms\n{v}");
    assert!(
        p99 >= 0.5 * stall_ms,
        "the requests it delayed show at p99: {p99} ms\n{v}"
    );
    assert!(p90 >= 0.05 * stall_ms, "about 12% were delayed: p90 {p90} ms\n{v}");
    assert!(server.answered.load(Ordering::SeqCst) >= 1900, "the rate was kept");
}

#[test]
fn closed_loop_sees_the_stall_only_once() {
    // The contrast that motivates the open loop: in a closed loop the
    // stalled connection sends nothing while it waits, so the stall is
    // one sample (the max), however long it lasts.
    let stall = Duration::from_millis(500);
    let server = TinyResp::start(TinyOptions {
        stall_after: 300,
        stall,
        wrong_gets: false,
    });
    let dir = tempfile::tempdir().expect("temporary folder");
    let v = bench_ok(
        &[
            "--target",
            &target(server.port),
            "--requests",
            "2000",
            "--connections",
            "2",
            "--mix",
            "set:100",
        ],
        &dir.path().join("closed.json"),
    );
    assert_eq!(v["mode"], "closed");
    assert_clean(&v);
    let max = num(&v, &["latency_ms", "max"]);
    assert!(max >= 0.9 * stall.as_secs_f64() * 1e3, "max {max} ms");
    let points = v["percentiles"].as_array().expect("percentiles");
    assert!(!points.is_empty());
}

#[test]
fn verify_counts_wrong_answers_apart_from_errors() {
    let server = TinyResp::start(TinyOptions {
        stall_after: u64::MAX,
        stall: Duration::ZERO,
        wrong_gets: true,
    });
    let dir = tempfile::tempdir().expect("temporary folder");
    let json = dir.path().join("v.json");
    let out = bench(&[
        "--target",
        &target(server.port),
        "--requests",
        "500",
        "--connections",
        "2",
        "--mix",
        "get:50,set:50",
        "--keyspace",
        "100",
        "--preload",
        "--verify",
        "--quiet",
        "--json",
        json.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(2), "wrong answers fail the run: {}", text(&out));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("JSON");
    let wrong = num(&v, &["wrong_answers"]);
    let gets = num(&v, &["ops", "get", "count"]);
    assert!(wrong > 0.0 && wrong == gets, "every GET answered wrongly: {v}");
    assert_eq!(v["errors"], serde_json::json!({}));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("wrong answers:"),
        "{}",
        text(&out)
    );
}

#[test]
fn http_driver_against_lumadb_admin_api() {
    let server = LumaServer::start(ServerOptions::default().shards(1));
    let dir = tempfile::tempdir().expect("temporary folder");
    let t = target(server.http_port());
    let v = bench_ok(
        &[
            "--target",
            &t,
            "--protocol",
            "http",
            "--mix",
            "get:100",
            "--http-read",
            "GET /health",
            "--requests",
            "400",
            "--connections",
            "2",
            "--pipeline",
            "2",
        ],
        &dir.path().join("h.json"),
    );
    assert_clean(&v);
    assert_eq!(num(&v, &["operations"]), 400.0);
    // A 404 is a miss, not an error.
    let v = bench_ok(
        &[
            "--target",
            &t,
            "--protocol",
            "http",
            "--mix",
            "get:100",
            "--http-read",
            "GET /no-such/{key}",
            "--requests",
            "100",
            "--connections",
            "1",
        ],
        &dir.path().join("miss.json"),
    );
    assert_clean(&v);
    assert_eq!(num(&v, &["misses"]), 100.0, "{v}");
}

#[test]
fn compare_alternates_two_targets_and_prints_ratios() {
    let redis = RedisServer::start();
    let luma = LumaServer::start(ServerOptions::default().sync_mode("none"));
    let dir = tempfile::tempdir().expect("temporary folder");
    let json = dir.path().join("cmp.json");
    let svg = dir.path().join("cmp.svg");
    let out = bench(&[
        "--target",
        &target(redis.port()),
        "--compare",
        &target(luma.redis_port()),
        "--rounds",
        "2",
        "--duration",
        "0.5",
        "--connections",
        "2",
        "--keyspace",
        "500",
        "--preload",
        "--quiet",
        "--json",
        json.to_str().expect("path"),
        "--plot",
        svg.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("compare over 2 rounds"), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).matches("--- round").count(),
        4,
        "A B A B: {}",
        text(&out)
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("JSON");
    let rows = v["compare"].as_array().expect("compare rows");
    let thr = rows
        .iter()
        .find(|r| r["metric"] == "throughput ops/s")
        .expect("throughput row");
    let (lo, med, hi) = (
        num(thr, &["ratio_min"]),
        num(thr, &["ratio_median"]),
        num(thr, &["ratio_max"]),
    );
    assert!(lo > 0.0 && lo <= med && med <= hi, "{thr}");
    assert_eq!(v["rounds"].as_array().map(Vec::len), Some(2));
    // `lumadb bench plot` overlays results: both sides of the comparison
    // plus a second file.
    let single = dir.path().join("single.json");
    bench_ok(
        &[
            "--target",
            &target(redis.port()),
            "--requests",
            "200",
            "--connections",
            "1",
        ],
        &single,
    );
    let overlay = dir.path().join("overlay.svg");
    let out = Command::new(lumadb_bin())
        .args(["bench", "plot", "-o"])
        .arg(&overlay)
        .arg(&json)
        .arg(&single)
        .output()
        .expect("lumadb bench plot");
    assert!(out.status.success(), "{}", text(&out));
    let s = std::fs::read_to_string(&overlay).expect("svg");
    assert_eq!(s.matches("class=\"series\"").count(), 3, "{s}");
}

#[test]
fn bench_rejects_bad_arguments_clearly() {
    for (args, says) in [
        (
            vec!["--target", "127.0.0.1:1", "--mix", "get:1,teleport:1"],
            "unknown operation",
        ),
        (vec!["--target", "127.0.0.1:1", "--zipf-theta", "1.5"], "zipf-theta"),
        (
            vec!["--target", "127.0.0.1:1", "--verify", "--value-size", "8"],
            "--verify needs values",
        ),
        (vec!["--target", "nonsense"], "--target"),
    ] {
        let out = bench(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out)
        );
    }
    // Nothing listens on the port: a clear connect error, not a hang.
    let port = free_ports(1)[0];
    let out = bench(&["--target", &target(port), "--requests", "10", "--connections", "1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
        "{}",
        text(&out)
    );
}

/// A PostgreSQL instance of its own, in a temporary folder, started with
/// the installed server's `initdb` and `pg_ctl` (as user `postgres` when
/// the tests run as root). `None` when PostgreSQL is not installed.
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_root: bool,
}

fn pg_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists() && p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

impl Postgres {
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn start() -> Option<Postgres> {
        let bin = pg_bin_dir()?;
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        let as_root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = tempfile::tempdir().expect("temporary folder");
        if as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the PostgreSQL folder to postgres");
        }
        let port = free_ports(1)[0];
        let pg = Postgres {
            dir,
            bin,
            port,
            as_root,
        };
        let data = pg.dir.path().join("data");
        let out = pg
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            pg.dir.path().display()
        );
        let out = pg
            .command("pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(&data)
            .args(["-o", &opts, "-l"])
            .arg(pg.dir.path().join("log"))
            .arg("start")
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n--- log:\n{}",
            text(&out),
            std::fs::read_to_string(pg.dir.path().join("log")).unwrap_or_default()
        );
        Some(pg)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D"])
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn postgres_driver_with_prepared_statements_and_a_query_file() {
    let Some(pg) = Postgres::start() else {
        eprintln!("PostgreSQL is not installed (scripts/setup.sh installs it); skipping");
        return;
    };
    let dir = tempfile::tempdir().expect("temporary folder");
    let t = target(pg.port);
    for w in ["a", "e", "f"] {
        let v = bench_ok(
            &[
                "--target",
                &t,
                "--protocol",
                "postgres",
                "--workload",
                w,
                "--requests",
                "2000",
                "--connections",
                "4",
                "--pipeline",
                "2",
                "--keyspace",
                "1000",
                "--preload",
                "--verify",
            ],
            &dir.path().join(format!("pg-{w}.json")),
        );
        assert_clean(&v);
        assert_eq!(num(&v, &["operations"]), 2000.0, "{v}");
    }
    // A query file: its own statements, on the table the runs above made.
    let qf = dir.path().join("queries.sql");
    std::fs::write(
        &qf,
        "# reads and counts\nget: SELECT v FROM lumadb_bench WHERE k = $1\nscan: SELECT count(*) FROM lumadb_bench WHERE k >= $1 AND k < $1 || 'z' LIMIT $2\n",
    )
    .expect("query file");
    let v = bench_ok(
        &[
            "--target",
            &t,
            "--protocol",
            "postgres",
            "--pg-query-file",
            qf.to_str().expect("path"),
            "--mix",
            "get:50,scan:50",
            "--requests",
            "500",
            "--connections",
            "2",
            "--keyspace",
            "1000",
        ],
        &dir.path().join("pg-file.json"),
    );
    assert_clean(&v);
    assert_eq!(num(&v, &["misses"]), 0.0, "{v}");
    // A statement the server cannot prepare stops the run, naming its SQLSTATE.
    std::fs::write(&qf, "get: SELECT v FROM no_such_table WHERE k = $1\n").expect("query file");
    let out = bench(&[
        "--target",
        &t,
        "--protocol",
        "postgres",
        "--pg-query-file",
        qf.to_str().expect("path"),
        "--mix",
        "get:1",
        "--requests",
        "10",
        "--connections",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("42P01"), "{}", text(&out));
}

#[test]
fn http_driver_reconnects_to_a_server_that_closes_every_connection() {
    // Python's http.server speaks HTTP/1.0: one response per connection.
    let dir = tempfile::tempdir().expect("temporary folder");
    std::fs::write(dir.path().join("hello.txt"), "hello").expect("file");
    let port = free_ports(1)[0];
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
            "--directory",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    let up = lumadb_tests::server::eventually(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let out_dir = tempfile::tempdir().expect("temporary folder");
    let result = up.then(|| {
        bench_ok(
            &[
                "--target",
                &target(port),
                "--protocol",
                "http",
                "--mix",
                "get:100",
                "--http-read",
                "GET /hello.txt",
                "--requests",
                "200",
                "--connections",
                "2",
            ],
            &out_dir.path().join("h.json"),
        )
    });
    let _ = server.kill();
    let _ = server.wait();
    let v = result.expect("python3 -m http.server did not start");
    assert_clean(&v);
    assert_eq!(num(&v, &["operations"]), 200.0, "{v}");
    assert_eq!(num(&v, &["misses"]), 0.0, "{v}");
}

#[test]
fn open_loop_accounts_for_every_request_a_mute_server_never_answers() {
    // A server that accepts and never answers: every request due in the
    // window is either a timeout or counted as not sent, none vanishes.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            match s {
                Ok(s) => held.push(s),
                Err(_) => return,
            }
        }
    });
    let dir = tempfile::tempdir().expect("temporary folder");
    let json = dir.path().join("mute.json");
    let out = bench(&[
        "--target",
        &target(port),
        "--rate",
        "100",
        "--duration",
        "1",
        "--timeout",
        "0.3",
        "--connections",
        "1",
        "--quiet",
        "--json",
        json.to_str().expect("path"),
    ]);
    // Nothing succeeded: the run fails, after writing its report.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no operation against"), "{}", text(&out));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("JSON");
    assert_eq!(num(&v, &["operations"]), 0.0, "{v}");
    let timeouts = num(&v, &["timeouts"]);
    assert!(timeouts >= 1.0, "{v}");
    assert_eq!(timeouts + num(&v, &["unsent"]), 100.0, "100 requests were due: {v}");
}

#[test]
fn bad_arguments_and_wrong_targets_fail_clearly_and_on_time() {
    // Refused before any load: absurd values, files that cannot be
    // written, per-run files with --compare.
    let dir = tempfile::tempdir().expect("temporary folder");
    let unwritable = dir.path().join("no-such-folder").join("r.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--pipeline", "10000000"], "--pipeline 10000000 is more than"),
        (vec!["--duration", "1e20"], "must be a number of seconds"),
        (vec!["--rate", "1e300"], "--rate"),
        (
            vec!["--compare", "127.0.0.1:9", "--csv", "x.csv"],
            "--csv and --hgrm describe one run",
        ),
        (vec!["--json", unwritable.to_str().expect("path")], "cannot write"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["--target", "127.0.0.1:9"];
        args.extend(extra.iter().copied());
        let out = bench(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}\n{}", text(&out));
        assert!(
            text(&out).contains(expected),
            "{args:?}: expected {expected:?}\n{}",
            text(&out)
        );
        assert!(!text(&out).contains("panicked"), "{}", text(&out));
    }
    // A listener that never answers is not a PostgreSQL server: the
    // startup handshake gives up after --timeout instead of hanging.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            match s {
                Ok(s) => held.push(s),
                Err(_) => return,
            }
        }
    });
    let started = std::time::Instant::now();
    let out = bench(&[
        "--target",
        &target(port),
        "--protocol",
        "postgres",
        "--duration",
        "1",
        "--connections",
        "1",
        "--timeout",
        "0.3",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("PostgreSQL startup"), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the handshake did not give up"
    );
}

#[test]
fn resp_load_logs_in_with_password_and_a_wrong_one_is_a_clear_error() {
    let server = LumaServer::start(ServerOptions::default().config("[server]\nrequirepass = \"bench-pw\"\n"));
    let dir = tempfile::tempdir().expect("temporary folder");
    let t = target(server.redis_port());
    let common = [
        "--target",
        t.as_str(),
        "--connections",
        "2",
        "--duration",
        "0.5",
        "--preload",
        "--keyspace",
        "500",
        "--verify",
    ];
    let mut args = common.to_vec();
    args.extend(["--password", "bench-pw"]);
    let v = bench_ok(&args, &dir.path().join("auth.json"));
    assert_clean(&v);
    let mut args = common.to_vec();
    args.extend(["--password", "wrong"]);
    let out = bench(&args);
    assert!(!out.status.success(), "a wrong password passed: {}", text(&out));
    assert!(text(&out).contains("AUTH refused: -WRONGPASS"), "{}", text(&out));
}
