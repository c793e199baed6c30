//! `journey graph`: snapshots of the Mermaid and dot pictures, and one node per step for
//! every example journey.

use journey::compile::{self, graph, graph::GraphFormat, ir::Program};
use journey::lang;
use std::path::PathBuf;

fn examples() -> Program {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("journeys");
    let files = lang::journey_files(&[dir]).expect("journeys/ exists");
    let loaded = lang::load_files(&files);
    let compiled = compile::compile(&loaded);
    compiled.program.expect("the examples check clean")
}

fn program_of(text: &str) -> Program {
    let mut loaded = lang::Loaded::default();
    lang::add_source(&mut loaded, "loop.journey", text.to_string());
    let compiled = compile::compile(&loaded);
    assert!(
        compiled.diagnostics.is_empty(),
        "{:?}",
        compiled.diagnostics
    );
    compiled.program.unwrap()
}

/// `if` / `else if` / `else`, a split, a goto loop back through a check, a wait for an event,
/// and labels that need escaping (quotes, `#`, brackets, `<`, `|`).
const LOOPING: &str = r##"
journey nudge_loop {
  entry event "cart_abandoned" where total >= 50 and channel in ["web", "app"]
  entry segment vips every monday 09:30 Europe/Rome
  goal event "purchase"
  exit event "unsubscribed"

  segment_check: if contact.tier == "gold" or in segment vips {
    set contact.note = "VIP \"gold\" #1 [a|b] <c>"
  } else if count event "purchase" >= 3 in last 30d {
    wait 1d12h
  } else {
    end
  }

  split random {
    33.5% short { wait 2d }
    66.5% long { wait until friday 18:00 }
  }

  again: send email nudge {
    subject "Still there?"
    html "<p>Your cart</p>"
    link cart "https://shop.example/cart"
  }
  check clicked nudge.cart within 3d {
    no {
      if not (count received nudge >= 3 in last 14d) {
        goto again
      }
    }
  }

  wait for event "purchase" where total > 0 within 7d {
    yes { set contact.recovered = true }
  }
}

segment vips {
  rule gold: contact.tier == "gold"
}
"##;

#[test]
fn welcome_mermaid() {
    let p = examples();
    insta::assert_snapshot!(graph::render(
        &p.journeys["welcome_promo"],
        GraphFormat::Mermaid
    ));
}

#[test]
fn welcome_dot() {
    let p = examples();
    insta::assert_snapshot!(graph::render(
        &p.journeys["welcome_promo"],
        GraphFormat::Dot
    ));
}

#[test]
fn loop_mermaid() {
    let p = program_of(LOOPING);
    insta::assert_snapshot!(graph::render(
        &p.journeys["nudge_loop"],
        GraphFormat::Mermaid
    ));
}

#[test]
fn loop_dot() {
    let p = program_of(LOOPING);
    insta::assert_snapshot!(graph::render(&p.journeys["nudge_loop"], GraphFormat::Dot));
}

#[test]
fn rendering_is_deterministic() {
    let a = program_of(LOOPING);
    let b = program_of(LOOPING);
    for f in [GraphFormat::Mermaid, GraphFormat::Dot] {
        assert_eq!(
            graph::render(&a.journeys["nudge_loop"], f),
            graph::render(&b.journeys["nudge_loop"], f)
        );
    }
}

/// Node definitions are the lines `  ID<shape>"…"<shape>`; edges contain `-->`.
fn mermaid_nodes(out: &str) -> Vec<&str> {
    out.lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.starts_with("%%") && !l.contains("-->"))
        .collect()
}

#[test]
fn every_example_has_one_mermaid_node_per_step() {
    let p = examples();
    assert!(p.journeys.len() >= 6);
    for (name, j) in &p.journeys {
        let out = graph::render(j, GraphFormat::Mermaid);
        assert!(out.starts_with("flowchart TD\n"), "{name}");
        let nodes = mermaid_nodes(&out);
        // Every step, plus start and exit.
        assert_eq!(nodes.len(), j.steps.len() + 2, "{name}:\n{out}");
        for (i, s) in j.steps.iter().enumerate() {
            let id = format!("s{i}");
            let defs: Vec<_> = nodes
                .iter()
                .filter(|l| {
                    l.strip_prefix(id.as_str())
                        .is_some_and(|r| r.starts_with(['[', '(', '{']))
                })
                .collect();
            assert_eq!(defs.len(), 1, "{name}: step {} in\n{out}", s.name);
            assert!(defs[0].contains(&s.name), "{name}: {}", defs[0]);
        }
        // Every edge ends at a defined node.
        for l in out.lines().filter(|l| l.contains("-->")) {
            let to = l.split_whitespace().last().unwrap();
            assert!(
                to == "exit"
                    || to
                        .strip_prefix('s')
                        .and_then(|n| n.parse::<usize>().ok())
                        .is_some_and(|n| n < j.steps.len()),
                "{name}: {l}"
            );
        }
    }
}

#[test]
fn every_example_renders_as_dot() {
    let p = examples();
    for (name, j) in &p.journeys {
        let out = graph::render(j, GraphFormat::Dot);
        assert!(out.starts_with("digraph "), "{name}");
        assert!(out.ends_with("}\n"), "{name}");
        let defs = out
            .lines()
            .filter(|l| l.contains("[label=") && !l.contains("->"))
            .count();
        assert_eq!(defs, j.steps.len() + 2, "{name}");
    }
}

#[test]
fn graph_command_prints_the_picture() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_journey"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["graph", "journeys/welcome.journey", "--format", "dot"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        graph::render(&examples().journeys["welcome_promo"], GraphFormat::Dot)
    );
}
