//! The canonical formatter: idempotent, keeps every comment, never changes meaning, and gives
//! one layout whatever the whitespace of the input.

use journey::compile::{self, ir::Program};
use journey::lang::{self, ast, fmt::format_source, parse::parse_file};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The example directories whose files the formatter must handle.
fn example_dirs() -> Vec<PathBuf> {
    vec![
        root().join("journeys"),
        root().join("tests/fixtures/language"),
    ]
}

fn example_files() -> Vec<(PathBuf, String)> {
    let files = lang::journey_files(&example_dirs()).expect("example directories");
    assert!(files.len() >= 10, "examples found: {files:?}");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable example");
            (p, text)
        })
        .collect()
}

fn parse(text: &str) -> ast::File {
    match parse_file(0, text) {
        Ok(f) => f,
        Err(d) => panic!("does not parse: {d:?}\n---\n{text}"),
    }
}

fn fmt(text: &str) -> String {
    format_source(text, &parse(text))
}

/// The comments of a journey text, in order, found independently of the formatter.
fn comments(text: &str) -> Vec<String> {
    pieces(text)
        .into_iter()
        .filter(|p| p.kind == PieceKind::Comment)
        .map(|p| p.text.trim_end().to_string())
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceKind {
    Space,
    Comment,
    Code,
}

#[derive(Debug, Clone)]
struct Piece {
    kind: PieceKind,
    text: String,
    /// Line numbers where the piece starts and ends.
    lines: (usize, usize),
}

/// Splits a text into runs of whitespace, comments, and code (strings are code).
fn pieces(text: &str) -> Vec<Piece> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<Piece> = Vec::new();
    let mut i = 0;
    let mut line = 0;
    while i < chars.len() {
        let start = i;
        let first_line = line;
        let kind = match chars[i] {
            ' ' | '\t' | '\r' | '\n' => {
                while i < chars.len() && matches!(chars[i], ' ' | '\t' | '\r' | '\n') {
                    i += 1;
                }
                PieceKind::Space
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                PieceKind::Comment
            }
            '"' if chars[i..].starts_with(&['"', '"', '"']) => {
                i += 3;
                while i < chars.len() && !chars[i..].starts_with(&['"', '"', '"']) {
                    i += 1;
                }
                i = (i + 3).min(chars.len());
                PieceKind::Code
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(chars.len());
                PieceKind::Code
            }
            _ => {
                while i < chars.len() && !matches!(chars[i], ' ' | '\t' | '\r' | '\n' | '#' | '"') {
                    i += 1;
                }
                PieceKind::Code
            }
        };
        let text: String = chars[start..i].iter().collect();
        line += text.matches('\n').count();
        out.push(Piece {
            kind,
            text,
            lines: (first_line, line),
        });
    }
    out
}

/// Replaces the whitespace between tokens by random whitespace with the same number of blank
/// lines (none, or some), except on lines that hold a comment: where a comment sits, and in
/// which column, is the author's say.
fn perturb(text: &str, mut seed: u64) -> String {
    let ps = pieces(text);
    let comment_lines: std::collections::HashSet<usize> = ps
        .iter()
        .filter(|p| p.kind == PieceKind::Comment)
        .map(|p| p.lines.0)
        .collect();
    let mut next = move || {
        // xorshift64*
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize
    };
    let mut out = String::with_capacity(text.len() * 2);
    for p in &ps {
        let frozen = p.kind != PieceKind::Space
            || comment_lines.contains(&p.lines.0)
            || comment_lines.contains(&p.lines.1);
        if frozen {
            out.push_str(&p.text);
        } else if p.text.matches('\n').count() >= 2 {
            out.push_str(["\n\n", "\n  \n", " \n\n\n  "][next() % 3]);
        } else {
            out.push_str([" ", "\n", "  \n   "][next() % 3]);
        }
    }
    out
}

/// The syntax tree as JSON with every span blanked, to compare trees of different layouts.
fn tree_without_spans(file: &ast::File) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                let is_span = m.len() == 2 && m.contains_key("start") && m.contains_key("end");
                if is_span {
                    *v = serde_json::Value::Null;
                } else {
                    m.values_mut().for_each(strip);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(file).expect("tree serializes");
    strip(&mut v);
    v
}

fn program_of(loaded: &lang::Loaded) -> Program {
    let compiled = compile::compile(loaded);
    let errors: Vec<_> = compiled
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert!(errors.is_empty(), "errors: {errors:?}");
    compiled.program.expect("a program")
}

