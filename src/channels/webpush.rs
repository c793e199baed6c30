//! Web Push: the payload encrypted for the browser's subscription (RFC 8291, `aes128gcm`
//! content coding of RFC 8188) and the VAPID authorization (RFC 8292, an ES256 JWT), both by
//! the `web-push-native` crate (pure Rust on the RustCrypto crates; the `web-push` crate
//! encrypts through `ece`, whose only backend is OpenSSL, and this project builds without
//! OpenSSL). This module parses subscriptions and keys and turns the crate's request into
//! reqwest's.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use std::sync::Arc;
use std::time::Duration;
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256KeyPair};
use web_push_native::p256::PublicKey;
use web_push_native::{Auth, WebPushBuilder};

/// The curve crate the keys are made with, for callers and tests.
pub use web_push_native::p256;

/// How long a VAPID signature is valid (RFC 8292 allows at most 24 hours).
const VAPID_VALIDITY: Duration = Duration::from_secs(12 * 3600);

/// A browser's `PushSubscription` (its JSON: `endpoint`, `keys.p256dh`, `keys.auth`).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub endpoint: String,
    /// The user agent's public key.
    pub p256dh: PublicKey,
    /// The authentication secret (16 bytes).
    pub auth: [u8; 16],
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    let t = s.trim().trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(t)
        .or_else(|_| URL_SAFE.decode(s.trim()))
        .or_else(|_| STANDARD.decode(s.trim()))
        .map_err(|e| format!("bad base64: {e}"))
}

impl Subscription {
    pub fn from_json(v: &serde_json::Value) -> Result<Subscription, String> {
        let endpoint = v
            .get("endpoint")
            .and_then(|e| e.as_str())
            .ok_or("a Web Push subscription needs an `endpoint`")?;
        let keys = v
            .get("keys")
            .ok_or("a Web Push subscription needs `keys`")?;
        let get = |k: &str| {
            keys.get(k)
                .and_then(|x| x.as_str())
                .ok_or(format!("a Web Push subscription needs `keys.{k}`"))
        };
        let p256dh = PublicKey::from_sec1_bytes(&b64(get("p256dh")?)?)
            .map_err(|_| "keys.p256dh is not a P-256 point")?;
        let auth: [u8; 16] = b64(get("auth")?)?
            .try_into()
            .map_err(|_| "keys.auth must be 16 bytes")?;
        Ok(Subscription {
            endpoint: endpoint.to_string(),
            p256dh,
            auth,
        })
    }
}

/// The application server's VAPID key.
#[derive(Clone)]
pub struct Vapid {
    key: Arc<ES256KeyPair>,
    subject: String,
}

impl Vapid {
    /// The private key as base64url of the 32-byte scalar (what `web-push
    /// generate-vapid-keys` prints), or a PEM (PKCS#8 or SEC1).
    pub fn new(private_key: &str, subject: &str) -> Result<Vapid, String> {
        let k = private_key.trim();
        let key = if k.starts_with("-----BEGIN") {
            ES256KeyPair::from_pem(k)
                .map_err(|_| "vapid_private_key: not a P-256 private key PEM")?
        } else {
            ES256KeyPair::from_bytes(&b64(k)?)
                .map_err(|_| "vapid_private_key: not a 32-byte P-256 private key")?
        };
        Ok(Vapid {
            key: Arc::new(key),
            subject: subject.to_string(),
        })
    }

