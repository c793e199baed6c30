//! `journey bench lsp`: the language server on B5's workspace (1 MB of generated journeys,
//! segments and policies in 8 files). Starts `journey lsp` as a child process, as an editor
//! does, and speaks JSON-RPC to it over its stdin and stdout: `initialize`, a `didOpen` of
//! every file, then one-character `didChange` edits, each timed from sending it to receiving
//! the `publishDiagnostics` for that version of the file, and `textDocument/completion`
//! requests, each timed to its response. Reports the medians and p95s, and the server's
//! peak resident memory (VmHWM of /proc/PID/status).
//!
//! The edits alternate: one types an `x` into a message name (`check clicked welcome_3x.profile`),
//! which `journey check` reports as an unknown message; the next deletes it, which clears
//! it. Each lands in the next file in turn, so the edited file changes every time.

use super::source;
use super::{percentile, AnyResult};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// How long any one answer may take before the benchmark gives up.
const WAIT: Duration = Duration::from_secs(120);

pub struct LspOptions {
    /// Bytes of generated source (B5: 1 MB).
    pub bytes: usize,
    /// Files they are spread over (B5: 8).
    pub files: usize,
    /// One-character edits to time.
    pub edits: usize,
    /// Completion requests to time.
    pub completions: usize,
    /// Where to write the workspace (default: a temporary directory).
    pub dir: Option<PathBuf>,
}

pub fn lsp(o: LspOptions) -> AnyResult<()> {
    let (dir, _keep) = super::temp_or(o.dir)?;
    let (paths, bytes) = source::generate(&dir, o.bytes, o.files)?;
    let texts: Vec<String> = paths
        .iter()
        .map(std::fs::read_to_string)
        .collect::<Result<_, _>>()?;
    let uris: Vec<String> = paths.iter().map(|p| file_uri(p)).collect();

    let mut server = Server::start(&dir)?;
    let started = Instant::now();
    server.request(
        "initialize",
        json!({
            "processId": std::process::id(),
            "rootUri": file_uri(&dir),
            "capabilities": {},
            "initializationOptions": {"paths": [dir]},
        }),
    )?;
    server.notify("initialized", json!({}))?;
    for (uri, text) in uris.iter().zip(&texts) {
        server.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "journey", "version": 1, "text": text}}),
        )?;
    }
    // The server answers in order: once this is answered, every file is open and checked.
    server.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uris[0]}}),
    )?;
    let ready = started.elapsed();
    let rss_ready = server.memory_mb("VmRSS:");

    // The edits.
    let mut versions = vec![1i64; paths.len()];
    let mut current = texts.clone();
    let mut edit_times = Vec::with_capacity(o.edits);
    let (mut reported, mut cleared) = (0, 0);
    for k in 0..o.edits {
        let f = k % paths.len();
        // Edits 0..files type the x into each file, the next round deletes them, and so on.
        let typing = (k / paths.len()) % 2 == 0;
        let at = name_end(&texts[f]).ok_or("no `check clicked` in a generated file")?;
        current[f] = if typing {
            format!("{}x{}", &texts[f][..at], &texts[f][at..])
        } else {
            texts[f].clone()
        };
        versions[f] += 1;
        let t = Instant::now();
        server.notify(
            "textDocument/didChange",
            json!({
                "textDocument": {"uri": uris[f], "version": versions[f]},
                "contentChanges": [{"text": current[f]}],
            }),
        )?;
        let diags = server.diagnostics(&uris[f], versions[f])?;
        edit_times.push(t.elapsed());
        let unknown = diags.iter().any(|d| {
            d["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("unknown message"))
        });
        match (typing, unknown) {
            (true, true) => reported += 1,
            (false, false) if diags.is_empty() => cleared += 1,
            _ => {
                return Err(format!(
                    "edit {k} ({}): unexpected diagnostics {diags:?}",
                    if typing { "typed" } else { "deleted" }
                )
                .into())
            }
        }
    }

    // Completions: after `check clicked ` (this journey's messages) and after `policy `.
    let mut completion_times = Vec::with_capacity(o.completions);
    let mut items = 0;
    for k in 0..o.completions {
        let f = k % paths.len();
        let needle = if k % 2 == 0 {
            "check clicked "
        } else {
            "  policy "
        };
        let at = current[f].find(needle).ok_or("no completion place")? + needle.len();
        let t = Instant::now();
        let answer = server.request(
            "textDocument/completion",
            json!({"textDocument": {"uri": uris[f]}, "position": position(&current[f], at)}),
        )?;
        completion_times.push(t.elapsed());
        let list = answer.as_array().or(answer["items"].as_array());
        let n = list.map_or(0, Vec::len);
        if n == 0 {
            return Err(format!("completion {k} offered nothing: {answer}").into());
        }
        items += n;
    }

    let peak = server.memory_mb("VmHWM:");
    server.stop()?;

    edit_times.sort();
    completion_times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "workspace                {:.2} MB in {} files",
        bytes as f64 / (1024.0 * 1024.0),
        paths.len()
    );
    println!(
        "open and checked         {:.0} ms (initialize, a didOpen per file)",
        ms(ready)
    );
    println!(
        "edits                    {} ({reported} reported an unknown message, {cleared} cleared it)",
        edit_times.len()
    );
    println!(
        "diagnostics after edit   median {:.1} ms, p95 {:.1} ms, max {:.1} ms (target: median 50 ms)",
        ms(percentile(&edit_times, 0.5)),
        ms(percentile(&edit_times, 0.95)),
        ms(edit_times.last().copied().unwrap_or_default())
    );
    println!(
        "completions              {} ({items} items offered)",
        completion_times.len()
    );
    println!(
        "completion               median {:.1} ms, p95 {:.1} ms, max {:.1} ms (target: median 20 ms)",
        ms(percentile(&completion_times, 0.5)),
        ms(percentile(&completion_times, 0.95)),
        ms(completion_times.last().copied().unwrap_or_default())
    );
    println!("server RSS when ready    {rss_ready:.0} MB");
    println!("server peak RSS          {peak:.0} MB (target: under 100 MB)");
    Ok(())
}

