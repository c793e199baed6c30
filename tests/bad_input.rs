//! Hostile and accidental input through the CLI: each gives a diagnostic and exit 1 (or, for
//! valid input, exit 0) — never a panic, a hang or a stack overflow.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A run may take this long at most, in a debug build on a busy 2-core machine.
const DEADLINE: Duration = Duration::from_secs(60);

struct Run {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

/// Writes `bytes` to `dir/name` and runs `journey check dir/name` from `dir`.
fn check_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Run {
    std::fs::write(dir.join(name), bytes).unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_journey"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(["check", name])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{name}: journey check still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    Run {
        code: status.code(),
        stderr,
        took: started.elapsed(),
    }
}

/// Exit 1 with a `FILE:LINE:COL: error:` diagnostic naming the file, short output, no panic.
fn assert_diagnosed(name: &str, r: &Run, says: &str) {
    assert!(
        !r.stderr.contains("panicked"),
        "{name} panicked:\n{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("overflow"),
        "{name} overflowed:\n{}",
        r.stderr
    );
    assert_eq!(r.code, Some(1), "{name}: exit code\n{}", r.stderr);
    let first = r.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{name}:")) && first.contains(": error: "),
        "{name}: first line is not a diagnostic:\n{}",
        &r.stderr[..r.stderr.len().min(2000)]
    );
    assert!(
        r.stderr.contains(says),
        "{name}: no '{says}' in\n{}",
        r.stderr
    );
    // A window of a long line, not the whole of it.
    assert!(
        r.stderr.len() < 4_000,
        "{name}: {} bytes of diagnostics",
        r.stderr.len()
    );
}

/// Seeded xorshift64*, so the "random" file is the same on every run.
fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

#[test]
fn non_utf8_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"journey a {\n  entry api\n  title \"caf".to_vec();
    bytes.extend_from_slice(&[0xe9, b'"', b'\n', b'}', b'\n']); // Latin-1 é
    let r = check_bytes(dir.path(), "latin1.journey", &bytes);
    assert_diagnosed("latin1.journey", &r, "not valid UTF-8");
    // The caret is at the first bad byte: line 3, after `title "caf`.
    assert!(
        r.stderr.starts_with("latin1.journey:3:13: error:"),
        "{}",
        r.stderr
    );
}

#[test]
fn binary_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = check_bytes(dir.path(), "bin.journey", &[0xff, 0xfe, 0x00, 0x01]);
    assert_diagnosed("bin.journey", &r, "not valid UTF-8");
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = check_bytes(dir.path(), "empty.journey", b"");
    assert_diagnosed("empty.journey", &r, "this file defines nothing");
    assert!(
        r.stderr.contains("Help: a journey file holds"),
        "{}",
        r.stderr
    );
}

#[test]
fn file_of_blank_lines_and_comments() {
    let dir = tempfile::tempdir().unwrap();
    let r = check_bytes(
        dir.path(),
        "comments.journey",
        b"\n   \n# a journey will go here\n\t\n",
    );
    assert_diagnosed("comments.journey", &r, "this file defines nothing");
}

#[test]
fn ten_megabytes_of_random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = random_bytes(10 * 1024 * 1024, 0x9e37_79b9_7f4a_7c15);
    let r = check_bytes(dir.path(), "random.journey", &bytes);
    assert_diagnosed(
        "random.journey",
        &r,
        "this file is 10.0 MB, more than the 8 MB a journey file may have",
    );
    assert!(r.took < Duration::from_secs(10), "took {:?}", r.took);
}

#[test]
fn seven_megabytes_of_random_bytes() {
    // Under the size limit: read, and refused as not UTF-8.
    let dir = tempfile::tempdir().unwrap();
    let bytes = random_bytes(7 * 1024 * 1024, 42);
    let r = check_bytes(dir.path(), "random7.journey", &bytes);
    assert_diagnosed("random7.journey", &r, "not valid UTF-8");
}

#[test]
fn seven_megabytes_of_random_text() {
    // Valid UTF-8 that is no journey: a syntax error, quickly, with a short excerpt.
    let dir = tempfile::tempdir().unwrap();
    let alphabet = b"abcdefghijklmnopqrstuvwxyz {}()[]\"#:.=<>0123456789\n";
    let bytes: Vec<u8> = random_bytes(7 * 1024 * 1024, 7)
        .into_iter()
        .map(|b| alphabet[b as usize % alphabet.len()])
        .collect();
    let r = check_bytes(dir.path(), "text.journey", &bytes);
    assert_diagnosed("text.journey", &r, "error");
}

#[test]
fn ten_thousand_nested_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = String::from("journey deep {\n  entry api\n");
    src.push_str(&"if true {\n".repeat(10_000));
    src.push_str("wait 1d\n");
    src.push_str(&"}\n".repeat(10_000));
    src.push_str("}\n");
    let r = check_bytes(dir.path(), "blocks.journey", src.as_bytes());
    assert_diagnosed("blocks.journey", &r, "nested more than 128 deep");
}

#[test]
fn ten_thousand_nested_parentheses() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        "journey deep {{\n  entry api\n  if {}contact.vip == true{} {{\n    wait 1d\n  }}\n}}\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let r = check_bytes(dir.path(), "parens.journey", src.as_bytes());
    assert_diagnosed("parens.journey", &r, "nested more than 128 deep");
}

