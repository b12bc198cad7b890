//! `lumadb`: the one binary of LumaDB. Each subcommand lives in its own
//! module; this file parses the command line, sets up logging to stderr and
//! dispatches. Only subcommands that work are listed in [`Command`].

mod bench;
mod config;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// LumaDB: one database server per machine that speaks the wire protocols of the databases it replaces.
#[derive(Debug, Parser)]
#[command(name = "lumadb", version, propagate_version = true)]
struct Cli {
    /// How much to log (to stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Info)]
    log_level: LogLevel,

    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Work with configuration files.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Run benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn filter(self) -> tracing_subscriber::filter::LevelFilter {
        use tracing_subscriber::filter::LevelFilter;
        match self {
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(cli.log_level.filter())
        .init();

    let result = match cli.command {
        Command::Config(command) => config::run(command),
        Command::Bench(command) => bench::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
