//! The admin routes over a fake backend: a plain struct with canned reports
//! that records what it was asked to do.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use bytes::BytesMut;
use hdrhistogram::Histogram;
use lumadb_engine::compaction::LevelStat;
use lumadb_engine::db::{Counters, EngineStats, KeyspaceStats, MemoryUsage};
use serde_json::{json, Value};

use super::metrics::check;
use super::*;
use crate::http::{decode, HttpLimits};

struct Fake {
    read_only: Cell<bool>,
    ready: bool,
    poisoned: Vec<PoisonedShard>,
    log_level: RefCell<String>,
    compactions: RefCell<Vec<CompactionRequest>>,
    patched: RefCell<Vec<String>>,
    shards: usize,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            read_only: Cell::new(false),
            ready: true,
            poisoned: Vec::new(),
            log_level: RefCell::new("info".into()),
            compactions: RefCell::new(Vec::new()),
            patched: RefCell::new(Vec::new()),
            shards: 2,
        }
    }
}

fn engine_stats(shard: usize) -> EngineStats {
    let s = shard as u64;
    EngineStats {
        keyspaces: vec![KeyspaceStats {
            name: "default".into(),
            memtable_bytes: 1000,
            immutable_memtables: 0,
            levels: vec![
                LevelStat {
                    level: 0,
                    files: 3,
                    bytes: 3 << 20,
                    score: 0.75,
                    target_bytes: 0,
                },
                LevelStat {
                    level: 1,
                    files: 5,
                    bytes: 10 << 20,
                    score: 1.5,
                    target_bytes: 64 << 20,
                },
            ],
            pending_compaction_bytes: 1234 + s,
        }],
        counters: Counters {
            user_bytes_written: 100,
            writes: 40 + s,
            write_groups: 10 + s,
            wal_bytes_written: 4096,
            wal_syncs: 7,
            flushes: 1,
            flush_bytes_written: 200,
            compactions: 2,
            compaction_bytes_read: 300,
            compaction_bytes_written: 250,
            tables_dropped_by_range_delete: 3,
            write_stalls: 0,
        },
        write_amplification: 4.5,
        block_cache_hits: 90,
        block_cache_requests: 100,
        row_cache_hits: 5,
        row_cache_requests: 10,
        visible_seq: 77,
        wal_segments: 1,
        wal_bytes: 4096,
    }
}

fn memory(shard: usize) -> MemoryUsage {
    MemoryUsage {
        memtables: 100 + shard as u64,
        block_cache: 200,
        row_cache: 300,
        indexes: 400,
        other: 500,
    }
}

impl AdminBackend for Fake {
    async fn status(&self) -> StatusReport {
        StatusReport {
            version: "0.1.0".into(),
            uptime_seconds: 42,
            sync_mode: "sync".into(),
            read_only: self.read_only.get(),
            shards: (0..self.shards)
                .map(|id| ShardStatus {
                    id,
                    cpu: Some(id),
                    numa_node: Some(0),
                    keys: 10 * id as u64,
                    connections: 1,
                })
                .collect(),
            ports: BTreeMap::from([("http".to_string(), 8080), ("redis".to_string(), 6379)]),
        }
    }

    async fn metrics(&self) -> MetricsReport {
        MetricsReport {
            version: "0.1.0".into(),
            uptime_seconds: 42,
            log_lines_dropped: 0,
            shards: (0..self.shards)
                .map(|shard| {
                    let mut latency_us = Histogram::<u64>::new(3).expect("histogram");
                    for v in [80, 120, 900, 1500, 40_000] {
                        latency_us.record(v + shard as u64).expect("in range");
                    }
                    ShardMetrics {
                        shard,
                        cpu: Some(shard),
                        keys: 1000,
                        connections_current: 3,
                        connections_total: 9,
                        commands: vec![
                            CommandCount {
                                command: "GET".into(),
                                status: CommandStatus::Ok,
                                count: 5,
                            },
                            CommandCount {
                                command: "we\"ird\\cmd\n".into(),
                                status: CommandStatus::Error,
                                count: 1,
                            },
                        ],
                        latency_us,
                        engine: engine_stats(shard),
                        memory: memory(shard),
                        memory_limit_bytes: 1 << 30,
                    }
                })
                .collect(),
        }
    }

