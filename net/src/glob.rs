//! Redis's glob matching (`stringmatchlen`) for `KEYS`, `SCAN MATCH` and
//! friends: `*`, `?`, `[abc]`, `[^a]`, `[a-z]` (reversed ranges allowed),
//! `\` escapes, and a case-insensitive mode. Malformed patterns never fail;
//! they match the way Redis matches them (an unclosed `[` runs to the end of
//! the pattern).

/// Recursion deeper than this fails the match, as Redis protects itself
/// against abusive patterns.
const GLOB_NESTING_MAX: u32 = 1000;

/// Whether `string` matches `pattern`; `nocase` folds ASCII case.
///
/// As in Redis, the empty string matches only the empty pattern (not `*`);
/// `KEYS` and `SCAN` treat the pattern `*` as "everything" before matching,
/// which is how they return the key `""`.
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, string, nocase, &mut skip_longer, 0)
}

fn fold(c: u8, nocase: bool) -> u8 {
    if nocase {
        c.to_ascii_lowercase()
    } else {
        c
    }
}

fn match_impl(mut p: &[u8], mut s: &[u8], nocase: bool, skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > GLOB_NESTING_MAX {
        return false;
    }
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_impl(&p[1..], s, nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s = &s[1..];
                }
                // Nothing after this star matches anywhere in the rest of the
                // string, so no earlier star can help by matching more.
                *skip_longer = true;
                return false;
            }
            b'?' => {
                s = &s[1..];
            }
            b'[' => {
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let c = s[0];
                let mut matched = false;
                loop {
                    if p.len() >= 2 && p[0] == b'\\' {
                        p = &p[1..];
                        if p[0] == c {
                            matched = true;
                        }
                    } else if p.first() == Some(&b']') {
                        break;
                    } else if p.is_empty() {
                        // Unclosed class: it ends with the pattern.
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (mut start, mut end) = (p[0], p[2]);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        let (start, end, ch) = (fold(start, nocase), fold(end, nocase), fold(c, nocase));
                        p = &p[2..];
                        if ch >= start && ch <= end {
                            matched = true;
                        }
                    } else if fold(p[0], nocase) == fold(c, nocase) {
                        matched = true;
                    }
                    p = &p[1..];
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
                // `p` is at the closing ']' (skipped below) or empty.
                if p.is_empty() {
                    if s.is_empty() {
                        return true;
                    }
                    return false;
                }
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if fold(p[0], nocase) != fold(s[0], nocase) {
                    return false;
                }
                s = &s[1..];
            }
            other => {
                if fold(other, nocase) != fold(s[0], nocase) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), false)
    }

    #[test]
    fn stars_and_questions() {
        // As in Redis, an empty string matches only the empty pattern.
        assert!(!m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("a*b*c", "aXbYc"));
        assert!(!m("a*b*c", "aXbY"));
        assert!(m("***a", "ba"));
        assert!(m("a**", "a"));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(!m("?", ""));
        assert!(m("user:*:name", "user:42:name"));
    }

    #[test]
    fn classes() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges are swapped");
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("[\\]]", "]"));
        // "[a-]" is the range ']'..'a' running off the end of the pattern.
        assert!(m("[a-]", "_"));
        assert!(!m("[a-]", "-"));
        // An unclosed class runs to the end of the pattern.
        assert!(m("[abc", "a"));
        assert!(!m("[abc", "ab"));
        assert!(!m("a[", "a"));
        assert!(!m("a[", "ab"));
    }

    #[test]
    fn escapes_and_case() {
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("a\\", "a\\"));
        assert!(glob_match(b"HELLO", b"hello", true));
        assert!(!glob_match(b"HELLO", b"hello", false));
        assert!(glob_match(b"h[A-Z]llo", b"hello", true));
    }

    #[test]
    fn abusive_patterns_terminate() {
        let p = "a*".repeat(50) + "b";
        let s = "a".repeat(200);
        assert!(!m(&p, &s));
        let deep = "*?".repeat(5000);
        assert!(!m(&deep, &"x".repeat(3000)));
    }
}
