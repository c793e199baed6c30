//! Reports and audiences over the store: what each message of a journey did (received,
//! opened, clicked, per link, per recipient domain), who did what (openers, clickers,
//! non-openers, active, inactive), and how each recipient domain's bounce or open rate moves
//! over time. Plain data with serde: the CLI prints it for people, the daemon serves it as
//! JSON. It reads the store only; the step function and the runtime are not involved.
//!
//! What counts:
//!
//! - a **delivery** (received) is a `message.sent` record, or a provider's `received` report
//!   of a delivery not already recorded (one per message id);
//! - a **bounce** is `message.bounced` (refused at delivery) or a provider's `bounced`;
//! - **opens** and **clicks** are the `opened` and `clicked` events naming the journey and
//!   the message (and the link, for clicks): "total" counts each, "unique" counts contacts;
//! - the **recipient domain** is the part after `@` of the contact's `email` profile field.

pub mod lists;
pub mod trend;

use crate::compile::ir::JourneyIr;
use crate::compile::ir::Program;
use crate::engine::{
    Contact, EndReason, Event, Instance, Millis, MESSAGE_BOUNCED, MESSAGE_CAPPED, MESSAGE_FAILED,
    MESSAGE_SENT,
};
use crate::lang::diagnostic::did_you_mean;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};

pub use lists::{render_audience, ListFormat};
pub use trend::{trend, Group, Metric, Trend, TrendParams, TrendQuery};

/// A count of events and of the distinct contacts behind them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Count {
    pub unique: u64,
    pub total: u64,
}

/// What one recipient did with one message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recipient {
    pub contact: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Deliveries of the message to this contact.
    pub received: u64,
    pub opens: u64,
    pub clicks: u64,
    /// Clicks per link.
    pub links: BTreeMap<String, u64>,
    pub bounces: u64,
    pub unsubscribes: u64,
    /// Deliveries a channel gave up on (`message.failed`).
    pub failures: u64,
    /// Sends a policy held or skipped (`message.capped`).
    pub capped: u64,
    /// First delivery, first open, first click (milliseconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub first_received: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub first_opened: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub first_clicked: Option<Millis>,
}

impl Recipient {
    pub fn domain(&self) -> Option<String> {
        self.email.as_deref().and_then(domain_of)
    }
    pub fn is_active(&self) -> bool {
        self.opens > 0 || self.clicks > 0
    }
}

/// The recipient domain of an email address, lower case.
pub fn domain_of(email: &str) -> Option<String> {
    let (_, d) = email.rsplit_once('@')?;
    let d = d.trim().trim_end_matches('>').to_ascii_lowercase();
    (!d.is_empty()).then_some(d)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LinkStats {
    pub link: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub clicks: Count,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DomainStats {
    pub domain: String,
    /// Contacts of this domain the message reached, and their deliveries.
    pub received: Count,
    pub opened: Count,
    pub clicked: Count,
    pub bounced: Count,
}

/// The statistics of one message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageStats {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub received: Count,
    pub opened: Count,
    pub clicked: Count,
    pub bounced: Count,
    pub unsubscribed: Count,
    pub failed: Count,
    /// Sends a policy held or skipped.
    pub capped: Count,
    /// Every link of the message (those of its current version, and any clicked), by name.
    pub links: Vec<LinkStats>,
    /// Email messages: per recipient domain, most deliveries first.
    pub domains: Vec<DomainStats>,
}

impl MessageStats {
    /// `part / whole` of unique contacts, as a percentage.
    pub fn rate(part: Count, whole: Count) -> Option<f64> {
        (whole.unique > 0).then(|| 100.0 * part.unique as f64 / whole.unique as f64)
    }
}

/// `journey report`: every message of a journey.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JourneyReport {
    pub journey: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Contacts who entered the journey (any version).
    pub entered: u64,
    /// Instances of the journey (any version): more than `entered` where contacts entered
    /// more than once (`reentry`), or side by side (`reentry always`, one per event).
    #[serde(default)]
    pub instances: u64,
    /// With `holdout N%`: the goal conversion of the holdout and of the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutReport>,
    /// Each experiment of the version last deployed: its arms' rates and the winner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub experiments: Vec<ExperimentReport>,
    pub messages: Vec<MessageStats>,
}

