//! What erasure and export read and keep: the consent of an erased contact's addresses,
//! under a one-way hash (`u | hash`), and every key and record of one contact.

use super::*;

/// What is kept of an erased contact's address (`u | hash`, the hash from
/// `Store::address_hash`): what it said about consent, so that a later import or upsert of
/// the same address comes back suppressed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Suppression {
    pub unsubscribed: bool,
    pub bounced: bool,
    pub complained: bool,
}

impl Suppression {
    pub fn any(&self) -> bool {
        self.unsubscribed || self.bounced || self.complained
    }
    /// Whether a profile with this address must come back with `unsubscribed: true`.
    pub fn suppresses_marketing(&self) -> bool {
        self.unsubscribed || self.complained
    }
}

/// The meta key of the secret the address hashes are keyed with (made at the first
/// erasure that keeps a record).
pub(super) const SUPPRESSION_KEY_META: &str = "suppression_key";

/// An address as hashed: an email lower-cased and trimmed; a phone number with only its
/// digits and a leading `+`. None if nothing is left.
pub fn normalize_address(kind: &str, value: &str) -> Option<String> {
    let v = value.trim();
    let n = match kind {
        "email" => v.to_lowercase(),
        "phone" => crate::engine::consent::normalize_phone(v),
        _ => return None,
    };
    (!n.is_empty()).then(|| format!("{kind}:{n}"))
}

impl Store {
    /// HMAC-SHA-256 of a normalized address (`normalize_address`) under the store's
    /// suppression key; None while the store has no key (so no record either). `create`
    /// makes the key if there is none.
    pub fn address_hash(&self, address: &str, create: bool) -> Result<Option<[u8; 32]>> {
        use hmac::{Hmac, Mac};
        let k = key(b'm', &[SUPPRESSION_KEY_META.as_bytes()]);
        let secret = match self.kv.get(&k)? {
            Some(v) => v.to_vec(),
            None if create => {
                let mut fresh = vec![0u8; 32];
                getrandom::fill(&mut fresh).expect("the OS random source works");
                // Two erasures at once agree on the key that won.
                match self.kv.insert_new(&k, &fresh)? {
                    None => fresh,
                    Some(current) => current.to_vec(),
                }
            }
            None => return Ok(None),
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).expect("any key length");
        mac.update(address.as_bytes());
        Ok(Some(mac.finalize().into_bytes().into()))
    }

    pub fn suppression(&self, hash: &[u8; 32]) -> Result<Option<Suppression>> {
        let k = key(b'u', &[hash]);
        self.kv.get(&k)?.map(|v| decode(&k, &v)).transpose()
    }

    /// The suppression kept for a profile's addresses (`email`, `phone`), merged; None if
    /// none of them has one.
    pub fn suppression_of(
        &self,
        profile: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<Suppression>> {
        let mut found: Option<Suppression> = None;
        for kind in ["email", "phone"] {
            let Some(addr) = profile
                .get(kind)
                .and_then(|v| v.as_str())
                .and_then(|v| normalize_address(kind, v))
            else {
                continue;
            };
            let Some(hash) = self.address_hash(&addr, false)? else {
                return Ok(None);
            };
            if let Some(s) = self.suppression(&hash)? {
                let f = found.get_or_insert_with(Suppression::default);
                f.unsubscribed |= s.unsubscribed;
                f.bounced |= s.bounced;
                f.complained |= s.complained;
            }
        }
        Ok(found)
    }

    /// Every key that holds a contact's data, for its erasure: its profile, events (and
    /// the dedupe ids of those that had one), instances, segment memberships, segment
    /// check, and short links. (Timer and outbox records hold several contacts: the
    /// runtime rewrites them.)
    pub fn contact_keys(&self, id: &str) -> Result<Vec<Vec<u8>>> {
        let mut keys = vec![id_key(b'c', &[], id, &[])];
        for r in self.kv.scan_prefix(&owned_prefix(b'e', id)) {
            let (k, v) = r?;
            if let Some(dedupe) = codec::read_event(&k, &v)?.id {
                keys.push(key(b'd', &[dedupe.as_bytes()]));
            }
            keys.push(k.to_vec());
        }
        for r in self.kv.scan_prefix(&owned_prefix(b'i', id)) {
            keys.push(r?.0.to_vec());
        }
        let mut tail = Vec::new();
        push_id(&mut tail, id);
        for r in self.kv.scan_prefix(b"s") {
            let (k, _) = r?;
            if let Some(z) = k[1..].iter().position(|&x| x == 0) {
                if k[2 + z..] == tail[..] {
                    keys.push(k.to_vec());
                }
            }
        }
        if let Some(at) = self.segment_check(id)? {
            keys.push(id_key(b'q', &[&time_key(at)], id, &[]));
            keys.push(id_key(b'n', &[], id, &[]));
        }
        for (code, _) in self.short_links_of(id)? {
            keys.push(key(b'l', &[code.as_bytes()]));
        }
        Ok(keys)
    }

    /// The segments a contact is a member of, in name order.
    pub fn segments_of(&self, id: &str) -> Result<Vec<String>> {
        let mut tail = Vec::new();
        push_id(&mut tail, id);
        let mut out = Vec::new();
        for r in self.kv.scan_prefix(b"s") {
            let (k, _) = r?;
            if let Some(z) = k[1..].iter().position(|&x| x == 0) {
                if k[2 + z..] == tail[..] {
                    out.push(String::from_utf8_lossy(&k[1..1 + z]).into_owned());
                }
            }
        }
        Ok(out)
    }

    /// A contact's short links: (code, claims). A scan of every link: for export and
    /// erasure only.
    pub fn short_links_of(&self, id: &str) -> Result<Vec<(String, Claims)>> {
        let mut out = Vec::new();
        for r in self.kv.scan_prefix(b"l") {
            let (k, v) = r?;
            let c: Claims = decode(&k, &v)?;
            if c.contact == id {
                out.push((String::from_utf8_lossy(&k[1..]).into_owned(), c));
            }
        }
        Ok(out)
    }

    /// Every key and value of the store, in key order (audits, and the erasure test).
    pub fn raw_entries(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_ {
        self.kv
            .range(&[], None)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }
}
