//! Real servers on loopback for the end-to-end tests: [`LumaServer`] runs
//! the `lumadb` binary on free ports with its own temporary data
//! directory; [`RedisServer`] runs a real `redis-server` to compare against.
//! Both are killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::lumadb_bin;
use crate::resp::RespConn;

/// How long a server may take to say it is ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The line `lumadb start` prints once it listens.
pub const READY_LINE: &str = "ready to accept connections";

/// `n` distinct free loopback ports (all bound at once, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding port 0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

/// How to start a [`LumaServer`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub shards: usize,
    /// `--sync-mode`; `None` keeps the config's.
    pub sync_mode: Option<&'static str>,
    /// Text of a config file passed with `--config`.
    pub config: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            shards: 2,
            sync_mode: None,
            config: None,
        }
    }
}

impl ServerOptions {
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n;
        self
    }

    pub fn sync_mode(mut self, mode: &'static str) -> Self {
        self.sync_mode = Some(mode);
        self
    }

    pub fn config(mut self, text: &str) -> Self {
        self.config = Some(text.to_string());
        self
    }
}

/// Everything a server process printed, gathered by reader threads.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<String>>);

impl Output {
    pub fn text(&self) -> String {
        self.0.lock().expect("output lock").clone()
    }

    fn collect<R: Read + Send + 'static>(&self, stream: R, prefix: &'static str) {
        let out = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                let mut o = out.lock().expect("output lock");
                o.push_str(prefix);
                o.push_str(&line);
                o.push('\n');
            }
        });
    }
}

/// A `lumadb start` process.
pub struct LumaServer {
    opts: ServerOptions,
    /// Holds the data dir, the log dir and the config file.
    dir: tempfile::TempDir,
    child: Option<Child>,
    output: Output,
    redis_port: u16,
    http_port: u16,
}

impl LumaServer {
    /// Starts a server and waits until it accepts connections.
    pub fn start(opts: ServerOptions) -> LumaServer {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut server = LumaServer {
            opts,
            dir,
            child: None,
            output: Output::default(),
            redis_port: 0,
            http_port: 0,
        };
        server.spawn();
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.data_dir().join("log")
    }

