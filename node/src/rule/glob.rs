//! `--rule-file` globs as Go's `filepath.Glob` reads them: `*`, `?` and `[...]` within one
//! path component; a pattern without wildcards names one file; results sorted.

use std::path::{Path, PathBuf};

/// Whether `name` matches the one-component `pattern` (`*`, `?`, `[abc]`, `[a-z]`, `[^x]`).
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| match_from(&p[1..], &n[i..])),
        Some('?') => !n.is_empty() && match_from(&p[1..], &n[1..]),
        Some('[') => {
            let Some(close) = p.iter().skip(1).position(|c| *c == ']').map(|i| i + 1) else {
                return false;
            };
            let Some(&c) = n.first() else { return false };
            let (negate, class) = match p.get(1) {
                Some('^') => (true, &p[2..close]),
                _ => (false, &p[1..close]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && match_from(&p[close + 1..], &n[1..])
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && match_from(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && match_from(&p[1..], &n[1..]),
    }
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Files matching `pattern`, sorted; a pattern without wildcards is returned as is if it
/// exists (and as nothing if not, as Go does).
pub fn glob(pattern: &str) -> std::io::Result<Vec<PathBuf>> {
    if !has_meta(pattern) {
        let p = PathBuf::from(pattern);
        return Ok(if p.exists() { vec![p] } else { Vec::new() });
    }
    let path = Path::new(pattern);
    let mut current = vec![PathBuf::new()];
    for comp in path.components() {
        let s = comp.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for base in &current {
            if !has_meta(&s) {
                next.push(base.join(comp.as_os_str()));
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if matches(&s, &name) {
                    next.push(base.join(&name));
                }
            }
        }
        current = next;
    }
    current.retain(|p| p.exists());
    current.sort();
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_within_a_component() {
        assert!(matches("*.yml", "a.yml"));
        assert!(!matches("*.yml", "a.yaml"));
        assert!(matches("r[0-9]?.y*", "r1x.yaml"));
        assert!(!matches("[^a]*", "abc"));
    }

    #[test]
    fn globs_list_sorted_files() {
        let d = tempfile::tempdir().expect("tempdir");
        for f in ["b.yml", "a.yml", "c.txt"] {
            std::fs::write(d.path().join(f), "").expect("write");
        }
        let got = glob(&format!("{}/*.yml", d.path().display())).expect("glob");
        let names: Vec<_> = got.iter().filter_map(|p| p.file_name()?.to_str()).collect();
        assert_eq!(names, vec!["a.yml", "b.yml"]);
        assert!(glob(&format!("{}/none.yml", d.path().display()))
            .expect("glob")
            .is_empty());
    }
}
