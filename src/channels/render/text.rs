//! HTML to plain text: the text part of an email whose message gives only HTML.

/// A readable plain-text version of an HTML body: no head, styles or scripts; paragraphs
/// and headings on their own lines; list items with a dash; links as `text (URL)`;
/// entities decoded; whitespace collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut i = 0;
    let bytes = html.as_bytes();
    let mut skip_until: Option<&'static str> = None;
    let mut link_stack: Vec<Option<String>> = Vec::new();
    let mut link_text_start: Vec<usize> = Vec::new();
    while i < html.len() {
        if bytes[i] == b'<' {
            if html[i..].starts_with("<!--") {
                i = html[i..]
                    .find("-->")
                    .map(|e| i + e + 3)
                    .unwrap_or(html.len());
                continue;
            }
            let end = tag_end(html, i);
            let tag = &html[i + 1..end.saturating_sub(1).max(i + 1)];
            i = end;
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
                .collect::<String>()
                .to_ascii_lowercase();
            if let Some(stop) = skip_until {
                if closing && name == stop {
                    skip_until = None;
                }
                continue;
            }
            match name.as_str() {
                "head" | "style" | "script" | "title" if !closing => {
                    skip_until = Some(match name.as_str() {
                        "head" => "head",
                        "style" => "style",
                        "script" => "script",
                        _ => "title",
                    });
                }
                "br" => out.push('\n'),
                "p" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "tr" | "ul"
                | "ol" | "blockquote" | "section" | "article" | "header" | "footer" => {
                    out.push_str("\n\n")
                }
                "hr" => out.push_str("\n\n----\n\n"),
                "li" if !closing => out.push_str("\n- "),
                "td" | "th" if closing => out.push(' '),
                "a" if !closing => {
                    link_stack.push(attr(tag, "href"));
                    link_text_start.push(out.len());
                }
                "a" if closing => {
                    let href = link_stack.pop().flatten();
                    let start = link_text_start.pop().unwrap_or(out.len());
                    if let Some(h) = href {
                        let h = decode_entities(&h);
                        let label = out[start..].trim().to_string();
                        if !h.starts_with('#') && !h.starts_with("mailto:") && label != h {
                            if label.is_empty() {
                                out.push_str(&h);
                            } else {
                                out.push_str(&format!(" ({h})"));
                            }
                        }
                    }
                }
                _ => {}
            }
        } else {
            let next = html[i..].find('<').map(|n| i + n).unwrap_or(html.len());
            if skip_until.is_none() {
                let chunk = decode_entities(&html[i..next]);
                // Whitespace in HTML is one space.
                let mut last_space = out.ends_with([' ', '\n']) || out.is_empty();
                for c in chunk.chars() {
                    if c.is_whitespace() && c != '\u{a0}' {
                        if !last_space {
                            out.push(' ');
                            last_space = true;
                        }
                    } else {
                        out.push(if c == '\u{a0}' { ' ' } else { c });
                        last_space = false;
                    }
                }
            }
            i = next;
        }
    }
    // Tidy: trim each line, at most one blank line in a row.
    let mut lines: Vec<&str> = Vec::new();
    for l in out.lines() {
        let l = l.trim();
        if l.is_empty() && lines.last().is_none_or(|p| p.is_empty()) {
            continue;
        }
        lines.push(l);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

/// The index just past the `>` closing the tag that starts at `start`, quotes respected.
pub(super) fn tag_end(html: &str, start: usize) -> usize {
    let mut quote: Option<u8> = None;
    for (k, b) in html.as_bytes()[start + 1..].iter().enumerate() {
        match (quote, *b) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(*b),
            (None, b'>') => return start + 1 + k + 1,
            _ => {}
        }
    }
    html.len()
}

/// An attribute's value in a tag's text.
pub(super) fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(p) = lower[from..].find(name) {
        let at = from + p;
        from = at + name.len();
        let before_ok = at > 0 && lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = lower[at + name.len()..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let vstart = tag.len() - rest.len() + 1;
        let v = tag[vstart..].trim_start();
        return Some(match v.chars().next() {
            Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or("").to_string(),
            _ => v
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .unwrap_or("")
                .to_string(),
        });
    }
    None
}

pub(super) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let semi = tail[..tail.len().min(12)].find(';');
        let decoded = semi.and_then(|j| {
            let ent = &tail[1..j];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                "mdash" => Some('—'),
                "ndash" => Some('–'),
                "hellip" => Some('…'),
                "rsquo" => Some('’'),
                "lsquo" => Some('‘'),
                "rdquo" => Some('”'),
                "ldquo" => Some('“'),
                "euro" => Some('€'),
                "copy" => Some('©'),
                _ if ent.starts_with("#x") || ent.starts_with("#X") => {
                    u32::from_str_radix(&ent[2..], 16)
                        .ok()
                        .and_then(char::from_u32)
                }
                _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, j + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
