//! `journey check` speed on ~1 MB of generated journey source (target: ≤ 100 ms on a 2-core
//! machine). Run with `cargo bench --bench check_speed`.
//!
//! The source is varied and valid: every unit has a policy, a segment with every combinator
//! and rule kind, and a journey with every header and every step kind (send on each channel,
//! wait, wait until, check, wait for event, if / else if / else, split random, set, labels,
//! goto, end), with unique names. It is written to a temporary directory as several files
//! (with a templates/ folder) and checked the way the CLI checks: find the files, load and
//! parse them, compile them together.

use journey::{compile, lang};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TARGET_BYTES: usize = 1024 * 1024;
const FILES: usize = 8;
/// Timed runs; `CHECK_SPEED_RUNS=1` for a quick look (or under a profiler).
const RUNS: usize = 15;

fn unit(i: usize) -> String {
    format!(
        r#"# Generated unit {i}: a policy, a segment and a journey using every construct.

policy cap_{i} {{
  title "Caps for unit {i}"
  max 1 email per 1d
  max 2 sms per 1w
  max 5 messages per 1w
  scope journey
  when capped skip
}}

segment buyers_{i} {{
  title "Viewed shoe {i} and did not buy"
  rule viewed:    event "viewed_product" where product_name == "Shoe {i}" at least 2 times in last 15d
  and rule no_buy: no event "purchase" in last 15d
  or rule vip:    contact.tier in ["gold", "vip"] and contact.age >= 18
  except rule opened: opened message where journey == "journey_{i}" within 3d after delivery
}}

journey journey_{i} {{
  title    "Generated journey {i}"
  category "generated"
  label    "bench"

  entry event "signed_up_{i}" where plan == "pro" and (country in ["IT", "FR"] or source starts with "ads")
  entry segment buyers_{i} every monday 09:00 Europe/Rome
  reentry after 30d
  goal event "purchase" where total > 0
  exit event "unsubscribed"
  policy cap_{i}
  quiet 21:00..08:00
  migrate by name

  send email welcome_{i} {{
    subject  "Welcome, {{{{ contact.first_name | default('friend') }}}}"
    template "welcome.html"
    from     "Maison <hello@maison.example>"
    link profile "https://maison.example/profile?c={{{{ contact.id }}}}&u={i}"
  }}

  check clicked welcome_{i}.profile within 3d {{
    yes {{
      send sms promo_{i} {{
        text "Maison: your code is SHOE{i}. Valid 7 days."
      }}
    }}
    no {{
      wait 1d
      nudge: send push nudge_{i} {{
        title "Still thinking about it?"
        body  "Shoe {i} is waiting for you."
        data {{
          screen "product"
          product_id "{i}"
        }}
      }}
      check opened nudge_{i} within 2d {{
        no {{
          if not (count received nudge_{i} >= 2 in last 7d) {{
            goto nudge
          }}
        }}
      }}
    }}
  }}

  wait until friday 18:00 Europe/Rome

  if contact.country == "IT" and in segment buyers_{i} {{
    set contact.vip_{i} = true
  }} else if last opened channel push < 15d ago {{
    wait 2d
  }} else if count event "purchase" where total > 100 >= 1 in last 30d {{
    end
  }} else {{
    send email reminder_{i} {{
      subject "A reminder"
      html """<p>Hello {{{{ contact.first_name }}}},</p>
<p>Shoe {i} is still here.</p>"""
    }}
  }}

  split random {{
    40% hook {{
      send webhook hook_{i} {{
        url     "https://ads.maison.example/audiences/{i}"
        method  POST
        body    "{{\"id\": \"{{{{ contact.id }}}}\"}}"
        header  "Content-Type" "application/json"
        timeout 10s
      }}
    }}
    60% watch {{
      wait for event "purchase" where total > {i} within 7d {{
        yes {{
          bought_{i}: set contact.bought = "shoe {i}"
        }}
      }}
    }}
  }}

  wait until 2026-12-24 09:00
}}

"#
    )
}

