//! The admin HTTP API on shard 0: the [`AdminBackend`] that gathers
//! answers from every shard, and the connection loop that serves it.
//!
//! Besides the routes of [`crate::admin`], `POST /admin/shutdown` with
//! `{"mode": "graceful"|"force", "timeout_secs": N}` stops the server
//! (`lumadb shutdown` uses it).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lumadb_shard::conn::{Connection, Listener};
use lumadb_shard::runtime::StopMode;
use serde_json::{json, Value};

use super::{Shard, ShardRequest, ShardResponse, ShardStats};
use crate::admin::{
    self, AdminBackend, CommandCount, CommandStatus, CompactionError, CompactionReport, CompactionRequest,
    ConfigChange, HealthReport, MemoryReport, MetricsReport, PoisonedShard, ShardCompaction, ShardMemory, ShardMetrics,
    ShardStatus, StatusReport,
};
use crate::http::{self, HttpLimits, HttpRequest, HttpResponse, Method};

pub struct Admin {
    shard: Rc<Shard>,
    health: RefCell<HealthReport>,
}

impl Admin {
    async fn stats(&self) -> Vec<ShardStats> {
        let futs = (0..self.shard.shards()).map(|s| self.shard.ctx.router.call(s, ShardRequest::Stats));
        futures::future::join_all(futs)
            .await
            .into_iter()
            .filter_map(|r| match r {
                Ok(ShardResponse::Stats(s)) => Some(*s),
                _ => None,
            })
            .collect()
    }

    async fn refresh_health(&self) {
        let stats = self.stats().await;
        *self.health.borrow_mut() = HealthReport {
            read_only: self.shard.read_only.get(),
            poisoned_shards: stats
                .iter()
                .filter_map(|s| {
                    s.poisoned.as_ref().map(|e| PoisonedShard {
                        shard: s.shard,
                        error: e.clone(),
                    })
                })
                .collect(),
        };
    }

    fn sync_mode(&self) -> String {
        match self.shard.ctx.engine.options().sync_mode {
            lumadb_engine::SyncMode::Sync => "sync".into(),
            lumadb_engine::SyncMode::Interval { interval_ms } => format!("interval ({interval_ms} ms)"),
            lumadb_engine::SyncMode::None => "none".into(),
        }
    }

    /// Sends a setting to every shard (this one included) without waiting
    /// for the answers: a PATCH is answered once the value is accepted.
    fn on_every_shard(&self, request: impl Fn() -> ShardRequest) {
        for s in 0..self.shard.shards() {
            let router = self.shard.ctx.router.clone();
            let request = request();
            lumadb_shard::conn::spawn(async move {
                let _ = router.call(s, request).await;
            });
        }
    }
}

