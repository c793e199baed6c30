//! Compiling policies and topics.

use super::*;

impl<'a> Compiler<'a> {
    pub(super) fn policy(&mut self, file: usize, p: &ast::Policy) -> PolicyIr {
        let mut ir = PolicyIr {
            name: p.name.name.clone(),
            title: None,
            caps: Vec::new(),
            scope: ScopeIr::Global,
            when_capped: CappedAction::Delay,
        };
        for item in &p.items {
            match &item.kind {
                PolicyItemKind::Title(s) => ir.title = Some(s.value.clone()),
                PolicyItemKind::Cap {
                    max, channel, per, ..
                } => {
                    let (per_months, per_seconds) = self.check_period(file, per, "a cap's period");
                    if *max == 0 {
                        self.err(
                            Diagnostic::error(file, item.span, "a cap of 0 blocks every send")
                                .with_help("remove the channel from the journey instead"),
                        );
                    }
                    ir.caps.push(CapIr {
                        max: *max,
                        channel: *channel,
                        per_seconds,
                        per_months,
                    });
                }
                PolicyItemKind::ScopeGlobal => ir.scope = ScopeIr::Global,
                PolicyItemKind::ScopeJourney => ir.scope = ScopeIr::Journey,
                PolicyItemKind::WhenCapped(a) => ir.when_capped = *a,
            }
        }
        if ir.caps.is_empty() {
            self.err(
                Diagnostic::warning(
                    file,
                    p.name.span,
                    format!("policy '{}' has no cap", p.name.name),
                )
                .with_help("add a line such as `max 1 email per 1d`"),
            );
        }
        ir
    }

    // ------------------------------------------------------------ topics

    pub(super) fn topic(&mut self, file: usize, t: &ast::Topic) -> TopicIr {
        let mut ir = TopicIr {
            name: t.name.name.clone(),
            title: None,
            default_subscribed: true,
        };
        let mut seen: HashMap<&'static str, Span> = HashMap::new();
        for item in &t.items {
            let key = match &item.kind {
                TopicItemKind::Title(s) => {
                    ir.title = Some(s.value.clone());
                    "title"
                }
                TopicItemKind::Default(yes) => {
                    ir.default_subscribed = *yes;
                    "default"
                }
            };
            if let Some(prev) = seen.insert(key, item.span) {
                self.err(
                    Diagnostic::error(file, item.span, format!("`{key}` is given twice"))
                        .with_related(file, prev, "first given here"),
                );
            }
        }
        if ir.title.is_none() {
            self.err(
                Diagnostic::warning(
                    file,
                    t.name.span,
                    format!("topic '{}' has no title", t.name.name),
                )
                .with_help("the preference page shows the title: add `title \"…\"`"),
            );
        }
        ir
    }

    // ------------------------------------------------------------ segments
}
