//! Compiling journeys: headers, entries, and the assignment of names to steps.

use super::*;

impl<'a> Compiler<'a> {
    pub(super) fn journey(
        &mut self,
        file: usize,
        j: &'a ast::Journey,
        policies: &BTreeMap<String, PolicyIr>,
        topics: &BTreeMap<String, TopicIr>,
    ) -> JourneyIr {
        let here = JourneyMessages::of(j);
        let mut ir = JourneyIr {
            name: j.name.name.clone(),
            title: None,
            category: None,
            label: None,
            entries: Vec::new(),
            reentry: ReentryIr::Never,
            goal: None,
            exit: None,
            policy: None,
            quiet: None,
            migrate_by_name: false,
            start: None,
            steps: Vec::new(),
            messages: BTreeMap::new(),
            topic: None,
            transactional: false,
            holdout: 0,
        };
        // `entry.KEY` is readable in the goal, the exit and the steps (not in the entries'
        // own `where`, compiled with this taken away).
        self.keyed = Some(Vec::new());
        let mut transactional_at: Option<Span> = None;
        let mut topic_at: Option<Span> = None;
        let scope = CondScope::Journey(here.clone());
        let mut seen_headers: HashMap<&'static str, Span> = HashMap::new();
        for h in &j.headers {
            let once = match &h.kind {
                HeaderKind::Title(_) => Some("title"),
                HeaderKind::Category(_) => Some("category"),
                HeaderKind::Label(_) => Some("label"),
                HeaderKind::Reentry(_) => Some("reentry"),
                HeaderKind::Policy(_) => Some("policy"),
                HeaderKind::Quiet { .. } => Some("quiet"),
                HeaderKind::Topic(_) => Some("topic"),
                HeaderKind::Transactional => Some("transactional"),
                HeaderKind::Holdout { .. } => Some("holdout"),
                _ => None,
            };
            if let Some(key) = once {
                if let Some(prev) = seen_headers.insert(key, h.span) {
                    self.err(
                        Diagnostic::error(file, h.span, format!("`{key}` is given twice"))
                            .with_related(file, prev, "first given here"),
                    );
                }
            }
            match &h.kind {
                HeaderKind::Title(s) => ir.title = Some(s.value.clone()),
                HeaderKind::Category(s) => ir.category = Some(s.value.clone()),
                HeaderKind::Label(s) => ir.label = Some(s.value.clone()),
                HeaderKind::Entry(e) => {
                    let entry = match e {
                        Entry::Event(m) => {
                            let keyed = self.keyed.take();
                            let condition = m
                                .condition
                                .as_ref()
                                .map(|c| self.cond(file, c, &CondScope::Record));
                            self.keyed = keyed;
                            EntryIr::Event(EventMatchIr {
                                event: m.event.value.clone(),
                                condition,
                            })
                        }
                        Entry::SegmentAt {
                            segment,
                            date,
                            time,
                            zone,
                        } => {
                            self.check_ref(file, segment, DefKind::Segment);
                            let d = self.check_date(file, date);
                            let m = self.check_time(file, time);
                            let zone = self.check_zone(file, zone);
                            EntryIr::SegmentAt {
                                segment: segment.name.clone(),
                                at: d.and_hms_opt(m / 60, m % 60, 0).expect("valid time"),
                                zone,
                            }
                        }
                        Entry::SegmentEvery {
                            segment,
                            weekday,
                            time,
                            zone,
                        } => {
                            self.check_ref(file, segment, DefKind::Segment);
                            let minute_of_day = self.check_time(file, time);
                            let zone = self.check_zone(file, zone);
                            EntryIr::SegmentEvery {
                                segment: segment.name.clone(),
                                weekday: weekday.as_ref().and_then(|w| weekday_index(&w.name)),
                                minute_of_day,
                                zone,
                            }
                        }
                        Entry::SegmentJoin { segment } => {
                            self.check_ref(file, segment, DefKind::Segment);
                            EntryIr::SegmentJoin {
                                segment: segment.name.clone(),
                            }
                        }
                        Entry::Api => EntryIr::Api,
                    };
                    ir.entries.push(entry);
                }
                HeaderKind::Reentry(r) => {
                    ir.reentry = match r {
                        Reentry::Never => ReentryIr::Never,
                        Reentry::Always => ReentryIr::Always,
                        Reentry::After(d) => ReentryIr::After {
                            seconds: self.check_positive(file, d, "a re-entry delay"),
                        },
                    }
                }
                HeaderKind::Goal(m) | HeaderKind::Exit(m) => {
                    let em = EventMatchIr {
                        event: m.event.value.clone(),
                        condition: m
                            .condition
                            .as_ref()
                            .map(|c| self.cond(file, c, &CondScope::Record)),
                    };
                    if matches!(h.kind, HeaderKind::Goal(_)) {
                        ir.goal = Some(em);
                    } else {
                        ir.exit = Some(em);
                    }
                }
                HeaderKind::Policy(p) => {
                    if let Some(p) = p {
                        if self.check_ref(file, p, DefKind::Policy) {
                            ir.policy = policies.get(&p.name).cloned();
                        }
                    }
                }
                HeaderKind::Quiet { from, to } => {
                    let from_minute = self.check_time(file, from);
                    let to_minute = self.check_time(file, to);
                    if from_minute == to_minute {
                        self.err(Diagnostic::error(
                            file,
                            h.span,
                            "quiet hours start and end at the same time",
                        ));
                    }
                    ir.quiet = Some(QuietIr {
                        from_minute,
                        to_minute,
                    });
                }
                HeaderKind::MigrateByName => ir.migrate_by_name = true,
                HeaderKind::Holdout {
                    basis_points,
                    percent_text,
                } => {
                    if *basis_points == 0 || *basis_points >= 10_000 {
                        self.err(
                            Diagnostic::error(
                                file,
                                h.span,
                                format!("a holdout of {percent_text} leaves nobody to compare"),
                            )
                            .with_help(
                                "a holdout is a share above 0% and below 100%, such as `holdout 10%`",
                            ),
                        );
                    }
                    ir.holdout = *basis_points;
                }
                HeaderKind::Transactional => {
                    ir.transactional = true;
                    transactional_at = Some(h.span);
                }
                HeaderKind::Topic(t) => {
                    topic_at = Some(h.span);
                    // `sms` and `push` are channel-wide topics, known without a definition.
                    let builtin = CHANNEL_TOPICS.contains(&t.name.as_str())
                        && !self.defs.contains_key(&t.name);
                    if builtin || self.check_ref(file, t, DefKind::Topic) {
                        ir.topic = Some(TopicUseIr {
                            name: t.name.clone(),
                            default_subscribed: topics
                                .get(&t.name)
                                .is_none_or(|d| d.default_subscribed),
                        });
                    }
                }
            }
        }
        if let (Some(tr), Some(tp)) = (transactional_at, topic_at) {
            self.err(
                Diagnostic::error(
                    file,
                    tp,
                    "a transactional journey cannot have a topic",
                )
                .with_related(file, tr, "declared transactional here")
                .with_help("a topic is consent to marketing; receipts and password resets need none: drop one of the two lines"),
            );
        }
        if ir.entries.is_empty() {
            self.err(
                Diagnostic::error(
                    file,
                    j.name.span,
                    format!("journey '{}' has no entry", j.name.name),
                )
                .with_label("no contact can ever enter this journey")
                .with_help("add `entry event \"…\"`, `entry segment NAME on join` or `entry api`"),
            );
        }

        let mut cx = JourneyCx {
            file,
            name: j.name.name.clone(),
            steps: Vec::new(),
            spans: Vec::new(),
            labels: HashMap::new(),
            messages: BTreeMap::new(),
            if_count: 0,
            split_count: 0,
            gotos: Vec::new(),
            ids: HashMap::new(),
        };
        self.assign(&mut cx, &j.steps);
        self.check_step_names(&cx);
        let start = self.link_block(&mut cx, &j.steps, None, &scope);
        self.check_graph(&cx, start);
        for (i, st) in cx.steps.iter().enumerate() {
            if let StepKindIr::Experiment {
                metric: ExperimentMetric::Converted,
                ..
            } = st.kind
            {
                if ir.goal.is_none() {
                    self.err(
                        Diagnostic::error(
                            file,
                            cx.spans[i],
                            format!(
                                "experiment '{}' is by `converted`, but the journey has no goal",
                                st.name
                            ),
                        )
                        .with_help("add `goal event \"…\"`, or measure by `opened` or `clicked`"),
                    );
                }
            }
        }
        ir.start = start;
        ir.steps = cx.steps;
        let refs = self.keyed.take().unwrap_or_default();
        if !refs.is_empty() {
            self.entry_refs.push(EntryRefs {
                journey: ir.name.clone(),
                entry_events: ir
                    .entries
                    .iter()
                    .filter_map(|e| match e {
                        EntryIr::Event(m) => Some(m.event.clone()),
                        _ => None,
                    })
                    .collect(),
                refs,
            });
        }
        ir.messages = cx.messages.into_iter().map(|(k, (m, _))| (k, m)).collect();
        if !ir.transactional
            && topic_at.is_none()
            && !topics.is_empty()
            && ir.messages.values().any(|m| m.channel != Channel::Webhook)
        {
            let names: Vec<&str> = topics.keys().map(String::as_str).collect();
            self.err(
                Diagnostic::warning(
                    file,
                    j.name.span,
                    format!("marketing journey '{}' has no topic", j.name.name),
                )
                .with_label("only `unsubscribed: true` stops its sends")
                .with_help(format!(
                    "add `topic NAME` (defined: {}), or `transactional` if it is not marketing",
                    names.join(", ")
                )),
            );
        }
        ir
    }

