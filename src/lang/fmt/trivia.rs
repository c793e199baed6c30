//! Comments and blank lines: the syntax tree has none, so the source is scanned for them
//! (outside strings) to put them back.

#[derive(Debug)]
pub(super) enum TriviaKind {
    /// A line holding only whitespace.
    Blank,
    /// A comment alone on its line.
    Comment(String),
    /// A comment after code on its line, and the comments that continue it on the next lines.
    Trailing(Vec<String>),
}

#[derive(Debug)]
pub(super) struct Trivia {
    /// Where it starts in the source (a blank line: the start of the line).
    pub(super) offset: usize,
    pub(super) kind: TriviaKind,
}

/// Finds the comments and blank lines of `src`, in source order, skipping strings; and the
/// byte ranges of all comments.
pub(super) fn scan_trivia(src: &str) -> (Vec<Trivia>, Vec<(usize, usize)>) {
    let b = src.as_bytes();
    let mut out: Vec<Trivia> = Vec::new();
    let mut ranges = Vec::new();
    let mut i = 0;
    let mut line = 0usize;
    let mut line_start = 0usize;
    let mut line_has_content = false;
    let mut last_code_line: Option<usize> = None;
    // The last trailing comment (or its continuation): (line, column, index in `out`).
    let mut last_trailing: Option<(usize, usize, usize)> = None;
    while i < b.len() {
        match b[i] {
            b'\n' => {
                if !line_has_content {
                    out.push(Trivia {
                        offset: line_start,
                        kind: TriviaKind::Blank,
                    });
                }
                line += 1;
                i += 1;
                line_start = i;
                line_has_content = false;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' => {
                let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
                let text = src[i..end].trim_end().to_string();
                ranges.push((i, end));
                let col = src[line_start..i].chars().count();
                if last_code_line == Some(line) {
                    out.push(Trivia {
                        offset: i,
                        kind: TriviaKind::Trailing(vec![text]),
                    });
                    last_trailing = Some((line, col, out.len() - 1));
                } else {
                    match last_trailing {
                        Some((l, c, idx)) if l + 1 == line && c == col => {
                            if let TriviaKind::Trailing(texts) = &mut out[idx].kind {
                                texts.push(text);
                            }
                            last_trailing = Some((line, col, idx));
                        }
                        _ => out.push(Trivia {
                            offset: i,
                            kind: TriviaKind::Comment(text),
                        }),
                    }
                }
                line_has_content = true;
                i = end;
            }
            b'"' => {
                let triple = b[i..].starts_with(b"\"\"\"");
                let mut j = if triple { i + 3 } else { i + 1 };
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if triple && b[j..].starts_with(b"\"\"\"") {
                        j += 3;
                        break;
                    }
                    match b[j] {
                        b'"' if !triple => {
                            j += 1;
                            break;
                        }
                        b'\\' if !triple => {
                            j += 1;
                            if j < b.len() && b[j] == b'\n' {
                                line += 1;
                                line_start = j + 1;
                            }
                            j += 1;
                        }
                        b'\n' => {
                            line += 1;
                            line_start = j + 1;
                            j += 1;
                        }
                        _ => j += 1,
                    }
                }
                i = j.min(b.len());
                last_code_line = Some(line);
                line_has_content = true;
            }
            _ => {
                last_code_line = Some(line);
                line_has_content = true;
                i += 1;
            }
        }
    }
    (out, ranges)
}
