//! The PostgreSQL backend: the store's ordered key space kept in real tables.
//!
//! Each kind of key (the prefixes in the layout of `store`) has a table of its own, named for
//! people (`contacts`, `events`, `instances`, `timer_records`, `outbox`, …). A row holds the
//! key and the stored value the engine reads (`k`, `v`, both `bytea`, ordered by `k` as the
//! keys are), and beside them typed columns an analyst can query: a contact's `profile` as
//! JSONB, an event's `contact`, `at`, `type` and `properties`, an instance's `journey`,
//! `step` and `due`. The engine reads `k` and `v` only; the typed columns are written from
//! the same value in the same statement, so they never disagree with it.
//!
//! A batch is one transaction (`apply` = commit, with `synchronous_commit` as the server
//! has it: on by default), so acknowledged means committed and `flush` has nothing left to
//! do. Scans page through the primary key. The schema is created and upgraded by numbered
//! migrations at connect (`journey_schema`); a database of a newer schema is refused.
//!
//! The SQL is plain: tables, a primary key, secondary indexes, `INSERT … ON CONFLICT`,
//! `unnest` of arrays, a sequence. No advisory locks, no `LISTEN`: what CockroachDB and
//! YugabyteDB accept too (designed for; checked on PostgreSQL only).
//!
//! tokio-postgres is the driver (async, maintained with the protocol's whole surface),
//! with deadpool-postgres for the pool; the store's interface is synchronous (the runtime's
//! loop is a plain thread), so the backend runs its own small tokio runtime and each call
//! waits for its query there, from any thread, inside async code or not.

use super::codec;
use super::keys::{time_from_key, unescape_id};
use super::kv::{Bytes, Entries, Entry, Kv, Op};
use super::{Result, StoreError};
use crate::engine::{Contact, SendJob};
use chrono::{DateTime, TimeZone, Utc};
use deadpool_postgres::{Manager, Pool};
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use tokio_postgres::types::ToSql;

/// The schema this code creates and reads. Each number is a migration below.
pub const SCHEMA_VERSION: i32 = 5;

/// How many rows a scan reads at a time.
const PAGE: i64 = 2_000;

/// How many ids one call to the sequence reserves (`next_id` hands them out in memory).
const ID_BLOCK: i64 = 1_000;

/// A typed column: its SQL name and type, and how a row's value for it is made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ColType {
    Text,
    BigInt,
    Time,
    Json,
    Binary,
}

impl ColType {
    fn sql(self) -> &'static str {
        match self {
            ColType::Text => "text",
            ColType::BigInt => "bigint",
            ColType::Time => "timestamptz",
            ColType::Json => "jsonb",
            ColType::Binary => "bytea",
        }
    }
}

/// One typed value of a row.
enum Col {
    Text(Option<String>),
    BigInt(Option<i64>),
    Time(Option<DateTime<Utc>>),
    Json(Option<Value>),
    Bytes(Option<Vec<u8>>),
}

/// A table of one key kind.
struct Table {
    prefix: u8,
    name: &'static str,
    columns: &'static [(&'static str, ColType)],
    /// Secondary indexes, as column lists.
    indexes: &'static [&'static str],
    /// The typed columns of a row, from its key and value: None (all NULL) when the value
    /// does not decode, a None in a column where it cannot tell.
    typed: fn(&[u8], &[u8]) -> Option<Vec<Col>>,
}

use ColType::*;