    pub fn redis_port(&self) -> u16 {
        self.redis_port
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// What the server printed so far (stdout and stderr, in order of
    /// arrival per stream).
    pub fn output(&self) -> String {
        self.output.text()
    }

    /// The `lumadb start` command for this server's data dir and options
    /// on the given ports; not started.
    pub fn start_command(&self, redis_port: u16, http_port: u16) -> Command {
        self.start_command_with_shards(redis_port, http_port, self.opts.shards)
    }

    /// [`LumaServer::start_command`] with another `--shards`.
    pub fn start_command_with_shards(&self, redis_port: u16, http_port: u16, shards: usize) -> Command {
        let mut cmd = Command::new(lumadb_bin());
        cmd.arg("start")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--redis-port", &redis_port.to_string()])
            .args(["--http-port", &http_port.to_string()])
            .args(["--shards", &shards.to_string()]);
        if let Some(mode) = self.opts.sync_mode {
            cmd.args(["--sync-mode", mode]);
        }
        if let Some(text) = &self.opts.config {
            let path = self.dir.path().join("config.toml");
            std::fs::write(&path, text).expect("writing config.toml");
            cmd.arg("--config").arg(path);
        }
        cmd
    }

    fn spawn(&mut self) {
        let ports = free_ports(2);
        self.redis_port = ports[0];
        self.http_port = ports[1];
        self.spawn_on_current_ports();
    }

    fn spawn_on_current_ports(&mut self) {
        let from = self.output().len();
        let mut cmd = self.start_command(self.redis_port, self.http_port);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        self.output.collect(child.stdout.take().expect("stdout"), "");
        self.output.collect(child.stderr.take().expect("stderr"), "stderr: ");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.output()[from..].lines().any(|l| l == READY_LINE) {
                // The ready line is printed before the listeners accept
                // (redis_faults::ready_line_means_the_redis_port_accepts
                // covers that); the other tests wait for the ports.
                for port in [self.redis_port, self.http_port] {
                    assert!(
                        eventually(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port))
                            .is_ok()),
                        "port {port} does not accept connections after the ready line\n--- output:\n{}",
                        self.output()
                    );
                }
                return;
            }
            if let Some(status) = self.child.as_mut().expect("child").try_wait().expect("try_wait") {
                // Let the reader threads catch up with the last lines.
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "lumadb start exited with {status} before it was ready\n--- command: {cmd:?}\n--- output:\n{}",
                    self.output()
                );
            }
            if Instant::now() > deadline {
                let pid = self.child.as_ref().expect("child").id();
                let stacks = thread_stacks(pid);
                // Attaching a debugger interrupts every thread's system
                // call; a server that then becomes ready was parked on a
                // lost wake-up rather than busy or deadlocked.
                std::thread::sleep(Duration::from_secs(2));
                let woke = self.output()[from..].lines().any(|l| l == READY_LINE);
                panic!(
                    "lumadb start was not ready after {START_TIMEOUT:?} (ready after a debugger attached: {woke})\n--- output:\n{}\n--- thread stacks:\n{stacks}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A connection to the Redis port.
    pub fn conn(&self) -> RespConn {
        RespConn::open(self.redis_port)
    }

    /// `redis-cli -p <port> --no-raw <args>`; answers stdout, panicking
    /// with its stderr if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("timeout")
            .args(CLIENT_TIMEOUT_ARGS)
            .arg("redis-cli")
            .args(["-p", &self.redis_port.to_string(), "--no-raw"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running redis-cli (scripts/setup.sh installs it): {e}"));
        assert!(
            out.status.success(),
            "redis-cli {args:?} failed with {}: {}\n--- server output:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.output()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `redis-cli` with `script` on its standard input (one connection).
    pub fn cli_script(&self, script: &str) -> String {
        redis_cli_script(self.redis_port, script)
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("server is running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                panic!("server did not exit within {timeout:?}\n--- output:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM; asserts a clean exit (status 0).
    pub fn stop(&mut self) {
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(30));
        assert_eq!(
            status.code(),
            Some(0),
            "lumadb did not stop cleanly on SIGTERM\n--- output:\n{}",
            self.output()
        );
    }

    /// Starts the server again on the same data dir (on fresh ports),
    /// killing it first if it still runs.
    pub fn restart(&mut self) {
        self.kill9();
        self.output.0.lock().expect("output lock").push_str("--- restart ---\n");
        self.spawn();
    }

    /// SIGKILL, then starts again at once on the same data dir and the
    /// same ports, as an operator's restart script would.
    pub fn kill9_and_restart_on_same_ports(&mut self) {
        self.kill9();
        self.output
            .0
            .lock()
            .expect("output lock")
            .push_str("--- restart on the same ports ---\n");
        self.spawn_on_current_ports();
    }

    /// Runs a Python client script (redis-py, installed by
    /// `scripts/setup.sh`) with this server's Redis port as its argument,
    /// and asserts it exits 0 having printed `ok_marker`.
    pub fn run_python(&self, script: &str, ok_marker: &str) {
        let out = Command::new("timeout")
            .args(CLIENT_TIMEOUT_ARGS)
            .arg("python3")
            .arg("-c")
            .arg(script)
            .arg(self.redis_port().to_string())
            .output()
            .expect("running python3 (scripts/setup.sh installs redis-py)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains(ok_marker),
            "python3 exited with {}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}\n--- server output:\n{}",
            out.status,
            self.output()
        );
    }

    /// The contents of a log file (`server`, `error`, `access`, `slow-query`).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_dir().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// An HTTP request to the admin port.
    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> HttpReply {
        http(self.http_port, method, path, body)
    }
}

impl Drop for LumaServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Client programs run under coreutils' `timeout`, so a server that never
/// answers fails the test with its output instead of hanging it.
pub const CLIENT_TIMEOUT_ARGS: [&str; 2] = ["--kill-after=5", "60"];

/// Runs `redis-cli -p <port> --no-raw`, one connection, with `script`
/// (one command a line) on its standard input.
pub fn redis_cli_script(port: u16, script: &str) -> String {
    let mut child = Command::new("timeout")
        .args(CLIENT_TIMEOUT_ARGS)
        .arg("redis-cli")
        .args(["-p", &port.to_string(), "--no-raw"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running redis-cli (scripts/setup.sh installs it): {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("writing redis-cli's input");
    let out = child.wait_with_output().expect("redis-cli output");
    assert!(
        out.status.success(),
        "redis-cli with {script:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `redis-cli -p <port> --no-raw <args>`.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(CLIENT_TIMEOUT_ARGS)
        .arg("redis-cli")
        .args(["-p", &port.to_string(), "--no-raw"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running redis-cli (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl HttpReply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`, `Connection: close`.
pub fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> HttpReply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connecting to :{port}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let body = body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).expect("writing the request");
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("reading the response head");
        if n == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let mut bytes = Vec::new();
    match length {
        Some(n) => {
            bytes.resize(n, 0);
            reader.read_exact(&mut bytes).expect("reading the body");
        }
        None => {
            reader.read_to_end(&mut bytes).expect("reading the body");
        }
    }
    HttpReply {
        status,
        headers: head,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A real `redis-server` (from scripts/setup.sh) with persistence off.
pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("temporary folder");
        let port = free_ports(1)[0];
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("running redis-server (scripts/setup.sh installs it): {e}"));
        let server = RedisServer { child, port, _dir: dir };
        wait_for_ping(port, Duration::from_secs(20));
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn conn(&self) -> RespConn {
        RespConn::open(self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Waits until a Redis server on `port` answers PING.
pub fn wait_for_ping(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut c) = RespConn::connect(port) {
            c.send(&["PING"]);
            if let Ok((raw, _)) = c.read_reply() {
                if raw == b"+PONG\r\n" {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "no PONG from port {port} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it is true or `timeout` passes; answers the last result.
/// Every thread's stack of process `pid`, from gdb when it is installed:
/// what a test prints about a server that hangs.
pub fn thread_stacks(pid: u32) -> String {
    match Command::new("timeout")
        .args([
            "60",
            "gdb",
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt",
        ])
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => format!("(gdb not available: {e})"),
    }
}

pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The first `n` keys `prefix0, prefix1, ...` that land on `shard` of
/// `shards` (xxh3 of the key, modulo the shard count, as the server does).
pub fn keys_on_shard(prefix: &str, shard: usize, shards: usize, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| shard_of(k.as_bytes(), shards) == shard)
        .take(n)
        .collect()
}

/// The shard that owns `key`.
pub fn shard_of(key: &[u8], shards: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64(key) % shards as u64) as usize
}

/// A path as UTF-8 text.
pub fn path_text(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
