//! Crash safety: a child process runs the engine on the system clock over a sled store and
//! is killed with SIGKILL while 10,000 contacts are waiting or moving. The store it leaves
//! must be consistent (every acknowledged contact present, every waiting instance with its
//! timer stored exactly once, every send either in the outbox or recorded as delivered), and a
//! restart must finish every contact, delivering each message, duplicates bounded by what
//! was in flight.

use journey::engine::MESSAGE_SENT;
use journey::store::Store;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const CONTACTS: usize = 10_000;
/// The journey's steps in order: a contact is always at one of them, in this order.
const STEPS: [&str; 4] = ["first", "wait_1s", "second", "check_clicked_second"];

struct Snapshot {
    outbox: usize,
    active: usize,
}

/// Checks the invariants of a store left by a killed or finished process.
fn check_consistent(store: &str, acked: usize) -> Snapshot {
    let store = Store::open_location(store).expect("store reopens after SIGKILL");
    let outbox = store.outbox().expect("outbox");
    let outbox_ids: HashSet<String> = outbox.iter().map(|j| j.message_id.clone()).collect();
    // Every stored timer, (due, instance) → how many times it is stored. Timers are written
    // in records of many; a record goes once all of its timers are done, so a timer whose
    // instance moved on may remain until then (stale: it does nothing when it fires).
    let mut stored: HashMap<(i64, u64), usize> = HashMap::new();
    for t in store.timers_between(i64::MIN, i64::MAX).expect("timers") {
        *stored.entry(t).or_default() += 1;
    }
    let mut live_timers = 0;
    let mut active = 0;
    for i in 0..CONTACTS {
        let contact = format!("c{i}");
        let instances = store.instances_of(&contact).expect("instances");
        if i < acked {
            assert_eq!(
                instances.len(),
                1,
                "{contact} was acknowledged: it must have exactly one instance, has {}",
                instances.len()
            );
        }
        assert!(instances.len() <= 1, "{contact} entered twice");
        let Some(inst) = instances.first() else {
            continue;
        };
        // The path is a prefix of the journey: every step in order, none skipped or repeated.
        assert!(
            inst.path.len() <= STEPS.len(),
            "{contact}: path too long: {:?}",
            inst.path
        );
        for (p, want) in inst.path.iter().zip(STEPS) {
            assert_eq!(
                p, want,
                "{contact}: path {:?} is not a prefix of {STEPS:?}",
                inst.path
            );
        }
        if inst.is_active() {
            active += 1;
            let due = inst.due.unwrap_or_else(|| {
                panic!(
                    "{contact}: active at {:?} without a timer",
                    inst.path.last()
                )
            });
            match stored.get(&(due, inst.id)) {
                None => panic!("{contact}: its timer at {due} is lost"),
                Some(1) => {}
                Some(n) => panic!("{contact}: its timer at {due} is stored {n} times"),
            }
            live_timers += 1;
        }
        // Every send is either waiting in the outbox or recorded as delivered, never both.
        let events = store.events_of(&contact).expect("events");
        let delivered: HashSet<String> = events
            .iter()
            .filter(|e| e.kind == MESSAGE_SENT)
            .filter_map(|e| e.message_id.clone())
            .collect();
        for (_, id, _) in &inst.sent {
            let queued = outbox_ids.contains(id);
            let recorded = delivered.contains(id);
            assert!(
                queued || recorded,
                "{contact}: send {id} is lost (neither in the outbox nor delivered)"
            );
            assert!(
                !(queued && recorded),
                "{contact}: send {id} is both queued and delivered"
            );
        }
        for id in &delivered {
            assert!(
                inst.sent.iter().any(|(_, s, _)| s == id),
                "{contact}: delivery {id} without a send"
            );
        }
    }
    assert!(stored.values().all(|n| *n == 1), "no timer is stored twice");
    assert!(stored.len() >= live_timers);
    for job in &outbox {
        let n: usize = job.contact.trim_start_matches('c').parse().unwrap();
        assert!(n < CONTACTS);
    }
    Snapshot {
        outbox: outbox.len(),
        active,
    }
}

