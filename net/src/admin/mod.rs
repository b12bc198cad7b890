//! The HTTP admin API (port 8080): routes, request bodies and response
//! bodies, over an [`AdminBackend`] that the runtime implements by gathering
//! from every shard.
//!
//! | route | answers |
//! |-------|---------|
//! | `GET /health` | 200 `{"status":"healthy",..}`; 503 `{"status":"unhealthy",..}` naming each poisoned shard and its error |
//! | `GET /ready` | 200 `{"ready":true}`; 503 `{"ready":false}` |
//! | `GET /status` | 200 [`StatusReport`] |
//! | `GET /metrics` | 200 Prometheus text format 0.0.4 ([`metrics`]) |
//! | `GET /admin/config` | 200 the effective config, by section |
//! | `PATCH /admin/config` | see below |
//! | `GET /admin/memory` | 200 [`MemoryReport`]: totals, limit, per shard |
//! | `GET /admin/compaction` | 200 [`CompactionReport`] |
//! | `POST /admin/compaction` | 202 `{"requested":..,"shards":[..]}`; 404 no such shard; 503 unavailable |
//! | `POST /admin/read-only` | 200 `{"read_only":bool}` (an optional `"reason"` is echoed) |
//!
//! `HEAD` is answered wherever `GET` is. Unknown paths are 404, a known path
//! with another method 405 with `Allow`, a body that is not the JSON the route
//! wants 400. Every error body is `{"error": "..."}`.
//!
//! **`PATCH /admin/config`** takes a JSON object of keys and values and is
//! all or nothing: every key is checked first ([`AdminBackend::check_config`])
//! and nothing is applied unless every key can take effect now.
//! - 200 `{"applied":{key:value,..}}`: every key applied.
//! - 400 `{"error":..,"unknown_keys":[..],"invalid":{key:reason}}`: a key is
//!   unknown or a value invalid; nothing applied.
//! - 409 `{"error":..,"requires_restart":[..]}`: a key only changes with a
//!   restart (edit config.toml and restart); nothing applied. Conflict, since
//!   the request is valid but cannot take effect in the running server.

pub mod metrics;
pub mod report;

use std::future::Future;

use serde_json::{json, Map, Value};

pub use report::{
    CommandCount, CommandStatus, CompactionError, CompactionReport, CompactionRequest, ConfigChange, HealthReport,
    KeyspaceCompaction, LevelShape, MemoryReport, MetricsReport, PoisonedShard, ShardCompaction, ShardMemory,
    ShardMetrics, ShardStatus, StatusReport,
};

use crate::http::{HttpRequest, HttpResponse, Method, CONTENT_TYPE_JSON};

/// What the admin API needs from the running server. Implemented by the
/// runtime on shard 0, which gathers from the other shards with cross-shard
/// messages; the futures need not be `Send`.
pub trait AdminBackend {
    fn status(&self) -> impl Future<Output = StatusReport>;
    fn metrics(&self) -> impl Future<Output = MetricsReport>;
    fn memory(&self) -> impl Future<Output = MemoryReport>;
    fn compaction(&self) -> impl Future<Output = CompactionReport>;
    /// Starts a manual compaction and answers with the state right after,
    /// the started shards marked `running`.
    fn start_compaction(
        &self,
        req: CompactionRequest,
    ) -> impl Future<Output = Result<CompactionReport, CompactionError>>;
    fn set_read_only(&self, on: bool) -> impl Future<Output = ()>;
    /// The effective config: an object of sections, each an object of keys.
    fn config(&self) -> Value;
    /// What setting `key` to `value` would do, changing nothing (`Applied`
    /// means it would apply now).
    fn check_config(&self, key: &str, value: &Value) -> ConfigChange;
    /// Sets `key` to `value`; called only after `check_config` said `Applied`.
    fn patch_config(&self, key: &str, value: &Value) -> ConfigChange;
    fn ready(&self) -> bool;
    fn health(&self) -> HealthReport;
}

/// The methods each route accepts (HEAD is implied by GET).
const ROUTES: &[(&str, &[Method])] = &[
    ("/health", &[Method::Get]),
    ("/ready", &[Method::Get]),
    ("/status", &[Method::Get]),
    ("/metrics", &[Method::Get]),
    ("/admin/config", &[Method::Get, Method::Patch]),
    ("/admin/memory", &[Method::Get]),
    ("/admin/compaction", &[Method::Get, Method::Post]),
    ("/admin/read-only", &[Method::Post]),
];

