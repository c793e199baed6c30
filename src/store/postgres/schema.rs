//! The tables people read: one per kind of key, each with the engine's key and value and
//! typed columns made from them, and the numbered migrations that create and upgrade them.

use crate::engine::{Contact, SendJob};
use crate::store::codec;
use crate::store::keys::{time_from_key, unescape_id};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

/// The schema this code creates and reads. Each number is a migration below.
pub const SCHEMA_VERSION: i32 = 6;

/// A typed column: its SQL name and type, and how a row's value for it is made.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ColType {
    Text,
    BigInt,
    Time,
    Json,
    Binary,
}

impl ColType {
    pub(super) fn sql(self) -> &'static str {
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
pub(super) enum Col {
    Text(Option<String>),
    BigInt(Option<i64>),
    Time(Option<DateTime<Utc>>),
    Json(Option<Value>),
    Bytes(Option<Vec<u8>>),
}

/// A table of one key kind.
pub(super) struct Table {
    pub(super) prefix: u8,
    pub(super) name: &'static str,
    pub(super) columns: &'static [(&'static str, ColType)],
    /// Secondary indexes, as column lists.
    pub(super) indexes: &'static [&'static str],
    /// The typed columns of a row, from its key and value: None (all NULL) when the value
    /// does not decode, a None in a column where it cannot tell.
    pub(super) typed: fn(&[u8], &[u8]) -> Option<Vec<Col>>,
}

pub(super) use ColType::*;

pub(super) const TABLES: &[Table] = &[
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
            let r = crate::store::decode_timers(k, v).ok()?;
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
pub(super) const LATER_TABLES: &[(i32, Table)] = &[
    (
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
    ),
    (
        6,
        Table {
            prefix: b'x',
            name: "journey_inbox",
            columns: &[("part", BigInt), ("input", Json)],
            indexes: &[],
            typed: |k, v| {
                let part = k.get(1..3).map(|b| u16::from_be_bytes([b[0], b[1]]) as i64);
                Some(vec![
                    Col::BigInt(part),
                    Col::Json(serde_json::from_slice(v).ok()),
                ])
            },
        },
    ),
];

/// Every table, the first schema's and the later ones.
pub(super) fn all_tables() -> impl Iterator<Item = &'static Table> {
    TABLES.iter().chain(LATER_TABLES.iter().map(|(_, t)| t))
}

/// The text after a key's kind byte (a name, a code, a hash), as a column.
pub(super) fn key_text(k: &[u8]) -> Col {
    Col::Text(Some(String::from_utf8_lossy(&k[1..]).into()))
}

/// A time stored as a key's 8 bytes (`time_key`), as a column.
pub(super) fn key_time(b: &[u8]) -> Col {
    Col::Time((b.len() == 8).then(|| time(time_from_key(b))).flatten())
}

pub(super) fn time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

pub(super) fn table_of(prefix: u8) -> Option<&'static Table> {
    all_tables().find(|t| t.prefix == prefix)
}

/// The migrations, in order: migration n brings the schema from n − 1 to n.
pub(super) fn migrations() -> Vec<String> {
    let mut v1 = String::new();
    for t in TABLES {
        v1.push_str(&create_table(t));
    }
    v1.push_str(&format!(
        "CREATE SEQUENCE journey_ids INCREMENT BY {} START WITH 1;\n",
        super::ID_BLOCK
    ));
    // The one daemon's lease (`claim_exclusive`).
    v1.push_str(
        "CREATE TABLE journey_lease (name text PRIMARY KEY, owner text NOT NULL, expires timestamptz NOT NULL);\n",
    );
    let mut all = vec![
        v1,
        String::new(),
        // The lease's epoch: each takeover raises it, and every commit checks it (fencing).
        "ALTER TABLE journey_lease ADD COLUMN epoch bigint NOT NULL DEFAULT 0;\n".into(),
        // The daemons working on the database (`announce`).
        "CREATE TABLE journey_daemons (owner text PRIMARY KEY, address text NOT NULL, role text NOT NULL, started timestamptz NOT NULL DEFAULT now(), seen timestamptz NOT NULL DEFAULT now());\n".into(),
        // A batch reads its contacts' instances by contact (`prefetch`).
        "CREATE INDEX instances_by_contact ON instances (contact);\n".into(),
        // A lease per partition (`lease`; its rows are made once, by `migrate`) in place of
        // the one daemon's; the inbox is a table of `LATER_TABLES`.
        "DROP TABLE journey_lease;\nCREATE TABLE journey_partitions (part integer PRIMARY KEY, owner text NOT NULL DEFAULT '', epoch bigint NOT NULL DEFAULT 0, expires timestamptz NOT NULL DEFAULT '-infinity');\n".into(),
    ];
    for (version, t) in LATER_TABLES {
        all[*version as usize - 1].push_str(&create_table(t));
    }
    all
}

/// A table's DDL: the key, the value, the typed columns and their indexes.
pub(super) fn create_table(t: &Table) -> String {
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
