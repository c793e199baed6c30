//! `journey check`: parse and compile, report every diagnostic of every file in one run.

use super::OutputFormat;
use crate::channels::render::Renderer;
use crate::compile::{
    self,
    ir::{EntryIr, MessageIr, Program},
};
use crate::lang::ast::{Definition, Send, Step, StepKind};
use crate::lang::diagnostic::Diagnostic;
use crate::lang::{self, diagnostic};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Files or directories to check together [default: journeys/]
    pub paths: Vec<PathBuf>,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

pub fn run(args: CheckArgs) -> ExitCode {
    let paths = super::default_paths(args.paths);
    let files = match lang::journey_files(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let loaded = lang::load_files(&files);
    let mut compiled = compile::compile(&loaded);
    if let Some(p) = &compiled.program {
        let extra = template_warnings(&loaded, p);
        compiled.diagnostics.extend(extra);
    }
    let errors = compiled.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = compiled.diagnostics.len() - errors;
    match args.format {
        OutputFormat::Json => print!(
            "{}",
            diagnostic::render_json(&loaded.sources, &compiled.diagnostics)
        ),
        OutputFormat::Human => {
            eprint!(
                "{}",
                diagnostic::render_human(
                    &loaded.sources,
                    &compiled.diagnostics,
                    super::use_color()
                )
            );
            let summary = match &compiled.program {
                Some(p) => {
                    format!(
                        "checked {} file{}: {} journey{}, {} segment{}, {} polic{}",
                        files.len(),
                        plural(files.len()),
                        p.journeys.len(),
                        plural(p.journeys.len()),
                        p.segments.len(),
                        plural(p.segments.len()),
                        p.policies.len(),
                        if p.policies.len() == 1 { "y" } else { "ies" }
                    ) + &if p.topics.is_empty() {
                        String::new()
                    } else {
                        format!(", {} topic{}", p.topics.len(), plural(p.topics.len()))
                    }
                }
                None => format!("checked {} file{}", files.len(), plural(files.len())),
            };
            eprintln!(
                "{summary}; {errors} error{}, {warnings} warning{}",
                plural(errors),
                plural(warnings)
            );
        }
    }
    if files.is_empty() {
        eprintln!(
            "error: no *.journey file found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::FAILURE;
    }
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Template variables no contact or event can provide (a misspelt `contcat.name`, or
/// `event.x` in a journey that no event enters): the send would fail at run time.
pub fn template_warnings(loaded: &lang::Loaded, program: &Program) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (file, ast) in &loaded.files {
        for def in &ast.definitions {
            let Definition::Journey(j) = def else {
                continue;
            };
            let Some(ir) = program.journeys.get(&j.name.name) else {
                continue;
            };
            let by_event = ir.entries.iter().any(|e| matches!(e, EntryIr::Event(_)));
            let mut sends = Vec::new();
            collect_sends(&j.steps, &mut sends);
            for s in sends {
                let Some(m) = ir.messages.get(&s.name.name) else {
                    continue;
                };
                let mut warnings = Renderer::lint(m, by_event);
                // The partials its template uses, each linted as a template of its own.
                for (name, text) in &m.partials {
                    let partial = MessageIr {
                        fields: [("template".to_string(), name.clone())].into(),
                        links: Default::default(),
                        headers: Vec::new(),
                        data: Default::default(),
                        template_source: Some(text.clone()),
                        partials: Default::default(),
                        ..m.clone()
                    };
                    warnings.extend(Renderer::lint(&partial, by_event));
                }
                for w in warnings {
                    out.push(
                        Diagnostic::warning(
                            *file,
                            s.name.span,
                            format!("message '{}', {w}", s.name.name),
                        )
                        .with_help(
                            "templates see `contact`, `event` (journeys entered by an event), `link('name')` and `unsubscribe_url`; a missing variable fails the send",
                        ),
                    );
                }
            }
        }
    }
    out
}

fn collect_sends<'a>(steps: &'a [Step], out: &mut Vec<&'a Send>) {
    for step in steps {
        match &step.kind {
            StepKind::Send(s) => out.push(s),
            StepKind::Check(c) => {
                for b in [&c.outcomes.yes, &c.outcomes.no].into_iter().flatten() {
                    collect_sends(&b.steps, out);
                }
            }
            StepKind::WaitForEvent(w) => {
                for b in [&w.outcomes.yes, &w.outcomes.no].into_iter().flatten() {
                    collect_sends(&b.steps, out);
                }
            }
            StepKind::If(i) => {
                for (_, b) in &i.arms {
                    collect_sends(&b.steps, out);
                }
                if let Some(b) = &i.otherwise {
                    collect_sends(&b.steps, out);
                }
            }
            StepKind::Split(s) => {
                for a in &s.arms {
                    collect_sends(&a.block.steps, out);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_template_variables_are_warnings_on_the_message() {
        let src = r#"journey lint_me {
  entry api
  policy none
  check opened hello within 1d {
    yes {
      send email hello {
        subject "Hi {{ contcat.first_name }} {{ contact.first_name | default('x') }}"
        text "{{ event.product }} {{ link('shop') }} {{ unsubscribe_url }}"
        link shop "https://x.example/{{ contact.id }}"
      }
    }
  }
  send email hello2 {
    subject "fine {{ contact.id }}"
    text "ok"
  }
}
"#;
        let mut loaded = lang::Loaded::default();
        lang::add_source(&mut loaded, "l.journey", src.to_string());
        let compiled = compile::compile(&loaded);
        let Some(p) = &compiled.program else {
            // `check opened hello` before its send may not compile; the warnings need a program.
            panic!("{:?}", compiled.diagnostics);
        };
        let w: Vec<String> = template_warnings(&loaded, p)
            .into_iter()
            .map(|d| d.message)
            .collect();
        assert_eq!(
            w,
            vec![
                "message 'hello', subject: unknown variable 'contcat.first_name'".to_string(),
                "message 'hello', text: unknown variable 'event.product'".to_string(),
            ]
        );
    }
}
