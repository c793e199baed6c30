//! `journey bench`: the command line of the benchmark harness (`crate::bench`).

use crate::bench;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub workload: Workload,
}

#[derive(clap::Subcommand, Debug)]
pub enum Workload {
    /// B1 + B2: send, check clicked within 1s, branch; half the contacts click. Prints the
    /// processing rate, timer lateness (when fired, and when durable), store writes per
    /// contact, peak memory and how many clicks won their race (from the branches taken),
    /// beside raw sled's batched write rate measured in the same run.
    Clicks {
        /// How many contacts to enrol.
        #[arg(long, default_value_t = 20_000)]
        contacts: usize,
        /// Where to put the store (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Run on PostgreSQL instead of sled: a server of its own (initdb, pg_ctl; its
        /// defaults, synchronous_commit on), compared with pgbench inserting rows of the
        /// same size in transactions of the same batch size.
        #[arg(long)]
        postgres: bool,
    },
    /// B3: contacts waiting in a 3-day check: memory, size on disk, and the time from opening
    /// the store to the first due timer fired.
    Waiting {
        #[arg(long, default_value_t = 1_000_000)]
        contacts: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
        /// On PostgreSQL: a server the benchmark starts (initdb, pg_ctl), with its defaults.
        #[arg(long)]
        postgres: bool,
        /// Internal: only the restart, over the store in --dir, in this fresh process.
        #[arg(long, hide = true, requires = "dir")]
        restart: bool,
    },
    /// The console's journey page with many contacts in flight: the daemon's start (live
    /// counts rebuilt from the store), then p50/p99/max of the journey page, its counts and
    /// the journeys list over keep-alive HTTP on 127.0.0.1.
    Console {
        /// How many contacts in flight.
        #[arg(long, default_value_t = 100_000)]
        contacts: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// B4: events/s over HTTP in requests of 100 events, each acknowledged once durable, from
    /// concurrent connections on 127.0.0.1 to a `journey serve` child process; raw sled's
    /// write rate beside it, measured in the same run.
    Ingest {
        /// How many events to send.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Concurrent keep-alive connections (one load thread each).
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Events per request.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Distinct contacts the events are spread over.
        #[arg(long, default_value_t = 10_000)]
        contacts: usize,
        /// Journeys the daemon loads (default: none, so an event enrols no one).
        #[arg(long)]
        journeys: Option<PathBuf>,
        /// Where to put the daemon's data (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Give every event an idempotency id (its dedupe key is one more write).
        #[arg(long)]
        ids: bool,
    },
    /// B7: a two-rule segment over many contacts with many events: full evaluation, the
    /// incremental update per incoming event (mean, p99), and segment checks as time passes.
    Segments {
        #[arg(long, default_value_t = 1_000_000)]
        contacts: usize,
        #[arg(long, default_value_t = 10_000_000)]
        events: usize,
        /// How many incoming events to time one by one.
        #[arg(long, default_value_t = 10_000)]
        updates: usize,
        /// Where to put the store (default: a temporary directory). A directory already
        /// filled by this benchmark with the same sizes is reused.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Internal: write contacts from..to of the store in --dir, and exit.
        #[arg(long, hide = true, requires = "fill_to")]
        fill_from: Option<usize>,
        #[arg(long, hide = true)]
        fill_to: Option<usize>,
    },
    /// B1 over several `journey serve` processes on one PostgreSQL (a server of the
    /// benchmark's own): contacts/s with N daemons, the events posted round-robin to them;
    /// then, with --takeover, the time from killing (or pausing) one daemon to the first
    /// timer of its partitions fired by another.
    Cluster {
        /// How many daemons.
        #[arg(long, default_value_t = 2)]
        daemons: usize,
        #[arg(long, default_value_t = 20_000)]
        contacts: usize,
        /// `kill` (SIGKILL; on one host its partitions are taken at the next round) or
        /// `stop` (SIGSTOP; taken at the leases' expiry, as for another machine).
        #[arg(long, value_parser = ["kill", "stop"])]
        takeover: Option<String>,
    },
    /// The language server on B5's workspace (1 MB of generated source in 8 files): a
    /// `journey lsp` child process over stdio, every file opened, then one-character edits
    /// timed to their diagnostics and completions timed to their answer (median, p95), and
    /// the server's peak memory.
    Lsp {
        /// Bytes of generated source.
        #[arg(long, default_value_t = bench::source::B5_BYTES)]
        bytes: usize,
        /// Files the source is spread over.
        #[arg(long, default_value_t = bench::source::B5_FILES)]
        files: usize,
        /// One-character edits to time.
        #[arg(long, default_value_t = 200)]
        edits: usize,
        /// Completion requests to time.
        #[arg(long, default_value_t = 200)]
        completions: usize,
        /// Where to write the workspace (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Used by the crash test: run a journey on the system clock over a store, printing
    /// progress, until killed or done.
    #[command(hide = true)]
    CrashChild {
        /// The store: a sled directory, or a PostgreSQL URL.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        contacts: usize,
        /// File the sink appends each delivered message id to.
        #[arg(long)]
        deliveries: PathBuf,
        /// Enrol nobody: only resume what the store holds.
        #[arg(long)]
        resume: bool,
    },
}

pub fn run(args: BenchArgs) -> ExitCode {
    let result = match args.workload {
        Workload::Clicks {
            contacts,
            dir,
            postgres,
        } => bench::clicks(contacts, dir, postgres),
        Workload::Waiting {
            dir: Some(dir),
            restart: true,
            ..
        } => bench::waiting_restart(&dir),
        Workload::Waiting {
            contacts,
            dir,
            postgres,
            ..
        } => bench::waiting(contacts, dir, postgres),
        Workload::Console { contacts, dir } => bench::console(contacts, dir),
        Workload::Ingest {
            events,
            connections,
            batch,
            contacts,
            journeys,
            dir,
            ids,
        } => bench::ingest::ingest(bench::ingest::IngestOptions {
            events,
            connections: connections.max(1),
            batch: batch.max(1),
            contacts,
            journeys,
            dir,
            ids,
        }),
        Workload::Segments {
            contacts,
            events,
            dir: Some(dir),
            fill_from: Some(from),
            fill_to: Some(to),
            ..
        } => bench::segments::fill_range(&dir, contacts, events, from, to),
        Workload::Segments {
            contacts,
            events,
            updates,
            dir,
            ..
        } => bench::segments::run(contacts, events, updates, dir),
        Workload::Cluster {
            daemons,
            contacts,
            takeover,
        } => bench::cluster(bench::ClusterOptions {
            daemons: daemons.max(1),
            contacts,
            takeover,
        }),
        Workload::Lsp {
            bytes,
            files,
            edits,
            completions,
            dir,
        } => bench::lsp(bench::LspOptions {
            bytes,
            files: files.max(1),
            edits,
            completions,
            dir,
        }),
        Workload::CrashChild {
            dir,
            contacts,
            deliveries,
            resume,
        } => {
            // The child logs as the daemon does (the outage test reads it).
            super::serve::init_logging();
            bench::crash_child(dir, contacts, deliveries, resume)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
