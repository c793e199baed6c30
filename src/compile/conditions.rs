//! Compiling conditions and engagement targets, with the checks that a verb suits a channel and
//! a link belongs to a message.

use super::*;

impl<'a> Compiler<'a> {
    pub(super) fn cond(&mut self, file: usize, c: &Condition, scope: &CondScope) -> CondIr {
        match &c.kind {
            CondKind::And(a, b) => {
                let mut v = Vec::new();
                for x in [a, b] {
                    match self.cond(file, x, scope) {
                        CondIr::And(inner) => v.extend(inner),
                        other => v.push(other),
                    }
                }
                CondIr::And(v)
            }
            CondKind::Or(a, b) => {
                let mut v = Vec::new();
                for x in [a, b] {
                    match self.cond(file, x, scope) {
                        CondIr::Or(inner) => v.extend(inner),
                        other => v.push(other),
                    }
                }
                CondIr::Or(v)
            }
            CondKind::Not(x) => CondIr::Not(Box::new(self.cond(file, x, scope))),
            CondKind::Group(x) => self.cond(file, x, scope),
            CondKind::Bool(b) => CondIr::Bool(*b),
            CondKind::Compare { path, matcher } => {
                if let CondScope::Message = scope {
                    let attrs = ["subject", "journey", "message", "channel", "label", "link"];
                    if path.len() == 1 && !attrs.contains(&path[0].as_str()) {
                        let mut d = Diagnostic::error(
                            file,
                            c.span,
                            format!("messages have no attribute '{}'", path[0]),
                        );
                        d = match did_you_mean(&path[0], attrs) {
                            Some(h) => d.with_help(h),
                            None => {
                                d.with_help(format!("message attributes: {}", attrs.join(", ")))
                            }
                        };
                        self.err(d);
                    }
                }
                if matches!(scope, CondScope::Journey(_) | CondScope::Segment) && path.len() == 1 {
                    self.err(
                        Diagnostic::error(
                            file,
                            c.span,
                            format!("'{}' is not a contact field", path[0]),
                        )
                        .with_help(format!(
                            "write `contact.{}` for the profile, or `event.{}` for the entry event",
                            path[0], path[0]
                        )),
                    );
                }
                self.value_ref(file, path, c.span, scope);
                let time = |test| CondIr::Time {
                    path: path.clone(),
                    test,
                };
                let matcher = match matcher {
                    Matcher::Cmp(op, l) => MatchIr::Cmp(*op, literal_value(l)),
                    Matcher::In(v) => MatchIr::In(v.iter().map(literal_value).collect()),
                    Matcher::NotIn(v) => MatchIr::NotIn(v.iter().map(literal_value).collect()),
                    Matcher::Contains(l) => MatchIr::Contains(literal_value(l)),
                    Matcher::StartsWith(l) => MatchIr::StartsWith(literal_value(l)),
                    Matcher::CmpRef(op, other, sp) => {
                        self.value_ref(file, other, *sp, scope);
                        MatchIr::CmpRef(*op, other.clone())
                    }
                    Matcher::InLast(d) => {
                        let (months, seconds) = self.check_period(file, d, "a time window");
                        return time(TimeTestIr::InLast { seconds, months });
                    }
                    Matcher::Before(p) => {
                        return time(TimeTestIr::Before(self.time_point(file, p)))
                    }
                    Matcher::After(p) => return time(TimeTestIr::After(self.time_point(file, p))),
                    Matcher::Between(a, b) => {
                        let from = self.check_date(file, a);
                        let to = self.check_date(file, b);
                        if from > to {
                            self.err(
                                Diagnostic::error(
                                    file,
                                    Span::new(a.span.start, b.span.end),
                                    "the first date of `between` is after the second",
                                )
                                .with_help("write the earlier date first"),
                            );
                        }
                        return time(TimeTestIr::Between { from, to });
                    }
                    Matcher::Anniversary => return time(TimeTestIr::Anniversary),
                };
                CondIr::Compare {
                    path: path.clone(),
                    matcher,
                }
            }
            CondKind::InSegment(id) => {
                self.check_ref(file, id, DefKind::Segment);
                CondIr::InSegment(id.name.clone())
            }
            CondKind::InList(s) => CondIr::InList(s.value.clone()),
            CondKind::Engagement {
                verb,
                target,
                in_last,
            } => CondIr::Engagement {
                verb: *verb,
                target: self.target(file, *verb, target, scope.journey()),
                window_seconds: in_last
                    .as_ref()
                    .map(|d| self.check_positive(file, d, "a time window")),
                op: CmpOp::Ge,
                count: 1,
            },
            CondKind::LastEngagement {
                verb,
                target,
                op,
                ago,
            } => CondIr::LastEngagement {
                verb: *verb,
                target: self.target(file, *verb, target, scope.journey()),
                op: *op,
                seconds: ago.seconds,
            },
            CondKind::CountEngagement {
                verb,
                target,
                op,
                count,
                in_last,
            } => CondIr::Engagement {
                verb: *verb,
                target: self.target(file, *verb, target, scope.journey()),
                window_seconds: in_last
                    .as_ref()
                    .map(|d| self.check_positive(file, d, "a time window")),
                op: *op,
                count: *count,
            },
            CondKind::Event {
                event,
                condition,
                in_last,
            } => CondIr::Event {
                event: event.value.clone(),
                condition: condition
                    .as_ref()
                    .map(|c| Box::new(self.cond(file, c, &CondScope::Record))),
                window_seconds: in_last
                    .as_ref()
                    .map(|d| self.check_positive(file, d, "a time window")),
                op: CmpOp::Ge,
                count: 1,
            },
            CondKind::CountEvent {
                event,
                condition,
                op,
                count,
                in_last,
            } => CondIr::Event {
                event: event.value.clone(),
                condition: condition
                    .as_ref()
                    .map(|c| Box::new(self.cond(file, c, &CondScope::Record))),
                window_seconds: in_last
                    .as_ref()
                    .map(|d| self.check_positive(file, d, "a time window")),
                op: *op,
                count: *count,
            },
        }
    }

