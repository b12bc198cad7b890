//! Connection-level commands in a session: logging in (AUTH, HELLO with
//! its AUTH and SETNAME options, against `server.requirepass`) and
//! SHUTDOWN. RESET, which undoes a login, stays with the dispatch.

use bytes::Bytes;

use super::Session;
use crate::resp::{command, errors, Reply};

impl Session {
    /// AUTH [username] password, against `server.requirepass` (the
    /// default user's password), with Redis's replies.
    pub(super) fn auth(&mut self, args: &[Bytes]) -> Reply {
        let (user, password) = match args {
            [_, password] => {
                if self.shard.requirepass.borrow().is_empty() {
                    return Reply::error(errors::AUTH_WITHOUT_PASSWORD);
                }
                (None, password)
            }
            [_, user, password] => (Some(user), password),
            _ => return Reply::error(errors::SYNTAX),
        };
        if self.password_matches(user, password) {
            self.authenticated = true;
            Reply::ok()
        } else {
            tracing::warn!(client = self.info.id, addr = %self.info.addr, "AUTH failed");
            Reply::error(errors::WRONGPASS)
        }
    }

    /// Whether `user` (the default user when absent) and `password` may
    /// log in. With no password configured the default user takes any, as
    /// Redis's `nopass` default user does. The comparison takes the same
    /// time wherever the first differing byte is.
    fn password_matches(&self, user: Option<&Bytes>, password: &[u8]) -> bool {
        if user.is_some_and(|u| u.as_ref() != b"default") {
            return false;
        }
        let expected = self.shard.requirepass.borrow().clone();
        let expected = expected.as_bytes();
        if expected.is_empty() {
            return true;
        }
        let differ = expected.len() ^ password.len();
        let bytes = expected
            .iter()
            .zip(password.iter().cycle())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        differ == 0 && bytes == 0
    }

    pub(super) fn hello(&mut self, args: &[Bytes]) -> Reply {
        let mut i = 1;
        let mut resp3 = self.resp3;
        if let Some(v) = args.get(1) {
            match crate::resp::num::parse_i64(v) {
                Some(2) => resp3 = false,
                Some(3) => resp3 = true,
                Some(_) => return Reply::error(errors::NOPROTO),
                None => return Reply::error("ERR Protocol version is not an integer or out of range"),
            }
            i = 2;
        }
        // Options apply in order, as in Redis: a failing one leaves those
        // before it applied (a login, a name).
        while i < args.len() {
            match args[i].to_ascii_lowercase().as_slice() {
                b"setname" if i + 1 < args.len() => {
                    if args[i + 1].iter().any(|&c| c <= b' ' || c > b'~') {
                        return Reply::error(errors::CLIENT_NAME_INVALID);
                    }
                    self.name = args[i + 1].clone();
                    self.shard.set_client_name(self.info.id, self.name.clone());
                    i += 2;
                }
                b"auth" if i + 2 < args.len() => {
                    if !self.password_matches(Some(&args[i + 1]), &args[i + 2]) {
                        return Reply::error(errors::WRONGPASS);
                    }
                    self.authenticated = true;
                    i += 3;
                }
                _ => {
                    return Reply::error(format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(&args[i])
                    ))
                }
            }
        }
        if !self.authenticated {
            return Reply::error(errors::HELLO_NOAUTH);
        }
        self.resp3 = resp3;
        self.info.resp3.set(self.resp3);
        Reply::Map(vec![
            (Reply::bulk("server"), Reply::bulk("redis")),
            (Reply::bulk("version"), Reply::bulk(command::redis_version())),
            (Reply::bulk("proto"), Reply::Int(if self.resp3 { 3 } else { 2 })),
            (Reply::bulk("id"), Reply::Int(self.info.id as i64)),
            (Reply::bulk("mode"), Reply::bulk("standalone")),
            (Reply::bulk("role"), Reply::bulk("master")),
            (Reply::bulk("modules"), Reply::Array(Vec::new())),
        ])
    }

    /// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: a graceful stop, as
    /// SIGTERM starts. The WAL is written out and synced whichever options
    /// are given (there is no snapshot for NOSAVE to skip, nor replicas
    /// for NOW to stop waiting for); as in Redis, the client gets no reply
    /// and its connection closes. A stop cannot be called back once it has
    /// begun, and a connection that can still send ABORT saw none begin.
    pub(super) fn shutdown(&mut self, args: &[Bytes]) -> Reply {
        let (mut save, mut nosave, mut abort, mut other) = (false, false, false, false);
        for a in &args[1..] {
            match a.to_ascii_lowercase().as_slice() {
                b"save" => save = true,
                b"nosave" => nosave = true,
                b"now" | b"force" => other = true,
                b"abort" => abort = true,
                _ => return Reply::error(errors::SYNTAX),
            }
        }
        if (abort && (save || nosave || other)) || (save && nosave) {
            return Reply::error(errors::SYNTAX);
        }
        if abort {
            return Reply::error(errors::NO_SHUTDOWN_IN_PROGRESS);
        }
        tracing::warn!(client = self.info.id, "SHUTDOWN: shutting down gracefully");
        self.shard
            .ctx
            .control
            .request_stop(lumadb_shard::runtime::StopMode::Graceful {
                timeout: lumadb_shard::runtime::DRAIN_TIMEOUT_DEFAULT,
            });
        self.close_unanswered = true;
        Reply::ok()
    }
}
