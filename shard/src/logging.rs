//! The server's log files.
//!
//! One directory holds four files, each fed by `tracing` events:
//!
//! | file | events |
//! |------|--------|
//! | `server.log` | everything at the current level ([`Logging::set_level`]) except the access and slow-query streams below, which have their own files; also written to stderr when asked |
//! | `error.log` | WARN and ERROR from every target, whatever the current level |
//! | `access.log` | target `lumadb::access` ([`ACCESS_TARGET`]), every level |
//! | `slow-query.log` | target `lumadb::slow` ([`SLOW_TARGET`]), every level |
//!
//! **No executor waits on a file.** An event is formatted on the thread that
//! emits it and handed as bytes to one writer thread over a bounded channel
//! ([`LOG_QUEUE_LINES_MAX`]). When the channel is full the line is dropped and
//! counted ([`Logging::dropped_lines`]); the writer notes each such loss in
//! `server.log`. The writer drains the channel into buffered files and flushes
//! whenever it is empty, so lines reach the files as soon as the burst that
//! carried them is written. There is no lock on the logging path; the
//! channel is the one point the cores share. A process that aborts loses the
//! lines still queued; [`Logging::flush`] waits for everything before it.
//!
//! [`Logging::reopen`] (SIGHUP, after logrotate moved the files) and
//! [`Logging::flush`] go through the same channel and wait for the writer's
//! answer: a short, rare block, never on the data path.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use tracing::level_filters::LevelFilter;
use tracing::{Dispatch, Metadata};
use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::fmt::format::Writer as FmtWriter;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{fmt, reload, Layer, Registry};

pub use crate::error::LogError;

/// Target of access-log events: `tracing::info!(target: "lumadb::access", ..)`.
pub const ACCESS_TARGET: &str = "lumadb::access";
/// Target of slow-query events.
pub const SLOW_TARGET: &str = "lumadb::slow";

/// Lines queued for the writer thread before new lines are dropped.
pub const LOG_QUEUE_LINES_MAX: usize = 16 * 1024;

/// Accepted by [`Logging::set_level`], most verbose first.
pub const LEVEL_NAMES: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Server,
    Error,
    Access,
    Slow,
}

impl Stream {
    const ALL: [Stream; 4] = [Stream::Server, Stream::Error, Stream::Access, Stream::Slow];

    fn file_name(self) -> &'static str {
        match self {
            Stream::Server => "server.log",
            Stream::Error => "error.log",
            Stream::Access => "access.log",
            Stream::Slow => "slow-query.log",
        }
    }
}

enum Msg {
    Line(Stream, Vec<u8>),
    Reopen(SyncSender<Result<(), LogError>>),
    Flush(SyncSender<()>),
}

/// Handle on the server's logging: cloneable, `Send + Sync`.
#[derive(Clone)]
pub struct Logging {
    tx: SyncSender<Msg>,
    level: reload::Handle<LevelFilter, Registry>,
    dropped: Arc<AtomicU64>,
    dir: PathBuf,
}

impl std::fmt::Debug for Logging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logging")
            .field("dir", &self.dir)
            .field("level", &self.level())
            .finish()
    }
}

impl Logging {
    /// Creates `dir` and its log files, starts the writer thread and installs
    /// the process-wide subscriber. `level` is one of [`LEVEL_NAMES`].
    pub fn init(dir: &Path, level: &str, stderr: bool) -> Result<Logging, LogError> {
        let (logging, dispatch) = Logging::new(dir, level, stderr)?;
        tracing::dispatcher::set_global_default(dispatch).map_err(|_| LogError::AlreadyInstalled)?;
        Ok(logging)
    }

