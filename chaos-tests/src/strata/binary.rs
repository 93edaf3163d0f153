//! Finding the `strata` binary under test. Cargo only builds and names binaries for tests of
//! their own package (`CARGO_BIN_EXE_*`); `node` is a binary-only crate, so chaos-tests cannot
//! depend on it. `cargo nextest run --workspace` builds it (node has integration tests), into
//! the same target directory as this test binary; `STRATA_BIN` overrides the search.

use std::path::{Path, PathBuf};

/// The `strata` binary: `$STRATA_BIN`, else `strata` beside the running test's target directory
/// (`<target>/<profile>/deps/<test>` -> `<target>/<profile>/strata`), else
/// `$CARGO_TARGET_DIR/debug/strata`. The error says how to build it.
pub fn strata_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("STRATA_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("STRATA_BIN={} is not a file", p.display()))
        };
    }
    let mut tried = Vec::new();
    let beside_test = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        let profile = if deps.file_name()? == "deps" {
            deps.parent()?
        } else {
            deps
        };
        Some(profile.join("strata"))
    });
    let from_env =
        std::env::var_os("CARGO_TARGET_DIR").map(|d| Path::new(&d).join("debug").join("strata"));
    for candidate in [beside_test, from_env].into_iter().flatten() {
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
    }
    Err(format!(
        "the strata binary is not built (looked at {}): run `cargo build -p node` (or \
         `cargo nextest run --workspace`, which builds it), or set STRATA_BIN",
        tried.join(", ")
    ))
}
