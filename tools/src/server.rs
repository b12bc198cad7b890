//! `lumadb start`, and the commands that talk to a running server:
//! `lumadb ping`, `lumadb health`, `lumadb shutdown`.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use lumadb_engine::config::SyncModeName;
use lumadb_net::server::{ServerSettings, Shard};
use lumadb_shard::config::Config;
use lumadb_shard::datadir::DataDir;
use lumadb_shard::logging::Logging;
use lumadb_shard::runtime::{self, Control, RuntimeSpec, ShardSlot, StopMode};

/// Where data lives when neither `--data-dir` nor the environment says.
pub const DATA_DIR_DEFAULT: &str = "./lumadb-data";

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SyncModeArg {
    /// Answer a write after its WAL group is fdatasynced.
    Sync,
    /// fdatasync every [wal] sync_interval_ms.
    Interval,
    /// Write the WAL every 100 ms, fdatasync only at memtable switch and shutdown.
    None,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Configuration file (TOML); defaults apply to everything it omits.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory.
    #[arg(long, default_value = DATA_DIR_DEFAULT)]
    data_dir: PathBuf,
    /// Number of shards (one per CPU by default); overrides [shards] count.
    #[arg(long)]
    shards: Option<usize>,
    /// CPUs to run on, like 0-3,8; overrides [shards] cpuset.
    #[arg(long)]
    cpuset: Option<String>,
    /// Redis port (0 switches the listener off); overrides [server] redis_port.
    #[arg(long)]
    redis_port: Option<u16>,
    /// HTTP admin port (0 switches it off); overrides [server] http_port.
    #[arg(long)]
    http_port: Option<u16>,
    /// Address to listen on; overrides [server] bind.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// WAL durability; overrides [wal] sync_mode.
    #[arg(long, value_enum)]
    sync_mode: Option<SyncModeArg>,
}

pub fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(error) => {
                // As `lumadb config validate` reports it, with its status.
                eprintln!("error: {error}");
                return Ok(ExitCode::from(crate::config::EXIT_INVALID));
            }
        },
        None => Config::default(),
    };
    if let Some(p) = args.redis_port {
        config.server.redis_port = p;
    }
    if let Some(p) = args.http_port {
        config.server.http_port = p;
    }
    if let Some(b) = args.bind {
        config.server.bind = b.to_string();
    }
    if let Some(m) = args.sync_mode {
        config.wal.sync_mode = match m {
            SyncModeArg::Sync => SyncModeName::Sync,
            SyncModeArg::Interval => SyncModeName::Interval,
            SyncModeArg::None => SyncModeName::None,
        };
    }
    let shards = args
        .shards
        .or((config.shards.count > 0).then_some(config.shards.count as usize));
    let cpuset_text = args.cpuset.clone().or_else(|| {
        let c = config.shards.cpuset.trim();
        (!c.is_empty()).then(|| c.to_string())
    });
    let cpuset = match &cpuset_text {
        Some(text) => Some(lumadb_tuning::parse_cpuset(text)?),
        None => None,
    };
    let topology = lumadb_tuning::Topology::discover()?;
    let cpus = topology.select(shards, cpuset.as_deref())?;
    let layout: Vec<ShardSlot> = cpus
        .iter()
        .enumerate()
        .map(|(shard, c)| ShardSlot {
            shard,
            cpu: c.os_index,
            numa_node: c.numa_node,
        })
        .collect();

    let bind: IpAddr = config.server.bind.parse().context("server.bind")?;
    let addr = |port: u16| (port != 0).then_some(SocketAddr::new(bind, port));
    let redis_addr = addr(config.server.redis_port);
    let http_addr = addr(config.server.http_port);
    for a in [redis_addr, http_addr].into_iter().flatten() {
        lumadb_shard::conn::probe_port(a)?;
    }
    // Fail before logging is set up if the data directory is unusable,
    // in use by another server (whose logs these would be) or laid out
    // for another shard count.
    let data = DataDir::open(&args.data_dir, layout.len())?;
    let log_dir = if config.server.log_dir.is_empty() {
        args.data_dir.join("log")
    } else {
        PathBuf::from(&config.server.log_dir)
    };
    let logging = Logging::init(&log_dir, &config.server.log_level, true)?;
    if config.server.disable_thp {
        if let Err(e) = runtime::disable_transparent_huge_pages() {
            tracing::warn!(error = %e, "cannot switch transparent huge pages off (server.disable_thp); latency may spike on huge-page faults");
        }
    }

    let sync = match config.engine_options()?.sync_mode {
        lumadb_engine::SyncMode::Sync => "sync (a write is answered after its WAL group is fdatasynced)".to_string(),
        lumadb_engine::SyncMode::Interval { interval_ms } => format!("interval (fdatasync every {interval_ms} ms)"),
        lumadb_engine::SyncMode::None => "none (the OS decides when writes reach the disk)".to_string(),
    };
    let mut banner = format!(
        "LumaDB {} starting\n  data dir:  {}\n  log dir:   {}\n  sync mode: {sync}\n",
        env!("CARGO_PKG_VERSION"),
        args.data_dir.display(),
        log_dir.display()
    );
    for slot in &layout {
        banner.push_str(&format!(
            "  shard {} -> CPU {} (NUMA node {})\n",
            slot.shard, slot.cpu, slot.numa_node
        ));
    }
    match redis_addr {
        Some(a) => banner.push_str(&format!("  redis:     {a}\n")),
        None => banner.push_str("  redis:     off\n"),
    }
    match http_addr {
        Some(a) => banner.push_str(&format!("  http:      {a} (admin, /metrics)\n")),
        None => banner.push_str("  http:      off\n"),
    }
    print!("{banner}");
    let _ = std::io::stdout().flush();
    // The banner went to stdout; server.log gets it without the terminal.
    tracing::info!(target: "lumadb::banner", shards = layout.len(), data_dir = %args.data_dir.display(), "starting");

    let control = Control::new();
    install_signal_handlers(control.clone(), logging.clone())?;
    let settings = ServerSettings {
        logging: Some(logging.clone()),
        redis_addr,
        http_addr,
    };
    let spec = RuntimeSpec { config, data, layout };
    let result = runtime::run(
        spec,
        control,
        move |ctx| {
            let settings = settings.clone();
            async move { Shard::create(ctx, settings).await }
        },
        || {
            println!("ready to accept connections");
            let _ = std::io::stdout().flush();
            tracing::info!("ready to accept connections");
        },
    );
    match result {
        Ok(()) => {
            tracing::info!("shutdown complete");
            println!("shutdown complete");
            let _ = logging.flush();
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            tracing::error!(error = %e, "server stopped with an error");
            let _ = logging.flush();
            Err(e.into())
        }
    }
}

