//! `journey preview FILE --message NAME`: a message as it would be sent, rendered by the
//! dispatcher's own code (templates, partials, tracked links, MIME From and To), for a
//! contact of a store (`--contact ID --data DIR`) or a profile given as JSON. And `journey
//! send-test JOURNEY.MESSAGE --to ADDRESS`: the same message sent for real through the
//! configured provider, its subject prefixed `[test]`, recorded as `message.test`.

use super::source::{open_store, Failed};
use crate::channels::preview::{self, Preview};
use crate::channels::render::Renderer;
use crate::compile::{self, ir::Program};
use crate::config::Config;
use crate::engine::{Contact, Event};
use crate::lang::{self, diagnostic};
use crate::store::{Store, WriteBatch};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PreviewFormat {
    /// Headers, the text part, the HTML part and every link with its target.
    #[default]
    Text,
    /// The HTML part alone (to open in a browser).
    Html,
    /// Everything, as one JSON object.
    Json,
}

#[derive(clap::Args, Debug)]
pub struct PreviewArgs {
    /// A journey file; the other journey files of its folder are loaded with it (names are
    /// global), and its templates/ folder.
    pub file: PathBuf,
    /// The message: NAME, or JOURNEY.NAME when several journeys of the file have one.
    #[arg(long, value_name = "NAME")]
    pub message: String,
    /// Render for this contact of the store in --data.
    #[arg(long, value_name = "ID", requires = "data", conflicts_with = "profile")]
    pub contact: Option<String>,
    /// A daemon's data directory (or its store directory), to read --contact from; not
    /// while the daemon runs on it.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Render for this profile: a JSON object, such as '{"email": "ann@example.com",
    /// "first_name": "Ann"}' (its "id", if any, is the contact id).
    #[arg(long, value_name = "JSON")]
    pub profile: Option<String>,
    /// The entry event's properties, which templates see as `event.x`: a JSON object
    /// ("type" and "context", if given, are the event's own). With --contact, the event
    /// that last enrolled the contact in the journey is used unless this is given.
    #[arg(long, value_name = "JSON")]
    pub event: Option<String>,
    /// The config file, for the public URL of tracked links, the default sender and the
    /// secret, as `journey serve --config` reads it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = PreviewFormat::Text)]
    pub format: PreviewFormat,
}

#[derive(clap::Args, Debug)]
pub struct SendTestArgs {
    /// JOURNEY.MESSAGE, of the journeys in the config's journeys_dir.
    pub message: String,
    /// The address the test goes to (never the contact's own).
    #[arg(long, value_name = "ADDRESS")]
    pub to: String,
    /// Render for this contact of the daemon's store (the event `message.test` is recorded
    /// on it); without it, for an empty profile, and nothing is recorded.
    #[arg(long, value_name = "ID")]
    pub contact: Option<String>,
    /// The config file, as `journey serve --config` reads it: the SMTP server (or the
    /// Maildir), the sender, the data directory and the journeys directory.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: PreviewArgs) -> ExitCode {
    match preview(&args) {
        Ok(p) => {
            print!("{}", preview::format(&p, format_name(args.format)));
            ExitCode::SUCCESS
        }
        Err(f) => f.exit(),
    }
}

fn format_name(f: PreviewFormat) -> &'static str {
    match f {
        PreviewFormat::Text => "text",
        PreviewFormat::Html => "html",
        PreviewFormat::Json => "json",
    }
}

fn load_config(path: Option<&Path>) -> Result<Config, Failed> {
    Config::load(path).map_err(|e| Failed::usage(e.to_string()))
}

