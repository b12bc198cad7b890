//! The process configuration, `config.toml`.
//!
//! It holds the sections the storage engine owns (`[memory]`, `[wal]`,
//! `[compaction]`, defined and validated in [`lumadb_engine::config`]),
//! the server's listeners, limits and logs (`[server]`, [`ServerConfig`])
//! and the shard layout (`[shards]`, [`ShardsConfig`]). Unknown sections
//! and keys are errors, missing ones take their defaults, so an empty file
//! is a valid configuration.

use std::io::Read;
use std::path::{Path, PathBuf};

use lumadb_engine::config::{ByteSize, CompactionConfig, EngineConfig, MemoryConfig, WalConfig};
use lumadb_engine::EngineOptions;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Largest configuration file read (bytes); a bigger one is a mistake
/// (a data file passed by accident), not a configuration.
pub const CONFIG_FILE_BYTES_MAX: u64 = 1 << 20;

/// Name used in errors for configuration text that did not come from a file.
const INLINE_ORIGIN: &str = "<config>";

/// The whole of `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub memory: MemoryConfig,
    pub wal: WalConfig,
    pub compaction: CompactionConfig,
    pub server: ServerConfig,
    pub shards: ShardsConfig,
}

/// `[server]`: listeners, per-client limits and logs.
///
/// Limits take Redis's defaults, so clients see the limits they expect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address every listener binds. Default `127.0.0.1`.
    pub bind: String,
    /// Redis RESP2/RESP3 port; 0 switches the listener off. Default 6379.
    pub redis_port: u16,
    /// HTTP admin and metrics port; 0 switches it off. Default 8080.
    pub http_port: u16,
    /// Most client connections at once, over all protocols (Redis's
    /// `maxclients`). Default 10000.
    pub max_clients: u64,
    /// Close a client idle this long, in seconds; 0 never (Redis's
    /// `timeout`). Default 0.
    pub idle_timeout_secs: u64,
    /// Largest bulk string a client may send (Redis's
    /// `proto-max-bulk-len`). Default 512 MiB.
    pub max_bulk_bytes: ByteSize,
    /// Most elements in one multibulk request. Default 1048576.
    pub max_multibulk_count: u64,
    /// Most unparsed bytes buffered for one client (Redis's
    /// `client-query-buffer-limit`). Default 1 GiB.
    pub client_query_buffer_bytes: ByteSize,
    /// Log directory; empty means `<data-dir>/log`.
    pub log_dir: String,
    /// `error`, `warn`, `info`, `debug` or `trace`; changeable at runtime.
    pub log_level: String,
    /// Commands slower than this go to `slow-query.log`; changeable at
    /// runtime. Default 100.
    pub slow_query_ms: u64,
    /// Start in read-only mode: writes fail with Redis's READONLY error.
    pub read_only: bool,
    /// The password clients give with AUTH (or HELLO ... AUTH) before any
    /// other command, as Redis's `requirepass`; empty means none is asked.
    /// It is the default user's: `AUTH default <password>` works too.
    pub requirepass: String,
    /// Switch transparent huge pages off for this process, as Redis's
    /// `disable-thp` does. A huge-page fault zeroes 2 MiB at once, and the
    /// core serves no client meanwhile: milliseconds in a virtual machine
    /// whose host backs memory on first touch. Default true.
    pub disable_thp: bool,
}

/// Largest `max_clients`: one file descriptor each, and the kernel's
/// `nr_open` ceiling is 2^20 by default.
pub const MAX_CLIENTS_MAX: u64 = 1 << 20;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1".to_string(),
            redis_port: 6379,
            http_port: 8080,
            max_clients: 10_000,
            idle_timeout_secs: 0,
            max_bulk_bytes: ByteSize(512 << 20),
            max_multibulk_count: 1 << 20,
            client_query_buffer_bytes: ByteSize(1 << 30),
            log_dir: String::new(),
            log_level: "info".to_string(),
            slow_query_ms: 100,
            read_only: false,
            requirepass: String::new(),
            disable_thp: true,
        }
    }
}

/// `[shards]`: how many shards and on which CPUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardsConfig {
    /// Number of shards; 0 means one per available CPU. Default 0.
    pub count: u64,
    /// CPUs to run shards on, as a list like `0-3,8`; empty means every
    /// CPU this process may use.
    pub cpuset: String,
    /// Depth of each cross-shard request queue (per pair of shards); a
    /// full queue stops the sender reading its sockets. Default 256.
    pub xcore_queue_depth: u64,
    /// A task holding its core longer than this is reported as a stall,
    /// in milliseconds; 0 switches the detector off. Default 20.
    pub stall_threshold_ms: u64,
}

