//! `journey lsp`, driven as an editor drives it: the built binary on a pipe, JSON-RPC
//! messages with Content-Length framing, on the example journeys of `journeys/` (opened
//! in memory: nothing on disk is changed).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn journeys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("journeys")
}

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn example(name: &str) -> (String, String) {
    let p = journeys().join(name);
    (uri(&p), std::fs::read_to_string(&p).unwrap())
}

/// A line and UTF-16 column of the first `needle` in `text`, plus `plus` characters.
fn pos(text: &str, needle: &str, plus: usize) -> Value {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not found"))
        + plus;
    let line = text[..at].matches('\n').count();
    let col = text[..at]
        .rsplit('\n')
        .next()
        .unwrap()
        .encode_utf16()
        .count();
    json!({"line": line, "character": col})
}

struct Client {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next: i64,
    /// Notifications read while waiting for something else.
    seen: Vec<Value>,
}

impl Client {
    fn start(root: &Path) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_journey"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start journey lsp");
        let stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = channel();
        std::thread::spawn(move || loop {
            let mut len = None;
            loop {
                let mut line = String::new();
                if out.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some(n) = line.strip_prefix("Content-Length: ") {
                    len = Some(n.parse::<usize>().expect("a length"));
                }
            }
            let mut body = vec![0; len.expect("a Content-Length header")];
            out.read_exact(&mut body).expect("the body");
            if tx
                .send(serde_json::from_slice(&body).expect("JSON"))
                .is_err()
            {
                return;
            }
        });
        let mut c = Client {
            child,
            stdin,
            rx,
            next: 0,
            seen: Vec::new(),
        };
        let init = c.request(
            "initialize",
            json!({
                "processId": null,
                "rootUri": uri(root),
                "capabilities": {},
            }),
        );
        assert!(init["capabilities"]["hoverProvider"].as_bool().unwrap());
        c.notify("initialized", json!({}));
        c
    }

    fn write(&mut self, v: Value) {
        let body = v.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.write(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn next_message(&mut self, deadline: Instant) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        self.rx
            .recv_timeout(left)
            .expect("the server answers in time")
    }

    /// The whole answer to a request: its `result` or its `error`.
    fn answer(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.write(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.next_message(deadline);
            if m["id"] == json!(id) {
                return m;
            }
            self.seen.push(m);
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let m = self.answer(method, params);
        assert!(m.get("error").is_none(), "{method}: {m}");
        m["result"].clone()
    }

    /// The next diagnostics published for `uri` (the ones already read first).
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.seen.iter().position(|m| {
                m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri
            });
            if let Some(i) = found {
                let m = self.seen.remove(i);
                return m["params"]["diagnostics"].as_array().unwrap().clone();
            }
            let m = self.next_message(deadline);
            self.seen.push(m);
        }
    }

    fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "journey", "version": 1, "text": text}}),
        );
    }

    fn change(&mut self, uri: &str, version: i64, text: &str) {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
        );
    }

    fn at(&mut self, method: &str, uri: &str, position: Value, extra: Value) -> Value {
        let mut params = json!({"textDocument": {"uri": uri}, "position": position});
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        self.request(method, params)
    }

    fn stop(mut self) {
        self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "journey lsp exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "journey lsp did not exit");
            // Polling the exit status: a pipe has nothing to read here.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `journey check --format json` on the example folder with one file replaced.
fn check_json(replace: &str, text: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    for e in walkdir::WalkDir::new(journeys()) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(journeys()).unwrap();
        let to = dir.path().join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
    std::fs::write(dir.path().join(replace), text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_journey"))
        .args(["check", "--format", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn diagnostics_as_journey_check_gives_them_then_none_once_fixed() {
    let mut c = Client::start(&journeys());
    let (welcome, text) = example("welcome.journey");
    // At start, every file of the folder is checked: the examples are clean.
    assert_eq!(c.diagnostics(&welcome), Vec::<Value>::new());

    let broken = text.replace(
        "check clicked welcome.profile",
        "check clicked welcom.profile",
    );
    c.open(&welcome, &broken);
    let diags = c.diagnostics(&welcome);
    let expected = check_json("welcome.journey", &broken);
    assert_eq!(diags.len(), expected.len(), "{diags:?} vs {expected:?}");
    for (d, e) in diags.iter().zip(&expected) {
        let message = d["message"].as_str().unwrap();
        assert!(
            message.starts_with(e["message"].as_str().unwrap()),
            "{message}"
        );
        if let Some(help) = e["help"].as_str() {
            assert!(message.ends_with(&format!("help: {help}")), "{message}");
        }
        assert_eq!(d["range"]["start"]["line"], e["line"].as_u64().unwrap() - 1);
        assert_eq!(
            d["range"]["start"]["character"],
            e["column"].as_u64().unwrap() - 1
        );
        assert_eq!(
            d["range"]["end"]["line"],
            e["end_line"].as_u64().unwrap() - 1
        );
        assert_eq!(
            d["range"]["end"]["character"],
            e["end_column"].as_u64().unwrap() - 1
        );
        assert_eq!(d["severity"], 1);
    }
    assert!(diags[0]["message"]
        .as_str()
        .unwrap()
        .contains("unknown message 'welcom'"));

    // The hint's quick fix.
    let actions = c.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": welcome}, "range": diags[0]["range"], "context": {"diagnostics": diags}}),
    );
    let fix = &actions[0];
    assert_eq!(fix["title"], "Replace with 'welcome'");
    let edit = &fix["edit"]["changes"][&welcome][0];
    assert_eq!(edit["newText"], "welcome");
    assert_eq!(edit["range"], diags[0]["range"]);

    c.change(&welcome, 2, &text);
    assert_eq!(c.diagnostics(&welcome), Vec::<Value>::new());
    c.stop();
}

#[test]
fn a_change_in_one_file_shows_in_the_others() {
    let mut c = Client::start(&journeys());
    let (dnd, text) = example("dnd.journey");
    let red_shoes = uri(&journeys().join("red_shoes.journey"));
    assert_eq!(c.diagnostics(&red_shoes), Vec::<Value>::new());
    // Renaming the policy in dnd.journey alone: red_shoes.journey (not open) now names an
    // unknown policy.
    c.open(
        &dnd,
        &text.replace("policy maison_daily {", "policy maison_day {"),
    );
    let diags = c.diagnostics(&red_shoes);
    assert!(
        diags.iter().any(|d| d["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown policy 'maison_daily'")),
        "{diags:?}"
    );
    // Put back: cleared.
    c.change(&dnd, 2, &text);
    assert_eq!(c.diagnostics(&red_shoes), Vec::<Value>::new());
    c.stop();
}

#[test]
fn a_file_outside_the_folder_is_checked_with_its_own_folder() {
    let mut c = Client::start(&journeys());
    let dir = tempfile::tempdir().unwrap();
    // The name of a journey of journeys/: checked with journeys/, it would be defined twice.
    let text = "journey welcome_promo {\n  entry api\n  wait 1d\n}\n";
    let path = dir.path().join("other.journey");
    std::fs::write(&path, text).unwrap();
    let other = uri(&path);
    c.open(&other, text);
    assert_eq!(c.diagnostics(&other), Vec::<Value>::new());
    // Its own names: `goto` to an unknown label is an error there, and only there.
    c.change(&other, 2, &text.replace("wait 1d", "goto nowhere"));
    let diags = c.diagnostics(&other);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(diags[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("unknown label 'nowhere'"));
    let (welcome, wtext) = example("welcome.journey");
    c.open(&welcome, &wtext);
    let refs = c.at(
        "textDocument/references",
        &welcome,
        pos(&wtext, "journey welcome_promo", 8),
        json!({"context": {"includeDeclaration": true}}),
    );
    // The journey's uses in journeys/, none in the other folder.
    let uris: Vec<&Value> = refs.as_array().unwrap().iter().map(|r| &r["uri"]).collect();
    assert!(uris.contains(&&json!(welcome)), "{refs}");
    assert!(!uris.contains(&&json!(other)), "{refs}");
    c.stop();
}

#[test]
fn definition_references_hover() {
    let mut c = Client::start(&journeys());
    let (welcome, text) = example("welcome.journey");
    let (dnd, dnd_text) = example("dnd.journey");
    c.open(&welcome, &text);

    // A policy used here, defined in dnd.journey.
    let at = pos(&text, "policy maison_daily", 8);
    let def = c.at("textDocument/definition", &welcome, at.clone(), json!({}));
    assert_eq!(def[0]["uri"], dnd);
    assert_eq!(
        def[0]["range"]["start"],
        pos(&dnd_text, "maison_daily {", 0)
    );

    // A message of this journey, from its use in `check`.
    let at = pos(&text, "welcome.profile", 2);
    let def = c.at("textDocument/definition", &welcome, at, json!({}));
    assert_eq!(def[0]["uri"], welcome);
    assert_eq!(def[0]["range"]["start"], pos(&text, "welcome {", 0));
    // Its link.
    let at = pos(&text, "welcome.profile", 9);
    let def = c.at("textDocument/definition", &welcome, at, json!({}));
    assert_eq!(def[0]["range"]["start"], pos(&text, "profile \"https", 0));

    // A template opens its file.
    let at = pos(&text, "\"welcome.html\"", 3);
    let def = c.at("textDocument/definition", &welcome, at, json!({}));
    assert_eq!(
        def["uri"],
        uri(&journeys().join("templates").join("welcome.html"))
    );

    // The policy's references: its definition and every journey that uses it.
    let at = pos(&text, "policy maison_daily", 8);
    let refs = c.at(
        "textDocument/references",
        &welcome,
        at.clone(),
        json!({"context": {"includeDeclaration": true}}),
    );
    let files: std::collections::BTreeSet<&str> = refs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    let users: std::collections::BTreeSet<&str> = [
        "dnd.journey",
        "newsletter_retarget.journey",
        "red_shoes.journey",
        "spring_segments.journey",
        "welcome.journey",
    ]
    .into();
    assert_eq!(files, users);

    // Hover: a policy's caps, a step in words, a duration, a segment's rules, a time zone.
    let hover = |c: &mut Client, uri: &str, p: Value| {
        let h = c.at("textDocument/hover", uri, p, json!({}));
        h["contents"]["value"].as_str().unwrap_or("").to_string()
    };
    let h = hover(&mut c, &welcome, at);
    assert!(h.contains("at most 1 email per 1 day"), "{h}");
    assert!(h.contains("at most 2 sms per 1 week"), "{h}");
    let h = hover(&mut c, &welcome, pos(&text, "check clicked", 2));
    assert!(
        h.contains("waits up to 3 days for a click on welcome.profile"),
        "{h}"
    );
    let h = hover(&mut c, &welcome, pos(&text, "within 3d", 8));
    assert_eq!(h, "`3d`: 3 days");
    // A message's use: the message as sent; its link: the link's address.
    let h = hover(&mut c, &welcome, pos(&text, "welcome.profile", 2));
    assert!(h.starts_with("email `welcome`"), "{h}");
    assert!(h.contains("- template: welcome.html"), "{h}");
    let h = hover(&mut c, &welcome, pos(&text, "welcome.profile", 10));
    assert!(
        h.starts_with("link `profile` of `welcome`: https://maison.example/profile"),
        "{h}"
    );
    c.open(&dnd, &dnd_text);
    let h = hover(
        &mut c,
        &dnd,
        pos(&dnd_text, "entry segment newsletter_subscribers", 16),
    );
    assert!(h.contains("rule subscribed: in list \"newsletter\""), "{h}");
    let h = hover(&mut c, &dnd, pos(&dnd_text, "Europe/Rome", 3));
    assert!(h.starts_with("time zone `Europe/Rome`: now UTC+0"), "{h}");
    c.stop();
}

fn labels(v: &Value) -> Vec<String> {
    let items = v.as_array().or(v["items"].as_array()).unwrap();
    items
        .iter()
        .map(|i| i["label"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn completion_in_place() {
    let mut c = Client::start(&journeys());
    let (welcome, text) = example("welcome.journey");
    c.open(&welcome, &text);
    assert_eq!(c.diagnostics(&welcome), Vec::<Value>::new());
    // After `check clicked `: this journey's messages.
    let got = labels(&c.at(
        "textDocument/completion",
        &welcome,
        pos(&text, "check clicked ", 14),
        json!({}),
    ));
    assert!(got.contains(&"welcome".into()), "{got:?}");
    assert!(got.contains(&"promo_code".into()), "{got:?}");
    // While the file is being typed (it does not parse), its messages are still offered.
    let cut = text.find("check clicked ").unwrap() + "check clicked ".len();
    let typing = &text[..cut];
    c.change(&welcome, 2, typing);
    let diags = c.diagnostics(&welcome);
    assert!(!diags.is_empty());
    let got = labels(&c.at(
        "textDocument/completion",
        &welcome,
        pos(typing, "check clicked ", 14),
        json!({}),
    ));
    assert!(got.contains(&"welcome".into()), "{got:?}");
    c.change(&welcome, 3, &text);
    assert_eq!(c.diagnostics(&welcome), Vec::<Value>::new());
    // After `welcome.`: its links.
    let got = labels(&c.at(
        "textDocument/completion",
        &welcome,
        pos(&text, "welcome.profile", 8),
        json!({}),
    ));
    assert_eq!(got, vec!["profile".to_string()]);
    // After `policy `: the policies.
    let got = labels(&c.at(
        "textDocument/completion",
        &welcome,
        pos(&text, "policy maison_daily", 7),
        json!({}),
    ));
    assert!(got.contains(&"maison_daily".into()), "{got:?}");
    assert!(got.contains(&"monthly_offers".into()), "{got:?}");
    // In an email's braces: the email's fields.
    let got = labels(&c.at(
        "textDocument/completion",
        &welcome,
        pos(&text, "    subject  \"Welcome", 4),
        json!({}),
    ));
    assert!(got.contains(&"subject".into()) && got.contains(&"reply_to".into()));
    assert!(!got.contains(&"send".into()), "{got:?}");
    // After a time of day of `wait until`: time zones.
    let (reminder, rtext) = example("event_reminder.journey");
    c.open(&reminder, &rtext);
    let got = labels(&c.at(
        "textDocument/completion",
        &reminder,
        pos(&rtext, "2026-03-14 09:00 Europe/Rome", 17),
        json!({}),
    ));
    assert!(got.contains(&"Europe/Rome".into()), "{} zones", got.len());
    c.stop();
}

#[test]
fn rename_formatting_symbols_tokens() {
    let mut c = Client::start(&journeys());
    let (welcome, text) = example("welcome.journey");
    c.open(&welcome, &text);

    // Rename a message: its definition and its use.
    let edit = c.at(
        "textDocument/rename",
        &welcome,
        pos(&text, "welcome.profile", 1),
        json!({"newName": "hello"}),
    );
    let edits = edit["changes"][&welcome].as_array().unwrap();
    assert_eq!(edits.len(), 2, "{edits:?}");
    let mut renamed = text.clone();
    let mut starts: Vec<usize> = edits
        .iter()
        .map(|e| {
            let l = e["range"]["start"]["line"].as_u64().unwrap() as usize;
            let ch = e["range"]["start"]["character"].as_u64().unwrap() as usize;
            text.split_inclusive('\n')
                .take(l)
                .map(str::len)
                .sum::<usize>()
                + ch
        })
        .collect();
    starts.sort_unstable_by(|a, b| b.cmp(a));
    for s in starts {
        renamed.replace_range(s..s + "welcome".len(), "hello");
    }
    assert!(renamed.contains("send email hello {"));
    assert!(renamed.contains("check clicked hello.profile"));
    c.change(&welcome, 2, &renamed);
    assert_eq!(c.diagnostics(&welcome), Vec::<Value>::new());

    // Renaming a policy renames it across the files.
    let edit = c.at(
        "textDocument/rename",
        &welcome,
        pos(&renamed, "policy maison_daily", 8),
        json!({"newName": "maison_limits"}),
    );
    let changed: Vec<&String> = edit["changes"].as_object().unwrap().keys().collect();
    assert_eq!(changed.len(), 5, "{changed:?}");
    // A segment, from its definition: the definition and the entry that uses it in another
    // file; a journey label: inside the quotes, in every journey that has it.
    let (dnd, dnd_text) = example("dnd.journey");
    c.open(&dnd, &dnd_text);
    let edit = c.at(
        "textDocument/rename",
        &dnd,
        pos(&dnd_text, "segment newsletter_subscribers {", 8),
        json!({"newName": "subscribers"}),
    );
    let retarget = uri(&journeys().join("newsletter_retarget.journey"));
    assert_eq!(edit["changes"][&dnd].as_array().unwrap().len(), 2, "{edit}");
    assert_eq!(
        edit["changes"][&retarget].as_array().unwrap().len(),
        1,
        "{edit}"
    );
    let edit = c.at(
        "textDocument/rename",
        &welcome,
        pos(&renamed, "label    \"newsletter\"", 11),
        json!({"newName": "news"}),
    );
    let mut label_edits = 0;
    for (_, edits) in edit["changes"].as_object().unwrap() {
        for e in edits.as_array().unwrap() {
            assert_eq!(e["newText"], "news");
            assert_eq!(
                e["range"]["end"]["character"].as_u64().unwrap()
                    - e["range"]["start"]["character"].as_u64().unwrap(),
                "newsletter".len() as u64
            );
            label_edits += 1;
        }
    }
    assert!(label_edits >= 5, "{edit}");

    // A name the language cannot read is refused.
    let answer = c.answer(
        "textDocument/rename",
        json!({"textDocument": {"uri": welcome}, "position": pos(&renamed, "policy maison_daily", 8), "newName": "Bad Name"}),
    );
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("is not a name"));
    // A request the server does not know: "method not found", and it goes on.
    let answer = c.answer("textDocument/inlayHint", json!({}));
    assert_eq!(answer["error"]["code"], -32601, "{answer}");

    // Formatting: a file out of layout comes back as `journey fmt` writes it.
    let messy = text.replace("  send email welcome {", "send   email welcome{");
    c.change(&welcome, 3, &messy);
    let edits = c.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": welcome}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    assert_eq!(edits.as_array().unwrap().len(), 1);
    assert_eq!(edits[0]["newText"], text);
    assert_eq!(
        edits[0]["range"]["start"],
        json!({"line": 0, "character": 0})
    );
    c.change(&welcome, 4, &text);
    let edits = c.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": welcome}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    assert_eq!(edits, json!([]));

    // The outline: the journey and its steps.
    let symbols = c.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": welcome}}),
    );
    assert_eq!(symbols[0]["name"], "welcome_promo");
    let steps: Vec<&str> = symbols[0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "send email welcome",
            "check clicked welcome.profile within 3d"
        ]
    );

    // Semantic tokens: the first token is the first comment line.
    let tokens = c.request(
        "textDocument/semanticTokens/full",
        json!({"textDocument": {"uri": welcome}}),
    );
    let data = tokens["data"].as_array().unwrap();
    assert!(data.len() > 100 && data.len().is_multiple_of(5));
    let first_line = text.lines().next().unwrap().encode_utf16().count();
    assert!(text.starts_with('#'));
    assert_eq!(
        &data[..5],
        &[json!(0), json!(0), json!(first_line), json!(1), json!(0)]
    );
    c.stop();
}

/// The server reloads its folder reusing the syntax trees of the files whose text did not
/// change: the result is the same as loading everything afresh, a changed file parsed again
/// (here broken, then fixed) included.
#[test]
fn a_reload_reusing_the_unchanged_trees_loads_what_a_fresh_load_does() {
    use journey::lang;
    use std::collections::BTreeMap;
    let files = lang::journey_files(&[journeys()]).unwrap();
    let welcome = journeys().join("welcome.journey");
    let text = std::fs::read_to_string(&welcome).unwrap();
    let broken = text.replace("check clicked welcome.profile", "check clicked {");
    let mut previous = lang::load_files(&files);
    for edit in [broken, text.clone(), text] {
        let given = BTreeMap::from([(welcome.clone(), edit)]);
        let fresh = lang::load_files_with(&files, &given);
        let reused = lang::load_files_reusing(&files, &given, Some(previous));
        assert_eq!(reused.files, fresh.files);
        assert_eq!(reused.diagnostics, fresh.diagnostics);
        let texts = |l: &lang::Loaded| -> Vec<(PathBuf, String)> {
            l.sources
                .files
                .iter()
                .map(|f| (f.path.clone(), f.text.clone()))
                .collect()
        };
        assert_eq!(texts(&reused), texts(&fresh));
        previous = reused;
    }
}

/// Keystrokes sent without waiting for their diagnostics (the server takes the ones waiting
/// together): the diagnostics published with the last edit's version are the last text's.
#[test]
fn a_burst_of_edits_ends_with_the_last_texts_diagnostics() {
    let mut c = Client::start(&journeys());
    let (welcome, text) = example("welcome.journey");
    c.open(&welcome, &text);
    let cut = text.find("check clicked welcome").unwrap() + "check clicked welcom".len();
    // Deleting the `e` of `welcome` one edit, typing it back the next; the last edit breaks it.
    let broken = format!("{}{}", &text[..cut], &text[cut + 1..]);
    let last = 21;
    for version in 2..=last {
        let t = if version % 2 == 1 { &broken } else { &text };
        c.change(&welcome, version, t);
    }
    let deadline = Instant::now() + WAIT;
    let diags = loop {
        let m = c.next_message(deadline);
        let p = &m["params"];
        if m["method"] == "textDocument/publishDiagnostics"
            && p["uri"] == welcome
            && p["version"] == last
        {
            break p["diagnostics"].as_array().unwrap().clone();
        }
    };
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(diags[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("unknown message 'welcom'"));
    c.stop();
}