impl AdminBackend for Admin {
    async fn status(&self) -> StatusReport {
        let stats = self.stats().await;
        let mut ports = std::collections::BTreeMap::new();
        if let Some(a) = self.shard.settings.redis_addr {
            ports.insert("redis".to_string(), a.port());
        }
        if let Some(a) = self.shard.settings.http_addr {
            ports.insert("http".to_string(), a.port());
        }
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.shard.ctx.control.uptime().as_secs(),
            sync_mode: self.sync_mode(),
            read_only: self.shard.read_only.get(),
            shards: stats
                .iter()
                .map(|s| ShardStatus {
                    id: s.shard,
                    cpu: Some(s.cpu),
                    numa_node: Some(s.numa_node),
                    keys: s.keys,
                    connections: s.connections_current,
                })
                .collect(),
            ports,
        }
    }

    async fn metrics(&self) -> MetricsReport {
        let stats = self.stats().await;
        MetricsReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.shard.ctx.control.uptime().as_secs(),
            log_lines_dropped: self.shard.settings.logging.as_ref().map_or(0, |l| l.dropped_lines()),
            shards: stats
                .into_iter()
                .map(|s| ShardMetrics {
                    shard: s.shard,
                    cpu: Some(s.cpu),
                    keys: s.keys,
                    connections_current: s.connections_current,
                    connections_total: s.connections_total,
                    commands: s
                        .commands
                        .iter()
                        .flat_map(|(name, ok, err)| {
                            [
                                CommandCount {
                                    command: name.clone(),
                                    status: CommandStatus::Ok,
                                    count: *ok,
                                },
                                CommandCount {
                                    command: name.clone(),
                                    status: CommandStatus::Error,
                                    count: *err,
                                },
                            ]
                        })
                        .filter(|c| c.count > 0)
                        .collect(),
                    latency_us: s.latency_us,
                    engine: s.engine,
                    memory: s.memory,
                    memory_limit_bytes: s.memory_limit_bytes,
                })
                .collect(),
        }
    }

    async fn memory(&self) -> MemoryReport {
        let stats = self.stats().await;
        MemoryReport {
            shards: stats
                .into_iter()
                .map(|s| ShardMemory {
                    shard: s.shard,
                    usage: s.memory,
                    limit_bytes: s.memory_limit_bytes,
                })
                .collect(),
        }
    }

    async fn compaction(&self) -> CompactionReport {
        let stats = self.stats().await;
        CompactionReport {
            shards: stats
                .iter()
                .map(|s| ShardCompaction::from_stats(s.shard, false, &s.engine))
                .collect(),
        }
    }

    async fn start_compaction(&self, req: CompactionRequest) -> Result<CompactionReport, CompactionError> {
        let shards = self.shard.shards();
        let targets: Vec<usize> = match req {
            CompactionRequest::All => (0..shards).collect(),
            CompactionRequest::Shard(s) if s < shards => vec![s],
            CompactionRequest::Shard(shard) => return Err(CompactionError::NoSuchShard { shard, shards }),
        };
        for &s in &targets {
            let router = self.shard.ctx.router.clone();
            lumadb_shard::conn::spawn(async move {
                if let Ok(ShardResponse::Text(e)) = router.call(s, ShardRequest::Compact).await {
                    tracing::error!(shard = s, error = %e, "manual compaction failed");
                }
            });
        }
        let mut report = self.compaction().await;
        for s in &mut report.shards {
            s.running = targets.contains(&s.shard);
        }
        Ok(report)
    }

    async fn set_read_only(&self, on: bool) {
        for s in 0..self.shard.shards() {
            let _ = self.shard.ctx.router.call(s, ShardRequest::SetReadOnly(on)).await;
        }
        tracing::warn!(read_only = on, "read-only mode changed through the admin API");
    }

    fn config(&self) -> Value {
        let mut v = serde_json::to_value(&self.shard.ctx.config).unwrap_or(Value::Null);
        if let Some(server) = v.get_mut("server").and_then(Value::as_object_mut) {
            if let Some(l) = &self.shard.settings.logging {
                server.insert("log_level".into(), json!(l.level()));
            }
            server.insert("slow_query_ms".into(), json!(self.shard.slow_query_ms.get()));
            server.insert("read_only".into(), json!(self.shard.read_only.get()));
            server.insert("max_clients".into(), json!(self.shard.max_clients.get()));
            server.insert("idle_timeout_secs".into(), json!(self.shard.idle_timeout_secs.get()));
            // The admin API asks no password; it does not hand one out.
            let set = !self.shard.requirepass.borrow().is_empty();
            server.insert("requirepass".into(), json!(if set { "(set)" } else { "" }));
        }
        v
    }

    fn check_config(&self, key: &str, value: &Value) -> ConfigChange {
        let key = key.strip_prefix("server.").unwrap_or(key);
        match key {
            "log_level" => match value.as_str() {
                Some(l) if lumadb_shard::config::LOG_LEVELS.contains(&l) => ConfigChange::Applied,
                _ => ConfigChange::Invalid("log_level must be one of error, warn, info, debug, trace".into()),
            },
            "slow_query_ms" => match value.as_u64() {
                Some(_) => ConfigChange::Applied,
                None => ConfigChange::Invalid("slow_query_ms must be a non-negative integer".into()),
            },
            "idle_timeout_secs" => match value.as_u64() {
                Some(n) if n <= i32::MAX as u64 => ConfigChange::Applied,
                _ => ConfigChange::Invalid("idle_timeout_secs must be a whole number of seconds (0: never)".into()),
            },
            "requirepass" => match value.as_str() {
                Some(_) => ConfigChange::Applied,
                None => ConfigChange::Invalid("requirepass must be a string (empty: no password)".into()),
            },
            "max_clients" => match value.as_u64() {
                Some(n) if (1..=lumadb_shard::config::MAX_CLIENTS_MAX).contains(&n) => ConfigChange::Applied,
                _ => ConfigChange::Invalid("max_clients must be a whole number from 1 to 1048576".into()),
            },
            _ => {
                let known = self.config().as_object().is_some_and(|sections| {
                    sections.iter().any(|(section, keys)| {
                        keys.get(key).is_some()
                            || key
                                .strip_prefix(&format!("{section}."))
                                .is_some_and(|k| keys.get(k).is_some())
                    })
                });
                if known {
                    ConfigChange::NeedsRestart
                } else {
                    ConfigChange::Unknown
                }
            }
        }
    }

    fn patch_config(&self, key: &str, value: &Value) -> ConfigChange {
        let key = key.strip_prefix("server.").unwrap_or(key);
        match key {
            "log_level" => {
                let level = value.as_str().unwrap_or("info");
                if let Some(l) = &self.shard.settings.logging {
                    if let Err(e) = l.set_level(level) {
                        return ConfigChange::Invalid(e.to_string());
                    }
                }
                tracing::info!(level, "log level changed");
                ConfigChange::Applied
            }
            // `check_config` has accepted the value (see `AdminBackend`).
            "slow_query_ms" => {
                let ms = value.as_u64().unwrap_or(100);
                self.on_every_shard(|| ShardRequest::SetSlowLog(ms));
                ConfigChange::Applied
            }
            "idle_timeout_secs" => match value.as_u64() {
                Some(secs) => {
                    self.on_every_shard(|| ShardRequest::SetIdleTimeout(secs));
                    ConfigChange::Applied
                }
                None => self.check_config(key, value),
            },
            "requirepass" => match value.as_str() {
                Some(password) => {
                    self.on_every_shard(|| ShardRequest::SetRequirePass(password.to_string()));
                    tracing::warn!("requirepass changed through the admin API");
                    ConfigChange::Applied
                }
                None => self.check_config(key, value),
            },
            "max_clients" => match value.as_u64() {
                Some(n) => {
                    self.on_every_shard(|| ShardRequest::SetMaxClients(n));
                    ConfigChange::Applied
                }
                None => self.check_config(key, value),
            },
            _ => self.check_config(key, value),
        }
    }

    fn ready(&self) -> bool {
        !self.shard.stopping.get() && self.health.borrow().poisoned_shards.is_empty()
    }

    fn health(&self) -> HealthReport {
        self.health.borrow().clone()
    }
}

