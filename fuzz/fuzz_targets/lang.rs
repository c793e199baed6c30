//! Any text as a journey file: parse, compile, render the diagnostics, and format what
//! parses. Nothing may panic, and the formatter's output must parse and format to itself.
#![no_main]
use journey::lang::{self, diagnostic, fmt, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut loaded = lang::Loaded::default();
    lang::add_source(&mut loaded, "fuzz.journey", text.to_string());
    let compiled = journey::compile::compile(&loaded);
    let mut diagnostics = loaded.diagnostics.clone();
    diagnostics.extend(compiled.diagnostics.iter().cloned());
    let _ = diagnostic::render_human(&loaded.sources, &diagnostics, false);
    let _ = diagnostic::render_json(&loaded.sources, &diagnostics);
    for (_, file) in &loaded.files {
        let once = fmt::format_source(text, file);
        let again = parse::parse_file(0, &once)
            .unwrap_or_else(|e| panic!("the formatted file does not parse: {e:?}\n{once}"));
        assert_eq!(
            once,
            fmt::format_source(&once, &again),
            "format is not idempotent"
        );
    }
});
