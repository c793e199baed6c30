//! The daemon (`journey serve`): the HTTP API, the Segment-compatible endpoints, tracked
//! links and the open pixel, deploys, admin, reports and audiences, metrics. The only module that names axum.
//!
//! Threads: the runtime runs `runtime::live::run_live` on its own thread with the system
//! clock; axum runs on tokio. Handlers never touch the runtime: they send it `Submission`s
//! (inputs, acknowledged once flushed) and controls (deploys, pause, contact upserts), and
//! read the store directly (it is thread-safe).

mod admin;
mod api;
mod cluster;
pub mod console;
mod decompress;
mod erasure;
pub mod metrics;
pub mod openapi;
mod preferences;
mod preview;
mod reports;
mod segment;
pub mod sink;
mod sms_inbound;
mod track;

use crate::compile::ir::Program;
use crate::config::Config;
use crate::engine::{Millis, TimelineEntry};
use crate::runtime::live::{run_live, LoopConfig, Submission};
use crate::runtime::Clock;
use crate::runtime::{DeployReport, Input, Runtime, RuntimeError, Sink, SystemClock};
use crate::store::{Store, WriteBatch};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics::Metrics;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};

use crate::runtime::plan as deploy;
pub use crate::store::credentials::Scope;
use crate::store::credentials::{self as auth, load_secret};
pub(crate) use admin::pause_or_resume;
pub(crate) use api::contact_view;
pub(crate) use preview::{render_for, send_test};

/// The store meta key of the last program deployed (JSON), run when the files have errors.
const PROGRAM_META: &str = "program";

/// An API error: a status and a JSON body `{"code": …, "message": …}` (the shape Segment's
/// SDKs read).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the engine is stopping or stopped; nothing was recorded",
        )
    }
    /// The store's database does not answer: nothing was recorded; try again later.
    pub fn store_unavailable(why: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("nothing was recorded: {why}; try again later"),
        )
    }
    pub fn with_details(mut self, d: Value) -> Self {
        self.details = Some(d);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(openapi::ErrorBody::from(&self))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Bearer realm=\"journey\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        r
    }
}

/// What a 503 asks the client to wait before trying again, in seconds.
const RETRY_AFTER_SECONDS: &str = "2";

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    inbox: Sender<Submission>,
    pub config: Config,
    pub secret: Vec<u8>,
    tokens: auth::TokenBook,
    pub metrics: Arc<Metrics>,
    /// The program the runtime runs, updated after each deploy.
    pub program: RwLock<Arc<Program>>,
    pub paused: RwLock<BTreeSet<String>>,
    /// When this daemon started, RFC 3339.
    pub started: String,
    /// Per journey, step and message counts, kept by the engine (`runtime::figures`).
    figures: Arc<crate::runtime::figures::LiveFigures>,
}

pub type Shared = Arc<AppState>;

pub fn now_ms() -> Millis {
    SystemClock.now()
}

impl AppState {
    /// Checks the request's token (`Authorization: Bearer T`, or Basic with T as user name,
    /// as Segment's SDKs send their write key).
    /// The token's scope, once it is known to allow `needed`.
    pub fn authorize(&self, headers: &HeaderMap, needed: Scope) -> Result<Scope, ApiError> {
        self.authorize_or(headers, needed, None)
    }