/// Writes ~`TARGET_BYTES` of source into `dir` as `FILES` files; returns the bytes written.
fn generate(dir: &Path) -> usize {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("templates/welcome.html"),
        "<p>Welcome, {{ contact.first_name }}!</p>\n",
    )
    .unwrap();
    let mut files = vec![String::new(); FILES];
    let (mut total, mut i) = (0, 0);
    while total < TARGET_BYTES {
        let u = unit(i);
        total += u.len();
        files[i % FILES].push_str(&u);
        i += 1;
    }
    for (n, text) in files.iter().enumerate() {
        std::fs::write(dir.join(format!("gen_{n}.journey")), text).unwrap();
    }
    total
}

/// What `journey check DIR` does, minus printing.
fn check(dir: &Path) -> compile::Compiled {
    let files = lang::journey_files(&[dir.to_path_buf()]).unwrap();
    let loaded = lang::load_files(&files);
    compile::compile(&loaded)
}

struct Figures {
    min: Duration,
    median: Duration,
    parse: Duration,
    compile: Duration,
}

/// Times `runs` whole checks of `dir`, then `runs` of its two halves separately.
fn measure(dir: &Path, runs: usize) -> Figures {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let c = check(dir);
            let took = t.elapsed();
            assert!(c.program.is_some());
            took
        })
        .collect();
    times.sort();
    // Where the time goes: parse (read + pest + syntax tree) and compile (checks + IR).
    let files = lang::journey_files(&[dir.to_path_buf()]).unwrap();
    let mut parse_times = Vec::new();
    let mut compile_times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let loaded = lang::load_files(&files);
        parse_times.push(t.elapsed());
        let t = Instant::now();
        let c = compile::compile(&loaded);
        compile_times.push(t.elapsed());
        assert!(c.program.is_some());
    }
    parse_times.sort();
    compile_times.sort();
    Figures {
        min: times[0],
        median: times[runs / 2],
        parse: parse_times[runs / 2],
        compile: compile_times[runs / 2],
    }
}

fn report(what: &str, mb: f64, f: &Figures, runs: usize) {
    println!(
        "check_speed: {what}: min {:.1} ms, median {:.1} ms over {runs} runs, {:.1} MB/s \
         (median parse {:.1} ms, compile {:.1} ms)",
        f.min.as_secs_f64() * 1e3,
        f.median.as_secs_f64() * 1e3,
        mb / f.median.as_secs_f64(),
        f.parse.as_secs_f64() * 1e3,
        f.compile.as_secs_f64() * 1e3
    );
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("files");
    let bytes = generate(&dir);
    // The same source as one file: parsed on one core.
    let one: PathBuf = tmp.path().join("one");
    std::fs::create_dir_all(one.join("templates")).unwrap();
    std::fs::copy(
        dir.join("templates/welcome.html"),
        one.join("templates/welcome.html"),
    )
    .unwrap();
    let all: String = (0..FILES)
        .map(|n| std::fs::read_to_string(dir.join(format!("gen_{n}.journey"))).unwrap())
        .collect();
    std::fs::write(one.join("all.journey"), all).unwrap();

    let compiled = check(&dir);
    let Some(program) = compiled.program else {
        let files = lang::journey_files(std::slice::from_ref(&dir)).unwrap();
        let loaded = lang::load_files(&files);
        eprint!(
            "{}",
            lang::diagnostic::render_human(&loaded.sources, &compiled.diagnostics, false)
        );
        panic!("the generated source does not check clean");
    };
    assert!(compiled.diagnostics.is_empty());

    let runs: usize = std::env::var("CHECK_SPEED_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(RUNS);
    let mb = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "check_speed: {:.2} MB ({} journeys, {} segments, {} policies, {} steps)",
        mb,
        program.journeys.len(),
        program.segments.len(),
        program.policies.len(),
        program
            .journeys
            .values()
            .map(|j| j.steps.len())
            .sum::<usize>()
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    report(
        &format!("{FILES} files, {cores} cores"),
        mb,
        &measure(&dir, runs),
        runs,
    );
    report("1 file", mb, &measure(&one, runs), runs);
}