    /// As [`Logging::init`], but returns the subscriber instead of installing
    /// it, for scoped use (`tracing::dispatcher::with_default`) and tests.
    pub fn new(dir: &Path, level: &str, stderr: bool) -> Result<(Logging, Dispatch), LogError> {
        let level_filter = parse_level(level)?;
        std::fs::create_dir_all(dir).map_err(|source| LogError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let files = Files::open(dir)?;
        let (tx, rx) = mpsc::sync_channel(LOG_QUEUE_LINES_MAX);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer_dropped = Arc::clone(&dropped);
        std::thread::Builder::new()
            .name("lumadb-log".into())
            .spawn(move || writer_thread(rx, files, stderr, writer_dropped))
            .map_err(LogError::Spawn)?;

        let make = |stream| LineSink {
            stream,
            tx: tx.clone(),
            dropped: Arc::clone(&dropped),
        };
        let (server_level, level_handle) = reload::Layer::new(level_filter);
        let own_file = |m: &Metadata<'_>| m.target() == ACCESS_TARGET || m.target() == SLOW_TARGET;
        let server = fmt::layer()
            .with_ansi(false)
            .with_writer(make(Stream::Server))
            .with_filter(server_level.and(filter_fn(move |m| !own_file(m))));
        let error = fmt::layer()
            .with_ansi(false)
            .with_writer(make(Stream::Error))
            .with_filter(LevelFilter::WARN);
        let access = fmt::layer()
            .with_ansi(false)
            .with_writer(make(Stream::Access))
            .with_filter(filter_fn(|m| m.target() == ACCESS_TARGET));
        let slow = fmt::layer()
            .with_ansi(false)
            .with_writer(make(Stream::Slow))
            .with_filter(filter_fn(|m| m.target() == SLOW_TARGET));
        let subscriber = Registry::default().with(server).with(error).with(access).with(slow);
        let logging = Logging {
            tx,
            level: level_handle,
            dropped,
            dir: dir.to_path_buf(),
        };
        Ok((logging, Dispatch::new(subscriber)))
    }

    /// Reopens every log file by path, creating it if it was moved away;
    /// lines written after this returns go to the new files.
    pub fn reopen(&self) -> Result<(), LogError> {
        let (ack, answer) = mpsc::sync_channel(1);
        self.tx.send(Msg::Reopen(ack)).map_err(|_| LogError::WriterStopped)?;
        answer.recv().map_err(|_| LogError::WriterStopped)?
    }

    /// Waits until every line queued before this call is written and flushed.
    pub fn flush(&self) -> Result<(), LogError> {
        let (ack, answer) = mpsc::sync_channel(1);
        self.tx.send(Msg::Flush(ack)).map_err(|_| LogError::WriterStopped)?;
        answer.recv().map_err(|_| LogError::WriterStopped)
    }

    /// Changes the level of `server.log` (and stderr) at runtime.
    pub fn set_level(&self, level: &str) -> Result<(), LogError> {
        let filter = parse_level(level)?;
        self.level.reload(filter).map_err(|e| LogError::Reload(e.to_string()))
    }

    /// The current level, one of [`LEVEL_NAMES`].
    pub fn level(&self) -> String {
        let filter = self.level.with_current(|f| *f).unwrap_or(LevelFilter::OFF);
        level_name(filter).to_string()
    }

    /// Lines dropped since start because the writer's queue was full.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn parse_level(level: &str) -> Result<LevelFilter, LogError> {
    match level.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok(LevelFilter::TRACE),
        "debug" => Ok(LevelFilter::DEBUG),
        "info" => Ok(LevelFilter::INFO),
        "warn" | "warning" => Ok(LevelFilter::WARN),
        "error" => Ok(LevelFilter::ERROR),
        "off" => Ok(LevelFilter::OFF),
        _ => Err(LogError::InvalidLevel {
            level: level.to_string(),
        }),
    }
}

fn level_name(filter: LevelFilter) -> &'static str {
    match filter {
        LevelFilter::TRACE => "trace",
        LevelFilter::DEBUG => "debug",
        LevelFilter::INFO => "info",
        LevelFilter::WARN => "warn",
        LevelFilter::ERROR => "error",
        _ => "off",
    }
}

/// Where one stream's formatted events go: the writer thread's queue.
struct LineSink {
    stream: Stream,
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl<'a> MakeWriter<'a> for LineSink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            sink: self,
            buf: Vec::new(),
        }
    }
}

