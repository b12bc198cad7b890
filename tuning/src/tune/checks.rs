//! The checks: each reads its files under the root and adds findings.
//! A check whose files are missing (an older kernel, a container) adds
//! nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::limits::{Bytes, Count};
use super::{FileWrite, Finding, Fix, Limits, Status};
use crate::sysfs;
use crate::topology::{format_cpuset, parse_cpuset};

/// Block devices that are not disks: loop files, RAM disks, compressed
/// RAM swap, optical and floppy drives, and device-mapper/MD devices
/// (their member disks are checked instead).
const VIRTUAL_BLOCK_PREFIXES: &[&str] = &["loop", "ram", "zram", "sr", "fd", "dm-", "md", "nbd"];

/// `queue/nr_requests` below this queues requests in the kernel that the
/// device could hold.
pub const NR_REQUESTS_MIN: u64 = 128;
/// What `--apply` writes when `queue/nr_requests` is below the minimum.
pub const NR_REQUESTS_RECOMMENDED: u64 = 256;
/// Largest recommended `queue/read_ahead_kb`.
pub const READ_AHEAD_KB_MAX: u64 = 128;

/// Locked memory one shard needs: the io_uring buffers its executor
/// registers (2 MiB each, see the README's requirements).
pub const MEMLOCK_PER_SHARD_BYTES: u64 = 2 << 20;
/// Open files below this run out under a few thousand client connections.
pub const NOFILE_MIN: u64 = 65_536;
/// The open files limit the deployment files set.
pub const NOFILE_RECOMMENDED: u64 = 1_048_576;

/// How to raise a resource limit (`--apply` cannot: limits belong to the
/// process that starts LumaDB).
const LIMITS_FIX: &str = "set it where LumaDB is started: LimitMEMLOCK=/LimitNOFILE= in the systemd unit \
                          (tuning/deploy/lumadb.service), or /etc/security/limits.d/lumadb.conf \
                          (tuning/deploy/lumadb-limits.conf) for a login shell";