// ---------------------------------------------------------------- the examples

#[test]
fn examples_format_idempotently() {
    for (path, text) in example_files() {
        let once = fmt(&text);
        let twice = fmt(&once);
        assert_eq!(once, twice, "{} is not stable", path.display());
    }
}

#[test]
fn examples_keep_every_comment() {
    for (path, text) in example_files() {
        let before = comments(&text);
        assert!(!before.is_empty() || path.ends_with("03_segments.journey"));
        let after = comments(&fmt(&text));
        assert_eq!(before, after, "{}", path.display());
    }
}

#[test]
fn examples_keep_their_syntax_tree() {
    for (path, text) in example_files() {
        let formatted = fmt(&text);
        assert_eq!(
            tree_without_spans(&parse(&text)),
            tree_without_spans(&parse(&formatted)),
            "{}",
            path.display()
        );
    }
}

#[test]
fn examples_keep_their_compiled_journeys() {
    for dir in example_dirs() {
        let files = lang::journey_files(std::slice::from_ref(&dir)).unwrap();
        let original = program_of(&lang::load_files(&files));
        let mut formatted = lang::Loaded::default();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            lang::add_source(&mut formatted, f.clone(), fmt(&text));
        }
        // Compiling reads no files: the templates come in with the sources.
        lang::add_templates(&mut formatted, &files);
        let reformatted = program_of(&formatted);
        let hashes = |p: &Program| -> BTreeMap<String, String> {
            p.journeys
                .iter()
                .map(|(n, j)| (n.clone(), j.content_hash()))
                .collect()
        };
        assert!(!original.journeys.is_empty());
        assert_eq!(hashes(&original), hashes(&reformatted), "{}", dir.display());
        assert_eq!(original, reformatted, "{}", dir.display());
    }
}

