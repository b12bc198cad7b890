//! Server-management commands a session answers itself: CLIENT (its own
//! name and id, and the list of every shard's clients) and CONFIG (GET
//! from the running settings, SET of the runtime ones on every shard).

use bytes::Bytes;

use super::Session;
use crate::resp::{errors, Reply};
use crate::server::{info, Shard, ShardRequest, ShardResponse};

impl Session {
    pub(super) async fn client(&mut self, args: &[Bytes]) -> Reply {
        let sub = args.get(1).map(|a| a.to_ascii_lowercase()).unwrap_or_default();
        match sub.as_slice() {
            b"setname" if args.len() == 3 => {
                if args[2].iter().any(|&c| c <= b' ' || c > b'~') {
                    return Reply::error(errors::CLIENT_NAME_INVALID);
                }
                self.name = args[2].clone();
                self.shard.set_client_name(self.info.id, self.name.clone());
                Reply::ok()
            }
            b"getname" if args.len() == 2 => {
                if self.name.is_empty() {
                    Reply::Null
                } else {
                    Reply::Bulk(self.name.clone())
                }
            }
            b"id" if args.len() == 2 => Reply::Int(self.info.id as i64),
            b"setinfo" if args.len() == 4 => Reply::ok(),
            b"list" => {
                // CLIENT LIST [TYPE normal|master|replica|slave|pubsub] [ID id ...]
                let option = args.get(2).map(|a| a.to_ascii_lowercase());
                let keep: Box<dyn Fn(&str) -> bool> = match (option.as_deref(), args.len()) {
                    (None, _) => Box::new(|_| true),
                    (Some(b"type"), 4) => match args[3].to_ascii_lowercase().as_slice() {
                        b"normal" => Box::new(|line| !info::line_is_pubsub(line)),
                        b"pubsub" => Box::new(info::line_is_pubsub),
                        b"master" | b"replica" | b"slave" => Box::new(|_| false),
                        _ => {
                            return Reply::error(format!(
                                "ERR Unknown client type '{}'",
                                String::from_utf8_lossy(&args[3])
                            ))
                        }
                    },
                    (Some(b"id"), n) if n > 3 => {
                        let mut ids = Vec::new();
                        for a in &args[3..] {
                            match crate::resp::num::parse_i64(a) {
                                Some(id) => ids.push(id),
                                None => return Reply::error("ERR Invalid client ID"),
                            }
                        }
                        Box::new(move |line| info::line_client_id(line).is_some_and(|id| ids.contains(&id)))
                    }
                    _ => return Reply::error(errors::SYNTAX),
                };
                let mut text = String::new();
                for r in self.call_all(|| ShardRequest::ClientList).await {
                    if let Ok(ShardResponse::Text(t)) = r {
                        for line in t.split_inclusive('\n').filter(|l| keep(l)) {
                            text.push_str(line);
                        }
                    }
                }
                Reply::Bulk(Bytes::from(text))
            }
            b"info" if args.len() == 2 => Reply::Bulk(Bytes::from(info::client_line(&self.shard, &self.info))),
            b"setname" | b"getname" | b"id" | b"setinfo" | b"info" => Reply::error(format!(
                "ERR Unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(&args[1])
            )),
            _ => Reply::Error(errors::unknown_subcommand(
                "CLIENT",
                args.get(1).map_or(&b""[..], |a| a),
            )),
        }
    }

