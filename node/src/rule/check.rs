//! `strata tools rules check`: promtool's `check rules` (same output, messages and exit codes:
//! 0 valid, 1 invalid, 3 only lint problems under `--lint-fatal`).

use super::file::{self, RuleGroups};
use std::io::Write;
use std::process::ExitCode;

/// Flags of `strata tools rules check` (promtool's).
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Linting checks to apply: duplicate-rules or none.
    #[arg(long = "lint", default_value = "duplicate-rules")]
    pub lint: String,
    /// Make lint errors exit with exit code 3.
    #[arg(long = "lint-fatal")]
    pub lint_fatal: bool,
    /// The rule files to check.
    #[arg(required = true, value_name = "RULE-FILES")]
    pub files: Vec<String>,
}

/// One file's problems: rulefmt errors, or only the duplicate-rules lint.
enum Problems {
    Errors(Vec<String>),
    Lint(String),
}

/// Runs the check, printing as promtool does; returns promtool's exit code.
pub fn run(args: &CheckArgs, out: &mut impl Write, err: &mut impl Write) -> u8 {
    // promtool's argument parser refuses missing paths before checking anything.
    if let Some(missing) = args
        .files
        .iter()
        .find(|f| !std::path::Path::new(f).exists())
    {
        let _ = writeln!(
            err,
            "strata: error: path '{missing}' does not exist, try --help"
        );
        return 1;
    }
    let lint_duplicates = args
        .lint
        .split(',')
        .any(|l| l == "duplicate-rules" || l == "all");
    let (mut failed, mut has_errors) = (false, false);
    for f in &args.files {
        let _ = writeln!(out, "Checking {f}");
        match check_file(f, lint_duplicates) {
            Ok(n) => {
                let _ = writeln!(out, "  SUCCESS: {n} rules found");
            }
            Err(problems) => {
                let _ = writeln!(err, "  FAILED:");
                failed = true;
                match problems {
                    Problems::Errors(errs) => {
                        has_errors = true;
                        for e in errs {
                            let _ = writeln!(err, "{e}");
                        }
                    }
                    Problems::Lint(msg) => {
                        let _ = writeln!(err, "lint error {msg}");
                    }
                }
            }
        }
        let _ = writeln!(out);
    }
    match (failed, has_errors, args.lint_fatal) {
        (true, true, _) => 1,
        (true, false, true) => 3,
        _ => 0,
    }
}

fn check_file(path: &str, lint_duplicates: bool) -> Result<usize, Problems> {
    let groups = file::parse_file(path).map_err(Problems::Errors)?;
    let n = groups.groups.iter().map(|g| g.rules.len()).sum();
    if lint_duplicates {
        let dups = duplicates(&groups);
        if !dups.is_empty() {
            let mut msg = format!("{} duplicate rule(s) found.\n", dups.len());
            for (metric, labels) in dups {
                msg.push_str(&format!("Metric: {metric}\nLabel(s):\n"));
                for (k, v) in labels {
                    msg.push_str(&format!("\t{k}: {v}\n"));
                }
            }
            msg.push_str("Might cause inconsistency while recording expressions");
            return Err(Problems::Lint(msg));
        }
    }
    Ok(n)
}

type RuleKey = (String, Vec<(String, String)>);

/// Rules with the same name and labels, each reported once (promtool's checkDuplicates).
fn duplicates(groups: &RuleGroups) -> Vec<RuleKey> {
    let mut rules: Vec<RuleKey> = groups
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .map(|r| {
            let labels = r
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (r.name().to_string(), labels)
        })
        .collect();
    rules.sort();
    let mut out: Vec<RuleKey> = Vec::new();
    for pair in rules.windows(2) {
        if pair[0] == pair[1] && out.last() != Some(&pair[1]) {
            out.push(pair[1].clone());
        }
    }
    out
}

/// Entry point for the CLI: prints to stdout/stderr.
pub fn run_cli(args: &CheckArgs) -> ExitCode {
    let code = run(
        args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(files: &[&std::path::Path], fatal: bool) -> (u8, String, String) {
        let args = CheckArgs {
            lint: "duplicate-rules".into(),
            lint_fatal: fatal,
            files: files.iter().map(|p| p.display().to_string()).collect(),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, &mut out, &mut err);
        let s = |b: Vec<u8>| String::from_utf8(b).expect("utf8 output");
        (code, s(out), s(err))
    }

    #[test]
    fn duplicates_are_a_lint_error_fatal_only_on_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("dup.yml");
        let rule = "  - record: a\n    expr: up\n    labels: {x: y}\n";
        std::fs::write(
            &f,
            format!("groups:\n- name: g\n  rules:\n{rule}{rule}{rule}"),
        )
        .expect("write");
        let (code, out, err) = check(&[&f], false);
        assert_eq!(code, 0);
        assert_eq!(out, format!("Checking {}\n\n", f.display()));
        assert_eq!(err, "  FAILED:\nlint error 1 duplicate rule(s) found.\nMetric: a\nLabel(s):\n\tx: y\nMight cause inconsistency while recording expressions\n");
        assert_eq!(check(&[&f], true).0, 3);
    }

    #[test]
    fn invalid_files_fail_with_exit_code_1_and_good_ones_count_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.yml");
        std::fs::write(
            &good,
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n",
        )
        .expect("write");
        let bad = dir.path().join("bad.yml");
        std::fs::write(&bad, "groups:\n- name: g\n  rules:\n  - record: a\n").expect("write");
        let (code, out, err) = check(&[&good, &bad], false);
        assert_eq!(code, 1);
        assert!(out.contains("  SUCCESS: 1 rules found\n"), "{out}");
        assert!(
            err.contains(
                "bad.yml: 0:0: group \"g\", rule 1, \"a\": field 'expr' must be set in rule"
            ),
            "{err}"
        );
    }
}