    pub fn authorize_or(
        &self,
        headers: &HeaderMap,
        needed: Scope,
        fallback: Option<&str>,
    ) -> Result<Scope, ApiError> {
        let token = credentials(headers).or(fallback.map(String::from));
        let Some(token) = token else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing token: send `Authorization: Bearer <token>` (make one with `journey token create`)",
            ));
        };
        let scope = self.tokens.scope_of(&token).map_err(|e| {
            if crate::store::is_unavailable_text(&e) {
                ApiError::store_unavailable(&e)
            } else {
                api::store_err(e)
            }
        })?;
        match scope {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown token",
            )),
            Some(s) if !s.allows(needed) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this token has scope `{}`; this needs `{}`",
                    s.as_str(),
                    needed.as_str()
                ),
            )),
            Some(s) => Ok(s),
        }
    }

    /// The scope of a token, None when it is unknown (the console's sign-in).
    /// The scope of the token with this fingerprint, if it is still known (None too when
    /// the token store does not answer).
    pub fn token_scope_by_fingerprint(&self, fingerprint: &str) -> Option<Scope> {
        self.tokens.scope_of_fingerprint(fingerprint).ok().flatten()
    }

    pub fn token_scope(&self, token: &str) -> Result<Option<Scope>, ApiError> {
        self.tokens.scope_of(token).map_err(|e| {
            if crate::store::is_unavailable_text(&e) {
                ApiError::store_unavailable(&e)
            } else {
                api::store_err(e)
            }
        })
    }

    /// The live figures the engine keeps (per journey, step and message).
    pub fn figures(&self) -> &crate::runtime::figures::LiveFigures {
        &self.figures
    }

    /// A 503 while the store's database does not answer (nothing would be recorded).
    pub fn store_available(&self) -> Result<(), ApiError> {
        match self.store.unavailable() {
            Some(why) => Err(ApiError::store_unavailable(&why)),
            None => Ok(()),
        }
    }

    /// Hands inputs to the engine; returns once they are durable.
    pub async fn submit(&self, inputs: Vec<Input>) -> Result<(), ApiError> {
        self.store_available()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ack: crate::runtime::live::Ack = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.inbox
            .send(Submission::new(inputs, Some(ack)))
            .map_err(|_| ApiError::unavailable())?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if crate::store::is_unavailable_text(&e) => {
                Err(ApiError::store_unavailable(&e))
            }
            Ok(Err(e)) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_error",
                format!("not recorded: {e}"),
            )),
            Err(_) => Err(ApiError::unavailable()),
        }
    }

    /// Runs `f` on the engine's thread, between batches.
    pub async fn control<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Runtime, &mut dyn Sink, Millis, &mut Vec<TimelineEntry>) -> T
            + Send
            + 'static,
    ) -> Result<T, ApiError> {
        self.store_available()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inbox
            .send(Submission::control(move |rt, sink, now, timeline| {
                let _ = tx.send(f(rt, sink, now, timeline));
            }))
            .map_err(|_| ApiError::unavailable())?;
        rx.await.map_err(|_| ApiError::unavailable())
    }

    fn refresh(&self, rt: &Runtime) {
        *self.program.write().unwrap_or_else(|e| e.into_inner()) = rt.program().clone();
        *self.paused.write().unwrap_or_else(|e| e.into_inner()) = rt.paused().clone();
    }

    pub fn program(&self) -> Arc<Program> {
        self.program
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_paused(&self, journey: &str) -> bool {
        self.paused
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(journey)
    }
}

/// The token of a request: Bearer, or Basic's user name (or password when the user is empty).
fn credentials(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let h = headers.get("authorization")?.to_str().ok()?.trim();
    let (kind, rest) = h.split_once(' ')?;
    let rest = rest.trim();
    if kind.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_string());
    }
    if kind.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (user, pass) = s.split_once(':').unwrap_or((&s, ""));
        let t = if user.is_empty() { pass } else { user };
        return (!t.is_empty()).then(|| t.to_string());
    }
    None
}

pub fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

/// Deploys a program and keeps it as the last good one.
pub fn apply_program(
    rt: &mut Runtime,
    program: Program,
    now: Millis,
) -> Result<DeployReport, RuntimeError> {
    let json = serde_json::to_vec(&program).expect("programs serialize");
    let report = rt.deploy(program, now)?;
    let mut b = WriteBatch::default();
    b.set_meta(PROGRAM_META, &json);
    rt.store.apply(b)?;
    rt.store.flush()?;
    Ok(report)
}

fn stored_program(store: &Store) -> Option<Program> {
    store
        .meta(PROGRAM_META)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice(&v).ok())
}

