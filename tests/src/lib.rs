//! Helpers for the cross-tool tests: where the built binaries are, and where the
//! services that `scripts/test` started listen.

use std::path::PathBuf;

/// The directory of the built binaries (`target/<profile>` or
/// `target/<triple>/<profile>`), found from the test executable in its `deps/`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test executables live in target/<profile>/deps")
        .to_path_buf()
}

/// The workspace's top directory (scripts/, man/, crates/).
pub fn workspace() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// A tool's binary; fails with what to do when it was not built.
pub fn tool(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the binaries first (cargo build --workspace, as scripts/test does)",
        p.display()
    );
    p
}

/// Names of every tool binary.
pub fn tool_names() -> Vec<String> {
    homelab_docs::tools()
        .iter()
        .map(|t| t.command.get_name().to_string())
        .collect()
}

pub use homelab_testkit::{http_get, service_env};

pub mod stack;