const TABLES: &[Table] = &[
    Table {
        prefix: b'c',
        name: "contacts",
        columns: &[("id", Text), ("profile", Json)],
        indexes: &[],
        typed: |k, v| {
            let c: Option<Contact> = serde_json::from_slice(v).ok();
            Some(vec![
                Col::Text(Some(unescape_id(&k[1..]))),
                Col::Json(c.map(|c| Value::Object(c.profile))),
            ])
        },
    },
    Table {
        prefix: b'd',
        name: "event_ids",
        columns: &[("id", Text)],
        indexes: &[],
        typed: |k, _| Some(vec![key_text(k)]),
    },
    Table {
        prefix: b'e',
        name: "events",
        columns: &[
            ("contact", Text),
            ("at", Time),
            ("type", Text),
            ("properties", Json),
            ("message_id", Text),
        ],
        indexes: &["contact, at", "type, at"],
        typed: |k, v| {
            let e = codec::read_event(k, v).ok()?;
            Some(vec![
                Col::Text(Some(e.contact)),
                Col::Time(time(e.at)),
                Col::Text(Some(e.kind)),
                Col::Json(Some(Value::Object(e.properties))),
                Col::Text(e.message_id),
            ])
        },
    },
    Table {
        prefix: b'g',
        name: "segment_definitions",
        columns: &[("segment", Text), ("fingerprint", Text)],
        indexes: &[],
        typed: |k, v| {
            Some(vec![
                key_text(k),
                Col::Text(Some(String::from_utf8_lossy(v).into())),
            ])
        },
    },
    Table {
        prefix: b'h',
        name: "journey_heads",
        columns: &[("journey", Text), ("version", Text)],
        indexes: &[],
        typed: |k, v| {
            Some(vec![
                key_text(k),
                Col::Text(Some(String::from_utf8_lossy(v).into())),
            ])
        },
    },
    Table {
        prefix: b'i',
        name: "instances",
        columns: &[
            ("contact", Text),
            ("id", BigInt),
            ("journey", Text),
            ("version", Text),
            ("step", BigInt),
            ("ended", Text),
            ("due", Time),
            ("entered_at", Time),
        ],
        indexes: &["journey", "due", "contact"],
        typed: |k, v| {
            let i = codec::read_instance(k, v).ok()?;
            Some(vec![
                Col::Text(Some(i.contact)),
                Col::BigInt(Some(i.id as i64)),
                Col::Text(Some(i.journey)),
                Col::Text(Some(i.version)),
                Col::BigInt(i.step.map(i64::from)),
                Col::Text(i.ended.and_then(|e| {
                    serde_json::to_value(e)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                })),
                Col::Time(i.due.and_then(time)),
                Col::Time(time(i.entered_at)),
            ])
        },
    },
    Table {
        prefix: b'l',
        name: "short_links",
        columns: &[("code", Text), ("claims", Json)],
        indexes: &[],
        typed: |k, v| Some(vec![key_text(k), Col::Json(serde_json::from_slice(v).ok())]),
    },
    Table {
        prefix: b'm',
        name: "meta",
        columns: &[("name", Text)],
        indexes: &[],
        typed: |k, _| Some(vec![key_text(k)]),
    },
    Table {
        prefix: b'n',
        name: "segment_next_checks",
        columns: &[("contact", Text), ("at", Time)],
        indexes: &[],
        typed: |k, v| Some(vec![Col::Text(Some(unescape_id(&k[1..]))), key_time(v)]),
    },
    Table {
        prefix: b'o',
        name: "outbox",
        columns: &[("record", BigInt), ("sends", Json)],
        indexes: &[],
        typed: |k, v| {
            let record = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(|b| u64::from_be_bytes(b) as i64);
            let jobs: Option<Vec<SendJob>> = codec::read_jobs(k, v).ok();
            Some(vec![
                Col::BigInt(record),
                Col::Json(jobs.and_then(|j| serde_json::to_value(j).ok())),
            ])
        },
    },
    Table {
        prefix: b'p',
        name: "schedule_runs",
        columns: &[("schedule", Text), ("last_run", Time)],
        indexes: &[],
        typed: |k, v| Some(vec![key_text(k), key_time(v)]),
    },
    Table {
        prefix: b'q',
        name: "segment_checks",
        columns: &[("at", Time), ("contact", Text)],
        indexes: &[],
        typed: |k, _| {
            Some(vec![
                Col::Time(
                    (k.len() >= 9)
                        .then(|| time(time_from_key(&k[1..9])))
                        .flatten(),
                ),
                Col::Text(k.get(9..).map(unescape_id)),
            ])
        },
    },
    Table {
        prefix: b's',
        name: "segment_members",
        columns: &[("segment", Text), ("contact", Text)],
        indexes: &["contact"],
        typed: |k, _| {
            let z = k[1..].iter().position(|&b| b == 0);
            Some(vec![
                Col::Text(z.map(|z| String::from_utf8_lossy(&k[1..1 + z]).into())),
                Col::Text(z.map(|z| unescape_id(&k[2 + z..]))),
            ])
        },
    },
    Table {
        prefix: b't',
        name: "timer_records",
        columns: &[("bucket", Time), ("record", BigInt), ("timers", Json)],
        indexes: &[],
        typed: |k, v| {
            let r = super::decode_timers(k, v).ok()?;
            Some(vec![
                Col::Time(time(r.bucket)),
                Col::BigInt(Some(r.id as i64)),
                Col::Json(Some(Value::Array(
                    r.timers
                        .iter()
                        .map(|t| {
                            serde_json::json!({
                                "due": time(t.due),
                                "instance": t.instance,
                                "contact": t.contact,
                            })
                        })
                        .collect(),
                ))),
            ])
        },
    },
    Table {
        prefix: b'u',
        name: "suppressions",
        columns: &[("address_hash", Binary), ("consent", Json)],
        indexes: &[],
        typed: |k, v| {
            Some(vec![
                Col::Bytes(Some(k[1..].to_vec())),
                Col::Json(serde_json::from_slice(v).ok()),
            ])
        },
    },
    Table {
        prefix: b'v',
        name: "journey_versions",
        columns: &[("hash", Text), ("ir", Json)],
        indexes: &[],
        typed: |k, v| Some(vec![key_text(k), Col::Json(serde_json::from_slice(v).ok())]),
    },
];

/// Tables added after the first schema, with the migration that creates each.
const LATER_TABLES: &[(i32, Table)] = &[(
    2,
    Table {
        prefix: b'a',
        name: "api_tokens",
        columns: &[
            ("id", Text),
            ("scope", Text),
            ("created", Text),
            ("note", Text),
        ],
        indexes: &[],
        typed: |_, v| {
            let t: Value = serde_json::from_slice(v).ok()?;
            let text = |f: &str| Col::Text(t.get(f).and_then(Value::as_str).map(String::from));
            Some(vec![
                text("id"),
                text("scope"),
                text("created"),
                text("note"),
            ])
        },
    },
)];

/// Every table, the first schema's and the later ones.
fn all_tables() -> impl Iterator<Item = &'static Table> {
    TABLES.iter().chain(LATER_TABLES.iter().map(|(_, t)| t))
}

/// The text after a key's kind byte (a name, a code, a hash), as a column.
fn key_text(k: &[u8]) -> Col {
    Col::Text(Some(String::from_utf8_lossy(&k[1..]).into()))
}

/// A time stored as a key's 8 bytes (`time_key`), as a column.
fn key_time(b: &[u8]) -> Col {
    Col::Time((b.len() == 8).then(|| time(time_from_key(b))).flatten())
}

fn time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

fn table_of(prefix: u8) -> Option<&'static Table> {
    all_tables().find(|t| t.prefix == prefix)
}

/// An error of the driver or the pool, with the server's own message when it sent one
/// (tokio-postgres says only "db error" at the top of the chain).
fn pg_error(e: impl std::error::Error + 'static) -> StoreError {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(db) = s.downcast_ref::<tokio_postgres::error::DbError>() {
            out = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                out.push_str(&format!(" ({d})"));
            }
            break;
        }
        let text = s.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        source = s.source();
    }
    if let Some(db) = (&e as &dyn std::error::Error)
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.as_db_error())
    {
        out = format!("{}: {}", db.severity(), db.message());
    }
    if unreachable(&e) {
        StoreError::Unavailable(out)
    } else {
        StoreError::Postgres(out)
    }
}

