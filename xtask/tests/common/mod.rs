//! Shared by the tests that run the `cargo xtask` binary.

use std::path::Path;
use std::process::Output;

/// A command's status and output, for an assertion's message.
pub fn show(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A path as an argument; the tests' temporary paths are UTF-8.
#[allow(dead_code)]
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}
