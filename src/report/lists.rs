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

/// Rows as CSV through `csv::Writer`: every field that needs it is quoted (commas, quotes,
/// CR and LF alike).
pub fn to_csv<const N: usize>(
    header: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(header).expect("CSV into memory");
    for r in rows {
        w.write_record(&r).expect("CSV into memory");
    }
    String::from_utf8(w.into_inner().expect("CSV into memory")).expect("CSV of UTF-8 fields")
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
            out = to_csv(
                [
                    "contact",
                    "email",
                    "received",
                    "opens",
                    "clicks",
                    "links",
                    "first_opened",
                    "first_clicked",
                ],
                people.iter().map(|r| {
                    [
                        r.contact.clone(),
                        r.email.clone().unwrap_or_default(),
                        r.received.to_string(),
                        r.opens.to_string(),
                        r.clicks.to_string(),
                        links(r),
                        t(r.first_opened),
                        t(r.first_clicked),
                    ]
                }),
            );
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

#[cfg(test)]
mod csv_tests {
    use super::*;

    #[test]
    fn csv_fields_with_separators_quotes_and_line_breaks_are_quoted() {
        let out = to_csv(
            ["a", "b"],
            [
                ["x,y".to_string(), "say \"hi\"".to_string()],
                ["line\rbreak".to_string(), "plain".to_string()],
            ],
        );
        assert_eq!(
            out,
            "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n\"line\rbreak\",plain\n"
        );
    }
}
