//! A real SMTP server on 127.0.0.1 for tests and the email benchmark: the `mailin` crate's
//! SMTP state machine behind a tokio accept loop. It keeps every accepted message and can be
//! told to misbehave for the next transactions: answer 4xx/5xx at MAIL, RCPT or after
//! DATA, or drop the connection in the middle of the DATA.

#![allow(dead_code)]

use mailin::{Action, Handler, Response, SessionBuilder};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

/// What the server does to one transaction (one MAIL FROM).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    AtMail(u16, String),
    AtRcpt(u16, String),
    /// After the whole message was received: it is not kept.
    AtDataEnd(u16, String),
    /// Closes the connection after two lines of the message.
    DisconnectInData,
    /// Keeps the whole message (it counts as received) but never answers the end of DATA:
    /// a server that takes longer than the client waits.
    StallAtDataEnd,
}

#[derive(Default)]
pub struct State {
    pub received: Mutex<Vec<Received>>,
    pub faults: Mutex<VecDeque<Fault>>,
    /// Transactions begun (MAIL FROM commands), faulty or not.
    pub transactions: AtomicUsize,
    pub connections: AtomicUsize,
    /// Required `AUTH PLAIN` credentials, if any.
    pub credentials: Mutex<Option<(String, String)>>,
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    pub state: Arc<State>,
}

impl SmtpServer {
    /// Starts on a free port of 127.0.0.1 on the given runtime.
    pub fn start(rt: &tokio::runtime::Runtime) -> SmtpServer {
        let state = Arc::new(State::default());
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let st = state.clone();
        rt.spawn(async move {
            loop {
                let Ok((sock, peer)) = listener.accept().await else {
                    return;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(sock, peer.ip(), st.clone()));
            }
        });
        SmtpServer { addr, state }
    }

    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.faults.lock().unwrap().extend(faults);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    pub fn require_auth(&self, user: &str, password: &str) {
        *self.state.credentials.lock().unwrap() = Some((user.into(), password.into()));
    }
}

struct Conn {
    state: Arc<State>,
    fault: Option<Fault>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    /// Set when the current DATA must be cut.
    cut: Arc<std::sync::atomic::AtomicBool>,
    /// Set when the end of the current DATA is not to be answered.
    stall: Arc<std::sync::atomic::AtomicBool>,
}

impl Handler for Conn {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.state.transactions.fetch_add(1, Ordering::SeqCst);
        self.fault = self.state.faults.lock().unwrap().pop_front();
        self.from = from.to_string();
        self.to.clear();
        self.data.clear();
        match &self.fault {
            Some(Fault::AtMail(code, text)) => Response::custom(*code, text.clone()),
            _ => mailin::response::OK,
        }
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if let Some(Fault::AtRcpt(code, text)) = &self.fault {
            return Response::custom(*code, text.clone());
        }
        self.to.push(to.to_string());
        mailin::response::OK
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        if self.fault == Some(Fault::DisconnectInData) {
            self.cut.store(true, Ordering::SeqCst);
        }
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(Fault::AtDataEnd(code, text)) = &self.fault {
            return Response::custom(*code, text.clone());
        }
        if self.fault == Some(Fault::StallAtDataEnd) {
            self.stall.store(true, Ordering::SeqCst);
        }
        self.state.received.lock().unwrap().push(Received {
            from: self.from.clone(),
            to: self.to.clone(),
            data: std::mem::take(&mut self.data),
        });
        mailin::response::OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        match &*self.state.credentials.lock().unwrap() {
            Some((u, p)) if u == user && p == password => mailin::response::AUTH_OK,
            _ => mailin::response::INVALID_CREDENTIALS,
        }
    }
}

async fn serve(sock: tokio::net::TcpStream, ip: IpAddr, state: Arc<State>) {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let mut builder = SessionBuilder::new("test.smtp");
    if state.credentials.lock().unwrap().is_some() {
        builder
            .enable_auth(mailin::AuthMechanism::Plain)
            .insecure_enable_plaintext_auth();
    }
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stall = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handler = Conn {
        stall: stall.clone(),
        state: state.clone(),
        fault: None,
        from: String::new(),
        to: Vec::new(),
        data: Vec::new(),
        cut: cut.clone(),
    };
    let mut session = builder.build(ip, handler);
    let mut out = Vec::new();
    session.greeting().write_to(&mut out).unwrap();
    if w.write_all(&out).await.is_err() {
        return;
    }
    let mut line = Vec::new();
    let mut data_lines = 0;
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if cut.load(Ordering::SeqCst) {
            data_lines += 1;
            if data_lines >= 2 {
                // Gone in the middle of the message: nothing is kept.
                return;
            }
        }
        // QUIT is answered here: mailin's state machine stays in the data state after a
        // refused message and would not answer it.
        if !cut.load(Ordering::SeqCst) && line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"QUIT")
        {
            let _ = w.write_all(b"221 Bye\r\n").await;
            let _ = w.shutdown().await;
            return;
        }
        let res = session.process(&line);
        if std::env::var_os("SMTP_TRACE").is_some() && !cut.load(Ordering::SeqCst) {
            eprintln!("C: {}S: {:?}", String::from_utf8_lossy(&line), res);
        }
        if stall.load(Ordering::SeqCst) {
            // Never answers; waits for the client to give up and close.
            let mut rest = Vec::new();
            while matches!(r.read_until(b'\n', &mut rest).await, Ok(n) if n > 0) {
                rest.clear();
            }
            return;
        }
        if res.action == Action::NoReply {
            continue;
        }
        out.clear();
        res.write_to(&mut out).unwrap();
        if w.write_all(&out).await.is_err() {
            return;
        }
        if res.action == Action::Close {
            let _ = w.shutdown().await;
            return;
        }
    }
}
