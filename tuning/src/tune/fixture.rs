//! Fixture hosts: sysfs/procfs trees in a temporary folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Fixture {
    dir: tempfile::TempDir,
}

/// One block device's queue settings.
pub struct Disk<'a> {
    pub name: &'a str,
    pub scheduler: &'a str,
    pub nr_requests: &'a str,
    pub read_ahead_kb: &'a str,
    pub write_cache: &'a str,
    pub rotational: &'a str,
    /// `(io_poll, io_poll_delay)`, NVMe only.
    pub io_poll: Option<(&'a str, &'a str)>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("temporary folder"),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.root().join(relative);
        std::fs::create_dir_all(path.parent().expect("fixture paths have a parent")).expect("fixture folder");
        std::fs::write(path, format!("{text}\n")).expect("fixture file");
    }

    pub fn disk(&self, disk: Disk<'_>) {
        let queue = format!("sys/block/{}/queue", disk.name);
        self.write(&format!("{queue}/scheduler"), disk.scheduler);
        self.write(&format!("{queue}/nr_requests"), disk.nr_requests);
        self.write(&format!("{queue}/read_ahead_kb"), disk.read_ahead_kb);
        self.write(&format!("{queue}/write_cache"), disk.write_cache);
        self.write(&format!("{queue}/rotational"), disk.rotational);
        if let Some((io_poll, delay)) = disk.io_poll {
            self.write(&format!("{queue}/io_poll"), io_poll);
            self.write(&format!("{queue}/io_poll_delay"), delay);
        }
    }

    /// `count` online CPUs on one NUMA node, each with `governor` (none:
    /// no cpufreq, as in most virtual machines).
    pub fn cpus(&self, count: usize, governor: Option<&str>) {
        self.write("sys/devices/system/cpu/online", &format!("0-{}", count - 1));
        self.write("sys/devices/system/node/node0/cpulist", &format!("0-{}", count - 1));
        for cpu in 0..count {
            let dir = format!("sys/devices/system/cpu/cpu{cpu}");
            self.write(&format!("{dir}/topology/core_id"), &cpu.to_string());
            self.write(&format!("{dir}/topology/physical_package_id"), "0");
            if let Some(governor) = governor {
                self.write(&format!("{dir}/cpufreq/scaling_governor"), governor);
                self.write(
                    &format!("{dir}/cpufreq/scaling_available_governors"),
                    "performance powersave",
                );
            }
        }
    }

    pub fn thp(&self, enabled: &str, defrag: &str) {
        self.write("sys/kernel/mm/transparent_hugepage/enabled", enabled);
        self.write("sys/kernel/mm/transparent_hugepage/defrag", defrag);
    }

    /// Sysctls by name (`vm.swappiness`).
    pub fn sysctls(&self, values: &[(&str, &str)]) {
        for (name, value) in values {
            self.write(&format!("proc/sys/{}", name.replace('.', "/")), value);
        }
    }

    /// `/proc/interrupts` listing queue interrupts `(irq, name, affinity)`.
    pub fn interrupts(&self, irqs: &[(u32, &str, &str)]) {
        let mut text = String::from("           CPU0       CPU1       CPU2       CPU3\n");
        for (irq, name, affinity) in irqs {
            text.push_str(&format!(
                "{irq:4}:          1          2          3          4  IR-PCI-MSIX-0000:01:00.0 {irq}-edge      {name}\n"
            ));
            self.write(&format!("proc/irq/{irq}/smp_affinity_list"), affinity);
        }
        text.push_str(" NMI:          0          0          0          0   Non-maskable interrupts\n");
        self.write("proc/interrupts", &text);
    }

    pub fn meminfo(&self, total_kib: u64) {
        self.write(
            "proc/meminfo",
            &format!("MemTotal:       {total_kib} kB\nMemFree:        1024 kB"),
        );
    }

    /// Every file under the root with its contents.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, String>) {
            for entry in std::fs::read_dir(dir).expect("fixture folder").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(root, &path, files);
                } else {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    files.insert(path.strip_prefix(root).expect("under root").to_path_buf(), text);
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(self.root(), self.root(), &mut files);
        files
    }

    /// A bare-metal NVMe box with everything set badly: mq-deadline, a
    /// short queue, huge read-ahead, no poll queues, all queue interrupts
    /// on CPU 0, powersave, THP always, small network backlogs, a high
    /// swappiness and dirty ratio. Also a loop device that must be skipped.
    pub fn nvme_box_with_bad_settings() -> Fixture {
        let fixture = Fixture::new();
        fixture.disk(Disk {
            name: "nvme0n1",
            scheduler: "[mq-deadline] kyber none",
            nr_requests: "64",
            read_ahead_kb: "4096",
            write_cache: "write back",
            rotational: "0",
            io_poll: Some(("0", "-1")),
        });
        fixture.disk(Disk {
            name: "loop0",
            scheduler: "[mq-deadline] none",
            nr_requests: "1",
            read_ahead_kb: "99999",
            write_cache: "write through",
            rotational: "1",
            io_poll: None,
        });
        fixture.cpus(4, Some("powersave"));
        fixture.thp("[always] madvise never", "[always] defer defer+madvise madvise never");
        fixture.sysctls(&[
            ("kernel.io_uring_disabled", "0"),
            ("net.core.somaxconn", "128"),
            ("net.ipv4.tcp_max_syn_backlog", "512"),
            ("vm.swappiness", "60"),
            ("vm.dirty_ratio", "40"),
            ("vm.dirty_background_ratio", "10"),
            ("vm.zone_reclaim_mode", "1"),
        ]);
        fixture.interrupts(&[
            (40, "nvme0q0", "0-3"),
            (41, "nvme0q1", "0"),
            (42, "nvme0q2", "0"),
            (43, "nvme0q3", "0"),
            (44, "nvme0q4", "0"),
        ]);
        fixture.meminfo(16 << 20);
        fixture
    }

    /// A cloud VM with a virtio disk, set up well: no cpufreq, no NVMe.
    pub fn virtio_box() -> Fixture {
        let fixture = Fixture::new();
        fixture.disk(Disk {
            name: "vda",
            scheduler: "[none] mq-deadline",
            nr_requests: "256",
            read_ahead_kb: "128",
            write_cache: "write back",
            rotational: "0",
            io_poll: None,
        });
        fixture.cpus(2, None);
        fixture.thp("always [madvise] never", "always defer defer+madvise [madvise] never");
        fixture.sysctls(&[
            ("kernel.io_uring_disabled", "0"),
            ("net.core.somaxconn", "4096"),
            ("net.ipv4.tcp_max_syn_backlog", "4096"),
            ("vm.swappiness", "1"),
            ("vm.dirty_ratio", "20"),
            ("vm.dirty_background_ratio", "10"),
        ]);
        fixture.interrupts(&[(11, "virtio0-requests", "0-1")]);
        fixture.meminfo(4 << 20);
        fixture
    }
}