/// Most shards one process runs.
pub const SHARDS_MAX: u64 = 1024;

impl Default for ShardsConfig {
    fn default() -> Self {
        ShardsConfig {
            count: 0,
            cpuset: String::new(),
            xcore_queue_depth: 256,
            stall_threshold_ms: 20,
        }
    }
}

fn invalid(key: &str, value: impl std::fmt::Display, why: &str) -> lumadb_engine::Error {
    lumadb_engine::Error::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: why.to_string(),
    }
}

impl ServerConfig {
    fn validate(&self) -> lumadb_engine::Result<()> {
        if self.bind.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid("server.bind", &self.bind, "must be an IPv4 or IPv6 address"));
        }
        if self.max_clients == 0 || self.max_clients > MAX_CLIENTS_MAX {
            return Err(invalid(
                "server.max_clients",
                self.max_clients,
                &format!("must be between 1 and {MAX_CLIENTS_MAX}"),
            ));
        }
        if self.max_bulk_bytes.0 < 1024 || self.max_bulk_bytes.0 > (1 << 32) {
            return Err(invalid(
                "server.max_bulk_bytes",
                self.max_bulk_bytes.0,
                "must be between 1 KiB and 4 GiB",
            ));
        }
        if self.max_multibulk_count == 0 || self.max_multibulk_count > (1 << 31) {
            return Err(invalid(
                "server.max_multibulk_count",
                self.max_multibulk_count,
                "must be between 1 and 2147483648",
            ));
        }
        if self.client_query_buffer_bytes.0 < (1 << 20) || self.client_query_buffer_bytes.0 > (1 << 40) {
            return Err(invalid(
                "server.client_query_buffer_bytes",
                self.client_query_buffer_bytes.0,
                "must be between 1 MiB and 1 TiB",
            ));
        }
        if !LOG_LEVELS.contains(&self.log_level.as_str()) {
            return Err(invalid(
                "server.log_level",
                &self.log_level,
                "must be one of error, warn, info, debug, trace",
            ));
        }
        Ok(())
    }
}

/// The log levels `server.log_level` accepts.
pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

impl ShardsConfig {
    fn validate(&self) -> lumadb_engine::Result<()> {
        if self.count > SHARDS_MAX {
            return Err(invalid(
                "shards.count",
                self.count,
                &format!("must be between 0 (one per CPU) and {SHARDS_MAX}"),
            ));
        }
        if !(1..=65536).contains(&self.xcore_queue_depth) {
            return Err(invalid(
                "shards.xcore_queue_depth",
                self.xcore_queue_depth,
                "must be between 1 and 65536",
            ));
        }
        if self.stall_threshold_ms > 60_000 {
            return Err(invalid(
                "shards.stall_threshold_ms",
                self.stall_threshold_ms,
                "must be between 0 (off) and 60000",
            ));
        }
        if !self.cpuset.trim().is_empty() {
            lumadb_tuning::parse_cpuset(&self.cpuset)
                .map_err(|why| invalid("shards.cpuset", format!("{:?}", self.cpuset), &why.to_string()))?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let size = file.metadata().map_err(read_error)?.len();
        if size > CONFIG_FILE_BYTES_MAX {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
                size,
                limit: CONFIG_FILE_BYTES_MAX,
            });
        }
        let mut text = String::new();
        file.take(CONFIG_FILE_BYTES_MAX)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        Config::parse_named(&text, path)
    }

    /// Parses and validates configuration text; errors name it `<config>`.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_named(text, Path::new(INLINE_ORIGIN))
    }

    /// Parses and validates `text`, naming it `origin` in errors.
    pub fn parse_named(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| parse_error(text, origin, &e))?;
        let invalid = |source| ConfigError::Invalid {
            path: origin.to_path_buf(),
            source,
        };
        config.engine_options().map_err(invalid)?;
        config.server.validate().map_err(invalid)?;
        config.shards.validate().map_err(invalid)?;
        Ok(config)
    }

    /// The engine's sections on their own.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            memory: self.memory.clone(),
            wal: self.wal.clone(),
            compaction: self.compaction.clone(),
        }
    }

    /// The options each shard's engine is opened with.
    pub fn engine_options(&self) -> lumadb_engine::Result<EngineOptions> {
        self.engine_config().to_options()
    }

    /// The effective configuration, every key included, as TOML that
    /// [`Config::parse`] reads back to the same value.
    pub fn to_toml(&self) -> String {
        // Every field is a plain number, bool, string or table: serializing
        // cannot fail.
        toml::to_string(self).expect("configuration serializes to TOML")
    }
}

