//! The canonical formatter: one layout for every journey file, comments kept.
//! (Placeholder: being written.)

use super::ast::File;

/// Formats `text`, whose syntax tree is `file`, in the canonical layout.
pub fn format_source(text: &str, _file: &File) -> String {
    text.to_string()
}
