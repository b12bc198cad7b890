//! `lumadb tune`: checks the host's settings for LumaDB, fixes what it can
//! with `--apply`, and writes a matching configuration with `--config-out`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use lumadb_tuning::topology::format_cpuset;
use lumadb_tuning::tune::{self, config, ApplyReport, Finding, Limits, Status};
use lumadb_tuning::{parse_cpuset, Cpu, Topology};

#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    /// Write the recommended values that live in /sys and /proc (as root), and print each change.
    #[arg(long)]
    apply: bool,
    /// Also write a config.toml for this host (shards and memory split) to FILE, which must not exist.
    #[arg(long, value_name = "FILE")]
    config_out: Option<PathBuf>,
    /// Number of shards to plan for (default: one per allowed CPU).
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// CPUs the shards may use, as a CPU list like 0-3,8 (default: every CPU this process may use).
    #[arg(long, value_name = "LIST")]
    cpuset: Option<String>,
    /// Print the findings (and what --apply did) as JSON.
    #[arg(long)]
    json: bool,
    /// Read, and with --apply write, the host's sys/ and proc/ under DIR instead of / (a copy or a fixture).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
}

pub fn run(args: TuneArgs) -> anyhow::Result<ExitCode> {
    let root = args.root.as_path();
    let this_host = is_this_host(root);
    if args.apply && this_host && !tune::running_as_root() {
        anyhow::bail!(
            "--apply changes kernel settings and needs root: run it with sudo, or leave out --apply to only check"
        );
    }
    let topology = if this_host {
        Topology::discover()?
    } else {
        Topology::from_sysfs(root, None).with_context(|| format!("reading the CPUs under {}", root.display()))?
    };
    let cpuset = args.cpuset.as_deref().map(parse_cpuset).transpose()?;
    let shards = topology.select(args.shards, cpuset.as_deref())?;
    let limits = limits(root, this_host)?;
    let findings = tune::inspect(root, &limits, shards.len());
    let mem_total_bytes = config::mem_total_bytes(root);
    if args.config_out.is_some() {
        // The memory split needs the RAM size: no file without it.
        if let Err(error) = &mem_total_bytes {
            anyhow::bail!("cannot write a configuration: {error}");
        }
    }
    let applied = args.apply.then(|| tune::apply(root, &findings));

    if let (Some(path), Ok(mem_total_bytes)) = (&args.config_out, &mem_total_bytes) {
        let text = config::config_toml(&shards, topology.cpus.len(), topology.numa_nodes, *mem_total_bytes);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .with_context(|| format!("writing {}", path.display()))?;
    }

    let mut out = std::io::stdout().lock();
    if args.json {
        let report = serde_json::json!({
            "root": root,
            "topology": {
                "cpus": topology.cpus,
                "cores": topology.core_count(),
                "numa_nodes": topology.numa_nodes,
            },
            "shards": shards.iter().map(|cpu| cpu.os_index).collect::<Vec<_>>(),
            "mem_total_bytes": mem_total_bytes.as_ref().ok(),
            "findings": findings,
            "applied": applied,
            "config_out": args.config_out,
        });
        writeln!(out, "{report:#}").context("writing to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = render(
        root,
        &topology,
        &shards,
        mem_total_bytes.ok(),
        &findings,
        applied.as_ref(),
        args.config_out.as_deref(),
    );
    out.write_all(text.as_bytes()).context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `root` is this machine's own `/`.
fn is_this_host(root: &Path) -> bool {
    match (root.canonicalize(), Path::new("/").canonicalize()) {
        (Ok(root), Ok(slash)) => root == slash,
        _ => false,
    }
}

/// This process's limits on this host; on a copied root, those recorded in
/// its `proc/self/limits` when it has one.
fn limits(root: &Path, this_host: bool) -> anyhow::Result<Limits> {
    if !this_host {
        let path = root.join("proc/self/limits");
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Limits::parse_proc_limits(&text)
                .with_context(|| format!("{}: no memlock and open-files lines", path.display()));
        }
    }
    Ok(Limits::current()?)
}

fn render(
    root: &Path,
    topology: &Topology,
    shards: &[Cpu],
    mem_total_bytes: Option<u64>,
    findings: &[Finding],
    applied: Option<&ApplyReport>,
    config_out: Option<&Path>,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let memory = mem_total_bytes.map_or("unknown RAM".to_string(), |b| format!("{} MiB of RAM", b >> 20));
    let nodes = topology.numa_nodes;
    let _ = writeln!(
        out,
        "host {}: {} CPUs ({} cores, {nodes} NUMA node{}), {memory}",
        root.display(),
        topology.cpus.len(),
        topology.core_count(),
        if nodes == 1 { "" } else { "s" },
    );
    let indexes: Vec<usize> = shards.iter().map(|cpu| cpu.os_index).collect();
    let _ = writeln!(out, "shards: {} on CPUs {}\n", shards.len(), format_cpuset(&indexes));
    out.push_str(&tune::render_table(findings));

    match applied {
        Some(report) => {
            let _ = writeln!(out, "\nchanged:");
            if report.changed.is_empty() {
                let _ = writeln!(out, "  nothing");
            }
            for change in &report.changed {
                let _ = writeln!(out, "  {}: {} → {}", change.path.display(), change.old, change.new);
            }
            if !report.not_changed.is_empty() {
                let _ = writeln!(out, "\nnot changed:");
            }
            for item in &report.not_changed {
                let path = item
                    .path
                    .as_ref()
                    .map(|p| format!(" ({})", p.display()))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {} {}{path}: {}", item.area, item.setting, item.reason);
            }
            let _ = writeln!(
                out,
                "\nChanges to /sys and /proc last until the next reboot; tuning/deploy/99-lumadb.conf keeps the \
                 sysctls."
            );
        }
        None => {
            let fixable = findings
                .iter()
                .filter(|f| f.status != Status::Ok && matches!(f.fix, Some(tune::Fix::Write(_))))
                .count();
            if fixable > 0 {
                let _ = writeln!(
                    out,
                    "\n{fixable} of these can be written now: run `lumadb tune --apply` as root."
                );
            }
        }
    }
    if let Some(path) = config_out {
        let _ = writeln!(
            out,
            "\nwrote {} (check it with `lumadb config validate {}`)",
            path.display(),
            path.display()
        );
    }
    out
}