pub fn block_devices(root: &Path, findings: &mut Vec<Finding>) {
    for device in sysfs::entries(root, "sys/block") {
        if VIRTUAL_BLOCK_PREFIXES.iter().any(|prefix| device.starts_with(prefix)) {
            continue;
        }
        let queue = format!("sys/block/{device}/queue");
        let read = |file: &str| sysfs::read_opt(root, format!("{queue}/{file}"));
        let path = |file: &str| PathBuf::from(format!("{queue}/{file}"));
        let nvme = device.starts_with("nvme");
        let rotational = read("rotational").as_deref() == Some("1");

        if rotational {
            findings.push(Finding::named(&device, "queue/rotational").finding(
                Status::Advise,
                "1 (spinning disk)",
                "0 (SSD or NVMe)",
                "LumaDB's latency targets assume flash: a spinning disk serves a few hundred random reads a second, \
                 an NVMe drive hundreds of thousands.",
                Some(Fix::Manual(
                    "put the data directory on an SSD or NVMe drive".to_string(),
                )),
            ));
        }

        if let Some(text) = read("scheduler") {
            let current = sysfs::selected(&text);
            let available = sysfs::choices(&text);
            let (wanted, why) = if rotational {
                (
                    "mq-deadline",
                    "A spinning disk needs requests sorted by position, and mq-deadline bounds how long a read waits \
                     behind writes.",
                )
            } else {
                (
                    "none",
                    "Flash drives with deep hardware queues gain nothing from reordering; an I/O scheduler only adds \
                     CPU time and latency to every request.",
                )
            };
            let finding = Finding::named(&device, "queue/scheduler");
            if current == wanted {
                findings.push(finding.ok(current, wanted, why));
            } else if available.iter().any(|s| s == wanted) {
                findings.push(finding.finding(
                    Status::Advise,
                    current,
                    wanted,
                    why,
                    Some(Fix::Write(vec![FileWrite {
                        path: path("scheduler"),
                        value: wanted.to_string(),
                    }])),
                ));
            } else {
                findings.push(finding.finding(
                    Status::Advise,
                    current,
                    wanted,
                    why,
                    Some(Fix::Manual(format!(
                        "the kernel offers no {wanted} scheduler for {device}; load it (modprobe) or use a kernel that has it"
                    ))),
                ));
            }
        }

        if let Some(current) = read("nr_requests").and_then(|t| t.parse::<u64>().ok()) {
            let why = "The block layer holds at most this many requests per queue; with every shard keeping I/O in \
                       flight, a small value makes requests wait in the kernel instead of in the drive.";
            let finding = Finding::named(&device, "queue/nr_requests");
            let recommended = format!(">= {NR_REQUESTS_MIN}");
            if current >= NR_REQUESTS_MIN {
                findings.push(finding.ok(current.to_string(), recommended, why));
            } else {
                findings.push(finding.finding(
                    Status::Advise,
                    current.to_string(),
                    recommended,
                    why,
                    Some(Fix::Write(vec![FileWrite {
                        path: path("nr_requests"),
                        value: NR_REQUESTS_RECOMMENDED.to_string(),
                    }])),
                ));
            }
        }

        if let Some(current) = read("read_ahead_kb").and_then(|t| t.parse::<u64>().ok()) {
            let why = "LumaDB reads tables with O_DIRECT and reads ahead itself for scans; with use_mmap (buffered \
                       reads) a large kernel read-ahead turns each small point read into a large transfer that \
                       evicts useful cache.";
            let finding = Finding::named(&device, "queue/read_ahead_kb");
            let recommended = format!("<= {READ_AHEAD_KB_MAX}");
            if current <= READ_AHEAD_KB_MAX {
                findings.push(finding.ok(current.to_string(), recommended, why));
            } else {
                findings.push(finding.finding(
                    Status::Advise,
                    current.to_string(),
                    recommended,
                    why,
                    Some(Fix::Write(vec![FileWrite {
                        path: path("read_ahead_kb"),
                        value: READ_AHEAD_KB_MAX.to_string(),
                    }])),
                ));
            }
        }

        if let Some(current) = read("write_cache") {
            let finding = Finding::named(&device, "queue/write_cache");
            if current == "write back" {
                findings.push(finding.ok(
                    current,
                    "write back",
                    "The kernel flushes the drive's volatile cache on every fdatasync, so acknowledged writes \
                     survive a power loss.",
                ));
            } else {
                findings.push(finding.finding(
                    Status::Advise,
                    current,
                    "write back (unless power-loss protected)",
                    "In write-through mode fdatasync does not flush the drive's cache: safe only if that cache is \
                     power-loss protected, otherwise acknowledged writes can be lost when power fails.",
                    Some(Fix::Manual(format!(
                        "check whether {device} has a volatile write cache (nvme id-ctrl: vwc; hdparm -W); if it has \
                         one, write \"write back\" to /sys/block/{device}/queue/write_cache"
                    ))),
                ));
            }
        }

        if nvme {
            nvme_polling(root, &device, &queue, findings);
        }
    }
}

fn nvme_polling(root: &Path, device: &str, queue: &str, findings: &mut Vec<Finding>) {
    let Some(io_poll) = sysfs::read_opt(root, format!("{queue}/io_poll")) else {
        return;
    };
    let why = "With poll queues the kernel completes I/O by polling on the shard's own core, skipping an interrupt \
               and a context switch per request; without them glommio's polled ring stays unused.";
    let finding = Finding::named(device, "queue/io_poll");
    if io_poll == "1" {
        findings.push(finding.ok(io_poll, "1", why));
    } else {
        findings.push(
            finding.finding(
                Status::Advise,
                io_poll,
                "1",
                why,
                Some(Fix::Manual(
                    "give the nvme driver poll queues: `options nvme poll_queues=<CPUs>` in /etc/modprobe.d/nvme.conf \
                 (or nvme.poll_queues=<CPUs> on the kernel command line), then reboot"
                        .to_string(),
                )),
            ),
        );
        return;
    }
    let Some(delay) = sysfs::read_opt(root, format!("{queue}/io_poll_delay")) else {
        return;
    };
    let why = "-1 polls continuously (classic polling), the lowest latency on a core that a shard owns; hybrid \
               polling sleeps first and adds that sleep to every I/O.";
    let finding = Finding::named(device, "queue/io_poll_delay");
    if delay == "-1" {
        findings.push(finding.ok(delay, "-1", why));
    } else {
        findings.push(finding.finding(
            Status::Advise,
            delay,
            "-1",
            why,
            Some(Fix::Write(vec![FileWrite {
                path: PathBuf::from(format!("{queue}/io_poll_delay")),
                value: "-1".to_string(),
            }])),
        ));
    }
}

