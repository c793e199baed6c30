//! Secrets never leave the config: every text about a delivery that reaches a log, an event
//! or the API (a reason, what a provider answered, an error of the HTTP client naming the
//! URL it called) goes through `Redactor::redact` first. It replaces
//!
//! - every configured secret (SMTP password, Twilio auth token, Kannel password, FCM access
//!   token, VAPID key, the values of configured provider headers, the daemon's `secret`),
//!   as written and percent- or form-encoded;
//! - the password of a URL's userinfo (`https://user:pass@host`);
//! - the value of query parameters and `key=value` pairs whose name says secret
//!   (`password`, `pass`, `pwd`, `key`, `api_key`, `token`, `access_token`, `secret`,
//!   `auth`, `signature`, `sig`…);
//! - the credentials of `Authorization: Bearer|Basic …`
//!
//! by `[redacted]`.

use crate::config::{Config, PushProvider, SmsProvider};

/// What stands in for a secret.
pub const REDACTED: &str = "[redacted]";

/// Names of query parameters and headers whose values are secrets (compared in lower case,
/// with `-` read as `_`).
const SECRET_NAMES: [&str; 15] = [
    "password",
    "pass",
    "passwd",
    "pwd",
    "key",
    "api_key",
    "apikey",
    "token",
    "access_token",
    "auth_token",
    "secret",
    "client_secret",
    "auth",
    "signature",
    "sig",
];

/// Secrets shorter than this are not searched for as text (they would match anywhere);
/// the patterns still hide them where they appear as a parameter.
const MIN_SECRET_LEN: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Configured secret values and their encoded forms, longest first.
    secrets: Vec<String>,
}

impl Redactor {
    /// The secrets a config holds, and the daemon's signing secret.
    pub fn from_config(c: &Config, signing_secret: &[u8]) -> Redactor {
        let mut v: Vec<String> = Vec::new();
        if let Some(s) = &c.secret {
            v.push(s.clone());
        }
        if let Ok(s) = std::str::from_utf8(signing_secret) {
            v.push(s.to_string());
        }
        if let Some(smtp) = &c.email.smtp {
            v.extend(smtp.password.clone());
        }
        match &c.sms.provider {
            Some(SmsProvider::Twilio { auth_token, .. }) => v.push(auth_token.clone()),
            Some(SmsProvider::Kannel { password, .. }) => v.push(password.clone()),
            Some(SmsProvider::Webhook { headers, .. }) => {
                v.extend(headers.iter().flat_map(|(_, h)| header_secrets(h)))
            }
            None => {}
        }
        match &c.push.provider {
            Some(PushProvider::Fcm { access_token, .. }) => v.push(access_token.clone()),
            Some(PushProvider::Webpush {
                vapid_private_key,
                vapid_private_key_file,
                ..
            }) => {
                let key = match vapid_private_key_file {
                    Some(f) => std::fs::read_to_string(f).unwrap_or_default(),
                    None => vapid_private_key.clone(),
                };
                v.push(key.clone());
                // Each line of a PEM key too (an error may quote one).
                v.extend(
                    key.lines()
                        .map(str::trim)
                        .filter(|l| !l.starts_with("-----"))
                        .map(String::from),
                );
            }
            Some(PushProvider::Webhook { headers, .. }) => {
                v.extend(headers.iter().flat_map(|(_, h)| header_secrets(h)))
            }
            None => {}
        }
        Redactor::with_secrets(v)
    }

    pub fn with_secrets(values: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets = Vec::new();
        for s in values {
            let s = s.trim().to_string();
            if s.len() < MIN_SECRET_LEN {
                continue;
            }
            let pct = percent_encoding::utf8_percent_encode(&s, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
            let form: String = url_form(&s);
            for f in [s, pct, form] {
                if !secrets.contains(&f) {
                    secrets.push(f);
                }
            }
        }
        secrets.sort_by_key(|s: &String| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    /// The text with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        redact_patterns(&out)
    }

    /// Redacts every string inside a JSON value (event properties).
    pub fn redact_json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                let r = self.redact(s);
                if r != *s {
                    *s = r;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.redact_json(x)),
            serde_json::Value::Object(m) => m.values_mut().for_each(|x| self.redact_json(x)),
            _ => {}
        }
    }
}

