//! Compiling linking: blocks and labels into the state machine's `Next` edges.

use super::*;

impl<'a> Compiler<'a> {
    /// Second pass: set every step's successors. `cont` is where a contact goes after the
    /// block ends; returns where a contact entering the block goes.
    pub(super) fn link_block(
        &mut self,
        cx: &mut JourneyCx<'a>,
        steps: &'a [Step],
        cont: Next,
        scope: &CondScope,
    ) -> Next {
        // Steps after an `end` or `goto` in the same block can only be reached by a label.
        let mut dead_after: Option<(Span, &str)> = None;
        for s in steps {
            if let Some((sp, what)) = dead_after {
                if s.label.is_none() {
                    self.err(
                        Diagnostic::error(cx.file, s.span, "this step can never run")
                            .with_label("unreachable")
                            .with_related(
                                cx.file,
                                sp,
                                format!("the `{what}` above leaves this branch"),
                            )
                            .with_help("remove it, or give it a label and `goto` it"),
                    );
                    break;
                }
                dead_after = None;
            }
            match &s.kind {
                StepKind::End => dead_after = Some((s.span, "end")),
                StepKind::Goto(_) => dead_after = Some((s.span, "goto")),
                _ => {}
            }
        }
        let mut next = cont;
        for s in steps.iter().rev() {
            next = self.link_step(cx, s, next, scope);
        }
        next
    }

    pub(super) fn resolve_label(
        &mut self,
        cx: &JourneyCx<'a>,
        target: &Ident,
        depth: usize,
    ) -> Option<Next> {
        match cx.labels.get(&target.name) {
            Some((_, LabelTarget::Step(id))) => Some(Some(*id)),
            Some((_, LabelTarget::Leave)) => Some(None),
            Some((_, LabelTarget::Goto(t))) => {
                if depth > cx.labels.len() {
                    self.err(
                        Diagnostic::error(
                            cx.file,
                            target.span,
                            "these gotos jump to each other forever",
                        )
                        .with_help("a loop must pass a `wait` or a `check`"),
                    );
                    return None;
                }
                self.resolve_label(cx, t, depth + 1)
            }
            None => {
                let mut d = Diagnostic::error(
                    cx.file,
                    target.span,
                    format!("unknown label '{}'", target.name),
                );
                let names: Vec<&str> = cx.labels.keys().map(String::as_str).collect();
                d = match did_you_mean(&target.name, names.iter().copied()) {
                    Some(h) => d.with_help(h),
                    None => d.with_help("a label is written `name:` before the step to jump to"),
                };
                self.err(d);
                None
            }
        }
    }

