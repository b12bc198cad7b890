//! Out-of-process crash test: a child process writes in `sync` mode on
//! real files and is killed with SIGKILL at seeded random moments; after
//! every kill, the next run first checks that every acknowledged write is
//! present. The seed is printed, and `LUMADB_CRASH_SEED=N` replays a run.

use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WRITER: &str = env!("CARGO_BIN_EXE_lumadb-crash-writer");

fn cycles() -> usize {
    if std::env::var_os("LUMADB_SOAK").is_some() {
        200
    } else {
        24
    }
}

enum Line {
    Verified,
    Ack(String, String),
}

#[test]
fn sigkill_never_loses_an_acknowledged_write() {
    let seed: u64 = match std::env::var("LUMADB_CRASH_SEED") {
        Ok(s) => s.parse().expect("LUMADB_CRASH_SEED is a number"),
        Err(_) => rand::random(),
    };
    eprintln!("crash test seed {seed} (replay with LUMADB_CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let expect_file = dir.path().join("expected.txt");
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let total = cycles();
    for cycle in 0..=total {
        let text: String = expected.iter().map(|(k, v)| format!("ack {k} {v}\n")).collect();
        std::fs::write(&expect_file, text).expect("write expectations");
        let mut child = Command::new(WRITER)
            .arg("--dir")
            .arg(&data)
            .arg("--expect")
            .arg(&expect_file)
            .arg("--seed")
            .arg(cycle.to_string())
            // Odd cycles read tables through the page cache (`use_mmap`).
            .args(if cycle % 2 == 1 {
                &["--page-cache-reads"][..]
            } else {
                &[][..]
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn crash writer");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                // A line cut by the kill has no newline: it was never a complete ack.
                if buf.last() != Some(&b'\n') {
                    return;
                }
                let line = String::from_utf8_lossy(&buf[..buf.len() - 1]).into_owned();
                let mut parts = line.split(' ');
                let msg = match (parts.next(), parts.next(), parts.next()) {
                    (Some("verified"), _, _) => Line::Verified,
                    (Some("ack"), Some(k), Some(v)) => Line::Ack(k.to_string(), v.to_string()),
                    _ => continue,
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
        });
        // Wait for the check of the previous cycle's acknowledged writes.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut verified = false;
        let mut acks = Vec::new();
        while !verified {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Line::Verified) => verified = true,
                Ok(Line::Ack(k, v)) => acks.push((k, v)),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        let mut err = String::new();
                        use std::io::Read;
                        child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                        panic!("seed {seed} cycle {cycle}: writer exited ({status}) before verifying: {err}");
                    }
                    assert!(
                        Instant::now() < deadline,
                        "seed {seed} cycle {cycle}: writer did not verify in time"
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().expect("wait");
                    let mut err = String::new();
                    use std::io::Read;
                    child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                    panic!("seed {seed} cycle {cycle}: writer exited ({status}) before verifying: {err}");
                }
            }
        }
        if cycle == total {
            child.kill().ok();
            child.wait().ok();
            break;
        }
        // Let it write for a seeded random while, then SIGKILL.
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..400)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader thread");
        acks.extend(rx.try_iter().filter_map(|l| match l {
            Line::Ack(k, v) => Some((k, v)),
            Line::Verified => None,
        }));
        assert!(
            !acks.is_empty() || cycle > 0,
            "seed {seed} cycle {cycle}: no write acknowledged"
        );
        for (k, v) in acks {
            expected.insert(k, v);
        }
    }
    assert!(!expected.is_empty());
}
