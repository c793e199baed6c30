//! The PostgreSQL store: the same engine on it as on sled. Each test starts a real
//! PostgreSQL of its own (`initdb`, `pg_ctl` on a free port); where PostgreSQL is missing,
//! the test fails in CI (`CI=true`) and is skipped elsewhere, saying so.

use journey::bench::pg_server::PgServer;
use journey::engine::{Contact, Event};
use journey::runtime::{Input, MemorySink, Runtime};
use journey::store::Store;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `journey test` over the examples and the passing fixtures, each scenario on a schema of
/// its own in PostgreSQL: every one passes, as on sled.
#[test]
fn every_scenario_passes_on_postgres() {
    let Some(pg) = PgServer::for_test("every_scenario_passes_on_postgres") else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    for dir in ["journeys", "tests/fixtures/scenarios/pass"] {
        let o = Command::new(env!("CARGO_BIN_EXE_journey"))
            .args(["test", dir])
            .env("JOURNEY_STORE_URL", &url)
            .env("NO_COLOR", "1")
            .current_dir(root())
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{dir}:\n{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains(" 0 failed"), "{out}");
        assert!(!out.contains("scenarios: 0 passed"), "{out}");
    }
    // The scenarios did run on the database: with none there, they cannot.
    let o = Command::new(env!("CARGO_BIN_EXE_journey"))
        .args(["test", "journeys/welcome.scenario.yaml"])
        .env("JOURNEY_STORE_URL", pg.url("no_such_database"))
        .current_dir(root())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("no_such_database"), "{out}");
    // Each scenario's schema went with it.
    let left = pg
        .psql(
            url.rsplit('/').next().unwrap(),
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'journey_scratch_%'",
        )
        .unwrap();
    assert_eq!(left, "0");
}

const WELCOME: &str = r#"journey welcome {
  entry event "signed_up"
  policy none
  send email hello {
    subject "Welcome {{ contact.first_name }}"
    text "Hi"
  }
  check clicked hello within 2d {
    yes { send email thanks { subject "Thanks" text "t" } }
    no { send email nudge { subject "Nudge" text "n" } }
  }
}
"#;

fn program() -> journey::compile::ir::Program {
    let mut loaded = journey::lang::Loaded::default();
    journey::lang::add_source(&mut loaded, "w.journey", WELCOME.to_string());
    let c = journey::compile::compile(&loaded);
    c.program.unwrap_or_else(|| panic!("{:?}", c.diagnostics))
}

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400_000;

