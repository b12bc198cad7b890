//! The process configuration, `config.toml`.
//!
//! Today it holds the sections the storage engine owns (`[memory]`,
//! `[wal]`, `[compaction]`, defined and validated in
//! [`lumadb_engine::config`]); `[server]` and `[shards]` join them when the
//! server lands. Unknown sections and keys are errors, missing ones take
//! their defaults, so an empty file is a valid configuration.

use std::io::Read;
use std::path::{Path, PathBuf};

use lumadb_engine::config::{CompactionConfig, EngineConfig, MemoryConfig, WalConfig};
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
        config.engine_options().map_err(|source| ConfigError::Invalid {
            path: origin.to_path_buf(),
            source,
        })?;
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
        let text = parse_err("[server]\nport = 1\n").to_string();
        assert!(text.contains("unknown field `server`"), "{text}");
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
    fn line_column_counts_characters() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("abc\ndef", 5), (2, 2));
        assert_eq!(line_column("é = 1\nx", 2), (1, 2));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}
