//! The crate dependency rules, checked against `cargo metadata`.
//!
//! Dependencies point one way: `engine` knows nothing of the runtime or
//! sockets, `shard` owns the runtime, `net` speaks protocols, `tools` wires
//! everything together, and nothing depends on `tools` or `tests`. Adding a
//! workspace crate, or a dependency between crates, means deciding its row
//! in [`ALLOWED`].

use std::collections::BTreeMap;

use serde_json::Value;

/// The workspace crates each crate may depend on (normal, build or dev).
const ALLOWED: &[(&str, &[&str])] = &[
    ("lumadb-engine", &[]),
    // Placement uses the topology that tuning discovers.
    ("lumadb-shard", &["lumadb-engine", "lumadb-tuning"]),
    ("lumadb-net", &["lumadb-engine", "lumadb-shard"]),
    ("lumadb-tuning", &[]),
    (
        "lumadb-bench",
        &["lumadb-engine", "lumadb-shard", "lumadb-net", "lumadb-tuning"],
    ),
    (
        "lumadb-tools",
        &[
            "lumadb-engine",
            "lumadb-shard",
            "lumadb-net",
            "lumadb-bench",
            "lumadb-tuning",
        ],
    ),
    (
        "lumadb-tests",
        &[
            "lumadb-engine",
            "lumadb-shard",
            "lumadb-net",
            "lumadb-bench",
            "lumadb-tuning",
        ],
    ),
];

/// Outside crates a workspace crate must not depend on, with the reason.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "lumadb-engine",
        "glommio",
        "the engine does its I/O through its Storage trait; glommio stays in shard",
    ),
    (
        "lumadb-engine",
        "io-uring",
        "the engine does its I/O through its Storage trait",
    ),
    ("lumadb-engine", "tokio", "the engine is runtime-agnostic"),
];

/// Every broken rule in `metadata` (the JSON of `cargo metadata --no-deps`).
fn violations(metadata: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let packages = metadata["packages"].as_array().expect("cargo metadata has packages");
    let members: BTreeMap<&str, &Value> = packages
        .iter()
        .map(|p| (p["name"].as_str().expect("package name"), p))
        .collect();
    let internal = |name: &str| members.contains_key(name);

    for (&name, package) in &members {
        let Some(allowed) = ALLOWED
            .iter()
            .find(|(crate_name, _)| *crate_name == name)
            .map(|(_, a)| *a)
        else {
            found.push(format!(
                "{name} has no row in ALLOWED: decide which crates it may depend on"
            ));
            continue;
        };
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let dep = dependency["name"].as_str().expect("dependency name");
            let kind = dependency["kind"].as_str().unwrap_or("normal");
            if internal(dep) && !allowed.contains(&dep) {
                found.push(format!("{name} must not depend on {dep} ({kind} dependency)"));
            }
            for (crate_name, forbidden, why) in FORBIDDEN {
                if *crate_name == name && *forbidden == dep {
                    found.push(format!("{name} must not depend on {dep} ({kind} dependency): {why}"));
                }
            }
        }
    }
    found
}

fn workspace_metadata() -> Value {
    let output = lumadb_tests::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .expect("running cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn workspace_follows_the_dependency_rules() {
    let metadata = workspace_metadata();
    let broken = violations(&metadata);
    assert!(broken.is_empty(), "dependency rules broken:\n  {}", broken.join("\n  "));
}

#[test]
fn every_crate_in_spec_layout_is_a_member() {
    let metadata = workspace_metadata();
    let mut names: Vec<&str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    let mut expected: Vec<&str> = ALLOWED.iter().map(|(name, _)| *name).collect();
    expected.sort_unstable();
    assert_eq!(names, expected);
}

/// The checker itself sees broken rules (a canary: a checker that reports
/// nothing would pass the test above too).
#[test]
fn checker_reports_broken_rules() {
    let package = |name: &str, deps: &[(&str, Option<&str>)]| {
        let deps: Vec<Value> = deps
            .iter()
            .map(|(dep, kind)| serde_json::json!({ "name": dep, "kind": kind }))
            .collect();
        serde_json::json!({ "name": name, "dependencies": deps })
    };
    let metadata = serde_json::json!({
        "packages": [
            package("lumadb-engine", &[("glommio", None), ("lumadb-shard", Some("dev"))]),
            package("lumadb-shard", &[("lumadb-engine", None), ("glommio", None)]),
            package("lumadb-net", &[("lumadb-tools", None)]),
            package("lumadb-tools", &[("lumadb-tests", Some("dev"))]),
            package("lumadb-tests", &[]),
            package("lumadb-newcrate", &[]),
        ]
    });
    let broken = violations(&metadata);
    let expect = [
        "lumadb-engine must not depend on glommio (normal dependency): the engine does its I/O",
        "lumadb-engine must not depend on lumadb-shard (dev dependency)",
        "lumadb-net must not depend on lumadb-tools (normal dependency)",
        "lumadb-tools must not depend on lumadb-tests (dev dependency)",
        "lumadb-newcrate has no row in ALLOWED",
    ];
    for message in expect {
        assert!(
            broken.iter().any(|b| b.starts_with(message)),
            "missing {message:?} in {broken:#?}"
        );
    }
    assert_eq!(broken.len(), expect.len(), "{broken:#?}");
}
