//! Parsing: source text → `ast::File`, or diagnostics in plain words. The grammar is
//! `grammar/journey.pest`; `build` turns pest's pairs into the AST, `errors` turns pest's
//! errors into "expected a duration such as 3d after 'within'" with hints, and `scan` is
//! the one lexer that steps over comments and strings for the checks done before parsing
//! and the hints after a failure.

mod build;
mod errors;
mod scan;

pub use build::parse_duration_text;
use build::Builder;
use errors::syntax_error;
use scan::check_nesting;

use super::ast::*;
use super::diagnostic::Diagnostic;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "grammar/journey.pest"]
pub struct JourneyParser;

/// Deeper nesting than this is refused before parsing: real journeys nest a handful of levels,
/// and a bound keeps every recursive pass (parser, compiler, formatter) far from the stack's end.
pub const MAX_NESTING: usize = 128;

/// Parses one file. `file` is the index used in diagnostics.
pub fn parse_file(file: usize, text: &str) -> Result<File, Vec<Diagnostic>> {
    if let Some(d) = check_nesting(file, text) {
        return Err(vec![d]);
    }
    let pairs = match JourneyParser::parse(Rule::file, text) {
        Ok(p) => p,
        Err(_) => {
            // Parse again with pest's token tracking on: slower, so only on the error path.
            // The switch is global to the process: files parsed on other threads meanwhile
            // only run slower, and the lock keeps two error paths from turning it off under
            // each other (which would make messages vary from run to run).
            static ERROR_DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _one_at_a_time = ERROR_DETAIL.lock().unwrap_or_else(|e| e.into_inner());
            pest::set_error_detail(true);
            let again = JourneyParser::parse(Rule::file, text);
            pest::set_error_detail(false);
            let err = again.expect_err("parsed twice");
            return Err(vec![syntax_error(file, text, err)]);
        }
    };
    let mut b = Builder {
        file,
        diags: Vec::new(),
    };
    let file_pair = pairs.into_iter().next().expect("file rule");
    let mut definitions = Vec::new();
    for p in file_pair.into_inner() {
        match p.as_rule() {
            Rule::journey => definitions.push(Definition::Journey(b.journey(p))),
            Rule::segment => definitions.push(Definition::Segment(b.segment(p))),
            Rule::policy => definitions.push(Definition::Policy(b.policy(p))),
            Rule::topic => definitions.push(Definition::Topic(b.topic(p))),
            Rule::EOI => {}
            r => unreachable!("unexpected {r:?} at top level"),
        }
    }
    if b.diags.is_empty() {
        Ok(File { definitions })
    } else {
        Err(b.diags)
    }
}

/// True for text with nothing but whitespace and `#` comments.
pub fn is_blank(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
}
