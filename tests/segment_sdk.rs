//! Segment compatibility with a real SDK: `segment-analytics-python` from PyPI, pointed at
//! the daemon with an ingest token as its write key, unchanged otherwise. `.ci/run`
//! installs the SDK; without it this test installs it into a temporary folder, and skips
//! (saying so) only if pip cannot.

mod daemon_common;

use daemon_common::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;

const SCRIPT: &str = r#"
import sys
from segment.analytics import Client

key, host, bad_key = sys.argv[1], sys.argv[2], sys.argv[3]
errors = []
client = Client(write_key=key, host=host, on_error=lambda e, batch: errors.append(repr(e)), max_retries=1)
client.identify("sdk-user", {"email": "sdk@example.com", "first_name": "Sid"})
client.track("sdk-user", "form_compiled", {"formName": "addUser"}, context={"page": {"path": "/join"}})
client.track(anonymous_id="anon-1", event="page_view", properties={"path": "/"}, message_id="fixed-id-1")
client.track(anonymous_id="anon-1", event="page_view", properties={"path": "/"}, message_id="fixed-id-1")
client.page("sdk-user", "Docs", "Getting started", {"url": "https://maison.example/docs"})
client.flush()
client.shutdown()
if errors:
    print("errors with the right key:", errors)
    sys.exit(1)

bad = []
other = Client(write_key=bad_key, host=host, on_error=lambda e, batch: bad.append(getattr(e, "status", repr(e))), max_retries=0)
other.track("intruder", "should_not_be_stored")
other.flush()
other.shutdown()
print("bad key errors:", bad)
if not bad or bad[0] != 401:
    sys.exit(2)
print("ok")
"#;

/// A Python that can import the SDK: PYTHONPATH to add, or why not.
fn python_with_sdk(tmp: &Path) -> Result<Option<String>, String> {
    let has = |pythonpath: Option<&str>| {
        let mut c = Command::new("python3");
        c.args(["-c", "import segment.analytics"]);
        if let Some(p) = pythonpath {
            c.env("PYTHONPATH", p);
        }
        c.output().map(|o| o.status.success()).unwrap_or(false)
    };
    if has(None) {
        return Ok(None);
    }
    let target = tmp.join("pylib");
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&target)
        .arg("segment-analytics-python")
        .output()
        .map_err(|e| format!("python3 cannot run: {e}"))?;
    let p = target.to_string_lossy().into_owned();
    if out.status.success() && has(Some(&p)) {
        Ok(Some(p))
    } else {
        Err(format!(
            "pip could not install segment-analytics-python: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn the_segment_python_sdk_sends_to_the_daemon_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let pythonpath = match python_with_sdk(tmp.path()) {
        Ok(p) => p,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install the Segment SDK (.ci/run does): {why}"
            );
            eprintln!("SKIPPED the Segment SDK test: {why}");
            return;
        }
    };
    copy_welcome(tmp.path());
    let d = Daemon::start(tmp.path());
    let out = d.cli(&[
        "token",
        "create",
        "--scope",
        "ingest",
        "--config",
        tmp.path().join("journey.yaml").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let mut py = Command::new("python3");
    py.args(["-c", SCRIPT, &key, &d.base, "jt_ingest_not_a_key"]);
    if let Some(p) = &pythonpath {
        py.env("PYTHONPATH", p);
    }
    let out = py.output().unwrap();
    assert!(
        out.status.success(),
        "the SDK script failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.stderr()
    );

    // flush() returns once the daemon answered, and it answers once the events are durable.
    let c = d.contact("sdk-user");
    assert_eq!(c["profile"]["email"], "sdk@example.com", "{c}");
    assert_eq!(c["profile"]["first_name"], "Sid");
    let events = c["recent_events"].as_array().unwrap();
    let form = events
        .iter()
        .find(|e| e["type"] == "form_compiled")
        .expect("the track call is stored");
    assert_eq!(form["properties"]["formName"], "addUser");
    assert_eq!(form["properties"]["context"]["page"]["path"], "/join");
    assert!(
        form["id"].as_str().is_some_and(|id| !id.is_empty()),
        "messageId is the dedupe id"
    );
    let page = events
        .iter()
        .find(|e| e["type"] == "page")
        .expect("the page call is stored");
    assert_eq!(page["properties"]["name"], "Getting started");
    assert_eq!(page["properties"]["category"], "Docs");
    // The same messageId twice: stored once.
    let anon = d.contact("anon-1");
    let views: Vec<_> = anon["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "page_view")
        .collect();
    assert_eq!(views.len(), 1, "{anon}");
    assert_eq!(views[0]["id"], json!("fixed-id-1"));
    // The wrong write key stored nothing.
    assert!(d.contact("intruder").is_null());
}
