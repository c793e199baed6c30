//! The batch: a group of inputs, processed contact by contact through the step function,
//! written as one atomic batch.

use super::*;

/// A batch that `process_in_background` could not commit, and the fate of the batch
/// before it (committing in the background until then).
#[derive(Debug)]
pub struct InBackgroundError {
    pub error: RuntimeError,
    /// Whether the batch before is committed (its acknowledgements and sends may go).
    pub before_committed: bool,
}

impl Runtime {
    /// Runs a group of inputs at `now` and commits them in one batch (flushed when durable).
    pub fn process(&mut self, inputs: Vec<Input>, now: Millis) -> Result<BatchOutcome> {
        self.settle()?;
        self.process_batch(inputs, now, false)
    }

    /// `process`, returning while the batch commits in the background where the store can
    /// (PostgreSQL): the engine prepares the next batch meanwhile. Until `settle` (or the
    /// next call) says it is committed, nothing of this batch may leave: its sends, its
    /// acknowledgements. Ok also says the batch before is committed; on an error, whether
    /// it was is told with it. Where the store cannot commit in the background, `process`.
    pub fn process_in_background(
        &mut self,
        inputs: Vec<Input>,
        now: Millis,
    ) -> std::result::Result<BatchOutcome, InBackgroundError> {
        if !self.store.commits_in_background() {
            return self
                .process(inputs, now)
                .map_err(|error| InBackgroundError {
                    error,
                    before_committed: true,
                });
        }
        self.settle_failed = false;
        self.process_batch(inputs, now, true).map_err(|error| {
            // The batch before: still committing (this one failed before its apply), or
            // settled on the way.
            let before_committed = if self.committing.is_some() {
                self.settle().is_ok()
            } else {
                !self.settle_failed
            };
            InBackgroundError {
                error,
                before_committed,
            }
        })
    }

    /// Waits for the batch committing in the background, if any: Ok once it is committed;
    /// should it have failed, its sends are taken back from the outbox.
    pub fn settle(&mut self) -> Result<()> {
        let Some(sends) = self.committing.take() else {
            return Ok(());
        };
        let applying = std::time::Instant::now();
        let r = self.store.settle();
        self.stages.add(Stage::Apply, applying);
        self.settle_failed = r.is_err();
        if r.is_err() {
            self.forget_outbox(&sends);
        }
        Ok(r?)
    }

