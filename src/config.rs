//! `journey.yaml`: where the daemon keeps its data, where journeys come from, how it is
//! reached, and how each channel delivers. Every key has a default, so no file at all runs
//! on the embedded defaults. `${NAME}` in a value is replaced by the environment variable
//! NAME (secrets stay out of files); a missing variable is an error naming it and the key.
//! Substitution happens in the parsed values, never in the text: a comment may mention
//! `${NAME}`, and a variable holding a newline or `key: value` stays one string.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The sled store, the Maildir and the JSON-lines outboxes live here.
    pub data_dir: PathBuf,
    /// The journeys loaded at start and on deploy.
    pub journeys_dir: PathBuf,
    /// The zone of contacts without a `timezone`, and of schedules without one.
    pub timezone: String,
    /// The address tracked links, the open pixel and unsubscribe links point to. Absent
    /// from a file: `http://{server.listen}`, and `journey serve` puts the port it bound
    /// in place of port 0 (see [`Config::listening_on`]).
    #[serde(default)]
    pub public_url: String,
    /// The key that signs tracking and unsubscribe tokens. When absent, one is generated
    /// on first start and kept in `data_dir/secret`.
    pub secret: Option<String>,
    pub server: ServerConfig,
    pub email: EmailConfig,
    pub sms: SmsConfig,
    pub push: PushConfig,
    pub webhook: WebhookConfig,
    pub retry: RetryConfig,
    pub store: StoreConfig,
}

