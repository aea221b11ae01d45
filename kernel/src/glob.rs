//! Name patterns with `*` (any run of characters) and `?` (one), case
//! insensitive: file names (`fs_search`), repositories (`[github]
//! write_repos = ["me/*"]`).

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("*.md", "Report.MD"));
        assert!(matches("a?c*", "abcdef"));
        assert!(!matches("*.md", "x.mdx"));
        assert!(matches("*a*b*", "xxaYYbzz"));
        assert!(matches("*", ""));
        assert!(!matches("?", ""));
        assert!(matches("日*", "日本語.txt"));
    }
}
