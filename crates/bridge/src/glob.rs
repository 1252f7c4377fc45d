//! Glob patterns over topic names: `*` matches any run of characters (also none), `?` exactly one; every other
//! character matches itself. Topic names are `[A-Za-z0-9._-]{1,64}`, so there is nothing to escape.

/// A checked glob pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// Checks `pattern`: 1 to 128 characters of the topic character set plus `*` and `?`.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'*' | b'?');
        if pattern.is_empty() || pattern.len() > 128 || !pattern.bytes().all(ok) {
            return Err(format!(
                "pattern {pattern:?} must be 1 to 128 characters of letters, digits, '.', '_', '-', '*' and '?'"
            ));
        }
        Ok(Glob(pattern.to_string()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the pattern names one topic (no wildcard).
    pub fn literal(&self) -> Option<&str> {
        (!self.0.contains(['*', '?'])).then_some(self.0.as_str())
    }

    /// Whether `name` matches, in linear time (the classic greedy match with one backtracking point).
    pub fn matches(&self, name: &str) -> bool {
        let (p, n) = (self.0.as_bytes(), name.as_bytes());
        let (mut pi, mut ni) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ni < n.len() {
            match p.get(pi) {
                Some(b'*') => {
                    star = Some((pi, ni));
                    pi += 1;
                }
                Some(&c) if c == b'?' || c == n[ni] => {
                    pi += 1;
                    ni += 1;
                }
                _ => match star {
                    Some((sp, sn)) => {
                        pi = sp + 1;
                        ni = sn + 1;
                        star = Some((sp, sn + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_a_shell_glob() {
        let g = |p: &str| Glob::new(p).expect("valid pattern");
        assert!(g("*").matches("anything"));
        assert!(g("video.*").matches("video.front"));
        assert!(g("video.*").matches("video."));
        assert!(!g("video.*").matches("audio.front"));
        assert!(g("cam?").matches("cam1"));
        assert!(!g("cam?").matches("cam12"));
        assert!(g("*.raw").matches("a.b.raw"));
        assert!(!g("*.raw").matches("a.b.rawx"));
        assert!(g("a*b*c").matches("aXXbYYc"));
        assert!(!g("a*b*c").matches("aXXbYY"));
        assert!(g("exact").matches("exact"));
        assert!(!g("exact").matches("exactly"));
        assert_eq!(g("exact").literal(), Some("exact"));
        assert_eq!(g("ex*").literal(), None);
    }

    #[test]
    fn refuses_characters_outside_topic_names() {
        for bad in ["", "a/b", "a b", "shmbus/**", "$*", &"x".repeat(129)] {
            assert!(Glob::new(bad).is_err(), "accepted {bad:?}");
        }
    }
}
