//! Running the `strata` binary as a user does, for the tools' tests.

use std::process::{Command, Output};

/// Runs `strata args...` to completion; prints the command and both outputs for the test log.
pub fn strata(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata");
    eprintln!(
        "strata {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
