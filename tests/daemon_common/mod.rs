//! Helpers for the daemon tests: the real `journey serve` as a child process on 127.0.0.1,
//! talked to over HTTP. Waits poll the API with a deadline; nothing sleeps for time.

#![allow(dead_code)]

use journey::channels::tracking;
use journey::engine::{Claims, TokenKind};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_journey");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

pub struct Daemon {
    pub dir: PathBuf,
    pub child: Option<Child>,
    pub base: String,
    pub admin: String,
    pub agent: ureq::Agent,
    stderr_log: PathBuf,
    /// With `JOURNEY_TEST_POSTGRES=1`: the PostgreSQL server this daemon's store is in,
    /// stopped with it.
    pub postgres: Option<journey::bench::pg_server::PgServer>,
}

/// The welcome journey of `journeys/`, copied with its templates, without the DND policy and
/// quiet hours (they hold sends for hours; the tests run on the wall clock).
pub fn copy_welcome(to: &Path) {
    let journeys = to.join("journeys");
    std::fs::create_dir_all(journeys.join("templates")).unwrap();
    let src = std::fs::read_to_string(Path::new(REPO).join("journeys/welcome.journey")).unwrap();
    let changed = src
        .replace("policy maison_daily", "policy none")
        .replace("  quiet 21:00..08:00", "  # quiet hours off in this test");
    assert_ne!(src, changed);
    assert!(
        !changed.contains("quiet 21"),
        "quiet hours still in the copy"
    );
    std::fs::write(journeys.join("welcome.journey"), changed).unwrap();
    // The welcome journey's topic (`newsletter`) is defined there.
    std::fs::copy(
        Path::new(REPO).join("journeys/topics.journey"),
        journeys.join("topics.journey"),
    )
    .unwrap();
    std::fs::create_dir_all(journeys.join("templates/partials")).unwrap();
    for t in ["welcome.html", "promo.html", "partials/footer.html"] {
        std::fs::copy(
            Path::new(REPO).join("journeys/templates").join(t),
            journeys.join("templates").join(t),
        )
        .unwrap();
    }
}

impl Daemon {
    /// A config in `dir`: data in dir/data, journeys from dir/journeys, the API on `listen`;
    /// `extra` follows the `server:` block (indented: more server keys; not: top-level keys).
    pub fn config(dir: &Path, listen: &str, extra: &str) -> PathBuf {
        let path = dir.join("journey.yaml");
        // A config rewritten for a restart keeps the database the daemon ran on
        // (JOURNEY_TEST_POSTGRES=1 puts it first in the file).
        let kept: String = std::fs::read_to_string(&path)
            .ok()
            .filter(|old| old.starts_with("store:\n"))
            .map(|old| old.lines().take(2).map(|l| format!("{l}\n")).collect())
            .unwrap_or_default();

        std::fs::write(
            &path,
            format!(
                "{kept}data_dir: {}\njourneys_dir: {}\nserver:\n  listen: {listen}\n{extra}",
                dir.join("data").display(),
                dir.join("journeys").display()
            ),
        )
        .unwrap();
        path
    }

    pub fn start(dir: &Path) -> Daemon {
        Self::start_with(dir, "")
    }

    /// On a free port.
    pub fn start_with(dir: &Path, server_extra: &str) -> Daemon {
        Self::start_on(dir, "127.0.0.1:0", server_extra)
    }

    /// On the given address (a fixed port survives restarts, and so do links to it).
    pub fn start_on(dir: &Path, listen: &str, extra: &str) -> Daemon {
        // JOURNEY_TEST_POSTGRES=1 runs the suite's daemons on PostgreSQL, each on a server
        // of its own.
        let postgres = (std::env::var("JOURNEY_TEST_POSTGRES").as_deref() == Ok("1")
            && !extra.contains("store:"))
        .then(|| {
            journey::bench::pg_server::PgServer::start(true).unwrap_or_else(|e| {
                panic!("JOURNEY_TEST_POSTGRES=1, but PostgreSQL did not start: {e}")
            })
        });
        let mut d = Daemon {
            dir: dir.to_path_buf(),
            child: None,
            base: String::new(),
            admin: String::new(),
            agent: agent(),
            stderr_log: dir.join("daemon.stderr"),
            postgres,
        };
        let path = Self::config(dir, listen, extra);
        if let Some(pg) = &d.postgres {
            // First in the file: the extras may continue `server:`.
            let text = std::fs::read_to_string(&path).unwrap();
            let url = pg.fresh_database().unwrap();
            std::fs::write(&path, format!("store:\n  url: {url}\n{text}")).unwrap();
        }
        d.spawn();
        d
    }