#[test]
fn a_hundred_thousand_nots() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        "journey deep {{\n  entry api\n  if {}true {{\n    wait 1d\n  }}\n}}\n",
        "not ".repeat(100_000)
    );
    let r = check_bytes(dir.path(), "nots.journey", src.as_bytes());
    assert_diagnosed("nots.journey", &r, "conditions nested more than 128 deep");
}

#[test]
fn a_condition_of_a_hundred_thousand_terms_checks_clean() {
    // Long, but flat: `and` chains are no deeper to compile than they are to read.
    let dir = tempfile::tempdir().unwrap();
    let terms: Vec<String> = (0..100_000)
        .map(|i| format!("contact.f{i} == {i}"))
        .collect();
    let src = format!(
        "journey wide {{\n  entry api\n  if {} or contact.vip == true {{\n    wait 1d\n  }}\n}}\n",
        terms.join(" and ")
    );
    let r = check_bytes(dir.path(), "wide.journey", src.as_bytes());
    assert_eq!(r.code, Some(0), "{}", &r.stderr[..r.stderr.len().min(2000)]);
}

fn journey_with_html(html: &str) -> String {
    format!(
        "journey big_mail {{\n  entry api\n  send email big {{\n    subject \"Hello\"\n    html \"{html}\"\n  }}\n}}\n"
    )
}

#[test]
fn a_one_megabyte_string_literal_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let html = "<p>Maison</p>".repeat(1024 * 1024 / 13 + 1);
    assert!(html.len() >= 1024 * 1024);
    let r = check_bytes(
        dir.path(),
        "big.journey",
        journey_with_html(&html).as_bytes(),
    );
    assert_eq!(r.code, Some(0), "{}", &r.stderr[..r.stderr.len().min(2000)]);
    assert!(r.took < Duration::from_secs(20), "took {:?}", r.took);
}

#[test]
fn a_one_megabyte_string_never_closed() {
    let dir = tempfile::tempdir().unwrap();
    let src = journey_with_html(&"x".repeat(1024 * 1024));
    let src = src.replacen("\"\n  }", "\n  }", 1);
    let r = check_bytes(dir.path(), "open.journey", src.as_bytes());
    assert_diagnosed("open.journey", &r, "this string has no closing quote");
    assert!(
        r.stderr.starts_with("open.journey:5:10: error:"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_one_megabyte_line_with_an_error_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        "journey long {{\n  entry api\n  if {} and contact.x = 1 {{ end }}\n}}\n",
        vec!["contact.a == 1"; 70_000].join(" and ")
    );
    let r = check_bytes(dir.path(), "long.journey", src.as_bytes());
    assert_diagnosed("long.journey", &r, "expected a comparison");
    assert!(
        r.stderr.contains('…') && r.stderr.contains("^ found '='"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_long_word_of_multibyte_letters_where_a_name_belongs() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("journey {} {{\n  entry api\n}}\n", "é".repeat(50));
    let r = check_bytes(dir.path(), "accents.journey", src.as_bytes());
    assert_diagnosed("accents.journey", &r, "expected a name");
}

#[test]
fn a_directory_named_like_a_journey_file_is_not_read() {
    // `check DIR` walks it; a sub-directory ending in .journey is not a file to parse.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("odd.journey")).unwrap();
    std::fs::write(
        dir.path().join("ok.journey"),
        "journey a {\n  entry api\n  wait 1d\n}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_journey"))
        .current_dir(dir.path())
        .args(["check", "."])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn strings_and_comments_take_any_character() {
    // Quotes and backslashes escaped, control characters, accents, emoji, CRLF line ends and
    // `#` inside strings: all valid.
    let dir = tempfile::tempdir().unwrap();
    let src = "# Ünïcödé comment with \"quotes\" and \\ backslash 🎉\r\n\
        journey odd_text { # trailing comment\r\n\
          entry api\r\n\
          send sms hello {\r\n\
            text \"Caffè \\\"al volo\\\" \\\\ #1 \t 🎉 ]}[{\"\r\n\
          }\r\n\
          set contact.note = \"a\\nb\"\r\n\
        }\r\n";
    let r = check_bytes(dir.path(), "odd.journey", src.as_bytes());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

/// A command whose reader goes away (`journey check … | head -1`) ends quietly: no panic,
/// no message, killed by SIGPIPE as Unix tools are. The output is far larger than a pipe's
/// buffer, so the command is still writing when the reader closes.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let mut src =
        String::from("journey many {\n  entry api\n  send email m { subject \"s\" text \"t\" }\n");
    for i in 0..3000 {
        src.push_str(&format!(
            "  check clicked nope{i} within 1d {{ yes {{ end }} no {{ end }} }}\n"
        ));
    }
    src.push_str("}\n");
    let file = tmp.path().join("many.journey");
    std::fs::write(&file, src).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_journey"))
        .args(["check", "--format", "json"])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("unknown message 'nope0'"), "{first}");
    // The reader is dropped here: the pipe is closed while the command still writes.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{stderr}");
}
