//! # lumadb-tests: end-to-end tests
//!
//! The one integration-test crate. Its single test binary, `e2e`
//! (`tests/e2e/main.rs`), has one module per area and drives LumaDB from
//! the outside: the real `lumadb` binary, real files, and later a real
//! server driven by real clients. This library holds the helpers those
//! modules share.
//!
//! **What it is not.** It tests only through public interfaces (the binary,
//! the wire protocols, the crates' public APIs) and nothing depends on it.
//!
//! Set `LUMADB_BIN` to test a prebuilt `lumadb` instead of building one.

pub mod resp;
pub mod server;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits one level below the workspace root")
}

/// A `cargo` command: the one running these tests (`$CARGO`), else `cargo`
/// from `PATH`, started in the workspace root.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(program);
    command.current_dir(workspace_root());
    command
}

/// The `lumadb` binary, built once per test process with the same target
/// folder and profile as the running test (so `cargo test --release` tests
/// a release binary), or `$LUMADB_BIN` when set.
pub fn lumadb_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("LUMADB_BIN") {
        Some(path) => PathBuf::from(path),
        None => build_lumadb(),
    })
}

fn build_lumadb() -> PathBuf {
    // The test runs as <target>/<profile>/deps/<test>-<hash>.
    let exe = std::env::current_exe().expect("path of the running test");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in <target>/<profile>/deps", exe.display()));
    let target_dir = profile_dir.parent().expect("profile folder has a parent");
    let profile = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .expect("profile folder name");

    let mut command = cargo();
    command.args([
        "build",
        "--quiet",
        "-p",
        "lumadb-tools",
        "--bin",
        "lumadb",
        "--target-dir",
    ]);
    command.arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let status = command.status().unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(status.success(), "{command:?} failed with {status}");

    let bin = profile_dir.join(format!("lumadb{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}