#[test]
fn journeys_directory_is_canonical() {
    for (path, text) in example_files() {
        if path.starts_with(root().join("journeys")) {
            assert_eq!(fmt(&text), text, "run `journey fmt {}`", path.display());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the whitespace between tokens, the canonical text is the same.
    #[test]
    fn layout_does_not_matter(seed in any::<u64>()) {
        let mut texts = example_files();
        texts.push((PathBuf::from("MESSY"), MESSY.to_string()));
        for (path, text) in texts {
            let messy = perturb(&text, seed);
            let expected = fmt(&text);
            let got = fmt(&messy);
            prop_assert_eq!(&got, &expected, "{} perturbed:\n{}", path.display(), messy);
        }
    }
}

#[test]
fn perturbation_changes_the_layout() {
    // The property above would prove nothing if `perturb` left the text as it was.
    let (_, text) = &example_files()[0];
    let messy = perturb(text, 7);
    assert_ne!(&messy, text);
    assert_eq!(comments(&messy), comments(text));
}

// ---------------------------------------------------------------- layouts

const MESSY: &str = r#"


# File header comment



policy   p1 {title "A \"quoted\" policy" max 1 email per 1d
  # own line before scope
     scope journey   when capped skip   # trailing after when
max 3 messages per 1w}
segment s1 { title   "Seg"
   rule a : contact.country in ["IT","FR",]   # trailing a
  and rule bb: not ( opened channel email in last 2d or clicked label "x#y" )
 or   rule c: event "e" where x == 1 and ( y != "z" or w starts with "q" ) at most 3 times between 2026-01-01 and 2026-03-31
    except rule d_long_name: clicked message where subject contains "hi" within 3d after delivery
}
journey   messy{title"Messy"category "c" label  "l"
entry event "form" where a.b == -1.50 and not (c == true)
entry segment s1 every day 9:05 Europe/Rome
entry segment s1 at 2026-03-13 10:00


reentry after 1d12h goal event "g" exit event "x" where y >= 2 policy none quiet 21:00..08:00
migrate   by name   # trailing migrate
                    # continuation of it
send email w { subject "Hi # not a comment" template "welcome.html"
from "a@b.c"
  link l "https://x.y/?a=1#frag"
  html   """<p>
  # not a comment, inside a triple string
"quoted"</p>"""   # after triple
}
# before check
check opened w within 3d { yes { set contact.a = "b" } no {
  # inside no, before wait
  wait 2d
  # last in no
} }
lbl : wait until monday 09:00
wait until 2026-03-14 9:00 America/New_York
wait for event "purchase" where total > 10 within 7d { no { goto lbl } }
if in segment s1 { end } else if count event "v" where p == "q" >= 2 in last 15d {
  send sms t { text "line1\nline2\ttab \\ back" }
}   # after if block
else { split random { 33.5% a { end } 66.5% b {  # trailing b
 send webhook hook { url "https://h" method POST header "K" "V" timeout 10s body "{\"a\": 1}" }
 } } }
send push p { title "T" body "B" data { screen "s" productId "{{ event.id }}" } }
set contact.flag = [1, 2.5, "x", 2026-01-02]
# before end of journey
}
# trailing file comment

"#;

#[test]
fn snapshot_messy_file() {
    let out = fmt(MESSY);
    assert_eq!(fmt(&out), out);
    assert_eq!(comments(MESSY), comments(&out));
    assert_eq!(
        tree_without_spans(&parse(MESSY)),
        tree_without_spans(&parse(&out))
    );
    insta::assert_snapshot!("messy_file", out);
}

#[test]
fn snapshot_one_line_journey() {
    let src = r#"journey j { title "One line" entry event "signup" where (plan == "pro" or plan == "team") and not country in ["US", "CA"] reentry never send email hi { subject "Hi" text "Hello" } check opened hi within 2d { yes { end } } if count opened channel email >= 3 in last 30d and last clicked journey j < 7d ago { set contact.engaged = true } else { goto done } done: end }"#;
    let out = fmt(src);
    assert_eq!(fmt(&out), out);
    insta::assert_snapshot!("one_line_journey", out);
}

#[test]
fn topics_and_consent_headers_on_one_line() {
    let src = r#"topic news { title "News" default unsubscribed } journey j { topic news entry api send email hi { subject "Hi" text "Hello" } } journey r { transactional entry api send email receipt { subject "R" text "Thanks" } }"#;
    let out = fmt(src);
    assert_eq!(fmt(&out), out);
    assert_eq!(
        out,
        "topic news {\n  title \"News\"\n  default unsubscribed\n}\n\njourney j {\n  topic news\n  entry api\n  send email hi {\n    subject \"Hi\"\n    text    \"Hello\"\n  }\n}\n\njourney r {\n  transactional\n  entry api\n  send email receipt {\n    subject \"R\"\n    text    \"Thanks\"\n  }\n}\n"
    );
    assert_eq!(
        tree_without_spans(&parse(src)),
        tree_without_spans(&parse(&out))
    );
}

#[test]
fn snapshot_comments_everywhere() {
    let src = "# top\n\n\n# about the segment\nsegment s { # after brace\n  # before title\n  title \"S\"   # on title\n\n\n  # before rule\n  rule r: contact.a == 1 # on rule\n  # before closing brace\n}   # after closing brace\n# between definitions\npolicy p {\n  max 1 email per 1d\n}\n\n\n\n# at the end\n\n# really the end\n";
    let out = fmt(src);
    assert_eq!(fmt(&out), out);
    assert_eq!(comments(src), comments(&out));
    insta::assert_snapshot!("comments_everywhere", out);
}

#[test]
fn blank_lines_are_kept_once_and_dropped_at_block_edges() {
    let src =
        "journey j {\n\n\n  entry api\n\n\n\n  wait 1d\n  wait 2d\n\n}\nsegment s { rule r: true }";
    assert_eq!(
        fmt(src),
        "journey j {\n  entry api\n\n  wait 1d\n  wait 2d\n}\n\nsegment s {\n  rule r: true\n}\n"
    );
}

#[test]
fn trailing_comments_go_to_column_40_or_after_long_code() {
    let src = "journey j {\n  entry api # short\n  entry event \"a_rather_long_event_name\" where x == 1 # long\n}\n";
    let out = fmt(src);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1].find('#'), Some(39));
    assert!(lines[2].ends_with("== 1  # long"), "{out}");
}

