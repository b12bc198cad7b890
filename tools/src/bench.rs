//! `lumadb bench ...`: the network load generator (`lumadb bench --target
//! HOST:PORT ...`) and the benchmark subcommands. The work is in
//! `lumadb-bench`.

use lumadb_bench::engine::EngineBenchArgs;
use lumadb_bench::net::{NetBenchArgs, PlotArgs};
use std::process::ExitCode;

/// `lumadb bench`: flags drive a server; subcommands run other benchmarks.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    #[command(flatten)]
    pub net: NetBenchArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Benchmark the storage engine on one core, in the spirit of RocksDB's db_bench.
    Engine(EngineBenchArgs),
    /// Plot the latency percentiles of `lumadb bench --json` results, overlaid (SVG).
    Plot(PlotArgs),
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(BenchCommand::Engine(args)) => {
            lumadb_bench::engine::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(BenchCommand::Plot(args)) => {
            lumadb_bench::net::plot_files(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let clean = lumadb_bench::net::run(&args.net)?;
            // Wrong answers under --verify make the run fail.
            Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
    }
}
