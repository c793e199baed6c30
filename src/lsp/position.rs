//! Byte offsets (our spans) to LSP positions (line, UTF-16 column) and back.

use crate::lang::ast::Span;
use lsp_types::{Position, Range};

/// The line starts of one text, to turn offsets into positions without rescanning it.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The position of a byte offset (clamped to the text, floored to a character).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while offset > 0 && !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|s| *s <= offset) - 1;
        let col: usize = text[self.starts[line]..offset]
            .chars()
            .map(char::len_utf16)
            .sum();
        Position::new(line as u32, col as u32)
    }

    pub fn range(&self, text: &str, span: Span) -> Range {
        Range::new(
            self.position(text, span.start),
            self.position(text, span.end),
        )
    }

    /// The byte offset of a position; past the end of a line is its end.
    pub fn offset(&self, text: &str, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return text.len();
        };
        let end = self
            .starts
            .get(pos.line as usize + 1)
            .map_or(text.len(), |e| e - 1);
        let mut units = 0;
        for (i, c) in text[start..end].char_indices() {
            if units >= pos.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_columns_round_trip() {
        let text = "a\n€x😀y\nlast";
        let ix = LineIndex::new(text);
        let y = text.find('y').unwrap();
        assert_eq!(ix.position(text, y), Position::new(1, 4));
        assert_eq!(ix.offset(text, Position::new(1, 4)), y);
        assert_eq!(ix.position(text, text.len()), Position::new(2, 4));
        assert_eq!(ix.offset(text, Position::new(0, 99)), 1);
        assert_eq!(ix.offset(text, Position::new(9, 0)), text.len());
    }
}
