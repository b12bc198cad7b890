//! The admin HTTP API and the commands that use it (`lumadb ping`,
//! `lumadb health`, `lumadb shutdown`), log files and their reopening,
//! against a real server.

use std::process::{Command, Output};
use std::time::Duration;

use lumadb_tests::lumadb_bin;
use lumadb_tests::server::{eventually, LumaServer, ServerOptions};

fn lumadb(args: &[&str]) -> Output {
    Command::new(lumadb_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running lumadb {args:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn health_ready_status_and_memory() {
    let s = LumaServer::start(ServerOptions::default().shards(2));
    s.cli(&["SET", "a", "1"]);
    let health = s.http("GET", "/health", None);
    assert_eq!(health.status, 200, "{}", health.body);
    let h = health.json();
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(h["read_only"], false, "{h}");
    assert_eq!(h["poisoned_shards"], serde_json::json!([]), "{h}");
    let ready = s.http("GET", "/ready", None);
    assert_eq!((ready.status, ready.json()), (200, serde_json::json!({"ready": true})));
    let status = s.http("GET", "/status", None).json();
    assert_eq!(
        status["version"].as_str().map(|v| !v.is_empty()),
        Some(true),
        "{status}"
    );
    assert!(status["uptime_seconds"].is_u64(), "{status}");
    assert_eq!(status["read_only"], false, "{status}");
    assert!(status["sync_mode"].is_string(), "{status}");
    assert_eq!(status["ports"]["redis"], s.redis_port(), "{status}");
    assert_eq!(status["ports"]["http"], s.http_port(), "{status}");
    let shards = status["shards"].as_array().expect("shards array");
    assert_eq!(shards.len(), 2, "{status}");
    for (i, sh) in shards.iter().enumerate() {
        assert_eq!(sh["id"], i, "{status}");
        for field in ["keys", "connections"] {
            assert!(sh[field].is_u64(), "shard {i} lacks {field}: {status}");
        }
    }
    let memory = s.http("GET", "/admin/memory", None);
    assert_eq!(memory.status, 200, "{}", memory.body);
    let m = memory.json();
    for field in [
        "total_bytes",
        "memtables",
        "block_cache",
        "row_cache",
        "indexes",
        "other",
        "limit_bytes",
    ] {
        assert!(m[field].is_u64(), "/admin/memory lacks {field}: {m}");
    }
    assert_eq!(m["shards"].as_array().map(Vec::len), Some(2), "{m}");
    assert_eq!(s.http("GET", "/nosuch", None).status, 404);
    assert_eq!(s.http("DELETE", "/health", None).status, 405);
}

#[test]
fn metrics_count_requests_with_a_shard_label() {
    let s = LumaServer::start(ServerOptions::default().shards(2));
    let mut c = s.conn();
    for i in 0..50 {
        c.call(&["SET", format!("k{i}").as_str(), "v"]);
        c.call(&["PING"]);
    }
    let metrics = s.http("GET", "/metrics", None);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{}",
        metrics.headers
    );
    let body = &metrics.body;
    let requests: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("lumadb_requests_total{"))
        .collect();
    // Requests count on the shard serving the connection.
    assert!(
        !requests.is_empty() && requests.iter().all(|l| l.contains("shard=\"")),
        "lumadb_requests_total without shard labels:\n{body}"
    );
    let total: f64 = requests
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        total >= 100.0,
        "lumadb_requests_total sums to {total} after 100 commands:\n{body}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("lumadb_query_duration_seconds_bucket{")),
        "no latency histogram:\n{body}"
    );
    assert!(
        body.contains("# TYPE lumadb_query_duration_seconds histogram"),
        "{body}"
    );
}

#[test]
fn config_patch_applies_runtime_keys_only() {
    let s = LumaServer::start(ServerOptions::default());
    let r = s.http("PATCH", "/admin/config", Some(r#"{"log_level":"debug"}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["applied"]["log_level"], "debug", "{}", r.body);
    assert_eq!(
        s.http("GET", "/admin/config", None).json()["server"]["log_level"],
        "debug"
    );
    let r = s.http("PATCH", "/admin/config", Some(r#"{"redis_port":7000}"#));
    assert_eq!(r.status, 409, "{}", r.body);
    let j = r.json();
    assert_eq!(j["requires_restart"], serde_json::json!(["redis_port"]), "{j}");
    assert!(j["error"].as_str().unwrap_or_default().contains("restart"), "{j}");
    let r = s.http("PATCH", "/admin/config", Some(r#"{"no_such_key":1}"#));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.http("PATCH", "/admin/config", Some(r#"{"log_level":"loud"}"#));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        s.http("GET", "/admin/config", None).json()["server"]["log_level"],
        "debug"
    );
}

#[test]
fn manual_compaction_is_accepted() {
    let s = LumaServer::start(ServerOptions::default().shards(2));
    for i in 0..100 {
        s.cli(&["SET", &format!("c{i}"), "v"]);
    }
    let r = s.http("POST", "/admin/compaction", None);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["shards"].as_array().map(Vec::len), Some(2), "{}", r.body);
    let r = s.http("POST", "/admin/compaction", Some(r#"{"shard":7}"#));
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(s.http("GET", "/admin/compaction", None).status, 200);
    assert_eq!(s.cli(&["GET", "c42"]).trim(), "\"v\"");
}

#[test]
fn ping_health_and_graceful_shutdown_commands() {
    let mut s = LumaServer::start(ServerOptions::default());
    let port = s.http_port().to_string();
    let ping = lumadb(&["ping", "--port", &port]);
    assert_eq!(ping.status.code(), Some(0), "{}", text(&ping));
    assert!(text(&ping).contains("PONG"), "{}", text(&ping));
    let health = lumadb(&["health", "--port", &port]);
    assert_eq!(health.status.code(), Some(0), "{}", text(&health));
    assert!(text(&health).contains("healthy"), "{}", text(&health));
    s.cli(&["SET", "k", "v"]);
    let stop = lumadb(&["shutdown", "--port", &port, "--graceful", "--timeout", "10"]);
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop));
    let status = s.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "server exit after shutdown:\n{}", s.output());
    // Nothing listens now: ping fails.
    let ping = lumadb(&["ping", "--port", &port]);
    assert_ne!(ping.status.code(), Some(0), "{}", text(&ping));
    s.restart();
    assert_eq!(s.cli(&["GET", "k"]).trim(), "\"v\"", "data after a graceful shutdown");
}

#[test]
fn sighup_reopens_log_files() {
    let s = LumaServer::start(ServerOptions::default());
    let log = s.log_dir().join("server.log");
    assert!(
        eventually(Duration::from_secs(10), || log.exists()),
        "no server.log in {}",
        s.log_dir().display()
    );
    let rotated = s.log_dir().join("server.log.1");
    std::fs::rename(&log, &rotated).expect("rename server.log");
    s.signal("HUP");
    assert!(
        eventually(Duration::from_secs(10), || log.exists()),
        "SIGHUP did not create a new server.log\n{}",
        s.output()
    );
    // Make the server log something: a runtime config change is logged.
    let r = s.http("PATCH", "/admin/config", Some(r#"{"log_level":"debug"}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    for i in 0..20 {
        s.cli(&["SET", &format!("k{i}"), "v"]);
    }
    assert!(
        eventually(Duration::from_secs(10), || std::fs::metadata(&log)
            .map(|m| m.len() > 0)
            .unwrap_or(false)),
        "the new server.log stayed empty; old one:\n{}",
        std::fs::read_to_string(&rotated).unwrap_or_default()
    );
}

#[test]
fn slow_queries_are_logged() {
    let s = LumaServer::start(ServerOptions::default().config("[server]\nslow_query_ms = 0\n"));
    s.cli(&["SET", "slowkey", "v"]);
    assert!(
        eventually(Duration::from_secs(10), || s.log("slow-query").contains("SET")
            || s.log("slow-query").contains("set")),
        "slow-query.log has no SET line:\n{}\n--- files: {:?}",
        s.log("slow-query"),
        std::fs::read_dir(s.log_dir()).map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect::<Vec<_>>())
    );
}

/// `server.disable_thp` (default on) switches transparent huge pages off
/// for the process, as the kernel reports it, and CONFIG GET shows it
/// under Redis's name.
#[test]
fn transparent_huge_pages_are_off_unless_configured_on() {
    let thp = |s: &LumaServer| {
        let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:").map(|v| v.trim().to_string()))
            .expect("THP_enabled line")
    };
    let s = LumaServer::start(ServerOptions::default());
    assert_eq!(thp(&s), "0");
    assert_eq!(
        s.cli(&["config", "get", "disable-thp"]),
        "1) \"disable-thp\"\n2) \"yes\"\n"
    );
    let s = LumaServer::start(ServerOptions::default().config("[server]\ndisable_thp = false\n"));
    assert_eq!(thp(&s), "1");
    assert_eq!(
        s.cli(&["config", "get", "disable-thp"]),
        "1) \"disable-thp\"\n2) \"no\"\n"
    );
}

/// FLUSHALL over data already in tables drops those tables whole (a
/// metric counts them, the data dir loses them) instead of compacting
/// them, and nothing comes back after a kill -9.
#[test]
fn flushall_drops_the_tables_it_deletes() {
    let mut s = LumaServer::start(ServerOptions::default().config("[memory]\nmemtable_size = \"1MiB\"\n"));
    let mut c = s.conn();
    let value = "v".repeat(200);
    for batch in 0..40 {
        let mut args = vec!["MSET".to_string()];
        for i in 0..500 {
            args.push(format!("key:{batch:03}:{i:04}"));
            args.push(value.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        c.call(&args);
        // Collections too, so the generation counter is in the tables.
        c.call(&["RPUSH", format!("list:{batch:03}").as_str(), "a", "b", "c"]);
        c.call(&["HSET", format!("hash:{batch:03}").as_str(), "f", "v"]);
    }
    let tables = |s: &LumaServer| {
        walk(&s.data_dir())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "sst"))
            .count()
    };
    assert!(
        eventually(Duration::from_secs(10), || tables(&s) >= 2),
        "no tables flushed"
    );
    let dropped = |s: &LumaServer| -> f64 {
        s.http("GET", "/metrics", None)
            .body
            .lines()
            .filter(|l| l.starts_with("lumadb_tables_dropped_by_range_delete_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(dropped(&s), 0.0);
    let before = tables(&s);
    assert_eq!(s.cli(&["flushall"]), "OK\n");
    assert!(
        eventually(Duration::from_secs(10), || dropped(&s) > 0.0),
        "no table dropped; {} tables left of {before}",
        tables(&s)
    );
    assert_eq!(s.cli(&["dbsize"]), "(integer) 0\n");
    assert!(
        eventually(Duration::from_secs(10), || tables(&s) < before),
        "{} tables left of {before}",
        tables(&s)
    );
    assert_eq!(s.cli(&["set", "after", "1"]), "OK\n");
    assert_eq!(s.cli(&["rpush", "list:000", "new"]), "(integer) 1\n");
    s.kill9_and_restart_on_same_ports();
    assert_eq!(s.cli(&["dbsize"]), "(integer) 2\n");
    assert_eq!(s.cli(&["get", "key:000:0000"]), "(nil)\n");
    assert_eq!(s.cli(&["lrange", "list:000", "0", "-1"]), "1) \"new\"\n");
    assert_eq!(s.cli(&["get", "after"]), "\"1\"\n");
}

/// Every file under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