pub async fn accept_loop(shard: Rc<Shard>, listener: Listener) {
    let admin = Rc::new(Admin {
        shard: shard.clone(),
        health: RefCell::new(HealthReport {
            read_only: false,
            poisoned_shards: Vec::new(),
        }),
    });
    loop {
        let conn = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                if shard.stopping.get() {
                    return;
                }
                tracing::warn!(error = %e, "admin accept failed");
                lumadb_shard::conn::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // The admin API keeps answering while the server drains (its port
        // closes when the process exits, which `lumadb shutdown` waits for).
        let admin = admin.clone();
        lumadb_shard::conn::spawn(async move { serve(admin, conn).await });
    }
}

async fn serve(admin: Rc<Admin>, mut conn: Connection) {
    let limits = HttpLimits::default();
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::new();
    let peer = conn.peer_addr();
    loop {
        let req = match http::decode(&mut buf, &limits) {
            Ok(Some(r)) => r,
            Ok(None) => match lumadb_shard::conn::timeout(Duration::from_secs(60), conn.read(&mut buf)).await {
                Some(Ok(n)) if n > 0 => continue,
                _ => break,
            },
            Err(e) => {
                e.to_response().encode(&mut out);
                let _ = conn.write_all(&out).await;
                break;
            }
        };
        let started = Instant::now();
        let resp = handle(&admin, &req).await.for_request(&req);
        out.clear();
        resp.encode(&mut out);
        tracing::info!(
            target: "lumadb::access",
            peer = %peer,
            method = ?req.method,
            path = %req.path,
            status = resp.status,
            duration_us = started.elapsed().as_micros() as u64,
            "http"
        );
        if conn.write_all(&out).await.is_err() || resp.close {
            break;
        }
    }
    conn.close().await;
}

async fn handle(admin: &Rc<Admin>, req: &HttpRequest) -> HttpResponse {
    if req.path == "/health" || req.path == "/ready" {
        admin.refresh_health().await;
    }
    if req.path == "/admin/shutdown" {
        if req.method != Method::Post {
            return HttpResponse::error(405, "use POST").with_header("Allow", "POST");
        }
        let body: Value = if req.body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(e) => return HttpResponse::error(400, &format!("invalid JSON: {e}")),
            }
        };
        let mode = body.get("mode").and_then(Value::as_str).unwrap_or("graceful");
        let timeout = Duration::from_secs(body.get("timeout_secs").and_then(Value::as_u64).unwrap_or(30));
        let stop = match mode {
            "graceful" => StopMode::Graceful { timeout },
            "force" => StopMode::Force,
            other => return HttpResponse::error(400, &format!("unknown mode {other:?}: use graceful or force")),
        };
        tracing::warn!(mode, "shutdown requested through the admin API");
        let control = admin.shard.ctx.control.clone();
        // Answer first, then stop.
        lumadb_shard::conn::spawn(async move {
            lumadb_shard::conn::sleep(Duration::from_millis(50)).await;
            control.request_stop(stop);
        });
        return HttpResponse::json(202, &json!({"shutdown": mode, "timeout_secs": timeout.as_secs()}));
    }
    admin::handle(req, admin.as_ref()).await
}
