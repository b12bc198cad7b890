//! The resource limits a LumaDB process runs under.

use std::fmt;

use serde::Serialize;

use crate::error::{Error, Result};

/// One resource limit; `None` is unlimited (`RLIM_INFINITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResourceLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl ResourceLimit {
    pub const UNLIMITED: ResourceLimit = ResourceLimit { soft: None, hard: None };

    /// `soft` and `hard` both set to `value`.
    pub const fn fixed(value: u64) -> ResourceLimit {
        ResourceLimit {
            soft: Some(value),
            hard: Some(value),
        }
    }
}

/// The limits `lumadb tune` checks: those of the current process by
/// default ([`Limits::current`]), or any values a test passes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// `RLIMIT_MEMLOCK`, bytes.
    pub memlock_bytes: ResourceLimit,
    /// `RLIMIT_NOFILE`, file descriptors.
    pub nofile: ResourceLimit,
}

impl Limits {
    /// This process's limits (`getrlimit`).
    pub fn current() -> Result<Limits> {
        Ok(Limits {
            memlock_bytes: rlimit(libc::RLIMIT_MEMLOCK, "memlock")?,
            nofile: rlimit(libc::RLIMIT_NOFILE, "nofile")?,
        })
    }

    /// Reads the text of a `/proc/<pid>/limits` file (how a fixture tree
    /// carries the limits of the process it describes).
    pub fn parse_proc_limits(text: &str) -> Option<Limits> {
        let find = |name: &str| -> Option<ResourceLimit> {
            let line = text.lines().find(|line| line.starts_with(name))?;
            let mut fields = line[name.len()..].split_whitespace();
            let value = |field: Option<&str>| -> Option<Option<u64>> {
                match field? {
                    "unlimited" => Some(None),
                    number => number.parse().ok().map(Some),
                }
            };
            Some(ResourceLimit {
                soft: value(fields.next())?,
                hard: value(fields.next())?,
            })
        };
        Some(Limits {
            memlock_bytes: find("Max locked memory")?,
            nofile: find("Max open files")?,
        })
    }
}

fn rlimit(resource: libc::__rlimit_resource_t, name: &'static str) -> Result<ResourceLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit that outlives the call.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
        return Err(Error::Limit {
            resource: name,
            source: std::io::Error::last_os_error(),
        });
    }
    let value = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Ok(ResourceLimit {
        soft: value(limit.rlim_cur),
        hard: value(limit.rlim_max),
    })
}

/// `Some(n)` as a number of bytes with a binary unit, `None` as "unlimited".
pub(crate) struct Bytes(pub Option<u64>);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(bytes) = self.0 else {
            return f.write_str("unlimited");
        };
        const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, size) in UNITS {
            if bytes >= size && bytes % size == 0 {
                return write!(f, "{} {unit}", bytes / size);
            }
        }
        write!(f, "{bytes} B")
    }
}

/// `Some(n)` as a number, `None` as "unlimited".
pub(crate) struct Count(pub Option<u64>);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("unlimited"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_limits_are_readable() {
        let limits = Limits::current().unwrap();
        if let (Some(soft), Some(hard)) = (limits.nofile.soft, limits.nofile.hard) {
            assert!(soft <= hard);
        }
    }

    #[test]
    fn proc_limits_text_parses() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 524288               files     \n\
                    Max locked memory         65536                unlimited            bytes     \n";
        let limits = Limits::parse_proc_limits(text).unwrap();
        assert_eq!(
            limits,
            Limits {
                memlock_bytes: ResourceLimit {
                    soft: Some(65536),
                    hard: None
                },
                nofile: ResourceLimit {
                    soft: Some(1024),
                    hard: Some(524288)
                },
            }
        );
        assert_eq!(Limits::parse_proc_limits("Max open files 1 2 files\n"), None);
        assert_eq!(
            Limits::parse_proc_limits("Max open files x 2\nMax locked memory 1 1\n"),
            None
        );
    }

    #[test]
    fn sizes_print_with_units() {
        assert_eq!(Bytes(Some(8 << 20)).to_string(), "8 MiB");
        assert_eq!(Bytes(Some(65536)).to_string(), "64 KiB");
        assert_eq!(Bytes(Some(1000)).to_string(), "1000 B");
        assert_eq!(Bytes(None).to_string(), "unlimited");
        assert_eq!(Count(Some(1024)).to_string(), "1024");
    }
}
