//! Signed tokens for tracked links, the open pixel and unsubscribe links, and the short
//! codes of tracked links in SMS and pushes.
//!
//! A token is `base64url(JSON claims) . base64url(HMAC-SHA256(secret, claims))`: the server
//! can trust what it says (which contact clicked which link of which message, and where to
//! redirect) without a lookup, and a forged or altered token fails verification. Emails
//! carry tokens (about 250 characters a link).
//!
//! A short code (`/s/{code}`, ten base62 characters) is an HMAC of the message id, the link
//! and its target: the same send renders the same code on every attempt, and a code cannot
//! be guessed from another. Its claims are kept in the store (`ShortLinks`), written and
//! flushed before the message leaves, so a delivered link always resolves.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::engine::Claims;

/// Why a token was refused. The server answers 404 to all of them alike.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length")
}

pub fn sign(secret: &[u8], claims: &Claims) -> String {
    let body = serde_json::to_vec(claims).expect("claims serialize");
    let mut m = mac(secret);
    m.update(&body);
    let sig = m.finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&body),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

pub fn verify(secret: &[u8], token: &str) -> Result<Claims, TokenError> {
    let (body, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret);
    m.update(&body);
    // Constant-time comparison.
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)
}

/// The length of a short code: 62^10 ≈ 2^59.5 codes.
pub const SHORT_CODE_LEN: usize = 10;

/// How many codes a link tries before giving up: another link's claims already under the
/// first one is a one-in-2^59 chance per pair of links, a second in a row is never seen.
pub const SHORT_CODE_TRIES: u32 = 8;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The short code of a click (`try_n` > 0 when the earlier codes belong to other links):
/// base62 of an HMAC over the contact, the message id, the link's name and its target.
pub fn short_code(secret: &[u8], claims: &Claims, try_n: u32) -> String {
    let mut m = mac(secret);
    m.update(b"journey short link\0");
    let link = claims.link.as_deref().unwrap_or("");
    let url = claims.url.as_deref().unwrap_or("");
    for part in [
        claims.contact.as_str(),
        claims.message_id.as_str(),
        link,
        url,
    ] {
        // Length-prefixed: no two field lists hash the same bytes.
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part.as_bytes());
    }
    m.update(&try_n.to_be_bytes());
    let digest = m.finalize().into_bytes();
    let mut n = u128::from_be_bytes(digest[..16].try_into().expect("32 bytes"));
    let mut code = [0u8; SHORT_CODE_LEN];
    for c in code.iter_mut() {
        *c = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(code.to_vec()).expect("ASCII")
}

/// Whether `s` has the form of a short code (it may still be unknown).
pub fn is_short_code(s: &str) -> bool {
    s.len() == SHORT_CODE_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Where the claims behind short codes are kept: the store, in the daemon.
pub trait ShortLinks {
    /// Keeps `claims` under `code` unless other claims hold it: true if the code is (now)
    /// these claims'. Not durable until the keeper flushes.
    fn keep(&self, code: &str, claims: &Claims) -> Result<bool, String>;
}

/// Short link codes kept in memory: previews (whose links must not reach the store) and tests.
#[derive(Default)]
pub struct MemoryShortLinks(std::sync::Mutex<std::collections::BTreeMap<String, Claims>>);

impl MemoryShortLinks {
    /// The claims kept under `code`.
    pub fn get(&self, code: &str) -> Option<Claims> {
        self.0.lock().ok().and_then(|m| m.get(code).cloned())
    }
}

impl ShortLinks for MemoryShortLinks {
    fn keep(&self, code: &str, claims: &Claims) -> Result<bool, String> {
        let mut m = self.0.lock().map_err(|e| e.to_string())?;
        Ok(m.entry(code.to_string()).or_insert_with(|| claims.clone()) == claims)
    }
}

/// Keeps `claims` under the first of their codes that is free or already theirs, and
/// returns it.
pub fn shorten(secret: &[u8], claims: &Claims, book: &dyn ShortLinks) -> Result<String, String> {
    for n in 0..SHORT_CODE_TRIES {
        let code = short_code(secret, claims, n);
        if book.keep(&code, claims)? {
            return Ok(code);
        }
    }
    Err(format!(
        "no free short code for link {:?} of message {} after {SHORT_CODE_TRIES} tries",
        claims.link, claims.message_id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TokenKind;

    fn claims() -> Claims {
        Claims {
            kind: TokenKind::Click,
            contact: "angela".into(),
            message_id: "7:welcome".into(),
            journey: "welcome_promo".into(),
            message: "welcome".into(),
            link: Some("profile".into()),
            url: Some("https://maison.example/profile?c=angela".into()),
        }
    }

    #[test]
    fn round_trip() {
        let t = sign(b"k", &claims());
        assert_eq!(verify(b"k", &t).unwrap(), claims());
    }

    #[test]
    fn forged_or_altered_tokens_fail() {
        let t = sign(b"k", &claims());
        assert_eq!(verify(b"other", &t), Err(TokenError::BadSignature));
        let mut other = claims();
        other.url = Some("https://evil.example".into());
        let forged_body = sign(b"k", &other);
        let (_, sig) = t.split_once('.').unwrap();
        let (body, _) = forged_body.split_once('.').unwrap();
        assert_eq!(
            verify(b"k", &format!("{body}.{sig}")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(b"k", "nonsense"), Err(TokenError::Malformed));
        assert_eq!(verify(b"k", "a.b"), Err(TokenError::Malformed));
    }

    #[test]
    fn short_codes_are_stable_distinct_and_base62() {
        let a = short_code(b"k", &claims(), 0);
        assert_eq!(
            a,
            short_code(b"k", &claims(), 0),
            "the same send, the same code"
        );
        assert!(is_short_code(&a), "{a}");
        assert_ne!(a, short_code(b"other", &claims(), 0));
        assert_ne!(a, short_code(b"k", &claims(), 1));
        let mut other = claims();
        other.message_id = "8:welcome".into();
        assert_ne!(a, short_code(b"k", &other, 0));
        let mut other = claims();
        other.link = None;
        assert_ne!(a, short_code(b"k", &other, 0));
        assert!(!is_short_code("abc"));
        assert!(!is_short_code("abcdefghi-"));
        assert!(!is_short_code("abcdefghijk"));
    }

    #[test]
    fn a_taken_code_moves_to_the_next() {
        struct Book(std::sync::Mutex<std::collections::HashMap<String, Claims>>);
        impl ShortLinks for Book {
            fn keep(&self, code: &str, claims: &Claims) -> Result<bool, String> {
                let mut m = self.0.lock().unwrap();
                Ok(m.entry(code.to_string()).or_insert_with(|| claims.clone()) == claims)
            }
        }
        let book = Book(Default::default());
        let mut squatter = claims();
        squatter.contact = "someone else".into();
        let first = short_code(b"k", &claims(), 0);
        book.0.lock().unwrap().insert(first.clone(), squatter);
        let code = shorten(b"k", &claims(), &book).unwrap();
        assert_eq!(code, short_code(b"k", &claims(), 1));
        // Again (a retried send): the same code.
        assert_eq!(shorten(b"k", &claims(), &book).unwrap(), code);
    }
}
