//! Redis's number rules: what a command argument must look like to be a
//! number, and how numbers are printed in replies.
//!
//! Redis 7 computes `INCRBYFLOAT`/`HINCRBYFLOAT` in x87 80-bit `long double`
//! and prints them with `%.17Lf`; LumaDB computes in `f64`. The printed
//! results agree whenever the result has at most 15 significant digits and
//! an integer part below 10^17 (see [`format_long_double`]).

/// Longest decimal `string2ll` accepts, exclusive (Redis `LONG_STR_SIZE`).
const LONG_STR_BYTES_MAX: usize = 21;
/// Longest float literal `string2ld` accepts, exclusive (Redis `MAX_LONG_DOUBLE_CHARS`).
const FLOAT_STR_BYTES_MAX: usize = 5 * 1024;

/// Parses a signed 64-bit integer exactly as Redis's `string2ll`: optional
/// `-`, no `+`, no spaces, no leading zeros (except `"0"` itself), `"-0"`
/// rejected, overflow rejected.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= LONG_STR_BYTES_MAX {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if negative {
        if v > i64::MIN.unsigned_abs() {
            return None;
        }
        Some(0i64.wrapping_sub_unsigned(v))
    } else {
        i64::try_from(v).ok()
    }
}

/// Parses a float as Redis's `string2d`/`string2ld` (`strtod` fully
/// consuming the input): decimal and exponent forms, `inf`, `+inf`, `-inf`,
/// `infinity` in any case; rejects NaN, empty input, leading or trailing
/// spaces, and finite literals that overflow (`1e999`).
///
/// Hexadecimal floats (`0x10`), which `strtold` accepts, are not accepted.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s.len() >= FLOAT_STR_BYTES_MAX {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    // Rust's parser accepts exactly strtod's decimal grammar minus hex and
    // whitespace, plus "nan", which Redis rejects after parsing.
    let v: f64 = text.parse().ok()?;
    if v.is_nan() {
        return None;
    }
    if v.is_infinite() {
        let body = text.trim_start_matches(['+', '-']);
        if !body.eq_ignore_ascii_case("inf") && !body.eq_ignore_ascii_case("infinity") {
            return None; // ERANGE overflow of a finite literal
        }
    }
    Some(v)
}

/// Formats a double as Redis 7.0 replies a sorted-set score or any double
/// (`%.17g`; `inf`, `-inf`; zero as `0`). E.g. `1.5`, `0.10000000000000001`,
/// `1e+20`, `10000000000000000`.
pub fn format_double(v: f64, out: &mut Vec<u8>) {
    if v.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    if v == 0.0 {
        out.push(b'0');
        return;
    }
    // 17 significant digits, correctly rounded: "d.dddddddddddddddde<exp>".
    let sci = format!("{:.16e}", v);
    let (mantissa, exp) = match sci.split_once('e') {
        Some(parts) => parts,
        None => unreachable!("{{:e}} always has an exponent"),
    };
    let exp: i32 = match exp.parse() {
        Ok(e) => e,
        Err(_) => unreachable!("{{:e}} exponent is an integer"),
    };
    let negative = mantissa.starts_with('-');
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    assert_eq!(digits.len(), 17);
    let sig_len = digits.iter().rposition(|&d| d != b'0').map_or(1, |i| i + 1);
    let digits = &digits[..sig_len];
    if negative {
        out.push(b'-');
    }
    if !(-4..17).contains(&exp) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(e).as_bytes());
    } else if exp < 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
        out.extend_from_slice(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
        } else {
            out.extend_from_slice(&digits[..int_len]);
            out.push(b'.');
            out.extend_from_slice(&digits[int_len..]);
        }
    }
}

