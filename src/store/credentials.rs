//! The daemon's credentials: API tokens and the signing secret. Both the daemon and the CLI
//! (`journey token`, `journey preview`) use them, offline too.
//!
//! API tokens are `jt_…` strings with a scope, kept as SHA-256 hashes (the token itself is
//! shown once, when it is made; the daemon's first admin token is written to
//! `data_dir/admin-token`, mode 0600). Beside a sled store they are in
//! `data_dir/tokens.json` (a running daemon holds the sled store locked, so the CLI could
//! not write there), re-read by the daemon when the file changes; on PostgreSQL they are in
//! the database (`api_tokens`), which every daemon and the CLI reach. The signing secret of
//! tracking tokens and links is the config's or `data_dir/secret` (mode 0600).

use super::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// What a token may do. `admin` can do everything the others can; `engagement` can do
/// everything `ingest` can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send events and upsert contacts (and the Segment-compatible endpoints); not read
    /// contacts, and not post the event types the engine records itself (`clicked`,
    /// `message.sent`…).
    Ingest,
    /// What `ingest` may, and post `clicked`, `opened`, `bounced`, `complained` events
    /// (forwarding an email provider's webhooks); never a send's outcome (`message.*`).
    Engagement,
    /// Read contacts (`GET /v1/contacts/{id}`) and preview messages for them (`GET
    /// /v1/journeys/{name}/messages/{message}/preview`), and sign in to the web console to
    /// look at everything it shows; change nothing.
    Read,
    /// Everything: journeys, deploys, pause and resume, enrolments, reading, exporting and
    /// erasing contacts.
    Admin,
}

impl Scope {
    pub fn allows(self, needed: Scope) -> bool {
        self == Scope::Admin
            || self == needed
            || (self == Scope::Engagement && needed == Scope::Ingest)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Engagement => "engagement",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenEntry {
    /// A short public id, for listing and revoking.
    pub id: String,
    pub scope: Scope,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<TokenEntry>,
}

pub fn tokens_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tokens.json")
}

/// A token's fingerprint: what the token store keeps of it (its SHA-256), never the token.
pub fn fingerprint(token: &str) -> String {
    hash(token)
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("the OS random source works");
    hex::encode(b)
}

fn read(path: &Path) -> anyhow::Result<TokenFile> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| anyhow::anyhow!("{}: not a token file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

fn write(path: &Path, f: &TokenFile) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(f)?)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Where API tokens are kept.
#[derive(Clone)]
pub enum TokenPlace {
    /// `tokens.json` in this data directory (beside a sled store).
    File(PathBuf),
    /// The store's database (PostgreSQL).
    Database(Store),
}

/// The key kind of a token in a store (its table is `api_tokens`).
const TOKEN_KIND: u8 = b'a';

fn token_key(sha256: &str) -> Vec<u8> {
    let mut k = vec![TOKEN_KIND];
    k.extend_from_slice(sha256.as_bytes());
    k
}

impl TokenPlace {
    /// The tokens of a daemon with this data directory and store: in the store when it is
    /// a database server (every daemon and the CLI reach it), else in the directory.
    pub fn of(data_dir: &Path, store: &Store) -> TokenPlace {
        if store.can_be_unavailable() {
            TokenPlace::Database(store.clone())
        } else {
            TokenPlace::File(data_dir.to_path_buf())
        }
    }

    fn entries(&self) -> anyhow::Result<Vec<TokenEntry>> {
        match self {
            TokenPlace::File(dir) => Ok(read(&tokens_path(dir))?.tokens),
            TokenPlace::Database(store) => store
                .kv
                .scan_prefix(&[TOKEN_KIND])
                .map(|r| {
                    let (k, v) = r?;
                    serde_json::from_slice(&v).map_err(|e| {
                        anyhow::anyhow!(
                            "api_tokens: a row that is not a token ({e}) under {:?}",
                            String::from_utf8_lossy(&k)
                        )
                    })
                })
                .collect(),
        }
    }

    fn add(&self, entry: &TokenEntry) -> anyhow::Result<()> {
        match self {
            TokenPlace::File(dir) => {
                let path = tokens_path(dir);
                let mut f = read(&path)?;
                f.tokens.push(entry.clone());
                write(&path, &f)
            }
            TokenPlace::Database(store) => {
                let v = serde_json::to_vec(entry)?;
                store.kv.apply(vec![(token_key(&entry.sha256), Some(v))])?;
                Ok(())
            }
        }
    }

