//! Compiles the node's own .proto (the store registry service) with protox: no system protoc.
//! Also records the git revision and the rustc version for `strata_build_info`.

use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/strata/node/v1/registry.proto",
        "proto/strata/node/v1/jobs.proto",
        "proto/strata/jobs/v1/jobs.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    build_info();
    Ok(())
}

/// `STRATA_GIT_REVISION` and `STRATA_RUSTC_VERSION` for the binary; absent (the binary says
/// `unknown`) when git or the compiler cannot tell, e.g. when built from a source tarball.
fn build_info() {
    if let Some(rev) = output("git", &["rev-parse", "HEAD"]) {
        println!("cargo:rustc-env=STRATA_GIT_REVISION={rev}");
        // Rebuild the revision when HEAD moves: HEAD itself and the branch it points at.
        for path in ["HEAD", "packed-refs"] {
            watch_git_path(path);
        }
        if let Some(head) = output("git", &["symbolic-ref", "-q", "HEAD"]) {
            watch_git_path(&head);
        }
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if let Some(v) = output(&rustc, &["--version"]) {
        if let Some(version) = v.split_whitespace().nth(1) {
            println!("cargo:rustc-env=STRATA_RUSTC_VERSION={version}");
        }
    }
}

fn watch_git_path(path: &str) {
    if let Some(p) = output("git", &["rev-parse", "--git-path", path]) {
        if std::path::Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}
