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
//! Empty until the first protocol front-end lands.
