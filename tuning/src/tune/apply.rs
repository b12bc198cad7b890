//! `lumadb tune --apply`: writing the fixes of the findings.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{FileWrite, Finding, Fix, Status};
use crate::error::Error;
use crate::sysfs;

/// What `--apply` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Files written, with the value before and after.
    pub changed: Vec<Change>,
    /// Findings (or single files of one) left as they were, and why.
    pub not_changed: Vec<NotChanged>,
}

/// One file written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The file, root included.
    pub path: PathBuf,
    pub old: String,
    pub new: String,
}

/// A setting `--apply` did not change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotChanged {
    pub area: String,
    pub setting: String,
    /// The file, root included, when the failure was writing one.
    pub path: Option<PathBuf>,
    pub reason: String,
}

/// Writes the fixes of every finding that is not OK into the files under
/// `root`. Only files that exist are written (nothing is created), and
/// only files whose real path, symbolic links resolved, lies under `root`.
/// Each file is read back: a value the kernel did not keep is reported as
/// not changed.
pub fn apply(root: &Path, findings: &[Finding]) -> ApplyReport {
    let mut report = ApplyReport::default();
    let canonical_root = root.canonicalize();
    for finding in findings.iter().filter(|f| f.status != Status::Ok) {
        let not_changed = |path: Option<PathBuf>, reason: String| NotChanged {
            area: finding.area.clone(),
            setting: finding.setting.clone(),
            path,
            reason,
        };
        match &finding.fix {
            None => report.not_changed.push(not_changed(
                None,
                "no file setting reaches the recommended value".to_string(),
            )),
            Some(Fix::Manual(how)) => report.not_changed.push(not_changed(None, how.clone())),
            Some(Fix::Write(writes)) => {
                for write in writes {
                    let path = sysfs::join(root, &write.path).unwrap_or_else(|_| root.join(&write.path));
                    let result = match &canonical_root {
                        Ok(canonical_root) => write_one(root, canonical_root, write),
                        Err(error) => Err(format!("cannot resolve the root {}: {error}", root.display())),
                    };
                    match result {
                        Ok(Some(change)) => report.changed.push(change),
                        Ok(None) => {}
                        Err(reason) => report.not_changed.push(not_changed(Some(path), reason)),
                    }
                }
            }
        }
    }
    report
}

/// Writes one file; `Ok(None)` when it already holds the value.
fn write_one(root: &Path, canonical_root: &Path, write: &FileWrite) -> Result<Option<Change>, String> {
    let path = sysfs::join(root, &write.path).map_err(|e| e.to_string())?;
    let canonical = path.canonicalize().map_err(|e| format!("cannot open: {e}"))?;
    if !canonical.starts_with(canonical_root) {
        return Err(Error::OutsideRoot {
            path: canonical,
            root: canonical_root.to_path_buf(),
        }
        .to_string());
    }
    let old = sysfs::read(&path).map_err(|e| e.to_string())?;
    let old = sysfs::selected(&old);
    if old == write.value {
        return Ok(None);
    }
    // No create: a missing file is the kernel saying the setting does not
    // exist. Truncation is ignored by sysfs and procfs and needed for
    // regular files (fixture trees).
    let written = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{}\n", write.value).as_bytes()));
    if let Err(error) = written {
        return Err(write_error_reason(&write.path, &error));
    }
    let now = sysfs::read(&path)
        .map(|text| sysfs::selected(&text))
        .map_err(|e| e.to_string())?;
    if now != write.value {
        return Err(format!("wrote {:?} but the kernel kept {now:?}", write.value));
    }
    Ok(Some(Change {
        path,
        old,
        new: write.value.clone(),
    }))
}

fn write_error_reason(relative: &Path, error: &std::io::Error) -> String {
    let hint = match error.kind() {
        std::io::ErrorKind::PermissionDenied => " (run as root)",
        _ if relative.starts_with("proc/irq") && error.raw_os_error() == Some(libc::EIO) => {
            " (the kernel manages this interrupt's affinity itself: stop irqbalance and reload the driver instead)"
        }
        _ if error.raw_os_error() == Some(libc::EINVAL) => " (the kernel rejected the value)",
        _ => "",
    };
    format!("cannot write: {error}{hint}")
}
