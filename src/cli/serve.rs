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
    /// port; the address bound is printed).
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