    pub(super) async fn config(&mut self, args: &[Bytes]) -> Reply {
        let sub = args.get(1).map(|a| a.to_ascii_lowercase()).unwrap_or_default();
        match sub.as_slice() {
            b"get" if args.len() >= 3 => {
                let params = info::config_params(&self.shard);
                let mut matched: Vec<&str> = Vec::new();
                let mut out = Vec::new();
                for pattern in &args[2..] {
                    // As Redis: a name without glob characters is answered
                    // spelled as the client spelled it.
                    let exact = !pattern.iter().any(|b| matches!(b, b'*' | b'?' | b'['));
                    for (k, v) in &params {
                        let hit = if exact {
                            pattern.eq_ignore_ascii_case(k.as_bytes())
                        } else {
                            crate::glob::glob_match(pattern, k.as_bytes(), true)
                        };
                        if hit && !matched.contains(&k.as_str()) {
                            matched.push(k);
                            let name = if exact { pattern.clone() } else { Bytes::from(k.clone()) };
                            out.push((Reply::Bulk(name), Reply::bulk(v.clone())));
                        }
                    }
                }
                Reply::Map(out)
            }
            b"set" if args.len() >= 4 && args.len().is_multiple_of(2) => {
                for pair in args[2..].chunks(2) {
                    let key = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                    let value = String::from_utf8_lossy(&pair[1]).to_string();
                    match key.as_str() {
                        "slowlog-log-slower-than" => match value.parse::<i64>() {
                            Ok(us) if us >= 0 => {
                                let ms = (us as u64).div_ceil(1000);
                                for _ in self.call_all(|| ShardRequest::SetSlowLog(ms)).await {}
                            }
                            _ => return config_set_failed(&key, "argument couldn't be parsed into an integer"),
                        },
                        // A client already waiting for a request keeps the
                        // timeout it started waiting with.
                        "timeout" => match value.parse::<i64>() {
                            Ok(secs) if (0..=i64::from(i32::MAX)).contains(&secs) => {
                                let secs = secs as u64;
                                for _ in self.call_all(|| ShardRequest::SetIdleTimeout(secs)).await {}
                            }
                            Ok(_) => {
                                return config_set_failed(&key, "argument must be between 0 and 2147483647 inclusive")
                            }
                            Err(_) => return config_set_failed(&key, "argument couldn't be parsed into an integer"),
                        },
                        "requirepass" => {
                            let password = value.clone();
                            for _ in self.call_all(|| ShardRequest::SetRequirePass(password.clone())).await {}
                            tracing::warn!(client = self.info.id, "requirepass changed with CONFIG SET");
                        }
                        "maxclients" => match value.parse::<u64>() {
                            Ok(n) if (1..=lumadb_shard::config::MAX_CLIENTS_MAX).contains(&n) => {
                                for _ in self.call_all(|| ShardRequest::SetMaxClients(n)).await {}
                            }
                            _ => return config_set_failed(&key, "argument couldn't be parsed into an integer"),
                        },
                        "loglevel" => {
                            let level = match value.as_str() {
                                "debug" => "debug",
                                "verbose" => "debug",
                                "notice" => "info",
                                "warning" => "warn",
                                other => other,
                            };
                            match self.shard.settings.logging.as_ref().map(|l| l.set_level(level)) {
                                Some(Ok(())) | None => {}
                                Some(Err(_)) => {
                                    return config_set_failed(
                                        &key,
                                        "argument(s) must be one of the following: debug, verbose, notice, warning",
                                    )
                                }
                            }
                        }
                        k if info::config_params(&self.shard).iter().any(|(n, _)| n == k) => {
                            return config_set_failed(k, "can't set immutable config")
                        }
                        k => {
                            return Reply::error(format!(
                                "ERR Unknown option or number of arguments for CONFIG SET - '{k}'"
                            ))
                        }
                    }
                }
                Reply::ok()
            }
            b"resetstat" if args.len() == 2 => {
                for r in self.call_all(|| ShardRequest::ResetStats).await {
                    if let Err(e) = r {
                        return e;
                    }
                }
                Reply::ok()
            }
            b"set" if args.len() >= 4 => Reply::error(errors::SYNTAX),
            b"get" | b"set" | b"resetstat" => Reply::Error(errors::wrong_arity(&format!(
                "config|{}",
                String::from_utf8_lossy(&sub)
            ))),
            _ => Reply::Error(errors::unknown_subcommand(
                "CONFIG",
                args.get(1).map_or(&b""[..], |a| a),
            )),
        }
    }
}

impl Shard {
    pub(super) fn set_client_name(&self, id: u64, name: Bytes) {
        if let Some(c) = self.clients.borrow().get(&id) {
            *c.name.borrow_mut() = name;
        }
    }
}

/// Redis's reply to a CONFIG SET that failed on parameter `name`.
fn config_set_failed(name: &str, why: &str) -> Reply {
    Reply::error(format!(
        "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
    ))
}