    fn process_batch(
        &mut self,
        inputs: Vec<Input>,
        now: Millis,
        in_background: bool,
    ) -> Result<BatchOutcome> {
        use std::sync::atomic::Ordering::Relaxed;
        let started = std::time::Instant::now();
        self.stages.batches.fetch_add(1, Relaxed);
        self.stages.inputs.fetch_add(inputs.len() as u64, Relaxed);
        let mut out = BatchOutcome::default();
        let mut batch = WriteBatch::default();
        let inputs = if self.identities.erased_sends.is_empty() {
            inputs
        } else {
            self.drop_erased_outcomes(inputs)
        };
        let inputs = if self.identities.aliases.is_empty() {
            inputs
        } else {
            self.follow_aliases(inputs)
        };
        // Other daemons' contacts go to their inboxes; the inbox entries taken go.
        let inputs = self.route_elsewhere(inputs, now, &mut batch)?;
        for key in self.inbox_taken.drain(..) {
            batch.del_inbox(key);
        }
        // Group by contact, keeping each contact's inputs in order (and contacts in the
        // order they first appear). One id string per contact, not per input.
        let mut group_of: HashMap<&str, usize> = HashMap::with_capacity(inputs.len());
        let mut slots: Vec<usize> = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let next = group_of.len();
            slots.push(*group_of.entry(input.contact_hint()).or_insert(next));
        }
        let mut groups: Vec<(String, Vec<Input>)> =
            vec![(String::new(), Vec::new()); group_of.len()];
        drop(group_of);
        for (input, g) in inputs.into_iter().zip(slots) {
            let group = &mut groups[g];
            if group.1.is_empty() {
                group.0 = input.contact_hint().to_string();
            }
            group.1.push(input);
        }
        // One read of the batch's contacts, where a read costs a round trip.
        self.store
            .prefetch_contacts(groups.iter().map(|g| g.0.as_str()))?;
        let mut work = BatchInProgress {
            batch: &mut batch,
            out: &mut out,
            timer_changes: Vec::new(),
            fired: Vec::new(),
            figures: if self.keeps_figures {
                figures::FigureDelta::recording()
            } else {
                figures::FigureDelta::default()
            },
        };
        let mut quiet_after: Vec<(String, bool)> = Vec::with_capacity(groups.len());
        for (contact, inputs) in groups {
            let quiet = self.process_contact(&contact, inputs, now, &mut work)?;
            quiet_after.push((contact, quiet));
        }
        let figure_delta = std::mem::take(&mut work.figures);
        let wheel_changes = self.write_timers(work.timer_changes, work.fired, &mut batch)?;
        self.write_outbox(&out.sends, &mut batch)?;
        out.writes = batch.writes;
        self.stages.add(Stage::Prepare, started);
        let applying = std::time::Instant::now();
        if in_background {
            // The batch before is settled first: should it have failed, so does this one
            // (it was prepared over that one's writes).
            let applied = self
                .settle()
                .and_then(|()| Ok(self.store.apply_in_background(batch)?));
            if let Err(e) = applied {
                self.forget_outbox(&out.sends);
                return Err(e);
            }
            self.committing = Some(out.sends.clone());
        } else if let Err(e) = self.store.apply(batch) {
            self.forget_outbox(&out.sends);
            return Err(e.into());
        }
        self.stages.add(Stage::Apply, applying);
        if self.durable && !in_background {
            let flushing = std::time::Instant::now();
            if let Err(e) = self.store.flush() {
                self.forget_outbox(&out.sends);
                return Err(e.into());
            }
            self.stages.add(Stage::Flush, flushing);
            self.stages.flushes.fetch_add(1, Relaxed);
        }
        self.stages
            .outbox_depth
            .store(self.outbox.pending.len() as u64, Relaxed);
        self.counters.batches += 1;
        self.counters.writes += out.writes as u64;
        self.counters.transitions += out.transitions as u64;
        self.figures.add(figure_delta);
        // So does the set of quiet contacts.
        for (contact, quiet) in quiet_after {
            if !quiet {
                self.quiet.remove(&contact);
            } else if !self.quiet.contains(&contact) {
                if self.quiet.len() >= QUIET_CONTACTS_MAX {
                    self.quiet.clear();
                }
                self.quiet.insert(contact);
            }
        }
        // The wheel mirrors the store only once the batch is applied.
        for entry in wheel_changes.cancel {
            self.timers.wheel.cancel(entry);
        }
        for i in wheel_changes.insert {
            self.insert_entry(i.entry, i.due);
        }
        Ok(out)
    }

    /// Runs one contact's inputs into the batch in progress. Returns whether the contact is
    /// quiet after them: in the store (it is written if new) with no instance in flight.
    pub(super) fn process_contact(
        &mut self,
        contact_id: &str,
        inputs: Vec<Input>,
        now: Millis,
        work: &mut BatchInProgress,
    ) -> Result<bool> {
        let program = self.deployed.program.clone();
        // A quiet contact's events that nothing enters on, with no segment to keep current:
        // each is its own write, and nothing else happens (see `quiet`).
        if program.segments.is_empty()
            && self.quiet.contains(contact_id)
            && inputs.iter().all(|i| {
                matches!(i, Input::Event(e) if !enters_on(&program, &e.kind)
                    && (!consent::names_an_address(&e.kind)
                        || e.properties.contains_key(consent::ADDRESS)))
            })
        {
            let mut seen_ids: HashSet<String> = HashSet::new();
            for input in inputs {
                if let Input::Event(e) = input {
                    self.record_event(&e, work, &mut seen_ids)?;
                }
            }
            return Ok(true);
        }
        let stored = self.store.contact(contact_id)?;
        // A contact is written with its first event or instance, so one not in the store
        // has neither: nothing more to read.
        let known = stored.is_some();
        let contact = stored.unwrap_or_else(|| Contact {
            id: contact_id.to_string(),
            profile: Default::default(),
        });
        let instances = if known {
            self.store.instances_of(contact_id)?
        } else {
            Vec::new()
        };
        // The history is read only when something may look at it: an entry this event
        // could match, any segment (membership is kept current for all of them), an
        // enrolment, a resume or a segment check, or an instance in flight. An event nobody
        // listens to costs its own write and no read of the past. Nor does an instance
        // waiting in a `check` whose branches read no history (B1's `yes { end } no { end }`):
        // its click, its delivery report and its timer only decide which branch it takes.
        let mut needs_history = !program.segments.is_empty()
            || inputs.iter().any(|i| match i {
                Input::Event(e) | Input::Delivered { event: e, .. } => enters_on(&program, &e.kind),
                Input::Timer { .. } => false,
                Input::Enroll { .. } | Input::Resume { .. } | Input::SegmentCheck { .. } => true,
            });
        for i in instances.iter().filter(|i| i.is_active()) {
            if needs_history {
                break;
            }
            needs_history = !self.waits_without_history(i)?;
        }
        // Whether this contact's inputs can move anything: else an event is only written.
        let acts = needs_history || instances.iter().any(|i| i.is_active());
        let events = if needs_history && known {
            self.store.events_of(contact_id)?
        } else {
            Vec::new()
        };
        let mut round = ContactRound {
            world: World {
                program: &program,
                contact,
                events,
                now,
                default_zone: self.default_zone,
                decisions: Default::default(),
            },
            before: if self.keeps_figures {
                instances
                    .iter()
                    .map(|i| Ok(figures::Before::of(i, self.step_name(i)?)))
                    .collect::<Result<Vec<_>>>()?
            } else {
                Vec::new()
            },
            instances,
            dirty: BTreeSet::new(),
            contact_dirty: !known,
            seen_ids: HashSet::new(),
        };
        let checked = inputs
            .iter()
            .any(|i| matches!(i, Input::SegmentCheck { .. }));

        for input in inputs {
            match input {
                Input::Delivered {
                    message_id,
                    mut event,
                } => {
                    self.outbox_done(&message_id, work.batch);
                    // A bounce keeps the address it concerns: suppressed until it changes.
                    consent::name_the_address(&mut event, &round.world.contact);
                    self.event_input(event, acts, &mut round, work)?;
                }
                Input::Event(mut e) => {
                    consent::name_the_address(&mut e, &round.world.contact);
                    self.event_input(e, acts, &mut round, work)?
                }
                Input::Resume { instance, .. } => {
                    let instances = &round.instances;
                    let Some(idx) = instances.iter().position(|i| i.id == instance) else {
                        continue;
                    };
                    if !instances[idx].is_active()
                        || self.holds.paused.contains(&instances[idx].journey)
                    {
                        continue;
                    }
                    let since = instances[idx].step_since;
                    let events: Vec<Event> = round
                        .world
                        .events
                        .iter()
                        .filter(|e| e.at >= since)
                        .cloned()
                        .collect();
                    for e in &events {
                        if self.feed_event(idx, e, &mut round, work)? {
                            break;
                        }
                    }
                }
                Input::Timer {
                    due,
                    instance,
                    contact,
                    entry,
                } => {
                    let held = round
                        .instances
                        .iter()
                        .find(|i| i.id == instance)
                        .filter(|i| self.holds.paused.contains(&i.journey))
                        .map(|i| i.journey.clone());
                    if let Some(journey) = held {
                        // The key stays on disk; `resume` fires it.
                        self.holds.held.push(pause::HeldTimer {
                            due,
                            instance,
                            contact,
                            journey,
                            entry,
                        });
                        continue;
                    }
                    work.fired.push(entry);
                    let idx = round.instances.iter().position(|i| i.id == instance);
                    if let Some(idx) = idx {
                        self.decide_experiment(
                            &round.instances[idx].clone(),
                            due,
                            &mut round.world,
                            work,
                        )?;
                        let inst = &mut round.instances[idx];
                        if inst.is_active() && inst.due == Some(due) {
                            // The timer key is already removed: the diff must not remove it again.
                            let fx =
                                self.step_instance(inst, StepInput::Timer(due), &mut round.world)?;
                            let after = inst.due;
                            if after != Some(due) {
                                work.timer_changes.push(TimerMove {
                                    old_due: Some(due),
                                    new_due: after,
                                    instance,
                                    contact: contact_id.to_string(),
                                });
                            }
                            round.dirty.insert(idx);
                            work.out.transitions += 1;
                            self.apply_effects(fx, &mut round, work);
                        }
                    }
                }
                // Evaluated with the others after the inputs.
                Input::SegmentCheck { .. } => {}
                Input::Enroll { journey, .. } => {
                    let j = program
                        .journeys
                        .get(&journey)
                        .ok_or_else(|| RuntimeError::UnknownJourney(journey.clone()))?;
                    self.enroll(j, None, &mut round, work)?;
                }
            }
        }
        // Segments: membership, `on join` entries, the next segment check.
        self.update_segments(&mut round, work, checked)?;
        for idx in &round.dirty {
            let inst = &round.instances[*idx];
            work.batch.put_instance(inst);
            if self.keeps_figures {
                let name = self.step_name(inst)?;
                work.figures.instance(round.before.get(*idx), inst, name);
            }
        }
        if round.contact_dirty {
            work.batch.put_contact(&round.world.contact);
        }
        Ok(!round.instances.iter().any(|i| i.is_active()))
    }

    /// Writes an event unless its idempotency id was seen before (in the store, or earlier
    /// in this batch); false for a duplicate.
    pub(super) fn record_event(
        &mut self,
        e: &Event,
        work: &mut BatchInProgress,
        seen_ids: &mut HashSet<String>,
    ) -> Result<bool> {
        if let Some(id) = &e.id {
            if seen_ids.contains(id) || self.store.event_seen(id)? {
                work.out.duplicates += 1;
                return Ok(false);
            }
            seen_ids.insert(id.clone());
        }
        work.batch.put_event(e, self.store.next_id()?);
        work.figures.event(e);
        Ok(true)
    }

    pub(super) fn event_input(
        &mut self,
        e: Event,
        // False when the contact's inputs can move nothing (no instance in flight, no
        // entry on this event, no segment): the event is only written.
        acts: bool,
        round: &mut ContactRound,
        work: &mut BatchInProgress,
    ) -> Result<()> {
        if !self.record_event(&e, work, &mut round.seen_ids)? || !acts {
            return Ok(());
        }
        let events = &mut round.world.events;
        events.insert(events.partition_point(|x| x.at <= e.at), e.clone());
        // Waiting instances first: a click wakes its check, a goal ends its journey.
        // Contacts of paused journeys hold: `resume` offers them these events later.
        for idx in 0..round.instances.len() {
            let inst = &round.instances[idx];
            if !inst.is_active() || self.holds.paused.contains(&inst.journey) {
                continue;
            }
            self.feed_event(idx, &e, round, work)?;
        }
        // Then entries: the event may enrol the contact in journeys.
        let program = self.deployed.program.clone();
        for j in program.journeys.values() {
            if step::entry_event_matches(j, &e, &round.world.view()) {
                self.enroll(j, Some(&e), round, work)?;
            }
        }
        Ok(())
    }

    /// Offers an event to one instance; true if it moved (or did something).
    pub(super) fn feed_event(
        &mut self,
        idx: usize,
        e: &Event,
        round: &mut ContactRound,
        work: &mut BatchInProgress,
    ) -> Result<bool> {
        let inst = &mut round.instances[idx];
        let before = (inst.step, inst.parked, inst.due, inst.ended);
        let fx = self.step_instance(inst, StepInput::Event(e), &mut round.world)?;
        if before == (inst.step, inst.parked, inst.due, inst.ended) && fx.is_empty() {
            return Ok(false);
        }
        if before.2 != inst.due {
            work.timer_changes.push(TimerMove {
                old_due: before.2,
                new_due: inst.due,
                instance: inst.id,
                contact: inst.contact.clone(),
            });
        }
        round.dirty.insert(idx);
        work.out.transitions += 1;
        self.apply_effects(fx, round, work);
        Ok(true)
    }

    pub(super) fn enroll(
        &mut self,
        j: &JourneyIr,
        entry_event: Option<&Event>,
        round: &mut ContactRound,
        work: &mut BatchInProgress,
    ) -> Result<bool> {
        if self.holds.paused.contains(&j.name) {
            return Ok(false);
        }
        let world = &mut round.world;
        let instances = &mut round.instances;
        let earlier: Vec<&Instance> = instances.iter().filter(|i| i.journey == j.name).collect();
        if !step::reentry_allows(j, &earlier, world.now, entry_event.is_some()) {
            return Ok(false);
        }
        let hash = match self.deployed.heads.get(&j.name) {
            Some(h) => h.clone(),
            None => j.content_hash(),
        };
        let mut inst = Instance {
            id: self.store.next_id()?,
            journey: j.name.clone(),
            version: hash,
            contact: world.contact.id.clone(),
            step: None,
            parked: None,
            ended: None,
            entered_at: world.now,
            step_since: world.now,
            due: None,
            entry_event: entry_event.cloned(),
            path: Vec::new(),
            sent: Vec::new(),
        };
        let fx = step::advance(j, &mut inst, StepInput::Enter, world);
        if let Some(d) = inst.due {
            work.timer_changes.push(TimerMove {
                old_due: None,
                new_due: Some(d),
                instance: inst.id,
                contact: inst.contact.clone(),
            });
        }
        instances.push(inst);
        round.dirty.insert(instances.len() - 1);
        work.out.transitions += 1;
        self.apply_effects(fx, round, work);
        Ok(true)
    }

    /// The name of the step an active instance is at (None once ended, or when its version
    /// does not have the step).
    pub(super) fn step_name(&mut self, i: &Instance) -> Result<Option<String>> {
        let Some(step) = i.step.filter(|_| i.is_active()) else {
            return Ok(None);
        };
        Ok(self
            .version(&i.version)?
            .and_then(|ir| ir.steps.get(step as usize).map(|s| s.name.clone())))
    }

    /// From now on, keeps the live figures (`figures`): counts them from the store, then
    /// adds what each batch changes. Off by default: the benchmarks and scenarios pay
    /// nothing for them.
    pub fn keep_figures(&mut self) -> Result<()> {
        self.keeps_figures = true;
        self.rebuild_figures()
    }

    /// Counts the live figures again from the store (`keep_figures`, a reload, and the
    /// controls that rewrite instances outside a batch), when they are kept.
    pub fn rebuild_figures(&mut self) -> Result<()> {
        if !self.keeps_figures {
            return Ok(());
        }
        let figures = self.figures.clone();
        let store = self.store.clone();
        let mut failed = None;
        figures.rebuild(&store, |i| match self.step_name(i) {
            Ok(n) => n,
            Err(e) => {
                failed.get_or_insert(e);
                None
            }
        })?;
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(super) fn step_instance(
        &mut self,
        inst: &mut Instance,
        input: StepInput,
        world: &mut World,
    ) -> Result<Vec<Effect>> {
        let Some(ir) = self.version(&inst.version)? else {
            return Err(RuntimeError::Invalid(format!(
                "instance {} runs version {} of '{}', which the store does not have",
                inst.id, inst.version, inst.journey
            )));
        };
        Ok(step::advance(&ir, inst, input, world))
    }

    pub(super) fn apply_effects(
        &mut self,
        fx: Vec<Effect>,
        round: &mut ContactRound,
        work: &mut BatchInProgress,
    ) {
        for f in fx {
            match f {
                // Into the batch's outbox record (`write_outbox`).
                Effect::Send(job) => work.out.sends.push(job),
                Effect::SetField { .. } => round.contact_dirty = true,
                Effect::Capped(ev) | Effect::Suppressed(ev) | Effect::Record(ev) => {
                    // The engine already added it to the world's history.
                    if let Ok(seq) = self.store.next_id() {
                        work.batch.put_event(&ev, seq);
                        work.figures.event(&ev);
                    }
                }
                Effect::Timeline(t) => work.out.timeline.push(t),
            }
        }
    }
}