/// Compiles the journey files of `dir` (and `extra`), as `journey check` would; the
/// diagnostics on stderr when there are errors.
fn compile_dir(dir: &Path, extra: Option<&Path>) -> Result<(lang::Loaded, Program), Failed> {
    let mut paths = vec![dir.to_path_buf()];
    if let Some(e) = extra {
        if !e.starts_with(dir) {
            paths.push(e.to_path_buf());
        }
    }
    let files = lang::journey_files(&paths).map_err(Failed::usage)?;
    if files.is_empty() {
        return Err(Failed::usage(format!(
            "no *.journey file in {}",
            dir.display()
        )));
    }
    let loaded = lang::load_files(&files);
    let compiled = compile::compile(&loaded);
    match compiled.program {
        Some(p) => Ok((loaded, p)),
        None => {
            eprint!(
                "{}",
                diagnostic::render_human(
                    &loaded.sources,
                    &compiled.diagnostics,
                    super::use_color()
                )
            );
            Err(Failed::other(
                "the journeys have errors (see above; `journey check` shows them too)",
            ))
        }
    }
}

/// The signing key the daemon of `data_dir` uses, if known, so previewed tracked links are
/// the ones it would send; else a stand-in (the links then do not verify on a daemon).
fn secret(config: &Config, data_dir: &Path) -> Vec<u8> {
    if let Some(s) = &config.secret {
        return s.as_bytes().to_vec();
    }
    std::fs::read(crate::store::credentials::secret_path(data_dir))
        .map(|b| String::from_utf8_lossy(&b).trim().as_bytes().to_vec())
        .unwrap_or_else(|_| b"preview".to_vec())
}

/// A daemon's data directory holds its store in `store/`; a store directory is taken too.
fn store_dir(dir: &Path) -> PathBuf {
    let inner = dir.join("store");
    if inner.is_dir() {
        inner
    } else {
        dir.to_path_buf()
    }
}

fn parse_profile(json: &str) -> Result<Contact, Failed> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Failed::usage(format!("--profile is not JSON: {e}")))?;
    let serde_json::Value::Object(mut profile) = v else {
        return Err(Failed::usage(
            "--profile must be a JSON object, such as '{\"email\": \"ann@example.com\"}'",
        ));
    };
    let id = match profile.remove("id") {
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => "preview".into(),
    };
    Ok(Contact { id, profile })
}

fn parse_event(json: &str, contact: &str) -> Result<Event, Failed> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Failed::usage(format!("--event is not JSON: {e}")))?;
    let serde_json::Value::Object(mut properties) = v else {
        return Err(Failed::usage(
            "--event must be a JSON object of the event's properties, such as '{\"product_name\": \"Red Shoes\"}'",
        ));
    };
    let text = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    Ok(Event {
        contact: contact.to_string(),
        kind: properties
            .remove("type")
            .map(text)
            .unwrap_or_else(|| "preview".into()),
        context: properties.remove("context").map(text),
        properties,
        ..Event::default()
    })
}

fn read_contact(store: &Store, id: &str, dir: &Path) -> Result<Contact, Failed> {
    store
        .contact(id)
        .map_err(|e| Failed::other(format!("{}: {e}", dir.display())))?
        .ok_or_else(|| Failed::usage(format!("no contact '{id}' in {}", dir.display())))
}

fn preview(args: &PreviewArgs) -> Result<Preview, Failed> {
    let config = load_config(args.config.as_deref())?;
    if !args.file.is_file() {
        return Err(Failed::usage(format!(
            "{}: no such journey file",
            args.file.display()
        )));
    }
    let dir = args
        .file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (loaded, program) = compile_dir(dir, Some(&args.file))?;
    // The message is looked for among the journeys of FILE.
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let file = canonical(&args.file);
    let mut own = Program::default();
    for (id, f) in &loaded.files {
        if canonical(&loaded.sources.get(*id).path) != file {
            continue;
        }
        for d in &f.definitions {
            if let lang::ast::Definition::Journey(j) = d {
                if let Some(ir) = program.journeys.get(&j.name.name) {
                    own.journeys.insert(ir.name.clone(), ir.clone());
                }
            }
        }
    }
    let (journey, message) = preview::find_message(&own, &args.message)
        .map_err(|e| Failed::usage(format!("{}: {e}", args.file.display())))?;
    let data_dir = args.data.clone().unwrap_or_else(|| config.data_dir.clone());
    let (contact, entered_by) = match (&args.contact, &args.profile) {
        (Some(id), _) => {
            let sdir = match (&args.data, &config.store.url) {
                (Some(dir), _) => store_dir(dir),
                // The daemon's store is in a database: its URL.
                (None, Some(url)) => PathBuf::from(url),
                (None, None) => store_dir(&data_dir),
            };
            let store = open_store(&sdir).map_err(Failed::usage)?;
            let c = read_contact(&store, id, &sdir)?;
            let e = store
                .latest_entry_event(id, &journey.name)
                .map_err(|e| Failed::other(format!("{}: {e}", sdir.display())))?;
            (c, e)
        }
        (None, Some(json)) => (parse_profile(json)?, None),
        (None, None) => (
            Contact {
                id: "preview".into(),
                profile: Default::default(),
            },
            None,
        ),
    };
    let event = match &args.event {
        Some(json) => Some(parse_event(json, &contact.id)?),
        None => entered_by,
    };
    let secret = secret(&config, &data_dir);
    let renderer = Renderer::new(&secret, &config.public_url);
    let job = preview::job(
        journey,
        message,
        &contact.id,
        format!("preview:{}:{}", journey.name, message.name),
    );
    preview::render(
        &renderer,
        &secret,
        &config,
        &job,
        message,
        &contact,
        event.as_ref(),
    )
    .map_err(|e| Failed::other(e.0))
}