/// Whether an error says the database did not answer (refused, closed, timed out, shutting
/// down, out of connections), which passes, rather than refused the work (bad SQL, wrong
/// credentials, no such database), which does not.
fn unreachable(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(p) = e.downcast_ref::<deadpool_postgres::PoolError>() {
        return match p {
            deadpool_postgres::PoolError::Timeout(_) => true,
            deadpool_postgres::PoolError::Backend(e) => unreachable(e),
            _ => false,
        };
    }
    let Some(pg) = e.downcast_ref::<tokio_postgres::Error>() else {
        return false;
    };
    if let Some(db) = pg.as_db_error() {
        let code = db.code().code();
        // 08: connection exceptions; 57P01–03: shutting down or starting; 53300: too many
        // connections.
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
    }
    if pg.is_closed() {
        return true;
    }
    // Connecting and talking to the server fail with an I/O error beneath.
    let mut source = std::error::Error::source(pg);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    pg.to_string().contains("timeout")
}

/// The migrations, in order: migration n brings the schema from n − 1 to n.
fn migrations() -> Vec<String> {
    let mut v1 = String::new();
    for t in TABLES {
        v1.push_str(&create_table(t));
    }
    v1.push_str(&format!(
        "CREATE SEQUENCE journey_ids INCREMENT BY {ID_BLOCK} START WITH 1;\n"
    ));
    // The one daemon's lease (`claim_exclusive`).
    v1.push_str(
        "CREATE TABLE journey_lease (name text PRIMARY KEY, owner text NOT NULL, expires timestamptz NOT NULL);\n",
    );
    let mut all = vec![v1];
    for (version, t) in LATER_TABLES {
        let n = *version as usize;
        all.resize(all.len().max(n), String::new());
        all[n - 1].push_str(&create_table(t));
    }
    // The lease's epoch: each takeover raises it, and every commit checks it (fencing).
    all.push("ALTER TABLE journey_lease ADD COLUMN epoch bigint NOT NULL DEFAULT 0;\n".into());
    // The daemons working on the database or waiting for its lease (`announce`).
    all.push(
        "CREATE TABLE journey_daemons (owner text PRIMARY KEY, address text NOT NULL, role text NOT NULL, started timestamptz NOT NULL DEFAULT now(), seen timestamptz NOT NULL DEFAULT now());\n".into(),
    );
    // A batch reads its contacts' instances by contact (`prefetch`).
    all.push("CREATE INDEX instances_by_contact ON instances (contact);\n".into());
    all
}

/// A table's DDL: the key, the value, the typed columns and their indexes.
fn create_table(t: &Table) -> String {
    let cols: String = t
        .columns
        .iter()
        .map(|(n, ty)| format!(", {n} {}", ty.sql()))
        .collect();
    let mut sql = format!(
        "CREATE TABLE {} (k bytea PRIMARY KEY, v bytea NOT NULL{cols});\n",
        t.name
    );
    for (i, ix) in t.indexes.iter().enumerate() {
        sql.push_str(&format!(
            "CREATE INDEX {}_by_{} ON {} ({ix});\n",
            t.name,
            i + 1,
            t.name
        ));
    }
    sql
}

/// The PostgreSQL backend.
pub(crate) struct PgKv {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// Ids reserved from the sequence and not handed out yet: [next, end).
    ids: Mutex<(u64, u64)>,
    /// A scratch store's own schema, dropped with it.
    scratch: Option<String>,
    /// What the last `prefetch` loaded, for the thread that asked; cleared by `apply`.
    prefetched: Mutex<Option<Prefetched>>,
    /// Set when this process held the daemon's lease and lost it: it writes nothing more.
    lease_lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The lease this process holds, (owner, epoch), once `claim_exclusive` took it: every
    /// commit checks it in its own transaction, so a daemon whose lease another took (it
    /// was paused, or cut off, past the expiry) commits nothing.
    held: std::sync::Arc<std::sync::OnceLock<(String, i64)>>,
    /// Commits by this process (`analyse_while_young`).
    commits: std::sync::atomic::AtomicU64,
    /// The lease's renewals so far, and whether this process took it from another.
    renewals: std::sync::Arc<std::sync::atomic::AtomicU64>,
    took_over: std::sync::atomic::AtomicBool,
    /// The database in errors and logs: host, port and name (no password).
    location: String,
    /// Why the database did not answer the last call that tried it; None once one succeeds.
    down: std::sync::Arc<Mutex<Option<String>>>,
}

/// How long connecting may take before the database counts as unavailable (unless the URL
/// sets `connect_timeout`).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A store URL without its password, for errors and logs.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Takes `sslrootcert=PATH` out of a store URL (the driver does not read it): the URL
/// without it, and the path.
fn take_root_cert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("sslrootcert=") {
            Some(path) => {
                root = Some(
                    percent_encoding::percent_decode_str(path)
                        .decode_utf8_lossy()
                        .into_owned(),
                );
                false
            }
            None => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, root)
}

/// The TLS a store URL asks for: none unless `sslmode=require`; then TLS that checks the
/// server's certificate and name against the public roots and, when given, the
/// certificates in `sslrootcert` (a private CA, a cloud provider's bundle).
fn tls_for(
    config: &tokio_postgres::Config,
    root_cert: Option<&str>,
) -> std::result::Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, String> {
    use tokio_rustls::rustls;
    if config.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
        return match root_cert {
            Some(_) => Err("sslrootcert is read with sslmode=require only".into()),
            None => Ok(None),
        };
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = root_cert {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls)))
}

