//! Audiences as lists for tools: CSV (a header line, then one contact a line) or JSON lines.
//! `journey audience` prints them and the daemon serves them (`format=csv|jsonl`), from
//! the same `Recipient`s.

use super::Recipient;
use crate::runtime::fmt_time;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListFormat {
    /// A header line, then one contact a line.
    Csv,
    /// One JSON object a line.
    Jsonl,
}

impl ListFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ListFormat::Csv => "text/csv; charset=utf-8",
            ListFormat::Jsonl => "application/x-ndjson",
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn links(r: &Recipient) -> String {
    r.links
        .iter()
        .map(|(l, n)| format!("{l}:{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn render_audience(people: &[Recipient], format: ListFormat) -> String {
    let t = |v: Option<i64>| v.map(fmt_time).unwrap_or_default();
    let mut out = String::new();
    match format {
        ListFormat::Csv => {
            out += "contact,email,received,opens,clicks,links,first_opened,first_clicked\n";
            for r in people {
                out += &format!(
                    "{},{},{},{},{},{},{},{}\n",
                    csv_field(&r.contact),
                    csv_field(r.email.as_deref().unwrap_or("")),
                    r.received,
                    r.opens,
                    r.clicks,
                    csv_field(&links(r)),
                    t(r.first_opened),
                    t(r.first_clicked)
                );
            }
        }
        ListFormat::Jsonl => {
            for r in people {
                let v = serde_json::json!({
                    "contact": r.contact,
                    "email": r.email,
                    "received": r.received,
                    "opens": r.opens,
                    "clicks": r.clicks,
                    "links": r.links,
                    "first_opened": r.first_opened.map(fmt_time),
                    "first_clicked": r.first_clicked.map(fmt_time),
                });
                out += &v.to_string();
                out += "\n";
            }
        }
    }
    out
}
