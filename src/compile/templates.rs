//! The static check of template variables: the names a message's texts (and its template
//! and partials) use that no contact or event provides for sure. A misspelt `contcat.name`
//! or an `event.x` in a journey no event enters would fail the send at run time; `journey
//! check` warns of them. minijinja parses the texts here; it renders them in `channels`.

use crate::compile::ir::{EntryIr, MessageIr, Program};
use crate::lang::ast::{Definition, Send, Step, StepKind};
use crate::lang::diagnostic::Diagnostic;
use crate::lang::Loaded;
use minijinja::Environment;
use std::collections::BTreeSet;

/// The variables a message's texts use that no contact or event provides for sure:
/// every name other than `contact`, `event`, `link` and `unsubscribe_url`, and
/// `event.x` in journeys that no event enters. For `journey check` warnings.
pub fn unknown_variables(message: &MessageIr, entered_by_event: bool) -> Vec<String> {
    let env = Environment::new();
    let mut texts: Vec<(String, &str)> = Vec::new();
    for (k, v) in &message.fields {
        if !matches!(k.as_str(), "template" | "method") {
            texts.push((k.clone(), v));
        }
    }
    if let Some(s) = &message.template_source {
        texts.push((
            message
                .fields
                .get("template")
                .cloned()
                .unwrap_or_else(|| "template".into()),
            s,
        ));
    }
    for (k, v) in &message.links {
        texts.push((format!("link {k}"), v));
    }
    for (k, v) in &message.data {
        texts.push((format!("data {k}"), v));
    }
    for (k, v) in &message.headers {
        texts.push((format!("header {k}"), v));
    }
    let mut out = BTreeSet::new();
    for (what, text) in texts {
        let Ok(t) = env.template_from_str(text) else {
            out.insert(format!("{what}: not a valid template"));
            continue;
        };
        for var in t.undeclared_variables(true) {
            let root = var.split('.').next().unwrap_or(&var);
            let known = matches!(root, "contact" | "link" | "unsubscribe_url")
                || (root == "event" && entered_by_event);
            if !known {
                out.insert(format!("{what}: unknown variable '{var}'"));
            }
        }
    }
    out.into_iter().collect()
}

/// Template variables no contact or event can provide (a misspelt `contcat.name`, or
/// `event.x` in a journey that no event enters): the send would fail at run time.
pub fn template_warnings(loaded: &Loaded, program: &Program) -> Vec<Diagnostic> {
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
                let mut warnings = unknown_variables(m, by_event);
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
                    warnings.extend(unknown_variables(&partial, by_event));
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
            StepKind::Experiment(x) => {
                for (_, b) in x.arms.iter().filter_map(|a| a.arm.as_ref()) {
                    collect_sends(&b.steps, out);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(fields: &[(&str, &str)]) -> MessageIr {
        MessageIr {
            name: "welcome".into(),
            channel: crate::domain::Channel::Email,
            step: "welcome".into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            links: Default::default(),
            headers: Vec::new(),
            data: Default::default(),
            timeout_seconds: None,
            template_source: None,
            partials: Default::default(),
        }
    }

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
        let mut loaded = crate::lang::Loaded::default();
        crate::lang::add_source(&mut loaded, "l.journey", src.to_string());
        let compiled = crate::compile::compile(&loaded);
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

    #[test]
    fn lint_names_unknown_variables() {
        let m = message(&[
            ("subject", "{{ contact.x }} {{ customer.name }}"),
            ("text", "{{ event.y }} {{ link('a') }}"),
        ]);
        assert_eq!(
            unknown_variables(&m, false),
            vec![
                "subject: unknown variable 'customer.name'".to_string(),
                "text: unknown variable 'event.y'".to_string()
            ]
        );
        assert_eq!(unknown_variables(&m, true).len(), 1);
    }
}
