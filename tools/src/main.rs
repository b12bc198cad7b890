//! `lumadb`: the one binary of LumaDB. Each subcommand lives in its own
//! module; this file parses the command line, sets up logging to stderr and
//! dispatches. Only subcommands that work are listed in [`Command`].

mod bench;
mod config;
mod server;
mod tune;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc: per-thread heaps suit one executor per core, and the data
/// path allocates small keys and values on every request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Load a server (`lumadb bench --target HOST:PORT`), or run another benchmark.
    Bench(Box<bench::BenchArgs>),
    /// Start the server (Redis on 6379, admin HTTP on 8080, data in ./lumadb-data).
    Start(server::StartArgs),
    /// Check that a running server answers (through its admin API).
    Ping(server::RemoteArgs),
    /// Print a running server's health; exits non-zero when unhealthy.
    Health(server::RemoteArgs),
    /// Stop a running server (graceful by default).
    Shutdown(server::ShutdownArgs),
    /// Check the host's settings for LumaDB; fix them with --apply.
    Tune(tune::TuneArgs),
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
    if let Command::Start(args) = cli.command {
        // The server installs its own logging (files in the log dir).
        return match server::start(args) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(cli.log_level.filter())
        .init();

    let result = match cli.command {
        Command::Config(command) => config::run(command),
        Command::Bench(args) => bench::run(*args),
        Command::Tune(args) => tune::run(args),
        Command::Ping(remote) => server::ping(remote),
        Command::Health(remote) => server::health(remote),
        Command::Shutdown(args) => server::shutdown(args),
        Command::Start(_) => unreachable!("handled above"),
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