/// `experiment NAME by METRIC within D`: each arm's rate among the contacts who entered it,
/// and the winner once chosen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExperimentReport {
    pub experiment: String,
    /// `opened`, `clicked` or `converted`.
    pub metric: String,
    /// The winner share, in percent.
    pub winner_share: f64,
    /// The arms as they stand now (contacts who entered each, and those who did the verb).
    pub arms: Vec<ArmReport>,
    /// The arm chosen for the winner share, once chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winner: Option<String>,
    /// When it was chosen (milliseconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub chosen_at: Option<Millis>,
    /// The arms' rates when it was chosen, as recorded then.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rates_at_choice: Vec<ArmReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArmReport {
    pub arm: String,
    /// Contacts who entered the arm (the holdout excepted): the sample size.
    pub contacts: u64,
    pub successes: u64,
    /// `successes / contacts` in percent.
    pub rate: f64,
}

/// The experiments of `ir`, measured over the store now, with their recorded decisions.
fn experiment_reports(store: &Store, ir: &JourneyIr) -> Result<Vec<ExperimentReport>, ReportError> {
    use crate::compile::ir::StepKindIr;
    let mut out = Vec::new();
    for step in &ir.steps {
        let StepKindIr::Experiment {
            metric,
            arms,
            winner,
            ..
        } = &step.kind
        else {
            continue;
        };
        let mut tally = crate::engine::experiment::Tally::new(&ir.name, &step.name, *metric, arms);
        for c in store.contacts() {
            let c = c?;
            let instances = store.instances_of(&c.id)?;
            if instances.iter().any(|i| i.journey == ir.name) {
                let events = store.events_of(&c.id)?;
                tally.add(&c.id, ir.holds_out(&c.id), &instances, &events);
            }
        }
        let decided = crate::runtime::recorded_decision(store, &ir.name, &step.name)?;
        let arm_report = |v: &serde_json::Value| ArmReport {
            arm: v["arm"].as_str().unwrap_or_default().to_string(),
            contacts: v["contacts"].as_u64().unwrap_or(0),
            successes: v["successes"].as_u64().unwrap_or(0),
            rate: v["rate"].as_f64().unwrap_or(0.0),
        };
        out.push(ExperimentReport {
            experiment: step.name.clone(),
            metric: metric.as_str().into(),
            winner_share: *winner as f64 / 100.0,
            arms: tally
                .tallies
                .iter()
                .map(|t| ArmReport {
                    arm: t.arm.clone(),
                    contacts: t.contacts,
                    successes: t.successes,
                    rate: t.rate(),
                })
                .collect(),
            winner: decided
                .as_ref()
                .and_then(|e| e.properties.get("winner"))
                .and_then(|w| w.as_str())
                .map(String::from),
            chosen_at: decided.as_ref().map(|e| e.at),
            rates_at_choice: decided
                .as_ref()
                .and_then(|e| e.properties.get("arms"))
                .and_then(|a| a.as_array())
                .map(|a| a.iter().map(arm_report).collect())
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// A share of contacts and how many of them reached the journey's goal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Conversion {
    /// Contacts in the group.
    pub contacts: u64,
    /// Those of them with an instance ended by the goal.
    pub converted: u64,
    /// `converted / contacts`, in percent (None without contacts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

impl Conversion {
    fn add(&mut self, converted: bool) {
        self.contacts += 1;
        self.converted += converted as u64;
        self.rate = Some(100.0 * self.converted as f64 / self.contacts as f64);
    }
}

/// `holdout N%`: the contacts sent nothing against the rest (treated).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldoutReport {
    /// The share held out, in percent (of the version last deployed).
    pub share: f64,
    pub holdout: Conversion,
    pub treated: Conversion,
    /// Treated rate minus holdout rate, in percentage points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub absolute_lift: Option<f64>,
    /// The absolute lift over the holdout's rate, in percent (None when that rate is 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative_lift: Option<f64>,
}

/// What the instances of a journey say: how many, and the holdout's comparison.
fn instance_summary(
    store: &Store,
    journey: &str,
    ir: Option<&JourneyIr>,
) -> Result<(u64, Option<HoldoutReport>), ReportError> {
    let mut instances = 0;
    let mut versions: BTreeMap<String, Option<JourneyIr>> = BTreeMap::new();
    let (mut holdout, mut treated) = (Conversion::default(), Conversion::default());
    let mut any_holdout = ir.is_some_and(|j| j.holdout > 0);
    for c in store.contacts() {
        let c = c?;
        let mine: Vec<Instance> = store
            .instances_of(&c.id)?
            .into_iter()
            .filter(|i| i.journey == journey)
            .collect();
        if mine.is_empty() {
            continue;
        }
        instances += mine.len() as u64;
        let mut held = false;
        for i in &mine {
            if !versions.contains_key(&i.version) {
                versions.insert(i.version.clone(), store.version(&i.version)?);
            }
            if let Some(Some(v)) = versions.get(&i.version) {
                any_holdout |= v.holdout > 0;
                held |= v.holds_out(&c.id);
            }
        }
        let converted = mine.iter().any(|i| i.ended == Some(EndReason::Converted));
        if held {
            holdout.add(converted);
        } else {
            treated.add(converted);
        }
    }
    if !any_holdout {
        return Ok((instances, None));
    }
    let absolute_lift = match (treated.rate, holdout.rate) {
        (Some(t), Some(h)) => Some(t - h),
        _ => None,
    };
    let relative_lift = match (absolute_lift, holdout.rate) {
        (Some(a), Some(h)) if h > 0.0 => Some(100.0 * a / h),
        _ => None,
    };
    Ok((
        instances,
        Some(HoldoutReport {
            share: ir.map_or(0.0, |j| j.holdout as f64 / 100.0),
            holdout,
            treated,
            absolute_lift,
            relative_lift,
        }),
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no journey '{0}' in this store{1}")]
    UnknownJourney(String, String),
    #[error("journey '{0}' has no message '{1}'{2}")]
    UnknownMessage(String, String, String),
    #[error("no segment '{0}'{1}")]
    UnknownSegment(String, String),
    /// A question that cannot be asked (the daemon answers 400).
    #[error("{0}")]
    Invalid(String),
}

impl ReportError {
    /// The thing asked about does not exist (the daemon answers 404).
    pub fn is_unknown(&self) -> bool {
        matches!(
            self,
            ReportError::UnknownJourney(..)
                | ReportError::UnknownMessage(..)
                | ReportError::UnknownSegment(..)
        )
    }
}

/// A moment as people write it: RFC 3339, or a date (midnight UTC).
pub fn parse_moment(text: &str) -> Result<Millis, ReportError> {
    if let Some(t) = crate::engine::calendar::parse_rfc3339(text) {
        return Ok(t);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_millis());
    }
    Err(ReportError::Invalid(format!(
        "'{text}' is not a time: write 2026-03-23 or 2026-03-23T09:00:00Z"
    )))
}

/// The recipients of one journey's messages: message → contact → what they did.
pub type Recipients = BTreeMap<String, BTreeMap<String, Recipient>>;

/// The journey as last deployed to the store (its messages, links, subjects), if any.
pub fn deployed_journey(store: &Store, journey: &str) -> Result<Option<JourneyIr>, StoreError> {
    match store.head(journey)? {
        Some(h) => store.version(&h),
        None => Ok(None),
    }
}

fn close_names<'a>(name: &str, known: impl IntoIterator<Item = &'a String>) -> String {
    let known: Vec<&String> = known.into_iter().collect();
    let best = did_you_mean(name, known.iter().map(|k| k.as_str()))
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    if known.is_empty() {
        best
    } else {
        format!(
            "{best}; known: {}",
            known
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Reads what every recipient did with the messages of `journey` (only `message`, if
/// given). One scan of the store's events.
pub fn recipients(
    store: &Store,
    journey: &str,
    message: Option<&str>,
) -> Result<(Recipients, BTreeSet<String>), ReportError> {
    let mut out: Recipients = BTreeMap::new();
    let mut entered: BTreeSet<String> = BTreeSet::new();
    let mut seen_deliveries: HashSet<(String, String)> = HashSet::new();
    let mut current: Option<(String, Option<String>)> = None;
    for e in store.all_events() {
        let e = e?;
        if e.journey.as_deref() != Some(journey) {
            continue;
        }
        let Some(msg) = e.message.as_deref() else {
            continue;
        };
        if message.is_some_and(|m| m != msg) {
            continue;
        }
        if current.as_ref().map(|c| c.0.as_str()) != Some(e.contact.as_str()) {
            let email = store
                .contact(&e.contact)?
                .as_ref()
                .and_then(|c: &Contact| c.profile.get("email"))
                .and_then(|v| v.as_str())
                .map(String::from);
            current = Some((e.contact.clone(), email));
        }
        let email = current.as_ref().and_then(|c| c.1.clone());
        let r = out
            .entry(msg.to_string())
            .or_default()
            .entry(e.contact.clone())
            .or_insert_with(|| Recipient {
                contact: e.contact.clone(),
                email,
                ..Recipient::default()
            });
        apply(r, &e, &mut seen_deliveries);
    }
    // Opens are implied by clicks: a click on a message with no open recorded (images off,
    // mail privacy protection) counts as one open, at the first click.
    for r in out.values_mut().flat_map(|m| m.values_mut()) {
        if r.opens == 0 && r.clicks > 0 {
            r.opens = 1;
            r.first_opened = r.first_clicked;
        }
    }
    // Entered: the contacts with an instance of the journey.
    for c in store.contacts() {
        let c = c?;
        if store
            .instances_of(&c.id)?
            .iter()
            .any(|i| i.journey == journey)
        {
            entered.insert(c.id);
        }
    }
    Ok((out, entered))
}

fn apply(r: &mut Recipient, e: &Event, seen: &mut HashSet<(String, String)>) {
    let first = |slot: &mut Option<Millis>| {
        if slot.is_none_or(|t| e.at < t) {
            *slot = Some(e.at);
        }
    };
    match e.kind.as_str() {
        // A send whose provider reports delivery is received when the report says so.
        MESSAGE_SENT | "received"
            if e.kind == "received" || crate::engine::sent_means_received(e) =>
        {
            // One delivery per message id, however many reports it has.
            let fresh = match &e.message_id {
                Some(id) => seen.insert((e.contact.clone(), id.clone())),
                None => true,
            };
            if fresh {
                r.received += 1;
                first(&mut r.first_received);
            }
        }
        "opened" => {
            r.opens += 1;
            first(&mut r.first_opened);
        }
        "clicked" => {
            r.clicks += 1;
            first(&mut r.first_clicked);
            if let Some(l) = &e.link {
                *r.links.entry(l.clone()).or_default() += 1;
            }
        }
        MESSAGE_BOUNCED | "bounced" => r.bounces += 1,
        "unsubscribed" => r.unsubscribes += 1,
        // Leaving the message's topic from its preference page is an unsubscribe from it.
        crate::engine::SUBSCRIPTION_CHANGED
            if e.properties.get("value") == Some(&serde_json::Value::Bool(false)) =>
        {
            r.unsubscribes += 1
        }
        MESSAGE_CAPPED => r.capped += 1,
        MESSAGE_FAILED => r.failures += 1,
        _ => {}
    }
}

fn count<'a>(rs: impl Iterator<Item = &'a Recipient>, f: impl Fn(&Recipient) -> u64) -> Count {
    let mut c = Count::default();
    for r in rs {
        let n = f(r);
        if n > 0 {
            c.unique += 1;
            c.total += n;
        }
    }
    c
}

/// `journey report JOURNEY [--message M]`.
pub fn journey_report(
    store: &Store,
    journey: &str,
    message: Option<&str>,
) -> Result<JourneyReport, ReportError> {
    let ir = deployed_journey(store, journey)?;
    let (recipients, entered) = recipients(store, journey, message)?;
    let (instances, holdout) = instance_summary(store, journey, ir.as_ref())?;
    if ir.is_none() && recipients.is_empty() && entered.is_empty() {
        let heads: Vec<String> = store.heads()?.into_iter().map(|h| h.0).collect();
        return Err(ReportError::UnknownJourney(
            journey.into(),
            close_names(journey, &heads),
        ));
    }
    if let (Some(m), Some(ir)) = (message, &ir) {
        if !ir.messages.contains_key(m) && !recipients.contains_key(m) {
            return Err(ReportError::UnknownMessage(
                journey.into(),
                m.into(),
                close_names(m, ir.messages.keys()),
            ));
        }
    }
    // Messages of the deployed version (in step order), then any others seen in events.
    let mut names: Vec<String> = Vec::new();
    if let Some(ir) = &ir {
        for s in &ir.steps {
            if let crate::compile::ir::StepKindIr::Send { message: m, .. } = &s.kind {
                if !names.contains(m) && message.is_none_or(|x| x == m) {
                    names.push(m.clone());
                }
            }
        }
    }
    for m in recipients.keys() {
        if !names.contains(m) {
            names.push(m.clone());
        }
    }
    let empty = BTreeMap::new();
    let mut messages = Vec::new();
    for name in names {
        let rs = recipients.get(&name).unwrap_or(&empty);
        let def = ir.as_ref().and_then(|j| j.messages.get(&name));
        let channel = def.map(|d| d.channel.as_str().to_string());
        let mut links: BTreeMap<String, LinkStats> = BTreeMap::new();
        if let Some(d) = def {
            for (l, url) in &d.links {
                links.insert(
                    l.clone(),
                    LinkStats {
                        link: l.clone(),
                        url: Some(url.clone()),
                        clicks: Count::default(),
                    },
                );
            }
        }
        for r in rs.values() {
            for (l, n) in &r.links {
                let s = links.entry(l.clone()).or_insert_with(|| LinkStats {
                    link: l.clone(),
                    ..LinkStats::default()
                });
                s.clicks.unique += 1;
                s.clicks.total += n;
            }
        }
        let mut domains: BTreeMap<String, Vec<&Recipient>> = BTreeMap::new();
        if channel.as_deref().is_none_or(|c| c == "email") {
            for r in rs.values() {
                if let Some(d) = r.domain() {
                    domains.entry(d).or_default().push(r);
                }
            }
        }
        let mut domains: Vec<DomainStats> = domains
            .into_iter()
            .map(|(domain, v)| DomainStats {
                domain,
                received: count(v.iter().copied(), |r| r.received),
                opened: count(v.iter().copied(), |r| r.opens),
                clicked: count(v.iter().copied(), |r| r.clicks),
                bounced: count(v.iter().copied(), |r| r.bounces),
            })
            .collect();
        domains.sort_by(|a, b| {
            b.received
                .total
                .cmp(&a.received.total)
                .then(a.domain.cmp(&b.domain))
        });
        messages.push(MessageStats {
            subject: def.and_then(|d| d.fields.get("subject").cloned()),
            channel,
            received: count(rs.values(), |r| r.received),
            opened: count(rs.values(), |r| r.opens),
            clicked: count(rs.values(), |r| r.clicks),
            bounced: count(rs.values(), |r| r.bounces),
            unsubscribed: count(rs.values(), |r| r.unsubscribes),
            capped: count(rs.values(), |r| r.capped),
            failed: count(rs.values(), |r| r.failures),
            links: links.into_values().collect(),
            domains,
            message: name,
        });
    }
    Ok(JourneyReport {
        journey: journey.into(),
        title: ir.as_ref().and_then(|j| j.title.clone()),
        label: ir.as_ref().and_then(|j| j.label.clone()),
        entered: entered.len() as u64,
        instances,
        holdout,
        experiments: match &ir {
            Some(ir) => experiment_reports(store, ir)?,
            None => Vec::new(),
        },
        messages,
    })
}

/// Who, among the recipients of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Who {
    /// Opened it at least once.
    Openers,
    /// Clicked a link of it (the given link, with `--link`) at least once.
    Clickers,
    /// Received it (it did not bounce) and never opened it.
    NonOpeners,
    /// Opened it or clicked it.
    Active,
    /// Received it (it did not bounce), and neither opened nor clicked it.
    Inactive,
    /// Everyone it was delivered to.
    Recipients,
}

/// `journey audience JOURNEY.MESSAGE --who …`: the contacts, in id order, with what they did.
pub fn audience(
    store: &Store,
    journey: &str,
    message: &str,
    who: Who,
    link: Option<&str>,
) -> Result<Vec<Recipient>, ReportError> {
    if let (Some(l), false) = (link, who == Who::Clickers) {
        return Err(ReportError::Invalid(format!(
            "the link '{l}' narrows the clickers: give a link only with who = clickers"
        )));
    }
    let ir = deployed_journey(store, journey)?;
    let (mut all, _) = recipients(store, journey, Some(message))?;
    if ir.is_none() && all.is_empty() {
        let heads: Vec<String> = store.heads()?.into_iter().map(|h| h.0).collect();
        return Err(ReportError::UnknownJourney(
            journey.into(),
            close_names(journey, &heads),
        ));
    }
    if let Some(ir) = &ir {
        if !ir.messages.contains_key(message) && !all.contains_key(message) {
            return Err(ReportError::UnknownMessage(
                journey.into(),
                message.into(),
                close_names(message, ir.messages.keys()),
            ));
        }
    }
    let rs = all.remove(message).unwrap_or_default();
    Ok(rs
        .into_values()
        .filter(|r| {
            let clicked = match link {
                Some(l) => r.links.get(l).copied().unwrap_or(0) > 0,
                None => r.clicks > 0,
            };
            match who {
                Who::Openers => r.opens > 0,
                Who::Clickers => clicked,
                Who::NonOpeners => r.received > 0 && r.bounces == 0 && r.opens == 0,
                Who::Active => r.is_active(),
                Who::Inactive => r.received > 0 && r.bounces == 0 && !r.is_active(),
                Who::Recipients => r.received > 0,
            }
        })
        .collect())
}

/// The segment of that name, or an error naming the known ones.
pub fn segment_of<'a>(
    program: &'a crate::compile::ir::Program,
    segment: &str,
) -> Result<&'a crate::compile::ir::SegmentIr, ReportError> {
    program.segments.get(segment).ok_or_else(|| {
        ReportError::UnknownSegment(
            segment.into(),
            close_names(segment, program.segments.keys()),
        )
    })
}

/// `journey segment NAME`: the contacts in a segment, by evaluating its definition over
/// every contact in the store at `now`, in id order.
pub fn segment_members(
    store: &Store,
    program: &crate::compile::ir::Program,
    segment: &str,
    now: Millis,
) -> Result<Vec<String>, ReportError> {
    let s = segment_of(program, segment)?;
    let mut out = Vec::new();
    // Only the history the rules can see is read.
    let since = crate::engine::cond::segment_lookback(program, s).map(|w| now - w);
    for r in store.contacts_with_events_since(since) {
        let (c, events) = r?;
        let view = crate::engine::cond::ContactView {
            contact: &c,
            events: &events,
            program,
            now,
        };
        if view.segment_matches(s) {
            out.push(c.id);
        }
    }
    Ok(out)
}

/// What `journey segment` and `GET /v1/segments/{name}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SegmentAnswer {
    pub segment: String,
    /// The moment the definition was evaluated at; none for the stored membership.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub at: Option<Millis>,
    pub count: u64,
    /// The contacts, in id order, when they were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
}

/// The moment a segment is read at: `at` (RFC 3339 or a date), else `now`; None, for the
/// membership the runtime keeps (`stored`), which has no moment.
pub fn segment_moment(
    at: Option<&str>,
    stored: bool,
    now: Millis,
) -> Result<Option<Millis>, ReportError> {
    match (at, stored) {
        (Some(_), true) => Err(ReportError::Invalid(
            "a moment evaluates the definition, the stored membership has none: ask for one of them"
                .into(),
        )),
        (Some(t), false) => parse_moment(t).map(Some),
        (None, false) => Ok(Some(now)),
        (None, true) => Ok(None),
    }
}

/// A segment's contacts: its definition evaluated at `at`, or, with `at` None, the
/// membership the runtime keeps. With `list`, the ids too.
pub fn segment(
    store: &Store,
    program: &crate::compile::ir::Program,
    segment: &str,
    at: Option<Millis>,
    list: bool,
) -> Result<SegmentAnswer, ReportError> {
    segment_of(program, segment)?;
    let members: Vec<String> = match at {
        Some(t) => segment_members(store, program, segment, t)?,
        None => store.members(segment).collect::<Result<_, _>>()?,
    };
    Ok(SegmentAnswer {
        segment: segment.into(),
        at,
        count: members.len() as u64,
        members: list.then_some(members),
    })
}

/// What `journey contacts show` warns about in a profile: the topics of `subscriptions` no
/// topic definition names (kept as they are; the engine asks only about known topics).
pub fn profile_warnings(contact: &Contact, program: &Program) -> Vec<String> {
    crate::engine::consent::unknown_topics(contact, program)
        .into_iter()
        .map(|t| {
            let known: Vec<&str> = program
                .topics
                .keys()
                .map(String::as_str)
                .chain(crate::compile::ir::CHANNEL_TOPICS)
                .collect();
            let hint = did_you_mean(&t, known.iter().copied())
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            format!("subscriptions.{t}: unknown topic '{t}', kept but never asked about{hint}")
        })
        .collect()
}