    pub(super) fn link_step(
        &mut self,
        cx: &mut JourneyCx<'a>,
        s: &'a Step,
        next: Next,
        scope: &CondScope,
    ) -> Next {
        let file = cx.file;
        let kind = match &s.kind {
            StepKind::End => return None,
            StepKind::Goto(t) => {
                let target = self.resolve_label(cx, t, 0).unwrap_or(None);
                cx.gotos.push((s.span, target));
                return target;
            }
            StepKind::Send(m) => StepKindIr::Send {
                message: m.name.name.clone(),
                next,
            },
            StepKind::Wait(d) => {
                let (months, seconds) = self.check_period(file, d, "a wait");
                StepKindIr::Wait {
                    seconds,
                    months,
                    next,
                }
            }
            StepKind::WaitUntil(w) => {
                let minute_of_day = self.check_time(file, &w.time);
                let date = w.date.as_ref().map(|d| self.check_date(file, d));
                let zone = self.check_zone(file, &w.zone);
                StepKindIr::WaitUntil {
                    date,
                    weekday: w.weekday.as_ref().and_then(|d| weekday_index(&d.name)),
                    minute_of_day,
                    zone,
                    next,
                }
            }
            StepKind::WaitForEvent(w) => {
                let (within_months, within_seconds) =
                    self.check_period(file, &w.within, "the time to wait");
                let yes = match &w.outcomes.yes {
                    Some(b) => self.link_block(cx, &b.steps, next, scope),
                    None => next,
                };
                let no = match &w.outcomes.no {
                    Some(b) => self.link_block(cx, &b.steps, next, scope),
                    None => next,
                };
                StepKindIr::WaitEvent {
                    event: w.event.value.clone(),
                    condition: w
                        .condition
                        .as_ref()
                        .map(|c| self.cond(file, c, &CondScope::Record)),
                    within_seconds,
                    within_months,
                    yes,
                    no,
                }
            }
            StepKind::Check(c) => {
                let (within_months, within_seconds) =
                    self.check_period(file, &c.within, "the time to wait");
                let here = scope.journey().cloned();
                let (message, link) = self.check_target(cx, c, here.as_ref());
                let yes = match &c.outcomes.yes {
                    Some(b) => self.link_block(cx, &b.steps, next, scope),
                    None => next,
                };
                let no = match &c.outcomes.no {
                    Some(b) => self.link_block(cx, &b.steps, next, scope),
                    None => next,
                };
                StepKindIr::Check {
                    verb: c.verb,
                    message,
                    link,
                    within_seconds,
                    within_months,
                    yes,
                    no,
                }
            }
            StepKind::If(i) => {
                let mut arms = Vec::new();
                for (c, b) in &i.arms {
                    let cond = self.cond(file, c, scope);
                    let target = self.link_block(cx, &b.steps, next, scope);
                    arms.push((cond, target));
                }
                let otherwise = match &i.otherwise {
                    Some(b) => self.link_block(cx, &b.steps, next, scope),
                    None => next,
                };
                StepKindIr::Branch { arms, otherwise }
            }
            StepKind::Experiment(x) => {
                let (within_months, within_seconds) =
                    self.check_period(file, &x.within, "an experiment's time to measure");
                let metric = match x.metric.name.as_str() {
                    "opened" => ExperimentMetric::Opened,
                    "clicked" => ExperimentMetric::Clicked,
                    _ => ExperimentMetric::Converted,
                };
                let total: u32 = x.arms.iter().map(|a| a.basis_points).sum();
                if total != 10_000 {
                    let shares: Vec<&str> =
                        x.arms.iter().map(|a| a.percent_text.as_str()).collect();
                    self.err(
                        Diagnostic::error(
                            file,
                            self.step_keyword(file, s.span, true),
                            format!(
                                "the shares of this experiment add up to {}%, not 100%",
                                fmt_basis(total)
                            ),
                        )
                        .with_label(format!("shares: {}", shares.join(" + ")))
                        .with_help("make the arms and the winner add up to exactly 100%"),
                    );
                }
                let mut seen: HashMap<&str, Span> = HashMap::new();
                let mut arms = Vec::new();
                let mut winner = 0;
                let mut winner_at: Option<Span> = None;
                for (i, a) in x.arms.iter().enumerate() {
                    let Some((name, block)) = &a.arm else {
                        if let Some(prev) = winner_at {
                            self.err(
                                Diagnostic::error(file, a.span, "`winner` is given twice")
                                    .with_related(file, prev, "first given here")
                                    .with_help("an experiment has one winner share, last"),
                            );
                        } else if i + 1 != x.arms.len() {
                            self.err(
                                Diagnostic::error(file, a.span, "`winner` must be the last share")
                                    .with_label("arms follow it")
                                    .with_help("write the arms first, then `N% winner`"),
                            );
                        }
                        winner_at = Some(a.span);
                        winner += a.basis_points;
                        continue;
                    };
                    if let Some(prev) = seen.insert(&name.name, name.span) {
                        self.err(
                            Diagnostic::error(
                                file,
                                name.span,
                                format!("two arms named '{}'", name.name),
                            )
                            .with_related(
                                file,
                                prev,
                                "first used here",
                            ),
                        );
                    }
                    let target = self.link_block(cx, &block.steps, next, scope);
                    arms.push(ExperimentArmIr {
                        name: name.name.clone(),
                        basis_points: a.basis_points,
                        next: target,
                        messages: sends_between(&cx.steps, target, next),
                    });
                }
                if arms.is_empty() {
                    self.err(
                        Diagnostic::error(
                            file,
                            x.name.span,
                            format!("experiment '{}' has no arm to try", x.name.name),
                        )
                        .with_help("add arms such as `50% a { send email … }` before the winner"),
                    );
                }
                StepKindIr::Experiment {
                    metric,
                    within_seconds,
                    within_months,
                    arms,
                    winner,
                }
            }
            StepKind::Split(sp) => {
                let total: u32 = sp.arms.iter().map(|a| a.basis_points).sum();
                if total != 10_000 {
                    let shares: Vec<&str> =
                        sp.arms.iter().map(|a| a.percent_text.as_str()).collect();
                    self.err(
                        Diagnostic::error(
                            file,
                            self.step_keyword(file, s.span, true),
                            format!(
                                "the shares of this split add up to {}%, not 100%",
                                fmt_basis(total)
                            ),
                        )
                        .with_label(format!("shares: {}", shares.join(" + ")))
                        .with_help("make the shares add up to exactly 100%"),
                    );
                }
                let mut seen: HashMap<&str, Span> = HashMap::new();
                let mut arms = Vec::new();
                for a in &sp.arms {
                    if let Some(prev) = seen.insert(&a.name.name, a.name.span) {
                        self.err(
                            Diagnostic::error(
                                file,
                                a.name.span,
                                format!("two arms named '{}'", a.name.name),
                            )
                            .with_related(
                                file,
                                prev,
                                "first used here",
                            ),
                        );
                    }
                    if a.basis_points == 0 {
                        self.err(Diagnostic::warning(
                            file,
                            a.span,
                            format!("arm '{}' gets no contact (0%)", a.name.name),
                        ));
                    }
                    let target = self.link_block(cx, &a.block.steps, next, scope);
                    arms.push(SplitArmIr {
                        name: a.name.name.clone(),
                        basis_points: a.basis_points,
                        next: target,
                    });
                }
                StepKindIr::Split { arms }
            }
            StepKind::Set { field, value } => {
                if field.name == "id" {
                    self.err(
                        Diagnostic::error(file, field.span, "a contact's id cannot be changed")
                            .with_help("ids are how events find their contact"),
                    );
                }
                self.computed(file, field, value, next, scope)
            }
        };
        let id = cx.ids[&s.span.start];
        cx.steps[id as usize].kind = kind;
        Some(id)
    }

