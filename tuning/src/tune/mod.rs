//! `lumadb tune`: reads the host's settings, compares them with what a
//! LumaDB server wants, and (when asked) writes the better values.
//!
//! Everything is read from a root folder (`/` on a real host, a fixture
//! tree in tests): block devices (`sys/block`), NVMe interrupt affinity
//! (`proc/interrupts`, `proc/irq`), the CPU frequency governor,
//! transparent huge pages, sysctls (`proc/sys`) and the process's resource
//! limits (passed in as [`Limits`]). [`inspect`] turns them into
//! [`Finding`]s; [`apply`] writes the fixes of the findings that are not
//! OK, never outside the root; [`config`] writes a matching `config.toml`.

mod apply;
mod checks;
pub mod config;
mod limits;

#[cfg(test)]
mod fixture;

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use apply::{apply, ApplyReport, Change, NotChanged};
pub use limits::{Limits, ResourceLimit};

/// How a setting compares with LumaDB's recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// As recommended.
    Ok,
    /// Works, but a better value helps latency or throughput.
    Advise,
    /// Hurts LumaDB badly or keeps it from starting.
    Warn,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Ok => "OK",
            Status::Advise => "ADVISE",
            Status::Warn => "WARN",
        })
    }
}

/// One setting of the host, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What the setting belongs to: a block device (`nvme0n1`), `irq`,
    /// `cpu`, `memory`, `limits`, `kernel`, `network`.
    pub area: String,
    /// The setting, named as the kernel names it (`queue/scheduler`,
    /// `vm.swappiness`, `memlock`).
    pub setting: String,
    /// Its current value.
    pub current: String,
    /// The value LumaDB recommends.
    pub recommended: String,
    /// Why, in one sentence.
    pub why: String,
    pub status: Status,
    /// How to reach the recommended value (none when the finding is OK).
    pub fix: Option<Fix>,
}

/// How to fix a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fix {
    /// Values `--apply` writes, to files relative to the root.
    Write(Vec<FileWrite>),
    /// What an operator has to do, because no file under the root can do it.
    Manual(String),
}

/// Writing `value` to the file `path` (relative to the root, like
/// `sys/block/nvme0n1/queue/scheduler`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileWrite {
    pub path: PathBuf,
    pub value: String,
}

impl Finding {
    fn named(area: impl Into<String>, setting: impl Into<String>) -> FindingBuilder {
        FindingBuilder {
            area: area.into(),
            setting: setting.into(),
        }
    }
}

/// Names a finding before its values are known.
struct FindingBuilder {
    area: String,
    setting: String,
}

impl FindingBuilder {
    fn ok(self, current: impl Into<String>, recommended: impl Into<String>, why: impl Into<String>) -> Finding {
        self.finding(Status::Ok, current, recommended, why, None)
    }

    fn finding(
        self,
        status: Status,
        current: impl Into<String>,
        recommended: impl Into<String>,
        why: impl Into<String>,
        fix: Option<Fix>,
    ) -> Finding {
        Finding {
            area: self.area,
            setting: self.setting,
            current: current.into(),
            recommended: recommended.into(),
            why: why.into(),
            status,
            fix: if status == Status::Ok { None } else { fix },
        }
    }
}

/// Every finding for the host under `root`, whose LumaDB process would
/// run `shard_count` shards with resource `limits`.
pub fn inspect(root: &Path, limits: &Limits, shard_count: usize) -> Vec<Finding> {
    let mut findings = Vec::new();
    checks::block_devices(root, &mut findings);
    checks::nvme_irqs(root, &mut findings);
    checks::cpu_governor(root, &mut findings);
    checks::transparent_hugepages(root, &mut findings);
    checks::sysctls(root, &mut findings);
    checks::limits(limits, shard_count, &mut findings);
    findings
}

/// Whether this process runs as root (effective user id 0), which
/// writing `/sys` and `/proc` needs.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Findings per status: `(ok, advise, warn)`.
pub fn counts(findings: &[Finding]) -> (usize, usize, usize) {
    let count = |status| findings.iter().filter(|f| f.status == status).count();
    (count(Status::Ok), count(Status::Advise), count(Status::Warn))
}

