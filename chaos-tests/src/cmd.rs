//! Running short helper commands (ip, iptables) and turning failures into errors.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// Renders a command line for error messages and logs.
pub(crate) fn render<S: AsRef<OsStr>>(program: &OsStr, args: &[S]) -> String {
    let mut s = program.to_string_lossy().into_owned();
    for a in args {
        s.push(' ');
        s.push_str(&a.as_ref().to_string_lossy());
    }
    s
}

/// Runs a command to completion and returns its output, whatever its status.
pub(crate) fn output<S: AsRef<OsStr>>(program: &OsStr, args: &[S]) -> Result<Output> {
    let line = render(program, args);
    tracing::debug!(cmd = %line, "run");
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn { cmd: line, source })
}

/// Runs a command and fails unless it exits 0; returns stdout.
pub(crate) fn run<S: AsRef<OsStr>>(program: &OsStr, args: &[S]) -> Result<String> {
    let out = output(program, args)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            cmd: render(program, args),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