/// Where the engine's state lives: the embedded sled store in `data_dir/store` (the
/// default), or a PostgreSQL database (`JOURNEY_STORE_URL` overrides the file).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user@host:port/database`: the store in PostgreSQL, its schema created
    /// or upgraded at start. Absent: sled in `data_dir/store`.
    pub url: Option<String>,
    /// How many partitions a new database's schema gets (default 64): the unit several
    /// daemons share the contacts by. Fixed once the schema exists.
    pub partitions: Option<u16>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            journeys_dir: PathBuf::from("journeys"),
            timezone: "UTC".into(),
            public_url: "http://127.0.0.1:8080".into(),
            secret: None,
            server: ServerConfig::default(),
            email: EmailConfig::default(),
            sms: SmsConfig::default(),
            push: PushConfig::default(),
            webhook: WebhookConfig::default(),
            retry: RetryConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTP API and the tracking endpoints.
    pub listen: String,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Most events in one batch request (400 beyond).
    pub max_batch: usize,
    /// Longest string field accepted in an event or profile, in bytes.
    pub max_field_bytes: usize,
    /// The web console at `/` (sign in with a `read` or `admin` token); false turns it off.
    pub console: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 1024 * 1024,
            max_batch: 1000,
            max_field_bytes: 16 * 1024,
            console: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// The default sender, for emails without `from`.
    pub from: Option<String>,
    /// None: emails are written to the Maildir `data_dir/maildir`.
    pub smtp: Option<SmtpConfig>,
    /// Most emails sent at once (default 8).
    pub concurrency: Option<usize>,
    /// Most SMTP sends a second (default: no limit).
    pub rate_per_second: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    /// `none`, `starttls` (default) or `tls`.
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Idle connections kept open for reuse (default: `email.concurrency`).
    #[serde(default)]
    pub pool_size: Option<u32>,
    /// Seconds each stage before the end of DATA may take: connecting (greeting, EHLO,
    /// STARTTLS, AUTH), MAIL, each RCPT, DATA, and each 64 KiB of the message written.
    /// Default RFC 5321's (§4.5.3.2): 5 minutes, 2 for DATA, 3 a block. Past it the attempt
    /// is a transient failure.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Seconds to wait for the reply to the final `.`, default 600 (RFC 5321's 10 minutes).
    /// Past it the outcome is uncertain (`message.uncertain`): the server has the message and
    /// may have accepted it.
    #[serde(default)]
    pub final_reply_timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    None,
    #[default]
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// None: SMS are appended to `data_dir/sms.jsonl`.
    pub provider: Option<SmsProvider>,
    /// Most SMS sent at once (default 4).
    pub concurrency: Option<usize>,
    /// Most SMS a second (default: no limit).
    pub rate_per_second: Option<f64>,
    /// The token the provider's inbound webhook must carry (`/v1/sms/inbound?token=…`), for
    /// STOP and START replies; without it the endpoint is off (404).
    pub inbound_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SmsProvider {
    /// Twilio's Messages.json form API, basic auth.
    Twilio {
        account_sid: String,
        auth_token: String,
        from: String,
        /// Default https://api.twilio.com; tests point it at a local server.
        #[serde(default)]
        base_url: Option<String>,
    },
    /// Kannel's sendsms HTTP interface; delivery reports come back as `received`.
    Kannel {
        url: String,
        username: String,
        password: String,
        #[serde(default)]
        from: Option<String>,
    },
    /// A JSON POST to any URL.
    Webhook {
        url: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// None: pushes are appended to `data_dir/push.jsonl`.
    pub provider: Option<PushProvider>,
    /// Most pushes sent at once (default 8).
    pub concurrency: Option<usize>,
    /// Most push requests a second (default: no limit).
    pub rate_per_second: Option<f64>,
    /// How long a Web Push service keeps a push for an offline browser (its `TTL`).
    pub ttl_seconds: u32,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            provider: None,
            concurrency: None,
            rate_per_second: None,
            ttl_seconds: 86_400,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum PushProvider {
    /// FCM HTTP v1 (`projects/{project_id}/messages:send`), bearer token.
    Fcm {
        project_id: String,
        access_token: String,
        #[serde(default)]
        base_url: Option<String>,
    },
    /// Web Push (RFC 8030/8291) with VAPID.
    Webpush {
        /// base64url of the 32-byte scalar, or a PKCS#8 / SEC1 PEM; or give
        /// `vapid_private_key_file`.
        #[serde(default)]
        vapid_private_key: String,
        vapid_subject: String,
        /// A file holding the key (a PEM, or the base64url scalar).
        #[serde(default)]
        vapid_private_key_file: Option<PathBuf>,
    },
    Webhook {
        url: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Seconds before a webhook step's call is given up (a step's `timeout` wins).
    pub timeout_seconds: u64,
    /// Most webhook calls at once (default 8).
    pub concurrency: Option<usize>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout_seconds: 10,
            concurrency: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts before a transient failure becomes `message.failed`.
    pub max_attempts: u32,
    /// First backoff, doubled each attempt, with jitter, up to `max_delay_ms`.
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// The longest wait a provider's `Retry-After` is honoured for (beyond `max_delay_ms`);
    /// a longer one waits this long.
    pub max_retry_after_ms: u64,
    /// The wait before the one retry of a send whose outcome is uncertain (an SMTP server
    /// silent after the final `.`); 0: never retried.
    pub uncertain_retry_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            base_delay_ms: 500,
            max_delay_ms: 60_000,
            max_retry_after_ms: 3_600_000,
            uncertain_retry_ms: 3_600_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path}: {key}: environment variable {name} is not set")]
    MissingEnv {
        path: String,
        key: String,
        name: String,
    },
    #[error("{path}: {err}")]
    Yaml { path: String, err: String },
    #[error("{path}: unknown time zone '{zone}'")]
    Zone { path: String, zone: String },
}

/// Replaces `${NAME}` in one value by the environment variable NAME; `key` names the value
/// in an error.
fn interpolate(
    path: &str,
    key: &str,
    text: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        match env(name) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(ConfigError::MissingEnv {
                    path: path.into(),
                    key: key.into(),
                    name: name.into(),
                })
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Substitutes environment variables in every string of a parsed YAML value. A value that
/// is one `${NAME}` and whose variable reads as a number or a boolean becomes that
/// (`port: ${SMTP_PORT}`); anything else stays a string, so a variable cannot add keys.
fn substitute(
    path: &str,
    key: &mut String,
    v: &mut serde_norway::Value,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    use serde_norway::Value;
    match v {
        Value::String(s) if s.contains("${") => {
            let whole = s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1;
            let text = interpolate(path, key, s, env)?;
            *v = match serde_norway::from_str::<Value>(&text) {
                Ok(n @ (Value::Number(_) | Value::Bool(_))) if whole => n,
                _ => Value::String(text),
            };
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = key.len();
                key.push_str(&format!("[{i}]"));
                substitute(path, key, item, env)?;
                key.truncate(len);
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let len = key.len();
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k.as_str().unwrap_or("?"));
                substitute(path, key, item, env)?;
                key.truncate(len);
            }
        }
        Value::Tagged(t) => substitute(path, key, &mut t.value, env)?,
        _ => {}
    }
    Ok(())
}