/// The findings as a table for a terminal: one row per finding, its reason
/// below it, and a count of each status at the end.
pub fn render_table(findings: &[Finding]) -> String {
    const HEADERS: [&str; 5] = ["STATUS", "AREA", "SETTING", "CURRENT", "RECOMMENDED"];
    let rows: Vec<[&str; 4]> = findings
        .iter()
        .map(|f| {
            [
                f.area.as_str(),
                f.setting.as_str(),
                f.current.as_str(),
                f.recommended.as_str(),
            ]
        })
        .collect();
    let mut widths = [HEADERS[1].len(), HEADERS[2].len(), HEADERS[3].len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let status_width = "ADVISE".len();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:status_width$}  {:w0$}  {:w1$}  {:w2$}  {}",
        HEADERS[0],
        HEADERS[1],
        HEADERS[2],
        HEADERS[3],
        HEADERS[4],
        w0 = widths[0],
        w1 = widths[1],
        w2 = widths[2],
    );
    for (finding, row) in findings.iter().zip(&rows) {
        let _ = writeln!(
            out,
            "{:status_width$}  {:w0$}  {:w1$}  {:w2$}  {}",
            finding.status,
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
        let _ = writeln!(out, "{:status_width$}  {}", "", finding.why);
    }
    let (ok, advise, warn) = counts(findings);
    let _ = writeln!(out, "\n{warn} WARN, {advise} ADVISE, {ok} OK");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::fixture::Fixture;
    use super::*;

    const GOOD_LIMITS: Limits = Limits {
        memlock_bytes: ResourceLimit::UNLIMITED,
        nofile: ResourceLimit::fixed(1 << 20),
    };

    fn find<'a>(findings: &'a [Finding], area: &str, setting: &str) -> &'a Finding {
        findings
            .iter()
            .find(|f| f.area == area && f.setting == setting)
            .unwrap_or_else(|| panic!("no finding {area} {setting} in {findings:#?}"))
    }

    /// `(status, current, recommended)` of a finding.
    fn summary<'a>(findings: &'a [Finding], area: &str, setting: &str) -> (Status, &'a str, &'a str) {
        let f = find(findings, area, setting);
        (f.status, f.current.as_str(), f.recommended.as_str())
    }

    #[test]
    fn nvme_box_with_bad_settings() {
        let fixture = Fixture::nvme_box_with_bad_settings();
        let findings = inspect(fixture.root(), &GOOD_LIMITS, 4);
        use Status::*;
        assert_eq!(
            summary(&findings, "nvme0n1", "queue/scheduler"),
            (Advise, "mq-deadline", "none")
        );
        assert_eq!(
            summary(&findings, "nvme0n1", "queue/nr_requests"),
            (Advise, "64", ">= 128")
        );
        assert_eq!(
            summary(&findings, "nvme0n1", "queue/read_ahead_kb"),
            (Advise, "4096", "<= 128")
        );
        assert_eq!(
            summary(&findings, "nvme0n1", "queue/write_cache"),
            (Ok, "write back", "write back")
        );
        assert_eq!(summary(&findings, "nvme0n1", "queue/io_poll"), (Advise, "0", "1"));
        assert_eq!(
            summary(&findings, "irq", "nvme0 queues"),
            (Warn, "all 4 queues on CPUs 0", "each queue on its own CPUs")
        );
        assert_eq!(
            summary(&findings, "cpu", "scaling_governor"),
            (Advise, "powersave (CPUs 0-3)", "performance")
        );
        assert_eq!(
            summary(&findings, "memory", "transparent_hugepage/enabled"),
            (Warn, "always", "madvise")
        );
        assert_eq!(
            summary(&findings, "memory", "transparent_hugepage/defrag"),
            (Warn, "always", "madvise")
        );
        assert_eq!(summary(&findings, "kernel", "kernel.io_uring_disabled"), (Ok, "0", "0"));
        assert_eq!(
            summary(&findings, "network", "net.core.somaxconn"),
            (Advise, "128", ">= 4096")
        );
        assert_eq!(
            summary(&findings, "network", "net.ipv4.tcp_max_syn_backlog"),
            (Advise, "512", ">= 4096")
        );
        assert_eq!(summary(&findings, "memory", "vm.swappiness"), (Advise, "60", "<= 10"));
        assert_eq!(summary(&findings, "memory", "vm.dirty_ratio"), (Advise, "40", "<= 20"));
        assert_eq!(
            summary(&findings, "memory", "vm.dirty_background_ratio"),
            (Ok, "10", "<= 10")
        );
        assert_eq!(summary(&findings, "limits", "memlock"), (Ok, "unlimited", "unlimited"));
        // One NUMA node: NUMA sysctls are not checked.
        assert!(!findings.iter().any(|f| f.setting == "vm.zone_reclaim_mode"));
        // Rotational is only reported for spinning disks.
        assert!(!findings.iter().any(|f| f.setting == "queue/rotational"));
        // Loop devices are not disks.
        assert!(!findings.iter().any(|f| f.area.starts_with("loop")), "{findings:#?}");
        // Poll delay only matters with poll queues.
        assert!(!findings.iter().any(|f| f.setting == "queue/io_poll_delay"));
        // Every finding explains itself; OK findings carry no fix, others do.
        for f in &findings {
            assert!(f.why.ends_with('.') && f.why.len() > 40, "{f:?}");
            assert_eq!(f.fix.is_none(), f.status == Status::Ok, "{f:?}");
        }
    }

    #[test]
    fn virtio_box_is_all_ok() {
        let fixture = Fixture::virtio_box();
        let findings = inspect(fixture.root(), &GOOD_LIMITS, 2);
        let not_ok: Vec<&Finding> = findings.iter().filter(|f| f.status != Status::Ok).collect();
        assert!(not_ok.is_empty(), "{not_ok:#?}");
        assert_eq!(
            summary(&findings, "vda", "queue/scheduler"),
            (Status::Ok, "none", "none")
        );
        // No cpufreq (a VM), no NVMe: nothing said about either.
        assert!(
            !findings.iter().any(|f| f.area == "cpu" || f.area == "irq"),
            "{findings:#?}"
        );
        assert!(!findings.iter().any(|f| f.setting == "queue/io_poll"));
        assert!(render_table(&findings).ends_with(&format!("0 WARN, 0 ADVISE, {} OK\n", findings.len())));
    }

    #[test]
    fn io_uring_disabled_is_a_warning() {
        let fixture = Fixture::virtio_box();
        fixture.sysctls(&[("kernel.io_uring_disabled", "2")]);
        let findings = inspect(fixture.root(), &GOOD_LIMITS, 2);
        let f = find(&findings, "kernel", "kernel.io_uring_disabled");
        assert_eq!(
            (f.status, f.current.as_str(), f.recommended.as_str()),
            (Status::Warn, "2", "0")
        );
        assert!(f.why.contains("cannot start"), "{}", f.why);

        fixture.sysctls(&[("kernel.io_uring_disabled", "1")]);
        let findings = inspect(fixture.root(), &GOOD_LIMITS, 2);
        let f = find(&findings, "kernel", "kernel.io_uring_disabled");
        assert_eq!(f.status, Status::Warn);
        assert!(f.why.contains("io_uring_group"), "{}", f.why);
    }

    #[test]
    fn thp_always_is_a_warning() {
        let fixture = Fixture::virtio_box();
        fixture.thp("[always] never", "always [madvise] never");
        let findings = inspect(fixture.root(), &GOOD_LIMITS, 2);
        let f = find(&findings, "memory", "transparent_hugepage/enabled");
        assert_eq!(f.status, Status::Warn);
        // madvise is not offered by this kernel: never is written instead.
        assert_eq!(
            f.fix,
            Some(Fix::Write(vec![FileWrite {
                path: PathBuf::from("sys/kernel/mm/transparent_hugepage/enabled"),
                value: "never".to_string(),
            }]))
        );
        assert_eq!(
            find(&findings, "memory", "transparent_hugepage/defrag").status,
            Status::Ok
        );
    }

    #[test]
    fn low_limits_are_warnings_fixed_by_hand() {
        let fixture = Fixture::virtio_box();
        let low = Limits {
            memlock_bytes: ResourceLimit::fixed(64 << 10),
            nofile: ResourceLimit {
                soft: Some(1024),
                hard: Some(4096),
            },
        };
        let findings = inspect(fixture.root(), &low, 8);
        let memlock = find(&findings, "limits", "memlock");
        assert_eq!((memlock.status, memlock.current.as_str()), (Status::Warn, "64 KiB"));
        assert!(memlock.why.contains("16 MiB for 8 shards"), "{}", memlock.why);
        assert!(matches!(&memlock.fix, Some(Fix::Manual(how)) if how.contains("LimitMEMLOCK")));
        let nofile = find(&findings, "limits", "nofile");
        assert_eq!((nofile.status, nofile.current.as_str()), (Status::Warn, "1024"));

        // Enough for the shards, though not unlimited: fine.
        let enough = Limits {
            memlock_bytes: ResourceLimit::fixed(16 << 20),
            ..GOOD_LIMITS
        };
        let findings = inspect(fixture.root(), &enough, 8);
        assert_eq!(find(&findings, "limits", "memlock").status, Status::Ok);
    }

    #[test]
    fn rotational_disk_wants_mq_deadline() {
        let fixture = Fixture::virtio_box();
        fixture.disk(fixture::Disk {
            name: "sda",
            scheduler: "mq-deadline [none]",
            nr_requests: "256",
            read_ahead_kb: "128",
            write_cache: "write through",
            rotational: "1",
            io_poll: None,
        });
        let findings = inspect(fixture.root(), &GOOD_LIMITS, 2);
        assert_eq!(summary(&findings, "sda", "queue/rotational").0, Status::Advise);
        assert_eq!(
            summary(&findings, "sda", "queue/scheduler"),
            (Status::Advise, "none", "mq-deadline")
        );
        assert_eq!(summary(&findings, "sda", "queue/write_cache").0, Status::Advise);
    }

    #[test]
    fn numa_hosts_check_numa_sysctls() {
        let fixture = Fixture::nvme_box_with_bad_settings();
        fixture.write("sys/devices/system/node/node1/cpulist", "");
        fixture.sysctls(&[("kernel.numa_balancing", "1")]);
        let findings = inspect(fixture.root(), &GOOD_LIMITS, 4);
        assert_eq!(
            summary(&findings, "memory", "vm.zone_reclaim_mode"),
            (Status::Advise, "1", "0")
        );
        assert_eq!(
            summary(&findings, "memory", "kernel.numa_balancing"),
            (Status::Advise, "1", "0")
        );
    }

    #[test]
    fn poll_delay_checked_with_poll_queues() {
        let fixture = Fixture::nvme_box_with_bad_settings();
        fixture.write("sys/block/nvme0n1/queue/io_poll", "1");
        fixture.write("sys/block/nvme0n1/queue/io_poll_delay", "0");
        let findings = inspect(fixture.root(), &GOOD_LIMITS, 4);
        assert_eq!(summary(&findings, "nvme0n1", "queue/io_poll").0, Status::Ok);
        assert_eq!(
            summary(&findings, "nvme0n1", "queue/io_poll_delay"),
            (Status::Advise, "0", "-1")
        );
    }

    #[test]
    fn apply_rewrites_exactly_the_expected_files() {
        let fixture = Fixture::nvme_box_with_bad_settings();
        let before = fixture.snapshot();
        let findings = inspect(fixture.root(), &GOOD_LIMITS, 4);
        let report = apply(fixture.root(), &findings);
        let after = fixture.snapshot();

        let changed: BTreeMap<String, (String, String)> = before
            .iter()
            .filter(|(path, old)| after.get(*path) != Some(old))
            .map(|(path, old)| {
                let new = after.get(path).cloned().unwrap_or_default();
                (
                    path.display().to_string(),
                    (old.trim().to_string(), new.trim().to_string()),
                )
            })
            .collect();
        assert_eq!(before.len(), after.len(), "no file created or removed");
        let pair = |old: &str, new: &str| (old.to_string(), new.to_string());
        let mut expected: BTreeMap<String, (String, String)> = [
            (
                "sys/block/nvme0n1/queue/scheduler",
                pair("[mq-deadline] kyber none", "none"),
            ),
            ("sys/block/nvme0n1/queue/nr_requests", pair("64", "256")),
            ("sys/block/nvme0n1/queue/read_ahead_kb", pair("4096", "128")),
            (
                "sys/kernel/mm/transparent_hugepage/enabled",
                pair("[always] madvise never", "madvise"),
            ),
            (
                "sys/kernel/mm/transparent_hugepage/defrag",
                pair("[always] defer defer+madvise madvise never", "madvise"),
            ),
            ("proc/sys/net/core/somaxconn", pair("128", "4096")),
            ("proc/sys/net/ipv4/tcp_max_syn_backlog", pair("512", "4096")),
            ("proc/sys/vm/swappiness", pair("60", "1")),
            ("proc/sys/vm/dirty_ratio", pair("40", "10")),
            ("proc/irq/42/smp_affinity_list", pair("0", "1")),
            ("proc/irq/43/smp_affinity_list", pair("0", "2")),
            ("proc/irq/44/smp_affinity_list", pair("0", "3")),
        ]
        .into_iter()
        .map(|(path, change)| (path.to_string(), change))
        .collect();
        // Queue 1 (IRQ 41) keeps CPU 0: nothing to write.
        for cpu in 0..4 {
            expected.insert(
                format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"),
                pair("powersave", "performance"),
            );
        }
        assert_eq!(changed, expected);

        // The report names every change, root included, as old → new.
        assert_eq!(report.changed.len(), expected.len(), "{report:#?}");
        let scheduler = report
            .changed
            .iter()
            .find(|c| c.path.ends_with("nvme0n1/queue/scheduler"))
            .unwrap();
        assert_eq!(scheduler.path, fixture.root().join("sys/block/nvme0n1/queue/scheduler"));
        assert_eq!(
            (scheduler.old.as_str(), scheduler.new.as_str()),
            ("mq-deadline", "none")
        );
        // What it cannot do, it says: poll queues need a driver option.
        let not_changed: Vec<&str> = report.not_changed.iter().map(|n| n.setting.as_str()).collect();
        assert_eq!(not_changed, ["queue/io_poll"], "{report:#?}");
        assert!(report.not_changed[0].reason.contains("poll_queues"));

        // A second run finds nothing left to write.
        let findings = inspect(fixture.root(), &GOOD_LIMITS, 4);
        let again = apply(fixture.root(), &findings);
        assert!(again.changed.is_empty(), "{again:#?}");
        assert_eq!(fixture.snapshot(), after);
        let (_, advise, warn) = counts(&findings);
        assert_eq!((advise, warn), (1, 0), "{findings:#?}");
    }

    #[test]
    fn apply_explains_limits_it_cannot_change() {
        let fixture = Fixture::virtio_box();
        let low = Limits {
            memlock_bytes: ResourceLimit::fixed(64 << 10),
            nofile: ResourceLimit::fixed(1024),
        };
        let before = fixture.snapshot();
        let report = apply(fixture.root(), &inspect(fixture.root(), &low, 2));
        assert!(report.changed.is_empty());
        assert_eq!(fixture.snapshot(), before);
        let settings: Vec<&str> = report.not_changed.iter().map(|n| n.setting.as_str()).collect();
        assert_eq!(settings, ["memlock", "nofile"]);
        for n in &report.not_changed {
            assert!(n.reason.contains("/etc/security/limits.d"), "{}", n.reason);
            assert!(n.reason.contains("LimitMEMLOCK"), "{}", n.reason);
        }
    }

    #[test]
    fn apply_never_writes_outside_the_root() {
        let fixture = Fixture::virtio_box();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("swappiness");
        std::fs::write(&target, "60\n").unwrap();
        let link = fixture.root().join("proc/sys/vm/swappiness");
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();

        let findings = inspect(fixture.root(), &GOOD_LIMITS, 2);
        assert_eq!(find(&findings, "memory", "vm.swappiness").status, Status::Advise);
        let report = apply(fixture.root(), &findings);
        assert!(report.changed.is_empty(), "{report:#?}");
        assert_eq!(report.not_changed.len(), 1);
        assert!(report.not_changed[0].reason.contains("outside the root"), "{report:#?}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "60\n");

        // A fix naming a parent folder is refused too.
        let sneaky = vec![Finding {
            fix: Some(Fix::Write(vec![FileWrite {
                path: PathBuf::from("proc/../../etc/passwd"),
                value: "x".to_string(),
            }])),
            ..find(&findings, "memory", "vm.swappiness").clone()
        }];
        let report = apply(fixture.root(), &sneaky);
        assert!(report.changed.is_empty());
        assert!(report.not_changed[0].reason.contains("outside the root"), "{report:#?}");
    }

    #[test]
    fn apply_reports_missing_files_without_creating_them() {
        let fixture = Fixture::virtio_box();
        let findings = vec![Finding {
            area: "memory".to_string(),
            setting: "vm.swappiness".to_string(),
            current: "60".to_string(),
            recommended: "<= 10".to_string(),
            why: "test.".to_string(),
            status: Status::Advise,
            fix: Some(Fix::Write(vec![FileWrite {
                path: PathBuf::from("proc/sys/vm/no_such_setting"),
                value: "1".to_string(),
            }])),
        }];
        let report = apply(fixture.root(), &findings);
        assert!(report.changed.is_empty());
        assert!(report.not_changed[0].reason.contains("cannot open"), "{report:#?}");
        assert!(!fixture.root().join("proc/sys/vm/no_such_setting").exists());
    }

    #[test]
    fn table_lists_every_finding_with_its_reason() {
        let fixture = Fixture::nvme_box_with_bad_settings();
        let findings = inspect(fixture.root(), &GOOD_LIMITS, 4);
        let table = render_table(&findings);
        let mut lines = table.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("STATUS  AREA"), "{table}");
        assert!(header.ends_with("RECOMMENDED"), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("ADVISE  nvme0n1") && l.contains("mq-deadline") && l.ends_with("none")),
            "{table}"
        );
        let (ok, advise, warn) = counts(&findings);
        assert!(
            table.ends_with(&format!("{warn} WARN, {advise} ADVISE, {ok} OK\n")),
            "{table}"
        );
        assert_eq!(table.lines().count(), 1 + 2 * findings.len() + 2);
    }
}

