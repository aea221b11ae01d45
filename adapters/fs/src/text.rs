//! Text handling of reads: UTF-8-safe cuts and telling binary from text.

/// The largest `n <= max` such that `buf[..n]` does not end inside a UTF-8
/// character (assuming `buf` starts on a boundary).
pub fn cut_at_boundary(buf: &[u8], max: usize) -> usize {
    if max >= buf.len() {
        return buf.len();
    }
    let mut n = max;
    // A continuation byte (10xxxxxx) cannot start a character; back up at
    // most three of them to the start of the character that was cut.
    while n > 0 && max - n < 4 && (buf[n] & 0xc0) == 0x80 {
        n -= 1;
    }
    if max - n >= 4 { max } else { n }
}

/// How many leading bytes to skip so that `buf` starts on a character
/// (a read at an offset may land inside one).
pub fn skip_continuation(buf: &[u8]) -> usize {
    buf.iter()
        .take(3)
        .take_while(|b| (**b & 0xc0) == 0x80)
        .count()
}

/// `Some(kind)` when the bytes are not text: a NUL byte, or bytes that are
/// not UTF-8 before the end (an incomplete character at the very end is a
/// cut, not binary).
pub fn binary_kind(buf: &[u8]) -> Option<&'static str> {
    let magic: &[(&[u8], &str)] = &[
        (b"\x89PNG", "PNG image"),
        (b"\xff\xd8\xff", "JPEG image"),
        (b"GIF8", "GIF image"),
        (b"%PDF", "PDF document"),
        (b"PK\x03\x04", "ZIP archive"),
        (b"\x1f\x8b", "gzip data"),
        (b"\x7fELF", "ELF executable"),
        (b"SQLite format 3", "SQLite database"),
    ];
    if let Some((_, kind)) = magic.iter().find(|(m, _)| buf.starts_with(m)) {
        return Some(kind);
    }
    if buf.iter().take(8192).any(|b| *b == 0) {
        return Some("binary data");
    }
    match std::str::from_utf8(buf) {
        Ok(_) => None,
        Err(e) if e.error_len().is_none() => None,
        Err(_) => Some("data that is not UTF-8 text"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cuts_never_split_cjk_or_emoji() {
        let s = "ab日本語😀x";
        let b = s.as_bytes();
        for max in 0..=b.len() {
            let n = cut_at_boundary(b, max);
            assert!(n <= max);
            assert!(s.is_char_boundary(n), "max {max} -> {n}");
            assert!(max - n < 4);
        }
    }

    #[test]
    fn binary_detection() {
        assert_eq!(binary_kind(b"\x89PNG\r\n\x1a\n...."), Some("PNG image"));
        assert_eq!(binary_kind(b"abc\0def"), Some("binary data"));
        assert_eq!(
            binary_kind(b"caf\xe9 au lait"),
            Some("data that is not UTF-8 text")
        );
        assert_eq!(binary_kind("日本".as_bytes()), None);
        // A character cut at the end of a chunk is not binary.
        assert_eq!(binary_kind(&"日本".as_bytes()[..4]), None);
    }

    proptest! {
        #[test]
        fn cut_then_skip_keeps_valid_utf8(s in "\\PC{0,40}", max in 0usize..200, off in 0usize..200) {
            let b = s.as_bytes();
            let n = cut_at_boundary(b, max);
            prop_assert!(std::str::from_utf8(&b[..n]).is_ok());
            let off = off.min(b.len());
            let k = skip_continuation(&b[off..]);
            prop_assert!(std::str::from_utf8(&b[off + k..]).is_ok());
        }
    }
}