/// Loads the journeys directory into the runtime at start: errors are printed and the
/// last deployed program keeps running.
/// The journeys' errors and warnings, as `journey check` shows them, in the log (one event,
/// so a JSON log keeps them together).
fn log_diagnostics(human: &str) {
    if !human.is_empty() {
        tracing::warn!(
            "the journeys directory has diagnostics:\n{}",
            human.trim_end()
        );
    }
}

fn initial_deploy(rt: &mut Runtime, config: &Config, now: Millis) {
    let dir = &config.journeys_dir;
    let built = if dir.is_dir() {
        Some(deploy::build_dir(dir))
    } else {
        tracing::warn!(dir = %dir.display(), "no journeys directory: nothing to load");
        None
    };
    if let Some(b) = built {
        log_diagnostics(&b.human);
        match b.program {
            Some(p) => {
                let n = p.journeys.len();
                match crate::runtime::past_plans(&rt.store, &p, now, config.zone()) {
                    Ok(past) => past.iter().for_each(|w| tracing::warn!("{w}")),
                    Err(e) => tracing::warn!("could not check the plans' times: {e}"),
                }
                // Other daemons work on this database: the program they run stays, rather
                // than be changed by the files of a daemon that (re)starts.
                let others_run = !rt.store.works_on_all() && stored_program(&rt.store).is_some();
                let differs = match others_run.then(|| rt.changes_against_store(&p)) {
                    Some(Ok(changes)) if !changes.is_empty() => Some(changes),
                    _ => None,
                };
                if let Some(changes) = differs {
                    tracing::error!(
                        "the journeys in {} differ from the program the other daemons on this database run ({}): this daemon runs theirs; deploy through the API (`journey deploy`) to change it",
                        dir.display(),
                        changes.join(", ")
                    );
                } else {
                    match apply_program(rt, p, now) {
                        Ok(r) => {
                            for c in &r.changed {
                                tracing::info!(journey = %c.journey, from = c.from.as_deref().unwrap_or("-"), to = %c.to, "deployed");
                            }
                            tracing::info!(journeys = n, dir = %dir.display(), "journeys loaded");
                            return;
                        }
                        Err(e) => tracing::error!("deploy of {} refused: {e}", dir.display()),
                    }
                }
            }
            None => tracing::error!(
                errors = b.errors,
                "journeys in {} have errors: refused (the versions in the store keep running)",
                dir.display()
            ),
        }
    }
    if let Some(p) = stored_program(&rt.store) {
        if let Err(e) = rt.deploy(p, now) {
            tracing::error!("the last deployed program could not be loaded: {e}");
        } else {
            tracing::info!("running the last deployed program");
        }
    }
}

