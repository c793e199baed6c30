//! The console's pictures, as SVG made on the server: a journey's graph (the dot picture
//! `journey graph` draws, `compile::graph`, with each step's live counts added to its label,
//! laid out by layout-rs) and the charts (bars, drawn here: a bar is a rectangle).

use crate::compile::ir::JourneyIr;
use crate::runtime::figures::JourneyFigures;
use serde::Serialize;

/// The journey drawn, with `waiting · entered · exited` under each step.
pub fn journey_graph(j: &JourneyIr, f: &JourneyFigures) -> String {
    let dot = crate::compile::graph::dot_annotated(j, &|step| {
        let c = f.steps.get(step).cloned().unwrap_or_default();
        Some(format!(
            "waiting {} · entered {} · exited {}",
            c.waiting, c.entered, c.exited
        ))
    });
    let label = format!("The steps of journey {} with their counts", j.name);
    match lay_out(&dot) {
        Some(svg) => accessible(&svg, &label),
        None => format!(
            "<p>The graph of {} could not be laid out.</p>",
            escape(&j.name)
        ),
    }
}

fn lay_out(dot: &str) -> Option<String> {
    use layout::backends::svg::SVGWriter;
    use layout::gv::{DotParser, GraphBuilder};
    let mut parser = DotParser::new(dot);
    let ast = parser.process().ok()?;
    let mut builder = GraphBuilder::new();
    builder.visit_graph(&ast);
    let mut graph = builder.get();
    let mut writer = SVGWriter::new();
    // layout-rs panics on some shapes of graph: a picture is not worth the daemon's thread.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        graph.do_it(false, false, false, &mut writer);
    }))
    .ok()?;
    Some(writer.finalize())
}

/// The `<svg>` element alone (no XML prolog), labelled for screen readers and scaled to
/// the page's width.
fn accessible(svg: &str, label: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    let body = &svg[start..];
    // layout-rs's <style> is inline CSS, which the console's policy does not run: dropped.
    let body = match (body.find("<style"), body.find("</style>")) {
        (Some(a), Some(b)) if b > a => format!("{}{}", &body[..a], &body[b + "</style>".len()..]),
        _ => body.to_string(),
    };
    let body = fit(&body);
    body.replacen(
        "<svg ",
        &format!(
            "<svg role=\"img\" aria-label=\"{}\" class=\"graph\" preserveAspectRatio=\"xMidYMin meet\" ",
            escape(label)
        ),
        1,
    )
}

/// The value of attribute `name` in an element's text.
fn attr(element: &str, name: &str) -> Option<f64> {
    let at = element.find(&format!(" {name}=\""))? + name.len() + 3;
    element[at..].split('"').next()?.trim().parse().ok()
}

/// layout-rs sizes its picture larger than what it draws: the size and viewBox are set to
/// the drawing's extent (shapes, texts of up to three lines, edges), with a margin.
fn fit(svg: &str) -> String {
    let (mut w, mut h) = (0.0f64, 0.0f64);
    for element in svg.split('<').skip(1) {
        let name = element.split([' ', '\n', '>']).next().unwrap_or("");
        let get = |a: &str| attr(element, a).unwrap_or(0.0);
        match name {
            "ellipse" => {
                w = w.max(get("cx") + get("rx"));
                h = h.max(get("cy") + get("ry"));
            }
            "rect" => {
                w = w.max(get("x") + get("width"));
                h = h.max(get("y") + get("height"));
            }
            "text" => {
                w = w.max(get("x"));
                h = h.max(get("y") + 3.0 * 14.0);
            }
            "path" => {
                let d = element
                    .find(" d=\"")
                    .and_then(|i| element[i + 4..].split('"').next())
                    .unwrap_or("");
                let numbers: Vec<f64> = d
                    .split(|c: char| c == ' ' || c == ',' || c.is_ascii_alphabetic())
                    .filter_map(|t| t.parse().ok())
                    .collect();
                for pair in numbers.chunks(2) {
                    if let [x, y] = pair {
                        w = w.max(*x);
                        h = h.max(*y);
                    }
                }
            }
            _ => {}
        }
    }
    let Some(head_end) = svg.find('>') else {
        return svg.to_string();
    };
    if w <= 0.0 || h <= 0.0 {
        return svg.to_string();
    }
    let (w, h) = ((w + 20.0).ceil(), (h + 20.0).ceil());
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">{}",
        &svg[head_end + 1..]
    )
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A message's figures, for its funnel.
#[derive(Debug, Clone, Serialize)]
pub struct Funnel {
    pub message: String,
    pub channel: String,
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub bounced: i64,
    pub suppressed: i64,
}

