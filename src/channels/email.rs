//! Email: a rendered message becomes MIME (multipart HTML + text, From / Reply-To / To,
//! Message-ID, List-Unsubscribe with RFC 8058 one-click), then goes out over SMTP with
//! lettre's pooled async transport, or, with no SMTP configured, into a Maildir.

use super::render::RenderedEmail;
use super::smtp::{SmtpError, SmtpPool};
use super::Attempt;
use crate::config::SmtpConfig;
use crate::engine::SendJob;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The sender of emails without `from` when the config names none either.
pub const DEFAULT_FROM: &str = "journey@localhost";

/// A message ready to go: the envelope and the bytes, the same on every attempt.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub envelope: lettre::address::Envelope,
    pub bytes: Vec<u8>,
    pub message_id: String,
}

/// Builds the MIME message of a rendered email.
/// Whether `to` is an address a message can be sent to (`a@example.com`, or
/// `Name <a@example.com>`).
pub fn check_address(to: &str) -> Result<(), String> {
    to.parse::<Mailbox>().map(|_| ()).map_err(|e| e.to_string())
}

pub fn build(
    r: &RenderedEmail,
    job: &SendJob,
    default_from: Option<&str>,
) -> Result<Outgoing, String> {
    let from_text = r.from.as_deref().or(default_from).unwrap_or(DEFAULT_FROM);
    let from: Mailbox = from_text
        .parse()
        .map_err(|e| format!("invalid From address '{from_text}': {e}"))?;
    let to: Mailbox =
        r.to.parse()
            .map_err(|e| format!("invalid To address '{}': {e}", r.to))?;
    let domain = from.email.domain().to_string();
    let message_id = format!(
        "<{}.journey@{domain}>",
        job.message_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '.'
            })
            .collect::<String>()
    );
    let mut b = Message::builder()
        .from(from)
        .to(to)
        .subject(r.subject.clone())
        .message_id(Some(message_id.clone()))
        .date_now()
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!("<{}>", r.unsubscribe_url),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".into(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Journey-Message-Id"),
            job.message_id.clone(),
        ));
    if let Some(rt) = &r.reply_to {
        let mbox: Mailbox = rt
            .parse()
            .map_err(|e| format!("invalid Reply-To address '{rt}': {e}"))?;
        b = b.reply_to(mbox);
    }
    let msg = match &r.html {
        Some(html) => b.multipart(MultiPart::alternative_plain_html(
            r.text.clone(),
            html.clone(),
        )),
        None => b.singlepart(SinglePart::plain(r.text.clone())),
    }
    .map_err(|e| format!("cannot build the email: {e}"))?;
    Ok(Outgoing {
        envelope: msg.envelope().clone(),
        bytes: msg.formatted(),
        message_id,
    })
}

/// Where emails go.
#[allow(clippy::large_enum_variant)] // one per dispatcher
pub enum Mailer {
    Smtp(SmtpPool),
    Maildir(Maildir),
}

impl Mailer {
    /// SMTP when configured, else the Maildir `data_dir/maildir`.
    pub fn new(
        smtp: Option<&SmtpConfig>,
        data_dir: &Path,
        concurrency: usize,
    ) -> Result<Mailer, String> {
        match smtp {
            Some(c) => {
                let pool = c.pool_size.map(|p| p as usize).unwrap_or(concurrency);
                SmtpPool::new(c, pool).map(Mailer::Smtp)
            }
            None => Maildir::open(&data_dir.join("maildir"))
                .map(Mailer::Maildir)
                .map_err(|e| format!("cannot create the Maildir: {e}")),
        }
    }

