//! The key layout: how a contact id, a time, a bucket sit in a key, so that byte order is
//! the order scans need and no id's keys are a prefix of another's (see the table in the
//! module above); and the one-time move of a store of an older layout to this one.

use super::*;

/// The key layout this code writes (meta `layout`): 2 escapes contact ids in keys.
pub const LAYOUT: u32 = 2;
pub(super) const LAYOUT_META: &str = "layout";

/// Appends a contact id to a key, escaped: 0 → 1 1, 1 → 1 2, other bytes as they are (see
/// the module documentation). An id without bytes 0 and 1 costs a scan and a copy.
pub(super) fn push_id(k: &mut Vec<u8>, id: &str) {
    let b = id.as_bytes();
    if !b.iter().any(|&x| x < 2) {
        k.extend_from_slice(b);
        return;
    }
    for &x in b {
        match x {
            0 => k.extend_from_slice(&[1, 1]),
            1 => k.extend_from_slice(&[1, 2]),
            x => k.push(x),
        }
    }
}

/// A contact id as `push_id` wrote it, read back.
pub(super) fn unescape_id(b: &[u8]) -> String {
    if !b.contains(&1) {
        return String::from_utf8_lossy(b).into_owned();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == 1 && i + 1 < b.len() {
            out.push(b[i + 1] - 1);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A key that embeds a contact id: prefix, `before`, the escaped id, `after`.
pub(super) fn id_key(prefix: u8, before: &[&[u8]], id: &str, after: &[&[u8]]) -> Vec<u8> {
    let n = before.iter().chain(after).map(|p| p.len()).sum::<usize>();
    let mut k = Vec::with_capacity(1 + n + id.len());
    k.push(prefix);
    for p in before {
        k.extend_from_slice(p);
    }
    push_id(&mut k, id);
    for p in after {
        k.extend_from_slice(p);
    }
    k
}

/// The key prefix of everything a contact owns under `e` or `i`: prefix, escaped id, 0.
pub(super) fn owned_prefix(prefix: u8, id: &str) -> Vec<u8> {
    id_key(prefix, &[], id, &[&[0]])
}

pub(super) fn time_key(t: Millis) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

pub(super) fn time_from_key(b: &[u8]) -> Millis {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(a) ^ (1 << 63)) as Millis
}

pub(super) fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// A key of layout 1 that embeds a contact id: (what comes before the id after the
/// prefix, the id, what comes after it).
pub(super) fn layout1_parts(k: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let rest = k.get(1..)?;
    let none: &[u8] = &[];
    match k[0] {
        b'c' | b'n' => Some((none, rest, none)),
        // id, 0, time (8), seq (8)
        b'e' if rest.len() >= 17 => {
            let (id, tail) = rest.split_at(rest.len() - 17);
            Some((none, id, tail))
        }
        // id, 0, instance (8)
        b'i' if rest.len() >= 9 => {
            let (id, tail) = rest.split_at(rest.len() - 9);
            Some((none, id, tail))
        }
        // segment (no 0 in a name), 0, id
        b's' => {
            let z = rest.iter().position(|&x| x == 0)?;
            Some((&rest[..=z], &rest[z + 1..], none))
        }
        // time (8), id
        b'q' if rest.len() >= 8 => Some((&rest[..8], &rest[8..], none)),
        _ => None,
    }
}

pub(super) fn member_key(segment: &str, contact: &str) -> Vec<u8> {
    id_key(b's', &[segment.as_bytes(), &[0]], contact, &[])
}

pub(super) fn timer_key(bucket: Millis, record: u64) -> Vec<u8> {
    key(b't', &[&time_key(bucket), &record.to_be_bytes()])
}

impl Store {
    /// Brings a store to the current key layout, once: a store of layout 1 (no meta
    /// `layout`) has its keys that embed a contact id with a byte 0 or 1 rewritten escaped,
    /// in one batch (the others are the same in both layouts). The keys of layout 1 are
    /// read by their fixed-length tails, which are unambiguous. A newer layout is refused.
    pub(super) fn migrate_layout(&self) -> Result<()> {
        if let Some(v) = self.meta(LAYOUT_META)? {
            let found = String::from_utf8_lossy(&v).into_owned();
            return match found.parse::<u32>() {
                Ok(n) if n <= LAYOUT => Ok(()),
                _ => Err(StoreError::NewerLayout { found }),
            };
        }
        let mut b = WriteBatch::default();
        for prefix in [b'c', b'e', b'i', b's', b'n', b'q'] {
            for r in self.kv.scan_prefix(&[prefix]) {
                let (k, v) = r?;
                let Some((before, owner, after)) = layout1_parts(&k) else {
                    return Err(StoreError::Malformed {
                        key: String::from_utf8_lossy(&k).into_owned(),
                        what: "key (layout 1)",
                    });
                };
                if !owner.iter().any(|&x| x < 2) {
                    continue;
                }
                let id = String::from_utf8_lossy(owner);
                let new = id_key(prefix, &[before], &id, &[after]);
                b.del(k.to_vec());
                b.put(new, v.to_vec());
            }
        }
        b.set_meta(LAYOUT_META, LAYOUT.to_string().as_bytes());
        self.apply(b)?;
        self.flush()
    }
}