/// The credential of a header value (`Bearer x` → x, and the whole value).
fn header_secrets(h: &str) -> Vec<String> {
    let mut v = vec![h.to_string()];
    if let Some((scheme, rest)) = h.trim().split_once(' ') {
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("basic") {
            v.push(rest.trim().to_string());
        }
    }
    v
}

/// application/x-www-form-urlencoded, as reqwest writes a query.
fn url_form(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn is_secret_name(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase().replace('-', "_");
    SECRET_NAMES.contains(&n.as_str())
}

/// URL userinfo passwords, secret-named parameters, Authorization credentials.
fn redact_patterns(text: &str) -> String {
    let text = redact_userinfo(text);
    let text = redact_params(&text);
    redact_authorization(&text)
}

/// `scheme://user:password@` → `scheme://user:[redacted]@`.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first of / ? # or whitespace.
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == ')')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(a) => {
                let userinfo = &authority[..a];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(REDACTED);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[a..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `name=value` where name is a secret's (after `?`, `&`, `;`, a space or the start):
/// the value, up to `&`, `#`, whitespace, a quote or `)`, becomes `[redacted]`.
fn redact_params(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            // The name before '='.
            let mut s = i;
            while s > 0 && {
                let c = bytes[s - 1];
                c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
            } {
                s -= 1;
            }
            let name = &text[s..i];
            let boundary = s == 0
                || matches!(
                    bytes[s - 1],
                    b'?' | b'&' | b';' | b' ' | b'"' | b'\'' | b'(' | b',' | b'\n'
                );
            if !name.is_empty() && boundary && is_secret_name(name) {
                let mut e = i + 1;
                while e < bytes.len()
                    && !matches!(
                        bytes[e],
                        b'&' | b'#'
                            | b' '
                            | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'"'
                            | b'\''
                            | b')'
                            | b','
                            | b';'
                    )
                {
                    e += 1;
                }
                if e > i + 1 {
                    out.push_str(&text[copied..=i]);
                    out.push_str(REDACTED);
                    copied = e;
                    i = e;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// `Authorization: Bearer x` / `Basic x` (any case): the credential is redacted.
fn redact_authorization(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < lower.len() {
        let lb = lower.as_bytes();
        let found = ["bearer ", "basic "].iter().find(|s| {
            lb[i..].starts_with(s.as_bytes()) && (i == 0 || !lb[i - 1].is_ascii_alphanumeric())
        });
        if let Some(s) = found {
            let start = i + s.len();
            let mut e = start;
            let b = text.as_bytes();
            while e < b.len()
                && !matches!(
                    b[e],
                    b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b',' | b')'
                )
            {
                e += 1;
            }
            if e > start && text[start..e] != *REDACTED {
                out.push_str(&text[copied..start]);
                out.push_str(REDACTED);
                copied = e;
            }
            i = e.max(i + 1);
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_secrets_and_credential_shapes_are_redacted() {
        let r = Redactor::with_secrets(["p@ss w0rd!".to_string(), "tok".to_string()]);
        let t = r.redact(
            "Kannel: error sending request for url (http://k.example:13013/cgi-bin/sendsms?username=u&password=p%40ss+w0rd%21&to=%2B39)",
        );
        assert_eq!(
            t,
            "Kannel: error sending request for url (http://k.example:13013/cgi-bin/sendsms?username=u&password=[redacted]&to=%2B39)"
        );
        assert_eq!(
            r.redact("said p@ss w0rd! twice: p@ss w0rd!"),
            "said [redacted] twice: [redacted]"
        );
        assert_eq!(
            r.redact("GET https://bob:hunter2@api.example/x?api_key=abc&x=1 failed"),
            "GET https://bob:[redacted]@api.example/x?api_key=[redacted]&x=1 failed"
        );
        assert_eq!(
            r.redact("sent Authorization: Bearer abc.def and authorization: basic Zm9vOmJhcg=="),
            "sent Authorization: Bearer [redacted] and authorization: basic [redacted]"
        );
        assert_eq!(r.redact("é… basic"), "é… basic");
        // Names that only end like a secret's stay; a short configured secret is not
        // searched for as text.
        assert_eq!(r.redact("monkey=1&tokens=2 tok"), "monkey=1&tokens=2 tok");
        assert_eq!(
            r.redact("see https://example.com/a@b"),
            "see https://example.com/a@b"
        );
    }
}