    fn time_point(&mut self, file: usize, p: &TimePoint) -> TimePointIr {
        match p {
            TimePoint::Date(d) => TimePointIr::Date(self.check_date(file, d)),
            TimePoint::Now { minus, offset } => {
                let (months, seconds) = offset.as_ref().map_or((0, 0), |d| (d.months, d.seconds));
                let sign = if *minus { -1 } else { 1 };
                TimePointIr::Now {
                    seconds: sign * seconds,
                    months: sign as i32 * i32::try_from(months).unwrap_or(0),
                }
            }
        }
    }

    /// A value named in a condition or a computed value: `entry.KEY` needs an entry event,
    /// so it belongs to a journey's steps, goal and exit (recorded for `journey check`'s
    /// look at the scenarios' events), and nowhere else.
    pub(super) fn value_ref(
        &mut self,
        file: usize,
        path: &[String],
        span: Span,
        scope: &CondScope,
    ) {
        if path.first().map(String::as_str) != Some("entry") || path.len() < 2 {
            return;
        }
        match &mut self.keyed {
            Some(refs) => refs.push((file, span, path[1].clone())),
            None => {
                let here = match scope {
                    CondScope::Segment => "a segment has no entry event",
                    CondScope::Message => "a message filter has no entry event",
                    _ => "an entry's own `where` is read before the contact enters",
                };
                self.err(
                    Diagnostic::error(
                        file,
                        span,
                        format!(
                            "`{}` names the entry event here, which does not exist",
                            path.join(".")
                        ),
                    )
                    .with_label(here)
                    .with_help(
                        "`entry.KEY` reads the event that enrolled the contact, in a journey's \
                         steps, goal and exit; here write the property's own name",
                    ),
                );
            }
        }
    }

    /// Resolves a target; `here` is the journey being compiled and its messages, if any.
    pub(super) fn target(
        &mut self,
        file: usize,
        verb: Verb,
        t: &Target,
        here: Option<&JourneyMessages>,
    ) -> TargetIr {
        match t {
            Target::Journey(id) => {
                self.check_ref(file, id, DefKind::Journey);
                TargetIr::Journey(id.name.clone())
            }
            Target::Channel(ch, sp) => {
                if let Err(why) = verb_supported(verb, *ch) {
                    self.err(
                        Diagnostic::error(
                            file,
                            *sp,
                            format!("'{}' cannot be used on {}", verb.as_str(), ch.as_str()),
                        )
                        .with_help(why),
                    );
                }
                TargetIr::Channel(*ch)
            }
            Target::Label(s) => TargetIr::Label(s.value.clone()),
            Target::Message(m) => self.message_target(file, verb, m, here),
        }
    }

