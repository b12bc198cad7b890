//! Reading the small text files of sysfs and procfs under a root folder.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Largest sysfs/procfs file read (bytes). `/proc/interrupts` on a
/// 256-CPU host with many devices is the biggest one read, well below it.
pub const HOST_FILE_BYTES_MAX: u64 = 8 << 20;

/// `relative` under `root`. `relative` is a path like `sys/block` (a leading
/// `/` is ignored); `..` components are refused, so a joined path never
/// names a file outside `root` through its spelling.
pub fn join(root: &Path, relative: impl AsRef<Path>) -> Result<PathBuf> {
    let relative = relative.as_ref();
    let mut path = root.to_path_buf();
    for component in relative.components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::OutsideRoot {
                    path: relative.to_path_buf(),
                    root: root.to_path_buf(),
                })
            }
        }
    }
    Ok(path)
}

/// The contents of `path`, whitespace trimmed at both ends.
pub fn read(path: &Path) -> Result<String> {
    use std::io::Read;
    let read_error = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = String::new();
    file.take(HOST_FILE_BYTES_MAX)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    Ok(text.trim().to_string())
}

/// The contents of `relative` under `root`, or `None` when it is missing or
/// unreadable (a kernel without that feature, a container hiding it): a
/// check that cannot read its file has nothing to say.
pub fn read_opt(root: &Path, relative: impl AsRef<Path>) -> Option<String> {
    let path = join(root, relative).ok()?;
    match read(&path) {
        Ok(text) => Some(text),
        Err(error) => {
            tracing::debug!(%error, "skipping a check");
            None
        }
    }
}

/// A sysfs value, as the kernel shows it for choice files: the bracketed
/// word of `"[mq-deadline] none"`, or the whole trimmed text otherwise.
pub fn selected(text: &str) -> String {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .map(str::to_string)
        .unwrap_or_else(|| text.trim().to_string())
}

/// The choices of a choice file: `"[mq-deadline] none"` → `["mq-deadline", "none"]`.
pub fn choices(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|word| word.trim_start_matches('[').trim_end_matches(']').to_string())
        .collect()
}

/// Names of the entries of the folder `relative` under `root`, sorted;
/// empty when it is missing.
pub fn entries(root: &Path, relative: impl AsRef<Path>) -> Vec<String> {
    let Ok(path) = join(root, relative) else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir(&path) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort_by(|a, b| natural_order(a, b));
    names
}

/// Orders `cpu2` before `cpu10` and `nvme1n1` before `nvme10n1`.
pub fn natural_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(s: &str) -> Vec<(String, u64)> {
        let mut parts = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            let text_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let (text, tail) = rest.split_at(text_end);
            let digits_end = tail.find(|c: char| !c.is_ascii_digit()).unwrap_or(tail.len());
            let (digits, tail) = tail.split_at(digits_end);
            parts.push((text.to_string(), digits.parse().unwrap_or(u64::MAX)));
            rest = tail;
        }
        parts
    }
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_refuses_parent_components() {
        let root = Path::new("/fixture");
        assert_eq!(join(root, "/sys/block").unwrap(), Path::new("/fixture/sys/block"));
        assert_eq!(join(root, "proc/sys").unwrap(), Path::new("/fixture/proc/sys"));
        assert!(matches!(join(root, "sys/../../etc"), Err(Error::OutsideRoot { .. })));
    }

    #[test]
    fn choice_files() {
        assert_eq!(selected("[mq-deadline] kyber none\n"), "mq-deadline");
        assert_eq!(selected("always madvise [never]"), "never");
        assert_eq!(selected("  128\n"), "128");
        assert_eq!(selected("write back"), "write back");
        assert_eq!(choices("[none] mq-deadline"), ["none", "mq-deadline"]);
    }

    #[test]
    fn natural_order_sorts_numbers_by_value() {
        let mut names = vec!["cpu10", "cpu2", "cpu1", "cpufreq", "nvme10n1", "nvme1n1"];
        names.sort_by(|a, b| natural_order(a, b));
        assert_eq!(names, ["cpu1", "cpu2", "cpu10", "cpufreq", "nvme1n1", "nvme10n1"]);
    }
}
