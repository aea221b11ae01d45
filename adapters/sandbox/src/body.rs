//! Reading responses the guarded client fetched: a size cap that stops
//! reading (not just trimming after the fact), and the charset the page
//! declares.

use encoding_rs::Encoding;

/// A response body read up to a cap.
#[derive(Debug)]
pub struct Capped {
    pub bytes: Vec<u8>,
    /// The body was longer than the cap; reading stopped there.
    pub truncated: bool,
}

/// The response's Content-Type header, or empty.
pub fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Reads at most `cap` bytes of the body, then drops the connection.
pub async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<Capped, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = cap - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Capped {
                bytes,
                truncated: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Capped {
        bytes,
        truncated: false,
    })
}

/// The encoding of a text body: a byte-order mark, else the `charset` of
/// the Content-Type, else a `<meta charset>` or `http-equiv` declaration
/// in the first 1024 bytes, else UTF-8.
pub fn charset(content_type: Option<&str>, bytes: &[u8]) -> &'static Encoding {
    if let Some((enc, _)) = Encoding::for_bom(bytes) {
        return enc;
    }
    if let Some(enc) = content_type
        .and_then(param_charset)
        .and_then(|l| Encoding::for_label(l.as_bytes()))
    {
        return enc;
    }
    let head = &bytes[..bytes.len().min(1024)];
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let mut at = 0;
    while let Some(i) = find(&lower[at..], b"charset") {
        let start = at + i + b"charset".len();
        let rest = &head[start..];
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        if let Some(rest) = rest.strip_prefix(b"=") {
            let rest = rest
                .strip_prefix(b"\"")
                .or_else(|| rest.strip_prefix(b"'"))
                .unwrap_or(rest);
            let end = rest
                .iter()
                .position(|b| matches!(b, b'"' | b'\'' | b';' | b' ' | b'>' | b'/'))
                .unwrap_or(rest.len());
            if let Some(enc) = Encoding::for_label(&rest[..end]) {
                // A page that says UTF-16 in ASCII is not UTF-16.
                return if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
                    encoding_rs::UTF_8
                } else {
                    enc
                };
            }
        }
        at = start;
    }
    encoding_rs::UTF_8
}

fn param_charset(ct: &str) -> Option<String> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("charset")).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a body to text; malformed sequences become U+FFFD.
pub fn decode(bytes: &[u8], enc: &'static Encoding) -> String {
    enc.decode_with_bom_removal(bytes).0.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charset_comes_from_header_then_meta_then_utf8() {
        let latin1 = b"<p>caf\xe9</p>";
        assert_eq!(
            charset(Some("text/html; charset=ISO-8859-1"), latin1).name(),
            "windows-1252"
        );
        assert_eq!(
            decode(
                latin1,
                charset(Some("text/html; charset=\"iso-8859-1\""), latin1)
            ),
            "<p>café</p>"
        );
        let meta = b"<html><head><meta charset=\"Shift_JIS\"></head><body>\x93\xfa\x96\x7b</body>";
        assert_eq!(charset(Some("text/html"), meta).name(), "Shift_JIS");
        assert!(decode(meta, charset(None, meta)).contains("日本"));
        let equiv = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=gbk\">\xd6\xd0\xce\xc4";
        assert!(decode(equiv, charset(None, equiv)).ends_with("中文"));
        assert_eq!(charset(None, b"<p>plain</p>").name(), "UTF-8");
        assert_eq!(
            charset(Some("text/html; charset=utf-8"), b"\xff\xfeh\0i\0").name(),
            "UTF-16LE"
        );
        assert_eq!(charset(None, b"<meta charset=utf-16>").name(), "UTF-8");
    }
}