#[test]
fn strings_are_reescaped_and_triple_strings_kept() {
    let src = "journey j { entry api send sms s { text \"a\\\"b\\\\c\\'d\\n\" } send email e { subject \"s\" html \"\"\"<p class=\"x\">\\n #1\n</p>\"\"\" } }";
    let out = fmt(src);
    assert!(out.contains(r#"text "a\"b\\c'd\n""#), "{out}");
    assert!(
        out.contains("html \"\"\"<p class=\"x\">\\n #1\n</p>\"\"\""),
        "{out}"
    );
    assert_eq!(fmt(&out), out);
    assert_eq!(
        tree_without_spans(&parse(src)),
        tree_without_spans(&parse(&out))
    );
}

#[test]
fn values_are_printed_as_written() {
    let src = "journey j { entry segment s every friday 7:30 reentry after 1d12h wait 90m split random { 12.50% a { set contact.x = 007.5 } 87.5% b { set contact.d = 2026-01-05 } } }\nsegment s { rule r: no event \"e\" exactly 1 time in last 2w }";
    let out = fmt(src);
    for expected in [
        "every friday 07:30",
        "after 1d12h",
        "wait 90m",
        "12.50% a {",
        "= 007.5",
        "= 2026-01-05",
        "exactly 1 time in last 2w",
    ] {
        assert!(out.contains(expected), "{expected} in\n{out}");
    }
}

#[test]
fn windows_line_endings_give_the_same_layout() {
    let (_, text) = example_files()
        .into_iter()
        .find(|(p, _)| p.ends_with("dnd.journey"))
        .unwrap();
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(fmt(&crlf), fmt(&text));
}

#[test]
fn empty_and_comment_only_files() {
    let empty = ast::File {
        definitions: vec![],
    };
    assert_eq!(format_source("", &empty), "");
    assert_eq!(format_source("\n\n  \n", &empty), "");
    assert_eq!(
        fmt("\n\n# just a note   \n\n\n# another\n\n"),
        "# just a note\n\n# another\n"
    );
}

#[test]
fn never_panics_with_a_tree_of_another_text() {
    let files = example_files();
    let trees: Vec<ast::File> = files.iter().map(|(_, t)| parse(t)).collect();
    for (_, text) in &files {
        for tree in &trees {
            let _ = format_source(text, tree);
            let _ = format_source("", tree);
            let _ = format_source(&text[..text.len() / 3], tree);
        }
    }
}

#[test]
fn long_condition_chains_do_not_recurse() {
    let mut cond = String::from("a == 1");
    for i in 0..20_000 {
        cond.push_str(if i % 3 == 0 {
            " or a == 2"
        } else {
            " and b == 3"
        });
    }
    let src = format!("journey j {{ entry event \"e\" where {cond} }}");
    // Parsing and dropping the tree take a big stack; formatting must not.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let tree = parse(&src);
            let out = std::thread::scope(|s| {
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, || format_source(&src, &tree))
                    .unwrap()
                    .join()
                    .expect("no stack overflow")
            });
            assert!(out.contains(&cond));
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_megabyte_formats_quickly() {
    let mut text = String::new();
    let examples = example_files();
    while text.len() < 1 << 20 {
        for (_, t) in &examples {
            text.push_str(t);
            text.push('\n');
        }
    }
    let tree = parse(&text);
    let start = Instant::now();
    let out = format_source(&text, &tree);
    let took = start.elapsed();
    assert!(out.len() > 1 << 19);
    // The requirement is for release builds; unoptimized test builds get more room.
    let limit = if cfg!(debug_assertions) {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(100)
    };
    eprintln!("formatting {} bytes took {took:?}", text.len());
    assert!(took < limit, "formatting 1 MB took {took:?}");
}

// ---------------------------------------------------------------- the command

fn journey_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_journey"))
}

#[test]
fn cli_check_then_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messy.journey");
    std::fs::write(&path, MESSY).unwrap();

    let out = journey_cmd()
        .arg("fmt")
        .arg("--check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("would reformat"));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        MESSY,
        "--check changed the file"
    );

    let out = journey_cmd().arg("fmt").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), fmt(MESSY));

    let out = journey_cmd()
        .arg("fmt")
        .arg("--check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn cli_leaves_a_broken_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.journey");
    let text = "journey j {   wait 2 }\n";
    std::fs::write(&path, text).unwrap();
    let out = journey_cmd().arg("fmt").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn cli_examples_pass_check() {
    let out = journey_cmd()
        .current_dir(root())
        .args(["fmt", "--check"])
        .arg(Path::new("journeys"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn deep_comments_are_not_taken_for_continuations() {
    // At 20 levels a comment alone on its line sits in column 40, near the trailing comment
    // of the line above: it must stay a comment of its own.
    let mut src = String::from("journey j {\n entry api\n");
    for _ in 0..19 {
        src.push_str("if true {\n");
    }
    src.push_str("wait 1d # trailing\n# own line\nend\n");
    for _ in 0..19 {
        src.push_str("}\n");
    }
    src.push_str("}\n");
    let out = fmt(&src);
    assert_eq!(fmt(&out), out);
    assert!(
        out.contains("\n                                        # own line\n"),
        "{out}"
    );
}