/// A database's place as errors name it: `host:port/name`, without user or password.
fn location_of(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

/// How long the daemon's lease lasts unless renewed, and how often it is renewed.
const LEASE_SECONDS: i32 = 10;
const LEASE_RENEW: std::time::Duration = std::time::Duration::from_secs(3);

/// This process, as the lease names it: host and pid.
fn lease_owner() -> String {
    super::daemon_name()
}

/// Whether a lease owner is a process of this host that is gone (killed): its lease can be
/// taken at once rather than at its expiry.
fn owner_is_gone(owner: &str) -> bool {
    let here = lease_owner();
    let (Some((host, pid)), Some((my_host, _))) = (owner.rsplit_once(':'), here.rsplit_once(':'))
    else {
        return false;
    };
    host == my_host
        && pid.parse::<u32>().is_ok()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Keys and values, in key order.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Keys loaded ahead of a batch: exact keys (None: absent) and whole prefixes.
struct Prefetched {
    thread: std::thread::ThreadId,
    exact: std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Each prefix's entries, in key order.
    prefixes: BTreeMap<Vec<u8>, Rows>,
}

impl Prefetched {
    /// The prefix loaded that holds `key` (prefixes asked for do not nest).
    fn prefix_of(&self, key: &[u8]) -> Option<&Rows> {
        let (p, rows) = self.prefixes.range(..=key.to_vec()).next_back()?;
        key.starts_with(p).then_some(rows)
    }
}

impl Drop for PgKv {
    fn drop(&mut self) {
        if let Some(schema) = self.scratch.take() {
            let pool = self.pool.clone();
            let _ = self.run(async move {
                let client = pool.get().await.map_err(pg_error)?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
                    .map_err(pg_error)
            });
        }
        // A runtime dropped inside async code would panic; this one lets its threads go.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PgKv {
    /// Connects to `url` (`postgres://user@host:port/db`), and creates or upgrades the
    /// schema.
    pub(crate) fn connect(url: &str) -> Result<PgKv> {
        PgKv::connect_in(url, None)
    }

    /// A store of its own in a new schema of the database at `url`, dropped with it
    /// (scenarios and tests on PostgreSQL: each starts empty).
    pub(crate) fn scratch(url: &str) -> Result<PgKv> {
        let mut name = [0u8; 8];
        getrandom::fill(&mut name).map_err(pg_error)?;
        let schema = format!("journey_scratch_{}", hex::encode(name));
        PgKv::connect_in(url, Some(schema))
    }

    fn connect_in(url: &str, scratch: Option<String>) -> Result<PgKv> {
        let bad_url = |e: &dyn std::fmt::Display| {
            StoreError::Postgres(format!("the store URL {:?}: {e}", redact_url(url)))
        };
        let (url_for_driver, root_cert) = take_root_cert(url);
        let mut config: tokio_postgres::Config = url_for_driver.parse().map_err(|e| bad_url(&e))?;
        let tls = tls_for(&config, root_cert.as_deref()).map_err(|e| bad_url(&e))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let location = location_of(&config);
        if let Some(schema) = &scratch {
            config.options(format!("-c search_path={schema}"));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("journey-postgres")
            .enable_all()
            .build()
            .map_err(pg_error)?;
        let manager = match tls {
            Some(tls) => Manager::new(config, tls),
            None => Manager::new(config, tokio_postgres::NoTls),
        };
        let pool = Pool::builder(manager)
            .max_size(8)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(pg_error)?;
        let kv = PgKv {
            runtime: Some(runtime),
            pool,
            ids: Mutex::new((0, 0)),
            scratch,
            prefetched: Mutex::new(None),
            lease_lost: Default::default(),
            held: Default::default(),
            renewals: Default::default(),
            took_over: Default::default(),
            commits: Default::default(),
            location,
            down: Default::default(),
        };
        if let Some(schema) = &kv.scratch {
            let (pool, schema) = (kv.pool.clone(), schema.clone());
            kv.run(async move {
                let client = pool.get().await.map_err(pg_error)?;
                client
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .map_err(pg_error)
            })?;
        }
        kv.migrate()?;
        Ok(kv)
    }

    /// Runs `f` on the backend's runtime and waits for it, from any thread.
    fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .spawn(async move {
                let _ = tx.send(f.await);
            });
        let r = rx
            .recv()
            .map_err(|_| StoreError::Postgres("the database task stopped".into()))?;
        // Errors name the database; whether it answered is noted for `unavailable`.
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok(v) => {
                *down = None;
                Ok(v)
            }
            Err(StoreError::Unavailable(why)) => {
                let why = format!("PostgreSQL at {}: {why}", self.location);
                *down = Some(why.clone());
                Err(StoreError::Unavailable(why))
            }
            Err(StoreError::Postgres(why)) => {
                Err(StoreError::Postgres(format!("{}: {why}", self.location)))
            }
            Err(e) => Err(e),
        }
    }

    fn migrate(&self) -> Result<()> {
        let pool = self.pool.clone();
        self.run(async move {
            let mut client = pool.get().await.map_err(pg_error)?;
            // Asked first, so that a start on an existing schema logs no server notice.
            let exists: bool = client
                .query_one("SELECT to_regclass('journey_schema') IS NOT NULL", &[])
                .await
                .map_err(pg_error)?
                .get(0);
            if !exists {
                client
                    .batch_execute(
                        "CREATE TABLE IF NOT EXISTS journey_schema (version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                    )
                    .await
                    .map_err(pg_error)?;
            }
            let row = client
                .query_one("SELECT coalesce(max(version), 0) FROM journey_schema", &[])
                .await
                .map_err(pg_error)?;
            let found: i32 = row.get(0);
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    found,
                    known: SCHEMA_VERSION,
                });
            }
            for (i, sql) in migrations().iter().enumerate() {
                let n = i as i32 + 1;
                if n <= found {
                    continue;
                }
                let tx = client.transaction().await.map_err(pg_error)?;
                tx.batch_execute(sql).await.map_err(pg_error)?;
                tx.execute("INSERT INTO journey_schema (version) VALUES ($1)", &[&n])
                    .await
                    .map_err(pg_error)?;
                tx.commit().await.map_err(pg_error)?;
            }
            Ok(())
        })
    }

    /// One page of a table's rows in `[lower, upper)` (or after `lower`, exclusive, when
    /// `after`), in key order.
    fn page(
        &self,
        table: &'static Table,
        lower: Vec<u8>,
        after: bool,
        upper: Option<Vec<u8>>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            let op = if after { ">" } else { ">=" };
            let rows = match &upper {
                Some(u) => {
                    let sql = format!(
                        "SELECT k, v FROM {} WHERE k {op} $1 AND k < $2 ORDER BY k LIMIT $3",
                        table.name
                    );
                    client.query(&sql, &[&lower, u, &PAGE]).await
                }
                None => {
                    let sql = format!(
                        "SELECT k, v FROM {} WHERE k {op} $1 ORDER BY k LIMIT $2",
                        table.name
                    );
                    client.query(&sql, &[&lower, &PAGE]).await
                }
            }
            .map_err(pg_error)?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }
}

