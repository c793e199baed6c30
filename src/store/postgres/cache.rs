//! The contacts this process read ahead or wrote, kept as it left them: a contact's record,
//! events and instances (what `prefetch` loads for it). The daemon holding the store's lease
//! is the only writer of these rows, and every write of this process passes here, so a
//! contact found here needs no query: a batch whose contacts all came before reads nothing
//! ahead. A commit that fails empties it (what it holds may not have been stored), and so
//! does reaching its size.

use std::collections::{BTreeMap, HashMap};

/// The most bytes of keys and values kept (then it starts over).
const CACHE_BYTES_MAX: usize = 64 << 20;

/// Rows in key order.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// One contact's rows: its record (None: not stored), and its events' and instances' rows.
#[derive(Default, Clone)]
pub(super) struct ContactRows {
    pub record: Option<Vec<u8>>,
    pub events: Rows,
    pub instances: Rows,
}

impl ContactRows {
    fn bytes(&self) -> usize {
        let rows = |r: &Rows| r.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        self.record.as_ref().map_or(0, Vec::len) + rows(&self.events) + rows(&self.instances)
    }
}

#[derive(Default)]
pub(super) struct ContactCache {
    /// By the contact's id as its keys hold it (escaped).
    contacts: HashMap<Vec<u8>, ContactRows>,
    bytes: usize,
}

/// Whose key this is, if a contact's record, event or instance: the kind byte and the
/// owner's id as keys hold it.
pub(super) fn owner_of(key: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, rest) = key.split_first()?;
    match kind {
        b'c' => Some((kind, rest)),
        b'e' | b'i' => rest
            .iter()
            .position(|&b| b == 0)
            .map(|z| (kind, &rest[..z])),
        _ => None,
    }
}

impl ContactCache {
    pub fn get(&self, id: &[u8]) -> Option<&ContactRows> {
        self.contacts.get(id)
    }

    /// Keeps a contact's rows as just read (with the batch in flight laid over them).
    pub fn keep(&mut self, id: Vec<u8>, rows: ContactRows) {
        let added = rows.bytes();
        if self.bytes + added > CACHE_BYTES_MAX {
            self.clear();
        }
        self.bytes += added;
        if let Some(old) = self.contacts.insert(id, rows) {
            self.bytes = self.bytes.saturating_sub(old.bytes());
        }
    }

    /// A batch's writes (the last of each key), for the contacts kept.
    pub fn write(&mut self, writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        for (k, v) in writes {
            let Some((kind, id)) = owner_of(k) else {
                continue;
            };
            let Some(rows) = self.contacts.get_mut(id) else {
                continue;
            };
            let before = rows.bytes();
            match kind {
                b'c' => rows.record = v.clone(),
                b'e' => put_row(&mut rows.events, k, v),
                _ => put_row(&mut rows.instances, k, v),
            }
            let after = rows.bytes();
            self.bytes = (self.bytes + after).saturating_sub(before);
        }
        if self.bytes > CACHE_BYTES_MAX {
            self.clear();
        }
    }

    pub fn clear(&mut self) {
        self.contacts.clear();
        self.bytes = 0;
    }
}

/// Puts (or removes, for None) one row of rows in key order.
pub(super) fn put_row(rows: &mut Rows, key: &[u8], value: &Option<Vec<u8>>) {
    match (rows.binary_search_by(|(k, _)| k.as_slice().cmp(key)), value) {
        (Ok(i), Some(v)) => rows[i].1 = v.clone(),
        (Ok(i), None) => {
            rows.remove(i);
        }
        (Err(i), Some(v)) => rows.insert(i, (key.to_vec(), v.clone())),
        (Err(_), None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reach_the_contacts_kept_and_no_others() {
        let mut cache = ContactCache::default();
        cache.keep(b"ann".to_vec(), ContactRows::default());
        let mut writes = BTreeMap::new();
        writes.insert(b"cann".to_vec(), Some(b"record".to_vec()));
        writes.insert(b"eann\0\x01".to_vec(), Some(b"e1".to_vec()));
        writes.insert(b"iann\0\x02".to_vec(), Some(b"i2".to_vec()));
        writes.insert(b"cbob".to_vec(), Some(b"bob".to_vec()));
        writes.insert(b"tann".to_vec(), Some(b"a timer".to_vec()));
        cache.write(&writes);
        let ann = cache.get(b"ann").unwrap();
        assert_eq!(ann.record.as_deref(), Some(&b"record"[..]));
        assert_eq!(ann.events, vec![(b"eann\0\x01".to_vec(), b"e1".to_vec())]);
        assert_eq!(
            ann.instances,
            vec![(b"iann\0\x02".to_vec(), b"i2".to_vec())]
        );
        assert!(cache.get(b"bob").is_none(), "bob was never read ahead");
        let mut removal = BTreeMap::new();
        removal.insert(b"iann\0\x02".to_vec(), None);
        cache.write(&removal);
        assert!(cache.get(b"ann").unwrap().instances.is_empty());
        assert_eq!(cache.bytes, cache.get(b"ann").unwrap().bytes());
    }

    #[test]
    fn an_owner_is_read_from_the_key_up_to_its_nul() {
        assert_eq!(owner_of(b"cann"), Some((b'c', &b"ann"[..])));
        assert_eq!(owner_of(b"eann\0\x01\x02"), Some((b'e', &b"ann"[..])));
        assert_eq!(owner_of(b"ofoo"), None);
    }
}
