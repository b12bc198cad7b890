//! Which CPUs this process may run on, how they group into physical cores
//! and NUMA nodes, and which CPUs the shards are pinned to.
//!
//! [`Topology::discover`] asks hwloc (through `hwlocality`); when hwloc
//! cannot load the topology it falls back to `sched_getaffinity` and the
//! kernel's `/sys/devices/system/{cpu,node}` files, and logs a warning.
//! [`Topology::select`] is a pure function, so placement is tested on
//! synthetic topologies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::sysfs;

/// Largest CPU index accepted in a CPU list: the kernel's `NR_CPUS` limit
/// (8192 on distribution kernels) with room to spare, and far below
/// anything that would make a bitmap allocation absurd.
pub const CPU_INDEX_MAX: usize = (1 << 16) - 1;

/// Largest NUMA node index accepted (the kernel's `MAX_NUMNODES` is 1024).
pub const NUMA_NODE_INDEX_MAX: usize = 1023;

/// The CPUs this process may run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// Allowed CPUs, ordered by `os_index`.
    pub cpus: Vec<Cpu>,
    /// NUMA nodes of the host (at least 1).
    pub numa_nodes: usize,
}

/// One logical CPU (a hardware thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Cpu {
    /// The operating system's CPU number, as `taskset` and
    /// `/sys/devices/system/cpu/cpuN` name it.
    pub os_index: usize,
    /// The operating system's number of the NUMA node holding this CPU (what
    /// [`bind_memory_to_node`] takes).
    pub numa_node: usize,
    /// The physical core: equal for the hardware threads (SMT siblings) of
    /// one core, distinct between cores. A dense index with no meaning
    /// beyond that.
    pub core: usize,
}

impl Topology {
    /// The CPUs this process may run on (its affinity mask, within the
    /// cgroup's cpuset), with their cores and NUMA nodes.
    pub fn discover() -> Result<Topology> {
        match discover_hwloc() {
            Ok(topology) => Ok(topology),
            Err(reason) => {
                tracing::warn!(
                    %reason,
                    "hwloc could not describe the host; falling back to sched_getaffinity and /sys/devices/system"
                );
                let allowed = affinity()?;
                Topology::from_sysfs(Path::new("/"), Some(&allowed))
            }
        }
    }

    /// The topology described by the kernel's files under `root`
    /// (`sys/devices/system/cpu/...` and `sys/devices/system/node/...`),
    /// restricted to `allowed` CPUs, or to the online CPUs when `None`.
    pub fn from_sysfs(root: &Path, allowed: Option<&[usize]>) -> Result<Topology> {
        let cpus: Vec<usize> = match allowed {
            Some(allowed) => allowed.to_vec(),
            None => {
                let path = sysfs::join(root, "sys/devices/system/cpu/online")?;
                let text = sysfs::read(&path)?;
                parse_cpuset(&text).map_err(|e| Error::Malformed {
                    path,
                    reason: e.to_string(),
                })?
            }
        };
        let mut node_of_cpu = BTreeMap::new();
        let mut numa_nodes = 0;
        for name in sysfs::entries(root, "sys/devices/system/node") {
            let Some(node) = name.strip_prefix("node").and_then(|n| n.parse::<usize>().ok()) else {
                continue;
            };
            numa_nodes += 1;
            let Some(list) = sysfs::read_opt(root, format!("sys/devices/system/node/{name}/cpulist")) else {
                continue;
            };
            // A memory-only node has an empty cpulist.
            for cpu in parse_cpuset(&list).unwrap_or_default() {
                node_of_cpu.insert(cpu, node);
            }
        }
        let mut core_ids = BTreeMap::new();
        let mut topology = Topology {
            cpus: Vec::with_capacity(cpus.len()),
            numa_nodes: numa_nodes.max(1),
        };
        for os_index in cpus.into_iter().collect::<BTreeSet<_>>() {
            let read_id = |file: &str| {
                sysfs::read_opt(root, format!("sys/devices/system/cpu/cpu{os_index}/topology/{file}"))
                    .and_then(|text| text.parse::<i64>().ok())
            };
            // Without topology files each CPU is its own core.
            let key = match (read_id("physical_package_id"), read_id("core_id")) {
                (Some(package), Some(core)) => (package, core, None),
                _ => (-1, -1, Some(os_index)),
            };
            let next = core_ids.len();
            let core = *core_ids.entry(key).or_insert(next);
            topology.cpus.push(Cpu {
                os_index,
                numa_node: node_of_cpu.get(&os_index).copied().unwrap_or(0),
                core,
            });
        }
        if topology.cpus.is_empty() {
            return Err(Error::NoCpus);
        }
        Ok(topology)
    }

