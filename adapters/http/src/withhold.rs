//! Never handing the model a response that echoes an injected credential.
//!
//! Replacing the raw value in the raw body is not enough: a server that
//! answers `{"a": "\u0067\u0068\u0070..."}`, the value in base64, or the
//! whole `Basic` header, hands it back in a form the model can decode. So
//! the response is looked at as the model would read it (JSON strings
//! unescaped, percent-encoding and HTML character references decoded), and
//! for the credential in each form it could have been sent or echoed in
//! (as is, base64 in its four spellings, hex, reversed, and for Basic the
//! password and the encoded `user:password`). A body in which any is found
//! is withheld whole; so is any header value.
//!
//! This catches echoes, not a server that means to steal: one can encode a
//! credential any way it likes. That is what binding each secret to its
//! hosts is for (`oictl vault set NAME --hosts ...`): a credential only
//! ever goes to a server the user named.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Shorter values would match ordinary text.
const MIN_LEN: usize = 6;

/// The forms of one credential to look for.
pub struct Forms {
    forms: Vec<(String, &'static str)>,
}

impl Forms {
    /// The forms of `secret` as injected with `scheme`.
    pub fn of(secret: &str, scheme: &str) -> Forms {
        let mut forms: Vec<(String, &'static str)> = Vec::new();
        let mut add = |v: &str| {
            let b = v.as_bytes();
            forms.push((v.to_string(), "as is"));
            for (e, how) in [
                (STANDARD.encode(b), "base64"),
                (STANDARD_NO_PAD.encode(b), "base64"),
                (URL_SAFE.encode(b), "base64"),
                (URL_SAFE_NO_PAD.encode(b), "base64"),
                (hex(b, false), "hex"),
                (hex(b, true), "hex"),
                (v.chars().rev().collect(), "reversed"),
            ] {
                forms.push((e, how));
            }
        };
        add(secret);
        if scheme == "basic"
            && let Some((_, password)) = secret.split_once(':')
        {
            add(password);
        }
        forms.retain(|(f, _)| f.len() >= MIN_LEN);
        forms.sort();
        forms.dedup();
        Forms { forms }
    }

    /// How `text` contains the credential, if it does, in any of the ways
    /// the model could read it.
    pub fn found_in(&self, text: &str) -> Option<&'static str> {
        let views = [
            Some(text.to_string()),
            json_strings(text),
            Some(percent_decoded(text)),
            Some(html_decoded(text)),
        ];
        views.iter().flatten().find_map(|view| {
            self.forms
                .iter()
                .find(|(f, _)| view.contains(f.as_str()))
                .map(|(_, how)| *how)
        })
    }
}

fn hex(b: &[u8], upper: bool) -> String {
    b.iter()
        .map(|x| {
            if upper {
                format!("{x:02X}")
            } else {
                format!("{x:02x}")
            }
        })
        .collect()
}

/// Every string (keys too) of a JSON document, unescaped, one per line.
fn json_strings(text: &str) -> Option<String> {
    fn walk(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    out.push_str(k);
                    out.push('\n');
                    walk(x, out);
                }
            }
            _ => {}
        }
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut out = String::new();
    walk(&v, &mut out);
    Some(out)
}

fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Numeric character references (`&#103;`, `&#x67;`) decoded.
fn html_decoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("&#") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 2..];
        let (digits, radix) = match tail.strip_prefix(['x', 'X']) {
            Some(h) => (h, 16),
            None => (tail, 10),
        };
        let end = digits.find(';').unwrap_or(0);
        match (end > 0)
            .then(|| u32::from_str_radix(&digits[..end], radix).ok())
            .flatten()
            .and_then(char::from_u32)
        {
            Some(c) => {
                out.push(c);
                rest = &digits[end + 1..];
            }
            None => {
                out.push_str("&#");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "ghp_0123456789abcdefXYZ";

    fn escaped(s: &str) -> String {
        s.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()
    }

    #[test]
    fn every_echo_of_the_credential_is_found() {
        let f = Forms::of(TOKEN, "bearer");
        for (text, how) in [
            (format!("auth: Bearer {TOKEN}"), "as is"),
            (
                format!("{{\"a\": \"{}\"}}", escaped(&format!("Bearer {TOKEN}"))),
                "as is",
            ),
            (format!("echo={}", STANDARD.encode(TOKEN)), "base64"),
            (format!("echo={}", URL_SAFE_NO_PAD.encode(TOKEN)), "base64"),
            (TOKEN.chars().rev().collect::<String>(), "reversed"),
            (hex(TOKEN.as_bytes(), true), "hex"),
            (format!("q=%67%68%70{}", &TOKEN[3..]), "as is"),
            (format!("<p>&#103;&#x68;p{}</p>", &TOKEN[3..]), "as is"),
        ] {
            assert_eq!(f.found_in(&text), Some(how), "{text}");
        }
        assert_eq!(f.found_in("{\"ok\": true, \"login\": \"octocat\"}"), None);
    }

    #[test]
    fn a_basic_credential_is_found_as_the_header_and_as_the_password() {
        let f = Forms::of("alice:s3cret-pass", "basic");
        let header = STANDARD.encode("alice:s3cret-pass");
        assert_eq!(
            f.found_in(&format!("Authorization: Basic {header}")),
            Some("base64")
        );
        assert_eq!(f.found_in("{\"password\": \"s3cret-pass\"}"), Some("as is"));
        assert_eq!(f.found_in("{\"user\": \"alice\"}"), None);
    }
}