/// The deployment files agree with the checks.
#[cfg(test)]
mod deploy_tests {
    use super::fixture::Fixture;
    use super::*;

    const SYSCTL_CONF: &str = include_str!("../../deploy/99-lumadb.conf");
    const SERVICE: &str = include_str!("../../deploy/lumadb.service");
    const LIMITS_CONF: &str = include_str!("../../deploy/lumadb-limits.conf");

    fn settings(text: &str, separator: char) -> Vec<(&str, &str)> {
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('['))
            .filter_map(|line| line.split_once(separator))
            .map(|(key, value)| (key.trim(), value.trim()))
            .collect()
    }

    #[test]
    fn sysctl_file_passes_every_sysctl_check() {
        let values = settings(SYSCTL_CONF, '=');
        assert!(values.len() >= 8, "{values:?}");
        let fixture = Fixture::nvme_box_with_bad_settings();
        // Two NUMA nodes, so the NUMA sysctls are checked too.
        fixture.write("sys/devices/system/node/node1/cpulist", "");
        fixture.sysctls(&values);
        let findings = inspect(fixture.root(), &Limits::current().unwrap(), 1);
        let sysctls: Vec<&Finding> = findings.iter().filter(|f| f.setting.contains('.')).collect();
        assert_eq!(sysctls.len(), values.len(), "every line is checked: {sysctls:#?}");
        for finding in sysctls {
            assert_eq!(finding.status, Status::Ok, "{finding:#?}");
        }
    }

    #[test]
    fn service_sets_the_limits_and_signals() {
        let values = settings(SERVICE, '=');
        let value = |key: &str| {
            values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("no {key} in lumadb.service"))
        };
        assert_eq!(value("LimitMEMLOCK"), "infinity");
        let nofile: u64 = value("LimitNOFILE").parse().unwrap();
        assert!(nofile >= checks::NOFILE_MIN);
        assert_eq!(
            value("ExecStart"),
            "/usr/local/bin/lumadb start --config /etc/lumadb/config.toml"
        );
        assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
        assert_eq!(value("KillSignal"), "SIGTERM");
        assert_eq!(value("Restart"), "on-failure");
        assert!(value("TimeoutStopSec").parse::<u64>().unwrap() > 0);

        let limits: Vec<Vec<&str>> = LIMITS_CONF
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
            .map(|line| line.split_whitespace().collect())
            .collect();
        for kind in ["soft", "hard"] {
            assert!(
                limits.contains(&vec!["lumadb", kind, "memlock", "unlimited"]),
                "{limits:?}"
            );
            assert!(
                limits.contains(&vec!["lumadb", kind, "nofile", &nofile.to_string()]),
                "{limits:?}"
            );
        }
    }
}