    /// The OS indexes of the allowed CPUs.
    pub fn cpu_indexes(&self) -> Vec<usize> {
        self.cpus.iter().map(|cpu| cpu.os_index).collect()
    }

    /// Physical cores among the allowed CPUs.
    pub fn core_count(&self) -> usize {
        self.cpus.iter().map(|cpu| cpu.core).collect::<BTreeSet<_>>().len()
    }

    /// One CPU per shard, ordered by `os_index` (shard `i` runs on the
    /// `i`-th CPU returned).
    ///
    /// `cpuset` restricts the choice to those CPUs (each must be allowed);
    /// `shards` picks that many (default: one per candidate CPU). When
    /// fewer shards than CPUs are asked for, distinct physical cores come
    /// before a second hardware thread of a core, and the cores are taken
    /// from the NUMA nodes in turn, so two shards on a two-node host get
    /// one node each.
    pub fn select(&self, shards: Option<usize>, cpuset: Option<&[usize]>) -> Result<Vec<Cpu>> {
        let candidates: Vec<Cpu> = match cpuset {
            None => self.cpus.clone(),
            Some(list) => {
                let mut chosen = BTreeSet::new();
                for &index in list {
                    let cpu = self
                        .cpus
                        .iter()
                        .find(|cpu| cpu.os_index == index)
                        .ok_or_else(|| Error::UnknownCpu {
                            cpu: index,
                            available: format_cpuset(&self.cpu_indexes()),
                        })?;
                    chosen.insert(*cpu);
                }
                chosen.into_iter().collect()
            }
        };
        if candidates.is_empty() {
            return Err(Error::NoCpus);
        }
        let count = shards.unwrap_or(candidates.len());
        if count == 0 {
            return Err(Error::ZeroShards);
        }
        if count > candidates.len() {
            return Err(Error::TooManyShards {
                shards: count,
                cpus: candidates.len(),
            });
        }
        let mut selected: Vec<Cpu> = spread_order(&candidates).into_iter().take(count).collect();
        selected.sort_by_key(|cpu| cpu.os_index);
        assert_eq!(selected.len(), count);
        Ok(selected)
    }
}

/// `candidates` in the order shards take them: the first hardware thread of
/// every core before any second one; within each round, NUMA nodes in
/// turn; within a node, by `os_index`.
fn spread_order(candidates: &[Cpu]) -> Vec<Cpu> {
    // rank of a CPU = how many CPUs of its core come before it.
    let mut sorted = candidates.to_vec();
    sorted.sort_by_key(|cpu| cpu.os_index);
    let mut seen_of_core: BTreeMap<usize, usize> = BTreeMap::new();
    // rank → node → CPUs
    let mut rounds: BTreeMap<usize, BTreeMap<usize, Vec<Cpu>>> = BTreeMap::new();
    for cpu in sorted {
        let rank = seen_of_core.entry(cpu.core).or_insert(0);
        rounds
            .entry(*rank)
            .or_default()
            .entry(cpu.numa_node)
            .or_default()
            .push(cpu);
        *rank += 1;
    }
    let mut order = Vec::with_capacity(candidates.len());
    for nodes in rounds.into_values() {
        let mut queues: Vec<std::vec::IntoIter<Cpu>> = nodes.into_values().map(Vec::into_iter).collect();
        loop {
            let before = order.len();
            for queue in &mut queues {
                order.extend(queue.next());
            }
            if order.len() == before {
                break;
            }
        }
    }
    assert_eq!(order.len(), candidates.len());
    order
}

