//! Compiling names and references: what a name refers to, and the error with a did-you-mean
//! when it refers to nothing.

use super::*;

impl<'a> Compiler<'a> {
    pub(super) fn names_of(&self, kind: DefKind) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .defs
            .iter()
            .filter(|(_, (k, _, _))| *k == kind)
            .map(|(n, _)| n.as_str())
            .collect();
        v.sort();
        v
    }

    pub(super) fn check_ref(&mut self, file: usize, id: &Ident, kind: DefKind) -> bool {
        match self.defs.get(&id.name) {
            Some((k, _, _)) if *k == kind => true,
            other => {
                let what = match kind {
                    DefKind::Journey => "journey",
                    DefKind::Segment => "segment",
                    DefKind::Policy => "policy",
                    DefKind::Topic => "topic",
                };
                let mut d =
                    Diagnostic::error(file, id.span, format!("unknown {what} '{}'", id.name));
                if let Some((k, _, _)) = other {
                    d = d.with_label(
                        format!("'{}' is a {:?}, not a {what}", id.name, k).to_lowercase(),
                    );
                } else {
                    let names = self.names_of(kind);
                    d = match did_you_mean(&id.name, names.iter().copied()) {
                        Some(h) => d.with_help(h),
                        None if names.is_empty() => {
                            d.with_help(format!("no {what} is defined in the loaded files"))
                        }
                        None => d.with_help(format!("defined {what}s: {}", names.join(", "))),
                    };
                }
                self.err(d);
                false
            }
        }
    }
}