    /// First pass: give every step that stays in the state machine an id and a name, in
    /// document order, and collect labels and messages.
    pub(super) fn assign(&mut self, cx: &mut JourneyCx<'a>, steps: &'a [Step]) {
        for s in steps {
            let id = match &s.kind {
                StepKind::Goto(_) | StepKind::End => None,
                _ => Some(cx.steps.len() as StepId),
            };
            if let Some(label) = &s.label {
                let target = match (&s.kind, id) {
                    (_, Some(id)) => LabelTarget::Step(id),
                    (StepKind::Goto(t), None) => LabelTarget::Goto(t),
                    _ => LabelTarget::Leave,
                };
                if let Some((prev, _)) = cx.labels.get(&label.name) {
                    let prev = *prev;
                    self.err(
                        Diagnostic::error(
                            cx.file,
                            label.span,
                            format!("label '{}' is used twice", label.name),
                        )
                        .with_related(cx.file, prev, "first used here"),
                    );
                } else {
                    cx.labels.insert(label.name.clone(), (label.span, target));
                }
            }
            let Some(id) = id else { continue };
            cx.ids.insert(s.span.start, id);
            let name = match (&s.label, &s.kind) {
                (Some(l), _) => l.name.clone(),
                (None, StepKind::Send(m)) => m.name.name.clone(),
                (None, StepKind::Wait(d)) => format!("wait_{}", d.text),
                (None, StepKind::WaitUntil(w)) => {
                    let mut n = String::from("wait_until");
                    if let Some(d) = &w.date {
                        n.push_str(&format!("_{:04}{:02}{:02}", d.year, d.month, d.day));
                    }
                    if let Some(wd) = &w.weekday {
                        n.push('_');
                        n.push_str(&wd.name);
                    }
                    n.push_str(&format!("_{:02}{:02}", w.time.hour, w.time.minute));
                    n
                }
                (None, StepKind::WaitForEvent(w)) => format!("wait_for_{}", slug(&w.event.value)),
                (None, StepKind::Check(c)) => {
                    format!(
                        "check_{}_{}",
                        c.verb.as_str(),
                        c.message
                            .parts
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join("_")
                    )
                }
                (None, StepKind::If(_)) => {
                    cx.if_count += 1;
                    format!("if_{}", cx.if_count)
                }
                (None, StepKind::Experiment(x)) => x.name.name.clone(),
                (None, StepKind::Split(_)) => {
                    cx.split_count += 1;
                    format!("split_{}", cx.split_count)
                }
                (None, StepKind::Set { field, .. }) => format!("set_{}", field.name),
                (None, _) => unreachable!("goto and end have no id"),
            };
            // Placeholder kinds, filled by `link_block`.
            cx.steps.push(StepIr {
                name: name.clone(),
                kind: StepKindIr::Wait {
                    seconds: 0,
                    months: 0,
                    next: None,
                },
            });
            cx.spans.push(s.span);
            match &s.kind {
                StepKind::Send(m) => {
                    let msg = self.message(cx.file, m, &name);
                    if let Some((_, prev)) = cx.messages.get(&m.name.name) {
                        let prev = *prev;
                        self.err(
                            Diagnostic::error(
                                cx.file,
                                m.name.span,
                                format!("two messages named '{}'", m.name.name),
                            )
                            .with_related(cx.file, prev, "first sent here")
                            .with_help(
                                "checks and reports name messages, so each needs its own name",
                            ),
                        );
                    } else {
                        cx.messages.insert(m.name.name.clone(), (msg, m.name.span));
                    }
                }
                StepKind::If(i) => {
                    for (_, b) in &i.arms {
                        self.assign(cx, &b.steps);
                    }
                    if let Some(b) = &i.otherwise {
                        self.assign(cx, &b.steps);
                    }
                }
                StepKind::Split(sp) => {
                    for a in &sp.arms {
                        self.assign(cx, &a.block.steps);
                    }
                }
                StepKind::Experiment(x) => {
                    for (_, b) in x.arms.iter().filter_map(|a| a.arm.as_ref()) {
                        self.assign(cx, &b.steps);
                    }
                }
                StepKind::Check(c) => {
                    for b in [&c.outcomes.yes, &c.outcomes.no].into_iter().flatten() {
                        self.assign(cx, &b.steps);
                    }
                }
                StepKind::WaitForEvent(w) => {
                    for b in [&w.outcomes.yes, &w.outcomes.no].into_iter().flatten() {
                        self.assign(cx, &b.steps);
                    }
                }
                _ => {}
            }
        }
    }

    pub(super) fn check_step_names(&mut self, cx: &JourneyCx) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, s) in cx.steps.iter().enumerate() {
            if let Some(prev) = seen.insert(&s.name, i) {
                self.err(
                    Diagnostic::error(
                        cx.file,
                        cx.spans[i],
                        format!("two steps are named '{}'", s.name),
                    )
                    .with_label("second step with this name")
                    .with_related(cx.file, cx.spans[prev], "first step with this name")
                    .with_help(format!("give one a label, such as `{}_again: …`", s.name)),
                );
            }
        }
    }
}