    /// Starts (or restarts) the process and reads its address from its `listening` log
    /// line (stderr, appended to `daemon.stderr`), and the admin token from the file the
    /// first start writes (`data/admin-token`). A restart gets a new HTTP agent: pooled
    /// connections to the killed process would fail a request on the same port.
    pub fn spawn(&mut self) {
        self.agent = agent();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .unwrap();
        // This start's lines are those after what earlier starts logged.
        let from = log.metadata().unwrap().len() as usize;
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(self.dir.join("journey.yaml"))
            .env("JOURNEY_LOG", "info")
            .env_remove("JOURNEY_LOG_FORMAT")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("journey serve starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        self.base = loop {
            let text = std::fs::read(&self.stderr_log).unwrap_or_default();
            let text = String::from_utf8_lossy(&text[from.min(text.len())..]).into_owned();
            // Whole lines only: the last one may still be being written.
            let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            if let Some(url) = whole.lines().find_map(journey::cli::serve::listening_url) {
                break url;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the daemon exited ({status}) before listening:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        if self.admin.is_empty() {
            let path = self.data().join("admin-token");
            self.admin = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("no admin token in {}: {e}", path.display()))
                .trim()
                .to_string();
            assert!(
                !self.stderr().contains(&self.admin),
                "the admin token is in the log"
            );
        }
        self.child = Some(child);
    }

    /// SIGKILL: no chance to flush anything not already durable.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// (status, JSON body or Null) of a request with a token.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut r = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.set("authorization", &format!("Bearer {t}"));
        }
        let res = match body {
            Some(b) => r.send_json(b.clone()),
            None => r.call(),
        };
        match res {
            Ok(resp) => (resp.status(), resp.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(s, resp)) => (s, resp.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    pub fn admin_call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call(method, path, Some(&self.admin.clone()), body)
    }

    /// Gives the contact an email address (`{id}@example.com`), so the channels can send to it.
    pub fn put_email(&self, id: &str) {
        let (s, v) = self.admin_call(
            "PUT",
            &format!("/v1/contacts/{id}"),
            Some(&json!({"email": format!("{id}@example.com")})),
        );
        assert_eq!(s, 200, "{v}");
    }

    /// The welcome journey's entry event for a contact with an email address.
    pub fn sign_up(&self, id: &str) -> (u16, Value) {
        self.put_email(id);
        self.post_events(json!({"contact": id, "type": "form_compiled", "properties": {"formName": "addUser"}, "context": "web"}))
    }

    pub fn post_events(&self, body: Value) -> (u16, Value) {
        self.admin_call("POST", "/v1/events", Some(&body))
    }

    pub fn contact(&self, id: &str) -> Value {
        let (s, v) = self.admin_call("GET", &format!("/v1/contacts/{id}"), None);
        if s == 404 {
            return Value::Null;
        }
        assert_eq!(s, 200, "{v}");
        v
    }

    /// What the channels delivered to a contact: its `message.sent` events (contact, journey,
    /// message, message_id, channel), newest first, as the contacts API shows them.
    pub fn deliveries(&self, contact: &str) -> Vec<Value> {
        let c = self.contact(contact);
        c["recent_events"]
            .as_array()
            .map(|es| {
                es.iter()
                    .filter(|e| e["type"] == "message.sent")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn delivery(&self, contact: &str, message: &str) -> Option<Value> {
        self.deliveries(contact)
            .into_iter()
            .find(|d| d["message"] == json!(message))
    }

    /// A GET that is not followed: (status, `Location`).
    pub fn redirect(&self, path: &str) -> (u16, Option<String>) {
        match self.agent.get(&format!("{}{path}", self.base)).call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                (r.status(), r.header("location").map(String::from))
            }
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// The partitions this daemon holds, by `/v1/cluster` (several daemons on one
    /// PostgreSQL); None when it does not answer 200.
    pub fn held_partitions(&self) -> Option<Vec<u16>> {
        let (s, v) = self.admin_call("GET", "/v1/cluster", None);
        (s == 200).then(|| {
            v["lease"]["held"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_u64().map(|p| p as u16))
                .collect()
        })
    }

    /// `GET /metrics`: the Prometheus text.
    pub fn metrics(&self) -> String {
        self.agent
            .get(&format!("{}/metrics", self.base))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    }

    /// The key the daemon signs tracking tokens with (generated on first start, kept in the
    /// data directory).
    pub fn secret(&self) -> Vec<u8> {
        std::fs::read_to_string(self.data().join("secret"))
            .expect("the daemon keeps its generated secret in the data dir")
            .trim()
            .as_bytes()
            .to_vec()
    }

    /// A tracking token for one of the daemon's deliveries (a `message.sent` event as
    /// `deliveries` gives it), signed as the links of its emails are.
    pub fn sign(
        &self,
        delivery: &Value,
        kind: TokenKind,
        link: Option<&str>,
        url: Option<&str>,
    ) -> String {
        tracking::sign(
            &self.secret(),
            &Claims {
                kind,
                contact: delivery["contact"].as_str().unwrap().into(),
                message_id: delivery["message_id"].as_str().unwrap().into(),
                journey: delivery["journey"].as_str().unwrap().into(),
                message: delivery["message"].as_str().unwrap().into(),
                link: link.map(String::from),
                url: url.map(String::from),
            },
        )
    }

    /// Runs the CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env("JOURNEY_SERVER", &self.base)
            .env("JOURNEY_TOKEN", &self.admin)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }
}

/// An HTTP client that does not follow redirects (the tests look at the 302s).
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(30))
        .build()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` until it returns Some, or panics with `what` after the deadline.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A contact's recent events of one type, as `Daemon::contact` shows them.
pub fn events_of_type(contact: &Value, kind: &str) -> Vec<Value> {
    contact["recent_events"]
        .as_array()
        .map(|es| es.iter().filter(|e| e["type"] == kind).cloned().collect())
        .unwrap_or_default()
}

/// The current step of a contact in a journey, from the API.
pub fn step_of(contact: &Value, journey: &str) -> Option<String> {
    contact["journeys"]
        .as_array()?
        .iter()
        .rev()
        .find(|j| j["journey"] == json!(journey))
        .and_then(|j| j["step"].as_str().map(String::from))
}

/// True (and says why) when the suite runs on PostgreSQL (JOURNEY_TEST_POSTGRES=1) and the
/// calling test looks at the sled store itself.
pub fn sled_only(why: &str) -> bool {
    let on_postgres = std::env::var("JOURNEY_TEST_POSTGRES").as_deref() == Ok("1");
    if on_postgres {
        eprintln!("skipped on PostgreSQL: {why}");
    }
    on_postgres
}
