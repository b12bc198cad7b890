//! End-to-end tests, one module per area, all in this one test binary.

mod admin_http;
mod bench_net;
mod boundaries;
mod cli;
mod engine_kill;
mod redis_auth;
mod redis_blocking;
mod redis_cli;
mod redis_concurrency;
mod redis_diff;
mod redis_faults;
mod redis_pubsub;
mod redis_py;
mod tune;
