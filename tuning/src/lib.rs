//! # lumadb-tuning: topology discovery and host tuning
//!
//! Discovers the machine's topology (cores, NUMA nodes, caches, NVMe
//! devices, with hwlocality) for shard placement, and implements
//! `lumadb tune`: NVMe queue settings, IRQ affinity, sysctl, memlock limits
//! and the CPU governor, plus the systemd, sysctl and Kubernetes files that
//! apply them.
//!
//! **What it is not.** It never touches data: it must not depend on
//! `lumadb-engine`, `lumadb-net` or `lumadb-bench`, and it changes host
//! settings only when explicitly asked to.
//!
//! Empty until topology discovery lands.