/// A batch's writes to one table: the keys it removes, the rows it puts.
#[derive(Default)]
struct TableWrites {
    dels: Vec<Vec<u8>>,
    puts: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The rows of one scan, table after table, a page at a time.
struct Scan<'a> {
    kv: &'a PgKv,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    /// Tables still to read, in prefix order.
    tables: std::vec::IntoIter<&'static Table>,
    current: Option<&'static Table>,
    /// The last key read from the current table.
    last: Option<Vec<u8>>,
    buffered: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    done_with_table: bool,
}

impl Scan<'_> {
    fn bounds(&self, t: &Table) -> (Vec<u8>, Option<Vec<u8>>) {
        let lower = std::cmp::max(self.start.clone(), vec![t.prefix]);
        let table_end = super::kv::prefix_end(&[t.prefix]);
        let upper = match (&self.end, table_end) {
            (Some(e), Some(te)) => Some(std::cmp::min(e.clone(), te)),
            (Some(e), None) => Some(e.clone()),
            (None, te) => te,
        };
        (lower, upper)
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.buffered.next() {
                self.last = Some(k.clone());
                return Some(Ok((Bytes::Owned(k), Bytes::Owned(v))));
            }
            if self.current.is_none() || self.done_with_table {
                self.current = Some(self.tables.next()?);
                self.last = None;
                self.done_with_table = false;
            }
            let table = self.current.expect("set above");
            let (lower, upper) = self.bounds(table);
            if upper.as_ref().is_some_and(|u| *u <= lower) {
                self.done_with_table = true;
                continue;
            }
            let (from, after) = match self.last.take() {
                Some(last) => (last, true),
                None => (lower, false),
            };
            match self.kv.page(table, from, after, upper) {
                Ok(rows) => {
                    if (rows.len() as i64) < PAGE {
                        self.done_with_table = true;
                    }
                    self.buffered = rows.into_iter();
                }
                Err(e) => {
                    self.done_with_table = true;
                    self.tables = Vec::new().into_iter();
                    return Some(Err(e));
                }
            }
        }
    }
}

impl PgKv {
    /// Runs `f` on what this thread prefetched, if anything.
    fn with_prefetched<T>(&self, f: impl FnOnce(&Prefetched) -> Option<T>) -> Option<T> {
        let guard = self.prefetched.lock().unwrap_or_else(|e| e.into_inner());
        let p = guard.as_ref()?;
        if p.thread != std::thread::current().id() {
            return None;
        }
        f(p)
    }
}

/// The lease a commit must still hold, checked inside its transaction.
struct Fence {
    held: Option<(String, i64)>,
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Fence {
    /// Fails (and marks the lease lost) unless this process still holds the lease at the
    /// epoch it took: the row is locked `FOR SHARE` until the commit, so a takeover waits
    /// for this transaction, or this transaction sees the takeover and rolls back.
    async fn check(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
        let Some((owner, epoch)) = &self.held else {
            return Ok(());
        };
        let still = tx
            .query_opt(
                "SELECT 1 FROM journey_lease WHERE name = 'daemon' AND owner = $1 AND epoch = $2 FOR SHARE",
                &[owner, epoch],
            )
            .await
            .map_err(pg_error)?;
        if still.is_none() {
            self.lost.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(lease_taken());
        }
        Ok(())
    }
}

/// The error of a daemon whose lease another took.
fn lease_taken() -> StoreError {
    StoreError::HeldBy(
        "another daemon took this database's lease (this one was paused or cut off past its expiry); this one commits nothing more".into(),
    )
}

/// The commits after which the store asks PostgreSQL to analyse its tables (then the
/// autovacuum daemon's own schedule takes over).
const ANALYSE_AFTER_COMMITS: [u64; 4] = [20, 200, 2_000, 20_000];

impl PgKv {
    /// Tables that start empty have no statistics until the autovacuum daemon analyses them
    /// (a minute or more), and meanwhile the planner reads a batch's contacts by scanning
    /// whole tables, which gets slower with every row. So the first commits of this process
    /// are followed, now and then, by an `ANALYZE` of the tables a batch reads, in the
    /// background (it blocks no writer).
    fn analyse_while_young(&self) {
        let n = self
            .commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if !ANALYSE_AFTER_COMMITS.contains(&n) {
            return;
        }
        let pool = self.pool.clone();
        if let Some(rt) = &self.runtime {
            rt.spawn(async move {
                if let Ok(client) = pool.get().await {
                    if let Err(e) = client
                        .batch_execute("ANALYZE contacts, events, instances, timer_records")
                        .await
                    {
                        tracing::debug!("ANALYZE: {e}");
                    }
                }
            });
        }
    }

    fn fence(&self) -> Fence {
        Fence {
            held: self.held.get().cloned(),
            lost: self.lease_lost.clone(),
        }
    }

    fn check_lease(&self) -> Result<()> {
        if self.lease_lost.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(lease_taken());
        }
        Ok(())
    }
}

impl Kv for PgKv {
    fn prefetches(&self) -> bool {
        true
    }