    async fn memory(&self) -> MemoryReport {
        MemoryReport {
            shards: (0..self.shards)
                .map(|shard| ShardMemory {
                    shard,
                    usage: memory(shard),
                    limit_bytes: 1000,
                })
                .collect(),
        }
    }

    async fn compaction(&self) -> CompactionReport {
        CompactionReport {
            shards: (0..self.shards)
                .map(|s| ShardCompaction::from_stats(s, false, &engine_stats(s)))
                .collect(),
        }
    }

    async fn start_compaction(&self, req: CompactionRequest) -> Result<CompactionReport, CompactionError> {
        if let CompactionRequest::Shard(s) = req {
            if s >= self.shards {
                return Err(CompactionError::NoSuchShard {
                    shard: s,
                    shards: self.shards,
                });
            }
        }
        if !self.poisoned.is_empty() {
            return Err(CompactionError::Unavailable("shard 1 is poisoned".into()));
        }
        self.compactions.borrow_mut().push(req);
        Ok(CompactionReport {
            shards: (0..self.shards)
                .map(|s| {
                    let running = req == CompactionRequest::All || req == CompactionRequest::Shard(s);
                    ShardCompaction::from_stats(s, running, &engine_stats(s))
                })
                .collect(),
        })
    }

    async fn set_read_only(&self, on: bool) {
        self.read_only.set(on);
    }

    fn config(&self) -> Value {
        json!({
            "server": { "log_level": *self.log_level.borrow() },
            "memory": { "block_cache_size": 536870912u64 },
        })
    }

    fn check_config(&self, key: &str, value: &Value) -> ConfigChange {
        match key {
            "log_level" => match value.as_str() {
                Some("trace" | "debug" | "info" | "warn" | "error") => ConfigChange::Applied,
                _ => ConfigChange::Invalid("expected one of trace, debug, info, warn, error".into()),
            },
            "block_cache_size" => ConfigChange::NeedsRestart,
            _ => ConfigChange::Unknown,
        }
    }

    fn patch_config(&self, key: &str, value: &Value) -> ConfigChange {
        self.patched.borrow_mut().push(key.to_string());
        if key == "log_level" {
            *self.log_level.borrow_mut() = value.as_str().unwrap_or_default().to_string();
        }
        ConfigChange::Applied
    }

    fn ready(&self) -> bool {
        self.ready
    }

    fn health(&self) -> HealthReport {
        HealthReport {
            read_only: self.read_only.get(),
            poisoned_shards: self.poisoned.clone(),
        }
    }
}

/// Decodes `raw` as the server would, answers it, and returns the response.
fn call(fake: &Fake, raw: &str) -> HttpResponse {
    let mut buf = BytesMut::from(raw.as_bytes());
    let req = decode(&mut buf, &HttpLimits::default())
        .expect("valid request")
        .expect("complete request");
    futures_lite::future::block_on(handle(&req, fake))
}