/// The runtime over PostgreSQL: state survives a reconnect (a restart), the typed columns
/// say what the engine stored, and a database of a newer schema is refused.
#[test]
fn the_runtime_runs_on_postgres_and_its_tables_are_readable() {
    let Some(pg) = PgServer::for_test("the_runtime_runs_on_postgres_and_its_tables_are_readable")
    else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let db = url.rsplit('/').next().unwrap().to_string();
    {
        let store = Store::connect(&url).unwrap();
        let mut rt = Runtime::new(store, T0, chrono_tz::UTC).unwrap();
        rt.deploy(program(), T0).unwrap();
        for (id, name) in [("ann", "Ann"), ("bob", "Bob")] {
            let mut c = Contact {
                id: id.into(),
                profile: Default::default(),
            };
            c.profile
                .insert("email".into(), format!("{id}@example.com").into());
            c.profile.insert("first_name".into(), name.into());
            rt.upsert_contact(&c).unwrap();
        }
        let mut sink = MemorySink::default();
        let mut timeline = Vec::new();
        let inputs = ["ann", "bob"]
            .iter()
            .map(|c| {
                Input::Event(Event {
                    contact: c.to_string(),
                    kind: "signed_up".into(),
                    at: T0,
                    ..Event::default()
                })
            })
            .collect();
        rt.run_at(inputs, T0, &mut sink, &mut timeline).unwrap();
        assert_eq!(sink.delivered.len(), 2);
        // Ann clicks; Bob does not.
        let click = Event {
            contact: "ann".into(),
            kind: "clicked".into(),
            at: T0 + 1000,
            message: Some("hello".into()),
            journey: Some("welcome".into()),
            ..Event::default()
        };
        rt.run_at(
            vec![Input::Event(click)],
            T0 + 1000,
            &mut sink,
            &mut timeline,
        )
        .unwrap();
    }
    // A restart: a new connection finds Bob's timer and sends the nudge at its time.
    let store = Store::connect(&url).unwrap();
    let mut rt = Runtime::new(store, T0 + 3 * DAY, chrono_tz::UTC).unwrap();
    rt.deploy(program(), T0 + 3 * DAY).unwrap();
    let mut sink = MemorySink::default();
    let mut timeline = Vec::new();
    rt.tick(T0 + 3 * DAY, &mut sink, &mut timeline).unwrap();
    let sent: Vec<(String, String)> = sink
        .delivered
        .iter()
        .map(|(j, _)| (j.contact.clone(), j.message.clone()))
        .collect();
    assert_eq!(sent, vec![("bob".to_string(), "nudge".to_string())]);
    assert_eq!(
        rt.store.events_of("ann").unwrap().len(),
        4,
        "signed_up, sent, clicked, sent"
    );

    // What an analyst sees.
    let q = |sql: &str| pg.psql(&db, sql).unwrap();
    assert_eq!(
        q("SELECT profile->>'first_name' FROM contacts WHERE id = 'ann'"),
        "Ann"
    );
    assert_eq!(
        q("SELECT count(*) FROM events WHERE contact = 'ann' AND type = 'clicked'"),
        "1"
    );
    assert_eq!(
        q("SELECT journey || ':' || coalesce(ended, '-') FROM instances WHERE contact = 'bob'"),
        "welcome:completed"
    );
    assert_eq!(q("SELECT max(version) FROM journey_schema"), "6");
    // A new database gets 64 partitions, and the engine's records carry theirs.
    assert_eq!(q("SELECT count(*) FROM journey_partitions"), "64");

    // A database left at the first schema is upgraded at the next connection (version 2
    // added the API tokens' table, 3 the lease's epoch, 4 the daemons' list, 5 an index of
    // instances by contact, 6 the partitions' leases and the inbox), and keeps its data.
    drop(rt);
    q("DROP TABLE api_tokens; DROP TABLE journey_daemons; DROP INDEX instances_by_contact; DROP TABLE journey_partitions; DROP TABLE journey_inbox; CREATE TABLE journey_lease (name text PRIMARY KEY, owner text NOT NULL, expires timestamptz NOT NULL); DELETE FROM journey_schema WHERE version >= 2");
    let upgraded = Store::connect(&url).unwrap();
    drop(upgraded);
    assert_eq!(q("SELECT max(version) FROM journey_schema"), "6");
    // Its records mix every contact: one partition, for one daemon at a time.
    assert_eq!(q("SELECT count(*) FROM journey_partitions"), "1");
    assert_eq!(q("SELECT count(*) FROM journey_inbox"), "0");
    assert_eq!(q("SELECT to_regclass('journey_lease') IS NULL"), "t");
    assert_eq!(
        q("SELECT count(*) FROM pg_indexes WHERE indexname = 'instances_by_contact'"),
        "1"
    );
    assert_eq!(q("SELECT count(*) FROM journey_daemons"), "0");
    assert_eq!(q("SELECT count(*) FROM api_tokens"), "0");
    assert_eq!(
        q("SELECT count(*) FROM events WHERE contact = 'ann' AND type = 'clicked'"),
        "1"
    );

    // A schema newer than this code knows is refused, clearly.
    q("INSERT INTO journey_schema (version) VALUES (99)");
    let err = Store::connect(&url).err().expect("refused").to_string();
    assert!(err.contains("schema is version 99"), "{err}");
}

#[path = "daemon_common/mod.rs"]
mod daemon_common;
mod support;

/// The daemon on PostgreSQL (`store.url`): a contact signs up, gets the welcome email, and
/// keeps its place across a SIGKILL and a restart; nothing is written to a sled store.
#[test]
fn the_daemon_runs_on_postgres_and_survives_a_kill() {
    use daemon_common::*;
    let Some(pg) = PgServer::for_test("the_daemon_runs_on_postgres_and_survives_a_kill") else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let mut d = Daemon::start_with(tmp.path(), &format!("store:\n  url: {url}\n"));
    assert_eq!(d.sign_up("angela").0, 200);
    wait_for("angela's welcome", 30, || d.delivery("angela", "welcome"));
    d.kill();
    d.spawn();
    let c = d.contact("angela");
    assert_eq!(
        step_of(&c, "welcome_promo").as_deref(),
        Some("check_clicked_welcome_profile"),
        "the restart lost angela's place: {c}"
    );
    assert!(!tmp.path().join("data/store").exists(), "no sled store");
    let db = url.rsplit('/').next().unwrap();
    assert_eq!(
        pg.psql(
            db,
            "SELECT count(*) FROM events WHERE contact = 'angela' AND type = 'message.sent'"
        )
        .unwrap(),
        "1"
    );
    // The API tokens are in the database, not beside the daemon: one made with the CLI
    // works at once, and a revoked one stops working.
    assert!(!tmp.path().join("data/tokens.json").exists());
    assert_eq!(
        pg.psql(db, "SELECT scope || ':' || note FROM api_tokens")
            .unwrap(),
        "admin:first start"
    );
    let config = tmp.path().join("journey.yaml");
    let config = config.to_str().unwrap();
    let made = d.cli(&["token", "create", "--scope", "read", "--config", config]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let token = String::from_utf8_lossy(&made.stdout).trim().to_string();
    assert_eq!(
        d.call("GET", "/v1/contacts/angela", Some(&token), None).0,
        200
    );
    // `jt_read_` + the 8-character id + the secret part.
    let id = token["jt_read_".len().."jt_read_".len() + 8].to_string();
    assert!(d
        .cli(&["token", "revoke", &id, "--config", config])
        .status
        .success());
    wait_for("the revoked token to be refused", 10, || {
        (d.call("GET", "/v1/contacts/angela", Some(&token), None).0 == 401).then_some(())
    });
}

fn journey_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_journey"))
        .args(args)
        .env("NO_COLOR", "1")
        .current_dir(root())
        .output()
        .unwrap()
}

