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
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;
use web_push_native::p256::PublicKey;
use web_push_native::{Auth, WebPushBuilder};
// (the builder's own VAPID signing is not used: see `Vapid::request`)

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
    /// generate-vapid-keys` prints), or a PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what
    /// `openssl genpkey` writes) or SEC1 (`BEGIN EC PRIVATE KEY`, `openssl ecparam -genkey`).
    /// The subject is how the push service reaches you: `mailto:` or `https:` (RFC 8292).
    pub fn new(private_key: &str, subject: &str) -> Result<Vapid, String> {
        let k = private_key.trim();
        let key = if k.contains("-----BEGIN EC PRIVATE KEY-----") {
            let der = pem_body(k, "EC PRIVATE KEY")?;
            ES256KeyPair::from_bytes(&sec1_scalar(&der)?)
                .map_err(|_| "vapid_private_key: not a P-256 private key")?
        } else if k.contains("-----BEGIN PRIVATE KEY-----") {
            ES256KeyPair::from_pem(k).map_err(|_| {
                "vapid_private_key: the PKCS#8 PEM is not a P-256 (prime256v1) private key"
            })?
        } else if k.starts_with("-----BEGIN") {
            return Err("vapid_private_key: a PEM must be `BEGIN PRIVATE KEY` (PKCS#8) or `BEGIN EC PRIVATE KEY` (SEC1)".into());
        } else if k.is_empty() {
            return Err(
                "push.provider webpush: give vapid_private_key or vapid_private_key_file".into(),
            );
        } else {
            ES256KeyPair::from_bytes(&b64(k).map_err(|e| format!("vapid_private_key: {e}"))?)
                .map_err(|_| "vapid_private_key: not a 32-byte P-256 private key")?
        };
        let s = subject.trim();
        if !(s.starts_with("mailto:") || s.starts_with("https://")) {
            return Err(format!(
                "vapid_subject '{s}': must be a mailto: or https: URL (RFC 8292), e.g. mailto:ops@example.com"
            ));
        }
        Ok(Vapid {
            key: Arc::new(key),
            subject: s.to_string(),
        })
    }

    /// The key given inline or in a file (exactly one of them).
    pub fn from_config(
        inline: &str,
        file: Option<&std::path::Path>,
        subject: &str,
    ) -> Result<Vapid, String> {
        match (inline.trim().is_empty(), file) {
            (false, Some(_)) => Err(
                "push.provider webpush: give vapid_private_key or vapid_private_key_file, not both"
                    .into(),
            ),
            (true, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("vapid_private_key_file {}: {e}", path.display()))?;
                Vapid::new(&text, subject)
                    .map_err(|e| format!("vapid_private_key_file {}: {e}", path.display()))
            }
            _ => Vapid::new(inline, subject),
        }
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
        // The VAPID JWT is signed here rather than by the crate, whose audience drops the
        // port: RFC 8292's `aud` is the push resource's origin, `https://host:8443` when the
        // service listens on a port that is not the scheme's default.
        let audience = origin(&endpoint)?;
        let mut req = WebPushBuilder::new(endpoint, sub.p256dh, Auth::clone_from_slice(&sub.auth))
            .build(payload.to_vec())
            .map_err(|e| e.to_string())?;
        let claims = Claims::create(VAPID_VALIDITY.into())
            .with_audience(audience)
            .with_subject(&self.subject);
        let token = self
            .key
            .sign(claims)
            .map_err(|e| format!("VAPID signature: {e}"))?;
        let authz = format!("vapid t={token}, k={}", self.public_key());
        req.headers_mut().insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&authz).map_err(|e| e.to_string())?,
        );
        req.headers_mut()
            .insert("TTL", http::HeaderValue::from(ttl_seconds));
        Ok(req)
    }
}