/// SIGTERM/SIGINT: graceful shutdown (a second one forces). SIGHUP:
/// reopen the log files (logrotate).
fn install_signal_handlers(control: Arc<Control>, logging: Logging) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]).context("signal handlers")?;
    std::thread::Builder::new()
        .name("lumadb-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                match sig {
                    SIGHUP => match logging.reopen() {
                        Ok(()) => tracing::info!("log files reopened"),
                        Err(e) => eprintln!("cannot reopen log files: {e}"),
                    },
                    _ if control.stop_requested() => {
                        tracing::warn!("second stop signal: forcing exit");
                        let _ = logging.flush();
                        control.request_stop(StopMode::Force);
                    }
                    _ => {
                        tracing::info!(signal = sig, "stop signal: shutting down gracefully");
                        control.request_stop(StopMode::Graceful {
                            timeout: runtime::DRAIN_TIMEOUT_DEFAULT,
                        });
                    }
                }
            }
        })
        .context("signal thread")?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Host of the server's admin HTTP API.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port of the server's admin HTTP API.
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

#[derive(Debug, Args)]
pub struct ShutdownArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// Stop accepting, finish in-flight requests, sync the WAL, exit (the default).
    #[arg(long, conflicts_with = "force")]
    graceful: bool,
    /// Exit at once (in sync mode acknowledged writes are already durable).
    #[arg(long)]
    force: bool,
    /// Seconds a graceful shutdown waits for in-flight requests.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

/// Timeout for one admin request.
const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP request to the admin API; returns the status and body.
fn http(remote: &RemoteArgs, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<(u16, String)> {
    let addr = (remote.host.as_str(), remote.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", remote.host))?
        .next()
        .with_context(|| format!("no address for {}", remote.host))?;
    let mut s = TcpStream::connect_timeout(&addr, ADMIN_REQUEST_TIMEOUT)
        .with_context(|| format!("cannot connect to LumaDB's admin API at {addr} (is the server running?)"))?;
    s.set_read_timeout(Some(ADMIN_REQUEST_TIMEOUT))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        remote.host,
        body.len()
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text).context("reading the admin API's answer")?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an HTTP answer from {addr}"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    Ok((status, body))
}

pub fn ping(remote: RemoteArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (status, _) = http(&remote, "GET", "/ready", None)?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if status == 200 {
        println!("PONG from {}:{} in {ms:.2} ms", remote.host, remote.port);
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{}:{} answered but is not ready (HTTP {status})",
            remote.host, remote.port
        );
        Ok(ExitCode::FAILURE)
    }
}

pub fn health(remote: RemoteArgs) -> anyhow::Result<ExitCode> {
    let (status, body) = http(&remote, "GET", "/health", None)?;
    println!("{}", body.trim_end());
    Ok(if status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn shutdown(args: ShutdownArgs) -> anyhow::Result<ExitCode> {
    let mode = if args.force { "force" } else { "graceful" };
    let body = format!("{{\"mode\":\"{mode}\",\"timeout_secs\":{}}}", args.timeout);
    let (status, text) = http(&args.remote, "POST", "/admin/shutdown", Some(&body))?;
    if status != 202 {
        bail!("the server refused to shut down (HTTP {status}): {}", text.trim());
    }
    // Wait until the admin port closes.
    let deadline = Instant::now() + Duration::from_secs(args.timeout + 10);
    while Instant::now() < deadline {
        if TcpStream::connect((args.remote.host.as_str(), args.remote.port)).is_err() {
            println!("server stopped ({mode})");
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "the server accepted the shutdown but is still running after {} s",
        args.timeout + 10
    )
}
