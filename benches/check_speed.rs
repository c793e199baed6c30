//! `journey check` speed on ~1 MB of generated journey source (target: ≤ 100 ms on a 2-core
//! machine). Run with `cargo bench --bench check_speed`.
//!
//! The source is varied and valid (`journey::bench::source`, shared with `journey bench
//! lsp`): every unit has a policy, a segment with every combinator and rule kind, and a
//! journey with every header and every step kind, with unique names. It is written to a
//! temporary directory as several files (with a templates/ folder) and checked the way the
//! CLI checks: find the files, load and parse them, compile them together.

use journey::{compile, lang};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use journey::bench::source::{B5_BYTES as TARGET_BYTES, B5_FILES as FILES};
/// Timed runs; `CHECK_SPEED_RUNS=1` for a quick look (or under a profiler).
const RUNS: usize = 15;

/// Writes B5's source into `dir`; returns the bytes written.
fn generate(dir: &Path) -> usize {
    journey::bench::source::generate(dir, TARGET_BYTES, FILES)
        .expect("write the generated source")
        .1
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
