//! `lumadb config …`: configuration files.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use lumadb_shard::config::Config;

/// Exit status of `config validate` for a file that is not a valid
/// configuration (missing, unreadable, malformed or out of range).
pub const EXIT_INVALID: u8 = 2;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check FILE and print the effective settings (exit status 2 if it is invalid).
    Validate {
        /// The configuration file, e.g. /etc/lumadb/config.toml.
        file: PathBuf,
    },
}

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Validate { file } => validate(file),
    }
}

fn validate(file: PathBuf) -> anyhow::Result<ExitCode> {
    tracing::debug!(file = %file.display(), "validating configuration");
    let config = match Config::load(&file) {
        Ok(config) => config,
        Err(error) => {
            // The error names the file, and the key or line at fault.
            eprintln!("{error}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let mut shown = config.clone();
    if !shown.server.requirepass.is_empty() {
        // Settings get pasted into tickets and CI logs; the password stays out.
        shown.server.requirepass = "(set)".to_string();
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: ok", file.display())
        .and_then(|()| writeln!(out, "# effective settings (defaults filled in)"))
        .and_then(|()| write!(out, "{}", shown.to_toml()))
        .context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