impl Config {
    /// Reads a config file; `None` gives the embedded defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            None => Config::default(),
            Some(path) => {
                let p = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
                    path: p.clone(),
                    err,
                })?;
                Config::parse(&p, &text, |n| std::env::var(n).ok())?
            }
        };
        if let Some(url) = std::env::var("JOURNEY_STORE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            config.store.url = Some(url);
        }
        Ok(config)
    }

    pub fn parse(
        path: &str,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let yaml = |err: String| ConfigError::Yaml {
            path: path.into(),
            err,
        };
        let mut value: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| yaml(e.to_string()))?;
        substitute(path, &mut String::new(), &mut value, &env)?;
        let mut config: Config = if value.is_null() {
            Config::default()
        } else {
            // The key path in errors (`email.smtp.port: invalid type…`): once parsed, the
            // value no longer knows its line.
            serde_path_to_error::deserialize(value).map_err(|e| {
                let at = e.path().to_string();
                let err = e.into_inner().to_string();
                yaml(if at == "." {
                    err
                } else {
                    format!("{at}: {err}")
                })
            })?
        };
        if config.public_url.is_empty() {
            config.public_url = config.default_public_url();
        }
        if config.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ConfigError::Zone {
                path: path.into(),
                zone: config.timezone.clone(),
            });
        }
        Ok(config)
    }

    /// The public URL a config without `public_url` gets: the listen address.
    fn default_public_url(&self) -> String {
        format!("http://{}", self.server.listen)
    }

    /// Listens on another address (`journey serve --listen`); a `public_url` that was the
    /// old listen address follows it.
    pub fn set_listen(&mut self, listen: String) {
        let followed = self.public_url == self.default_public_url();
        self.server.listen = listen;
        if followed {
            self.public_url = self.default_public_url();
        }
    }

    /// Called with the address the server bound: a `public_url` that is the listen address
    /// (written so, or by default) becomes the bound one, so that with `listen: …:0` links
    /// name the port chosen.
    pub fn listening_on(&mut self, bound: std::net::SocketAddr) {
        if self.public_url.trim_end_matches('/') == self.default_public_url() {
            self.public_url = format!("http://{bound}");
        }
    }

    pub fn zone(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(
            Config::parse("j.yaml", "", |_| None).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn env_vars_fill_secrets_and_missing_ones_are_named() {
        let text = "secret: ${JOURNEY_SECRET}\nemail:\n  smtp:\n    host: localhost\n    password: ${SMTP_PASSWORD}\n";
        let c = Config::parse("j.yaml", text, |n| match n {
            "JOURNEY_SECRET" => Some("s3cret".into()),
            "SMTP_PASSWORD" => Some("pw".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.secret.as_deref(), Some("s3cret"));
        assert_eq!(c.email.smtp.unwrap().password.as_deref(), Some("pw"));
        let err = Config::parse("j.yaml", text, |_| None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "j.yaml: secret: environment variable JOURNEY_SECRET is not set"
        );
        let err = Config::parse("j.yaml", text, |n| {
            (n == "JOURNEY_SECRET").then(String::new)
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "j.yaml: email.smtp.password: environment variable SMTP_PASSWORD is not set"
        );
    }

    /// Comments may mention `${NAME}`; a variable's value cannot add keys; a whole-value
    /// variable may be a number.
    #[test]
    fn env_vars_are_substituted_in_values_only() {
        let text = "# ${NOT_SET} in a comment\nsecret: ${S} # and ${ALSO_NOT_SET}\nemail:\n  smtp:\n    host: h\n    port: ${PORT}\n    password: \"p-${S}\"\n";
        let c = Config::parse("j.yaml", text, |n| match n {
            "S" => Some("x\ndata_dir: /tmp/evil\nsecret: y".into()),
            "PORT" => Some("2525".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            c.secret.as_deref(),
            Some("x\ndata_dir: /tmp/evil\nsecret: y")
        );
        assert_eq!(c.data_dir, Config::default().data_dir);
        let smtp = c.email.smtp.unwrap();
        assert_eq!(smtp.port, Some(2525));
        assert!(smtp.password.unwrap().starts_with("p-x\n"));
        let err = Config::parse(
            "j.yaml",
            "email:\n  smtp:\n    host: h\n    prot: 1\n",
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("j.yaml: email.smtp.prot: unknown field `prot`"),
            "{err}"
        );
        assert!(Config::parse("j.yaml", "# only a comment\n", |_| None).is_ok());
    }

    #[test]
    fn public_url_defaults_to_the_listen_address_and_port_0_to_the_bound_port() {
        let parse = |t: &str| Config::parse("j.yaml", t, |_| None).unwrap();
        assert_eq!(
            parse("server:\n  listen: 127.0.0.1:9090\n").public_url,
            "http://127.0.0.1:9090"
        );
        assert_eq!(
            parse("public_url: https://j.example\nserver:\n  listen: 0.0.0.0:80\n").public_url,
            "https://j.example"
        );
        assert_eq!(parse("timezone: UTC\n").public_url, "http://127.0.0.1:8080");
        let mut c = parse("server:\n  listen: 127.0.0.1:0\n");
        c.listening_on("127.0.0.1:41234".parse().unwrap());
        assert_eq!(c.public_url, "http://127.0.0.1:41234");
        // A public_url of its own is kept.
        let mut c = parse("public_url: https://j.example\nserver:\n  listen: 127.0.0.1:0\n");
        c.listening_on("127.0.0.1:41234".parse().unwrap());
        assert_eq!(c.public_url, "https://j.example");
    }

    #[test]
    fn unknown_keys_and_zones_are_errors() {
        assert!(Config::parse("j.yaml", "data_dri: x\n", |_| None).is_err());
        assert!(Config::parse("j.yaml", "timezone: Mars/Olympus\n", |_| None).is_err());
    }

    #[test]
    fn the_example_file_parses_with_every_section() {
        let text = include_str!("../journey.example.yaml");
        let c = Config::parse("journey.example.yaml", text, |n| Some(format!("<{n}>"))).unwrap();
        assert_eq!(c.secret.as_deref(), Some("<JOURNEY_SECRET>"));
        let smtp = c.email.smtp.unwrap();
        assert_eq!(smtp.security, SmtpSecurity::Starttls);
        assert_eq!(smtp.password.as_deref(), Some("<SMTP_PASSWORD>"));
        assert!(matches!(c.sms.provider, Some(SmsProvider::Twilio { .. })));
        assert_eq!(c.sms.inbound_token.as_deref(), Some("<SMS_INBOUND_TOKEN>"));
        assert!(matches!(c.push.provider, Some(PushProvider::Fcm { .. })));
        assert_eq!(c.retry.max_attempts, 5);
        // The commented alternatives parse too.
        let kannel = "sms:\n  provider:\n    kind: kannel\n    url: http://k/cgi-bin/sendsms\n    username: u\n    password: p\n";
        assert!(matches!(
            Config::parse("k.yaml", kannel, |_| None)
                .unwrap()
                .sms
                .provider,
            Some(SmsProvider::Kannel { .. })
        ));
        let hook = "push:\n  provider:\n    kind: webhook\n    url: http://h\n    headers: [[\"Authorization\", \"Bearer x\"]]\n";
        match Config::parse("h.yaml", hook, |_| None)
            .unwrap()
            .push
            .provider
        {
            Some(PushProvider::Webhook { headers, .. }) => {
                assert_eq!(
                    headers,
                    vec![("Authorization".to_string(), "Bearer x".to_string())]
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
