//! `strata tools rules check` against Prometheus 2.42's `promtool check rules`: the same exit
//! code, stdout and stderr for the same files (tests/rule_check_files/). Where the message
//! comes from a different parser (a PromQL or YAML syntax error), the verdict and the message
//! up to the parser's own words must agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

/// Files whose messages come partly from a parser other than Prometheus' own.
const PARSER_WORDED: &[&str] = &["bad_expr.yml", "yaml_syntax.yml"];

fn files_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/rule_check_files"
    ))
}

fn run(program: &str, pre: &[&str], args: &[&str]) -> Output {
    Command::new(program)
        .args(pre)
        .args(args)
        .current_dir(files_dir())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn promtool_available() -> bool {
    Command::new("promtool").arg("--version").output().is_ok()
}

/// Cuts each line after the words both parsers share.
fn normalise(stderr: &str) -> String {
    stderr
        .lines()
        .map(|l| {
            for marker in ["could not parse expression:", "yaml: line"] {
                if let Some(at) = l.find(marker) {
                    return l[..at + marker.len()].to_string();
                }
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn compare(args: &[&str], exact: bool) {
    let want = run("promtool", &["check", "rules"], args);
    let got = run(
        env!("CARGO_BIN_EXE_strata"),
        &["tools", "rules", "check"],
        args,
    );
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (ws, gs) = (text(&want.stderr), text(&got.stderr));
    assert_eq!(
        got.status.code(),
        want.status.code(),
        "exit code for {args:?}\npromtool: {ws}\nstrata: {gs}"
    );
    assert_eq!(text(&got.stdout), text(&want.stdout), "stdout for {args:?}");
    if exact {
        assert_eq!(gs, ws, "stderr for {args:?}");
    } else {
        assert_eq!(
            normalise(&gs),
            normalise(&ws),
            "stderr (normalised) for {args:?}"
        );
    }
}

#[test]
fn every_file_gets_promtools_verdict_and_messages() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let mut names: Vec<String> = std::fs::read_dir(files_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "the file set is there: {names:?}");
    for n in &names {
        compare(&[n], !PARSER_WORDED.contains(&n.as_str()));
    }
}

#[test]
fn several_files_lint_fatal_and_missing_paths_exit_as_promtool() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    compare(&["good.yml", "missing_expr.yml", "empty.yml"], true);
    compare(&["good.yml", "duplicates.yml"], true);
    compare(&["--lint-fatal", "duplicates.yml"], true);
    compare(&["--lint=none", "duplicates.yml"], true);
    // promtool refuses a missing path before checking; the message names its own program.
    let want = run("promtool", &["check", "rules"], &["good.yml", "nosuch.yml"]);
    let got = run(
        env!("CARGO_BIN_EXE_strata"),
        &["tools", "rules", "check"],
        &["good.yml", "nosuch.yml"],
    );
    assert_eq!(got.status.code(), want.status.code());
    assert!(String::from_utf8_lossy(&got.stderr).contains("path 'nosuch.yml' does not exist"));
}