/// Parses a CPU list as `taskset -c` and `/sys/.../cpulist` write it:
/// `"0-3,8,10-11"`, with optional strides (`"0-10:2"`). The result is
/// sorted, without duplicates.
pub fn parse_cpuset(s: &str) -> Result<Vec<usize>> {
    let invalid = |reason: String| Error::InvalidCpuset {
        input: s.to_string(),
        reason,
    };
    let number = |text: &str| -> Result<usize> {
        let text = text.trim();
        let value: usize = text
            .parse()
            .map_err(|_| invalid(format!("{text:?} is not a CPU number")))?;
        if value > CPU_INDEX_MAX {
            return Err(invalid(format!(
                "CPU {value} is above the largest CPU number {CPU_INDEX_MAX}"
            )));
        }
        Ok(value)
    };
    if s.trim().is_empty() {
        return Err(invalid("the list is empty".to_string()));
    }
    let mut cpus = BTreeSet::new();
    for item in s.trim().split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(invalid("empty item between commas".to_string()));
        }
        let (range, stride) = match item.split_once(':') {
            Some((range, stride)) => (range, number(stride)?),
            None => (item, 1),
        };
        if stride == 0 {
            return Err(invalid(format!("{item:?} has a stride of 0")));
        }
        let (first, last) = match range.split_once('-') {
            Some((first, last)) => (number(first)?, number(last)?),
            None => {
                let cpu = number(range)?;
                (cpu, cpu)
            }
        };
        if first > last {
            return Err(invalid(format!("{item:?} is a decreasing range")));
        }
        cpus.extend((first..=last).step_by(stride));
    }
    Ok(cpus.into_iter().collect())
}

