//! `journey status [NAME]`, `journey pause NAME`, `journey resume NAME`: a running
//! daemon's journeys and their figures.

use super::client::{Client, ServerArgs};
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// A journey: its versions, and per step and per message figures. Without: every journey.
    pub name: Option<String>,
    /// Print the daemon's JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemons on the daemon's store instead: where each listens, when each was last
    /// heard of, and the partitions each holds (several daemons on one PostgreSQL share
    /// the contacts by partition).
    #[arg(long, conflicts_with = "name")]
    pub cluster: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(clap::Args, Debug)]
pub struct PauseArgs {
    /// The journey.
    pub name: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

fn n(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

pub fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}

/// Partition numbers as ranges: `0-20 42`.
fn ranges(parts: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        let mut j = i;
        while j + 1 < parts.len() && parts[j + 1] == parts[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            parts[i].to_string()
        } else {
            format!("{}-{}", parts[i], parts[j])
        });
        i = j + 1;
    }
    if out.is_empty() {
        "-".into()
    } else {
        out.join(" ")
    }
}

/// `journey status --cluster`.
fn cluster(c: &Client, json: bool) -> ExitCode {
    let v = match c.get("/v1/cluster") {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<28} {:<22} {:<21} {:<10} {:<11} partitions",
        "daemon", "address", "started", "last seen", "held"
    );
    for d in v["daemons"].as_array().into_iter().flatten() {
        let seen = d["seconds_since_seen"].as_f64().unwrap_or(0.0);
        let this = if d["name"] == v["this"] {
            " (this one)"
        } else {
            ""
        };
        let parts: Vec<u64> = d["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect();
        println!(
            "{:<28} {:<22} {:<21} {:<10} {:<11} {}{this}",
            s(d, "name"),
            s(d, "address"),
            s(d, "started"),
            format!("{seen:.0} s ago"),
            parts.len(),
            ranges(&parts),
        );
    }
    match v.get("lease").filter(|l| !l.is_null()) {
        Some(l) => println!(
            "store: {}; {} partitions, {} held by this daemon; leases renewed {} times; {} taken over from other daemons",
            s(&v, "store"),
            n(l, "partitions"),
            l["held"].as_array().map_or(0, |a| a.len()),
            n(l, "renewals"),
            n(l, "takeovers"),
        ),
        None => println!("store: {} (one daemon; no partitions)", s(&v, "store")),
    }
    ExitCode::SUCCESS
}

pub fn run(args: StatusArgs) -> ExitCode {
    let c = Client::new(&args.server);
    if args.cluster {
        return cluster(&c, args.json);
    }
    let path = match &args.name {
        Some(n) => format!("/v1/journeys/{n}"),
        None => "/v1/journeys".into(),
    };
    let v = match c.get(&path) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    if args.name.is_none() {
        println!(
            "{:<28} {:<14} {:>8} {:>6}  entries",
            "journey", "version", "active", "state"
        );
        for j in v["journeys"].as_array().into_iter().flatten() {
            let version: String = s(j, "version").chars().take(12).collect();
            println!(
                "{:<28} {:<14} {:>8} {:>6}  {}",
                s(j, "name"),
                version,
                n(j, "active"),
                if j["paused"].as_bool() == Some(true) {
                    "paused"
                } else {
                    "live"
                },
                j["entries"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            );
        }
        return ExitCode::SUCCESS;
    }
    let t = &v["totals"];
    println!(
        "journey {} ({}){}\n  version {}; entered {}, active {}, converted {}, exited {}, completed {}",
        s(&v, "name"),
        v["title"].as_str().unwrap_or("untitled"),
        if v["paused"].as_bool() == Some(true) { " — PAUSED" } else { "" },
        s(&v, "version"),
        n(t, "entered"),
        n(t, "active"),
        n(t, "converted"),
        n(t, "exited"),
        n(t, "completed")
    );
    let plans = v["schedules"].as_array().cloned().unwrap_or_default();
    if !plans.is_empty() {
        println!();
    }
    for p in &plans {
        let next = match p["next_run"].as_str() {
            Some(t) => format!("next run {t}"),
            None => "will not run again".to_string(),
        };
        let last = p["last_run"]
            .as_str()
            .map(|t| format!(" (last run or deploy {t})"))
            .unwrap_or_default();
        println!("  entry {}: {next}{last}", s(p, "entry"));
    }
    println!("\n  {:<26} {:>10} {:>8}", "version", "instances", "active");
    for r in v["versions"].as_array().into_iter().flatten() {
        println!(
            "  {:<26} {:>10} {:>8}{}",
            s(r, "version"),
            n(r, "instances"),
            n(r, "active"),
            if r["current"].as_bool() == Some(true) {
                "  (current)"
            } else {
                ""
            }
        );
    }
    println!(
        "\n  {:<36} {:>8} {:>8} {:>8} {:>9}",
        "step", "entered", "waiting", "exited", "converted"
    );
    for r in v["steps"].as_array().into_iter().flatten() {
        println!(
            "  {:<36} {:>8} {:>8} {:>8} {:>9}",
            s(r, "step"),
            n(r, "entered"),
            n(r, "waiting"),
            n(r, "exited"),
            n(r, "converted")
        );
    }
    println!(
        "\n  {:<24} {:<8} {:>6} {:>9} {:>7} {:>7} {:>7}",
        "message", "channel", "sent", "delivered", "opened", "clicked", "bounced"
    );
    for r in v["messages"].as_array().into_iter().flatten() {
        println!(
            "  {:<24} {:<8} {:>6} {:>9} {:>7} {:>7} {:>7}",
            s(r, "message"),
            s(r, "channel"),
            n(r, "sent"),
            n(r, "delivered"),
            n(r, "opened"),
            n(r, "clicked"),
            n(r, "bounced")
        );
    }
    ExitCode::SUCCESS
}

pub fn pause(args: PauseArgs, pause: bool) -> ExitCode {
    let c = Client::new(&args.server);
    let verb = if pause { "pause" } else { "resume" };
    match c.send(
        "POST",
        &format!("/v1/journeys/{}/{verb}", args.name),
        &json!({}),
    ) {
        Ok(_) => {
            eprintln!(
                "journey {} {}",
                args.name,
                if pause {
                    "paused: no new entries; its contacts hold"
                } else {
                    "resumed"
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
