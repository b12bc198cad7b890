//! `lumadb tune` against a fixture host (a sysfs/procfs tree in a
//! temporary folder), run as a real process: never the machine's own
//! settings.

use std::path::Path;
use std::process::{Command, Output};

use lumadb_tests::lumadb_bin;

fn lumadb(args: &[&str]) -> Output {
    Command::new(lumadb_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running lumadb {args:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(root: &Path, relative: &str, contents: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{contents}\n")).unwrap();
}

fn read(root: &Path, relative: &str) -> String {
    std::fs::read_to_string(root.join(relative)).unwrap().trim().to_string()
}

/// A 4-CPU NVMe host with 16 GiB of RAM, an mq-deadline scheduler, THP
/// always, io_uring disabled and a 64 KiB memlock limit.
fn fixture_host() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "sys/devices/system/cpu/online", "0-3");
    write(root, "sys/devices/system/node/node0/cpulist", "0-3");
    for cpu in 0..4 {
        write(
            root,
            &format!("sys/devices/system/cpu/cpu{cpu}/topology/core_id"),
            &cpu.to_string(),
        );
        write(
            root,
            &format!("sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id"),
            "0",
        );
    }
    let queue = "sys/block/nvme0n1/queue";
    write(root, &format!("{queue}/scheduler"), "[mq-deadline] none");
    write(root, &format!("{queue}/nr_requests"), "1023");
    write(root, &format!("{queue}/read_ahead_kb"), "128");
    write(root, &format!("{queue}/write_cache"), "write back");
    write(root, &format!("{queue}/rotational"), "0");
    write(
        root,
        "sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never",
    );
    write(
        root,
        "sys/kernel/mm/transparent_hugepage/defrag",
        "always defer [madvise] never",
    );
    write(root, "proc/sys/kernel/io_uring_disabled", "2");
    write(root, "proc/sys/vm/swappiness", "1");
    write(
        root,
        "proc/meminfo",
        "MemTotal:       16777216 kB\nMemFree:         1000 kB",
    );
    write(
        root,
        "proc/self/limits",
        "Limit                     Soft Limit           Hard Limit           Units\n\
         Max open files            1048576              1048576              files\n\
         Max locked memory         65536                65536                bytes",
    );
    dir
}

#[test]
fn tune_reports_applies_and_writes_a_config() {
    let host = fixture_host();
    let root = host.path();
    let root_arg = root.to_str().unwrap();

    // Report only: nothing changes.
    let out = lumadb(&["tune", "--root", root_arg]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with(&format!(
            "host {root_arg}: 4 CPUs (4 cores, 1 NUMA node), 16384 MiB of RAM\n"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("shards: 4 on CPUs 0-3"), "{stdout}");
    let row = |status: &str, area: &str, setting: &str, current: &str, recommended: &str| {
        stdout.lines().any(|line| {
            let cells: Vec<&str> = line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
            cells == [status, area, setting, current, recommended]
        })
    };
    assert!(
        row("ADVISE", "nvme0n1", "queue/scheduler", "mq-deadline", "none"),
        "{stdout}"
    );
    assert!(row("OK", "nvme0n1", "queue/read_ahead_kb", "128", "<= 128"), "{stdout}");
    assert!(
        row("WARN", "memory", "transparent_hugepage/enabled", "always", "madvise"),
        "{stdout}"
    );
    assert!(row("WARN", "kernel", "kernel.io_uring_disabled", "2", "0"), "{stdout}");
    assert!(row("WARN", "limits", "memlock", "64 KiB", "unlimited"), "{stdout}");
    assert!(stdout.contains("3 WARN, 1 ADVISE,"), "{stdout}");
    assert!(stdout.contains("3 of these can be written now"), "{stdout}");
    assert_eq!(read(root, "sys/block/nvme0n1/queue/scheduler"), "[mq-deadline] none");

    // JSON carries the same findings.
    let out = lumadb(&["tune", "--root", root_arg, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let io_uring = findings
        .iter()
        .find(|f| f["setting"] == "kernel.io_uring_disabled")
        .unwrap();
    assert_eq!(io_uring["status"], "WARN");
    assert_eq!(report["shards"], serde_json::json!([0, 1, 2, 3]));

    // --apply on the fixture root: exactly the three writable fixes, each
    // printed as old → new; the memlock limit is explained, not changed.
    let config = root.join("out/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let out = lumadb(&[
        "tune",
        "--root",
        root_arg,
        "--apply",
        "--shards",
        "2",
        "--config-out",
        config.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("shards: 2 on CPUs 0-1"), "{stdout}");
    for change in [
        format!("{root_arg}/sys/block/nvme0n1/queue/scheduler: mq-deadline → none"),
        format!("{root_arg}/sys/kernel/mm/transparent_hugepage/enabled: always → madvise"),
        format!("{root_arg}/proc/sys/kernel/io_uring_disabled: 2 → 0"),
    ] {
        assert!(
            stdout.lines().any(|l| l.trim() == change),
            "missing {change:?} in {stdout}"
        );
    }
    assert!(stdout.contains("not changed:\n  limits memlock: "), "{stdout}");
    assert!(stdout.contains("/etc/security/limits.d"), "{stdout}");
    assert_eq!(read(root, "sys/block/nvme0n1/queue/scheduler"), "none");
    assert_eq!(read(root, "sys/kernel/mm/transparent_hugepage/enabled"), "madvise");
    assert_eq!(read(root, "proc/sys/kernel/io_uring_disabled"), "0");
    assert_eq!(read(root, "proc/sys/vm/swappiness"), "1", "OK settings are left alone");

    // The configuration: 2 shards pinned to CPUs 0-1, memory for 16 GiB.
    let written = std::fs::read_to_string(&config).unwrap();
    let value: toml::Value = toml::from_str(&written).unwrap();
    assert_eq!(value["shards"]["count"].as_integer(), Some(2), "{written}");
    assert_eq!(value["shards"]["cpuset"].as_str(), Some("0-1"), "{written}");
    // 60% of 16 GiB over 2 shards: memtables at their 256 MiB cap, 2703 MiB
    // block cache, 983 MiB row cache per shard.
    assert_eq!(value["memory"]["memtable_size"].as_str(), Some("256MiB"), "{written}");
    assert_eq!(
        value["memory"]["block_cache_size"].as_str(),
        Some("2703MiB"),
        "{written}"
    );
    assert_eq!(value["memory"]["row_cache_size"].as_str(), Some("983MiB"), "{written}");

    // The [memory] section passes the server's own validation.
    let mut memory_only = value.clone();
    memory_only.as_table_mut().unwrap().remove("shards");
    let memory_only = toml::to_string(&memory_only).unwrap();
    lumadb_shard::config::Config::parse(&memory_only).unwrap_or_else(|e| panic!("{e}\n{memory_only}"));
    // The whole file passes `lumadb config validate` once the configuration
    // knows [shards]; until then the only complaint allowed is that section.
    let out = lumadb(&["config", "validate", config.to_str().unwrap()]);
    if out.status.code() != Some(0) {
        let stderr = text(&out.stderr);
        assert!(stderr.contains("unknown field `shards`"), "{stderr}");
    }

    // A second --config-out to the same file refuses to overwrite it.
    let out = lumadb(&["tune", "--root", root_arg, "--config-out", config.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("config.toml"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), written);
}

#[test]
fn tune_rejects_impossible_shard_requests() {
    let host = fixture_host();
    let root_arg = host.path().to_str().unwrap();
    let out = lumadb(&["tune", "--root", root_arg, "--cpuset", "2-5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("CPU 4 is not available to this process (available CPUs: 0-3)"),
        "{}",
        text(&out.stderr)
    );
    let out = lumadb(&["tune", "--root", root_arg, "--shards", "0"]);
    assert!(text(&out.stderr).contains("at least 1"), "{}", text(&out.stderr));
    let out = lumadb(&["tune", "--root", root_arg, "--cpuset", "3-1"]);
    assert!(text(&out.stderr).contains("decreasing range"), "{}", text(&out.stderr));
}
