//! The `Link` header of a listing: the next page's URL.

/// The URL of `rel="next"` in a `Link` header
/// (`<https://…&page=2>; rel="next", <https://…&page=5>; rel="last"`).
pub fn next(link: &str) -> Option<&str> {
    link.split(',').find_map(|part| {
        let (url, params) = part.trim().split_once(';')?;
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next" || p.starts_with("rel=\"next ")
            })
            .then_some(url)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_next_among_the_relations() {
        let l = r#"<https://api.github.com/repositories/1/issues?page=1>; rel="prev", <https://api.github.com/repositories/1/issues?page=3>; rel="next", <https://api.github.com/repositories/1/issues?page=5>; rel="last""#;
        assert_eq!(
            next(l),
            Some("https://api.github.com/repositories/1/issues?page=3")
        );
        assert_eq!(next(r#"<https://x/?page=1>; rel="first""#), None);
        assert_eq!(next(""), None);
        assert_eq!(next("garbage"), None);
    }
}