fn get(fake: &Fake, path: &str) -> HttpResponse {
    call(fake, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
}

fn send(fake: &Fake, method: &str, path: &str, body: &str) -> HttpResponse {
    call(
        fake,
        &format!(
            "{method} {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn body(resp: &HttpResponse) -> Value {
    assert_eq!(resp.content_type, "application/json", "status {}", resp.status);
    serde_json::from_slice(&resp.body).expect("JSON body")
}

#[test]
fn health_reports_poisoned_shards() {
    let mut fake = Fake::new();
    let resp = get(&fake, "/health");
    assert_eq!(resp.status, 200);
    assert_eq!(
        body(&resp),
        json!({"status": "healthy", "read_only": false, "poisoned_shards": []})
    );

    fake.poisoned = vec![PoisonedShard {
        shard: 1,
        error: "fdatasync failed: EIO".into(),
    }];
    let resp = get(&fake, "/health");
    assert_eq!(resp.status, 503);
    let b = body(&resp);
    assert_eq!(b["status"], "unhealthy");
    assert_eq!(b["poisoned_shards"][0]["shard"], 1);
    assert_eq!(b["poisoned_shards"][0]["error"], "fdatasync failed: EIO");
    assert!(b["error"].as_str().unwrap().contains("shard 1: fdatasync failed: EIO"));
}

#[test]
fn ready_follows_backend() {
    let mut fake = Fake::new();
    assert_eq!(get(&fake, "/ready").status, 200);
    fake.ready = false;
    let resp = get(&fake, "/ready");
    assert_eq!(resp.status, 503);
    assert_eq!(body(&resp), json!({"ready": false}));
}

#[test]
fn status_body() {
    let fake = Fake::new();
    let b = body(&get(&fake, "/status"));
    assert_eq!(b["version"], "0.1.0");
    assert_eq!(b["uptime_seconds"], 42);
    assert_eq!(b["sync_mode"], "sync");
    assert_eq!(b["read_only"], false);
    assert_eq!(b["ports"]["http"], 8080);
    assert_eq!(
        b["shards"][1],
        json!({"id": 1, "cpu": 1, "numa_node": 0, "keys": 10, "connections": 1})
    );
}

#[test]
fn memory_body_has_totals_and_shards() {
    let fake = Fake::new();
    let b = body(&get(&fake, "/admin/memory"));
    assert_eq!(b["memtables"], 201);
    assert_eq!(b["block_cache"], 400);
    assert_eq!(b["row_cache"], 600);
    assert_eq!(b["indexes"], 800);
    assert_eq!(b["other"], 1000);
    assert_eq!(b["total_bytes"], 201 + 400 + 600 + 800 + 1000);
    assert_eq!(b["limit_bytes"], 2000);
    assert_eq!(
        b["shards"][1],
        json!({"shard": 1, "total_bytes": 1501, "memtables": 101, "block_cache": 200, "row_cache": 300,
               "indexes": 400, "other": 500, "limit_bytes": 1000})
    );
}

#[test]
fn compaction_get_and_post() {
    let fake = Fake::new();
    let b = body(&get(&fake, "/admin/compaction"));
    assert_eq!(b["shards"][0]["pending_bytes"], 1234);
    assert_eq!(b["shards"][0]["running"], false);
    assert_eq!(b["shards"][0]["keyspaces"][0]["name"], "default");
    assert_eq!(
        b["shards"][0]["keyspaces"][0]["levels"][1],
        json!({"level": 1, "files": 5, "bytes": 10 << 20, "score": 1.5, "target_bytes": 64 << 20})
    );

    let resp = send(&fake, "POST", "/admin/compaction", "{\"shard\": 1}");
    assert_eq!(resp.status, 202);
    let b = body(&resp);
    assert_eq!(b["requested"], json!({"shard": 1}));
    assert_eq!(b["shards"][0]["running"], false);
    assert_eq!(b["shards"][1]["running"], true);

    let resp = call(&fake, "POST /admin/compaction HTTP/1.1\r\n\r\n");
    assert_eq!(resp.status, 202);
    assert_eq!(body(&resp)["requested"], "all");
    assert_eq!(send(&fake, "POST", "/admin/compaction", "{\"all\": true}").status, 202);
    assert_eq!(
        *fake.compactions.borrow(),
        vec![
            CompactionRequest::Shard(1),
            CompactionRequest::All,
            CompactionRequest::All
        ]
    );

    let resp = send(&fake, "POST", "/admin/compaction", "{\"shard\": 9}");
    assert_eq!(resp.status, 404);
    assert!(body(&resp)["error"].as_str().unwrap().contains("shard 9"));
    for bad in [
        "{\"shard\": -1}",
        "{\"shard\": \"x\"}",
        "{\"all\": false}",
        "{\"shard\": 1, \"all\": true}",
        "{\"level\": 2}",
        "[1]",
        "{not json",
    ] {
        let resp = send(&fake, "POST", "/admin/compaction", bad);
        assert_eq!(resp.status, 400, "{bad}");
        assert!(body(&resp)["error"].is_string());
    }
    assert_eq!(fake.compactions.borrow().len(), 3, "bad requests start nothing");

    let mut fake = Fake::new();
    fake.poisoned = vec![PoisonedShard {
        shard: 1,
        error: "x".into(),
    }];
    assert_eq!(send(&fake, "POST", "/admin/compaction", "{}").status, 503);
}

#[test]
fn read_only_toggles() {
    let fake = Fake::new();
    let resp = send(
        &fake,
        "POST",
        "/admin/read-only",
        "{\"enabled\": true, \"reason\": \"Emergency maintenance\"}",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(
        body(&resp),
        json!({"read_only": true, "reason": "Emergency maintenance"})
    );
    assert!(fake.read_only.get());
    assert_eq!(body(&get(&fake, "/health"))["read_only"], true);
    // curl -d without a content type sends form encoding.
    let raw = "POST /admin/read-only HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
               Content-Length: 18\r\n\r\n{\"enabled\": false}";
    assert_eq!(body(&call(&fake, raw)), json!({"read_only": false}));
    assert!(!fake.read_only.get());

    for bad in [
        "",
        "{}",
        "{\"enabled\": 1}",
        "{\"enabled\": true, \"x\": 1}",
        "{\"enabled\": true, \"reason\": 3}",
    ] {
        assert_eq!(send(&fake, "POST", "/admin/read-only", bad).status, 400, "{bad:?}");
    }
    let raw = "POST /admin/read-only HTTP/1.1\r\nContent-Type: application/xml\r\nContent-Length: 2\r\n\r\n<a";
    assert_eq!(call(&fake, raw).status, 415);
}

#[test]
fn config_get_and_patch() {
    let fake = Fake::new();
    assert_eq!(body(&get(&fake, "/admin/config"))["server"]["log_level"], "info");

    let resp = send(&fake, "PATCH", "/admin/config", "{\"log_level\": \"debug\"}");
    assert_eq!(resp.status, 200);
    assert_eq!(body(&resp), json!({"applied": {"log_level": "debug"}}));
    assert_eq!(body(&get(&fake, "/admin/config"))["server"]["log_level"], "debug");

    // Restart-only: 409, named, nothing applied.
    let resp = send(
        &fake,
        "PATCH",
        "/admin/config",
        "{\"log_level\": \"warn\", \"block_cache_size\": 268435456}",
    );
    assert_eq!(resp.status, 409);
    let b = body(&resp);
    assert_eq!(b["requires_restart"], json!(["block_cache_size"]));
    assert!(b["error"].as_str().unwrap().contains("requires restart"));
    assert_eq!(*fake.log_level.borrow(), "debug");

    // Unknown and invalid: 400 naming each, nothing applied.
    let resp = send(
        &fake,
        "PATCH",
        "/admin/config",
        "{\"log_level\": \"loud\", \"no_such_key\": 1, \"block_cache_size\": 1}",
    );
    assert_eq!(resp.status, 400);
    let b = body(&resp);
    assert_eq!(b["unknown_keys"], json!(["no_such_key"]));
    assert!(b["invalid"]["log_level"].as_str().unwrap().contains("expected one of"));
    let err = b["error"].as_str().unwrap();
    assert!(err.contains("no_such_key") && err.contains("log_level"), "{err}");
    assert_eq!(*fake.patched.borrow(), vec!["log_level".to_string()]);

    for bad in ["", "{}", "[]", "\"x\"", "{oops"] {
        assert_eq!(send(&fake, "PATCH", "/admin/config", bad).status, 400, "{bad:?}");
    }
}

#[test]
fn unknown_paths_and_methods() {
    let fake = Fake::new();
    let resp = get(&fake, "/nope");
    assert_eq!(resp.status, 404);
    assert!(body(&resp)["error"].as_str().unwrap().contains("/nope"));

    let resp = send(&fake, "DELETE", "/admin/config", "");
    assert_eq!(resp.status, 405);
    assert_eq!(
        resp.headers,
        vec![("Allow".to_string(), "GET, PATCH, HEAD".to_string())]
    );
    let resp = get(&fake, "/admin/read-only");
    assert_eq!(resp.status, 405);
    assert_eq!(resp.headers, vec![("Allow".to_string(), "POST".to_string())]);
    assert_eq!(call(&fake, "BREW /health HTTP/1.1\r\n\r\n").status, 405);

    // A trailing slash is the same route.
    assert_eq!(get(&fake, "/health/").status, 200);
    assert_eq!(get(&fake, "/").status, 404);
}

#[test]
fn head_and_keep_alive() {
    let fake = Fake::new();
    let resp = call(&fake, "HEAD /status HTTP/1.1\r\n\r\n");
    assert_eq!(resp.status, 200);
    let mut out = Vec::new();
    resp.encode(&mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("\r\n\r\n"), "HEAD has no body: {text}");
    assert!(!text.contains("Content-Length: 0\r\n"), "{text}");

    let resp = call(&fake, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(resp.close);
    let resp = call(&fake, "GET /health HTTP/1.0\r\n\r\n");
    assert!(resp.close);
    let resp = get(&fake, "/health");
    assert!(!resp.close);
}

#[test]
fn metrics_exposition_is_valid() {
    let fake = Fake::new();
    let resp = get(&fake, "/metrics");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_type, "text/plain; version=0.0.4; charset=utf-8");
    let text = String::from_utf8(resp.body).unwrap();
    let samples = check::validate(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    let find = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
            .unwrap_or_else(|| panic!("no {name} {labels:?}"))
            .value
    };
    for family in [
        "lumadb_up",
        "lumadb_uptime_seconds",
        "lumadb_requests_total",
        "lumadb_query_duration_seconds",
        "lumadb_cache_hits",
        "lumadb_cache_requests",
        "lumadb_memory_bytes",
        "lumadb_memory_limit_bytes",
        "lumadb_connections",
        "lumadb_connections_total",
        "lumadb_keys",
        "lumadb_wal_syncs_total",
        "lumadb_wal_write_groups_total",
        "lumadb_wal_writes_total",
        "lumadb_wal_bytes_written_total",
        "lumadb_compaction_pending_bytes",
        "lumadb_write_stalls_total",
        "lumadb_log_lines_dropped_total",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "missing {family}");
    }
    assert_eq!(find("lumadb_up", &[]), 1.0);
    assert_eq!(
        find(
            "lumadb_requests_total",
            &[("method", "GET"), ("status", "ok"), ("shard", "1")]
        ),
        5.0
    );
    // Label escaping round-trips through the checker's parser.
    assert_eq!(
        find(
            "lumadb_requests_total",
            &[("method", "we\"ird\\cmd\n"), ("status", "error"), ("shard", "0")]
        ),
        1.0
    );
    assert_eq!(find("lumadb_cache_hits", &[("cache", "block"), ("shard", "0")]), 90.0);
    assert_eq!(find("lumadb_cache_requests", &[("cache", "row"), ("shard", "1")]), 10.0);
    assert_eq!(
        find("lumadb_memory_bytes", &[("component", "memtables"), ("shard", "1")]),
        101.0
    );
    assert_eq!(find("lumadb_wal_write_groups_total", &[("shard", "1")]), 11.0);
    assert_eq!(find("lumadb_wal_writes_total", &[("shard", "1")]), 41.0);
    assert_eq!(find("lumadb_compaction_pending_bytes", &[("shard", "1")]), 1235.0);
    assert_eq!(find("lumadb_query_duration_seconds_count", &[("shard", "0")]), 5.0);
    assert_eq!(
        find(
            "lumadb_query_duration_seconds_bucket",
            &[("shard", "0"), ("le", "0.001")]
        ),
        3.0
    );
    assert_eq!(
        find(
            "lumadb_query_duration_seconds_bucket",
            &[("shard", "0"), ("le", "0.0001")]
        ),
        1.0
    );
}