    fn prefetch(&self, exact: Vec<Vec<u8>>, prefixes: Vec<Vec<u8>>) -> Result<()> {
        // Rows by owner: the typed `contact` (or `id`) column, indexed, answers for all
        // the batch's contacts in one query per table.
        let owner = |k: &[u8]| match k.first() {
            Some(b'c') => Some(unescape_id(&k[1..])),
            Some(_) => k[1..]
                .iter()
                .position(|&b| b == 0)
                .map(|z| unescape_id(&k[1..1 + z])),
            None => None,
        };
        // As the typed columns hold them (rows of another id that reads the same there are
        // told apart by their keys below).
        let contacts: Vec<String> = exact
            .iter()
            .filter_map(|k| owner(k))
            .map(|c| text_without_nul(&c))
            .collect();
        let contact_keys: Vec<Vec<u8>> = exact
            .iter()
            .filter(|k| k.first() == Some(&b'c'))
            .cloned()
            .collect();
        let pool = self.pool.clone();
        let rows = self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            // Sent together, so the three cost the round trips of one. Not prepared once
            // and kept: a kept statement may get a generic plan, which for `= ANY($1)`
            // scans the table (a hundred times slower here).
            // By the indexed columns: the contacts' keys, and `contact` (the planner uses
            // the indexes once the tables have statistics: `analyse_while_young`).
            let ids: [&(dyn ToSql + Sync); 1] = [&contacts];
            let keys: [&(dyn ToSql + Sync); 1] = [&contact_keys];
            let found = tokio::try_join!(
                client.query("SELECT k, v FROM contacts WHERE k = ANY($1)", &keys),
                client.query("SELECT k, v FROM events WHERE contact = ANY($1)", &ids),
                client.query("SELECT k, v FROM instances WHERE contact = ANY($1)", &ids),
            )
            .map_err(pg_error)?;
            let mut out: Vec<(Vec<u8>, Vec<u8>)> = [found.0, found.1, found.2]
                .into_iter()
                .flatten()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            // Each prefix's rows in key order, as a scan gives them.
            out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })?;
        let mut p = Prefetched {
            thread: std::thread::current().id(),
            exact: exact.into_iter().map(|k| (k, None)).collect(),
            prefixes: prefixes.into_iter().map(|k| (k, Vec::new())).collect(),
        };
        for (k, v) in rows {
            if let Some(slot) = p.exact.get_mut(&k) {
                *slot = Some(v);
                continue;
            }
            let Some(prefix) = p
                .prefixes
                .range(..=k.clone())
                .next_back()
                .map(|(p, _)| p.clone())
                .filter(|p| k.starts_with(p))
            else {
                continue;
            };
            if let Some(rows) = p.prefixes.get_mut(&prefix) {
                rows.push((k, v));
            }
        }
        *self.prefetched.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        if let Some(hit) = self.with_prefetched(|p| {
            if let Some(v) = p.exact.get(key) {
                return Some(v.clone());
            }
            let rows = p.prefix_of(key)?;
            Some(
                rows.binary_search_by(|(k, _)| k.as_slice().cmp(key))
                    .ok()
                    .map(|i| rows[i].1.clone()),
            )
        }) {
            return Ok(hit.map(Bytes::Owned));
        }
        let Some(table) = key.first().and_then(|p| table_of(*p)) else {
            return Ok(None);
        };
        let pool = self.pool.clone();
        let key = key.to_vec();
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            let sql = format!("SELECT v FROM {} WHERE k = $1", table.name);
            let row = client.query_opt(&sql, &[&key]).await.map_err(pg_error)?;
            Ok(row.map(|r| Bytes::Owned(r.get(0))))
        })
    }

    fn range<'a>(&'a self, start: &[u8], end: Option<&[u8]>) -> Entries<'a> {
        // Within one prefetched prefix: from memory.
        let hit = self.with_prefetched(|p| {
            let rows = p.prefix_of(start)?;
            let (prefix, _) = p.prefixes.range(..=start.to_vec()).next_back()?;
            let prefix_end = super::kv::prefix_end(prefix);
            let inside = match (end, &prefix_end) {
                (Some(e), Some(pe)) => e <= pe.as_slice(),
                _ => false,
            };
            inside.then(|| {
                rows.iter()
                    .filter(|(k, _)| k.as_slice() >= start && end.is_none_or(|e| k.as_slice() < e))
                    .cloned()
                    .collect::<Vec<_>>()
            })
        });
        if let Some(rows) = hit {
            return Box::new(
                rows.into_iter()
                    .map(|(k, v)| Ok((Bytes::Owned(k), Bytes::Owned(v)))),
            );
        }
        let first = start.first().copied().unwrap_or(0);
        let tables: Vec<&'static Table> = all_tables()
            .filter(|t| t.prefix >= first && end.is_none_or(|e| [t.prefix].as_slice() < e))
            .collect::<Vec<_>>();
        let mut tables = tables;
        tables.sort_by_key(|t| t.prefix);
        Box::new(Scan {
            kv: self,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            tables: tables.into_iter(),
            current: None,
            last: None,
            buffered: Vec::new().into_iter(),
            done_with_table: false,
        })
    }

    fn apply(&self, ops: Vec<Op>) -> Result<()> {
        self.check_lease()?;
        // What was read ahead is about to change.
        *self.prefetched.lock().unwrap_or_else(|e| e.into_inner()) = None;
        // The last write of a key wins, as in one sled batch.
        let mut last: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for (k, v) in ops {
            last.insert(k, v);
        }
        // Per table: the keys to remove, the rows to put.
        let mut by_table: BTreeMap<u8, TableWrites> = BTreeMap::new();
        for (k, v) in last {
            let Some(p) = k.first().copied().filter(|p| table_of(*p).is_some()) else {
                return Err(StoreError::Malformed {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    what: "key (no table holds its kind)",
                });
            };
            let e = by_table.entry(p).or_default();
            match v {
                Some(v) => e.puts.push((k, v)),
                None => e.dels.push(k),
            }
        }
        let pool = self.pool.clone();
        let fence = self.fence();
        self.run(async move {
            let mut client = pool.get().await.map_err(pg_error)?;
            let txn = client.transaction().await.map_err(pg_error)?;
            {
                // Every statement of the batch is sent at once (the connection pipelines
                // them), then the commit: the round trips of one statement, not of each.
                let tx = &txn;
                let fence = &fence;
                let mut statements: Vec<
                    std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + '_>>,
                > = Vec::new();
                for (prefix, TableWrites { dels, puts }) in by_table {
                    let table = table_of(prefix).expect("checked above");
                    if !dels.is_empty() {
                        statements.push(Box::pin(async move {
                            let sql = format!("DELETE FROM {} WHERE k = ANY($1)", table.name);
                            tx.execute(&sql, &[&dels]).await.map_err(pg_error)?;
                            Ok(())
                        }));
                    }
                    if !puts.is_empty() {
                        statements.push(Box::pin(upsert(tx, table, puts)));
                    }
                }
                statements.push(Box::pin(fence.check(tx)));
                futures_util::future::try_join_all(statements).await?;
            }
            let tx = txn;
            tx.commit().await.map_err(pg_error)
        })?;
        self.analyse_while_young();
        Ok(())
    }

    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<Option<Bytes>> {
        let Some(table) = key.first().and_then(|p| table_of(*p)) else {
            return Err(StoreError::Malformed {
                key: String::from_utf8_lossy(key).into_owned(),
                what: "key (no table holds its kind)",
            });
        };
        self.check_lease()?;
        let (key, value) = (key.to_vec(), value.to_vec());
        let pool = self.pool.clone();
        let fence = self.fence();
        self.run(async move {
            let mut client = pool.get().await.map_err(pg_error)?;
            let tx = client.transaction().await.map_err(pg_error)?;
            let sql = format!("SELECT v FROM {} WHERE k = $1", table.name);
            if let Some(row) = tx.query_opt(&sql, &[&key]).await.map_err(pg_error)? {
                return Ok(Some(Bytes::Owned(row.get(0))));
            }
            // Two writers at once: the one that loses the race inserts nothing and reads
            // the winner's value.
            let inserted = insert_if_absent(&tx, table, &key, &value).await?;
            let current = if inserted {
                None
            } else {
                tx.query_opt(&sql, &[&key])
                    .await
                    .map_err(pg_error)?
                    .map(|r| Bytes::Owned(r.get(0)))
            };
            fence.check(&tx).await?;
            tx.commit().await.map_err(pg_error)?;
            Ok(current)
        })
    }

    fn claim_exclusive(&self) -> Result<()> {
        let me = lease_owner();
        let pool = self.pool.clone();
        let owner = me.clone();
        let holder: std::result::Result<(i64, bool), (String, String)> = self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            let current = client
                .query_opt("SELECT owner FROM journey_lease WHERE name = 'daemon'", &[])
                .await
                .map_err(pg_error)?
                .map(|r| r.get::<_, String>(0));
            let gone = current.as_deref().is_some_and(owner_is_gone);
            // Taken if free, expired, or left by a process of this host that is gone; each
            // taking raises the epoch, which fences the last holder's commits out.
            let taken = client
                .query_opt(
                    "INSERT INTO journey_lease (name, owner, expires, epoch) VALUES ('daemon', $1, now() + make_interval(secs => $2), 1)
                     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires, epoch = journey_lease.epoch + 1
                     WHERE journey_lease.expires < now() OR journey_lease.owner = $1 OR $3
                     RETURNING epoch",
                    &[&owner, &(LEASE_SECONDS as f64), &gone],
                )
                .await
                .map_err(pg_error)?;
            if let Some(row) = taken {
                let took_over = current.is_some_and(|c| c != owner);
                return Ok(Ok((row.get::<_, i64>(0), took_over)));
            }
            let row = client
                .query_one(
                    "SELECT owner, to_char(expires, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM journey_lease WHERE name = 'daemon'",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            Ok(Err((row.get(0), row.get(1))))
        })?;
        let epoch = match holder {
            Ok((epoch, took_over)) => {
                self.took_over
                    .store(took_over, std::sync::atomic::Ordering::SeqCst);
                epoch
            }
            Err((owner, until)) => {
                return Err(StoreError::HeldBy(format!(
                    "{owner} holds its lease until {until} at least"
                )))
            }
        };
        let _ = self.held.set((me.clone(), epoch));
        // Renewed while this process lives; lost, it stops this process's writes.
        let pool = self.pool.clone();
        let lost = self.lease_lost.clone();
        let renewals = self.renewals.clone();
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_RENEW).await;
                    let renewed = match pool.get().await {
                        Ok(c) => {
                            let renewed = c
                                .execute(
                                    "UPDATE journey_lease SET expires = now() + make_interval(secs => $2) WHERE name = 'daemon' AND owner = $1 AND epoch = $3",
                                    &[&me, &(LEASE_SECONDS as f64), &epoch],
                                )
                                .await
                                .ok();
                            if renewed == Some(1) {
                                renewals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                // And the daemons' list hears that this one lives.
                                let _ = c
                                    .execute(
                                        "UPDATE journey_daemons SET seen = now(), role = 'active' WHERE owner = $1",
                                        &[&me],
                                    )
                                    .await;
                            }
                            renewed
                        }
                        Err(_) => None,
                    };
                    if renewed == Some(0) {
                        tracing::error!("the daemon's lease on the database was taken by another: writing stops");
                        lost.store(true, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                }
            });
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        // Every apply is a commit.
        Ok(())
    }

    fn can_be_unavailable(&self) -> bool {
        true
    }

    fn lease_lost(&self) -> bool {
        self.lease_lost.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lease(&self) -> Option<super::LeaseInfo> {
        use std::sync::atomic::Ordering::*;
        let (_, epoch) = self.held.get()?;
        Some(super::LeaseInfo {
            held: !self.lease_lost.load(SeqCst),
            epoch: *epoch,
            renewals: self.renewals.load(Relaxed),
            took_over: self.took_over.load(SeqCst),
        })
    }

    fn announce(&self, address: &str, role: &str) -> Result<()> {
        let (me, address, role) = (lease_owner(), address.to_string(), role.to_string());
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            client
                .execute(
                    "INSERT INTO journey_daemons (owner, address, role) VALUES ($1, $2, $3)
                     ON CONFLICT (owner) DO UPDATE SET address = excluded.address, role = excluded.role, seen = now()",
                    &[&me, &address, &role],
                )
                .await
                .map_err(pg_error)?;
            // One daemon works at a time: one that said so before is past its lease.
            if role == "active" {
                client
                    .execute(
                        "UPDATE journey_daemons SET role = 'lost lease' WHERE role = 'active' AND owner <> $1",
                        &[&me],
                    )
                    .await
                    .map_err(pg_error)?;
            }
            // Daemons not heard of for an hour are gone.
            client
                .execute(
                    "DELETE FROM journey_daemons WHERE seen < now() - interval '1 hour'",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            Ok(())
        })
    }

    fn daemons(&self) -> Result<Vec<super::DaemonSeen>> {
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            let rows = client
                .query(
                    "SELECT owner, address, role, to_char(started AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                            extract(epoch FROM now() - seen)::float8
                     FROM journey_daemons ORDER BY started DESC",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            Ok(rows
                .into_iter()
                .map(|r| super::DaemonSeen {
                    name: r.get(0),
                    address: r.get(1),
                    role: r.get(2),
                    started: r.get(3),
                    seconds_since_seen: r.get(4),
                })
                .collect())
        })
    }

    fn unavailable(&self) -> Option<String> {
        self.down.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn ping(&self) -> Result<()> {
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            client.simple_query("SELECT 1").await.map_err(pg_error)?;
            Ok(())
        })
    }

    fn next_id(&self) -> Result<u64> {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.0 >= ids.1 {
            let pool = self.pool.clone();
            let start: i64 = self.run(async move {
                let client = pool.get().await.map_err(pg_error)?;
                let row = client
                    .query_one("SELECT nextval('journey_ids')", &[])
                    .await
                    .map_err(pg_error)?;
                Ok(row.get(0))
            })?;
            *ids = (start as u64, (start + ID_BLOCK) as u64);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    fn ids_above(&self, n: u64) -> Result<()> {
        let pool = self.pool.clone();
        let n = i64::try_from(n).map_err(pg_error)?;
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            client
                .execute(
                    "SELECT setval('journey_ids', greatest($1, (SELECT last_value FROM journey_ids)))",
                    &[&n],
                )
                .await
                .map_err(pg_error)?;
            Ok(())
        })?;
        // The ids reserved in memory may be below: take a new block.
        *self.ids.lock().unwrap_or_else(|e| e.into_inner()) = (0, 0);
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await.map_err(pg_error)?;
            let row = client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await
                .map_err(pg_error)?;
            Ok(row.get::<_, i64>(0) as u64)
        })
        .unwrap_or(0)
    }
}