/// Collects one event's text and queues it when dropped.
struct LineWriter<'a> {
    sink: &'a LineSink,
    buf: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.buf);
        match self.sink.tx.try_send(Msg::Line(self.sink.stream, line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.sink.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The open files, owned by the writer thread.
struct Files {
    dir: PathBuf,
    files: Vec<(Stream, BufWriter<File>)>,
    /// A write error was reported to stderr; report the next only after a
    /// successful reopen, so a full disk does not flood stderr.
    error_reported: bool,
}

impl Files {
    fn open(dir: &Path) -> Result<Files, LogError> {
        let mut files = Vec::with_capacity(Stream::ALL.len());
        for stream in Stream::ALL {
            files.push((stream, BufWriter::new(open_append(&dir.join(stream.file_name()))?)));
        }
        Ok(Files {
            dir: dir.to_path_buf(),
            files,
            error_reported: false,
        })
    }

    fn write(&mut self, stream: Stream, bytes: &[u8]) {
        let mut failed = None;
        for (s, w) in &mut self.files {
            if *s == stream {
                if let Err(e) = w.write_all(bytes) {
                    failed = Some(e);
                }
            }
        }
        if let Some(e) = failed {
            self.report(stream, &e);
        }
    }

    fn flush(&mut self) {
        let mut failed = None;
        for (s, w) in &mut self.files {
            if let Err(e) = w.flush() {
                failed = Some((*s, e));
            }
        }
        if let Some((s, e)) = failed {
            self.report(s, &e);
        }
    }

    fn report(&mut self, stream: Stream, e: &io::Error) {
        if !self.error_reported {
            self.error_reported = true;
            let path = self.dir.join(stream.file_name());
            eprintln!("lumadb: cannot write log file {}: {e}", path.display());
        }
    }

    /// Flushes the old files, then opens every path afresh; a file that
    /// fails to open keeps its old handle and the first error is returned.
    fn reopen(&mut self) -> Result<(), LogError> {
        self.flush();
        let mut first_error = None;
        for (stream, w) in &mut self.files {
            match open_append(&self.dir.join(stream.file_name())) {
                Ok(file) => *w = BufWriter::new(file),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => {
                self.error_reported = false;
                Ok(())
            }
            Some(e) => Err(e),
        }
    }
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })
}

fn writer_thread(rx: Receiver<Msg>, mut files: Files, stderr: bool, dropped: Arc<AtomicU64>) {
    let mut dropped_noted = 0u64;
    let mut stderr_out = io::stderr();
    // Ends when every sender is gone: the subscriber and all handles dropped.
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Line(stream, bytes) => {
                    files.write(stream, &bytes);
                    if stderr && stream == Stream::Server {
                        let _ = stderr_out.write_all(&bytes);
                    }
                }
                Msg::Reopen(ack) => {
                    let _ = ack.send(files.reopen());
                }
                Msg::Flush(ack) => {
                    files.flush();
                    let _ = ack.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        let total = dropped.load(Ordering::Relaxed);
        if total > dropped_noted {
            let line = dropped_line(total - dropped_noted);
            files.write(Stream::Server, line.as_bytes());
            files.write(Stream::Error, line.as_bytes());
            dropped_noted = total;
        }
        files.flush();
    }
    files.flush();
}

/// A line in the same shape as the formatted events.
fn dropped_line(count: u64) -> String {
    let mut line = String::new();
    // Formatting into a String cannot fail.
    let _ = SystemTime.format_time(&mut FmtWriter::new(&mut line));
    line.push_str(&format!(
        "  WARN lumadb::logging: dropped {count} log lines: the log writer queue ({LOG_QUEUE_LINES_MAX} lines) was full\n"
    ));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap_or_default()
    }

    #[test]
    fn events_land_in_their_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs");
        let (logging, dispatch) = Logging::new(&dir, "info", false).unwrap();
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::debug!("debug-hidden");
            tracing::info!(shard = 3, "info-line");
            tracing::warn!("warn-line");
            tracing::error!("error-line");
            tracing::info!(target: "lumadb::access", method = "GET", path = "/health", "access-line");
            tracing::debug!(target: "lumadb::slow", ms = 250, "slow-line");
        });
        logging.flush().unwrap();

        let server = read(&dir, "server.log");
        assert!(
            server.contains("INFO") && server.contains("info-line shard=3"),
            "{server}"
        );
        assert!(
            server.contains("warn-line") && server.contains("error-line"),
            "{server}"
        );
        assert!(!server.contains("debug-hidden"), "{server}");
        assert!(
            !server.contains("access-line") && !server.contains("slow-line"),
            "{server}"
        );

        let error = read(&dir, "error.log");
        assert!(error.contains("warn-line") && error.contains("error-line"), "{error}");
        assert!(!error.contains("info-line"), "{error}");

        let access = read(&dir, "access.log");
        assert!(
            access.contains("access-line") && access.contains("path=\"/health\""),
            "{access}"
        );
        assert_eq!(access.lines().count(), 1, "{access}");

        let slow = read(&dir, "slow-query.log");
        assert!(
            slow.contains("slow-line ms=250"),
            "a DEBUG slow query is logged at level info: {slow}"
        );
        assert_eq!(slow.lines().count(), 1, "{slow}");
        assert!(!server.contains('\u{1b}'), "no ANSI colours in files");
    }

    #[test]
    fn reopen_after_rename_starts_new_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (logging, dispatch) = Logging::new(dir, "info", false).unwrap();
        tracing::dispatcher::with_default(&dispatch, || tracing::info!("before-rotate"));
        logging.flush().unwrap();
        for name in ["server.log", "error.log", "access.log", "slow-query.log"] {
            std::fs::rename(dir.join(name), dir.join(format!("{name}.1"))).unwrap();
        }
        // Until reopened, lines follow the moved file (as logrotate expects).
        tracing::dispatcher::with_default(&dispatch, || tracing::info!("still-old"));
        logging.reopen().unwrap();
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!("after-rotate");
            tracing::error!("new-error");
        });
        logging.flush().unwrap();

        let old = read(dir, "server.log.1");
        assert!(old.contains("before-rotate") && old.contains("still-old"), "{old}");
        assert!(!old.contains("after-rotate"), "{old}");
        let new = read(dir, "server.log");
        assert!(new.contains("after-rotate") && !new.contains("before-rotate"), "{new}");
        assert!(read(dir, "error.log").contains("new-error"));
        assert!(dir.join("access.log").exists() && dir.join("slow-query.log").exists());
    }

    #[test]
    fn set_level_filters_server_log() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (logging, dispatch) = Logging::new(dir, "WARN", false).unwrap();
        assert_eq!(logging.level(), "warn");
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!("info-at-warn");
            logging.set_level("debug").unwrap();
            tracing::debug!("debug-at-debug");
            tracing::trace!("trace-at-debug");
            logging.set_level("error").unwrap();
            tracing::warn!("warn-at-error");
            tracing::error!("error-at-error");
        });
        assert_eq!(logging.level(), "error");
        logging.flush().unwrap();
        let server = read(dir, "server.log");
        assert!(!server.contains("info-at-warn"), "{server}");
        assert!(server.contains("debug-at-debug"), "{server}");
        assert!(!server.contains("trace-at-debug"), "{server}");
        assert!(!server.contains("warn-at-error"), "{server}");
        assert!(server.contains("error-at-error"), "{server}");
        // error.log keeps WARN whatever the level.
        assert!(read(dir, "error.log").contains("warn-at-error"));

        let err = logging.set_level("loud").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("loud") && msg.contains("trace, debug, info, warn, error, off"),
            "{msg}"
        );
        assert_eq!(logging.level(), "error");
        assert!(matches!(
            Logging::new(dir, "verbose", false),
            Err(LogError::InvalidLevel { .. })
        ));
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (logging, dispatch) = Logging::new(dir, "info", false).unwrap();
        // Fill the queue faster than one writer drains it: some lines may be
        // dropped, every line is either written or counted.
        let lines = LOG_QUEUE_LINES_MAX * 2;
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..lines {
                tracing::info!(target: "lumadb::access", "line {i}");
            }
        });
        logging.flush().unwrap();
        let written = read(dir, "access.log").lines().count() as u64;
        assert_eq!(written + logging.dropped_lines(), lines as u64);
        if logging.dropped_lines() > 0 {
            // The writer notes the loss once it has drained the queue.
            tracing::dispatcher::with_default(&dispatch, || tracing::info!("nudge"));
            logging.flush().unwrap();
            assert!(read(dir, "server.log").contains("log lines: the log writer queue"));
        }
    }

    #[test]
    fn unusable_dir_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = Logging::new(&file, "info", false).unwrap_err();
        assert!(matches!(err, LogError::CreateDir { .. }), "{err}");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}
