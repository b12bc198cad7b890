//! End-to-end tests, one module per area, all in this one test binary.

mod boundaries;
mod cli;
mod engine_kill;