/// Puts rows into a table (replacing the rows of the same keys): one statement.
async fn upsert(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &Table,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<()> {
    insert_rows(tx, table, rows, true).await.map(|_| ())
}

/// Inserts one row unless its key is there: whether it did.
async fn insert_if_absent(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &Table,
    key: &[u8],
    value: &[u8],
) -> Result<bool> {
    Ok(insert_rows(tx, table, vec![(key.to_vec(), value.to_vec())], false).await? == 1)
}

/// Inserts rows in one statement, the typed columns made from each row; a row whose key is
/// there replaces it when `replace`, else is left out. The rows inserted or replaced.
async fn insert_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &Table,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
    replace: bool,
) -> Result<u64> {
    let typed: Vec<Option<Vec<Col>>> = rows.iter().map(|(k, v)| (table.typed)(k, v)).collect();
    let (keys, values): (Vec<Vec<u8>>, Vec<Vec<u8>>) = rows.into_iter().unzip();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(keys), Box::new(values)];
    for (i, (_, ty)) in table.columns.iter().enumerate() {
        params.push(column_array(
            *ty,
            typed.iter().map(|r| r.as_ref().map(|r| &r[i])),
        ));
    }
    let names: Vec<&str> = table.columns.iter().map(|(n, _)| *n).collect();
    let unnest: Vec<String> = ["$1::bytea[]".to_string(), "$2::bytea[]".to_string()]
        .into_iter()
        .chain(
            table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| format!("${}::{}[]", i + 3, ty.sql())),
        )
        .collect();
    let on_conflict = if replace {
        let updates: Vec<String> = std::iter::once("v = excluded.v".to_string())
            .chain(names.iter().map(|n| format!("{n} = excluded.{n}")))
            .collect();
        format!("DO UPDATE SET {}", updates.join(", "))
    } else {
        "DO NOTHING".to_string()
    };
    let sql = format!(
        "INSERT INTO {} (k, v, {}) SELECT * FROM unnest({}) ON CONFLICT (k) {on_conflict}",
        table.name,
        names.join(", "),
        unnest.join(", ")
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    // The text depends on the table only (the rows go as arrays): prepared once per
    // connection.
    let statement = tx.prepare_cached(&sql).await.map_err(pg_error)?;
    tx.execute(&statement, &refs).await.map_err(pg_error)
}

