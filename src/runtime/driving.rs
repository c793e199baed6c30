//! Driving the runtime: run at a moment, hand sends to the sink, feed back what it reports,
//! recover the outbox.

use super::*;

impl Runtime {
    /// Processes inputs at `now`, hands the sends to the sink, and processes what the sink
    /// reports (deliveries, failures) until nothing is left to do at this moment.
    pub fn run_at(
        &mut self,
        inputs: Vec<Input>,
        now: Millis,
        sink: &mut dyn Sink,
        timeline: &mut Vec<TimelineEntry>,
    ) -> Result<()> {
        let mut inputs = inputs;
        // Each round is a batch; sends made by a delivery's consequences go in the next one.
        for _ in 0..1_000 {
            if inputs.is_empty() {
                return Ok(());
            }
            let out = self.process(std::mem::take(&mut inputs), now)?;
            timeline.extend(out.timeline);
            for job in out.sends {
                inputs.extend(self.deliver(&job, now, sink));
            }
        }
        Err(RuntimeError::Invalid(
            "deliveries kept causing sends at one instant".into(),
        ))
    }

    /// Delivers what a crash left in the outbox: committed sends whose delivery was not
    /// recorded. A provider that honours the idempotency key sees each at most once.
    pub fn recover_outbox(
        &mut self,
        now: Millis,
        sink: &mut dyn Sink,
        timeline: &mut Vec<TimelineEntry>,
    ) -> Result<usize> {
        // Until their outcomes are committed, the sends handed are noted, as during an
        // outage of the store (`reconnect`): should the commit fail, they are not handed
        // again.
        self.outbox
            .handed_before_loss
            .get_or_insert_with(HashSet::new);
        let jobs = self.pending_jobs_where(|_| true)?;
        let n = jobs.len();
        let mut inputs = Vec::new();
        for job in jobs {
            inputs.extend(self.deliver(&job, now, sink));
        }
        self.run_at(inputs, now, sink, timeline)?;
        self.outbox.handed_before_loss = None;
        Ok(n)
    }

    /// The committed sends still pending whose message id `keep` accepts.
    pub(super) fn pending_jobs_where(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<SendJob>> {
        // The pending sends are known since the start (`load_outbox` read their contacts'
        // histories once): only the records are read again, for the jobs themselves.
        Ok(self
            .store
            .outbox_records()?
            .into_iter()
            .flat_map(|(_, jobs)| jobs)
            .filter(|job| {
                self.outbox.pending.contains_key(&job.message_id) && keep(&job.message_id)
            })
            .collect())
    }

    /// Due schedules and timers at `now`, run to quiescence.
    pub fn tick(
        &mut self,
        now: Millis,
        sink: &mut dyn Sink,
        timeline: &mut Vec<TimelineEntry>,
    ) -> Result<()> {
        let mut inputs = self.due_schedules(now)?;
        inputs.extend(self.due_timers(now)?);
        self.run_at(inputs, now, sink, timeline)
    }

    /// Hands sends to the sink; the inputs record the outcomes known at once (a sink that
    /// reports later sends them through its own way in).
    pub fn deliver_all(
        &mut self,
        jobs: &[SendJob],
        now: Millis,
        sink: &mut dyn Sink,
    ) -> Vec<Input> {
        jobs.iter()
            .filter_map(|job| self.deliver(job, now, sink))
            .collect()
    }

    /// Hands one send to the sink; the input records its outcome (none while pending).
    pub(super) fn deliver(
        &mut self,
        job: &SendJob,
        now: Millis,
        sink: &mut dyn Sink,
    ) -> Option<Input> {
        if let Some(handed) = &mut self.outbox.handed_before_loss {
            handed.insert(job.message_id.clone());
        }
        let outcome = sink.deliver(job, now);
        let subject = self.subject_of(job);
        let event = delivery_event(job, now, subject, &outcome)?;
        Some(Input::Delivered {
            message_id: job.message_id.clone(),
            event,
        })
    }

    pub(super) fn subject_of(&mut self, job: &SendJob) -> Option<String> {
        let ir = self.version(&job.version).ok().flatten()?;
        ir.messages
            .get(&job.message)?
            .fields
            .get("subject")
            .cloned()
    }
}
