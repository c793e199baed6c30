//! The command line: one file per command, parsed with clap. Commands print for people on
//! stderr and for tools on stdout, and return the process exit code.

mod annotate;
mod audience;
mod bench;
mod check;
pub mod client;
mod contacts;
mod event;
mod fmt;
mod graph;
mod migrate_store;
mod plan;
mod preview;
mod report;
mod segment;
pub mod serve;
mod simulate;
mod source;
mod status;
mod test;
mod token;
mod trend;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "journey",
    version,
    about = "Customer journeys as text files: check them, test them, run them.",
    long_about = "Customer journeys as text files: check them, test them, run them.\n\n\
        Journeys are written in *.journey files (see docs/language.md), checked with \
        `journey check`, tested with scenarios on a virtual clock with `journey test`, \
        and run by the daemon with `journey serve`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and compile journey files, and report every error and warning.
    ///
    /// Exit code 0 when there is no error, 1 otherwise. Directories are searched for
    /// *.journey files; all files given are checked together, as the daemon loads them.
    Check(check::CheckArgs),
    /// Rewrite journey files in the one canonical layout (comments are kept).
    Fmt(fmt::FmtArgs),
    /// The language server for editors (Language Server Protocol on stdin and stdout):
    /// diagnostics as `journey check` gives them, definitions, references, hover,
    /// completion, outline, formatting, rename. Editors start it; see README "Editors".
    Lsp,
    /// Draw a journey's state machine as a Mermaid flowchart or a Graphviz graph.
    Graph(graph::GraphArgs),
    /// Print a message as it would be sent: subject, from, to, text, HTML, every link with
    /// its target; or the render error with the template's file and line.
    ///
    /// For a contact of a stopped daemon's store (--contact ID --data DIR), or a profile
    /// (--profile JSON). The daemon answers the same at
    /// GET /v1/journeys/{name}/messages/{message}/preview?contact=ID.
    Preview(preview::PreviewArgs),
    /// Send a message for real to an address, through the configured provider, with the
    /// subject prefixed `[test]`; recorded as `message.test`, counted in no report or cap.
    SendTest(preview::SendTestArgs),
    /// Run scenarios (*.scenario.yaml) on a virtual clock and check their expectations.
    ///
    /// Each scenario replays contacts and events against its journeys through the same
    /// engine and store as the daemon; a failed expectation is shown as a diff. Exit 1 if
    /// any scenario fails.
    Test(test::TestArgs),
    /// Print the timeline of one scenario: time, contact, journey, what happened.
    Simulate(simulate::SimulateArgs),
    /// Measure the engine: the workloads B1-B7 of docs/performance.md.
    Bench(bench::BenchArgs),
    /// Run the daemon: the HTTP API, Segment-compatible ingestion, tracked links, deploys.
    ///
    /// Loads and deploys the journeys directory at start (a file with errors is refused and
    /// the running versions keep running), reloads it on SIGHUP, and stops cleanly on
    /// SIGTERM or Ctrl-C. On first start it writes an admin token to DATA_DIR/admin-token
    /// (mode 0600) and logs that path.
    Serve(serve::ServeArgs),
    /// Copy a sled store (a stopped daemon's DATA_DIR/store) into PostgreSQL, with a
    /// progress bar, and check the counts of each kind of record on both sides.
    MigrateStore(migrate_store::MigrateStoreArgs),
    /// Make, list and revoke API tokens (scopes `ingest`, `engagement`, `read`, `admin`).
    Token(token::TokenArgs),
    /// Show what `journey deploy` would change on a running daemon: steps added, removed and
    /// changed per journey, and the contacts in flight each touches.
    Plan(plan::PlanArgs),
    /// Deploy the journeys directory to a running daemon (refused, with the diagnostics, if a
    /// file has errors; refused if a `migrate by name` would strand contacts).
    Deploy(plan::PlanArgs),
    /// A running daemon's journeys, or one journey's versions and per-step and per-message figures.
    Status(status::StatusArgs),
    /// Pause a journey on a running daemon: no new entries; its contacts hold where they are.
    Pause(status::PauseArgs),
    /// Resume a paused journey.
    Resume(status::PauseArgs),
    /// Send events to a running daemon.
    Event(event::EventArgs),
    /// Import or show contacts on a running daemon.
    Contacts(contacts::ContactsArgs),
    /// Per message of a journey: received, opened, clicked (contacts and events), clicks
    /// per link, and the same per recipient domain.
    ///
    /// Asks the running daemon (--server, --token); with --data DIR, reads a store directory
    /// instead: a stopped daemon's, a copy of it, or one `journey simulate --data` wrote.
    Report(report::ReportArgs),
    /// The recipients of a message who opened, clicked, did not open…: a list to retarget.
    ///
    /// Asks the running daemon, or reads a store directory with --data DIR.
    Audience(audience::AudienceArgs),
    /// Count or list the contacts of a segment.
    ///
    /// Asks the running daemon, which evaluates the segments it runs; with --data DIR, the
    /// definition is read from the journey files (--journeys) and evaluated over that store.
    Segment(segment::SegmentArgs),
    /// The trend for recipient domains: bounce or open rate per domain over time.
    ///
    /// Asks the running daemon, or reads a store directory with --data DIR.
    Trend(trend::TrendArgs),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// For people: the line, a caret and a hint.
    #[default]
    Human,
    /// One JSON object per line, for editors and tools.
    Json,
    /// GitHub Actions workflow commands (`::error file=…,line=…::…`): the errors show on
    /// the pull request's lines.
    Github,
    /// One SARIF 2.1.0 log (code scanning and other tools).
    Sarif,
}

/// The default place for journeys: `journeys/` in the current directory.
pub(crate) fn default_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from("journeys")]
    } else {
        paths
    }
}

pub(crate) fn use_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check(a) => check::run(a),
        Command::Fmt(a) => fmt::run(a),
        Command::Lsp => crate::lsp::run(),
        Command::Graph(a) => graph::run(a),
        Command::Preview(a) => preview::run(a),
        Command::SendTest(a) => preview::send_test(a),
        Command::Test(a) => test::run(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Token(a) => token::run(a),
        Command::MigrateStore(a) => migrate_store::run(a),
        Command::Plan(a) => plan::run(a, false),
        Command::Deploy(a) => plan::run(a, true),
        Command::Status(a) => status::run(a),
        Command::Pause(a) => status::pause(a, true),
        Command::Resume(a) => status::pause(a, false),
        Command::Event(a) => event::run(a),
        Command::Contacts(a) => contacts::run(a),
        Command::Report(a) => report::run(a),
        Command::Audience(a) => audience::run(a),
        Command::Segment(a) => segment::run(a),
        Command::Trend(a) => trend::run(a),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        quiet_on_closed_pipe();
    }
    run(cli)
}

/// A command whose reader went away (`journey check … | head -1`) ends quietly, as Unix
/// tools do, instead of panicking on the failed write: SIGPIPE gets its default action back
/// (Rust ignores it). Not for the daemon, whose sockets must see EPIPE as an error.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