/// Answers one admin request. The response carries the request's keep-alive
/// decision; the caller encodes it.
pub async fn handle<B: AdminBackend>(req: &HttpRequest, backend: &B) -> HttpResponse {
    route(req, backend).await.for_request(req)
}

async fn route<B: AdminBackend>(req: &HttpRequest, backend: &B) -> HttpResponse {
    let path = match req.path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => req.path.as_str(),
    };
    let Some((_, allowed)) = ROUTES.iter().find(|(p, _)| *p == path) else {
        return HttpResponse::error(404, &format!("no such endpoint: {}", req.path));
    };
    // HEAD is GET without the body; `for_request` drops the body.
    let method = if req.method == Method::Head {
        &Method::Get
    } else {
        &req.method
    };
    if !allowed.contains(method) {
        return method_not_allowed(allowed);
    }
    match (method, path) {
        (Method::Get, "/health") => health(backend),
        (Method::Get, "/ready") => {
            let ready = backend.ready();
            HttpResponse::json(if ready { 200 } else { 503 }, &json!({ "ready": ready }))
        }
        (Method::Get, "/status") => to_json(200, &backend.status().await),
        (Method::Get, "/metrics") => {
            let text = metrics::render(&backend.metrics().await);
            HttpResponse::new(200, metrics::CONTENT_TYPE_PROMETHEUS, text.into_bytes())
        }
        (Method::Get, "/admin/config") => HttpResponse::json(200, &backend.config()),
        (Method::Patch, "/admin/config") => patch_config(req, backend),
        (Method::Get, "/admin/memory") => to_json(200, &backend.memory().await),
        (Method::Get, "/admin/compaction") => to_json(200, &backend.compaction().await),
        (Method::Post, "/admin/compaction") => start_compaction(req, backend).await,
        (Method::Post, "/admin/read-only") => read_only(req, backend).await,
        // ROUTES and this match list the same pairs.
        _ => HttpResponse::error(500, &format!("route {} {path} has no handler", method.as_str())),
    }
}

fn method_not_allowed(allowed: &[Method]) -> HttpResponse {
    let mut names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    if allowed.contains(&Method::Get) {
        names.push("HEAD");
    }
    let allow = names.join(", ");
    HttpResponse::error(405, &format!("method not allowed; allowed: {allow}")).with_header("Allow", &allow)
}

fn to_json<T: serde::Serialize>(status: u16, value: &T) -> HttpResponse {
    match serde_json::to_value(value) {
        Ok(v) => HttpResponse::json(status, &v),
        Err(e) => HttpResponse::error(500, &format!("serializing the response: {e}")),
    }
}

/// The body as a JSON object; an empty body is `None`.
fn json_object(req: &HttpRequest) -> Result<Option<Map<String, Value>>, HttpResponse> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if let Some(ct) = req.header("content-type") {
        let ct = ct.to_ascii_lowercase();
        // curl -d sends form encoding by default; accept it as JSON text.
        if !(ct.starts_with(CONTENT_TYPE_JSON)
            || ct.starts_with("application/x-www-form-urlencoded")
            || ct.starts_with("text/plain"))
        {
            return Err(HttpResponse::error(415, &format!("expected a JSON body, got {ct}")));
        }
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(HttpResponse::error(400, "the body must be a JSON object")),
        Err(e) => Err(HttpResponse::error(400, &format!("invalid JSON body: {e}"))),
    }
}

fn health<B: AdminBackend>(backend: &B) -> HttpResponse {
    let report = backend.health();
    let healthy = report.healthy();
    let mut body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "read_only": report.read_only,
        "poisoned_shards": report.poisoned_shards,
    });
    if !healthy {
        let names: Vec<String> = report
            .poisoned_shards
            .iter()
            .map(|p| format!("shard {}: {}", p.shard, p.error))
            .collect();
        body["error"] = Value::String(format!("poisoned: {}", names.join("; ")));
    }
    HttpResponse::json(if healthy { 200 } else { 503 }, &body)
}