    pub(super) fn check_target(
        &mut self,
        cx: &JourneyCx,
        c: &Check,
        here: Option<&JourneyMessages>,
    ) -> (String, Option<String>) {
        let parts = &c.message.parts;
        let Some(h) = here else {
            return (parts[0].name.clone(), None);
        };
        match h.messages.get(&parts[0].name) {
            Some((ch, links)) => {
                if parts.len() > 2 {
                    self.err(
                        Diagnostic::error(
                            cx.file,
                            c.message.span,
                            "a check names MESSAGE or MESSAGE.LINK of this journey",
                        )
                        .with_help("checks wait on this journey's own messages"),
                    );
                }
                if let Err(why) = verb_supported(c.verb, *ch) {
                    self.err(
                        Diagnostic::error(
                            cx.file,
                            c.verb_span,
                            format!(
                                "'{}' cannot be checked on '{}', which is sent by {}",
                                c.verb.as_str(),
                                parts[0].name,
                                ch.as_str()
                            ),
                        )
                        .with_label(format!("{} cannot report this", ch.as_str()))
                        .with_help(why),
                    );
                }
                let link = parts.get(1).map(|l| {
                    self.check_link(cx.file, l, links, &parts[0].name);
                    l.name.clone()
                });
                if link.is_some() && c.verb != Verb::Clicked {
                    self.err(
                        Diagnostic::error(
                            cx.file,
                            c.message.span,
                            format!("only `clicked` can name a link, not `{}`", c.verb.as_str()),
                        )
                        .with_help(format!(
                            "write `check {} {}`",
                            c.verb.as_str(),
                            parts[0].name
                        )),
                    );
                }
                (parts[0].name.clone(), link)
            }
            None => {
                let mut d = Diagnostic::error(
                    cx.file,
                    parts[0].span,
                    format!("unknown message '{}'", parts[0].name),
                )
                .with_label("no message of this journey has this name");
                let names: Vec<&str> = h.messages.keys().map(String::as_str).collect();
                d = match did_you_mean(&parts[0].name, names.iter().copied()) {
                    Some(hint) => d.with_help(hint),
                    None if names.is_empty() => d.with_help("this journey sends no message yet"),
                    None => d.with_help(format!("messages of this journey: {}", names.join(", "))),
                };
                self.err(d);
                (parts[0].name.clone(), None)
            }
        }
    }
}

/// The messages sent on the way from `from` to `until` (an arm's steps up to the step after
/// the experiment).
fn sends_between(steps: &[StepIr], from: Next, until: Next) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![from];
    while let Some(Some(id)) = todo.pop() {
        if Some(id) == until || !seen.insert(id) {
            continue;
        }
        let Some(step) = steps.get(id as usize) else {
            continue;
        };
        if let StepKindIr::Send { message, .. } = &step.kind {
            if !out.contains(message) {
                out.push(message.clone());
            }
        }
        todo.extend(step.kind.successors());
    }
    out
}
