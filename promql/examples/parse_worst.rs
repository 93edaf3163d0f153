//! Times `promql::engine::parse` on the slowest inputs it accepts (or refuses late): the
//! figures behind the bound on parse time in `promql::depth`. Run in release:
//! `cargo run --release -p promql --example parse_worst`.

use std::time::Instant;

fn main() {
    let n = promql::depth::MAX_DEPTH - 1;
    // The longest operator chains accepted: one more term than operators.
    let terms = promql::depth::MAX_OPERATORS + 1;
    let mb = 10 << 20;
    let cases: Vec<(&str, String)> = vec![
        ("1+1+... (longest accepted)", vec!["1"; terms].join("+")),
        (
            "up or up or ... (longest accepted)",
            vec!["up"; terms].join(" or "),
        ),
        ("-(-(... (longest accepted)", {
            let k = promql::depth::MAX_OPERATORS;
            format!("{}1{}", "-(".repeat(k), ")".repeat(k))
        }),
        ("x*y/... mixed precedence (longest accepted)", {
            let ops = ["+", "*", "^", "/", "-", "%"];
            (0..terms - 1)
                .map(|i| format!("m{i}{}", ops[i % ops.len()]))
                .collect::<String>()
                + "m"
        }),
        (
            "1+1+... (10,000 terms, refused)",
            vec!["1"; 10_000].join("+"),
        ),
        (
            "( x 9,999 up ) x 9,999",
            format!("{}up{}", "(".repeat(n), ")".repeat(n)),
        ),
        (
            "abs( x 9,999",
            format!("{}up{}", "abs(".repeat(n), ")".repeat(n)),
        ),
        (
            "sum by (...) x 9,999",
            format!("{}up{}", "sum by (a,b) (".repeat(n), ")".repeat(n)),
        ),
        ("up[5m:] nested subqueries", {
            let mut q = "up".to_string();
            for _ in 0..n / 2 {
                q = format!("rate({q}[5m:])");
            }
            q
        }),
        (
            "10 MiB label value",
            format!("up{{a=\"{}\"}}", "x".repeat(mb)),
        ),
        ("10 MiB of matchers", {
            let m = "a=\"b\",";
            format!("up{{{}}}", m.repeat(mb / m.len()))
        }),
        ("10 MiB of regex matchers", {
            let m = "a=~\"b.*c\",";
            format!("up{{{}}}", m.repeat(mb / m.len()))
        }),
        (
            "regex at the size limit",
            "up{a=~\"((a|b|c|d){100}){100}\"}".to_string(),
        ),
        ("10 MiB grouping list", {
            let m = "abc,";
            format!("sum by ({}z) (up)", m.repeat(mb / m.len()))
        }),
        (
            "10 MiB of a string",
            format!(
                "label_replace(up, \"a\", \"{}\", \"b\", \"c\")",
                "x".repeat(mb)
            ),
        ),
        ("10 MiB number", format!("1{}", "0".repeat(mb))),
        ("10 MiB comment", format!("up # {}", "x".repeat(mb))),
        ("10 MiB of spaces", format!("up{}", " ".repeat(mb))),
    ];
    println!("| input | bytes | result | parse time |");
    println!("| --- | --- | --- | --- |");
    for (name, q) in cases {
        let t = Instant::now();
        let r = promql::engine::parse(&q);
        let took = t.elapsed();
        let r = match r {
            Ok(_) => "parsed".to_string(),
            Err(e) => {
                let s = e.to_string();
                format!("error: {}", s.chars().take(60).collect::<String>())
            }
        };
        println!(
            "| {name} | {} | {r} | {:.3} s |",
            q.len(),
            took.as_secs_f64()
        );
    }
}
