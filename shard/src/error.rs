//! The shard crate's error type.

use std::path::PathBuf;

/// Why a configuration file could not be used. Every variant names the
/// file; parse errors also carry the line and column they point at.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, a directory).
    #[error("{}: cannot read configuration file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is larger than any sensible configuration.
    #[error("{}: configuration file is {size} bytes; at most {limit} are read", path.display())]
    TooLarge { path: PathBuf, size: u64, limit: u64 },

    /// The file is not valid TOML, or a key is unknown or of the wrong type.
    #[error("{}{}: {message}{}", path.display(), location(*line, *column), excerpt(*line, source_line))]
    Parse {
        path: PathBuf,
        /// 1-based line of the offending text, when the parser knows it.
        line: Option<usize>,
        /// 1-based column (in characters) of the offending text.
        column: Option<usize>,
        message: String,
        /// The offending line as written, for the error message.
        source_line: Option<String>,
    },

    /// Every key parsed, but a value is out of its allowed range or
    /// contradicts another key.
    #[error("{}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: lumadb_engine::Error,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(": line {line}, column {column}"),
        (Some(line), None) => format!(": line {line}"),
        _ => String::new(),
    }
}

fn excerpt(line: Option<usize>, source_line: &Option<String>) -> String {
    match (line, source_line) {
        (Some(line), Some(text)) => format!("\n  {line} | {text}"),
        _ => String::new(),
    }
}
