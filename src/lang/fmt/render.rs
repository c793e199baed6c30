//! The last pass: aligns keys, places trailing comments, drops extra blank lines, and
//! joins the lines.

use super::*;

/// Aligns keys, places trailing comments, drops extra blank lines, and joins the lines.
pub(super) fn render(lines: &mut [Line]) -> String {
    // Key widths, per run of consecutive lines of one alignment at one indentation.
    let mut widths = vec![0usize; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        let (kind, align, indent) = (lines[i].kind, lines[i].align, lines[i].indent);
        if kind != Kind::Code || align == Align::None {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut width = 0;
        while j < lines.len()
            && lines[j].kind == Kind::Code
            && lines[j].align == align
            && lines[j].indent == indent
        {
            width = width.max(lines[j].key.chars().count());
            j += 1;
        }
        for w in &mut widths[i..j] {
            *w = width;
        }
        i = j;
    }

    // The lines to print: blank lines at most one in a row, none at the start and end of the
    // file, after a `{` or before a `}`.
    let mut shown: Vec<usize> = Vec::with_capacity(lines.len());
    let mut prev_opens = true; // the start of the file behaves like the line after a `{`
    let mut pending_blank = false;
    for (i, line) in lines.iter().enumerate() {
        if line.kind == Kind::Blank {
            pending_blank = !prev_opens;
            continue;
        }
        if pending_blank && !(line.kind == Kind::Code && line.closes) {
            shown.push(usize::MAX);
        }
        pending_blank = false;
        shown.push(i);
        prev_opens = line.kind == Kind::Code && line.opens;
    }

    let mut out = String::with_capacity(lines.len() * 40);
    for &i in &shown {
        let Some(line) = lines.get(i) else {
            out.push('\n');
            continue;
        };
        let start = out.len();
        for _ in 0..line.indent {
            out.push_str("  ");
        }
        if !line.key.is_empty() {
            out.push_str(&line.key);
            for _ in line.key.chars().count()..widths[i] {
                out.push(' ');
            }
            out.push(' ');
        }
        out.push_str(&line.text);
        if let Some((first, rest)) = line.comments.split_first() {
            let last_line = &out[start..];
            let last_line = last_line.rsplit('\n').next().unwrap_or(last_line);
            let width = last_line.chars().count();
            // Odd, and past the code: never the column of a comment alone on the next line
            // (at most one level deeper), which would then read as a continuation.
            let column = COMMENT_COLUMN.max(width + 2);
            out.extend(std::iter::repeat_n(' ', column - width));
            out.push_str(first);
            for c in rest {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', column));
                out.push_str(c);
            }
        }
        out.push('\n');
    }
    out
}