/// One NVMe I/O queue's interrupt.
struct QueueIrq {
    irq: u32,
    queue: u32,
    affinity: String,
}

/// Parses `/proc/interrupts` into the I/O queue interrupts of each NVMe
/// controller (`nvme0q1`, …; the admin queue `q0` is left out).
fn nvme_queue_irqs(interrupts: &str) -> BTreeMap<String, Vec<(u32, u32)>> {
    let mut controllers: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
    for line in interrupts.lines() {
        let Some((irq, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        let Ok(irq) = irq.parse::<u32>() else { continue };
        // A line may list several handlers sharing the interrupt: "nvme0q1, nvme1q1".
        for name in rest.split_whitespace().map(|w| w.trim_end_matches(',')) {
            let Some((controller, queue)) = name.split_once('q') else {
                continue;
            };
            let Some(number) = controller.strip_prefix("nvme") else {
                continue;
            };
            if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(queue) = queue.parse::<u32>() else { continue };
            if queue > 0 {
                controllers
                    .entry(controller.to_string())
                    .or_default()
                    .push((irq, queue));
            }
        }
    }
    controllers
}

pub fn nvme_irqs(root: &Path, findings: &mut Vec<Finding>) {
    let Some(interrupts) = sysfs::read_opt(root, "proc/interrupts") else {
        return;
    };
    let online = sysfs::read_opt(root, "sys/devices/system/cpu/online")
        .and_then(|text| parse_cpuset(&text).ok())
        .unwrap_or_default();
    for (controller, irqs) in nvme_queue_irqs(&interrupts) {
        let mut queues: Vec<QueueIrq> = irqs
            .into_iter()
            .filter_map(|(irq, queue)| {
                let affinity = sysfs::read_opt(root, format!("proc/irq/{irq}/smp_affinity_list"))?;
                Some(QueueIrq { irq, queue, affinity })
            })
            .collect();
        if queues.is_empty() {
            continue;
        }
        queues.sort_by_key(|q| q.queue);
        let distinct: BTreeSet<&str> = queues.iter().map(|q| q.affinity.as_str()).collect();
        let covered: BTreeSet<usize> = queues
            .iter()
            .flat_map(|q| parse_cpuset(&q.affinity).unwrap_or_default())
            .collect();
        let covered = format_cpuset(&covered.into_iter().collect::<Vec<_>>());
        let finding = Finding::named("irq", format!("{controller} queues"));
        let recommended = "each queue on its own CPUs";
        if queues.len() == 1 || distinct.len() > 1 {
            findings.push(finding.ok(
                format!("{} queues over CPUs {covered}", queues.len()),
                recommended,
                "Each core's I/O completes on that core (or its neighbours), so a shard's completions never \
                 interrupt another shard.",
            ));
            continue;
        }
        let fix = if online.is_empty() {
            Fix::Manual("stop irqbalance from moving NVMe interrupts and reload the nvme driver".to_string())
        } else {
            Fix::Write(
                spread(&online, queues.len())
                    .into_iter()
                    .zip(&queues)
                    .map(|(cpus, q)| FileWrite {
                        path: PathBuf::from(format!("proc/irq/{}/smp_affinity_list", q.irq)),
                        value: format_cpuset(&cpus),
                    })
                    .collect(),
            )
        };
        findings.push(finding.finding(
            Status::Warn,
            format!("all {} queues on CPUs {covered}", queues.len()),
            recommended,
            "Every completion interrupt lands on the same CPUs, so those cores do other shards' I/O work and \
             completions cross cores; irqbalance or a manual setting has undone the kernel's spread.",
            Some(fix),
        ));
    }
}

/// `cpus` split into `parts` contiguous groups (round robin when there
/// are more parts than CPUs), the way the kernel spreads queue interrupts.
fn spread(cpus: &[usize], parts: usize) -> Vec<Vec<usize>> {
    assert!(!cpus.is_empty());
    if parts >= cpus.len() {
        return (0..parts).map(|i| vec![cpus[i % cpus.len()]]).collect();
    }
    let base = cpus.len() / parts;
    let extra = cpus.len() % parts;
    let mut groups = Vec::with_capacity(parts);
    let mut start = 0;
    for i in 0..parts {
        let size = base + usize::from(i < extra);
        groups.push(cpus[start..start + size].to_vec());
        start += size;
    }
    assert_eq!(start, cpus.len());
    groups
}

pub fn cpu_governor(root: &Path, findings: &mut Vec<Finding>) {
    let mut governors: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut not_offered = false;
    let mut writes = Vec::new();
    for name in sysfs::entries(root, "sys/devices/system/cpu") {
        let Some(cpu) = name.strip_prefix("cpu").and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        let cpufreq = format!("sys/devices/system/cpu/{name}/cpufreq");
        let Some(governor) = sysfs::read_opt(root, format!("{cpufreq}/scaling_governor")) else {
            continue;
        };
        if governor != "performance" {
            let offered = sysfs::read_opt(root, format!("{cpufreq}/scaling_available_governors"))
                .is_none_or(|list| list.split_whitespace().any(|g| g == "performance"));
            not_offered |= !offered;
            writes.push(FileWrite {
                path: PathBuf::from(format!("{cpufreq}/scaling_governor")),
                value: "performance".to_string(),
            });
        }
        governors.entry(governor).or_default().push(cpu);
    }
    if governors.is_empty() {
        return;
    }
    let current = governors
        .iter()
        .map(|(governor, cpus)| format!("{governor} (CPUs {})", format_cpuset(cpus)))
        .collect::<Vec<_>>()
        .join(", ");
    let why = "Power-saving governors slow down idle cores, so the first requests after a quiet moment run at a low \
               clock and tail latency grows.";
    let finding = Finding::named("cpu", "scaling_governor");
    if writes.is_empty() {
        findings.push(finding.ok(current, "performance", why));
    } else if not_offered {
        findings.push(
            finding.finding(
                Status::Advise,
                current,
                "performance",
                why,
                Some(Fix::Manual(
                    "the cpufreq driver offers no performance governor; choose the performance power profile in the \
                 firmware (BIOS) or the hypervisor"
                        .to_string(),
                )),
            ),
        );
    } else {
        findings.push(finding.finding(Status::Advise, current, "performance", why, Some(Fix::Write(writes))));
    }
}

pub fn transparent_hugepages(root: &Path, findings: &mut Vec<Finding>) {
    let dir = "sys/kernel/mm/transparent_hugepage";
    if let Some(text) = sysfs::read_opt(root, format!("{dir}/enabled")) {
        let current = sysfs::selected(&text);
        let why = "With always, the kernel backs memory with 2 MiB pages on its own: khugepaged compaction stalls \
                   and memory bloat show up as latency spikes; madvise leaves huge pages to programs that ask.";
        let finding = Finding::named("memory", "transparent_hugepage/enabled");
        if current == "always" {
            let wanted = choose(&text, &["madvise", "never"]);
            findings.push(finding.finding(
                Status::Warn,
                current,
                "madvise",
                why,
                wanted.map(|value| {
                    Fix::Write(vec![FileWrite {
                        path: PathBuf::from(format!("{dir}/enabled")),
                        value,
                    }])
                }),
            ));
        } else {
            findings.push(finding.ok(current, "madvise", why));
        }
    }
    if let Some(text) = sysfs::read_opt(root, format!("{dir}/defrag")) {
        let current = sysfs::selected(&text);
        let why = "With always, a page fault waits for the kernel to compact memory into a huge page, stalling the \
                   core that faulted for milliseconds.";
        let finding = Finding::named("memory", "transparent_hugepage/defrag");
        if current == "always" {
            let wanted = choose(&text, &["madvise", "defer+madvise", "defer", "never"]);
            findings.push(finding.finding(
                Status::Warn,
                current,
                "madvise",
                why,
                wanted.map(|value| {
                    Fix::Write(vec![FileWrite {
                        path: PathBuf::from(format!("{dir}/defrag")),
                        value,
                    }])
                }),
            ));
        } else {
            findings.push(finding.ok(current, "madvise", why));
        }
    }
}

/// The first of `preferred` that the choice file `text` offers.
fn choose(text: &str, preferred: &[&str]) -> Option<String> {
    let offered = sysfs::choices(text);
    preferred
        .iter()
        .find(|p| offered.iter().any(|o| o == *p))
        .map(|p| p.to_string())
}

/// A sysctl with a numeric value and a range LumaDB is happy with.
struct Sysctl {
    name: &'static str,
    area: &'static str,
    ok: fn(i64) -> bool,
    recommended: &'static str,
    /// What `--apply` writes.
    value: &'static str,
    status: Status,
    why: &'static str,
    /// Checked only on hosts with several NUMA nodes.
    numa_only: bool,
}

const SYSCTLS: &[Sysctl] = &[
    Sysctl {
        name: "net.core.somaxconn",
        area: "network",
        ok: |v| v >= 4096,
        recommended: ">= 4096",
        value: "4096",
        status: Status::Advise,
        why: "Caps the accept queue of every listening socket; a burst of new client connections beyond it is \
              dropped and retried a second later.",
        numa_only: false,
    },
    Sysctl {
        name: "net.ipv4.tcp_max_syn_backlog",
        area: "network",
        ok: |v| v >= 4096,
        recommended: ">= 4096",
        value: "4096",
        status: Status::Advise,
        why: "Half-open connections beyond this are dropped during connection storms, such as every client \
              reconnecting after a failover.",
        numa_only: false,
    },
    Sysctl {
        name: "vm.swappiness",
        area: "memory",
        ok: |v| v <= 10,
        recommended: "<= 10",
        value: "1",
        status: Status::Advise,
        why: "A high value lets the kernel swap out the caches and memtables of quiet shards, turning the next \
              request's memory read into a disk read.",
        numa_only: false,
    },
    Sysctl {
        name: "vm.dirty_ratio",
        area: "memory",
        ok: |v| v <= 20,
        recommended: "<= 20",
        value: "10",
        status: Status::Advise,
        why: "LumaDB writes with O_DIRECT, but a large pool of other programs' dirty pages is written back in \
              bursts that queue behind, and delay, the WAL's fdatasyncs on the same drive.",
        numa_only: false,
    },
    Sysctl {
        name: "vm.dirty_background_ratio",
        area: "memory",
        ok: |v| v <= 10,
        recommended: "<= 10",
        value: "5",
        status: Status::Advise,
        why: "Starting background writeback early keeps dirty pages from piling up into bursts that compete with \
              the WAL for the drive.",
        numa_only: false,
    },
    Sysctl {
        name: "vm.zone_reclaim_mode",
        area: "memory",
        ok: |v| v == 0,
        recommended: "0",
        value: "0",
        status: Status::Advise,
        why: "A non-zero value makes the kernel reclaim cache on the local NUMA node rather than allocate on \
              another, adding reclaim stalls to allocations.",
        numa_only: true,
    },
    Sysctl {
        name: "kernel.numa_balancing",
        area: "memory",
        ok: |v| v == 0,
        recommended: "0",
        value: "0",
        status: Status::Advise,
        why: "Each shard allocates its memory on its own NUMA node; automatic NUMA balancing only adds page \
              faults to migrate pages that are already in the right place.",
        numa_only: true,
    },
];

/// `net.core.somaxconn` → `proc/sys/net/core/somaxconn`.
fn sysctl_path(name: &str) -> PathBuf {
    PathBuf::from(format!("proc/sys/{}", name.replace('.', "/")))
}

pub fn sysctls(root: &Path, findings: &mut Vec<Finding>) {
    io_uring_disabled(root, findings);
    let numa_nodes = sysfs::entries(root, "sys/devices/system/node")
        .iter()
        .filter(|name| name.strip_prefix("node").is_some_and(|n| n.parse::<usize>().is_ok()))
        .count();
    for sysctl in SYSCTLS {
        if sysctl.numa_only && numa_nodes <= 1 {
            continue;
        }
        let path = sysctl_path(sysctl.name);
        let Some(current) = sysfs::read_opt(root, &path) else {
            continue;
        };
        let Ok(value) = current.parse::<i64>() else {
            tracing::debug!(sysctl = sysctl.name, %current, "not a number; skipping");
            continue;
        };
        let finding = Finding::named(sysctl.area, sysctl.name);
        if (sysctl.ok)(value) {
            findings.push(finding.ok(current, sysctl.recommended, sysctl.why));
        } else {
            findings.push(finding.finding(
                sysctl.status,
                current,
                sysctl.recommended,
                sysctl.why,
                Some(Fix::Write(vec![FileWrite {
                    path,
                    value: sysctl.value.to_string(),
                }])),
            ));
        }
    }
}

fn io_uring_disabled(root: &Path, findings: &mut Vec<Finding>) {
    let name = "kernel.io_uring_disabled";
    let path = sysctl_path(name);
    let Some(current) = sysfs::read_opt(root, &path) else {
        return;
    };
    let finding = Finding::named("kernel", name);
    let fix = Some(Fix::Write(vec![FileWrite {
        path,
        value: "0".to_string(),
    }]));
    match current.as_str() {
        "0" => findings.push(finding.ok(
            current,
            "0",
            "LumaDB does its storage and network I/O through io_uring, which every process may use.",
        )),
        "1" => findings.push(finding.finding(
            Status::Warn,
            current,
            "0",
            "Only root and members of the kernel.io_uring_group group may create io_uring instances; LumaDB \
             running as any other user cannot start.",
            fix,
        )),
        _ => findings.push(finding.finding(
            Status::Warn,
            current,
            "0",
            "io_uring is disabled for every process, and LumaDB does all its storage and network I/O through it: \
             it cannot start.",
            fix,
        )),
    }
}

pub fn limits(limits: &Limits, shard_count: usize, findings: &mut Vec<Finding>) {
    let needed_bytes = MEMLOCK_PER_SHARD_BYTES.saturating_mul(shard_count.max(1) as u64);
    let memlock = limits.memlock_bytes.soft;
    let why = format!(
        "Each shard's io_uring rings and registered I/O buffers are locked memory ({} per shard, {} for {} \
         shards); below that the server cannot start its shards.",
        Bytes(Some(MEMLOCK_PER_SHARD_BYTES)),
        Bytes(Some(needed_bytes)),
        shard_count.max(1),
    );
    let finding = Finding::named("limits", "memlock");
    match memlock {
        None => findings.push(finding.ok("unlimited", "unlimited", why)),
        Some(bytes) if bytes >= needed_bytes => {
            findings.push(finding.ok(Bytes(memlock).to_string(), "unlimited", why));
        }
        Some(_) => findings.push(finding.finding(
            Status::Warn,
            Bytes(memlock).to_string(),
            "unlimited",
            why,
            Some(Fix::Manual(LIMITS_FIX.to_string())),
        )),
    }

    let nofile = limits.nofile.soft;
    let why = "Every client connection and every table file is a file descriptor; the common default of 1024 runs \
               out under load and new connections fail.";
    let finding = Finding::named("limits", "nofile");
    let recommended = NOFILE_RECOMMENDED.to_string();
    if nofile.is_none_or(|n| n >= NOFILE_MIN) {
        findings.push(finding.ok(Count(nofile).to_string(), recommended, why));
    } else {
        findings.push(finding.finding(
            Status::Warn,
            Count(nofile).to_string(),
            recommended,
            why,
            Some(Fix::Manual(LIMITS_FIX.to_string())),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupts_name_nvme_io_queues() {
        let text = "            CPU0       CPU1\n\
                    \x20 24:          0          0  IR-PCI-MSIX-0000:01:00.0    0-edge      nvme0q0\n\
                    \x20 25:        100          0  IR-PCI-MSIX-0000:01:00.0    1-edge      nvme0q1\n\
                    \x20 26:          0        200  IR-PCI-MSIX-0000:01:00.0    2-edge      nvme0q2\n\
                    \x20 27:          0          0  IR-PCI-MSI    nvme10q1, nvme1q1\n\
                    \x20 28:          0          0  IR-PCI-MSI    nvmeq1 xnvme0q1 eth0\n\
                    NMI:          0          0   Non-maskable interrupts\n";
        let irqs = nvme_queue_irqs(text);
        assert_eq!(irqs.len(), 3, "{irqs:?}");
        assert_eq!(irqs["nvme0"], [(25, 1), (26, 2)]);
        assert_eq!(irqs["nvme10"], [(27, 1)]);
        assert_eq!(irqs["nvme1"], [(27, 1)]);
    }

    #[test]
    fn spread_splits_cpus_like_the_kernel() {
        assert_eq!(spread(&[0, 1, 2, 3], 2), [vec![0, 1], vec![2, 3]]);
        assert_eq!(spread(&[0, 1, 2, 3, 4], 2), [vec![0, 1, 2], vec![3, 4]]);
        assert_eq!(spread(&[0, 1], 3), [vec![0], vec![1], vec![0]]);
        assert_eq!(spread(&[4, 5, 6, 7], 4), [vec![4], vec![5], vec![6], vec![7]]);
    }
}
