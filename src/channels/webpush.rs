//! Web Push: the payload encrypted for the browser's subscription (RFC 8291, `aes128gcm`
//! content coding of RFC 8188) and the VAPID authorization (RFC 8292, an ES256 JWT).
//!
//! Written on the RustCrypto crates (p256, hkdf, aes-gcm): the `web-push` crate encrypts
//! through `ece`, whose only backend is OpenSSL, and this project builds without OpenSSL.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::Aes128Gcm;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;

/// The record size written in the header: one record holds any push payload (≤ 4 KiB).
const RECORD_SIZE: u32 = 4096;

/// A browser's `PushSubscription` (its JSON: `endpoint`, `keys.p256dh`, `keys.auth`).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub endpoint: String,
    /// The user agent's public key, uncompressed (65 bytes).
    pub p256dh: Vec<u8>,
    /// The authentication secret (16 bytes).
    pub auth: Vec<u8>,
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
        let p256dh = b64(get("p256dh")?)?;
        let auth = b64(get("auth")?)?;
        PublicKey::from_sec1_bytes(&p256dh).map_err(|_| "keys.p256dh is not a P-256 point")?;
        if auth.len() != 16 {
            return Err("keys.auth must be 16 bytes".into());
        }
        Ok(Subscription {
            endpoint: endpoint.to_string(),
            p256dh,
            auth,
        })
    }
}

/// Encrypts `payload` for a subscription: `salt(16) | rs(4) | idlen(1) | keyid(65) | record`.
pub fn encrypt(sub: &Subscription, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let server = SecretKey::random(&mut OsRng);
    encrypt_with(sub, payload, &server, salt)
}

fn encrypt_with(
    sub: &Subscription,
    payload: &[u8],
    server: &SecretKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, String> {
    let ua_public =
        PublicKey::from_sec1_bytes(&sub.p256dh).map_err(|_| "keys.p256dh is not a P-256 point")?;
    let as_public = server.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(server.to_nonzero_scalar(), ua_public.as_affine());
    // IKM = HKDF(auth, ecdh, "WebPush: info\0" | ua_public | as_public, 32)
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(&sub.p256dh);
    info.extend_from_slice(as_public.as_bytes());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&sub.auth), shared.raw_secret_bytes())
        .expand(&info, &mut ikm)
        .map_err(|_| "HKDF")?;
    let hk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    hk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|_| "HKDF")?;
    hk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|_| "HKDF")?;
    let mut plain = payload.to_vec();
    plain.push(2); // the last (only) record's delimiter, no padding
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|_| "AES key")?;
    let sealed = cipher
        .encrypt(aes_gcm::Nonce::from_slice(&nonce), plain.as_slice())
        .map_err(|_| "AES-GCM")?;
    let mut out = Vec::with_capacity(16 + 4 + 1 + 65 + sealed.len());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    out.push(as_public.as_bytes().len() as u8);
    out.extend_from_slice(as_public.as_bytes());
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The application server's VAPID key.
#[derive(Clone)]
pub struct Vapid {
    key: SigningKey,
    subject: String,
}

impl Vapid {
    /// The private key as base64url of the 32-byte scalar (what `web-push
    /// generate-vapid-keys` prints), or a PEM (PKCS#8 or SEC1).
    pub fn new(private_key: &str, subject: &str) -> Result<Vapid, String> {
        let k = private_key.trim();
        let secret = if k.starts_with("-----BEGIN") {
            use p256::pkcs8::DecodePrivateKey;
            SecretKey::from_pkcs8_pem(k)
                .or_else(|_| SecretKey::from_sec1_pem(k))
                .map_err(|_| "vapid_private_key: not a P-256 private key PEM")?
        } else {
            SecretKey::from_slice(&b64(k)?)
                .map_err(|_| "vapid_private_key: not a 32-byte P-256 private key")?
        };
        Ok(Vapid {
            key: SigningKey::from(secret),
            subject: subject.to_string(),
        })
    }

    /// The public key browsers subscribe with (`applicationServerKey`), base64url.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_encoded_point(false).as_bytes())
    }

    /// `Authorization: vapid t=JWT, k=PUBLIC_KEY` for a push service endpoint.
    pub fn authorization(&self, endpoint: &str, now_secs: i64) -> Result<String, String> {
        let url = reqwest::Url::parse(endpoint).map_err(|e| format!("endpoint: {e}"))?;
        let aud = url.origin().ascii_serialization();
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            serde_json::json!({ "aud": aud, "exp": now_secs + 12 * 3600, "sub": self.subject })
                .to_string(),
        );
        let input = format!("{header}.{claims}");
        let sig: Signature = self.key.sign(input.as_bytes());
        let jwt = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        Ok(format!("vapid t={jwt}, k={}", self.public_key()))
    }
}

/// The user agent's side of RFC 8291: decrypts what `encrypt` made (for tests: it
/// panics on a body it cannot read).
pub fn decrypt(ua_secret: &SecretKey, auth: &[u8], body: &[u8]) -> Vec<u8> {
    let salt = &body[..16];
    let rs = u32::from_be_bytes(body[16..20].try_into().unwrap());
    assert_eq!(rs, RECORD_SIZE);
    let idlen = body[20] as usize;
    let as_public = PublicKey::from_sec1_bytes(&body[21..21 + idlen]).unwrap();
    let sealed = &body[21 + idlen..];
    let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_public.as_affine());
    let ua_public = ua_secret.public_key().to_encoded_point(false);
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(ua_public.as_bytes());
    info.extend_from_slice(as_public.to_encoded_point(false).as_bytes());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&info, &mut ikm)
        .unwrap();
    let hk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    hk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .unwrap();
    hk.expand(b"Content-Encoding: nonce\0", &mut nonce).unwrap();
    let mut plain = Aes128Gcm::new_from_slice(&cek)
        .unwrap()
        .decrypt(aes_gcm::Nonce::from_slice(&nonce), sealed)
        .unwrap();
    assert_eq!(plain.pop(), Some(2));
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_agent_decrypts_the_payload() {
        let ua = SecretKey::random(&mut OsRng);
        let auth = [7u8; 16];
        let sub = Subscription::from_json(&serde_json::json!({
            "endpoint": "https://push.example/abc",
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(ua.public_key().to_encoded_point(false).as_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(auth),
            }
        }))
        .unwrap();
        let body = encrypt(&sub, br#"{"title":"Hi"}"#).unwrap();
        assert_eq!(decrypt(&ua, &auth, &body), br#"{"title":"Hi"}"#);
        // Another key cannot read it.
        let other = SecretKey::random(&mut OsRng);
        let r = std::panic::catch_unwind(|| decrypt(&other, &auth, &body));
        assert!(r.is_err());
    }

    #[test]
    fn vapid_jwt_verifies_with_the_public_key() {
        use p256::ecdsa::signature::Verifier;
        use p256::ecdsa::VerifyingKey;
        let secret = SecretKey::random(&mut OsRng);
        let v = Vapid::new(
            &URL_SAFE_NO_PAD.encode(secret.to_bytes()),
            "mailto:ops@maison.example",
        )
        .unwrap();
        let auth = v
            .authorization("https://push.example:8443/send/abc", 1_000)
            .unwrap();
        let (t, k) = auth
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        let (input, sig) = t.rsplit_once('.').unwrap();
        let key = VerifyingKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(k).unwrap()).unwrap();
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        key.verify(input.as_bytes(), &sig).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(input.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], "https://push.example:8443");
        assert_eq!(claims["sub"], "mailto:ops@maison.example");
        assert_eq!(claims["exp"], 1_000 + 12 * 3600);
    }
}
