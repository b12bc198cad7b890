//! The `lumadb` command line, run as a real process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lumadb_tests::lumadb_bin;

/// Exit status of `config validate` for an invalid file.
const EXIT_INVALID: i32 = 2;

fn lumadb(args: &[&str]) -> Output {
    Command::new(lumadb_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running lumadb {args:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `contents` to `name` in a fresh folder kept alive by the guard.
fn config_file(name: &str, contents: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("writing config file");
    (dir, path)
}

fn validate(path: &Path) -> Output {
    lumadb(&["config", "validate", path.to_str().expect("UTF-8 temp path")])
}

#[test]
fn validate_accepts_the_manual_example() {
    let (_dir, path) = config_file(
        "config.toml",
        "# config.toml\n\
         [memory]\n\
         memtable_size = 67108864      # 64 MB\n\
         block_cache_size = 536870912  # 512 MB (for 16GB system)\n\
         row_cache_size = 134217728    # 128 MB\n\
         bloom_bits_per_key = 10       # ~1% false positive rate\n\
         use_mmap = true\n\
         [wal]\n\
         sync_mode = \"interval\"\n\
         sync_interval_ms = 50\n\
         [compaction]\n\
         compression = \"zstd\"\n",
    );
    let out = validate(&path);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(stdout.starts_with(&format!("{}: ok\n", path.display())), "{stdout}");
    // The effective settings: what was written, and the defaults filled in.
    for line in [
        "memtable_size = \"64MiB\"",
        "block_cache_size = \"512MiB\"",
        "row_cache_size = \"128MiB\"",
        "use_mmap = true",
        "sync_mode = \"interval\"",
        "sync_interval_ms = 50",
        "compression = \"zstd\"",
        "style = \"leveled\"",
        "num_levels = 7",
    ] {
        assert!(stdout.lines().any(|l| l == line), "missing {line:?} in:\n{stdout}");
    }
}

#[test]
fn validate_accepts_an_empty_file() {
    let (_dir, path) = config_file("empty.toml", "");
    let out = validate(&path);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("memtable_size = \"64MiB\""));
}

#[test]
fn validate_names_the_out_of_range_key_and_its_range() {
    let (_dir, path) = config_file("config.toml", "[memory]\nmemtable_size = \"512KiB\"\n");
    let out = validate(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_INVALID), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("memory.memtable_size"), "{stderr}");
    assert!(stderr.contains("must be between 1 MiB and 4 GiB"), "{stderr}");
}

#[test]
fn validate_reports_a_cross_key_conflict() {
    let (_dir, path) = config_file(
        "config.toml",
        "[compaction]\nlevel0_file_num_compaction_trigger = 10\nlevel0_stop_writes_trigger = 10\n",
    );
    let out = validate(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_INVALID), "{stderr}");
    assert!(stderr.contains("compaction.level0_stop_writes_trigger"), "{stderr}");
    assert!(
        stderr.contains("greater than compaction.level0_file_num_compaction_trigger"),
        "{stderr}"
    );
}

#[test]
fn validate_points_at_the_line_of_a_syntax_error() {
    let (_dir, path) = config_file(
        "config.toml",
        "[memory]\nmemtable_size = 67108864\nblock_cache_size = = 5\n",
    );
    let out = validate(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_INVALID), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: line 3, column", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("block_cache_size = = 5"), "{stderr}");
}

#[test]
fn validate_rejects_an_unknown_key() {
    let (_dir, path) = config_file("config.toml", "[memory]\nmemtable_sise = 1\n");
    let out = validate(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_INVALID), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("unknown field `memtable_sise`"), "{stderr}");
}

#[test]
fn validate_rejects_a_wrong_type() {
    let (_dir, path) = config_file("config.toml", "[memory]\nuse_mmap = \"yes\"\n");
    let out = validate(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_INVALID), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("use_mmap = \"yes\""), "{stderr}");
}

#[test]
fn validate_reports_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let out = validate(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_INVALID), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("cannot read"), "{stderr}");
}

/// The subcommand names under "Commands:" in a help text.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn help_lists_only_working_subcommands() {
    let out = lumadb(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert_eq!(
        listed_commands(&help),
        ["config", "bench", "start", "ping", "health", "shutdown", "tune", "help"],
        "{help}"
    );
    assert!(help.contains("--log-level"), "{help}");

    let out = lumadb(&["config", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(listed_commands(&text(&out.stdout)), ["validate", "help"]);
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = lumadb(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unrecognized subcommand 'frobnicate'"));
}

#[test]
fn bench_engine_runs_every_workload_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("result.json");
    let data = dir.path().join("bench-data");
    let out = lumadb(&[
        "bench",
        "engine",
        "--workloads",
        "fillseq,fillrandom,overwrite,readrandom,readseq,seekrandom,deleterandom",
        "--num",
        "3000",
        "--concurrency",
        "4",
        "--sync",
        "none",
        // Small memtables: flushes and compactions happen, reads hit tables.
        "--memtable-size",
        "65536",
        "--dir",
        data.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for w in [
        "fillseq",
        "fillrandom",
        "overwrite",
        "readrandom",
        "readseq",
        "seekrandom",
        "deleterandom",
    ] {
        assert!(stdout.contains(w), "table lists {w}: {stdout}");
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    for r in results {
        assert!(r["ops_per_sec"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["p99_us"].as_f64().unwrap() >= r["p50_us"].as_f64().unwrap(), "{r}");
    }
    // After fillseq and fillrandom over the same key space, every key is there.
    let readrandom = results.iter().find(|r| r["workload"] == "readrandom").unwrap();
    assert_eq!(readrandom["found"], readrandom["ops"], "{readrandom}");
    assert!(!data.exists(), "benchmark data is removed afterwards");
}

#[test]
fn bench_engine_rejects_an_unknown_workload() {
    let out = lumadb(&["bench", "engine", "--workloads", "fillrandom,teleport"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("teleport"), "{}", text(&out.stderr));
}

#[test]
fn start_with_an_invalid_config_reports_it_as_validate_does() {
    let (dir, path) = config_file("config.toml", "[server]\ndisable_thp = \"yes\"\n");
    let data = dir.path().join("data");
    let out = lumadb(&[
        "start",
        "--config",
        path.to_str().expect("UTF-8 temp path"),
        "--data-dir",
        data.to_str().expect("UTF-8 temp path"),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_INVALID), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("invalid type"), "{stderr}");
    assert!(!data.exists(), "a refused start created the data dir");
}

#[test]
fn validate_does_not_print_the_password() {
    let (_dir, path) = config_file("config.toml", "[server]\nrequirepass = \"hunter2-secret\"\n");
    let out = validate(&path);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("requirepass = \"(set)\""), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
}