    pub async fn send(&self, out: &Outgoing, job: &SendJob) -> Attempt {
        match self {
            Mailer::Smtp(pool) => match pool.send(&out.envelope, &out.bytes).await {
                Ok(resp) => {
                    let mut props = serde_json::Map::new();
                    props.insert(
                        "smtp_response".into(),
                        format!(
                            "{} {}",
                            u16::from(resp.code()),
                            resp.message().collect::<Vec<_>>().join(" ")
                        )
                        .into(),
                    );
                    Attempt::Done(props)
                }
                Err(SmtpError::Smtp(e)) => classify(&e),
                Err(e @ SmtpError::Uncertain(_)) => Attempt::Uncertain(format!("SMTP {e}")),
                Err(e @ SmtpError::Client(_)) => Attempt::failed(format!("SMTP {e}")),
                Err(e) => Attempt::retry(format!("SMTP {e}")),
            },
            Mailer::Maildir(m) => {
                let m = m.clone();
                let name = m.file_name(job);
                let bytes = out.bytes.clone();
                match tokio::task::spawn_blocking(move || m.deliver(&name, &bytes)).await {
                    Ok(Ok(path)) => {
                        let mut props = serde_json::Map::new();
                        props.insert("maildir_file".into(), path.display().to_string().into());
                        Attempt::Done(props)
                    }
                    Ok(Err(e)) => Attempt::retry(format!("Maildir: {e}")),
                    Err(e) => Attempt::retry(format!("Maildir: {e}")),
                }
            }
        }
    }
}

/// SMTP errors: 4xx and lost connections are transient; 5xx about the recipient (550, 551,
/// 553, or enhanced codes 5.1.x / 5.2.x) is a bounce; other 5xx is a failure.
pub fn classify(e: &lettre::transport::smtp::Error) -> Attempt {
    let text = format!("SMTP {e}");
    match e.status() {
        Some(code) => {
            let n = u16::from(code);
            if (400..500).contains(&n) {
                Attempt::retry(text)
            } else if recipient_problem(n, &text) {
                Attempt::Bounced(text)
            } else {
                Attempt::failed(text)
            }
        }
        None if e.is_client() => Attempt::failed(text),
        // Network, connection, TLS, timeouts, garbled responses: try again.
        None => Attempt::retry(text),
    }
}

fn recipient_problem(code: u16, text: &str) -> bool {
    // An enhanced status code (RFC 3463) says what the problem is about.
    let enhanced = text
        .split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')')
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && parts[0] == "5"
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        });
    match enhanced {
        Some(w) => w.starts_with("5.1.") || w.starts_with("5.2."),
        None => matches!(code, 550 | 551 | 553),
    }
}

/// A Maildir (`tmp/`, `new/`, `cur/`): each email is written to `tmp/`, synced, and renamed
/// into `new/`, so a reader never sees half a message. The file name is made from the
/// message id, so delivering the same message again replaces it instead of adding a copy.
#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
    host: String,
}

impl Maildir {
    pub fn open(root: &Path) -> std::io::Result<Maildir> {
        for d in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
            .replace(['/', ':'], "_");
        Ok(Maildir {
            root: root.to_path_buf(),
            host,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `{seconds}.J{message id}.{host}`: unique per message, stable across retries.
    pub fn file_name(&self, job: &SendJob) -> String {
        let id: String = job
            .message_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '.'
                }
            })
            .collect();
        format!("{}.J{id}.{}", job.created_at.max(0) / 1000, self.host)
    }

    /// Writes the message with LF line endings: SMTP's CRLF is the wire form, and Maildir
    /// readers (mutt, notmuch, Dovecot) expect the local one and would show the CRs.
    pub fn deliver(&self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let tmp = self.root.join("tmp").join(name);
        let new = self.root.join("new").join(name);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&lf_line_endings(bytes))?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &new)?;
        Ok(new)
    }
}

/// CRLF → LF (a lone CR is kept: it is not a line ending).
pub fn lf_line_endings(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_problems_bounce_policy_ones_fail() {
        assert!(recipient_problem(
            550,
            "SMTP permanent error (550): Mailbox unavailable"
        ));
        assert!(recipient_problem(
            550,
            "SMTP permanent error (550): 5.1.1 no such user"
        ));
        assert!(!recipient_problem(
            550,
            "SMTP permanent error (550): 5.7.1 rejected as spam"
        ));
        assert!(!recipient_problem(
            554,
            "SMTP permanent error (554): Transaction failed"
        ));
        assert!(recipient_problem(
            552,
            "SMTP permanent error (552): 5.2.2 mailbox full"
        ));
    }
}