pub fn send_test(args: SendTestArgs) -> ExitCode {
    match send_test_inner(&args) {
        Ok(s) => {
            eprintln!(
                "sent \"{}\" to {} ({})",
                s.subject,
                s.to,
                s.provider
                    .iter()
                    .map(|(k, v)| format!(
                        "{k}: {}",
                        v.as_str().map_or(v.to_string(), String::from)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!("{}", serde_json::to_string(&s).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(f) => f.exit(),
    }
}

fn send_test_inner(args: &SendTestArgs) -> Result<preview::TestSent, Failed> {
    let Some((_, _)) = args.message.split_once('.') else {
        return Err(Failed::usage(format!(
            "name the message as JOURNEY.MESSAGE, such as welcome.{}",
            args.message
        )));
    };
    let config = load_config(args.config.as_deref())?;
    let (_, program) = compile_dir(&config.journeys_dir, None)?;
    let (journey, message) =
        preview::find_message(&program, &args.message).map_err(Failed::usage)?;
    // The store is opened (and kept) before anything is sent, so a send is never left
    // unrecorded for want of it.
    let store = match &args.contact {
        Some(_) => {
            let sdir = match &config.store.url {
                Some(url) => PathBuf::from(url),
                None => config.data_dir.join("store"),
            };
            Some((open_store(&sdir).map_err(Failed::usage)?, sdir))
        }
        None => None,
    };
    let (contact, event) = match (&args.contact, &store) {
        (Some(id), Some((s, dir))) => (
            read_contact(s, id, dir)?,
            s.latest_entry_event(id, &journey.name)
                .map_err(|e| Failed::other(format!("{}: {e}", dir.display())))?,
        ),
        _ => (
            Contact {
                id: "test".into(),
                profile: Default::default(),
            },
            None,
        ),
    };
    let secret = secret(&config, &config.data_dir);
    let renderer = Renderer::new(&secret, &config.public_url);
    let now = super::source::now();
    let job = preview::job(
        journey,
        message,
        &contact.id,
        preview::test_message_id(&journey.name, &message.name, now),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::other(e.to_string()))?;
    let sent = rt
        .block_on(preview::send_test(
            &renderer,
            &config,
            &job,
            message,
            &contact,
            event.as_ref(),
            &args.to,
        ))
        .map_err(|e| Failed::other(e.to_string()))?;
    if let Some((store, dir)) = &store {
        let event = preview::test_event(&sent, &contact.id, now);
        let record = || -> Result<(), String> {
            let mut b = WriteBatch::default();
            b.put_event(&event, store.next_id().map_err(|e| e.to_string())?);
            store.apply(b).map_err(|e| e.to_string())?;
            store.flush().map_err(|e| e.to_string())
        };
        record().map_err(|e| {
            Failed::other(format!(
                "sent, but the message.test event was not recorded in {}: {e}",
                dir.display()
            ))
        })?;
    }
    Ok(sent)
}
