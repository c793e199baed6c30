//! Pictures of a journey's state machine: Mermaid flowcharts and Graphviz dot.
//! (Placeholder: being written.)

use super::ir::JourneyIr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

pub fn render(j: &JourneyIr, _format: GraphFormat) -> String {
    format!("flowchart TD\n  %% {}\n", j.name)
}