    fn remove(&self, id: &str) -> anyhow::Result<bool> {
        match self {
            TokenPlace::File(dir) => {
                let path = tokens_path(dir);
                let mut f = read(&path)?;
                let before = f.tokens.len();
                f.tokens.retain(|t| t.id != id);
                if f.tokens.len() == before {
                    return Ok(false);
                }
                write(&path, &f)?;
                Ok(true)
            }
            TokenPlace::Database(store) => {
                let gone: Vec<_> = self
                    .entries()?
                    .into_iter()
                    .filter(|t| t.id == id)
                    .map(|t| (token_key(&t.sha256), None))
                    .collect();
                let found = !gone.is_empty();
                if found {
                    store.kv.apply(gone)?;
                }
                Ok(found)
            }
        }
    }
}

/// Makes a token, stores its hash, and returns (token, entry). The token is not kept.
pub fn create(
    place: &TokenPlace,
    scope: Scope,
    note: Option<String>,
) -> anyhow::Result<(String, TokenEntry)> {
    let id = random_hex(4);
    let token = format!("jt_{}_{}{}", scope.as_str(), id, random_hex(20));
    let entry = TokenEntry {
        id,
        scope,
        sha256: hash(&token),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        note,
    };
    place.add(&entry)?;
    Ok((token, entry))
}

pub fn list(place: &TokenPlace) -> anyhow::Result<Vec<TokenEntry>> {
    place.entries()
}

/// Removes a token by id; false if there was none.
pub fn revoke(place: &TokenPlace, id: &str) -> anyhow::Result<bool> {
    place.remove(id)
}

/// Copies the tokens of a data directory's `tokens.json` into a store's database (moving
/// a daemon from sled: `journey migrate-store`), skipping those already there. Returns how
/// many were copied.
pub fn copy_file_tokens(data_dir: &Path, to: &Store) -> anyhow::Result<usize> {
    let from = read(&tokens_path(data_dir))?.tokens;
    let to = TokenPlace::Database(to.clone());
    let have: std::collections::HashSet<String> =
        to.entries()?.into_iter().map(|t| t.sha256).collect();
    let mut n = 0;
    for t in from.iter().filter(|t| !have.contains(&t.sha256)) {
        to.add(t)?;
        n += 1;
    }
    Ok(n)
}

/// Where the daemon writes the admin token it makes on first start (mode 0600).
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

/// On a first start (no admin token kept): makes an admin token, writes it to
/// `admin_token_path` readable by its owner only, and returns that path. The token itself
/// goes nowhere else: not to a log, not to stdout. None when an admin token exists.
pub fn first_admin_token(place: &TokenPlace, data_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    if list(place)?.iter().any(|t| t.scope == Scope::Admin) {
        return Ok(None);
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", data_dir.display()))?;
    let (token, entry) = create(place, Scope::Admin, Some("first start".into()))?;
    let path = admin_token_path(data_dir);
    if let Err(e) = write_private(&path, format!("{token}\n").as_bytes()) {
        // A token nobody can read would stop the next start from making one.
        let _ = revoke(place, &entry.id);
        return Err(anyhow::anyhow!("{}: {e}", path.display()));
    }
    Ok(Some(path))
}

/// Writes `bytes` to `path` through a temporary file created with mode 0600, then renamed.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// How long a daemon trusts what it read of a token in the database: a token revoked there
/// stops working on every daemon within this.
const TOKEN_TRUST: Duration = Duration::from_secs(2);

/// The most tokens a daemon remembers from the database (unknown ones included).
const TOKEN_CACHE_MAX: usize = 10_000;

/// The daemon's view of the tokens: the file, re-read when its modification time changes;
/// or the database, each token's scope remembered for `TOKEN_TRUST`.
pub struct TokenBook {
    place: TokenPlace,
    file: Mutex<(Option<SystemTime>, HashMap<String, Scope>)>,
    database: Mutex<HashMap<String, (Option<Scope>, Instant)>>,
}

impl TokenBook {
    pub fn open(place: TokenPlace) -> TokenBook {
        TokenBook {
            place,
            file: Mutex::new((None, HashMap::new())),
            database: Mutex::new(HashMap::new()),
        }
    }

    /// The scope of a token, if it is known. An error when the database does not answer
    /// and the token was not read from it lately.
    pub fn scope_of(&self, token: &str) -> Result<Option<Scope>, String> {
        self.scope_of_fingerprint(&hash(token))
    }

    /// The scope of the token with this fingerprint (`fingerprint`), if it is still known:
    /// a console session carries it, so a revoked token's sessions end with it.
    pub fn scope_of_fingerprint(&self, sha: &str) -> Result<Option<Scope>, String> {
        let sha = sha.to_string();
        match &self.place {
            TokenPlace::File(dir) => {
                let path = tokens_path(dir);
                let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                let mut c = self.file.lock().unwrap_or_else(|e| e.into_inner());
                if c.0 != mtime || mtime.is_none() {
                    if let Ok(f) = read(&path) {
                        c.1 = f.tokens.into_iter().map(|t| (t.sha256, t.scope)).collect();
                        c.0 = mtime;
                    }
                }
                Ok(c.1.get(&sha).copied())
            }
            TokenPlace::Database(store) => {
                let known = self
                    .database
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&sha)
                    .copied();
                if let Some((scope, at)) = known {
                    if at.elapsed() < TOKEN_TRUST {
                        return Ok(scope);
                    }
                }
                let read = store.kv.get(&token_key(&sha)).map(|v| {
                    v.and_then(|v| serde_json::from_slice::<TokenEntry>(&v).ok())
                        .map(|t| t.scope)
                });
                match read {
                    Ok(scope) => {
                        let mut c = self.database.lock().unwrap_or_else(|e| e.into_inner());
                        if c.len() >= TOKEN_CACHE_MAX {
                            c.clear();
                        }
                        c.insert(sha, (scope, Instant::now()));
                        Ok(scope)
                    }
                    // While the database is away, a token read from it before still works.
                    Err(_) if known.is_some() => Ok(known.and_then(|(s, _)| s)),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }
}

/// The signing key of tracking tokens and signed links: the config's, or one generated on first start and
/// kept in `data_dir/secret`.
pub fn load_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let path = secret_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().as_bytes().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let s = random_hex(32);
            // Never readable by others, not even between creating and restricting it.
            write_private(&path, s.as_bytes())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok(s.into_bytes())
        }
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

/// The signing secret of a store several daemons share: the one stored in it (meta
/// `signing_secret`), or `mine` if none was, stored now (the first to store wins). Written
/// to the data directory when it differs, so the CLI (`journey preview`) signs alike.
pub fn share_secret(store: &Store, mine: Vec<u8>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let shared = store.meta_if_absent(SECRET_META, &mine)?;
    if shared != mine {
        write_private(&secret_path(data_dir), &shared)
            .map_err(|e| anyhow::anyhow!("{}: {e}", secret_path(data_dir).display()))?;
    }
    Ok(shared)
}

/// The store meta key of a database's signing secret (`share_secret`).
const SECRET_META: &str = "signing_secret";

pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_as_hashes_and_scoped() {
        let dir = tempfile::tempdir().unwrap();
        let place = TokenPlace::File(dir.path().into());
        let (ingest, _) = create(&place, Scope::Ingest, None).unwrap();
        let (admin, entry) = create(&place, Scope::Admin, Some("ops".into())).unwrap();
        let text = std::fs::read_to_string(tokens_path(dir.path())).unwrap();
        assert!(!text.contains(&ingest) && !text.contains(&admin), "{text}");
        let book = TokenBook::open(place.clone());
        assert_eq!(book.scope_of(&ingest).unwrap(), Some(Scope::Ingest));
        assert_eq!(book.scope_of(&admin).unwrap(), Some(Scope::Admin));
        assert_eq!(book.scope_of("jt_admin_forged").unwrap(), None);
        assert!(Scope::Admin.allows(Scope::Ingest));
        assert!(!Scope::Ingest.allows(Scope::Admin));
        assert!(!Scope::Ingest.allows(Scope::Read), "ingest no longer reads");
        assert!(!Scope::Ingest.allows(Scope::Engagement));
        assert!(Scope::Engagement.allows(Scope::Ingest));
        assert!(!Scope::Engagement.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Ingest));
        assert!(Scope::Admin.allows(Scope::Read) && Scope::Admin.allows(Scope::Engagement));
        let (read, _) = create(&place, Scope::Read, None).unwrap();
        assert_eq!(
            TokenBook::open(place.clone()).scope_of(&read).unwrap(),
            Some(Scope::Read)
        );
        assert!(revoke(&place, &entry.id).unwrap());
        // The book notices the file changed (the mtime may not move within its resolution,
        // so compare through a fresh book as well).
        assert_eq!(
            TokenBook::open(place.clone()).scope_of(&admin).unwrap(),
            None
        );
    }

    #[test]
    fn the_first_admin_token_goes_to_a_private_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let place = TokenPlace::File(dir.path().into());
        let path = first_admin_token(&place, dir.path())
            .unwrap()
            .expect("made");
        assert_eq!(path, admin_token_path(dir.path()));
        let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
        assert_eq!(
            TokenBook::open(place.clone()).scope_of(&token).unwrap(),
            Some(Scope::Admin)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        assert_eq!(
            first_admin_token(&place, dir.path()).unwrap(),
            None,
            "one exists"
        );
    }
}