/// Runs the daemon until SIGTERM or Ctrl-C. Writes nothing to stdout: it logs where the
/// first start's admin token is (`data_dir/admin-token`) and, at INFO, `listening` with the
/// bound address as its `addr` field (`crate::cli::serve::listening_url` reads it back, for
/// the tests and `journey bench ingest`).
pub fn serve(mut config: Config) -> anyhow::Result<()> {
    // A channel misconfigured is an error now, before a store or a token exists.
    crate::channels::check_config(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The channels deliver on the server's tokio runtime and report outcomes through a relay
    // that counts them for /metrics before they reach the live loop.
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Bound first: with `listen: …:0` the links the channels write name the port chosen.
    let listener = tokio_rt
        .block_on(tokio::net::TcpListener::bind(&config.server.listen))
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.listen))?;
    let addr = listener.local_addr()?;
    config.listening_on(addr);
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.data_dir.display()))?;
    let secret = load_secret(config.secret.as_deref(), &config.data_dir)?;
    let store = match &config.store.url {
        Some(url) => {
            let store = connect_waiting(
                url,
                config
                    .store
                    .partitions
                    .unwrap_or(crate::store::DEFAULT_PARTITIONS),
                &addr.to_string(),
            )?;
            tracing::info!(database = %crate::store::redact_url(url), "store: PostgreSQL");
            store
        }
        None => Store::open(&store_path(&config.data_dir))
            .map_err(|e| anyhow::anyhow!("{}: {e}", store_path(&config.data_dir).display()))?,
    };
    // Every daemon on a database signs and checks links alike: unless configured, the
    // secret is the database's (the first daemon's), kept in the data directory too.
    let secret = if config.secret.is_none() && store.can_be_unavailable() {
        auth::share_secret(&store, secret, &config.data_dir)?
    } else {
        secret
    };
    let tokens = auth::TokenPlace::of(&config.data_dir, &store);
    if let Some(path) = auth::first_admin_token(&tokens, &config.data_dir)? {
        tracing::info!(
            path = %path.display(),
            "first start: an admin token was made and written to this file (mode 0600); the token store keeps only its hash. Make more with `journey token create`"
        );
    }
    let clock = SystemClock;
    let mut rt = Runtime::new(store.clone(), clock.now(), config.zone())?;
    // The console shows the live counts: kept from the start (one scan of the store).
    if config.server.console {
        rt.keep_figures()?;
    }
    let metrics = Arc::new(Metrics::with_store(&store));
    rt.stages = metrics.stages.clone();
    {
        let m = metrics.clone();
        rt.set_timer_observer(move |late| m.timer_fired(late));
    }
    initial_deploy(&mut rt, &config, clock.now());

    let (tx, rx) = std::sync::mpsc::channel::<Submission>();
    let state = Arc::new(AppState {
        store,
        inbox: tx.clone(),
        config: config.clone(),
        secret,
        tokens: auth::TokenBook::open(tokens),
        metrics: metrics.clone(),
        program: RwLock::new(rt.program().clone()),
        paused: RwLock::new(rt.paused().clone()),
        started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        figures: rt.figures.clone(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = metrics::relay_outcomes(tx.clone(), metrics.clone())?;
    let sink = sink::make_sink(
        &config,
        &state.secret,
        &state.store,
        outcomes,
        tokio_rt.handle().clone(),
        metrics.clone(),
    )?;
    let mut sink = metrics::MeteredSink {
        inner: sink,
        metrics: metrics.clone(),
    };
    // If the engine stops on its own (a store error), the server stops too.
    let (engine_done, engine_stopped) = tokio::sync::oneshot::channel::<()>();
    let engine = {
        let stop = stop.clone();
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                let mut on_timeline = |t: Vec<TimelineEntry>| metrics.timeline(&t);
                let r = run_live(
                    &mut rt,
                    &SystemClock,
                    &mut sink,
                    &rx,
                    &stop,
                    LoopConfig {
                        max_batch: 4096,
                        ..LoopConfig::default()
                    },
                    &mut on_timeline,
                );
                if let Err(e) = &r {
                    tracing::error!("the engine stopped: {e}");
                }
                let _ = engine_done.send(());
                r
            })?
    };

    let served = tokio_rt.block_on(async {
        tracing::info!(%addr, data = %config.data_dir.display(), "listening");
        if config.server.console {
            tracing::info!(
                "console: http://{addr}/ (sign in with an admin or read token; the first start's admin token is in {})",
                config.data_dir.join("admin-token").display()
            );
        }
        spawn_reload_on_hangup(state.clone());
        spawn_follow_deploys(state.clone());
        let app = routes(state.clone());
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                tokio::select! {
                    _ = shutdown_signal() => {},
                    _ = engine_stopped => {},
                }
            })
            .await?;
        anyhow::Ok(())
    });
    // In-flight requests are answered; the engine commits what arrived, then stops.
    tracing::info!("stopping: finishing in-flight work");
    stop.store(true, Ordering::SeqCst);
    drop(state);
    let ran = engine
        .join()
        .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
    served?;
    ran?;
    tracing::info!("stopped");
    Ok(())
}