/// The offset just after the message name of the first `check clicked NAME.link`.
fn name_end(text: &str) -> Option<usize> {
    let start = text.find("check clicked ")? + "check clicked ".len();
    Some(start + text[start..].find('.')?)
}

/// An LSP position (line, UTF-16 column) of a byte offset.
fn position(text: &str, at: usize) -> Value {
    let before = &text[..at];
    let line = before.matches('\n').count();
    let col = before
        .rsplit('\n')
        .next()
        .unwrap_or("")
        .encode_utf16()
        .count();
    json!({"line": line, "character": col})
}

/// The `file://` URI of a path (Unix), each byte but unreserved ones and `/`
/// percent-encoded.
fn file_uri(path: &Path) -> String {
    let mut out = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `file://` URI with its percent-encoding undone, to compare the server's with ours
/// (encoders differ on which bytes they encode).
fn decoded(uri: &str) -> String {
    let bytes = uri.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `journey lsp` as a child process, with a thread reading its messages.
struct Server {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next: i64,
}

impl Server {
    fn start(dir: &Path) -> AnyResult<Server> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("lsp")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            while let Some(m) = read_message(&mut out) {
                if tx.send(m).is_err() {
                    return;
                }
            }
        });
        Ok(Server {
            child,
            stdin,
            rx,
            next: 0,
        })
    }

    fn write(&mut self, v: Value) -> AnyResult<()> {
        let body = serde_json::to_vec(&v)?;
        write!(self.stdin, "Content-Length: {}\r\n\r\n", body.len())?;
        self.stdin.write_all(&body)?;
        self.stdin.flush()?;
        Ok(())
    }

    fn notify(&mut self, method: &str, params: Value) -> AnyResult<()> {
        self.write(json!({"jsonrpc": "2.0", "method": method, "params": params}))
    }

    fn next_message(&mut self) -> AnyResult<Value> {
        self.rx
            .recv_timeout(WAIT)
            .map_err(|_| "journey lsp went quiet (or exited)".into())
    }

    /// Sends a request and waits for its answer (the notifications before it are dropped).
    fn request(&mut self, method: &str, params: Value) -> AnyResult<Value> {
        self.next += 1;
        let id = self.next;
        self.write(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        loop {
            let m = self.next_message()?;
            if m["id"] == id && m.get("method").is_none() {
                if let Some(e) = m.get("error") {
                    return Err(format!("{method}: {e}").into());
                }
                return Ok(m["result"].clone());
            }
        }
    }

    /// Waits for the diagnostics of `uri` at `version` (those of other files, or of older
    /// versions, are dropped).
    fn diagnostics(&mut self, uri: &str, version: i64) -> AnyResult<Vec<Value>> {
        let want = decoded(uri);
        loop {
            let m = self.next_message()?;
            let p = &m["params"];
            if m["method"] == "textDocument/publishDiagnostics"
                && p["uri"].as_str().is_some_and(|u| decoded(u) == want)
                && p["version"] == version
            {
                return Ok(p["diagnostics"].as_array().cloned().unwrap_or_default());
            }
        }
    }

    /// A memory figure of the server from /proc/PID/status, in MB (0 where there is none).
    fn memory_mb(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }

    fn stop(mut self) -> AnyResult<()> {
        self.request("shutdown", Value::Null)?;
        self.notify("exit", Value::Null)?;
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("journey lsp exited with {status}").into());
        }
        Ok(())
    }
}

/// One message with Content-Length framing; None at the end of the stream.
fn read_message(out: &mut impl BufRead) -> Option<Value> {
    let mut len = None;
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            len = n.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; len?];
    out.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}
