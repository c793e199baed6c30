//! A pool of SMTP connections made with lettre's `AsyncSmtpConnection` over sockets we open
//! ourselves, with `TCP_NODELAY`: lettre writes a message and its final `.` in two writes,
//! and with Nagle's algorithm on (lettre's own transport cannot turn it off) the second
//! waits for the server's delayed ACK, 40 ms on Linux, for every email. With it off a
//! connection carries hundreds of emails a second instead of 25.
//!
//! Security `none`, `starttls` (required: a server that does not offer it is an error) and
//! `tls` (implicit TLS, rustls with the webpki roots); AUTH PLAIN or LOGIN when credentials
//! are configured. Idle connections are reused (checked with NOOP after a quiet second) and
//! dropped after a minute; any error drops the connection.
//!
//! Each stage has its own timeout (RFC 5321 §4.5.3.2): a timeout before the message is
//! written to its end is a transient failure; after it (the reply to the final `.` never
//! came) the outcome is uncertain, since the server may have accepted the message.

use crate::config::{SmtpConfig, SmtpSecurity};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Why a send did not go through.
#[derive(Debug)]
pub enum SmtpError {
    /// What the server said, or lettre's protocol and network errors.
    Smtp(lettre::transport::smtp::Error),
    /// Connecting (TCP, TLS) failed.
    Connect(String),
    /// No answer in time at a stage before the end of DATA: the server does not have the
    /// message.
    Timeout(&'static str),
    /// The message was written to the end (the final `.` included) and no reply came in
    /// time: the server may have accepted it.
    Uncertain(Duration),
    /// The message cannot be sent to this server (non-ASCII without SMTPUTF8/8BITMIME).
    Client(String),
}

impl std::fmt::Display for SmtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SmtpError::Smtp(e) => write!(f, "{e}"),
            SmtpError::Connect(e) => write!(f, "cannot connect: {e}"),
            SmtpError::Timeout(stage) => write!(f, "timed out {stage}"),
            SmtpError::Uncertain(d) => write!(
                f,
                "no reply to the end of DATA within {}s: the server may have accepted the message",
                d.as_secs()
            ),
            SmtpError::Client(e) => write!(f, "{e}"),
        }
    }
}

/// How long each stage of a session may take (RFC 5321 §4.5.3.2 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting: TCP, TLS, the greeting, EHLO, STARTTLS, AUTH (5 min: the greeting's).
    pub connect: Duration,
    /// MAIL FROM and each RCPT TO (5 min).
    pub command: Duration,
    /// DATA's 354 (2 min).
    pub data: Duration,
    /// Each block of the message written (3 min).
    pub block: Duration,
    /// The reply to the final `.` (10 min).
    pub final_reply: Duration,
}

impl Timeouts {
    /// RFC 5321's, or `timeout_seconds` for every stage before the end of DATA.
    pub fn new(stages: Option<u64>, final_reply: Option<u64>) -> Timeouts {
        let s = |rfc_minutes: u64| Duration::from_secs(stages.unwrap_or(rfc_minutes * 60).max(1));
        Timeouts {
            connect: s(5),
            command: s(5),
            data: s(2),
            block: s(3),
            final_reply: Duration::from_secs(final_reply.unwrap_or(600).max(1)),
        }
    }
}

/// The size of the blocks the message is written in (each bounded by `Timeouts::block`).
const BLOCK: usize = 64 * 1024;

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

pub struct SmtpPool {
    host: String,
    port: u16,
    security: SmtpSecurity,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeouts: Timeouts,
    max_idle: usize,
    idle: tokio::sync::Mutex<Vec<Idle>>,
    tls: Option<Arc<tokio_rustls::TlsConnector>>,
}

/// Idle connections older than this are closed instead of reused.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// Idle connections quieter than this are checked with NOOP before reuse.
const CHECK_AFTER: Duration = Duration::from_secs(1);