/// Connects to the store's database, says this daemon is there (`journey status
/// --cluster`; the other daemons count it when they share the partitions out) and starts
/// its lease keeper, which takes this daemon's share of the partitions (every one while it
/// is alone; more as others stop, some handed back as others join). A database that does
/// not answer (refused, starting, shutting down) is waited for, with backoff and a log line
/// a try; what waiting cannot mend (a malformed URL, wrong credentials, no such database)
/// is an error at once.
fn connect_waiting(url: &str, partitions: u16, address: &str) -> anyhow::Result<Store> {
    let mut delay = std::time::Duration::from_millis(200);
    let mut attempt = 0u32;
    let mut store = None;
    loop {
        attempt += 1;
        let tried = match &store {
            None => Store::connect_with(url, partitions).map(|s| {
                store = Some(s);
            }),
            Some(_) => Ok(()),
        }
        .and_then(|()| {
            store
                .as_ref()
                .expect("connected")
                .announce(address, "active")
        })
        .and_then(|()| store.as_ref().expect("connected").claim_exclusive());
        match tried {
            Ok(()) => {
                let store = store.expect("connected");
                if let Some(l) = store.lease() {
                    tracing::info!(
                        partitions = l.partitions,
                        held = l.held.len(),
                        "this daemon holds its share of the database's partitions"
                    );
                }
                return Ok(store);
            }
            Err(e) if e.is_unavailable() => {
                tracing::warn!(
                    attempt,
                    "{e}; the daemon waits for the database, trying again in {delay:?}"
                );
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_secs(10));
            }
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// How often a daemon on a database shared with others looks for a deploy or a pause made
/// through another daemon.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// On a database other daemons share: every `FOLLOW_EVERY`, the program last deployed and
/// the journeys paused, as the store has them, are taken up by this daemon's engine when they
/// changed (`follow_stored`), so a deploy or a pause through any daemon reaches all.
fn spawn_follow_deploys(state: Shared) {
    if !state.store.is_shared() {
        return;
    }
    tokio::spawn(async move {
        let mut seen: Option<(Vec<u8>, Vec<u8>)> = None;
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            let store = state.store.clone();
            let stored = tokio::task::spawn_blocking(move || {
                let program = store.meta(PROGRAM_META)?.unwrap_or_default();
                let paused = store.meta(crate::runtime::PAUSED_META)?.unwrap_or_default();
                Ok::<_, crate::store::StoreError>((program, paused))
            })
            .await;
            let Ok(Ok(stored)) = stored else { continue };
            if seen.as_ref() == Some(&stored) {
                continue;
            }
            let st = state.clone();
            let now_stored = stored.clone();
            let r = state
                .control(move |rt, sink, now, timeline| {
                    let r = follow_stored(rt, &now_stored, sink, now, timeline);
                    st.refresh(rt);
                    r
                })
                .await;
            match r {
                Ok(Ok(())) => seen = Some(stored),
                Ok(Err(e)) => tracing::error!(
                    "a deploy made through another daemon could not be taken up: {e}"
                ),
                Err(_) => {}
            }
        }
    });
}

/// Takes up the program and the paused journeys the store has, when they differ from what
/// the engine runs (the same program again changes nothing).
fn follow_stored(
    rt: &mut Runtime,
    (program, paused): &(Vec<u8>, Vec<u8>),
    sink: &mut dyn crate::runtime::Sink,
    now: Millis,
    timeline: &mut Vec<TimelineEntry>,
) -> Result<(), RuntimeError> {
    if let Ok(p) = serde_json::from_slice::<Program>(program) {
        let differs = p.journeys.len() != rt.program().journeys.len()
            || p.journeys.iter().any(|(name, ir)| {
                rt.program()
                    .journeys
                    .get(name)
                    .is_none_or(|mine| mine.content_hash() != ir.content_hash())
            })
            || serde_json::to_vec(&p.segments).ok()
                != serde_json::to_vec(&rt.program().segments).ok();
        if differs {
            let report = rt.deploy(p, now)?;
            tracing::info!(
                changed = report.changed.len(),
                migrated = report.migrated,
                "took up a deploy made through another daemon"
            );
        }
    }
    let wanted: std::collections::BTreeSet<String> =
        serde_json::from_slice(paused).unwrap_or_default();
    let now_paused = rt.paused().clone();
    for j in wanted.difference(&now_paused) {
        rt.pause(j)?;
        tracing::info!(journey = %j, "paused through another daemon");
    }
    for j in now_paused.difference(&wanted) {
        rt.resume(j, now, sink, timeline)?;
        tracing::info!(journey = %j, "resumed through another daemon");
    }
    Ok(())
}

fn spawn_reload_on_hangup(state: Shared) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            let dir = state.config.journeys_dir.clone();
            tracing::info!(dir = %dir.display(), "SIGHUP: reloading journeys");
            let built = tokio::task::spawn_blocking(move || deploy::build_dir(&dir)).await;
            let Ok(built) = built else { continue };
            log_diagnostics(&built.human);
            match built.program {
                None => tracing::error!(
                    errors = built.errors,
                    "reload refused: the journeys have errors; the running versions keep running"
                ),
                Some(p) => match admin::deploy_program(&state, p).await {
                    Ok(r) => tracing::info!(changed = r.changed.len(), "reloaded"),
                    Err(e) => tracing::error!("reload refused: {}", e.message),
                },
            }
        }
    });
    #[cfg(not(unix))]
    let _ = state;
}

