//! `lumadb bench ...`: benchmarks. The work is in `lumadb-bench`.

use lumadb_bench::engine::EngineBenchArgs;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Benchmark the storage engine on one core, in the spirit of RocksDB's db_bench.
    Engine(EngineBenchArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Engine(args) => {
            lumadb_bench::engine::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