fn parse_error(text: &str, origin: &Path, error: &toml::de::Error) -> ConfigError {
    let position = error.span().map(|span| line_column(text, span.start));
    ConfigError::Parse {
        path: PathBuf::from(origin),
        line: position.map(|(line, _)| line),
        column: position.map(|(_, column)| column),
        message: error.message().trim_end().to_string(),
        source_line: position
            .and_then(|(line, _)| text.lines().nth(line - 1))
            .map(|l| l.trim_end().to_string()),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> ConfigError {
        Config::parse(text).expect_err(text)
    }

    #[test]
    fn empty_text_is_the_default_configuration() {
        let config = Config::parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.engine_options().unwrap(), EngineOptions::default());
    }

    #[test]
    fn sections_reach_the_engine_options() {
        let config = Config::parse("[memory]\nmemtable_size = \"32MiB\"\n[wal]\nsync_mode = \"none\"\n").unwrap();
        let options = config.engine_options().unwrap();
        assert_eq!(options.memtable_size, 32 << 20);
        assert_eq!(options.sync_mode, lumadb_engine::SyncMode::None);
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let err = parse_err("[memory]\nmemtable_size = 1\nblock_cache_size = = 5\n");
        match &err {
            ConfigError::Parse {
                line,
                column,
                source_line,
                ..
            } => {
                assert_eq!(*line, Some(3));
                assert_eq!(*column, Some(20));
                assert_eq!(source_line.as_deref(), Some("block_cache_size = = 5"));
            }
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(text.starts_with("<config>: line 3, column 20: "), "{text}");
        assert!(text.contains("block_cache_size = = 5"), "{text}");
    }

    #[test]
    fn unknown_section_and_key_are_parse_errors() {
        let text = parse_err("[servers]\nport = 1\n").to_string();
        assert!(text.contains("unknown field `servers`"), "{text}");
        let text = parse_err("[server]\nport = 1\n").to_string();
        assert!(text.contains("unknown field `port`"), "{text}");
        let text = parse_err("[memory]\n\nmemtable_sise = 1\n").to_string();
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("unknown field `memtable_sise`"), "{text}");
    }

    #[test]
    fn wrong_type_points_at_the_key() {
        let text = parse_err("[memory]\nbloom_bits_per_key = \"ten\"\n").to_string();
        assert!(text.contains("line 2"), "{text}");
        assert!(text.contains("bloom_bits_per_key = \"ten\""), "{text}");
    }

    #[test]
    fn out_of_range_names_the_key_and_range() {
        let err = parse_err("[compaction]\nnum_levels = 40\n");
        assert!(matches!(err, ConfigError::Invalid { .. }));
        assert_eq!(
            err.to_string(),
            "<config>: invalid configuration: compaction.num_levels = 40: must be between 2 and 16"
        );
    }

    #[test]
    fn load_reads_files_and_names_them() {
        let dir = std::env::temp_dir().join(format!("lumadb-shard-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "[memory]\nuse_mmap = true\n").unwrap();
        assert!(Config::load(&good).unwrap().memory.use_mmap);

        let missing = dir.join("missing.toml");
        let err = Config::load(&missing).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("missing.toml"), "{err}");

        let large = dir.join("large.toml");
        std::fs::write(&large, vec![b'#'; CONFIG_FILE_BYTES_MAX as usize + 1]).unwrap();
        assert!(matches!(Config::load(&large), Err(ConfigError::TooLarge { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn effective_toml_round_trips() {
        let config = Config::parse("[compaction]\nstyle = \"fifo\"\nblock_size = 5000\n").unwrap();
        let text = config.to_toml();
        assert!(text.contains("[memory]") && text.contains("[wal]") && text.contains("[compaction]"));
        assert_eq!(Config::parse(&text).unwrap(), config);
    }

    #[test]
    fn server_and_shards_sections_validate() {
        let config = Config::parse("[server]\nredis_port = 7000\n[shards]\ncount = 2\ncpuset = \"0-1\"\n").unwrap();
        assert_eq!(config.server.redis_port, 7000);
        assert_eq!(config.shards.count, 2);
        let text = parse_err("[server]\nlog_level = \"loud\"\n").to_string();
        assert!(text.contains("server.log_level"), "{text}");
        let text = parse_err("[shards]\ncpuset = \"3-1\"\n").to_string();
        assert!(text.contains("shards.cpuset"), "{text}");
        let text = parse_err("[server]\nbind = \"localhost:1\"\n").to_string();
        assert!(text.contains("server.bind"), "{text}");
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("abc\ndef", 5), (2, 2));
        assert_eq!(line_column("é = 1\nx", 2), (1, 2));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}