/// One typed column of many rows, as an array parameter.
/// PostgreSQL's text and JSONB hold no NUL character (U+0000), which an id or a property
/// may: the typed columns show it as U+FFFD (the key and the value, in bytea, keep it).
fn text_without_nul(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_owned()
    }
}

/// `text_without_nul` for every string and key of a JSON value.
fn json_without_nul(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = text_without_nul(s),
        Value::Array(items) => items.iter_mut().for_each(json_without_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (text_without_nul(&k), v))
                    .collect();
            }
            map.values_mut().for_each(json_without_nul);
        }
        _ => {}
    }
}

fn column_array<'a>(
    ty: ColType,
    cells: impl Iterator<Item = Option<&'a Col>>,
) -> Box<dyn ToSql + Sync + Send> {
    match ty {
        Text => Box::new(
            cells
                .map(|c| match c {
                    Some(Col::Text(v)) => v.as_deref().map(text_without_nul),
                    _ => None,
                })
                .collect::<Vec<Option<String>>>(),
        ),
        BigInt => Box::new(
            cells
                .map(|c| match c {
                    Some(Col::BigInt(v)) => *v,
                    _ => None,
                })
                .collect::<Vec<Option<i64>>>(),
        ),
        Time => Box::new(
            cells
                .map(|c| match c {
                    Some(Col::Time(v)) => *v,
                    _ => None,
                })
                .collect::<Vec<Option<DateTime<Utc>>>>(),
        ),
        Json => Box::new(
            cells
                .map(|c| match c {
                    Some(Col::Json(v)) => v.clone().map(|mut v| {
                        json_without_nul(&mut v);
                        v
                    }),
                    _ => None,
                })
                .collect::<Vec<Option<Value>>>(),
        ),
        Binary => Box::new(
            cells
                .map(|c| match c {
                    Some(Col::Bytes(v)) => v.clone(),
                    _ => None,
                })
                .collect::<Vec<Option<Vec<u8>>>>(),
        ),
    }
}