/// An endpoint's origin (RFC 6454): `scheme://host`, with `:port` unless it is the scheme's
/// default.
pub fn origin(endpoint: &http::Uri) -> Result<String, String> {
    let scheme = endpoint
        .scheme_str()
        .ok_or_else(|| format!("endpoint '{endpoint}' has no scheme"))?;
    let host = endpoint
        .host()
        .ok_or_else(|| format!("endpoint '{endpoint}' has no host"))?;
    let default = match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    Ok(match endpoint.port_u16() {
        Some(p) if Some(p) != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// The DER inside a PEM with this label.
fn pem_body(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| format!("vapid_private_key: no {begin}"))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| format!("vapid_private_key: no {end}"))?
        + start;
    let body: String = pem[start..stop]
        .lines()
        .filter(|l| !l.contains(':'))
        .collect::<Vec<_>>()
        .concat()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD
        .decode(body)
        .map_err(|e| format!("vapid_private_key: the PEM is not base64: {e}"))
}

/// The private scalar of a SEC1 `ECPrivateKey` (RFC 5915): `SEQUENCE { INTEGER 1,
/// OCTET STRING (32 bytes), [0] curve OID, [1] public key }`, checking the curve is P-256.
fn sec1_scalar(der: &[u8]) -> Result<Vec<u8>, String> {
    const P256: [u8; 8] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let bad = || "vapid_private_key: not a SEC1 P-256 private key".to_string();
    if der.first() != Some(&0x30) {
        return Err(bad());
    }
    // The sequence's length: short form or 0x81 nn.
    let mut i = match der.get(1) {
        Some(0x81) => 3,
        Some(n) if *n < 0x80 => 2,
        _ => return Err(bad()),
    };
    if der.get(i..i + 5) != Some(&[0x02, 0x01, 0x01, 0x04, 0x20][..]) {
        return Err(bad());
    }
    i += 5;
    let scalar = der.get(i..i + 32).ok_or_else(bad)?.to_vec();
    i += 32;
    if der.get(i) == Some(&0xa0) {
        // [0] { OID }
        let oid_len = *der.get(i + 3).ok_or_else(bad)? as usize;
        if der.get(i + 2) != Some(&0x06) || der.get(i + 4..i + 4 + oid_len) != Some(&P256[..]) {
            return Err("vapid_private_key: the key is not on P-256 (prime256v1)".into());
        }
    }
    Ok(scalar)
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

    fn pem(label: &str, der: &[u8]) -> String {
        let b = STANDARD.encode(der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    /// RFC 5915 `ECPrivateKey` with the curve's OID and the public key.
    fn sec1_der(secret: &SecretKey, oid: &[u8]) -> Vec<u8> {
        let public = secret.public_key().to_encoded_point(false);
        let mut inner = vec![0x02, 0x01, 0x01, 0x04, 0x20];
        inner.extend_from_slice(&secret.to_bytes());
        inner.extend_from_slice(&[0xa0, oid.len() as u8 + 2, 0x06, oid.len() as u8]);
        inner.extend_from_slice(oid);
        inner.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00]);
        inner.extend_from_slice(public.as_bytes());
        let mut der = vec![0x30, inner.len() as u8];
        der.extend(inner);
        der
    }

    #[test]
    fn vapid_keys_as_pkcs8_or_sec1_pem_inline_or_from_a_file() {
        let secret = SecretKey::random(&mut rand_core::OsRng);
        let raw = Vapid::new(
            &URL_SAFE_NO_PAD.encode(secret.to_bytes()),
            "mailto:a@b.example",
        )
        .unwrap()
        .public_key();
        let pkcs8 = ES256KeyPair::from_bytes(&secret.to_bytes())
            .unwrap()
            .to_pem()
            .unwrap();
        assert!(pkcs8.contains("BEGIN PRIVATE KEY"), "{pkcs8}");
        const P256: [u8; 8] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let sec1 = pem("EC PRIVATE KEY", &sec1_der(&secret, &P256));
        for text in [&pkcs8, &sec1] {
            let v = Vapid::new(text, "https://maison.example/contact").unwrap();
            assert_eq!(v.public_key(), raw, "{text}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vapid.pem");
        std::fs::write(&file, &sec1).unwrap();
        let v = Vapid::from_config("", Some(&file), "mailto:a@b.example").unwrap();
        assert_eq!(v.public_key(), raw);

        // What is wrong, said.
        let secp384 = [0x2b, 0x81, 0x04, 0x00, 0x22];
        let e = Vapid::new(
            &pem("EC PRIVATE KEY", &sec1_der(&secret, &secp384)),
            "mailto:a@b",
        )
        .err()
        .unwrap();
        assert!(e.contains("not on P-256"), "{e}");
        let e = Vapid::from_config(&sec1, Some(&file), "mailto:a@b")
            .err()
            .unwrap();
        assert!(e.contains("not both"), "{e}");
        let e = Vapid::from_config("", Some(&dir.path().join("nope.pem")), "mailto:a@b")
            .err()
            .unwrap();
        assert!(e.contains("nope.pem"), "{e}");
        let e = Vapid::from_config("", None, "mailto:a@b").err().unwrap();
        assert!(e.contains("vapid_private_key_file"), "{e}");
        let e = Vapid::new(&sec1, "ops@maison.example").err().unwrap();
        assert!(e.contains("mailto:"), "{e}");
        let e = Vapid::new(
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
            "mailto:a@b",
        )
        .err()
        .unwrap();
        assert!(e.contains("PKCS#8"), "{e}");
    }

    #[test]
    fn the_vapid_audience_is_the_origin_with_a_non_default_port() {
        let o = |u: &str| origin(&u.parse().unwrap()).unwrap();
        assert_eq!(o("https://push.example/send/1"), "https://push.example");
        assert_eq!(o("https://push.example:443/send/1"), "https://push.example");
        assert_eq!(
            o("https://push.example:8443/send/1"),
            "https://push.example:8443"
        );
        assert_eq!(o("http://127.0.0.1:9000/p"), "http://127.0.0.1:9000");
        assert_eq!(o("http://127.0.0.1:80/p"), "http://127.0.0.1");
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
