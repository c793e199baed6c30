//! `journey event send`: one event to a running daemon.

use super::client::{Client, ServerArgs};
use super::status::fail;
use serde_json::{Map, Value};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct EventArgs {
    #[command(subcommand)]
    pub action: EventAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum EventAction {
    /// Send one event: `journey event send angela form_compiled formName=addUser --context web`.
    Send {
        /// The contact's id.
        contact: String,
        /// The event's type.
        #[arg(value_name = "TYPE")]
        kind: String,
        /// Properties as KEY=VALUE; a VALUE that is JSON (3, true, "x", [..]) is taken as such.
        properties: Vec<String>,
        /// The event's context (`where context == "web"`).
        #[arg(long)]
        context: Option<String>,
        /// Idempotency id: sending the same id twice records it once.
        #[arg(long)]
        id: Option<String>,
        /// When it happened (RFC 3339); default now.
        #[arg(long)]
        timestamp: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub fn run(args: EventArgs) -> ExitCode {
    let EventAction::Send {
        contact,
        kind,
        properties,
        context,
        id,
        timestamp,
        server,
    } = args.action;
    let mut props = Map::new();
    for p in properties {
        let Some((k, v)) = p.split_once('=') else {
            return fail(format!("property '{p}' is not KEY=VALUE"));
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        props.insert(k.to_string(), value);
    }
    let mut e = Map::new();
    e.insert("contact".into(), Value::String(contact));
    e.insert("type".into(), Value::String(kind));
    if !props.is_empty() {
        e.insert("properties".into(), Value::Object(props));
    }
    for (k, v) in [("context", context), ("id", id), ("timestamp", timestamp)] {
        if let Some(v) = v {
            e.insert(k.into(), Value::String(v));
        }
    }
    match Client::new(&server).send("POST", "/v1/events", &Value::Object(e)) {
        Ok(_) => {
            eprintln!("event recorded");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