/// Writes CPU numbers as the shortest CPU list (`[0,1,2,3,8]` → `"0-3,8"`);
/// [`parse_cpuset`] reads it back.
pub fn format_cpuset(cpus: &[usize]) -> String {
    let sorted: BTreeSet<usize> = cpus.iter().copied().collect();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for cpu in sorted {
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == cpu => *last = cpu,
            _ => ranges.push((cpu, cpu)),
        }
    }
    ranges
        .iter()
        .map(|&(first, last)| {
            if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Sets the calling thread's memory policy to prefer NUMA node `node`, so
/// that a shard's memory is allocated next to its core. Succeeds without
/// doing anything on a single-node host.
pub fn bind_memory_to_node(node: usize) -> Result<()> {
    use hwlocality::memory::binding::{MemoryBindingFlags, MemoryBindingPolicy};
    use hwlocality::memory::nodeset::NodeSet;
    use hwlocality::object::types::ObjectType;

    let topology = match hwlocality::Topology::new() {
        Ok(topology) => topology,
        Err(error) => {
            tracing::warn!(%error, "hwloc could not describe the host; setting the memory policy with set_mempolicy");
            return bind_memory_to_node_libc(node);
        }
    };
    let nodes: Vec<usize> = topology
        .objects_with_type(ObjectType::NUMANode)
        .filter_map(|object| object.os_index())
        .collect();
    if !nodes.contains(&node) {
        return Err(Error::UnknownNumaNode {
            node,
            nodes: format_cpuset(&nodes),
        });
    }
    if nodes.len() <= 1 {
        return Ok(());
    }
    let mut set = NodeSet::new();
    set.set(node);
    // BIND without STRICT is MPOL_PREFERRED on Linux: allocations fall back
    // to other nodes rather than fail when this one is full.
    topology
        .bind_memory(&set, MemoryBindingPolicy::Bind, MemoryBindingFlags::THREAD)
        .map_err(|e| Error::MemoryBinding {
            node,
            reason: e.to_string(),
        })
}

/// [`bind_memory_to_node`] without hwloc: `set_mempolicy(MPOL_PREFERRED)`.
fn bind_memory_to_node_libc(node: usize) -> Result<()> {
    let nodes: Vec<usize> = sysfs::entries(Path::new("/"), "sys/devices/system/node")
        .iter()
        .filter_map(|name| name.strip_prefix("node").and_then(|n| n.parse().ok()))
        .collect();
    if nodes.len() <= 1 && node == 0 {
        return Ok(());
    }
    if !nodes.contains(&node) || node > NUMA_NODE_INDEX_MAX {
        return Err(Error::UnknownNumaNode {
            node,
            nodes: format_cpuset(&nodes),
        });
    }
    if nodes.len() <= 1 {
        return Ok(());
    }
    const MPOL_PREFERRED: libc::c_long = 1;
    const BITS_PER_WORD: usize = libc::c_ulong::BITS as usize;
    let mut mask = [0 as libc::c_ulong; (NUMA_NODE_INDEX_MAX + 1) / BITS_PER_WORD];
    mask[node / BITS_PER_WORD] |= 1 << (node % BITS_PER_WORD);
    // maxnode is the mask's bit count plus one (the kernel's off-by-one).
    let maxnode = (mask.len() * BITS_PER_WORD + 1) as libc::c_ulong;
    // SAFETY: the mask outlives the call and holds maxnode - 1 bits.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, MPOL_PREFERRED, mask.as_ptr(), maxnode) };
    if rc != 0 {
        return Err(Error::MemoryBinding {
            node,
            reason: std::io::Error::last_os_error().to_string(),
        });
    }
    Ok(())
}

/// Allowed CPUs per hwloc: the cgroup's cpuset intersected with this
/// process's affinity mask.
fn discover_hwloc() -> std::result::Result<Topology, String> {
    use hwlocality::cpu::binding::CpuBindingFlags;
    use hwlocality::object::types::ObjectType;

    let topology = hwlocality::Topology::new().map_err(|e| e.to_string())?;
    let mut allowed = topology.allowed_cpuset().clone_target();
    match topology.cpu_binding(CpuBindingFlags::PROCESS) {
        Ok(binding) => allowed &= &binding,
        Err(error) => tracing::debug!(%error, "hwloc cannot read the process's CPU binding; using all allowed CPUs"),
    }
    let numa_nodes = topology.objects_with_type(ObjectType::NUMANode).count().max(1);
    let mut cpus = Vec::new();
    for pu in topology.objects_with_type(ObjectType::PU) {
        let Some(os_index) = pu.os_index() else { continue };
        if !allowed.is_set(os_index) {
            continue;
        }
        let core = pu
            .first_ancestor_with_type(ObjectType::Core)
            .unwrap_or(pu)
            .global_persistent_index();
        let numa_node = pu
            .nodeset()
            .and_then(|set| set.first_set())
            .map(usize::from)
            .unwrap_or(0);
        cpus.push((os_index, numa_node, core));
    }
    // Dense core numbers, in the order of the cores' first CPUs.
    cpus.sort_unstable();
    let mut core_numbers = BTreeMap::new();
    let cpus: Vec<Cpu> = cpus
        .into_iter()
        .map(|(os_index, numa_node, core_id)| {
            let next = core_numbers.len();
            let core = *core_numbers.entry(core_id).or_insert(next);
            Cpu {
                os_index,
                numa_node,
                core,
            }
        })
        .collect();
    if cpus.is_empty() {
        return Err("hwloc lists no CPU this process may run on".to_string());
    }
    Ok(Topology { cpus, numa_nodes })
}

/// This process's CPU affinity mask (`sched_getaffinity`).
fn affinity() -> Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer and size describe `set`, which outlives the call.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(Error::Discovery {
            reason: format!("sched_getaffinity: {}", std::io::Error::last_os_error()),
        });
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: the index is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    if cpus.is_empty() {
        return Err(Error::NoCpus);
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(os_index: usize, numa_node: usize, core: usize) -> Cpu {
        Cpu {
            os_index,
            numa_node,
            core,
        }
    }

    /// Two NUMA nodes, two cores each, two hardware threads per core,
    /// numbered like Linux numbers Intel hosts: siblings are `n` and `n + 4`.
    fn two_node_smt() -> Topology {
        Topology {
            cpus: vec![
                cpu(0, 0, 0),
                cpu(1, 0, 1),
                cpu(2, 1, 2),
                cpu(3, 1, 3),
                cpu(4, 0, 0),
                cpu(5, 0, 1),
                cpu(6, 1, 2),
                cpu(7, 1, 3),
            ],
            numa_nodes: 2,
        }
    }

    fn indexes(cpus: &[Cpu]) -> Vec<usize> {
        cpus.iter().map(|c| c.os_index).collect()
    }

    #[test]
    fn parse_cpuset_reads_taskset_lists() {
        assert_eq!(parse_cpuset("0-3,8,10-11").unwrap(), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpuset("5").unwrap(), [5]);
        assert_eq!(parse_cpuset(" 3, 1-2 ,1\n").unwrap(), [1, 2, 3]);
        assert_eq!(parse_cpuset("0-10:4").unwrap(), [0, 4, 8]);
        assert_eq!(parse_cpuset("7-7").unwrap(), [7]);
    }

    #[test]
    fn parse_cpuset_rejects_bad_lists() {
        for (input, reason) in [
            ("", "empty"),
            ("   ", "empty"),
            ("1,,2", "empty item"),
            ("1,", "empty item"),
            ("a", "\"a\" is not a CPU number"),
            ("-1", "\"\" is not a CPU number"),
            ("3-1", "decreasing range"),
            ("0-4:0", "stride of 0"),
            ("99999999", "above the largest CPU number"),
            ("0-99999999", "above the largest CPU number"),
        ] {
            let err = parse_cpuset(input).expect_err(input);
            assert!(matches!(err, Error::InvalidCpuset { .. }), "{err:?}");
            let text = err.to_string();
            assert!(text.contains(reason), "{input:?}: {text}");
            assert!(text.contains(&format!("{input:?}")), "{text}");
        }
    }

    #[test]
    fn format_cpuset_round_trips() {
        assert_eq!(format_cpuset(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpuset(&[3, 1, 2, 2]), "1-3");
        assert_eq!(format_cpuset(&[]), "");
        for list in ["0", "0-3,8,10-11", "1,3,5", "0-63"] {
            assert_eq!(format_cpuset(&parse_cpuset(list).unwrap()), list);
        }
    }

    #[test]
    fn select_defaults_to_every_allowed_cpu() {
        let topology = two_node_smt();
        let selected = topology.select(None, None).unwrap();
        assert_eq!(selected, topology.cpus);
    }

    #[test]
    fn select_prefers_distinct_cores_spread_over_nodes() {
        let topology = two_node_smt();
        // Two shards: one core on each node.
        assert_eq!(indexes(&topology.select(Some(2), None).unwrap()), [0, 2]);
        // Four shards: every physical core once, no hardware-thread sibling.
        assert_eq!(indexes(&topology.select(Some(4), None).unwrap()), [0, 1, 2, 3]);
        // Five: one sibling joins.
        assert_eq!(indexes(&topology.select(Some(5), None).unwrap()), [0, 1, 2, 3, 4]);
        assert_eq!(topology.select(Some(8), None).unwrap().len(), 8);
    }

    #[test]
    fn select_spreads_when_siblings_are_adjacent() {
        // AMD-style numbering: siblings are 2n and 2n + 1; one node.
        let topology = Topology {
            cpus: (0..8).map(|i| cpu(i, 0, i / 2)).collect(),
            numa_nodes: 1,
        };
        assert_eq!(indexes(&topology.select(Some(4), None).unwrap()), [0, 2, 4, 6]);
        assert_eq!(
            indexes(&topology.select(Some(3), Some(&[0, 1, 2, 3])).unwrap()),
            [0, 1, 2]
        );
    }

    #[test]
    fn select_restricts_to_the_cpuset() {
        let topology = two_node_smt();
        let selected = topology.select(None, Some(&[4, 5, 6])).unwrap();
        assert_eq!(selected, [cpu(4, 0, 0), cpu(5, 0, 1), cpu(6, 1, 2)]);
        // Duplicates in the list count once.
        assert_eq!(indexes(&topology.select(None, Some(&[1, 1, 2])).unwrap()), [1, 2]);
        // Within the cpuset, the count still prefers distinct cores and nodes.
        assert_eq!(indexes(&topology.select(Some(2), Some(&[0, 4, 1, 6])).unwrap()), [0, 6]);
    }

    #[test]
    fn select_explains_impossible_requests() {
        let topology = two_node_smt();
        let err = topology.select(None, Some(&[1, 9])).unwrap_err();
        assert!(matches!(err, Error::UnknownCpu { cpu: 9, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "CPU 9 is not available to this process (available CPUs: 0-7)"
        );
        let err = topology.select(Some(0), None).unwrap_err();
        assert!(matches!(err, Error::ZeroShards));
        let err = topology.select(Some(9), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "9 shards asked for, but only 8 CPUs are available (one shard per CPU)"
        );
        let err = topology.select(Some(3), Some(&[0, 1])).unwrap_err();
        assert!(matches!(err, Error::TooManyShards { shards: 3, cpus: 2 }), "{err:?}");
        assert!(matches!(topology.select(None, Some(&[])), Err(Error::NoCpus)));
    }

    #[test]
    fn from_sysfs_reads_cores_and_nodes() {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("sys/devices/system/cpu/online", "0-3\n");
        for (cpu, core) in [(0, 0), (1, 1), (2, 0), (3, 1)] {
            write(
                &format!("sys/devices/system/cpu/cpu{cpu}/topology/core_id"),
                &format!("{core}\n"),
            );
            write(
                &format!("sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id"),
                "0\n",
            );
        }
        write("sys/devices/system/node/node0/cpulist", "0-1\n");
        write("sys/devices/system/node/node1/cpulist", "2-3\n");
        write("sys/devices/system/node/node2/cpulist", "\n");
        let topology = Topology::from_sysfs(root.path(), None).unwrap();
        assert_eq!(topology.numa_nodes, 3);
        assert_eq!(topology.cpus, [cpu(0, 0, 0), cpu(1, 0, 1), cpu(2, 1, 0), cpu(3, 1, 1)]);
        assert_eq!(topology.core_count(), 2);

        let topology = Topology::from_sysfs(root.path(), Some(&[3, 1])).unwrap();
        assert_eq!(topology.cpu_indexes(), [1, 3]);

        // No topology files: each CPU is its own core, all on node 0.
        let bare = tempfile::tempdir().unwrap();
        let topology = Topology::from_sysfs(bare.path(), Some(&[0, 1])).unwrap();
        assert_eq!(
            topology,
            Topology {
                cpus: vec![cpu(0, 0, 0), cpu(1, 0, 1)],
                numa_nodes: 1
            }
        );
        assert!(matches!(
            Topology::from_sysfs(bare.path(), None),
            Err(Error::Read { .. })
        ));
    }

    /// Smoke test on the machine running the tests.
    #[test]
    fn discover_finds_this_machines_cpus() {
        let topology = Topology::discover().unwrap();
        assert!(!topology.cpus.is_empty());
        assert!(topology.numa_nodes >= 1);
        let allowed = affinity().unwrap();
        assert_eq!(topology.cpu_indexes(), allowed, "{topology:?}");
        assert!(topology.core_count() <= topology.cpus.len());
        let selected = topology.select(None, None).unwrap();
        assert_eq!(selected.len(), topology.cpus.len());
        let node = topology.cpus[0].numa_node;
        // Binding a thread we own (so the test thread keeps its policy).
        std::thread::spawn(move || bind_memory_to_node(node))
            .join()
            .unwrap()
            .unwrap();
        assert!(matches!(
            bind_memory_to_node(NUMA_NODE_INDEX_MAX),
            Err(Error::UnknownNumaNode { .. })
        ));
    }
}