fn patch_config<B: AdminBackend>(req: &HttpRequest, backend: &B) -> HttpResponse {
    let changes = match json_object(req) {
        Ok(Some(map)) if !map.is_empty() => map,
        Ok(_) => {
            return HttpResponse::error(
                400,
                "expected a JSON object of config keys, e.g. {\"log_level\":\"debug\"}",
            )
        }
        Err(resp) => return resp,
    };
    let mut unknown = Vec::new();
    let mut invalid = Map::new();
    let mut restart = Vec::new();
    for (key, value) in &changes {
        match backend.check_config(key, value) {
            ConfigChange::Applied => {}
            ConfigChange::NeedsRestart => restart.push(key.clone()),
            ConfigChange::Unknown => unknown.push(key.clone()),
            ConfigChange::Invalid(reason) => {
                invalid.insert(key.clone(), Value::String(reason));
            }
        }
    }
    if !unknown.is_empty() || !invalid.is_empty() {
        let mut problems: Vec<String> = unknown.iter().map(|k| format!("unknown config key `{k}`")).collect();
        problems.extend(
            invalid
                .iter()
                .map(|(k, r)| format!("invalid value for `{k}`: {}", r.as_str().unwrap_or(""))),
        );
        return HttpResponse::json(
            400,
            &json!({
                "error": format!("{}; nothing applied", problems.join("; ")),
                "unknown_keys": unknown,
                "invalid": invalid,
            }),
        );
    }
    if !restart.is_empty() {
        let keys = restart.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
        return HttpResponse::json(
            409,
            &json!({
                "error": format!("{keys} requires restart: set it in config.toml and restart; nothing applied"),
                "requires_restart": restart,
            }),
        );
    }
    let mut applied = Map::new();
    for (key, value) in changes {
        match backend.patch_config(&key, &value) {
            ConfigChange::Applied => {
                applied.insert(key, value);
            }
            // The check said this key applies; the backend changed its mind.
            other => {
                return HttpResponse::json(
                    500,
                    &json!({
                        "error": format!("config key `{key}` passed its check but did not apply: {other:?}"),
                        "applied": applied,
                    }),
                )
            }
        }
    }
    HttpResponse::json(200, &json!({ "applied": applied }))
}

async fn start_compaction<B: AdminBackend>(req: &HttpRequest, backend: &B) -> HttpResponse {
    let body = match json_object(req) {
        Ok(b) => b.unwrap_or_default(),
        Err(resp) => return resp,
    };
    if let Some(key) = body.keys().find(|k| *k != "shard" && *k != "all") {
        return HttpResponse::error(
            400,
            &format!("unknown field `{key}`; expected {{\"shard\":N}} or {{\"all\":true}}"),
        );
    }
    let request = match (body.get("shard"), body.get("all")) {
        (Some(_), Some(_)) => return HttpResponse::error(400, "give either `shard` or `all`, not both"),
        (Some(shard), None) => match shard.as_u64().and_then(|s| usize::try_from(s).ok()) {
            Some(s) => CompactionRequest::Shard(s),
            None => return HttpResponse::error(400, "`shard` must be a shard number"),
        },
        (None, Some(Value::Bool(true))) | (None, None) => CompactionRequest::All,
        (None, Some(_)) => return HttpResponse::error(400, "`all` must be true (or leave it out)"),
    };
    match backend.start_compaction(request).await {
        Ok(report) => HttpResponse::json(202, &json!({ "requested": request, "shards": report.shards })),
        Err(e @ CompactionError::NoSuchShard { .. }) => HttpResponse::error(404, &e.to_string()),
        Err(e @ CompactionError::Unavailable(_)) => HttpResponse::error(503, &e.to_string()),
    }
}

async fn read_only<B: AdminBackend>(req: &HttpRequest, backend: &B) -> HttpResponse {
    let body = match json_object(req) {
        Ok(Some(b)) => b,
        Ok(None) => return HttpResponse::error(400, "expected {\"enabled\": true|false}"),
        Err(resp) => return resp,
    };
    let Some(enabled) = body.get("enabled").and_then(Value::as_bool) else {
        return HttpResponse::error(400, "`enabled` must be true or false");
    };
    let reason = match body.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return HttpResponse::error(400, "`reason` must be a string"),
    };
    if let Some(key) = body.keys().find(|k| *k != "enabled" && *k != "reason") {
        return HttpResponse::error(400, &format!("unknown field `{key}`"));
    }
    backend.set_read_only(enabled).await;
    let mut answer = json!({ "read_only": enabled });
    if let Some(reason) = reason {
        answer["reason"] = Value::String(reason);
    }
    HttpResponse::json(200, &answer)
}

#[cfg(test)]
mod tests;