fn routes(state: Shared) -> axum::Router {
    let limit = state.config.server.max_body_bytes;
    let (router, _) = openapi::api().split_for_parts();
    let router = if state.config.server.console {
        router.merge(crate::server::console::routes())
    } else {
        router
    };
    router
        // After every route: a known path with another method answers the JSON error shape.
        .method_not_allowed_fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{} does not take {method}", uri.path()),
                )
            },
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            decompress::decompress,
        ))
        // A span per request, and a line per response at DEBUG (`JOURNEY_LOG=tower_http=debug`).
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// `{"status": "ok"}` while the daemon serves and its store answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `store_unavailable` while the store's database does not answer.
    status: &'static str,
    /// Why the store does not answer (only then).
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<String>,
}

/// `GET /healthz`: 200 while the daemon serves; 503 while its store's database does not
/// answer (a load balancer then sends events elsewhere).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = openapi::tags::SERVICE,
    responses(
        (status = 200, description = "The daemon serves", body = Health),
        (status = 503, description = "The store's database does not answer; the daemon retries it", body = Health)
    )
)]
async fn healthz(axum::extract::State(st): axum::extract::State<Shared>) -> Response {
    match st.store.unavailable() {
        None => Json(Health {
            status: "ok",
            store: None,
        })
        .into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", RETRY_AFTER_SECONDS)],
            Json(Health {
                status: "store_unavailable",
                store: Some(why),
            }),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus' text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = openapi::tags::SERVICE,
    responses((status = 200, description = "The daemon's metrics, in Prometheus' text format", content_type = "text/plain", body = String))
)]
async fn metrics_text(axum::extract::State(st): axum::extract::State<Shared>) -> Response {
    let text = st.metrics.render();
    ([("content-type", metrics::CONTENT_TYPE)], text).into_response()
}

/// Parses a JSON body, mapping a refused body (too large, unreadable) to a clear error.
pub fn json_body(
    st: &AppState,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Value, ApiError> {
    let body = body_bytes(st, body)?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })
}

/// A request's body, or the clear error of a refused one (too large, unreadable).
pub fn body_bytes(
    st: &AppState,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "body_too_large",
                format!(
                    "the request body is over the limit of {} bytes (server.max_body_bytes)",
                    st.config.server.max_body_bytes
                ),
            )
        } else {
            ApiError::new(status, "bad_body", r.body_text())
        }
    })
}
