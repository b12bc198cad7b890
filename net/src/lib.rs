//! # lumadb-net: protocol front-ends and the replication transport
//!
//! The wire protocols LumaDB speaks — Redis RESP2/RESP3, PostgreSQL v3,
//! HTTP REST/admin/metrics and GraphQL, InfluxDB line protocol, MySQL,
//! MongoDB OP_MSG, Cassandra CQL, OTLP — as sans-IO codecs
//! (`decode(&mut BytesMut) -> Result<Option<Frame>, Error>`) with thin
//! drivers that own the sockets, plus the QUIC transport that carries Raft
//! traffic between nodes. It maps errors to each protocol's own error
//! replies (RESP `-ERR`, PostgreSQL SQLSTATE) in one place.
//!
//! **What it is not.** It must never know SSTable, WAL or manifest formats,
//! nor depend on `lumadb-tools`, `lumadb-bench` or `lumadb-tuning`; it
//! reaches data only through the shard runtime's routing.
//!
//! - [`http`]: HTTP/1.1 server codec; [`admin`]: the admin API (health, status,
//!   metrics, config, memory, compaction, read-only) over an `AdminBackend`.
//!
//! It holds the sans-IO Redis layer: [`resp`] (request decoder,
//! RESP2/RESP3 reply encoder, Redis's number rules and error texts, the
//! command table) and [`glob`] (Redis's glob matching for `KEYS`/`SCAN`).
//!
//! The RESP request decoder is hand-written rather than taken from a RESP
//! crate for two reasons: clients and test suites compare error replies
//! word for word with Redis 7 (`Protocol error: invalid bulk length`,
//! `expected '$', got 'x'`, inline quoting errors), and the limits must be
//! enforced incrementally, the way Redis does: a header announcing more
//! than `proto-max-bulk-len` is rejected before its payload is buffered,
//! unterminated headers and inline requests are capped at 64 KiB, and the
//! whole query buffer is capped, so a client can never make the server
//! buffer more than the configured limits.

pub mod admin;
pub mod glob;
pub mod http;
pub mod redis;
pub mod resp;
pub mod server;
