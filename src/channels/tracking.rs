//! Signed tokens for tracked links, the open pixel and unsubscribe links. A token is
//! `base64url(JSON claims) . base64url(HMAC-SHA256(secret, claims))`: the server can trust
//! what it says (which contact clicked which link of which message, and where to redirect)
//! without a lookup, and a forged or altered token fails verification.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// `GET /t/c/{token}`: record `clicked`, redirect to `url`.
    Click,
    /// `GET /t/o/{token}`: record `opened`, answer a 1×1 GIF.
    Open,
    /// `GET|POST /u/{token}`: record `unsubscribed`.
    Unsubscribe,
    /// A provider's delivery report (`GET /v1/dlr/kannel?t={token}&status=…`): see
    /// `channels::dlr`.
    Delivery,
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "k")]
    pub kind: TokenKind,
    #[serde(rename = "c")]
    pub contact: String,
    /// The message id `instance:step[:n]` (the delivery's idempotency key).
    #[serde(rename = "m")]
    pub message_id: String,
    #[serde(rename = "j")]
    pub journey: String,
    /// The message's name in its journey.
    #[serde(rename = "n")]
    pub message: String,
    /// The link's name, for clicks.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Where a click redirects: the link's rendered URL.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