fn deliveries(path: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(path) {
        for line in text.lines().filter(|l| !l.is_empty()) {
            *counts.entry(line.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn sigkill_loses_and_repeats_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    sigkill_on(tmp.path(), dir.to_str().unwrap());
}

/// The same on PostgreSQL: the child's store is a database.
#[test]
fn sigkill_loses_and_repeats_nothing_on_postgres() {
    let Some(pg) = journey::bench::pg_server::PgServer::for_test(
        "sigkill_loses_and_repeats_nothing_on_postgres",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    sigkill_on(tmp.path(), &pg.fresh_database().unwrap());
}

/// Kills a child running 10,000 contacts on the store at `dir` (a sled directory or a
/// PostgreSQL URL), checks what it left, restarts it, and checks every contact finished.
fn sigkill_on(tmp: &Path, dir: &str) {
    let log = tmp.join("deliveries.log");
    let bin = env!("CARGO_BIN_EXE_journey");
    let mut child = Command::new(bin)
        .args([
            "bench",
            "crash-child",
            "--contacts",
            &CONTACTS.to_string(),
            "--dir",
        ])
        .arg(dir)
        .arg("--deliveries")
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child starts");
    // Wait until every contact is acknowledged and sends are flowing, then kill mid-flight.
    // The first batch of sends after the last acknowledgement is the earliest sure sign;
    // waiting for a second one can miss the window on a loaded machine, where the engine
    // lags and the last contacts' second emails all go in one batch (the 2 s check that
    // follows sends nothing, and the child ends).
    let mut acked = 0;
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.parse().unwrap();
        } else if (line.starts_with("progress") && acked == CONTACTS) || line == "done" {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert_eq!(
        acked, CONTACTS,
        "the child acknowledged every contact before the kill"
    );

    let at_kill = check_consistent(dir, acked);
    assert!(
        at_kill.active > 0,
        "the kill should land while contacts are in flight"
    );
    let before = deliveries(&log);

    // Restart: finish everything that was waiting or queued.
    let status = Command::new(bin)
        .args(["bench", "crash-child", "--resume", "--dir"])
        .arg(dir)
        .arg("--deliveries")
        .arg(&log)
        .stdout(Stdio::null())
        .status()
        .expect("restart runs");
    assert!(status.success());
    let after = check_consistent(dir, acked);
    assert_eq!(after.active, 0, "every contact finished after the restart");
    assert_eq!(after.outbox, 0, "the outbox is drained");

    let counts = deliveries(&log);
    let store = Store::open_location(dir).unwrap();
    let mut duplicates = 0;
    for i in 0..CONTACTS {
        let inst = &store.instances_of(&format!("c{i}")).unwrap()[0];
        assert_eq!(inst.sent.len(), 2, "c{i} got both emails");
        for (_, id, _) in &inst.sent {
            let n = counts.get(id).copied().unwrap_or(0);
            assert!(n >= 1, "{id} was never delivered");
            duplicates += n - 1;
        }
    }
    // A message delivered just before the kill, whose delivery record was not yet durable,
    // goes out once more: only what was in the outbox at the kill can repeat.
    assert!(
        duplicates <= at_kill.outbox,
        "{duplicates} duplicates, but only {} sends were in flight",
        at_kill.outbox
    );
    assert!(counts.len() >= before.len());
}

/// PostgreSQL stops (`-m immediate`, as a crash of the database would) while 10,000
/// contacts are moving, and starts again: the engine waits for it, reads its state back and
/// finishes every contact, and no message is delivered twice (the sends handed to the sink
/// before the outage are not handed again).
#[test]
fn a_database_outage_loses_and_repeats_nothing() {
    let Some(pg) = journey::bench::pg_server::PgServer::for_test(
        "a_database_outage_loses_and_repeats_nothing",
    ) else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("deliveries.log");
    let stderr = tmp.path().join("child.stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_journey"))
        .args([
            "bench",
            "crash-child",
            "--contacts",
            &CONTACTS.to_string(),
            "--dir",
        ])
        .arg(&url)
        .arg("--deliveries")
        .arg(&log)
        .env("JOURNEY_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("child starts");
    let mut acked = 0;
    let mut outage = false;
    let mut done = false;
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.parse().unwrap();
        } else if line.starts_with("progress") && acked == CONTACTS && !outage {
            // The first sends after the last acknowledgement (see `sigkill_on`).
            outage = true;
            pg.stop().unwrap();
            // Down until the engine has met the outage and waits for the database.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !std::fs::read_to_string(&stderr)
                .unwrap_or_default()
                .contains("waits for the database")
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the engine never noticed the outage"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            pg.start_again().unwrap();
        } else if line == "done" {
            done = true;
            break;
        }
    }
    let status = child.wait().unwrap();
    let said = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(
        outage,
        "the outage should land while contacts are in flight"
    );
    assert!(done && status.success(), "{status}\n{said}");
    assert!(said.contains("answers again"), "{said}");
    let after = check_consistent(&url, acked);
    assert_eq!(after.active, 0, "every contact finished");
    assert_eq!(after.outbox, 0, "the outbox is drained");
    let counts = deliveries(&log);
    let store = Store::open_location(&url).unwrap();
    for i in 0..CONTACTS {
        let inst = &store.instances_of(&format!("c{i}")).unwrap()[0];
        assert_eq!(inst.sent.len(), 2, "c{i} got both emails");
        for (_, id, _) in &inst.sent {
            assert_eq!(counts.get(id).copied(), Some(1), "{id} delivered once");
        }
    }
    assert_eq!(counts.len(), 2 * CONTACTS);
}