    /// The public key browsers subscribe with (`applicationServerKey`), base64url.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.public_key().public_key().to_bytes_uncompressed())
    }

    /// The push request for one subscription: the encrypted `payload`, VAPID-signed, with
    /// `TTL` (seconds the push service may hold it) in place of the crate's default.
    pub fn request(
        &self,
        sub: &Subscription,
        payload: &[u8],
        ttl_seconds: u32,
    ) -> Result<http::Request<Vec<u8>>, String> {
        let endpoint: http::Uri = sub
            .endpoint
            .parse()
            .map_err(|e| format!("endpoint '{}': {e}", sub.endpoint))?;
        let mut req = WebPushBuilder::new(endpoint, sub.p256dh, Auth::clone_from_slice(&sub.auth))
            .with_valid_duration(VAPID_VALIDITY)
            .with_vapid(&self.key, &self.subject)
            .build(payload.to_vec())
            .map_err(|e| e.to_string())?;
        req.headers_mut()
            .insert("TTL", http::HeaderValue::from(ttl_seconds));
        Ok(req)
    }
}

/// The user agent's side of RFC 8291, for tests: the plaintext of a pushed body, given the
/// subscription's private key and auth secret.
pub fn decrypt(
    ua_secret: &web_push_native::p256::SecretKey,
    auth: &[u8; 16],
    body: &[u8],
) -> Result<Vec<u8>, String> {
    web_push_native::decrypt(body.to_vec(), ua_secret, &Auth::clone_from_slice(auth))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use web_push_native::jwt_simple::prelude::*;
    use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
    use web_push_native::p256::SecretKey;

    fn subscription(ua: &SecretKey, auth: [u8; 16], endpoint: &str) -> Subscription {
        Subscription::from_json(&serde_json::json!({
            "endpoint": endpoint,
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(ua.public_key().to_encoded_point(false).as_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(auth),
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_subscriber_decrypts_and_the_vapid_jwt_verifies() {
        let ua = SecretKey::random(&mut rand_core::OsRng);
        let auth = [7u8; 16];
        let sub = subscription(&ua, auth, "https://push.example/send/abc");
        let secret = SecretKey::random(&mut rand_core::OsRng);
        let v = Vapid::new(
            &URL_SAFE_NO_PAD.encode(secret.to_bytes()),
            "mailto:ops@maison.example",
        )
        .unwrap();
        let req = v.request(&sub, br#"{"title":"Hi"}"#, 600).unwrap();
        assert_eq!(req.headers()["TTL"], "600");
        assert_eq!(req.headers()["Content-Encoding"], "aes128gcm");
        assert_eq!(
            decrypt(&ua, &auth, req.body()).unwrap(),
            br#"{"title":"Hi"}"#
        );
        // Another key cannot read it.
        let other = SecretKey::random(&mut rand_core::OsRng);
        assert!(decrypt(&other, &auth, req.body()).is_err());

        // `vapid t=JWT, k=KEY`: the JWT verifies with the key browsers subscribed with.
        let authz = req.headers()["Authorization"].to_str().unwrap();
        let (t, k) = authz
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        assert_eq!(k, v.public_key());
        let public = ES256PublicKey::from_bytes(&URL_SAFE_NO_PAD.decode(k).unwrap()).unwrap();
        let claims = public
            .verify_token::<NoCustomClaims>(
                t,
                Some(VerificationOptions {
                    allowed_audiences: Some(HashSet::from_strings(&["https://push.example"])),
                    ..Default::default()
                }),
            )
            .expect("the JWT verifies for the push service's origin");
        assert_eq!(claims.subject.as_deref(), Some("mailto:ops@maison.example"));
        let life = claims.expires_at.unwrap().as_secs() - claims.issued_at.unwrap().as_secs();
        assert_eq!(life, VAPID_VALIDITY.as_secs());
    }

    #[test]
    fn bad_subscriptions_and_keys_say_what_is_wrong() {
        let e = Subscription::from_json(&serde_json::json!({"endpoint": "https://x"}));
        assert_eq!(e.unwrap_err(), "a Web Push subscription needs `keys`");
        let e = Subscription::from_json(&serde_json::json!({
            "endpoint": "https://x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}
        }));
        assert_eq!(e.unwrap_err(), "keys.p256dh is not a P-256 point");
        assert!(Vapid::new("not a key", "mailto:x").is_err());
    }
}