impl SmtpPool {
    pub fn new(c: &SmtpConfig, pool_size: usize) -> Result<SmtpPool, String> {
        let port = c.port.unwrap_or(match c.security {
            SmtpSecurity::None => 25,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
        });
        let tls = match c.security {
            SmtpSecurity::Tls => {
                let mut roots = tokio_rustls::rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
                    tokio_rustls::rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                Some(Arc::new(tokio_rustls::TlsConnector::from(Arc::new(config))))
            }
            _ => None,
        };
        let credentials = match (&c.username, &c.password) {
            (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.clone())),
            (Some(_), None) | (None, Some(_)) => {
                return Err("email.smtp: give both username and password, or neither".into())
            }
            _ => None,
        };
        Ok(SmtpPool {
            host: c.host.clone(),
            port,
            security: c.security,
            credentials,
            hello: ClientId::default(),
            timeouts: Timeouts::new(c.timeout_seconds, c.final_reply_timeout_seconds),
            max_idle: pool_size.max(1),
            idle: tokio::sync::Mutex::new(Vec::new()),
            tls,
        })
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| SmtpError::Connect(format!("{}:{}: {e}", self.host, self.port)))?;
        tcp.set_nodelay(true)
            .map_err(|e| SmtpError::Connect(e.to_string()))?;
        let stream: Box<dyn AsyncTokioStream> = match &self.tls {
            Some(connector) => {
                let name = tokio_rustls::rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| SmtpError::Connect(format!("TLS name {}: {e}", self.host)))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| SmtpError::Connect(format!("TLS: {e}")))?;
                Box::new(TlsStream(tls))
            }
            None => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(SmtpError::Smtp)?;
        if self.security == SmtpSecurity::Starttls {
            let params = TlsParameters::new(self.host.clone()).map_err(SmtpError::Smtp)?;
            conn.starttls(params, &self.hello)
                .await
                .map_err(SmtpError::Smtp)?;
        }
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c)
                .await
                .map_err(SmtpError::Smtp)?;
        }
        Ok(conn)
    }

    /// A connection: an idle one that still answers, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        loop {
            let idle = self.idle.lock().await.pop();
            let Some(mut i) = idle else { break };
            if i.since.elapsed() > IDLE_LIMIT {
                i.conn.abort().await;
                continue;
            }
            if i.since.elapsed() > CHECK_AFTER && !i.conn.test_connected().await {
                i.conn.abort().await;
                continue;
            }
            return Ok(i.conn);
        }
        self.connect().await
    }

    /// Sends one message, each stage bounded by its timeout. A connection that failed or
    /// timed out is dropped (a silent server is not sent QUIT: it would not answer that
    /// either).
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<Response, SmtpError> {
        let mut conn = match tokio::time::timeout(self.timeouts.connect, self.checkout()).await {
            Ok(c) => c?,
            Err(_) => return Err(SmtpError::Timeout("connecting")),
        };
        match self.transaction(&mut conn, envelope, email).await {
            Ok(resp) => {
                self.checkin(conn).await;
                Ok(resp)
            }
            Err(e @ SmtpError::Smtp(_)) | Err(e @ SmtpError::Client(_)) => {
                // The server answered: say goodbye, briefly.
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.abort()).await;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// MAIL, RCPT, DATA and the message, each stage under its own timeout; lettre's
    /// `send` would bound them only together, and could not tell a timeout before the
    /// server had the message from one after it.
    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        email: &[u8],
    ) -> Result<Response, SmtpError> {
        let t = self.timeouts;
        async fn stage<
            F: std::future::Future<Output = Result<Response, lettre::transport::smtp::Error>>,
        >(
            d: Duration,
            what: &'static str,
            f: F,
        ) -> Result<Response, SmtpError> {
            match tokio::time::timeout(d, f).await {
                Ok(r) => r.map_err(SmtpError::Smtp),
                Err(_) => Err(SmtpError::Timeout(what)),
            }
        }
        // As lettre's `send`: SMTPUTF8 for non-ASCII addresses, 8BITMIME for a non-ASCII body.
        let mut options = Vec::new();
        let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
        let non_ascii =
            envelope.from().is_some_and(|a| !ascii(a)) || envelope.to().iter().any(|a| !ascii(a));
        if non_ascii {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(SmtpError::Client(
                    "the envelope has non-ASCII addresses and the server does not support SMTPUTF8"
                        .into(),
                ));
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !email.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err(SmtpError::Client(
                    "the message is not ASCII and the server does not support 8BITMIME".into(),
                ));
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        stage(
            t.command,
            "at MAIL FROM",
            conn.command(Mail::new(envelope.from().cloned(), options)),
        )
        .await?;
        for to in envelope.to() {
            stage(
                t.command,
                "at RCPT TO",
                conn.command(Rcpt::new(to.clone(), vec![])),
            )
            .await?;
        }
        stage(t.data, "at DATA", conn.command(Data)).await?;
        // The message in blocks: the iterator notes each block as lettre asks for the next
        // (the one before is written and flushed by then), and that all are written when it
        // asks past the last; only the final `.` (5 bytes) and the reply remain then.
        let progress = Arc::new(std::sync::Mutex::new(Progress {
            last: tokio::time::Instant::now(),
            written: false,
        }));
        let moved = Arc::new(tokio::sync::Notify::new());
        let blocks = Blocks {
            email,
            at: 0,
            progress: progress.clone(),
            moved: moved.clone(),
        };
        let send = conn.message_iter(blocks);
        tokio::pin!(send);
        loop {
            let deadline = {
                let p = progress.lock().unwrap_or_else(|e| e.into_inner());
                p.last + if p.written { t.final_reply } else { t.block }
            };
            tokio::select! {
                r = &mut send => return r.map_err(SmtpError::Smtp),
                // A block went out, or the last: the deadline moves.
                _ = moved.notified() => continue,
                _ = tokio::time::sleep_until(deadline) => {
                    let p = progress.lock().unwrap_or_else(|e| e.into_inner());
                    let wait = if p.written { t.final_reply } else { t.block };
                    if tokio::time::Instant::now() < p.last + wait {
                        // A block was written since: wait on.
                        continue;
                    }
                    return Err(if p.written {
                        SmtpError::Uncertain(t.final_reply)
                    } else {
                        SmtpError::Timeout("writing the message")
                    });
                }
            }
        }
    }

    async fn checkin(&self, mut conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            conn.abort().await;
            return;
        }
        let mut idle = self.idle.lock().await;
        if idle.len() < self.max_idle {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        } else {
            drop(idle);
            let _ = conn.quit().await;
        }
    }
}

struct Progress {
    /// When the last block was handed over (or DATA answered).
    last: tokio::time::Instant,
    /// Every block is written; the final `.` follows at once.
    written: bool,
}

/// The message in blocks of `BLOCK` bytes, noting progress as lettre takes them.
struct Blocks<'a> {
    email: &'a [u8],
    at: usize,
    progress: Arc<std::sync::Mutex<Progress>>,
    moved: Arc<tokio::sync::Notify>,
}

impl<'a> Iterator for Blocks<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        p.last = tokio::time::Instant::now();
        self.moved.notify_one();
        if self.at >= self.email.len() {
            p.written = true;
            return None;
        }
        let end = (self.at + BLOCK).min(self.email.len());
        let block = &self.email[self.at..end];
        self.at = end;
        Some(block)
    }
}

/// Implicit TLS under lettre's connection.
#[derive(Debug)]
struct TlsStream(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
