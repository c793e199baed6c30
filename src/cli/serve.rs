//! `journey serve`: the daemon.

use crate::config::Config;
use crate::server;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The config file (journey.yaml). Without one: data in ./data, journeys from
    /// ./journeys, the API on 127.0.0.1:8080.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The address to listen on, in place of the config's `server.listen` (port 0: any free
    /// port; the address bound is logged, `listening addr=…`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// Logs to stderr, filtered by `JOURNEY_LOG` (default `info`; `tower_http=debug` adds a
/// line per HTTP request); `JOURNEY_LOG_FORMAT=json` writes one JSON object a line, for log
/// collectors.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JOURNEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match std::env::var("JOURNEY_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().try_init(),
        _ => builder.with_ansi(super::use_color()).try_init(),
    };
}

/// The daemon's base URL (`http://ADDR`) from its `listening` log line, in either format
/// (`… listening addr=127.0.0.1:8080 …`, or JSON with `fields.addr`); None for any other line.
pub fn listening_url(line: &str) -> Option<String> {
    let line = line.trim();
    let addr = if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = v.get("fields")?;
        if fields.get("message")?.as_str()? != "listening" {
            return None;
        }
        fields.get("addr")?.as_str()?.to_string()
    } else {
        let (_, rest) = line.split_once(" listening addr=")?;
        rest.split_whitespace().next()?.to_string()
    };
    Some(format!("http://{addr}"))
}

pub fn load_config(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

pub fn run(args: ServeArgs) -> ExitCode {
    init_logging();
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(listen) = args.listen {
        config.set_listen(listen);
    }
    match server::serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::listening_url;

    #[test]
    fn the_listening_line_is_read_back_in_either_format() {
        assert_eq!(
            listening_url(
                "2026-12-04T09:00:00.000000Z  INFO journey::server: listening addr=127.0.0.1:8080 data=./data"
            )
            .as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            listening_url(
                r#"{"timestamp":"2026-12-04T09:00:00Z","level":"INFO","fields":{"message":"listening","addr":"[::1]:9000","data":"d"},"target":"journey::server"}"#
            )
            .as_deref(),
            Some("http://[::1]:9000")
        );
        assert_eq!(
            listening_url("INFO journey::server: running the last deployed program"),
            None
        );
        assert_eq!(
            listening_url(r#"{"fields":{"message":"stopping","addr":"x"}}"#),
            None
        );
    }
}