/// One horizontal bar chart per message: sent, delivered, opened, clicked, then bounced and
/// suppressed, each bar's length relative to the message's largest figure.
pub fn funnel_chart(messages: &[Funnel]) -> String {
    const ROW: i64 = 22;
    const LABEL: i64 = 90;
    const BAR: i64 = 220;
    let mut out = String::new();
    for m in messages {
        let rows = [
            ("sent", m.sent, "bar-sent"),
            ("delivered", m.delivered, "bar-delivered"),
            ("opened", m.opened, "bar-opened"),
            ("clicked", m.clicked, "bar-clicked"),
            ("bounced", m.bounced, "bar-bad"),
            ("suppressed", m.suppressed, "bar-bad"),
        ];
        let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
        let height = ROW * rows.len() as i64 + 4;
        let summary = rows
            .iter()
            .map(|(k, v, _)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "<figure class=\"funnel-box\"><figcaption>{} <span class=\"muted\">({})</span></figcaption>",
            escape(&m.message),
            escape(&m.channel)
        ));
        out.push_str(&format!(
            "<svg class=\"funnel\" role=\"img\" aria-label=\"{}: {}\" viewBox=\"0 0 {} {height}\" width=\"{}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">",
            escape(&m.message),
            escape(&summary),
            LABEL + BAR + 60,
            LABEL + BAR + 60,
        ));
        for (i, (k, v, class)) in rows.iter().enumerate() {
            let y = i as i64 * ROW + 2;
            let w = (BAR * v.max(&0) / max).max(if *v > 0 { 1 } else { 0 });
            out.push_str(&format!(
                "<text x=\"0\" y=\"{}\" class=\"funnel-label\">{k}</text><rect x=\"{LABEL}\" y=\"{y}\" width=\"{w}\" height=\"{}\" class=\"{class}\"/><text x=\"{}\" y=\"{}\" class=\"funnel-value\">{v}</text>",
                y + 14,
                ROW - 6,
                LABEL + w + 6,
                y + 14,
            ));
        }
        out.push_str("</svg></figure>");
    }
    out
}

/// A line of (label, value) points as a small bar chart (segment sizes, domain trends).
pub fn bars(label: &str, points: &[(String, f64)], unit: &str) -> String {
    const H: f64 = 120.0;
    const W: f64 = 28.0;
    let max = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-9);
    let width = (points.len() as f64 * W).max(W) + 10.0;
    let mut out = format!(
        "<svg class=\"bars\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {width} {}\" width=\"{width}\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        escape(label),
        H + 20.0,
        H + 20.0
    );
    for (i, (name, v)) in points.iter().enumerate() {
        let h = (H * v / max).max(if *v > 0.0 { 1.0 } else { 0.0 });
        let x = 5.0 + i as f64 * W;
        out.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{h}\" class=\"bar-sent\"><title>{}: {v}{unit}</title></rect>",
            H - h,
            W - 6.0,
            escape(name)
        ));
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_welcome_journey_is_drawn() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("journeys");
        let built = crate::runtime::plan::build_dir(&dir);
        let program = built.program.expect("the example journeys compile");
        let j = &program.journeys["welcome_promo"];
        let svg = super::journey_graph(j, &Default::default());
        assert!(svg.starts_with("<svg role=\"img\""), "{}", &svg[..200]);
        assert!(svg.contains("waiting 0 · entered 0 · exited 0"));
        assert!(!svg.contains("<style"));
        // Sized to what is drawn (the exit node ends near y 545), not layout-rs's estimate.
        let height: f64 = svg
            .split("height=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(height < 700.0, "{}", &svg[..300]);
        // Every example journey is drawn (layout-rs does not give up on any of them).
        for (name, j) in &program.journeys {
            let svg = super::journey_graph(j, &Default::default());
            assert!(svg.starts_with("<svg"), "{name}: {svg}");
        }
    }
}
