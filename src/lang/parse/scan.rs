//! The one lexer that steps over comments and strings: nesting depth before parsing, an
//! unclosed string or brace and the token before an error after a failure.

use super::MAX_NESTING;
use crate::lang::ast::Span;
use crate::lang::diagnostic::Diagnostic;

/// Counts brace, bracket and parenthesis depth outside strings and comments.
pub(super) fn check_nesting(file: usize, text: &str) -> Option<Diagnostic> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    // Consecutive `not`s, which nest like parentheses.
    let mut nots = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skip_comment_or_string(bytes, i) {
            i = end + 1;
            continue;
        }
        match bytes[i] {
            b'{' | b'(' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(
                        Diagnostic::error(
                            file,
                            Span::new(i, i + 1),
                            format!("blocks nested more than {MAX_NESTING} deep"),
                        )
                        .with_label("this opening is too deep")
                        .with_help(
                            "split the journey into smaller steps, or use labels and `goto`",
                        ),
                    );
                }
            }
            b'}' | b')' | b']' => depth = depth.saturating_sub(1),
            // `not not not …` nests as deep as parentheses do.
            b'n' if bytes[i..].starts_with(b"not")
                && (i == 0 || !is_word_byte(bytes[i - 1]))
                && !bytes.get(i + 3).copied().is_some_and(is_word_byte) =>
            {
                nots += 1;
                if depth + nots > MAX_NESTING {
                    return Some(
                        Diagnostic::error(
                            file,
                            Span::new(i, i + 3),
                            format!("conditions nested more than {MAX_NESTING} deep"),
                        )
                        .with_label("this `not` is too deep")
                        .with_help("`not not x` is `x`: simplify the condition"),
                    );
                }
                i += 3;
                continue;
            }
            c if is_word_byte(c) => {
                nots = 0;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

pub(super) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Where a string opens that the file never closes (strings and comments skipped).
pub(super) fn open_string(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skip_comment_or_string(bytes, i) {
            if end >= bytes.len() && bytes[i] == b'"' {
                return Some(i);
            }
            i = end;
        }
        i += 1;
    }
    None
}

/// Where the comment or string that starts at `i` ends: the index of its last byte, or the
/// end of the text (or past it) for one the text never closes; `None` when neither starts
/// at `i`. The scanners of brackets and strings step over what is not code with it.
pub(super) fn skip_comment_or_string(bytes: &[u8], mut i: usize) -> Option<usize> {
    match bytes[i] {
        b'#' => {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        }
        b'"' if bytes[i..].starts_with(b"\"\"\"") => {
            i += 3;
            while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                i += 1;
            }
            if i < bytes.len() {
                i += 2;
            }
        }
        b'"' => {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
        }
        _ => return None,
    }
    Some(i)
}

/// The `{` that most likely lacks its `}`, for an error at the end of the file: the first
/// brace whose `}` (alone at the start of its line) is indented differently from the line
/// that opened it, else the innermost brace left open. Strings and comments are skipped.
pub(super) fn unclosed_brace(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let indent = |at: usize| {
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line = &text[start..];
        let width = line.len() - line.trim_start_matches([' ', '\t']).len();
        (width, start + width == at)
    };
    let mut open: Vec<usize> = Vec::new();
    let mut suspect: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skip_comment_or_string(bytes, i) {
            i = end + 1;
            continue;
        }
        match bytes[i] {
            b'{' => open.push(i),
            b'}' => {
                if let Some(o) = open.pop() {
                    let (close_indent, alone) = indent(i);
                    if suspect.is_none() && alone && indent(o).0 != close_indent {
                        suspect = Some(o);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    if open.is_empty() {
        return None;
    }
    suspect.or(open.last().copied())
}

/// Where a `#` comment starts on a line, outside strings.
pub(super) fn comment_start(line: &str) -> Option<usize> {
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else if c == '#' {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod scanner_tests {
    use super::*;

    #[test]
    fn scanners_step_over_comments_and_strings() {
        // A quote in a comment, an escaped quote and a brace in a string are not code.
        let text = "# it's \"here\n{ x \"a \\\" {\" }\n";
        assert_eq!(open_string(text), None);
        assert_eq!(unclosed_brace(text), None);
        assert!(check_nesting(0, text).is_none());
        // A comment that ends the file without a newline is not an open string.
        assert_eq!(open_string("x # \"no"), None);
    }

    #[test]
    fn the_string_a_file_never_closes_is_found_at_its_opening_quote() {
        assert_eq!(open_string("a \"ok\" b \"open"), Some(9));
        assert_eq!(open_string("a \"\"\"one\n\"two"), Some(2));
        assert_eq!(open_string("\"\"\"closed\"\"\" \"\"\"open\""), Some(13));
        assert_eq!(open_string("\"ends in an escape\\"), Some(0));
    }

    #[test]
    fn the_brace_left_open_is_the_one_found() {
        // `{` at 0 is closed by a `}` indented like it; `{` at 12 is never closed.
        let text = "{\n  \"}\"\n}\nx {\n  # }\n";
        assert_eq!(unclosed_brace(text), Some(12));
    }
}
