//! Compiling segments and their time frames.

use super::*;

impl<'a> Compiler<'a> {
    pub(super) fn segment(&mut self, file: usize, s: &ast::Segment) -> SegmentIr {
        let mut rules = Vec::new();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        if s.rules.is_empty() {
            self.err(
                Diagnostic::error(
                    file,
                    s.name.span,
                    format!("segment '{}' has no rule", s.name.name),
                )
                .with_help("add a line such as `rule italians: contact.country == \"IT\"`"),
            );
        }
        for (i, r) in s.rules.iter().enumerate() {
            if let Some(prev) = seen.insert(&r.name.name, r.name.span) {
                self.err(
                    Diagnostic::error(
                        file,
                        r.name.span,
                        format!("two rules named '{}'", r.name.name),
                    )
                    .with_related(file, prev, "first used here"),
                );
            }
            match (i, &r.combinator) {
                (0, Some((c, sp))) => self.err(
                    Diagnostic::error(
                        file,
                        *sp,
                        format!("the first rule cannot start with '{}'", c.as_str()),
                    )
                    .with_help("combinators join a rule to the ones before it"),
                ),
                (i, None) if i > 0 => self.err(
                    Diagnostic::error(
                        file,
                        r.name.span,
                        "expected `and`, `or` or `except` before this rule",
                    )
                    .with_help("rules combine in the written order: `and rule b: …`"),
                ),
                _ => {}
            }
            let body = match &r.body {
                RuleBody::Condition(c) => {
                    RuleBodyIr::Condition(self.cond(file, c, &CondScope::Segment))
                }
                RuleBody::Event {
                    negated,
                    event,
                    condition,
                    occurrences,
                    frame,
                    ..
                } => RuleBodyIr::Event {
                    negated: *negated,
                    event: event.value.clone(),
                    condition: condition
                        .as_ref()
                        .map(|c| self.cond(file, c, &CondScope::Record)),
                    occurrences: occurrences
                        .as_ref()
                        .map(|o| OccurrencesIr {
                            kind: o.kind,
                            count: o.count,
                        })
                        .unwrap_or_default(),
                    frame: self.frame(file, frame, false),
                },
                RuleBody::Engagement {
                    verb,
                    subject,
                    occurrences,
                    frame,
                    ..
                } => {
                    let target = match subject {
                        RuleSubject::Messages(c) => TargetIr::AnyMessage(
                            c.as_ref()
                                .map(|c| Box::new(self.cond(file, c, &CondScope::Message))),
                        ),
                        RuleSubject::Target(t) => self.target(file, *verb, t, None),
                    };
                    RuleBodyIr::Engagement {
                        verb: *verb,
                        target,
                        occurrences: occurrences
                            .as_ref()
                            .map(|o| OccurrencesIr {
                                kind: o.kind,
                                count: o.count,
                            })
                            .unwrap_or_default(),
                        frame: self.frame(file, frame, true),
                    }
                }
            };
            rules.push(RuleIr {
                combinator: r.combinator.map(|(c, _)| c),
                name: r.name.name.clone(),
                body,
            });
        }
        SegmentIr {
            name: s.name.name.clone(),
            title: s.title.as_ref().map(|t| t.value.clone()),
            rules,
        }
    }

    pub(super) fn frame(
        &mut self,
        file: usize,
        f: &Option<TimeFrame>,
        engagement: bool,
    ) -> FrameIr {
        match f {
            None | Some(TimeFrame::Anytime) => FrameIr::Anytime,
            Some(TimeFrame::InLast(d)) => FrameIr::InLast {
                seconds: self.check_positive(file, d, "a time frame"),
            },
            Some(TimeFrame::Between(a, b)) => {
                let from = self.check_date(file, a);
                let to = self.check_date(file, b);
                if to < from {
                    self.err(
                        Diagnostic::error(file, b.span, "this date is before the first one")
                            .with_help(
                                "write the earlier date first: `between 2026-01-01 and 2026-03-31`",
                            ),
                    );
                }
                FrameIr::Between { from, to }
            }
            Some(TimeFrame::AfterDelivery(d)) => {
                if !engagement {
                    self.err(
                        Diagnostic::error(
                            file,
                            d.span,
                            "`within … after delivery` applies to engagement with messages",
                        )
                        .with_help("for contact events use `in last 15d`"),
                    );
                }
                FrameIr::AfterDelivery {
                    seconds: self.check_positive(file, d, "a time frame"),
                }
            }
        }
    }

    // ------------------------------------------------------------ conditions
}