/// Formats a double as Redis replies `INCRBYFLOAT`/`HINCRBYFLOAT` results
/// and stores them (`ld2string` human mode: `%.17Lf` with trailing zeros
/// and a trailing `.` removed, never an exponent, `-0` as `0`).
///
/// Redis prints a 64-bit-mantissa `long double`; this prints the shortest
/// decimal of at most 15 significant digits within two ulps of `v` when one
/// exists (so `0.1 + 0.2` prints `0.3` as in Redis), else the shortest
/// round-trip decimal, rounded to 17 fractional digits.
pub fn format_long_double(v: f64, out: &mut Vec<u8>) {
    if v.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    let mut text = format!("{}", v);
    let short: f64 = match format!("{:.14e}", v).parse() {
        Ok(s) => s,
        Err(_) => unreachable!("formatted float parses"),
    };
    if short != v && (short - v).abs() <= 2.0 * ulp(v) {
        text = format!("{}", short);
    }
    if let Some(dot) = text.find('.') {
        if text.len() - dot - 1 > 17 {
            let value: f64 = text.parse().unwrap_or(v);
            text = format!("{:.17}", value);
        }
        let trimmed = text.trim_end_matches('0').trim_end_matches('.');
        text.truncate(trimmed.len());
    }
    if text == "-0" {
        text = "0".to_string();
    }
    out.extend_from_slice(text.as_bytes());
}

/// Distance from `v` to the next double away from zero.
fn ulp(v: f64) -> f64 {
    let a = v.abs();
    f64::from_bits(a.to_bits() + 1) - a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd(v: f64) -> String {
        let mut out = Vec::new();
        format_double(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn fld(v: f64) -> String {
        let mut out = Vec::new();
        format_long_double(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn parse_i64_follows_string2ll() {
        for (s, v) in [
            ("0", Some(0)),
            ("1", Some(1)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("18446744073709551616", None),
            ("99999999999999999999", None),
            ("-0", None),
            ("+1", None),
            ("01", None),
            ("00", None),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("-", None),
            ("1a", None),
            ("1.0", None),
            ("000000000000000000001", None),
        ] {
            assert_eq!(parse_i64(s.as_bytes()), v, "{s:?}");
        }
    }

    #[test]
    fn parse_f64_follows_strtod() {
        for (s, v) in [
            ("1.5", Some(1.5)),
            ("-1.5", Some(-1.5)),
            ("+1.5", Some(1.5)),
            ("5.0e3", Some(5000.0)),
            ("1e-5", Some(1e-5)),
            (".5", Some(0.5)),
            ("1.", Some(1.0)),
            ("inf", Some(f64::INFINITY)),
            ("+inf", Some(f64::INFINITY)),
            ("-inf", Some(f64::NEG_INFINITY)),
            ("-Infinity", Some(f64::NEG_INFINITY)),
            ("nan", None),
            ("NaN", None),
            ("1e999", None),
            ("-1e999", None),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("abc", None),
            ("1e", None),
        ] {
            assert_eq!(parse_f64(s.as_bytes()), v, "{s:?}");
        }
    }

    #[test]
    fn format_double_matches_redis_zscore() {
        // Outputs of ZADD z <s> m; ZSCORE z m on redis-server 7.0.15.
        for (v, s) in [
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (1e20, "1e+20"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e-5, "1.0000000000000001e-05"),
            (0.0001, "0.0001"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (3000.0, "3000"),
            (-0.0, "0"),
            (0.30000000000000004, "0.30000000000000004"),
            (1e300, "1.0000000000000001e+300"),
            (5e-324, "4.9406564584124654e-324"),
            (12345678.9, "12345678.9"),
            (100.0, "100"),
            (-2.5, "-2.5"),
        ] {
            assert_eq!(fd(v), s, "{v:?}");
        }
    }

    #[test]
    fn format_long_double_matches_redis_incrbyfloat() {
        // Outputs of INCRBYFLOAT on redis-server 7.0.15.
        for (v, s) in [
            (10.5 + 0.1, "10.6"),
            (0.1 + 0.2, "0.3"),
            (5.0e3, "5000"),
            (1e20, "100000000000000000000"),
            (1e-20, "0"),
            (17179869184.0 + 1.5, "17179869185.5"),
            (1.2345678901234567, "1.2345678901234567"),
            (-0.0, "0"),
            (3.0 - 3.0, "0"),
            (0.1, "0.1"),
            (-10.25, "-10.25"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(fld(v), s, "{v:?}");
        }
    }
}
