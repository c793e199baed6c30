//! The HTTP client of the commands that talk to a running daemon.

use serde_json::Value;

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// The daemon's address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "JOURNEY_SERVER")]
    pub server: String,
    /// An API token (`journey token create`; the admin token printed on first start).
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
                Err(CallError {
                    status: Some(code),
                    message,
                    body,
                })
            }
            Err(e) => Err(CallError {
                status: None,
                message: format!(
                    "cannot reach the daemon at {}: {e} (is `journey serve` running? --server)",
                    self.base
                ),
                body: None,
            }),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, CallError> {
        self.finish(self.request("GET", path).call()).map(|r| r.1)
    }

    /// POST/PUT with a JSON body; the status is returned too (207 for partial batches).
    pub fn send(&self, method: &str, path: &str, body: &Value) -> Result<(u16, Value), CallError> {
        self.finish(self.request(method, path).send_json(body.clone()))
    }
}
