//! The HTTP client of the commands that talk to a running daemon.

use serde_json::Value;

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// The daemon's address.
    // `hide_env_values`: clap would print `[env: JOURNEY_SERVER=]` when the variable is unset.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080",
        env = "JOURNEY_SERVER",
        hide_env_values = true
    )]
    pub server: String,
    /// An API token (`journey token create`; the daemon's first admin token is in
    /// DATA_DIR/admin-token).
    #[arg(long, env = "JOURNEY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// A failed call, with the server's reason when it gave one.
#[derive(Debug)]
pub struct CallError {
    pub status: Option<u16>,
    pub message: String,
    pub body: Option<Value>,
    /// Why no answer came (the connection was refused…), when none did.
    pub cause: Option<String>,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} ({s})", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl Client {
    pub fn new(args: &ServerArgs) -> Client {
        Client {
            base: args.server.trim_end_matches('/').to_string(),
            token: args.token.clone(),
            agent: ureq::AgentBuilder::new()
                .timeout(std::time::Duration::from_secs(120))
                .build(),
        }
    }

    /// The daemon's address, as given.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let r = self.agent.request(method, &format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.set("authorization", &format!("Bearer {t}")),
            None => r,
        }
    }

    fn finish(&self, r: Result<ureq::Response, ureq::Error>) -> Result<(u16, Value), CallError> {
        match r {
            Ok(resp) => {
                let status = resp.status();
                let v = resp.into_json::<Value>().unwrap_or(Value::Null);
                Ok((status, v))
            }
            Err(ureq::Error::Status(code, resp)) => {
                let body = resp.into_json::<Value>().ok();
                let message = body
                    .as_ref()
                    .and_then(|b| b.get("message"))
                    .and_then(Value::as_str)
                    .map(String::from)
                    .unwrap_or_else(|| "the server refused the request".into());
                let message = match (code, &self.token) {
                    (401, None) => "no token given: pass --token or set JOURNEY_TOKEN (the \
                        daemon's first admin token is in its data directory's admin-token file; \
                        make others with `journey token create`)"
                        .to_string(),
                    (401, Some(_)) => {
                        format!("{message}: the token given (--token or JOURNEY_TOKEN) was refused")
                    }
                    _ => message,
                };
                Err(CallError {
                    status: Some(code),
                    message,
                    body,
                    cause: None,
                })
            }
            Err(e) => Err(CallError {
                status: None,
                message: format!(
                    "cannot reach the daemon at {}: {e} (is `journey serve` running? --server)",
                    self.base
                ),
                body: None,
                cause: Some(match &e {
                    ureq::Error::Transport(t) => match t.message() {
                        Some(m) => format!("{}: {m}", t.kind()),
                        None => t.kind().to_string(),
                    },
                    other => other.to_string(),
                }),
            }),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, CallError> {
        self.get_query(path, &[])
    }

    /// GET with query parameters (encoded here).
    pub fn get_query(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, CallError> {
        let mut r = self.request("GET", path);
        for (k, v) in query {
            r = r.query(k, v);
        }
        self.finish(r.call()).map(|r| r.1)
    }

    pub fn delete(&self, path: &str) -> Result<Value, CallError> {
        self.finish(self.request("DELETE", path).call())
            .map(|r| r.1)
    }

    /// POST/PUT with a JSON body; the status is returned too (207 for partial batches).
    pub fn send(&self, method: &str, path: &str, body: &Value) -> Result<(u16, Value), CallError> {
        self.finish(self.request(method, path).send_json(body.clone()))
    }
}

/// A name as one segment of a URL path: anything but letters, digits and `-._~` escaped.
pub fn path_segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}
