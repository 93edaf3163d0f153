//! The checks Prometheus 2.42 makes when it turns number and duration tokens into values:
//! Go's `strconv.ParseInt(s, 0, 64)` then `ParseFloat`, and `model.ParseDuration`.

use super::goquote::quote;

/// The value of a number token, or Prometheus' message for one Go cannot parse.
pub fn number(text: &str) -> Result<f64, String> {
    let lower = text.to_ascii_lowercase();
    let syntax = || {
        format!(
            "error parsing number: strconv.ParseFloat: parsing {}: invalid syntax",
            quote(text)
        )
    };
    match lower.as_str() {
        "inf" => return Ok(f64::INFINITY),
        "nan" => return Ok(f64::NAN),
        _ => {}
    }
    if let Some(hex) = lower.strip_prefix("0x") {
        // ParseFloat wants a `p` exponent for hex, which the lexer never lets through.
        return match i64::from_str_radix(hex, 16) {
            Ok(v) if !hex.is_empty() => Ok(v as f64),
            _ => Err(syntax()),
        };
    }
    let mantissa = lower.split('e').next().unwrap_or("");
    let exp_ok = match lower.split_once('e') {
        Some((_, e)) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
        None => true,
    };
    if !mantissa.bytes().any(|b| b.is_ascii_digit()) || !exp_ok {
        return Err(syntax());
    }
    match lower.parse::<f64>() {
        Ok(v) if v.is_infinite() => Err(format!(
            "error parsing number: strconv.ParseFloat: parsing {}: value out of range",
            quote(text)
        )),
        Ok(v) => Ok(v),
        Err(_) => Err(syntax()),
    }
}

/// Milliseconds per unit, in the order `model.ParseDuration` requires them.
const UNITS: [(&str, i128); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// The length of a duration token in milliseconds, or Prometheus' message.
pub fn duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("not a valid duration string: {}", quote(text));
    let mut rest = text;
    let mut next_unit = 0;
    let mut total: i128 = 0;
    let mut out_of_range = false;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let (num, after) = rest.split_at(digits);
        let unit_len = if after.starts_with("ms") {
            2
        } else {
            after.chars().next().map_or(0, char::len_utf8)
        };
        let unit = &after[..unit_len];
        let Some(idx) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(invalid());
        };
        let (_, ms) = UNITS[next_unit + idx];
        next_unit += idx + 1;
        let n: i128 = num.parse().unwrap_or(i128::MAX / 2);
        if n > (i64::MAX as i128) / ms / 1_000_000 {
            out_of_range = true;
        }
        total = total.saturating_add(n.saturating_mul(ms));
        rest = &after[unit_len..];
    }
    if out_of_range || total.saturating_mul(1_000_000) > i64::MAX as i128 {
        return Err("duration out of range".into());
    }
    if total == 0 {
        return Err("duration must be greater than 0".into());
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_fail_where_go_fails() {
        assert_eq!(number("0x1f"), Ok(31.0));
        assert_eq!(number("1."), Ok(1.0));
        assert_eq!(number(".5e1"), Ok(5.0));
        assert!(number("0x").is_err());
        assert!(number("1e").is_err());
        assert!(number("0x1.5").is_err());
        assert!(number("1e400").is_err_and(|e| e.ends_with("value out of range")));
    }

    #[test]
    fn durations_follow_model_parse_duration() {
        assert_eq!(duration("1h30m"), Ok(5_400_000));
        assert_eq!(duration("5ms"), Ok(5));
        assert_eq!(
            duration("1m1h"),
            Err(r#"not a valid duration string: "1m1h""#.into())
        );
        assert_eq!(
            duration("0m"),
            Err("duration must be greater than 0".into())
        );
        assert_eq!(
            duration("99999999999y"),
            Err("duration out of range".into())
        );
    }
}