    pub(super) fn message_target(
        &mut self,
        file: usize,
        verb: Verb,
        m: &MessageRef,
        here: Option<&JourneyMessages>,
    ) -> TargetIr {
        let parts = &m.parts;
        // `msg` / `msg.link` of this journey first, then `journey.msg` / `journey.msg.link`.
        if let Some(h) = here {
            if let Some((ch, links)) = h.messages.get(&parts[0].name) {
                if parts.len() > 2 {
                    self.err(
                        Diagnostic::error(
                            file,
                            m.span,
                            format!("'{}' has too many parts", m.text()),
                        )
                        .with_help(
                            "write MESSAGE, MESSAGE.LINK, JOURNEY.MESSAGE or JOURNEY.MESSAGE.LINK",
                        ),
                    );
                }
                self.check_verb(file, verb, *ch, m.span, &parts[0].name);
                let link = parts.get(1).map(|l| {
                    self.check_link(file, l, links, &parts[0].name);
                    l.name.clone()
                });
                return TargetIr::Message {
                    journey: h.journey.clone(),
                    message: parts[0].name.clone(),
                    link,
                };
            }
        }
        let journey_def = match self.defs.get(&parts[0].name) {
            Some((DefKind::Journey, jf, Definition::Journey(j))) => Some((*jf, j)),
            _ => None,
        };
        if let (Some((_jf, j)), Some(msg)) = (journey_def, parts.get(1)) {
            let other = JourneyMessages::of(j);
            match other.messages.get(&msg.name) {
                Some((ch, links)) => {
                    self.check_verb(file, verb, *ch, m.span, &msg.name);
                    let link = parts.get(2).map(|l| {
                        self.check_link(file, l, links, &msg.name);
                        l.name.clone()
                    });
                    return TargetIr::Message {
                        journey: parts[0].name.clone(),
                        message: msg.name.clone(),
                        link,
                    };
                }
                None => {
                    let mut d = Diagnostic::error(
                        file,
                        msg.span,
                        format!("journey '{}' has no message '{}'", parts[0].name, msg.name),
                    );
                    let names: Vec<&str> = other.messages.keys().map(String::as_str).collect();
                    if let Some(h) = did_you_mean(&msg.name, names) {
                        d = d.with_help(h);
                    }
                    self.err(d);
                    return TargetIr::Journey(parts[0].name.clone());
                }
            }
        }
        let mut d = Diagnostic::error(
            file,
            parts[0].span,
            format!("unknown message '{}'", parts[0].name),
        );
        let mut candidates: Vec<String> = here
            .map(|h| h.messages.keys().cloned().collect())
            .unwrap_or_default();
        candidates.extend(
            self.names_of(DefKind::Journey)
                .iter()
                .map(|s| s.to_string()),
        );
        d = match did_you_mean(&parts[0].name, candidates.iter().map(String::as_str)) {
            Some(h) => d.with_help(h),
            None => match here {
                Some(h) if !h.messages.is_empty() => d.with_help(format!(
                    "messages of this journey: {}",
                    h.messages.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
                _ => d.with_help(
                    "name a message of this journey, or another journey's as JOURNEY.MESSAGE",
                ),
            },
        };
        self.err(d);
        TargetIr::Message {
            journey: String::new(),
            message: parts[0].name.clone(),
            link: None,
        }
    }

    pub(super) fn check_verb(
        &mut self,
        file: usize,
        verb: Verb,
        ch: Channel,
        span: Span,
        msg: &str,
    ) {
        if let Err(why) = verb_supported(verb, ch) {
            self.err(
                Diagnostic::error(
                    file,
                    span,
                    format!(
                        "'{}' cannot be used on '{msg}', which is sent by {}",
                        verb.as_str(),
                        ch.as_str()
                    ),
                )
                .with_help(why),
            );
        }
    }

    pub(super) fn check_link(&mut self, file: usize, l: &Ident, links: &[String], msg: &str) {
        if !links.contains(&l.name) {
            let mut d = Diagnostic::error(
                file,
                l.span,
                format!("message '{msg}' has no link '{}'", l.name),
            );
            d = match did_you_mean(&l.name, links.iter().map(String::as_str)) {
                Some(h) => d.with_help(h),
                None if links.is_empty() => d.with_help(format!(
                    "declare it in the message: `link {} \"https://…\"`",
                    l.name
                )),
                None => d.with_help(format!("its links: {}", links.join(", "))),
            };
            self.err(d);
        }
    }

    // ------------------------------------------------------------ journeys
}
