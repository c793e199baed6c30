//! What a template file takes from other template files: the names its `{% include %}`,
//! `{% extends %}`, `{% import %}` and `{% from … import %}` tags give, and the blocks it
//! defines, with their places in its text. A small scanner of minijinja's tag syntax
//! (comments and `raw` blocks skipped), so `journey check` can read every partial a template
//! uses into the IR and name a missing one at its line.

use crate::lang::ast::Span;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefKind {
    Include,
    Extends,
    Import,
}

/// One reference to another template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub kind: RefKind,
    /// The name as written; None when it is not a text literal (a variable, a list).
    pub name: Option<String>,
    /// The name's literal (with its quotes), or the tag when it has none.
    pub span: Span,
    /// `{% include "x" ignore missing %}`.
    pub ignore_missing: bool,
}

/// A `{% block name %}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub name: String,
    pub span: Span,
}

/// Every reference and block of a template's text, in order.
pub fn scan(text: &str) -> (Vec<Ref>, Vec<Block>) {
    let mut refs = Vec::new();
    let mut blocks = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(p) = text[i..].find('{') {
        let at = i + p;
        match b.get(at + 1) {
            Some(b'#') => {
                i = text[at + 2..]
                    .find("#}")
                    .map_or(text.len(), |e| at + 2 + e + 2);
                continue;
            }
            Some(b'%') => {}
            _ => {
                i = at + 1;
                continue;
            }
        }
        let end = text[at + 2..].find("%}").map_or(text.len(), |e| at + 2 + e);
        let inner_start = at + 2;
        let inner = &text[inner_start..end];
        let lead = inner.len() - inner.trim_start_matches(['-', '+']).len();
        let body = &inner[lead..];
        let ws = body.len() - body.trim_start().len();
        let body = body.trim_start();
        let word_len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let word = &body[..word_len];
        let after = &body[word_len..];
        let after_off = inner_start + lead + ws + word_len;
        let tag = Span::new(at, (end + 2).min(text.len()));
        i = tag.end;
        let kind = match word {
            "include" => RefKind::Include,
            "extends" => RefKind::Extends,
            "import" | "from" => RefKind::Import,
            "block" => {
                let name = after.trim_start();
                let off = after_off + (after.len() - name.len());
                let len = name
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(name.len());
                if len > 0 {
                    blocks.push(Block {
                        name: name[..len].to_string(),
                        span: Span::new(off, off + len),
                    });
                }
                continue;
            }
            "raw" => {
                // Nothing in a raw block is a tag.
                let rest = &text[i..];
                let mut k = 0;
                i = text.len();
                while let Some(q) = rest[k..].find("{%") {
                    let s = rest[k + q + 2..]
                        .trim_start_matches(['-', '+'])
                        .trim_start();
                    if s.starts_with("endraw") {
                        i = text.len() - rest.len() + k + q + 2;
                        break;
                    }
                    k += q + 2;
                }
                continue;
            }
            _ => continue,
        };
        let arg = after.trim_start();
        let off = after_off + (after.len() - arg.len());
        let literal = arg.chars().next().filter(|c| *c == '"' || *c == '\'');
        let (name, span) = match literal.and_then(|q| arg[1..].find(q).map(|e| (q, e))) {
            Some((_, e)) => (Some(arg[1..1 + e].to_string()), Span::new(off, off + e + 2)),
            None => (None, tag),
        };
        let ignore_missing = kind == RefKind::Include && {
            let words: Vec<&str> = arg.split_whitespace().collect();
            words.windows(2).any(|w| w == ["ignore", "missing"])
        };
        refs.push(Ref {
            kind,
            name,
            span,
            ignore_missing,
        });
    }
    (refs, blocks)
}

/// Whether a partial's name stays inside the templates folder.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.starts_with('\\')
        && !name.contains(':')
        && name
            .split(['/', '\\'])
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_references_and_blocks_with_their_places() {
        let t = "{% extends \"base.html\" %}\n{# {% include \"no.html\" %} #}{% block body %}\
                 {%- include 'partials/footer.html' -%}{% include x %}\
                 {% include \"opt.html\" ignore missing %}{% raw %}{% include \"raw.html\" %}{% endraw %}\
                 {% from \"m.html\" import a %}{% endblock %}";
        let (refs, blocks) = scan(t);
        let names: Vec<Option<&str>> = refs.iter().map(|r| r.name.as_deref()).collect();
        assert_eq!(
            names,
            vec![
                Some("base.html"),
                Some("partials/footer.html"),
                None,
                Some("opt.html"),
                Some("m.html")
            ]
        );
        assert_eq!(refs[0].kind, RefKind::Extends);
        assert_eq!(
            &t[refs[1].span.start..refs[1].span.end],
            "'partials/footer.html'"
        );
        assert_eq!(&t[refs[2].span.start..refs[2].span.end], "{% include x %}");
        assert!(refs[3].ignore_missing && !refs[1].ignore_missing);
        assert_eq!(refs[4].kind, RefKind::Import);
        assert_eq!(blocks.len(), 1);
        assert_eq!(&t[blocks[0].span.start..blocks[0].span.end], "body");
    }

    #[test]
    fn names_stay_inside_the_folder() {
        assert!(is_safe_name("partials/footer.html"));
        for bad in [
            "../secret",
            "/etc/passwd",
            "a/../../b",
            "",
            "c:\\x",
            "a//b",
            "./a",
        ] {
            assert!(!is_safe_name(bad), "{bad}");
        }
    }
}