/// `journey migrate-store`: a sled store (the April newsletter scenario's) copied into
/// PostgreSQL reads the same: the same report, the same contact; a second copy into the
/// same database is refused; ids stay unique.
#[test]
fn migrate_store_copies_sled_into_postgres() {
    let Some(pg) = PgServer::for_test("migrate_store_copies_sled_into_postgres") else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    let o = journey_cli(&[
        "simulate",
        "journeys/newsletter_retarget.scenario.yaml",
        "--data",
        d,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The daemon's API token, beside the store (DATA_DIR/tokens.json).
    let config = tmp.path().join("journey.yaml");
    std::fs::write(&config, format!("data_dir: {}\n", tmp.path().display())).unwrap();
    let token_cli = |args: &[&str], store_url: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_journey"));
        c.arg("token").args(args).arg("--config").arg(&config);
        match store_url {
            Some(u) => c.env("JOURNEY_STORE_URL", u),
            None => c.env_remove("JOURNEY_STORE_URL"),
        };
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    token_cli(&["create", "--scope", "ingest", "--note", "the shop"], None);
    let listed = token_cli(&["list"], None);
    assert!(listed.contains("the shop"), "{listed}");

    let o = journey_cli(&["migrate-store", "--from", d, "--to", &url, "--batch", "50"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    assert!(err.contains("the counts of each kind match"), "{err}");
    assert!(err.contains("events"), "{err}");
    assert!(err.contains("copied 1 API tokens"), "{err}");
    // The same token, now read from the database.
    assert_eq!(token_cli(&["list"], Some(&url)), listed);

    for args in [
        vec!["report", "april_newsletter"],
        vec![
            "audience",
            "april_newsletter.april_issue",
            "--who",
            "non-openers",
        ],
    ] {
        let on = |data: &str| {
            let mut a = args.clone();
            a.extend(["--data", data]);
            let o = journey_cli(&a);
            assert!(
                o.status.success(),
                "{a:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).to_string()
        };
        assert_eq!(on(d), on(&url), "{args:?}");
    }

    let o = journey_cli(&["migrate-store", "--from", d, "--to", &url]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already holds data"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Ids handed out after the copy are above every id the sled store gave.
    let pg_store = Store::connect(&url).unwrap();
    let last = pg_store
        .all_instances()
        .map(|i| i.unwrap().id)
        .max()
        .expect("instances were copied");
    assert!(pg_store.next_id().unwrap() > last);
}

/// The database goes away under a running daemon and comes back: meanwhile ingestion
/// answers 503 (with `Retry-After`, naming the database) and `/healthz` says why; once it is
/// back the daemon resumes on its own, and nothing acknowledged was lost or sent twice.
#[test]
fn the_daemon_waits_for_a_database_that_goes_away() {
    use daemon_common::*;
    let Some(pg) = PgServer::for_test("the_daemon_waits_for_a_database_that_goes_away") else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let db = url.rsplit('/').next().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let d = Daemon::start_with(tmp.path(), &format!("store:\n  url: {url}\n"));
    assert_eq!(d.sign_up("angela").0, 200);
    wait_for("angela's welcome", 30, || d.delivery("angela", "welcome"));

    pg.stop().unwrap();
    let signup = serde_json::json!({"contact": "bob", "type": "form_compiled", "properties": {"formName": "addUser"}, "context": "web"});
    let (status, body) = d.post_events(signup.clone());
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "store_unavailable", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("PostgreSQL at 127.0.0.1:{}/{db}", pg.port())),
        "the error names the database: {message}"
    );
    let r = d
        .agent
        .get(&format!("{}/healthz", d.base))
        .call()
        .unwrap_err();
    let ureq::Error::Status(503, r) = r else {
        panic!("healthz: {r}")
    };
    assert_eq!(r.header("retry-after"), Some("2"));
    let health: serde_json::Value = r.into_json().unwrap();
    assert_eq!(health["status"], "store_unavailable", "{health}");
    // An upsert is refused the same way.
    let (status, body) = d.admin_call(
        "PUT",
        "/v1/contacts/bob",
        Some(&serde_json::json!({"email": "bob@example.com"})),
    );
    assert_eq!(status, 503, "{body}");

    pg.start_again().unwrap();
    // The daemon finds the database again by itself: the same requests now succeed.
    wait_for("the daemon to take events again", 60, || {
        let (s, _) = d.admin_call(
            "PUT",
            "/v1/contacts/bob",
            Some(&serde_json::json!({"email": "bob@example.com"})),
        );
        (s == 200).then_some(())
    });
    assert_eq!(d.post_events(signup).0, 200);
    wait_for("bob's welcome", 30, || d.delivery("bob", "welcome"));
    assert_eq!(
        d.agent
            .get(&format!("{}/healthz", d.base))
            .call()
            .unwrap()
            .status(),
        200
    );
    let log = d.stderr();
    assert!(log.contains("waits for the database"), "{log}");
    assert!(log.contains("answers again"), "{log}");
    // Each welcome was sent once, and angela kept her place.
    for who in ["angela", "bob"] {
        assert_eq!(
            pg.psql(
                &db,
                &format!(
                    "SELECT count(*) FROM events WHERE contact = '{who}' AND type = 'message.sent'"
                )
            )
            .unwrap(),
            "1",
            "{who}"
        );
    }
    assert_eq!(
        step_of(&d.contact("angela"), "welcome_promo").as_deref(),
        Some("check_clicked_welcome_profile")
    );
}

/// A daemon started while its database is down waits for it (a log line a try) and starts
/// once it answers; wrong credentials or a database that does not exist are errors at once.
#[test]
fn the_daemon_waits_for_its_database_at_start_and_refuses_a_wrong_one() {
    use daemon_common::*;
    let Some(pg) =
        PgServer::for_test("the_daemon_waits_for_its_database_at_start_and_refuses_a_wrong_one")
    else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    // A malformed URL, no such database, or a user the server does not know: an error at
    // once, naming the store.
    for (bad, says) in [
        (
            "postgres://journey@127.0.0.1:notaport/x".to_string(),
            "store URL",
        ),
        (pg.url("no_such_database"), "no_such_database"),
        (
            url.replace("postgres://journey@", "postgres://nobody@"),
            "nobody",
        ),
    ] {
        let other = tempfile::tempdir().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_journey"))
            .args(["serve", "--config"])
            .arg(Daemon::config(
                other.path(),
                "127.0.0.1:0",
                &format!("store:\n  url: {bad}\n"),
            ))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("PostgreSQL"), "{err}");
        assert!(err.contains(says), "{err}");
    }
    pg.stop().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    copy_welcome(tmp.path());
    let log = tmp.path().join("daemon.stderr");
    let d = std::thread::scope(|s| {
        // The database comes back once the daemon has said it waits for it.
        s.spawn(|| {
            wait_for("the daemon to wait for its database", 60, || {
                std::fs::read_to_string(&log)
                    .ok()
                    .filter(|t| t.contains("waits for the database"))
            });
            pg.start_again().unwrap();
        });
        Daemon::start_with(tmp.path(), &format!("store:\n  url: {url}\n"))
    });
    assert_eq!(d.sign_up("angela").0, 200);
    wait_for("angela's welcome", 30, || d.delivery("angela", "welcome"));
}

/// Two daemons on one database share its partitions: each takes half, and either takes
/// any contact's events (those of the other's partitions go to its inbox). The first is
/// paused (SIGSTOP) past its leases: the second takes its partitions over and serves their
/// contacts. The first, resumed (SIGCONT), is fenced out of them: it commits nothing for
/// them, drops them, and gets its share back from the second. Nobody is sent anything twice.
#[test]
fn two_daemons_share_the_partitions_and_a_paused_one_is_fenced_out() {
    use daemon_common::*;
    let Some(pg) =
        PgServer::for_test("two_daemons_share_the_partitions_and_a_paused_one_is_fenced_out")
    else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let db = url.rsplit('/').next().unwrap().to_string();
    let store = format!("store:\n  url: {url}\n");
    let tmp_a = tempfile::tempdir().unwrap();
    copy_welcome(tmp_a.path());
    let mut a = Daemon::start_with(tmp_a.path(), &store);
    // The second: the same journeys, its own data directory, the same database. The
    // tokens are in the database: the first daemon's admin token works on it.
    let tmp_b = tempfile::tempdir().unwrap();
    copy_welcome(tmp_b.path());
    std::fs::create_dir_all(tmp_b.path().join("data")).unwrap();
    std::fs::write(tmp_b.path().join("data/admin-token"), &a.admin).unwrap();
    let mut b = Daemon::start_with(tmp_b.path(), &store);
    let held = |d: &Daemon| -> Vec<u16> { d.held_partitions().expect("/v1/cluster answers") };
    wait_for("the partitions shared out, 32 each", 60, || {
        (held(&a).len() == 32 && held(&b).len() == 32).then_some(())
    });
    let of_a = held(&a);
    // `journey status --cluster` lists both, with their partitions.
    let o = a.cli(&["status", "--cluster"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("64 partitions, 32 held by this daemon"),
        "{out}"
    );
    assert!(out.contains(" 0-31") && out.contains(" 32-63"), "{out}");
    // A deploy through one daemon reaches the other, and so do a pause and a resume.
    let changed = tempfile::tempdir().unwrap();
    copy_welcome(changed.path());
    let welcome = changed.path().join("journeys/welcome.journey");
    let text = std::fs::read_to_string(&welcome).unwrap();
    std::fs::write(&welcome, text.replace("within 3d", "within 4d")).unwrap();
    std::fs::write(
        changed.path().join("journeys/hello.journey"),
        "journey hello {\n  entry event \"hello\"\n  send email hi {\n    subject \"Hi\"\n    text \"Hi!\"\n  }\n}\n",
    )
    .unwrap();
    let o = a.cli(&[
        "deploy",
        "--dir",
        changed.path().join("journeys").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let journey_on = |d: &Daemon, name: &str| {
        let (s, v) = d.admin_call("GET", "/v1/journeys", None);
        assert_eq!(s, 200, "{v}");
        v["journeys"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j["name"] == name)
            .cloned()
    };
    wait_for("the deploy to reach the second daemon", 30, || {
        journey_on(&b, "hello")
    });
    let o = a.cli(&["pause", "welcome_promo"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("the pause to reach the second daemon", 30, || {
        (journey_on(&b, "welcome_promo")?["paused"] == true).then_some(())
    });
    let o = b.cli(&["resume", "welcome_promo"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("the resume to reach the first daemon", 30, || {
        (journey_on(&a, "welcome_promo")?["paused"] == false).then_some(())
    });

    let sent = |who: &str| {
        pg.psql(
            &db,
            &format!(
                "SELECT count(*) FROM events WHERE contact = '{who}' AND type = 'message.sent'"
            ),
        )
        .unwrap()
    };
    // Contacts signed up through either daemon, whichever holds them: one welcome each.
    let people: Vec<String> = (0..16).map(|i| format!("person{i}")).collect();
    let mut routed = 0;
    for (i, p) in people.iter().enumerate() {
        let d = if i % 2 == 0 { &a } else { &b };
        let mine = of_a.contains(&journey::store::partition_of(p, 64)) == (i % 2 == 0);
        routed += usize::from(!mine);
        assert_eq!(d.sign_up(p).0, 200);
    }
    assert!(routed > 0, "some went to the other daemon's inbox");
    wait_for("everyone's welcome", 60, || {
        people.iter().all(|p| sent(p) == "1").then_some(())
    });
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM journey_inbox").unwrap(),
        "0"
    );
    // An erasure asked of the daemon that does not hold the contact: handed to the other.
    let erin = (0..)
        .map(|i| format!("erin{i}"))
        .find(|c| !of_a.contains(&journey::store::partition_of(c, 64)))
        .unwrap();
    assert_eq!(b.sign_up(&erin).0, 200);
    wait_for("erin's welcome", 30, || (sent(&erin) == "1").then_some(()));
    let (s, v) = a.admin_call("DELETE", &format!("/v1/contacts/{erin}"), None);
    assert_eq!(s, 202, "{v}");
    assert!(v["note"].as_str().unwrap().contains("inbox"), "{v}");
    wait_for("erin erased by the daemon holding her", 30, || {
        let left = pg
            .psql(
                &db,
                &format!("SELECT count(*) FROM events WHERE contact = '{erin}'"),
            )
            .unwrap();
        (left == "0").then_some(())
    });
    let (s, _) = b.admin_call("GET", &format!("/v1/contacts/{erin}"), None);
    assert_eq!(s, 404);

    // The first is paused past its leases (10 s): the second takes its partitions over.
    let pid_a = a.child.as_ref().unwrap().id().to_string();
    let signal = |sig: &str, pid: &str| {
        assert!(Command::new("kill")
            .args([sig, pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP", &pid_a);
    wait_for("the second to hold every partition", 60, || {
        (held(&b).len() == 64).then_some(())
    });
    let metrics = b.metrics();
    assert!(metrics.contains("journey_partitions_held 64"), "{metrics}");
    assert!(
        metrics.contains("journey_lease_takeovers_total 32"),
        "{metrics}"
    );
    // A contact of the first's partitions is served by the second.
    let in_a = |prefix: &str| {
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|c| of_a.contains(&journey::store::partition_of(c, 64)))
            .unwrap()
    };
    let bob = in_a("bob");
    assert_eq!(b.sign_up(&bob).0, 200);
    wait_for("bob's welcome, sent by the second", 30, || {
        (sent(&bob) == "1").then_some(())
    });

    // The first wakes up: it commits nothing for the partitions it lost (what it is sent
    // meanwhile is refused, and the sender retries, or goes to the inbox), drops them, and
    // gets its share back.
    signal("-CONT", &pid_a);
    let carol = in_a("carol");
    wait_for("carol's sign-up taken by the first", 60, || {
        (a.sign_up(&carol).0 == 200).then_some(())
    });
    wait_for("carol's welcome", 60, || {
        (sent(&carol) == "1").then_some(())
    });
    wait_for("the partitions shared out again", 60, || {
        let (x, y) = (held(&a), held(&b));
        (x.len() + y.len() == 64 && !x.is_empty() && !y.is_empty()).then_some(())
    });
    assert!(
        a.stderr().contains("taken by another daemon"),
        "{}",
        a.stderr()
    );
    // Nobody was sent anything twice.
    for p in people.iter().chain([&bob, &carol]) {
        assert_eq!(sent(p), "1", "{p}");
    }
    a.kill();
    b.kill();
}

/// TLS to the database: a URL without `sslmode=require` is refused by a server that takes
/// TLS only; with it, a certificate from an unknown authority is refused; with the
/// authority given (`sslrootcert`), the store works, from the library and the binary.
#[test]
fn the_store_speaks_tls_when_asked_and_checks_the_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let pg = match PgServer::start_tls(&server.pem(), &server_key.serialize_pem()) {
        Ok(pg) => pg,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL with TLS did not start: {e}")
        }
        Err(e) => {
            eprintln!("skipped: PostgreSQL did not start: {e}");
            return;
        }
    };
    let url = pg.fresh_database().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let err = Store::connect(&url)
        .err()
        .expect("refused without TLS")
        .to_string();
    assert!(
        err.contains("no encryption") || err.contains("rejects"),
        "{err}"
    );
    let err = Store::connect(&format!("{url}?sslmode=require"))
        .err()
        .expect("an unknown authority")
        .to_string();
    assert!(err.contains("certificate"), "{err}");
    let err = Store::connect(&format!("{url}?sslrootcert={}", ca_file.display()))
        .err()
        .expect("sslrootcert without sslmode=require")
        .to_string();
    assert!(err.contains("sslmode=require"), "{err}");

    let tls_url = format!("{url}?sslmode=require&sslrootcert={}", ca_file.display());
    let store = Store::connect(&tls_url).unwrap();
    let mut b = journey::store::WriteBatch::default();
    b.put_contact(&Contact {
        id: "ann".into(),
        profile: Default::default(),
    });
    store.apply(b).unwrap();
    assert!(store.contact("ann").unwrap().is_some());
    drop(store);
    // The binary reads the same URL (a token made in the database over TLS).
    let config = tmp.path().join("journey.yaml");
    std::fs::write(&config, format!("data_dir: {}\n", tmp.path().display())).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_journey"))
        .args(["token", "create", "--scope", "read", "--config"])
        .arg(&config)
        .env("JOURNEY_STORE_URL", &tls_url)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        pg.psql(
            url.rsplit('/').next().unwrap(),
            "SELECT scope FROM api_tokens"
        )
        .unwrap(),
        "read"
    );
}

/// A psql session kept open on its standard input: the test holds a row lock with it while
/// the store commits in the background, so that the commit waits as long as the test likes.
struct LockingSession {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl LockingSession {
    fn start(pg: &PgServer, db: &str) -> LockingSession {
        let mut child = Command::new(pg.tool("psql"))
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(pg.url(db))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("psql starts");
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        LockingSession { child, out }
    }

    /// Sends SQL, then waits for the session to print `marker` (its statements are done).
    fn run(&mut self, sql: &str, marker: &str) {
        use std::io::{BufRead, Write};
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{sql}\n\\echo {marker}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "psql ended");
            if line.trim() == marker {
                return;
            }
        }
    }
}

impl Drop for LockingSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The engine prepares its next batch while the last one commits: the thread that applied
/// a batch in the background reads its writes before the commit is known (here the commit
/// waits on a row another session holds), its outcome comes from `settle` once, and a batch
/// whose commit fails leaves the store as it was.
#[test]
fn a_batch_committing_in_the_background_is_read_before_it_commits() {
    let Some(pg) =
        PgServer::for_test("a_batch_committing_in_the_background_is_read_before_it_commits")
    else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let db = url.rsplit('/').next().unwrap().to_string();
    let store = Store::connect(&url).unwrap();
    let contact = |plan: &str| {
        let mut profile = serde_json::Map::new();
        profile.insert("plan".into(), plan.into());
        Contact {
            id: "ann".into(),
            profile,
        }
    };
    let mut b = journey::store::WriteBatch::default();
    b.put_contact(&contact("free"));
    store.apply(b).unwrap();
    let plan_read_ahead = |store: &Store| {
        store.prefetch_contacts(["ann"].into_iter()).unwrap();
        store.contact("ann").unwrap().unwrap().profile["plan"].clone()
    };

    // The commit waits for the lock; the batch is read at once all the same.
    let mut lock = LockingSession::start(&pg, &db);
    lock.run(
        "BEGIN; SELECT k IS NULL FROM contacts FOR UPDATE;",
        "locked",
    );
    let mut b = journey::store::WriteBatch::default();
    b.put_contact(&contact("pro"));
    store.apply_in_background(b).unwrap();
    assert_eq!(plan_read_ahead(&store), "pro");
    let elsewhere = Store::connect(&url).unwrap();
    assert_eq!(
        elsewhere.contact("ann").unwrap().unwrap().profile["plan"],
        "free",
        "not committed yet"
    );
    lock.run("ROLLBACK;", "released");
    store.settle().unwrap();
    assert_eq!(
        elsewhere.contact("ann").unwrap().unwrap().profile["plan"],
        "pro"
    );

    // A commit that fails (its connection cut while it waits): told once, by `settle`,
    // and nothing of the batch is read or stored.
    lock.run(
        "BEGIN; SELECT k IS NULL FROM contacts FOR UPDATE;",
        "locked again",
    );
    let mut b = journey::store::WriteBatch::default();
    b.put_contact(&contact("enterprise"));
    store.apply_in_background(b).unwrap();
    assert_eq!(plan_read_ahead(&store), "enterprise");
    // Once the commit waits for the lock (not before: the cut must find it), its
    // connection is cut.
    lock.run(
        "DO $$ BEGIN
           WHILE NOT EXISTS (SELECT 1 FROM pg_stat_activity
                             WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()) LOOP
             PERFORM pg_stat_clear_snapshot();
             PERFORM pg_sleep(0.005);
           END LOOP;
         END $$;
         SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid();
         ROLLBACK;",
        "cut",
    );
    let failed = store.settle().unwrap_err();
    assert!(failed.is_unavailable(), "{failed}");
    store.settle().unwrap();
    assert_eq!(plan_read_ahead(&store), "pro");
    assert_eq!(
        elsewhere.contact("ann").unwrap().unwrap().profile["plan"],
        "pro"
    );
}

/// A send whose message cannot be rendered because the database does not answer (it went
/// away after the send was committed) waits for it and is sent once it is back: a store
/// that does not answer says nothing of the message, so it is never the send's failure.
#[test]
fn a_send_waits_for_the_database_to_render_and_is_not_failed() {
    use journey::channels::{Dispatcher, DispatcherOptions};
    use journey::config::{Config, SmtpConfig, SmtpSecurity};
    use journey::runtime::{LiveContext, Sink};
    use std::time::Duration;
    let Some(pg) = PgServer::for_test("a_send_waits_for_the_database_to_render_and_is_not_failed")
    else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let servers = tokio::runtime::Runtime::new().unwrap();
    let smtp = support::smtp::SmtpServer::start(&servers);
    let store = Store::connect(&url).unwrap();
    let mut rt = Runtime::new(store.clone(), T0, chrono_tz::UTC).unwrap();
    rt.deploy(program(), T0).unwrap();
    let mut ann = Contact {
        id: "ann".into(),
        profile: Default::default(),
    };
    ann.profile.insert("email".into(), "ann@example.com".into());
    ann.profile.insert("first_name".into(), "Ann".into());
    rt.upsert_contact(&ann).unwrap();
    // The welcome is committed (its job in the outbox), not yet handed to the dispatcher.
    let mut committed = MemorySink::default();
    let signed_up = Input::Event(Event {
        contact: "ann".into(),
        kind: "signed_up".into(),
        at: T0,
        ..Event::default()
    });
    rt.run_at(vec![signed_up], T0, &mut committed, &mut Vec::new())
        .unwrap();
    let (job, _) = committed.delivered.pop().expect("the welcome is committed");

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        public_url: "http://journey.test".into(),
        ..Config::default()
    };
    config.email.smtp = Some(SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(smtp.addr.port()),
        security: SmtpSecurity::None,
        username: None,
        password: None,
        pool_size: Some(1),
        timeout_seconds: Some(5),
        final_reply_timeout_seconds: None,
    });
    config.retry.base_delay_ms = 20;
    config.retry.max_delay_ms = 200;
    // A store of its own for the dispatcher, as a daemon's channels read through one that
    // has cached nothing of ann: its reads go to the database.
    let reads = Store::connect(&url).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut dispatcher = Dispatcher::new(DispatcherOptions {
        config,
        secret: b"test-secret".to_vec(),
        context: std::sync::Arc::new(LiveContext::new(reads, tx)),
        handle: None,
        clock: None,
        observer: None,
    })
    .unwrap();

    pg.stop().unwrap();
    dispatcher.deliver(&job, T0);
    // It tried to read what the message is made of, found no database, and waits.
    daemon_common::wait_for("the dispatcher to try the store again", 30, || {
        (dispatcher.stats().store_waits >= 2).then_some(())
    });
    assert_eq!(dispatcher.stats().failed, 0, "no failure is recorded");
    assert_eq!(smtp.count(), 0);
    assert!(rx.try_recv().is_err(), "no outcome yet");

    pg.start_again().unwrap();
    let report = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the send goes once the database answers");
    match &report.inputs[..] {
        [Input::Delivered { event, .. }] => assert_eq!(event.kind, "message.sent", "{event:?}"),
        other => panic!("unexpected report {other:?}"),
    }
    assert_eq!(smtp.count(), 1);
    let got = smtp.received();
    let text = String::from_utf8_lossy(&got[0].data);
    assert!(
        text.contains("Welcome Ann"),
        "rendered from the stored profile: {text}"
    );
}

/// A daemon paused with sends queued for its provider (a rate limit holds them) loses its
/// partitions to the other; woken, it sends none of that queue: the other sent them, once.
/// The contacts' addresses are given to the daemon that does not hold them (they reach
/// the holder through its inbox) and their events at once to the holder: each event meets
/// the address acknowledged before it.
#[test]
fn a_paused_daemon_sends_nothing_of_its_queue_once_its_partitions_are_taken() {
    use daemon_common::*;
    let Some(pg) = PgServer::for_test(
        "a_paused_daemon_sends_nothing_of_its_queue_once_its_partitions_are_taken",
    ) else {
        return;
    };
    let url = pg.fresh_database().unwrap();
    let db = url.rsplit('/').next().unwrap().to_string();
    let servers = tokio::runtime::Runtime::new().unwrap();
    let smtp = support::smtp::SmtpServer::start(&servers);
    let extra = format!(
        "store:\n  url: {url}\nemail:\n  rate_per_second: 4\n  smtp:\n    host: 127.0.0.1\n    port: {}\n    security: none\n",
        smtp.addr.port()
    );
    let hello = "journey hello {\n  entry event \"go\"\n  policy none\n  send email hi {\n    subject \"Hi\"\n    text \"Hi {{ contact.id }}\"\n  }\n}\n";
    let start = |admin: Option<&str>| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("journeys")).unwrap();
        std::fs::write(dir.path().join("journeys/hello.journey"), hello).unwrap();
        if let Some(admin) = admin {
            std::fs::create_dir_all(dir.path().join("data")).unwrap();
            std::fs::write(dir.path().join("data/admin-token"), admin).unwrap();
        }
        let d = Daemon::start_with(dir.path(), &extra);
        (dir, d)
    };
    let (_dir_a, mut a) = start(None);
    let (_dir_b, mut b) = start(Some(&a.admin.clone()));
    let held = |d: &Daemon| -> Vec<u16> { d.held_partitions().expect("/v1/cluster answers") };
    wait_for("the partitions shared out", 60, || {
        (held(&a).len() == 32 && held(&b).len() == 32).then_some(())
    });
    let of_a = held(&a);
    let ids: Vec<String> = (0..)
        .map(|i| format!("q{i}"))
        .filter(|c| of_a.contains(&journey::store::partition_of(c, 64)))
        .take(40)
        .collect();
    let contacts: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "email": format!("{id}@example.com")}))
        .collect();
    let (s, v) = b.admin_call("POST", "/v1/contacts", Some(&serde_json::json!(contacts)));
    assert!(s < 300, "{s} {v}");
    let events: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({"contact": id, "type": "go"}))
        .collect();
    assert_eq!(a.post_events(serde_json::json!(events)).0, 200);
    // The first has committed the 40 sends and hands them to the server 4 a second.
    wait_for("the first's sends to begin", 30, || {
        (smtp.count() >= 1).then_some(())
    });
    let pid_a = a.child.as_ref().unwrap().id().to_string();
    let signal = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &pid_a])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    let before_pause = smtp.count();
    assert!(before_pause < 30, "{before_pause} sent before the pause");
    // The second takes every partition and sends what has no outcome.
    wait_for("the second to hold every partition", 60, || {
        (held(&b).len() == 64).then_some(())
    });
    let sent_to = "SELECT count(DISTINCT contact) FROM events WHERE contact LIKE 'q%' AND type = 'message.sent'";
    wait_for("every hello sent", 60, || {
        (pg.psql(&db, sent_to).unwrap() == "40").then_some(())
    });
    assert_eq!(
        pg.psql(
            &db,
            "SELECT count(*) FROM events WHERE contact LIKE 'q%' AND type = 'message.failed'"
        )
        .unwrap(),
        "0",
        "every event met its contact's address"
    );
    // Woken: its queue waits for its lease, which is gone, and is dropped.
    signal("-CONT");
    let handed_over = || {
        a.metrics()
            .lines()
            .find_map(|l| l.strip_prefix("journey_dispatch_handed_over_total{channel=\"email\"} "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_for("the first to leave its queue to the second", 60, || {
        (handed_over() > 0).then_some(())
    });
    wait_for("the partitions shared out again", 60, || {
        let (x, y) = (held(&a), held(&b));
        (x.len() + y.len() == 64 && !x.is_empty() && !y.is_empty()).then_some(())
    });
    wait_for("the first's dispatcher to settle", 30, || {
        (a.metrics().contains("journey_dispatch_handed_over_total")
            && handed_over() + before_pause as u64 >= 38)
            .then_some(())
    });
    // Each got one hello: at most the one in flight at the pause went twice.
    let mut per: std::collections::HashMap<String, usize> = Default::default();
    for m in smtp.received() {
        *per.entry(m.to.first().cloned().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(per.len(), 40, "{per:?}");
    let twice: usize = per.values().map(|n| n - 1).sum();
    assert!(twice <= 1, "{twice} sent twice: {per:?}");
    a.kill();
    b.kill();
}
