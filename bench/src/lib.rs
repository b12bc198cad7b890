//! # lumadb-bench: load generation and latency measurement
//!
//! The built-in load generator and latency harness behind `lumadb bench`,
//! the storage engine micro-benchmarks, and the scripts that run the same
//! workload side by side against LumaDB and the databases it replaces.
//! Latencies are recorded in HDR histograms and reported as percentiles.
//!
//! **What it is not.** It is a client of the other crates' public APIs: it
//! must never reach into engine internals or change what it measures, and
//! nothing but `lumadb-tools` and the tests may depend on it.
//!
//! Empty until the engine benchmark lands.
